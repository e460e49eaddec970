"""``trainhooks export``: export saved weights (torchscript, onnx, or a plugin's format)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from trainhooks.cli.runs import _make_trainer, resolve_weights
from trainhooks.plugin_manager import PluginManager


def _cmd_export(args: argparse.Namespace, plugin_manager: PluginManager, plugin_options: dict[str, Any]) -> int:
    # An unknown format is an error before the task (data, model) is loaded.
    formats = sorted({fmt for found in plugin_manager.hook.export_formats(trainer=None) for fmt in (found or ())})
    if args.format not in formats:
        from trainhooks.errors import ExportFormatError

        raise ExportFormatError(args.format, formats)
    resolve_weights(args)
    if args.save_dir is None:  # export writes into the weights' run, not into a new runs/exportN
        from trainhooks.manifest import run_dir_of

        args.save_dir = run_dir_of(args.weights) or Path(args.weights).parent
        if args.output is None:
            args.output = Path(args.weights).with_name(f"{Path(args.weights).stem}.{args.format}")
    trainer, task = _make_trainer(args, plugin_manager, plugin_options, training=False)
    if args.output is None:  # it goes to save_dir/weights/: one line now rather than the exporter's traceback
        trainer._ensure_save_dir()
    if trainer.example_input is None:
        # A task without example_input: trace with the first batch of its own data.
        for data in (task.predict_data, task.val_data, task.train_data):
            if data is not None:
                trainer._capture_example(next(iter(data), None))
                if trainer.example_input is not None:
                    break
    if trainer.example_input is None:
        from trainhooks.errors import TaskError

        raise TaskError(
            f"export needs an example input to trace the model: the task {args.task!r} has none and no data "
            "to take one from; return Task(..., example_input=a_batch_of_inputs) from it"
        )
    path = trainer.export(args.format, args.output)
    print(f"exported {args.format} model to {path}")
    return 0
