"""Callbacks without pluggy markers: Keras/Ultralytics-style objects and plain functions.

Three ways, all ending in the same plugin manager as entry-point plugins:

* subclass :class:`Callback` (alias ``BaseCallback``) and override methods named after hooks;
* pass any object with such methods in ``Trainer(callbacks=[...])``;
* ``trainer.add_callback("on_train_epoch_end", fn)``, or ``LambdaCallback(on_train_end=fn)``.

A method or event that is not a hook is an error with a suggestion, never silently ignored.
A function may take the hook's arguments by name (``def fn(trainer, batch)``) or a single
positional parameter of any name, which receives the trainer (``lambda t: ...``).
"""

from __future__ import annotations

import difflib
import inspect
import warnings
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

from trainhooks import hookspecs
from trainhooks.errors import ConfigError, HookArgumentError, UnknownHookError
from trainhooks.options import set_given
from trainhooks.pluggy_compat import defaulted_argnames, varnames
from trainhooks.vocabulary import PEER_EVENTS, argument_hint


@lru_cache(maxsize=1)
def hook_signatures() -> dict[str, tuple[str, ...]]:
    """Every hook name and the argument names its spec passes, in documentation order."""
    sigs: dict[str, tuple[str, ...]] = {}
    for module in hookspecs.SPEC_MODULES:
        for name, value in vars(module).items():
            if callable(value) and hasattr(value, hookspecs.PROJECT_NAME + "_spec"):
                sigs[name] = varnames(value)
    return sigs


class Callback:
    """Base class for callback objects: override the methods named after the hooks you need.

    Methods you do not override cost nothing (they are not registered). A method whose name
    starts with ``on_`` but is no hook raises :class:`~trainhooks.UnknownHookError` with a
    suggestion. Arguments are taken by name, any subset of the hook's (see ``trainhooks hooks``).

    Class attributes:

    * ``default_enabled`` — when the class is an entry-point plugin: ``False`` makes it opt-in
      (installed and listed, but run only with ``-p NAME``).
    * ``rank_zero_only`` — in distributed runs, call this callback on global rank zero only.

    Override :meth:`state_dict` / :meth:`load_state_dict` to have state saved in checkpoints,
    and :meth:`on_fit_start` to start each ``fit()`` with fresh run state.

    Settings are declared once as :class:`~trainhooks.Option` class attributes; the
    constructor then takes them by name (or positionally, in declaration order) and checks
    them, plus ``name=``: the instance's registration name (its ``stopped_by`` name, its key in
    checkpoints, the name listings and errors show), which tells several instances of one class
    apart. Without it the plugin manager names the instance (see :meth:`PluginManager.register`).
    """

    default_enabled: bool = True
    rank_zero_only: bool = False

    def __init__(self, *args: Any, name: str | None = None, **settings: Any) -> None:
        if name is not None:
            if not isinstance(name, str) or not name.strip() or name.startswith("no:"):
                raise ConfigError(f"{type(self).__name__}: name must be a non-empty string, got {name!r}")
            self.__dict__["_trainhooks_name"] = name
        set_given(self, args, settings)

    def state_dict(self) -> dict[str, Any]:
        """State to save in checkpoints under ``checkpoint["plugins"][<plugin name>]``."""
        return {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""

    # One stub per hook, for editors: override any of them taking any subset of the listed
    # arguments, by name. The (*args, **kwargs) signature lets type checkers accept subsets;
    # stubs you do not override are never registered, so they cost nothing.
    def add_options(self, *args: Any, **kwargs: Any) -> Any:
        """(parser) Declare this plugin's command-line and API options."""

    def configure(self, *args: Any, **kwargs: Any) -> Any:
        """(trainer) Read options and prepare, once the trainer and its options exist."""

    def on_fit_start(self, *args: Any, **kwargs: Any) -> Any:
        """(trainer) Fires at the start of every `fit()`, before a resume restores state: reset run state here."""

    def on_pretrain_routine_start(self, *args: Any, **kwargs: Any) -> Any:
        """(trainer) Fires first in `fit`, before the model is moved to its device and data is touched."""

    def on_pretrain_routine_end(self, *args: Any, **kwargs: Any) -> Any:
        """(trainer) Fires once setup is done: model on its device, save_dir created, checkpoint resumed."""

    def on_train_start(self, *args: Any, **kwargs: Any) -> Any:
        """(trainer) Fires once, right before the first training epoch."""

    def on_train_epoch_start(self, *args: Any, **kwargs: Any) -> Any:
        """(trainer) Fires at the start of every training epoch, model in train mode."""

    def on_train_batch_start(self, *args: Any, **kwargs: Any) -> Any:
        """(trainer, batch, batch_idx) Fires for every training batch, after it is moved to the device, before the forward pass."""

    def on_before_backward(self, *args: Any, **kwargs: Any) -> Any:
        """(trainer, loss) Fires after the forward pass, before `loss.backward()`."""

    def on_after_backward(self, *args: Any, **kwargs: Any) -> Any:
        """(trainer) Fires after `loss.backward()`; gradients are populated (e.g. to inspect or clip them)."""

    def on_train_microbatch_end(self, *args: Any, **kwargs: Any) -> Any:
        """(trainer, batch, batch_idx, outputs) Fires after every micro-batch's backward pass (HF's `on_substep_end`)."""

    def on_before_optimizer_step(self, *args: Any, **kwargs: Any) -> Any:
        """(trainer, optimizer) Fires right before `optimizer.step()`."""

    def optimizer_step(self, *args: Any, **kwargs: Any) -> Any:
        """(trainer, optimizer) Fires right after `optimizer.step()` (Ultralytics' `optimizer_step` event)."""

    def on_params_update(self, *args: Any, **kwargs: Any) -> Any:
        """(trainer) Fires once the step has updated the model's parameters, right after `optimizer_step`."""

    def on_before_zero_grad(self, *args: Any, **kwargs: Any) -> Any:
        """(trainer, optimizer) Fires after `optimizer.step()`, before gradients are cleared."""

    def on_train_batch_end(self, *args: Any, **kwargs: Any) -> Any:
        """(trainer, batch, batch_idx, outputs) Fires at the end of every training step, after the optimizer step and zero_grad."""

    def on_log(self, *args: Any, **kwargs: Any) -> Any:
        """(trainer, metrics, step, epoch_end) Fires with values to log: every `log_every_n_steps` optimizer steps, and once per epoch."""

    def on_train_epoch_end(self, *args: Any, **kwargs: Any) -> Any:
        """(trainer) Fires after the last training batch of an epoch, before validation."""

    def on_fit_epoch_end(self, *args: Any, **kwargs: Any) -> Any:
        """(trainer) Fires at the very end of every epoch, after the epoch's validation."""

    def on_train_end(self, *args: Any, **kwargs: Any) -> Any:
        """(trainer) Fires once when training ends normally: all epochs done *or* stopped by `should_stop`."""

    def teardown(self, *args: Any, **kwargs: Any) -> Any:
        """(trainer, stage) Fires last, always: after `on_train_end`, and after `on_exception` on failure."""

    def on_exception(self, *args: Any, **kwargs: Any) -> Any:
        """(trainer, exception) Fires when an exception (also Ctrl-C) escapes `fit`, `validate` or `predict`."""

    def should_stop(self, *args: Any, **kwargs: Any) -> Any:
        """(trainer) Asked after every training batch and after every epoch: should training stop now?"""

    def on_val_start(self, *args: Any, **kwargs: Any) -> Any:
        """(trainer) Fires before the first validation batch; the model is in eval mode, gradients off."""

    def on_val_batch_start(self, *args: Any, **kwargs: Any) -> Any:
        """(trainer, batch, batch_idx) Fires for every validation batch, before its forward pass."""

    def on_val_batch_end(self, *args: Any, **kwargs: Any) -> Any:
        """(trainer, batch, batch_idx, outputs) Fires after every validation batch."""

    def on_val_end(self, *args: Any, **kwargs: Any) -> Any:
        """(trainer) Fires after validation (its last batch): the val/* metrics are in trainer.metrics."""

    def on_predict_start(self, *args: Any, **kwargs: Any) -> Any:
        """(trainer) Fires when `Trainer.predict` starts; the model is in eval mode, gradients off."""

    def on_predict_batch_start(self, *args: Any, **kwargs: Any) -> Any:
        """(trainer, batch, batch_idx) Fires for every prediction batch, before its forward pass."""

    def on_predict_postprocess_end(self, *args: Any, **kwargs: Any) -> Any:
        """(trainer, batch, batch_idx, outputs) Fires for every prediction batch once its outputs are computed (the model's forward, or its `predict_step`), before they are collected: Ultralytics' `on_predict_postprocess_end`."""

    def on_predict_batch_end(self, *args: Any, **kwargs: Any) -> Any:
        """(trainer, batch, batch_idx, outputs) Fires after every prediction batch."""

    def on_predict_end(self, *args: Any, **kwargs: Any) -> Any:
        """(trainer) Fires after the last prediction batch, before `predict` returns."""

    def on_export_start(self, *args: Any, **kwargs: Any) -> Any:
        """(trainer, format) Fires when `Trainer.export` starts, before the provider runs."""

    def on_export_end(self, *args: Any, **kwargs: Any) -> Any:
        """(trainer, format, path) Fires after the provider has written the exported file."""

    def export_formats(self, *args: Any, **kwargs: Any) -> Any:
        """(trainer) Name the export formats this plugin provides."""

    def export_model(self, *args: Any, **kwargs: Any) -> Any:
        """(trainer, model, format, path) Write `model` to `path` in `format`, if this plugin provides that format."""

    def on_save_checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        """(trainer, checkpoint) Fires when a checkpoint dict has been built, before it is written."""

    def on_load_checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        """(trainer, checkpoint) Fires when a checkpoint is restored (`fit(resume=...)`), after model and optimizer."""

    def on_model_save(self, *args: Any, **kwargs: Any) -> Any:
        """(trainer, path) Fires after a checkpoint file has been written completely (atomically) to `path`."""


BaseCallback = Callback
"""Alias of :class:`Callback` (the name Ultralytics users know)."""


def is_callback_stub(plugin: Any, name: str) -> bool:
    """True when ``plugin.<name>`` is :class:`Callback`'s own stub, i.e. not overridden."""
    if name in getattr(plugin, "__dict__", {}):
        return False
    base = Callback.__dict__.get(name)
    return base is not None and inspect.getattr_static(type(plugin), name, None) is base


def looks_like_a_hook(attr: str, hooks: Sequence[str]) -> bool:
    """A public method name of a callback object that is meant as a hook but is none: ``on_*``,
    another framework's event name, or a near miss of a hook without the prefix
    (``should_stpo``, ``teardwon``, ``configre``)."""
    if attr.startswith("_") or attr in hooks:
        return False
    if attr.startswith("on_") or attr in PEER_EVENTS:
        return True
    unprefixed = [h for h in hooks if not h.startswith("on_")]
    return bool(difflib.get_close_matches(attr, unprefixed, n=1, cutoff=0.8))


def check_arguments(fn: Any, *, plugin: str, hook: str, allowed: Sequence[str], where: str = "") -> None:
    """Every argument ``fn`` asks for is one ``hook`` passes, and none has a default value.

    pluggy passes only arguments without defaults: ``outputs=None`` would always be None,
    so it is an error naming the parameter. Another framework's argument names (``pl_module``,
    ``logs``, ``state``) get an error saying where the value lives in trainhooks.
    """
    names = varnames(fn)
    bad = [n for n in names if n not in allowed]
    if bad:
        extra = [n for n in defaulted_argnames(fn) if n not in allowed]
        hint = argument_hint([*bad, *extra])
        raise HookArgumentError(bad[0], plugin=plugin, hook=hook, allowed=allowed, where=where, hint=hint)
    for arg in defaulted_argnames(fn):
        if arg in allowed:
            raise HookArgumentError(
                arg,
                plugin=plugin,
                hook=hook,
                allowed=allowed,
                where=where,
                message=(
                    f"plugin {plugin!r}: argument {arg!r} of {hook}{f' ({where})' if where else ''} has a default "
                    f"value, so it is never passed (pluggy passes only arguments without defaults) and would "
                    f"always be its default: write {arg} without '= ...'"
                ),
            )
        warnings.warn(
            f"plugin {plugin!r}: parameter {arg!r} of {hook}{f' ({where})' if where else ''} has a default value "
            f"and is not an argument of hook {hook!r}: it always keeps its default",
            UserWarning,
            stacklevel=4,
        )


def adapt_function(event: str, fn: Callable[..., Any], *, owner: str) -> Callable[..., Any]:
    """Check ``fn`` against hook ``event`` and return a callable pluggy can call by name.

    :raises UnknownHookError: ``event`` is not a hook (with suggestions).
    :raises HookArgumentError: ``fn`` asks for arguments the hook does not pass.
    """
    sigs = hook_signatures()
    if event not in sigs:
        fn_name = getattr(fn, "__name__", None) or type(fn).__name__
        raise UnknownHookError(event, plugin=owner, known=list(sigs), where=f"for {fn_name}", event=True)
    if not callable(fn):
        raise TypeError(f"callback for {event!r} must be callable, got {fn!r}")
    allowed = sigs[event]
    try:
        params = [
            p
            for p in inspect.signature(fn).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
        ]
    except (TypeError, ValueError):  # builtins without signatures: give them the trainer
        params = []
    names = [p.name for p in params]
    defaulted = [p.name for p in signature_params(fn) if p.default is not p.empty and p.name in allowed]
    if defaulted:
        check_arguments(fn, plugin=owner, hook=event, allowed=allowed, where=getattr(fn, "__qualname__", ""))
    if all(n in allowed for n in names):
        return _wrap_by_name(fn, allowed) if _needs_wrap(fn) else fn
    if len(params) == 1 and ("trainer" in allowed or len(allowed) == 1):
        # One positional argument of another name: it receives the trainer, or the hook's only
        # argument for a hook without one (add_options' parser: ``partial(declare, flag=...)``).
        arg = "trainer" if "trainer" in allowed else allowed[0]
        namespace: dict[str, Any] = {"fn": fn}
        exec(f"def call_with_{arg}({arg}):\n    return fn({arg})\n", namespace)
        call_one = namespace[f"call_with_{arg}"]
        call_one.__name__ = call_one.__qualname__ = getattr(fn, "__name__", event)
        return call_one  # type: ignore[no-any-return]
    bad = [n for n in names if n not in allowed]
    raise HookArgumentError(
        bad[0],
        plugin=owner,
        hook=event,
        allowed=allowed,
        where=getattr(fn, "__qualname__", ""),
        hint=argument_hint(bad),
    )


def signature_params(fn: Any) -> list[inspect.Parameter]:
    try:
        return list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return []


def _needs_wrap(fn: Callable[..., Any]) -> bool:
    """Objects pluggy cannot introspect by name (partials, callable instances) get a wrapper."""
    return not (inspect.isfunction(fn) or inspect.ismethod(fn))


class FunctionCallback(Callback):
    """Holds functions registered for named events (``add_callback``, :class:`LambdaCallback`)."""

    def __init__(self, *, owner: str | None = None, **events: Callable[..., Any]) -> None:
        owner = owner or type(self).__name__
        for event, fn in events.items():
            setattr(self, event, adapt_function(event, fn, owner=owner))

    def __repr__(self) -> str:
        events = ", ".join(k for k in vars(self) if k in hook_signatures())
        return f"<{type(self).__name__} {events}>"


def _wrap_by_name(fn: Callable[..., Any], allowed: tuple[str, ...]) -> Callable[..., Any]:
    """Wrap a callable object so pluggy sees a plain function taking the hook's arguments."""
    try:
        wanted = [n for n in inspect.signature(fn).parameters if n in allowed]
    except (TypeError, ValueError):
        wanted = ["trainer"]
    src = f"def wrapped({', '.join(wanted)}):\n    return fn({', '.join(wanted)})\n"
    namespace: dict[str, Any] = {"fn": fn}
    exec(src, namespace)
    return namespace["wrapped"]  # type: ignore[no-any-return]


class LambdaCallback(FunctionCallback):
    """One-line callbacks: ``LambdaCallback(on_train_epoch_end=lambda trainer: print(trainer.epoch))``."""
