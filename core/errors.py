"""Every error trainhooks raises on purpose; each one names its culprit.

All derive from :class:`TrainhooksError`, so ``except trainhooks.TrainhooksError`` catches
what the library reports while letting genuine bugs through. The CLI prints these as one
clear line (no traceback) and exits with status 2 (usage/config) or 1 (run failure).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence


def suggest(name: str, candidates: Iterable[str], limit: int = 3) -> list[str]:
    """Closest names to ``name`` among ``candidates``.

    Names containing every ``_``-separated word of ``name`` come first (``on_epoch_end`` →
    ``on_train_epoch_end``, ``on_fit_epoch_end``), then difflib's close matches.
    """
    pool = list(dict.fromkeys(candidates))
    words = [w for w in name.lower().split("_") if w]
    by_words = [c for c in pool if words and all(w in c.lower().split("_") for w in words)]
    by_words.sort(key=lambda c: (len(c), c))
    if by_words:
        return by_words[:limit]
    return difflib.get_close_matches(name, pool, n=limit, cutoff=0.6)


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """`` (did you mean a / b?)`` or an empty string."""
    hits = suggest(name, candidates)
    return f" (did you mean {' / '.join(hits)}?)" if hits else ""


class TrainhooksError(Exception):
    """Base class of every error trainhooks raises on purpose."""

    exit_code = 1


class ConfigError(TrainhooksError, ValueError):
    """A bad argument, option or setting: names the setting and what would be accepted."""

    exit_code = 2


class UnknownKeywordError(ConfigError, TypeError):
    """A keyword argument the function does not take; the message names the right one.

    Also a ``TypeError``, which is what Python raises for it, so code that caught that still does.
    """

    def __init__(self, message: str, *, names: Sequence[str]) -> None:
        super().__init__(message)
        self.names = list(names)


class PluginError(TrainhooksError):
    """Something is wrong with a plugin; ``plugin`` names it."""

    def __init__(self, message: str, *, plugin: str | None = None) -> None:
        super().__init__(message)
        self.plugin = plugin


class UnknownPluginError(PluginError, ConfigError):
    """A plugin was asked for (``-p NAME``, ``plugins=[...]``, ``disable=[...]``) that does not exist."""

    def __init__(self, name: str, known: Sequence[str]) -> None:
        listing = ", ".join(sorted(known)) or "none installed"
        super().__init__(
            f"unknown plugin {name!r}{did_you_mean(name, known)}; installed plugins: {listing}",
            plugin=name,
        )


class PluginLoadError(PluginError):
    """An entry-point plugin failed to import or to instantiate, or a module given to ``-p``
    failed to import (then it is bad input: exit status 2)."""

    def __init__(
        self,
        name: str,
        *,
        distribution: str | None,
        version: str | None,
        target: str,
        cause: BaseException,
        module: bool = False,
    ) -> None:
        if module:
            message = f"plugin module {name!r} given to -p failed to import: {type(cause).__name__}: {cause}"
        else:
            dist = f"{distribution} {version}" if distribution else "an unknown distribution"
            message = (
                f"plugin {name!r} (entry point {target!r} from {dist}) failed to load: "
                f"{type(cause).__name__}: {cause}. '-p no:{name}' lets the run go on without it; "
                f"or uninstall {distribution or 'it'}"
            )
        super().__init__(message, plugin=name)
        if module:
            self.exit_code = 2
        self.distribution = distribution
        self.version = version
        self.target = target
        self.__cause__ = cause


class PluginValidationError(PluginError):
    """A plugin's hook implementations do not match the hook specifications."""

    def __init__(self, message: str, *, plugin: str, hook: str) -> None:
        super().__init__(message, plugin=plugin)
        self.hook = hook


class UnknownHookError(PluginValidationError):
    """A hook implementation (or callback event) names no hook."""

    def __init__(self, name: str, *, plugin: str, known: Sequence[str], where: str = "", event: bool = False) -> None:
        """:param event: the name is an event given to ``add_callback``/``LambdaCallback``
        (``where`` then names the function): the message is about the event, not a plugin."""
        from trainhooks.vocabulary import CALLBACK_ALIASES, hook_suggestion

        place = f" ({where})" if where else ""
        hint = hook_suggestion(name, known)
        alias = CALLBACK_ALIASES.get(name)
        if alias is not None:  # works in a Callback class, so say why not here
            hint += (
                f"; {name} is accepted only as the name of a method in a callback class (a trainhooks.Callback "
                f"subclass, or the class of an object in callbacks=), where it means {alias}; an event given by "
                "name, and a @hookimpl function, use the hook's own name"
            )
        if event:
            message = (
                f"callback event {name!r}{place} is not a trainhooks hook{hint}. 'trainhooks hooks' lists them all"
            )
        else:
            message = (
                f"plugin {plugin!r} implements {name!r}{place}, which is not a trainhooks hook"
                f"{hint}. 'trainhooks hooks' lists them all"
            )
        super().__init__(message, plugin=plugin, hook=name)


class HookArgumentError(PluginValidationError):
    """A hook implementation asks for an argument its hook does not pass."""

    def __init__(
        self,
        argument: str,
        *,
        plugin: str,
        hook: str,
        allowed: Sequence[str],
        where: str = "",
        hint: str = "",
        message: str = "",
    ) -> None:
        place = f" ({where})" if where else ""
        super().__init__(
            message
            or f"plugin {plugin!r}: argument {argument!r} of {hook}{place} is not an argument of "
            f"hook {hook!r}{'' if hint else did_you_mean(argument, allowed)}; it can take any of: "
            f"{', '.join(allowed)}{hint}",
            plugin=plugin,
            hook=hook,
        )
        self.argument = argument


class DuplicatePluginError(PluginError):
    """The same plugin object, or the same name, registered twice."""


class HookError(PluginError):
    """An exception raised inside a hook implementation, re-raised naming plugin and hook.

    The original exception is ``__cause__`` (and ``original``).
    """

    def __init__(self, *, plugin: str, hook: str, original: BaseException, origin: str = "") -> None:
        """:param origin: where the plugin comes from, e.g. ``"th-boom 0.1.0"`` (third-party
        entry points), shown after its name."""
        where = f" (from {origin})" if origin else ""
        # An installed third-party plugin is not the user's code: say how to run without it.
        hint = f"; '-p no:{plugin}' lets the run go on without it" if origin else ""
        super().__init__(
            f"plugin {plugin!r}{where} failed in hook {hook!r}: {_describe(original)}{hint}",
            plugin=plugin,
        )
        self.hook = hook
        self.original = original

    @property
    def exit_code(self) -> int:  # type: ignore[override]
        """A plugin reporting bad configuration on purpose (a TrainhooksError) is a usage error."""
        return self.original.exit_code if isinstance(self.original, TrainhooksError) else 1


def _describe(original: BaseException) -> str:
    """``TypeError: ...``; a plugin's ``sys.exit()`` and ``raise KeyboardInterrupt`` said as what they are."""
    if isinstance(original, SystemExit):
        return (
            f"it called sys.exit({original.code!r}); a plugin ends a run by raising an error or answering should_stop"
        )
    if isinstance(original, KeyboardInterrupt):
        return "it raised KeyboardInterrupt (nobody pressed Ctrl-C)"
    return f"{type(original).__name__}: {original}"


class ExportFormatError(ConfigError):
    """No plugin provides the requested export format."""

    def __init__(self, format: str, available: Sequence[str]) -> None:
        listing = ", ".join(sorted(available)) or "none (is the provider plugin disabled?)"
        super().__init__(
            f"no plugin provides export format {format!r}{did_you_mean(format, available)}; "
            f"available formats: {listing}"
        )
        self.format = format


class TaskError(ConfigError):
    """A ``--task`` that cannot be imported or does not return a usable task."""


class NothingUsableError(TrainhooksError):
    """Training produced nothing usable (no batch was trained on); the CLI exits with status 3,
    so a scheduler or CI job can tell it from a finished run (0) and a failed one (1)."""

    exit_code = 3


class CheckpointError(TrainhooksError):
    """A checkpoint that cannot be written or read; names the file."""


class DistributedError(TrainhooksError):
    """A distributed run cannot start, or a collective failed or timed out.

    Raised instead of hanging when another rank died or stalled for longer than ``dist_timeout``;
    names this process's rank, what it was waiting for and where (epoch, step), and the rank that
    failed when that rank could say so. Also raised on the rank whose own training step failed
    (forward, backward, out of memory): :attr:`original` is then that exception (None for a
    lost contact).
    """

    def __init__(self, message: str, *, rank: int | None = None, original: BaseException | None = None) -> None:
        super().__init__(message)
        self.rank = rank
        self.original = original
