"""The steps: what one batch does in training, validation and prediction.

Each builder is called once per loop (not per batch) and returns a plain function the loop
calls per batch:

* training: the model's own ``training_step(batch)`` (called through the strategy, so DDP
  syncs its gradients), or the default ``loss_fn(model(x), y)``; under mixed precision
  wrapped in autocast (see :mod:`trainhooks.amp`);
* backward and optimizer step: plain ``loss.backward()`` / ``optimizer.step()``, or the
  GradScaler's versions under float16;
* validation: the model's ``validation_step(batch)``, or the default loss (and accuracy for
  class logits);
* prediction: the model's ``predict_step(batch)``, or ``model(inputs)``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from trainhooks.batches import model_inputs, split_pair
from trainhooks.errors import ConfigError

if TYPE_CHECKING:
    from trainhooks.trainer import Trainer

TrainStep = Callable[[Any], dict[str, Any]]


def training_step(trainer: Trainer) -> TrainStep:
    """``step(batch) -> {"loss": tensor, ...}`` for this fit (custom or default, AMP applied)."""
    step = _custom_training_step(trainer) or _default_training_step(trainer)
    if trainer._amp is not None:  # mixed precision: autocast, GradScaler for float16
        step = trainer._amp.wrap_step(step)
    return step


def _custom_training_step(trainer: Trainer) -> TrainStep | None:
    custom = getattr(trainer.unwrapped_model, "training_step", None)
    if custom is None:
        return None
    custom = trainer.strategy.through_wrapper(custom)
    owner = type(trainer.unwrapped_model).__name__

    def custom_step(batch: Any) -> dict[str, Any]:
        out = custom(batch)
        if isinstance(out, torch.Tensor):
            return {"loss": out}
        if isinstance(out, Mapping) and "loss" in out:
            return dict(out)
        raise ConfigError(
            f"{owner}.training_step must return the loss tensor or a dict with a 'loss' key, got {type(out).__name__}"
        )

    return custom_step


def _default_training_step(trainer: Trainer) -> TrainStep:
    model, loss_fn = trainer.model, trainer.loss_fn
    if loss_fn is None:
        raise ConfigError("Trainer needs loss_fn=..., or a model with a training_step(batch) method")

    def default_step(batch: Any) -> dict[str, Any]:
        x, y = split_pair(batch)
        preds = model(x)
        return {"loss": loss_fn(preds, y), "preds": preds}

    return default_step


def backward_and_step(trainer: Trainer) -> tuple[Callable[[torch.Tensor], None], Callable[[], Any]]:
    """``(backward(loss), optimizer_step())`` for this fit (the GradScaler's under float16)."""
    if trainer._amp is not None:
        return trainer._amp.bind(trainer.optimizer)
    return torch.Tensor.backward, trainer.optimizer.step


ValStep = Callable[[Any, int], tuple[dict[str, Any], dict[str, Any]]]


def validation_step(trainer: Trainer, model: nn.Module) -> ValStep:
    """``step(batch, n) -> (outputs, values)``: the hook's outputs and the values to average."""
    custom = getattr(trainer.unwrapped_model, "validation_step", None)
    owner = type(trainer.unwrapped_model).__name__
    loss_fn = trainer.loss_fn
    if custom is not None:

        def custom_step(batch: Any, n: int) -> tuple[dict[str, Any], dict[str, Any]]:
            outputs = as_metric_dict(custom(batch), owner)
            return outputs, {k: v for k, v in outputs.items() if k != "preds"}

        return custom_step

    def default_step(batch: Any, n: int) -> tuple[dict[str, Any], dict[str, Any]]:
        x, y = split_pair(batch)
        preds = model(x)
        outputs: dict[str, Any] = {"preds": preds}
        values: dict[str, Any] = {}
        if loss_fn is not None:
            outputs["loss"] = values["loss"] = loss_fn(preds, y)
        if preds.dim() == 2 and preds.shape[0] == n and y.dim() == 1 and not y.is_floating_point():
            values["acc"] = (preds.argmax(dim=1) == y).float().mean()
        return outputs, values

    return default_step


def predict_step(trainer: Trainer, model: nn.Module) -> Callable[[Any], Any]:
    """``step(batch) -> predictions``: the model's ``predict_step`` or ``model(inputs)``."""
    custom = getattr(trainer.unwrapped_model, "predict_step", None)
    if custom is not None:
        return custom  # type: ignore[no-any-return]
    return lambda batch: model(model_inputs(batch))


def as_metric_dict(out: Any, owner: str) -> dict[str, Any]:
    """A ``validation_step`` result as a dict of metric tensors."""
    if isinstance(out, torch.Tensor):
        return {"loss": out}
    if isinstance(out, Mapping):
        return dict(out)
    raise ConfigError(
        f"{owner}.validation_step must return a tensor or a dict of metric tensors, got {type(out).__name__}"
    )


__all__ = ["as_metric_dict", "backward_and_step", "predict_step", "training_step", "validation_step"]
