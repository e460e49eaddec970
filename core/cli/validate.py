"""``trainhooks validate``: evaluate saved weights on the task's validation data."""

from __future__ import annotations

import argparse
from typing import Any

from trainhooks.cli.runs import _make_trainer
from trainhooks.plugin_manager import PluginManager


def _cmd_validate(args: argparse.Namespace, plugin_manager: PluginManager, plugin_options: dict[str, Any]) -> int:
    trainer, task = _make_trainer(args, plugin_manager, plugin_options, training=False)
    if task.val_data is None:
        from trainhooks.errors import TaskError

        raise TaskError(f"task {task.name!r} has no val_data to validate on")
    metrics = trainer.validate(task.val_data)
    print("  ".join(f"{k} {v:.4f}" for k, v in metrics.items()) or "no metrics")
    return 0
