"""A plugin for the torchrun tests: records what each rank sees, misbehaves on request.

Enabled with ``-p distprobe`` (tests/ on PYTHONPATH). Each rank appends JSON lines to
``$DISTPROBE_DIR/rank<N>.jsonl``. ``DISTPROBE_STOP_RANK``/``_STOP_STEP`` make ``should_stop`` ask
once, on that rank only; ``DISTPROBE_FAIL_RANK``/``_FAIL_STEP`` raise in ``on_train_batch_end``;
``DISTPROBE_HANG_RANK``/``_HANG_STEP`` sleep there for 20 s (a stalled, not dead, peer).
``DISTPROBE_BLOCK_RANK``/``_BLOCK_STEP`` block there, after writing ``blocked<RANK>``, until the
test creates ``$DISTPROBE_DIR/release`` (so the other rank waits inside the stop agreement at a
moment the test knows); a SIGTERM, SIGINT or SIGUSR1 that reaches the blocked rank meanwhile is
passed on to the Trainer's handler and then noted in ``signalled<RANK>``. At that step every other
rank writes ``agreeing<RANK>`` (its pid) from ``should_stop``, right before the stop agreement. ``DISTPROBE_BREAK=forward|backward-oom|sigkill`` with
``DISTPROBE_BREAK_RANK``/``_BREAK_STEP`` makes that rank's training step fail outside any hook:
the model's forward raises, backward raises ``torch.OutOfMemoryError``, or the process SIGKILLs
itself in forward. ``DISTPROBE_WARN=1`` warns once per rank at the start.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import time
import warnings
from collections.abc import Iterator
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
    if os.environ.get("DISTPROBE_WARN"):
        warnings.warn("probe warning, the same on every rank", UserWarning, stacklevel=1)
    _write(
        trainer,
        "start",
        pid=os.getpid(),
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
    if trainer.rank == _env("DISTPROBE_BLOCK_RANK") and step == _env("DISTPROBE_BLOCK_STEP"):
        folder = os.environ["DISTPROBE_DIR"]
        with open(os.path.join(folder, f"blocked{trainer.rank}"), "w", encoding="utf-8") as fh:
            fh.write(str(os.getpid()))
        release = os.path.join(folder, "release")
        deadline = time.monotonic() + _env("DISTPROBE_BLOCK_MAX", 120)
        with _noting_signals(os.path.join(folder, f"signalled{trainer.rank}")):
            while not os.path.exists(release) and time.monotonic() < deadline:
                time.sleep(0.05)


@contextlib.contextmanager
def _noting_signals(marker: str) -> Iterator[None]:
    """While blocked: each stop signal goes to the handler installed before (the Trainer's), then
    its name is written to ``marker``, so the test knows this rank has recorded it."""
    installed: dict[signal.Signals, tuple[Any, Any]] = {}

    def noting(signum: int, frame: Any) -> None:
        previous = installed[signal.Signals(signum)][1]
        previous(signum, frame)
        with open(marker, "a", encoding="utf-8") as fh:
            fh.write(signal.Signals(signum).name + "\n")

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1):
        previous = signal.getsignal(sig)
        if callable(previous):
            installed[sig] = (noting, previous)
            signal.signal(sig, noting)
    try:
        yield
    finally:
        for sig, (mine, previous) in installed.items():
            if signal.getsignal(sig) is mine:  # the Trainer's handler may have replaced itself meanwhile
                signal.signal(sig, previous)


def _fail_in_forward(module: Any, args: Any) -> None:
    raise RuntimeError("probe failure in the model's forward")


def _kill_in_forward(module: Any, args: Any) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _oom_in_backward(grad: torch.Tensor) -> None:
    raise torch.OutOfMemoryError("probe: CUDA out of memory. Tried to allocate 20.00 GiB")


@trainhooks.hookimpl
def on_train_batch_start(trainer: Any) -> None:
    mode = os.environ.get("DISTPROBE_BREAK")
    if not mode or trainer.rank != _env("DISTPROBE_BREAK_RANK") or trainer.global_step != _env("DISTPROBE_BREAK_STEP"):
        return
    if mode == "forward":
        trainer.unwrapped_model.register_forward_pre_hook(_fail_in_forward)
    elif mode == "sigkill":
        trainer.unwrapped_model.register_forward_pre_hook(_kill_in_forward)


@trainhooks.hookimpl
def on_before_backward(trainer: Any, loss: torch.Tensor) -> None:
    if (
        os.environ.get("DISTPROBE_BREAK") == "backward-oom"
        and trainer.rank == _env("DISTPROBE_BREAK_RANK")
        and trainer.global_step == _env("DISTPROBE_BREAK_STEP")
    ):
        loss.register_hook(_oom_in_backward)


@trainhooks.hookimpl
def on_exception(trainer: Any, exception: BaseException) -> None:
    _write(trainer, "exception", type=type(exception).__name__, message=str(exception), step=trainer.global_step)


@trainhooks.hookimpl
def teardown(trainer: Any, stage: str) -> None:
    _write(trainer, "teardown", stage=stage)


@trainhooks.hookimpl
def should_stop(trainer: Any) -> str | None:
    if trainer.global_step == _env("DISTPROBE_BLOCK_STEP") and trainer.rank != _env("DISTPROBE_BLOCK_RANK"):
        with open(os.path.join(os.environ["DISTPROBE_DIR"], f"agreeing{trainer.rank}"), "w", encoding="utf-8") as fh:
            fh.write(str(os.getpid()))
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
