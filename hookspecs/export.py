"""Export hooks: lifecycle events and the providers of export formats."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .markers import hookspec

if TYPE_CHECKING:
    import torch

    from trainhooks.trainer import Trainer


@hookspec
def on_export_start(trainer: Trainer, format: str) -> None:
    """Fires when ``Trainer.export`` starts, before the provider runs.

    :param trainer: the trainer.
    :param format: the requested format name, e.g. ``"torchscript"``.

    Return value: ignored.
    """


@hookspec
def on_export_end(trainer: Trainer, format: str, path: Path) -> None:
    """Fires after the provider has written the exported file.

    :param trainer: the trainer.
    :param format: the format name.
    :param path: the file written.

    Return value: ignored.
    """


@hookspec
def export_formats(trainer: Trainer) -> list[str] | None:
    """Name the export formats this plugin provides.

    Used to list the formats that exist (``trainhooks export --help``, and the error for an
    unknown format).

    :param trainer: the trainer.

    Return value: a list of format names (or None); the results of all plugins are combined.
    """


@hookspec(firstresult=True)
def export_model(trainer: Trainer, model: torch.nn.Module, format: str, path: Path) -> Path | None:
    """Write ``model`` to ``path`` in ``format``, if this plugin provides that format.

    firstresult: stops at the first non-None result. Return ``None`` for formats you do not
    provide.

    :param trainer: the trainer (``trainer.example_input`` is a batch of inputs for tracing).
    :param model: the model to export, in eval mode, on the CPU.
    :param format: the requested format name.
    :param path: where to write the file (the caller's choice, or ``save_dir/weights/model.<ext>``).

    Return value: the path written (normally ``path``), or ``None`` to decline.
    """
