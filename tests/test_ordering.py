"""Deliberate order: list order, tryfirst/trylast, wrappers; the fast path equals pluggy's calling."""

from __future__ import annotations

import subprocess
import sys

import pluggy
import pytest
import torch

import trainhooks
from trainhooks import loopmap


def _tagger(log: list[str], tag: str, **marker: bool):
    class Tag:
        @trainhooks.hookimpl(**marker)
        def on_train_epoch_start(self, trainer):
            log.append(tag)

        @trainhooks.hookimpl(**marker)
        def should_stop(self, trainer):
            log.append(f"stop:{tag}")

    Tag.__name__ = f"Tag_{tag}"
    return Tag()


def test_callbacks_run_in_list_order(make_trainer, loaders) -> None:
    log: list[str] = []

    def cb(tag):
        class C(trainhooks.Callback):
            def on_train_epoch_start(self, trainer):
                log.append(tag)

        return C()

    trainer = make_trainer(callbacks=[cb("a"), cb("b"), cb("c")], epochs=1)
    trainer.add_callback("on_train_epoch_start", lambda t: log.append("d"))
    trainer.add_callback("on_train_epoch_start", lambda t: log.append("e"))
    trainer.fit(*loaders)
    assert log == ["a", "b", "c", "d", "e"]
    assert trainer.plugin_manager.call_order("on_train_epoch_start") == [
        "C",
        "C#2",
        "C#3",
        "on_train_epoch_start:<lambda>",
        "on_train_epoch_start:<lambda>#2",
    ]


def test_tryfirst_and_trylast_groups_each_in_registration_order(make_trainer, loaders) -> None:
    log: list[str] = []
    plugins = [
        _tagger(log, "last1", trylast=True),
        _tagger(log, "plain1"),
        _tagger(log, "first1", tryfirst=True),
        _tagger(log, "plain2"),
        _tagger(log, "last2", trylast=True),
        _tagger(log, "first2", tryfirst=True),
    ]
    trainer = make_trainer(plugins=plugins, epochs=1)
    trainer.fit(*loaders)
    assert log[:6] == ["first1", "first2", "plain1", "plain2", "last1", "last2"]


def test_wrapper_runs_around_and_falls_back_to_pluggy(make_trainer, loaders) -> None:
    log: list[str] = []

    class Wrap:
        @trainhooks.hookimpl(wrapper=True)
        def on_train_epoch_start(self, trainer):
            log.append("before")
            result = yield
            log.append("after")
            return result

    trainer = make_trainer(plugins=[_tagger(log, "a"), Wrap(), _tagger(log, "b")], epochs=1)
    trainer.fit(*loaders)
    assert log[:4] == ["before", "a", "b", "after"]


def test_firstresult_wrapper_sees_the_result(make_trainer, loaders) -> None:
    class Veto:
        @trainhooks.hookimpl(wrapper=True)
        def should_stop(self, trainer):
            answer = yield
            return None if answer == "ignore me" else answer

    class Answers(trainhooks.Callback):
        def should_stop(self, trainer):
            return "ignore me" if trainer.global_step < 4 else "real stop"

    trainer = make_trainer(plugins=[Veto()], callbacks=[Answers()], epochs=5)
    result = trainer.fit(*loaders)
    assert result.global_step == 4 and result.stop_reason == "real stop"
    # Who answered is still known behind a wrapper (the callback, not the wrapper, and never "?").
    assert result.stopped_by == "Answers"


def _run_both_ways(trainer, name: str, **kwargs):
    """Call a hook through trainhooks' fast path and through pluggy's own caller."""
    plugin_manager = trainer.plugin_manager
    fast = getattr(trainer.hooks, name)(*kwargs.values())
    slow = getattr(plugin_manager.hook, name)(trainer=trainer, **kwargs)
    return fast, slow


@pytest.mark.parametrize("n", [0, 1, 5, 20])
def test_fast_path_is_equivalent_to_pluggy(make_trainer, n: int) -> None:
    calls: list[tuple[str, int, object]] = []

    class Impl:
        def __init__(self, i: int, marker: dict[str, bool]):
            self.i = i
            self.marker = marker

    plugins = []
    for i in range(n):
        marker = {"tryfirst": i % 5 == 1, "trylast": i % 5 == 2}

        def make(i=i, marker=marker):
            class P:
                @trainhooks.hookimpl(**marker)
                def on_train_batch_end(self, trainer, batch_idx, outputs):
                    calls.append(("batch_end", i, outputs["tag"]))

                @trainhooks.hookimpl(**marker)
                def should_stop(self, trainer):
                    calls.append(("should_stop", i, None))
                    return "stop" if i == n - 3 else None

                @trainhooks.hookimpl(**marker)
                def export_formats(self, trainer):
                    return [f"fmt{i}"] if i % 2 else None

            P.__name__ = f"P{i}"
            return P()

        plugins.append(make())
    trainer = make_trainer(plugins=plugins)

    batch = (torch.zeros(1), torch.zeros(1))
    for name, kwargs in [
        ("on_train_batch_end", {"batch": batch, "batch_idx": 0, "outputs": {"tag": "x"}}),
        ("should_stop", {}),
        ("export_formats", {}),
    ]:
        calls.clear()
        fast, slow = _run_both_ways(trainer, name, **kwargs)
        half = len(calls) // 2
        assert calls[:half] == calls[half:], name  # same functions, same order, same arguments
        if name == "should_stop":
            assert (fast[0] if fast else None) == slow
        elif name == "export_formats":
            assert fast == slow
        else:
            assert fast is None and slow == []


def test_rebuild_on_register_and_unregister(make_trainer, loaders) -> None:
    log: list[str] = []
    trainer = make_trainer(epochs=1)
    trainer.hooks.on_train_epoch_start()  # builds the no-op caller
    name = trainer.add_callback("on_train_epoch_start", lambda t: log.append("late"))
    trainer.hooks.on_train_epoch_start()
    assert log == ["late"]
    trainer.plugin_manager.unregister(name=name)
    trainer.hooks.on_train_epoch_start()
    assert log == ["late"]


def test_no_implementations_cost_a_shared_noop(make_trainer) -> None:
    from trainhooks.dispatch import _noop

    trainer = make_trainer()
    trainer.hooks.on_before_backward(torch.zeros(()))
    assert trainer.hooks.__dict__["on_before_backward"] is _noop


def test_pluggy_tracing_is_honoured(make_trainer, loaders) -> None:
    seen: list[str] = []
    trainer = make_trainer(epochs=1)
    trainer.add_callback("on_train_start", lambda t: None)
    undo = trainer.plugin_manager.add_hookcall_monitoring(lambda name, impls, kw: seen.append(name), lambda *a: None)
    trainer.hooks.invalidate()
    trainer.fit(*loaders)
    undo()
    assert "on_train_start" in seen and "on_train_batch_end" in seen


def test_loop_map_lists_plugins_in_call_order(make_trainer) -> None:
    log: list[str] = []
    trainer = make_trainer(plugins=[_tagger(log, "z"), _tagger(log, "a", tryfirst=True)])
    text = loopmap.render(trainer.plugin_manager)
    assert "on_train_epoch_start -> Tag_a, Tag_z" in text
    assert "on_after_backward -> (none)" in text
    assert text.index("on_train_batch_end") < text.index("on_train_epoch_end") < text.index("on_fit_epoch_end")


def test_pluggy_is_really_used() -> None:
    assert isinstance(trainhooks.PluginManager(), pluggy.PluginManager)


def test_the_plugin_manager_has_one_name(make_trainer) -> None:
    from trainhooks import plugin_manager

    trainer = make_trainer()
    assert type(trainer.plugin_manager) is trainhooks.PluginManager is plugin_manager.PluginManager
    assert "PluginManager" in trainhooks.__all__ and "PluginHost" not in trainhooks.__all__


@pytest.mark.parametrize(
    "old",
    [
        "import trainhooks; trainhooks.PluginHost",
        "from trainhooks.host import PluginHost",
        "from trainhooks.plugin_manager import PluginHost",
    ],
)
def test_the_old_name_still_works_and_says_it_is_deprecated(old: str) -> None:
    # A fresh interpreter with DeprecationWarning as an error: importing the trainer (which may
    # still say PluginHost inside trainhooks) passes, and the user's own use of the old name warns.
    code = (
        "import warnings; warnings.simplefilter('error', DeprecationWarning)\n"
        "import trainhooks.trainer, trainhooks.cli\n"
        "warnings.simplefilter('always')\n"
        "with warnings.catch_warnings(record=True) as got:\n"
        f"    exec({old!r})\n"
        "from trainhooks import plugin_manager, host\n"
        "assert plugin_manager.PluginHost is plugin_manager.PluginManager is host.PluginManager\n"
        "print([(w.category.__name__, str(w.message), w.filename) for w in got])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "('DeprecationWarning', 'PluginHost is deprecated: use trainhooks.PluginManager" in done.stdout
    assert "'<string>')" in done.stdout  # pointed at the code that asked for the old name
    assert done.stdout.count("DeprecationWarning") == 1
