"""``mlflow``: log a trainhooks run to MLflow (params, metrics, checkpoints, status).

Opt-in: ``trainhooks fit -p mlflow`` (API: ``Trainer(plugins=["mlflow"])`` or
``plugins=[MLflowTracker(experiment="digits")]``).

Where the run goes: ``--mlflow-tracking-uri`` if given, else ``MLFLOW_TRACKING_URI`` if set, else
a SQLite store inside the run directory (``sqlite:///<save-dir>/mlflow.db``, artifacts in
``<save-dir>/mlartifacts``). MLflow's file store (``./mlruns``) is deprecated and recent MLflow
refuses it, so it is never the default here. Browse with
``mlflow ui --backend-store-uri sqlite:///runs/train/mlflow.db``.

What is logged, by :class:`trainhooks.TrackerSink`: the trainer settings and every enabled
plugin's options as params; every epoch's metrics at step = epoch (and per-step values at step =
global step, ``_step`` suffix, when per-step logging is on); tags ``task``, ``stop_reason``,
``trainhooks_version``; ``weights/best.pt``, ``weights/last.pt``, ``results.png`` and
``metrics.csv`` as artifacts at the end; status FINISHED, FAILED or KILLED. A resumed fit
continues the same MLflow run. Rank zero only. ``mlflow`` is imported when a run opens, not when
trainhooks discovers the plugin.
"""

from __future__ import annotations

import os
import time
import warnings
from importlib import metadata
from pathlib import Path
from typing import Any

import trainhooks

try:
    __version__ = metadata.version("trainhooks-mlflow")
except metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

__all__ = ["MLflowTracker", "__version__"]

_PARAM_BATCH = 100  # MLflow accepts at most 100 params per log_batch call
_METRIC_BATCH = 1000


class MLflowTracker(trainhooks.TrackerSink):
    """A :class:`trainhooks.TrackerSink` writing to an MLflow tracking store."""

    def __init__(
        self, tracking_uri: str | None = None, experiment: str | None = None, run_name: str | None = None
    ) -> None:
        self._given: dict[str, Any] = {
            "mlflow_tracking_uri": tracking_uri,
            "mlflow_experiment": experiment,
            "mlflow_run_name": run_name,
        }
        self.tracking_uri: str | None = tracking_uri
        self.experiment = experiment or "trainhooks"
        self.run_name = run_name
        self.client: Any = None

    def add_options(self, parser: Any) -> None:
        parser.add_option(
            "--mlflow-tracking-uri",
            default=None,
            help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///<save-dir>/mlflow.db)",
        )
        parser.add_option("--mlflow-experiment", default="trainhooks", help="MLflow experiment name")
        parser.add_option("--mlflow-run-name", default=None, help="MLflow run name (default: the run's name)")

    def configure(self, trainer: trainhooks.Trainer) -> None:
        opts = {k: (v if v is not None else trainer.options.get(k)) for k, v in self._given.items()}
        uri = opts["mlflow_tracking_uri"]
        if uri is not None and not str(uri).strip():
            raise trainhooks.ConfigError("mlflow: --mlflow-tracking-uri is empty; leave it out for the default store")
        experiment = opts["mlflow_experiment"] or "trainhooks"
        if not str(experiment).strip():
            raise trainhooks.ConfigError("mlflow: --mlflow-experiment must not be empty")
        self.tracking_uri, self.experiment, self.run_name = uri, str(experiment), opts["mlflow_run_name"]
        try:
            import mlflow  # noqa: F401
        except ImportError as exc:
            raise trainhooks.ConfigError("mlflow plugin needs MLflow: pip install trainhooks-mlflow") from exc

    # ------------------------------------------------------------------ the sink
    def resolved_uri(self, trainer: trainhooks.Trainer) -> str:
        """The option, else ``MLFLOW_TRACKING_URI``, else the run directory's SQLite store."""
        uri = self.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI", "").strip()
        if uri:
            return uri
        return f"sqlite:///{(Path(trainer.save_dir).resolve() / 'mlflow.db').as_posix()}"

    def open_run(self, trainer: trainhooks.Trainer, run_id: str | None) -> str:
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException

        uri = self.resolved_uri(trainer)
        own_store = not (self.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI", "").strip())
        self.client = client = MlflowClient(tracking_uri=uri)
        if run_id is not None:
            try:
                client.get_run(run_id)
                client.update_run(run_id, status="RUNNING")
                return run_id
            except MlflowException as exc:
                warnings.warn(
                    f"mlflow: cannot continue run {run_id} of the checkpoint in {uri} ({exc}); starting a new run",
                    RuntimeWarning,
                    stacklevel=2,
                )
        found = client.get_experiment_by_name(self.experiment)
        if found is not None:
            experiment_id = found.experiment_id
        else:
            location = (Path(trainer.save_dir).resolve() / "mlartifacts").as_uri() if own_store else None
            experiment_id = client.create_experiment(self.experiment, artifact_location=location)
        run = client.create_run(experiment_id, run_name=self.run_name or trainer.name)
        return str(run.info.run_id)

    def logged_through(self) -> tuple[int, int] | None:
        """The run's last epoch and last per-step point, read back from the store (on resume)."""
        run = self.client.get_run(self.run_id)
        epoch = step = 0
        for key in run.data.metrics:
            last = max((m.step for m in self.client.get_metric_history(self.run_id, key)), default=0)
            if key.endswith("_step"):
                step = max(step, last)
            else:
                epoch = max(epoch, last)
        return epoch, step

    def log_params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(key, str(value)) for key, value in params.items()]
        for start in range(0, len(items), _PARAM_BATCH):
            self.client.log_batch(self.run_id, params=items[start : start + _PARAM_BATCH])

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(key, float(value), now, step) for key, value in metrics.items()]
        for start in range(0, len(items), _METRIC_BATCH):
            self.client.log_batch(self.run_id, metrics=items[start : start + _METRIC_BATCH])

    def set_tags(self, tags: dict[str, str]) -> None:
        from mlflow.entities import RunTag

        self.client.log_batch(self.run_id, tags=[RunTag(key, value) for key, value in tags.items()])

    def log_artifact(self, path: Path, name: str) -> None:
        folder = str(Path(name).parent)
        self.client.log_artifact(self.run_id, str(path), artifact_path=None if folder == "." else folder)

    def close_run(self, status: str) -> None:
        self.client.set_terminated(self.run_id, status=status)
