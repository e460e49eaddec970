"""The peers' event names and argument names, and where each lives in trainhooks.

Callback code written for Keras, PyTorch Lightning, Hugging Face ``transformers`` or
Ultralytics should port with as few changes as possible. Ultralytics' event names are
trainhooks hooks already. For the others, a method or event named after a peer's event is an
error that names the matching trainhooks hook and says when it fires
(``on_train_begin`` -> ``on_train_start``); a peer-style signature (``(self, trainer,
pl_module)``, ``(self, epoch, logs)``, ``(self, args, state, control)``) is an error saying
where each value lives (``trainer.model``, ``trainer.epoch``, ``trainer.metrics``).

Two names of the document trainhooks was built from are accepted on callback objects as they
are: ``on_epoch_end`` means :func:`~trainhooks.hookspecs.fit.on_fit_epoch_end` (the end of the
whole epoch, after validation: ``trainer.metrics`` holds ``val/*``), see :data:`CALLBACK_ALIASES`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

CALLBACK_ALIASES: dict[str, str] = {
    "on_epoch_end": "on_fit_epoch_end",
}
"""Method names a callback object (``trainhooks.Callback`` subclass or any object passed in
``callbacks=``) may use for a trainhooks hook: the seed's vocabulary. ``on_epoch_end`` is the
end of the epoch after validation (Keras' and Ultralytics' meaning of "epoch end", with the
validation metrics there). ``on_batch_end`` is *not* an alias: a batch of what (training,
validation, prediction)? It is an error naming ``on_train_batch_end``."""

# peer name -> (trainhooks hook, frameworks that use the name)
PEER_EVENTS: dict[str, tuple[str, str]] = {
    # Keras (keras.callbacks.Callback)
    "on_train_begin": ("on_train_start", "Keras, HF"),
    "on_epoch_begin": ("on_train_epoch_start", "Keras, HF"),
    "on_train_batch_begin": ("on_train_batch_start", "Keras"),
    "on_batch_begin": ("on_train_batch_start", "Keras"),
    "on_batch_end": ("on_train_batch_end", "Keras"),
    "on_test_begin": ("on_val_start", "Keras"),
    "on_test_end": ("on_val_end", "Keras, Lightning"),
    "on_test_batch_begin": ("on_val_batch_start", "Keras"),
    "on_test_batch_end": ("on_val_batch_end", "Keras, Lightning"),
    "on_predict_begin": ("on_predict_start", "Keras"),
    "on_predict_batch_begin": ("on_predict_batch_start", "Keras"),
    "set_model": ("on_fit_start", "Keras"),
    "set_params": ("configure", "Keras"),
    # PyTorch Lightning (lightning.pytorch.Callback)
    "setup": ("on_fit_start", "Lightning"),
    "on_fit_end": ("on_train_end", "Lightning"),
    "on_sanity_check_start": ("on_val_start", "Lightning"),
    "on_sanity_check_end": ("on_val_end", "Lightning"),
    "on_validation_start": ("on_val_start", "Lightning"),
    "on_validation_end": ("on_val_end", "Lightning"),
    "on_validation_epoch_start": ("on_val_start", "Lightning"),
    "on_validation_epoch_end": ("on_val_end", "Lightning"),
    "on_validation_batch_start": ("on_val_batch_start", "Lightning"),
    "on_validation_batch_end": ("on_val_batch_end", "Lightning"),
    "on_test_start": ("on_val_start", "Lightning"),
    "on_test_epoch_start": ("on_val_start", "Lightning"),
    "on_test_epoch_end": ("on_val_end", "Lightning"),
    "on_test_batch_start": ("on_val_batch_start", "Lightning"),
    "on_predict_epoch_start": ("on_predict_start", "Lightning"),
    "on_predict_epoch_end": ("on_predict_end", "Lightning"),
    "on_keyboard_interrupt": ("on_exception", "Lightning"),
    "on_validation_model_eval": ("on_val_start", "Lightning"),
    "on_validation_model_train": ("on_val_end", "Lightning"),
    "on_before_optimizer_setup": ("on_fit_start", "Lightning"),
    # Hugging Face transformers (TrainerCallback)
    "on_init_end": ("configure", "HF"),
    "on_step_begin": ("on_train_batch_start", "HF"),
    "on_substep_end": ("on_train_microbatch_end", "HF"),
    "on_pre_optimizer_step": ("on_before_optimizer_step", "HF"),
    "on_optimizer_step": ("optimizer_step", "HF"),
    "on_step_end": ("on_train_batch_end", "HF"),
    "on_evaluate": ("on_val_end", "HF"),
    "on_predict": ("on_predict_end", "HF"),
    "on_prediction_step": ("on_val_batch_end", "HF"),
    "on_save": ("on_model_save", "HF"),
}
"""Every Keras, Lightning and HF event name that is not a trainhooks hook, with the hook that
matches it. Names the peers share with trainhooks (``on_train_end``, ``on_train_batch_end``,
``on_fit_start``, ``teardown``, every Ultralytics event) are hooks already."""

PEER_ARGUMENTS: dict[str, str] = {
    "pl_module": "the model is trainer.model (trainer.unwrapped_model without a DDP wrapper)",
    "module": "the model is trainer.model",
    "logs": "the metrics are trainer.metrics (this epoch's, as floats; trainer.history has one dict per epoch)",
    "epoch": "the epoch is trainer.epoch (0-based)",
    "args": "the run's settings are on the trainer (trainer.epochs, trainer.save_dir, trainer.options)",
    "state": "the run's state is on the trainer (trainer.epoch, trainer.global_step, trainer.metrics, trainer.history)",
    "control": "to stop training, return a reason from should_stop(trainer); there is no control object",
    "metrics": "the metrics are trainer.metrics",
    "step": "the step is trainer.global_step",
    "validator": "the trainer is passed as trainer (it runs validation too)",
    "predictor": "the trainer is passed as trainer (it runs prediction too)",
    "exporter": "the trainer is passed as trainer (it runs export too)",
    "model": "the model is trainer.model",
    "optimizers": "the optimizer is trainer.optimizer",
    "lr_scheduler": "the scheduler is trainer.lr_scheduler",
    "train_dataloader": "the data is passed to fit(); its length is trainer.num_train_batches",
    "eval_dataloader": "the validation data is passed to fit(); its length is trainer.num_val_batches",
    "kwargs": "every value is on the trainer: take trainer and read it there",
}
"""Argument names of the peers' callback signatures, and where the value is in trainhooks."""


PEER_KEYWORDS: dict[str, tuple[str, str]] = {
    # Trainer(...) settings
    "max_epochs": ("epochs", "Lightning"),
    "num_train_epochs": ("epochs", "HF"),
    "check_val_every_n_epoch": ("val_every_n_epochs", "Lightning"),
    "validation_freq": ("val_every_n_epochs", "Keras"),
    "val_check_interval": ("val_every_n_steps", "Lightning"),
    "eval_steps": ("val_every_n_steps", "HF"),
    "gradient_accumulation_steps": ("accumulate_grad_batches", "HF"),
    "gradient_clip_val": ("grad_clip_norm", "Lightning"),
    "max_grad_norm": ("grad_clip_norm", "HF"),
    "logging_steps": ("log_every_n_steps", "HF"),
    "default_root_dir": ("save_dir", "Lightning"),
    "output_dir": ("save_dir", "HF"),
    "project": ("save_dir", "Ultralytics"),
    "fast_dev_run": ("dry_run", "Lightning"),
    "full_determinism": ("deterministic", "HF"),
    "torch_compile": ("compile", "HF"),
    "accelerator": ("device", "Lightning"),
    "max_norm": ("grad_clip_norm", "torch.nn.utils.clip_grad_norm_"),
    # fit(...) arguments
    "ckpt_path": ("resume", "Lightning"),
    "resume_from_checkpoint": ("resume", "HF"),
    "train_dataloaders": ("train_data", "Lightning"),
    "train_dataloader": ("train_data", "Lightning"),
    "train_dataset": ("train_data", "HF"),
    "val_dataloaders": ("val_data", "Lightning"),
    "eval_dataset": ("val_data", "HF"),
    "validation_data": ("val_data", "Keras"),
}
"""Keyword arguments of the peers' trainers and ``fit`` methods, with the trainhooks keyword
that means the same (a misspelt or borrowed keyword is an error naming it)."""


def peer_event(name: str) -> tuple[str, str] | None:
    """(trainhooks hook, frameworks) for a peer's event name, else None."""
    return PEER_EVENTS.get(name)


def argument_hint(names: Iterable[str]) -> str:
    """`` (in trainhooks, ...)`` for peer-style argument names, else ``""``."""
    hints = [f"{n!r}: {PEER_ARGUMENTS[n]}" for n in names if n in PEER_ARGUMENTS]
    return f"; this looks like another framework's signature. In trainhooks, {'; '.join(hints)}" if hints else ""


def when_it_fires(hook: str) -> str:
    """The first line of a hook's documentation, lower-cased: "fires after the last validation batch"."""
    from trainhooks import hookspecs

    for module in hookspecs.SPEC_MODULES:
        spec = getattr(module, hook, None)
        if spec is not None and hasattr(spec, hookspecs.PROJECT_NAME + "_spec"):
            first = (spec.__doc__ or "").strip().splitlines()[0].rstrip(".").replace("``", "")
            return first[:1].lower() + first[1:]
    return ""


def hook_suggestion(name: str, known: Sequence[str]) -> str:
    """What an unknown hook name should have been: for another framework's event the matching
    hook and when it fires, else the closest hook names (with when it fires, for one)."""
    from trainhooks.errors import suggest

    peer = PEER_EVENTS.get(name)
    if peer is not None and peer[0] in known:
        hook, frameworks = peer
        return f" (did you mean {hook}? {name} is the {frameworks} name; trainhooks' {hook}: {when_it_fires(hook)})"
    hits = suggest(name, known)
    if len(hits) == 1:
        return f" (did you mean {hits[0]}? {hits[0]}: {when_it_fires(hits[0])})"
    return f" (did you mean {' / '.join(hits)}?)" if hits else ""


def vocabulary_markdown() -> list[str]:
    """The section of docs/hooks.md on the seed's and the peers' names."""
    lines = [
        "## Other frameworks' names",
        "",
        "Every event of Ultralytics' default callback table is a hook of the same name. Two names of",
        "the document trainhooks was built from have a fixed meaning on callback objects",
        "(`trainhooks.Callback` subclasses and anything in `callbacks=`):",
        "",
        "* `on_epoch_end(trainer)` **is** `on_fit_epoch_end`: the end of the whole epoch, after its",
        "  validation, so `trainer.metrics.get('val/loss')` is there (Keras' and Ultralytics' meaning of",
        '  "epoch end"). `@trainhooks.hookimpl` functions use the hook names themselves.',
        "* `on_batch_end` is not accepted: a batch of what? It is an error naming",
        "  `on_train_batch_end` (the end of every training step); validation and prediction batches",
        "  have `on_val_batch_end` and `on_predict_batch_end`.",
        "",
        "Any other Keras, Lightning or Hugging Face event name on a callback object (or given to",
        "`add_callback`/`LambdaCallback`) is an error naming the matching hook and when it fires;",
        "a peer-style signature is an error saying where each value lives (`pl_module`:",
        "`trainer.model`; `epoch`, `logs`: `trainer.epoch`, `trainer.metrics`; `args`, `state`,",
        "`control`: the trainer and `should_stop`). A hook argument with a default value is an error",
        "(pluggy never passes it).",
        "",
        "| their name | framework | trainhooks hook |",
        "|---|---|---|",
    ]
    lines += [f"| `{name}` | {fw} | `{hook}` |" for name, (hook, fw) in PEER_EVENTS.items()]
    lines.append("")
    return lines
