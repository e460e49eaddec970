"""The hook contract: names, arguments, docstrings, firstresult flags, the typed facade."""

from __future__ import annotations

import inspect

import pytest

import trainhooks
from trainhooks import hookspecs
from trainhooks.callbacks import Callback, hook_signatures
from trainhooks.dispatch import HookDispatcher
from trainhooks.plugin_manager import PluginManager

# The public contract third-party plugins are written against (issue "Core engine").
CONTRACT = {
    "on_pretrain_routine_start": ("trainer",),
    "on_pretrain_routine_end": ("trainer",),
    "on_train_start": ("trainer",),
    "on_train_epoch_start": ("trainer",),
    "on_train_batch_start": ("trainer", "batch", "batch_idx"),
    "on_before_backward": ("trainer", "loss"),
    "on_after_backward": ("trainer",),
    "on_before_optimizer_step": ("trainer", "optimizer"),
    "on_before_zero_grad": ("trainer", "optimizer"),
    "on_train_batch_end": ("trainer", "batch", "batch_idx", "outputs"),
    "on_train_epoch_end": ("trainer",),
    "on_fit_epoch_end": ("trainer",),
    "on_model_save": ("trainer", "path"),
    "on_train_end": ("trainer",),
    "teardown": ("trainer", "stage"),
    "on_exception": ("trainer", "exception"),
    "on_save_checkpoint": ("trainer", "checkpoint"),
    "on_load_checkpoint": ("trainer", "checkpoint"),
    "on_val_start": ("trainer",),
    "on_val_batch_start": ("trainer", "batch", "batch_idx"),
    "on_val_batch_end": ("trainer", "batch", "batch_idx", "outputs"),
    "on_val_end": ("trainer",),
    "on_predict_start": ("trainer",),
    "on_predict_batch_start": ("trainer", "batch", "batch_idx"),
    "on_predict_batch_end": ("trainer", "batch", "batch_idx", "outputs"),
    "on_predict_end": ("trainer",),
    "on_export_start": ("trainer", "format"),
    "on_export_end": ("trainer", "format", "path"),
    "should_stop": ("trainer",),
    "export_model": ("trainer", "model", "format", "path"),
}
FIRSTRESULT = {"should_stop", "export_model"}


def test_contract_hooks_exist_with_exact_arguments() -> None:
    sigs = hook_signatures()
    for name, args in CONTRACT.items():
        assert name in sigs, f"hookspec {name} missing"
        assert sigs[name] == args, f"{name}: {sigs[name]} != {args}"


def test_markers_are_the_public_names() -> None:
    assert trainhooks.hookimpl.project_name == "trainhooks"
    assert trainhooks.hookspec.project_name == "trainhooks"
    assert trainhooks.ENTRY_POINT_GROUP == "trainhooks"


@pytest.mark.parametrize("name", list(hook_signatures()))
def test_every_hookspec_documents_when_args_and_return(name: str) -> None:
    caller = getattr(PluginManager().hook, name)
    doc = inspect.getdoc(caller.spec.function) or ""
    assert len(doc.splitlines()) >= 3, f"{name} needs a real docstring"
    for arg in caller.spec.argnames:
        assert f":param {arg}:" in doc, f"{name} docstring does not describe argument {arg!r}"
    assert "Return value" in doc, f"{name} docstring does not say what a return value means"
    is_first = bool(caller.spec.opts.get("firstresult"))
    if name in CONTRACT:
        assert is_first == (name in FIRSTRESULT)
    if is_first:
        assert "firstresult" in doc and "first non-None" in doc


def test_every_hook_has_a_typed_facade_method_and_a_callback_stub() -> None:
    for name, args in hook_signatures().items():
        if name == "add_options":  # called per plugin by the option table, never dispatched
            continue
        method = getattr(HookDispatcher, name)
        params = [p for p in inspect.signature(method).parameters if p != "self"]
        assert params == [a for a in args if a != "trainer"], name
        stub_doc = inspect.getdoc(getattr(Callback, name)) or ""
        assert stub_doc.startswith(f"({', '.join(args)}) "), name


def test_hookspecs_package_does_not_import_torch() -> None:
    import subprocess
    import sys

    code = "import sys, trainhooks.hookspecs, trainhooks; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_hook_names_order_matches_spec_modules() -> None:
    assert hookspecs.hook_names() == list(hook_signatures())
