"""Fault tolerance, in process: exact resume with plugin state, safe and crash-safe checkpoints,
the plugin failure policy, and hostile input."""

from __future__ import annotations

import csv
import pickle
import random
import warnings
from pathlib import Path

import pytest
import torch

import trainhooks
from trainhooks import checkpointing, cli
from trainhooks.plugin_manager import PluginDisabledWarning
from trainhooks.plugins.checkpoint import ModelCheckpoint
from trainhooks.plugins.csv_logger import CSVLogger
from trainhooks.plugins.early_stopping import EarlyStopping
from trainhooks.plugins.lr_scheduler import LRScheduler
from trainhooks.plugins.timer import Timer
from trainhooks.testing import HookRecorder, tiny_digits


def dropout_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Dropout(0.2), torch.nn.Linear(32, 10))


class CrashAt(trainhooks.Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer):
        if trainer.global_step == self.step:
            raise RuntimeError(f"simulated crash at step {trainer.global_step}")


def run(save_dir: Path, *, crash_at: int | None = None, resume: Path | None = None, epochs: int = 4, **extra):
    """A deterministic run: shuffled data with its own generator, dropout, Adam, a scheduler."""
    train, val = tiny_digits(n_train=160, n_val=64, batch_size=extra.pop("batch_size", 32), seed=1)
    train = extra.pop("train", train)
    model = dropout_model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.7)
    plugins = [ModelCheckpoint(every_n_steps=3), CSVLogger(), LRScheduler(), EarlyStopping(patience=50)]
    callbacks = [*extra.pop("callbacks", []), *([CrashAt(crash_at)] if crash_at else [])]
    trainer = trainhooks.Trainer(
        model,
        loss_fn=torch.nn.CrossEntropyLoss(),
        optimizer=opt,
        lr_scheduler=sched,
        epochs=epochs,
        save_dir=save_dir,
        seed=extra.pop("seed", 5),
        plugins=plugins,
        callbacks=callbacks,
        default_plugins=False,
        verbose=False,
        **extra,
    )
    try:
        trainer.fit(train, val, resume=resume)
    except trainhooks.HookError:
        if crash_at is None:
            raise  # only the planned crash is expected
    return trainer


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> trainhooks.Trainer:
    return run(tmp_path_factory.mktemp("ref") / "run")


@pytest.mark.parametrize("crash_at", [2, 5, 9, 13, 19])
def test_crash_and_resume_is_bitwise_exact(tmp_path, reference, crash_at) -> None:
    crashed = run(tmp_path / "run", crash_at=crash_at)
    assert crashed.emergency_checkpoint is not None
    if crash_at < 3:  # before the first periodic checkpoint: only the emergency one exists
        assert not (tmp_path / "run" / "weights" / "last.pt").exists()
        return
    last = torch.load(tmp_path / "run" / "weights" / "last.pt", weights_only=True)
    assert crash_at - last["global_step"] < 3  # every 3 steps: at most 3 steps lost
    resumed = run(tmp_path / "run", resume=tmp_path / "run" / "weights" / "last.pt")
    assert resumed.global_step == reference.global_step == 20
    assert same_weights(resumed.model, reference.model)
    assert resumed.optimizer.state_dict()["state"][0]["step"] == reference.optimizer.state_dict()["state"][0]["step"]
    assert resumed.history == reference.history  # metrics too
    rows = list(csv.DictReader((tmp_path / "run" / "metrics.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2", "3", "4"]


def test_resume_from_the_emergency_checkpoint_is_exact(tmp_path, reference) -> None:
    crashed = run(tmp_path / "run", crash_at=14)
    assert crashed.emergency_checkpoint == tmp_path / "run" / "weights" / "emergency.pt"
    resumed = run(tmp_path / "run", resume=crashed.emergency_checkpoint)
    assert same_weights(resumed.model, reference.model)


class CrashBeforeStep(trainhooks.Callback):
    """Fails after the batch's backward, before its optimizer step: that batch is not trained."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_before_optimizer_step(self, trainer):
        if trainer.global_step == self.step:
            raise RuntimeError(f"simulated crash before the optimizer step after step {self.step}")


@pytest.mark.parametrize("hook_step", [7, 8])  # mid-epoch (5 batches per epoch), not on a last.pt step
def test_a_crash_before_the_optimizer_step_resumes_with_that_batch_again(tmp_path, reference, hook_step) -> None:
    """The emergency checkpoint holds the position of the last step taken, not of the batch
    whose step never happened: the resumed run trains that batch again (with new random numbers,
    since the crashed forward had drawn its own: the same steps, not bitwise the same weights)."""
    with pytest.raises(trainhooks.HookError):
        run(tmp_path / "run", callbacks=[CrashBeforeStep(hook_step)], crash_at=None)
    emergency = tmp_path / "run" / "weights" / "emergency.pt"
    saved = torch.load(emergency, weights_only=True)
    assert saved["global_step"] == hook_step
    assert saved["progress"]["batches_done"] == hook_step % 5
    resumed = run(tmp_path / "run", resume=emergency)
    assert resumed.global_step == reference.global_step == 20  # every batch stepped exactly once
    assert [len(h) for h in resumed.history] == [len(h) for h in reference.history]


def test_plugin_state_continues_after_resume(tmp_path) -> None:
    class Counter(trainhooks.Callback):
        def __init__(self):
            self.batches = 0

        def on_train_batch_end(self, trainer):
            self.batches += 1

        def state_dict(self):
            return {"batches": self.batches}

        def load_state_dict(self, state):
            self.batches = state["batches"]

    first = run(tmp_path / "run", epochs=2, callbacks=[Counter()])
    counter = Counter()
    second = run(tmp_path / "run", epochs=3, resume=tmp_path / "run" / "weights" / "last.pt", callbacks=[counter])
    assert first.global_step == 10 and second.global_step == 15
    assert counter.batches == 15  # 10 restored + 5 new
    es = second.plugin_manager.get_plugin("EarlyStopping")
    assert es.monitor.best == min(h["val/loss"] for h in second.history)


def test_resuming_mid_epoch_with_another_batch_size_restarts_the_epoch(tmp_path, caplog) -> None:
    run(tmp_path / "run", crash_at=7)  # 5 batches per epoch: mid-epoch 2, checkpoint after step 6
    last = tmp_path / "run" / "weights" / "last.pt"
    assert torch.load(last, weights_only=True)["progress"]["batch_size"] == 32
    with caplog.at_level("WARNING", logger="trainhooks"):
        resumed = run(tmp_path / "run", resume=last, batch_size=16)
    assert "with 1 processes and batch size 32, this run has 1 and 16: epoch 2 starts over" in caplog.text
    assert len(resumed.history) == 4  # epoch 2 trained again in full, no row lost or doubled
    rows = list(csv.DictReader((tmp_path / "run" / "metrics.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2", "3", "4"]


def test_resuming_a_mid_epoch_checkpoint_past_the_planned_epochs_is_refused(tmp_path) -> None:
    run(tmp_path / "run", crash_at=7)  # a mid-epoch checkpoint in epoch 2
    with pytest.raises(trainhooks.ConfigError, match=r"taken in epoch 2, but this run has only 1 epochs; pass more"):
        run(tmp_path / "run", resume=tmp_path / "run" / "weights" / "last.pt", epochs=1)


def test_cli_resume_continues_in_the_checkpoints_run_directory(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    assert cli.main(["fit", "--epochs", "1", "--quiet"]) == 0
    assert cli.main(["fit", "--epochs", "2", "--quiet", "--resume", "runs/train/weights/last.pt"]) == 0
    assert not (tmp_path / "runs" / "train2").exists()
    rows = list(csv.DictReader((tmp_path / "runs" / "train" / "metrics.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2"]


def test_resuming_with_another_seed_warns(tmp_path, caplog) -> None:
    run(tmp_path / "run", epochs=1)
    with caplog.at_level("WARNING", logger="trainhooks"):
        run(tmp_path / "run", epochs=2, resume=tmp_path / "run" / "weights" / "last.pt", seed=99)
    assert "trained with seed 5, this run has seed 99" in caplog.text and "resume with --seed 5" in caplog.text


def test_timer_budget_continues_after_resume(tmp_path) -> None:
    run(tmp_path / "run", epochs=1, callbacks=[Timer(max_time=3600)])
    state = torch.load(tmp_path / "run" / "weights" / "last.pt", weights_only=True)["plugins"]["Timer"]
    assert state["elapsed"] > 0
    resumed_timer = Timer(max_time=3600)
    run(tmp_path / "run", epochs=2, resume=tmp_path / "run" / "weights" / "last.pt", callbacks=[resumed_timer])
    assert resumed_timer.elapsed_before == pytest.approx(state["elapsed"])


def test_a_run_the_timer_stopped_resumes_with_a_bigger_budget(tmp_path, capsys) -> None:
    import time

    slow = trainhooks.LambdaCallback(on_train_batch_end=lambda trainer: time.sleep(0.02))
    first = run(tmp_path / "run", epochs=6, callbacks=[Timer(max_time=0.25), slow])
    assert first.stopped_by == "Timer" and first.global_step < 30
    last = tmp_path / "run" / "weights" / "last.pt"
    saved = torch.load(last, weights_only=True)
    assert saved["stopped_by"] == "Timer" and saved["stop_resumable"] is True
    with pytest.raises(trainhooks.HookError, match=r"timer: the resumed run already used .* budget; pass a bigger"):
        run(tmp_path / "run", epochs=6, resume=last, callbacks=[Timer(max_time=0.25)])
    resumed = run(tmp_path / "run", epochs=6, resume=last, callbacks=[Timer(max_time=3600)])
    assert resumed.stop_reason == "completed 6 epochs" and resumed.global_step == 30
    rows = list(csv.DictReader((tmp_path / "run" / "metrics.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2", "3", "4", "5", "6"]


def test_resuming_a_finished_run_is_a_clear_message(tmp_path) -> None:
    run(tmp_path / "run", epochs=2)
    with pytest.raises(trainhooks.ConfigError, match=r"already completed 2 of 2 epochs; pass more epochs"):
        run(tmp_path / "run", epochs=2, resume=tmp_path / "run" / "weights" / "last.pt")
    more = run(tmp_path / "run", epochs=3, resume=tmp_path / "run" / "weights" / "last.pt")
    assert more.global_step == 15


def test_training_further_than_planned_says_the_schedule_goes_on_as_saved(tmp_path, caplog) -> None:
    run(tmp_path / "run", epochs=2)
    assert torch.load(tmp_path / "run" / "weights" / "last.pt", weights_only=True)["epochs"] == 2
    with caplog.at_level("WARNING", logger="trainhooks"):
        run(tmp_path / "run", epochs=3, resume=tmp_path / "run" / "weights" / "last.pt")
    assert "planned for 2 epochs, this one has 3: the LR scheduler continues exactly as saved" in caplog.text


def test_resuming_an_early_stopped_run_is_refused(tmp_path) -> None:
    trainer = run(
        tmp_path / "run",
        epochs=10,
        callbacks=[
            trainhooks.LambdaCallback(should_stop=lambda t: "enough" if t.epoch == 1 and len(t.history) == 2 else None)
        ],
    )
    assert trainer.stop_reason == "enough"
    last = torch.load(tmp_path / "run" / "weights" / "last.pt", weights_only=True)
    assert last["stop_reason"] == "enough"  # re-saved at train end to record why
    with pytest.raises(trainhooks.ConfigError, match=r"already finished: enough \(stopped by LambdaCallback\)"):
        run(tmp_path / "run", epochs=10, resume=tmp_path / "run" / "weights" / "last.pt")


def test_checkpoints_load_with_weights_only_and_hold_documented_keys(tmp_path) -> None:
    run(tmp_path / "run", epochs=1)
    data = torch.load(tmp_path / "run" / "weights" / "last.pt", weights_only=True)
    assert {
        "format",
        "version",
        "model",
        "optimizer",
        "lr_scheduler",
        "epoch",
        "epoch_completed",
        "global_step",
        "metrics",
        "history",
        "stop_reason",
        "stopped_by",
        "rng",
        "progress",
        "plugins",
    } <= set(data)
    assert set(data["rng"]) == {"python", "torch", "cuda", "loader", "numpy"}
    assert set(data["plugins"]) == {"ModelCheckpoint", "CSVLogger", "EarlyStopping"}


def test_random_state_round_trips_in_both_stored_forms(tmp_path) -> None:
    """Python's generator is stored as a tensor (one pickle call instead of 625); tuples still load."""
    import random

    import numpy as np

    from trainhooks import checkpointing

    random.seed(3)
    np.random.seed(3)
    torch.manual_seed(3)
    state = checkpointing.capture_rng()
    assert isinstance(state["python"][1], torch.Tensor)
    path = checkpointing.atomic_save({"rng": state}, tmp_path / "rng.pt")
    expected = (random.random(), float(np.random.rand()), torch.rand(1).item())
    loaded = torch.load(path, weights_only=True)["rng"]
    old_style = dict(loaded, python=(loaded["python"][0], tuple(loaded["python"][1].tolist()), loaded["python"][2]))
    for stored in (loaded, old_style):
        random.random(), np.random.rand(), torch.rand(1)  # move every generator on
        checkpointing.restore_rng(stored)
        assert (random.random(), float(np.random.rand()), torch.rand(1).item()) == expected


class NumpyShuffle(torch.utils.data.Sampler):
    """A custom sampler that shuffles with NumPy's global generator (as bucketing samplers do)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        import numpy as np

        return iter(np.random.permutation(self.n).tolist())


class PythonShuffle(NumpyShuffle):
    """A custom sampler that shuffles with Python's global ``random``."""

    def __iter__(self):
        order = list(range(self.n))
        random.shuffle(order)
        return iter(order)


def shuffled_loader(sampler: type[torch.utils.data.Sampler] = NumpyShuffle) -> torch.utils.data.DataLoader:
    train, _ = tiny_digits(n_train=160, n_val=64, batch_size=32, seed=1)
    return torch.utils.data.DataLoader(train.dataset, batch_size=32, sampler=sampler(len(train.dataset)))


def test_the_epoch_start_state_holds_python_and_numpy_only_where_the_data_order_can_draw_from_them(tmp_path) -> None:
    """Reading Python's and NumPy's generators costs ~25 us each per epoch: kept for custom samplers only."""
    from trainhooks.data import order_uses_torch_rng_only

    train, _ = tiny_digits()
    assert order_uses_torch_rng_only(train)
    assert not order_uses_torch_rng_only(list(train))
    assert not order_uses_torch_rng_only(shuffled_loader())

    run(tmp_path / "stock", crash_at=7)  # last.pt at step 6: mid-epoch (5 batches per epoch)
    stock = torch.load(tmp_path / "stock" / "weights" / "last.pt", weights_only=True)["progress"]
    assert "numpy" not in stock["rng_epoch_start"] and stock["rng_epoch_start"]["python"] is None
    assert stock["rng_epoch_start"]["loader"] is not None

    for sampler in (NumpyShuffle, PythonShuffle):
        name = sampler.__name__
        reference = run(tmp_path / f"ref-{name}", train=shuffled_loader(sampler), epochs=3)
        run(tmp_path / name, crash_at=7, train=shuffled_loader(sampler), epochs=3)
        last = tmp_path / name / "weights" / "last.pt"
        progress = torch.load(last, weights_only=True)["progress"]
        assert progress["batches_done"] == 1
        assert "numpy" in progress["rng_epoch_start"] and progress["rng_epoch_start"]["python"] is not None
        resumed = run(tmp_path / name, resume=last, train=shuffled_loader(sampler), epochs=3)
        assert resumed.global_step == reference.global_step == 15
        assert same_weights(resumed.model, reference.model), f"{name}: the shuffled order was not replayed"


# --------------------------------------------------------------------------- bad checkpoints
def _corrupt_variants(tmp_path: Path, good: Path) -> dict[str, tuple[Path, str]]:
    raw = good.read_bytes()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(raw[: len(raw) // 2])
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00not a checkpoint at all" * 10)
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    unsafe = tmp_path / "unsafe.pt"
    torch.save({"format": "trainhooks.checkpoint", "x": Path("/etc/passwd")}, unsafe)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    pickled = tmp_path / "pickled.pt"
    pickled.write_bytes(pickle.dumps({"a": 1}))
    # Tensor bytes damaged in place: the zip structure is intact, torch.load would not notice.
    import zipfile

    with zipfile.ZipFile(good) as archive:
        entry = max((i for i in archive.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    local_header = raw[entry.header_offset : entry.header_offset + 30]
    start = (
        entry.header_offset
        + 30
        + int.from_bytes(local_header[26:28], "little")
        + int.from_bytes(local_header[28:30], "little")
    )
    damaged_bytes = bytearray(raw)
    damaged_bytes[start : start + 64] = b"\xff" * 64
    damaged = tmp_path / "damaged.pt"
    damaged.write_bytes(bytes(damaged_bytes))
    return {
        "damaged": (damaged, "fails its CRC check"),
        "directory": (tmp_path, "is a directory; pass a checkpoint file"),
        "truncated": (truncated, "is corrupt or truncated"),
        "garbage": (garbage, "is corrupt or truncated"),
        "empty": (empty, "is corrupt or truncated"),
        "unsafe": (unsafe, "cannot be loaded safely (weights_only=True)"),
        "foreign": (foreign, "is not a trainhooks checkpoint"),
        "pickled": (pickled, ""),
        "missing": (tmp_path / "nope.pt", "does not exist"),
    }


def test_corrupt_checkpoints_are_clear_errors_naming_the_file(tmp_path) -> None:
    run(tmp_path / "run", epochs=1)
    good = tmp_path / "run" / "weights" / "last.pt"
    for name, (path, message) in _corrupt_variants(tmp_path, good).items():
        with pytest.raises(trainhooks.CheckpointError) as info:
            checkpointing.load_checkpoint(path)
        assert str(path) in str(info.value), name
        assert message in str(info.value), (name, str(info.value))
        assert "Traceback" not in str(info.value)


def test_checkpoints_written_without_crcs_still_load(tmp_path) -> None:
    """torch can be told not to compute CRCs (they are then 0): nothing to check, not corrupt."""
    from torch.utils.serialization import config

    trainer = run(tmp_path / "run", epochs=1)
    before = config.save.compute_crc32  # torch's config objects do not survive monkeypatch's undo
    config.save.compute_crc32 = False
    try:
        path = trainer.save_checkpoint(tmp_path / "no-crc.pt")
    finally:
        config.save.compute_crc32 = before
    assert checkpointing.load_checkpoint(path)["format"] == "trainhooks.checkpoint"
    trainer.save_checkpoint(tmp_path / "after.pt")  # saving works as before afterwards


def test_resume_cli_with_a_corrupt_checkpoint(tmp_path, capsys) -> None:
    bad = tmp_path / "last.pt"
    bad.write_bytes(b"PK\x03\x04 broken zip")
    code = cli.main(["fit", "--resume", str(bad), "--save-dir", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 1
    assert f"trainhooks: error: checkpoint {bad} is corrupt or truncated" in err
    assert "Traceback" not in err and "pickle" not in err.lower()


def test_checkpoint_for_another_model(tmp_path) -> None:
    run(tmp_path / "run", epochs=1)
    other = trainhooks.Trainer(torch.nn.Linear(64, 10), loss_fn=torch.nn.CrossEntropyLoss(), default_plugins=False)
    with pytest.raises(trainhooks.CheckpointError, match=r"last.pt does not fit this model/optimizer"):
        other.load_checkpoint(tmp_path / "run" / "weights" / "last.pt")


def test_atomic_save_keeps_the_previous_file_when_writing_fails(tmp_path) -> None:
    target = tmp_path / "last.pt"
    checkpointing.atomic_save({"format": "trainhooks.checkpoint", "v": 1}, target)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("boom while writing")

    with pytest.raises(trainhooks.CheckpointError, match="cannot write checkpoint"):
        checkpointing.atomic_save({"bad": Unpicklable()}, target)
    assert torch.load(target, weights_only=True)["v"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left


def test_stale_temporary_files_are_cleaned_on_start(tmp_path) -> None:
    weights = tmp_path / "run" / "weights"
    weights.mkdir(parents=True)
    stale = weights / ".last.pt.abc123.tmp"
    stale.write_bytes(b"half written")
    run(tmp_path / "run", epochs=1)
    assert not stale.exists()


# --------------------------------------------------------------------------- failure policy
class Flaky(trainhooks.Callback):
    def __init__(self):
        self.calls = 0

    def on_train_batch_end(self, trainer):
        self.calls += 1
        if trainer.global_step == 2:
            raise ValueError("flaky plugin")


def test_non_critical_plugin_is_disabled_once_and_training_continues(make_trainer, loaders) -> None:
    flaky = Flaky()
    rec = HookRecorder()
    trainer = make_trainer(callbacks=[flaky], plugins=[rec], non_critical=["Flaky"], epochs=3)
    with pytest.warns(PluginDisabledWarning) as caught:
        result = trainer.fit(*loaders)
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "plugin 'Flaky' failed in hook 'on_train_batch_end': ValueError: flaky plugin" in message
    assert "disabled for the rest of the run" in message
    assert result.epochs_completed == 3 and flaky.calls == 2
    assert rec.count("on_train_batch_end") == 9  # the others kept running, every step
    record = trainer.plugin_manager.records["Flaky"]
    assert record.status == "disabled" and "flaky plugin" in record.reason


def test_critical_plugin_failure_stops_with_on_exception_and_emergency_checkpoint(make_trainer, loaders) -> None:
    rec = HookRecorder()
    trainer = make_trainer(callbacks=[Flaky()], plugins=[rec], epochs=3)
    with pytest.raises(trainhooks.HookError, match="'Flaky' failed in hook 'on_train_batch_end'"):
        trainer.fit(*loaders)
    assert rec.names()[-2:] == ["on_exception", "teardown"]
    path = trainer.save_dir / "weights" / "emergency.pt"
    assert trainer.emergency_checkpoint == path
    data = checkpointing.load_checkpoint(path)
    assert data["global_step"] == 2 and data["epoch_completed"] is False
    assert data["progress"]["batches_done"] == 2


def test_non_critical_from_the_plugin_itself_and_in_firstresult(make_trainer, loaders) -> None:
    class Optional(trainhooks.Callback):
        critical = False

        def should_stop(self, trainer):
            raise OSError("cannot reach the stop server")

    trainer = make_trainer(callbacks=[Optional()], epochs=2)
    with pytest.warns(PluginDisabledWarning, match="'Optional' failed in hook 'should_stop'"):
        result = trainer.fit(*loaders)
    assert result.epochs_completed == 2 and not result.stopped_early


def test_non_critical_unknown_name(make_trainer) -> None:
    with pytest.raises(trainhooks.UnknownPluginError, match="'notfy'"):
        make_trainer(non_critical=["notfy"])


def test_non_critical_from_the_cli(tmp_path, capsys, monkeypatch) -> None:
    (tmp_path / "flaky_plugin.py").write_text(
        "import trainhooks\n"
        "@trainhooks.hookimpl\n"
        "def on_fit_epoch_end(trainer):\n"
        "    raise RuntimeError('webhook down')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    args = ["fit", "--epochs", "2", "-p", "flaky_plugin", "--quiet"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert cli.main([*args, "--save-dir", str(tmp_path / "a"), "--non-critical", "flaky_plugin,csv"]) == 0
    assert any("webhook down" in str(w.message) for w in caught)
    assert cli.main([*args, "--save-dir", str(tmp_path / "b")]) == 1
    err = capsys.readouterr().err
    assert "plugin 'flaky_plugin' failed in hook 'on_fit_epoch_end': RuntimeError: webhook down" in err
    assert "emergency checkpoint written to" in err


# --------------------------------------------------------------------------- hostile input
def test_unwritable_save_dir(make_trainer, loaders, tmp_path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    trainer = make_trainer(save_dir=blocker / "run")
    with pytest.raises(trainhooks.ConfigError, match=r"cannot create save_dir .*a-file/run"):
        trainer.fit(*loaders)


def test_export_provider_returning_the_wrong_thing(make_trainer) -> None:
    class Liar:
        @trainhooks.hookimpl
        def export_formats(self):
            return ["fake"]

        @trainhooks.hookimpl
        def export_model(self, format):
            return True if format == "fake" else None

    trainer = make_trainer(plugins=[Liar()])
    with pytest.raises(trainhooks.PluginError, match=r"plugin 'Liar': export_model must return the path"):
        trainer.export("fake", example_input=torch.zeros(1, 64))


def test_nan_loss_without_guard_still_keeps_saved_files(make_trainer, loaders) -> None:
    class Poison(trainhooks.Callback):
        def on_train_batch_start(self, trainer):
            if trainer.epoch == 1:
                with torch.no_grad():
                    next(trainer.model.parameters()).fill_(float("nan"))

    trainer = make_trainer(plugins=[ModelCheckpoint()], callbacks=[Poison()], epochs=2)
    with pytest.warns(RuntimeWarning, match="not finite"):
        trainer.fit(*loaders)
    assert checkpointing.load_checkpoint(trainer.save_dir / "weights" / "last.pt")["epoch"] == 0
