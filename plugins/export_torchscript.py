"""Export provider ``torchscript``: traces the model with ``torch.jit.trace``.

``trainhooks export --format torchscript`` (or ``trainer.export("torchscript")``) writes
``save_dir/weights/model.torchscript``; load it with ``torch.jit.load`` — no Python class needed.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import trainhooks

if TYPE_CHECKING:
    import torch

FORMAT = "torchscript"


@trainhooks.hookimpl
def export_formats() -> list[str]:
    return [FORMAT]


@trainhooks.hookimpl
def export_model(trainer: trainhooks.Trainer, model: torch.nn.Module, format: str, path: Path) -> Path | None:
    if format != FORMAT:
        return None
    import torch

    example = trainer.example_input
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", category=DeprecationWarning)
        traced = torch.jit.trace(model, example)
        traced.save(str(path))
    return Path(path)
