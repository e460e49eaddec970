"""Every hook name is checked: typos of every hook (prefixed or not), the peers' event names and
signatures each get an error that teaches the trainhooks name; the seed example runs as written."""

from __future__ import annotations

import functools
from typing import Any

import pytest

import trainhooks
from trainhooks.callbacks import hook_signatures
from trainhooks.options import OptionGroup, OptionTable, call_add_options
from trainhooks.plugin_manager import PluginManager
from trainhooks.vocabulary import PEER_EVENTS


def register(obj: Any) -> PluginManager:
    plugin_manager = PluginManager()
    plugin_manager.register(obj, "probe", callback_style=True)
    return plugin_manager


def callback_with(method: str, fn: Any = None) -> trainhooks.Callback:
    cls = type("Probe", (trainhooks.Callback,), {method: fn or (lambda self, trainer: None)})
    return cls()


def typo(hook: str) -> str:
    """Swap two letters in the middle of the hook's last word: on_train_end -> on_train_edn."""
    head, _, last = hook.rpartition("_")
    i = max(1, len(last) // 2 - 1)
    swapped = last[:i] + last[i + 1] + last[i] + last[i + 2 :] if len(last) > 2 else last + last[-1]
    return f"{head}_{swapped}" if head else swapped


HOOKS = list(hook_signatures())


def test_the_typo_table_covers_every_hook() -> None:
    assert {typo(h) for h in HOOKS}.isdisjoint(HOOKS)
    assert {"should_stop", "teardown", "configure", "add_options", "export_model", "export_formats"} <= set(HOOKS)


@pytest.mark.parametrize("hook", HOOKS)
def test_a_misspelled_method_of_a_callback_object_is_an_error_naming_the_hook(hook: str) -> None:
    wrong = typo(hook)
    with pytest.raises(trainhooks.UnknownHookError) as info:
        register(callback_with(wrong))
    message = str(info.value)
    assert f"implements {wrong!r}" in message and "did you mean" in message
    assert hook in message.split("did you mean", 1)[1].split("?", 1)[0], message


@pytest.mark.parametrize("wrong", ["should_stpo", "teardwon", "configre", "add_optoins", "export_modle"])
def test_unprefixed_hooks_are_checked_too(wrong: str) -> None:
    with pytest.raises(trainhooks.UnknownHookError, match=rf"{wrong!r}.*did you mean"):
        register(callback_with(wrong))


def test_a_helper_method_with_an_unrelated_name_is_fine() -> None:
    plugin_manager = register(callback_with("summarise_metrics"))
    assert plugin_manager.plugin_hooks("probe") == []


# event name -> (framework, the trainhooks hook it should suggest)
PEER_TABLE = [
    # Keras
    ("on_train_begin", "on_train_start"),
    ("on_epoch_begin", "on_train_epoch_start"),
    ("on_train_batch_begin", "on_train_batch_start"),
    ("on_batch_begin", "on_train_batch_start"),
    ("on_batch_end", "on_train_batch_end"),
    ("on_test_begin", "on_val_start"),
    ("on_test_end", "on_val_end"),
    ("on_test_batch_begin", "on_val_batch_start"),
    ("on_test_batch_end", "on_val_batch_end"),
    ("on_predict_begin", "on_predict_start"),
    ("on_predict_batch_begin", "on_predict_batch_start"),
    # Lightning
    ("on_fit_end", "on_train_end"),
    ("on_validation_start", "on_val_start"),
    ("on_validation_end", "on_val_end"),
    ("on_validation_epoch_start", "on_val_start"),
    ("on_validation_epoch_end", "on_val_end"),
    ("on_validation_batch_start", "on_val_batch_start"),
    ("on_validation_batch_end", "on_val_batch_end"),
    ("on_test_start", "on_val_start"),
    ("on_test_epoch_start", "on_val_start"),
    ("on_test_epoch_end", "on_val_end"),
    ("on_test_batch_start", "on_val_batch_start"),
    ("on_predict_epoch_start", "on_predict_start"),
    ("on_predict_epoch_end", "on_predict_end"),
    ("on_sanity_check_start", "on_val_start"),
    ("on_keyboard_interrupt", "on_exception"),
    ("setup", "on_fit_start"),
    # Hugging Face
    ("on_init_end", "configure"),
    ("on_step_begin", "on_train_batch_start"),
    ("on_step_end", "on_train_batch_end"),
    ("on_substep_end", "on_train_microbatch_end"),  # issue 13: the micro-batch hook
    ("on_pre_optimizer_step", "on_before_optimizer_step"),
    ("on_evaluate", "on_val_end"),
    ("on_predict", "on_predict_end"),
    ("on_prediction_step", "on_val_batch_end"),
    ("on_save", "on_model_save"),
]


@pytest.mark.parametrize(("event", "hook"), PEER_TABLE)
def test_a_peer_event_name_gets_the_matching_hook_and_when_it_fires(event: str, hook: str) -> None:
    with pytest.raises(trainhooks.UnknownHookError) as info:
        register(callback_with(event))
    message = str(info.value)
    assert f"(did you mean {hook}? {event} is the " in message, message
    assert f"trainhooks' {hook}: " in message  # followed by when it fires
    with pytest.raises(trainhooks.UnknownHookError, match=rf"did you mean {hook}\?"):
        trainhooks.LambdaCallback(**{event: lambda trainer: None})


def test_the_peer_table_names_only_real_hooks_and_no_hook_twice() -> None:
    assert {hook for hook, _ in PEER_EVENTS.values()} <= set(HOOKS)
    assert set(PEER_EVENTS).isdisjoint(HOOKS)
    assert {event for event, _ in PEER_TABLE} <= set(PEER_EVENTS)


def test_when_validation_ends_the_message_says_the_val_metrics_are_there() -> None:
    with pytest.raises(trainhooks.UnknownHookError, match=r"on_val_end: fires after validation .*val/\* metrics"):
        register(callback_with("on_validation_end"))


def test_every_ultralytics_default_callback_is_a_hook() -> None:
    ultralytics = [
        "on_pretrain_routine_start", "on_pretrain_routine_end", "on_train_start", "on_train_epoch_start",
        "on_train_batch_start", "optimizer_step", "on_before_zero_grad", "on_train_batch_end",
        "on_train_epoch_end", "on_fit_epoch_end", "on_model_save", "on_train_end", "on_params_update",
        "teardown", "on_val_start", "on_val_batch_start", "on_val_batch_end", "on_val_end", "on_predict_start",
        "on_predict_batch_start", "on_predict_postprocess_end", "on_predict_batch_end", "on_predict_end",
        "on_export_start", "on_export_end",
    ]  # fmt: skip
    assert [name for name in ultralytics if name not in HOOKS] == []


# ----------------------------------------------------------------------- peer signatures
def test_a_lightning_signature_says_the_model_is_trainer_model() -> None:
    def on_train_epoch_end(self: Any, trainer: Any, pl_module: Any) -> None: ...

    with pytest.raises(trainhooks.HookArgumentError, match=r"'pl_module': the model is trainer\.model"):
        register(callback_with("on_train_epoch_end", on_train_epoch_end))


def test_a_keras_signature_says_where_epoch_and_logs_live() -> None:
    def on_epoch_end(self: Any, epoch: int, logs: Any = None) -> None: ...

    with pytest.raises(trainhooks.HookArgumentError) as info:
        register(callback_with("on_epoch_end", on_epoch_end))
    message = str(info.value)
    assert "'epoch': the epoch is trainer.epoch" in message
    assert "'logs': the metrics are trainer.metrics" in message


def test_a_hugging_face_signature_says_where_state_and_control_live() -> None:
    def on_step_end(self: Any, args: Any, state: Any, control: Any, **kwargs: Any) -> None: ...

    with pytest.raises(trainhooks.PluginValidationError, match="did you mean on_train_batch_end"):
        register(callback_with("on_step_end", on_step_end))

    def on_train_end(self: Any, args: Any, state: Any, control: Any, **kwargs: Any) -> None: ...

    with pytest.raises(trainhooks.HookArgumentError) as info:
        register(callback_with("on_train_end", on_train_end))
    message = str(info.value)
    assert "'state': the run's state is on the trainer (trainer.epoch, trainer.global_step" in message
    assert "'control': to stop training, return a reason from should_stop(trainer)" in message


def test_a_hook_argument_with_a_default_is_an_error_naming_it() -> None:
    def on_train_batch_end(self: Any, trainer: Any, outputs: Any = None) -> None: ...

    with pytest.raises(
        trainhooks.HookArgumentError, match=r"argument 'outputs' of on_train_batch_end .* has a default"
    ):
        register(callback_with("on_train_batch_end", on_train_batch_end))

    class Marked:
        @trainhooks.hookimpl
        def on_train_batch_end(self, trainer: Any, batch_idx: int = 0) -> None: ...

    with pytest.raises(
        trainhooks.HookArgumentError, match=r"'batch_idx' .* has a default value, so it is never passed"
    ):
        PluginManager().register(Marked(), "marked")


def test_a_defaulted_helper_parameter_warns_naming_it() -> None:
    def on_train_end(self: Any, trainer: Any, verbose: bool = False) -> None: ...

    with pytest.warns(UserWarning, match=r"parameter 'verbose' of on_train_end .* always keeps its default"):
        register(callback_with("on_train_end", on_train_end))


# ------------------------------------------------------------------ add_options like a hook
def _declare(group: OptionGroup, flag: str = "--probe-every") -> None:
    group.add_option(flag, type=int, default=1)


@pytest.mark.parametrize(
    "fn",
    [
        lambda: None,
        lambda parser: parser.add_option("--probe-every", type=int, default=1),
        functools.partial(_declare, flag="--probe-every"),
        _declare,
    ],
    ids=["no-arguments", "lambda", "partial", "function"],
)
def test_add_options_takes_any_subset_of_its_arguments(fn: Any) -> None:
    table = OptionTable()
    call_add_options(fn, OptionGroup("probe", table))
    assert list(table.specs) in ([], ["probe_every"])


def test_add_options_without_parser_on_a_callback(make_trainer) -> None:
    class Quiet(trainhooks.Callback):
        def add_options(self) -> None:
            self.asked = True

    quiet = Quiet()
    make_trainer(callbacks=[quiet])
    assert quiet.asked


# --------------------------------------------------------------------------- the seed example
def test_the_seed_example_runs_as_written(make_trainer, loaders, capsys) -> None:
    from trainhooks import BaseCallback  # the only change: the import

    class MyCallback(BaseCallback):
        def on_epoch_end(self, trainer):
            print(f"epoch {trainer.epoch}: val/loss={trainer.metrics.get('val/loss')}")

    result = make_trainer(callbacks=[MyCallback()], epochs=2).fit(*loaders)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("epoch ")]
    assert lines == [f"epoch {i}: val/loss={h['val/loss']}" for i, h in enumerate(result.history)]
