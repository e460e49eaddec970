"""``early_stopping``: stop when a monitored metric stops improving, or reaches a target.

Opt-in: ``trainhooks fit -p early_stopping --patience 5`` or, from Python,
``Trainer(..., plugins=[EarlyStopping(monitor="val/acc", patience=5)])``.

Semantics are Keras'/Lightning's: after each epoch (``should_stop`` at epoch end) the
``monitor`` metric is compared with the best so far; an improvement must be larger than
``min_delta``; after ``patience`` epochs without one, training stops with a reason naming the
metric, the best value and its epoch. ``stop_at`` stops as soon as the metric reaches a threshold
(``<=`` in min mode, ``>=`` in max mode). Differences: ``mode="auto"`` infers min/max from the
metric's name; the counter and best value are saved in checkpoints, so a resumed run continues
counting where it left off.
"""

from __future__ import annotations

from typing import Any

import trainhooks
from trainhooks import Monitor, Option


class EarlyStopping(trainhooks.Callback):
    """Stop training when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs.

    Several instances may run in one trainer (each on its own metric, with its own ``name=``);
    training stops at the first that asks.
    """

    default_enabled = False

    metric = Option(str, "val/loss", "metric early stopping watches", name="monitor", flag="es-monitor")
    # 0 is accepted, as Keras and Lightning do: like 1, it stops at the first epoch without
    # improvement.
    patience = Option(int, 5, "epochs without improvement before stopping", min=0)
    mode = Option(str, "auto", "minimise or maximise the metric", choices=("auto", "min", "max"), flag="es-mode")
    min_delta = Option(float, 0.0, "smallest change that counts as an improvement", min=0)
    stop_at = Option(float, None, "stop as soon as the metric reaches this value")

    wait = 0
    reason: str | None = None
    _watch: Monitor | None = None

    @property
    def monitor(self) -> Monitor:
        """The :class:`~trainhooks.Monitor` of ``monitor`` (rebuilt when its settings change)."""
        self._watch = Monitor.keep(self._watch, self.metric, self.mode, self.min_delta)
        return self._watch

    def on_fit_start(self, trainer: trainhooks.Trainer) -> None:
        # A new run: no best value, no count, no reason (a resume restores them afterwards).
        self.monitor.reset()
        self.wait = 0
        self.reason = None

    def on_fit_epoch_end(self, trainer: trainhooks.Trainer) -> None:
        # Decide here, once per epoch with the epoch's validation metrics; should_stop reports it.
        if not trainer.epoch_completed:
            return  # an epoch cut short is finished after a resume: count it then
        watch = self.monitor
        if watch.missing_now(trainer):
            return  # a metric logged every few epochs: only the epochs that log it count
        value = watch.read(trainer.metrics, "early_stopping")
        name = watch.metric
        self.wait = 0 if watch.update(value, trainer.epoch) else self.wait + 1
        if self.stop_at is not None:
            reached = value <= self.stop_at if watch.mode == "min" else value >= self.stop_at
            if reached:
                self.reason = f"{name} reached {value:.6g} (stop_at {self.stop_at:g}) at epoch {trainer.epoch + 1}"
                return
        if self.wait and self.wait >= self.patience:
            best = watch.best
            best_txt = f"{best:.6g}" if best is not None else "nan"
            self.reason = (
                f"{name} did not improve for {self.wait} epochs (patience {self.patience}); "
                f"best {best_txt} at epoch {(watch.best_epoch or 0) + 1}"
            )

    def should_stop(self, trainer: trainhooks.Trainer) -> str | None:
        return self.reason

    def state_dict(self) -> dict[str, Any]:
        return {"wait": self.wait, "monitor": self.monitor.state_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.wait = int(state_dict.get("wait", 0))
        self.monitor.load_state_dict(state_dict.get("monitor", {}))
