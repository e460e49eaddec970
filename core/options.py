"""Plugin settings: declared once, they feed ``trainhooks fit --help``, ``Trainer(options=...)``
and the plugin's constructor.

* :class:`Option` is the declaration (``patience = trainhooks.Option(int, 5, "...", min=0)`` in
  a :class:`~trainhooks.Callback` subclass): one line gives the constructor argument, the flag,
  the options key and the checked attribute.
* The older ``add_options(parser)`` hook still works: it receives an :class:`OptionGroup`
  titled with the plugin's name and declares argparse-style options.

Both end in one :class:`OptionTable`, which feeds argparse (CLI) and validates API dictionaries
(unknown keys are errors with suggestions; an option of a plugin that is installed but not
enabled says which ``-p`` to add). Several instances of one plugin class share their class's
flags and keys: a value given there is the default of every instance, and each instance's own
constructor values win.
"""

from __future__ import annotations

import argparse
import inspect
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainhooks.errors import ConfigError, PluginError, did_you_mean

if TYPE_CHECKING:
    from trainhooks.plugin_manager import PluginManager


def core_option_names() -> frozenset[str]:
    """Option names plugins may not declare: every flag of the run commands (``fit``,
    ``validate``, ``predict``, ``export``) as the parser defines it, so a new core flag is
    reserved the moment it exists, plus ``help`` and the listing commands' ``json``/``loop``."""
    from trainhooks.cli.args import RUN_COMMANDS, build_parser

    parser = build_parser()
    names = {"help", "json", "loop"}
    for action in parser._actions:  # argparse keeps subparsers as an action with choices
        for command, sub in (getattr(action, "choices", None) or {}).items():
            if command in RUN_COMMANDS:
                names.update(a.dest for a in sub._actions)
    return frozenset(names)


def __getattr__(name: str) -> Any:
    if name == "CORE_OPTIONS":  # computed on first use: building the parser is not free
        value = core_option_names()
        globals()["CORE_OPTIONS"] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_ARGPARSE_KEYS = {"type", "default", "help", "choices", "action", "metavar", "nargs", "dest", "required"}


@dataclass
class OptionSpec:
    """One declared option."""

    plugin: str
    flags: tuple[str, ...]
    dest: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    option: Option | None = None
    """The :class:`Option` declaration it comes from (None for ``add_options`` options)."""
    owner: Any = None
    """The plugin class (or module) that declared it: instances of one class share their options."""

    @property
    def default(self) -> Any:
        return self.kwargs.get("default", False if self.kwargs.get("action") == "store_true" else None)


class OptionGroup:
    """What a plugin's ``add_options`` hook receives: ``parser.add_option("--patience", ...)``."""

    def __init__(self, plugin: str, table: OptionTable, owner: Any = None) -> None:
        self.plugin = plugin
        self._table = table
        self._owner = owner

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
        self._table.add(OptionSpec(self.plugin, tuple(flags), dest, kwargs, owner=self._owner))

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
            if other is not None and _same_declaration(other, spec):
                return  # another instance of the same plugin class: its options are shared
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
                    text = f"{text} (default: {_shown(default)})".strip()
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


def _same_declaration(a: OptionSpec, b: OptionSpec) -> bool:
    """Two instances of one class declare the same options: one table entry serves both."""
    if a.owner is None or a.owner is not b.owner:
        return False
    if a.option is not None or b.option is not None:
        return a.option is b.option
    return a.flags == b.flags and a.dest == b.dest and repr(a.kwargs) == repr(b.kwargs)


def _coerce(spec: OptionSpec, value: Any) -> Any:
    """API values are checked by their declaration; ``add_options`` values pass through
    argparse's ``type`` when they are strings (as on the CLI)."""
    if spec.option is not None:
        return spec.option.check(value, plugin=spec.plugin)
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


def collect_options(plugin_manager: PluginManager, reserved: Iterable[str] = ()) -> OptionTable:
    """Ask every loaded plugin, active or opt-in, for its options (each plugin once per plugin manager)."""
    table = OptionTable(reserved)
    for name, rec in plugin_manager.records.items():
        if rec.plugin is None or rec.status not in ("active", "available"):
            continue
        if rec.status == "active":
            table.active_plugins.add(name)
        if rec.options is None:
            rec.options = _ask_plugin(plugin_manager, name, rec.plugin, active=rec.status == "active")
        for spec in rec.options:
            table.add(spec)
    return table


def check_options(plugin_manager: PluginManager, reserved: Iterable[str] = ()) -> None:
    """Like :func:`collect_options`, but a plugin whose options fail (``add_options`` raises, a
    flag clashes with trainhooks' own or another plugin's) is marked ``error`` in
    ``plugin_manager.records`` instead of raising: ``trainhooks plugins`` shows what ``fit`` would reject."""
    table = OptionTable(reserved)
    for name, rec in plugin_manager.records.items():
        if rec.plugin is None or rec.status not in ("active", "available"):
            continue
        try:
            if rec.options is None:
                rec.options = _ask_plugin(plugin_manager, name, rec.plugin, active=rec.status == "active")
            for spec in rec.options:
                table.add(spec)
        except PluginError as exc:
            rec.status, rec.reason = "error", f"{exc} (trainhooks fit would stop here)"


def _ask_plugin(plugin_manager: PluginManager, name: str, plugin: Any, *, active: bool) -> list[OptionSpec]:
    impl = plugin_manager.impl_for("add_options", plugin) if active else None
    fn = impl.function if impl is not None else _unregistered_add_options(plugin_manager, plugin)
    own = OptionTable()
    owner: Any = plugin if inspect.ismodule(plugin) else type(plugin)
    for option in declared_options(type(plugin)).values() if not inspect.ismodule(plugin) else ():
        own.add(option.spec(name, owner))
    if fn is not None:
        try:
            call_add_options(fn, OptionGroup(name, own, owner))
        except PluginError:
            raise
        except Exception as exc:
            raise PluginError(
                f"plugin {name!r} failed in hook 'add_options': {type(exc).__name__}: {exc}", plugin=name
            ) from exc
    return list(own.specs.values())


def call_add_options(fn: Any, group: OptionGroup) -> Any:
    """Call an ``add_options`` implementation with what it asks for: like every hook, it takes
    any subset of its arguments (``parser``), so ``lambda: None``, ``def add_options(self)``
    and ``functools.partial`` objects work."""
    try:
        params = [
            p
            for p in inspect.signature(fn).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.default is p.empty
        ]
        var = any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return fn(group)
    if not params:
        return fn(group) if var else fn()
    if params[0].kind is params[0].KEYWORD_ONLY:
        return fn(**{params[0].name: group})
    return fn(group)


def apply_options(plugin_manager: PluginManager, values: Mapping[str, Any]) -> None:
    """Bind the resolved option values to every registered plugin's declared settings."""
    for _name, plugin in plugin_manager.list_name_plugin():
        if plugin is not None and not inspect.ismodule(plugin):
            bind_options(plugin, values)


def _unregistered_add_options(plugin_manager: PluginManager, plugin: Any) -> Any:
    """``add_options`` of an opt-in plugin that is loaded but not registered."""
    from trainhooks.callbacks import Callback, is_callback_stub

    fn = getattr(plugin, "add_options", None)
    if fn is None or not inspect.isroutine(fn):
        return None
    if hasattr(fn, plugin_manager.project_name + "_impl"):
        return fn
    if isinstance(plugin, Callback) and not is_callback_stub(plugin, "add_options"):
        return fn
    return None


# ---------------------------------------------------------------------- declared settings
_MISSING: Any = object()
_TYPE_WORDS = {int: "an integer", float: "a number", str: "a string", bool: "true or false", Path: "a path"}


class Option:
    """One plugin setting, declared once, as a class attribute of a :class:`~trainhooks.Callback`::

        class EarlyStopping(trainhooks.Callback):
            patience = trainhooks.Option(int, 5, "epochs without improvement before stopping", min=0)
            monitor = trainhooks.Option(str, "val/loss", "metric to watch", flag="es-monitor")

    That one line gives, for the setting named after the attribute (``patience``):

    * the constructor argument ``EarlyStopping(patience=3)`` (checked right there);
    * the ``trainhooks fit --help`` flag ``--patience`` (``flag=`` renames it: flags are
      shared by every installed plugin, so generic names get a prefix, ``--es-monitor``);
    * the ``Trainer(options={"patience": 3})`` key: the flag with ``_`` for ``-``;
    * the attribute ``self.patience``: the constructor's value if one was given, else the
      trainer's option value (CLI flag or ``options=``), else the default.

    Values are checked where they enter, with one error naming plugin, setting and value:
    an ``int`` setting refuses ``0.15`` and ``2.7`` (no silent truncation) and ``"batch"``;
    a ``Path`` setting refuses ``""``; ``choices`` and ``min``/``max`` bound the value. A
    setting whose default is ``None`` is optional (``None`` means "not set").

    :param type: ``int``, ``float``, ``str``, ``bool``, ``pathlib.Path``, or a converter
        ``value -> value`` that raises ``ValueError`` for bad input (e.g. a duration parser).
    :param default: the value when nothing is given.
    :param help: one line for ``--help``.
    :param choices: the allowed values.
    :param min: smallest allowed value (inclusive).
    :param max: largest allowed value (inclusive).
    :param flag: the command-line flag without ``--`` (default: the attribute name, ``_`` as ``-``).
        A ``bool`` setting gets ``--flag`` and ``--no-flag``.
    :param name: the setting's name (constructor argument, default flag); the attribute's
        name when omitted. Give it when the attribute must be called otherwise
        (``metric = Option(str, "val/loss", name="monitor")``: ``monitor=`` in the
        constructor, ``self.metric`` in the code, so ``self.monitor`` can hold a
        :class:`~trainhooks.Monitor`).
    """

    def __init__(
        self,
        type: Any = str,
        default: Any = None,
        help: str = "",
        *,
        choices: Sequence[Any] | None = None,
        min: float | None = None,
        max: float | None = None,
        flag: str | None = None,
        name: str | None = None,
    ) -> None:
        self.type = type
        self.help = help
        self.choices = tuple(choices) if choices is not None else None
        self.min = min
        self.max = max
        self._flag = flag.lstrip("-") if flag else None
        self.name: str = name or ""
        self.owner: type | None = None
        self.default = default
        if default is not None:
            self.default = self.check(default, plugin="(declaration)")

    # -- descriptor protocol: ``self.patience`` reads the value in force
    def __set_name__(self, owner: type, name: str) -> None:
        self.name = self.name or name
        self.owner = owner

    def __get__(self, obj: Any, objtype: Any = None) -> Any:
        if obj is None:
            return self
        given = obj.__dict__.get("_option_given", {})
        if self.name in given:
            return given[self.name]
        return obj.__dict__.get("_option_bound", {}).get(self.name, self.default)

    def __set__(self, obj: Any, value: Any) -> None:
        given = obj.__dict__.setdefault("_option_given", {})
        if value is None and self.default is not None:
            given.pop(self.name, None)  # None: back to the option value / default
            return
        given[self.name] = self.check(value, plugin=plugin_label(obj))

    @property
    def flag(self) -> str:
        """``--es-monitor``: the command-line flag."""
        return "--" + (self._flag or self.name.replace("_", "-"))

    @property
    def key(self) -> str:
        """``es_monitor``: the ``Trainer(options=...)`` key and ``trainer.options`` entry."""
        return self.flag[2:].replace("-", "_")

    def describe(self) -> str:
        """What is accepted, for error messages and ``--help``."""
        kind = _TYPE_WORDS.get(self.type) or getattr(self.type, "__doc__", None) or "a value"
        kind = kind.strip().splitlines()[0].rstrip(".") if kind else "a value"
        if self.choices is not None:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        if self.min is not None and self.max is not None:
            return f"{kind} from {self.min:g} to {self.max:g}"
        if self.min is not None:
            return f"{kind} >= {self.min:g}"
        if self.max is not None:
            return f"{kind} <= {self.max:g}"
        return kind

    def _bad(self, plugin: str, value: Any, why: str = "") -> ConfigError:
        setting = f"{self.name} ({self.flag})" if self.flag[2:] != self.name.replace("_", "-") else self.name
        return ConfigError(
            f"plugin {plugin!r}: setting {setting} must be {self.describe()}, got {value!r}"
            + (f": {why}" if why else "")
        )

    def check(self, value: Any, *, plugin: str) -> Any:
        """``value`` converted to the setting's type and checked; :class:`ConfigError` otherwise.

        Strings (from the command line, an environment, a config file) are parsed; other values
        must already have the right type: ``2.7`` for an ``int`` is refused, never truncated.
        """
        if value is None and self.default is None:
            return None
        kind = self.type
        if kind is bool:
            if isinstance(value, str) and value.strip().lower() in _BOOL_WORDS:
                value = _BOOL_WORDS[value.strip().lower()]
            if not isinstance(value, bool):
                raise self._bad(plugin, value)
        elif kind is int:
            if isinstance(value, str):
                try:
                    value = int(value.strip())
                except ValueError:
                    raise self._bad(plugin, value) from None
            elif isinstance(value, float) and value.is_integer():
                value = int(value)
            if isinstance(value, bool) or not isinstance(value, int):
                raise self._bad(plugin, value)
        elif kind is float:
            if isinstance(value, str):
                try:
                    value = float(value.strip())
                except ValueError:
                    raise self._bad(plugin, value) from None
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise self._bad(plugin, value)
            value = float(value)
        elif kind is str:
            if not isinstance(value, str):
                raise self._bad(plugin, value)
            if not value.strip():
                raise self._bad(plugin, value, "empty")
        elif kind is Path:
            if not isinstance(value, (str, os.PathLike)) or not str(os.fspath(value)).strip():
                raise self._bad(plugin, value, "an empty path would mean the working directory")
            value = Path(value)
        elif callable(kind):
            try:
                value = kind(value)
            except (TypeError, ValueError) as exc:
                raise self._bad(plugin, value, str(exc)) from None
        if self.choices is not None and value not in self.choices:
            raise self._bad(plugin, value)
        if self.min is not None and value < self.min:
            raise self._bad(plugin, value)
        if self.max is not None and value > self.max:
            raise self._bad(plugin, value)
        return value

    def declare(self, parser: OptionGroup) -> None:
        """Add this declaration to an ``add_options`` hook's group: how a plugin *module*
        (which has no class attributes) declares a setting once::

            EVERY = trainhooks.Option(int, 1, "report every N epochs", min=1, name="hello_every")

            @trainhooks.hookimpl
            def add_options(parser):
                EVERY.declare(parser)

        and reads it back with ``EVERY.value(trainer)``.
        """
        if not self.name:
            raise PluginError(f"plugin {parser.plugin!r}: a module-level Option needs name=", plugin=parser.plugin)
        parser._table.add(self.spec(parser.plugin, parser._owner))

    def value(self, trainer: Any) -> Any:
        """The value in force for ``trainer``: its option value (flag or ``options=``), else the default."""
        return trainer.options.get(self.key, self.default)

    def spec(self, plugin: str, owner: Any = None) -> OptionSpec:
        """The :class:`OptionSpec` this declaration contributes to the option table."""
        kwargs: dict[str, Any] = {"default": self.default, "help": self.help}
        if self.type is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = _ArgparseType(self, plugin)
            if self.choices is not None:
                kwargs["metavar"] = "{" + ",".join(str(c) for c in self.choices) + "}"
        return OptionSpec(plugin, (self.flag,), self.key, kwargs, option=self, owner=owner or self.owner)

    def __repr__(self) -> str:
        return f"Option({self.name!r}, {getattr(self.type, '__name__', self.type)}, default={self.default!r})"


_BOOL_WORDS = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}


class _ArgparseType:
    """argparse's ``type=``: the declaration's check, reported as argparse's own error."""

    def __init__(self, option: Option, plugin: str) -> None:
        self.option, self.plugin = option, plugin
        self.__name__ = getattr(option.type, "__name__", "value")

    def __call__(self, text: str) -> Any:
        try:
            return self.option.check(text, plugin=self.plugin)
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None


def declared_options(cls: type) -> dict[str, Option]:
    """The :class:`Option` declarations of ``cls`` and its bases, by setting name, bases first."""
    found: dict[str, Option] = {}
    for klass in reversed(cls.__mro__):
        for value in vars(klass).values():
            if isinstance(value, Option):
                found.pop(value.name, None)
                found[value.name] = value
    return found


def plugin_label(obj: Any) -> str:
    """How errors name a plugin object: its registered or given name, else its class."""
    name = obj.__dict__.get("_trainhooks_name") if hasattr(obj, "__dict__") else None
    return name or type(obj).__name__


def set_given(obj: Any, args: tuple[Any, ...], settings: dict[str, Any]) -> None:
    """Store constructor values for ``obj``'s declared settings (positional in declaration
    order, or by name), each checked; unknown names are an error with a suggestion."""
    options = declared_options(type(obj))
    label = plugin_label(obj)
    if len(args) > len(options):
        raise ConfigError(
            f"plugin {label!r} takes at most {len(options)} positional setting(s) "
            f"({', '.join(options) or 'none'}), got {len(args)}"
        )
    for option_name, value in zip(options, args):
        if option_name in settings:
            raise ConfigError(f"plugin {label!r}: setting {option_name} given twice")
        settings[option_name] = value
    for key, value in settings.items():
        option = options.get(key)
        if option is None:
            by_key = {o.key: n for n, o in options.items()}
            hint = f" (the constructor argument is {by_key[key]!r})" if key in by_key else did_you_mean(key, options)
            raise ConfigError(
                f"plugin {label!r} has no setting {key!r}{hint}; its settings: {', '.join(options) or 'none'}"
            )
        option.__set__(obj, value)


def bind_options(plugin: Any, values: Mapping[str, Any]) -> None:
    """Give ``plugin``'s declared settings the trainer's option values (constructor values win).

    Rebinding per trainer keeps one callback object usable with several trainers.
    """
    options = declared_options(type(plugin))
    if not options or not hasattr(plugin, "__dict__"):
        return
    plugin.__dict__["_option_bound"] = {n: values[o.key] for n, o in options.items() if o.key in values}


def option_values(plugin: Any) -> dict[str, Any]:
    """The value in force of every declared setting of ``plugin`` (for listings and tests)."""
    return {name: option.__get__(plugin) for name, option in declared_options(type(plugin)).items()}


def _shown(default: Any) -> str:
    """A default as typed on the command line: a set as ``a,b,c`` (sorted: a set's own order
    changes from one run to the next), a list or tuple comma-joined, anything else as ``str``."""
    if isinstance(default, (set, frozenset)):
        return ",".join(sorted(map(str, default))) or "none"
    if isinstance(default, (list, tuple)):
        return ",".join(map(str, default)) or "none"
    return str(default)
