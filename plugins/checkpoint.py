"""``checkpoint``: save ``weights/last.pt`` every epoch and ``weights/best.pt`` on improvement.

Default on. "Save the weights whenever validation accuracy improves" is
``trainhooks fit --ckpt-monitor val/acc`` (mode is inferred: accuracy is maximised), or
``Trainer(plugins=[ModelCheckpoint(monitor="val/acc")])``, which replaces the default instance.

* ``last.pt`` after every epoch; ``best.pt`` whenever ``monitor`` improves (Keras/Lightning
  semantics: ``mode`` min/max/auto, no ``min_delta``). ``monitor="none"`` watches nothing:
  ``last.pt`` only (plus every epoch's file with ``save_top_k=-1``).
* ``initial_threshold`` (``--ckpt-threshold``, Keras' ``initial_value_threshold``): a value
  must beat it before it counts as best (for ``best.pt`` and the top k).
* ``save_top_k`` > 1 (or -1 for all) also keeps a file per epoch for the k best epochs,
  deleting files that fall out of the top k (Lightning's ``save_top_k``); 0 writes no
  ``best.pt`` either, only ``last.pt``. With no monitor (or a metric that is never logged),
  ``save_top_k=-1`` keeps every epoch.
* ``filename`` (``--ckpt-filename``) names those per-epoch files: a ``str.format`` template
  over ``epoch`` (1-based), ``step`` and every metric, e.g. ``{epoch:03d}-{val/loss:.4f}``
  (``.pt`` is added when missing). Default ``epoch{epoch}``: ``weights/epoch3.pt``.
* ``every_n_epochs`` (``--save-every-n-epochs``, Ultralytics' ``save_period``) also keeps that
  epoch's file every N epochs; top-k never deletes these.
* ``every_n_steps`` (``--save-every-n-steps N``) also writes ``last.pt`` every N optimizer steps,
  mid-epoch: a killed run loses at most N steps and resumes exactly where it was.
* ``weights/previous.pt`` is the ``last.pt`` before the current one (a hard link, no copy):
  ``--resume auto`` falls back to it when ``last.pt`` is damaged.
* When training stops early, ``last.pt`` is written once more at the end so that it records why
  (resuming a finished run is then refused with that reason).
* ``restore_best`` (``--restore-best``; Keras' ``restore_best_weights``, Hugging Face's
  ``load_best_model_at_end``): when training ends the model holds ``best.pt``'s weights, so
  what runs after (export plugins, ``trainer.predict``, the model you passed in) uses them;
  ``last.pt`` still holds the final state, for resuming. It runs before the other
  ``on_train_end`` implementations.
* A monitored metric that is NaN never counts as best. If it is NaN in every epoch, no
  ``best.pt`` (and no top-k file) is written, ``last.pt`` is, a warning says so at the first
  NaN epoch and again when training ends, and ``restore_best`` keeps the final weights.
* Writes happen behind training (``background``, default on): the state is snapshotted on the
  training thread, then serialised and written atomically (temporary file + fsync + rename) on
  a background thread, one at a time. ``on_model_save`` fires once a file is durable (at the
  next save or when training ends); a failed write is raised at the next save or at the end.
  Files load with ``torch.load(path, weights_only=True)`` and hold model, optimizer, scheduler,
  counters, metrics, history and every plugin's state (see ``trainhooks.checkpointing``).
* A model whose weights are no longer finite (NaN/inf) is never saved over a good file.
* Runs on global rank zero only; runs after the other ``on_fit_epoch_end`` implementations
  (``trylast``) so their state (early-stopping counters, stepped schedulers) is what is saved.
"""

from __future__ import annotations

import math
import string
import warnings
from pathlib import Path
from typing import Any

import trainhooks
from trainhooks.plugins._monitor import Monitor, logged_earlier

DEFAULT_FILENAME = "epoch{epoch}"
#: Names the plugin itself writes: a template may not produce them.
RESERVED = frozenset({"last.pt", "best.pt", "previous.pt", "emergency.pt"})
NO_MONITOR = ("", "none")


def weights_are_finite(model: Any) -> bool:
    """One device sync for the whole model."""
    import torch

    checks = [torch.isfinite(t).all() for t in model.state_dict().values() if t.is_floating_point()]
    return bool(torch.stack(checks).all().item()) if checks else True


def check_filename(template: str) -> str:
    """Validate a filename template (``{epoch:03d}-{val/loss:.4f}``); returns it with ``.pt``.

    :raises ConfigError: empty, not a valid ``str.format`` template, a path that leaves
        ``weights/``, or one of the names the plugin writes itself.
    """
    if not isinstance(template, str) or not template.strip():
        raise trainhooks.ConfigError(f"checkpoint: filename must be a non-empty template, got {template!r}")
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as exc:
        raise trainhooks.ConfigError(f"checkpoint: filename {template!r} is not a valid template: {exc}") from None
    if any(f == "" or f.isdigit() for f in fields):
        raise trainhooks.ConfigError(
            f"checkpoint: filename {template!r} has a positional field; name one: {{epoch}}, {{step}} or a metric "
            "such as {val/loss:.4f}"
        )
    literal = "".join(text for text, _, _, _ in string.Formatter().parse(template))
    if template.startswith("/") or ".." in literal.split("/") or "\\" in literal:
        raise trainhooks.ConfigError(f"checkpoint: filename {template!r} must stay inside weights/")
    if not template.endswith(".pt"):
        template += ".pt"
    if template in RESERVED:
        raise trainhooks.ConfigError(f"checkpoint: filename {template!r} is one the plugin writes itself; pick another")
    return template


class ModelCheckpoint(trainhooks.Callback):
    """Keep ``last.pt``, ``best.pt`` and optionally the top-k epochs in ``save_dir/weights``."""

    rank_zero_only = True

    def __init__(
        self,
        monitor: str | None = None,
        mode: str | None = None,
        save_top_k: int | None = None,
        every_n_steps: int | None = None,
        *,
        filename: str | None = None,
        every_n_epochs: int | None = None,
        initial_threshold: float | None = None,
        restore_best: bool | None = None,
        background: bool | None = None,
    ) -> None:
        self._given: dict[str, Any] = {
            "ckpt_monitor": monitor,
            "ckpt_mode": mode,
            "save_top_k": save_top_k,
            "save_every_n_steps": every_n_steps,
            "ckpt_filename": filename,
            "save_every_n_epochs": every_n_epochs,
            "ckpt_threshold": initial_threshold,
            "restore_best": restore_best,
            "ckpt_background": background,
        }
        self.monitor: Monitor | None = Monitor(monitor or "val/loss", mode or "auto")
        self.save_top_k = save_top_k if save_top_k is not None else 1
        self.every_n_steps = every_n_steps or 0
        self.every_n_epochs = every_n_epochs or 0
        self.filename = check_filename(filename if filename is not None else DEFAULT_FILENAME)
        self.initial_threshold = initial_threshold
        self.restore_best = bool(restore_best)
        self.background = True if background is None else bool(background)
        self.top: list[tuple[float, int, str]] = []  # (value, epoch, file) best first
        self.periodic: list[str] = []  # every_n_epochs files: top-k never deletes them
        self._reset_run_state()

    def _reset_run_state(self) -> None:
        self._warned_missing = False
        self._warned_nan = False
        self._finite_seen = False

    def add_options(self, parser: Any) -> None:
        parser.add_option(
            "--ckpt-monitor", default="val/loss", help="metric that decides best.pt ('none': last.pt only)"
        )
        parser.add_option("--ckpt-mode", default="auto", choices=["auto", "min", "max"], help="minimise or maximise it")
        parser.add_option(
            "--ckpt-threshold",
            type=float,
            default=None,
            metavar="VALUE",
            help="a value must beat this before it counts as best (default: none)",
        )
        parser.add_option(
            "--save-top-k", type=int, default=1, help="keep the k best epochs as weights/epochN.pt too (-1: all)"
        )
        parser.add_option(
            "--ckpt-filename",
            default=DEFAULT_FILENAME,
            metavar="TEMPLATE",
            help="name of kept epoch files, e.g. '{epoch:03d}-{val/loss:.4f}' (default: epoch{epoch})",
        )
        parser.add_option(
            "--save-every-n-epochs", type=int, default=0, help="also keep every Nth epoch's file (0: off)"
        )
        parser.add_option(
            "--save-every-n-steps", type=int, default=0, help="also write last.pt every N steps, mid-epoch (0: off)"
        )
        parser.add_option(
            "--restore-best", action="store_true", help="end training with best.pt's weights in the model"
        )
        parser.add_option(
            "--ckpt-background",
            type=_yes_no,
            default=True,
            metavar="yes|no",
            help="write checkpoints on a background thread (default: yes)",
        )

    def configure(self, trainer: trainhooks.Trainer) -> None:
        opts = {k: (v if v is not None else trainer.options.get(k)) for k, v in self._given.items()}
        monitor = opts["ckpt_monitor"]
        monitor = "val/loss" if monitor is None else str(monitor)
        self.monitor = None if monitor.strip().lower() in NO_MONITOR else Monitor(monitor, opts["ckpt_mode"] or "auto")
        self.save_top_k = _int_option("save_top_k", opts["save_top_k"], 1, minimum=-1)
        self.every_n_steps = _int_option("save_every_n_steps", opts["save_every_n_steps"], 0, minimum=0)
        self.every_n_epochs = _int_option("save_every_n_epochs", opts["save_every_n_epochs"], 0, minimum=0)
        self.filename = check_filename(opts["ckpt_filename"] if opts["ckpt_filename"] is not None else DEFAULT_FILENAME)
        threshold = opts["ckpt_threshold"]
        if threshold is not None:
            if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or math.isnan(threshold):
                raise trainhooks.ConfigError(f"checkpoint: initial_threshold must be a number, got {threshold!r}")
            threshold = float(threshold)
        self.initial_threshold = threshold
        self.restore_best = bool(opts["restore_best"])
        background = opts["ckpt_background"]
        self.background = True if background is None else bool(background)

    def on_pretrain_routine_start(self, trainer: trainhooks.Trainer) -> None:
        # A new fit() is a new run: its best, top k and warnings start over (a resume then
        # restores them from the checkpoint).
        if self.monitor is not None:
            self.monitor.best, self.monitor.best_epoch = None, None
        self.top, self.periodic = [], []
        self._reset_run_state()

    def on_train_start(self, trainer: trainhooks.Trainer) -> None:
        # A run killed while writing leaves a temporary file next to the real one: drop it.
        for stale in (trainer.save_dir / "weights").glob(".*.pt.*.tmp"):
            stale.unlink(missing_ok=True)

    def on_train_batch_end(self, trainer: trainhooks.Trainer) -> None:
        n = self.every_n_steps
        if n and trainer.global_step % n == 0:
            self._save_last(trainer)

    @trainhooks.hookimpl(tryfirst=True)
    def on_train_end(self, trainer: trainhooks.Trainer) -> None:
        if trainer.stopped_early and trainer.history:
            self._save_last(trainer)
        if self.monitor is not None and self.save_top_k != 0 and not self._finite_seen and trainer.history:
            warnings.warn(
                f"checkpoint: the monitored metric {self.monitor.metric!r} was NaN in every epoch: no best.pt was "
                "written; last.pt holds the final epoch",
                RuntimeWarning,
                stacklevel=2,
            )
        if self.restore_best:
            self._restore_best(trainer)

    def _restore_best(self, trainer: trainhooks.Trainer) -> None:
        best = trainer.save_dir / "weights" / "best.pt"
        trainer.flush_checkpoints()  # best.pt may still be on its way to disk
        if self.monitor is None or self.monitor.best is None or not best.is_file():
            warnings.warn(
                "checkpoint: restore_best: there is no best.pt (nothing was monitored, or no value counted as "
                "best); the model keeps its final weights",
                RuntimeWarning,
                stacklevel=3,
            )
            return
        from trainhooks.checkpointing import load_checkpoint

        saved = load_checkpoint(best)
        trainer.unwrapped_model.load_state_dict(saved["model"])
        trainer.log_artifact("best.pt", best)

    def _save_last(self, trainer: trainhooks.Trainer) -> None:
        if weights_are_finite(trainer.unwrapped_model):
            weights = trainer.save_dir / "weights"
            last = trainer.save_checkpoint(
                weights / "last.pt", background=self.background, previous=weights / "previous.pt"
            )
            trainer.log_artifact("last.pt", last)

    @trainhooks.hookimpl(trylast=True)
    def on_fit_epoch_end(self, trainer: trainhooks.Trainer) -> None:
        weights = trainer.save_dir / "weights"
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
        counts = value is not None and self._counts(value, trainer)
        improved = counts and self.monitor is not None and self.monitor.update(value, trainer.epoch)  # type: ignore[arg-type]
        last, best = weights / "last.pt", weights / "best.pt"
        also = [best] if improved else []
        name = self._render(trainer) if self._wants_epoch_file(value, counts) else None
        kept: Path | None = None
        if name is not None and counts and value is not None and self._ranked:
            kept = self._update_top_k(trainer, weights, value, name)
        elif name is not None and self.save_top_k == -1:
            kept = weights / name  # nothing ranks epochs: keep every one
        if name is not None and self.every_n_epochs and (trainer.epoch + 1) % self.every_n_epochs == 0:
            kept = weights / name
            if name not in self.periodic:
                self.periodic.append(name)
        if kept is not None:
            also.append(kept)
        # One checkpoint, serialised once, copied to best.pt / the epoch's file when those are due too.
        trainer.save_checkpoint(last, also=also, background=self.background, previous=weights / "previous.pt")
        trainer.log_artifact("last.pt", last)
        if improved:
            trainer.log_artifact("best.pt", best)

    @property
    def _ranked(self) -> bool:
        return self.save_top_k > 1 or self.save_top_k == -1

    def _wants_epoch_file(self, value: float | None, counts: bool) -> bool:
        periodic = bool(self.every_n_epochs)
        return periodic or (self._ranked and counts) or (self.save_top_k == -1 and value is None)

    def _counts(self, value: float, trainer: trainhooks.Trainer) -> bool:
        """May ``value`` count as best at all? Not NaN, and past the initial threshold."""
        if math.isnan(value):
            if not self._warned_nan and self.monitor is not None:
                self._warned_nan = True
                warnings.warn(
                    f"checkpoint: the monitored metric {self.monitor.metric!r} is NaN at epoch {trainer.epoch + 1}; "
                    "a NaN never counts as best (last.pt is still written)",
                    RuntimeWarning,
                    stacklevel=4,
                )
            return False
        self._finite_seen = True
        threshold = self.initial_threshold
        if threshold is None or self.monitor is None:
            return True
        return value < threshold if self.monitor.mode == "min" else value > threshold

    def _render(self, trainer: trainhooks.Trainer) -> str:
        fields: dict[str, Any] = {**trainer.metrics, "epoch": trainer.epoch + 1, "step": trainer.global_step}
        try:
            return self.filename.format(**fields)
        except KeyError as exc:
            raise trainhooks.ConfigError(
                f"checkpoint: filename {self.filename!r} names {exc.args[0]!r}, which this epoch did not log "
                f"(available: epoch, step, {', '.join(sorted(trainer.metrics))})"
            ) from None
        except (ValueError, TypeError) as exc:
            raise trainhooks.ConfigError(f"checkpoint: filename {self.filename!r} cannot be filled in: {exc}") from None

    def _read(self, trainer: trainhooks.Trainer) -> float | None:
        if self.monitor is None:
            return None
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

    def _update_top_k(self, trainer: trainhooks.Trainer, weights: Path, value: float, name: str) -> Path | None:
        """Rank this epoch among the top k; delete files that fell out; the file to write, if any."""
        assert self.monitor is not None
        sign = 1.0 if self.monitor.mode == "min" else -1.0
        candidate = (value, trainer.epoch, name)
        ranked = sorted([*self.top, candidate], key=lambda t: (sign * t[0], t[1]))
        keep = ranked if self.save_top_k == -1 else ranked[: self.save_top_k]
        keep_names = {n for _, _, n in keep} | set(self.periodic)
        for _, _, dropped in set(self.top) - set(keep):
            if dropped not in keep_names and dropped != name:
                (weights / dropped).unlink(missing_ok=True)
        self.top = keep
        return weights / name if candidate in keep else None

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"top": [list(t) for t in self.top], "periodic": list(self.periodic)}
        if self.monitor is not None:
            state["monitor"] = self.monitor.state_dict()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if self.monitor is not None:
            self.monitor.load_state_dict(state_dict.get("monitor", {}))
        self.top = [(float(v), int(e), str(n)) for v, e, n in state_dict.get("top", [])]
        self.periodic = [str(n) for n in state_dict.get("periodic", [])]
        self._finite_seen = self.monitor is not None and self.monitor.best is not None


def _int_option(name: str, value: Any, default: int, *, minimum: int) -> int:
    """An integer setting; a fraction, a bool or a string is bad input, not silently rounded."""
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise trainhooks.ConfigError(f"checkpoint: {name} must be an integer, got {value!r}")
    if value < minimum:
        raise trainhooks.ConfigError(f"checkpoint: {name} must be >= {minimum}, got {value}")
    return value


def _yes_no(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("yes", "true", "1", "on"):
        return True
    if lowered in ("no", "false", "0", "off"):
        return False
    import argparse

    raise argparse.ArgumentTypeError(f"expected yes or no, got {text!r}")
