"""trainhooks against the plain PyTorch loop, Lightning and Ignite: ``python benchmarks/run.py``.

Runs every loop of :mod:`benchmarks.loops` on the workloads of :mod:`benchmarks.workloads`
(lock-step, see :func:`benchmarks.measure.lockstep`), then peak RSS per loop, dispatch
micro-benchmarks, time to first step and ``trainhooks plugins`` start-up with 50 dummy plugins,
prints the tables and writes ``benchmarks/RESULTS.md``. Lightning and Ignite are optional
(``pip install -e '.[bench]'``); missing ones are reported as skipped.

``--quick`` is a smoke run (a few seconds, loops in threads of one process, no fresh processes):
it checks that everything works, not how fast it is.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` and the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import measure, report
from benchmarks.loops import LOOPS, LOOPS_BY_KEY
from benchmarks.measure import Timing
from benchmarks.workloads import WORKLOADS

DEFAULT_OUT = Path(__file__).resolve().parent / "RESULTS.md"
ROUNDS = {"tiny": 60, "small": 40}
STOLEN_LIMIT = 0.05
"""A run that lost more of its CPU time than this to the hypervisor is marked as disturbed."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="benchmarks/run.py", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 rounds of tiny, loops in threads")
    parser.add_argument("--rounds", type=int, help="measured epochs per loop (default: tiny 40, small 15)")
    parser.add_argument("--workloads", default="tiny,small", help="comma-separated: tiny, small")
    parser.add_argument("--loops", help=f"comma-separated subset of: {', '.join(LOOPS_BY_KEY)}")
    parser.add_argument("--no-peers", action="store_true", help="leave out Lightning and Ignite even if installed")
    parser.add_argument(
        "--no-processes",
        action="store_true",
        help="run the loops in threads of one process (one torch thread only), skip peak RSS, first step, start-up",
    )
    parser.add_argument("--repeats", type=int, help="fresh-process repetitions (default 5; --quick: 1)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="Markdown file to write (default: %(default)s)")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    if args.quick:
        args.no_processes = True
        args.rounds = args.rounds or 2
        if args.workloads == "tiny,small":
            args.workloads = "tiny"
    return args


def _notes(all_results: dict[str, dict[str, Timing]], disturbed: bool, quick: bool) -> list[str]:
    notes = ["### Notes", ""]
    for name, results in all_results.items():
        floors = []
        for control, ref in (("control-dl", "plain-dl"), ("control-fast", "plain-fast")):
            c, r = results.get(control), results.get(ref)
            if c and r and c.whole and r.whole:
                floors.append(f"{c.ratio(r):.3f} ({c.data_path})")
        if floors:
            notes.append(
                f"- Noise floor on `{name}`: the A/A controls (the plain loops measured a second time, ideally "
                f"1.000) came out at {' and '.join(floors)}; a ratio that close to a limit is not resolved."
            )
    if quick:
        notes.append("- **`--quick` smoke run: too few rounds for the numbers to mean anything.**")
    if disturbed:
        notes.append(
            "- The machine was busy (load average above 1 per core before or after the run, or more than "
            f"{STOLEN_LIMIT:.0%} of the CPU time stolen by the hypervisor): "
            "absolute times are inflated and noisier; ratios within a round remain comparable."
        )
    tiny, small = all_results.get("tiny"), all_results.get("small")
    if tiny and small:
        for key, ref in (("th-bare-dl", "plain-dl"), ("th-bare", "plain-fast"), ("th-noop-dl", "plain-dl")):
            t, r, s = tiny.get(key), tiny.get(ref), small.get(ref)
            if t and r and s and t.whole and r.whole and s.whole:
                extra = t.low - r.low  # best epochs: the least disturbed estimate of a fixed cost
                notes.append(
                    f"- Cross-check: {t.label} ({t.data_path}) costs {extra:.1f} µs/step more than the plain loop on "
                    f"`tiny` (best epochs); the same fixed cost is {100 * extra / s.low:.1f}% of a `small` step."
                )
    for name, results in all_results.items():
        for key in ("th-default-dl", "th-default"):
            t = results.get(key)
            if t and t.whole and t.steps:
                per_epoch_ms = (t.median - t.steps_median) * WORKLOADS[name].steps_per_epoch() / 1000
                notes.append(
                    f"- `{name}`, {t.label} ({t.data_path}): per-epoch work outside the steps (checkpoint, "
                    f"CSV row, end-of-epoch hooks) took {per_epoch_ms:.1f} ms per epoch (median)."
                )
    for name, results in all_results.items():
        bare = results.get("th-bare")
        for key in ("th-mlflow", "th-wandb"):
            t = results.get(key)
            if t and bare and t.whole and bare.whole and t.steps:
                steps = WORKLOADS[name].steps_per_epoch()
                over_bare_ms = (t.median - bare.median) * steps / 1000
                outside_ms = (t.median - t.steps_median) * steps / 1000
                notes.append(
                    f"- `{name}`, tracker cost: {t.label} takes {over_bare_ms:.1f} ms per epoch more than "
                    f"trainhooks without plugins (medians of whole epochs); its end-of-epoch work (logging the "
                    f"epoch's metrics to the local store) {outside_ms:.1f} ms per epoch. Opening and closing the "
                    "run (MLflow's database migrations, W&B's service start) is per run, not counted here."
                )
    notes += [
        "- *Whole epochs* is the headline number. The default plugin set saves `weights/last.pt` "
        "every epoch, atomically and crash-safe (temporary file, fsync, rename, directory fsync): "
        "about 1-3 ms per epoch on this disk, independent of the step time. Its share depends on "
        "how long an epoch is; *steps only* shows what the default plugins cost per step.",
        "- `pre-batched` is a lower bound no real training loop reaches: the same batches every "
        "epoch, never reshuffled. The fast path reshuffles and slices each epoch like the DataLoader.",
    ]
    return notes


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.time()
    ticks_at_start = report.cpu_ticks()
    say = print if not args.quick else (lambda *a, **k: None)
    env = report.environment()
    wanted = [k.strip() for k in args.loops.split(",")] if args.loops else [loop.key for loop in LOOPS]
    unknown = [k for k in wanted if k not in LOOPS_BY_KEY]
    if unknown:
        raise SystemExit(f"unknown loops: {', '.join(unknown)}; known: {', '.join(LOOPS_BY_KEY)}")
    loops = [LOOPS_BY_KEY[k] for k in wanted]
    if args.no_peers:
        loops = [loop for loop in loops if loop.requires is None]
    names = [w.strip() for w in args.workloads.split(",") if w.strip()]
    for name in names:
        if name not in WORKLOADS:
            raise SystemExit(f"unknown workload {name!r}; known: {', '.join(WORKLOADS)}")

    all_results: dict[str, dict[str, Timing]] = {}
    for name in names:
        wl = WORKLOADS[name]
        rounds = args.rounds or ROUNDS[name]
        here = [loop for loop in loops if name in loop.workloads]
        say(f"[{time.time() - started:5.0f}s] {name}: {len(here)} loops x {rounds} rounds ...", flush=True)
        all_results[name] = measure.lockstep(
            here, wl, rounds=rounds, isolate=not args.no_processes, progress=lambda m: None
        )

    micro = None
    first_step = None
    startup = None
    repeats = args.repeats or (1 if args.quick else 5)
    if not args.no_processes:
        say(f"[{time.time() - started:5.0f}s] dispatch micro-benchmarks ...", flush=True)
        micro = measure_micro()
        say(f"[{time.time() - started:5.0f}s] time to first step ...", flush=True)
        first_step = measure.time_to_first_step(max(1, min(repeats, 4)), peers=not args.no_peers)
        say(f"[{time.time() - started:5.0f}s] start-up with 50 dummy plugins ...", flush=True)
        startup = measure.startup_times(repeats)
    elif not args.quick:
        micro = measure_micro()

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    start_load = float(env["load average at start"].split(",")[0])
    env["load average at end"] = f"{load:.2f}"
    env["wall time of the run"] = f"{time.time() - started:.0f} s"
    stolen = report.stolen_share(ticks_at_start, report.cpu_ticks())
    env["CPU time stolen by the hypervisor"] = "unknown" if stolen is None else f"{stolen:.1%}"
    cores = os.cpu_count() or 1
    disturbed = max(load, start_load) > cores or (stolen is not None and stolen > STOLEN_LIMIT)
    command = "python benchmarks/run.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = report.render(
        env,
        all_results,
        micro,
        first_step,
        startup,
        _notes(all_results, disturbed, args.quick),
        command.strip(),
        isolated=not args.no_processes,
    )
    print(text)
    if not args.no_write:
        args.out.write_text(text, encoding="utf-8")
        say(f"wrote {args.out}")
    return 0


def measure_micro() -> list[tuple[str, float]]:
    from benchmarks.micro import dispatch_costs

    return dispatch_costs()


def quick_results() -> dict[str, Any]:
    """Importable smoke run for the test suite: tiny, 1 round, no peers, nothing written."""
    loops = [loop for loop in LOOPS if loop.requires is None and "tiny" in loop.workloads]
    results = measure.lockstep(loops, WORKLOADS["tiny"], rounds=1)
    return {"tiny": results}


if __name__ == "__main__":
    raise SystemExit(main())
