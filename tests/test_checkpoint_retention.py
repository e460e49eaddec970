"""The checkpoint plugin's naming, retention and best weights (issue 14, parts 4 and 5): real
training on tiny_digits, real files, the real command line."""

from __future__ import annotations

import math

import pytest
import torch

import trainhooks
from trainhooks import checkpointing, cli
from trainhooks.plugins.checkpoint import ModelCheckpoint
from trainhooks.testing import tiny_model


def scripted_val_loss(values: list[float]) -> trainhooks.Callback:
    """Log a scripted val/loss per epoch (after validation, before the checkpoint plugin)."""

    class Scripted(trainhooks.Callback):
        @trainhooks.hookimpl(tryfirst=True)
        def on_fit_epoch_end(self, trainer):
            trainer.log_metric("val/loss", values[trainer.epoch])

    return Scripted()


def names(trainer: trainhooks.Trainer, folder: str = "weights") -> list[str]:
    return sorted(p.name for p in (trainer.save_dir / folder).iterdir())


def epoch_of(path) -> int:
    return int(checkpointing.load_checkpoint(path)["epoch"])


def same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# --------------------------------------------------------------------------- naming
def test_filename_template_names_the_top_k_files(make_trainer, loaders) -> None:
    ckpt = ModelCheckpoint(save_top_k=2, filename="{epoch:03d}-{val/loss:.4f}")
    trainer = make_trainer(plugins=[ckpt], callbacks=[scripted_val_loss([0.5, 0.3, 0.4, 0.2])], epochs=4)
    trainer.fit(*loaders)
    assert names(trainer) == ["002-0.3000.pt", "004-0.2000.pt", "best.pt", "last.pt", "previous.pt"]
    assert epoch_of(trainer.save_dir / "weights" / "004-0.2000.pt") == 3
    assert epoch_of(trainer.save_dir / "weights" / "002-0.3000.pt") == 1


def test_a_name_another_kept_epoch_has_gets_a_version(make_trainer, loaders) -> None:
    ckpt = ModelCheckpoint(save_top_k=-1, filename="loss{val/loss:.1f}")
    trainer = make_trainer(plugins=[ckpt], callbacks=[scripted_val_loss([0.5, 0.5, 0.3])], epochs=3)
    trainer.fit(*loaders)
    weights = trainer.save_dir / "weights"
    assert names(trainer) == ["best.pt", "last.pt", "loss0.3.pt", "loss0.5-v1.pt", "loss0.5.pt", "previous.pt"]
    assert [epoch_of(weights / n) for n in ("loss0.5.pt", "loss0.5-v1.pt", "loss0.3.pt")] == [0, 1, 2]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {"filename": "{a"},
            r"filename \(--ckpt-filename\) must be a file-name template .*, got '\{a': not a valid",
        ),
        ({"filename": "x}"}, r"filename .* got 'x\}': not a valid template"),
        ({"filename": "{}"}, r"filename .* got '\{\}': a positional field"),
        ({"filename": "{0:03d}"}, r"filename .* got '\{0:03d\}': a positional field"),
        ({"filename": "sub/{epoch}"}, r"filename .* got 'sub/\{epoch\}': a file name may not hold a directory"),
        ({"filename": "last"}, r"filename .* got 'last': a name the plugin writes itself"),
        ({"filename": "  "}, r"filename .* got '  ': empty"),
        ({"filename": 3}, r"filename .* got 3: not a string"),
        ({"every_n_epochs": 0.5}, r"every_n_epochs \(--save-every-n-epochs\) must be an integer >= 0, got 0.5"),
        ({"every_n_epochs": -1}, r"every_n_epochs .* got -1"),
        ({"initial_threshold": "x"}, r"initial_threshold \(--ckpt-threshold\) must be a number .*, got 'x'"),
        ({"initial_threshold": True}, r"initial_threshold .* got True: not a number"),
        ({"initial_threshold": float("nan")}, r"initial_threshold .* got nan: no value can ever beat NaN"),
        ({"restore_best": "maybe"}, r"restore_best must be true or false, got 'maybe'"),
    ],
)
def test_bad_values_are_errors_at_construction_naming_plugin_setting_and_value(settings, message) -> None:
    with pytest.raises(trainhooks.ConfigError, match=r"plugin 'ModelCheckpoint': setting " + message):
        ModelCheckpoint(**settings)


def test_bad_values_through_options_are_errors_before_training(make_trainer) -> None:
    with pytest.raises(trainhooks.ConfigError, match=r"setting filename \(--ckpt-filename\) .* got '\{epoch'"):
        make_trainer(plugins=[ModelCheckpoint()], options={"ckpt_filename": "{epoch"})
    with pytest.raises(trainhooks.ConfigError, match=r"setting initial_threshold .* got 'low'"):
        make_trainer(plugins=[ModelCheckpoint()], options={"ckpt_threshold": "low"})


def test_a_template_naming_a_missing_metric_fails_when_first_used_losing_nothing(make_trainer, loaders) -> None:
    ckpt = ModelCheckpoint(save_top_k=-1, filename="{epoch}-{val/f1:.3f}")
    trainer = make_trainer(plugins=[ckpt], epochs=3)
    with pytest.raises(trainhooks.HookError) as info:
        trainer.fit(*loaders)
    error = info.value.original
    assert isinstance(error, trainhooks.ConfigError)
    message = str(error)
    assert "'val/f1'" in message and "metrics: " in message
    assert "val/loss" in message and "val/acc" in message  # the metrics that exist
    assert info.value.hook == "on_fit_epoch_end" and trainer.epoch == 0  # the first epoch that needed it
    weights = trainer.save_dir / "weights"
    # This epoch's last.pt and best.pt were written before the error: no emergency.pt needed.
    assert names(trainer) == ["best.pt", "last.pt"]
    assert epoch_of(weights / "last.pt") == 0 and epoch_of(weights / "best.pt") == 0
    assert trainer.emergency_checkpoint == weights / "last.pt"


def test_a_template_is_not_used_when_no_epoch_file_is_due(make_trainer, loaders) -> None:
    # save_top_k=1 and no every_n_epochs: only last.pt/best.pt, so the template is never filled in.
    trainer = make_trainer(plugins=[ModelCheckpoint(filename="{val/f1}")], epochs=2)
    trainer.fit(*loaders)
    assert names(trainer) == ["best.pt", "last.pt", "previous.pt"]


# --------------------------------------------------------------------------- retention
def test_every_n_epochs_keeps_those_epochs_whatever_the_top_k(make_trainer, loaders) -> None:
    ckpt = ModelCheckpoint(every_n_epochs=2)
    trainer = make_trainer(plugins=[ckpt], callbacks=[scripted_val_loss([0.5, 0.6, 0.7, 0.8, 0.9])], epochs=5)
    trainer.fit(*loaders)
    assert names(trainer) == ["best.pt", "epoch2.pt", "epoch4.pt", "last.pt", "previous.pt"]
    assert epoch_of(trainer.save_dir / "weights" / "best.pt") == 0
    assert epoch_of(trainer.save_dir / "weights" / "epoch4.pt") == 3


def test_top_k_never_deletes_a_periodic_file(make_trainer, loaders) -> None:
    ckpt = ModelCheckpoint(save_top_k=2, every_n_epochs=2)
    trainer = make_trainer(plugins=[ckpt], callbacks=[scripted_val_loss([0.5, 0.6, 0.4, 0.3])], epochs=4)
    trainer.fit(*loaders)
    # top 2: epochs 4 and 3; epoch 2 is periodic; epoch 1 fell out of the top 2 and is deleted
    assert names(trainer) == ["best.pt", "epoch2.pt", "epoch3.pt", "epoch4.pt", "last.pt", "previous.pt"]


def test_every_n_epochs_and_top_k_carry_over_a_resume(make_trainer, loaders, tmp_path) -> None:
    losses = [0.5, 0.6, 0.4, 0.3, 0.7]
    first = make_trainer(
        plugins=[ModelCheckpoint(save_top_k=2, every_n_epochs=2)], callbacks=[scripted_val_loss(losses)], epochs=2
    )
    first.fit(*loaders)
    assert names(first) == ["best.pt", "epoch1.pt", "epoch2.pt", "last.pt", "previous.pt"]
    second = make_trainer(
        plugins=[ModelCheckpoint(save_top_k=2, every_n_epochs=2)], callbacks=[scripted_val_loss(losses)], epochs=5
    )
    second.fit(*loaders, resume=tmp_path / "run" / "weights" / "last.pt")
    # epoch 1 falls out of the top 2 (the resumed list knows it); epoch 2 stays: it is periodic
    assert names(second) == ["best.pt", "epoch2.pt", "epoch3.pt", "epoch4.pt", "last.pt", "previous.pt"]
    assert epoch_of(second.save_dir / "weights" / "best.pt") == 3


def test_without_a_monitor_save_top_k_minus_one_keeps_every_epoch(make_trainer, loaders, recwarn) -> None:
    trainer = make_trainer(plugins=[ModelCheckpoint(monitor="none", save_top_k=-1)], epochs=3)
    trainer.fit(*loaders)
    assert names(trainer) == ["epoch1.pt", "epoch2.pt", "epoch3.pt", "last.pt", "previous.pt"]
    assert [epoch_of(trainer.save_dir / "weights" / f"epoch{i}.pt") for i in (1, 2, 3)] == [0, 1, 2]
    assert not [w for w in recwarn if "checkpoint" in str(w.message)]


def test_without_a_monitor_only_last_pt(make_trainer, loaders, recwarn) -> None:
    trainer = make_trainer(plugins=[ModelCheckpoint(monitor="none")], epochs=2)
    trainer.fit(*loaders)
    assert names(trainer) == ["last.pt", "previous.pt"]
    assert not [w for w in recwarn if "checkpoint" in str(w.message)]


def test_a_metric_never_logged_with_top_k_minus_one_keeps_every_epoch(make_trainer, loaders) -> None:
    trainer = make_trainer(plugins=[ModelCheckpoint(monitor="val/f1", save_top_k=-1)], epochs=2)
    with pytest.warns(RuntimeWarning, match=r"'val/f1' is not in trainer.metrics"):
        trainer.fit(*loaders)
    assert names(trainer) == ["epoch1.pt", "epoch2.pt", "last.pt", "previous.pt"]


def test_initial_threshold_must_be_beaten_before_anything_is_best(make_trainer, loaders) -> None:
    ckpt = ModelCheckpoint(initial_threshold=0.35, save_top_k=-1)
    trainer = make_trainer(plugins=[ckpt], callbacks=[scripted_val_loss([0.5, 0.4, 0.3, 0.33])], epochs=4)
    trainer.fit(*loaders)
    assert names(trainer) == ["best.pt", "epoch3.pt", "epoch4.pt", "last.pt", "previous.pt"]
    assert epoch_of(trainer.save_dir / "weights" / "best.pt") == 2


def test_a_threshold_nobody_beats_writes_no_best_pt_and_restores_nothing(make_trainer, loaders) -> None:
    ckpt = ModelCheckpoint(monitor="val/acc", initial_threshold=1.5, restore_best=True)  # accuracy above 1.5: never
    trainer = make_trainer(plugins=[ckpt], epochs=2)
    with pytest.warns(RuntimeWarning, match=r"restore_best: nothing restored, no value of 'val/acc' beat initial"):
        trainer.fit(*loaders)
    assert names(trainer) == ["last.pt", "previous.pt"]
    assert same_weights(
        trainer.model.state_dict(), checkpointing.load_checkpoint(trainer.save_dir / "weights" / "last.pt")["model"]
    )


def test_a_metric_that_is_nan_in_every_epoch(make_trainer, loaders) -> None:
    nan = float("nan")
    ckpt = ModelCheckpoint(save_top_k=2, restore_best=True)
    trainer = make_trainer(plugins=[ckpt], callbacks=[scripted_val_loss([nan, nan, nan])], epochs=3)
    with pytest.warns(RuntimeWarning) as caught:
        trainer.fit(*loaders)
    messages = [str(w.message) for w in caught if "checkpoint" in str(w.message)]
    assert sum("NaN at epoch" in m for m in messages) == 1 and any("NaN at epoch 1" in m for m in messages)
    assert any("NaN in every epoch: no best.pt was written" in m for m in messages)
    assert any("restore_best: nothing restored, 'val/loss' was NaN in every epoch" in m for m in messages)
    assert names(trainer) == ["last.pt", "previous.pt"]
    last = checkpointing.load_checkpoint(trainer.save_dir / "weights" / "last.pt")
    assert last["epoch"] == 2 and math.isnan(last["metrics"]["val/loss"])
    assert same_weights(trainer.model.state_dict(), last["model"])  # the final weights, kept


def test_a_nan_epoch_among_finite_ones_is_skipped_without_the_end_warning(make_trainer, loaders) -> None:
    ckpt = ModelCheckpoint(save_top_k=-1)
    trainer = make_trainer(plugins=[ckpt], callbacks=[scripted_val_loss([0.5, float("nan"), 0.4])], epochs=3)
    with pytest.warns(RuntimeWarning) as caught:
        trainer.fit(*loaders)
    messages = [str(w.message) for w in caught if "checkpoint" in str(w.message)]
    assert any("NaN at epoch 2" in m for m in messages)
    assert not any("every epoch" in m for m in messages)
    assert names(trainer) == ["best.pt", "epoch1.pt", "epoch3.pt", "last.pt", "previous.pt"]


# --------------------------------------------------------------------------- best weights
def test_restore_best_ends_training_with_the_best_weights(make_trainer, loaders, capsys) -> None:
    seen = {}

    class AfterTraining(trainhooks.Callback):  # an exporter running at the end sees the best weights
        def on_train_end(self, trainer):
            seen["weights"] = {k: v.clone() for k, v in trainer.model.state_dict().items()}

    model = tiny_model()
    ckpt = ModelCheckpoint(restore_best=True)
    trainer = make_trainer(
        model=model,
        plugins=[ckpt, "torchscript"],
        callbacks=[scripted_val_loss([0.5, 0.2, 0.4]), AfterTraining()],
        epochs=3,
    )
    trainer.fit(*loaders)
    weights = trainer.save_dir / "weights"
    best = checkpointing.load_checkpoint(weights / "best.pt")
    last = checkpointing.load_checkpoint(weights / "last.pt")
    assert best["epoch"] == 1 and last["epoch"] == 2
    assert not same_weights(best["model"], last["model"])
    assert same_weights(model.state_dict(), best["model"])  # the model the caller passed in
    assert same_weights(seen["weights"], best["model"])
    out = capsys.readouterr().out
    assert f"Restored the best weights from {weights / 'best.pt'} (epoch 2, val/loss 0.2)" in out

    # predict and export use them too
    reference = tiny_model()
    reference.load_state_dict(best["model"])
    reference.eval()
    val = loaders[1]
    with torch.no_grad():
        expected = torch.cat([reference(x) for x, _ in val])
    assert torch.equal(trainer.predict(val), expected)
    exported = torch.jit.load(str(trainer.export("torchscript")))
    assert same_weights(dict(exported.state_dict()), best["model"])


def test_restore_best_prints_nothing_when_quiet(make_trainer, loaders, capsys) -> None:
    trainer = make_trainer(
        plugins=[ModelCheckpoint(restore_best=True)],
        callbacks=[scripted_val_loss([0.5, 0.2, 0.4])],
        epochs=3,
        verbose=False,
    )
    trainer.fit(*loaders)
    assert "Restored" not in capsys.readouterr().out
    best = checkpointing.load_checkpoint(trainer.save_dir / "weights" / "best.pt")
    assert same_weights(trainer.model.state_dict(), best["model"])


def test_without_restore_best_the_model_keeps_its_final_weights(make_trainer, loaders) -> None:
    trainer = make_trainer(plugins=[ModelCheckpoint()], callbacks=[scripted_val_loss([0.5, 0.2, 0.4])], epochs=3)
    trainer.fit(*loaders)
    last = checkpointing.load_checkpoint(trainer.save_dir / "weights" / "last.pt")
    assert same_weights(trainer.model.state_dict(), last["model"])


def test_restore_best_after_an_early_stop_keeps_the_final_state_in_last_pt(make_trainer, loaders) -> None:
    from trainhooks.plugins.early_stopping import EarlyStopping

    trainer = make_trainer(
        plugins=[ModelCheckpoint(restore_best=True), EarlyStopping(patience=1)],
        callbacks=[scripted_val_loss([0.5, 0.2, 0.4, 0.6, 0.7])],
        epochs=5,
    )
    result = trainer.fit(*loaders)
    assert result.stopped_early and result.epochs_completed == 3
    weights = trainer.save_dir / "weights"
    last = checkpointing.load_checkpoint(weights / "last.pt")
    best = checkpointing.load_checkpoint(weights / "best.pt")
    assert last["epoch"] == 2 and last["stop_reason"] == result.stop_reason  # written before the restore
    assert same_weights(trainer.model.state_dict(), best["model"])
    assert not same_weights(last["model"], best["model"])


def test_restore_best_with_nothing_monitored_says_why(make_trainer, loaders) -> None:
    trainer = make_trainer(plugins=[ModelCheckpoint(monitor="none", restore_best=True)], epochs=1)
    with pytest.warns(RuntimeWarning, match=r"restore_best: nothing restored, nothing is monitored"):
        trainer.fit(*loaders)
    trainer = make_trainer(
        plugins=[ModelCheckpoint(save_top_k=0, restore_best=True)], epochs=1, save_dir=trainer.save_dir.parent / "k0"
    )
    with pytest.warns(RuntimeWarning, match=r"restore_best: nothing restored, save_top_k=0 writes no best.pt"):
        trainer.fit(*loaders)


def test_two_instances_each_with_its_own_naming_and_best(make_trainer, loaders) -> None:
    by_loss = ModelCheckpoint(name="by_loss", save_top_k=2, filename="{epoch}-{val/loss:.2f}", restore_best=True)
    periodic = ModelCheckpoint(name="periodic", monitor="none", every_n_epochs=2, dirpath="periodic")
    trainer = make_trainer(plugins=[by_loss, periodic], callbacks=[scripted_val_loss([0.5, 0.2, 0.4, 0.3])], epochs=4)
    trainer.fit(*loaders)
    assert names(trainer) == ["2-0.20.pt", "4-0.30.pt", "best.pt", "last.pt", "previous.pt"]
    assert names(trainer, "periodic") == ["epoch2.pt", "epoch4.pt", "last.pt", "previous.pt"]
    best = checkpointing.load_checkpoint(trainer.save_dir / "weights" / "best.pt")
    assert set(best["plugins"]) == {"by_loss", "periodic"}
    own = checkpointing.load_checkpoint(trainer.save_dir / "periodic" / "last.pt")
    assert own["plugins"]["periodic"]["periodic"] == ["epoch2.pt", "epoch4.pt"]
    assert "monitor" not in own["plugins"]["periodic"]  # monitor="none": nothing to keep
    assert same_weights(trainer.model.state_dict(), best["model"])


# --------------------------------------------------------------------------- command line
def test_cli_flags_name_keep_and_restore(tmp_path, capsys) -> None:
    run = tmp_path / "run"
    args = [
        "fit",
        "--epochs",
        "2",
        "--save-dir",
        str(run),
        "-p",
        "no:plot",
        "--ckpt-filename",
        "{epoch:02d}-{val/acc:.3f}",
    ]
    code = cli.main([*args, "--save-every-n-epochs", "1", "--ckpt-monitor", "val/acc", "--restore-best"])
    out, err = capsys.readouterr()
    assert code == 0, err
    kept = sorted(p.name for p in (run / "weights").glob("0*.pt"))
    history = checkpointing.load_checkpoint(run / "weights" / "last.pt")["history"]
    assert kept == [f"{i + 1:02d}-{row['val/acc']:.3f}.pt" for i, row in enumerate(history)]
    assert f"Restored the best weights from {run / 'weights' / 'best.pt'}" in out


def test_cli_refuses_a_bad_flag_value_naming_it(tmp_path, capsys) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["fit", "--save-dir", str(tmp_path / "r"), "--save-every-n-epochs", "0.5"])
    _, err = capsys.readouterr()
    assert info.value.code == 2
    assert "setting every_n_epochs (--save-every-n-epochs) must be an integer >= 0, got '0.5'" in err


def test_a_cli_resume_keeps_the_recorded_checkpoint_options(tmp_path, capsys) -> None:
    run = tmp_path / "run"
    first = ["fit", "--epochs", "1", "--save-dir", str(run), "-p", "no:plot", "--quiet"]
    code = cli.main([*first, "--save-every-n-epochs", "1", "--ckpt-filename", "e{epoch}", "--restore-best"])
    assert code == 0, capsys.readouterr().err
    capsys.readouterr()
    # No plugin flag on the resume: the recorded template, period and restore_best apply.
    code = cli.main(["fit", "--resume", str(run / "weights" / "last.pt"), "--epochs", "2"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert sorted(p.name for p in (run / "weights").glob("e*.pt")) == ["e1.pt", "e2.pt"]
    assert "Restored the best weights" in out and "overrides" not in err.replace("--epochs 2 overrides", "")
    # An explicit --no-restore-best overrides the recorded value, and says so.
    code = cli.main(["fit", "--resume", str(run / "weights" / "last.pt"), "--epochs", "3", "--no-restore-best"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "trainhooks: --restore-best False overrides the recorded True" in err
    assert "Restored" not in out
    assert sorted(p.name for p in (run / "weights").glob("e*.pt")) == ["e1.pt", "e2.pt", "e3.pt"]
