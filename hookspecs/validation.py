"""Hooks of the validation loop (inside ``fit`` each epoch, and ``Trainer.validate``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .markers import hookspec

if TYPE_CHECKING:
    from trainhooks.trainer import Trainer


@hookspec
def on_val_start(trainer: Trainer) -> None:
    """Fires before the first validation batch; the model is in eval mode, gradients off.

    :param trainer: the trainer; ``trainer.stage`` is ``"fit"`` inside ``fit`` and
        ``"validate"`` for a standalone ``Trainer.validate``.

    Return value: ignored.
    """


@hookspec
def on_val_batch_start(trainer: Trainer, batch: Any, batch_idx: int) -> None:
    """Fires for every validation batch, before its forward pass.

    :param trainer: the trainer.
    :param batch: the batch, on the trainer's device.
    :param batch_idx: index of the batch within this validation run.

    Return value: ignored.
    """


@hookspec
def on_val_batch_end(trainer: Trainer, batch: Any, batch_idx: int, outputs: dict[str, Any]) -> None:
    """Fires after every validation batch.

    :param trainer: the trainer.
    :param batch: the batch.
    :param batch_idx: index of the batch within this validation run.
    :param outputs: ``{"loss": tensor, "preds": model outputs, ...}`` for the batch.

    Return value: ignored.
    """


@hookspec
def on_val_end(trainer: Trainer) -> None:
    """Fires after validation (its last batch): the val/* metrics are in trainer.metrics.

    :param trainer: the trainer; ``trainer.metrics`` now holds ``val/loss`` (and ``val/acc`` for
        classification, plus any ``val/<name>`` the model's ``validation_step`` returned).

    Return value: ignored.
    """
