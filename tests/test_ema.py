"""The ``ema`` plugin: the average itself (against a hand computation), where it is swapped in
(validation, checkpoints, exports) and back, and an exact resume."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import torch

import trainhooks
from trainhooks import cli
from trainhooks.plugins.checkpoint import ModelCheckpoint
from trainhooks.plugins.ema import EMA
from trainhooks.testing import tiny_digits, tiny_model


class WeightLog(trainhooks.Callback):
    """The model's state after every optimizer step (and at the start)."""

    def __init__(self) -> None:
        self.start: dict[str, torch.Tensor] = {}
        self.after_step: list[dict[str, torch.Tensor]] = []

    def on_train_start(self, trainer):
        self.start = {k: v.clone() for k, v in trainer.model.state_dict().items()}

    def on_train_batch_end(self, trainer):
        self.after_step.append({k: v.clone() for k, v in trainer.model.state_dict().items()})


def trainer_with(tmp_path: Path, ema: EMA, *plugins, epochs: int = 2, seed: int = 3, **kw) -> trainhooks.Trainer:
    model = tiny_model(seed)
    return trainhooks.Trainer(
        model,
        loss_fn=torch.nn.CrossEntropyLoss(),
        optimizer=torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9),
        epochs=epochs,
        save_dir=tmp_path / "run",
        seed=seed,
        plugins=[ema, *plugins],
        default_plugins=False,
        verbose=False,
        **kw,
    )


def test_average_matches_a_hand_computation(tmp_path) -> None:
    log = WeightLog()
    ema = EMA(decay=0.8, warmup=3, every=2, use_for="none")
    trainer = trainer_with(tmp_path, ema, log, epochs=2)
    trainer.fit(*tiny_digits(n_train=160, n_val=32, batch_size=32))
    assert len(log.after_step) == 10
    expected = {k: v.clone() for k, v in log.start.items() if v.is_floating_point()}
    updates = 0
    for step, weights in enumerate(log.after_step, start=1):
        if step % 2:
            continue  # every=2: the 2nd, 4th, ... optimizer step updates
        updates += 1
        d = 0.8 * (1 - math.exp(-updates / 3))
        for k in expected:
            expected[k] = d * expected[k] + (1 - d) * weights[k]
    assert ema.updates == 5 and ema.steps == 10
    got = ema.weights()
    assert set(got) == set(expected)
    for k in expected:
        torch.testing.assert_close(got[k], expected[k])
        assert not torch.equal(got[k], log.after_step[-1][k])  # it is an average, not the weights
    # The model itself keeps the trained weights.
    for k, v in trainer.model.state_dict().items():
        assert torch.equal(v, log.after_step[-1][k])


def test_under_accumulation_the_average_moves_once_per_optimizer_step(tmp_path) -> None:
    log = WeightLog()  # on_train_batch_end: after each optimizer step (not each micro-batch)
    micro: list[int] = []
    ema = EMA(decay=0.7, warmup=0, use_for="none")
    trainer = trainer_with(tmp_path, ema, log, epochs=2, accumulate_grad_batches=2)
    trainer.add_callback("on_train_microbatch_end", lambda t: micro.append(t.global_step))
    trainer.fit(*tiny_digits(n_train=160, n_val=32, batch_size=32))
    assert len(micro) == 10  # 5 micro-batches per epoch: groups of 2, 2, 1
    assert trainer.global_step == len(log.after_step) == 6
    assert ema.updates == ema.steps == 6
    expected = {k: v.clone() for k, v in log.start.items() if v.is_floating_point()}
    for weights in log.after_step:
        for k in expected:
            expected[k] = 0.7 * expected[k] + 0.3 * weights[k]
    for k, v in ema.weights().items():
        torch.testing.assert_close(v, expected[k])


def test_validation_checkpoint_and_export_use_the_average_then_swap_back(tmp_path) -> None:
    log = WeightLog()
    ema = EMA(decay=0.9, warmup=0)
    trainer = trainer_with(tmp_path, ema, log, ModelCheckpoint(), "torchscript", epochs=3)
    train, val = tiny_digits(n_train=128, n_val=64, batch_size=32)
    trainer.fit(train, val)
    trained = log.after_step[-1]
    for k, v in trainer.model.state_dict().items():
        assert torch.equal(v, trained[k])  # swapped back after every validation

    averaged = tiny_model()
    averaged.load_state_dict(ema.weights())
    loss_fn = torch.nn.CrossEntropyLoss()
    with torch.no_grad():
        xs, ys = zip(*val)
        manual = sum(loss_fn(averaged(x), y).item() * len(y) for x, y in zip(xs, ys)) / sum(len(y) for y in ys)
    assert trainer.history[-1]["val/loss"] == pytest.approx(manual, rel=1e-5)

    last = torch.load(tmp_path / "run" / "weights" / "last.pt", weights_only=True)
    name = trainer.plugin_manager.get_name(ema)
    for k, v in ema.weights().items():
        assert torch.equal(last["model"][k], v)
        assert torch.equal(last["plugins"][name]["trained_model"][k], trained[k])
    # `trainhooks validate --weights` style: the file's model gives the logged val metrics.
    best = torch.load(tmp_path / "run" / "weights" / "best.pt", weights_only=True)
    best_epoch = min(range(3), key=lambda i: trainer.history[i]["val/loss"])
    reloaded = tiny_model()
    reloaded.load_state_dict(best["model"])
    with torch.no_grad():
        again = sum(loss_fn(reloaded(x), y).item() * len(y) for x, y in zip(xs, ys)) / sum(len(y) for y in ys)
    assert again == pytest.approx(trainer.history[best_epoch]["val/loss"], rel=1e-5)

    path = trainer.export("torchscript", tmp_path / "model.ts")
    exported = torch.jit.load(str(path))
    for k, v in ema.weights().items():
        assert torch.equal(exported.state_dict()[k], v)
    for k, v in trainer.model.state_dict().items():
        assert torch.equal(v, trained[k])  # export worked on a copy


def test_without_val_the_metrics_come_from_the_trained_weights(tmp_path) -> None:
    ema = EMA(decay=0.9, warmup=0, use_for="checkpoint")
    trainer = trainer_with(tmp_path, ema, epochs=1)
    train, val = tiny_digits(n_train=64, n_val=64, batch_size=32)
    trainer.fit(train, val)
    assert trainer.validate(val)["val/loss"] == pytest.approx(trainer.history[-1]["val/loss"], rel=1e-6)


class CrashAt(trainhooks.Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer):
        if trainer.global_step == self.step:
            raise RuntimeError(f"simulated crash at step {trainer.global_step}")


def run(save_dir: Path, epochs: int, resume: Path | None = None, crash_at: int | None = None):
    ema = EMA(decay=0.7, warmup=4, every=3)
    model = tiny_model(1)
    trainer = trainhooks.Trainer(
        model,
        loss_fn=torch.nn.CrossEntropyLoss(),
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-2),
        epochs=epochs,
        save_dir=save_dir,
        seed=7,
        plugins=[ema, ModelCheckpoint(every_n_steps=3)],
        callbacks=[CrashAt(crash_at)] if crash_at else [],
        default_plugins=False,
        verbose=False,
    )
    try:
        trainer.fit(*tiny_digits(n_train=160, n_val=32, batch_size=32, seed=2), resume=resume)
    except trainhooks.HookError:
        assert crash_at is not None
    return trainer, ema


@pytest.mark.parametrize("where", ["epoch", "mid-epoch", "emergency"])
def test_resume_continues_the_same_average_exactly(tmp_path, where) -> None:
    reference, ref_ema = run(tmp_path / "ref", epochs=4)
    weights = tmp_path / "run" / "weights"
    if where == "epoch":
        run(tmp_path / "run", epochs=2)
        path, step = weights / "last.pt", 10
    else:  # 5 batches per epoch: last.pt is written at steps 3, 5 (epoch end), 6
        run(tmp_path / "run", epochs=4, crash_at=7)
        path, step = (weights / "last.pt", 6) if where == "mid-epoch" else (weights / "emergency.pt", 7)
    assert torch.load(path, weights_only=True)["global_step"] == step
    resumed, ema = run(tmp_path / "run", epochs=4, resume=path)
    assert resumed.global_step == reference.global_step == 20
    assert ema.updates == ref_ema.updates and ema.steps == ref_ema.steps == 20
    for k, v in ref_ema.weights().items():
        assert torch.equal(ema.weights()[k], v), k
    for a, b in zip(resumed.model.state_dict().values(), reference.model.state_dict().values()):
        assert torch.equal(a, b)  # training continued from the trained weights, not the average
    assert resumed.history == reference.history


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"decay": 1.0}, "setting decay (--ema-decay) must be a number from 0 to 1, 1 excluded, got 1.0"),
        ({"every": 0}, "setting every (--ema-every) must be an integer >= 1, got 0"),
        ({"warmup": 2.5}, "setting warmup (--ema-warmup) must be an integer >= 0, got 2.5"),
        (
            {"use_for": "val,best"},
            "must be a comma-separated subset of val, checkpoint, export, or none, got 'val,best'",
        ),
    ],
)
def test_bad_settings_are_clear_errors(kwargs, message) -> None:
    with pytest.raises(trainhooks.ConfigError) as info:
        EMA(**kwargs)
    assert message in str(info.value)


def test_cli_fit_then_validate_reproduces_the_best_epoch(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    code = cli.main(
        ["fit", "-p", "ema", "--epochs", "3", "--ema-decay", "0.9", "--ema-warmup", "0", "--save-dir", "out", "--quiet"]
    )
    assert code == 0
    rows = list(csv.DictReader(open("out/metrics.csv")))
    best = min(float(r["val/loss"]) for r in rows)
    capsys.readouterr()
    assert cli.main(["validate", "--weights", "out/weights/best.pt", "--save-dir", "val"]) == 0
    printed = capsys.readouterr().out
    value = float(printed.split("val/loss")[1].split()[0])
    assert value == pytest.approx(best, abs=1e-4)
    with pytest.raises(SystemExit) as info:  # a usage error: argparse's one line
        cli.main(["fit", "-p", "ema", "--ema-every", "0", "--save-dir", "bad"])
    assert info.value.code == 2
    assert "setting every (--ema-every) must be an integer >= 1, got 0" in capsys.readouterr().err
