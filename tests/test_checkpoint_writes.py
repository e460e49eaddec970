"""Checkpoints written behind training, and the checkpoint plugin's naming, retention and
best weights (issue 14): real training, real threads, real files, real processes."""

from __future__ import annotations

import math
import os
import stat
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
import torch

import trainhooks
from trainhooks import checkpointing
from trainhooks.errors import CheckpointError
from trainhooks.plugins.checkpoint import ModelCheckpoint
from trainhooks.plugins.csv_logger import CSVLogger
from trainhooks.testing import tiny_digits, tiny_model


class DurableCheck(trainhooks.Callback):
    """on_model_save must only see whole files: load each one and record its step."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, int]] = []
        self.max_writers = 0

    def on_model_save(self, trainer, path):
        self.seen.append((path.name, int(checkpointing.load_checkpoint(path)["global_step"])))

    def on_train_batch_end(self, trainer):
        writers = [t for t in threading.enumerate() if t.name == "trainhooks-checkpoint-writer"]
        self.max_writers = max(self.max_writers, len(writers))


# --------------------------------------------------------------------------- background writes
def test_snapshot_is_a_copy_training_cannot_change() -> None:
    model = tiny_model()
    state = {"model": model.state_dict(), "history": [{"a": 1.0}], "t": (1, torch.ones(2))}
    snap = checkpointing.snapshot(state)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    state["history"][0]["a"] = 2.0
    assert all(not torch.equal(snap["model"][k], v) for k, v in model.state_dict().items())
    assert snap["history"] == [{"a": 1.0}]
    # load_state_dict reads the state_dict's _metadata: it survives the copy.
    assert snap["model"]._metadata == model.state_dict()._metadata
    # A tensor that appears twice (tied weights) is copied once and stays shared.
    shared = torch.ones(3)
    twice = checkpointing.snapshot({"a": shared, "b": shared})
    assert twice["a"] is twice["b"] and twice["a"] is not shared


def test_background_writes_fire_on_model_save_only_for_durable_files(make_trainer, loaders) -> None:
    check = DurableCheck()
    trainer = make_trainer(plugins=[ModelCheckpoint(every_n_steps=1), check], epochs=3)
    result = trainer.fit(*loaders)
    # 3 batches per epoch: a mid-epoch last.pt after every step, the epoch's last.pt, best.pt on improvement
    lasts = [step for name, step in check.seen if name == "last.pt"]
    assert lasts == sorted(lasts) and lasts[-1] == result.global_step == 9
    assert check.max_writers <= 1  # at most one write in flight
    assert not trainer.checkpoint_writer.pending  # fit waited for the last one
    saved = checkpointing.load_checkpoint(trainer.save_dir / "weights" / "last.pt")
    assert saved["global_step"] == 9 and saved["epoch_completed"] is True
    model = tiny_model()
    model.load_state_dict(saved["model"])
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), trainer.model.state_dict().values()))


def test_background_and_foreground_write_the_same_checkpoint(make_trainer, tmp_path) -> None:
    files = {}
    for background in (True, False):
        trainer = make_trainer(
            plugins=[ModelCheckpoint(background=background)], save_dir=tmp_path / str(background), seed=3
        )
        trainer.fit(*tiny_digits())  # fresh loaders: the same shuffles in both runs
        files[background] = checkpointing.load_checkpoint(trainer.save_dir / "weights" / "last.pt")
    a, b = files[True], files[False]
    assert a.keys() == b.keys()
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert a["history"] == b["history"] and a["global_step"] == b["global_step"]


def test_a_failed_background_write_surfaces_at_the_next_save(make_trainer, loaders) -> None:
    trainer = make_trainer(plugins=[ModelCheckpoint()], epochs=3)
    trainer.save_dir.mkdir(parents=True)
    (trainer.save_dir / "weights").write_text("a file where the weights directory should be")
    with pytest.raises(trainhooks.HookError) as info:
        trainer.fit(*loaders)
    # Epoch 1's write failed on the writer thread; epoch 2's save reports it.
    assert info.value.hook == "on_fit_epoch_end" and trainer.epoch == 1
    assert isinstance(info.value.original, CheckpointError)
    assert "last.pt" in str(info.value.original)


def test_a_failed_background_write_surfaces_when_training_ends(make_trainer, loaders) -> None:
    trainer = make_trainer(plugins=[ModelCheckpoint()], epochs=1)
    trainer.save_dir.mkdir(parents=True)
    (trainer.save_dir / "weights").write_text("not a directory")
    with pytest.raises(CheckpointError, match=r"last\.pt"):
        trainer.fit(*loaders)
    assert not trainer.checkpoint_writer.pending


def test_the_writer_refuses_a_second_write_before_the_first_is_collected(tmp_path) -> None:
    writer = checkpointing.CheckpointWriter()
    writer.submit({"format": checkpointing.FORMAT, "x": torch.ones(3)}, tmp_path / "a.pt")
    with pytest.raises(RuntimeError, match="collect"):
        writer.submit({"format": checkpointing.FORMAT}, tmp_path / "b.pt")
    assert writer.wait() and writer.pending  # finished, not yet reported
    seen: list[Path] = []
    writer.collect(seen.append)
    assert seen == [tmp_path / "a.pt"] and not writer.pending
    assert writer.collect(seen.append) is None  # reported once


def test_no_emergency_pt_when_last_pt_holds_the_same_step(make_trainer, loaders) -> None:
    class Crash(trainhooks.Callback):
        def on_train_batch_end(self, trainer):
            if trainer.global_step == 4:
                raise RuntimeError("boom")

    trainer = make_trainer(plugins=[ModelCheckpoint(every_n_steps=2)], callbacks=[Crash()])
    with pytest.raises(trainhooks.HookError):
        trainer.fit(*loaders)
    weights = trainer.save_dir / "weights"
    assert not (weights / "emergency.pt").exists()
    assert trainer.emergency_checkpoint == weights / "last.pt"
    assert checkpointing.load_checkpoint(weights / "last.pt")["global_step"] == 4


def test_emergency_pt_when_last_pt_is_behind(make_trainer, loaders) -> None:
    class Crash(trainhooks.Callback):
        def on_train_batch_end(self, trainer):
            if trainer.global_step == 5:
                raise RuntimeError("boom")

    trainer = make_trainer(plugins=[ModelCheckpoint(every_n_steps=2)], callbacks=[Crash()])
    with pytest.raises(trainhooks.HookError):
        trainer.fit(*loaders)
    weights = trainer.save_dir / "weights"
    assert trainer.emergency_checkpoint == weights / "emergency.pt"
    assert checkpointing.load_checkpoint(weights / "emergency.pt")["global_step"] == 5
    assert checkpointing.load_checkpoint(weights / "last.pt")["global_step"] == 4  # waited for, intact


EXIT_SCRIPT = textwrap.dedent(
    """
    import sys, torch, trainhooks
    from trainhooks.testing import tiny_digits, tiny_model
    trainer = trainhooks.Trainer(tiny_model(), loss_fn=torch.nn.CrossEntropyLoss(), epochs=1,
                                 save_dir=sys.argv[1], default_plugins=False, verbose=False)
    train, val = tiny_digits()
    trainer.fit(train, val)
    trainer.state_checkpoint = lambda **kw: {"format": "trainhooks.checkpoint", "version": 1,
                                             "ballast": torch.rand(40_000_000)}
    trainer.save_checkpoint(trainer.save_dir / "late.pt", background=True)
    print("submitted", trainer.checkpoint_writer.pending, flush=True)
    # the script ends here, with a 160 MB write in flight
    """
)


@pytest.mark.slow
def test_process_exit_waits_for_a_background_write(tmp_path) -> None:
    script = tmp_path / "exit_during_write.py"
    script.write_text(EXIT_SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "run")], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert "submitted True" in done.stdout
    saved = checkpointing.load_checkpoint(tmp_path / "run" / "late.pt")  # whole, CRCs checked
    assert saved["ballast"].numel() == 40_000_000


# --------------------------------------------------------------------------- file modes
@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_checkpoints_and_metrics_csv_honour_the_umask(make_trainer, loaders, umask) -> None:
    old = os.umask(umask)
    try:
        trainer = make_trainer(plugins=[ModelCheckpoint(), CSVLogger()])
        trainer.fit(*loaders)
    finally:
        os.umask(old)
    expected = 0o666 & ~umask
    for name in ("weights/last.pt", "weights/best.pt", "weights/previous.pt", "metrics.csv"):
        assert stat.S_IMODE((trainer.save_dir / name).stat().st_mode) == expected, name


# --------------------------------------------------------------------------- naming and retention
def val_losses_seq(values):
    """A callback logging a scripted val/loss per epoch (after validation, before checkpoint)."""

    class Scripted(trainhooks.Callback):
        @trainhooks.hookimpl(tryfirst=True)
        def on_fit_epoch_end(self, trainer):
            trainer.log_metric("val/loss", values[trainer.epoch])

    return Scripted()


def names(trainer) -> list[str]:
    return sorted(p.name for p in (trainer.save_dir / "weights").iterdir())


def test_filename_template_names_the_top_k_files(make_trainer, loaders) -> None:
    ckpt = ModelCheckpoint(save_top_k=2, filename="{epoch:03d}-{val/loss:.4f}")
    trainer = make_trainer(plugins=[ckpt], callbacks=[val_losses_seq([0.5, 0.3, 0.4, 0.2])], epochs=4)
    trainer.fit(*loaders)
    assert names(trainer) == ["002-0.3000.pt", "004-0.2000.pt", "best.pt", "last.pt", "previous.pt"]
    assert checkpointing.load_checkpoint(trainer.save_dir / "weights" / "004-0.2000.pt")["epoch"] == 3


@pytest.mark.parametrize(
    ("template", "culprit"),
    [("", "non-empty"), ("{}", "positional"), ("../x", "inside weights"), ("last", "writes itself"), ("{a", "valid")],
)
def test_bad_filename_templates_are_config_errors(make_trainer, template, culprit) -> None:
    with pytest.raises(trainhooks.ConfigError, match=culprit):
        make_trainer(plugins=[ModelCheckpoint(filename=template)])


def test_filename_naming_an_unlogged_metric_says_what_is_available(make_trainer, loaders) -> None:
    trainer = make_trainer(plugins=[ModelCheckpoint(save_top_k=-1, filename="{val/f1:.3f}")])
    with pytest.raises(trainhooks.HookError, match=r"'val/f1'.*available: epoch, step, .*val/loss"):
        trainer.fit(*loaders)


def test_every_n_epochs_keeps_those_epochs_whatever_the_top_k(make_trainer, loaders) -> None:
    ckpt = ModelCheckpoint(every_n_epochs=2)
    trainer = make_trainer(plugins=[ckpt], callbacks=[val_losses_seq([0.5, 0.6, 0.7, 0.8, 0.9])], epochs=5)
    trainer.fit(*loaders)
    assert names(trainer) == ["best.pt", "epoch2.pt", "epoch4.pt", "last.pt", "previous.pt"]
    assert checkpointing.load_checkpoint(trainer.save_dir / "weights" / "best.pt")["epoch"] == 0


def test_top_k_never_deletes_a_periodic_file(make_trainer, loaders) -> None:
    ckpt = ModelCheckpoint(save_top_k=2, every_n_epochs=2)
    trainer = make_trainer(plugins=[ckpt], callbacks=[val_losses_seq([0.5, 0.6, 0.4, 0.3])], epochs=4)
    trainer.fit(*loaders)
    # top 2: epochs 4 and 3; epoch 2 is periodic; epoch 1 fell out of the top 2 and is deleted
    assert names(trainer) == ["best.pt", "epoch2.pt", "epoch3.pt", "epoch4.pt", "last.pt", "previous.pt"]


def test_without_a_monitor_save_top_k_minus_one_keeps_every_epoch(make_trainer, loaders) -> None:
    trainer = make_trainer(plugins=[ModelCheckpoint(monitor="none", save_top_k=-1)], epochs=3)
    trainer.fit(*loaders)
    assert names(trainer) == ["epoch1.pt", "epoch2.pt", "epoch3.pt", "last.pt", "previous.pt"]


def test_without_a_monitor_only_last_pt(make_trainer, loaders, recwarn) -> None:
    trainer = make_trainer(plugins=[ModelCheckpoint(monitor="none")], epochs=2)
    trainer.fit(*loaders)
    assert names(trainer) == ["last.pt", "previous.pt"]
    assert not [w for w in recwarn if "checkpoint" in str(w.message)]


def test_initial_threshold_must_be_beaten_before_anything_is_best(make_trainer, loaders) -> None:
    ckpt = ModelCheckpoint(initial_threshold=0.35, save_top_k=-1)
    trainer = make_trainer(plugins=[ckpt], callbacks=[val_losses_seq([0.5, 0.4, 0.3, 0.33])], epochs=4)
    trainer.fit(*loaders)
    assert names(trainer) == ["best.pt", "epoch3.pt", "epoch4.pt", "last.pt", "previous.pt"]
    assert checkpointing.load_checkpoint(trainer.save_dir / "weights" / "best.pt")["epoch"] == 2


def test_a_threshold_nobody_beats_writes_no_best_pt(make_trainer, loaders) -> None:
    ckpt = ModelCheckpoint(monitor="val/acc", initial_threshold=1.5)  # accuracy above 1.5: never
    trainer = make_trainer(plugins=[ckpt], epochs=2)
    trainer.fit(*loaders)
    assert names(trainer) == ["last.pt", "previous.pt"]


def test_a_metric_that_is_nan_in_every_epoch(make_trainer, loaders) -> None:
    nan = float("nan")
    ckpt = ModelCheckpoint(save_top_k=2, restore_best=True)
    trainer = make_trainer(plugins=[ckpt], callbacks=[val_losses_seq([nan, nan, nan])], epochs=3)
    with pytest.warns(RuntimeWarning) as caught:
        trainer.fit(*loaders)
    messages = [str(w.message) for w in caught if "checkpoint" in str(w.message)]
    assert any("NaN at epoch 1" in m for m in messages)
    assert any("NaN in every epoch: no best.pt" in m for m in messages)
    assert any("restore_best" in m and "final weights" in m for m in messages)
    assert names(trainer) == ["last.pt", "previous.pt"]
    assert math.isnan(checkpointing.load_checkpoint(trainer.save_dir / "weights" / "last.pt")["metrics"]["val/loss"])


# --------------------------------------------------------------------------- best weights
def test_restore_best_ends_training_with_the_best_weights(make_trainer, loaders) -> None:
    seen = {}

    class AfterTraining(trainhooks.Callback):  # an exporter running at the end sees best weights
        def on_train_end(self, trainer):
            seen["weights"] = {k: v.clone() for k, v in trainer.model.state_dict().items()}

    ckpt = ModelCheckpoint(restore_best=True)
    trainer = make_trainer(plugins=[ckpt], callbacks=[val_losses_seq([0.5, 0.2, 0.4]), AfterTraining()], epochs=3)
    trainer.fit(*loaders)
    weights = trainer.save_dir / "weights"
    best = checkpointing.load_checkpoint(weights / "best.pt")
    last = checkpointing.load_checkpoint(weights / "last.pt")
    assert best["epoch"] == 1 and last["epoch"] == 2
    assert all(torch.equal(trainer.model.state_dict()[k], v) for k, v in best["model"].items())
    assert not all(torch.equal(trainer.model.state_dict()[k], v) for k, v in last["model"].items())
    assert all(torch.equal(seen["weights"][k], v) for k, v in best["model"].items())


def test_without_restore_best_the_model_keeps_its_final_weights(make_trainer, loaders) -> None:
    trainer = make_trainer(plugins=[ModelCheckpoint()], callbacks=[val_losses_seq([0.5, 0.2, 0.4])], epochs=3)
    trainer.fit(*loaders)
    last = checkpointing.load_checkpoint(trainer.save_dir / "weights" / "last.pt")
    assert all(torch.equal(trainer.model.state_dict()[k], v) for k, v in last["model"].items())


def test_previous_pt_is_the_last_pt_before(make_trainer, loaders) -> None:
    trainer = make_trainer(plugins=[ModelCheckpoint()], epochs=3)
    trainer.fit(*loaders)
    weights = trainer.save_dir / "weights"
    assert checkpointing.load_checkpoint(weights / "previous.pt")["epoch"] == 1
    assert checkpointing.load_checkpoint(weights / "last.pt")["epoch"] == 2
    assert os.stat(weights / "previous.pt").st_ino != os.stat(weights / "last.pt").st_ino
