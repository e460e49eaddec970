"""In-process checks of the load-side schema and the metric value rule (the CLI's exit statuses
for the same cases are in test_failure_paths)."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import pytest
import torch

import trainhooks
from trainhooks import checkpointing
from trainhooks.testing import tiny_digits, tiny_model


@pytest.fixture
def saved(tmp_path: Path) -> tuple[trainhooks.Trainer, Path]:
    train, val = tiny_digits(n_train=64, n_val=32, batch_size=16)
    trainer = trainhooks.Trainer(
        tiny_model(), loss_fn=torch.nn.CrossEntropyLoss(), epochs=1, save_dir=tmp_path / "run", default_plugins=False
    )
    trainer.fit(train, val)
    return trainer, trainer.save_checkpoint(tmp_path / "good.pt")


def _write(tmp_path: Path, good: Path, name: str, edit) -> Path:
    ckpt = torch.load(good, weights_only=True)
    edit(ckpt)
    path = tmp_path / f"{name}.pt"
    torch.save(ckpt, path)
    return path


CASES = [
    ("model-list", lambda c: c.update(model=[1]), "field 'model' must be a state_dict"),
    ("epoch-str", lambda c: c.update(epoch="abc"), "field 'epoch' must be an integer >= 0, got str 'abc'"),
    ("epoch-neg", lambda c: c.update(epoch=-5), "field 'epoch' must be an integer >= 0, got int -5"),
    ("epoch-bool", lambda c: c.update(epoch=True), "field 'epoch' must be an integer"),
    ("step-float", lambda c: c.update(global_step=2.5), "field 'global_step' must be an integer"),
    (
        "plugin-str",
        lambda c: c.update(plugins={"early_stopping": "x"}),
        "field 'plugins.early_stopping' must be a dict",
    ),
    ("rng-dtype", lambda c: c["rng"].update(torch=torch.zeros(4)), "field 'rng.torch' must be a uint8 tensor"),
    ("numpy-keys", lambda c: c["rng"]["numpy"].update(keys=[1, 2]), "field 'rng.numpy.keys' must be an int64 tensor"),
    ("history-str", lambda c: c.update(history="x"), "field 'history' must be a list"),
    ("history-row", lambda c: c.update(history=[{"val/loss": "0.3"}]), "field 'history[0].val/loss' must be a number"),
    ("metrics-none", lambda c: c.update(metrics={"acc": None}), "field 'metrics.acc' must be a number"),
    ("completed", lambda c: c.update(epoch_completed="yes"), "field 'epoch_completed' must be True or False"),
    (
        "progress-key",
        lambda c: c.update(progress={"batches_done": 1}),
        "field 'progress' (a mid-epoch position) has no",
    ),
    ("no-model", lambda c: c.pop("model"), "it has no 'model' field"),
]


@pytest.mark.parametrize(("name", "edit", "message"), CASES, ids=[c[0] for c in CASES])
def test_a_wrong_field_is_one_error_naming_file_and_field(tmp_path, saved, name, edit, message) -> None:
    trainer, good = saved
    path = _write(tmp_path, good, name, edit)
    with pytest.raises(trainhooks.CheckpointError) as info:
        trainer.load_checkpoint(path)
    assert str(info.value).startswith(f"checkpoint {path}")
    assert message in str(info.value)


def test_older_checkpoints_without_the_newer_fields_still_load(tmp_path, saved) -> None:
    _, good = saved

    def strip(ckpt: dict) -> None:
        for key in ("epochs", "stop_resumable", "world_size", "seed", "progress", "epoch_completed"):
            ckpt.pop(key, None)

    checkpointing.load_checkpoint(_write(tmp_path, good, "old", strip))


def test_nan_weights_are_refused_and_another_architecture_lists_differences(tmp_path, saved) -> None:
    trainer, good = saved
    nan = _write(
        tmp_path,
        good,
        "nan",
        lambda c: c.update(model={k: torch.full_like(v, math.nan) for k, v in c["model"].items()}),
    )
    with pytest.raises(trainhooks.CheckpointError, match="holds NaN values"):
        trainer.load_checkpoint(nan)
    with pytest.raises(trainhooks.CheckpointError, match="holds NaN values"):
        checkpointing.load_weights(nan)
    other = trainhooks.Trainer(torch.nn.Linear(64, 10), loss_fn=torch.nn.CrossEntropyLoss(), default_plugins=False)
    with pytest.raises(trainhooks.CheckpointError) as info:
        other.load_checkpoint(good)
    assert "does not fit this model/optimizer:" in str(info.value) and "missing 'weight', 'bias'" in str(info.value)
    assert "unexpected" in str(info.value) and "Error(s) in loading" not in str(info.value)


def test_a_plugin_that_cannot_restore_its_state_is_named(tmp_path, saved) -> None:
    class Picky(trainhooks.Callback):
        def state_dict(self):
            return {"n": 1}

        def load_state_dict(self, state):
            raise KeyError("count")

    trainer, good = saved
    path = _write(tmp_path, good, "picky", lambda c: c.update(plugins={"picky": {"n": 1}}))
    trainer.plugin_manager.register(Picky(), "picky")
    with pytest.raises(
        trainhooks.CheckpointError, match=r"plugin 'picky' cannot restore its state from field 'plugins.picky'"
    ):
        trainer.load_checkpoint(path)


@pytest.mark.parametrize("value", ["1e3", "hello", None, True, [1.0]])
def test_log_metric_takes_numbers_only(saved, value) -> None:
    trainer, _ = saved
    with pytest.raises(trainhooks.ConfigError, match="metric 'm' must be a number"):
        trainer.log_metric("m", value)
    with pytest.raises(trainhooks.ConfigError, match="metric 'm' must be a number"):
        trainer.metrics["m"] = value
    with pytest.raises(trainhooks.ConfigError, match="metric 'm' must be a number"):
        trainer.metrics.update(m=value)
    assert "m" not in trainer.metrics


def test_log_metric_accepts_numbers_and_warns_once_about_non_finite_ones(saved) -> None:
    import numpy as np

    trainer, _ = saved
    trainer.log_metric("a", 3)
    trainer.log_metric("b", np.float32(0.5))
    trainer.log_metric("c", torch.tensor(2.0))
    assert trainer.metrics["a"] == 3.0 and trainer.metrics["b"] == 0.5 and trainer.metrics["c"] == 2.0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.log_metric("d", math.inf)
        trainer.log_metric("d", math.nan)
    assert [str(w.message) for w in caught] == [
        "metric 'd' is inf: monitors comparing it (early stopping, best.pt) cannot rank it"
    ]
    trainer.metrics = {"x": 1.0}  # replacing the dict keeps the rule
    with pytest.raises(trainhooks.ConfigError):
        trainer.metrics["y"] = "2"
