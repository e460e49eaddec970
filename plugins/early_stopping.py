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
from trainhooks.monitor import Monitor, logged_earlier


class EarlyStopping(trainhooks.Callback):
    """Stop training when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs."""

    default_enabled = False

    def __init__(
        self,
        monitor: str | None = None,
        patience: int | None = None,
        mode: str | None = None,
        min_delta: float | None = None,
        stop_at: float | None = None,
    ) -> None:
        self._given: dict[str, Any] = {
            "es_monitor": monitor,
            "patience": patience,
            "es_mode": mode,
            "min_delta": min_delta,
            "stop_at": stop_at,
        }
        self.monitor = Monitor(monitor or "val/loss", mode or "auto", min_delta or 0.0)
        self.patience = patience if patience is not None else 5
        self.stop_at = stop_at
        self.wait = 0
        self.reason: str | None = None
        self._check(self.patience)

    @staticmethod
    def _check(patience: int) -> None:
        # 0 is accepted, as Keras and Lightning do: like 1, it stops at the first epoch without
        # improvement.
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 0:
            raise trainhooks.ConfigError(f"early_stopping: patience must be an integer >= 0, got {patience!r}")

    def add_options(self, parser: Any) -> None:
        parser.add_option("--patience", type=int, default=5, help="epochs without improvement before stopping")
        parser.add_option("--es-monitor", default="val/loss", help="metric early stopping watches")
        parser.add_option(
            "--es-mode", default="auto", choices=["auto", "min", "max"], help="minimise or maximise the metric"
        )
        parser.add_option("--min-delta", type=float, default=0.0, help="smallest change that counts as an improvement")
        parser.add_option("--stop-at", type=float, default=None, help="stop as soon as the metric reaches this value")

    def configure(self, trainer: trainhooks.Trainer) -> None:
        opts = {k: (v if v is not None else trainer.options.get(k)) for k, v in self._given.items()}
        self.monitor = Monitor(opts["es_monitor"] or "val/loss", opts["es_mode"] or "auto", opts["min_delta"] or 0.0)
        self.patience = int(opts["patience"] if opts["patience"] is not None else 5)
        self._check(self.patience)
        self.stop_at = opts["stop_at"]

    def on_fit_epoch_end(self, trainer: trainhooks.Trainer) -> None:
        # Decide here, once per epoch with the epoch's validation metrics; should_stop reports it.
        if not trainer.epoch_completed:
            return  # an epoch cut short is finished after a resume: count it then
        if self.monitor.metric not in trainer.metrics and logged_earlier(trainer, self.monitor.metric):
            return  # a metric logged every few epochs: only the epochs that log it count
        value = self.monitor.read(trainer.metrics, "early_stopping")
        name = self.monitor.metric
        self.wait = 0 if self.monitor.update(value, trainer.epoch) else self.wait + 1
        if self.stop_at is not None:
            reached = value <= self.stop_at if self.monitor.mode == "min" else value >= self.stop_at
            if reached:
                self.reason = f"{name} reached {value:.6g} (stop_at {self.stop_at:g}) at epoch {trainer.epoch + 1}"
                return
        if self.wait and self.wait >= self.patience:
            best = self.monitor.best
            best_txt = f"{best:.6g}" if best is not None else "nan"
            self.reason = (
                f"{name} did not improve for {self.wait} epochs (patience {self.patience}); "
                f"best {best_txt} at epoch {(self.monitor.best_epoch or 0) + 1}"
            )

    def should_stop(self, trainer: trainhooks.Trainer) -> str | None:
        return self.reason

    def state_dict(self) -> dict[str, Any]:
        return {"wait": self.wait, "monitor": self.monitor.state_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.wait = int(state_dict.get("wait", 0))
        self.monitor.load_state_dict(state_dict.get("monitor", {}))
