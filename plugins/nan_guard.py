"""``nan_guard``: stop at the batch where the training loss becomes NaN or infinite.

Default on. The reason names the value, the global step, the epoch and the batch. Reading a
loss value synchronises with the device, so on GPUs you may check every N steps instead
(``--nan-check-every N``): losses are kept on the device and checked together, and the first
bad step is still reported exactly (training stops at the check). On the CPU the check costs
about a microsecond per step.

``--nan-raise-error`` (``raise_error=True``, Keras' ``TerminateOnNaN(raise_error=True)``) raises
:class:`NonFiniteLossError` instead: the run fails (``on_exception`` fires, ``on_train_end``
does not, the command exits 1) rather than ending as a clean stop.
"""

from __future__ import annotations

import math
from typing import Any

import trainhooks
from trainhooks import Option


class NonFiniteLossError(trainhooks.TrainhooksError, FloatingPointError):
    """The training loss became NaN or infinite and ``raise_error`` is on."""


class NaNGuard(trainhooks.Callback):
    """Stop training on a non-finite loss."""

    check_every = Option(int, 1, "check the loss every N steps (1: every step)", min=1, flag="nan-check-every")
    raise_error = Option(
        bool, False, "raise NonFiniteLossError instead of stopping cleanly (Keras' raise_error)", flag="nan-raise-error"
    )

    reason: str | None = None
    urgent_stop = True
    """``min_epochs``/``min_steps`` never defer this stop: training on NaN weights cannot help."""

    def on_fit_start(self, trainer: trainhooks.Trainer) -> None:
        self.pending: list[tuple[Any, int, int, int]] = []
        self.reason = None

    def _watch(self, trainer: trainhooks.Trainer, batch_idx: int, outputs: dict[str, Any]) -> None:
        loss = outputs["loss"]
        if self.check_every == 1:
            value = float(loss.item())
            if not math.isfinite(value):
                self.reason = self._describe(value, trainer.global_step, trainer.epoch, batch_idx)
            return
        self.pending.append((loss, trainer.global_step, trainer.epoch, batch_idx))
        last = trainer.num_train_batches is not None and batch_idx + 1 == trainer.num_train_batches
        if len(self.pending) >= self.check_every or last:
            self._check_pending()

    def _check_pending(self) -> None:
        import torch

        losses = torch.stack([p[0] for p in self.pending])
        finite = torch.isfinite(losses)
        if not bool(finite.all().item()):
            i = int((~finite).nonzero()[0].item())
            loss, step, epoch, batch_idx = self.pending[i]
            self.reason = self._describe(float(loss.item()), step, epoch, batch_idx)
        self.pending.clear()

    @staticmethod
    def _describe(value: float, step: int, epoch: int, batch_idx: int) -> str:
        return f"loss became {value} at step {step} (epoch {epoch + 1}, batch {batch_idx + 1})"

    def on_train_batch_end(self, trainer: trainhooks.Trainer, batch_idx: int, outputs: dict[str, Any]) -> None:
        self._watch(trainer, batch_idx, outputs)
        if self.reason is not None and self.raise_error:
            # Keras' TerminateOnNaN(raise_error=True): fail the run (on_exception fires, the
            # command exits 1) instead of a clean stop that runs on_train_end.
            raise NonFiniteLossError(self.reason)

    def should_stop(self, trainer: trainhooks.Trainer) -> str | None:
        return self.reason
