"""``wandb``: log a trainhooks run to Weights & Biases, offline by default.

Opt-in: ``trainhooks fit -p wandb`` (API: ``Trainer(plugins=["wandb"])`` or
``plugins=[WandbTracker(project="digits")]``).

Mode: ``--wandb-mode`` if given, else ``WANDB_MODE`` if set, else ``offline``: the run is written
to ``<save-dir>/wandb/offline-run-*/`` and needs no account and no API key; upload it later with
``wandb sync <save-dir>/wandb/offline-run-*``. ``--wandb-mode online`` (or ``WANDB_MODE=online``)
logs live to the W&B server you are logged in to; ``disabled`` turns every call into a no-op
(W&B's own ``mode="disabled"``: nothing is written anywhere).

What is logged, by :class:`trainhooks.TrackerSink` (the same data as the mlflow plugin): the
trainer settings and every enabled plugin's options as the run config; every epoch's metrics
with ``epoch`` as their x-axis (and per-step values, ``_step`` suffix, against ``global_step``,
when per-step logging is on); ``task:NAME`` and ``trainhooks:VERSION`` run tags, and ``task``,
``trainhooks_version``, ``stop_reason`` and ``status`` (FINISHED, FAILED, KILLED) in the run
summary; ``weights/best.pt``, ``weights/last.pt``, ``results.png`` and ``metrics.csv`` as run
files at the end; exit code 0 for a finished run, 1 for a failed one, 130/143 for one a signal
ended. A resumed fit continues the same W&B run id (``resume="allow"``). Rank zero only.
``wandb`` is imported when a run opens, not when trainhooks discovers the plugin.
"""

from __future__ import annotations

import os
import shutil
from importlib import metadata
from pathlib import Path
from typing import Any

import trainhooks

try:
    __version__ = metadata.version("trainhooks-wandb")
except metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

__all__ = ["MODES", "WandbTracker", "__version__"]

MODES = ("online", "offline", "disabled")
_EXIT_CODES = {"FINISHED": 0, "FAILED": 1}


class WandbTracker(trainhooks.TrackerSink):
    """A :class:`trainhooks.TrackerSink` writing a W&B run (offline unless configured otherwise)."""

    def __init__(
        self,
        project: str | None = None,
        mode: str | None = None,
        entity: str | None = None,
        dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self._given: dict[str, Any] = {
            "wandb_project": project,
            "wandb_mode": mode,
            "wandb_entity": entity,
            "wandb_dir": dir,
        }
        self.project = project or "trainhooks"
        self.mode: str | None = mode
        self.entity = entity
        self.dir: Path | None = Path(dir) if dir is not None else None
        self.run: Any = None
        self._trainer: Any = None

    def add_options(self, parser: Any) -> None:
        parser.add_option("--wandb-project", default="trainhooks", help="W&B project name")
        parser.add_option(
            "--wandb-mode",
            default=None,
            choices=list(MODES),
            help="online, offline or disabled (default: $WANDB_MODE, else offline)",
        )
        parser.add_option("--wandb-entity", default=None, help="W&B entity (team or user) for online runs")
        parser.add_option("--wandb-dir", default=None, help="where W&B writes its run folder (default: <save-dir>)")

    def configure(self, trainer: trainhooks.Trainer) -> None:
        opts = {k: (v if v is not None else trainer.options.get(k)) for k, v in self._given.items()}
        mode = opts["wandb_mode"] or os.environ.get("WANDB_MODE", "").strip() or "offline"
        if mode == "dryrun":  # W&B's old spelling of offline
            mode = "offline"
        if mode not in MODES:
            source = "WANDB_MODE" if not opts["wandb_mode"] else "--wandb-mode"
            raise trainhooks.ConfigError(f"wandb: {source}={mode!r} is not one of {', '.join(MODES)}")
        project = opts["wandb_project"] or "trainhooks"
        if not str(project).strip():
            raise trainhooks.ConfigError("wandb: --wandb-project must not be empty")
        if opts["wandb_dir"] is not None and not str(opts["wandb_dir"]).strip():
            raise trainhooks.ConfigError("wandb: --wandb-dir is empty; leave it out to write into the run directory")
        self.mode, self.project, self.entity = mode, str(project), opts["wandb_entity"]
        self.dir = Path(opts["wandb_dir"]) if opts["wandb_dir"] else None
        try:
            import wandb  # noqa: F401
        except ImportError as exc:
            raise trainhooks.ConfigError("wandb plugin needs wandb: pip install trainhooks-wandb") from exc

    @property
    def disabled(self) -> bool:
        return self.mode == "disabled"

    # ------------------------------------------------------------------ the sink
    def open_run(self, trainer: trainhooks.Trainer, run_id: str | None) -> str:
        import wandb

        self._trainer = trainer
        if self.disabled:
            self.run = wandb.init(mode="disabled")
            return run_id or "disabled"
        directory = (self.dir or Path(trainer.save_dir)).resolve()
        directory.mkdir(parents=True, exist_ok=True)
        settings = wandb.Settings(console="off", silent=True, x_disable_stats=True, disable_git=True)
        self.run = run = wandb.init(
            project=self.project,
            entity=self.entity,
            name=trainer.name,
            dir=str(directory),
            mode=self.mode,
            id=run_id,
            resume="allow" if run_id else None,
            settings=settings,
            reinit="create_new",
        )
        # Two x-axes: epoch metrics against "epoch", per-step values against "global_step"
        # (W&B's own step must only increase, and the two series interleave).
        run.define_metric("epoch")
        run.define_metric("global_step")
        run.define_metric("*", step_metric="epoch")
        self._step_axes: set[str] = set()
        return str(run.id)

    def log_params(self, params: dict[str, Any]) -> None:
        if not self.disabled:
            self.run.config.update(params, allow_val_change=True)

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        if not self.disabled:
            self.run.log({**metrics, "epoch": step})

    def log_step_metrics(self, metrics: dict[str, float], step: int) -> None:
        if self.disabled:
            return
        for name in metrics.keys() - self._step_axes:
            self.run.define_metric(name, step_metric="global_step")
            self._step_axes.add(name)
        self.run.log({**metrics, "global_step": step})

    def set_tags(self, tags: dict[str, str]) -> None:
        if self.disabled:
            return
        for key, value in tags.items():
            self.run.summary[key] = value
        short = {"task": "task", "trainhooks_version": "trainhooks"}
        new = [f"{short[k]}:{v}" for k, v in tags.items() if k in short]
        self.run.tags = tuple(dict.fromkeys([*self.run.tags, *new]))

    def log_artifact(self, path: Path, name: str) -> None:
        if self.disabled:
            return
        # A copy in the run's files/ folder (not a symlink): the run holds the file as it was at
        # the end, and `wandb sync` uploads it.
        target = Path(self.run.dir) / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
        self.run.save(str(target), base_path=self.run.dir, policy="now")

    def close_run(self, status: str) -> None:
        run, self.run = self.run, None
        if run is None:
            return
        if self.disabled:
            run.finish()
            return
        run.summary["status"] = status
        code = _EXIT_CODES.get(status)
        if code is None:  # KILLED: the shell's code for the signal
            reason = (self._trainer.stop_reason or "") if self._trainer is not None else ""
            code = 143 if "SIGTERM" in reason else 130
        run.finish(exit_code=code)
        import wandb

        if wandb.run is None:
            # finish() can return before W&B's service has written the last records of the
            # offline log; shutting the service down flushes and closes the file. Only when no
            # other run of this process (the user's own) still needs the service.
            wandb.teardown()
