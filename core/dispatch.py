"""The typed hook facade the engine calls, and its fast path.

The engine never calls the untyped ``pm.hook.x(...)``: it calls ``trainer.hooks.on_train_batch_end(
batch, batch_idx, outputs)``, a method a type checker sees. Behind each method sits a caller
generated once from the hook's current implementations and rebuilt when plugins change:

* no implementations: a shared no-op;
* plain implementations: straight-line code calling each function with the arguments it asked
  for, in pluggy's (re-ordered, see :mod:`trainhooks.plugin_manager`) order, with the trainer bound in.
  Each call sits in its own ``try`` block, free on Python 3.11+ until something raises, so an
  exception is re-raised as :class:`~trainhooks.HookError` naming plugin and hook;
* wrappers, hookwrappers or pluggy tracing installed: pluggy's own caller (same semantics);
  under ``--profile-hooks`` such a hook is timed as one row naming all its plugins;
* rank-zero-only implementations are left out on other ranks.

The result matches pluggy's calling: same functions, same order, same arguments; non-firstresult
hooks collect non-None results into a list only where the engine uses them (``export_formats``);
firstresult hooks return ``(result, plugin_name)`` for the first non-None result, or None.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

from trainhooks.errors import HookError
from trainhooks.interrupts import is_user_interrupt
from trainhooks.pluggy_compat import hookexec as pluggy_hookexec
from trainhooks.pluggy_compat import is_traced

if TYPE_CHECKING:
    import torch

    from trainhooks.plugin_manager import PluginManager
    from trainhooks.trainer import Trainer

COLLECTING_HOOKS = frozenset({"export_formats"})
"""Non-firstresult hooks whose results the engine reads (others' results are dropped)."""

HISTORIC_HOOKS = frozenset({"configure"})
"""Historic hooks go through pluggy's ``call_historic`` so late plugins get the call replayed."""

GENERATED_FILENAME = "<trainhooks dispatch"
"""How the generated callers' file names start (``<trainhooks dispatch on_fit_epoch_end>``): a
warning a plugin issues with ``stacklevel=2`` points there, and the CLI leaves that location out."""


def _noop(*args: Any) -> None:
    return None


def _collect_noop(*args: Any) -> list[Any]:
    return []


@dataclass
class HookStats:
    """Time spent in one plugin's implementation of one hook (``--profile-hooks``)."""

    plugin: str
    hook: str
    calls: int = 0
    total_ns: int = 0

    @property
    def mean_us(self) -> float:
        return self.total_ns / self.calls / 1000 if self.calls else 0.0


@dataclass
class HookProfile:
    """Collected per-plugin, per-hook timings; filled only while profiling is on."""

    stats: dict[tuple[str, str], HookStats] = field(default_factory=dict)

    def slot(self, plugin: str, hook: str) -> HookStats:
        key = (plugin, hook)
        if key not in self.stats:
            self.stats[key] = HookStats(plugin, hook)
        return self.stats[key]

    def rows(self) -> list[HookStats]:
        """Slowest first."""
        return sorted(self.stats.values(), key=lambda s: s.total_ns, reverse=True)


def _passes_through(exc: BaseException, trainer: Trainer) -> bool:
    """An exception a hook caller re-raises unchanged: the user's Ctrl-C, GeneratorExit and the
    like. A plugin's ``sys.exit()`` (SystemExit) or its own ``raise KeyboardInterrupt`` is not:
    it becomes a HookError naming plugin and hook, so a failing plugin never ends a run with
    exit status 0 and nothing said."""
    if isinstance(exc, Exception) or isinstance(exc, SystemExit):
        return False
    return not isinstance(exc, KeyboardInterrupt) or is_user_interrupt(exc, trainer)


def _group_name(impls: list[pluggy.HookImpl]) -> str:
    """Profile row name for plugins timed together (a hook with wrappers runs as one pluggy call)."""
    return "+".join(dict.fromkeys(i.plugin_name for i in impls)) + " (wrapped)"


class HookDispatcher:
    """``trainer.hooks``: one typed method per hook, each replaced by a generated caller on first use."""

    def __init__(self, plugin_manager: PluginManager, trainer: Trainer) -> None:
        self._plugin_manager = plugin_manager
        self._trainer = trainer
        self._hook_names = frozenset(plugin_manager.spec_names)
        self.profile: HookProfile | None = None
        self.builds = 0
        # Bumped whenever the built callers are dropped: a loop that decided once which hooks it
        # can skip (see :meth:`unimplemented`) decides again when this changes.
        self.generation = 0
        plugin_manager.add_listener(self.invalidate)

    # ------------------------------------------------------------------ build machinery
    def invalidate(self) -> None:
        """Drop every built caller; the next call of each hook rebuilds it."""
        for name in [n for n in self.__dict__ if n in self._hook_names]:
            del self.__dict__[name]
        self.generation += 1

    def implemented(self, name: str) -> bool:
        """Whether any plugin implements hook ``name`` here (on this rank): callers skip the
        work of preparing its arguments when none does."""
        return self._dispatch(name) not in (_noop, _collect_noop)

    def unimplemented(self, names: Iterable[str]) -> bool:
        """Whether calling each of ``names`` would do nothing at all: no implementation on this
        rank, no pluggy tracing or wrappers. The training loop then skips those calls, until
        :attr:`generation` changes."""
        return all(self._dispatch(name) is _noop for name in names)

    def active(self, name: str) -> Callable[..., Any] | None:
        """The built caller of hook ``name``, or None while calling it would do nothing (no
        implementation on this rank, no tracing or wrappers). For a loop that calls a hook per
        batch and skips the call while it is None; it must ask again when :attr:`generation`
        changes, since the caller it holds is the one for the plugins of that moment."""
        fn = self._dispatch(name)
        return None if fn is _noop else fn

    def enable_profiling(self, profile: HookProfile | None = None) -> HookProfile:
        """Time every implementation from now on (``--profile-hooks``)."""
        self.profile = profile or HookProfile()
        self.invalidate()
        return self.profile

    def _dispatch(self, name: str) -> Callable[..., Any]:
        # Normally reached once per hook until plugins change. A facade method captured before
        # its first call (``f = hooks.should_stop``) keeps coming here: reuse the built caller.
        fn: Callable[..., Any] | None = self.__dict__.get(name)
        if fn is None:
            fn = self.build(name)
            self.__dict__[name] = fn
        return fn

    def build(self, name: str) -> Callable[..., Any]:
        """Generate the caller of hook ``name`` for the current plugins."""
        self.builds += 1
        caller: pluggy.HookCaller = getattr(self._plugin_manager.hook, name)
        spec = caller.spec
        assert spec is not None, name
        firstresult = bool(spec.opts.get("firstresult"))
        collect = name in COLLECTING_HOOKS
        args = [a for a in spec.argnames if a != "trainer"]
        all_impls = list(reversed(caller.get_hookimpls()))  # call order
        impls = all_impls
        if not self._trainer.is_global_zero:
            impls = [i for i in impls if not i.opts.get("rank_zero_only")]
        if name in HISTORIC_HOOKS:
            return self._historic(caller, name)
        wrapped = any(i.wrapper or i.hookwrapper for i in impls)
        traced = is_traced(self._plugin_manager)
        if wrapped or traced:
            if firstresult:
                call = self._pluggy_firstresult(name, impls, args, caller)
            else:
                removed = [i.plugin for i in all_impls if i not in impls]
                sub = self._plugin_manager.subset_hook_caller(name, removed) if removed else caller
                call = self._pluggy_caller(sub, name, args, firstresult, collect)
            if self.profile is not None and impls:
                call = self._timed(call, self.profile.slot(_group_name(impls), name))
            return call
        if not impls:
            return _collect_noop if collect else _noop
        return self._generate(name, impls, args, firstresult, collect)

    def _generate(
        self, name: str, impls: list[pluggy.HookImpl], args: list[str], firstresult: bool, collect: bool
    ) -> Callable[..., Any]:
        names = [i.plugin_name for i in impls]
        plugin_manager = self._plugin_manager

        trainer = self._trainer

        def fail(i: int, exc: BaseException) -> None:
            if isinstance(exc, HookError) or _passes_through(exc, trainer):
                raise exc
            if not plugin_manager.is_critical(names[i]):
                plugin_manager.disable_after_failure(names[i], name, exc)
                return None  # the hook goes on with the next implementation
            raise HookError(plugin=names[i], hook=name, original=exc, origin=plugin_manager.origin(names[i])) from exc

        namespace: dict[str, Any] = {"trainer": self._trainer, "fail": fail, "names": names}
        profile = self.profile
        if profile is not None:
            namespace["clock"] = time.perf_counter_ns
        lines = [f"def {name}({', '.join(args)}):"]
        if collect:
            lines.append("    out = []")
        for i, impl in enumerate(impls):
            namespace[f"f{i}"] = impl.function
            call = f"f{i}({', '.join(impl.argnames)})"
            if firstresult or collect:
                call = "r = " + call
            if profile is not None:
                namespace[f"s{i}"] = profile.slot(impl.plugin_name, name)
                lines.append("    t = clock()")
            failed = "r = fail" if firstresult or collect else "fail"
            # BaseException: a plugin's sys.exit() or KeyboardInterrupt is its failure too (fail
            # lets the user's Ctrl-C and GeneratorExit through unchanged).
            lines += ["    try:", f"        {call}", "    except BaseException as e:", f"        {failed}({i}, e)"]
            if profile is not None:
                lines += [f"    s{i}.total_ns += clock() - t", f"    s{i}.calls += 1"]
            if firstresult:
                lines += ["    if r is not None:", f"        return r, names[{i}]"]
            elif collect:
                lines += ["    if r is not None:", "        out.append(r)"]
        lines.append("    return out" if collect else "    return None")
        code = compile("\n".join(lines), f"{GENERATED_FILENAME} {name}>", "exec")
        exec(code, namespace)
        fn: Callable[..., Any] = namespace[name]
        return fn

    def _culprit(self, exc: BaseException, default: str) -> str:
        """Find which plugin's function raised, from the traceback (slow path only)."""
        codes = {}
        for caller_name in self._hook_names:
            for impl in getattr(self._plugin_manager.hook, caller_name).get_hookimpls():
                code = getattr(impl.function, "__code__", None)
                if code is not None:
                    codes[code] = impl.plugin_name
        tb = exc.__traceback__
        culprit = default
        while tb is not None:
            culprit = codes.get(tb.tb_frame.f_code, culprit)
            tb = tb.tb_next
        return culprit

    def _fallback_failed(self, name: str, exc: BaseException) -> None:
        """A hook run by pluggy's caller raised: disable a non-critical culprit, else raise.

        pluggy's caller cannot go on past a failure, so after a non-critical plugin fails the
        call yields nothing (the caller returns its empty result).
        """
        if isinstance(exc, HookError) or _passes_through(exc, self._trainer):
            raise exc
        culprit = self._culprit(exc, "?")
        if culprit != "?" and not self._plugin_manager.is_critical(culprit):
            self._plugin_manager.disable_after_failure(culprit, name, exc)
            return
        raise HookError(plugin=culprit, hook=name, original=exc, origin=self._plugin_manager.origin(culprit)) from exc

    def _pluggy_caller(
        self, caller: Any, name: str, args: list[str], firstresult: bool, collect: bool
    ) -> Callable[..., Any]:
        trainer = self._trainer
        has_trainer = "trainer" in (caller.spec.argnames if caller.spec else ())

        def call(*values: Any) -> Any:
            kwargs = dict(zip(args, values))
            if has_trainer:
                kwargs["trainer"] = trainer
            try:
                result = caller(**kwargs)
            except BaseException as exc:
                self._fallback_failed(name, exc)
                return [] if collect else None
            if firstresult:
                return None if result is None else (result, "?")
            return result if collect else None

        return call

    def _pluggy_firstresult(
        self, name: str, impls: list[pluggy.HookImpl], args: list[str], caller: pluggy.HookCaller
    ) -> Callable[..., Any]:
        """A firstresult hook with wrappers, run by pluggy's machinery, still naming who answered.

        Each plain implementation runs through a shim that notes the first plugin to return
        something; the wrappers see exactly what they would under ``pm.hook.x(...)`` (same
        implementations, order, tracing), so ``trainer.stopped_by`` names the plugin rather than
        "?". A result no plain implementation gave (a wrapper made it up) is credited to the
        wrappers.
        """
        trainer = self._trainer
        has_trainer = "trainer" in (caller.spec.argnames if caller.spec else ())
        answered: list[str | None] = [None]

        def shim(impl: pluggy.HookImpl) -> pluggy.HookImpl:
            if impl.wrapper or impl.hookwrapper:
                return impl
            function, plugin_name = impl.function, impl.plugin_name

            def noted(*values: Any) -> Any:
                result = function(*values)
                if result is not None and answered[0] is None:
                    answered[0] = plugin_name
                return result

            twin = copy.copy(impl)
            twin.function = noted  # type: ignore[misc]  # Final in pluggy; a copy, so the real impl is untouched
            return twin

        chain = [shim(i) for i in reversed(impls)]  # pluggy's list order (it calls from the end)
        wrappers = ",".join(i.plugin_name for i in impls if i.wrapper or i.hookwrapper) or "?"
        hookexec = pluggy_hookexec(self._plugin_manager)

        def call(*values: Any) -> Any:
            kwargs = dict(zip(args, values))
            if has_trainer:
                kwargs["trainer"] = trainer
            answered[0] = None
            try:
                result = hookexec(name, chain, kwargs, True)
            except BaseException as exc:
                self._fallback_failed(name, exc)
                return None
            if result is None:
                return None
            return result, answered[0] or wrappers

        return call

    @staticmethod
    def _timed(call: Callable[..., Any], slot: HookStats) -> Callable[..., Any]:
        """Profile a hook that runs through pluggy's caller: its plugins are timed together."""
        clock = time.perf_counter_ns

        def timed(*values: Any) -> Any:
            started = clock()
            try:
                return call(*values)
            finally:
                slot.total_ns += clock() - started
                slot.calls += 1

        return timed

    def _historic(self, caller: Any, name: str) -> Callable[..., Any]:
        trainer = self._trainer

        def call() -> None:
            try:
                caller.call_historic(kwargs={"trainer": trainer})
            except BaseException as exc:
                if isinstance(exc, HookError) or _passes_through(exc, trainer):
                    raise
                # Configuration errors stop the run even for non-critical plugins: they are the
                # user's to fix before training, not failures during it.
                culprit = self._culprit(exc, "?")
                raise HookError(
                    plugin=culprit, hook=name, original=exc, origin=self._plugin_manager.origin(culprit)
                ) from exc

        return call

    # ------------------------------------------------------------------ the typed facade
    # Each method builds its caller on first use and installs it as an instance attribute,
    # which shadows the method until plugins change (see invalidate).
    def configure(self) -> None:
        return self._dispatch("configure")()

    def on_fit_start(self) -> None:
        return self._dispatch("on_fit_start")()

    def on_pretrain_routine_start(self) -> None:
        return self._dispatch("on_pretrain_routine_start")()

    def on_pretrain_routine_end(self) -> None:
        return self._dispatch("on_pretrain_routine_end")()

    def on_train_start(self) -> None:
        return self._dispatch("on_train_start")()

    def on_train_epoch_start(self) -> None:
        return self._dispatch("on_train_epoch_start")()

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        return self._dispatch("on_train_batch_start")(batch, batch_idx)

    def on_before_backward(self, loss: torch.Tensor) -> None:
        return self._dispatch("on_before_backward")(loss)

    def on_after_backward(self) -> None:
        return self._dispatch("on_after_backward")()

    def on_train_microbatch_end(self, batch: Any, batch_idx: int, outputs: dict[str, Any]) -> None:
        return self._dispatch("on_train_microbatch_end")(batch, batch_idx, outputs)

    def on_log(self, metrics: dict[str, float], step: int, epoch_end: bool) -> None:
        return self._dispatch("on_log")(metrics, step, epoch_end)

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        return self._dispatch("on_before_optimizer_step")(optimizer)

    def optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        return self._dispatch("optimizer_step")(optimizer)

    def on_params_update(self) -> None:
        return self._dispatch("on_params_update")()

    def on_before_zero_grad(self, optimizer: torch.optim.Optimizer) -> None:
        return self._dispatch("on_before_zero_grad")(optimizer)

    def on_train_batch_end(self, batch: Any, batch_idx: int, outputs: dict[str, Any]) -> None:
        return self._dispatch("on_train_batch_end")(batch, batch_idx, outputs)

    def on_train_epoch_end(self) -> None:
        return self._dispatch("on_train_epoch_end")()

    def on_fit_epoch_end(self) -> None:
        return self._dispatch("on_fit_epoch_end")()

    def on_train_end(self) -> None:
        return self._dispatch("on_train_end")()

    def teardown(self, stage: str) -> None:
        return self._dispatch("teardown")(stage)

    def on_exception(self, exception: BaseException) -> None:
        return self._dispatch("on_exception")(exception)

    def should_stop(self) -> tuple[object, str] | None:
        result: tuple[object, str] | None = self._dispatch("should_stop")()
        return result

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        return self._dispatch("on_save_checkpoint")(checkpoint)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        return self._dispatch("on_load_checkpoint")(checkpoint)

    def on_model_save(self, path: Path) -> None:
        return self._dispatch("on_model_save")(path)

    def on_val_start(self) -> None:
        return self._dispatch("on_val_start")()

    def on_val_batch_start(self, batch: Any, batch_idx: int) -> None:
        return self._dispatch("on_val_batch_start")(batch, batch_idx)

    def on_val_batch_end(self, batch: Any, batch_idx: int, outputs: dict[str, Any]) -> None:
        return self._dispatch("on_val_batch_end")(batch, batch_idx, outputs)

    def on_val_end(self) -> None:
        return self._dispatch("on_val_end")()

    def on_predict_start(self) -> None:
        return self._dispatch("on_predict_start")()

    def on_predict_batch_start(self, batch: Any, batch_idx: int) -> None:
        return self._dispatch("on_predict_batch_start")(batch, batch_idx)

    def on_predict_postprocess_end(self, batch: Any, batch_idx: int, outputs: Any) -> None:
        return self._dispatch("on_predict_postprocess_end")(batch, batch_idx, outputs)

    def on_predict_batch_end(self, batch: Any, batch_idx: int, outputs: Any) -> None:
        return self._dispatch("on_predict_batch_end")(batch, batch_idx, outputs)

    def on_predict_end(self) -> None:
        return self._dispatch("on_predict_end")()

    def on_export_start(self, format: str) -> None:
        return self._dispatch("on_export_start")(format)

    def on_export_end(self, format: str, path: Path) -> None:
        return self._dispatch("on_export_end")(format, path)

    def export_formats(self) -> list[list[str]]:
        result: list[list[str]] = self._dispatch("export_formats")()
        return result

    def export_model(self, model: torch.nn.Module, format: str, path: Path) -> tuple[object, str] | None:
        result: tuple[object, str] | None = self._dispatch("export_model")(model, format, path)
        return result
