"""The pytest plugin for plugin authors: the ``trainhooks_tester`` fixture and its RunResult.

The fixture is used here exactly as a plugin author would (it reaches this suite through the
``pytest11`` entry point of the installed trainhooks), and pytest's own ``pytester`` runs a
separate user test suite to show that it is registered under the name ``trainhooks``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
import torch

import trainhooks
from trainhooks.testing import RunResult, TrainhooksTester

from .test_fit_loop import expected_fit

pytest_plugins = ["pytester"]

SETUP = ["add_options", "configure"]
VAL = ["on_val_start", *["on_val_batch_start", "on_val_batch_end"] * 2, "on_val_end"]


class EpochCounter:
    """A small plugin under test: counts epochs, stops when told to."""

    def __init__(self, stop_after: int | None = None) -> None:
        self.epochs: list[int] = []
        self.stop_after = stop_after

    @trainhooks.hookimpl
    def on_train_epoch_end(self, trainer: Any) -> None:
        self.epochs.append(trainer.epoch)

    @trainhooks.hookimpl
    def should_stop(self, trainer: Any) -> str | None:
        if self.stop_after is not None and len(self.epochs) >= self.stop_after:
            return f"enough after {len(self.epochs)}"
        return None


def test_registered_through_the_pytest11_entry_point() -> None:
    found = {ep.name: ep.value for ep in metadata.entry_points(group="pytest11")}
    assert found.get("trainhooks") == "trainhooks.pytest_plugin"


def test_importing_the_plugin_stays_cheap() -> None:
    # pytest imports every pytest11 plugin in every session: this one must not pull in torch.
    code = (
        "import json, sys, trainhooks.pytest_plugin\n"
        "print(json.dumps([m for m in ('torch', 'sklearn', 'numpy', 'trainhooks.trainer') if m in sys.modules]))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == []


def test_fit_records_every_hook_in_order(trainhooks_tester: TrainhooksTester, tmp_path: Path) -> None:
    plugin = EpochCounter()
    result = trainhooks_tester.fit(plugin, epochs=2)
    assert isinstance(result, RunResult) and result.stage == "fit"
    assert result.names() == [*SETUP, *expected_fit(2, 3, 2)]
    assert plugin.epochs == [0, 1]
    assert result.plugins == ["EpochCounter"]  # only the plugin under test (and the hidden recorder)
    assert result.plugin_hooks("EpochCounter") == ["on_train_epoch_end", "should_stop"]
    assert result.fit_result.epochs_completed == 2 and not result.fit_result.stopped_early
    assert result.trainer.save_dir.is_relative_to(tmp_path)
    assert [c.kwargs["batch_idx"] for c in result.of("on_train_batch_start")] == [0, 1, 2, 0, 1, 2]
    assert result.first("on_before_optimizer_step").kwargs["optimizer"] is result.trainer.optimizer
    assert [c.epoch for c in result.of("on_fit_epoch_end")] == [0, 1]
    assert result.count("on_train_batch_end") == 6 and result.fired("teardown")
    assert set(result.metrics) == {"train/loss", "lr", "val/loss", "val/acc"}


def test_a_firstresult_answer_shows_in_the_fit_result(trainhooks_tester: TrainhooksTester) -> None:
    result = trainhooks_tester.fit(EpochCounter(stop_after=1), epochs=5)
    assert result.fit_result.stopped_early
    assert result.fit_result.stopped_by == "EpochCounter"
    assert result.fit_result.stop_reason == "enough after 1"
    assert result.count("on_train_epoch_end") == 1
    result.assert_order("on_fit_epoch_end", "on_train_end", "teardown")


def test_only_the_plugins_given_run(trainhooks_tester: TrainhooksTester) -> None:
    assert trainhooks_tester.fit(epochs=1).plugins == []  # installed plugins stay out
    by_name = trainhooks_tester.fit("torchscript", epochs=1)  # ...unless named: from the entry point
    assert by_name.plugins == ["torchscript"]
    assert by_name.plugin_hooks("torchscript") == ["export_formats", "export_model"]
    with pytest.raises(AssertionError, match="no plugin 'nope' is registered"):
        by_name.plugin_hooks("nope")
    with pytest.raises(trainhooks.UnknownPluginError, match="torchscript"):
        trainhooks_tester.fit("torchscrip")


def test_validate_and_predict(trainhooks_tester: TrainhooksTester) -> None:
    validated = trainhooks_tester.validate(EpochCounter())
    assert validated.stage == "validate"
    assert validated.names() == [*SETUP, *VAL, "teardown"]
    assert set(validated.output) == {"val/loss", "val/acc"}
    with pytest.raises(AttributeError, match="no FitResult"):
        _ = validated.fit_result

    predicted = trainhooks_tester.predict()
    assert predicted.output.shape == (64, 10)
    assert predicted.names() == [
        *SETUP,
        "on_predict_start",
        *["on_predict_batch_start", "on_predict_postprocess_end", "on_predict_batch_end"] * 2,
        "on_predict_end",
        "teardown",
    ]
    assert {c.stage for c in predicted.of("on_predict_batch_end")} == {"predict"}


def test_assertions_explain_what_happened(trainhooks_tester: TrainhooksTester) -> None:
    result = trainhooks_tester.fit(epochs=1)
    result.assert_fired("on_train_start", "teardown")
    result.assert_not_fired("on_exception", "on_predict_start")
    result.assert_order("on_train_start", "on_train_epoch_end", "on_fit_epoch_end", "on_train_end")
    result.assert_order("on_train_batch_start", "on_train_batch_start")  # the next call of the same hook

    with pytest.raises(AssertionError, match=r"hooks never fired: \['on_predict_start'\]; fired: .*x3"):
        result.assert_fired("on_predict_start")
    with pytest.raises(AssertionError, match=r"hooks fired but should not have: \['on_train_batch_end x3'\]"):
        result.assert_not_fired("on_train_batch_end")
    with pytest.raises(AssertionError, match="expected 'on_train_start' to fire after 'on_train_end'"):
        result.assert_order("on_train_end", "on_train_start")
    with pytest.raises(AssertionError, match="expected 'on_train_end' to fire after 'on_train_end'"):
        result.assert_order("on_train_end", "on_train_end")
    with pytest.raises(AssertionError, match="hook 'on_model_save' never fired"):
        result.first("on_model_save")
    # A misspelled hook is an error, not a silent zero.
    with pytest.raises(ValueError, match=r"'on_epoch_end' is not a trainhooks hook \(did you mean"):
        result.count("on_epoch_end")
    with pytest.raises(ValueError, match="not a trainhooks hook"):
        result.assert_order("on_train_start", "on_trian_end")


def test_last_keeps_a_run_that_raised(trainhooks_tester: TrainhooksTester) -> None:
    class Broken:
        @trainhooks.hookimpl
        def on_train_epoch_end(self) -> None:
            raise RuntimeError("boom")

    with pytest.raises(trainhooks.HookError, match="boom"):
        trainhooks_tester.fit(Broken())
    last = trainhooks_tester.last
    assert last is not None and last.output is None
    last.assert_order("on_train_batch_end", "on_exception", "teardown")
    # The recorder runs after the plugins, so the call that raised never reached it.
    last.assert_not_fired("on_train_epoch_end")
    error = last.first("on_exception").kwargs["exception"]
    assert isinstance(error, trainhooks.HookError) and error.plugin == "Broken"


def test_trainer_arguments_pass_through(trainhooks_tester: TrainhooksTester) -> None:
    seen: dict[str, Any] = {}

    class WithOption:
        @trainhooks.hookimpl
        def add_options(self, parser: Any) -> None:
            parser.add_option("--th-test-level", type=int, default=1)

        @trainhooks.hookimpl
        def configure(self, trainer: Any) -> None:
            seen["level"] = trainer.options["th_test_level"]

    model = torch.nn.Sequential(torch.nn.Linear(64, 10))
    result = trainhooks_tester.fit(WithOption(), epochs=1, options={"th_test_level": "3"}, model=model, seed=1)
    assert seen == {"level": 3}
    assert result.trainer.model is model
    callback = trainhooks.LambdaCallback(on_train_end=lambda trainer: seen.update(ended=True))
    trainhooks_tester.fit(epochs=1, callbacks=[callback], val_data=None)
    assert seen["ended"] is True
    assert trainhooks_tester.last is not None and not trainhooks_tester.last.fired("on_val_start")
    with pytest.raises(TypeError, match="positionally"):
        trainhooks_tester.fit(plugins=[WithOption()])


def test_resume_from_a_checkpoint(trainhooks_tester: TrainhooksTester) -> None:
    first = trainhooks_tester.fit(epochs=1)
    path = first.trainer.save_checkpoint(first.trainer.save_dir / "last.pt")
    resumed = trainhooks_tester.fit(epochs=2, resume=path)
    assert resumed.first("on_load_checkpoint").kwargs["checkpoint"]["epoch"] == 0
    assert resumed.fit_result.epochs_completed == 2 and resumed.count("on_train_epoch_start") == 1
    assert first.trainer.save_dir != resumed.trainer.save_dir


USER_PLUGIN = """
import trainhooks

@trainhooks.hookimpl
def on_fit_epoch_end(trainer):
    print(f"[greeter] epoch {trainer.epoch + 1} done")
"""

USER_TESTS = """
import greeter

def test_greets_every_epoch(trainhooks_tester, capsys):
    result = trainhooks_tester.fit(greeter, epochs=2)
    assert result.plugin_hooks("greeter") == ["on_fit_epoch_end"]
    assert result.count("on_fit_epoch_end") == 2
    assert capsys.readouterr().out.count("[greeter]") == 2

def test_writes_under_tmp_path(trainhooks_tester, tmp_path):
    assert trainhooks_tester.fit(greeter, epochs=1).trainer.save_dir.is_relative_to(tmp_path)
"""


def test_a_plugin_authors_test_suite(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(greeter=USER_PLUGIN, test_greeter=textwrap.dedent(USER_TESTS))
    pytester.syspathinsert()
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)

    fixtures = pytester.runpytest("--fixtures")
    fixtures.stdout.fnmatch_lines(["*trainhooks_tester*", "*Run tiny real fits*"])

    # Turned off by its entry-point name, the fixture is gone: it came from the plugin.
    off = pytester.runpytest("-p", "no:trainhooks", "-p", "no:cacheprovider")
    off.assert_outcomes(errors=2)
    off.stdout.fnmatch_lines(["*fixture 'trainhooks_tester' not found*"])
