"""Hooks of ``Trainer.predict``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .markers import hookspec

if TYPE_CHECKING:
    from trainhooks.trainer import Trainer


@hookspec
def on_predict_start(trainer: Trainer) -> None:
    """Fires when ``Trainer.predict`` starts; the model is in eval mode, gradients off.

    :param trainer: the trainer.

    Return value: ignored.
    """


@hookspec
def on_predict_batch_start(trainer: Trainer, batch: Any, batch_idx: int) -> None:
    """Fires for every prediction batch, before its forward pass.

    :param trainer: the trainer.
    :param batch: the batch, on the trainer's device.
    :param batch_idx: index of the batch.

    Return value: ignored.
    """


@hookspec
def on_predict_postprocess_end(trainer: Trainer, batch: Any, batch_idx: int, outputs: Any) -> None:
    """Fires for every prediction batch once its outputs are computed (the model's forward, or its
    ``predict_step``), before they are collected: Ultralytics' ``on_predict_postprocess_end``.

    :param trainer: the trainer.
    :param batch: the batch, on the trainer's device.
    :param batch_idx: index of the batch (0-based).
    :param outputs: the batch's outputs, as they will be collected.

    Return value: ignored.
    """


@hookspec
def on_predict_batch_end(trainer: Trainer, batch: Any, batch_idx: int, outputs: Any) -> None:
    """Fires after every prediction batch.

    :param trainer: the trainer.
    :param batch: the batch.
    :param batch_idx: index of the batch.
    :param outputs: the model's predictions for the batch.

    Return value: ignored.
    """


@hookspec
def on_predict_end(trainer: Trainer) -> None:
    """Fires after the last prediction batch, before ``predict`` returns.

    :param trainer: the trainer.

    Return value: ignored.
    """
