"""trainhooks: a PyTorch training engine whose every lifecycle event is a pluggy hook.

Public API::

    import trainhooks

    @trainhooks.hookimpl
    def on_fit_epoch_end(trainer): ...          # a pluggy-style plugin function

    class MyCallback(trainhooks.Callback):      # a Keras/Ultralytics-style callback
        patience = trainhooks.Option(int, 3, "a setting: argument, --patience flag, options key")

        def on_fit_start(self, trainer): ...     # per-run state starts afresh here
        def on_train_epoch_end(self, trainer): ...

    trainer = trainhooks.Trainer(model, loss_fn=..., optimizer=..., callbacks=[MyCallback()])
    trainer.fit(train_loader, val_loader)

``import trainhooks`` is cheap (no torch): the Trainer and tasks load on first use.
"""

from __future__ import annotations

from importlib import metadata as _metadata
from typing import TYPE_CHECKING, Any

from trainhooks.callbacks import BaseCallback, Callback, LambdaCallback
from trainhooks.errors import (
    CheckpointError,
    ConfigError,
    DistributedError,
    DuplicatePluginError,
    ExportFormatError,
    HookArgumentError,
    HookError,
    NothingUsableError,
    PluginError,
    PluginLoadError,
    PluginValidationError,
    TaskError,
    TrainhooksError,
    UnknownHookError,
    UnknownKeywordError,
    UnknownPluginError,
)
from trainhooks.hookspecs.markers import ENTRY_POINT_GROUP, PROJECT_NAME, hookimpl, hookspec
from trainhooks.monitor import Monitor
from trainhooks.options import Option
from trainhooks.tracking import TrackerSink, run_params

if TYPE_CHECKING:
    from trainhooks.plugin_manager import PluginManager
    from trainhooks.tasks import Task, digits_task
    from trainhooks.trainer import FitResult, Trainer, seed_everything

try:
    __version__ = _metadata.version("trainhooks")
except _metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

_LAZY = {
    "Trainer": "trainhooks.trainer",
    "FitResult": "trainhooks.trainer",
    "seed_everything": "trainhooks.trainer",
    "Task": "trainhooks.tasks",
    "digits_task": "trainhooks.tasks",
    "PluginManager": "trainhooks.plugin_manager",
}


def __getattr__(name: str) -> Any:
    if name == "PluginHost":  # the deprecated name of PluginManager: warns on each use, never cached
        from trainhooks import plugin_manager

        return plugin_manager.PluginHost
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'trainhooks' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "ENTRY_POINT_GROUP",
    "PROJECT_NAME",
    "BaseCallback",
    "Callback",
    "CheckpointError",
    "ConfigError",
    "DistributedError",
    "DuplicatePluginError",
    "ExportFormatError",
    "FitResult",
    "HookArgumentError",
    "HookError",
    "LambdaCallback",
    "Monitor",
    "NothingUsableError",
    "Option",
    "PluginError",
    "PluginManager",
    "PluginLoadError",
    "PluginValidationError",
    "Task",
    "TaskError",
    "TrackerSink",
    "Trainer",
    "TrainhooksError",
    "UnknownHookError",
    "UnknownKeywordError",
    "UnknownPluginError",
    "__version__",
    "digits_task",
    "hookimpl",
    "hookspec",
    "run_params",
    "seed_everything",
]
