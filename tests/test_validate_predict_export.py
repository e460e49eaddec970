"""validate / predict / export fire their hooks; TorchScript export reproduces the model."""

from __future__ import annotations

import torch

from trainhooks.testing import HookRecorder


def test_validate_fires_hooks_and_returns_metrics(make_trainer, loaders) -> None:
    rec = HookRecorder()
    trainer = make_trainer(plugins=[rec])
    rec.clear()
    metrics = trainer.validate(loaders[1])
    assert rec.names() == [
        "on_val_start",
        "on_val_batch_start",
        "on_val_batch_end",
        "on_val_batch_start",
        "on_val_batch_end",
        "on_val_end",
        "teardown",
    ]
    assert rec.first("on_val_start").stage == "validate"
    assert rec.first("teardown").kwargs["stage"] == "validate"
    assert set(metrics) == {"val/loss", "val/acc"} and trainer.metrics["val/acc"] == metrics["val/acc"]
    # The model was in eval mode and gradients were off inside the loop, train mode restored after.
    assert not rec.first("on_val_batch_end").kwargs["outputs"]["preds"].requires_grad
    assert trainer.model.training


def test_predict_fires_hooks_and_returns_predictions(make_trainer, loaders) -> None:
    rec = HookRecorder()
    trainer = make_trainer(plugins=[rec])
    rec.clear()
    preds = trainer.predict(loaders[1])
    assert preds.shape == (64, 10)
    assert rec.names() == [
        "on_predict_start",
        "on_predict_batch_start",
        "on_predict_postprocess_end",
        "on_predict_batch_end",
        "on_predict_batch_start",
        "on_predict_postprocess_end",
        "on_predict_batch_end",
        "on_predict_end",
        "teardown",
    ]
    out = rec.of("on_predict_batch_end")[1].kwargs
    assert out["batch_idx"] == 1 and out["outputs"].shape == (32, 10)
    x = torch.cat([b[0] for b in loaders[1]])
    torch.testing.assert_close(preds, trainer.model(x).detach())


def test_predict_accepts_plain_tensor_batches(make_trainer) -> None:
    trainer = make_trainer()
    preds = trainer.predict([torch.zeros(3, 64), torch.ones(2, 64)])
    assert preds.shape == (5, 10)


def test_torchscript_export_loads_and_matches(make_trainer, loaders, tmp_path) -> None:
    rec = HookRecorder()
    trainer = make_trainer(plugins=["torchscript", rec], epochs=1)
    trainer.fit(*loaders)
    assert trainer.export_formats() == ["torchscript"]
    rec.clear()
    path = trainer.export("torchscript", tmp_path / "m.torchscript")
    assert path == tmp_path / "m.torchscript" and path.stat().st_size > 0
    # firstresult: the recorder (trylast) is not asked for export_model once torchscript answered.
    assert rec.names() == ["export_formats", "on_export_start", "on_export_end"]
    assert rec.first("on_export_start").kwargs["format"] == "torchscript"
    assert rec.first("on_export_end").kwargs["path"] == path
    loaded = torch.jit.load(str(path))
    x = torch.cat([b[0] for b in loaders[1]])
    trainer.model.eval()
    torch.testing.assert_close(loaded(x), trainer.model(x))
    assert trainer.artifacts["export:torchscript"] == path


def test_export_default_path_and_explicit_example(make_trainer) -> None:
    trainer = make_trainer(plugins=["torchscript"])
    path = trainer.export(example_input=torch.zeros(2, 64))
    assert path == trainer.save_dir / "weights" / "model.torchscript" and path.exists()
