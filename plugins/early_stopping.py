"""``early_stopping``: stop when a monitored metric stops improving, or reaches a target.

Opt-in: ``trainhooks fit -p early_stopping --patience 5`` or, from Python,
``Trainer(..., plugins=[EarlyStopping(monitor="val/acc", patience=5)])``.

Semantics are Keras'/Lightning's: after each epoch (``should_stop`` at epoch end) the
``monitor`` metric is compared with the best so far; an improvement must be larger than
``min_delta``; after ``patience`` epochs without one, training stops with a reason naming the
metric, the best value and its epoch. ``stop_at`` stops as soon as the metric reaches a threshold
(``<=`` in min mode, ``>=`` in max mode; Lightning's ``stopping_threshold``). Each epoch, in order:

1. ``check_finite`` (on; Lightning's): a NaN or infinite value stops at once, naming it. (Keras
   has no such check: NaN never improves, so it only counts towards ``patience``; turn
   ``check_finite`` off for that.) It applies during ``start_from_epoch`` too: a broken run is
   not a warm-up.
2. ``start_from_epoch`` (Keras'): the first N epochs neither count nor set the best value.
3. ``divergence_threshold`` (Lightning's): a value worse than it (``>`` in min mode, ``<`` in max
   mode) stops at once: the run has diverged, waiting for patience is pointless.
4. ``stop_at``, then the improvement test. With ``baseline`` (Keras'), the counter restarts only
   on epochs that improve on the best value *and* beat the baseline, so a run that never beats
   it stops after ``patience`` epochs; an epoch that improves never stops training.

Differences: ``mode="auto"`` infers min/max from the metric's name; the counter and best value
are saved in checkpoints, so a resumed run continues counting where it left off.
"""

from __future__ import annotations

import math
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
    check_finite = Option(bool, True, "stop when the metric is NaN or infinite", flag="es-check-finite")
    divergence_threshold = Option(
        float, None, "stop at once when the metric is worse than this", flag="es-divergence-threshold"
    )
    baseline = Option(float, None, "a value the metric must beat: patience runs until it does", flag="es-baseline")
    start_from_epoch = Option(
        int, 0, "epochs of warm-up before the metric is watched", min=0, flag="es-start-from-epoch"
    )

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
        name, epoch = watch.metric, trainer.epoch
        if self.check_finite and not math.isfinite(value):
            self.reason = (
                f"{name} is {value} at epoch {epoch + 1}, not a finite number ({self._best_text(watch)}); "
                "check_finite stops here"
            )
            return
        if epoch < self.start_from_epoch:
            return  # warm-up (Keras' start_from_epoch): not counted, not a best value
        threshold = self.divergence_threshold
        if threshold is not None and (value > threshold if watch.mode == "min" else value < threshold):
            self.reason = (
                f"{name} {value:.6g} is worse than divergence_threshold {threshold:g} at epoch {epoch + 1}; "
                f"{self._best_text(watch)}"
            )
            return
        improved = watch.update(value, epoch)
        if self.stop_at is not None:
            reached = value <= self.stop_at if watch.mode == "min" else value >= self.stop_at
            if reached:
                self.reason = f"{name} reached {value:.6g} (stop_at {self.stop_at:g}) at epoch {epoch + 1}"
                return
        # Keras' counting: every watched epoch counts; one that improves restarts the count
        # if it also beats the baseline, and never stops training itself.
        self.wait += 1
        if improved:
            if self.baseline is None or self._beats(watch, value, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience:
            if self.baseline is not None and not self._beats(watch, watch.best, self.baseline):
                why = f"did not beat baseline {self.baseline:g} in {self.wait} epochs (patience {self.patience})"
            else:
                why = f"did not improve for {self.wait} epochs (patience {self.patience})"
            self.reason = f"{name} {why}; {self._best_text(watch)}"

    @staticmethod
    def _best_text(watch: Monitor) -> str:
        if watch.best is None:
            return "no best value yet"
        return f"best {watch.best:.6g} at epoch {(watch.best_epoch or 0) + 1}"

    @staticmethod
    def _beats(watch: Monitor, value: float | None, reference: float) -> bool:
        """``value`` better than ``reference`` by more than ``min_delta`` (Keras' baseline test)."""
        if value is None or math.isnan(value):
            return False
        if watch.mode == "min":
            return value < reference - watch.min_delta
        return value > reference + watch.min_delta

    def should_stop(self, trainer: trainhooks.Trainer) -> str | None:
        return self.reason

    def state_dict(self) -> dict[str, Any]:
        return {"wait": self.wait, "monitor": self.monitor.state_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.wait = int(state_dict.get("wait", 0))
        self.monitor.load_state_dict(state_dict.get("monitor", {}))
