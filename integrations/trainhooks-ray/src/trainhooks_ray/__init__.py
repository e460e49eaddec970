"""``ray``: run ``trainhooks fit`` on Ray Train's ``TorchTrainer``; Ray checkpoints and restarts it.

Start a run with the command this distribution installs::

    trainhooks-ray fit --workers 4 [--max-failures 2] [--gpu] -- --epochs 10 -p early_stopping

Every Ray Train worker then runs ``trainhooks fit ... -p ray`` itself (as under torchrun, each
worker discovers the same entry-point plugins). Ray creates the process group (gloo on CPU,
nccl on GPU) and sets ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``; trainhooks uses that group as it is
(DDP, sharded data, reduced metrics, agreed stops: see docs/distributed.md).

This plugin (:class:`RayReporter`, enabled in the workers by ``trainhooks-ray``):

* every epoch, on **every** rank, reports the epoch's metrics (identical on all ranks: they are
  reduced) with ``ray.train.report`` (a barrier across the worker group) after the other
  ``on_fit_epoch_end`` implementations (``trylast``), so after the checkpoint plugin wrote
  ``weights/last.pt``;
* on rank 0 attaches that newest ``last.pt`` (reported by ``on_model_save`` during this epoch) as
  the epoch's Ray checkpoint; the other ranks attach none;
* when Ray restarts the worker group (``FailureConfig(max_failures=N)``, ``--max-failures N``),
  the launcher resumes every rank from ``ray.train.get_checkpoint()`` with trainhooks' exact
  resume: the same epochs, the same weights as an uninterrupted run, each epoch once in
  metrics.csv.

``ray`` is imported only inside Ray workers and by ``trainhooks-ray``, never when trainhooks
discovers the plugin.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

import trainhooks

try:
    __version__ = metadata.version("trainhooks-ray")
except metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

__all__ = ["CHECKPOINT_FILE", "WORKER_ENV", "RayReporter", "__version__"]

WORKER_ENV = "TRAINHOOKS_RAY_WORKER"
"""Set to ``1`` by the launcher inside Ray Train workers."""

CHECKPOINT_FILE = "last.pt"
"""The file inside every Ray checkpoint directory this plugin reports."""


class RayReporter(trainhooks.Callback):
    """Report each epoch to Ray Train; rank 0 attaches the newest ``last.pt`` as the checkpoint."""

    default_enabled = False

    def __init__(self) -> None:
        self._newest: Path | None = None
        self.reports = 0

    def configure(self, trainer: trainhooks.Trainer) -> None:
        if os.environ.get(WORKER_ENV) != "1":
            raise trainhooks.ConfigError(
                "the ray plugin runs inside Ray Train workers: start the run with "
                "'trainhooks-ray fit --workers N -- [trainhooks fit options]', which enables it there"
            )

    def on_pretrain_routine_start(self, trainer: trainhooks.Trainer) -> None:
        self._newest, self.reports = None, 0

    def on_model_save(self, trainer: trainhooks.Trainer, path: Path) -> None:
        if Path(path).name == CHECKPOINT_FILE:
            self._newest = Path(path)

    @trainhooks.hookimpl(trylast=True)
    def on_fit_epoch_end(self, trainer: trainhooks.Trainer) -> None:
        import ray.train

        metrics: dict[str, Any] = {k: float(v) for k, v in trainer.metrics.items()}
        metrics["epoch"] = trainer.epoch + 1
        metrics["global_step"] = trainer.global_step
        # Checkpoints are written behind training: wait for this epoch's write, so that
        # on_model_save has named its file before it is attached.
        trainer.flush_checkpoints()
        newest, self._newest = self._newest, None
        staging = None
        checkpoint = None
        if trainer.is_global_zero and newest is not None and newest.is_file():
            # A directory of its own (Ray uploads whole directories), holding this epoch's file.
            staging = Path(tempfile.mkdtemp(prefix="trainhooks-ray-ckpt-"))
            shutil.copy2(newest, staging / CHECKPOINT_FILE)
            checkpoint = ray.train.Checkpoint.from_directory(str(staging))
        try:
            ray.train.report(metrics, checkpoint=checkpoint)  # a barrier: every rank reports
        finally:
            if staging is not None:
                shutil.rmtree(staging, ignore_errors=True)
        self.reports += 1
