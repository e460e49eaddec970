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
{#- Hooks every fit fires (trainhooks' loop map: construction, then fit). -#}
{% set fit_order = [
    "add_options", "configure", "on_fit_start", "on_pretrain_routine_start", "on_pretrain_routine_end", "on_train_start",
    "on_train_epoch_start", "on_train_batch_start", "on_before_backward", "on_after_backward", "on_train_microbatch_end",
    "on_before_optimizer_step", "optimizer_step", "on_params_update", "on_before_zero_grad", "on_train_batch_end", "should_stop",
    "on_train_epoch_end", "on_val_start", "on_val_batch_start", "on_val_batch_end", "on_val_end",
    "on_fit_epoch_end", "on_log", "on_train_end", "teardown",
] %}
{% set fit_hooks = [] %}
{% for hook in fit_order if hook in hooks %}
{% set _ = fit_hooks.append(hook) %}
{% endfor %}
{% set predict_hooks = [] %}
{% for hook in hooks if hook.startswith("on_predict") %}
{% set _ = predict_hooks.append(hook) %}
{% endfor %}
{% set checkpoint_hooks = [] %}
{% for hook in hooks if hook in ["on_save_checkpoint", "on_load_checkpoint", "on_model_save"] %}
{% set _ = checkpoint_hooks.append(hook) %}
{% endfor %}
{% set printed = {
    "on_fit_epoch_end": "epoch 2/2: lr=",
    "on_train_epoch_end": "epoch 2/2: train/loss=",
    "on_train_end": "training ended after 2 epochs",
} %}
{% set expect_output = [] %}
{% for hook in hooks if hook in printed %}
{% set _ = expect_output.append(hook) %}
{% endfor %}
{% set export = "export_formats" in hooks and "export_model" in hooks %}
{% set name = cookiecutter.plugin_name %}
{#- A Python list of strings, formatted as ruff format would (one item a line when long). -#}
{% macro pylist(items, prefix) -%}
{% set inline = "[" ~ (('"' ~ items|join('", "') ~ '"') if items else "") ~ "]" %}
{% if (prefix|length + inline|length) <= 100 %}
{{ prefix }}{{ inline }}
{%- else %}
{{ prefix }}[
{% for item in items %}
    "{{ item }}",
{% endfor %}
]
{%- endif %}
{%- endmacro %}
"""Tests of the plugin: real (tiny) training runs with the plugin registered.

The ``trainhooks_tester`` fixture comes with trainhooks (a pytest plugin it installs). It trains
a small model on real data for a couple of epochs with only the plugins you give it, and records
every hook call: which hooks fired, in what order, with which arguments.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
{% if "on_exception" in hooks or "should_stop" in hooks %}

{% endif %}
{% if "on_exception" in hooks %}
import pytest
{% endif %}
{% if "should_stop" in hooks %}
import torch
from trainhooks.testing import tiny_model
{% endif %}

import {{ cookiecutter.module_name }} as plugin

if TYPE_CHECKING:
{% if expect_output and "on_exception" not in hooks %}
    import pytest
{% endif %}
    from trainhooks.testing import TrainhooksTester

{{ pylist(hooks, "HOOKS = ") }}
"""The hooks this plugin implements, in the order trainhooks calls them."""

{{ pylist(fit_hooks, "FIT_HOOKS = ") }}
"""Those of them that every fit calls."""
{% if predict_hooks %}

{{ pylist(predict_hooks, "PREDICT_HOOKS = ") }}
"""Those of them that predict calls."""
{% endif %}


def test_the_entry_point_loads_the_plugin(trainhooks_tester: TrainhooksTester) -> None:
    # A plugin named by a string is loaded from its installed entry point (`pip install -e .`).
    result = trainhooks_tester.fit(plugin.NAME, epochs=1)
    assert result.plugin_hooks(plugin.NAME) == HOOKS


def test_the_module_gets_the_entry_point_name(trainhooks_tester: TrainhooksTester) -> None:
    # Registered as a module, the plugin still gets its entry-point name (stopped_by, -p no:NAME).
    result = trainhooks_tester.fit(plugin, epochs=1)
    assert plugin.NAME in result.plugins


{% if expect_output %}
def test_fit_calls_the_hooks(
    trainhooks_tester: TrainhooksTester, capsys: pytest.CaptureFixture[str]
) -> None:
{% else %}
def test_fit_calls_the_hooks(trainhooks_tester: TrainhooksTester) -> None:
{% endif %}
    result = trainhooks_tester.fit(plugin, epochs=2)
    result.assert_fired(*FIT_HOOKS)
    assert result.count("on_train_epoch_end") == 2
    assert not result.fit_result.stopped_early
{% if expect_output %}
    out = capsys.readouterr().out
{% for hook in expect_output %}
    assert f"[{plugin.NAME}] {{ printed[hook] }}" in out  # {{ hook }}
{% endfor %}
{% endif %}
{% if "should_stop" in hooks %}


def test_should_stop_ends_the_run_once_the_learning_rate_is_too_small(
    trainhooks_tester: TrainhooksTester,
) -> None:
    # A real schedule (stepped by the built-in lr plugin) takes the rate from 1e-3 to 1e-7.
    model = tiny_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    schedule = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=1e-4)
    result = trainhooks_tester.fit(
        plugin, "lr", epochs=5, model=model, optimizer=optimizer, lr_scheduler=schedule
    )
    assert result.fit_result.stopped_early
    assert result.fit_result.stopped_by == plugin.NAME
    assert result.fit_result.stop_reason == "learning rate 1.0e-07 fell below MIN_LR 1e-06"
    assert result.fit_result.epochs_completed == 1


def test_should_stop_abstains_while_the_learning_rate_is_usable(
    trainhooks_tester: TrainhooksTester,
) -> None:
    trainer = trainhooks_tester.trainer(plugin)  # a real Trainer, as trainhooks passes it
    assert plugin.should_stop(trainer) is None
    trainer.optimizer.param_groups[0]["lr"] = plugin.MIN_LR / 10
    assert plugin.should_stop(trainer) == "learning rate 1.0e-07 fell below MIN_LR 1e-06"
{% endif %}
{% if "add_options" in hooks %}


def test_the_every_option_is_read(
    trainhooks_tester: TrainhooksTester, capsys: pytest.CaptureFixture[str]
) -> None:
    result = trainhooks_tester.fit(plugin, epochs=2, options={plugin.EVERY_KEY: 2})
    assert result.trainer.options[plugin.EVERY_KEY] == 2
    out = capsys.readouterr().out
    # on_fit_epoch_end's report (the metrics, lr first) for epoch 2 only
    assert f"[{plugin.NAME}] epoch 2/2: lr=" in out and f"[{plugin.NAME}] epoch 1/2: lr=" not in out
{% endif %}
{% if predict_hooks %}


def test_predict_calls_the_hooks(trainhooks_tester: TrainhooksTester) -> None:
    result = trainhooks_tester.predict(plugin)
    result.assert_fired(*PREDICT_HOOKS)
{% endif %}
{% if "on_exception" in hooks %}


def test_a_failing_run_calls_on_exception(trainhooks_tester: TrainhooksTester) -> None:
    def broken_loss(outputs: object, targets: object) -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        trainhooks_tester.fit(plugin, loss_fn=broken_loss)
    assert trainhooks_tester.last is not None
    trainhooks_tester.last.assert_order("on_exception", "teardown")
{% endif %}
{% if checkpoint_hooks %}


def test_checkpoint_save_and_resume(trainhooks_tester: TrainhooksTester) -> None:
    first = trainhooks_tester.fit(plugin, epochs=1)
    path = first.trainer.save_checkpoint(first.trainer.save_dir / "last.pt")
    resumed = trainhooks_tester.fit(plugin, epochs=2, resume=path)
    assert resumed.fit_result.epochs_completed == 2
{% if "on_save_checkpoint" in hooks %}
    checkpoint = first.first("on_save_checkpoint").kwargs["checkpoint"]
    assert checkpoint["plugins"][plugin.NAME]["saved_at_step"] == first.trainer.global_step
{% endif %}
{% if "on_load_checkpoint" in hooks %}
    resumed.assert_fired("on_load_checkpoint")
{% endif %}
{% if "on_model_save" in hooks %}
    assert first.first("on_model_save").kwargs["path"] == path
{% endif %}
{% endif %}
{% if export %}


def test_export_writes_the_model(trainhooks_tester: TrainhooksTester) -> None:
    result = trainhooks_tester.fit(plugin, epochs=1)
    assert plugin.EXPORT_FORMAT in result.trainer.export_formats()
    path = result.trainer.export(plugin.EXPORT_FORMAT)
    assert path.exists() and path.stat().st_size > 0
{% endif %}
