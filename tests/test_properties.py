"""Property-based: random plugin sets and random should_stop answers never break the invariants:
hooks pair up, on_train_end and teardown run exactly once, the last checkpoint always loads and
holds the last completed step."""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import trainhooks
from trainhooks import checkpointing
from trainhooks.testing import HookRecorder, tiny_digits, tiny_model

BUILTINS = ["checkpoint", "csv", "lr", "nan_guard", "early_stopping", "plot", "progress", "timer"]
ANSWERS = st.sampled_from([None, None, None, None, False, "stop: plugin said so", True])


class Scripted(trainhooks.Callback):
    """Answers should_stop from a script, one answer per consultation."""

    def __init__(self, script: list[object]) -> None:
        self.script = list(script)
        self.calls = 0

    def should_stop(self, trainer):
        answer = self.script[self.calls] if self.calls < len(self.script) else None
        self.calls += 1
        return answer


@st.composite
def scenarios(draw):
    return {
        "builtins": sorted(draw(st.sets(st.sampled_from(BUILTINS)))),
        "scripts": draw(st.lists(st.lists(ANSWERS, max_size=15), max_size=3)),
        "epochs": draw(st.integers(1, 3)),
        "every": draw(st.integers(0, 4)),
        "with_val": draw(st.booleans()),
    }


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario=scenarios())
def test_invariants_hold_for_any_plugins_and_answers(scenario) -> None:
    train, val = tiny_digits(n_train=64, n_val=32, batch_size=16)
    with tempfile.TemporaryDirectory() as tmp:
        save_dir = Path(tmp) / "run"
        rec = HookRecorder()
        options = {}
        if "checkpoint" in scenario["builtins"]:
            options["save_every_n_steps"] = scenario["every"]
        if "early_stopping" in scenario["builtins"]:
            options.update(patience=1, es_monitor="train/loss")
        if "timer" in scenario["builtins"]:
            options["max_time"] = "1h"
        trainer = trainhooks.Trainer(
            tiny_model(),
            loss_fn=torch.nn.CrossEntropyLoss(),
            epochs=scenario["epochs"],
            save_dir=save_dir,
            plugins=[*scenario["builtins"], rec],
            callbacks=[Scripted(s) for s in scenario["scripts"]],
            default_plugins=False,
            options=options,
            verbose=False,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = trainer.fit(train, val if scenario["with_val"] else None)

        names = rec.names()
        for once in (
            "on_pretrain_routine_start",
            "on_pretrain_routine_end",
            "on_train_start",
            "on_train_end",
            "teardown",
        ):
            assert names.count(once) == 1, once
        assert names[-1] == "teardown" and names[-2] == "on_train_end"
        epochs = len(result.history)
        assert 1 <= epochs <= scenario["epochs"]
        assert names.count("on_train_epoch_start") == names.count("on_train_epoch_end") == epochs
        assert names.count("on_fit_epoch_end") == epochs
        assert names.count("on_val_start") == names.count("on_val_end") == (epochs if scenario["with_val"] else 0)
        assert names.count("on_train_batch_start") == names.count("on_train_batch_end") == result.global_step
        assert names.count("on_before_backward") == names.count("on_after_backward") == result.global_step
        assert result.stop_reason and (result.stopped_early or result.epochs_completed == scenario["epochs"])
        if "checkpoint" in scenario["builtins"]:
            last = checkpointing.load_checkpoint(save_dir / "weights" / "last.pt")
            # last.pt is the state after the last completed step, whatever stopped the run: a
            # stale file (written once, then never again) would resume from an older point.
            assert last["global_step"] == result.global_step
            assert last["epoch"] == epochs - 1
            assert last["history"] == result.history
