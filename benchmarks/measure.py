"""Measurement: interleaved repetitions in one process, and fresh processes for memory and start-up.

Why this shape:

* The machine is shared and its speed drifts (other processes, frequency, caches). Running the
  loops in lock-step, one epoch each in turn (see :func:`lockstep`), makes neighbours in time
  of the epochs compared, and the median over rounds ignores the rounds a disturbance hit.
* Each loop runs in its own fresh process, as a user would run it (its own allocator, garbage,
  OpenMP team); peak RSS only grows within a process, so that is also where each loop's peak
  is taken.
* Start-up costs (imports, plugin discovery) are paid once per process, so they are measured
  from fresh processes too, against ``python -c pass`` and ``import torch``.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.loops import LOOPS_BY_KEY, EpochClock, Loop, quiet
from benchmarks.workloads import WORKLOADS, Workload

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Timing:
    """µs per step of one loop on one workload, one value per measured epoch (round).

    ``whole``: whole epochs, per-epoch work included (the headline number); ``steps``: inside the
    training steps only, excluding plugins' per-epoch work (checkpoints, CSV rows).
    """

    key: str
    label: str = ""
    data_path: str = "dataloader"
    whole: list[float] = field(default_factory=list)
    steps: list[float] = field(default_factory=list)
    rss_mib: float | None = None
    skipped: str | None = None

    @property
    def median(self) -> float:
        return statistics.median(self.whole)

    @property
    def low(self) -> float:
        return min(self.whole)

    @property
    def high(self) -> float:
        return max(self.whole)

    @property
    def steps_median(self) -> float:
        return statistics.median(self.steps)

    def ratio(self, ref: Timing, which: str = "whole") -> float:
        """Median over rounds of (this / reference) from the same round.

        The loops of one round run back to back, so a disturbance (another process, a
        frequency change) hits them alike and cancels out of the ratio.
        """
        mine, theirs = getattr(self, which), getattr(ref, which)
        return statistics.median(a / b for a, b in zip(mine, theirs))


class _Turn:
    """The baton between the scheduler and one loop running in a thread of this process."""

    def __init__(self) -> None:
        self.go = threading.Event()
        self.back = threading.Event()
        self.finished = False
        self.error: BaseException | None = None

    def wait_for_turn(self) -> None:  # called in the loop's thread
        self.back.set()
        self.go.wait()
        self.go.clear()

    def finish(self) -> None:  # called in the loop's thread
        self.finished = True
        self.back.set()


class _ThreadRunner:
    """A loop in a thread of this process: cheap to start, fine with one torch thread.

    With more torch threads it is not: every Python thread that runs torch code gets its own
    OpenMP team, and the idle teams slow the active one down (2-3x on 2 cores).
    """

    def __init__(self, loop: Loop, wl: Workload, total: int) -> None:
        self.key = loop.key
        self.turn = _Turn()
        self.clock = EpochClock(turn=self.turn)

        def body() -> None:
            try:
                loop.run(wl, total, self.clock)
            except BaseException as exc:
                self.turn.error = exc
                self.turn.finish()

        self.thread = threading.Thread(target=body, name=f"bench-{loop.key}", daemon=True)

    def start(self) -> None:
        self.thread.start()
        self.turn.back.wait()  # set-up done, waiting for its first epoch
        self._check("set-up")

    def run_epoch(self) -> bool:
        """Run one epoch (or, after the last, the end of training); True once training has ended."""
        if self.turn.finished:
            return True
        self.turn.back.clear()
        self.turn.go.set()
        self.turn.back.wait()
        self._check("an epoch")
        return self.turn.finished

    def _check(self, where: str) -> None:
        if self.turn.error is not None:
            raise RuntimeError(f"{self.key} failed in {where}") from self.turn.error

    def result(self) -> tuple[list[tuple[float, float]], float | None]:
        return self.clock.per_epoch(), None

    def close(self) -> None:
        self.turn.go.set()
        self.thread.join(timeout=60)


class _PipeTurn:
    """The baton in a loop's own process: messages over a pipe to the scheduler."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def wait_for_turn(self) -> None:
        self.conn.send(("back",))
        self.conn.recv()

    def finish(self) -> None:
        self.conn.send(("done",))


def _peak_rss_mib() -> float | None:
    """VmHWM: the peak resident memory of this process image. (``ru_maxrss`` would report at
    least the parent's size: Linux carries it over fork and exec.)"""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            return next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:")) / 1024.0
    except (OSError, StopIteration, ValueError):
        return None


def _child_main(key: str, wl_name: str, total: int, conn: Any) -> None:
    """Entry point of a loop's process (see :class:`_ProcessRunner`)."""
    try:
        with quiet():
            wl = WORKLOADS[wl_name]
            wl.apply_threads()
            clock = EpochClock(turn=_PipeTurn(conn))
            LOOPS_BY_KEY[key].run(wl, total, clock)
        conn.send(("result", clock.per_epoch(), _peak_rss_mib()))
    except BaseException:
        conn.send(("error", traceback.format_exc()))
    finally:
        conn.close()


class _ProcessRunner:
    """A loop in its own fresh process, as a user would run it: its own interpreter, allocator,
    garbage and OpenMP team. The process's peak RSS comes back with the timings."""

    def __init__(self, loop: Loop, wl: Workload, total: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.key = loop.key
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_child_main, args=(loop.key, wl.name, total, child), name=f"bench-{loop.key}")
        self.finished = False

    def start(self) -> None:
        self.proc.start()

    def wait_ready(self) -> None:
        self._receive("set-up")

    def run_epoch(self) -> bool:
        if self.finished:
            return True
        self.conn.send(("go",))
        return self._receive("an epoch")

    def _receive(self, where: str) -> bool:
        msg = self.conn.recv()
        if msg[0] == "error":
            raise RuntimeError(f"{self.key} failed in {where}:\n{msg[1]}")
        self.finished = msg[0] == "done"
        return self.finished

    def result(self) -> tuple[list[tuple[float, float]], float | None]:
        msg = self.conn.recv()
        if msg[0] == "error":
            raise RuntimeError(f"{self.key} failed at the end:\n{msg[1]}")
        return msg[1], msg[2]

    def close(self) -> None:
        if self.proc.is_alive():
            self.proc.join(timeout=30)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()


def _settle() -> None:
    """Between turns, untimed: write dirty file pages out now (checkpoints, logs), so the kernel's
    background write-back does not steal CPU from whichever loop runs next."""
    if hasattr(os, "sync"):
        os.sync()


def lockstep(
    loops: Sequence[Loop],
    wl: Workload,
    *,
    rounds: int,
    warmup: int = 1,
    isolate: bool = False,
    progress: Callable[[str], None] = lambda s: None,
) -> dict[str, Timing]:
    """Train with every loop at once, one epoch each in turn: A B C, C A B, B C A ...

    Only one loop trains at a time; the others wait for their turn. A round is one epoch of every
    loop, run back to back, so the loops of a round see the same machine; the first ``warmup``
    epochs of each loop are not counted. Set-up (model, Trainer) happens before the first turn
    and is not timed. The order is shuffled every round (seeded): a loop that leaves work behind
    (garbage, dirty pages) would otherwise always slow down the same neighbour.

    ``isolate``: each loop in its own fresh process (the real measurement; also gives each
    loop's peak RSS), else in threads of this process (quick, and only faithful with one torch
    thread). Loops in processes must be in ``LOOPS_BY_KEY``.
    """
    results = {loop.key: Timing(loop.key, loop.label, loop.data_path) for loop in loops}
    runnable = []
    for loop in loops:
        reason = loop.missing()
        if reason:
            results[loop.key].skipped = reason
        else:
            runnable.append(loop)
    with quiet():
        _lockstep(runnable, results, wl, rounds, warmup, isolate, progress)
    return results


def _lockstep(
    loops: Sequence[Loop],
    results: dict[str, Timing],
    wl: Workload,
    rounds: int,
    warmup: int,
    isolate: bool,
    progress: Callable[[str], None],
) -> None:
    wl.apply_threads()
    total = warmup + rounds
    runners: dict[str, _ThreadRunner | _ProcessRunner] = {}
    try:
        if isolate:
            procs = {loop.key: _ProcessRunner(loop, wl, total) for loop in loops}
            runners.update(procs)
            for proc in procs.values():  # all start together; set-up is not timed
                proc.start()
            for proc in procs.values():
                proc.wait_ready()
        else:
            for loop in loops:
                thread_runner = _ThreadRunner(loop, wl, total)
                runners[loop.key] = thread_runner
                thread_runner.start()
        gc.collect()
        gc.freeze()  # set-up objects (Lightning's included) are never traversed by later collections
        order = list(loops)
        shuffler = random.Random(0)
        for r in range(total):
            shuffler.shuffle(order)
            for loop in order:
                _settle()
                ended = runners[loop.key].run_epoch()  # the last epoch's turn ends with training
                if ended != (r == total - 1):
                    raise RuntimeError(f"{loop.key} trained {'fewer' if ended else 'more'} than {total} epochs")
            if r >= warmup:
                progress(f"{wl.name}: round {r + 1 - warmup}/{rounds}")
        steps = wl.steps_per_epoch()
        for loop in loops:
            per_epoch, rss = runners[loop.key].result()
            timing = results[loop.key]
            timing.rss_mib = rss
            for whole, inside in per_epoch[warmup:]:
                timing.whole.append(whole / steps * 1e6)
                timing.steps.append(inside / steps * 1e6)
    finally:
        for any_runner in runners.values():
            any_runner.close()
        gc.unfreeze()
        wl.apply_threads()


# ---------------------------------------------------------------------- fresh processes
def _python_env(extra_path: Sequence[str] = ()) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAINHOOKS_")}
    parts = [str(ROOT), *extra_path]
    env["PYTHONPATH"] = os.pathsep.join(parts)
    return env


FIRST_STEP = {
    "plain": """
        import torch
        from torch import nn
        from benchmarks.workloads import WORKLOADS
        wl = WORKLOADS["tiny"]; wl.apply_threads()
        model = wl.model(); opt = wl.make_optimizer(model); loss_fn = nn.CrossEntropyLoss()
        for x, y in wl.loader():
            opt.zero_grad(set_to_none=True)
            loss_fn(model(x), y).backward()
            opt.step()
            report()
    """,
    "trainhooks": """
        import tempfile
        import trainhooks
        from torch import nn
        from benchmarks.workloads import WORKLOADS
        wl = WORKLOADS["tiny"]; wl.apply_threads()
        model = wl.model()
        trainer = trainhooks.Trainer(model, loss_fn=nn.CrossEntropyLoss(), optimizer=wl.make_optimizer(model),
                                     epochs=1, verbose=False, save_dir=tempfile.mkdtemp(), autoload=False)
        trainer.add_callback("on_before_zero_grad", lambda t: report())
        trainer.fit(wl.loader())
    """,
    "ignite": """
        from torch import nn
        from ignite.engine import Events, create_supervised_trainer
        from benchmarks.workloads import WORKLOADS
        wl = WORKLOADS["tiny"]; wl.apply_threads()
        model = wl.model()
        engine = create_supervised_trainer(model, wl.make_optimizer(model), nn.CrossEntropyLoss())
        engine.add_event_handler(Events.ITERATION_COMPLETED, lambda e: report())
        engine.run(wl.loader(), max_epochs=1)
    """,
    "lightning": """
        import tempfile, warnings
        warnings.simplefilter("ignore")
        import pytorch_lightning as pl
        from torch import nn
        from benchmarks.workloads import WORKLOADS
        wl = WORKLOADS["tiny"]; wl.apply_threads()
        model = wl.model(); opt = wl.make_optimizer(model); loss_fn = nn.CrossEntropyLoss()
        class M(pl.LightningModule):
            def __init__(self):
                super().__init__(); self.net = model
            def training_step(self, batch, i):
                return loss_fn(self.net(batch[0]), batch[1])
            def configure_optimizers(self):
                return opt
            def on_before_zero_grad(self, optimizer):
                report()
        pl.Trainer(max_epochs=1, accelerator="cpu", devices=1, default_root_dir=tempfile.mkdtemp()).fit(M(), wl.loader())
    """,
}
FIRST_STEP_REQUIRES = {"ignite": "ignite", "lightning": "pytorch_lightning"}
_REPORT = "import os, sys, time\ndef report():\n    print('FIRST_STEP', time.time(), flush=True)\n    os._exit(0)\n"


def _run_fresh(args: Sequence[str], env: dict[str, str] | None = None, marker: str | None = None) -> float:
    """Seconds from spawning a fresh process to its exit (or to the time it prints after ``marker``)."""
    started = time.time()
    proc = subprocess.run(
        list(args), capture_output=True, text=True, env=env or _python_env(), cwd=ROOT, timeout=600, check=False
    )
    ended = time.time()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    if marker is None:
        return ended - started
    for line in proc.stdout.splitlines():
        if line.startswith(marker):
            return float(line.split()[1]) - started
    raise RuntimeError(f"{marker} not printed by {' '.join(args)}:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")


def time_to_first_step(repeats: int, peers: bool = True) -> dict[str, list[float] | str]:
    """Fresh process, interpreter start to the end of the first optimizer step, for each framework."""
    import importlib.util

    results: dict[str, list[float] | str] = {}
    runnable = []
    for name in FIRST_STEP:
        need = FIRST_STEP_REQUIRES.get(name)
        if need and not peers:
            results[name] = "left out (--no-peers)"
        elif need and importlib.util.find_spec(need) is None:
            results[name] = f"{need} not installed"
        else:
            runnable.append(name)
            results[name] = []
    shuffler = random.Random(1)
    for _ in range(repeats):
        shuffler.shuffle(runnable)  # no framework always runs right after another
        for name in runnable:
            code = _REPORT + textwrap.dedent(FIRST_STEP[name])
            value = _run_fresh([sys.executable, "-c", code], marker="FIRST_STEP")
            samples = results[name]
            assert isinstance(samples, list)
            samples.append(value)
    return results


def write_dummy_plugins(root: Path, n: int) -> None:
    """``n`` installed-looking plugin distributions: real ``*.dist-info`` dirs with entry points."""
    for i in range(n):
        name = f"trainhooks_dummy{i}"
        (root / f"{name}.py").write_text(
            "import trainhooks\n\n\n@trainhooks.hookimpl\ndef on_train_epoch_end(trainer):\n    pass\n"
        )
        info = root / f"trainhooks_dummy{i}-0.1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: trainhooks-dummy{i}\nVersion: 0.1.0\n")
        (info / "entry_points.txt").write_text(f"[trainhooks]\ndummy{i} = {name}\n")
        (info / "RECORD").write_text("")


def startup_times(repeats: int, n_plugins: int = 50) -> dict[str, list[float]]:
    """Median-able start-up samples: ``python -c pass``, ``import torch``, ``trainhooks plugins`` (0 / n dummies)."""
    tmp = Path(tempfile.mkdtemp(prefix="trainhooks-dummies-"))
    try:
        write_dummy_plugins(tmp, n_plugins)
        py = sys.executable
        cases: dict[str, tuple[list[str], dict[str, str]]] = {
            "python -c pass": ([py, "-c", "pass"], _python_env()),
            "python -c 'import torch'": ([py, "-c", "import torch"], _python_env()),
            "trainhooks plugins": ([py, "-m", "trainhooks", "plugins"], _python_env()),
            f"trainhooks plugins, {n_plugins} dummy plugins installed": (
                [py, "-m", "trainhooks", "plugins"],
                _python_env([str(tmp)]),
            ),
        }
        results: dict[str, list[float]] = {name: [] for name in cases}
        check = subprocess.run(cases[list(cases)[-1]][0], capture_output=True, text=True, env=cases[list(cases)[-1]][1])
        if f"dummy{n_plugins - 1}" not in check.stdout:
            raise RuntimeError(f"dummy plugins not listed by trainhooks plugins:\n{check.stdout[-2000:]}{check.stderr}")
        for _ in range(repeats):
            for name, (args, env) in cases.items():
                results[name].append(_run_fresh(args, env))
        return results
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def workloads(names: Sequence[str]) -> list[Workload]:
    return [WORKLOADS[n] for n in names]


def loops(keys: Sequence[str]) -> list[Loop]:
    return [LOOPS_BY_KEY[k] for k in keys]
