"""The tracker sink: one base class that turns a training run into an experiment-tracker run.

Every experiment tracker (MLflow, Weights & Biases, Neptune, Comet, ClearML, ...) wants the same
five things from a training loop: *open a run*, *log parameters*, *log metrics with a step*, *log
artifact files*, *close the run with a status*. What differs is only the client calls. So a
tracker plugin subclasses :class:`TrackerSink` and implements those five methods; the class
itself implements the hooks and gets the lifecycle right once, for every tracker:

* the run opens at ``on_train_start``, after a resume has restored the plugin's state: a
  resumed fit continues the *same* tracker run (the run id travels in the checkpoint, under
  ``checkpoint["plugins"][NAME]["run_id"]``);
* parameters: the trainer's settings and the options of every enabled plugin
  (:func:`run_params`), logged once, when the run is created;
* tags: ``task``, ``trainhooks_version`` at the start, ``stop_reason`` at the end;
* metrics: every epoch's final row (the ``on_log`` call with ``epoch_end`` true, after every
  ``on_fit_epoch_end``, so what any plugin logged there is included) at step = epoch number
  (1-based, as in metrics.csv). The row of an epoch cut short is logged at the end of the run
  only if the run FINISHED (a ``should_stop`` or ``max_steps`` mid-epoch); after a signal or a
  failure it is left out, because ``--resume`` trains the rest of that epoch and logs its real
  row at the same step (a tracker cannot overwrite a logged point); a resume from a checkpoint
  older than the run's last point skips what the run already holds, when the tracker can tell
  (:meth:`TrackerSink.logged_through`). And every ``log_every_n_steps`` steps the per-step values of
  ``on_log`` at step = ``trainer.global_step``, named with a ``_step`` suffix
  (``train/loss_step``) so they never mix with the epoch series of the same metric;
* artifacts: the files the run announced (``trainer.log_artifact``: ``metrics.csv``,
  ``results.png``) and every checkpoint file ``on_model_save`` reported (``weights/last.pt``,
  ``weights/best.pt``), logged in ``teardown``, when they exist and hold their final content;
* the status: ``FINISHED`` on a normal end (all epochs or a ``should_stop``), ``KILLED`` when a
  signal or Ctrl-C ended it, ``FAILED`` on an exception;
* global rank zero only: under torchrun or Ray the other ranks never touch the tracker.

A minimal tracker (the whole plugin)::

    class PrintTracker(trainhooks.TrackerSink):
        def open_run(self, trainer, run_id):
            return run_id or "run-1"
        def log_params(self, params): print(params)
        def log_metrics(self, metrics, step): print(step, metrics)
        def log_artifact(self, path, name): print("artifact", name, path)
        def close_run(self, status): print(status)

``set_tags`` has a default that does nothing; override it when the tracker has tags.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainhooks.callbacks import Callback
from trainhooks.hookspecs.markers import hookimpl

if TYPE_CHECKING:
    from trainhooks.trainer import Trainer

FINISHED = "FINISHED"
FAILED = "FAILED"
KILLED = "KILLED"
STATUSES = (FINISHED, FAILED, KILLED)
"""The run statuses :meth:`TrackerSink.close_run` receives (MLflow's names)."""

ParamValue = str | int | float | bool | None


def run_params(trainer: Trainer) -> dict[str, ParamValue]:
    """The parameters a tracker records for a run: trainer settings and enabled plugins' options.

    Trainer settings are plain keys (``epochs``, ``optimizer``, ``lr``, ``batch_size``, ``seed``,
    ``device``, ``precision``, ``world_size``, ...); ``plugins`` lists the enabled plugins; each
    option an enabled plugin declared is ``PLUGIN.OPTION`` (``early_stopping.patience``) with its
    resolved value. Options of installed plugins that are not enabled are left out: they do not
    affect the run.
    """
    optimizer = trainer.optimizer
    group = optimizer.param_groups[0] if optimizer.param_groups else {}
    lr = group.get("initial_lr", group.get("lr"))
    params: dict[str, ParamValue] = {
        "epochs": trainer.epochs,
        "optimizer": type(optimizer).__name__,
        "lr": float(lr) if isinstance(lr, (int, float)) else None,
        "batch_size": getattr(trainer._train_data, "batch_size", None),
        "seed": trainer.seed,
        "device": str(trainer.device),
        "precision": str(trainer.precision),
        "grad_clip_norm": trainer.grad_clip_norm,
        "world_size": trainer.world_size,
        "model": type(trainer.unwrapped_model).__name__,
    }
    plugin_manager = trainer.plugin_manager
    enabled = [
        name for name, rec in plugin_manager.records.items() if rec.status == "active" and rec.source != "callback"
    ]
    params["plugins"] = ",".join(sorted(enabled))
    for name in sorted(enabled):
        for spec in plugin_manager.records[name].options or ():
            value = trainer.options.get(spec.dest, spec.default)
            params[f"{name}.{spec.dest}"] = (
                value if isinstance(value, (str, int, float, bool)) or value is None else str(value)
            )
    return params


def exception_status(exception: BaseException) -> str:
    """``KILLED`` for Ctrl-C / a signal turned into an exception, else ``FAILED``."""
    seen: BaseException | None = exception
    while seen is not None:
        if isinstance(seen, (KeyboardInterrupt, SystemExit)):
            return KILLED
        seen = seen.__cause__
    return FAILED


class TrackerSink(Callback):
    """Base class of experiment-tracker plugins: implement five methods, get the run lifecycle.

    Subclasses implement :meth:`open_run`, :meth:`log_params`, :meth:`log_metrics`,
    :meth:`log_artifact` and :meth:`close_run` (and optionally :meth:`set_tags`). They are
    opt-in (``default_enabled = False``: ``trainhooks fit -p NAME``) and run on global rank zero
    only. Attributes a subclass may read: ``run_id`` (the open run, or None), ``resumed`` (the
    run was continued from a checkpoint), ``status`` (set when the run ended).
    """

    default_enabled = False
    rank_zero_only = True

    run_id: str | None = None
    resumed: bool = False
    status: str | None = None
    _resume_id: str | None = None
    _error: str | None = None

    # ------------------------------------------------------------------ what a tracker implements
    def open_run(self, trainer: Trainer, run_id: str | None) -> str:
        """Start a tracker run, or continue ``run_id`` (from a resumed checkpoint); return its id.

        A ``run_id`` the tracker no longer knows should start a new run (with a warning) rather
        than fail the training.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement open_run(trainer, run_id)")

    def log_params(self, params: dict[str, ParamValue]) -> None:
        """Record the run's parameters (called once, for a new run)."""
        raise NotImplementedError(f"{type(self).__name__} must implement log_params(params)")

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        """Record metric values (plain floats, non-finite values included) at ``step``."""
        raise NotImplementedError(f"{type(self).__name__} must implement log_metrics(metrics, step)")

    def log_artifact(self, path: Path, name: str) -> None:
        """Upload/copy the file ``path``; ``name`` is where it goes in the run (``weights/last.pt``)."""
        raise NotImplementedError(f"{type(self).__name__} must implement log_artifact(path, name)")

    def close_run(self, status: str) -> None:
        """End the run with ``status``: ``"FINISHED"``, ``"FAILED"`` or ``"KILLED"``."""
        raise NotImplementedError(f"{type(self).__name__} must implement close_run(status)")

    def log_step_metrics(self, metrics: dict[str, float], step: int) -> None:
        """Record per-step values (names end in ``_step``) at ``step`` = global step.

        Defaults to :meth:`log_metrics`; a tracker whose runs have one increasing step counter
        (W&B) overrides it to put these on their own axis.
        """
        self.log_metrics(metrics, step)

    def set_tags(self, tags: dict[str, str]) -> None:
        """Attach string tags to the run (``task``, ``trainhooks_version``, ``stop_reason``)."""

    def logged_through(self) -> tuple[int, int] | None:
        """(last epoch, last global step) the continued run already holds, or None if unknown.

        Called once, when a resumed fit continued a run. A resume from a checkpoint older than
        the run's last logged point (the ``last.pt`` of an epoch before a crash) trains those
        steps again; what the tracker already holds up to here is not logged a second time.
        A tracker that can read its run back (MLflow) implements it; the default knows nothing.
        """
        return None

    # ------------------------------------------------------------------ state (resume)
    def state_dict(self) -> dict[str, Any]:
        """The run id, saved in every checkpoint so a resumed fit continues the same run."""
        return {"run_id": self.run_id}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        run_id = state_dict.get("run_id")
        self._resume_id = run_id if isinstance(run_id, str) and run_id else None

    # ------------------------------------------------------------------ the lifecycle (hooks)
    def on_pretrain_routine_start(self, trainer: Trainer) -> None:
        # A new fit() starts clean; a resume (which follows) brings the run id back.
        self.run_id, self.resumed, self.status = None, False, None
        self._resume_id, self._error = None, None
        self._files: dict[str, Path] = {}
        self._cut_row: tuple[dict[str, float], int] | None = None
        self._through: tuple[int, int] | None = None

    def on_train_start(self, trainer: Trainer) -> None:
        resume_id = self._resume_id
        self.run_id = self.open_run(trainer, resume_id)
        self.resumed = resume_id is not None and self.run_id == resume_id
        self._through = self.logged_through() if self.resumed else None
        import trainhooks

        task = getattr(trainer, "task_name", None) or "custom"
        self.set_tags({"task": str(task), "trainhooks_version": trainhooks.__version__})
        if not self.resumed:
            self.log_params(run_params(trainer))

    @hookimpl(optionalhook=True)
    def on_log(self, trainer: Trainer, metrics: dict[str, float], step: int, epoch_end: bool) -> None:
        if self.run_id is None:
            return
        through = getattr(self, "_through", None)
        if epoch_end:  # the epoch's final row, logged at the epoch number (1-based)
            if through is not None and trainer.epoch + 1 <= through[0]:
                return  # the run holds this epoch already (a resume from an older checkpoint)
            row = {k: float(v) for k, v in metrics.items()}
            if not trainer.epoch_completed:
                # Cut short (a signal, a stop mid-epoch): a resume trains the rest of this epoch
                # and logs its real row at the same step, so this one waits for the end of the run.
                self._cut_row = (row, trainer.epoch + 1)
                return
            self.log_metrics(row, trainer.epoch + 1)
            return
        if through is not None and step <= through[1]:
            return
        named = {(k if k.endswith("_step") else f"{k}_step"): float(v) for k, v in metrics.items()}
        self.log_step_metrics(named, int(step))

    def on_model_save(self, trainer: Trainer, path: Path) -> None:
        path = Path(path)
        self.__dict__.setdefault("_files", {})[f"weights/{path.name}"] = path

    @hookimpl(trylast=True)
    def on_train_end(self, trainer: Trainer) -> None:
        self.status = KILLED if trainer.stopped_by == "signal" else FINISHED

    def on_exception(self, trainer: Trainer, exception: BaseException) -> None:
        self.status = exception_status(exception)
        self._error = f"{type(exception).__name__}: {exception}"

    @hookimpl(trylast=True)
    def teardown(self, trainer: Trainer, stage: str) -> None:
        if stage != "fit" or self.run_id is None:
            return
        status = self.status or FAILED
        try:
            cut, self._cut_row = getattr(self, "_cut_row", None), None
            if cut is not None and status == FINISHED:  # a final stop mid-epoch: nothing resumes it
                self.log_metrics(*cut)
            files: dict[str, Path] = {}
            for name, path in trainer.artifacts.items():
                if Path(path).is_file() and not name.startswith("export:"):
                    files[name if "/" in name or not name.endswith(".pt") else f"weights/{name}"] = Path(path)
            files.update(getattr(self, "_files", {}))
            for name, path in sorted(files.items()):
                if path.is_file():
                    self.log_artifact(path, name)
            reason = trainer.stop_reason if status != FAILED else self._error
            if reason:
                self.set_tags({"stop_reason": str(reason)[:4000]})
        finally:
            self.close_run(status)
            self.status = status
            self.run_id = None
