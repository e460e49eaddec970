"""Resume: what a checkpoint holds, and where a run picks up again.

* :func:`checkpoint_state` builds the checkpoint dict of a trainer (the format is described in
  :mod:`trainhooks.checkpointing`); :func:`restore` puts one back.
* :func:`prepare` loads, checks and plans a resume before ``fit`` writes anything (so a refused
  resume leaves the run directory alone); :func:`resume` then restores it inside ``fit``.
* :class:`EpochPosition` is where training is inside the current epoch: the batches done, the
  per-batch losses so far, the random state the epoch started with. A mid-epoch checkpoint
  records it, so that a resumed epoch trains on exactly the batches it had left.
* :func:`plan_resume` decides, from plain facts about the checkpoint and the new run, where to
  start and what to warn about. It is a pure function (no trainer, no files), tested with a
  table of cases in ``tests/test_resume_plan.py``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from trainhooks import checkpointing
from trainhooks.batches import loader_generator
from trainhooks.errors import CheckpointError, ConfigError

if TYPE_CHECKING:
    from trainhooks.trainer import Trainer

log = logging.getLogger("trainhooks")
resume_log = logging.getLogger("trainhooks.resume")
"""Where a quiet run resumes from (``Resuming from FILE (epoch E, step S)``), at INFO."""


# ---------------------------------------------------------------------- position in an epoch
@dataclass
class EpochPosition:
    """Where training is inside the current epoch (reset at each epoch start)."""

    completed: bool = False
    batches_done: int = 0
    """Batches trained on in this call (after a mid-epoch resume: since the resume)."""
    skipped: int = 0
    """Batches a mid-epoch resume skipped (trained on before the checkpoint)."""
    losses: list[torch.Tensor] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    rng_start: checkpointing.RawRngState | None = None
    """The random state the epoch started with (a resumed epoch replays its data order from it);
    converted to the checkpoint's form only when a mid-epoch checkpoint is written."""
    rng_at_cut: dict[str, Any] | None = None
    """The random state where an epoch cut short by a stop will pick up again."""
    at_step: tuple[int, int] | None = None
    """(batches done, losses recorded) at the last optimizer step: with gradient accumulation a
    checkpoint taken inside a group (only an emergency one can be) resumes at the group's start.
    None without accumulation, where every batch ends with a step (the hot loop keeps no tuple)."""

    def start(self, rng_start: checkpointing.RawRngState, *, accumulating: bool) -> None:
        self.completed = False
        self.batches_done = self.skipped = 0
        self.losses, self.sizes = [], []
        self.rng_start, self.rng_at_cut = rng_start, None
        self.at_step = (0, 0) if accumulating else None

    def step_boundary(self) -> None:
        """An optimizer step happened: everything trained so far is in the weights."""
        if self.at_step is not None:  # accumulating; otherwise every batch is a boundary
            self.at_step = (self.batches_done, len(self.losses))

    def record(self, batch_size: int | None) -> dict[str, Any]:
        """The checkpoint's ``progress`` entry for a mid-epoch checkpoint."""
        done, recorded = self.at_step if self.at_step is not None else (self.batches_done, len(self.losses))
        if done == self.batches_done:  # at a step boundary (always, without accumulation)
            losses, sizes = self.losses, self.sizes
        else:
            losses, sizes = self.losses[:recorded], self.sizes[:recorded]
        return {
            "batches_done": done + self.skipped,
            # The epoch's per-batch losses so far: the resumed epoch's train/loss is then
            # computed from exactly the same numbers as without the interruption.
            "losses": torch.stack(losses).detach().cpu() if losses else torch.zeros(0),
            "sizes": list(sizes),
            "rng_epoch_start": self.rng_start.as_state() if self.rng_start is not None else None,
            "batch_size": batch_size,
        }


# ---------------------------------------------------------------------- the plan (pure)
@dataclass(frozen=True)
class CheckpointFacts:
    """What :func:`plan_resume` needs to know about a checkpoint."""

    path: str
    epoch: int
    epoch_completed: bool = True
    has_progress: bool = False
    epochs: int | None = None
    has_scheduler: bool = False
    stop_reason: str | None = None
    stopped_by: str | None = None
    stop_resumable: bool = False
    seed: int | None = None
    world_size: int = 1
    batch_size: int | None = None
    global_step: int = 0

    @classmethod
    def of(cls, checkpoint: dict[str, Any], path: str | os.PathLike[str]) -> CheckpointFacts:
        progress = checkpoint.get("progress") or None
        seed = checkpoint.get("seed")
        return cls(
            path=str(path),
            epoch=int(checkpoint.get("epoch", 0)),
            epoch_completed=bool(checkpoint.get("epoch_completed", True)),
            has_progress=bool(progress),
            epochs=int(checkpoint["epochs"]) if checkpoint.get("epochs") is not None else None,
            has_scheduler=checkpoint.get("lr_scheduler") is not None,
            stop_reason=checkpoint.get("stop_reason") or None,
            stopped_by=checkpoint.get("stopped_by"),
            stop_resumable=bool(checkpoint.get("stop_resumable", False)),
            seed=int(seed) if seed is not None else None,
            world_size=int(checkpoint.get("world_size", 1)),
            batch_size=(progress or {}).get("batch_size"),
            global_step=int(checkpoint.get("global_step", 0)),
        )


@dataclass(frozen=True)
class RunFacts:
    """What :func:`plan_resume` needs to know about the run that resumes."""

    epochs: int
    seed: int | None = None
    world_size: int = 1
    batch_size: int | None = None
    max_steps: int | None = None


@dataclass(frozen=True)
class ResumePlan:
    """Where a resumed run starts.

    ``mode`` is ``"next-epoch"`` (the checkpoint's epoch finished), ``"restart-epoch"`` (it was
    cut short and cannot be continued batch for batch: it trains again from its start) or
    ``"mid-epoch"`` (replay the epoch's data order, skip the batches done, continue).
    """

    start_epoch: int
    mode: str
    keep_history: int | None = None
    """Keep only this many history rows (the unfinished epoch's row goes), or all when None."""
    warnings: tuple[str, ...] = ()


def plan_resume(ckpt: CheckpointFacts, run: RunFacts) -> ResumePlan:
    """Decide where to resume; raises :class:`ConfigError` when the checkpoint cannot continue ``run``."""
    path = ckpt.path
    resumable = ckpt.stopped_by in (None, "signal") or ckpt.stop_resumable
    if ckpt.stop_reason and not resumable:
        raise ConfigError(
            f"checkpoint {path} is from a run that already finished: {ckpt.stop_reason} "
            f"(stopped by {ckpt.stopped_by}); start a new run instead of resuming it"
        )
    if run.max_steps is not None and ckpt.global_step >= run.max_steps:
        raise ConfigError(
            f"checkpoint {path} already trained {ckpt.global_step} steps and this run has max_steps={run.max_steps}; "
            f"pass a larger --max-steps to train further"
        )
    notes: list[str] = []
    if ckpt.epochs is not None and ckpt.epochs != run.epochs and ckpt.has_scheduler:
        notes.append(
            f"checkpoint {path} comes from a run planned for {ckpt.epochs} epochs, this one has {run.epochs}: "
            f"the LR scheduler continues exactly as saved, with a schedule made for {ckpt.epochs} epochs"
        )
    if ckpt.seed is not None and run.seed is not None and ckpt.seed != run.seed:
        notes.append(
            f"checkpoint {path} was trained with seed {ckpt.seed}, this run has seed {run.seed}: the random "
            "states are restored from the checkpoint, but whatever the seed decided before training (a task's "
            f"train/val split, the initial weights) now differs; resume with --seed {ckpt.seed} to continue the "
            "same run"
        )
    if ckpt.epoch_completed or not ckpt.has_progress:
        start = ckpt.epoch + 1 if ckpt.epoch_completed else ckpt.epoch
        if start >= run.epochs:
            done = (
                f"{start} of {run.epochs} epochs"
                if start == run.epochs
                else f"{start} epochs, more than this run's {run.epochs}"
            )
            raise ConfigError(
                f"checkpoint {path} already completed {done}; "
                f"pass more epochs (--epochs N with N > {start}) to train further"
            )
        return ResumePlan(start, "next-epoch" if ckpt.epoch_completed else "restart-epoch", None, tuple(notes))
    if ckpt.epoch >= run.epochs:
        raise ConfigError(
            f"checkpoint {path} was taken in epoch {ckpt.epoch + 1}, but this run has only {run.epochs} epochs; "
            f"pass more epochs (--epochs N with N > {ckpt.epoch}) to train further"
        )
    batch_differs = ckpt.batch_size is not None and run.batch_size is not None and ckpt.batch_size != run.batch_size
    if ckpt.world_size != run.world_size or batch_differs:
        # The shards of a DistributedSampler depend on the world size, the batches on the batch
        # size: the batches done so far cannot be identified in the new split, so the epoch
        # starts over.
        notes.append(
            f"checkpoint {path} was taken mid-epoch with {ckpt.world_size} processes and batch size "
            f"{ckpt.batch_size}, this run has {run.world_size} and {run.batch_size}: epoch {ckpt.epoch + 1} starts over"
        )
        return ResumePlan(ckpt.epoch, "restart-epoch", ckpt.epoch, tuple(notes))
    return ResumePlan(ckpt.epoch, "mid-epoch", ckpt.epoch, tuple(notes))


# ---------------------------------------------------------------------- building and restoring
def checkpoint_state(
    trainer: Trainer, *, epoch_completed: bool | None = None, fire_hooks: bool = True
) -> dict[str, Any]:
    """See :meth:`trainhooks.Trainer.state_checkpoint`."""
    plugins: dict[str, Any] = {}
    for rec in trainer.plugin_manager.active():
        getter = getattr(rec.plugin, "state_dict", None)
        if callable(getter):
            try:
                state = getter()
            except (Exception, SystemExit):  # a plugin's sys.exit() must not end an emergency save
                if fire_hooks:
                    raise
                continue
            if state:
                plugins[rec.name] = state
    position = trainer._position
    in_loop = trainer._log.in_batch_loop
    if epoch_completed is None:
        epoch_completed = position.completed and not in_loop
    scheduler = trainer.lr_scheduler
    checkpoint: dict[str, Any] = {
        "format": checkpointing.FORMAT,
        "version": checkpointing.VERSION,
        "model": trainer.unwrapped_model.state_dict(),
        "optimizer": trainer.optimizer.state_dict(),
        "lr_scheduler": scheduler.state_dict() if scheduler is not None and hasattr(scheduler, "state_dict") else None,
        "epoch": trainer.epoch,
        "epochs": trainer.epochs,
        "epoch_completed": epoch_completed,
        "global_step": trainer.global_step,
        "metrics": dict(trainer.metrics),
        "history": [dict(h) for h in trainer.history],
        "stop_reason": trainer.stop_reason,
        "stopped_by": trainer.stopped_by,
        "stop_resumable": trainer._stop.resumable,
        "stop_deferred": _deferred_record(trainer._stop.deferred),
        "rng": (
            position.rng_at_cut
            if position.rng_at_cut is not None and not epoch_completed and not in_loop
            else checkpointing.capture_rng(loader_generator(trainer._train_data))
        ),
        "progress": None,
        "plugins": plugins,
        "world_size": trainer.world_size,
        "seed": trainer.seed,
        "run": trainer._run_record(),
    }
    if not epoch_completed and position.rng_start is not None:
        checkpoint["progress"] = position.record(getattr(trainer._train_data, "batch_size", None))
    if trainer._amp is not None and trainer._amp.scaler is not None:
        checkpoint["grad_scaler"] = trainer._amp.state_dict()
    if fire_hooks:
        trainer.hooks.on_save_checkpoint(checkpoint)
    return checkpoint


def _deferred_record(deferred: tuple[object, str] | None) -> dict[str, Any] | None:
    """The checkpoint's ``stop_deferred``: the deferred stop as plain data, or None."""
    if deferred is None:
        return None
    value, plugin = deferred
    return {"value": value if isinstance(value, str) else True, "plugin": plugin}


def restore(trainer: Trainer, path: str | os.PathLike[str]) -> dict[str, Any]:
    """See :meth:`trainhooks.Trainer.load_checkpoint`."""
    checkpoint = checkpointing.load_checkpoint(path)
    checkpointing.check_finite_weights(checkpoint["model"], path)
    return restore_loaded(trainer, checkpoint, path)


def restore_loaded(trainer: Trainer, checkpoint: dict[str, Any], path: str | os.PathLike[str]) -> dict[str, Any]:
    """Put a loaded (and checked) checkpoint back into ``trainer``; fires ``on_load_checkpoint``."""
    model = trainer.unwrapped_model
    try:
        model.load_state_dict(checkpoint["model"])
        if checkpoint.get("optimizer") is not None:
            trainer.optimizer.load_state_dict(checkpoint["optimizer"])
        if checkpoint.get("lr_scheduler") is not None and trainer.lr_scheduler is not None:
            trainer.lr_scheduler.load_state_dict(checkpoint["lr_scheduler"])
    except (RuntimeError, ValueError, KeyError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if first.startswith("Error(s) in loading state_dict"):  # the differences follow on other lines
            first = checkpointing.describe_mismatch(model, checkpoint["model"])
        raise CheckpointError(f"checkpoint {path} does not fit this model/optimizer: {first}") from exc
    if trainer._amp is not None:
        trainer._amp.load_state_dict(checkpoint.get("grad_scaler"))
    trainer.epoch = int(checkpoint.get("epoch", 0))
    trainer.global_step = int(checkpoint.get("global_step", 0))
    trainer.metrics = dict(checkpoint.get("metrics", {}))
    trainer.history = [dict(h) for h in checkpoint.get("history", [])]
    deferred = checkpoint.get("stop_deferred")
    # A stop asked for before min_epochs/min_steps still ends the resumed run at the minimum,
    # as it would have ended the run that was cut short; not once its plugin is left out.
    registered = deferred is not None and trainer.plugin_manager.get_plugin(deferred["plugin"]) is not None
    trainer._stop.deferred = (deferred["value"], deferred["plugin"]) if deferred and registered else None
    checkpointing.restore_plugin_states(trainer.plugin_manager, checkpoint, path)
    trainer.hooks.on_load_checkpoint(checkpoint)
    return checkpoint


def auto_resume_path(trainer: Trainer) -> os.PathLike[str] | None:
    """``fit(resume="auto")``: the newest good checkpoint in ``save_dir/weights``, or None."""
    trainer.checkpoint_writer.wait()  # a write in flight may be replacing that very file
    choice = checkpointing.newest_good_checkpoint(trainer.save_dir / "weights")
    for skipped, why in choice.skipped:
        log.warning("not resuming from %s: %s", skipped, why)
    if choice.path is None:
        if trainer.verbose and trainer.is_global_zero:
            print(f"No checkpoint in {trainer.save_dir / 'weights'}: starting a fresh run", flush=True)
        return None
    if choice.skipped:
        log.warning("resuming from the previous good checkpoint, %s, instead", choice.path)
    return choice.path


@dataclass
class PendingResume:
    """A checkpoint loaded, checked and planned by :func:`prepare`, put back by :func:`resume`."""

    path: str | os.PathLike[str]
    checkpoint: dict[str, Any] | None
    plan: ResumePlan

    def take_checkpoint(self) -> dict[str, Any]:
        """The loaded checkpoint, handed over once: the fit that restores it must not keep a
        second copy of the weights and optimizer state alive until it ends."""
        checkpoint, self.checkpoint = self.checkpoint, None
        if checkpoint is None:
            raise RuntimeError(f"the checkpoint {self.path} was restored already")
        return checkpoint


def prepare(trainer: Trainer, path: str | os.PathLike[str]) -> PendingResume:
    """Load the checkpoint to resume from and decide where to start, before ``fit`` changes anything.

    The refusals that depend on the checkpoint alone (a missing or damaged file, NaN weights, a
    run that already finished, trained its ``max_steps`` or all its epochs) come from here,
    before the save dir is claimed or ``run.json`` written: the refused run's files stay as they
    were. Whether the weights fit the model is known only once restored: a plugin may still
    change the model in ``on_fit_start`` (weight norm, adapters), and lazy modules take their
    shapes from the checkpoint.
    """
    trainer.checkpoint_writer.wait()  # a write in flight may be replacing that very file
    checkpoint = checkpointing.load_checkpoint(path)
    checkpointing.check_finite_weights(checkpoint["model"], path)
    run = RunFacts(
        epochs=trainer.epochs,
        seed=trainer.seed,
        world_size=trainer.world_size,
        batch_size=getattr(trainer._train_data, "batch_size", None),
        max_steps=getattr(trainer, "max_steps", None),
    )
    return PendingResume(path, checkpoint, plan_resume(CheckpointFacts.of(checkpoint, path), run))


def resume(trainer: Trainer, pending: PendingResume) -> int:
    """Restore a prepared checkpoint inside ``fit`` and apply its plan; returns the epoch to start at."""
    path, plan = pending.path, pending.plan
    checkpoint = restore_loaded(trainer, pending.take_checkpoint(), path)
    line = f"Resuming from {path} (epoch {int(checkpoint.get('epoch', 0)) + 1}, step {int(checkpoint.get('global_step', 0))})"
    if trainer.is_global_zero:
        if trainer.verbose:
            print(line, flush=True)
        else:  # verbose=False prints nothing; `trainhooks fit --quiet` shows this logger's line
            resume_log.info("%s", line)
    for note in plan.warnings:
        log.warning("%s", note)
    if plan.keep_history is not None:
        trainer.history = trainer.history[: plan.keep_history]
    generator = loader_generator(trainer._train_data)
    if plan.mode == "mid-epoch":
        # Replay this epoch's data order, skip the batches already trained on, then continue
        # with the random state the checkpoint was taken with.
        progress = checkpoint["progress"]
        trainer._resume_position = {**progress, "rng_now": checkpoint.get("rng") or {}}
        log.info("resuming epoch %d at batch %d", trainer.epoch + 1, progress["batches_done"])
    else:
        restore_random_state(trainer, checkpoint.get("rng") or {}, generator)
    return plan.start_epoch


def skip_batches(trainer: Trainer, batches: Any, position: dict[str, Any], generator: Any) -> None:
    """Advance ``batches`` past the ones a mid-epoch checkpoint had already trained on."""
    todo = int(position["batches_done"])
    for done in range(todo):
        try:
            next(batches)
        except StopIteration:
            raise CheckpointError(
                f"the checkpoint was taken after {todo} batches of epoch {trainer.epoch + 1}, "
                f"but the training data has only {done} batches: is it the same data?"
            ) from None
    trainer._position.skipped = todo
    restore_random_state(trainer, position["rng_now"], generator)


def restore_random_state(trainer: Trainer, state: dict[str, Any], generator: Any) -> None:
    """Put back a checkpoint's random state; in distributed runs, re-seed each rank instead.

    Only rank 0 writes checkpoints, so they hold rank 0's generators; giving them to every
    rank would make all ranks draw the same dropout masks. Each rank is re-seeded from the
    seed, its rank and the step instead (data order under DistributedSampler depends on
    seed and epoch only, so it is unaffected).
    """
    if trainer.world_size > 1:
        from trainhooks.trainer import seed_everything

        seed_everything((trainer.seed or 0) + trainer.rank + 1_000_003 * trainer.global_step)
        return
    checkpointing.restore_rng(state, generator)


__all__ = [
    "CheckpointFacts",
    "EpochPosition",
    "PendingResume",
    "ResumePlan",
    "RunFacts",
    "auto_resume_path",
    "checkpoint_state",
    "plan_resume",
    "prepare",
    "restore",
    "restore_loaded",
    "resume",
    "restore_random_state",
    "skip_batches",
]
