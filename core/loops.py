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
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import torch

from trainhooks import checkpointing, resume, step, strategy
from trainhooks.batches import batch_size, loader_generator, safe_len, to_device
from trainhooks.data import fast_batches
from trainhooks.errors import NothingUsableError

if TYPE_CHECKING:
    from trainhooks.trainer import FitResult, Trainer


def prepared(
    trainer: Trainer, batches: Iterator[tuple[int, Any]], start_hook: Callable[[Any, int], None], *, training: bool
) -> Iterator[tuple[int, Any]]:
    """The batch preamble every loop shares: device, example input, the batch-start hook."""
    device = trainer.device
    move = device.type != "cpu"
    for batch_idx, batch in batches:
        if training:
            trainer.batch_idx = batch_idx
        if move:
            batch = to_device(batch, device)
        if trainer.example_input is None:
            trainer._capture_example(batch)
        start_hook(batch, batch_idx)
        yield batch_idx, batch


# ---------------------------------------------------------------------- fit
class FitLoop:
    """One ``Trainer.fit`` call, from the per-run reset to teardown."""

    def __init__(self, trainer: Trainer, train_data: Iterable[Any], val_data: Iterable[Any] | None) -> None:
        self.trainer = trainer
        self.train_data = train_data
        self.val_data = val_data

    def run(self, resume_from: Any) -> FitResult:
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

    def setup(self, resume_from: Any) -> int:
        """Per-run state, seed, device, save dir, resume, data: the hooks before ``on_train_start``."""
        t, hooks = self.trainer, self.trainer.hooks
        t._claim_save_dir(resume_from)
        hooks.on_fit_start()  # per-run state starts afresh; a resume below restores it
        hooks.on_pretrain_routine_start()
        if t.seed is not None:
            from trainhooks.trainer import seed_everything

            seed_everything(t.seed + t.rank)  # ranks differ in dropout/augmentation
        t.model.to(t.device)
        if t.is_global_zero:  # only rank 0 writes: no empty run directory elsewhere
            t._ensure_save_dir()
        start_epoch = resume.resume(t, resume_from) if resume_from is not None else 0
        self.train_data, self.val_data = t.strategy.prepare(self.train_data, self.val_data)
        t.num_train_batches = safe_len(self.train_data)
        t.num_val_batches = safe_len(self.val_data) if self.val_data is not None else None
        hooks.on_pretrain_routine_end()
        t._first_step = t.global_step
        t.epoch = start_epoch  # on_train_start sees the first epoch to run
        hooks.on_train_start()
        return start_epoch

    def epochs(self, start_epoch: int) -> None:
        t = self.trainer
        for epoch in range(start_epoch, t.epochs):
            t.epoch = epoch
            self.one_epoch()
            if t._stop.requested:
                break
        if not t._stop.requested:
            t.stop_reason = f"completed {t.epochs} epochs"

    def one_epoch(self) -> None:
        t = self.trainer
        t.strategy.set_epoch(t.epoch)  # a new shuffle of the shards under DDP
        TrainEpoch(t, self.train_data).run()
        if self.val_data is not None:
            run_validation(t, self.val_data)
        t.strategy.sync_metrics(t.metrics)  # every rank sees the same metrics
        t._log.open_row()
        t.hooks.on_fit_epoch_end()
        if not t._stop.requested:
            t._consult_should_stop()

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
        t.strategy.close(failed)  # unwrap the model, end our process group
        t.strategy = strategy.SINGLE_PROCESS
        t._teardown("fit", failed)


# ---------------------------------------------------------------------- one training epoch
class TrainEpoch:
    """The training part of one epoch: start, the batch loop, the epoch's loss and hooks."""

    def __init__(self, trainer: Trainer, data: Iterable[Any]) -> None:
        self.trainer = trainer
        self.data = data

    def run(self) -> None:
        t = self.trainer
        batches = self.start()
        t._log.in_batch_loop = True
        try:
            self.batch_loop(batches)
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
        t._position.start(checkpointing.capture_rng(generator))
        t.model.train()
        t._log.start_epoch()
        t.hooks.on_train_epoch_start()
        batches = enumerate(fast_batches(self.data, t.fast_data))
        if position is not None:
            resume.skip_batches(t, batches, position, generator)
            t._position.losses.extend(position["losses"].to(t.device).unbind())
            t._position.sizes.extend(int(n) for n in position["sizes"])
        return prepared(t, batches, t.hooks.on_train_batch_start, training=True)

    def batch_loop(self, batches: Iterator[tuple[int, Any]]) -> None:
        """The hot loop: one optimizer step per batch, the hooks around it, the stop check."""
        t = self.trainer
        hooks, optimizer, position, stop = t.hooks, t.optimizer, t._position, t._stop
        run_step = step.training_step(t)
        backward, optimizer_step = step.backward_and_step(t)
        clip = t.grad_clip_norm
        params = [p for group in optimizer.param_groups for p in group["params"]] if clip else []
        agree, watch = t.strategy.agree_stop, t._signals
        losses, sizes = position.losses, position.sizes
        for batch_idx, batch in batches:
            outputs = run_step(batch)
            loss = outputs["loss"]
            hooks.on_before_backward(loss)
            backward(loss)
            hooks.on_after_backward()
            if clip:
                torch.nn.utils.clip_grad_norm_(params, clip)
            hooks.on_before_optimizer_step(optimizer)
            t._updating = True
            optimizer_step()
            hooks.optimizer_step(optimizer)
            hooks.on_params_update()
            hooks.on_before_zero_grad(optimizer)
            optimizer.zero_grad(set_to_none=True)
            t.global_step += 1
            t._updating = False
            outputs["loss"] = detached = loss.detach()
            losses.append(detached)
            sizes.append(batch_size(batch))
            position.batches_done += 1
            hooks.on_train_batch_end(batch, batch_idx, outputs)
            answer, interrupt = agree(hooks.should_stop(), batch_idx, watch.received if watch is not None else None)
            if answer is not None and stop.accept(t, answer, "batch"):
                break
            if interrupt is not None:
                stop.accept_signal(t, interrupt)
                break
        else:
            position.completed = True

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
            batches = prepared(t, enumerate(fast_batches(data, t.fast_data)), hooks.on_val_batch_start, training=False)
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
            t, enumerate(fast_batches(data, t.fast_data)), hooks.on_predict_batch_start, training=False
        ):
            out = predict(batch)
            hooks.on_predict_postprocess_end(batch, batch_idx, out)
            results.append(out)
            hooks.on_predict_batch_end(batch, batch_idx, out)
    hooks.on_predict_end()
    return results


__all__ = ["FitLoop", "TrainEpoch", "prepared", "run_prediction", "run_validation"]
