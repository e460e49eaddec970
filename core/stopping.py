"""Stop state: who asked training to stop, why, and whether a later run may continue it.

Three sources end a fit before its last epoch: a plugin's ``should_stop`` answer, a signal
(SIGINT, SIGTERM, the scheduler's pre-emption signal; see :mod:`trainhooks.signals`) and the
length controls. :class:`StopState` records the one that won. Under torchrun the answers are
first agreed between the ranks by the strategy, so every rank records the same stop at the same
step. A stop asked for before ``min_epochs``/``min_steps`` is deferred (:meth:`StopState.defer`),
unless the plugin that asks sets ``urgent_stop = True`` (nan_guard: training on cannot help).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from trainhooks.errors import PluginError

if TYPE_CHECKING:
    from trainhooks.trainer import Trainer

log = logging.getLogger("trainhooks")

StopAnswer = tuple[object, str]
"""A firstresult ``should_stop`` answer: (the value a plugin returned, the plugin's name)."""


@dataclass
class StopState:
    """The stop of the current fit (reset at each ``fit``)."""

    requested: bool = False
    reason: str | None = None
    stopped_by: str | None = None
    resumable: bool = False
    """A budget (the timer) ended this run, not the training: ``--resume`` may continue it."""
    interrupted: str | None = None
    """The name of the signal that stopped the run, if one did."""
    deferred: StopAnswer | None = None
    """The latest stop request deferred by a minimum (min_epochs / min_steps): it stops training
    as soon as the minimum is reached, even if its plugin does not ask again."""
    at_limit: bool = False
    """The stop is the run's own length limit (max_steps), not an early stop."""

    def reset(self) -> None:
        self.requested, self.reason, self.stopped_by, self.resumable = False, None, None, False
        self.interrupted = self.deferred = None
        self.at_limit = False

    @property
    def early(self) -> bool:
        """A plugin or a signal ended training before its planned length."""
        return self.requested and not self.at_limit

    def accept(self, trainer: Trainer, answer: StopAnswer, where: str) -> bool:
        """Record a plugin's ``should_stop`` answer; True when it stops training.

        A value that is not None, a bool or a str is a :class:`PluginError` (or disables a
        ``--non-critical`` plugin). A stop before the run's minimum length is deferred.
        """
        value, plugin = answer
        if isinstance(value, str):
            reason = value
        elif isinstance(value, bool):
            reason = f"stop requested by plugin {plugin!r}"
        else:
            error = PluginError(
                f"plugin {plugin!r}: should_stop must return None, a bool or a str reason, "
                f"got {type(value).__name__} ({value!r})",
                plugin=plugin,
            )
            plugin_manager = trainer.plugin_manager
            if plugin_manager.get_plugin(plugin) is not None and not plugin_manager.is_critical(plugin):
                # --non-critical covers a wrong answer like any other failure of the plugin.
                plugin_manager.disable_after_failure(plugin, "should_stop", error)
                return False
            raise error
        if not value:
            return False
        # A plugin whose training cannot go on (nan_guard: the weights hold NaN) says so with
        # ``urgent_stop = True``: no minimum length defers its stop.
        if not _flag(trainer, plugin, "urgent_stop") and self.defer(trainer, answer, reason):
            return False
        self.requested, self.reason, self.stopped_by = True, reason, plugin
        # A budget (the timer) ends this run but not the training: a plugin says so with
        # ``resumable_stop = True``, and --resume may then continue from the checkpoint.
        self.resumable = _flag(trainer, plugin, "resumable_stop")
        log.info(
            "stop requested by %s after %s (epoch %d, step %d): %s",
            plugin,
            where,
            trainer.epoch,
            trainer.global_step,
            reason,
        )
        return True

    def accept_signal(self, trainer: Trainer, name: str) -> None:
        """A signal stops training after the current batch (never deferred: it is the user's)."""
        self.requested, self.interrupted = True, name
        self.reason, self.stopped_by = f"interrupted by {name}", "signal"
        if trainer.is_global_zero:  # under torchrun every rank gets the signal: say it once
            log.warning("%s received: stopping after epoch %d, step %d", name, trainer.epoch + 1, trainer.global_step)

    def defer(self, trainer: Trainer, answer: StopAnswer, reason: str) -> bool:
        """True (and a message, once per request) when a stop must wait for the minimum length."""
        short = trainer.min_length_missing()
        if short is None:
            return False
        if self.deferred is None or self.deferred[1] != answer[1]:
            text = f"stop deferred: {answer[1]} asked to stop ({reason}), but {short}"
            if trainer.is_global_zero:
                log.warning("%s", text)
        self.deferred = answer
        return True

    def release(self, trainer: Trainer, where: str) -> bool:
        """A deferred stop takes effect once the minimum is reached; True when it does."""
        if self.deferred is None or trainer.min_length_missing() is not None:
            return False
        answer, self.deferred = self.deferred, None
        return self.accept(trainer, answer, where)

    def reach_max_steps(self, trainer: Trainer) -> bool:
        """``max_steps`` reached: the run's planned end (not an early stop)."""
        self.requested, self.at_limit = True, True
        self.reason, self.stopped_by = f"reached max_steps ({trainer.max_steps} steps)", None
        return True


def _flag(trainer: Trainer, plugin: str, name: str) -> bool:
    """A plugin's class-level stop flag (``urgent_stop``, ``resumable_stop``): True only if set to True."""
    return getattr(trainer.plugin_manager.get_plugin(plugin), name, False) is True


__all__ = ["StopAnswer", "StopState"]
