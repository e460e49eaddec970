"""The typed facade calls exactly what pluggy's own calling would: same functions, order, arguments, results.

Each test builds a plugin manager with plugins that log every call, then calls each hook twice: through
``trainer.hooks`` (generated callers, or pluggy's caller where the facade falls back to it) and
through ``plugin_manager.hook.<name>(...)`` (pluggy itself), and compares the two logs and results.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
import torch

import trainhooks
from trainhooks.dispatch import HookProfile, _noop
from trainhooks.loops import STEP_HOOKS

BATCH = (torch.zeros(2, 3), torch.zeros(2, dtype=torch.int64))

# hook name -> keyword arguments other than trainer
CALLS: dict[str, dict[str, Any]] = {
    "on_train_batch_start": {"batch": BATCH, "batch_idx": 3},
    "on_before_backward": {"loss": torch.tensor(1.5)},
    "on_after_backward": {},
    "on_train_batch_end": {"batch": BATCH, "batch_idx": 3, "outputs": {"loss": torch.tensor(0.5)}},
    "should_stop": {},
    "export_formats": {},
    "on_fit_epoch_end": {},
}
FIRSTRESULT = {"should_stop"}
COLLECTING = {"export_formats"}


def _make_plugin(i: int, log: list[tuple[Any, ...]], *, marker: dict[str, bool], kind: str, returns: Any) -> Any:
    """A plugin implementing every hook of CALLS; ``kind`` is plain, wrapper or hookwrapper."""
    ns: dict[str, Any] = {}
    for hook, kwargs in CALLS.items():
        args = ["trainer", *kwargs]
        if kind == "plain":

            def impl(self: Any, *values: Any, _hook: str = hook) -> Any:
                log.append((_hook, i, tuple(id(v) for v in values)))
                value = returns(_hook) if callable(returns) else returns
                return value

        elif kind == "wrapper":

            def impl(self: Any, *values: Any, _hook: str = hook) -> Any:
                log.append((_hook, i, "before"))
                result = yield
                log.append((_hook, i, "after", repr(result)))
                return result

        else:

            def impl(self: Any, *values: Any, _hook: str = hook) -> Any:
                log.append((_hook, i, "old-before"))
                outcome = yield
                log.append((_hook, i, "old-after", repr(outcome.get_result())))

        # pluggy reads argument names from the signature: give each impl the hook's own names
        params = ", ".join(("self", *args))
        body = f"_impl(self, {', '.join(args)})"
        body = f"(yield from {body})" if kind != "plain" else body
        scope: dict[str, Any] = {"_impl": impl}
        exec(f"def {hook}({params}):\n    return {body}\n", scope)
        fn = scope[hook]
        opts = dict(marker)
        if kind == "wrapper":
            opts["wrapper"] = True
        elif kind == "hookwrapper":
            opts["hookwrapper"] = True
        ns[hook] = trainhooks.hookimpl(**opts)(fn)
    cls = type(f"P{i}", (), ns)
    return cls()


def _compare(trainer: trainhooks.Trainer, log: list[tuple[Any, ...]], hooks: Any = None) -> None:
    plugin_manager = trainer.plugin_manager
    for hook, kwargs in CALLS.items():
        log.clear()
        fast = getattr(hooks or trainer.hooks, hook)(*kwargs.values())
        fast_log = list(log)
        log.clear()
        slow = getattr(plugin_manager.hook, hook)(trainer=trainer, **kwargs)
        assert fast_log == log, hook
        if hook in FIRSTRESULT:
            assert (None if fast is None else fast[0]) == slow, hook
            if fast is not None:  # both paths (generated, and pluggy's with wrappers) name the plugin
                assert fast[1] in plugin_manager.call_order(hook), (hook, fast)
                answering = plugin_manager.get_plugin(fast[1])
                if hook == "should_stop":
                    assert fast[0] == f"stop{type(answering).__name__[1:]}", (fast, type(answering).__name__)
        elif hook in COLLECTING:
            assert fast == slow, hook
        else:
            assert fast is None, hook


def _returns(i: int) -> Any:
    def value(hook: str) -> Any:
        if hook == "should_stop":
            return f"stop{i}" if i % 3 == 2 else None
        if hook == "export_formats":
            return [f"fmt{i}"] if i % 2 else None
        return i

    return value


MARKERS = [{}, {"tryfirst": True}, {"trylast": True}]


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("wrappers", ["none", "wrapper", "hookwrapper", "both"])
def test_facade_equals_pluggy(make_trainer, seed: int, wrappers: str) -> None:
    rng = random.Random(seed)
    log: list[tuple[Any, ...]] = []
    kinds = {"none": [], "wrapper": ["wrapper"], "hookwrapper": ["hookwrapper"], "both": ["wrapper", "hookwrapper"]}
    plugins = []
    for i in range(rng.randint(1, 12)):
        plugins.append(_make_plugin(i, log, marker=rng.choice(MARKERS), kind="plain", returns=_returns(i)))
    for j, kind in enumerate(kinds[wrappers]):
        plugins.insert(
            rng.randint(0, len(plugins)),
            _make_plugin(100 + j, log, marker=rng.choice(MARKERS), kind=kind, returns=None),
        )
    trainer = make_trainer(plugins=plugins)
    _compare(trainer, log)
    if wrappers == "none":
        assert trainer.hooks.__dict__["on_after_backward"] is not _noop
    # the same again after a plugin leaves and another joins, and while profiling
    trainer.plugin_manager.unregister(plugins[0])
    trainer.plugin_manager.register(
        _make_plugin(50, log, marker={"tryfirst": True}, kind="plain", returns=_returns(50))
    )
    _compare(trainer, log)
    profile = trainer.hooks.enable_profiling()
    _compare(trainer, log)
    assert profile.stats, "profiling recorded nothing"


def test_no_implementations_use_the_noop_and_match_pluggy(make_trainer) -> None:
    trainer = make_trainer()
    _compare(trainer, [])
    assert trainer.hooks.__dict__["on_train_batch_end"] is _noop


def test_blocked_plugins_are_not_called_and_unblocked_ones_come_back(make_trainer) -> None:
    log: list[tuple[Any, ...]] = []
    plugins = [_make_plugin(i, log, marker={}, kind="plain", returns=_returns(i)) for i in range(4)]
    trainer = make_trainer(plugins=plugins)
    plugin_manager = trainer.plugin_manager
    trainer.hooks.on_after_backward()  # build the callers first: blocking must rebuild them
    name = plugin_manager.get_name(plugins[1])
    plugin_manager.set_blocked(name)
    log.clear()
    trainer.hooks.on_after_backward()
    assert [entry[1] for entry in log] == [0, 2, 3]
    _compare(trainer, log)
    with pytest.raises(trainhooks.PluginError):
        plugin_manager.register(plugins[1], name)
    assert plugin_manager.unblock(name)
    plugin_manager.register(plugins[1], name)
    log.clear()
    trainer.hooks.on_after_backward()
    assert [entry[1] for entry in log] == [0, 2, 3, 1]  # re-registered: last in its group
    _compare(trainer, log)


def test_historic_configure_is_replayed_to_late_plugins(make_trainer) -> None:
    seen: list[str] = []

    class Early:
        @trainhooks.hookimpl
        def configure(self, trainer):
            seen.append("early")

    class Late:
        @trainhooks.hookimpl
        def configure(self, trainer):
            seen.append(f"late:{type(trainer).__name__}")

    trainer = make_trainer(plugins=[Early()])
    assert seen == ["early"]
    trainer.plugin_manager.register(Late())
    assert seen == ["early", "late:Trainer"]  # pluggy's historic replay, through the facade's call


def _rank_plugins(log: list[tuple[Any, ...]], with_wrapper: bool) -> list[Any]:
    plugins = []
    for i in range(5):
        p = _make_plugin(i, log, marker=MARKERS[i % 3], kind="plain", returns=_returns(i))
        if i % 2 == 0:
            type(p).rank_zero_only = True
        plugins.append(p)
    if with_wrapper:
        plugins.append(_make_plugin(9, log, marker={}, kind="wrapper", returns=None))
    return plugins


@pytest.mark.parametrize("with_wrapper", [False, True])
def test_rank_zero_only_plugins_are_skipped_on_other_ranks(make_trainer, monkeypatch, with_wrapper: bool) -> None:
    log: list[tuple[Any, ...]] = []
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    plugins = _rank_plugins(log, with_wrapper)
    trainer = make_trainer(plugins=plugins)
    assert not trainer.is_global_zero
    plugin_manager = trainer.plugin_manager
    skipped = [p for p in plugins if getattr(p, "rank_zero_only", False)]
    for hook, kwargs in CALLS.items():
        log.clear()
        fast = getattr(trainer.hooks, hook)(*kwargs.values())
        fast_log = list(log)
        log.clear()
        slow = plugin_manager.subset_hook_caller(hook, skipped)(trainer=trainer, **kwargs)
        assert fast_log == log, hook
        assert {entry[1] for entry in fast_log}.isdisjoint({0, 2, 4}), hook
        if hook in FIRSTRESULT:
            assert (None if fast is None else fast[0]) == slow
        elif hook in COLLECTING:
            assert fast == slow


def test_profiling_changes_no_call_and_counts_every_call(make_trainer) -> None:
    log: list[tuple[Any, ...]] = []
    plugins = [_make_plugin(i, log, marker=MARKERS[i % 3], kind="plain", returns=_returns(i)) for i in range(4)]
    trainer = make_trainer(plugins=plugins)
    results_off, logs_off = [], []
    for hook, kwargs in CALLS.items():
        log.clear()
        results_off.append(getattr(trainer.hooks, hook)(*kwargs.values()))
        logs_off.append(list(log))
    profile = trainer.hooks.enable_profiling(HookProfile())
    results_on, logs_on = [], []
    for hook, kwargs in CALLS.items():
        log.clear()
        results_on.append(getattr(trainer.hooks, hook)(*kwargs.values()))
        logs_on.append(list(log))
    assert results_on == results_off and logs_on == logs_off
    for hook, calls in zip(CALLS, logs_on):
        for plugin_index in {entry[1] for entry in calls}:
            name = trainer.plugin_manager.get_name(plugins[plugin_index])
            assert profile.stats[(name, hook)].calls == 1, (name, hook)


def test_profiling_times_wrapped_hooks_as_one_row(make_trainer, loaders) -> None:
    log: list[tuple[Any, ...]] = []
    plugins = [
        _make_plugin(0, log, marker={}, kind="plain", returns=None),
        _make_plugin(1, log, marker={}, kind="wrapper", returns=None),
    ]
    trainer = make_trainer(plugins=plugins, epochs=1, profile_hooks=True)
    trainer.fit(*loaders)
    rows = {(s.plugin, s.hook): s for s in trainer.hook_profile.rows()}
    row = rows[("P1+P0 (wrapped)", "on_train_batch_end")]  # call order: the wrapper first
    assert row.calls == len(loaders[0]) and row.total_ns > 0


def test_errors_name_the_plugin_on_both_paths(make_trainer) -> None:
    class Boom:
        @trainhooks.hookimpl
        def on_after_backward(self):
            raise ValueError("boom")

    class Wrap:
        @trainhooks.hookimpl(wrapper=True)
        def on_after_backward(self):
            return (yield)

    for extra in ([], [Wrap()]):
        trainer = make_trainer(plugins=[Boom(), *extra])
        with pytest.raises(trainhooks.HookError) as info:
            trainer.hooks.on_after_backward()
        assert info.value.plugin == "Boom" and info.value.hook == "on_after_backward"
        assert isinstance(info.value.__cause__, ValueError)


def test_fit_fires_the_same_hooks_in_the_same_order_as_pluggy(make_trainer, loaders) -> None:
    """A whole run through the facade, recorded, equals replaying its calls through pluggy."""
    log: list[tuple[Any, ...]] = []
    plugins = [_make_plugin(i, log, marker=MARKERS[i % 3], kind="plain", returns=None) for i in range(3)]
    trainer = make_trainer(plugins=plugins, epochs=2)
    trainer.fit(*loaders)
    per_hook = {hook: [e for e in log if e[0] == hook] for hook in CALLS}
    order = trainer.plugin_manager.call_order("on_train_batch_end")
    expected = [int(name[1:]) for name in order]
    for hook, entries in per_hook.items():
        if hook in ("export_formats",):
            continue
        called = [e[1] for e in entries]
        groups = [called[k : k + 3] for k in range(0, len(called), 3)]
        assert groups and all(g == expected for g in groups), hook
    assert len(per_hook["on_train_batch_end"]) == 3 * 2 * len(loaders[0])
    assert [e[1] for e in per_hook["should_stop"]][:3] == expected


def test_a_facade_method_captured_early_does_not_rebuild_on_every_call(make_trainer) -> None:
    trainer = make_trainer(plugins=_rank_plugins([], with_wrapper=False))
    early = trainer.hooks.should_stop  # the class's method: bound before any caller exists
    builds = trainer.hooks.builds
    for _ in range(5):
        early()
    assert trainer.hooks.builds == builds + 1


def test_a_plugin_registered_mid_epoch_while_the_step_hooks_were_skipped_is_called(
    make_trainer, loaders, late_registrar
) -> None:
    # No plugin implements a step hook, so the loop skips their calls; a plugin registered by a
    # validation hook in the middle of the epoch is asked should_stop in that very step, and gets
    # every step hook from the next step on.
    from trainhooks.testing import HookRecorder

    late = HookRecorder()

    registrar = late_registrar(late, lambda t: t.global_step == 1)
    trainer = make_trainer(plugins=[registrar], epochs=1, val_every_n_steps=1)
    assert trainer.hooks.unimplemented(STEP_HOOKS)
    trainer.fit(*loaders)
    steps = len(loaders[0])
    assert [c.global_step for c in late.of("should_stop")][:2] == [1, 2], "asked in the step it arrived in"
    for hook in STEP_HOOKS[:-1]:
        assert len(late.of(hook)) == steps - 1, hook
    assert not trainer.hooks.unimplemented(STEP_HOOKS)


@pytest.mark.parametrize("epoch", [0, 1])
def test_a_plugin_registered_mid_epoch_gets_the_batch_start_hook_from_the_next_batch(
    make_trainer, loaders, late_registrar, epoch
) -> None:
    # The batch preamble skips on_train_batch_start while nobody implements it, and looks its
    # caller up again when plugins change: in the first epoch and in later ones alike.
    from trainhooks.testing import HookRecorder

    late = HookRecorder()

    registrar = late_registrar(late, lambda t: t.epoch == epoch and t.batch_idx == 0)
    trainer = make_trainer(plugins=[registrar], epochs=2, val_every_n_steps=1)
    assert trainer.hooks.active("on_train_batch_start") is None
    trainer.fit(*loaders)
    steps = len(loaders[0])
    started = [(c.epoch, c.kwargs["batch_idx"]) for c in late.of("on_train_batch_start")]
    expected = [(e, b) for e in range(epoch, 2) for b in range(steps) if (e, b) > (epoch, 0)]
    assert started == expected
