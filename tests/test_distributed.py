"""Distributed training under real torchrun (2 CPU processes, gloo), and mixed precision.

The torchrun tests launch ``python -m torch.distributed.run --standalone --nproc_per_node 2``
(torchrun picks a free port itself) running either ``-m trainhooks fit -p distprobe`` (the probe
plugin in tests/distprobe.py records what every rank saw) or tests/dist_script.py (a script
that builds its own Trainer). One run is shared by several assertions. CUDA/nccl tests skip
without GPUs.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import csv
import datetime
import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
from torch import nn

import trainhooks
from trainhooks import checkpointing, cli, distributed
from trainhooks.amp import parse_precision
from trainhooks.distributed import (
    ShardSampler,
    call_through,
    merge_metrics,
    shard_loader,
    unwrap,
    weighted_means,
)
from trainhooks.tasks import digits_task
from trainhooks.testing import tiny_digits, tiny_model

from .dist_script import StepNet

TESTS = Path(__file__).resolve().parent
TORCH_ENV = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "GROUP_RANK")
slow = pytest.mark.slow
needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none on this machine)")
needs_two_gpus = pytest.mark.skipif(
    torch.cuda.device_count() < 2, reason="nccl DDP needs 2 CUDA GPUs (one per rank); this machine has fewer"
)


# ---------------------------------------------------------------------- helpers
def torchrun(
    args: list[str], *, cwd: Path, env: dict[str, str] | None = None, timeout: float = 180, nproc: int = 2
) -> subprocess.CompletedProcess[str]:
    """Run torchrun with ``nproc`` workers; returns the finished process.

    No wall time is returned: on a loaded machine start-up alone varies by a minute, so tests
    assert on exit codes, messages and files, never on how long a run took (issue 13)."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc), *args]
    return subprocess.run(cmd, cwd=cwd, env=torchrun_env(env), capture_output=True, text=True, timeout=timeout)


def torchrun_env(env: dict[str, str] | None = None) -> dict[str, str]:
    full_env = {k: v for k, v in os.environ.items() if k not in TORCH_ENV}
    # Built-in plugins and -p names only: no third-party plugin installed here changes the outcome.
    full_env.update(OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", TRAINHOOKS_DISABLE_PLUGIN_AUTOLOAD="1")
    full_env["PYTHONPATH"] = os.pathsep.join([str(TESTS), *filter(None, [os.environ.get("PYTHONPATH")])])
    full_env.update(env or {})
    return full_env


class Launched:
    """A torchrun started in the background (output in files, so no pipe can fill up)."""

    def __init__(self, args: list[str], *, cwd: Path, env: dict[str, str], launcher: list[str] | None = None) -> None:
        self.cwd = cwd
        self.out = (cwd / "torchrun.out").open("w")
        launch = launcher or ["--standalone", "--nproc_per_node", "2"]
        cmd = [sys.executable, "-m", "torch.distributed.run", *launch, *args]
        self.proc = subprocess.Popen(
            cmd, cwd=cwd, env=torchrun_env(env), stdout=self.out, stderr=subprocess.STDOUT, start_new_session=True
        )

    def wait_for(self, path: Path, timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        while not path.exists():
            if self.proc.poll() is not None:
                raise AssertionError(f"torchrun ended before {path.name} appeared:\n{self.output}")
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"{path.name} never appeared:\n{self.output}")
            time.sleep(0.05)

    def finish(self, timeout: float = 240) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"torchrun still running after {timeout}s:\n{self.output}") from None
        finally:
            self.out.close()

    def kill(self) -> None:
        """SIGKILL torchrun and its workers (its own session), so no worker outlives a failed test."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    @property
    def output(self) -> str:
        if not self.out.closed:
            self.out.flush()
        return (self.cwd / "torchrun.out").read_text()


def rank_lines(output: str, rank: int) -> list[str]:
    """The lines worker ``rank`` printed (torchrun --tee 3 prefixes them with ``[defaultN]:``)."""
    prefixes = (f"[default{rank}]:", f"[rank{rank}]:")
    return [line.split(":", 1)[1] for line in output.splitlines() if line.startswith(prefixes)]


def probe_events(directory: Path) -> dict[int, list[dict[str, Any]]]:
    """{rank: [event, ...]} from distprobe's JSON lines."""
    events: dict[int, list[dict[str, Any]]] = {}
    for path in sorted(directory.glob("rank*.jsonl")):
        lines = path.read_text().splitlines()
        events[int(path.stem[4:])] = [json.loads(line) for line in lines]
    return events


def of(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in events if e["event"] == kind]


def script_args(out: Path, save_dir: Path) -> list[str]:
    """tests/dist_script.py writing its records to ``out`` and its files to ``save_dir``."""
    return [str(TESTS / "dist_script.py"), "--out", str(out), "--save-dir", str(save_dir)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def gloo_group() -> Iterator[None]:
    """A real one-process gloo group, as a script would create before building a Trainer."""
    assert not dist.is_initialized()
    timeout = datetime.timedelta(seconds=30)
    # The store binds port 0 itself: no free port guessed first that another process may take.
    store = dist.TCPStore("127.0.0.1", 0, 1, is_master=True, timeout=timeout)
    dist.init_process_group("gloo", store=store, rank=0, world_size=1, timeout=timeout)
    try:
        yield
    finally:
        dist.destroy_process_group()


# ---------------------------------------------------------------------- one shared torchrun fit
@dataclass
class Run:
    root: Path
    proc: subprocess.CompletedProcess[str]
    events: dict[int, list[dict[str, Any]]]

    @property
    def output(self) -> str:
        return self.proc.stdout + self.proc.stderr


STOP_STEP = 30  # digits: 1438 training samples, batch 32 -> 23 steps per rank per epoch; 30 is in epoch 2


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """``torchrun -m trainhooks fit --epochs 3`` with the default plugins (keeping every epoch's
    checkpoint); rank 1 alone asks to stop at step 30."""
    root = tmp_path_factory.mktemp("ddp-fit")
    probe = root / "probe"
    probe.mkdir()
    proc = torchrun(
        ["-m", "trainhooks", "fit", "--epochs", "3", "-p", "distprobe", "--dist-timeout", "60", "--save-top-k", "-1"],
        cwd=root,
        env={"DISTPROBE_DIR": str(probe), "DISTPROBE_STOP_RANK": "1", "DISTPROBE_STOP_STEP": str(STOP_STEP)},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return Run(root, proc, probe_events(probe))


@slow
def test_every_rank_knows_its_rank_and_trains_a_ddp_model_on_its_shard(stopped_run: Run) -> None:
    starts = {rank: of(events, "start")[0] for rank, events in stopped_run.events.items()}
    assert sorted(starts) == [0, 1]
    for rank, seen in starts.items():
        assert (seen["rank"], seen["local_rank"], seen["world_size"]) == (rank, rank, 2)
        assert seen["is_global_zero"] is (rank == 0)
        assert seen["model"] == "DistributedDataParallel" and seen["unwrapped"] == "Sequential"
        assert seen["num_train_batches"] == 23  # half of the 45 a single process takes
        assert seen["device"] == "cpu"
    ends = {rank: of(events, "end")[0] for rank, events in stopped_run.events.items()}
    assert ends[0]["params"] == ends[1]["params"], "DDP must keep the ranks' weights identical"


@slow
def test_epoch_metrics_are_identical_on_both_ranks(stopped_run: Run) -> None:
    epochs = {rank: of(events, "epoch") for rank, events in stopped_run.events.items()}
    assert len(epochs[0]) == len(epochs[1]) == 2
    for e0, e1 in zip(epochs[0], epochs[1]):
        # Other installed plugins may log metrics of their own: these at least, and the same everywhere.
        assert {"train/loss", "val/loss", "val/acc", "lr", "probe/rank"} <= set(e0["metrics"])
        assert e0["metrics"] == e1["metrics"]  # every key, bit for bit
        assert e0["metrics"]["probe/rank"] == 0.5  # a plugin's per-rank metric, averaged
        assert e0["step"] == e1["step"]
    ends = {rank: of(events, "end")[0] for rank, events in stopped_run.events.items()}
    assert ends[0]["history"] == ends[1]["history"] == [e["metrics"] for e in epochs[0]]


@slow
def test_validation_metrics_are_those_of_the_whole_validation_set(stopped_run: Run, tmp_path: Path) -> None:
    """Each validation sample is seen by exactly one rank, so the reduced metrics are exact."""
    last = stopped_run.root / "runs" / "train" / "weights" / "last.pt"
    checkpoint = torch.load(last, weights_only=True)
    task = digits_task(seed=0)
    task.model.load_state_dict(checkpoint["model"])
    trainer = trainhooks.Trainer(task.model, loss_fn=task.loss_fn, default_plugins=False, save_dir=tmp_path)
    whole = trainer.validate(task.val_data)
    reduced = of(stopped_run.events[0], "epoch")[-1]["metrics"]
    assert reduced["val/acc"] == pytest.approx(whole["val/acc"], abs=1e-12)
    assert reduced["val/loss"] == pytest.approx(whole["val/loss"], rel=1e-6)


@slow
def test_one_set_of_files_written_by_rank_zero_only(stopped_run: Run) -> None:
    runs = stopped_run.root / "runs"
    assert [p.name for p in runs.iterdir()] == ["train"], "both ranks must agree on the default save_dir"
    files = sorted(str(p.relative_to(runs / "train")) for p in (runs / "train").rglob("*") if p.is_file())
    weights = ["weights/best.pt", "weights/epoch1.pt", "weights/epoch2.pt", "weights/last.pt"]
    # previous.pt: the last.pt before the final one, kept for auto-resume (issue 14); no on_model_save
    # run.json: the run manifest, rank 0's alone like the rest
    assert files == ["metrics.csv", "results.png", "run.json", *weights, "weights/previous.pt"]
    events = stopped_run.events
    assert {e["path"] for e in of(events[0], "saved")} == {f"runs/train/{w}" for w in weights}
    assert of(events[1], "saved") == [], "rank 1 must not write checkpoints"
    assert of(events[0], "end")[0]["artifacts"] == ["best.pt", "last.pt", "metrics.csv", "results.png"]
    assert of(events[1], "end")[0]["artifacts"] == []
    assert [e["epoch"] for e in of(events[0], "rank_zero_only")] == [0, 1]
    assert of(events[1], "rank_zero_only") == []
    rows = list(csv.DictReader((runs / "train" / "metrics.csv").open()))
    assert [float(r["val/acc"]) for r in rows] == [e["metrics"]["val/acc"] for e in of(events[0], "epoch")]
    out = stopped_run.proc.stdout
    assert out.count("Training stopped early") == 1 and out.count("Epoch 1/3") == 1


@slow
def test_a_stop_asked_on_rank_1_only_stops_both_at_the_same_step(stopped_run: Run) -> None:
    ends = {rank: of(events, "end")[0] for rank, events in stopped_run.events.items()}
    reason = f"probe asked to stop on rank 1 at step {STOP_STEP}"
    for end in ends.values():
        assert end["step"] == STOP_STEP
        assert end["epochs"] == 2
        assert end["stop_reason"] == reason
        assert end["stopped_by"] == "distprobe"
    # Step 30 is batch 7 of epoch 2 (23 batches per rank): the summary says the epoch was cut short.
    assert f"Training stopped early in epoch 2 of 3 at batch 7 of 23 ({STOP_STEP} steps" in stopped_run.proc.stdout


@slow
def test_a_two_rank_checkpoint_resumes_in_one_process(stopped_run: Run, tmp_path: Path, capsys, monkeypatch) -> None:
    """``--resume`` with no other flag continues the run with its recorded plugins: the same
    plugin world as the torchrun run (built-ins and ``-p distprobe``, autoload off, tests/ on
    the path), in one process."""
    monkeypatch.setenv("TRAINHOOKS_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.syspath_prepend(str(TESTS))  # what PYTHONPATH gave the torchrun workers
    probe = tmp_path / "probe"
    probe.mkdir()
    monkeypatch.setenv("DISTPROBE_DIR", str(probe))
    first = stopped_run.root / "runs" / "train" / "weights" / "epoch1.pt"  # before the stop
    assert torch.load(first, weights_only=True)["world_size"] == 2
    save = tmp_path / "resumed"
    code = cli.main(["fit", "--resume", str(first), "--epochs", "3", "--save-dir", str(save), "--quiet"])
    assert code == 0, capsys.readouterr().err
    rows = list(csv.DictReader((save / "metrics.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    before = of(stopped_run.events[0], "epoch")[0]["metrics"]
    assert float(rows[0]["val/acc"]) == before["val/acc"]
    resumed = torch.load(save / "weights" / "last.pt", weights_only=True)
    assert resumed["world_size"] == 1
    assert resumed["global_step"] == 23 + 2 * 45  # 23 steps per rank, then 45 single-process steps per epoch
    assert all(math.isfinite(r["train/loss"]) for r in resumed["history"])
    (start,) = of(probe_events(probe)[0], "start")  # the recorded plugin came back, now in one process
    assert (start["world_size"], start["model"], start["num_train_batches"]) == (1, "Sequential", 45)


# ---------------------------------------------------------------------- failures end every rank
@slow
def test_an_exception_on_rank_1_ends_both_processes_quickly_and_clearly(tmp_path: Path) -> None:
    probe = tmp_path / "probe"
    probe.mkdir()
    proc = torchrun(
        ["-m", "trainhooks", "fit", "--epochs", "3", "-p", "distprobe", "--save-dir", "out"],
        cwd=tmp_path,
        env={"DISTPROBE_DIR": str(probe), "DISTPROBE_FAIL_RANK": "1", "DISTPROBE_FAIL_STEP": "10"},
        timeout=120,
    )
    output = proc.stdout + proc.stderr  # ended at all (the timeout is far above dist_timeout): no hang
    assert proc.returncode != 0, output
    assert (
        "trainhooks: error: rank 1 of 2: plugin 'distprobe' failed in hook 'on_train_batch_end': "
        "RuntimeError: probe failure on rank 1 at step 10" in output
    ), output
    # The survivor names the rank that failed and why (rank 1 left a line in the store).
    assert "trainhooks: error: rank 0 of 2 lost contact with the other ranks" in output, output
    assert "Cause: rank 1 of 2 failed: plugin 'distprobe' failed in hook 'on_train_batch_end'" in output, output
    events = probe_events(probe)
    assert all(of(e, "end") == [] for e in events.values()), "no rank may finish training normally"
    assert "Training finished" not in output


@slow
def test_a_stalled_rank_becomes_a_clear_timeout_error_not_a_hang(tmp_path: Path) -> None:
    probe = tmp_path / "probe"
    probe.mkdir()
    proc = torchrun(
        ["-m", "trainhooks", "fit", "--epochs", "2", "-p", "distprobe", "--save-dir", "out", "--dist-timeout", "5"],
        cwd=tmp_path,
        env={"DISTPROBE_DIR": str(probe), "DISTPROBE_HANG_RANK": "1", "DISTPROBE_HANG_STEP": "5"},
        timeout=120,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output
    assert "trainhooks: error: rank 0 of 2 lost contact with the other ranks during the stop agreement" in output
    assert "(epoch 1, step 5)" in output and "dist_timeout (5s)" in output


# ---------------------------------------------------------------------- signals: none lost, none stuck
def blocked_run(
    tmp_path: Path, *extra: str, env: dict[str, str] | None = None, epochs: int = 3
) -> tuple[Launched, Path]:
    """``torchrun -m trainhooks fit -p distprobe`` whose rank 1 blocks in a hook at step 5 (until released)."""
    probe = tmp_path / "probe"
    probe.mkdir()
    run = Launched(
        [
            "--tee",
            "3",
            "-m",
            "trainhooks",
            "fit",
            "--epochs",
            str(epochs),
            "-p",
            "distprobe",
            "--save-dir",
            "out",
            "--quiet",
            *extra,
        ],
        cwd=tmp_path,
        env={"DISTPROBE_DIR": str(probe), "DISTPROBE_BLOCK_RANK": "1", "DISTPROBE_BLOCK_STEP": "5", **(env or {})},
    )
    return run, probe


def worker_pid(probe: Path, rank: int) -> int:
    return int(of(probe_events(probe)[rank], "start")[0]["pid"])


def main_thread(pid: int) -> tuple[str, int]:
    """(scheduler state, CPU ticks used) of process ``pid``'s main thread, from /proc."""
    fields = Path(f"/proc/{pid}/task/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return fields[0], int(fields[11]) + int(fields[12])  # state; utime + stime


def wait_inside_agreement(run: Launched, probe: Path, rank: int = 0, timeout: float = 240) -> int:
    """Wait until ``rank`` sits inside the stop agreement of the block step; returns its pid.

    It has asked ``should_stop`` there (distprobe's ``agreeing<rank>``), and its main thread then
    sleeps, using no CPU, for 10 polls in a row: the only wait between that hook and the next batch
    is the agreement's collective (its peer is blocked in a hook). Readiness, not a guessed sleep:
    on a loaded machine the rank may take any time to get there."""
    run.wait_for(probe / f"agreeing{rank}", timeout=timeout)
    pid = int((probe / f"agreeing{rank}").read_text())
    deadline = time.monotonic() + timeout
    quiet, last = 0, -1
    while quiet < 10:
        state, ticks = main_thread(pid)
        quiet = quiet + 1 if state == "S" and ticks == last else 0
        last = ticks
        if time.monotonic() > deadline:
            run.kill()
            raise AssertionError(f"rank {rank} never waited inside the stop agreement:\n{run.output}")
        time.sleep(0.02)
    return pid


def release_after_signal(run: Launched, probe: Path, rank: int = 1) -> None:
    """Let the blocked ``rank`` go once it has recorded the signal it was sent (``signalled<rank>``)."""
    run.wait_for(probe / f"signalled{rank}")
    (probe / "release").touch()


@slow
def test_a_signal_landing_inside_the_stop_agreement_is_not_lost(tmp_path: Path) -> None:
    """Rank 0 waits inside the stop agreement of step 5 (rank 1 is blocked in a hook) when SIGTERM
    reaches it alone. The agreement's result (no stop) must not overwrite the signal: it is
    carried to the next agreement, and both ranks stop at step 6 with a checkpoint."""
    run, probe = blocked_run(tmp_path, env={"DISTPROBE_WARN": "1"})
    os.kill(wait_inside_agreement(run, probe), signal.SIGTERM)
    (probe / "release").touch()
    code = run.finish()
    output = run.output
    events = probe_events(probe)
    ends = {rank: of(events[rank], "end") for rank in (0, 1)}
    assert ends[0] and ends[1], output
    # Step 5's agreement ran without it (it landed inside): step 6's carries it, on both ranks.
    assert ends[0][0]["step"] == ends[1][0]["step"] == 6, output
    for rank in (0, 1):
        assert ends[rank][0]["stop_reason"] == "interrupted by SIGTERM" and ends[rank][0]["stopped_by"] == "signal"
    saved = torch.load(tmp_path / "out" / "weights" / "last.pt", weights_only=True)
    assert saved["global_step"] == 6 and saved["stopped_by"] == "signal" and saved["epoch_completed"] is False
    hint = "Resume with: the same torchrun command, with --resume out/weights/last.pt (or --resume auto)"
    assert output.count(hint) == 1, output
    # A graceful stop is a clean exit for torchrun: no failed worker reported.
    assert code == 0, output
    assert "ChildFailedError" not in output and "FAILED" not in output
    # The same warning on both ranks is printed once (by rank 0).
    assert output.count("UserWarning: probe warning, the same on every rank") == 1, output

    # A second run into the same directory is refused on every rank; nothing is touched.
    before = {p: p.read_bytes() for p in (tmp_path / "out").rglob("*") if p.is_file()}
    again = Launched(["-m", "trainhooks", "fit", "--epochs", "3", "--save-dir", "out", "--quiet"], cwd=tmp_path, env={})
    assert again.finish() != 0
    # last.pt of a stopped run has a previous.pt beside it (kept for --resume auto): the fifth file
    refusal = "save_dir out already holds a run (metrics.csv, results.png, weights/best.pt, weights/last.pt and 1 more)"
    assert again.output.count(refusal) == 2, again.output  # one line per rank
    assert "--resume auto" in again.output and "--overwrite" in again.output
    assert {p: p.read_bytes() for p in (tmp_path / "out").rglob("*") if p.is_file()} == before


@slow
def test_sigterm_to_the_torchrun_agent_stops_every_rank_at_one_step_with_a_checkpoint(tmp_path: Path) -> None:
    """What a scheduler does on pre-emption: SIGTERM to torchrun, which forwards it to every worker.
    Rank 0 gets it inside step 5's agreement, rank 1 in its hook before it: both stop at step 5."""
    run, probe = blocked_run(tmp_path)
    wait_inside_agreement(run, probe)
    run.proc.send_signal(signal.SIGTERM)
    release_after_signal(run, probe)
    code = run.finish()
    output = run.output
    events = probe_events(probe)
    ends = [of(events[rank], "end") for rank in (0, 1)]
    assert ends[0] and ends[1], output
    assert ends[0][0]["step"] == ends[1][0]["step"] == 5, output
    assert all(e[0]["stop_reason"] == "interrupted by SIGTERM" for e in ends)
    saved = torch.load(tmp_path / "out" / "weights" / "last.pt", weights_only=True)
    assert saved["global_step"] == 5 and saved["stopped_by"] == "signal"
    assert "Resume with: the same torchrun command, with --resume out/weights/last.pt" in output
    # torchrun itself, signalled, always ends with its SignalException (documented); the workers
    # stopped on their own well before its SIGKILL.
    assert code != 0 and "SignalException" in output, output
    assert "SIGKILL" not in output, output


@slow
def test_the_pre_emption_signal_to_torchrun_workers_exits_75_with_a_resumable_checkpoint(tmp_path: Path) -> None:
    """SIGUSR1 (the pre-emption signal) to every worker, as a scheduler that signals all of a job's
    processes does, at a known step: rank 0 inside step 5's agreement, rank 1 in its hook. Both
    stop at step 5, rank 0 writes last.pt and says so once, and rank 0's pre-emption status 75
    is what torchrun reports."""
    run, probe = blocked_run(tmp_path)
    wait_inside_agreement(run, probe)
    for rank in (0, 1):
        os.kill(worker_pid(probe, rank), signal.SIGUSR1)
    release_after_signal(run, probe)
    code = run.finish()
    output = run.output
    events = probe_events(probe)
    ends = [of(events[rank], "end") for rank in (0, 1)]
    assert ends[0] and ends[1], output
    assert ends[0][0]["step"] == ends[1][0]["step"] == 5, output
    assert all(e[0]["stop_reason"] == "interrupted by SIGUSR1" for e in ends), output
    # Rank 0's 75 is the only non-zero status: rank 1 exits 0, so the agent does not SIGTERM
    # rank 0 while it writes last.pt; torchrun's own status is 1, as for any failed worker.
    assert code == 1 and "ChildFailedError" in output, output
    assert re.search(r"rank\s*: 0 \(local_rank: 0\)\s*exitcode\s*: 75 ", output), output
    assert set(re.findall(r"exitcode\s*: ?(-?\w+)", output)) == {"75"}, output
    assert "rank      : 1" not in output and "Signal " not in output, output
    assert output.count("SIGUSR1 received: stopping after epoch 1, step 5") == 1, output
    hint = "Resume with: the same torchrun command, with --resume out/weights/last.pt (or --resume auto)"
    assert output.count(hint) == 1, output
    weights = tmp_path / "out" / "weights"
    choice = checkpointing.newest_good_checkpoint(weights)  # what --resume auto would take
    assert choice.path == weights / "last.pt" and not choice.skipped
    saved = choice.checkpoint
    assert (saved["global_step"], saved["stopped_by"], saved["epoch_completed"]) == (5, "signal", False)
    assert saved["stop_reason"] == "interrupted by SIGUSR1" and saved["world_size"] == 2


@slow
def test_a_stuck_rank_ends_in_bounded_time_on_sigterm_with_an_emergency_checkpoint(tmp_path: Path) -> None:
    """Rank 1 never leaves its hook; rank 0 waits in a collective (dist_timeout far away). On
    torchrun's SIGTERM both must exit after --stop-timeout, not at torchrun's SIGKILL (which
    --shutdown-timeout puts beyond this test's own timeout)."""
    probe = tmp_path / "probe"
    probe.mkdir()
    run = Launched(
        [
            "--shutdown-timeout",
            "600",
            "--tee",
            "3",
            "-m",
            "trainhooks",
            "fit",
            "--epochs",
            "3",
            "-p",
            "distprobe",
            "--save-dir",
            "out",
            "--quiet",
            "--stop-timeout",
            "3",
            "--dist-timeout",
            "600",
        ],
        cwd=tmp_path,
        env={
            "DISTPROBE_DIR": str(probe),
            "DISTPROBE_BLOCK_RANK": "1",
            "DISTPROBE_BLOCK_STEP": "5",
            "DISTPROBE_BLOCK_MAX": "900",
        },
        launcher=["--standalone", "--nproc_per_node", "2"],
    )
    wait_inside_agreement(run, probe)
    run.proc.send_signal(signal.SIGTERM)
    run.finish(timeout=240)
    output = run.output
    for rank in (0, 1):
        line = f"trainhooks: error: rank {rank} of 2: training did not stop within 3s of SIGTERM"
        assert any(text.startswith(line) for text in rank_lines(output, rank)), output
    emergency = torch.load(tmp_path / "out" / "weights" / "emergency.pt", weights_only=True)
    assert emergency["global_step"] == 5 and emergency["epoch_completed"] is False
    assert "SIGKILL" not in output


@slow
@pytest.mark.parametrize("mode", ["forward", "backward-oom", "sigkill"])
def test_a_failure_outside_hooks_on_one_rank_is_one_clear_error_on_every_rank(tmp_path: Path, mode: str) -> None:
    """Rank 1's training step fails (its forward raises, its backward runs out of memory, or it is
    SIGKILLed): no raw gloo traceback anywhere, one ``trainhooks: error:`` line per rank naming
    rank 1 where it could say so, on_exception and teardown, and rank 0's emergency checkpoint."""
    probe = tmp_path / "probe"
    probe.mkdir()
    run = Launched(
        ["--tee", "3", "-m", "trainhooks", "fit", "--epochs", "2", "-p", "distprobe", "--save-dir", "out", "--quiet"],
        cwd=tmp_path,
        env={
            "DISTPROBE_DIR": str(probe),
            "DISTPROBE_BREAK": mode,
            "DISTPROBE_BREAK_RANK": "1",
            "DISTPROBE_BREAK_STEP": "5",
        },
    )
    code = run.finish()
    output = run.output
    assert code != 0, output
    rank0, rank1 = rank_lines(output, 0), rank_lines(output, 1)
    errors0 = [line for line in rank0 if line.startswith("trainhooks: error:")]
    assert len(errors0) == 1, output
    assert errors0[0].startswith(
        "trainhooks: error: rank 0 of 2 lost contact with the other ranks during the gradient all-reduce (epoch 1, step 5)"
    ), output
    assert not any("Traceback" in line for line in rank0), "the survivor shows no raw traceback"
    own = {
        "forward": "rank 1 of 2 failed in the training step (epoch 1, step 5): RuntimeError: probe failure in the model's forward",
        "backward-oom": "rank 1 of 2 failed in the training step (epoch 1, step 5): OutOfMemoryError: probe: CUDA out of memory",
    }
    events = probe_events(probe)
    if mode in own:
        assert f"Cause: {own[mode]}" in errors0[0], output
        errors1 = [line for line in rank1 if line.startswith("trainhooks: error:")]
        assert len(errors1) == 1 and errors1[0].startswith(f"trainhooks: error: {own[mode]}"), output
        assert [e["type"] for e in of(events[1], "exception")] == ["DistributedError"]
        assert of(events[1], "teardown")
    else:
        assert "Cause: another rank has probably failed" in errors0[0], output
    assert [e["type"] for e in of(events[0], "exception")] == ["DistributedError"]
    assert of(events[0], "teardown"), "teardown runs on the survivor"
    emergency = torch.load(tmp_path / "out" / "weights" / "emergency.pt", weights_only=True)
    assert emergency["global_step"] == 5
    assert any("emergency checkpoint written to out/weights/emergency.pt" in line for line in rank0), output


@slow
def test_two_machines_outputs_on_the_rank_0_machine_only(tmp_path: Path) -> None:
    """Two torchrun agents (two 'machines': two working directories), c10d rendezvous: the
    machine that got rank 0 has runs/train, the other no empty directory; the preamble says where."""
    port = free_port()
    launcher = [
        "--nnodes",
        "2",
        "--nproc_per_node",
        "1",
        "--rdzv_backend",
        "c10d",
        "--rdzv_endpoint",
        f"127.0.0.1:{port}",
        "--rdzv_id",
        "two-machines",
    ]
    nodes = [tmp_path / "a", tmp_path / "b"]
    runs = []
    for node in nodes:
        node.mkdir()
        runs.append(Launched(["-m", "trainhooks", "fit", "--epochs", "1"], cwd=node, env={}, launcher=launcher))
    codes = [r.finish() for r in runs]
    assert codes == [0, 0], [r.output for r in runs]
    writers = [node for node in nodes if (node / "runs").exists()]
    assert len(writers) == 1, "one machine writes; the other gets no empty runs/train"
    writer = writers[0]
    assert (writer / "runs" / "train" / "metrics.csv").is_file()
    lines = [line for r in runs for line in r.output.splitlines() if line.startswith("Distributed: ")]
    host = socket.gethostname()
    assert lines == [
        f"Distributed: 2 processes on 1 machine(s), backend gloo; outputs are written by rank 0 on {host} "
        f"to {writer / 'runs' / 'train'}"
    ]


# ---------------------------------------------------------------------- Trainer in a torchrun script
@slow
def test_trainer_script_with_training_step_bf16_resuming_a_one_process_checkpoint(tmp_path: Path) -> None:
    """A script's Trainer under torchrun: training_step through DDP, bf16 autocast, resume 1 -> 2 ranks."""
    train, val = tiny_digits(n_train=256, n_val=64, batch_size=16)
    single = trainhooks.Trainer(
        StepNet(), epochs=1, precision="bf16", save_dir=tmp_path / "one", default_plugins=False, plugins=["checkpoint"]
    )
    single.fit(train, val)
    checkpoint = tmp_path / "one" / "weights" / "last.pt"
    out = tmp_path / "seen"
    proc = torchrun(
        [*script_args(out, tmp_path / "two"), "--epochs", "3", "--precision", "bf16", "--resume", str(checkpoint)],
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    seen = {r: json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)}
    for rank, s in seen.items():
        assert (s["rank"], s["world_size"], s["is_global_zero"]) == (rank, 2, rank == 0)
        assert (s["backend"], s["device"], s["model"]) == ("gloo", "cpu", "DistributedDataParallel")
        assert s["resumed_epochs"] == 1  # the checkpoint finished epoch 1 of 3
        assert s["step_dtype"] == "torch.bfloat16"
        assert s["global_step"] == 16 + 2 * 8  # 16 one-process steps, then 8 per rank per epoch
        assert s["model_after"] == "StepNet", "fit unwraps the model when it ends"
        assert s["group_after"] is False, "the process group trainhooks started is destroyed"
        assert len(s["history"]) == 3 and s["history"][0] == single.history[0]
        assert all(math.isfinite(h["train/loss"]) for h in s["history"])
    assert seen[0]["params"] == seen[1]["params"], "training_step must go through DDP so gradients sync"
    assert seen[0]["history"] == seen[1]["history"]
    assert seen[0]["artifacts"] == ["best.pt", "last.pt", "metrics.csv"] and seen[1]["artifacts"] == []


@slow
@needs_two_gpus
def test_nccl_ddp_with_fp16_on_two_gpus(tmp_path: Path) -> None:
    out = tmp_path / "seen"
    proc = torchrun(
        [*script_args(out, tmp_path / "two"), "--epochs", "2", "--precision", "16", "--device", "cuda"],
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    seen = {r: json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)}
    for rank, s in seen.items():
        assert (s["backend"], s["device"]) == ("nccl", f"cuda:{rank}")
        assert s["step_dtype"] == "torch.float16"
    assert seen[0]["params"] == seen[1]["params"] and seen[0]["history"] == seen[1]["history"]
    checkpoint = torch.load(tmp_path / "two" / "weights" / "last.pt", weights_only=True)
    assert checkpoint["grad_scaler"]["scale"] > 0


# ---------------------------------------------------------------------- pure helpers
def test_weighted_means_weight_by_sample_count_and_skip_empty_ranks() -> None:
    parts = [({"loss": 2.0 * 3, "acc": 1.0 * 3}, 3), ({"loss": 5.0 * 1, "acc": 0.0}, 1), ({}, 0)]
    assert weighted_means(parts) == {"loss": pytest.approx(11 / 4), "acc": pytest.approx(3 / 4)}
    # a key only one rank reported is the mean over that rank's samples
    assert weighted_means([({"a": 4.0}, 2), ({}, 5)]) == {"a": 2.0}
    assert weighted_means([({}, 0), ({}, 0)]) == {}


def test_merge_metrics_keeps_agreed_values_and_averages_the_rest() -> None:
    merged = merge_metrics(
        [
            {"train/loss": 0.1, "lr": 0.01, "mine": 1.0, "only0": 7.0, "nan": float("nan")},
            {"train/loss": 0.1, "lr": 0.01, "mine": 3.0, "nan": float("nan"), "only1": 5.0},
        ]
    )
    assert list(merged) == ["train/loss", "lr", "mine", "only0", "nan", "only1"]
    assert merged["train/loss"] == 0.1 and merged["lr"] == 0.01  # identical: untouched, bit for bit
    assert merged["mine"] == 2.0 and merged["only0"] == 7.0 and merged["only1"] == 5.0
    assert math.isnan(merged["nan"])


def test_shard_sampler_puts_every_sample_on_exactly_one_rank() -> None:
    shards = [list(ShardSampler(11, rank, 3)) for rank in range(3)]
    assert sorted(i for s in shards for i in s) == list(range(11))
    assert [len(ShardSampler(11, rank, 3)) for rank in range(3)] == [4, 4, 3]


def test_shard_loader_rebuilds_plain_loaders_and_leaves_the_rest() -> None:
    data = torch.utils.data.TensorDataset(torch.arange(10.0), torch.arange(10))

    def collate(batch: list[Any]) -> Any:
        return torch.utils.data.default_collate(batch)

    shuffled = torch.utils.data.DataLoader(data, batch_size=3, shuffle=True, collate_fn=collate, drop_last=True)
    loader, sampler, note = shard_loader(shuffled, rank=1, world_size=2, seed=7, train=True)
    assert note is None and isinstance(sampler, torch.utils.data.DistributedSampler)
    assert (sampler.rank, sampler.num_replicas, sampler.shuffle, sampler.seed) == (1, 2, True, 7)
    assert loader.batch_size == 3 and loader.collate_fn is collate and loader.drop_last is True
    assert len(loader) == 1  # 5 samples on this rank, batches of 3, drop_last
    ordered = torch.utils.data.DataLoader(data, batch_size=4)
    loader, sampler, _ = shard_loader(ordered, rank=1, world_size=2, seed=0, train=True)
    assert sampler.shuffle is False
    val, sampler, _ = shard_loader(ordered, rank=1, world_size=2, seed=0, train=False)
    assert sampler is None and [b[1].tolist() for b in val] == [[1, 3, 5, 7], [9]]
    mine = torch.utils.data.DistributedSampler(data, num_replicas=2, rank=0)
    given = torch.utils.data.DataLoader(data, batch_size=2, sampler=mine)
    assert shard_loader(given, rank=0, world_size=2, seed=0, train=True)[:2] == (given, mine)
    batches = [(torch.zeros(1), torch.zeros(1))]
    same, sampler, note = shard_loader(batches, rank=0, world_size=2, seed=0, train=True)
    assert same is batches and sampler is None and "every rank iterates all of it" in (note or "")


def test_unwrap_strips_only_real_wrappers(tmp_path: Path) -> None:
    class HasModule(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.module = nn.Linear(2, 2)

    model = HasModule()
    assert unwrap(model) is model  # a child named "module" is not a wrapper
    trainer = trainhooks.Trainer(model, loss_fn=nn.MSELoss(), default_plugins=False, save_dir=tmp_path)
    assert trainer.unwrapped_model is model
    assert set(trainer.state_checkpoint()["model"]) == {"module.weight", "module.bias"}
    inner = nn.Linear(2, 2)
    assert unwrap(nn.DataParallel(inner)) is inner


def test_call_through_runs_the_method_via_the_wrapper_and_restores_forward() -> None:
    calls: list[str] = []

    class Wrapper(nn.Module):
        def __init__(self, inner: nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, *args: Any) -> Any:
            calls.append("wrapper")
            return self.inner(*args)

    model = StepNet()
    wrapper = Wrapper(model)
    step = call_through(wrapper, model, model.training_step)
    x, y = torch.zeros(4, 64), torch.zeros(4, dtype=torch.long)
    loss = step((x, y))
    assert calls == ["wrapper"] and loss.dim() == 0
    assert "forward" not in model.__dict__ and model(x).shape == (4, 10)


# ---------------------------------------------------------------------- in-process, real gloo group
def test_single_process_fit_creates_no_process_group(make_trainer, loaders) -> None:
    trainer = make_trainer(epochs=1)
    trainer.fit(*loaders)
    assert not dist.is_initialized() and trainer._dist is None
    assert type(trainer.model) is nn.Sequential


def test_fit_inside_a_caller_owned_group_uses_it_and_leaves_it(make_trainer, loaders, gloo_group) -> None:
    seen: dict[str, Any] = {}
    trainer = make_trainer(epochs=2)
    trainer.add_callback("on_train_start", lambda t: seen.update(model=type(t.model).__name__))
    trainer.add_callback("should_stop", lambda t: "enough" if t.global_step == 4 else None)
    result = trainer.fit(*loaders)
    assert seen["model"] == "DistributedDataParallel"
    assert type(trainer.model) is nn.Sequential, "the DDP wrapper lives only during fit"
    assert dist.is_initialized(), "a group the caller created is the caller's to destroy"
    assert (result.global_step, result.stop_reason, result.epochs_completed) == (4, "enough", 2)
    assert math.isfinite(result.metrics["train/loss"]) and "val/acc" in result.metrics


def test_no_reference_to_the_ddp_wrapper_outlives_the_process_group(make_trainer, loaders, gloo_group) -> None:
    """The DDP wrapper must be freed when fit unwraps the model, before the group goes. Kept alive
    longer (the step functions held it), its reducer destroyed the gloo group later, holding the
    GIL that gloo's worker thread needed: rank processes hung at exit (seen under torchrun)."""
    import gc
    import weakref

    wrapper: dict[str, Any] = {}
    trainer = make_trainer(epochs=2)
    trainer.add_callback("on_train_start", lambda t: wrapper.update(ref=weakref.ref(t.model)))
    trainer.add_callback("teardown", lambda trainer, stage: wrapper.update(alive=wrapper["ref"]() is not None))
    gc.disable()  # only reference counting may free it, as it does in the real run
    try:
        trainer.fit(*loaders)
    finally:
        gc.enable()
    assert wrapper["alive"] is False, "the DDP wrapper was still referenced after fit ended its group"


def test_agreed_stop_with_a_cadence_remembers_the_request(make_trainer, loaders, gloo_group) -> None:
    trainer = make_trainer(epochs=1, dist_sync_every=2)
    trainer.num_train_batches = 3
    run = distributed.DistributedRun(trainer, owns_group=False, sync_every=2)
    assert run.agree_stop((False, "p"), 0) is None
    assert run.agree_stop(("tired", "p"), 0) is None  # not a sync point: remembered
    assert run.agree_stop(None, 1) == ("tired", "p")  # batch 2 of 3 syncs
    assert run.agree_stop(("late", "q"), 2) == ("late", "q")  # the last batch always syncs
    assert run.agree_stop((3, "bad"), 0) == (3, "bad")  # wrong types go back for the Trainer's error
    assert run.agree_stop(("epoch end", "r")) == ("epoch end", "r") and run.stop_rank == 0


def test_interrupts_from_outside_the_hooks_are_agreed_too(make_trainer, gloo_group) -> None:
    """A signal reaches torchrun's workers at different steps: it must stop all at one step too."""
    trainer = make_trainer(epochs=1)
    trainer.num_train_batches = 10
    run = distributed.DistributedRun(trainer, owns_group=False, sync_every=4)
    assert run.agree_stop(None, 0, interrupt="SIGTERM") is None and run.interrupt is None  # remembered
    assert run.agree_stop(None, 1) is None and run.interrupt is None
    assert run.agree_stop(("also", "p"), 3) == ("also", "p") and run.interrupt == "SIGTERM"
    assert run.agree_stop(None, 7) is None and run.interrupt is None
    assert run.agree_stop(None, interrupt="SIGINT") is None and run.interrupt == "SIGINT"


def test_a_restarted_round_never_joins_the_previous_rounds_keys() -> None:
    """torchrun's agent store outlives a restart, with the first round's keys in it. A restarted
    rank 1 that reads the old round's token before rank 0 has published the new one must wait
    for it: both ranks end up in one fresh namespace that holds none of the old keys."""
    timeout = datetime.timedelta(seconds=30)
    server = dist.TCPStore("127.0.0.1", 0, is_master=True, timeout=timeout, wait_for_workers=False)
    key = distributed.ROUND_KEY

    def client() -> dist.Store:
        return dist.TCPStore("127.0.0.1", server.port, is_master=False, timeout=timeout)

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        first = [pool.submit(distributed.round_store, client(), rank, 2, 30) for rank in (0, 1)]
        old0, old1 = (f.result() for f in first)
        old0.set("0/rank_1", "address of a worker that is dead now")
        assert old1.get("0/rank_1") == b"address of a worker that is dead now"  # one namespace per round

        stale = server.get(key).decode()
        dead_nonce = server.get(f"{key}/{stale}/join/1")
        restarted1 = pool.submit(distributed.round_store, client(), 1, 2, 30)  # rank 1 comes back first
        deadline = time.monotonic() + 30
        while server.get(f"{key}/{stale}/join/1") == dead_nonce:  # until it has joined the stale token
            assert time.monotonic() < deadline and not restarted1.done()
            time.sleep(0.01)
        assert not restarted1.done(), "the stale token's acknowledgement is a dead process's"
        restarted0 = pool.submit(distributed.round_store, client(), 0, 2, 30)
        new0, new1 = restarted0.result(), restarted1.result()
    assert server.get(key).decode() != stale
    assert not new0.check(["0/rank_1"]) and not new1.check(["0/rank_1"])
    new1.set("0/rank_1", "fresh")
    assert new0.get("0/rank_1") == b"fresh"
    with pytest.raises(trainhooks.DistributedError, match=r"rank 1 of 2: rank 0 did not open .* \(0.2s\)"):
        distributed.round_store(client(), 1, 2, 0.2)  # the current token acknowledges another process
    with pytest.raises(trainhooks.DistributedError, match=r"rank 0 of 2: rank 1 did not join .* \(0.2s\)"):
        distributed.round_store(client(), 0, 2, 0.2)


def test_world_size_without_torchrun_environment_is_a_clear_error(make_trainer, loaders, monkeypatch) -> None:
    for var in ("MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    trainer = make_trainer(epochs=1)
    assert (trainer.rank, trainer.world_size, trainer.is_global_zero) == (1, 2, False)
    with pytest.raises(trainhooks.DistributedError, match=r"MASTER_ADDR and MASTER_PORT not: start .* with torchrun"):
        trainer.fit(*loaders)
    assert not dist.is_initialized()


def test_cuda_under_torchrun_means_the_local_rank_device() -> None:
    cpu = torch.device("cpu")
    assert distributed.local_device(cpu, 3, 4) == cpu
    assert distributed.local_device(torch.device("cuda", 1), 0, 2) == torch.device("cuda", 1)
    if torch.cuda.device_count() >= 2:
        assert distributed.local_device(torch.device("cuda"), 1, 2) == torch.device("cuda", 1)
    else:
        with pytest.raises(trainhooks.ConfigError, match=r"LOCAL_RANK=5 but only \d CUDA device"):
            distributed.local_device(torch.device("cuda"), 5, 8)


def test_distributed_options_are_validated(make_trainer, monkeypatch) -> None:
    with pytest.raises(trainhooks.ConfigError, match="dist_timeout"):
        make_trainer(dist_timeout=0)
    with pytest.raises(trainhooks.ConfigError, match="dist_sync_every"):
        make_trainer(dist_sync_every=0)
    monkeypatch.setenv("RANK", "one")
    with pytest.raises(trainhooks.ConfigError, match="RANK='one' is not an integer"):
        make_trainer()


def test_cli_errors_name_the_rank_under_torchrun(capsys, monkeypatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert cli.main(["fit", "--task", "nosuchmodule:task"]) == 2
    assert "trainhooks: error: rank 1 of 2: --task 'nosuchmodule:task': cannot import" in capsys.readouterr().err


# ---------------------------------------------------------------------- mixed precision
def test_precision_names() -> None:
    assert [parse_precision(v) for v in (32, "32", "fp32", None)] == ["32"] * 4
    assert [parse_precision(v) for v in ("bf16", "bf16-mixed", 16, "fp16", "16-mixed")] == ["bf16"] * 2 + ["16"] * 3
    with pytest.raises(trainhooks.ConfigError, match="precision '8' is not one of"):
        parse_precision("8")


def test_bf16_on_cpu_trains_under_autocast(make_trainer) -> None:
    dtypes: set[torch.dtype] = set()
    train, val = tiny_digits(n_train=256, n_val=64, batch_size=32)
    trainer = make_trainer(
        model=tiny_model(), precision="bf16", epochs=4, optimizer=lambda p: torch.optim.Adam(p, 1e-2)
    )
    trainer.add_callback("on_train_batch_end", lambda outputs: dtypes.add(outputs["preds"].dtype))
    result = trainer.fit(train, val)
    assert dtypes == {torch.bfloat16}
    losses = [h["train/loss"] for h in result.history]
    assert all(math.isfinite(v) for v in losses) and losses[-1] < losses[0] * 0.7
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters()), "weights stay float32"
    assert "grad_scaler" not in trainer.state_checkpoint(), "bf16 needs no scaler"


def test_fp16_scales_the_loss_hooks_see_true_gradients_and_the_scaler_is_checkpointed(make_trainer, tmp_path) -> None:
    """float16 autocast runs on the CPU too, with torch.amp.GradScaler("cpu"): the CUDA path's logic."""
    grads: list[float] = []
    train, val = tiny_digits(n_train=128, n_val=32, batch_size=32)
    trainer = make_trainer(model=tiny_model(), precision="16", epochs=2, grad_clip_norm=10.0)

    def record(trainer: Any) -> None:
        grads.append(max(p.grad.abs().max().item() for p in trainer.model.parameters()))

    trainer.add_callback("on_before_optimizer_step", record)
    result = trainer.fit(train, val)
    assert math.isfinite(result.metrics["train/loss"])
    scaler = trainer._amp.scaler
    assert scaler.get_scale() >= 2.0**10, "the loss is scaled"
    finite = [g for g in grads if math.isfinite(g)]
    assert finite and 0 < max(finite) < 10, "hooks must see unscaled gradients"
    scaler.update(new_scale=1234.0)  # a scale no fresh scaler has, to see it restored
    path = trainer.save_checkpoint(tmp_path / "amp.pt")
    assert torch.load(path, weights_only=True)["grad_scaler"]["scale"] == 1234.0
    fresh = make_trainer(model=tiny_model(), precision="16")
    assert fresh._amp.scaler.get_scale() != 1234.0
    fresh.load_checkpoint(path)
    assert fresh._amp.scaler.get_scale() == 1234.0


def test_cli_precision_flag(tmp_path, capsys) -> None:
    code = cli.main(["fit", "--epochs", "1", "--precision", "bf16", "--save-dir", str(tmp_path / "r"), "--quiet"])
    assert code == 0, capsys.readouterr().err
    assert torch.load(tmp_path / "r" / "weights" / "last.pt", weights_only=True)["history"][0]["train/loss"] > 0


@needs_gpu
def test_fp16_on_cuda_trains_and_saves_the_grad_scaler(make_trainer, tmp_path) -> None:
    train, val = tiny_digits(n_train=256, n_val=64, batch_size=32)
    trainer = make_trainer(model=tiny_model(), precision="16", epochs=2, device="cuda")
    dtypes: set[torch.dtype] = set()
    trainer.add_callback("on_train_batch_end", lambda outputs: dtypes.add(outputs["preds"].dtype))
    result = trainer.fit(train, val)
    assert dtypes == {torch.float16} and math.isfinite(result.metrics["train/loss"])
    saved = torch.load(trainer.save_checkpoint(tmp_path / "c.pt"), weights_only=True)
    assert saved["grad_scaler"]["scale"] == trainer._amp.scaler.get_scale()
