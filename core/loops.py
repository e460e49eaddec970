"""The loops: fit (epochs of training, then validation), validate and predict.

Each loop is a few short methods, and each fires its hooks in the documented order (see
``docs/hooks.md``). They share one batch preamble (:func:`prepared`): move the batch to the
device, keep the first batch's inputs as the example for export, fire the batch-start hook.
What a batch does is built by :mod:`trainhooks.step`; how many processes take part is the
strategy's business (:mod:`trainhooks.strategy`), which the loops always call; where a resumed
run starts is :mod:`trainhooks.resume`'s; the stop state is :mod:`trainhooks.stopping`'s.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import torch

from trainhooks import checkpointing, resume, step, strategy
from trainhooks.batches import batch_size, loader_generator, safe_len, sample_count, to_device
from trainhooks.controls import apply_limit, validation_never_runs
from trainhooks.data import fast_batches, order_uses_torch_rng_only
from trainhooks.errors import ConfigError, NothingUsableError
from trainhooks.loopmap import TRAIN_BATCH
from trainhooks.manifest import RunManifest

if TYPE_CHECKING:
    from trainhooks.trainer import FitResult, Trainer

log = logging.getLogger("trainhooks")

STEP_HOOKS = TRAIN_BATCH[1:]
"""The hooks a training step calls after its batch-start hook (which the batch preamble calls)."""


def prepared(
    trainer: Trainer, batches: Iterator[tuple[int, Any]], start_hook: str, *, training: bool
) -> Iterator[tuple[int, Any]]:
    """The batch preamble every loop shares: device, example input, the batch-start hook.

    ``start_hook`` names the hook (``on_train_batch_start``, ...). Its caller is looked up again
    whenever the plugins change, so a plugin registered mid-epoch gets it from the next batch
    on; while no plugin implements it, the call is skipped.
    """
    device, hooks = trainer.device, trainer.hooks
    move = device.type != "cpu"
    generation, start = None, None
    for batch_idx, batch in batches:
        if training:
            trainer.batch_idx = batch_idx
        if move:
            batch = to_device(batch, device)
        if trainer.example_input is None:
            trainer._capture_example(batch)
        if hooks.generation != generation:  # the first batch, or plugins came or went
            generation, start = hooks.generation, hooks.active(start_hook)
        if start is not None:
            start(batch, batch_idx)
        yield batch_idx, batch


# ---------------------------------------------------------------------- fit
class FitLoop:
    """One ``Trainer.fit`` call, from the per-run reset to teardown."""

    def __init__(self, trainer: Trainer, train_data: Iterable[Any], val_data: Iterable[Any] | None) -> None:
        self.trainer = trainer
        self.train_data = train_data
        self.val_data = val_data
        self.train_epoch: TrainEpoch | None = None

    def run(self, resume_from: resume.PendingResume | str | os.PathLike[str] | None) -> FitResult:
        t = self.trainer
        started = time.perf_counter()
        failed = False
        t._signals = t._install_signal_handlers()
        try:
            t.strategy = strategy.start(t)  # a process group under torchrun; single-process otherwise
            start_epoch = self.setup(resume_from)
            self.epochs(start_epoch)
            self.finish()
        except BaseException as exc:
            failed = True
            self.fail(exc)
            raise
        finally:
            self.cleanup(failed)
        return t._result(time.perf_counter() - started)

    def setup(self, resume_from: resume.PendingResume | str | os.PathLike[str] | None) -> int:
        """Per-run state, seed, device, save dir, resume, data: the hooks before ``on_train_start``."""
        t, hooks = self.trainer, self.trainer.hooks
        if resume_from is not None and not isinstance(resume_from, resume.PendingResume):
            resume_from = resume.prepare(t, resume_from)  # torchrun: read by every rank of the group
        t._claim_save_dir(resume_from)
        hooks.on_fit_start()  # per-run state starts afresh; a resume below restores it
        hooks.on_pretrain_routine_start()
        if t.seed is not None:
            from trainhooks.trainer import seed_everything

            seed_everything(t.seed + t.rank)  # ranks differ in dropout/augmentation
        t.model.to(t.device)
        if t.is_global_zero:  # only rank 0 writes: no empty run directory elsewhere
            t._ensure_save_dir()
            t.manifest = RunManifest.start(t.save_dir, resumed=resume_from is not None, task=t.task_name)
            for name, path in t.manifest.artifacts.items():  # a resumed run's files are those it continues
                t.artifacts.setdefault(name, path)
        start_epoch = resume.resume(t, resume_from) if resume_from is not None else 0
        self.train_data, self.val_data = t.strategy.prepare(self.train_data, self.val_data)
        t.num_train_batches = apply_limit("limit_train_batches", t.limit_train_batches, safe_len(self.train_data))
        if self.val_data is not None:
            t.num_val_batches = apply_limit("limit_val_batches", t.limit_val_batches, safe_len(self.val_data))
        if t.accumulate_grad_batches > 1 and t.num_train_batches is None and t.strategy.is_distributed:
            # The last group's size is known only when the data runs out, after its micro-batches
            # ran without the gradient sync: their gradients would never be averaged across ranks.
            raise ConfigError(
                f"accumulate_grad_batches={t.accumulate_grad_batches} under torchrun needs training data with a "
                "len() (a DataLoader), so that every group's last batch is known and synchronises the gradients"
            )
        if self.val_data is not None and t.is_global_zero:
            self.warn_if_never_validating()
        # Samples per epoch on this rank, within the limits (None: the data does not say).
        t.num_train_samples = sample_count(self.train_data, t.num_train_batches)
        t.num_val_samples = sample_count(self.val_data, t.num_val_batches) if self.val_data is not None else None
        t._validated_at_step = None
        self.train_epoch = TrainEpoch(t, self.train_data, self.val_data)  # built once, run every epoch
        hooks.on_pretrain_routine_end()
        t._first_step = t.global_step
        t.epoch = start_epoch  # on_train_start sees the first epoch to run
        hooks.on_train_start()
        return start_epoch

    def warn_if_never_validating(self) -> None:
        t = self.trainer
        batches, n = t.num_train_batches, t.accumulate_grad_batches
        planned = None if batches is None else -(-batches // n) * t.epochs  # a partial group steps too
        if t.max_steps is not None:
            planned = t.max_steps if planned is None else min(planned, t.max_steps)
        problem = validation_never_runs(t.epochs, t.val_every_n_epochs, t.val_every_n_steps, planned)
        if problem is not None:
            log.warning("%s", problem)

    def epochs(self, start_epoch: int) -> None:
        t = self.trainer
        for epoch in range(start_epoch, t.epochs):
            t.epoch = epoch
            self.one_epoch()
            if t._stop.requested:
                break
        if not t._stop.requested:
            t.stop_reason = f"completed {t.epochs} epoch{'s' if t.epochs != 1 else ''}"

    def one_epoch(self) -> None:
        t = self.trainer
        t.strategy.set_epoch(t.epoch)  # a new shuffle of the shards under DDP
        assert self.train_epoch is not None  # built by setup()
        self.train_epoch.run()
        if self.val_data is not None and self.validates_now():
            run_validation(t, self.val_data)
        t.strategy.sync_metrics(t.metrics)  # every rank sees the same metrics
        t._log.open_row()
        t.hooks.on_fit_epoch_end()
        row = t._log.close_row()
        if row is not None and t.hooks.implemented("on_log"):
            t.hooks.on_log(dict(row), t.global_step, True)
        if not t._stop.requested:
            t._consult_should_stop()

    def validates_now(self) -> bool:
        """Validation at this epoch's end: every ``val_every_n_epochs``, unless it just ran."""
        t = self.trainer
        every = t.val_every_n_epochs
        if every is None or (t.epoch + 1) % every:
            return False
        return t._validated_at_step != t.global_step

    def finish(self) -> None:
        t = self.trainer
        t.flush_checkpoints()  # on_model_save before on_train_end; a write error is this run's error
        t.hooks.on_train_end()
        t.flush_checkpoints()  # what on_train_end wrote in the background, if anything

    def fail(self, exc: BaseException) -> None:
        t = self.trainer
        t.strategy.announce_failure(exc)  # tell the other ranks who failed, first
        t._on_exception(exc)
        if isinstance(exc, Exception):
            t._emergency_checkpoint(exc)

    def cleanup(self, failed: bool) -> None:
        t = self.trainer
        if failed:  # the write in flight still lands (or its error is reported) before teardown
            t._flush_checkpoints_quietly()
        t._restore_signal_handlers()
        t._log.in_batch_loop = False
        t._log.close_row()
        # Drop the step functions first: they hold the DDP wrapper, which must go with the process
        # group. Freed later (when this FitLoop is), its reducer would destroy the gloo group while
        # holding the GIL that gloo's worker thread may be waiting for: the process hangs at exit.
        self.train_epoch = None
        t.strategy.close(failed)  # unwrap the model, end our process group
        t.strategy = strategy.SINGLE_PROCESS
        try:
            t._teardown("fit", failed)
        finally:
            self.end_manifest(failed)

    def end_manifest(self, failed: bool) -> None:
        """run.json says how the fit ended, after teardown (whose hooks may announce files)."""
        t = self.trainer
        if t.manifest is None:
            return
        status = "failed" if failed else "interrupted" if t.interrupted else "finished"
        t.manifest.end(status, stop_reason=t.stop_reason, epochs_completed=len(t.history), global_step=t.global_step)
        t.manifest = None


# ---------------------------------------------------------------------- one training epoch
class TrainEpoch:
    """The training part of an epoch: start, the batch loop, the epoch's loss and hooks.

    Built once per fit (the step functions and the data source do not change between epochs);
    :meth:`run` trains one epoch.

    Without accumulation every batch is one optimizer step (:meth:`step_each_batch`, the hot
    loop). With ``accumulate_grad_batches`` N, :meth:`accumulate` steps once per N micro-batches
    (and once for the last, partial group), skipping DDP's gradient sync on the others.
    """

    def __init__(self, trainer: Trainer, data: Iterable[Any], val_data: Iterable[Any] | None = None) -> None:
        self.trainer = trainer
        self.data = data
        self.val_data = val_data
        t = trainer
        self.run_step = step.training_step(t)
        self.backward, self.optimizer_step = step.backward_and_step(t)
        self.source = fast_batches(data, t.fast_data)
        # Only stock samplers: the data order cannot depend on Python's or NumPy's generator (see start()).
        self.order_needs_host_rng = not order_uses_torch_rng_only(data)
        self.val_every = t.val_every_n_steps if val_data is not None else None
        self.params: list[torch.Tensor] = []
        self.log_every: int | None = None
        self.generation: int | None = None  # the plugins' generation quiet_now was decided for
        self.quiet_now = False

    def run(self) -> None:
        """Train one epoch (``on_train_epoch_start`` to ``on_train_epoch_end``)."""
        t = self.trainer
        # Per epoch: a plugin may add a param group (unfreezing) or an on_log implementation.
        self.params = [p for g in t.optimizer.param_groups for p in g["params"]] if t.grad_clip_norm else []  # to clip
        self.log_every = t.log_every_n_steps if t.hooks.implemented("on_log") else None
        batches = self.start()
        t._log.in_batch_loop = True
        try:
            if t.accumulate_grad_batches > 1:
                self.accumulate(batches, t.accumulate_grad_batches)
            else:
                self.step_each_batch(batches)
        except Exception as exc:
            failure = t.strategy.step_failure(exc)
            if failure is exc:
                raise
            raise failure from exc
        self.end()

    def start(self) -> Iterator[tuple[int, Any]]:
        """Random state, position and metrics of a new epoch; ``on_train_epoch_start``."""
        t = self.trainer
        generator = loader_generator(self.data)
        position, t._resume_position = t._resume_position, None
        if position is not None:  # resuming mid-epoch: the epoch's RNG as it was at its start
            resume.restore_random_state(t, position["rng_epoch_start"], generator)
        # The state the epoch starts with, for a mid-epoch resume to replay the data order.
        # Python's and NumPy's are left out where the order cannot draw from them (~80 us together).
        rng_start = checkpointing.RawRngState(generator, host_generators=self.order_needs_host_rng)
        t._position.start(rng_start, accumulating=t.accumulate_grad_batches > 1)
        t.model.train()
        t._log.start_epoch()
        t.hooks.on_train_epoch_start()
        source = self.source
        if t.num_train_batches is not None and t.limit_train_batches is not None:
            source = itertools.islice(source, t.num_train_batches)
        batches = enumerate(source)
        if position is not None:
            resume.skip_batches(t, batches, position, generator)
            t._position.losses.extend(position["losses"].to(t.device).unbind())
            t._position.sizes.extend(int(n) for n in position["sizes"])
            t._position.step_boundary()
        return prepared(t, batches, "on_train_batch_start", training=True)

    def step_each_batch(self, batches: Iterator[tuple[int, Any]]) -> None:
        """The hot loop: one optimizer step per batch, the hooks around it, the stop check.

        The optimizer update and the after-step checks are written out here, with locals, rather
        than called (:meth:`optimizer_update`, :meth:`after_step` do the same for accumulation):
        this loop runs every step, and on a small model the engine's own work per step is what
        separates it from a hand-written loop. For the same reason, when no plugin implements
        any of the step's hooks (``quiet``), their calls are skipped: each costs about as much
        as a plain Python call. ``quiet`` is decided again whenever the plugins change.
        """
        t = self.trainer
        hooks, position, run_step, backward = t.hooks, t._position, self.run_step, self.backward
        optimizer, optimizer_step, stop = t.optimizer, self.optimizer_step, t._stop
        losses, sizes = position.losses, position.sizes
        clip, params = t.grad_clip_norm, self.params
        agree, watch = t.strategy.agree_stop, t._signals
        distributed = t.strategy.is_distributed
        log_every, val_every, max_steps = self.log_every, self.val_every, t.max_steps
        generation, quiet = self.generation, self.quiet_now  # as the last epoch left them
        for batch_idx, batch in batches:
            outputs = run_step(batch)
            loss = outputs["loss"]
            if hooks.generation != generation:  # the first step of the fit, or plugins came or went
                generation, quiet = hooks.generation, hooks.unimplemented(STEP_HOOKS)
                self.generation, self.quiet_now = generation, quiet
            if not quiet:
                hooks.on_before_backward(loss)
            backward(loss)
            outputs["loss"] = detached = loss.detach()
            if not quiet:
                hooks.on_after_backward()
                hooks.on_train_microbatch_end(batch, batch_idx, outputs)
            if clip:
                torch.nn.utils.clip_grad_norm_(params, clip)
            if not quiet:
                hooks.on_before_optimizer_step(optimizer)
            t._updating = True
            optimizer_step()
            if not quiet:
                hooks.optimizer_step(optimizer)
                hooks.on_params_update()
                hooks.on_before_zero_grad(optimizer)
            optimizer.zero_grad(set_to_none=True)
            t.global_step = step_no = t.global_step + 1
            t._updating = False
            # The batch counts as done once its step is: a checkpoint taken before (an emergency
            # one, after a failure in the hooks above) resumes with this batch again.
            losses.append(detached)
            sizes.append(batch_size(batch))
            position.batches_done += 1
            if not quiet:
                hooks.on_train_batch_end(batch, batch_idx, outputs)
            if log_every is not None and step_no % log_every == 0:
                log_step(t, outputs)
            if val_every is not None and step_no % val_every == 0:
                validate_mid_epoch(t, self.val_data)  # type: ignore[arg-type]
            # A plugin registered by the validation or on_log hooks above is asked at once.
            answer = None if quiet and hooks.generation == generation else hooks.should_stop()
            interrupt = watch.received if watch is not None else None
            if distributed:  # every rank acts on the same answer (one process: its own, as is)
                answer, interrupt = agree(answer, batch_idx, interrupt)
            if answer is not None and stop.accept(t, answer, "batch"):
                return
            if interrupt is not None:
                stop.accept_signal(t, interrupt)
                return
            if stop.deferred is not None and answer is None and stop.release(t, "batch"):
                return
            if max_steps is not None and step_no >= max_steps and stop.reach_max_steps(t):
                return
        position.completed = True

    def accumulate(self, batches: Iterator[tuple[int, Any]], n: int) -> None:
        """One optimizer step per ``n`` micro-batches; gradients are the mean over the group.

        As in :meth:`step_each_batch`, the step hooks' calls are skipped while no plugin
        implements any of them (:meth:`quiet`), and so is the group's mean loss that only
        they and per-step logging read.
        """
        t = self.trainer
        hooks, position, run_step, backward = t.hooks, t._position, self.run_step, self.backward
        total = t.num_train_batches  # None: the last group's size is known only at the end
        synced, no_sync = contextlib.nullcontext(), t.strategy.no_sync
        group: list[torch.Tensor] = []
        outputs: dict[str, Any] = {}
        batch_idx, batch = -1, None
        for batch_idx, batch in batches:
            start = batch_idx - len(group)
            size = n if total is None else min(n, total - start)
            last = len(group) + 1 >= size
            with synced if last else no_sync(t.model):
                outputs = run_step(batch)
                loss = outputs["loss"]
                quiet = self.quiet()
                if not quiet:
                    hooks.on_before_backward(loss)
                backward(loss / size)
            if not quiet:
                hooks.on_after_backward()
            outputs["loss"] = detached = loss.detach()
            group.append(detached)
            position.losses.append(detached)
            position.sizes.append(batch_size(batch))
            position.batches_done += 1
            if not quiet:
                hooks.on_train_microbatch_end(batch, batch_idx, outputs)
            if not last:
                continue
            self.optimizer_update()
            if self.after_step(batch, batch_idx, outputs, group):
                return
            group = []
        if group:  # an unsized iterable ended inside a group: step it, as the mean of what it had
            for p in (p for g in t.optimizer.param_groups for p in g["params"]):
                if p.grad is not None:
                    p.grad.mul_(n / len(group))
            self.optimizer_update()
            if self.after_step(batch, batch_idx, {}, group):
                return
        position.completed = True

    def quiet(self) -> bool:
        """Whether no plugin implements any step hook, so their calls can be skipped; decided
        again whenever the plugins change (a plugin registered by a hook is called from then on)."""
        hooks = self.trainer.hooks
        if hooks.generation != self.generation:
            self.generation, self.quiet_now = hooks.generation, hooks.unimplemented(STEP_HOOKS)
        return self.quiet_now

    def optimizer_update(self) -> None:
        """Clip, step, zero the gradients, count the step; the optimizer hooks around it."""
        t = self.trainer
        hooks, optimizer = t.hooks, t.optimizer
        quiet = self.quiet()
        clip = t.grad_clip_norm
        if clip:
            torch.nn.utils.clip_grad_norm_(self.params, clip)
        if not quiet:
            hooks.on_before_optimizer_step(optimizer)
        t._updating = True
        self.optimizer_step()
        if not quiet:
            hooks.optimizer_step(optimizer)
            hooks.on_params_update()
            hooks.on_before_zero_grad(optimizer)
        optimizer.zero_grad(set_to_none=True)
        t.global_step += 1
        t._updating = False
        t._position.step_boundary()

    def after_step(self, batch: Any, batch_idx: int, outputs: dict[str, Any], group: list[torch.Tensor]) -> bool:
        """``on_train_batch_end``, per-step logging and validation, the stop checks; True: stop.

        ``outputs`` are the last micro-batch's; the step's get the group's mean loss instead, in
        a new dict (the micro-batch hook's outputs keep that micro-batch's own loss).
        """
        t = self.trainer
        step_no = t.global_step
        logs = self.log_every is not None and step_no % self.log_every == 0
        quiet = self.quiet()
        if not quiet or logs:
            outputs = {**outputs, "loss": torch.stack(group).mean()}
            if not quiet:
                t.hooks.on_train_batch_end(batch, batch_idx, outputs)
            if logs:
                log_step(t, outputs)
        if self.val_every is not None and step_no % self.val_every == 0:
            validate_mid_epoch(t, self.val_data)  # type: ignore[arg-type]
        watch = t._signals
        # quiet() looks again: the validation or on_log hooks above may have registered a plugin
        answer = None if self.quiet() else t.hooks.should_stop()
        answer, interrupt = t.strategy.agree_stop(answer, batch_idx, watch.received if watch is not None else None)
        stop = t._stop
        if answer is not None and stop.accept(t, answer, "batch"):
            return True
        if interrupt is not None:
            stop.accept_signal(t, interrupt)
            return True
        if answer is None and stop.deferred is not None and stop.release(t, "batch"):
            return True
        return t.max_steps is not None and step_no >= t.max_steps and stop.reach_max_steps(t)

    def end(self) -> None:
        """The epoch's ``train/loss`` and ``lr``, the tensors logged per step; ``on_train_epoch_end``."""
        t = self.trainer
        position = t._position
        if not position.batches_done and not position.skipped:  # an iterable without len() that yields nothing
            t._log.in_batch_loop = False
            raise NothingUsableError(
                f"training produced nothing usable: train_data yielded no batches in epoch {t.epoch + 1}; "
                "check the data source"
            )
        if not position.completed:
            # Cut short: validation (which draws from the RNG) still runs before the checkpoint,
            # so remember the random state where training will pick up again.
            position.rng_at_cut = checkpointing.capture_rng(loader_generator(self.data))
        t._log.in_batch_loop = False
        t.strategy.finish_train_epoch(t, position.losses, position.sizes)
        t.metrics["lr"] = float(t.optimizer.param_groups[0]["lr"])
        t._log.flush()
        t.hooks.on_train_epoch_end()


def log_step(trainer: Trainer, outputs: dict[str, Any]) -> None:
    """``on_log`` for one step: its loss, lr and the values logged since (the only sync here)."""
    t = trainer
    values = {"train/loss": float(outputs["loss"].item()), "lr": float(t.optimizer.param_groups[0]["lr"])}
    values.update(t._log.take_logged())
    t.hooks.on_log(values, t.global_step, False)


def validate_mid_epoch(trainer: Trainer, val_data: Iterable[Any]) -> None:
    """Validation every ``val_every_n_steps``: the validation hooks, ``val/*`` into the metrics."""
    t = trainer
    t._log.in_batch_loop = False  # values logged in the validation hooks are converted at once
    try:
        result = run_validation(t, val_data)
    finally:
        t._log.in_batch_loop = True
        t.model.train()
    t._validated_at_step = t.global_step
    if t.hooks.implemented("on_log"):
        t.hooks.on_log(dict(result), t.global_step, False)


# ---------------------------------------------------------------------- validation
def run_validation(trainer: Trainer, data: Iterable[Any]) -> dict[str, float]:
    """One pass over ``data`` in eval mode; the ``val/*`` means go into the metrics."""
    t, hooks = trainer, trainer.hooks
    model = t.strategy.eval_model(t)
    val_step = step.validation_step(t, model)
    sums: dict[str, torch.Tensor] = {}
    count = 0
    was_training = model.training
    model.eval()
    hooks.on_val_start()
    try:
        autocast = t._amp.autocast() if t._amp is not None else contextlib.nullcontext()
        with torch.inference_mode(), autocast:
            source = fast_batches(data, t.fast_data)
            if t.limit_val_batches is not None:
                source = itertools.islice(source, apply_limit("limit_val_batches", t.limit_val_batches, safe_len(data)))
            batches = prepared(t, enumerate(source), "on_val_batch_start", training=False)
            for batch_idx, batch in batches:
                n = batch_size(batch)
                outputs, values = val_step(batch, n)
                for key, value in values.items():
                    contribution = torch.as_tensor(value, dtype=torch.float32).detach() * n
                    sums[key] = sums[key] + contribution if key in sums else contribution
                count += n
                hooks.on_val_batch_end(batch, batch_idx, outputs)
    finally:
        model.train(was_training)
    totals = {k: float(v.item()) for k, v in sums.items()}
    means = t.strategy.reduce_validation(totals, count)  # over every rank's shard under DDP
    result = {f"val/{k}": v for k, v in means.items()}
    t.metrics.update(result)
    hooks.on_val_end()
    return result


# ---------------------------------------------------------------------- prediction
def run_prediction(trainer: Trainer, data: Iterable[Any]) -> list[Any]:
    """The model over ``data`` in eval and inference mode; the per-batch outputs."""
    t, hooks = trainer, trainer.hooks
    model = t.model
    predict = step.predict_step(t, model)
    results: list[Any] = []
    model.to(t.device)
    model.eval()
    hooks.on_predict_start()
    with torch.inference_mode():
        for batch_idx, batch in prepared(
            t, enumerate(fast_batches(data, t.fast_data)), "on_predict_batch_start", training=False
        ):
            out = predict(batch)
            hooks.on_predict_postprocess_end(batch, batch_idx, out)
            results.append(out)
            hooks.on_predict_batch_end(batch, batch_idx, out)
    hooks.on_predict_end()
    return results


__all__ = ["FitLoop", "TrainEpoch", "prepared", "run_prediction", "run_validation"]
