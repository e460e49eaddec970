"""What a metric value may be, and the dict that enforces it where it is written.

One rule for ``trainer.log_metric(name, value)`` and for writes straight into
``trainer.metrics``: a metric is a real number (``int``, ``float``, a NumPy scalar) or a
one-element tensor. Anything else (``"1e3"``, ``"hello"``, ``None``, ``True``, a list) is a
:class:`~trainhooks.ConfigError` at the moment it is written, so the error names the plugin that
wrote it (through the hook it was written from) instead of surfacing in whichever plugin reads
the value last (the ``plot`` at the end of a run). A string is never converted, even one that
reads as a number: it is a bug in the writer more often than a number.

``NaN`` and ``inf`` are numbers (a diverging loss is a measurement; ``nan_guard`` reads it), so
they are accepted, but ``log_metric`` warns once per metric naming the plugin that logged it:
a non-finite value silently breaks every monitor that compares against it.
"""

from __future__ import annotations

import math
import numbers
import sys
import warnings
from typing import TYPE_CHECKING, Any

from trainhooks.errors import ConfigError

if TYPE_CHECKING:
    from trainhooks.plugin_manager import PluginManager


def refuse(name: str, value: Any) -> ConfigError:
    """The error for a value that is not a metric."""
    shown = repr(value)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    hint = ""
    if isinstance(value, str):
        hint = "; a string is never read as a number: convert it where it is produced (float(text))"
    elif isinstance(value, bool):
        hint = "; log 1.0 or 0.0 for a flag"
    return ConfigError(
        f"metric {name!r} must be a number (int, float or a one-element tensor), got {type(value).__name__} {shown}"
        f"{hint}"
    )


def is_number(value: Any) -> bool:
    """``int``/``float``/NumPy scalars, not ``bool``."""
    if type(value) is float:  # the usual case, without the ABC check
        return True
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_number(name: str, value: Any) -> float:
    """``float(value)``, or :func:`refuse`'s error."""
    if not is_number(value):
        raise refuse(name, value)
    return float(value)


class MetricDict(dict):  # type: ignore[type-arg]
    """``trainer.metrics``: a plain dict (copies, JSON, ``==``) that refuses non-numbers on write."""

    def __setitem__(self, key: str, value: Any) -> None:
        if not is_number(value):
            raise refuse(key, value)
        super().__setitem__(key, value)

    def update(self, *args: Any, **kwargs: Any) -> None:
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def setdefault(self, key: str, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return self[key]

    def __ior__(self, other: Any) -> MetricDict:  # type: ignore[override,misc]
        self.update(other)
        return self


def as_metric_dict(values: Any) -> MetricDict:
    """A :class:`MetricDict` of ``values`` (a mapping), checking each value."""
    out = MetricDict()
    out.update(values)
    return out


def warn_non_finite(
    name: str,
    value: float,
    plugin_manager: PluginManager | None,
    warned: set[str],
    *,
    plugin: str | None = None,
    stacklevel: int = 4,
) -> None:
    """Warn once per metric name that a NaN/inf was logged, naming the plugin that logged it
    (``plugin``, or found on the call stack through ``plugin_manager``)."""
    if math.isfinite(value) or name in warned:
        return
    warned.add(name)
    who = plugin or (logging_plugin(plugin_manager) if plugin_manager is not None else None)
    by = f" logged by plugin {who!r}" if who else ""
    warnings.warn(
        f"metric {name!r}{by} is {value}: monitors comparing it (early stopping, best.pt) cannot rank it",
        RuntimeWarning,
        stacklevel=stacklevel,
    )


def logging_plugin(plugin_manager: PluginManager) -> str | None:
    """The plugin whose hook implementation is on the call stack (the innermost one), if any.

    Walks the stack once; only used on the rare warning path.
    """
    codes: dict[Any, str] = {}
    for hook_name in plugin_manager.spec_names:
        for impl in getattr(plugin_manager.hook, hook_name).get_hookimpls():
            code = getattr(impl.function, "__code__", None)
            if code is not None:
                codes[code] = impl.plugin_name
    frame = sys._getframe(1)
    while frame is not None:
        name = codes.get(frame.f_code)
        if name is not None:
            return name
        frame = frame.f_back  # type: ignore[assignment]
    return None
