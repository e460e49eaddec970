{#- Only the hooks named in the `hooks` answer are generated, in the order trainhooks calls them. -#}
{% set chosen = cookiecutter.hooks.replace(" ", "").split(",") %}
{#- A format works only when declared (export_formats) and provided (export_model): either brings both. -#}
{% if "export_model" in chosen or "export_formats" in chosen %}
{% set chosen = chosen + ["export_formats", "export_model"] %}
{% endif %}
{#- The example option (--NAME-every) is read by on_fit_epoch_end: add_options brings it along. -#}
{% if "add_options" in chosen and "on_fit_epoch_end" not in chosen %}
{% set chosen = chosen + ["on_fit_epoch_end"] %}
{% endif %}
{% set hooks = [] %}
{% for hook in cookiecutter._hook_signatures if hook in chosen %}
{% set _ = hooks.append(hook) %}
{% endfor %}
{% set sigs = cookiecutter._hook_signatures %}
{% set types = {
    "trainer": "Trainer",
    "parser": "OptionGroup",
    "batch": "Any",
    "batch_idx": "int",
    "loss": "torch.Tensor",
    "optimizer": "torch.optim.Optimizer",
    "outputs": "dict[str, Any]",
    "stage": "str",
    "exception": "BaseException",
    "checkpoint": "dict[str, Any]",
    "path": "Path",
    "format": "str",
    "model": "torch.nn.Module",
    "metrics": "dict[str, float]",
    "step": "int",
    "epoch_end": "bool",
} %}
{% set returns = {"should_stop": "str | None", "export_formats": "list[str]", "export_model": "Path | None"} %}
{% set silent = ["add_options", "should_stop", "export_formats", "export_model"] %}
{% set ns = namespace(annotations="", say=false) %}
{% for hook in hooks %}
{% for arg in sigs[hook] %}
{% set ns.annotations = ns.annotations ~ " " ~ (("Any" if hook == "on_predict_batch_end" and arg == "outputs" else types[arg])) %}
{% endfor %}
{% set ns.annotations = ns.annotations ~ " " ~ returns.get(hook, "None") %}
{% if hook not in silent %}
{% set ns.say = true %}
{% endif %}
{% endfor %}
{% set option = cookiecutter.plugin_name|lower|replace("_", "-") %}
{% set export = "export_formats" in hooks or "export_model" in hooks %}
{#- The def line as ruff format writes it: arguments on their own line when it is too long. -#}
{% macro signature(hook) -%}
{% set args = [] %}
{% for arg in sigs[hook] %}
{% set _ = args.append(arg ~ ": " ~ ("Any" if hook == "on_predict_batch_end" and arg == "outputs" else types[arg])) %}
{% endfor %}
{% set ret = returns.get(hook, "None") %}
{% set line = "def " ~ hook ~ "(" ~ args|join(", ") ~ ") -> " ~ ret ~ ":" %}
{% if line|length <= 100 %}
{{ line }}
{%- else %}
def {{ hook }}(
    {{ args|join(", ") }}
) -> {{ ret }}:
{%- endif %}
{%- endmacro %}
"""{{ cookiecutter.description|wordwrap(96, break_long_words=False) }}

This module is a trainhooks plugin. ``pyproject.toml`` declares it as an entry point of the
group ``trainhooks`` (named ``NAME`` below), so once the package is installed,
``trainhooks fit`` (and every ``trainhooks.Trainer``) loads it and calls the functions marked
``@trainhooks.hookimpl`` below. Each takes any subset of its hook's arguments, by name;
``trainhooks hooks`` lists every hook with its arguments;
``trainhooks fit -p no:NAME`` (``NAME`` below) turns the plugin off for one run.
"""

from __future__ import annotations

{% if "Any" in ns.annotations %}
from typing import TYPE_CHECKING, Any
{% else %}
from typing import TYPE_CHECKING
{% endif %}

import trainhooks

if TYPE_CHECKING:
{% if "Path" in ns.annotations %}
    from pathlib import Path

{% endif %}
{% if "torch." in ns.annotations %}
    import torch
{% endif %}
{% if "Trainer" in ns.annotations %}
    from trainhooks import Trainer
{% endif %}
{% if "OptionGroup" in ns.annotations %}
    from trainhooks.options import OptionGroup
{% endif %}

NAME = "{{ cookiecutter.plugin_name }}"
"""The plugin's entry-point name (``pyproject.toml``): ``-p no:NAME`` turns it off."""
{% if "add_options" in hooks %}

{% set every_args = 'int, 1, "report every N epochs", min=1, name="' ~ option|replace("-", "_") ~ '_every"' %}
{% if ("EVERY = trainhooks.Option(" ~ every_args ~ ")")|length <= 100 %}
EVERY = trainhooks.Option({{ every_args }})
{% elif (every_args|length + 4) <= 100 %}
EVERY = trainhooks.Option(
    {{ every_args }}
)
{% else %}
EVERY = trainhooks.Option(
    int,
    1,
    "report every N epochs",
    min=1,
    name="{{ option|replace("-", "_") }}_every",
)
{% endif %}
"""The example setting, declared once: its flag, its options key, its check (``0`` or ``2.5``
is refused with an error naming plugin, setting and value). ``on_fit_epoch_end`` reads it."""
EVERY_FLAG = EVERY.flag
"""``trainhooks fit {{ "--" ~ option }}-every N``."""
EVERY_KEY = EVERY.key
"""Its key in ``trainer.options`` and ``Trainer(options={EVERY_KEY: 2})``."""
{% endif %}
{% if "should_stop" in hooks %}

MIN_LR = 1e-6
"""``should_stop`` ends training once the learning rate has decayed below this."""
{% endif %}
{% if export %}

EXPORT_FORMAT = "{{ option }}-state-dict"
"""The export format this plugin provides: ``trainhooks export --format`` it."""
{% endif %}
{% if ns.say %}


def _say(trainer: Trainer, message: str) -> None:
    """Print one line, prefixed with the plugin's name, unless the run is quiet (``--quiet``)."""
    if trainer.verbose:
        print(f"[{NAME}] {message}")
{% endif %}
{% for hook in hooks %}


{% if hook == "on_fit_epoch_end" %}
@trainhooks.hookimpl(rank_zero_only=True)
{% else %}
@trainhooks.hookimpl
{% endif %}
{{ signature(hook) }}
{% if hook == "add_options" %}
    """Declare this plugin's settings (``trainhooks.Option``); ``trainhooks fit --help`` lists them.

    Read a value back in any hook as ``EVERY.value(trainer)``; from Python, pass
    ``Trainer(options={EVERY_KEY: 2})``. ``on_fit_epoch_end`` below reads this one.
    """
    EVERY.declare(parser)
{% elif hook == "configure" %}
    """Runs once, when the trainer and its options exist: read options and prepare here."""
    _say(trainer, f"configured: {trainer.epochs} epochs, writing to {trainer.save_dir}")
{% elif hook == "on_train_epoch_end" %}
    """Runs after each epoch's last training batch (``trainer.metrics``: ``train/loss``, ``lr``)."""
    loss = trainer.metrics.get("train/loss", float("nan"))
    _say(trainer, f"epoch {trainer.epoch + 1}/{trainer.epochs}: train/loss={loss:.4f}")
{% elif hook == "on_fit_epoch_end" %}
    """Report the epoch's metrics once its validation is done.

    ``rank_zero_only=True``: in a distributed run only the process of global rank zero reports.
    """
{% if "add_options" in hooks %}
    if (trainer.epoch + 1) % EVERY.value(trainer):
        return  # not an epoch to report (EVERY, declared in add_options)
{% endif %}
    summary = "  ".join(f"{key}={value:.4g}" for key, value in sorted(trainer.metrics.items()))
    _say(trainer, f"epoch {trainer.epoch + 1}/{trainer.epochs}: {summary}")
{% elif hook == "on_train_end" %}
    """Runs once training has ended normally (all epochs done, or a plugin stopped it)."""
    _say(trainer, f"training ended after {len(trainer.history)} epochs: {trainer.stop_reason}")
{% elif hook == "should_stop" %}
    """Stop once the learning rate has decayed below ``MIN_LR`` with epochs still to run: they
    would barely move the weights. (A schedule that ends at 0 in the last epoch is left alone.)

    ``should_stop`` is a *firstresult* hook, asked after every batch and after every epoch: the
    plugins are asked in order and the first answer that is not None wins. Return None to
    abstain (the next plugin is asked), a string to stop with that reason, or False for "keep
    going" (which also ends the consultation). Built-ins already stop on a NaN loss
    (``nan_guard``) and on a metric that stops improving or reaches a threshold
    (``-p early_stopping --stop-at 0.97``).
    """
    lr = trainer.optimizer.param_groups[0]["lr"]
    if lr < MIN_LR and trainer.epoch + 1 < trainer.epochs:
        return f"learning rate {lr:.1e} fell below MIN_LR {MIN_LR:.0e}"
    return None
{% elif hook == "teardown" %}
    """Runs last in fit, validate and predict, also after an error: release resources here."""
    _say(trainer, f"teardown after {stage}")
{% elif hook == "on_exception" %}
    """Runs when fit, validate or predict fails; the exception is raised again afterwards."""
    _say(trainer, f"{trainer.stage} failed: {type(exception).__name__}: {exception}")
{% elif hook == "on_train_batch_end" %}
    """Runs after every optimizer step; ``outputs["loss"]`` is the batch's loss (detached).

    Per-batch hooks run thousands of times: keep them cheap. ``.item()`` waits for the GPU, so
    this example calls it once per epoch only.
    """
    if batch_idx == 0:
        _say(trainer, f"epoch {trainer.epoch + 1}: first batch loss={outputs['loss'].item():.4f}")
{% elif hook == "on_before_backward" %}
    """Runs before ``loss.backward()``; ``loss`` is still attached to the graph."""
    if trainer.batch_idx == 0:
        _say(trainer, f"first backward of epoch {trainer.epoch + 1}: loss={loss.item():.4f}")
{% elif hook in ["on_before_optimizer_step", "optimizer_step", "on_before_zero_grad"] %}
    """Runs for every training batch (per-batch hooks should be cheap)."""
    if trainer.batch_idx == 0:
        _say(trainer, f"{{ hook }}: lr={optimizer.param_groups[0]['lr']:.3g}")
{% elif hook == "on_log" %}
    """Runs every ``log_every_n_steps`` steps, and with each epoch's final row (``epoch_end``)."""
    if epoch_end:
        _say(trainer, f"step {step}: the epoch's row has {len(metrics)} values")
{% elif "batch_idx" in sigs[hook] %}
    """Runs for every batch (per-batch hooks should be cheap); this example reports the first."""
    if batch_idx == 0:
        _say(trainer, "{{ hook }}: first batch")
{% elif hook == "on_params_update" %}
    """Runs after every optimizer step once the parameters are updated (e.g. for an EMA of them)."""
    if trainer.batch_idx == 0:
        _say(trainer, "on_params_update: parameters updated")
{% elif hook == "on_after_backward" %}
    """Runs for every training batch once the gradients are ready."""
    if trainer.batch_idx == 0:
        _say(trainer, "on_after_backward: gradients ready")
{% elif hook == "on_save_checkpoint" %}
    """Add what you need to restore later to the checkpoint dict (mutate it in place).

    Keep to tensors, numbers, strings, lists and dicts so the file loads with
    ``torch.load(weights_only=True)``.
    """
    state = checkpoint.setdefault("plugins", {}).setdefault(NAME, {})
    state["saved_at_step"] = trainer.global_step
    _say(trainer, f"checkpoint built at step {trainer.global_step}")
{% elif hook == "on_load_checkpoint" %}
    """Restore what ``on_save_checkpoint`` stored (``fit(resume=...)``, ``fit --resume``)."""
    state = checkpoint.get("plugins", {}).get(NAME, {})
    _say(trainer, f"resumed from a checkpoint saved at step {state.get('saved_at_step')}")
{% elif hook == "on_model_save" %}
    """Runs once a checkpoint file has been written completely."""
    _say(trainer, f"checkpoint written to {path}")
{% elif hook == "on_export_start" %}
    """Runs before the model is exported."""
    _say(trainer, f"exporting {format}")
{% elif hook == "on_export_end" %}
    """Runs after the exported file was written."""
    _say(trainer, f"exported {format} to {path}")
{% elif hook == "export_formats" %}
    """Name the export formats this plugin provides (the results of all plugins are combined)."""
    return [EXPORT_FORMAT]
{% elif hook == "export_model" %}
    """Write the model if ``format`` is this plugin's; return None to leave it to another plugin.

    ``export_model`` is a *firstresult* hook: the plugins are asked in order and the first one
    returning a path has exported the model.
    """
    if format != EXPORT_FORMAT:
        return None
    import torch  # imported here so that loading the plugin stays fast

    torch.save(model.state_dict(), path)
    return path
{% else %}
    """Runs at {{ hook }} (see ``trainhooks hooks``)."""
    _say(trainer, "{{ hook }}")
{% endif %}
{% endfor %}
