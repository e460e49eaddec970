"""The metric log: current metrics, the per-epoch history, and the rules for when a value counts.

``trainer.metrics`` holds the latest value of every metric of the current epoch;
``trainer.history`` holds one row per finished epoch. Three rules keep every reader (the
monitors, ``metrics.csv``, TensorBoard, the trackers) seeing the same numbers:

* **No device sync per step.** A tensor logged while the batch loop runs is kept as a tensor
  and converted once, when the epoch's training ends (:meth:`MetricLog.flush`); elsewhere it is
  converted at once.
* **A row is closed when ``on_fit_epoch_end`` returns.** The epoch's row is made before
  ``on_fit_epoch_end`` fires, and a value logged during that hook, by any plugin in any order,
  joins it. Then the row is closed and handed to ``on_log(..., epoch_end=True)``, which is where
  loggers write it: a logger never has to rewrite a row it wrote. A value logged after that
  (``should_stop``, ``on_train_end``) stays in ``trainer.metrics`` and joins the next epoch's row.
* **No value carried over.** A new epoch starts without the values the previous row recorded,
  so each row holds what its epoch produced (earlier epochs are in the history).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from trainhooks import metric_values
from trainhooks.errors import ConfigError

if TYPE_CHECKING:
    from trainhooks.plugin_manager import PluginManager


class MetricLog:
    """Current metrics, history, and the values logged inside the batch loop (still tensors)."""

    def __init__(self, plugin_manager: PluginManager) -> None:
        self._plugin_manager = plugin_manager
        self.current: metric_values.MetricDict = metric_values.MetricDict()
        self.history: list[dict[str, float]] = []
        self.in_batch_loop = False
        self._pending: dict[str, torch.Tensor] = {}
        # Every value logged in the batch loop since the last per-step ``on_log`` (tensors as
        # logged, numbers as floats), for that hook to send each value once (see :meth:`take_logged`).
        self._since_step_log: dict[str, float | torch.Tensor] = {}
        self._loggers: dict[str, str | None] = {}  # metric name -> plugin that logged it (warnings)
        self._warned: set[str] = set()
        self._open_row: dict[str, float] | None = None

    # -------------------------------------------------------------- writing
    def log(self, name: str, value: float | torch.Tensor) -> None:
        """See :meth:`trainhooks.Trainer.log_metric`."""
        if not isinstance(name, str) or not name:
            raise ConfigError(f"metric name must be a non-empty string, got {name!r}")
        if isinstance(value, torch.Tensor):
            if value.numel() != 1:
                raise ConfigError(f"metric {name!r} must be a scalar, got a tensor of shape {tuple(value.shape)}")
            if self.in_batch_loop:
                self._pending[name] = self._since_step_log[name] = value.detach()
                if name not in self._loggers:  # once per name: who logs it, for warnings
                    self._loggers[name] = metric_values.logging_plugin(self._plugin_manager)
                return
            value = value.item()
        number = metric_values.check_number(name, value)  # one rule: numbers only (not "1e3", None)
        metric_values.warn_non_finite(name, number, self._plugin_manager, self._warned, stacklevel=5)
        self._pending.pop(name, None)
        self.current[name] = number
        if self.in_batch_loop:
            self._since_step_log[name] = number
        if self._open_row is not None:  # logged during on_fit_epoch_end: joins the epoch's row
            self._open_row[name] = number

    def set_current(self, values: Any) -> None:
        """``trainer.metrics = ...``: replace the current metrics (each value checked)."""
        self.current = values if isinstance(values, metric_values.MetricDict) else metric_values.as_metric_dict(values)

    def flush(self) -> None:
        """Convert the tensors logged in the batch loop (one sync per epoch)."""
        for name, value in self._pending.items():
            number = float(value.item())
            metric_values.warn_non_finite(name, number, None, self._warned, plugin=self._loggers.get(name))
            self.current[name] = number
        self._pending.clear()
        self._since_step_log.clear()

    def take_logged(self) -> dict[str, float]:
        """Every value logged in the batch loop since the last call, as floats; then forgets them.

        For the per-step ``on_log``: each value reaches it once, numbers and tensors alike (the
        tensors are converted here, only at the steps that log). The same tensors stay pending
        for the epoch-end conversion of ``trainer.metrics``.
        """
        logged, self._since_step_log = self._since_step_log, {}
        return {k: float(v.item()) if isinstance(v, torch.Tensor) else float(v) for k, v in logged.items()}

    # -------------------------------------------------------------- the epoch's row
    def start_epoch(self) -> None:
        """Drop what the previous row recorded; values logged since (before this epoch) stay."""
        self._open_row = None
        recorded = self.history[-1] if self.history else {}
        self.current = metric_values.MetricDict({k: v for k, v in self.current.items() if k not in recorded})

    def open_row(self) -> dict[str, float]:
        """Make this epoch's history row from the current metrics; it stays open (see module doc)."""
        self._open_row = dict(self.current)
        self.history.append(self._open_row)
        return self._open_row

    def close_row(self) -> dict[str, float] | None:
        """Close this epoch's row (after ``on_fit_epoch_end``); returns it."""
        row, self._open_row = self._open_row, None
        return row

    def reset(self) -> None:
        """A fresh run: no metrics, no history."""
        self.set_current({})
        self.history = []
        self._open_row = None
        self._pending.clear()
        self._since_step_log.clear()


__all__ = ["MetricLog"]
