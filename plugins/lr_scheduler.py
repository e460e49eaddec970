"""``lr``: step the trainer's learning-rate scheduler at the right time, and log learning rates.

Default on. Works with any ``torch.optim.lr_scheduler``:

* ``ReduceLROnPlateau`` steps once per epoch with the monitored metric (``--lr-monitor``,
  default ``val/loss``), after validation;
* ``OneCycleLR`` and ``CyclicLR`` step after every optimizer step (they are defined per step);
* every other scheduler steps once per epoch, after validation.

``--lr-interval epoch|step`` overrides the choice. The engine records ``lr`` (first parameter
group, the rate used during the epoch); with several parameter groups this plugin also logs
``lr/pg0``, ``lr/pg1``, ... (also the rates used during the epoch). It steps before the checkpoint plugin saves, so a checkpoint holds
the scheduler state of the next epoch and a resumed run continues with the right rate.
"""

from __future__ import annotations

import warnings
from typing import Any

import trainhooks
from trainhooks import Option
from trainhooks.monitor import logged_earlier, mode_from_name

PER_STEP = ("OneCycleLR", "CyclicLR")


class LRScheduler(trainhooks.Callback):
    """Step ``trainer.lr_scheduler`` per epoch or per step; log per-group learning rates."""

    interval = Option(str, "auto", "when to step the scheduler", choices=("auto", "epoch", "step"), flag="lr-interval")
    monitor = Option(str, "val/loss", "metric for ReduceLROnPlateau", flag="lr-monitor")

    resolved: str | None = None

    def on_fit_start(self, trainer: trainhooks.Trainer) -> None:
        # A new run: a ReduceLROnPlateau forgets the previous run's best value and bad-epoch
        # count (a resume restores the scheduler's state afterwards).
        self.resolved = None
        scheduler = trainer.lr_scheduler
        if scheduler is not None and self._is_plateau(scheduler):
            scheduler.best = scheduler.mode_worse
            scheduler.num_bad_epochs = 0
            scheduler.cooldown_counter = 0

    @staticmethod
    def _is_plateau(scheduler: Any) -> bool:
        import torch

        return isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)

    def on_train_start(self, trainer: trainhooks.Trainer) -> None:
        scheduler = trainer.lr_scheduler
        if scheduler is None:
            self.resolved = None
            return
        if self.interval != "auto":
            self.resolved = self.interval
        else:
            self.resolved = "step" if type(scheduler).__name__ in PER_STEP else "epoch"
        if self.resolved == "step" and self._is_plateau(scheduler):
            raise trainhooks.ConfigError("lr: ReduceLROnPlateau needs a metric and can only step per epoch")
        if self._is_plateau(scheduler):
            better = mode_from_name(self.monitor)
            if better is not None and better != scheduler.mode:
                # torch's default mode is "min": ReduceLROnPlateau(opt) on val/acc cuts the rate
                # while accuracy improves. Warn rather than fail: the name might mislead.
                warnings.warn(
                    f"lr: ReduceLROnPlateau has mode={scheduler.mode!r} but monitors {self.monitor!r}, which looks "
                    f"like a metric to {'maximise' if better == 'max' else 'minimise'}: pass "
                    f"ReduceLROnPlateau(..., mode={better!r})",
                    UserWarning,
                    stacklevel=2,
                )

    def on_train_batch_end(self, trainer: trainhooks.Trainer) -> None:
        if self.resolved == "step":
            trainer.lr_scheduler.step()

    @trainhooks.hookimpl(tryfirst=True)
    def on_fit_epoch_end(self, trainer: trainhooks.Trainer) -> None:
        groups = trainer.optimizer.param_groups
        if len(groups) > 1:
            for i, group in enumerate(groups):
                trainer.log_metric(f"lr/pg{i}", float(group["lr"]))
        if self.resolved != "epoch" or not trainer.epoch_completed:
            return  # an epoch cut short (a stop, a signal) resumes later: do not step for it twice
        scheduler = trainer.lr_scheduler
        if self._is_plateau(scheduler):
            if self.monitor not in trainer.metrics:
                if logged_earlier(trainer, self.monitor):
                    return  # logged every few epochs: step on the epochs that log it
                raise trainhooks.ConfigError(
                    f"lr: ReduceLROnPlateau monitors {self.monitor!r}, which is not in trainer.metrics "
                    f"(available: {', '.join(sorted(trainer.metrics))})"
                )
            scheduler.step(trainer.metrics[self.monitor])
        else:
            scheduler.step()
