"""``progress``: a live progress bar per epoch and one summary line per epoch.

Default on. The bar (tqdm) shows the running training loss; it is drawn only when standard
output is a terminal, and never under ``--quiet`` (``Trainer(verbose=False)``). The summary line
is printed either way (unless quiet), so logs of batch jobs stay readable::

    Epoch 3/10  train/loss 0.2101  val/loss 0.1893  val/acc 0.9472  lr 9.05e-04  (0.30s)

An epoch a stop or a signal cut short says so: ``Epoch 4/10 (cut short after batch 17 of 45)``.

The loss shown on the bar is read at most ``refresh`` times per second: reading a tensor's value
synchronises with the GPU, which a progress bar must not do on every step.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

import trainhooks


def format_value(key: str, value: float) -> str:
    """One format per kind, so columns line up from epoch to epoch.

    Learning rates (``lr``, ``lr/pg0``) always in scientific notation with three significant
    digits (``5.00e-03``, ``4.78e-04``): schedules span orders of magnitude, and ``0.0050`` next
    to ``0.0004775`` and ``3.078e-05`` is three formats for one column. Other metrics: four
    decimals, or four significant digits once they are too small for those to show anything.
    """
    if key == "lr" or key.startswith("lr/"):
        return f"{value:.2e}"
    if value != 0 and abs(value) < 1e-3:
        return f"{value:.3e}"
    return f"{value:.4f}"


def format_metrics(metrics: dict[str, float]) -> str:
    """``train/loss 0.2101  val/loss 0.1893  val/acc 0.9472  lr 9.05e-04``: train, val, then the rest."""
    order = sorted(metrics, key=lambda k: 0 if k.startswith("train/") else 1 if k.startswith("val/") else 2)
    return "  ".join(f"{key} {format_value(key, metrics[key])}" for key in order)


class Progress(trainhooks.Callback):
    """Progress bars and per-epoch summary lines on standard output."""

    rank_zero_only = True

    def __init__(self, stream: TextIO | None = None, bar: bool | None = None, refresh: float = 4.0) -> None:
        self.stream = stream
        self.bar_wanted = bar
        self.refresh = refresh
        self._bar: Any = None
        self._epoch_started = 0.0
        self._last_postfix = 0.0

    def _out(self) -> TextIO:
        return self.stream or sys.stdout

    def _use_bar(self, trainer: trainhooks.Trainer) -> bool:
        if not trainer.verbose:
            return False
        if self.bar_wanted is not None:
            return self.bar_wanted
        out = self._out()
        return bool(getattr(out, "isatty", lambda: False)())

    def on_train_epoch_start(self, trainer: trainhooks.Trainer) -> None:
        self._epoch_started = time.perf_counter()
        if self._use_bar(trainer):
            from tqdm.auto import tqdm

            self._bar = tqdm(
                total=trainer.num_train_batches,
                desc=f"Epoch {trainer.epoch + 1}/{trainer.epochs}",
                file=self._out(),
                leave=False,
                dynamic_ncols=True,
                unit="batch",
            )

    def on_train_batch_end(self, trainer: trainhooks.Trainer, outputs: dict[str, Any]) -> None:
        bar = self._bar
        if bar is None:
            return
        # Up to the batch just trained: under gradient accumulation this hook fires once per
        # optimizer step (N batches), and a resumed epoch starts where its checkpoint was taken.
        bar.update(trainer.batch_idx + 1 - bar.n)
        now = time.perf_counter()
        if now - self._last_postfix >= 1.0 / self.refresh:
            self._last_postfix = now
            bar.set_postfix_str(f"loss {float(outputs['loss'].item()):.4f}", refresh=False)

    def on_train_epoch_end(self, trainer: trainhooks.Trainer) -> None:
        self._close()

    def on_fit_epoch_end(self, trainer: trainhooks.Trainer) -> None:
        if not trainer.verbose:
            return
        took = time.perf_counter() - self._epoch_started
        head = f"Epoch {trainer.epoch + 1}/{trainer.epochs}"
        done, total = trainer.batch_idx + 1, trainer.num_train_batches
        if not trainer.epoch_completed and (total is None or done < total):
            # Stopped (or interrupted) mid-epoch: the metrics cover only the batches trained.
            head += f" (cut short after batch {done}{f' of {total}' if total else ''})"
        line = f"{head}  {format_metrics(trainer.metrics)}  ({took:.2f}s)"
        print(line, file=self._out(), flush=True)

    def teardown(self, trainer: trainhooks.Trainer) -> None:
        self._close()

    def _close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
