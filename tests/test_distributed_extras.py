"""Gradient accumulation and EMA under real torchrun (2 CPU processes, gloo).

Both run tests/dist_accumulate_script.py (see its docstring): the training data is unshuffled, so
rank r's k-th micro-batch of 16 holds samples r, r+2, ... of the block [32k, 32k+32), and one
optimizer step of two micro-batches on two ranks covers exactly the 64 samples [64j, 64j+64): the
same global batches as one process with batch 64 and no accumulation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

import trainhooks

from .dist_accumulate_script import BATCH, N_TRAIN, digits, mlp
from .test_distributed import TESTS, torchrun

pytestmark = pytest.mark.slow


def run_script(tmp_path: Path, mode: str) -> dict[int, dict[str, Any]]:
    out = tmp_path / "seen"
    script = str(TESTS / "dist_accumulate_script.py")
    proc = torchrun([script, "--mode", mode, "--out", str(out), "--save-dir", str(tmp_path / "run")], cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return {r: torch.load(out / f"rank{r}.pt", weights_only=False) for r in (0, 1)}


def test_accumulation_syncs_gradients_only_on_stepping_micro_batches_and_equals_one_process(tmp_path: Path) -> None:
    seen = run_script(tmp_path, "accumulate")
    per_rank = N_TRAIN // 2 // BATCH  # 9 micro-batches per rank and epoch: groups of 2, then 1
    stepping = {1, 3, 5, 7, 8}
    for rank, s in seen.items():
        assert s["global_step"] == 2 * len(stepping), rank
        expected = [(e, i, i in stepping) for e in range(2) for i in range(per_rank)]
        assert s["synced"] == expected, f"rank {rank}: gradients all-reduced on the wrong micro-batches"
        assert s["allreduces"] >= s["global_step"]  # one per bucket and step (this model: one bucket)
    for k, v in seen[0]["params"].items():
        assert torch.equal(v, seen[1]["params"][k]), k

    # One process, the same global batches of 64 (the last one 32), one step each.
    model = mlp()
    single = trainhooks.Trainer(
        model,
        loss_fn=torch.nn.CrossEntropyLoss(),
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        epochs=2,
        save_dir=tmp_path / "single",
        default_plugins=False,
        seed=0,
        verbose=False,
    )
    result = single.fit(*digits(N_TRAIN, 64, 4 * BATCH))
    assert result.global_step == seen[0]["global_step"]
    for k, v in model.state_dict().items():
        torch.testing.assert_close(seen[0]["params"][k], v, rtol=1e-5, atol=1e-6)
    for ddp_row, one_row in zip(seen[0]["history"], result.history):
        assert ddp_row["train/loss"] == pytest.approx(one_row["train/loss"], rel=1e-5)
        assert ddp_row["val/loss"] == pytest.approx(one_row["val/loss"], rel=1e-5)


def test_ema_is_the_same_on_every_rank_and_in_the_checkpoint_and_steps_once_per_optimizer_step(
    tmp_path: Path,
) -> None:
    seen = run_script(tmp_path, "ema")
    zero, one = seen[0], seen[1]
    assert zero["global_step"] == one["global_step"] == 10  # 5 steps (9 micro-batches) per epoch
    assert zero["updates"] == zero["steps"] == 10, "the average moves once per optimizer step, not per micro-batch"
    assert set(zero["ema"]) >= {"1.running_mean", "1.running_var"}  # BatchNorm statistics are averaged
    for k, v in zero["ema"].items():
        assert torch.equal(v, one["ema"][k]), f"{k}: the ranks' averages differ"
        assert not torch.equal(v, zero["params"][k]), k  # an average, not the weights
    last = torch.load(tmp_path / "run" / "weights" / "last.pt", weights_only=True)
    saved = last["plugins"]["EMA"]
    assert saved["updates"] == 10
    for k, v in zero["ema"].items():
        assert torch.equal(saved["weights"][k], v), k
        assert torch.equal(last["model"][k], v), k  # use_for checkpoint: the file's model is the average
        assert torch.equal(saved["trained_model"][k], zero["params"][k]), k
