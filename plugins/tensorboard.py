"""``tensorboard``: real TensorBoard event files via ``torch.utils.tensorboard``.

Opt-in (needs the ``tensorboard`` package: ``pip install "trainhooks[tensorboard]"``):
``trainhooks fit -p tensorboard``, then ``tensorboard --logdir runs``.

Writes every metric in ``trainer.metrics`` after each epoch, tagged by its name (``train/loss``,
``val/acc``, ``lr``) at step = epoch number (1-based, as in metrics.csv); the per-step values of
the ``on_log`` hook (every ``log_every_n_steps`` optimizer steps, ``--log-every-n-steps``: the
step's ``train/loss``, ``lr``, values plugins logged, ``val/*`` of a validation every
``val_every_n_steps``) tagged with a ``_step`` suffix (``train/loss_step``) at step = global
step, as the tracker plugins name them; optionally the training loss at its own cadence too
(``--tb-log-every-n-steps N``, tag ``train/loss_step``; a step ``on_log`` already wrote is not
written twice); the model graph at the first batch (``--no-tb-graph`` to skip); and the run's
hyper-parameters with the final metrics at the end (the HPARAMS tab). Files go to
``save_dir/tensorboard`` (``--tb-dir``). Runs on global rank zero only.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import trainhooks
from trainhooks import Option


class TensorBoard(trainhooks.Callback):
    """Log scalars, graph and hparams to TensorBoard event files."""

    default_enabled = False
    rank_zero_only = True

    log_dir = Option(Path, None, "event file directory (default: <save-dir>/tensorboard)", flag="tb-dir")
    graph = Option(bool, True, "log the model graph (--no-tb-graph: do not)", flag="tb-graph")
    every_n_steps = Option(int, 0, "also log the step loss every N steps (0: off)", min=0, flag="tb-log-every-n-steps")

    writer: Any = None
    _graph_pending = False

    def configure(self, trainer: trainhooks.Trainer) -> None:
        try:
            import tensorboard  # noqa: F401
        except ImportError as exc:
            raise trainhooks.ConfigError(
                'tensorboard plugin needs the tensorboard package: pip install "trainhooks[tensorboard]"'
            ) from exc

    def _open(self, trainer: trainhooks.Trainer) -> Any:
        if self.writer is None:
            from torch.utils.tensorboard import SummaryWriter

            log_dir = self.log_dir or trainer.save_dir / "tensorboard"
            self.writer = SummaryWriter(log_dir=str(log_dir))
            trainer.log_artifact("tensorboard", log_dir)
        return self.writer

    def on_train_start(self, trainer: trainhooks.Trainer) -> None:
        self._open(trainer)
        self._graph_pending = self.graph

    def on_train_batch_start(self, trainer: trainhooks.Trainer) -> None:
        # The first batch is where an example input is sure to exist (trainer.example_input).
        if self._graph_pending:
            self._graph_pending = False
            self._log_graph(trainer)

    def _log_graph(self, trainer: trainhooks.Trainer) -> None:
        writer = self._open(trainer)
        if trainer.example_input is not None:
            import torch

            try:
                model = trainer.unwrapped_model
                example = trainer.example_input.to(next(model.parameters()).device)
                with torch.no_grad(), warnings.catch_warnings():
                    warnings.simplefilter("ignore", DeprecationWarning)  # add_graph traces with torch.jit
                    writer.add_graph(model, example)
            except Exception as exc:  # a graph is a nicety: never fail training for it
                warnings.warn(f"tensorboard: could not trace the model graph ({exc})", RuntimeWarning, stacklevel=2)

    def on_train_batch_end(self, trainer: trainhooks.Trainer, outputs: dict[str, Any]) -> None:
        n = self.every_n_steps
        step = trainer.global_step
        if n and step % n == 0:
            logs = trainer.log_every_n_steps
            if logs and step % logs == 0:
                return  # on_log (which follows) writes this step's train/loss_step
            self._open(trainer).add_scalar("train/loss_step", float(outputs["loss"].item()), step)

    @trainhooks.hookimpl(optionalhook=True)
    def on_log(self, trainer: trainhooks.Trainer, metrics: dict[str, float], step: int, epoch_end: bool) -> None:
        if epoch_end:  # the epoch series is written at on_fit_epoch_end, at step = epoch
            return
        writer = self._open(trainer)
        for key, value in metrics.items():
            writer.add_scalar(key if key.endswith("_step") else f"{key}_step", float(value), int(step))

    def on_fit_epoch_end(self, trainer: trainhooks.Trainer) -> None:
        writer = self._open(trainer)
        for key, value in trainer.metrics.items():
            writer.add_scalar(key, value, trainer.epoch + 1)
        writer.flush()

    def on_train_end(self, trainer: trainhooks.Trainer) -> None:
        writer = self._open(trainer)
        hparams: dict[str, Any] = {
            "epochs": trainer.epochs,
            "optimizer": type(trainer.optimizer).__name__,
            "lr": float(trainer.optimizer.param_groups[0].get("initial_lr", trainer.optimizer.param_groups[0]["lr"])),
        }
        if trainer.seed is not None:
            hparams["seed"] = trainer.seed
        final = {f"hparam/{k}": v for k, v in trainer.metrics.items()}
        writer.add_hparams(hparams, final, run_name=".")
        writer.flush()

    def teardown(self, trainer: trainhooks.Trainer) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
