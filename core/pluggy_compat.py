"""The one place that touches pluggy's private names.

trainhooks needs a little more from pluggy than its public API gives: the argument names pluggy
will pass to an implementation (``varnames``), the implementation list a hook caller runs in
place (to give it trainhooks' documented order), whether tracing replaced the default executor
(the dispatcher's fast path must then step aside), the executor itself (firstresult hooks with
wrappers), and the name -> plugin table (blocked names are kept there as None).

Keeping these here means a pluggy release that renames one breaks one small module, which the
dispatch-equivalence tests exercise against the oldest and the newest pluggy that
``pyproject.toml`` allows (``pluggy>=1.5,<2``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy
from pluggy._callers import _multicall
from pluggy._hooks import varnames as _varnames

PLUGGY_VERSION: str = getattr(pluggy, "__version__", "unknown")


def varnames(func: Any) -> tuple[str, ...]:
    """The argument names pluggy passes to ``func`` (no ``self``, none with a default)."""
    return tuple(_varnames(func)[0])


def defaulted_argnames(func: Any) -> tuple[str, ...]:
    """Argument names of ``func`` that have a default value: pluggy never passes them."""
    return tuple(_varnames(func)[1])


def impl_list(caller: pluggy.HookCaller) -> list[pluggy.HookImpl]:
    """The list the caller runs (from the end backwards, wrappers after plain implementations);
    sorting it in place reorders the calls."""
    impls: list[pluggy.HookImpl] = caller._hookimpls
    return impls


def is_traced(manager: pluggy.PluginManager) -> bool:
    """True when ``add_hookcall_monitoring``/``enable_tracing`` replaced pluggy's executor."""
    return manager._inner_hookexec is not _multicall


def hookexec(manager: pluggy.PluginManager) -> Callable[..., Any]:
    """pluggy's executor: ``hookexec(name, impls, kwargs, firstresult)``, tracing included."""
    run: Callable[..., Any] = manager._hookexec
    return run


def name_table(manager: pluggy.PluginManager) -> dict[str, Any]:
    """Registration name -> plugin (None for a blocked name), in registration order."""
    table: dict[str, Any] = manager._name2plugin
    return table
