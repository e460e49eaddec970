"""Checkpoints written behind training, and the checkpoint plugin's naming, retention and
best weights (issue 14): real training, real threads, real files, real processes."""

from __future__ import annotations

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
from trainhooks.testing import tiny_model


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


def test_a_failed_background_write_surfaces_at_the_next_save(make_trainer, loaders) -> None:
    trainer = make_trainer(plugins=[ModelCheckpoint()], epochs=3)
    trainer.save_dir.mkdir(parents=True)
    (trainer.save_dir / "weights" / "last.pt").mkdir(parents=True)  # renaming a file over it fails
    with pytest.raises(trainhooks.HookError) as info:
        trainer.fit(*loaders)
    # Epoch 1's write failed on the writer thread; epoch 2's save reports it.
    assert info.value.hook == "on_fit_epoch_end" and trainer.epoch == 1
    assert isinstance(info.value.original, CheckpointError)
    assert "last.pt" in str(info.value.original)


def test_a_failed_background_write_surfaces_when_training_ends(make_trainer, loaders) -> None:
    trainer = make_trainer(plugins=[ModelCheckpoint()], epochs=1)
    trainer.save_dir.mkdir(parents=True)
    (trainer.save_dir / "weights" / "last.pt").mkdir(parents=True)
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
    saved = torch.load(tmp_path / "run" / "late.pt", weights_only=True)  # whole: the write finished
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


def test_previous_pt_is_the_last_pt_before(make_trainer, loaders) -> None:
    trainer = make_trainer(plugins=[ModelCheckpoint()], epochs=3)
    trainer.fit(*loaders)
    weights = trainer.save_dir / "weights"
    assert checkpointing.load_checkpoint(weights / "previous.pt")["epoch"] == 1
    assert checkpointing.load_checkpoint(weights / "last.pt")["epoch"] == 2
    assert os.stat(weights / "previous.pt").st_ino != os.stat(weights / "last.pt").st_ino
