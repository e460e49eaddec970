"""Export provider ``onnx``: ``trainhooks export --format onnx`` / ``trainer.export("onnx")``.

Needs the ``onnx`` extra (``pip install "trainhooks[onnx]"``: onnx, onnxscript, onnxruntime).
The batch dimension is exported as dynamic, so the file accepts any batch size. The file is
checked with ``onnx.checker`` after writing.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import trainhooks

if TYPE_CHECKING:
    import torch

FORMAT = "onnx"


@trainhooks.hookimpl
def export_formats() -> list[str]:
    return [FORMAT]


@trainhooks.hookimpl
def export_model(trainer: trainhooks.Trainer, model: torch.nn.Module, format: str, path: Path) -> Path | None:
    if format != FORMAT:
        return None
    try:
        import onnx
    except ImportError as exc:
        raise trainhooks.ConfigError('ONNX export needs the onnx extra: pip install "trainhooks[onnx]"') from exc
    import torch

    example = trainer.example_input
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(
                model,
                (example,),
                str(path),
                input_names=["input"],
                output_names=["output"],
                dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
                dynamo=False,
            )
        except Exception:  # the TorchScript-based exporter is gone or failed: use torch.export
            batch = torch.export.Dim("batch")
            torch.onnx.export(model, (example,), str(path), dynamic_shapes=({0: batch},), dynamo=True, verbose=False)
    onnx.checker.check_model(str(path))
    return Path(path)
