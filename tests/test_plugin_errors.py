"""Every bad plugin gets one clear error naming the culprit; nothing is left half-registered."""

from __future__ import annotations

import functools
import json
import types
from typing import Any

import pytest
import torch

import trainhooks
from trainhooks.plugin_manager import PluginManager
from trainhooks.testing import HookRecorder


def test_misspelled_marked_hook_suggests_close_names() -> None:
    class Typo:
        @trainhooks.hookimpl
        def on_epoch_end(self, trainer):
            pass

    plugin_manager = PluginManager()
    with pytest.raises(trainhooks.UnknownHookError) as info:
        plugin_manager.register(Typo(), "typo")
    msg = str(info.value)
    assert "'typo'" in msg and "'on_epoch_end'" in msg
    assert "did you mean on_fit_epoch_end / on_train_epoch_end?" in msg
    assert info.value.plugin == "typo" and info.value.hook == "on_epoch_end"
    assert plugin_manager.get_plugin("typo") is None and not plugin_manager.has_plugin("typo")
    assert plugin_manager.call_order("on_train_epoch_end") == []


def test_misspelled_callback_method_is_an_error_not_silence(make_trainer) -> None:
    class MyCallback(trainhooks.BaseCallback):
        def on_train_epoch_end(self, trainer):
            pass

        def on_batch_end(self, trainer):
            pass

    with pytest.raises(trainhooks.UnknownHookError, match=r"on_batch_end.*did you mean"):
        make_trainer(callbacks=[MyCallback()])


def test_add_callback_with_unknown_event(make_trainer) -> None:
    trainer = make_trainer()
    with pytest.raises(trainhooks.UnknownHookError, match=r"'on_epoch_end'.*on_fit_epoch_end / on_train_epoch_end"):
        trainer.add_callback("on_epoch_end", lambda trainer: None)

    def on_epoch_end(trainer):  # the Keras name, as a ported function would be called
        pass

    with pytest.raises(trainhooks.UnknownHookError) as info:
        trainer.add_callback("on_epoch_end", on_epoch_end)
    message = str(info.value)
    assert message.startswith("callback event 'on_epoch_end' (for ")
    assert "on_epoch_end:on_epoch_end" not in message and "did you mean on_fit_epoch_end" in message
    with pytest.raises(trainhooks.UnknownHookError, match=r"^callback event 'on_batch_end' \(for <lambda>\)"):
        trainhooks.LambdaCallback(on_batch_end=lambda t: None)


def test_the_seed_alias_outside_a_callback_class_says_where_it_works(make_trainer) -> None:
    # on_epoch_end works as a method of a Callback class; by name (add_callback, LambdaCallback)
    # or as a @hookimpl function it is an error that says so, instead of a bare "did you mean".
    class Plugin:
        @trainhooks.hookimpl
        def on_epoch_end(self, trainer: Any) -> None: ...

    for attempt in (
        lambda: make_trainer().add_callback("on_epoch_end", lambda trainer: None),
        lambda: trainhooks.LambdaCallback(on_epoch_end=lambda trainer: None),
        lambda: make_trainer(plugins=[Plugin()]),
    ):
        with pytest.raises(trainhooks.UnknownHookError) as info:
            attempt()
        assert "did you mean on_fit_epoch_end / on_train_epoch_end?" in str(info.value)
        assert "on_epoch_end is accepted only as the name of a method in a callback class" in str(info.value)
        assert "where it means on_fit_epoch_end" in str(info.value)


def _declare(group: Any, flag: str) -> None:
    group.add_option(flag, type=int, default=3, help="declared by a partial")


def test_add_options_given_by_name_takes_a_partial_with_one_free_argument(make_trainer) -> None:
    # A partial whose one free argument is not called "parser" receives the parser (add_options
    # has no trainer argument to give it instead).
    declare = functools.partial(_declare, flag="--probe-every")
    trainer = make_trainer(callbacks=[trainhooks.LambdaCallback(add_options=declare)])
    assert trainer.options["probe_every"] == 3
    assert make_trainer().add_callback("add_options", declare) == "add_options:partial"
    with pytest.raises(
        trainhooks.HookArgumentError, match=r"argument 'group' of add_options .*it can take any of: parser"
    ):
        trainhooks.LambdaCallback(add_options=lambda group, flag: None)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (
            "import not_installed_anywhere_xyz\n",
            "plugin module '{name}' given to -p failed to import: ModuleNotFoundError",
        ),
        ("raise RuntimeError('broken at import')\n", "failed to import: RuntimeError: broken at import"),
        (
            "import trainhooks\n\n@trainhooks.hookimpl\ndef on_epoch_end(trainer):\n    pass\n",
            "plugin '{name}' implements 'on_epoch_end' ({name}.on_epoch_end), which is not a trainhooks hook",
        ),
        (
            "import trainhooks\n\n@trainhooks.hookimpl\ndef on_train_batch_end(trainer, batch_index):\n    pass\n",
            "argument 'batch_index' of on_train_batch_end",
        ),
    ],
)
def test_a_failing_p_module_exits_2_and_is_listed_with_its_error(tmp_path, monkeypatch, capsys, source, expected):
    from trainhooks import cli

    name = f"p_mod_{tmp_path.name[-12:].replace('-', '_')}"  # one module name per case (sys.modules)
    expected = expected.format(name=name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / f"{name}.py").write_text(source)
    assert cli.main(["fit", "-p", name, "--epochs", "1", "--save-dir", "r"]) == 2
    err = capsys.readouterr().err
    assert expected in err and err.count("\n") == 1  # one line, no usage text
    assert not (tmp_path / "r").exists()
    # `trainhooks plugins -p MODULE` lists it, with the error, next to the others.
    assert cli.main(["plugins", "--json", "-p", name]) == 0
    listed = {p["name"]: p for p in json.loads(capsys.readouterr().out)}
    assert listed[name]["status"] == "error" and expected in listed[name]["reason"]
    assert listed["checkpoint"]["status"] == "active"


def test_argument_not_in_spec_names_plugin_hook_and_argument() -> None:
    class Bad:
        @trainhooks.hookimpl
        def on_train_batch_end(self, trainer, batch, batch_index):
            pass

    plugin_manager = PluginManager()
    with pytest.raises(trainhooks.HookArgumentError) as info:
        plugin_manager.register(Bad(), "bad")
    msg = str(info.value)
    assert "'bad'" in msg and "'batch_index'" in msg and "on_train_batch_end" in msg
    assert "did you mean batch_idx" in msg and "trainer, batch, batch_idx, outputs" in msg
    assert info.value.argument == "batch_index"
    assert not plugin_manager.has_plugin("bad")


def test_callback_function_with_wrong_arguments(make_trainer) -> None:
    trainer = make_trainer()

    def cb(trainer, epoch):
        pass

    with pytest.raises(trainhooks.HookArgumentError, match=r"'epoch'.*on_train_epoch_end"):
        trainer.add_callback("on_train_epoch_end", cb)


def test_exception_in_hook_names_plugin_and_hook_after_on_exception(make_trainer, loaders) -> None:
    seen: list[BaseException] = []

    class Flaky(trainhooks.Callback):
        def on_train_batch_end(self, trainer, batch_idx):
            if trainer.global_step == 2:
                raise ZeroDivisionError("bad math in plugin")

    class Watcher(trainhooks.Callback):
        def on_exception(self, trainer, exception):
            seen.append(exception)

    rec = HookRecorder()
    trainer = make_trainer(callbacks=[Flaky(), Watcher()], plugins=[rec])
    with pytest.raises(trainhooks.HookError) as info:
        trainer.fit(*loaders)
    err = info.value
    assert err.plugin == "Flaky" and err.hook == "on_train_batch_end"
    assert "plugin 'Flaky' failed in hook 'on_train_batch_end': ZeroDivisionError: bad math in plugin" in str(err)
    assert isinstance(err.__cause__, ZeroDivisionError) and err.original is err.__cause__
    assert seen == [err]  # on_exception fired first, with the named error
    names = rec.names()
    assert names[-2:] == ["on_exception", "teardown"] and "on_train_end" not in names


def test_error_in_on_exception_never_hides_the_original(make_trainer, loaders, caplog) -> None:
    class Breaks(trainhooks.Callback):
        def on_train_start(self, trainer):
            raise RuntimeError("original")

        def on_exception(self, trainer, exception):
            raise ValueError("secondary")

    trainer = make_trainer(callbacks=[Breaks()])
    with pytest.raises(trainhooks.HookError, match="original"):
        trainer.fit(*loaders)
    assert "secondary" in caplog.text


def test_a_plugins_own_keyboard_interrupt_is_its_failure(make_trainer, loaders) -> None:
    """Nobody pressed Ctrl-C: the KeyboardInterrupt is the plugin's doing, named like any failure."""

    class CtrlC(trainhooks.Callback):
        def on_train_batch_start(self, trainer):
            raise KeyboardInterrupt

    rec = HookRecorder()
    trainer = make_trainer(callbacks=[CtrlC()], plugins=[rec])
    with pytest.raises(
        trainhooks.HookError, match="failed in hook 'on_train_batch_start': it raised KeyboardInterrupt"
    ):
        trainer.fit(*loaders)
    assert isinstance(rec.first("on_exception").kwargs["exception"].original, KeyboardInterrupt)
    assert rec.names()[-1] == "teardown"


def test_the_users_ctrl_c_inside_a_hook_passes_through_after_on_exception(make_trainer, loaders) -> None:
    """A real SIGINT, twice (the first stops gracefully, the second interrupts), inside a hook."""
    import os
    import signal

    class Presser(trainhooks.Callback):
        def on_train_batch_start(self, trainer):
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)

    rec = HookRecorder()
    trainer = make_trainer(callbacks=[Presser()], plugins=[rec])
    with pytest.raises(KeyboardInterrupt):
        trainer.fit(*loaders)
    assert isinstance(rec.first("on_exception").kwargs["exception"], KeyboardInterrupt)
    assert rec.names()[-1] == "teardown"


def test_registering_twice_is_an_error(make_trainer) -> None:
    cb = trainhooks.LambdaCallback(on_train_end=lambda trainer: None)
    trainer = make_trainer(callbacks=[cb])
    with pytest.raises(trainhooks.DuplicatePluginError, match="already registered"):
        trainer.plugin_manager.register(cb)
    module = types.ModuleType("dup_mod")
    trainer.plugin_manager.register(module, "dup")
    with pytest.raises(trainhooks.DuplicatePluginError, match="'dup' is already registered"):
        trainer.plugin_manager.register(types.ModuleType("other"), "dup")


def test_unknown_plugin_names(make_trainer) -> None:
    with pytest.raises(trainhooks.UnknownPluginError, match=r"'torchscrpt'.*did you mean torchscript"):
        make_trainer(plugins=["torchscrpt"])
    with pytest.raises(trainhooks.UnknownPluginError, match=r"'torchscrpt'"):
        make_trainer(disable=["torchscrpt"])


def test_plugins_must_be_a_list(make_trainer) -> None:
    with pytest.raises(trainhooks.ConfigError, match="lists of names"):
        make_trainer(plugins="torchscript")


def test_unmarked_hook_function_in_a_plugin_module_warns(make_trainer) -> None:
    module = types.ModuleType("forgot_marker")
    exec("def on_train_end(trainer):\n    pass\n", module.__dict__)
    with pytest.warns(UserWarning, match=r"on_train_end\(\).*without @trainhooks.hookimpl"):
        make_trainer(plugins=[module])


def test_bad_trainer_arguments() -> None:
    model = torch.nn.Linear(2, 2)
    with pytest.raises(trainhooks.ConfigError, match="epochs must be a positive integer"):
        trainhooks.Trainer(model, epochs=0, default_plugins=False)
    with pytest.raises(trainhooks.ConfigError, match=r"torch\.nn\.Module"):
        trainhooks.Trainer("resnet", default_plugins=False)  # type: ignore[arg-type]
    with pytest.raises(trainhooks.ConfigError, match="device 'gpu0'"):
        trainhooks.Trainer(model, device="gpu0", default_plugins=False)


def test_default_step_needs_pairs(make_trainer) -> None:
    data = [torch.zeros(4, 64)]
    trainer = make_trainer()
    with pytest.raises(trainhooks.ConfigError, match=r"\(inputs, targets\) batches.*training_step"):
        trainer.fit(data)


def test_export_of_unknown_format_lists_formats(make_trainer) -> None:
    trainer = make_trainer(plugins=["torchscript"])
    with pytest.raises(trainhooks.ExportFormatError, match=r"'tflite'.*available formats: torchscript"):
        trainer.export("tflite", example_input=torch.zeros(1, 64))


def test_non_critical_may_name_an_installed_plugin_that_is_not_enabled(tmp_path) -> None:
    def make(names: list[str]) -> trainhooks.Trainer:
        return trainhooks.Trainer(
            torch.nn.Linear(64, 10), loss_fn=torch.nn.CrossEntropyLoss(), save_dir=tmp_path, non_critical=names
        )

    assert "tensorboard" in make(["notify", "tensorboard"]).plugin_manager.non_critical  # opt-in, not enabled
    with pytest.raises(trainhooks.ConfigError, match=r"unknown plugin 'tensorbord' \(did you mean tensorboard\?\)"):
        make(["tensorbord"])
