"""What each piece of the engine's per-step work costs, timed in one process.

``run.py`` measures whole loops, each in its own process; this script answers the next
question, *which part* of the engine's work on a step makes the difference. It trains the
same model several times side by side in one process, each variant being the plain
hand-written loop plus one piece of the engine's per-step work, taken from the engine itself:

* ``preamble``: the batch preamble every trainhooks loop shares (``loops.prepared``: device,
  example input, batch-start hook);
* ``step``: the training step function (``step.training_step``) and its outputs dict;
* ``keep``: each step's detached loss kept for the epoch, reduced at the epoch's end
  (``strategy.local_train_loss``) into the exact size-weighted ``train/loss``;
* ``size``: each batch's sample count (``batches.batch_size``), the weights of that mean;
* ``item``: for comparison only, what trainhooks does *not* do: read every loss as a float
  per step (a device sync on an accelerator);
* ``all``: preamble, step, keep and size together;
* ``trainhooks``: a real ``Trainer`` with no plugins, timed from ``on_train_epoch_start`` to
  ``on_train_epoch_end`` (its steps and the epoch's loss reduction).

One round is one epoch of every variant, in an order shuffled every round; the reported ratio
is the median over rounds of each variant's epoch time divided by the plain loop's epoch time
of the same round, so a disturbance that slows a whole round cancels out. Usage::

    python benchmarks/pieces.py                 # tiny, trainhooks' fast data path, 200 rounds
    python benchmarks/pieces.py --data dataloader --rounds 400
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch
from torch import nn

from benchmarks.loops import make_trainer
from benchmarks.workloads import WORKLOADS, Workload

PIECES = ("preamble", "step", "keep", "size", "item")
VARIANTS = ("plain", *PIECES, "all")
ALL = frozenset({"preamble", "step", "keep", "size"})


def _data(wl: Workload, fast: bool) -> Iterable[Any]:
    from trainhooks.data import fast_batches

    loader = wl.loader()
    return fast_batches(loader) if fast else loader


def variant_epoch(wl: Workload, pieces: frozenset[str], fast: bool, save_dir: str) -> Callable[[], None]:
    """One epoch of the plain loop plus ``pieces``, as a function to call once per round."""
    from trainhooks.batches import batch_size
    from trainhooks.loops import prepared
    from trainhooks.step import training_step
    from trainhooks.strategy import local_train_loss

    trainer = make_trainer(wl, 1, "none", fast, [], save_dir)  # the engine's pieces need one; never fitted
    model, optimizer, loss_fn, data = trainer.model, trainer.optimizer, nn.CrossEntropyLoss(), _data(wl, fast)
    step = training_step(trainer)
    keep, size, item = "keep" in pieces, "size" in pieces, "item" in pieces
    n, full = len(wl.loader().dataset), wl.batch_size  # type: ignore[arg-type]
    known_sizes = [full] * (n // full) + ([n % full] if n % full else [])  # ``keep`` without ``size``
    model.train()

    def epoch() -> None:
        losses: list[torch.Tensor] = []
        sizes: list[int] = []
        total = 0.0
        batches: Iterable[tuple[int, Any]] = enumerate(data)
        if "preamble" in pieces:
            batches = prepared(trainer, batches, "on_train_batch_start", training=True)
        for _, batch in batches:
            optimizer.zero_grad(set_to_none=True)
            if "step" in pieces:
                outputs = step(batch)
                loss = outputs["loss"]
            else:
                x, y = batch
                loss = loss_fn(model(x), y)
            loss.backward()
            optimizer.step()
            if keep:
                losses.append(loss.detach())
            if size:
                sizes.append(batch_size(batch))
            if item:
                total += loss.item() * batch_size(batch)
        if keep:
            local_train_loss(losses, sizes or known_sizes)

    return epoch


class _EngineRounds:
    """A real Trainer's epochs, each timed between its epoch-start and epoch-end hooks.

    The other variants' epochs of the round run inside those two hooks (before the stamp, or
    after it), so the fit advances one epoch per round like every other variant.
    """

    def __init__(
        self, wl: Workload, fast: bool, rounds: int, others: dict[str, Callable[[], None]], seed: int, save_dir: str
    ) -> None:
        import trainhooks

        self.wl, self.fast, self.others, self.rng = wl, fast, others, random.Random(seed)
        self.times: dict[str, list[float]] = {k: [] for k in ("trainhooks", *others)}
        self.after: list[str] = []
        self.started = 0.0
        rounds_ = self

        class Stamp:
            @trainhooks.hookimpl(trylast=True)
            def on_train_epoch_start(self) -> None:
                order = list(rounds_.others)
                rounds_.rng.shuffle(order)
                cut = rounds_.rng.randrange(len(order) + 1)
                rounds_.run(order[:cut])
                rounds_.after = order[cut:]
                rounds_.started = time.perf_counter()

            @trainhooks.hookimpl(tryfirst=True)
            def on_train_epoch_end(self) -> None:
                rounds_.times["trainhooks"].append(time.perf_counter() - rounds_.started)
                rounds_.run(rounds_.after)

        self.trainer = make_trainer(wl, rounds + 1, "none", fast, [Stamp()], save_dir)  # +1: the warm-up

    def run(self, keys: list[str]) -> None:
        for key in keys:
            started = time.perf_counter()
            self.others[key]()
            self.times[key].append(time.perf_counter() - started)

    def fit(self) -> dict[str, list[float]]:
        self.trainer.fit(self.wl.loader())
        return {k: v[1:] for k, v in self.times.items()}  # the first round warms up


def measure(workload: str = "tiny", data: str = "fast", rounds: int = 200, seed: int = 0) -> dict[str, list[float]]:
    """Epoch times (seconds) of every variant, ``rounds`` rounds after one warm-up round."""
    wl = WORKLOADS[workload]
    wl.apply_threads()
    fast = data == "fast"
    with tempfile.TemporaryDirectory(prefix="trainhooks-pieces-") as tmp:
        others = {v: variant_epoch(wl, ALL if v == "all" else frozenset({v} - {"plain"}), fast, tmp) for v in VARIANTS}
        return _EngineRounds(wl, fast, rounds, others, seed, tmp).fit()


def table(times: dict[str, list[float]], steps: int) -> str:
    """A markdown table: per variant, µs/step (median) and the median per-round ratio to plain."""
    plain = times["plain"]
    lines = [
        "| variant | µs/step (median) | ratio to plain (median of rounds) | cost, µs/step |",
        "|---|---|---|---|",
    ]
    base = statistics.median(plain) / steps * 1e6
    for key, values in times.items():
        ratio = statistics.median(v / p for v, p in zip(values, plain))
        us = statistics.median(values) / steps * 1e6
        lines.append(f"| {key} | {us:.1f} | {ratio:.3f} | {(ratio - 1) * base:+.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workload", choices=sorted(WORKLOADS), default="tiny")
    parser.add_argument("--data", choices=("fast", "dataloader"), default="fast")
    parser.add_argument("--rounds", type=int, default=200, help="epochs of every variant (default 200)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the per-round order")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error(f"--rounds must be at least 1, got {args.rounds}")
    times = measure(args.workload, args.data, args.rounds, args.seed)
    steps = len(WORKLOADS[args.workload].loader())
    print(
        f"{args.workload}, {args.data} data, {args.rounds} rounds, {steps} steps per epoch, torch {torch.__version__}"
    )
    print(table(times, steps))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
