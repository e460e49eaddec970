"""``fit(resume="auto")`` / ``--resume auto`` (issue 14): the newest good checkpoint in the save
dir, the previous one when ``last.pt`` is damaged, a fresh start when there is none; the
``Resuming from FILE (epoch E, step S)`` line; the run's settings recorded in the checkpoint."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import pytest
import torch

import trainhooks
from trainhooks import checkpointing
from trainhooks.plugins.checkpoint import ModelCheckpoint
from trainhooks.plugins.csv_logger import CSVLogger
from trainhooks.testing import tiny_digits


class CrashAt(trainhooks.Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer):
        if trainer.global_step == self.step:
            raise RuntimeError(f"simulated crash at step {trainer.global_step}")


def run(save_dir: Path, *, crash_at: int | None = None, resume=None, verbose: bool = False):
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Dropout(0.2), torch.nn.Linear(32, 10)
    )
    train, val = tiny_digits(n_train=160, n_val=64, batch_size=32, seed=1)
    trainer = trainhooks.Trainer(
        model,
        loss_fn=torch.nn.CrossEntropyLoss(),
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-2),
        epochs=4,
        save_dir=save_dir,
        seed=5,
        plugins=[ModelCheckpoint(every_n_steps=3), CSVLogger()],
        callbacks=[CrashAt(crash_at)] if crash_at else [],
        default_plugins=False,
        verbose=verbose,
    )
    try:
        trainer.fit(train, val, resume=resume)
    except trainhooks.HookError:
        if crash_at is None:
            raise
    return trainer


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> trainhooks.Trainer:
    return run(tmp_path_factory.mktemp("ref") / "run")


def same(a: trainhooks.Trainer, b: trainhooks.Trainer) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.model.state_dict().values(), b.model.state_dict().values()))


def epochs_in_csv(save_dir: Path) -> list[str]:
    return [r["epoch"] for r in csv.DictReader((save_dir / "metrics.csv").open())]


def test_auto_in_an_empty_save_dir_starts_fresh(tmp_path, reference, capsys) -> None:
    trainer = run(tmp_path / "run", resume="auto", verbose=True)
    assert "No checkpoint in" in capsys.readouterr().out
    assert same(trainer, reference) and trainer.history == reference.history


def test_the_same_auto_call_after_a_crash_continues_the_run(tmp_path, reference, capsys) -> None:
    run(tmp_path / "run", crash_at=11, resume="auto")
    capsys.readouterr()
    resumed = run(tmp_path / "run", resume="auto", verbose=True)
    out = capsys.readouterr().out
    # crashed at step 11: last.pt holds step 9 (every 3 steps), taken in epoch 2 (5 batches an epoch)
    assert f"Resuming from {tmp_path / 'run' / 'weights' / 'emergency.pt'} (epoch 3, step 11)" in out
    assert same(resumed, reference) and resumed.history == reference.history
    assert epochs_in_csv(tmp_path / "run") == ["1", "2", "3", "4"]


def test_a_quiet_resume_prints_nothing_and_logs_where_it_resumed_from(tmp_path, reference, caplog, capsys) -> None:
    run(tmp_path / "run", crash_at=11, resume="auto")
    capsys.readouterr()
    with caplog.at_level(logging.INFO, logger="trainhooks"):
        resumed = run(tmp_path / "run", resume="auto")  # verbose=False
    assert capsys.readouterr().out == ""
    assert f"Resuming from {tmp_path / 'run' / 'weights' / 'emergency.pt'} (epoch 3, step 11)" in caplog.text
    assert same(resumed, reference)


def test_a_corrupt_last_pt_falls_back_to_the_previous_good_one(tmp_path, reference, caplog, capsys) -> None:
    run(tmp_path / "run", crash_at=13, resume="auto")
    weights = tmp_path / "run" / "weights"
    (weights / "emergency.pt").unlink()
    previous = checkpointing.load_checkpoint(weights / "previous.pt")
    position = f"epoch {previous['epoch'] + 1}, step {previous['global_step']}"
    assert previous["global_step"] == 10  # saved at steps 3, 5 (epoch end), 6, 9, 10 (epoch end), 12
    data = bytearray((weights / "last.pt").read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = b"\0" * 64  # damaged after it was written
    (weights / "last.pt").write_bytes(bytes(data))
    capsys.readouterr()
    with caplog.at_level(logging.WARNING, logger="trainhooks"):
        resumed = run(tmp_path / "run", resume="auto", verbose=True)
    messages = caplog.text
    assert f"not resuming from {weights / 'last.pt'}" in messages and "corrupt" in messages
    assert f"resuming from the previous good checkpoint, {weights / 'previous.pt'}, instead" in messages
    assert f"Resuming from {weights / 'previous.pt'} ({position})" in capsys.readouterr().out
    assert same(resumed, reference) and resumed.history == reference.history
    assert epochs_in_csv(tmp_path / "run") == ["1", "2", "3", "4"]


def test_checkpoints_record_the_runs_settings(tmp_path) -> None:
    trainer = run(tmp_path / "run")
    trainer.run_settings.update(task="mytask:make", batch_size=32, lr=0.01, not_plain=object())
    saved = checkpointing.load_checkpoint(trainer.save_checkpoint(tmp_path / "c.pt"))
    record = saved["run"]
    assert record["epochs"] == 4 and record["seed"] == 5 and record["precision"] == "32"
    assert record["task"] == "mytask:make" and record["batch_size"] == 32 and record["lr"] == 0.01
    assert "not_plain" not in record
    assert isinstance(record["options"], dict) and isinstance(record["plugins"], list)


# --------------------------------------------------------------------------- torchrun restarts
RESTART_SCRIPT = """
import os, sys, torch, trainhooks
from trainhooks.testing import tiny_digits

save_dir, die_at = sys.argv[1], int(sys.argv[2])
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
trainer = trainhooks.Trainer(
    model, loss_fn=torch.nn.CrossEntropyLoss(), optimizer=torch.optim.Adam(model.parameters(), lr=1e-2),
    epochs=3, save_dir=save_dir, default_plugins=False, plugins=["checkpoint", "csv"],
    options={"save_every_n_steps": 2}, seed=0, dist_timeout=60, verbose=True,
)
marker = os.path.join(save_dir, "died-once")

def on_train_batch_end(trainer):
    # rank 1 dies once, mid-epoch, without any cleanup (like a lost node or an OOM kill)
    if trainer.rank == 1 and trainer.global_step == die_at and not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(17)

trainer.add_callback("on_train_batch_end", on_train_batch_end)
train, val = tiny_digits(n_train=192, n_val=64, batch_size=16, seed=1)
trainer.fit(train, val, resume="auto")
if trainer.is_global_zero:
    torch.save(trainer.unwrapped_model.state_dict(), os.path.join(save_dir, "final.pt"))
"""


@pytest.mark.slow
def test_torchrun_max_restarts_resumes_the_group_bitwise_identical(tmp_path) -> None:
    """torchrun --max-restarts 1: rank 1 dies mid-epoch, the agent restarts both workers, and
    ``resume="auto"`` continues to the same weights bit for bit. The restarted group meets the
    first round's keys in torchrun's agent store (gloo addresses of dead workers): it must start
    in a namespace of its own (trainhooks.distributed.round_store) instead of connecting to them."""
    import os
    import subprocess
    import sys

    script = tmp_path / "restart.py"
    script.write_text(RESTART_SCRIPT)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_"))}
    env.update(OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")

    def torchrun(save_dir: Path, die_at: int) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
        cmd += ["--max-restarts", "1", str(script), str(save_dir), str(die_at)]
        return subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)

    plain = torchrun(tmp_path / "plain", die_at=-1)
    assert plain.returncode == 0, plain.stderr[-3000:]
    # 192 samples / 2 ranks / batch 16 = 6 steps an epoch; rank 1 dies after step 9 (epoch 2, batch 3)
    restarted = torchrun(tmp_path / "restarted", die_at=9)
    assert restarted.returncode == 0, restarted.stderr[-3000:]
    assert (tmp_path / "restarted" / "died-once").exists()
    assert "Resuming from" in restarted.stdout + restarted.stderr
    reference = torch.load(tmp_path / "plain" / "final.pt", weights_only=True)
    resumed = torch.load(tmp_path / "restarted" / "final.pt", weights_only=True)
    assert all(torch.equal(reference[k], resumed[k]) for k in reference)
    assert epochs_in_csv(tmp_path / "restarted") == ["1", "2", "3"]


# --------------------------------------------------------------------------- the command line
CLI_TASK = """
import torch
from trainhooks.tasks import digits_task

def make(batch_size=32, lr=0.005, seed=0, epochs=3):
    task = digits_task(batch_size=batch_size, lr=lr, seed=seed, epochs=epochs)
    torch.manual_seed(seed)
    task.model = torch.nn.Sequential(
        torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Dropout(0.2), torch.nn.Linear(64, 10)
    )
    task.optimizer = torch.optim.Adam(task.model.parameters(), lr=lr)
    return task
"""

BLOCKER = """
import os, time, trainhooks

@trainhooks.hookimpl
def on_train_batch_end(trainer):
    if os.environ.get("TH_BLOCK_AT") and trainer.global_step == int(os.environ["TH_BLOCK_AT"]):
        # The checkpoint due before this step is written behind training: let it land, so the
        # kill finds last.pt at the step the test expects however slow the machine is.
        trainer.checkpoint_writer.wait()
        open(os.environ["TH_BLOCKED"], "w").close()
        time.sleep(600)
"""


def cli(workdir: Path, *args: str, env: dict[str, str] | None = None, **popen):
    import os
    import subprocess
    import sys

    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("TRAINHOOKS_", "TH_"))}
    full_env.update(PYTHONPATH=str(workdir), OMP_NUM_THREADS="1", **(env or {}))
    cmd = [sys.executable, "-m", "trainhooks", "fit", *args]
    return subprocess.Popen(cmd, cwd=workdir, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


# The run's settings, all different from the CLI defaults: a resume that forgot one would differ.
SETTINGS = ("--task", "clitask:make", "--epochs", "3", "--seed", "7", "--batch-size", "16", "--lr", "0.003")
SETTINGS += ("-p", "clitaskblock", "--save-every-n-steps", "7", "--quiet")


@pytest.fixture(scope="module")
def cli_workdir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cliresume")
    (root / "clitask.py").write_text(CLI_TASK)
    (root / "clitaskblock.py").write_text(BLOCKER)
    proc = cli(root, *SETTINGS, "--save-dir", "reference")
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    return root


def kill_at(workdir: Path, save_dir: str, step: int, *extra: str) -> None:
    import signal
    import time

    blocked = workdir / f"{save_dir}.blocked"
    proc = cli(
        workdir, *SETTINGS, "--save-dir", save_dir, *extra, env={"TH_BLOCK_AT": str(step), "TH_BLOCKED": str(blocked)}
    )
    deadline = time.monotonic() + 300
    while not blocked.exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)


def assert_same_run(workdir: Path, save_dir: str) -> None:
    reference = checkpointing.load_checkpoint(workdir / "reference" / "weights" / "last.pt")
    resumed = checkpointing.load_checkpoint(workdir / save_dir / "weights" / "last.pt")
    assert all(torch.equal(reference["model"][k], resumed["model"][k]) for k in reference["model"])
    assert resumed["history"] == reference["history"]
    assert epochs_in_csv(workdir / save_dir) == ["1", "2", "3"]


@pytest.mark.slow
def test_resume_of_a_killed_run_with_no_other_flag_is_the_same_run(cli_workdir: Path) -> None:
    kill_at(cli_workdir, "killed", 100)  # epoch 2 of 3 (68 steps an epoch); last.pt holds step 98
    last = cli_workdir / "killed" / "weights" / "last.pt"
    proc = cli(cli_workdir, "--resume", str(last))
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    assert f"Resuming from {last} (epoch 2, step 98)" in out
    assert "overrides" not in err and "seed" not in err
    assert_same_run(cli_workdir, "killed")


@pytest.mark.slow
def test_an_explicit_flag_overrides_its_recorded_value_and_says_so(cli_workdir: Path) -> None:
    kill_at(cli_workdir, "override", 30)
    last = cli_workdir / "override" / "weights" / "last.pt"
    proc = cli(cli_workdir, "--resume", str(last), "--epochs", "4", "--quiet")
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    assert "trainhooks: --epochs 4 overrides the recorded 3" in err
    saved = checkpointing.load_checkpoint(last)
    assert len(saved["history"]) == 4 and saved["run"]["seed"] == 7 and saved["run"]["lr"] == 0.003


@pytest.mark.slow
def test_resume_auto_from_the_cli_with_a_corrupt_last_pt(cli_workdir: Path) -> None:
    kill_at(cli_workdir, "auto", 150, "--resume", "auto")  # first run: nothing to resume, starts fresh
    weights = cli_workdir / "auto" / "weights"
    (weights / "last.pt").write_bytes(b"PK\x03\x04 not a checkpoint any more")
    proc = cli(cli_workdir, *SETTINGS, "--save-dir", "auto", "--resume", "auto")
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    assert f"not resuming from {Path('auto') / 'weights' / 'last.pt'}" in err
    assert "resuming from the previous good checkpoint" in err
    assert f"Resuming from {Path('auto') / 'weights' / 'previous.pt'}" in out
    assert_same_run(cli_workdir, "auto")
