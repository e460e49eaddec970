"""``trainhooks.Monitor``: watch one metric and say when it improves.

What most third-party plugins need (early stopping, "save when best", plateau detection, alerts),
and what the built-ins early_stopping, checkpoint and lr use, through this public API::

    class AlertOnBest(trainhooks.Callback):
        def __init__(self):
            super().__init__()
            self.watch = trainhooks.Monitor("val/acc")           # mode "auto": accuracy is maximised

        def on_fit_start(self, trainer):
            self.watch.reset()                                    # a new run: no best yet

        def on_fit_epoch_end(self, trainer):
            if self.watch.update(self.watch.read(trainer.metrics, "alert"), trainer.epoch):
                print("new best", self.watch.best)

Semantics follow Keras/Lightning: ``metric`` names a metric in ``trainer.metrics``; ``mode``
is ``min`` or ``max`` (``auto`` infers it from the name, see :func:`infer_mode`: accuracy-like
names are maximised, losses, errors and unknown names minimised); an improvement must beat the
best value by more than ``min_delta``; NaN never improves.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from trainhooks.errors import ConfigError

if TYPE_CHECKING:
    import trainhooks

# ``auto`` mode reads the metric's name as words (split at ``_``, ``-``, ``.``, ``@``, ...).
# Any lower-is-better word wins, so ``dice_loss`` and ``iou_loss`` are minimised; otherwise a
# higher-is-better word, or a name ending in one (``valacc``), means maximise; anything else is
# minimised (Lightning's default mode).
MIN_HINTS = frozenset(
    ("loss", "error", "err", "mse", "mae", "rmse", "mape", "smape", "nll", "perplexity", "ppl", "wer", "cer", "fid")
)
MAX_HINTS = frozenset(
    (
        "acc", "accuracy", "top1", "top5", "auc", "auroc", "auprc", "ap", "map", "f1", "fbeta", "precision",
        "recall", "iou", "miou", "dice", "jaccard", "r2", "score", "psnr", "ssim", "bleu", "rouge", "kappa", "mcc",
    )
)  # fmt: skip


def infer_mode(monitor: str, mode: str) -> str:
    """Resolve ``auto`` to ``min`` or ``max``; reject anything else.

    ``auto`` reads the last ``/`` part of the name as words: ``val/acc``, ``val/top1_acc``,
    ``val/auroc``, ``val/psnr`` are maximised; ``val/loss``, ``val/dice_loss``, ``val/mape``
    and unknown names are minimised.
    """
    if mode in ("min", "max"):
        return mode
    if mode != "auto":
        raise ConfigError(f"mode must be 'min', 'max' or 'auto', got {mode!r}")
    return mode_from_name(monitor) or "min"


def mode_from_name(monitor: str) -> str | None:
    """``min`` or ``max`` when the metric's name says which is better, else None."""
    leaf = monitor.rsplit("/", 1)[-1].lower()
    # Words without trailing digits: acc1, mAP50, iou50, bleu4 are acc, map, iou, bleu.
    raw = [w for w in re.split(r"[^a-z0-9]+", leaf) if w]
    words = raw + [stripped for w in raw if (stripped := re.sub(r"\d+$", "", w)) and stripped != w]
    if any(w in MIN_HINTS or w.endswith("loss") for w in words):
        return "min"
    if any(w in MAX_HINTS for w in words):
        return "max"
    # Run-together names: valacc, aucroc, f1macro, rougel.
    long_hints = [h for h in MAX_HINTS if len(h) >= 3 or h == "f1"]
    if any(w.startswith(h) or w.endswith(h) for w in words for h in long_hints):
        return "max"
    return None


def logged_earlier(trainer: trainhooks.Trainer, metric: str) -> bool:
    """Did an earlier epoch log ``metric``? Then its absence now means "logged every few epochs"
    (an epoch without it is skipped), not a misspelled name (an error). A ``val/*`` metric in an
    epoch that ``val_every_n_epochs`` does not validate counts the same, even before the first
    validation: monitors skip that epoch."""
    if any(metric in row for row in trainer.history[:-1]):
        return True
    return metric.startswith("val/") and not validates_this_epoch(trainer)


def validates_this_epoch(trainer: trainhooks.Trainer) -> bool:
    """Whether ``val_every_n_epochs`` has validation run at the end of the current epoch."""
    every = getattr(trainer, "val_every_n_epochs", 1)
    return every is not None and (trainer.epoch + 1) % every == 0


@dataclass
class Monitor:
    """Tracks the best value of one metric.

    :param metric: the name in ``trainer.metrics`` (``"val/loss"``).
    :param mode: ``"min"``, ``"max"`` or ``"auto"`` (from the name; resolved at construction).
    :param min_delta: how much better than ``best`` a value must be to count (>= 0).

    Attributes: ``best`` and ``best_epoch`` (None until a first value), ``improved`` (whether
    the last :meth:`update` was a new best), ``mode`` (always ``min``/``max`` once built).
    """

    metric: str
    mode: str = "auto"
    min_delta: float = 0.0
    best: float | None = None
    best_epoch: int | None = None
    improved: bool = False
    requested: tuple[str, str, float] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.metric, str) or not self.metric.strip():
            raise ConfigError(f"Monitor: metric must be a metric name like 'val/loss', got {self.metric!r}")
        self.requested = (self.metric, self.mode, self.min_delta)
        self.mode = infer_mode(self.metric, self.mode)
        if isinstance(self.min_delta, bool) or not isinstance(self.min_delta, (int, float)) or self.min_delta < 0:
            raise ConfigError(f"min_delta must be a number >= 0, got {self.min_delta!r}")

    @classmethod
    def keep(cls, current: Monitor | None, metric: str, mode: str = "auto", min_delta: float = 0.0) -> Monitor:
        """``current`` if it watches ``metric`` with these settings, else a new Monitor: for a
        plugin whose settings may change after construction (options bound by the trainer)."""
        if current is not None and current.requested == (metric, mode, min_delta):
            return current
        return cls(metric, mode, min_delta)

    def reset(self) -> None:
        """Forget the best value: a new run (call it from ``on_fit_start``)."""
        self.best, self.best_epoch, self.improved = None, None, False

    def missing_now(self, trainer: trainhooks.Trainer) -> bool:
        """The metric is absent this epoch but an earlier epoch logged it: a metric logged every
        few epochs (skip this epoch), not a misspelled name."""
        return self.metric not in trainer.metrics and logged_earlier(trainer, self.metric)

    def read(self, metrics: dict[str, float], owner: str) -> float:
        """The monitored value, or a clear error listing what is available."""
        if self.metric not in metrics:
            available = ", ".join(sorted(metrics)) or "none yet"
            raise ConfigError(
                f"{owner}: monitored metric {self.metric!r} is not in trainer.metrics "
                f"(available: {available}); is validation data given, or is the name misspelled?"
            )
        return float(metrics[self.metric])

    def is_improvement(self, value: float) -> bool:
        """Does ``value`` beat the best so far by more than ``min_delta``? (NaN never does.)"""
        if math.isnan(value):
            return False
        if self.best is None:
            return True
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def update(self, value: float, epoch: int) -> bool:
        """Record ``value``; returns True (and sets ``improved``) when it is a new best."""
        self.improved = self.is_improvement(value)
        if self.improved:
            self.best, self.best_epoch = value, epoch
        return self.improved

    def state_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "mode": self.mode, "best": self.best, "best_epoch": self.best_epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = state.get("best")
        self.best_epoch = state.get("best_epoch")
        self.improved = False


__all__ = ["Monitor", "infer_mode", "logged_earlier", "mode_from_name", "validates_this_epoch"]
