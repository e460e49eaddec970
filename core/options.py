"""Plugin-declared options: one table for ``trainhooks fit --help`` and ``Trainer(options=...)``.

Each plugin's ``add_options(parser)`` hook receives an :class:`OptionGroup` titled with the
plugin's name. The resulting :class:`OptionTable` feeds argparse (CLI) and validates API
dictionaries (unknown keys are errors with suggestions; an option of a plugin that is
installed but not enabled says which ``-p`` to add).
"""

from __future__ import annotations

import argparse
import inspect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from trainhooks.errors import ConfigError, PluginError, did_you_mean

if TYPE_CHECKING:
    from trainhooks.host import PluginHost

#: Option names trainhooks' own command line uses: a plugin may not declare them.
CORE_OPTIONS = frozenset(
    {
        "task",
        "epochs",
        "batch_size",
        "lr",
        "seed",
        "save_dir",
        "device",
        "plugin",
        "quiet",
        "name",
        "resume",
        "profile_hooks",
        "non_critical",
        "help",
        "weights",
        "format",
        "output",
        "json",
        "loop",
        "precision",
        "dist_timeout",
        "dist_sync_every",
        "stop_timeout",
        "preempt_signal",
        "overwrite",
    }
)

_ARGPARSE_KEYS = {"type", "default", "help", "choices", "action", "metavar", "nargs", "dest", "required"}


@dataclass
class OptionSpec:
    """One declared option."""

    plugin: str
    flags: tuple[str, ...]
    dest: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def default(self) -> Any:
        return self.kwargs.get("default", False if self.kwargs.get("action") == "store_true" else None)


class OptionGroup:
    """What a plugin's ``add_options`` hook receives: ``parser.add_option("--patience", ...)``."""

    def __init__(self, plugin: str, table: OptionTable) -> None:
        self.plugin = plugin
        self._table = table

    @property
    def name(self) -> str:
        """The plugin this group belongs to."""
        return self.plugin

    def add_option(self, *flags: str, **kwargs: Any) -> None:
        """Declare an option, with argparse's keyword arguments.

        :param flags: one or more long flags (``"--patience"``); short flags are reserved for
            trainhooks itself.
        :param kwargs: ``type``, ``default``, ``help``, ``choices``, ``action``, ``metavar``,
            ``nargs``, ``dest``.
        """
        if not flags or not all(f.startswith("--") and len(f) > 2 for f in flags):
            raise PluginError(
                f"plugin {self.plugin!r}: options need long flags like '--my-option', got {flags!r}",
                plugin=self.plugin,
            )
        unknown = set(kwargs) - _ARGPARSE_KEYS
        if unknown:
            raise PluginError(
                f"plugin {self.plugin!r}: unsupported add_option argument(s) {sorted(unknown)} for {flags[0]}",
                plugin=self.plugin,
            )
        dest = kwargs.pop("dest", None) or flags[0][2:].replace("-", "_")
        self._table.add(OptionSpec(self.plugin, tuple(flags), dest, kwargs))

    addoption = add_option  # pytest spelling


class OptionTable:
    """Every option every loaded plugin declared, by destination name."""

    def __init__(self, reserved: Iterable[str] = ()) -> None:
        self.specs: dict[str, OptionSpec] = {}
        self._flags: dict[str, OptionSpec] = {}
        self._reserved = set(reserved)
        self.active_plugins: set[str] = set()

    def add(self, spec: OptionSpec) -> None:
        for flag in spec.flags:
            if flag in self._reserved or spec.dest in self._reserved:
                raise PluginError(
                    f"plugin {spec.plugin!r} declares {flag}, which trainhooks itself uses; rename it",
                    plugin=spec.plugin,
                )
            other = self._flags.get(flag) or self.specs.get(spec.dest)
            if other is not None:
                raise PluginError(
                    f"option {flag} is declared by both plugin {other.plugin!r} and plugin {spec.plugin!r}",
                    plugin=spec.plugin,
                )
        self.specs[spec.dest] = spec
        for flag in spec.flags:
            self._flags[flag] = spec

    def defaults(self) -> dict[str, Any]:
        return {dest: spec.default for dest, spec in self.specs.items()}

    def add_to_argparse(self, parser: argparse.ArgumentParser) -> None:
        """One argument group per plugin; values absent from the namespace unless given."""
        by_plugin: dict[str, list[OptionSpec]] = {}
        for spec in self.specs.values():
            by_plugin.setdefault(spec.plugin, []).append(spec)
        for plugin, specs in by_plugin.items():
            state = "" if plugin in self.active_plugins else f" (opt-in: -p {plugin})"
            group = parser.add_argument_group(f"plugin {plugin}{state}")
            for spec in specs:
                kwargs = dict(spec.kwargs)
                default = kwargs.pop("default", None)
                text = kwargs.pop("help", "") or ""
                if default is not None and kwargs.get("action") not in ("store_true", "store_false"):
                    text = f"{text} (default: {default})".strip()
                group.add_argument(*spec.flags, dest=spec.dest, default=argparse.SUPPRESS, help=text, **kwargs)

    def resolve(self, given: Mapping[str, Any] | None) -> dict[str, Any]:
        """Defaults overlaid with ``given``; rejects unknown keys and options of inactive plugins."""
        values = self.defaults()
        for key, value in (given or {}).items():
            dest = key.lstrip("-").replace("-", "_")
            spec = self.specs.get(dest)
            if spec is None:
                raise ConfigError(
                    f"unknown option {key!r}{did_you_mean(dest, self.specs)}; "
                    f"known options: {', '.join(sorted(self.specs)) or 'none'}"
                )
            if spec.plugin not in self.active_plugins:
                raise ConfigError(
                    f"option {key!r} belongs to plugin {spec.plugin!r}, which is not enabled; "
                    f"enable it with -p {spec.plugin} (API: plugins=[{spec.plugin!r}])"
                )
            values[dest] = _coerce(spec, value)
        return values


def _coerce(spec: OptionSpec, value: Any) -> Any:
    """API values pass through argparse's ``type`` when they are strings (as on the CLI)."""
    kind = spec.kwargs.get("type")
    if isinstance(value, str) and callable(kind) and kind is not str:
        try:
            value = kind(value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"option {spec.flags[0]} (plugin {spec.plugin!r}): bad value {value!r}: {exc}") from None
    choices = spec.kwargs.get("choices")
    if choices is not None and value not in choices:
        raise ConfigError(f"option {spec.flags[0]} (plugin {spec.plugin!r}): {value!r} is not one of {list(choices)}")
    return value


def collect_options(host: PluginHost, reserved: Iterable[str] = ()) -> OptionTable:
    """Ask every loaded plugin, active or opt-in, for its options (each plugin once per host)."""
    table = OptionTable(reserved)
    for name, rec in host.records.items():
        if rec.plugin is None or rec.status not in ("active", "available"):
            continue
        if rec.status == "active":
            table.active_plugins.add(name)
        if rec.options is None:
            rec.options = _ask_plugin(host, name, rec.plugin, active=rec.status == "active")
        for spec in rec.options:
            table.add(spec)
    return table


def check_options(host: PluginHost, reserved: Iterable[str] = ()) -> None:
    """Like :func:`collect_options`, but a plugin whose options fail (``add_options`` raises, a
    flag clashes with trainhooks' own or another plugin's) is marked ``error`` in
    ``host.records`` instead of raising: ``trainhooks plugins`` shows what ``fit`` would reject."""
    table = OptionTable(reserved)
    for name, rec in host.records.items():
        if rec.plugin is None or rec.status not in ("active", "available"):
            continue
        try:
            if rec.options is None:
                rec.options = _ask_plugin(host, name, rec.plugin, active=rec.status == "active")
            for spec in rec.options:
                table.add(spec)
        except PluginError as exc:
            rec.status, rec.reason = "error", f"{exc} (trainhooks fit would stop here)"


def _ask_plugin(host: PluginHost, name: str, plugin: Any, *, active: bool) -> list[OptionSpec]:
    impl = host.impl_for("add_options", plugin) if active else None
    fn = impl.function if impl is not None else _unregistered_add_options(host, plugin)
    own = OptionTable()
    if fn is not None:
        try:
            fn(OptionGroup(name, own))
        except PluginError:
            raise
        except Exception as exc:
            raise PluginError(
                f"plugin {name!r} failed in hook 'add_options': {type(exc).__name__}: {exc}", plugin=name
            ) from exc
    return list(own.specs.values())


def _unregistered_add_options(host: PluginHost, plugin: Any) -> Any:
    """``add_options`` of an opt-in plugin that is loaded but not registered."""
    from trainhooks.callbacks import Callback, is_callback_stub

    fn = getattr(plugin, "add_options", None)
    if fn is None or not inspect.isroutine(fn):
        return None
    if hasattr(fn, host.project_name + "_impl"):
        return fn
    if isinstance(plugin, Callback) and not is_callback_stub(plugin, "add_options"):
        return fn
    return None
