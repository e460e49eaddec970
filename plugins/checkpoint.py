"""``checkpoint``: save ``weights/last.pt`` every epoch and ``weights/best.pt`` on improvement.

Default on. "Save the weights whenever validation accuracy improves" is
``trainhooks fit --ckpt-monitor val/acc`` (mode is inferred: accuracy is maximised), or
``Trainer(plugins=[ModelCheckpoint(monitor="val/acc")])``, which replaces the default instance.

* ``last.pt`` after every epoch; ``best.pt`` whenever ``monitor`` improves (Keras/Lightning
  semantics: ``mode`` min/max/auto, no ``min_delta``).
* ``save_top_k`` > 1 (or -1 for all) also keeps ``weights/epoch{N}.pt`` for the k best epochs,
  deleting files that fall out of the top k (Lightning's ``save_top_k``); 0 writes no
  ``best.pt`` either, only ``last.pt``.
* ``every_n_steps`` (``--save-every-n-steps N``) also writes ``last.pt`` every N optimizer steps,
  mid-epoch: a killed run loses at most N steps and resumes exactly where it was.
* When training stops early, ``last.pt`` is written once more at the end so that it records why
  (resuming a finished run is then refused with that reason).
* Writes are atomic (temporary file + fsync + rename) and fire ``on_model_save``; files load
  with ``torch.load(path, weights_only=True)`` and hold model, optimizer, scheduler, counters,
  metrics, history and every plugin's state (see ``trainhooks.checkpointing``).
* A model whose weights are no longer finite (NaN/inf) is never saved over a good file.
* Runs on global rank zero only; runs after the other ``on_fit_epoch_end`` implementations
  (``trylast``) so their state (early-stopping counters, stepped schedulers) is what is saved.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import trainhooks
from trainhooks import Monitor, Option
from trainhooks.monitor import logged_earlier


def weights_are_finite(model: Any) -> bool:
    """One device sync for the whole model."""
    import torch

    checks = [torch.isfinite(t).all() for t in model.state_dict().values() if t.is_floating_point()]
    return bool(torch.stack(checks).all().item()) if checks else True


class ModelCheckpoint(trainhooks.Callback):
    """Keep ``last.pt``, ``best.pt`` and optionally the top-k epochs in ``save_dir/weights``.

    Several instances may run in one trainer, e.g. one keeping the best by ``val/loss`` and one
    writing every N steps; give each a ``name=`` and, if they should not share files, its own
    ``dirpath=``.
    """

    rank_zero_only = True

    metric = Option(str, "val/loss", "metric that decides best.pt", name="monitor", flag="ckpt-monitor")
    mode = Option(str, "auto", "minimise or maximise it", choices=("auto", "min", "max"), flag="ckpt-mode")
    save_top_k = Option(int, 1, "keep the k best epochs as weights/epochN.pt too (-1: all)", min=-1)
    every_n_steps = Option(
        int, 0, "also write last.pt every N steps, mid-epoch (0: off)", min=0, flag="save-every-n-steps"
    )
    dirpath = Option(
        Path, None, "directory for the files, relative to the save dir (default: weights)", flag="ckpt-dir"
    )

    _warned_missing = False
    _watch: Monitor | None = None

    def __init__(self, *args: Any, **settings: Any) -> None:
        super().__init__(*args, **settings)
        self.top: list[tuple[float, int, str]] = []  # (value, epoch, file) best first

    @property
    def monitor(self) -> Monitor:
        """The :class:`~trainhooks.Monitor` deciding ``best.pt`` (rebuilt when its settings change)."""
        self._watch = Monitor.keep(self._watch, self.metric, self.mode)
        return self._watch

    def weights_dir(self, trainer: trainhooks.Trainer) -> Path:
        """``dirpath`` (a relative one inside ``save_dir``), else ``save_dir/weights``."""
        return trainer.save_dir / (self.dirpath if self.dirpath is not None else "weights")

    def on_fit_start(self, trainer: trainhooks.Trainer) -> None:
        # A new run: no best value, no top-k list (a resume restores them afterwards).
        self.monitor.reset()
        self.top = []
        self._warned_missing = False

    def on_train_start(self, trainer: trainhooks.Trainer) -> None:
        # A run killed while writing leaves a temporary file next to the real one: drop it.
        for stale in self.weights_dir(trainer).glob(".*.pt.*.tmp"):
            stale.unlink(missing_ok=True)

    def on_train_batch_end(self, trainer: trainhooks.Trainer) -> None:
        n = self.every_n_steps
        if n and trainer.global_step % n == 0:
            self._save_last(trainer)

    def on_train_end(self, trainer: trainhooks.Trainer) -> None:
        if trainer.stopped_early and trainer.history:
            self._save_last(trainer, background=False)  # the run's end: nothing left to overlap with

    def _save_last(self, trainer: trainhooks.Trainer, background: bool = True) -> None:
        if weights_are_finite(trainer.unwrapped_model):
            weights = self.weights_dir(trainer)
            last = trainer.save_checkpoint(weights / "last.pt", background=background, previous=weights / "previous.pt")
            trainer.log_artifact("last.pt", last)

    @trainhooks.hookimpl(trylast=True)
    def on_fit_epoch_end(self, trainer: trainhooks.Trainer) -> None:
        weights = self.weights_dir(trainer)
        # The previous epoch's write may still be creating a file the top k is about to drop.
        trainer.flush_checkpoints()
        if not weights_are_finite(trainer.unwrapped_model):
            warnings.warn(
                f"checkpoint: the model's weights are not finite at epoch {trainer.epoch + 1}; "
                "keeping the previous checkpoint files",
                RuntimeWarning,
                stacklevel=2,
            )
            return
        # save_top_k=0 keeps no ranked file at all, best.pt included (Lightning's meaning); last.pt still.
        value = self._read(trainer) if self.save_top_k != 0 else None
        improved = value is not None and self.monitor.update(value, trainer.epoch)
        last, best = weights / "last.pt", weights / "best.pt"
        also = [best] if improved else []
        top_k_file = self._update_top_k(trainer, weights, value) if value is not None else None
        if top_k_file is not None:
            also.append(top_k_file)
        # One checkpoint, serialised once, copied to best.pt / epochN.pt when those are due too.
        # Behind training: snapshot now, serialise and write on a background thread; the last.pt
        # before it stays as previous.pt (auto-resume's fallback when last.pt is damaged).
        trainer.save_checkpoint(last, also=also, background=True, previous=weights / "previous.pt")
        trainer.log_artifact("last.pt", last)
        if improved:
            trainer.log_artifact("best.pt", best)

    def _read(self, trainer: trainhooks.Trainer) -> float | None:
        if self.monitor.metric in trainer.metrics:
            return float(trainer.metrics[self.monitor.metric])
        if not self._warned_missing and not logged_earlier(trainer, self.monitor.metric):
            self._warned_missing = True
            warnings.warn(
                f"checkpoint: monitored metric {self.monitor.metric!r} is not in trainer.metrics "
                f"(available: {', '.join(sorted(trainer.metrics))}); saving last.pt only",
                RuntimeWarning,
                stacklevel=3,
            )
        return None

    def _update_top_k(self, trainer: trainhooks.Trainer, weights: Path, value: float) -> Path | None:
        """Rank this epoch among the top k; delete files that fell out; the file to write, if any."""
        if not (self.save_top_k > 1 or self.save_top_k == -1) or math.isnan(value):
            return None
        sign = 1.0 if self.monitor.mode == "min" else -1.0
        candidate = (value, trainer.epoch, f"epoch{trainer.epoch + 1}.pt")
        ranked = sorted([*self.top, candidate], key=lambda t: (sign * t[0], t[1]))
        keep = ranked if self.save_top_k == -1 else ranked[: self.save_top_k]
        for _, _, name in set(self.top) - set(keep):
            (weights / name).unlink(missing_ok=True)
        self.top = keep
        return weights / candidate[2] if candidate in keep else None

    def state_dict(self) -> dict[str, Any]:
        return {"monitor": self.monitor.state_dict(), "top": [list(t) for t in self.top]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.monitor.load_state_dict(state_dict.get("monitor", {}))
        self.top = [(float(v), int(e), str(n)) for v, e, n in state_dict.get("top", [])]
