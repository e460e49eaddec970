"""``trainhooks.hookspecs``: the contract between the engine and every plugin.

Each hook is a pluggy hookspec with a docstring saying when it fires, what each argument is,
and what a return value means. Implement any subset of a hook's arguments, by name::

    import trainhooks

    @trainhooks.hookimpl
    def on_fit_epoch_end(trainer):
        print(trainer.epoch, trainer.metrics["val/loss"])

This package imports nothing of the engine (and torch only for type checkers), so listing
hooks and plugins stays fast.
"""

from __future__ import annotations

from types import ModuleType

from . import checkpoint, config, export, fit, prediction, validation
from .markers import ENTRY_POINT_GROUP, PROJECT_NAME, HookimplMarker, hookimpl, hookspec

SPEC_MODULES: tuple[ModuleType, ...] = (config, fit, validation, prediction, export, checkpoint)
"""Every module holding hookspecs, in the order the reference documents them."""

__all__ = [
    "ENTRY_POINT_GROUP",
    "PROJECT_NAME",
    "SPEC_MODULES",
    "HookimplMarker",
    "hook_names",
    "hookimpl",
    "hookspec",
]


def hook_names() -> list[str]:
    """Names of all hookspecs, in documentation order."""
    names: list[str] = []
    for module in SPEC_MODULES:
        for name, value in vars(module).items():
            if callable(value) and hasattr(value, PROJECT_NAME + "_spec"):
                names.append(name)
    return names
