"""How many processes train, behind one interface the loops always call.

The loops never ask "am I distributed?". They call the strategy at fixed points (before the
first epoch, at each epoch start and end, after each batch's stop check, after validation), and
the strategy decides what that means:

* :class:`SingleProcess` (one process): the data as given, local means, answers as they are.
  Every method is a few attribute reads, so the single-process loop pays (almost) nothing.
* :class:`DataParallel` (torchrun, or a process group the caller made): DDP wrapper, sharded
  loaders, means over every rank's samples, stop answers and signals agreed by all ranks, one
  clear :class:`~trainhooks.DistributedError` instead of a hang. The machinery lives in
  :mod:`trainhooks.distributed`; this class is its face to the loops (composition, as in
  Lightning's Strategy).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from trainhooks import distributed
from trainhooks.errors import TrainhooksError

if TYPE_CHECKING:
    from trainhooks.stopping import StopAnswer
    from trainhooks.trainer import Trainer


def local_train_loss(losses: list[torch.Tensor], sizes: list[int]) -> float | None:
    """The size-weighted mean of an epoch's per-batch losses (one device sync), or None."""
    if not losses:
        return None
    if losses[0].device.type == "cpu":  # one conversion, then plain floats: a third of the tensor ops' time
        total = sum(value * n for value, n in zip(torch.stack(losses).tolist(), sizes))
        return float(total / sum(sizes))
    weights = torch.tensor(sizes, dtype=torch.float32, device=losses[0].device)
    return float(((torch.stack(losses).float() * weights).sum() / weights.sum()).item())


class SingleProcess:
    """One process: every call is a no-op or a local computation."""

    is_distributed = False
    run: distributed.DistributedRun | None = None

    def prepare(self, train_data: Any, val_data: Any) -> tuple[Any, Any]:
        """The (train, val) data to iterate: as given."""
        return train_data, val_data

    def set_epoch(self, epoch: int) -> None:
        """A new epoch starts (sharded samplers reshuffle here)."""

    def through_wrapper(self, method: Callable[..., Any]) -> Callable[..., Any]:
        """A method of the model (``training_step``) as the step must call it."""
        return method

    def eval_model(self, trainer: Trainer) -> nn.Module:
        """The module validation runs (never through a wrapper that syncs)."""
        return trainer.model

    def no_sync(self, model: nn.Module) -> contextlib.AbstractContextManager[None]:
        """Context for a micro-batch that does not step the optimizer (accumulation)."""
        return contextlib.nullcontext()

    def finish_train_epoch(self, trainer: Trainer, losses: list[torch.Tensor], sizes: list[int]) -> None:
        """Put the epoch's ``train/loss`` into the metrics."""
        loss = local_train_loss(losses, sizes)
        if loss is not None:
            trainer.metrics["train/loss"] = loss

    def reduce_validation(self, totals: dict[str, float], count: int) -> dict[str, float]:
        """Validation means from this process's (sums, sample count)."""
        return {k: v / count for k, v in totals.items()} if count else {}

    def sync_metrics(self, metrics: dict[str, float]) -> None:
        """Make the epoch's metrics the same everywhere (here: they are)."""

    def agree_stop(
        self, answer: StopAnswer | None, batch_idx: int | None = None, interrupt: str | None = None
    ) -> tuple[StopAnswer | None, str | None]:
        """The stop answer and interrupt every process acts on: here, this process's own."""
        return answer, interrupt

    def agree(self, obj: Any, what: str) -> Any:
        """``obj`` as the deciding process (rank 0) has it: here, ``obj``."""
        return obj

    def broadcast_tensors(self, tensors: list[torch.Tensor], what: str) -> None:
        """Overwrite ``tensors`` in place with the deciding process's (rank 0): here, nothing to do.

        For state a plugin keeps per rank that must be the same everywhere (the EMA of
        BatchNorm statistics, which differ per rank between DDP's buffer broadcasts).
        """

    def step_failure(self, exc: BaseException) -> BaseException:
        """The error to raise for a failure in the training step: here, the failure itself."""
        return exc

    def announce_failure(self, exc: BaseException) -> None:
        """Tell the other processes who failed: nobody to tell."""

    def close(self, failed: bool) -> None:
        """End of fit."""


class DataParallel(SingleProcess):
    """torchrun / a caller's process group: DDP, sharded data, agreed decisions (see module doc)."""

    is_distributed = True

    def __init__(self, run: distributed.DistributedRun) -> None:
        self.run = run
        self.dist = run  # the same, typed as present

    def prepare(self, train_data: Any, val_data: Any) -> tuple[Any, Any]:
        return self.dist.prepare(train_data, val_data)

    def set_epoch(self, epoch: int) -> None:
        self.dist.set_epoch(epoch)

    def through_wrapper(self, method: Callable[..., Any]) -> Callable[..., Any]:
        return self.dist.through_wrapper(method)  # via DDP, or gradients won't sync

    def eval_model(self, trainer: Trainer) -> nn.Module:
        return trainer.unwrapped_model  # no DDP forward, so no collective per batch

    def no_sync(self, model: nn.Module) -> contextlib.AbstractContextManager[None]:
        sync_off = getattr(model, "no_sync", None)
        return sync_off() if callable(sync_off) else contextlib.nullcontext()

    def finish_train_epoch(self, trainer: Trainer, losses: list[torch.Tensor], sizes: list[int]) -> None:
        super().finish_train_epoch(trainer, losses, sizes)
        self.dist.end_train_epoch(losses, sizes)  # the mean over every rank's samples

    def reduce_validation(self, totals: dict[str, float], count: int) -> dict[str, float]:
        return self.dist.reduce_validation(totals, count)

    def sync_metrics(self, metrics: dict[str, float]) -> None:
        self.dist.sync_metrics(metrics)

    def agree_stop(
        self, answer: StopAnswer | None, batch_idx: int | None = None, interrupt: str | None = None
    ) -> tuple[StopAnswer | None, str | None]:
        # The local record is only submitted, never overwritten: a signal that lands while this
        # rank waits inside the agreement is carried to the next one.
        agreed = self.dist.agree_stop(answer, batch_idx, interrupt=interrupt)
        return agreed, self.dist.interrupt

    def agree(self, obj: Any, what: str) -> Any:
        return self.dist.broadcast(obj, what)

    def broadcast_tensors(self, tensors: list[torch.Tensor], what: str) -> None:
        if not tensors:
            return
        import torch.distributed as dist

        with self.dist.collective(what), torch.no_grad():
            for tensor in tensors:
                dist.broadcast(tensor, src=0)

    def step_failure(self, exc: BaseException) -> BaseException:
        if isinstance(exc, TrainhooksError):
            return exc
        # forward/backward/optimizer failures (a bug, out of memory) and DDP's gradient
        # all-reduce failing because a peer died become one clear error naming the rank.
        return self.dist.step_failure(exc)

    def announce_failure(self, exc: BaseException) -> None:
        self.dist.announce_failure(exc)

    def close(self, failed: bool) -> None:
        self.dist.close(failed)  # unwrap the model, end our process group


SINGLE_PROCESS = SingleProcess()


def start(trainer: Trainer) -> SingleProcess:
    """The strategy of one ``fit``: :class:`DataParallel` under a process group, else single-process."""
    run = distributed.start(trainer)
    return DataParallel(run) if run is not None else SINGLE_PROCESS


__all__ = ["SINGLE_PROCESS", "DataParallel", "SingleProcess", "local_train_loss", "start"]
