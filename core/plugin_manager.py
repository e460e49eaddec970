"""The plugin manager: a ``pluggy.PluginManager`` subclass that discovers, validates and orders plugins.

One name everywhere: the class :class:`PluginManager` (``trainhooks.PluginManager``), this module
``trainhooks.plugin_manager``, and the trainer attribute ``trainer.plugin_manager``. The old names,
class ``PluginHost`` and module ``trainhooks.host``, still work and are deprecated.

What it adds to pluggy, and why:

* **Discovery with governance.** Entry points of group ``trainhooks`` are read with
  ``importlib.metadata``; each loads under its entry-point name, and the plugin manager remembers the
  distribution, version and file it came from (:class:`PluginRecord`). Built-in plugins are
  entry points of the ``trainhooks`` distribution itself and load the same way. ``-p NAME`` /
  ``-p no:NAME``, ``TRAINHOOKS_DISABLE_PLUGIN_AUTOLOAD`` and the ``TRAINHOOKS_PLUGINS`` allow-list
  decide what loads; one broken plugin never stops the others from being listed.
* **Validation before registration**, with suggestions: an implementation named after no hook
  (``on_epoch_end`` → "did you mean on_train_epoch_end / on_fit_epoch_end?") or asking for an
  argument its hook does not pass is rejected with an error naming plugin, hook and argument,
  and nothing is left half-registered.
* **Unmarked callbacks.** Objects passed as callbacks (Keras style) have every method named
  after a hook picked up without ``@hookimpl``.
* **Deliberate order.** pluggy calls implementations last-registered-first; users expect list
  order. The plugin manager keeps each hook's implementations so that they run tryfirst group, normal
  group, trylast group, each in registration order (wrappers likewise, outermost first).
"""

from __future__ import annotations

import importlib
import inspect
import itertools
import os
import sys
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import pluggy

from trainhooks import hookspecs
from trainhooks.callbacks import Callback, check_arguments, is_callback_stub, looks_like_a_hook
from trainhooks.errors import (
    DuplicatePluginError,
    PluginError,
    PluginLoadError,
    PluginValidationError,
    UnknownHookError,
    UnknownPluginError,
)
from trainhooks.pluggy_compat import impl_list, name_table
from trainhooks.vocabulary import CALLBACK_ALIASES

Source = Literal["builtin", "entrypoint", "module", "api", "callback"]
Status = Literal["active", "disabled", "available", "error", "not loaded"]

AUTOLOAD_ENV = "TRAINHOOKS_DISABLE_PLUGIN_AUTOLOAD"
ALLOWLIST_ENV = "TRAINHOOKS_PLUGINS"
OWN_DISTRIBUTION = "trainhooks"

# Methods a plugin object may define that are not hooks (checkpointed state, identity).
NON_HOOK_METHODS = frozenset({"state_dict", "load_state_dict"})


class PluginDisabledWarning(UserWarning):
    """A non-critical plugin failed and was disabled; training went on."""


@dataclass
class PluginRecord:
    """What the plugin manager knows about one plugin: where it came from and whether it runs."""

    name: str
    source: Source
    status: Status = "active"
    distribution: str | None = None
    version: str | None = None
    target: str | None = None
    """The entry point's ``module:attr`` (or the module path given to ``-p``)."""
    location: str | None = None
    """The file the plugin's code lives in."""
    reason: str | None = None
    """Why the plugin is not active (disabled, opt-in, error message)."""
    plugin: Any = field(default=None, repr=False, compare=False)
    hooks: list[str] = field(default_factory=list)
    options: list[Any] | None = field(default=None, repr=False, compare=False)
    """The options its ``add_options`` declared (asked once per plugin manager)."""

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready view (``trainhooks plugins --json``)."""
        return {
            "name": self.name,
            "source": self.source,
            "status": self.status,
            "distribution": self.distribution,
            "version": self.version,
            "target": self.target,
            "location": self.location,
            "reason": self.reason,
            "hooks": list(self.hooks),
        }


@dataclass(frozen=True)
class EntryPointSpec:
    """One discovered entry point of group ``trainhooks``."""

    name: str
    value: str
    distribution: str | None
    version: str | None
    entry_point: metadata.EntryPoint = field(compare=False, repr=False)

    @property
    def builtin(self) -> bool:
        return _normalize(self.distribution or "") == OWN_DISTRIBUTION


def _normalize(dist_name: str) -> str:
    return dist_name.lower().replace("_", "-").replace(".", "-")


def _origin_of(rec: PluginRecord) -> str:
    """``"DIST VERSION"`` for a third-party entry-point plugin, else ``""``."""
    if rec.source != "entrypoint" or not rec.distribution:
        return ""
    return f"{rec.distribution} {rec.version}" if rec.version else rec.distribution


def import_user_module(name: str) -> Any:
    """Import a module named on the command line (``-p my_plugin``, ``--task mytask:make``).

    Like ``python -m``, the current directory is searched too: a console script does not put
    it on ``sys.path``, and ``mytask.py`` next to the user is what they mean. It is searched
    last, so it never shadows an installed package.
    """
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        top = name.partition(".")[0]
        here = os.getcwd()
        if exc.name != top or here in sys.path or "" in sys.path or not _importable_here(here, top):
            raise
        sys.path.append(here)
        return importlib.import_module(name)


def _importable_here(directory: str, top: str) -> bool:
    return os.path.isfile(os.path.join(directory, f"{top}.py")) or os.path.isdir(os.path.join(directory, top))


def discover_entry_points() -> list[EntryPointSpec]:
    """Every ``trainhooks`` entry point installed, built-ins first, then by distribution and name.

    The same distribution seen twice on ``sys.path`` (an editable install beside a regular one)
    is reported once.
    """
    found: dict[tuple[str, str, str], EntryPointSpec] = {}
    for ep in metadata.entry_points(group=hookspecs.ENTRY_POINT_GROUP):
        dist = getattr(ep, "dist", None)
        dist_name = dist.metadata["Name"] if dist is not None else None
        version = dist.version if dist is not None else None
        key = (ep.name, ep.value, _normalize(dist_name or ""))
        found.setdefault(key, EntryPointSpec(ep.name, ep.value, dist_name, version, ep))
    specs = list(found.values())
    specs.sort(key=lambda s: (not s.builtin, _normalize(s.distribution or ""), s.name))
    return specs


def autoload_enabled() -> bool:
    """False when ``TRAINHOOKS_DISABLE_PLUGIN_AUTOLOAD`` is set to a true-ish value."""
    return os.environ.get(AUTOLOAD_ENV, "").strip().lower() in ("", "0", "false", "no", "off")


def allowlist_from_env() -> set[str] | None:
    """Names in ``TRAINHOOKS_PLUGINS`` (comma-separated), or None when unset."""
    raw = os.environ.get(ALLOWLIST_ENV)
    if raw is None or not raw.strip():
        return None
    return {part.strip() for part in raw.split(",") if part.strip()}


def _location(obj: Any) -> str | None:
    target = obj if inspect.ismodule(obj) or inspect.isclass(obj) or inspect.isfunction(obj) else type(obj)
    try:
        return inspect.getsourcefile(target) or inspect.getfile(target)
    except (TypeError, OSError):
        return None


@dataclass(frozen=True)
class Switches:
    """What decides which entry points load: ``-p``, ``-p no:``, the environment, ``defaults``."""

    enable: frozenset[str] = frozenset()
    disable: frozenset[str] = frozenset()
    autoload: bool = True
    defaults: bool = True
    allow: set[str] | frozenset[str] | None = None
    """``TRAINHOOKS_PLUGINS``: the only third-party plugins that may autoload (None: all)."""


@dataclass(frozen=True)
class Decision:
    """What to do with one entry point: ``load`` it, ``skip`` it (with the status and reason
    ``trainhooks plugins`` shows), or ``refuse`` it (an error: ``reason`` says why)."""

    action: Literal["load", "skip", "refuse"]
    status: Status = "active"
    reason: str = ""


def decide_one(spec: EntryPointSpec, switches: Switches) -> Decision:
    """The decision for one entry point, from its metadata and the switches alone."""
    name = spec.name
    if name in switches.disable:
        return Decision("skip", "disabled", f"disabled with -p no:{name}")
    wanted = name in switches.enable
    if not switches.defaults and not wanted:
        return Decision("skip", "not loaded", f"default plugins off; use -p {name}")
    if not spec.builtin and not wanted:
        if not switches.autoload:
            return Decision("skip", "not loaded", f"autoload off ({AUTOLOAD_ENV}); use -p {name}")
        if switches.allow is not None and name not in switches.allow:
            return Decision("skip", "not loaded", f"not in {ALLOWLIST_ENV}")
    return Decision("load")


def decide(specs: Sequence[EntryPointSpec], switches: Switches) -> list[Decision]:
    """One :class:`Decision` per entry point, in order; pure: nothing is imported.

    Two distributions declaring the same name are refused, both of them and before either is
    imported, when that name would load; when it would not (disabled, autoload off, not
    allowed), they are skipped like any other plugin and the run goes on.
    """
    decisions = [decide_one(spec, switches) for spec in specs]
    by_name: dict[str, list[int]] = {}
    for i, spec in enumerate(specs):
        by_name.setdefault(spec.name, []).append(i)
    for name, indices in by_name.items():
        if len(indices) < 2 or all(decisions[i].action != "load" for i in indices):
            continue
        dists = " and ".join(str(specs[i].distribution) for i in indices)
        reason = f"plugin name {name!r} is declared by both {dists}; uninstall one of them"
        for i in indices:
            decisions[i] = Decision("refuse", "error", reason)
    return decisions


def metadata_location(spec: EntryPointSpec) -> str | None:
    """The file an entry point's module lives in, from metadata and the file system only
    (nothing is imported): ``trainhooks plugins`` shows it for plugins it has not loaded."""
    module = spec.value.partition(":")[0].strip()
    if not module:
        return None
    parts = module.split(".")
    dist = getattr(spec.entry_point, "dist", None)
    wanted = {"/".join(parts) + ".py", "/".join([*parts, "__init__.py"])}
    for file in getattr(dist, "files", None) or ():
        if str(file).replace("\\", "/") in wanted:
            try:
                return str(dist.locate_file(file))  # type: ignore[union-attr]
            except Exception:  # pragma: no cover - odd metadata
                break
    try:  # an editable install: walk sys.path like the import system, without importing
        from importlib.machinery import PathFinder

        found = PathFinder.find_spec(parts[0])
        for part in parts[1:]:
            if found is None or not found.submodule_search_locations:
                return None
            found = PathFinder.find_spec(part, list(found.submodule_search_locations))
        return found.origin if found is not None and found.origin not in (None, "namespace") else None
    except (ImportError, ValueError):
        return None


def given_name(plugin: Any) -> str | None:
    """The ``name=`` a :class:`~trainhooks.Callback` was built with, if any."""
    return getattr(plugin, "__dict__", {}).get("_trainhooks_name") if not inspect.ismodule(plugin) else None


def _instantiate(obj: Any) -> Any:
    """Entry points may name a module, an instance, or a class (instantiated with no arguments)."""
    return obj() if inspect.isclass(obj) else obj


class PluginManager(pluggy.PluginManager):
    """The trainhooks plugin manager (``trainer.plugin_manager``). One per :class:`~trainhooks.Trainer`."""

    def __init__(self) -> None:
        super().__init__(hookspecs.PROJECT_NAME)
        for module in hookspecs.SPEC_MODULES:
            self.add_hookspecs(module)
        self.spec_names: tuple[str, ...] = tuple(hookspecs.hook_names())
        self.records: dict[str, PluginRecord] = {}
        self._seq = itertools.count()
        self._order: dict[str, int] = {}
        self._callback_style: set[int] = set()
        self._listeners: list[Callable[[], None]] = []
        self._loaded = False
        self._ep_modules: dict[str, str] | None = None
        self.non_critical: set[str] = set()
        """Plugins whose failures disable them instead of stopping the run (``--non-critical``)."""

    # ------------------------------------------------------------------ registration
    def register(  # type: ignore[override]
        self,
        plugin: Any,
        name: str | None = None,
        *,
        source: Source = "api",
        callback_style: bool | None = None,
        record: PluginRecord | None = None,
    ) -> str:
        """Validate and register ``plugin``; returns the name it is registered under.

        :param plugin: a module, or an object whose methods are hook implementations.
        :param name: registration name (unique). Defaults to the ``name=`` the object was built
            with (:class:`~trainhooks.Callback`), else the class or module name, made unique
            with a ``#2``-style suffix for repeated classes (``EarlyStopping``,
            ``EarlyStopping#2``). The name is the instance's key for its state in checkpoints:
            give instances explicit names when their order may change between runs.
        :param callback_style: pick up every method named after a hook, marked or not. Defaults
            to true for :class:`~trainhooks.Callback` instances.
        :raises UnknownHookError, HookArgumentError: the plugin does not fit the hookspecs;
            nothing is registered.
        :raises DuplicatePluginError: this object or this name is registered already.
        """
        if callback_style is None:
            callback_style = isinstance(plugin, Callback)
        if any(p is plugin for p in name_table(self).values()):
            raise DuplicatePluginError(
                f"plugin {self.get_name(plugin)!r} ({plugin!r}) is already registered; "
                "register each plugin object once",
                plugin=self.get_name(plugin),
            )
        name = name or given_name(plugin) or self._default_name(plugin)
        if name in name_table(self) and name_table(self)[name] is not None:
            raise DuplicatePluginError(
                f"a plugin named {name!r} is already registered ({name_table(self)[name]!r}); "
                "choose another name or disable the existing one",
                plugin=name,
            )
        if self.is_blocked(name):
            raise DuplicatePluginError(f"plugin {name!r} is disabled ('-p no:{name}')", plugin=name)
        if callback_style:
            self._callback_style.add(id(plugin))
        try:
            self._validate(plugin, name, callback_style)
            self._order[name] = next(self._seq)
            registered = super().register(plugin, name)
        except BaseException:
            self._callback_style.discard(id(plugin))
            self._order.pop(name, None)
            raise
        assert registered == name
        for caller in self.get_hookcallers(plugin) or ():
            self._reorder(caller)
        rec = record or PluginRecord(name=name, source=source, target=None)
        rec.name = name
        rec.status = "active"
        rec.plugin = plugin
        rec.location = rec.location or _location(plugin)
        rec.hooks = self.plugin_hooks(name)
        self.records[name] = rec
        self._changed()
        return name

    def unregister(self, plugin: Any = None, name: str | None = None) -> Any:
        """Unregister a plugin (by object or name); its record stays, marked ``disabled``."""
        removed = super().unregister(plugin=plugin, name=name)
        if removed is not None:
            self._callback_style.discard(id(removed))
            for rec in self.records.values():
                if rec.plugin is removed:
                    rec.status = "disabled"
                    rec.reason = rec.reason or "unregistered"
            self._changed()
        return removed

    def _default_name(self, plugin: Any) -> str:
        if inspect.ismodule(plugin):
            # An installed plugin module registered by hand (Trainer(plugins=[module]), the
            # tester) gets its entry-point name, as when it is loaded from the entry point:
            # stopped_by, state keys and -p no:NAME then read the same either way.
            listed = self._entry_point_modules().get(plugin.__name__)
            if listed is not None and listed not in name_table(self) and not self.is_blocked(listed):
                return listed
        base = plugin.__name__ if inspect.ismodule(plugin) else type(plugin).__name__
        name, n = base, 1
        while name in name_table(self):
            n += 1
            name = f"{base}#{n}"
        return name

    def _entry_point_modules(self) -> dict[str, str]:
        """{module: entry-point name} for installed entry points that name a whole module."""
        if self._ep_modules is None:
            found: dict[str, str] = {}
            for spec in discover_entry_points():
                if ":" not in spec.value:
                    found.setdefault(spec.value.strip(), spec.name)
            self._ep_modules = found
        return self._ep_modules

    def parse_hookimpl_opts(self, plugin: Any, name: str) -> Any:
        """pluggy's marker lookup, plus unmarked hook-named methods of callback objects."""
        opts: Any = super().parse_hookimpl_opts(plugin, name)
        if (
            opts is None
            and id(plugin) in self._callback_style
            and (name in self.spec_names or name in CALLBACK_ALIASES)
        ):
            method = getattr(plugin, name, None)
            if inspect.isroutine(method) or (callable(method) and name in getattr(plugin, "__dict__", {})):
                if not is_callback_stub(plugin, name):
                    # The seed's vocabulary on callback objects: on_epoch_end is on_fit_epoch_end.
                    opts = {"specname": CALLBACK_ALIASES[name]} if name in CALLBACK_ALIASES else {}
        if opts is not None and getattr(plugin, "rank_zero_only", False) is True:
            opts = dict(opts)
            opts["rank_zero_only"] = True
        return opts

    def _validate(self, plugin: Any, name: str, callback_style: bool) -> None:
        """Reject unknown hooks and unknown arguments before pluggy mutates any state."""
        for attr in dir(plugin):
            if attr.startswith("__"):
                continue
            try:
                opts = self.parse_hookimpl_opts(plugin, attr)
            except Exception:  # a property raising on access: not a hook
                continue
            where = self._where(plugin, attr)
            if opts is None:
                self._check_unmarked(plugin, name, attr, callback_style, where)
                continue
            hook_name = opts.get("specname") or attr
            caller = getattr(self.hook, hook_name, None)
            if caller is None or caller.spec is None:
                if opts.get("optionalhook"):
                    continue
                raise UnknownHookError(hook_name, plugin=name, known=self.spec_names, where=where)
            function = getattr(plugin, attr)
            check_arguments(function, plugin=name, hook=hook_name, allowed=caller.spec.argnames, where=where)

    def _check_unmarked(self, plugin: Any, name: str, attr: str, callback_style: bool, where: str) -> None:
        if attr.startswith("_") or attr in NON_HOOK_METHODS:
            return
        try:
            value = getattr(plugin, attr)
        except Exception:
            return
        if not inspect.isroutine(value):
            return
        if inspect.ismodule(plugin) and getattr(value, "__module__", None) != plugin.__name__:
            return  # imported helper, not the plugin's own function
        if callback_style:
            if not is_callback_stub(plugin, attr) and looks_like_a_hook(attr, self.spec_names):
                raise UnknownHookError(attr, plugin=name, known=self.spec_names, where=where)
        elif attr in self.spec_names:
            warnings.warn(
                f"plugin {name!r} defines {attr}() ({where}) without @trainhooks.hookimpl; "
                "it will not be called. Mark it, or pass the object as a callback",
                UserWarning,
                stacklevel=4,
            )

    def _declared_hooks(self, plugin: Any) -> list[str]:
        """Hooks an unregistered (opt-in) plugin would implement, for listings."""
        callback_style = isinstance(plugin, Callback)
        if callback_style:
            self._callback_style.add(id(plugin))
        try:
            found = set()
            for attr in dir(plugin):
                try:
                    opts = self.parse_hookimpl_opts(plugin, attr)
                except Exception:
                    continue
                if opts is not None:
                    found.add(opts.get("specname") or attr)
        finally:
            self._callback_style.discard(id(plugin))
        return [h for h in self.spec_names if h in found]

    @staticmethod
    def _where(plugin: Any, attr: str) -> str:
        owner = plugin.__name__ if inspect.ismodule(plugin) else type(plugin).__qualname__
        return f"{owner}.{attr}"

    def _reorder(self, caller: pluggy.HookCaller) -> None:
        """Make pluggy's call order: tryfirst, normal, trylast; FIFO within each group.

        pluggy calls its implementation list from the end backwards, wrappers (kept after plain
        implementations) first. Sorting the list by (wrapper, group, -registration) in place
        gives exactly the documented order while pluggy's own caller keeps working.
        """
        order = self._order

        def key(impl: pluggy.HookImpl) -> tuple[bool, int, int]:
            group = 0 if impl.trylast else 2 if impl.tryfirst else 1
            return (bool(impl.wrapper or impl.hookwrapper), group, -order.get(impl.plugin_name, 0))

        impl_list(caller).sort(key=key)

    def add_listener(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` whenever plugins are registered or unregistered (dispatch rebuild)."""
        self._listeners.append(callback)

    def _changed(self) -> None:
        for listener in self._listeners:
            listener()

    # ------------------------------------------------------------------ discovery
    def load_plugins(
        self,
        enable: Iterable[str] = (),
        disable: Iterable[str] = (),
        *,
        autoload: bool | None = None,
        defaults: bool = True,
        strict: bool = True,
        replacements: Sequence[Any] = (),
    ) -> None:
        """Discover entry-point plugins and register those that should run.

        Three steps: **discover** (:func:`discover_entry_points`: metadata only), **decide**
        (:func:`decide`: a pure function of the metadata and the switches, so nothing is
        imported before it is known to be wanted, and two distributions declaring one name are
        refused without importing either), **load** (import, build, register what was decided).

        :param enable: names (or importable module paths) to load even if opt-in or if
            autoloading is off — ``-p NAME`` / ``plugins=["NAME"]``.
        :param disable: names never to load — ``-p no:NAME`` / ``disable=[...]``.
        :param autoload: load third-party entry points not named in ``enable``; defaults to
            true unless ``TRAINHOOKS_DISABLE_PLUGIN_AUTOLOAD`` is set. Built-in plugins are
            part of trainhooks and load either way.
        :param defaults: when false, nothing loads unless named in ``enable`` (built-ins
            included): a bare plugin manager for benchmarks and tests.
        :param strict: raise the first load or validation error (``fit``); when false, errors
            are recorded and listing goes on (``trainhooks plugins``).
        :param replacements: API plugin objects; one that is an instance of an entry point's
            class takes that entry point's place (and name, unless built with ``name=``)
            instead of a default-built instance.
        :raises UnknownPluginError: a name in ``enable``/``disable`` that nothing provides.
        :raises PluginLoadError, PluginValidationError: a plugin that should run is broken
            (only with ``strict``).
        """
        if self._loaded:
            raise PluginError("plugins are already loaded for this plugin manager")
        self._loaded = True
        enable = list(dict.fromkeys(enable))
        disable = list(dict.fromkeys(disable))
        specs = discover_entry_points()
        known = [s.name for s in specs]
        for name in disable:
            if name not in known and name not in enable:
                raise UnknownPluginError(name, known)
        for name in disable:
            self.set_blocked(name)
        switches = Switches(
            enable=frozenset(enable),
            disable=frozenset(disable),
            autoload=autoload_enabled() if autoload is None else autoload,
            defaults=defaults,
            allow=allowlist_from_env(),
        )
        for spec, decision in zip(specs, decide(specs, switches)):
            rec = PluginRecord(
                name=spec.name,
                source="builtin" if spec.builtin else "entrypoint",
                distribution=spec.distribution,
                version=spec.version,
                target=spec.value,
            )
            if decision.action != "load":  # not imported: where its code lives, from metadata
                rec.location = metadata_location(spec)
            if decision.action == "refuse":
                self._fail(rec, PluginError(decision.reason, plugin=spec.name), strict)
                continue
            if decision.action == "skip":
                # Two skipped distributions of one name are both listed.
                key = spec.name if spec.name not in self.records else f"{spec.name} ({spec.distribution})"
                self.records[key] = rec
                rec.status, rec.reason = decision.status, decision.reason
                continue
            self.records[spec.name] = rec
            self._load_entry_point(
                spec, rec, wanted=spec.name in switches.enable, strict=strict, replacements=replacements
            )

        for name in enable:
            if name in self.records or name in disable:
                continue
            self._load_module_plugin(name, known, strict)

    def _load_entry_point(
        self, spec: EntryPointSpec, rec: PluginRecord, *, wanted: bool, strict: bool, replacements: Sequence[Any]
    ) -> None:
        """Import, build (or take the replacement) and register one entry point decided to load."""
        try:
            loaded = spec.entry_point.load()
            replacement = next((r for r in replacements if inspect.isclass(loaded) and isinstance(r, loaded)), None)
            plugin = replacement if replacement is not None else _instantiate(loaded)
        except (Exception, SystemExit) as exc:  # sys.exit() at import is a broken plugin too
            err = PluginLoadError(
                spec.name, distribution=spec.distribution, version=spec.version, target=spec.value, cause=exc
            )
            rec.location = metadata_location(spec)
            self._fail(rec, err, strict)
            return
        rec.plugin = plugin
        rec.location = _location(plugin) or rec.location
        if replacement is None and not wanted and getattr(plugin, "default_enabled", True) is False:
            rec.status, rec.reason = "available", f"opt-in: enable with -p {spec.name}"
            rec.hooks = self._declared_hooks(plugin)
            return
        try:
            # A replacement built with name= keeps its name (the entry point's record moves).
            registered = self.register(plugin, given_name(plugin) or spec.name, source=rec.source, record=rec)
            if registered != spec.name:
                self.records.pop(spec.name, None)
        except PluginError as err:
            self._fail(rec, err, strict)

    def _load_module_plugin(self, name: str, known: Sequence[str], strict: bool = True) -> None:
        """``-p some.module``: register an importable module that is not an entry point.

        A module that fails (import error, unknown hook, wrong argument) is bad input, exit
        status 2; with ``strict`` false (``trainhooks plugins``) it is listed with its error.
        """
        rec = PluginRecord(name=name, source="module", target=name)
        try:
            module = import_user_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and name.startswith(exc.name):
                raise UnknownPluginError(name, known) from None
            err = PluginLoadError(name, distribution=None, version=None, target=name, cause=exc, module=True)
            self._fail(rec, err, strict)
            return
        except (Exception, SystemExit) as exc:
            err = PluginLoadError(name, distribution=None, version=None, target=name, cause=exc, module=True)
            self._fail(rec, err, strict)
            return
        rec.location = _location(module)
        try:
            self.register(module, name, source="module", record=rec)
        except PluginValidationError as err:
            err.exit_code = 2  # the user's own module, named on the command line: bad input
            self._fail(rec, err, strict)

    def origin(self, name: str) -> str:
        """``"DIST VERSION"`` for a third-party entry-point plugin (the package to fix or
        uninstall), else ``""``; error messages show it after the plugin's name."""
        rec = self.records.get(name)
        return _origin_of(rec) if rec is not None else ""

    def _fail(self, rec: PluginRecord, err: PluginError, strict: bool) -> None:
        origin = _origin_of(rec)
        if isinstance(err, PluginValidationError) and origin and err.args and f"from {origin}" not in str(err):
            # Name the distribution too: it is what the user uninstalls or reports to.
            err.args = (str(err).replace(f"plugin {rec.name!r}", f"plugin {rec.name!r} (from {origin})", 1),)
        if (
            isinstance(err, PluginValidationError)
            and rec.source == "entrypoint"
            and f"-p no:{rec.name}" not in str(err)
        ):
            # Installed, not the user's code: the way to train anyway.
            err.args = (f"{err}; '-p no:{rec.name}' lets the run go on without it",)
        rec.status, rec.reason = "error", str(err)
        key = rec.name if self.records.get(rec.name, rec) is rec else f"{rec.name} ({rec.distribution})"
        self.records[key] = rec
        if strict:
            raise err

    def is_critical(self, name: str) -> bool:
        """A plugin is critical (its failure stops the run) unless configured or declared otherwise
        (``--non-critical NAME``, ``Trainer(non_critical=[...])``, or ``critical = False`` on it)."""
        if name in self.non_critical:
            return False
        return getattr(self.get_plugin(name), "critical", True) is not False

    def disable_after_failure(self, name: str, hook: str, exc: BaseException) -> None:
        """Report a non-critical plugin's failure once and unregister it for the rest of the run."""
        message = (
            f"plugin {name!r} failed in hook {hook!r}: {type(exc).__name__}: {exc}; it is non-critical, "
            "so it is disabled for the rest of the run and training continues"
        )
        warnings.warn(message, PluginDisabledWarning, stacklevel=3)
        rec = self.records.get(name)
        if self.get_plugin(name) is not None:
            self.unregister(name=name)
        if rec is not None:
            rec.status, rec.reason = "disabled", message

    def require(self, name: str) -> Any:
        """The active plugin named ``name``, or a clear error."""
        plugin = self.get_plugin(name)
        if plugin is None:
            raise UnknownPluginError(name, [n for n, p in name_table(self).items() if p is not None])
        return plugin

    # ------------------------------------------------------------------ introspection
    def plugin_hooks(self, name: str) -> list[str]:
        """Names of the hooks plugin ``name`` implements, in documentation order."""
        plugin = self.get_plugin(name)
        if plugin is None:
            return []
        implemented = {caller.name for caller in self.get_hookcallers(plugin) or ()}
        return [h for h in self.spec_names if h in implemented]

    def call_order(self, hook_name: str) -> list[str]:
        """Plugin names implementing ``hook_name``, in the order they are called."""
        caller = getattr(self.hook, hook_name)
        return [impl.plugin_name for impl in reversed(caller.get_hookimpls())]

    def active(self) -> list[PluginRecord]:
        """Records of registered plugins, in registration order."""
        recs = [r for r in self.records.values() if r.status == "active" and r.name in self._order]
        recs.sort(key=lambda r: self._order[r.name])
        return recs

    def impl_for(self, hook_name: str, plugin: Any) -> pluggy.HookImpl | None:
        caller = getattr(self.hook, hook_name, None)
        for impl in caller.get_hookimpls() if caller is not None else ():
            if impl.plugin is plugin:
                return impl
        return None


if TYPE_CHECKING:
    PluginHost: TypeAlias = PluginManager
    """Deprecated name of :class:`PluginManager`."""

# Modules through which the old name is reached on the way to the caller (see _warn_old_name).
_ALIAS_MODULES = frozenset({__name__, "trainhooks", "trainhooks.host"})


def _warn_old_name() -> None:
    """A DeprecationWarning for ``PluginHost``, pointed at the code that asked for the old name.

    trainhooks' own modules are not warned about: the few that still say ``PluginHost`` move to
    the new name on their own schedule, and a user must not see a warning for code they did not
    write (nor fail under ``-W error::DeprecationWarning`` merely by importing the trainer).
    """
    frame: Any = sys._getframe(1)  # walked back past __getattr__ and the shims to the asking code
    level = 2
    while frame is not None and (
        frame.f_globals.get("__name__") in _ALIAS_MODULES or frame.f_code.co_filename.startswith("<frozen importlib")
    ):
        frame = frame.f_back
        level += 1
    caller = frame.f_globals.get("__name__", "") if frame is not None else ""
    if isinstance(caller, str) and caller.startswith("trainhooks."):
        return
    warnings.warn(
        "PluginHost is deprecated: use trainhooks.PluginManager (module trainhooks.plugin_manager)",
        DeprecationWarning,
        stacklevel=level,
    )


def __getattr__(name: str) -> Any:
    # PEP 562: the deprecated alias PluginHost, with a warning on each use.
    if name == "PluginHost":
        _warn_old_name()
        return PluginManager
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ALLOWLIST_ENV",
    "AUTOLOAD_ENV",
    "Decision",
    "EntryPointSpec",
    "PluginDisabledWarning",
    "PluginManager",
    "PluginRecord",
    "PluginValidationError",
    "Switches",
    "autoload_enabled",
    "decide",
    "decide_one",
    "discover_entry_points",
    "metadata_location",
]
