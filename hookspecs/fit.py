"""Hooks of ``Trainer.fit``: the training loop.

Order within ``fit`` (also printed by ``trainhooks hooks --loop``)::

    on_fit_start, on_pretrain_routine_start, on_pretrain_routine_end, on_train_start
    for each epoch:
        on_train_epoch_start
        for each batch:
            on_train_batch_start, on_before_backward, on_after_backward,
            on_train_microbatch_end,
            on_before_optimizer_step, optimizer_step, on_params_update, on_before_zero_grad,
            on_train_batch_end, [on_log every log_every_n_steps], [validation every
            val_every_n_steps], should_stop
        on_train_epoch_end
        on_val_start, (on_val_batch_start, on_val_batch_end)*, on_val_end
        on_fit_epoch_end, on_log, should_stop

With ``accumulate_grad_batches`` N > 1 the batch-start, backward and micro-batch hooks fire for
every batch (micro-batch) and the optimizer hooks, ``on_train_batch_end``, ``on_log`` and
``should_stop`` once per N of them, after the optimizer step.
    on_train_end, teardown

On an exception anywhere in that sequence: ``on_exception``, then ``teardown``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .markers import hookspec

if TYPE_CHECKING:
    import torch

    from trainhooks.trainer import Trainer


@hookspec
def on_fit_start(trainer: Trainer) -> None:
    """Fires first in every ``fit()``: the per-run state hook. Reset run state here.

    A plugin object outlives one run: the same callbacks serve a second ``fit()`` of the same
    trainer, or a new trainer. Counters, best values, kept top-k lists, clocks and pending
    reasons belong to one run, so built-in plugins start them afresh here, and so should yours
    (settings stay: they were given once). It fires *before* a resume restores state
    (``load_state_dict``, ``on_load_checkpoint``), so a resumed run continues with the
    checkpoint's state, and a fresh run starts from nothing.

    :param trainer: the trainer; ``epoch``/``global_step`` are 0 unless resuming (they are
        restored afterwards); the model is not yet on its device.

    Return value: ignored.
    """


@hookspec
def on_pretrain_routine_start(trainer: Trainer) -> None:
    """Fires right after ``on_fit_start``, before the model is moved to its device and data is touched.

    :param trainer: the trainer; ``model``, ``optimizer``, ``epochs`` and ``save_dir`` are set.

    Return value: ignored.
    """


@hookspec
def on_pretrain_routine_end(trainer: Trainer) -> None:
    """Fires once setup is done: model on its device, save_dir created, checkpoint resumed.

    :param trainer: the trainer.

    Return value: ignored.
    """


@hookspec
def on_train_start(trainer: Trainer) -> None:
    """Fires once, right before the first training epoch.

    :param trainer: the trainer; ``trainer.epoch`` is the first epoch to run (0, or the epoch
        after the checkpoint's when resuming).

    Return value: ignored.
    """


@hookspec
def on_train_epoch_start(trainer: Trainer) -> None:
    """Fires at the start of every training epoch, model in train mode.

    :param trainer: the trainer; ``trainer.epoch`` is this epoch (0-based);
        ``trainer.metrics`` no longer holds the previous epoch's values (they are in
        ``trainer.history``); what was logged since (``on_train_start``) joins this epoch's row.

    Return value: ignored.
    """


@hookspec
def on_train_batch_start(trainer: Trainer, batch: Any, batch_idx: int) -> None:
    """Fires for every training batch, after it is moved to the device, before the forward pass.

    Per-step hook: keep it cheap, and do not call ``.item()`` on tensors here unless you need to.

    :param trainer: the trainer.
    :param batch: the batch as the DataLoader yielded it, on the trainer's device.
    :param batch_idx: index of the batch within the epoch (0-based).

    Return value: ignored.
    """


@hookspec
def on_before_backward(trainer: Trainer, loss: torch.Tensor) -> None:
    """Fires after the forward pass, before ``loss.backward()``.

    :param trainer: the trainer.
    :param loss: the scalar loss tensor about to be backpropagated (still attached to the graph).

    Return value: ignored.
    """


@hookspec
def on_after_backward(trainer: Trainer) -> None:
    """Fires after ``loss.backward()``; gradients are populated (e.g. to inspect or clip them).

    :param trainer: the trainer.

    Return value: ignored.
    """


@hookspec
def on_train_microbatch_end(trainer: Trainer, batch: Any, batch_idx: int, outputs: dict[str, Any]) -> None:
    """Fires after every micro-batch's backward pass (HF's ``on_substep_end``).

    Without gradient accumulation every batch is one micro-batch, so it fires for every batch,
    right after ``on_after_backward``. With ``accumulate_grad_batches`` N it fires for each of
    the N batches of a group; the optimizer steps (and ``on_train_batch_end`` fires) after the
    last one.

    :param trainer: the trainer; ``trainer.global_step`` counts optimizer steps, so it is the
        same for all micro-batches of a group.
    :param batch: the micro-batch just backpropagated.
    :param batch_idx: its index within the epoch (counting micro-batches).
    :param outputs: the step's outputs; ``outputs["loss"]`` is this micro-batch's detached,
        unscaled loss.

    Return value: ignored.
    """


@hookspec
def on_before_optimizer_step(trainer: Trainer, optimizer: torch.optim.Optimizer) -> None:
    """Fires right before ``optimizer.step()``.

    :param trainer: the trainer.
    :param optimizer: the optimizer about to step.

    Return value: ignored.
    """


@hookspec
def optimizer_step(trainer: Trainer, optimizer: torch.optim.Optimizer) -> None:
    """Fires right after ``optimizer.step()`` (Ultralytics' ``optimizer_step`` event).

    :param trainer: the trainer.
    :param optimizer: the optimizer that just stepped; gradients are still there.

    Return value: ignored.
    """


@hookspec
def on_params_update(trainer: Trainer) -> None:
    """Fires once the step has updated the model's parameters, right after ``optimizer_step``.

    The place for state derived from the weights after every update (an EMA of the weights, a
    weight-norm log); Ultralytics' ``on_params_update`` event.

    :param trainer: the trainer; ``trainer.model`` holds the updated parameters.

    Return value: ignored.
    """


@hookspec
def on_before_zero_grad(trainer: Trainer, optimizer: torch.optim.Optimizer) -> None:
    """Fires after ``optimizer.step()``, before gradients are cleared.

    :param trainer: the trainer; ``trainer.global_step`` already counts this step.
    :param optimizer: the optimizer whose gradients are about to be zeroed.

    Return value: ignored.
    """


@hookspec
def on_train_batch_end(trainer: Trainer, batch: Any, batch_idx: int, outputs: dict[str, Any]) -> None:
    """Fires at the end of every training step, after the optimizer step and zero_grad.

    :param trainer: the trainer.
    :param batch: the batch just trained on.
    :param batch_idx: index of the batch within the epoch.
    :param outputs: the step's outputs: ``outputs["loss"]`` is the detached loss tensor (call
        ``.item()`` yourself, and only when you need the number: it synchronises with the
        device); other keys are whatever the model's ``training_step`` returned.

    Return value: ignored.
    """


@hookspec
def on_log(trainer: Trainer, metrics: dict[str, float], step: int, epoch_end: bool) -> None:
    """Fires with values to log: every ``log_every_n_steps`` optimizer steps, and once per epoch.

    The hook for loggers and trackers (HF's ``on_log``). Nothing is converted to a float for it
    unless some plugin implements it, and then only at those steps, never at every step.

    :param trainer: the trainer.
    :param metrics: during an epoch (``epoch_end`` false): the step's ``train/loss`` (the mean
        over its micro-batches), ``lr``, the values plugins logged since the last call, and the
        ``val/*`` metrics of a validation run every ``val_every_n_steps``. At the end of an epoch
        (``epoch_end`` true): the epoch's row of ``trainer.history``, final: every value logged
        in ``on_fit_epoch_end`` is in it, so a logger writes it once and never has to rewrite it.
    :param step: ``trainer.global_step`` (optimizer steps so far).
    :param epoch_end: true for the end-of-epoch call (fired after ``on_fit_epoch_end``).

    Return value: ignored.
    """


@hookspec
def on_train_epoch_end(trainer: Trainer) -> None:
    """Fires after the last training batch of an epoch, before validation.

    :param trainer: the trainer; ``trainer.metrics`` holds this epoch's training metrics
        (``train/loss``, ``lr``) as floats.

    Return value: ignored.
    """


@hookspec
def on_fit_epoch_end(trainer: Trainer) -> None:
    """Fires at the very end of every epoch, after the epoch's validation.

    The place for loggers, checkpointing and schedulers that monitor validation metrics.

    :param trainer: the trainer; ``trainer.metrics`` holds the epoch's training *and*
        validation metrics (``train/loss``, ``val/loss``, ``val/acc``, ``lr``, plus whatever
        plugins logged with ``trainer.log_metric``); ``trainer.history`` has one such dict per
        epoch so far, this one included. Under torchrun the metrics have been reduced across
        ranks (means weighted by sample count): every rank sees the same numbers.

    Return value: ignored.
    """


@hookspec
def on_train_end(trainer: Trainer) -> None:
    """Fires once when training ends normally: all epochs done *or* stopped by ``should_stop``.

    Not fired when an exception ends training (``on_exception`` fires instead).

    :param trainer: the trainer; ``trainer.stop_reason`` says why training ended.

    Return value: ignored.
    """


@hookspec
def teardown(trainer: Trainer, stage: str) -> None:
    """Fires last, always: after ``on_train_end``, and after ``on_exception`` on failure.

    Release files, writers, sockets and threads here.

    :param trainer: the trainer.
    :param stage: which entry point is ending: ``"fit"``, ``"validate"`` or ``"predict"``.

    Return value: ignored.
    """


@hookspec
def on_exception(trainer: Trainer, exception: BaseException) -> None:
    """Fires when an exception (also Ctrl-C) escapes ``fit``, ``validate`` or ``predict``.

    It fires before the exception propagates to the caller, followed by ``teardown``. An error in
    an ``on_exception`` implementation is reported but never hides the original exception. A
    call refused before it starts (bad arguments or data, a resume of a finished run or a
    damaged checkpoint, in one process) raises without it: nothing had started.

    :param trainer: the trainer.
    :param exception: the exception; a failure inside a hook arrives as
        :class:`trainhooks.HookError`, naming plugin and hook, with the original as ``__cause__``.

    Return value: ignored.
    """


@hookspec(firstresult=True)
def should_stop(trainer: Trainer) -> str | bool | None:
    """Asked after every training batch and after every epoch: should training stop now?

    firstresult: stops at the first non-None result; implementations after it are not called.

    :param trainer: the trainer.

    Return value: ``None`` to abstain; a truthy value to stop — ideally a string saying why
    (``"val/loss did not improve for 5 epochs"``), recorded as ``trainer.stop_reason`` and
    printed at the end. A falsy non-None value (``False``, ``""``) means "do not stop" and, being
    non-None, also ends the consultation. A stop after a batch ends the epoch early; the epoch's
    bookkeeping (``on_train_epoch_end``, validation, ``on_fit_epoch_end``), ``on_train_end`` and
    ``teardown`` still run.

    Under torchrun each rank answers for itself (a local metric, a NaN, a clock); the answers are
    combined so that if any rank asks, every rank stops at the same step with the same reason
    (that of the lowest asking rank).

    A stop asked for before ``min_epochs``/``min_steps`` waits for the minimum, unless the
    plugin's class sets ``urgent_stop = True`` (nan_guard: training on NaN weights cannot help).
    A class that sets ``resumable_stop = True`` (the timer's budget) ends the run but not the
    training: ``--resume`` may continue it.
    """
