"""``progress``: a live progress bar per epoch and one summary line per epoch.

Default on. The bar (tqdm) shows the running training loss; it is drawn only when standard
output is a terminal, and never under ``--quiet`` (``Trainer(verbose=False)``). The summary line
is printed either way (unless quiet), so logs of batch jobs stay readable::

    Epoch 3/10  train/loss 0.2101  val/loss 0.1893  val/acc 0.9472  lr 0.000905  (0.3s)

The loss shown on the bar is read at most ``refresh`` times per second: reading a tensor's value
synchronises with the GPU, which a progress bar must not do on every step.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

import trainhooks


def format_metrics(metrics: dict[str, float]) -> str:
    """``train/loss 0.2101  val/loss 0.1893  val/acc 0.9472  lr 0.000905``: train, val, then the rest."""
    order = sorted(metrics, key=lambda k: 0 if k.startswith("train/") else 1 if k.startswith("val/") else 2)
    parts = []
    for key in order:
        value = metrics[key]
        parts.append(f"{key} {value:.4g}" if abs(value) < 1e-3 and value != 0 else f"{key} {value:.4f}")
    return "  ".join(parts)


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
        bar.update(1)
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
        line = f"Epoch {trainer.epoch + 1}/{trainer.epochs}  {format_metrics(trainer.metrics)}  ({took:.2f}s)"
        print(line, file=self._out(), flush=True)

    def teardown(self, trainer: trainhooks.Trainer) -> None:
        self._close()

    def _close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
