"""The loop controls (issue 13 §2-3, ``trainhooks.controls``) with real training: gradient
accumulation, max/min length, validation frequency, batch limits, per-step logging (``on_log``),
dry runs, ``torch.compile``, determinism, their CLI flags and the end-of-fit summary line."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import trainhooks
from trainhooks import Trainer, checkpointing
from trainhooks.errors import ConfigError
from trainhooks.loops import STEP_HOOKS
from trainhooks.plugins.checkpoint import ModelCheckpoint
from trainhooks.plugins.early_stopping import EarlyStopping
from trainhooks.plugins.lr_scheduler import LRScheduler
from trainhooks.testing import HookRecorder, tiny_digits, tiny_model

REPO = Path(__file__).resolve().parents[1]


def digits(n_train: int = 160, batch_size: int = 32, *, shuffle: bool = True, n_val: int = 64) -> tuple[Any, Any]:
    """(train, val) digits loaders; ``shuffle=False`` keeps the sample order fixed."""
    train, val = tiny_digits(n_train=n_train, n_val=n_val, batch_size=batch_size)
    if not shuffle:
        train = torch.utils.data.DataLoader(train.dataset, batch_size=batch_size, shuffle=False)
    return train, val


def weights(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in trainer.unwrapped_model.state_dict().items()}


def sgd(model: torch.nn.Module, lr: float = 0.1) -> torch.optim.Optimizer:
    return torch.optim.SGD(model.parameters(), lr=lr)


class StopAsked(trainhooks.Callback):
    """Asks to stop once, at the first step >= ``at_step`` (or epoch end, with ``at_epoch_end``)."""

    def __init__(self, at_step: int | None = None, *, at_epoch_end: bool = False) -> None:
        self.at_step, self.at_epoch_end, self.asked_at = at_step, at_epoch_end, None

    def should_stop(self, trainer: Trainer) -> str | None:
        if self.asked_at is not None:
            return None  # asked once only
        in_batch = trainer._log.in_batch_loop
        if self.at_epoch_end and in_batch:
            return None
        if self.at_step is not None and trainer.global_step < self.at_step:
            return None
        self.asked_at = trainer.global_step
        return "enough"


# ====================================================================== gradient accumulation
def test_accumulation_steps_once_per_group_and_the_last_partial_group_too(make_trainer) -> None:
    train, val = digits(n_train=160)  # 5 batches an epoch: groups of 2, 2 and 1
    recorder = HookRecorder()
    model = tiny_model()
    opt = sgd(model)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=100)
    trainer = make_trainer(
        model=model,
        optimizer=opt,
        lr_scheduler=sched,
        plugins=[LRScheduler(), recorder],
        accumulate_grad_batches=2,
        epochs=2,
    )
    result = trainer.fit(train, val)
    assert recorder.count("on_train_microbatch_end") == 10
    assert recorder.count("on_train_batch_start") == 10
    for hook in ("on_before_optimizer_step", "optimizer_step", "on_before_zero_grad", "on_train_batch_end"):
        assert recorder.count(hook) == 6, hook
    assert trainer.global_step == result.global_step == 6
    assert sched.last_epoch == 6  # the per-step scheduler stepped once per optimizer step
    # the micro-batches of a group share the step count; batch_idx counts micro-batches
    micro = recorder.of("on_train_microbatch_end")
    assert [c.kwargs["batch_idx"] for c in micro[:5]] == [0, 1, 2, 3, 4]
    assert [c.global_step for c in micro[:5]] == [0, 0, 1, 1, 2]
    assert [c.kwargs["batch_idx"] for c in recorder.of("on_train_batch_end")[:3]] == [1, 3, 4]


def test_accumulated_train_loss_is_the_mean_over_micro_batches(make_trainer) -> None:
    train, val = digits(n_train=128)  # 4 equal batches: 2 groups of 2
    recorder = HookRecorder()
    trainer = make_trainer(plugins=[recorder], accumulate_grad_batches=2, epochs=1, log_every_n_steps=1)
    trainer.fit(train, val)
    micro = [float(c.kwargs["outputs"]["loss"]) for c in recorder.of("on_train_microbatch_end")]
    stepped = [float(c.kwargs["outputs"]["loss"]) for c in recorder.of("on_train_batch_end")]
    assert stepped == pytest.approx([(micro[0] + micro[1]) / 2, (micro[2] + micro[3]) / 2], rel=1e-6)
    logged = [c.kwargs["metrics"]["train/loss"] for c in recorder.of("on_log") if not c.kwargs["epoch_end"]]
    assert logged == pytest.approx(stepped, rel=1e-6)
    assert trainer.history[0]["train/loss"] == pytest.approx(sum(micro) / 4, rel=1e-6)


def test_accumulation_without_step_hook_plugins_logs_and_trains_as_with_them(make_trainer, tmp_path) -> None:
    # With no plugin on a step hook the accumulation loop skips their calls and the group mean
    # only they read; per-step logging still gets the mean, and training is the same.
    class OnLog:
        def __init__(self) -> None:
            self.logged: list[float] = []

        @trainhooks.hookimpl
        def on_log(self, metrics, step, epoch_end) -> None:
            if not epoch_end:
                self.logged.append(metrics["train/loss"])

    runs = {}
    for name, extra in (("quiet", []), ("recorded", [HookRecorder()])):
        log = OnLog()
        trainer = make_trainer(
            model=(m := tiny_model()),
            optimizer=torch.optim.SGD(m.parameters(), lr=0.1),
            plugins=[log, *extra],
            accumulate_grad_batches=2,
            epochs=2,
            log_every_n_steps=1,
            save_dir=tmp_path / name,
        )
        if name == "quiet":
            assert trainer.hooks.unimplemented(STEP_HOOKS)
        trainer.fit(*digits(n_train=160, shuffle=False))  # 5 batches: groups of 2, 2 and 1
        runs[name] = (log.logged, trainer.history, weights(trainer))
    (q_logged, q_history, q_weights), (r_logged, r_history, r_weights) = runs["quiet"], runs["recorded"]
    assert len(q_logged) == 6 and q_logged == r_logged
    assert q_history == r_history
    assert all(torch.equal(q_weights[k], r_weights[k]) for k in q_weights)


def test_a_plugin_registered_mid_epoch_under_accumulation_is_called_from_then_on(make_trainer, late_registrar) -> None:
    late = HookRecorder()

    registrar = late_registrar(late, lambda t: t.global_step == 1)
    trainer = make_trainer(plugins=[registrar], accumulate_grad_batches=2, epochs=1, val_every_n_steps=1)
    trainer.fit(*digits(n_train=160, shuffle=False))  # 5 micro-batches, steps after 2, 4 and 5
    # asked in the step it arrived in, after each step, and at the epoch end
    assert [c.global_step for c in late.of("should_stop")] == [1, 2, 3, 3]
    assert [c.kwargs["batch_idx"] for c in late.of("on_train_microbatch_end")] == [2, 3, 4]
    assert [c.kwargs["batch_idx"] for c in late.of("on_train_batch_end")] == [3, 4]
    assert late.count("on_before_optimizer_step") == 2


def test_two_micro_batches_of_b_step_like_one_batch_of_2b(make_trainer, tmp_path) -> None:
    accumulated = make_trainer(
        model=(m := tiny_model()), optimizer=sgd(m), accumulate_grad_batches=2, epochs=1, save_dir=tmp_path / "a"
    )
    accumulated.fit(digits(n_train=128, batch_size=16, shuffle=False)[0])
    plain = make_trainer(model=(m2 := tiny_model()), optimizer=sgd(m2), epochs=1, save_dir=tmp_path / "b")
    plain.fit(digits(n_train=128, batch_size=32, shuffle=False)[0])
    assert accumulated.global_step == plain.global_step == 4
    a, b = weights(accumulated), weights(plain)
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6)
    # and the comparison can fail: without accumulation, batch 16 takes 8 different steps
    unaccumulated = make_trainer(model=(m3 := tiny_model()), optimizer=sgd(m3), epochs=1, save_dir=tmp_path / "c")
    unaccumulated.fit(digits(n_train=128, batch_size=16, shuffle=False)[0])
    assert not torch.allclose(weights(unaccumulated)["0.weight"], b["0.weight"], atol=1e-4)


class CrashAt(trainhooks.Callback):
    """A crash in the given hook at the given optimizer step (a real failure mid-epoch)."""

    def __init__(self, step: int, hook: str = "on_train_batch_end") -> None:
        self.step, self.hook = step, hook

    def on_train_batch_end(self, trainer: Trainer) -> None:
        if self.hook == "on_train_batch_end" and trainer.global_step == self.step:
            raise RuntimeError(f"simulated crash at step {trainer.global_step}")

    def on_train_microbatch_end(self, trainer: Trainer, batch_idx: int) -> None:
        if self.hook == "on_train_microbatch_end" and trainer.global_step == self.step and batch_idx % 2 == 0:
            raise RuntimeError(f"simulated crash inside the group after step {trainer.global_step}")


def accumulation_run(save_dir: Path, *, crash: CrashAt | None = None, resume: Any = None) -> Trainer:
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Dropout(0.2), torch.nn.Linear(32, 10)
    )
    train, val = tiny_digits(n_train=224, n_val=64, batch_size=32, seed=1)  # 7 batches: 4 steps an epoch
    trainer = Trainer(
        model,
        loss_fn=torch.nn.CrossEntropyLoss(),
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-2),
        epochs=3,
        save_dir=save_dir,
        seed=5,
        accumulate_grad_batches=2,
        plugins=[ModelCheckpoint(every_n_steps=3)],
        callbacks=[crash] if crash else [],
        default_plugins=False,
        verbose=False,
    )
    try:
        trainer.fit(train, val, resume=resume)
    except trainhooks.HookError:
        if crash is None:
            raise
    return trainer


@pytest.fixture(scope="module")
def accumulated_reference(tmp_path_factory) -> Trainer:
    return accumulation_run(tmp_path_factory.mktemp("ref") / "run")


def same_weights(a: Trainer, b: Trainer) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.model.state_dict().values(), b.model.state_dict().values()))


def test_accumulation_resumes_bitwise_from_a_mid_epoch_step_checkpoint(tmp_path, accumulated_reference) -> None:
    accumulation_run(tmp_path / "run", crash=CrashAt(7))  # epoch 2, after its 3rd step
    weights_dir = tmp_path / "run" / "weights"
    (weights_dir / "emergency.pt").unlink()  # resume from the every-3-steps checkpoint (step 6)
    saved = checkpointing.load_checkpoint(weights_dir / "last.pt")
    assert saved["global_step"] == 6 and saved["progress"]["batches_done"] == 4  # mid-epoch 2
    resumed = accumulation_run(tmp_path / "run", resume=weights_dir / "last.pt")
    assert resumed.global_step == accumulated_reference.global_step == 12
    assert same_weights(resumed, accumulated_reference)
    assert resumed.history == accumulated_reference.history


def test_accumulation_crash_inside_a_group_resumes_at_the_groups_start(tmp_path, accumulated_reference) -> None:
    # The crash comes after the first micro-batch of step 6's group: the emergency checkpoint
    # holds the weights of step 5 and resumes at the group's first batch. That is the documented
    # boundary: the group is recomputed with the random state of the crash (not of the group's
    # start), so with dropout the weights are not bitwise those of the uninterrupted run.
    accumulation_run(tmp_path / "run", crash=CrashAt(5, "on_train_microbatch_end"))
    emergency = tmp_path / "run" / "weights" / "emergency.pt"
    saved = checkpointing.load_checkpoint(emergency)
    assert saved["global_step"] == 5 and saved["progress"]["batches_done"] == 2
    assert len(saved["progress"]["losses"]) == 2
    resumed = accumulation_run(tmp_path / "run", resume=emergency)
    assert resumed.global_step == 12
    assert resumed.history[0] == accumulated_reference.history[0]
    assert len(resumed.history) == 3


# ====================================================================== length: max / min
def test_max_steps_stops_mid_epoch_as_the_planned_end(make_trainer) -> None:
    recorder = HookRecorder()
    trainer = make_trainer(plugins=[recorder], max_steps=7, epochs=5)
    result = trainer.fit(*digits(n_train=160))  # 5 steps an epoch: step 7 is in epoch 2
    assert result.global_step == 7 and recorder.count("on_train_batch_end") == 7
    assert result.stop_reason == "reached max_steps (7 steps)"
    assert result.stopped_early is False and trainer.stopped_early is False
    assert result.epochs_completed == 2 and not trainer.epoch_completed


def test_max_steps_counts_optimizer_steps_under_accumulation(make_trainer) -> None:
    recorder = HookRecorder()
    trainer = make_trainer(plugins=[recorder], max_steps=3, accumulate_grad_batches=2, epochs=5)
    trainer.fit(*digits(n_train=160))
    assert trainer.global_step == 3 and recorder.count("on_train_microbatch_end") == 5  # groups 2 + 2 + 1


def test_a_stop_before_min_epochs_is_deferred_says_so_and_takes_effect(make_trainer, caplog) -> None:
    asker = StopAsked(at_epoch_end=True)  # asks once, at the end of epoch 1
    trainer = make_trainer(callbacks=[asker], min_epochs=3, epochs=6)
    with caplog.at_level("WARNING", logger="trainhooks"):
        result = trainer.fit(*digits(n_train=64))
    assert asker.asked_at == 2  # epoch 1 of 2 steps
    assert "stop deferred" in caplog.text and "min_epochs=3 is not reached (1 done)" in caplog.text
    assert result.epochs_completed == 3 and result.stopped_early
    assert result.stop_reason == "enough"


def test_a_deferred_stop_survives_a_resume(make_trainer, tmp_path) -> None:
    # 2 steps an epoch; the stop asked for at the end of epoch 1 waits for min_epochs=3
    first = make_trainer(callbacks=[StopAsked(at_epoch_end=True)], min_epochs=3, epochs=6, max_steps=3)
    first.fit(*digits(n_train=64))
    assert first.stop_reason == "reached max_steps (3 steps)"  # cut short in epoch 2
    saved = tmp_path / "cut.pt"
    first.save_checkpoint(saved)
    assert checkpointing.load_checkpoint(saved)["stop_deferred"] == {"value": "enough", "plugin": "StopAsked"}
    # the same plugin, which will not ask again: the request it made before still counts
    resumed = make_trainer(callbacks=[StopAsked(at_step=10**9)], min_epochs=3, epochs=6, save_dir=tmp_path / "r")
    result = resumed.fit(*digits(n_train=64), resume=saved)
    assert result.epochs_completed == 3 and result.stopped_early
    assert result.stop_reason == "enough" and resumed.stopped_by == "StopAsked"
    # left out of the resumed run, the plugin's request goes with it
    without = make_trainer(min_epochs=3, epochs=6, save_dir=tmp_path / "without")
    assert without.fit(*digits(n_train=64), resume=saved).epochs_completed == 6


def test_a_malformed_deferred_stop_in_a_checkpoint_is_refused(make_trainer, tmp_path) -> None:
    trainer = make_trainer()
    state = trainer.state_checkpoint(fire_hooks=False)
    state["stop_deferred"] = {"value": 3, "plugin": "StopAsked"}
    torch.save(state, tmp_path / "bad.pt")
    with pytest.raises(trainhooks.errors.CheckpointError, match="field 'stop_deferred' must be None or a dict"):
        checkpointing.load_checkpoint(tmp_path / "bad.pt")


def test_a_stop_before_min_steps_is_deferred_until_the_step(make_trainer, caplog) -> None:
    asker = StopAsked(at_step=1)  # asks once, after the first step
    trainer = make_trainer(callbacks=[asker], min_steps=8, epochs=6)
    with caplog.at_level("WARNING", logger="trainhooks"):
        result = trainer.fit(*digits(n_train=160))
    assert asker.asked_at == 1
    assert "min_steps=8 is not reached (1 done)" in caplog.text
    assert result.global_step == 8 and result.stopped_early and result.stop_reason == "enough"
    assert result.epochs_completed == 2  # step 8 is inside epoch 2


def test_a_request_repeated_at_every_step_is_deferred_with_one_message(make_trainer, caplog) -> None:
    class Always(trainhooks.Callback):
        def should_stop(self) -> str:
            return "always"

    with caplog.at_level("WARNING", logger="trainhooks"):
        result = make_trainer(callbacks=[Always()], min_steps=4, epochs=3).fit(*digits(n_train=96))
    assert caplog.text.count("stop deferred") == 1
    assert result.global_step == 4 and result.stop_reason == "always"


def test_without_a_minimum_the_same_request_stops_at_once(make_trainer) -> None:
    result = make_trainer(callbacks=[StopAsked(at_step=1)], epochs=6).fit(*digits(n_train=160))
    assert result.global_step == 1 and result.stop_reason == "enough"


# ====================================================================== validation frequency
def test_val_every_n_epochs_validates_only_those_epochs(make_trainer) -> None:
    recorder = HookRecorder()
    trainer = make_trainer(plugins=[recorder], val_every_n_epochs=2, epochs=4)
    trainer.fit(*digits(n_train=64))
    assert [c.epoch for c in recorder.of("on_val_start")] == [1, 3]
    assert ["val/loss" in row for row in trainer.history] == [False, True, False, True]


def test_monitors_of_val_loss_cope_with_epochs_without_validation(make_trainer, tmp_path) -> None:
    model = tiny_model()
    opt = sgd(model)
    trainer = make_trainer(
        model=model,
        optimizer=opt,
        lr_scheduler=torch.optim.lr_scheduler.ReduceLROnPlateau(opt),
        plugins=[ModelCheckpoint(), EarlyStopping(patience=1), LRScheduler()],
        val_every_n_epochs=2,
        epochs=4,
        verbose=False,
    )
    result = trainer.fit(*digits(n_train=64))
    assert result.epochs_completed == 4 and not result.stopped_early
    best = checkpointing.load_checkpoint(tmp_path / "run" / "weights" / "best.pt")
    assert best["epoch"] in (1, 3)  # only validated epochs can be the best


@pytest.mark.parametrize(
    ("epochs", "every_epochs", "every_steps", "planned", "never"),
    [
        (3, 1, None, 30, False),
        (3, 5, None, 30, True),
        (3, 5, 10, 30, False),  # the steps' validation runs
        (3, 5, 40, 30, True),
        (3, 5, 40, None, False),  # an unsized run may be long enough
        (3, None, None, 30, False),  # turned off on purpose
        (3, None, 31, 30, True),
    ],
)
def test_validation_that_never_runs_is_told_apart(epochs, every_epochs, every_steps, planned, never) -> None:
    from trainhooks.controls import validation_never_runs

    assert (validation_never_runs(epochs, every_epochs, every_steps, planned) is not None) is never


def test_a_fit_whose_validation_never_runs_says_so(make_trainer, caplog) -> None:
    with caplog.at_level("WARNING", logger="trainhooks"):
        make_trainer(val_every_n_epochs=3, epochs=2).fit(*digits(n_train=64))
    assert "validation never runs in this fit (val_every_n_epochs=3 with epochs=2)" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="trainhooks"):  # 2 steps an epoch, accumulated: 1
        make_trainer(
            val_every_n_epochs=None,
            val_every_n_steps=3,
            accumulate_grad_batches=2,
            epochs=2,
            save_dir=make_trainer().save_dir.parent / "steps",
        ).fit(*digits(n_train=64))
    assert "val_every_n_steps=3 with 2 steps planned" in caplog.text


def test_val_every_n_steps_validates_mid_epoch_and_reaches_plugins(make_trainer) -> None:
    recorder = HookRecorder()
    seen: list[tuple[int, float]] = []

    class Watch(trainhooks.Callback):
        def on_val_end(self, trainer: Trainer) -> None:
            seen.append((trainer.global_step, trainer.metrics["val/loss"]))

    trainer = make_trainer(plugins=[recorder], callbacks=[Watch()], val_every_n_steps=2, epochs=1)
    trainer.fit(*digits(n_train=160))  # 5 steps: validation at steps 2 and 4, then at the epoch end
    assert [c.global_step for c in recorder.of("on_val_start")] == [2, 4, 5]
    assert [step for step, _ in seen] == [2, 4, 5]
    starts = [c.batch_idx for c in recorder.of("on_val_start")]
    assert starts[:2] == [1, 3]  # inside the epoch, after its 2nd and 4th batches
    mid = [c.kwargs["metrics"] for c in recorder.of("on_log") if "val/loss" in c.kwargs["metrics"]]
    assert [m["val/loss"] for m in mid[:2]] == [v for _, v in seen[:2]]
    assert all(isinstance(v, float) for m in mid for v in m.values())


def test_validation_at_the_epoch_end_is_not_repeated_right_after_a_step_validation(make_trainer) -> None:
    recorder = HookRecorder()
    make_trainer(plugins=[recorder], val_every_n_steps=5, epochs=2).fit(*digits(n_train=160))
    assert [c.global_step for c in recorder.of("on_val_start")] == [5, 10]


# ====================================================================== limits
@pytest.mark.parametrize(("limit", "expected"), [(2, 2), (0.5, 2), (1.0, 5), (99, 5)])
def test_limit_train_batches_as_a_count_or_a_fraction(make_trainer, limit, expected) -> None:
    recorder = HookRecorder()
    trainer = make_trainer(plugins=[recorder], limit_train_batches=limit, epochs=2)
    result = trainer.fit(*digits(n_train=160))  # 5 batches
    assert recorder.count("on_train_batch_end") == 2 * expected and result.global_step == 2 * expected
    assert trainer.num_train_batches == expected and result.epochs_completed == 2


@pytest.mark.parametrize(("limit", "expected"), [(1, 1), (0.5, 2), (0.25, 1)])
def test_limit_val_batches_as_a_count_or_a_fraction(make_trainer, limit, expected) -> None:
    recorder = HookRecorder()
    trainer = make_trainer(plugins=[recorder], limit_val_batches=limit, epochs=1)
    trainer.fit(*digits(n_train=32, n_val=128))  # 4 validation batches
    assert recorder.count("on_val_batch_end") == expected
    assert trainer.validate(digits(n_train=32, n_val=128)[1])  # validate honours it too
    assert recorder.count("on_val_batch_end") == 2 * expected


@pytest.mark.parametrize("name", ["limit_train_batches", "limit_val_batches"])
@pytest.mark.parametrize("bad", [0, 1.5, -1, "x", True, float("nan")])
def test_bad_limits_are_one_error_naming_the_setting(make_trainer, name, bad) -> None:
    with pytest.raises(ConfigError, match=name):
        make_trainer(**{name: bad})


@pytest.mark.parametrize(
    "name", ["accumulate_grad_batches", "max_steps", "min_steps", "val_every_n_steps", "log_every_n_steps"]
)
@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True])
def test_bad_counts_are_one_error_naming_the_setting(make_trainer, name, bad) -> None:
    with pytest.raises(ConfigError, match=name):
        make_trainer(**{name: bad})


def test_min_steps_above_max_steps_and_min_epochs_above_epochs_are_refused(make_trainer) -> None:
    with pytest.raises(ConfigError, match="min_steps=5 is more than max_steps=3"):
        make_trainer(min_steps=5, max_steps=3)
    with pytest.raises(ConfigError, match="min_epochs=3 is more than epochs=2"):
        make_trainer(min_epochs=3, epochs=2)


def test_numpy_integers_are_integers_and_are_kept_as_python_ints(make_trainer) -> None:
    trainer = make_trainer(
        epochs=np.int64(2), accumulate_grad_batches=np.int64(2), max_steps=np.int32(3), limit_val_batches=np.int64(1)
    )
    assert (trainer.epochs, trainer.accumulate_grad_batches, trainer.max_steps, trainer.limit_val_batches) == (
        2,
        2,
        3,
        1,
    )
    assert {type(v) for v in (trainer.epochs, trainer.accumulate_grad_batches, trainer.max_steps)} == {int}
    trainer.fit(*digits(n_train=160))  # 5 batches, groups of 2: 3 steps, the max
    assert trainer.global_step == 3
    with pytest.raises(ConfigError, match=r"accumulate_grad_batches must be a positive integer, got np.float64\(2.0\)"):
        make_trainer(accumulate_grad_batches=np.float64(2.0))


class Unsized:
    """An iterable of batches without len()."""

    def __init__(self, loader: Any) -> None:
        self.loader = loader

    def __iter__(self):
        return iter(self.loader)


def test_a_fraction_of_data_without_len_is_an_error_a_count_works(make_trainer) -> None:
    train, val = digits(n_train=160)
    with pytest.raises(ConfigError, match=r"limit_train_batches=0.5 is a fraction, but the data has no len\(\)"):
        make_trainer(limit_train_batches=0.5).fit(Unsized(train), val)
    recorder = HookRecorder()
    make_trainer(plugins=[recorder], limit_train_batches=3, epochs=1, overwrite=True).fit(Unsized(train), val)
    assert recorder.count("on_train_batch_end") == 3


def test_accumulation_over_data_without_len_steps_the_partial_group_as_a_mean(make_trainer, tmp_path) -> None:
    sized = make_trainer(
        model=(m := tiny_model()), optimizer=sgd(m), accumulate_grad_batches=2, epochs=1, save_dir=tmp_path / "a"
    )
    sized.fit(digits(n_train=96, shuffle=False)[0])  # 3 batches: groups of 2 and 1
    unsized = make_trainer(
        model=(m2 := tiny_model()), optimizer=sgd(m2), accumulate_grad_batches=2, epochs=1, save_dir=tmp_path / "b"
    )
    unsized.fit(Unsized(digits(n_train=96, shuffle=False)[0]))
    assert sized.global_step == unsized.global_step == 2
    a, b = weights(sized), weights(unsized)
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6)


# ====================================================================== per-step logging
def test_on_log_fires_every_n_steps_with_floats_and_once_per_epoch_with_the_row(make_trainer) -> None:
    recorder = HookRecorder()
    trainer = make_trainer(plugins=[recorder], log_every_n_steps=2, epochs=2)
    trainer.fit(*digits(n_train=160))  # 5 steps an epoch
    calls = recorder.of("on_log")
    steps = [(c.kwargs["step"], c.kwargs["epoch_end"]) for c in calls]
    assert steps == [(2, False), (4, False), (5, True), (6, False), (8, False), (10, False), (10, True)]
    for c in calls:
        if not c.kwargs["epoch_end"]:
            assert set(c.kwargs["metrics"]) >= {"train/loss", "lr"}
            assert all(type(v) is float for v in c.kwargs["metrics"].values())
    rows = [c.kwargs["metrics"] for c in calls if c.kwargs["epoch_end"]]
    assert rows == trainer.history and "val/loss" in rows[0] and "train/loss" in rows[0]


def test_per_step_on_log_sends_each_value_logged_since_the_last_call_once(make_trainer) -> None:
    sent: list[tuple[int, dict[str, float]]] = []

    class Logs(trainhooks.Callback):
        def on_train_batch_end(self, trainer: Trainer) -> None:
            if trainer.global_step == 1:  # logged once, a tensor and a number
                trainer.log_metric("once_tensor", torch.tensor(7.0))
                trainer.log_metric("once_float", 8.0)
            trainer.log_metric("every_float", float(trainer.global_step))
            trainer.log_metric("every_tensor", torch.tensor(float(10 * trainer.global_step)))

        def on_log(self, trainer: Trainer, metrics: dict[str, float], step: int, epoch_end: bool) -> None:
            if not epoch_end:
                sent.append((step, dict(metrics)))

    trainer = make_trainer(callbacks=[Logs()], log_every_n_steps=2, epochs=1)
    trainer.fit(*digits(n_train=160))  # 5 steps
    assert [step for step, _ in sent] == [2, 4]
    first, second = (metrics for _, metrics in sent)
    assert first["once_tensor"] == 7.0 and first["once_float"] == 8.0
    assert "once_tensor" not in second and "once_float" not in second  # sent once, not at every later step
    assert (first["every_float"], second["every_float"]) == (2.0, 4.0)
    assert (first["every_tensor"], second["every_tensor"]) == (20.0, 40.0)
    assert all(type(v) is float for _, metrics in sent for v in metrics.values())
    assert trainer.history[0]["every_tensor"] == 50.0 and trainer.history[0]["once_float"] == 8.0


def test_values_logged_in_on_fit_epoch_end_are_in_the_epoch_end_row(make_trainer) -> None:
    recorder = HookRecorder()

    class Late(trainhooks.Callback):
        def on_fit_epoch_end(self, trainer: Trainer) -> None:
            trainer.log_metric("late", 3.0)

    make_trainer(plugins=[recorder], callbacks=[Late()], epochs=1).fit(*digits(n_train=64))
    (row,) = [c.kwargs["metrics"] for c in recorder.of("on_log") if c.kwargs["epoch_end"]]
    assert row["late"] == 3.0


def count_item_calls(monkeypatch, trainer: Trainer, data: tuple[Any, Any]) -> int:
    calls = 0
    original = torch.Tensor.item

    def counting(self: torch.Tensor) -> Any:
        nonlocal calls
        calls += 1
        return original(self)

    monkeypatch.setattr(torch.Tensor, "item", counting)
    try:
        trainer.fit(*data)
    finally:
        monkeypatch.setattr(torch.Tensor, "item", original)
    return calls


def test_without_an_on_log_plugin_no_value_is_converted_per_step(make_trainer, tmp_path, monkeypatch) -> None:
    # log every step, and twice the steps: the number of .item() calls stays the same
    # (SGD: Adam itself calls .item() on its step counters)
    short = make_trainer(
        model=(m := tiny_model()), optimizer=sgd(m), log_every_n_steps=1, epochs=1, save_dir=tmp_path / "a"
    )
    long = make_trainer(
        model=(m2 := tiny_model()), optimizer=sgd(m2), log_every_n_steps=1, epochs=1, save_dir=tmp_path / "b"
    )
    few = count_item_calls(monkeypatch, short, digits(n_train=96))
    many = count_item_calls(monkeypatch, long, digits(n_train=192))
    assert few == many
    # and the count can tell: with an on_log plugin each logged step converts its loss
    logger = make_trainer(
        model=(m3 := tiny_model()),
        optimizer=sgd(m3),
        plugins=[HookRecorder()],
        log_every_n_steps=1,
        epochs=1,
        save_dir=tmp_path / "c",
    )
    assert count_item_calls(monkeypatch, logger, digits(n_train=192)) >= many + 6


# ====================================================================== dry run
def test_dry_run_runs_one_batch_of_each_and_keeps_no_files(make_trainer, tmp_path, capsys) -> None:
    from trainhooks.plugins.csv_logger import CSVLogger

    recorder = HookRecorder()
    trainer = make_trainer(
        plugins=[recorder, ModelCheckpoint(every_n_steps=1), CSVLogger()], dry_run=True, epochs=5, max_steps=100
    )
    result = trainer.fit(*digits(n_train=160))
    out = capsys.readouterr().out
    for hook in ("on_train_batch_end", "on_val_batch_end", "on_predict_batch_end", "on_train_epoch_end"):
        assert recorder.count(hook) == 1, hook
    assert "Dry run passed: 1 training batch, 1 validation batch, 1 prediction batch" in out
    assert "nothing was kept" in out
    assert not (tmp_path / "run").exists() and list(tmp_path.iterdir()) == []
    assert result.global_step == 1 and not result.artifacts
    assert (trainer.epochs, trainer.max_steps, trainer.limit_train_batches) == (5, 100, None)  # given back


def test_dry_run_leaves_an_existing_run_untouched(make_trainer, tmp_path) -> None:
    make_trainer(plugins=[ModelCheckpoint()], epochs=1, verbose=False).fit(*digits(n_train=64))
    before = {p: p.read_bytes() for p in (tmp_path / "run").rglob("*") if p.is_file()}
    make_trainer(plugins=[ModelCheckpoint()], dry_run=True, verbose=False).fit(*digits(n_train=64))
    after = {p: p.read_bytes() for p in (tmp_path / "run").rglob("*") if p.is_file()}
    assert after == before and before


def test_dry_run_does_not_resume(make_trainer, tmp_path) -> None:
    with pytest.raises(ConfigError, match="dry_run"):
        make_trainer(dry_run=True).fit(*digits(n_train=64), resume=tmp_path / "x.pt")


# ====================================================================== compile
def test_compiled_run_hooks_see_the_module_and_checkpoints_load_both_ways(make_trainer, tmp_path) -> None:
    seen: list[torch.nn.Module] = []

    class Look(trainhooks.Callback):
        def on_train_batch_end(self, trainer: Trainer) -> None:
            seen.append(trainer.model)

    compiled_graphs: list[Any] = []

    def counting_backend(graph: torch.fx.GraphModule, example_inputs: Any) -> Any:
        compiled_graphs.append(graph)
        return graph.forward  # run eagerly: fast on CPU

    model = tiny_model()
    compiled = make_trainer(
        model=model, callbacks=[Look()], plugins=[ModelCheckpoint()], compile={"backend": counting_backend}, epochs=1
    )
    compiled.fit(*digits(n_train=64))
    assert compiled_graphs  # torch.compile really compiled the forward
    assert compiled.model is model and all(m is model for m in seen)
    last = tmp_path / "run" / "weights" / "last.pt"
    saved = checkpointing.load_checkpoint(last)
    assert saved["model"] and not any(k.startswith("_orig_mod.") for k in saved["model"])
    assert set(saved["model"]) == set(tiny_model().state_dict())
    assert saved["run"]["compile"] is True
    # the compiled run's checkpoint resumes uncompiled, and that one compiled again
    plain = make_trainer(plugins=[ModelCheckpoint()], epochs=2, verbose=False)
    plain.fit(*digits(n_train=64), resume=last)
    assert plain.global_step == 4 and len(plain.history) == 2
    again = make_trainer(plugins=[ModelCheckpoint()], compile="eager", epochs=3, verbose=False)
    again.fit(*digits(n_train=64), resume=last)
    assert again.global_step == 6 and len(again.history) == 3
    assert not any(k.startswith("_orig_mod.") for k in checkpointing.load_checkpoint(last)["model"])
    # after fit the module runs eagerly again (predict, export, deepcopy)
    assert model._compiled_call_impl is None


def test_a_model_already_wrapped_by_torch_compile_works(make_trainer, tmp_path) -> None:
    compiled_graphs: list[Any] = []

    def counting_backend(graph: torch.fx.GraphModule, example_inputs: Any) -> Any:
        compiled_graphs.append(graph)
        return graph.forward  # run eagerly: fast on CPU

    model = tiny_model()
    trainer = make_trainer(model=torch.compile(model, backend=counting_backend), plugins=[ModelCheckpoint()], epochs=1)
    assert trainer.model is model
    trainer.fit(*digits(n_train=64))
    assert compiled_graphs  # compiled for the fit, with the caller's backend
    assert model._compiled_call_impl is None
    keys = checkpointing.load_checkpoint(tmp_path / "run" / "weights" / "last.pt")["model"]
    assert set(keys) == set(model.state_dict())
    reference = make_trainer(epochs=1, save_dir=tmp_path / "ref", verbose=False)
    reference.fit(*digits(n_train=64))
    for key, value in weights(reference).items():  # the same training as uncompiled
        torch.testing.assert_close(weights(trainer)[key], value, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("bad", ["", 3, ["eager"], {1: 2}])
def test_bad_compile_values_are_one_error(make_trainer, bad) -> None:
    with pytest.raises(ConfigError, match="compile"):
        make_trainer(compile=bad)


def test_a_compile_argument_torch_compile_lacks_is_refused_with_the_close_name(make_trainer) -> None:
    with pytest.raises(ConfigError, match=r"torch.compile has no argument 'full_graph' \(did you mean fullgraph\?"):
        make_trainer(compile={"full_graph": True})


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("nope", r"compile \(backend='nope'\): torch.compile refused it: Invalid backend: 'nope'"),
        ({"mode": "fastest"}, r"compile \(mode='fastest'\): torch.compile refused it: Unrecognized mode=fastest"),
        ({"dynamic": "yes"}, r"compile \(dynamic='yes'\): torch.compile refused it"),  # an assert in torch
    ],
)
def test_a_backend_or_mode_torch_does_not_know_fails_the_fit_before_it_starts(make_trainer, value, message) -> None:
    recorder = HookRecorder()
    trainer = make_trainer(compile=value, plugins=[recorder])
    with pytest.raises(ConfigError, match=message):
        trainer.fit(*digits(n_train=64))
    assert recorder.names() == ["add_options", "configure"], "no fit hook fired"  # the Trainer's own
    assert not trainer.save_dir.exists()
    assert trainer.model._compiled_call_impl is None


# ====================================================================== determinism
def test_deterministic_is_on_during_fit_restored_after_and_recorded(make_trainer, tmp_path) -> None:
    during: list[bool] = []

    class Look(trainhooks.Callback):
        def on_train_batch_end(self, trainer: Trainer) -> None:
            during.append(torch.are_deterministic_algorithms_enabled())

    assert not torch.are_deterministic_algorithms_enabled()
    trainer = make_trainer(callbacks=[Look()], plugins=[ModelCheckpoint()], deterministic=True, epochs=1)
    trainer.fit(*digits(n_train=64))
    assert during == [True, True]
    assert not torch.are_deterministic_algorithms_enabled()
    saved = checkpointing.load_checkpoint(tmp_path / "run" / "weights" / "last.pt")
    assert saved["run"]["deterministic"] is True and saved["run"]["accumulate_grad_batches"] == 1
    plain = make_trainer(plugins=[ModelCheckpoint()], epochs=1, save_dir=tmp_path / "plain", verbose=False)
    plain.fit(*digits(n_train=64))
    assert checkpointing.load_checkpoint(tmp_path / "plain" / "weights" / "last.pt")["run"]["deterministic"] is False


def test_deterministic_is_restored_after_a_failed_fit(make_trainer) -> None:
    with pytest.raises(trainhooks.HookError):
        make_trainer(callbacks=[CrashAt(1)], deterministic=True, verbose=False).fit(*digits(n_train=64))
    assert not torch.are_deterministic_algorithms_enabled()


class NumpyDraws(torch.utils.data.Dataset):
    """Each item is a NumPy random draw made in the worker that loads it (and the worker's id)."""

    def __len__(self) -> int:
        return 8

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        info = torch.utils.data.get_worker_info()
        x = torch.full((64,), float(np.random.rand()))
        x[0] = float(info.id if info is not None else -1)
        return x, torch.tensor(i % 10)


def worker_draws(make_trainer, save_dir: Path) -> list[tuple[int, float]]:
    drawn: list[tuple[int, float]] = []

    class Look(trainhooks.Callback):
        def on_train_batch_start(self, batch: Any) -> None:
            x = batch[0]
            drawn.extend((int(row[0]), float(row[1])) for row in x)

    loader = torch.utils.data.DataLoader(NumpyDraws(), batch_size=2, num_workers=2)
    trainer = make_trainer(callbacks=[Look()], deterministic=True, seed=3, epochs=1, save_dir=save_dir, verbose=False)
    trainer.fit(loader)
    assert loader.worker_init_fn is not None  # the trainer seeds the workers
    return drawn


def test_deterministic_seeds_numpy_in_dataloader_workers(make_trainer, tmp_path) -> None:
    first = worker_draws(make_trainer, tmp_path / "a")
    second = worker_draws(make_trainer, tmp_path / "b")
    assert {worker for worker, _ in first} == {0, 1}
    assert first == second  # the same draws in a second run with the same seed
    by_worker = {w: [v for ww, v in first if ww == w] for w in (0, 1)}
    assert by_worker[0] != by_worker[1]  # and the two workers do not draw the same numbers


# ====================================================================== end of a fit
def test_fit_from_python_prints_the_summary_line_and_nothing_when_quiet(make_trainer, tmp_path, capsys) -> None:
    make_trainer(epochs=2).fit(*digits(n_train=64))
    out = capsys.readouterr().out
    assert re.search(r"^Training finished after 2 of 2 epochs \(4 steps, \d+\.\ds\)\.$", out, re.M), out
    make_trainer(epochs=2, save_dir=tmp_path / "quiet", verbose=False).fit(*digits(n_train=64))
    assert capsys.readouterr().out == ""


def test_the_summary_line_of_a_max_steps_run_says_where_it_ended(make_trainer, capsys) -> None:
    make_trainer(max_steps=7, epochs=5).fit(*digits(n_train=160))
    out = capsys.readouterr().out
    assert "Training finished in epoch 2 of 5 at batch 2 of 5 (7 steps" in out, out
    assert "reached max_steps (7 steps)" in out


# ====================================================================== the command line
CONTROL_FLAGS = (
    "--accumulate-grad-batches",
    "--max-steps",
    "--min-epochs",
    "--min-steps",
    "--val-every-n-epochs",
    "--val-every-n-steps",
    "--limit-train-batches",
    "--limit-val-batches",
    "--log-every-n-steps",
    "--dry-run",
    "--compile",
    "--deterministic",
)


def cli_run(capsys, *args: str) -> tuple[int, str, str]:
    from trainhooks import cli

    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_fit_help_lists_every_loop_control(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli_run(capsys, "fit", "--help")
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "loop controls" in out
    for flag in CONTROL_FLAGS:
        assert flag in out, flag


def test_every_loop_control_flag_reaches_the_trainer(tmp_path, capsys, monkeypatch) -> None:
    import trainhooks.cli.fit as fit_cmd

    made: list[Trainer] = []
    real = fit_cmd._make_trainer

    def keep(*args: Any, **kwargs: Any) -> tuple[Trainer, Any]:
        trainer, task = real(*args, **kwargs)
        made.append(trainer)
        return trainer, task

    monkeypatch.setattr(fit_cmd, "_make_trainer", keep)
    save = tmp_path / "run"
    code, _, err = cli_run(
        capsys,
        "fit", "--epochs", "2", "--save-dir", str(save), "--quiet",
        "--accumulate-grad-batches", "2", "--max-steps", "3", "--min-epochs", "1", "--min-steps", "2",
        "--val-every-n-epochs", "2", "--val-every-n-steps", "2", "--limit-train-batches", "4",
        "--limit-val-batches", "0.5", "--log-every-n-steps", "1", "--deterministic",
    )  # fmt: skip
    assert code == 0, err
    (trainer,) = made
    assert trainer.controls.record() == {
        "accumulate_grad_batches": 2,
        "max_steps": 3,
        "min_epochs": 1,
        "min_steps": 2,
        "val_every_n_epochs": 2,
        "val_every_n_steps": 2,
        "limit_train_batches": 4,
        "limit_val_batches": 0.5,
        "log_every_n_steps": 1,
        "deterministic": True,
        "compile": False,
    }
    assert trainer.global_step == 3 and trainer.stop_reason == "reached max_steps (3 steps)"
    run = checkpointing.load_checkpoint(save / "weights" / "last.pt")["run"]
    assert run["max_steps"] == 3 and run["limit_val_batches"] == 0.5 and run["deterministic"] is True


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--limit-train-batches", "0", "at least 1 batch"),
        ("--limit-train-batches", "1.5", "a fraction must be in (0, 1]"),
        ("--limit-val-batches", "x", "expected a batch count or a fraction"),
        ("--accumulate-grad-batches", "0", ""),
        ("--max-steps", "-1", ""),
    ],
)
def test_bad_loop_control_flags_are_refused(tmp_path, capsys, flag, value, message) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli_run(capsys, "fit", "--save-dir", str(tmp_path / "r"), flag, value)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert f"argument {flag}:" in err and message in err
    assert not (tmp_path / "r").exists()


def test_a_cli_resume_keeps_the_recorded_controls_unless_overridden(tmp_path, capsys) -> None:
    save = tmp_path / "run"
    last = save / "weights" / "last.pt"
    base = ("--limit-train-batches", "4", "--limit-val-batches", "1", "--quiet")
    code, _, err = cli_run(
        capsys, "fit", "--epochs", "1", "--save-dir", str(save), "--accumulate-grad-batches", "2", "--max-steps", "50",
        *base,
    )  # fmt: skip
    assert code == 0, err
    assert checkpointing.load_checkpoint(last)["global_step"] == 2  # 4 batches, 2 per step
    code, _, err = cli_run(capsys, "fit", "--resume", str(last), "--epochs", "3", "--quiet")
    assert code == 0, err
    assert "--epochs 3 overrides the recorded 1" in err and "max-steps" not in err and "accumulate" not in err
    saved = checkpointing.load_checkpoint(last)
    assert saved["global_step"] == 6 and len(saved["history"]) == 3  # still 2 steps an epoch
    assert saved["run"]["accumulate_grad_batches"] == 2 and saved["run"]["max_steps"] == 50
    code, _, err = cli_run(capsys, "fit", "--resume", str(last), "--epochs", "6", "--max-steps", "7", "--quiet")
    assert code == 0, err
    assert "--max-steps 7 overrides the recorded 50" in err
    saved = checkpointing.load_checkpoint(last)
    assert saved["global_step"] == 7 and saved["run"]["max_steps"] == 7


def test_a_cli_resume_can_turn_a_recorded_switch_off(tmp_path, capsys) -> None:
    save = tmp_path / "run"
    last = save / "weights" / "last.pt"
    base = ("--limit-train-batches", "2", "--limit-val-batches", "1", "--quiet", "-p", "no:plot")
    code, _, err = cli_run(capsys, "fit", "--epochs", "1", "--save-dir", str(save), "--deterministic", *base)
    assert code == 0, err
    code, _, err = cli_run(capsys, "fit", "--resume", str(last), "--epochs", "2", "--quiet")
    assert code == 0, err
    assert checkpointing.load_checkpoint(last)["run"]["deterministic"] is True  # kept from the record
    code, _, err = cli_run(capsys, "fit", "--resume", str(last), "--epochs", "3", "--no-deterministic", "--quiet")
    assert code == 0, err
    assert "--no-deterministic overrides the recorded True" in err
    assert checkpointing.load_checkpoint(last)["run"]["deterministic"] is False


def test_val_every_n_epochs_never_validates_by_steps_only_and_a_resume_keeps_it(tmp_path, capsys) -> None:
    save = tmp_path / "run"
    last = save / "weights" / "last.pt"
    base = ("--limit-train-batches", "4", "--limit-val-batches", "1", "--quiet", "-p", "no:plot")
    code, _, err = cli_run(
        capsys, "fit", "--epochs", "2", "--save-dir", str(save), "--val-every-n-epochs", "never",
        "--val-every-n-steps", "6", *base,
    )  # fmt: skip
    assert code == 0, err
    saved = checkpointing.load_checkpoint(last)
    assert saved["run"]["val_every_n_epochs"] is None
    assert ["val/loss" in row for row in saved["history"]] == [False, True]  # step 6 is in epoch 2
    code, _, err = cli_run(capsys, "fit", "--resume", str(last), "--epochs", "4", "--quiet")
    assert code == 0, err
    saved = checkpointing.load_checkpoint(last)
    assert saved["run"]["val_every_n_epochs"] is None  # not back to the default, 1
    assert ["val/loss" in row for row in saved["history"]] == [False, True, True, False]  # steps 13-16: no 6k


def test_cli_dry_run_keeps_nothing(tmp_path, capsys) -> None:
    code, out, err = cli_run(
        capsys, "fit", "--dry-run", "--limit-train-batches", "3", "--save-dir", str(tmp_path / "run")
    )
    assert code == 0, err
    assert "Dry run passed: 1 training batch, 1 validation batch, 1 prediction batch" in out
    assert "Training finished" not in out and list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_cli_dry_run_in_a_subprocess_exits_0_and_keeps_nothing(tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAINHOOKS_")}
    env["OMP_NUM_THREADS"] = "1"
    proc = subprocess.run(
        [sys.executable, "-m", "trainhooks", "fit", "--dry-run", "--save-dir", str(tmp_path / "run")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Dry run passed" in proc.stdout
    assert proc.stdout.splitlines()[0].startswith("trainhooks ")  # the first line, before torch loads
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_cli_compile_smoke(tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAINHOOKS_")}
    env["OMP_NUM_THREADS"] = "1"
    save = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "trainhooks", "fit", "--compile", "--epochs", "1", "--limit-train-batches", "3",
         "--limit-val-batches", "1", "--save-dir", str(save)],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    saved = checkpointing.load_checkpoint(save / "weights" / "last.pt")
    assert saved["run"]["compile"] is True and saved["global_step"] == 3
    assert not any(k.startswith("_orig_mod.") for k in saved["model"])
