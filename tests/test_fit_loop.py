"""A real fit fires every hook in the documented order (loopmap), with the documented arguments."""

from __future__ import annotations

import math

import torch

import trainhooks
from trainhooks import loopmap
from trainhooks.testing import HookRecorder

BATCH = [
    "on_train_batch_start",
    "on_before_backward",
    "on_after_backward",
    "on_train_microbatch_end",  # issue 13: the micro-batch hook (every batch without accumulation)
    "on_before_optimizer_step",
    "optimizer_step",
    "on_params_update",
    "on_before_zero_grad",
    "on_train_batch_end",
    "should_stop",
]


def expected_fit(epochs: int, train_batches: int, val_batches: int) -> list[str]:
    seq = ["on_fit_start", "on_pretrain_routine_start", "on_pretrain_routine_end", "on_train_start"]
    for _ in range(epochs):
        seq += ["on_train_epoch_start", *BATCH * train_batches, "on_train_epoch_end", "on_val_start"]
        seq += ["on_val_batch_start", "on_val_batch_end"] * val_batches
        seq += ["on_val_end", "on_fit_epoch_end", "on_log", "should_stop"]  # on_log: the epoch's final row
    return [*seq, "on_train_end", "teardown"]


def test_fit_fires_hooks_in_documented_order(make_trainer, loaders) -> None:
    rec = HookRecorder()
    trainer = make_trainer(plugins=[rec], epochs=2)
    rec.clear()  # drop add_options/configure from construction
    trainer.fit(*loaders)
    assert rec.names() == expected_fit(2, 3, 2)


def test_loopmap_is_the_same_order(make_trainer, loaders) -> None:
    # With one batch each, the unrolled loop map is exactly what fit does in one epoch.
    train = torch.utils.data.DataLoader(loaders[0].dataset, batch_size=96)
    val = torch.utils.data.DataLoader(loaders[1].dataset, batch_size=64)
    rec = HookRecorder()
    trainer = make_trainer(plugins=[rec], epochs=1)
    assert rec.names() == list(loopmap.unroll(loopmap.LOOPS["setup (Trainer construction)"]))
    rec.clear()
    trainer.fit(train, val)
    assert rec.names() == list(loopmap.unroll(loopmap.LOOPS["fit"]))


def test_hook_arguments_and_trainer_state(make_trainer, loaders) -> None:
    rec = HookRecorder()
    trainer = make_trainer(plugins=[rec], epochs=2)
    trainer.fit(*loaders)

    starts = rec.of("on_train_batch_start")
    assert [c.kwargs["batch_idx"] for c in starts] == [0, 1, 2, 0, 1, 2]
    assert all(c.kwargs["trainer"] is trainer for c in rec.calls if "trainer" in c.kwargs)
    x, y = starts[0].kwargs["batch"]
    assert x.shape == (32, 64) and y.shape == (32,)

    backward = rec.first("on_before_backward")
    assert backward.kwargs["loss"].requires_grad and backward.kwargs["loss"].dim() == 0
    assert rec.first("on_before_optimizer_step").kwargs["optimizer"] is trainer.optimizer
    assert rec.first("on_before_zero_grad").kwargs["optimizer"] is trainer.optimizer

    end = rec.of("on_train_batch_end")
    assert [c.global_step for c in end] == [1, 2, 3, 4, 5, 6]
    outputs = end[0].kwargs["outputs"]
    assert not outputs["loss"].requires_grad and outputs["preds"].shape == (32, 10)

    assert [c.epoch for c in rec.of("on_train_epoch_start")] == [0, 1]
    assert rec.first("on_val_batch_end").kwargs["outputs"]["loss"].dim() == 0
    assert rec.first("teardown").kwargs["stage"] == "fit"
    assert {c.stage for c in rec.calls if c.name.startswith("on_val")} == {"fit"}
    assert trainer.epochs == 2 and trainer.global_step == 6


def test_metrics_at_epoch_end_and_fit_epoch_end(make_trainer, loaders) -> None:
    seen: dict[str, dict[str, float]] = {}

    class Spy(trainhooks.Callback):
        def on_train_epoch_end(self, trainer):
            seen["train_end"] = dict(trainer.metrics)

        def on_fit_epoch_end(self, trainer):
            seen["fit_end"] = dict(trainer.metrics)
            seen["history_len"] = {"n": len(trainer.history)}

    trainer = make_trainer(callbacks=[Spy()], epochs=1)
    result = trainer.fit(*loaders)
    assert set(seen["train_end"]) == {"train/loss", "lr"}
    assert {"train/loss", "val/loss", "val/acc", "lr"} <= set(seen["fit_end"])
    assert all(isinstance(v, float) and math.isfinite(v) for v in seen["fit_end"].values())
    assert 0.0 <= seen["fit_end"]["val/acc"] <= 1.0
    assert seen["history_len"]["n"] == 1
    assert result.history == [seen["fit_end"]]
    assert result.stop_reason == "completed 1 epoch" and not result.stopped_early


def test_training_really_learns(make_trainer) -> None:
    from trainhooks.testing import tiny_digits

    train, val = tiny_digits(n_train=800, n_val=200, batch_size=32)
    model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
    trainer = make_trainer(model=model, epochs=5, optimizer=lambda p: torch.optim.Adam(p, lr=1e-2))
    result = trainer.fit(train, val)
    assert result.history[-1]["val/acc"] > 0.85
    assert result.history[-1]["train/loss"] < result.history[0]["train/loss"]


def test_log_metric_from_a_hook_reaches_history(make_trainer, loaders) -> None:
    class Counter(trainhooks.Callback):
        def on_train_batch_end(self, trainer, outputs):
            trainer.log_metric("train/last_loss", outputs["loss"])  # a tensor: no sync here

        def on_fit_epoch_end(self, trainer):
            trainer.log_metric("custom/epoch_plus_one", trainer.epoch + 1)

    trainer = make_trainer(callbacks=[Counter()], epochs=2)
    result = trainer.fit(*loaders)
    assert isinstance(result.history[0]["train/last_loss"], float)
    assert result.metrics["custom/epoch_plus_one"] == 2.0


def test_training_step_on_the_model(make_trainer, loaders) -> None:
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(64, 10)

        def forward(self, x):
            return self.lin(x)

        def training_step(self, batch):
            x, y = batch
            return {"loss": torch.nn.functional.cross_entropy(self(x), y), "extra": 1}

        def validation_step(self, batch):
            x, y = batch
            logits = self(x)
            return {
                "loss": torch.nn.functional.cross_entropy(logits, y),
                "top1": (logits.argmax(1) == y).float().mean(),
            }

    rec = HookRecorder()
    trainer = make_trainer(model=Net(), loss_fn=None, plugins=[rec], epochs=1)
    result = trainer.fit(*loaders)
    assert {"val/loss", "val/top1", "train/loss"} <= set(result.metrics)
    assert rec.first("on_train_batch_end").kwargs["outputs"]["extra"] == 1


def test_fit_twice_starts_over(make_trainer, loaders) -> None:
    trainer = make_trainer(epochs=1)
    trainer.fit(*loaders)
    second = trainer.fit(*loaders)
    assert second.epochs_completed == 1 and second.global_step == 3
