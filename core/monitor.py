"""Shared by the plugins that watch a metric (early_stopping, checkpoint, lr's plateau mode).

Semantics follow Keras/Lightning: ``monitor`` names a metric in ``trainer.metrics``; ``mode``
is ``min`` or ``max`` (``auto`` infers it from the name, see :func:`infer_mode`: accuracy-like
names are maximised, losses, errors and unknown names minimised); an improvement must beat the best value by more than ``min_delta``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

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
        raise trainhooks.ConfigError(f"mode must be 'min', 'max' or 'auto', got {mode!r}")
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
    (an epoch without it is skipped), not a misspelled name (an error)."""
    return any(metric in row for row in trainer.history[:-1])


@dataclass
class Monitor:
    """Tracks the best value of one metric."""

    metric: str
    mode: str = "auto"
    min_delta: float = 0.0
    best: float | None = None
    best_epoch: int | None = None

    def __post_init__(self) -> None:
        self.mode = infer_mode(self.metric, self.mode)
        if self.min_delta < 0:
            raise trainhooks.ConfigError(f"min_delta must be >= 0, got {self.min_delta}")

    def read(self, metrics: dict[str, float], owner: str) -> float:
        """The monitored value, or a clear error listing what is available."""
        if self.metric not in metrics:
            available = ", ".join(sorted(metrics)) or "none yet"
            raise trainhooks.ConfigError(
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
        """Record ``value``; returns True when it is a new best."""
        if self.is_improvement(value):
            self.best, self.best_epoch = value, epoch
            return True
        return False

    def state_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "mode": self.mode, "best": self.best, "best_epoch": self.best_epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = state.get("best")
        self.best_epoch = state.get("best_epoch")
