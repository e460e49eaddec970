"""A plugin for the torchrun tests: records what each rank sees, misbehaves on request.

Enabled with ``-p distprobe`` (tests/ on PYTHONPATH). Each rank appends JSON lines to
``$DISTPROBE_DIR/rank<N>.jsonl``. ``DISTPROBE_STOP_RANK``/``_STOP_STEP`` make ``should_stop`` ask
once, on that rank only; ``DISTPROBE_FAIL_RANK``/``_FAIL_STEP`` raise in ``on_train_batch_end``;
``DISTPROBE_HANG_RANK``/``_HANG_STEP`` sleep there for 20 s (a stalled, not dead, peer).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from typing import Any

import torch

import trainhooks


def _env(name: str, default: int = -1) -> int:
    return int(os.environ.get(name, default))


def _write(trainer: Any, event: str, **data: Any) -> None:
    path = os.path.join(os.environ["DISTPROBE_DIR"], f"rank{trainer.rank}.jsonl")
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"event": event, "rank": trainer.rank, **data}) + "\n")


@trainhooks.hookimpl
def on_train_start(trainer: Any) -> None:
    _write(
        trainer,
        "start",
        world_size=trainer.world_size,
        local_rank=trainer.local_rank,
        is_global_zero=trainer.is_global_zero,
        model=type(trainer.model).__name__,
        unwrapped=type(trainer.unwrapped_model).__name__,
        num_train_batches=trainer.num_train_batches,
        num_val_batches=trainer.num_val_batches,
        save_dir=str(trainer.save_dir),
        device=str(trainer.device),
    )


@trainhooks.hookimpl(rank_zero_only=True)
def on_train_epoch_end(trainer: Any) -> None:
    _write(trainer, "rank_zero_only", epoch=trainer.epoch)


@trainhooks.hookimpl
def on_val_end(trainer: Any) -> None:
    trainer.log_metric("probe/rank", float(trainer.rank))  # differs per rank until reduced


@trainhooks.hookimpl
def on_fit_epoch_end(trainer: Any) -> None:
    _write(trainer, "epoch", epoch=trainer.epoch, step=trainer.global_step, metrics=dict(trainer.metrics))


@trainhooks.hookimpl
def on_model_save(trainer: Any, path: Any) -> None:
    _write(trainer, "saved", path=str(path))


@trainhooks.hookimpl
def on_train_batch_end(trainer: Any) -> None:
    step = trainer.global_step
    if trainer.rank == _env("DISTPROBE_FAIL_RANK") and step == _env("DISTPROBE_FAIL_STEP"):
        raise RuntimeError(f"probe failure on rank {trainer.rank} at step {step}")
    if trainer.rank == _env("DISTPROBE_HANG_RANK") and step == _env("DISTPROBE_HANG_STEP"):
        time.sleep(20)  # longer than the test's dist_timeout, shorter than torchrun's kill grace


@trainhooks.hookimpl
def should_stop(trainer: Any) -> str | None:
    if trainer.rank == _env("DISTPROBE_STOP_RANK") and trainer.global_step == _env("DISTPROBE_STOP_STEP"):
        return f"probe asked to stop on rank {trainer.rank} at step {trainer.global_step}"
    return None


@trainhooks.hookimpl
def on_train_end(trainer: Any) -> None:
    flat = torch.cat([p.detach().flatten().cpu() for p in trainer.unwrapped_model.parameters()])
    _write(
        trainer,
        "end",
        step=trainer.global_step,
        epochs=len(trainer.history),
        stop_reason=trainer.stop_reason,
        stopped_by=trainer.stopped_by,
        history=trainer.history,
        artifacts=sorted(trainer.artifacts),
        params=hashlib.sha256(flat.numpy().tobytes()).hexdigest(),
    )
