"""What the run commands share: building the task and the Trainer from parsed arguments."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainhooks.cli.args import NEVER
from trainhooks.plugin_manager import PluginManager

if TYPE_CHECKING:
    from trainhooks.trainer import Trainer


def _make_trainer(
    args: argparse.Namespace, plugin_manager: PluginManager, plugin_options: dict[str, Any], *, training: bool
) -> tuple[Trainer, Any]:
    """The task and a Trainer for it, from a run command's arguments; outside fit, with the
    weights (``--weights``, or the latest run's) loaded."""
    from trainhooks.tasks import load_task
    from trainhooks.trainer import Trainer

    params: dict[str, Any] = {"batch_size": args.batch_size, "seed": args.seed}
    if training:
        params.update(lr=args.lr, epochs=args.epochs)
    if not training:
        resolve_weights(args)
    task = load_task(args.task, **params)
    trainer = Trainer(
        task.model,
        loss_fn=task.loss_fn,
        optimizer=task.optimizer,
        lr_scheduler=task.lr_scheduler,
        epochs=(args.epochs or 10) if training else 1,
        device=args.device,
        save_dir=_save_dir(args),
        seed=args.seed,
        name=getattr(args, "name", None),
        options=plugin_options,
        plugin_manager=plugin_manager,
        profile_hooks=getattr(args, "profile_hooks", False),
        verbose=not args.quiet,
        non_critical=[n.strip() for item in getattr(args, "non_critical", []) for n in item.split(",") if n.strip()],
        **_distributed_args(args),
        **_loop_control_args(args),
    )
    if training:  # recorded in every checkpoint: --resume continues with the same task and data
        trainer.run_settings.update(task=args.task, batch_size=args.batch_size, lr=args.lr)
    # What the run trains, for plugins that title things (the plot: "digits · run train3") and
    # trackers' 'task' tag; a declared Trainer attribute (None from the Python API).
    trainer.task_name = task.name
    if task.example_input is not None:
        trainer.example_input = task.example_input
    if not training:
        _load_weights(trainer, args.weights)
    return trainer, task


def _save_dir(args: argparse.Namespace) -> Path:
    """``--save-dir`` (a resume has set it to the run it continues: cli.resume.apply_recorded);
    else the next free ``runs/<command>``."""
    from trainhooks.rundir import increment_dir

    if args.save_dir is not None:
        return Path(args.save_dir)
    # fit writes where the Trainer API does (runs/train, runs/train2, ...), so the docs' paths hold.
    return increment_dir(Path("runs") / ("train" if args.command == "fit" else args.command))


def _load_weights(trainer: Trainer, path: Path) -> None:
    """Load ``path`` into the trainer's model; a mismatch names its first differences."""
    from trainhooks.checkpointing import describe_mismatch, load_weights
    from trainhooks.errors import CheckpointError

    state = load_weights(path)
    try:
        trainer.unwrapped_model.load_state_dict(state)
    except RuntimeError as exc:
        differences = describe_mismatch(trainer.unwrapped_model, state)  # torch's first line says none
        raise CheckpointError(f"checkpoint {path} does not fit this model (the task's): {differences}") from exc


def resolve_weights(args: argparse.Namespace, runs: Path = Path("runs")) -> None:
    """With no ``--weights``, set ``args.weights`` to those of the latest run under ``runs/``,
    as its ``run.json`` names them (trainhooks.manifest): ``best.pt``, else ``last.pt``. A line
    on stderr says which file was chosen, and why.

    :raises ConfigError: no run to default to.
    """
    from trainhooks import manifest
    from trainhooks.errors import ConfigError

    if args.weights is not None:
        return
    latest = next(((m, w) for m in manifest.runs_in(runs) if (w := m.weights()) is not None), None)
    if latest is None:
        raise ConfigError(
            f"no --weights given and no run in {runs}/ whose run.json names a best.pt or last.pt that exists; "
            "pass --weights FILE (a checkpoint or a state_dict file)"
        )
    run, (name, args.weights) = latest
    why = f"{name} of the latest run, {run.run_dir}"
    if run.status != "finished":
        why += f", which {'is still running or was killed' if run.status == 'running' else run.status}"
    print(f"trainhooks: using {args.weights} ({why}; --weights FILE to choose)", file=sys.stderr)


def _distributed_args(args: argparse.Namespace) -> dict[str, Any]:
    """Trainer keywords from ``--precision``, ``--dist-timeout``, ``--dist-sync-every`` (fit only)."""
    given = {
        "precision": getattr(args, "precision", None),
        "dist_timeout": getattr(args, "dist_timeout", None),
        "dist_sync_every": getattr(args, "dist_sync_every", None),
        "stop_timeout": getattr(args, "stop_timeout", None),
        "preempt_signal": getattr(args, "preempt_signal", None),
        "overwrite": getattr(args, "overwrite", None) or None,
    }
    return {k: v for k, v in given.items() if v is not None}


LOOP_CONTROLS = (
    "accumulate_grad_batches",
    "max_steps",
    "min_epochs",
    "min_steps",
    "val_every_n_epochs",
    "val_every_n_steps",
    "limit_train_batches",
    "limit_val_batches",
    "log_every_n_steps",
    "dry_run",
    "compile",
    "deterministic",
)
"""Flags of ``fit`` that are Trainer arguments of the same name (see trainhooks.controls)."""


def _loop_control_args(args: argparse.Namespace) -> dict[str, Any]:
    """Trainer keywords from the loop-control flags that were given (fit only)."""
    given = {name: getattr(args, name, None) for name in LOOP_CONTROLS}
    controls = {k: v for k, v in given.items() if v is not None and v is not False}
    if controls.get("val_every_n_epochs") == NEVER:  # --val-every-n-epochs never
        controls["val_every_n_epochs"] = None
    return controls
