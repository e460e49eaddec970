"""firstresult should_stop: clean stops at epoch and batch level, with the end hooks still running."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import trainhooks
from trainhooks.testing import HookRecorder, tiny_digits


class StopAtEpoch:
    """A pluggy-style plugin (marked methods) answering on the 2nd epoch (epoch index 1)."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    @trainhooks.hookimpl
    def should_stop(self, trainer):
        if (
            trainer.epoch == self.epoch
            and trainer.stage == "fit"
            and trainer.batch_idx == trainer.num_train_batches - 1
        ):
            return f"epoch {trainer.epoch + 1} was enough"
        return None


def test_epoch_level_stop_after_epoch_two(make_trainer, loaders) -> None:
    rec = HookRecorder()
    trainer = make_trainer(plugins=[StopAtEpoch(epoch=1), rec], epochs=10)
    result = trainer.fit(*loaders)
    # The plugin answers after the last batch of epoch 2: the epoch is complete, so exactly 2 ran.
    assert result.epochs_completed == 2
    assert result.stopped_early and result.stopped_by == "StopAtEpoch"
    assert trainer.stop_reason == result.stop_reason == "epoch 2 was enough"
    assert rec.count("on_train_end") == 1 and rec.count("teardown") == 1
    assert rec.count("on_fit_epoch_end") == 2
    assert rec.names()[-2:] == ["on_train_end", "teardown"]


def test_stop_decided_at_epoch_end(make_trainer, loaders) -> None:
    class AfterSecondEpoch(trainhooks.Callback):
        def should_stop(self, trainer):
            # After on_fit_epoch_end the history holds the current epoch: an epoch-end consultation.
            at_epoch_end = len(trainer.history) == trainer.epoch + 1
            return "two epochs" if at_epoch_end and trainer.epoch == 1 else None

    rec = HookRecorder()
    trainer = make_trainer(callbacks=[AfterSecondEpoch()], plugins=[rec], epochs=10)
    result = trainer.fit(*loaders)
    assert result.epochs_completed == 2
    # The stop came from the epoch-level consultation: fit_epoch_end happened before it.
    # firstresult: the recorder (trylast) is not consulted once the callback has answered.
    # (on_log: the epoch's final row, issue 13, fires between on_fit_epoch_end and should_stop.)
    assert rec.names()[-5:] == ["on_val_end", "on_fit_epoch_end", "on_log", "on_train_end", "teardown"]
    assert rec.count("should_stop") == 3 * 2 + 1  # every batch, plus the end of epoch 0


def test_batch_level_stop_ends_epoch_early_but_keeps_bookkeeping(make_trainer, loaders) -> None:
    class AtStep(trainhooks.Callback):
        def should_stop(self, trainer):
            return "step budget" if trainer.global_step == 5 else None

    rec = HookRecorder()
    trainer = make_trainer(callbacks=[AtStep()], plugins=[rec], epochs=10)
    result = trainer.fit(*loaders)
    assert trainer.global_step == 5  # 3 batches in epoch 0, 2 in epoch 1
    assert result.epochs_completed == 2 and result.stop_reason == "step budget"
    names = rec.names()
    tail = names[names.index("on_train_epoch_start", names.index("on_train_epoch_start") + 1) :]
    assert tail.count("on_train_batch_start") == 2
    assert tail[tail.index("on_train_epoch_end") :] == [
        "on_train_epoch_end",
        "on_val_start",
        "on_val_batch_start",
        "on_val_batch_end",
        "on_val_batch_start",
        "on_val_batch_end",
        "on_val_end",
        "on_fit_epoch_end",
        "on_log",  # the epoch's final row (issue 13)
        "on_train_end",
        "teardown",
    ]
    assert names.count("on_train_end") == 1  # and no consultation after the epoch once decided


def test_true_gives_a_reason_naming_the_plugin(make_trainer, loaders) -> None:
    trainer = make_trainer(epochs=5)
    trainer.add_callback("should_stop", lambda trainer: trainer.global_step >= 1 or None)
    result = trainer.fit(*loaders)
    assert result.global_step == 1
    assert "should_stop:<lambda>" in result.stop_reason


def test_falsy_answer_means_continue_and_ends_consultation(make_trainer, loaders) -> None:
    calls: list[str] = []

    class No(trainhooks.Callback):
        def should_stop(self, trainer):
            calls.append("no")
            return False

    class Yes(trainhooks.Callback):
        def should_stop(self, trainer):
            calls.append("yes")
            return "never consulted"

    trainer = make_trainer(callbacks=[No(), Yes()], epochs=2)
    result = trainer.fit(*loaders)
    assert result.epochs_completed == 2 and not result.stopped_early
    assert set(calls) == {"no"}  # firstresult: the False answer ends the consultation


def test_wrong_type_from_should_stop_is_a_clear_error(make_trainer, loaders) -> None:
    class Weird(trainhooks.Callback):
        def should_stop(self, trainer):
            return {"stop": True}

    rec = HookRecorder()
    trainer = make_trainer(callbacks=[Weird()], plugins=[rec])
    with pytest.raises(trainhooks.PluginError, match=r"'Weird'.*should_stop must return None, a bool or a str"):
        trainer.fit(*loaders)
    assert rec.names()[-2:] == ["on_exception", "teardown"]


def test_cli_prints_the_stop_reason(tmp_path, monkeypatch, capsys) -> None:
    from trainhooks import cli

    (tmp_path / "stopper_plugin.py").write_text(
        "import trainhooks\n"
        "@trainhooks.hookimpl\n"
        "def should_stop(trainer):\n"
        "    if trainer.epoch == 1 and trainer.batch_idx + 1 == trainer.num_train_batches:\n"
        "        return 'stopper says epoch 2 is plenty'\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    code = cli.main(["fit", "--epochs", "10", "--save-dir", str(tmp_path / "run"), "-p", "stopper_plugin", "--quiet"])
    assert code == 0
    code = cli.main(["fit", "--epochs", "10", "--save-dir", str(tmp_path / "run2"), "-p", "stopper_plugin"])
    out = capsys.readouterr().out
    assert code == 0
    assert "stopper says epoch 2 is plenty" in out and "stopped early after 2 of 10 epochs" in out


def test_stop_on_real_digits_with_tiny_data(tmp_path: Path) -> None:
    train, val = tiny_digits(n_train=64, n_val=32)
    trainer = trainhooks.Trainer(
        torch.nn.Linear(64, 10),
        loss_fn=torch.nn.CrossEntropyLoss(),
        epochs=3,
        default_plugins=False,
        save_dir=tmp_path / "run",
    )
    trainer.add_callback("should_stop", lambda t: "now")
    result = trainer.fit(train, val)
    assert result.global_step == 1 and result.epochs_completed == 1
