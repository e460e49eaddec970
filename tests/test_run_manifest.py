"""The run manifest (``run.json``): what a fit announced and how it ended, and the commands
that find a run's weights through it rather than by path. Real fits, real files, the real CLI
in process; one real SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

import trainhooks
from trainhooks import Trainer, cli
from trainhooks.checkpointing import CheckpointError, load_weights
from trainhooks.manifest import MANIFEST_NAME, read_manifest, runs_in
from trainhooks.plugins.checkpoint import ModelCheckpoint

TASK = """
import torch
from trainhooks import Task
from trainhooks.testing import tiny_digits, tiny_model

def make(batch_size=None, seed=0, **_):
    train, val = tiny_digits(n_train=64, n_val=32, batch_size=batch_size or 32)
    return Task(model=tiny_model(seed), train_data=train, val_data=val, loss_fn=torch.nn.CrossEntropyLoss(),
                name="tinydigits")
"""


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "mtask.py").write_text(TASK)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def cli_fit(*args: str) -> None:
    assert cli.main(["fit", "--task", "mtask:make", "--quiet", "-p", "no:plot", *args]) == 0


def validate(capsys: pytest.CaptureFixture[str]) -> str:
    """``trainhooks validate`` without --weights; returns the line saying which file it used."""
    capsys.readouterr()
    assert cli.main(["validate", "--task", "mtask:make", "--quiet"]) == 0
    return next(line for line in capsys.readouterr().err.splitlines() if "using" in line)


def python_fit(save_dir: Path, *plugins: object, resume: str | None = None, epochs: int = 2) -> Trainer:
    from mtask import make  # type: ignore[import-not-found]

    task = make()
    trainer = Trainer(
        task.model,
        loss_fn=task.loss_fn,
        epochs=epochs,
        save_dir=save_dir,
        default_plugins=False,
        plugins=list(plugins),
        verbose=False,
    )
    trainer.fit(task.train_data, task.val_data, resume=resume)
    return trainer


def test_a_fit_writes_what_it_announced_and_how_it_ended(workdir: Path) -> None:
    cli_fit("--epochs", "2")
    data = json.loads((workdir / "runs" / "train" / MANIFEST_NAME).read_text())
    assert data["format"] == "trainhooks-run" and data["status"] == "finished"
    assert data["stop_reason"] == "completed 2 epochs" and data["task"] == "tinydigits"
    assert (data["epochs_completed"], data["global_step"]) == (2, 4)
    # relative to the run directory: the directory can be moved
    assert data["artifacts"] == {
        "metrics.csv": "metrics.csv",
        "last.pt": "weights/last.pt",
        "best.pt": "weights/best.pt",
    }
    (workdir / "runs" / "train").rename(workdir / "runs" / "moved")
    moved = read_manifest(workdir / "runs" / "moved")
    assert moved is not None and moved.weights() == ("best.pt", workdir / "runs" / "moved" / "weights" / "best.pt")


def test_the_latest_run_is_the_one_whose_manifest_is_newest_not_the_newest_file(workdir: Path, capsys) -> None:
    cli_fit("--epochs", "1")
    cli_fit("--epochs", "1")  # runs/train2: the latest run
    newer = time.time() + 100  # the older run's best.pt touched later (copied back, say)
    os.utime(workdir / "runs" / "train" / "weights" / "best.pt", (newer, newer))
    assert [m.run_dir.name for m in runs_in(workdir / "runs")] == ["train2", "train"]
    line = validate(capsys)
    latest = Path("runs") / "train2"
    assert f"using {latest / 'weights' / 'best.pt'} (best.pt of the latest run, {latest};" in line


class NamedElsewhere(trainhooks.Callback):
    """A checkpoint plugin of its own: its files are not where the built-in one puts them."""

    def on_fit_epoch_end(self, trainer: Trainer) -> None:
        path = trainer.save_checkpoint(trainer.save_dir / "ckpts" / f"model-e{trainer.epoch}.ckpt")
        trainer.log_artifact("best.pt", path)


def test_weights_a_plugin_wrote_elsewhere_are_found_through_its_announcement(workdir: Path, capsys) -> None:
    python_fit(workdir / "runs" / "custom", NamedElsewhere())
    line = validate(capsys)
    assert str(Path("runs") / "custom" / "ckpts" / "model-e1.ckpt") in line
    assert not (workdir / "runs" / "custom" / "weights").exists()  # no path was guessed
    # predict and export take the same file
    capsys.readouterr()
    assert cli.main(["export", "--task", "mtask:make", "--quiet"]) == 0
    assert (workdir / "runs" / "custom" / "ckpts" / "model-e1.torchscript").is_file()


class FailAtEpoch(trainhooks.Callback):
    def __init__(self, epoch: int) -> None:
        super().__init__()
        self.epoch = epoch

    def on_train_epoch_start(self, trainer: Trainer) -> None:
        if trainer.epoch == self.epoch:
            raise RuntimeError("disk on fire")


def test_a_failed_run_says_so_and_its_best_weights_are_still_used(workdir: Path, capsys) -> None:
    with pytest.raises(trainhooks.HookError):
        python_fit(workdir / "runs" / "failed", ModelCheckpoint(), FailAtEpoch(1))
    run = read_manifest(workdir / "runs" / "failed")
    assert run is not None and run.status == "failed" and run.epochs_completed == 1
    assert set(run.artifacts) == {"last.pt", "best.pt"}  # last.pt holds the last step: no emergency.pt
    line = validate(capsys)
    assert "best.pt of the latest run" in line and "which failed" in line


def test_a_resumed_run_keeps_the_best_weights_of_the_run_it_continues(workdir: Path) -> None:
    save_dir = workdir / "runs" / "resumed"
    python_fit(save_dir, ModelCheckpoint(), epochs=1)
    # save_top_k=0: the resumed run announces last.pt only; best.pt from before is still the run's
    resumed = python_fit(
        save_dir, ModelCheckpoint(save_top_k=0), resume=str(save_dir / "weights" / "last.pt"), epochs=2
    )
    run = read_manifest(save_dir)
    assert run is not None and run.status == "finished" and run.global_step == 4
    assert run.weights() == ("best.pt", save_dir / "weights" / "best.pt")
    # the final summary and FitResult.artifacts list the run's files, best.pt from before too
    assert resumed.artifacts["best.pt"] == save_dir / "weights" / "best.pt"


def test_a_fresh_run_over_a_previous_one_starts_a_new_manifest(workdir: Path) -> None:
    save_dir = workdir / "runs" / "again"
    python_fit(save_dir, NamedElsewhere(), epochs=1)
    # overwrite deletes weights/*.pt and metrics.csv, not another plugin's files: still, this run
    # did not announce them, so its manifest does not name them
    from mtask import make  # type: ignore[import-not-found]

    task = make()
    trainer = Trainer(
        task.model,
        loss_fn=task.loss_fn,
        epochs=1,
        save_dir=save_dir,
        default_plugins=False,
        plugins=[ModelCheckpoint(save_top_k=0)],
        verbose=False,
        overwrite=True,
    )
    trainer.fit(task.train_data, task.val_data)
    run = read_manifest(save_dir)
    assert run is not None and set(run.artifacts) == {"last.pt"}


def test_a_damaged_or_foreign_run_json_is_passed_over(workdir: Path, capsys) -> None:
    cli_fit("--epochs", "1")
    manifest = workdir / "runs" / "train" / MANIFEST_NAME
    for text in ("{not json", json.dumps({"format": "another-tool", "artifacts": {}}), "[]"):
        manifest.write_text(text)
        assert read_manifest(manifest.parent) is None
        capsys.readouterr()
        assert cli.main(["predict", "--task", "mtask:make"]) == 2
        err = capsys.readouterr().err
        assert "no --weights given and no run in runs/ whose run.json names a best.pt or last.pt" in err


def test_weights_given_a_run_directory_names_the_checkpoint_its_manifest_lists(workdir: Path) -> None:
    cli_fit("--epochs", "1")
    run_dir = workdir / "runs" / "train"
    with pytest.raises(CheckpointError, match="is a directory, not a file") as caught:
        load_weights(run_dir)
    assert f"such as {run_dir / 'weights' / 'best.pt'} (this run's best.pt)" in str(caught.value)


class LastElsewhere(trainhooks.Callback):
    def on_fit_epoch_end(self, trainer: Trainer) -> None:
        trainer.log_artifact("last.pt", trainer.save_checkpoint(trainer.save_dir / "state" / "latest.ckpt"))


def test_resume_given_a_run_directory_names_the_checkpoint_its_manifest_lists(workdir: Path) -> None:
    from trainhooks.checkpointing import load_checkpoint

    run_dir = workdir / "runs" / "elsewhere"
    python_fit(run_dir, LastElsewhere(), epochs=1)
    with pytest.raises(CheckpointError, match="is a directory; pass a checkpoint file") as caught:
        load_checkpoint(run_dir)
    assert f"such as {run_dir / 'state' / 'latest.ckpt'} (this run's last.pt)" in str(caught.value)


def test_the_dry_run_leaves_no_manifest(workdir: Path) -> None:
    cli_fit("--dry-run", "--save-dir", "runs/dry")
    assert not (workdir / "runs" / "dry").exists()


def files_under(root: Path) -> dict[Path, bytes]:
    return {p.relative_to(root): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_a_refused_fit_leaves_the_previous_run_as_it_was(workdir: Path, capsys) -> None:
    # Bad input loses nothing already saved: every refusal comes before --overwrite deletes the
    # previous run, before run.json says "failed" and before results.png is drawn again.
    fit = ["fit", "--task", "mtask:make", "--quiet", "--save-dir", "runs/exp"]
    assert cli.main([*fit, "--epochs", "2"]) == 0  # 2 batches an epoch
    before = files_under(workdir / "runs")
    assert {Path("exp/run.json"), Path("exp/results.png"), Path("exp/weights/last.pt")} <= before.keys()
    last = str(Path("runs/exp/weights/last.pt"))
    refused = [
        ([*fit, "--epochs", "2", "--resume", last], "already completed 2 of 2 epochs"),
        ([*fit, "--epochs", "3", "--max-steps", "4", "--resume", last], "already trained 4 steps"),
        (
            [*fit, "--epochs", "3", "--resume", last, "--save-dir", "runs/other", "--limit-train-batches", "0.2"],
            "limit_train_batches=0.2 of 2 batches is less than one batch",
        ),
        (
            [*fit, "--overwrite", "--limit-val-batches", "0.2"],
            "limit_val_batches=0.2 of 1 batch is less than one batch",
        ),
        ([*fit, "--dry-run", "--limit-train-batches", "0.2"], "limit_train_batches=0.2 of 2 batches"),
    ]
    for argv, message in refused:
        capsys.readouterr()
        assert cli.main(argv) == 2, argv
        out, err = capsys.readouterr()
        assert message in err and err.count("trainhooks: error:") == 1, (argv, err)
        assert "Resuming from" not in out + err, argv
        assert files_under(workdir / "runs") == before, f"{argv} changed the previous run's files"


def test_a_resumed_fit_keeps_no_copy_of_the_checkpoint_it_restored(workdir: Path) -> None:
    import gc

    run_dir = workdir / "runs" / "exp"
    python_fit(run_dir, ModelCheckpoint(), epochs=1)
    alive: list[int] = []

    class CountCheckpoints(trainhooks.Callback):
        def on_train_batch_end(self, trainer):
            gc.collect()
            alive.append(
                sum(isinstance(o, dict) and o.get("format") == "trainhooks.checkpoint" for o in gc.get_objects())
            )

    python_fit(run_dir, CountCheckpoints(), resume=str(run_dir / "weights" / "last.pt"), epochs=2)
    assert alive and set(alive) == {0}, "the loaded checkpoint (weights, optimizer state) was freed once restored"


def test_a_plugin_that_changes_the_model_at_fit_start_still_resumes(workdir: Path) -> None:
    # Weight norm, adapters: on_fit_start fires before the resume restores the weights, so the
    # checkpoint's keys are those of the changed model.
    class WeightNorm(trainhooks.Callback):
        def on_fit_start(self, trainer):
            layer = trainer.unwrapped_model[0]
            if not torch.nn.utils.parametrize.is_parametrized(layer):
                torch.nn.utils.parametrizations.weight_norm(layer)

    run_dir = workdir / "runs" / "exp"
    python_fit(run_dir, ModelCheckpoint(), WeightNorm(), epochs=1)
    resumed = python_fit(run_dir, ModelCheckpoint(), WeightNorm(), resume="auto", epochs=2)
    assert len(resumed.history) == 2 and resumed.global_step == 4


def test_a_model_with_lazy_modules_resumes(workdir: Path) -> None:
    from mtask import make  # type: ignore[import-not-found]

    task = make()

    def lazy() -> torch.nn.Module:
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.LazyLinear(16), torch.nn.ReLU(), torch.nn.Linear(16, 10))

    def trainer(model: torch.nn.Module, epochs: int) -> Trainer:
        return Trainer(
            model,
            loss_fn=task.loss_fn,
            optimizer=lambda params: torch.optim.SGD(params, lr=0.1),
            epochs=epochs,
            save_dir=workdir / "runs" / "lazy",
            default_plugins=False,
            plugins=[ModelCheckpoint()],
            verbose=False,
        )

    first = lazy()
    first(torch.zeros(1, 64))  # materialised before the optimizer sees its parameters
    trainer(first, 1).fit(task.train_data, task.val_data)
    resumed = trainer(lazy(), 2)  # uninitialised: load_state_dict gives it the checkpoint's shapes
    resumed.fit(task.train_data, task.val_data, resume="auto")
    assert len(resumed.history) == 2


KILLED = textwrap.dedent(
    """
    import os, signal, sys
    import trainhooks
    from trainhooks import Trainer
    from trainhooks.plugins.checkpoint import ModelCheckpoint
    from mtask import make

    class KillAtEpoch(trainhooks.Callback):
        def on_train_epoch_start(self, trainer):
            if trainer.epoch == 1:
                trainer.flush_checkpoints()  # epoch 1's files are durable, then no chance to say more
                os.kill(os.getpid(), signal.SIGKILL)

    task = make()
    trainer = Trainer(task.model, loss_fn=task.loss_fn, epochs=3, save_dir=sys.argv[1], default_plugins=False,
                      plugins=[ModelCheckpoint(), KillAtEpoch()], verbose=False)
    trainer.fit(task.train_data, task.val_data)
    """
)


def test_a_killed_run_still_names_its_files_and_validate_says_it_was_killed(workdir: Path, capsys) -> None:
    (workdir / "killed.py").write_text(KILLED)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(workdir), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [sys.executable, "killed.py", "runs/killed"], cwd=workdir, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    run = read_manifest(workdir / "runs" / "killed")
    assert run is not None and run.status == "running"
    assert run.weights() == ("best.pt", workdir / "runs" / "killed" / "weights" / "best.pt")
    line = validate(capsys)
    assert "which is still running or was killed" in line
    assert torch.equal(
        load_weights(run.artifacts["last.pt"])["0.weight"], load_weights(run.artifacts["best.pt"])["0.weight"]
    )


def test_a_resume_of_a_checkpoint_written_elsewhere_continues_in_its_run(workdir: Path, capsys) -> None:
    # The run a checkpoint belongs to is the one whose run.json lists it, wherever the file lies.
    run_dir = workdir / "runs" / "elsewhere"
    python_fit(run_dir, LastElsewhere(), epochs=1)
    cli_fit("--resume", str(Path("runs") / "elsewhere" / "state" / "latest.ckpt"), "--epochs", "2")
    assert sorted(p.name for p in (workdir / "runs").iterdir()) == ["elsewhere"], "no new runs/train"
    run = read_manifest(run_dir)
    assert run is not None and (run.status, run.epochs_completed) == ("finished", 2)
    # export of it writes into that run too, next to the file
    assert cli.main(["export", "--task", "mtask:make", "--weights", str(run_dir / "state" / "latest.ckpt")]) == 0
    assert (run_dir / "state" / "latest.torchscript").is_file()


def test_an_artifact_announced_again_at_the_same_path_does_not_rewrite_the_file(tmp_path: Path) -> None:
    from trainhooks.manifest import RunManifest

    run = RunManifest.start(tmp_path, resumed=False)
    run.record("last.pt", tmp_path / "weights" / "last.pt")
    written = run.path.stat().st_mtime_ns, run.updated
    os.utime(run.path, ns=(1, 1))  # any rewrite would replace this mtime
    run.record("last.pt", tmp_path / "weights" / "last.pt")
    assert run.path.stat().st_mtime_ns == 1 and run.updated == written[1]
    run.record("last.pt", tmp_path / "weights" / "other.pt")  # a new path is news
    assert run.path.stat().st_mtime_ns != 1
    assert read_manifest(tmp_path).artifacts["last.pt"] == tmp_path / "weights" / "other.pt"  # type: ignore[union-attr]
