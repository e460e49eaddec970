"""Measurement: interleaved repetitions in one process, and fresh processes for memory and start-up.

Why this shape:

* The machine is shared and its speed drifts (other processes, frequency, caches). Running the
  loops in lock-step, one epoch each in turn (see :func:`lockstep`), makes neighbours in time
  of the epochs compared, and the median over rounds ignores the rounds a disturbance hit.
* Peak RSS only grows within a process, so each loop's peak is taken in a fresh process.
* Start-up costs (imports, plugin discovery) are paid once per process, so they are measured
  from fresh processes too, against ``python -c pass`` and ``import torch``.
"""

from __future__ import annotations

import gc
import json
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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

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
    """The baton one loop's thread holds while it runs an epoch (see :func:`lockstep`)."""

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

    def run_epoch(self) -> None:  # called by the scheduler
        self.back.clear()
        self.go.set()
        self.back.wait()


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
    progress: Callable[[str], None] = lambda s: None,
) -> dict[str, Timing]:
    """Train with every loop at once, one epoch each in turn: A B C, C A B, B C A ...

    Each loop runs in its own thread, blocked except during its turn, so only one trains at a
    time (torch's intra-op threads are the workload's). A round is one epoch of every loop, run
    back to back, so the loops of a round see the same machine; the first ``warmup`` epochs of
    each loop are not counted. Set-up (model, Trainer) happens before the first turn and is not
    timed. The order is shuffled every round (seeded): a loop that leaves work behind (garbage,
    dirty pages) would otherwise always slow down the same neighbour.
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
        return _lockstep(runnable, results, wl, rounds, warmup, progress)


def _lockstep(
    runnable: Sequence[Loop],
    results: dict[str, Timing],
    wl: Workload,
    rounds: int,
    warmup: int,
    progress: Callable[[str], None],
) -> dict[str, Timing]:
    wl.apply_threads()
    gc.collect()
    total = warmup + rounds
    clocks: dict[str, EpochClock] = {}
    turns: dict[str, _Turn] = {}
    threads: list[threading.Thread] = []
    for loop in runnable:
        turn = _Turn()
        clock = EpochClock(turn=turn)

        def body(loop: Loop = loop, clock: EpochClock = clock, turn: _Turn = turn) -> None:
            try:
                loop.run(wl, total, clock)
            except BaseException as exc:
                turn.error = exc
                turn.finish()

        thread = threading.Thread(target=body, name=f"bench-{loop.key}", daemon=True)
        clocks[loop.key], turns[loop.key] = clock, turn
        thread.start()
        turn.back.wait()  # set-up done, waiting for its first epoch
        threads.append(thread)
    gc.collect()
    gc.freeze()  # set-up objects (Lightning's included) are never traversed by later collections
    order = list(runnable)
    shuffler = random.Random(0)
    try:
        for r in range(total):
            shuffler.shuffle(order)
            for loop in order:
                _settle()
                turn = turns[loop.key]
                if turn.finished:
                    raise RuntimeError(f"{loop.key} ended before epoch {r + 1}") from turn.error
                turn.run_epoch()
                if turn.error is not None:
                    raise RuntimeError(f"{loop.key} failed in epoch {r + 1}") from turn.error
            if r >= warmup:
                progress(f"{wl.name}: round {r + 1 - warmup}/{rounds}")
        for loop in runnable:  # let each finish (done() stamps the end of the last epoch)
            turn = turns[loop.key]
            if not turn.finished:
                turn.run_epoch()
            if turn.error is not None:
                raise RuntimeError(f"{loop.key} failed at the end") from turn.error
    finally:
        for loop in runnable:
            turns[loop.key].go.set()
        for thread in threads:
            thread.join(timeout=60)
        gc.unfreeze()
        wl.apply_threads()
    steps = wl.steps_per_epoch()
    for loop in runnable:
        for whole, inside in clocks[loop.key].per_epoch()[warmup:]:
            results[loop.key].whole.append(whole / steps * 1e6)
            results[loop.key].steps.append(inside / steps * 1e6)
    return results


# ---------------------------------------------------------------------- fresh processes
def _python_env(extra_path: Sequence[str] = ()) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAINHOOKS_")}
    parts = [str(ROOT), *extra_path]
    env["PYTHONPATH"] = os.pathsep.join(parts)
    return env


def peak_rss_mib(loop: Loop, wl: Workload, epochs: int = 2) -> float | None:
    """Peak resident memory of a fresh process that trains ``epochs`` epochs with ``loop``."""
    if loop.missing() or not os.path.exists("/proc/self/status"):
        return None
    code = textwrap.dedent(
        f"""
        import json
        from benchmarks.loops import LOOPS_BY_KEY, EpochClock
        from benchmarks.workloads import WORKLOADS
        wl = WORKLOADS[{wl.name!r}]
        wl.apply_threads()
        LOOPS_BY_KEY[{loop.key!r}].run(wl, {epochs}, EpochClock())
        # VmHWM: the peak of this process image. (ru_maxrss would report at least the parent's
        # size: Linux carries it over fork and exec.)
        with open("/proc/self/status") as fh:
            kib = next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:"))
        print(json.dumps(kib))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=_python_env(), cwd=ROOT, timeout=600
    )
    if proc.returncode != 0:
        raise RuntimeError(f"peak RSS run of {loop.key} failed:\n{proc.stderr[-2000:]}")
    kib = json.loads(proc.stdout.strip().splitlines()[-1])
    return float(kib) / 1024.0


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
    for _ in range(repeats):
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
