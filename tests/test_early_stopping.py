"""early_stopping against the peers' documented behaviour: Keras' own example, Keras' baseline
and start_from_epoch, Lightning's check_finite, divergence_threshold and stopping_threshold."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import trainhooks
from trainhooks import cli
from trainhooks.plugins.early_stopping import EarlyStopping
from trainhooks.testing import tiny_digits, tiny_model


def keras_example(tmp_path, **settings) -> trainhooks.FitResult:
    """Keras' EarlyStopping docstring example, as written for torch:

    ``EarlyStopping(monitor='loss', patience=3)`` on ``Dense(10)`` with ``SGD()`` (lr 0.01), MSE,
    ``np.arange(100).reshape(5, 20)`` against zeros, batch size 1, 10 epochs: "Only 4 epochs
    are run" (the loss explodes from the first step and never improves on epoch 1)."""
    torch.manual_seed(0)
    model = torch.nn.Linear(20, 10)
    x = torch.tensor(np.arange(100).reshape(5, 20), dtype=torch.float32)
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, torch.zeros(5, 10)), batch_size=1)
    trainer = trainhooks.Trainer(
        model,
        loss_fn=torch.nn.MSELoss(),
        optimizer=torch.optim.SGD(model.parameters(), lr=0.01),
        epochs=10,
        plugins=[EarlyStopping(monitor="train/loss", patience=3, **settings)],
        default_plugins=False,
        verbose=False,
        save_dir=tmp_path / "keras",
    )
    return trainer.fit(data)


def test_keras_documented_example_runs_4_epochs_without_check_finite(tmp_path) -> None:
    result = keras_example(tmp_path, check_finite=False)
    assert result.epochs_completed == 4  # Keras: "Only 4 epochs are run."
    assert result.stop_reason.startswith("train/loss did not improve for 3 epochs (patience 3); best ")
    assert result.stop_reason.endswith("at epoch 1")


def test_check_finite_stops_the_keras_example_when_its_loss_overflows(tmp_path) -> None:
    result = keras_example(tmp_path)  # check_finite on by default (Lightning's default)
    losses = [h["train/loss"] for h in result.history]
    first_bad = next(i for i, v in enumerate(losses) if not math.isfinite(v))
    assert result.epochs_completed == first_bad + 1 < 4
    assert result.stopped_by == "EarlyStopping"
    assert f"train/loss is {losses[first_bad]} at epoch {first_bad + 1}, not a finite number" in result.stop_reason


class Scripted(trainhooks.Callback):
    """Logs ``score`` with a scripted value per epoch (after training, before the stop check)."""

    def __init__(self, values: list[float]) -> None:
        self.values = values

    def on_train_epoch_end(self, trainer):
        trainer.log_metric("score", self.values[trainer.epoch])


def run_scripted(make_trainer, loaders, values: list[float], **settings) -> trainhooks.FitResult:
    es = EarlyStopping(monitor="score", **settings)
    trainer = make_trainer(plugins=[es], callbacks=[Scripted(values)], epochs=len(values))
    return trainer.fit(*loaders)


@pytest.mark.parametrize(
    ("values", "settings", "epochs", "reason"),
    [
        # Lightning: check_finite (default True) stops at a NaN...
        ([1.0, 0.9, float("nan"), 0.5], {"mode": "min", "patience": 5}, 3, "score is nan at epoch 3, not a finite"),
        # ...which Keras (check_finite off) only counts as one more epoch without improvement.
        ([1.0, 0.9, float("nan"), float("nan")], {"mode": "min", "patience": 2, "check_finite": False}, 4, "did not"),
        # Lightning's divergence_threshold (min mode: stop once score > 5).
        ([3.0, 2.0, 6.0, 1.0], {"mode": "min", "patience": 9, "divergence_threshold": 5.0}, 3, "worse than"),
        # max mode: stop once score < 0.2.
        ([0.5, 0.6, 0.1, 0.9], {"mode": "max", "patience": 9, "divergence_threshold": 0.2}, 3, "worse than"),
        # Lightning's stopping_threshold is our stop_at.
        ([0.5, 0.8, 0.95, 0.99], {"mode": "max", "stop_at": 0.9}, 3, "score reached 0.95 (stop_at 0.9)"),
        # Keras' baseline: "if no epoch improves on baseline, training runs for patience epochs".
        ([0.5, 0.4, 0.3, 0.2], {"mode": "max", "patience": 2, "baseline": 0.9}, 2, "did not beat baseline 0.9"),
        # Epochs that keep improving never stop, even below the baseline (Keras' code).
        ([0.5, 0.6, 0.7, 0.65, 0.6], {"mode": "max", "patience": 2, "baseline": 0.9}, 4, "did not beat baseline"),
        # Beating the baseline restarts the count as usual.
        ([0.5, 0.95, 0.9, 0.9, 0.9], {"mode": "max", "patience": 2, "baseline": 0.9}, 4, "did not improve for 2"),
        # Keras' start_from_epoch: epochs 1-2 are warm-up, not counted and not a best value.
        ([5.0, 6.0, 7.0, 4.0, 4.5, 4.6], {"mode": "min", "patience": 1, "start_from_epoch": 2}, 5, "best 4 at epoch 4"),
        ([5.0, 6.0, 7.0, 4.0, 4.5, 4.6], {"mode": "min", "patience": 1}, 2, "best 5 at epoch 1"),
    ],
)
def test_peer_semantics(make_trainer, loaders, values, settings, epochs, reason) -> None:
    result = run_scripted(make_trainer, loaders, values, **settings)
    assert result.stopped_early and result.epochs_completed == epochs, result.stop_reason
    assert reason in result.stop_reason


def test_a_nan_during_warm_up_still_stops(make_trainer, loaders) -> None:
    result = run_scripted(make_trainer, loaders, [1.0, float("inf"), 0.5], mode="min", start_from_epoch=2)
    assert result.epochs_completed == 2 and "score is inf at epoch 2" in result.stop_reason


def test_real_training_stops_at_a_diverged_validation_loss(make_trainer, loaders) -> None:
    # lr 50: the digits MLP diverges after its first steps; val/loss is far above 10.
    model = tiny_model()
    trainer = make_trainer(
        model=model,
        optimizer=torch.optim.SGD(model.parameters(), lr=50.0),
        plugins=[EarlyStopping(divergence_threshold=10.0, patience=20, check_finite=False)],
        epochs=10,
    )
    result = trainer.fit(*loaders)
    assert result.epochs_completed < 10
    assert "val/loss" in result.stop_reason and "worse than divergence_threshold 10" in result.stop_reason


def test_the_new_settings_are_cli_flags(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    args = ["fit", "-p", "early_stopping", "--epochs", "4", "--save-dir", "r", "--quiet", "--lr", "1e-12"]
    assert cli.main([*args, "--es-baseline", "0.01", "--patience", "2"]) == 0  # val/loss stays put
    last = torch.load(tmp_path / "r" / "weights" / "last.pt", weights_only=True)
    assert last["stop_reason"].startswith("val/loss did not beat baseline 0.01 in 2 epochs (patience 2)")
    assert len(last["history"]) == 2
    with pytest.raises(SystemExit):
        cli.main([*args, "--es-start-from-epoch", "-1"])
    assert "start_from_epoch (--es-start-from-epoch) must be an integer >= 0" in capsys.readouterr().err
    assert cli.main([*args[:-2], "--save-dir", "r2", "--epochs", "1", "--no-es-check-finite"]) == 0


def test_settings_survive_a_resume(tmp_path) -> None:
    def trainer(epochs):
        model = tiny_model()
        return trainhooks.Trainer(
            model,
            loss_fn=torch.nn.CrossEntropyLoss(),
            optimizer=torch.optim.SGD(model.parameters(), lr=0.0),  # no epoch improves on the first
            epochs=epochs,
            plugins=["checkpoint", EarlyStopping(monitor="val/acc", baseline=1.5, patience=3)],
            default_plugins=False,
            verbose=False,
            save_dir=tmp_path / "run",
        )

    train, val = tiny_digits()
    trainer(2).fit(train, val)  # epoch 1 sets the best, epoch 2 does not improve: wait = 2
    result = trainer(10).fit(train, val, resume=tmp_path / "run" / "weights" / "last.pt")
    assert result.epochs_completed == 3 and "did not beat baseline 1.5 in 3 epochs" in result.stop_reason


# --------------------------------------------------------------------------- nan_guard, csv, lr
def test_nan_guard_raise_error_fails_the_run(make_trainer, loaders, tmp_path, monkeypatch, capsys) -> None:
    from trainhooks.plugins.nan_guard import NaNGuard, NonFiniteLossError

    def nan_loss(outputs, targets):
        return torch.nn.functional.cross_entropy(outputs, targets) * float("nan")

    ended = []
    trainer = make_trainer(
        plugins=[NaNGuard(raise_error=True)],
        callbacks=[trainhooks.LambdaCallback(on_train_end=lambda t: ended.append(1))],
        loss_fn=nan_loss,
    )
    with pytest.raises(trainhooks.HookError) as info:
        trainer.fit(*loaders)
    assert isinstance(info.value.original, NonFiniteLossError) and isinstance(info.value.original, FloatingPointError)
    assert "loss became nan at step 1 (epoch 1, batch 1)" in str(info.value)
    assert ended == []  # Keras: raise_error skips on_train_end
    clean = make_trainer(plugins=[NaNGuard()], loss_fn=nan_loss, save_dir=tmp_path / "clean").fit(*loaders)
    assert clean.stopped_by == "NaNGuard" and clean.global_step == 1  # the default: a clean stop


def test_min_epochs_and_min_steps_do_not_defer_nan_guard(make_trainer, loaders, tmp_path, caplog) -> None:
    from trainhooks.plugins.nan_guard import NaNGuard

    def nan_loss(outputs, targets):
        return torch.nn.functional.cross_entropy(outputs, targets) * float("nan")

    with caplog.at_level("WARNING", logger="trainhooks"):
        result = make_trainer(plugins=[NaNGuard()], loss_fn=nan_loss, min_epochs=3, min_steps=20, epochs=4).fit(
            *loaders
        )
    assert result.stopped_by == "NaNGuard" and result.global_step == 1
    assert "stop deferred" not in caplog.text


def test_csv_separator_and_append_mode_across_runs(tmp_path, monkeypatch) -> None:
    import csv

    monkeypatch.chdir(tmp_path)
    shared = tmp_path / "all.csv"
    common = ["fit", "--epochs", "2", "--quiet", "--csv-file", str(shared), "--csv-separator", ";"]
    assert cli.main([*common, "--save-dir", "a", "--csv-append"]) == 0
    assert cli.main([*common, "--save-dir", "b", "--csv-append", "-p", "early_stopping"]) == 0
    rows = list(csv.DictReader(shared.open(), delimiter=";"))
    assert [(r["run"], r["epoch"]) for r in rows] == [("a", "1"), ("a", "2"), ("b", "1"), ("b", "2")]
    assert all(float(r["val/loss"]) > 0 for r in rows)
    assert cli.main([*common, "--save-dir", "c"]) == 0  # without append: the file is this run's only
    rows = list(csv.DictReader(shared.open(), delimiter=";"))
    assert [r["epoch"] for r in rows] == ["1", "2"] and "run" not in rows[0]


def test_lr_reports_each_plateau_reduction_and_counts_patience_as_torch_does(make_trainer, loaders, capsys) -> None:
    from trainhooks.plugins.lr_scheduler import LRScheduler

    model = tiny_model()
    opt = torch.optim.SGD(model.parameters(), lr=1e-6)  # too small to move val/loss after epoch 1
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=2)
    plugin = LRScheduler()
    trainer = make_trainer(model=model, optimizer=opt, lr_scheduler=sched, plugins=[plugin], epochs=7)
    trainer.fit(*loaders)
    # torch reduces once the bad epochs *exceed* patience: epochs 2, 3, 4 are bad -> after epoch 4
    # (Keras, with patience=2, would reduce after epoch 3).
    assert [m.split(" after epoch ")[1].split()[0] for m in plugin.reductions] == ["4", "7"]
    assert plugin.reductions[0].startswith("lr: ReduceLROnPlateau reduced the learning rate 1.00e-06 -> 5.00e-07")
    assert capsys.readouterr().out.count("lr: ReduceLROnPlateau reduced") == 2
