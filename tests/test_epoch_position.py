"""``trainhooks.resume.EpochPosition``: the epoch's per-batch losses, kept in stacked chunks.

What a mid-epoch checkpoint records must not depend on where the chunk boundaries fall.
"""

from __future__ import annotations

import pytest
import torch

from trainhooks.checkpointing import RawRngState
from trainhooks.resume import LOSS_CHUNK, EpochPosition


def position_with(count: int, *, accumulating: bool = False) -> EpochPosition:
    position = EpochPosition()
    position.start(RawRngState(None, host_generators=False), accumulating=accumulating)
    for i in range(count):
        position.add_loss(torch.tensor(float(i)), i + 1)
        position.batches_done += 1
    return position


@pytest.mark.parametrize("count", [0, 1, LOSS_CHUNK - 1, LOSS_CHUNK, LOSS_CHUNK + 1, 3 * LOSS_CHUNK + 2])
def test_every_loss_is_kept_in_order_across_chunks(count) -> None:
    position = position_with(count)
    assert len(position.losses) < LOSS_CHUNK  # the older ones are stacked
    losses = position.epoch_losses()
    assert (losses is None) == (count == 0)
    if losses is not None:
        assert losses.tolist() == [float(i) for i in range(count)]
    record = position.record(batch_size=4)
    assert record["losses"].tolist() == [float(i) for i in range(count)]
    assert record["sizes"] == list(range(1, count + 1)) and record["batches_done"] == count


def test_a_checkpoint_inside_an_accumulation_group_records_up_to_the_last_step() -> None:
    position = position_with(LOSS_CHUNK + 2, accumulating=True)
    position.step_boundary()  # a step after LOSS_CHUNK + 2 micro-batches
    for i in range(3):  # three micro-batches of the next group, across no boundary yet
        position.add_loss(torch.tensor(100.0 + i), 1)
        position.batches_done += 1
    record = position.record(batch_size=4)
    assert record["batches_done"] == LOSS_CHUNK + 2
    assert record["losses"].tolist() == [float(i) for i in range(LOSS_CHUNK + 2)]
    assert record["sizes"] == list(range(1, LOSS_CHUNK + 3))


def test_restored_losses_come_first_and_new_ones_follow() -> None:
    saved = position_with(LOSS_CHUNK + 3).record(batch_size=4)
    resumed = position_with(0)
    resumed.restore_losses(saved["losses"], saved["sizes"])
    resumed.add_loss(torch.tensor(-1.0), 9)
    losses = resumed.epoch_losses()
    assert losses is not None and losses.tolist() == [*saved["losses"].tolist(), -1.0]
    assert resumed.sizes == [*saved["sizes"], 9]
