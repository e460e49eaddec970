"""Checkpoint hooks: plugin state travels with the model."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from .markers import hookspec

if TYPE_CHECKING:
    from trainhooks.trainer import Trainer


@hookspec
def on_save_checkpoint(trainer: Trainer, checkpoint: dict[str, Any]) -> None:
    """Fires when a checkpoint dict has been built, before it is written.

    Add what you need to restore later; keep values to tensors, numbers, strings, lists and
    dicts so the file loads with ``torch.load(weights_only=True)``. (A plugin object with
    ``state_dict()``/``load_state_dict()`` methods gets its state saved under
    ``checkpoint["plugins"][name]`` without implementing this hook.)

    :param trainer: the trainer.
    :param checkpoint: the dict about to be saved; mutate it in place.

    Return value: ignored.
    """


@hookspec
def on_load_checkpoint(trainer: Trainer, checkpoint: dict[str, Any]) -> None:
    """Fires when a checkpoint is restored (``fit(resume=...)``), after model and optimizer.

    :param trainer: the trainer.
    :param checkpoint: the loaded dict, as ``on_save_checkpoint`` left it.

    Return value: ignored.
    """


@hookspec
def on_model_save(trainer: Trainer, path: Path) -> None:
    """Fires after a checkpoint file has been written completely (atomically) to ``path``.

    :param trainer: the trainer.
    :param path: the checkpoint file just written.

    Return value: ignored.
    """
