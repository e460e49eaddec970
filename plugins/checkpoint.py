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
  (``.pt`` is added when missing). Default ``epoch{epoch}``: ``weights/epoch3.pt``. A name
  that another kept epoch already has gets ``-v1``, ``-v2``... (Lightning's rule).
* ``every_n_epochs`` (``--save-every-n-epochs``, Ultralytics' ``save_period``) also keeps that
  epoch's file every N epochs; top-k never deletes these.
* ``every_n_steps`` (``--save-every-n-steps N``) also writes ``last.pt`` every N optimizer steps,
  mid-epoch: a killed run loses at most N steps and resumes exactly where it was.
* When training stops early, ``last.pt`` is written once more at the end so that it records why
  (resuming a finished run is then refused with that reason).
* ``restore_best`` (``--restore-best``; Keras' ``restore_best_weights``, Hugging Face's
  ``load_best_model_at_end``): when training ends the model holds ``best.pt``'s weights, so
  what runs after (``trainer.predict``, ``trainer.export``, the model you passed in) uses them;
  ``last.pt`` still holds the final state, for resuming. It runs before the other
  ``on_train_end`` implementations. With no ``best.pt`` a warning says why nothing was restored.
* A monitored metric that is NaN never counts as best. If it is NaN in every epoch, no
  ``best.pt`` (and no top-k file) is written, ``last.pt`` is, a warning says so at the first
  NaN epoch and again when training ends, and ``restore_best`` keeps the final weights.
* Writes are atomic (temporary file + fsync + rename), happen behind training (snapshot on the
  training thread, written on a background thread) and fire ``on_model_save`` once durable;
  files load with ``torch.load(path, weights_only=True)`` and hold model, optimizer, scheduler,
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
from trainhooks import Monitor, Option
from trainhooks.errors import ConfigError
from trainhooks.monitor import logged_earlier

DEFAULT_FILENAME = "epoch{epoch}"
#: Names the plugin (or the trainer) writes itself: a filename template may not produce them.
RESERVED = frozenset({"last.pt", "best.pt", "previous.pt", "emergency.pt"})
#: ``monitor="none"``: watch nothing, write ``last.pt`` (and every epoch with ``save_top_k=-1``).
NO_MONITOR = "none"


def weights_are_finite(model: Any) -> bool:
    """One device sync for the whole model."""
    import torch

    checks = [torch.isfinite(t).all() for t in model.state_dict().values() if t.is_floating_point()]
    return bool(torch.stack(checks).all().item()) if checks else True


def filename_template(value: Any) -> str:
    """a file-name template such as '{epoch:03d}-{val/loss:.4f}'

    The converter of the ``filename`` setting: checked where the value enters (constructor,
    ``--ckpt-filename``, ``options=``), so a broken template fails before any training. Returns
    the template with ``.pt`` appended when missing.

    :raises ValueError: not ``str.format`` syntax (unbalanced braces), a positional field
        (``{}``, ``{0}``), a directory part (``dirpath=`` chooses the directory), or one of the
        names the plugin writes itself (``last``, ``best``, ``previous``, ``emergency``).
    """
    if not isinstance(value, str):
        raise TypeError("not a string")
    template = value.strip()
    if not template:
        raise ValueError("empty")
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"not a valid template ({exc})") from None
    if any(field is not None and (field == "" or field.isdigit()) for _, field, _, _ in parsed):
        raise ValueError("a positional field; name one: {epoch}, {step} or a metric such as {val/loss:.4f}")
    literal = "".join(text for text, _, _, _ in parsed)
    if "/" in literal or "\\" in literal:
        raise ValueError("a file name may not hold a directory (dirpath= / --ckpt-dir chooses the directory)")
    if not template.endswith(".pt"):
        template += ".pt"
    if template in RESERVED:
        raise ValueError("a name the plugin writes itself; pick another")
    return template


def threshold_value(value: Any) -> float:
    """a number (not NaN)

    The converter of ``initial_threshold``: a string is parsed (the command line), a bool is
    refused, and NaN is refused because no value could ever beat it.
    """
    if isinstance(value, str):
        value = float(value.strip())
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError("not a number")
    if math.isnan(value):
        raise ValueError("no value can ever beat NaN")
    return float(value)


class _FieldFormatter(string.Formatter):
    """``str.format`` where a field name is a whole key: ``{val/loss}``, ``{val.acc}`` and
    ``{val[0]}`` name the metrics ``val/loss``, ``val.acc`` and ``val[0]``."""

    def get_field(self, field_name: str, args: Any, kwargs: Any) -> Any:
        return self.get_value(field_name, args, kwargs), field_name


class ModelCheckpoint(trainhooks.Callback):
    """Keep ``last.pt``, ``best.pt`` and optionally per-epoch files in ``save_dir/weights``.

    Several instances may run in one trainer, e.g. one keeping the best by ``val/loss`` and one
    writing every N steps; give each a ``name=`` and, if they should not share files, its own
    ``dirpath=``.
    """

    rank_zero_only = True

    metric = Option(
        str, "val/loss", "metric that decides best.pt ('none': last.pt only)", name="monitor", flag="ckpt-monitor"
    )
    mode = Option(str, "auto", "minimise or maximise it", choices=("auto", "min", "max"), flag="ckpt-mode")
    save_top_k = Option(int, 1, "keep the k best epochs as weights/epochN.pt too (-1: all)", min=-1)
    every_n_steps = Option(
        int, 0, "also write last.pt every N steps, mid-epoch (0: off)", min=0, flag="save-every-n-steps"
    )
    dirpath = Option(
        Path, None, "directory for the files, relative to the save dir (default: weights)", flag="ckpt-dir"
    )
    filename = Option(
        filename_template,
        DEFAULT_FILENAME,
        "name of the kept epoch files: a template over epoch, step and metrics, e.g. '{epoch:03d}-{val/loss:.4f}'",
        flag="ckpt-filename",
    )
    every_n_epochs = Option(
        int, 0, "also keep every Nth epoch's file, whatever the top k (0: off)", min=0, flag="save-every-n-epochs"
    )
    initial_threshold = Option(
        threshold_value, None, "a value must beat this before it counts as best (default: none)", flag="ckpt-threshold"
    )
    restore_best = Option(bool, False, "end training with best.pt's weights in the model")

    _warned_missing = False
    _warned_nan = False
    _nan_seen = False
    _finite_seen = False
    _watch: Monitor | None = None

    def __init__(self, *args: Any, **settings: Any) -> None:
        super().__init__(*args, **settings)
        self.top: list[tuple[float, int, str]] = []  # (value, epoch, file) best first
        self.periodic: list[str] = []  # every_n_epochs files: top-k never deletes them

    @property
    def monitor(self) -> Monitor | None:
        """The :class:`~trainhooks.Monitor` deciding ``best.pt`` (rebuilt when its settings
        change); None with ``monitor="none"``."""
        if self.metric.strip().lower() == NO_MONITOR:
            self._watch = None
            return None
        self._watch = Monitor.keep(self._watch, self.metric, self.mode)
        return self._watch

    def weights_dir(self, trainer: trainhooks.Trainer) -> Path:
        """``dirpath`` (a relative one inside ``save_dir``), else ``save_dir/weights``."""
        return trainer.save_dir / (self.dirpath if self.dirpath is not None else "weights")

    @property
    def _who(self) -> str:
        name = self.__dict__.get("_trainhooks_name")
        return f"checkpoint {name!r}" if name else "checkpoint"

    def on_fit_start(self, trainer: trainhooks.Trainer) -> None:
        # A new run: no best value, no top-k list, no warnings yet (a resume restores the state).
        monitor = self.monitor
        if monitor is not None:
            monitor.reset()
        self.top, self.periodic = [], []
        self._warned_missing = self._warned_nan = self._nan_seen = self._finite_seen = False

    def on_train_start(self, trainer: trainhooks.Trainer) -> None:
        # A run killed while writing leaves a temporary file next to the real one: drop it.
        for stale in self.weights_dir(trainer).glob(".*.pt.*.tmp"):
            stale.unlink(missing_ok=True)

    def on_train_batch_end(self, trainer: trainhooks.Trainer) -> None:
        n = self.every_n_steps
        if n and trainer.global_step % n == 0:
            self._save_last(trainer)

    @trainhooks.hookimpl(tryfirst=True)
    def on_train_end(self, trainer: trainhooks.Trainer) -> None:
        # First among on_train_end implementations: what runs after (exports, a user's callback)
        # sees the restored best weights.
        if trainer.stopped_early and trainer.history:
            self._save_last(trainer, background=False)  # the run's end: nothing left to overlap with
        monitor = self.monitor
        if monitor is not None and self._nan_seen and not self._finite_seen and self.save_top_k != 0:
            warnings.warn(
                f"{self._who}: the monitored metric {monitor.metric!r} was NaN in every epoch: no best.pt was "
                "written; last.pt holds the final epoch",
                RuntimeWarning,
                stacklevel=2,
            )
        if self.restore_best:
            trainer.flush_checkpoints()  # best.pt may still be on its way to disk
            self._restore_best(trainer)

    def _restore_best(self, trainer: trainhooks.Trainer) -> None:
        from trainhooks.checkpointing import load_checkpoint, load_model_state

        best = self.weights_dir(trainer) / "best.pt"
        monitor = self.monitor
        why = None
        if monitor is None:
            why = "nothing is monitored (monitor='none')"
        elif self.save_top_k == 0:
            why = "save_top_k=0 writes no best.pt"
        elif monitor.best is None:
            if self._nan_seen and not self._finite_seen:
                why = f"{monitor.metric!r} was NaN in every epoch"
            elif self._finite_seen and self.initial_threshold is not None:
                why = f"no value of {monitor.metric!r} beat initial_threshold={self.initial_threshold:g}"
            else:
                why = f"{monitor.metric!r} was never logged"
        elif not best.is_file():
            why = f"{best} does not exist"
        saved: dict[str, Any] = {}
        if why is None and monitor is not None:
            saved = load_checkpoint(best)
            if saved.get("epoch") != monitor.best_epoch:
                why = (
                    f"{best} holds epoch {int(saved.get('epoch', -1)) + 1}, not the best epoch "
                    f"{(monitor.best_epoch or 0) + 1} (does another checkpoint plugin write to {best.parent}?)"
                )
        if why is not None or monitor is None:
            warnings.warn(
                f"{self._who}: restore_best: nothing restored, {why}; the model keeps its final weights",
                RuntimeWarning,
                stacklevel=3,
            )
            return
        load_model_state(trainer.unwrapped_model, saved["model"], best)
        if trainer.verbose:
            print(
                f"Restored the best weights from {best} (epoch {int(saved['epoch']) + 1}, "
                f"{monitor.metric} {monitor.best:.6g}); last.pt holds the final ones",
                flush=True,
            )

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
                f"{self._who}: the model's weights are not finite at epoch {trainer.epoch + 1}; "
                "keeping the previous checkpoint files",
                RuntimeWarning,
                stacklevel=2,
            )
            return
        monitor = self.monitor
        # save_top_k=0 keeps no ranked file at all, best.pt included (Lightning's meaning); last.pt still.
        value = self._read(trainer, monitor) if self.save_top_k != 0 and monitor is not None else None
        counts = value is not None and self._counts(value, trainer, monitor)
        improved = counts and monitor is not None and monitor.update(value, trainer.epoch)  # type: ignore[arg-type]
        last, best = weights / "last.pt", weights / "best.pt"
        also = [best] if improved else []
        ranked = counts and (self.save_top_k > 1 or self.save_top_k == -1)
        keep_all = self.save_top_k == -1 and value is None  # nothing ranks the epochs: keep every one
        periodic = bool(self.every_n_epochs) and (trainer.epoch + 1) % self.every_n_epochs == 0
        if ranked or keep_all or periodic:
            try:
                name = self._file_name(trainer)
            except ConfigError:
                # Lose nothing: this epoch's last.pt (and best.pt) are written before the error.
                self._write(trainer, last, best, also, improved)
                raise
            kept: Path | None = None
            if ranked:
                kept = self._update_top_k(trainer, weights, value, name)  # type: ignore[arg-type]
            elif keep_all:
                kept = weights / name
            if periodic:
                kept = weights / name
                self.periodic.append(name)
            if kept is not None:
                also.append(kept)
        self._write(trainer, last, best, also, improved)

    def _write(self, trainer: trainhooks.Trainer, last: Path, best: Path, also: list[Path], improved: bool) -> None:
        # One checkpoint, serialised once, copied to best.pt / the epoch's file when those are due too.
        # Behind training: snapshot now, serialise and write on a background thread; the last.pt
        # before it stays as previous.pt (auto-resume's fallback when last.pt is damaged).
        trainer.save_checkpoint(last, also=also, background=True, previous=last.with_name("previous.pt"))
        trainer.log_artifact("last.pt", last)
        if improved:
            trainer.log_artifact("best.pt", best)

    def _counts(self, value: float, trainer: trainhooks.Trainer, monitor: Monitor | None) -> bool:
        """May ``value`` count as best at all? Not NaN, and past the initial threshold."""
        if math.isnan(value):
            self._nan_seen = True
            if not self._warned_nan and monitor is not None:
                self._warned_nan = True
                warnings.warn(
                    f"{self._who}: the monitored metric {monitor.metric!r} is NaN at epoch {trainer.epoch + 1}; "
                    "a NaN never counts as best (last.pt is still written)",
                    RuntimeWarning,
                    stacklevel=4,
                )
            return False
        self._finite_seen = True
        threshold = self.initial_threshold
        if threshold is None or monitor is None:
            return True
        return value < threshold if monitor.mode == "min" else value > threshold

    def _file_name(self, trainer: trainhooks.Trainer) -> str:
        """This epoch's file name from the template; ``-v1``, ``-v2``... when a file this run
        keeps has it already. A field naming no metric is a :class:`ConfigError`."""
        template = self.filename
        fields: dict[str, Any] = {**trainer.metrics, "epoch": trainer.epoch + 1, "step": trainer.global_step}
        try:
            name = _FieldFormatter().vformat(template, (), fields)
        except KeyError as exc:
            metrics = ", ".join(sorted(trainer.metrics)) or "none"
            raise ConfigError(
                f"{self._who}: filename {template!r} names {exc.args[0]!r}, which is not a metric of epoch "
                f"{trainer.epoch + 1} (fields: epoch, step; metrics: {metrics})"
            ) from None
        except (ValueError, TypeError, IndexError) as exc:
            raise ConfigError(f"{self._who}: filename {template!r} cannot be filled in: {exc}") from None
        if name in RESERVED or "/" in name or "\\" in name:
            raise ConfigError(f"{self._who}: filename {template!r} gives {name!r}, which is not a free file name")
        taken = {n for _, _, n in self.top} | set(self.periodic)
        stem, version = name[: -len(".pt")], 0
        while name in taken:
            version += 1
            name = f"{stem}-v{version}.pt"
        return name

    def _read(self, trainer: trainhooks.Trainer, monitor: Monitor) -> float | None:
        if monitor.metric in trainer.metrics:
            return float(trainer.metrics[monitor.metric])
        if not self._warned_missing and not logged_earlier(trainer, monitor.metric):
            self._warned_missing = True
            warnings.warn(
                f"{self._who}: monitored metric {monitor.metric!r} is not in trainer.metrics "
                f"(available: {', '.join(sorted(trainer.metrics))}); saving last.pt only",
                RuntimeWarning,
                stacklevel=3,
            )
        return None

    def _update_top_k(self, trainer: trainhooks.Trainer, weights: Path, value: float, name: str) -> Path | None:
        """Rank this epoch among the top k; delete files that fell out (never a periodic one);
        the file to write, if any."""
        monitor = self.monitor
        assert monitor is not None
        sign = 1.0 if monitor.mode == "min" else -1.0
        candidate = (value, trainer.epoch, name)
        ranked = sorted([*self.top, candidate], key=lambda t: (sign * t[0], t[1]))
        keep = ranked if self.save_top_k == -1 else ranked[: self.save_top_k]
        for _, _, dropped in set(self.top) - set(keep):
            if dropped not in self.periodic:
                (weights / dropped).unlink(missing_ok=True)
        self.top = keep
        return weights / name if candidate in keep else None

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"top": [list(t) for t in self.top], "periodic": list(self.periodic)}
        monitor = self.monitor
        if monitor is not None:
            state["monitor"] = monitor.state_dict()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        monitor = self.monitor
        if monitor is not None:
            monitor.load_state_dict(state_dict.get("monitor", {}))
        self.top = [(float(v), int(e), str(n)) for v, e, n in state_dict.get("top", [])]
        self.periodic = [str(n) for n in state_dict.get("periodic", [])]
        self._finite_seen = monitor is not None and monitor.best is not None
