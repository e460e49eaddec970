"""The built-in plugins, each shown doing its job on real training of the digits task."""

from __future__ import annotations

import csv
import io
import json
import math
import warnings

import pytest
import torch

import trainhooks
from trainhooks import cli
from trainhooks.plugins.checkpoint import ModelCheckpoint
from trainhooks.plugins.csv_logger import CSVLogger
from trainhooks.plugins.early_stopping import EarlyStopping
from trainhooks.plugins.lr_scheduler import LRScheduler
from trainhooks.plugins.nan_guard import NaNGuard
from trainhooks.plugins.plot import PlotResults, group_metrics
from trainhooks.plugins.progress import Progress
from trainhooks.plugins.timer import Timer, parse_duration
from trainhooks.testing import HookRecorder, tiny_digits, tiny_model

BUILTINS = {
    "checkpoint": "active",
    "csv": "active",
    "early_stopping": "available",
    "lr": "active",
    "nan_guard": "active",
    "notify": "available",
    "onnx": "active",
    "plot": "active",
    "progress": "active",
    "tensorboard": "available",
    "timer": "available",
    "torchscript": "active",
}


def sgd(lr: float):
    return lambda params: torch.optim.SGD(params, lr=lr)


# --------------------------------------------------------------------------- the suite as a whole
def test_every_builtin_is_an_entry_point_of_this_distribution(capsys) -> None:
    assert cli.main(["plugins", "--json"]) == 0
    listed = {p["name"]: p for p in json.loads(capsys.readouterr().out)}
    for name, status in BUILTINS.items():
        assert listed[name]["source"] == "builtin" and listed[name]["distribution"] == "trainhooks"
        assert listed[name]["status"] == status, name
        assert listed[name]["hooks"], f"{name} lists no hooks"


def test_fit_help_shows_every_plugin_option(capsys) -> None:
    with pytest.raises(SystemExit):
        cli.main(["fit", "--help"])
    out = capsys.readouterr().out
    for flag in (
        "--patience",
        "--es-monitor",
        "--ckpt-monitor",
        "--save-top-k",
        "--max-time",
        "--notify-url",
        "--tb-dir",
        "--lr-interval",
        "--nan-check-every",
    ):
        assert flag in out, flag
    assert "plugin early_stopping (opt-in: -p early_stopping)" in out
    assert "plugin checkpoint" in out


def test_option_of_a_plugin_that_is_not_enabled(tmp_path, capsys) -> None:
    code = cli.main(["fit", "--patience", "3", "--save-dir", str(tmp_path)])
    assert code == 2
    assert (
        "option 'patience' belongs to plugin 'early_stopping', which is not enabled; enable it with -p early_stopping"
        in capsys.readouterr().err
    )


def test_default_cli_run_writes_everything_and_says_where(tmp_path, capsys) -> None:
    code = cli.main(["fit", "--epochs", "3", "--save-dir", str(tmp_path / "run")])
    out = capsys.readouterr().out
    assert code == 0
    lines = out.strip().splitlines()
    assert [line.split()[1] for line in lines if line.startswith("Epoch ")] == ["1/3", "2/3", "3/3"]
    first, *lines = lines  # at once, before torch and the task load (issue 13)
    assert first.startswith("trainhooks ") and "fit: loading" in first
    assert lines[0].startswith("Model Sequential: 4,810 parameters") and lines[1].startswith("Plugins: checkpoint")
    for line in [x for x in lines[2:-3] if not x.startswith("  save dir:")]:  # one line per epoch
        assert "train/loss" in line and "val/acc" in line
    final, where, files = lines[-3:]
    assert final.startswith("Training finished after 3 of 3 epochs (135 steps") and "completed" not in final
    assert where == f"Results in {tmp_path / 'run'}/:"
    for name in ("weights/last.pt", "weights/best.pt", "metrics.csv", "results.png"):
        assert name in files
        assert (tmp_path / "run" / name).is_file()


def test_api_plugin_instance_replaces_the_default_one(tmp_path, loaders) -> None:
    mine = ModelCheckpoint(monitor="val/acc")
    trainer = trainhooks.Trainer(
        tiny_model(), loss_fn=torch.nn.CrossEntropyLoss(), plugins=[mine], save_dir=tmp_path, verbose=False
    )
    assert trainer.plugin_manager.get_plugin("checkpoint") is mine
    assert sum(isinstance(p, ModelCheckpoint) for _, p in trainer.plugin_manager.list_name_plugin()) == 1
    assert mine.monitor.metric == "val/acc" and mine.monitor.mode == "max"


# --------------------------------------------------------------------------- early_stopping
def test_early_stopping_patience_on_a_plateau(make_trainer, loaders) -> None:
    es = EarlyStopping(patience=2)
    trainer = make_trainer(plugins=[es], optimizer=sgd(0.0), epochs=20)  # lr 0: val/loss never improves
    result = trainer.fit(*loaders)
    assert result.epochs_completed == 3 and result.stopped_by == "EarlyStopping"
    best = result.history[0]["val/loss"]
    assert result.stop_reason == f"val/loss did not improve for 2 epochs (patience 2); best {best:.6g} at epoch 1"


def test_early_stopping_max_mode_and_stop_at(make_trainer) -> None:
    train, val = tiny_digits(n_train=512, n_val=128)
    es = EarlyStopping(monitor="val/acc", stop_at=0.5, patience=50)
    trainer = make_trainer(plugins=[es], optimizer=sgd(0.5), epochs=30)
    result = trainer.fit(train, val)
    assert es.monitor.mode == "max"
    assert result.stopped_early and result.epochs_completed < 30
    assert result.history[-1]["val/acc"] >= 0.5
    assert all(h["val/acc"] < 0.5 for h in result.history[:-1])
    assert result.stop_reason.startswith("val/acc reached") and "(stop_at 0.5)" in result.stop_reason


def test_early_stopping_min_delta(make_trainer, loaders) -> None:
    es = EarlyStopping(patience=1, min_delta=10.0)  # nothing ever improves by 10
    result = make_trainer(plugins=[es], optimizer=sgd(0.5), epochs=10).fit(*loaders)
    assert result.epochs_completed == 2


def test_early_stopping_from_options_and_cli(make_trainer, loaders, tmp_path, capsys) -> None:
    trainer = make_trainer(
        plugins=["early_stopping"], options={"patience": 1, "es_monitor": "val/loss"}, optimizer=sgd(0.0), epochs=10
    )
    assert trainer.fit(*loaders).epochs_completed == 2
    code = cli.main(
        [
            "fit",
            "--lr",
            "1e-9",
            "-p",
            "early_stopping",
            "--patience",
            "1",
            "--epochs",
            "10",
            "--save-dir",
            str(tmp_path / "cli"),
            "--quiet",
        ]
    )
    assert code == 0
    rows = list(csv.DictReader((tmp_path / "cli" / "metrics.csv").open()))
    assert len(rows) < 10


def test_early_stopping_without_the_metric_is_a_clear_error(make_trainer, loaders) -> None:
    trainer = make_trainer(plugins=[EarlyStopping()])
    with pytest.raises(
        trainhooks.HookError,
        match=r"'EarlyStopping'.*'val/loss' is not in trainer.metrics \(available: lr, train/loss\)",
    ):
        trainer.fit(loaders[0])  # no validation data


@pytest.mark.parametrize(
    ("name", "mode"),
    [
        ("val/acc", "max"),
        ("val/top1_acc", "max"),
        ("val/acc@1", "max"),
        ("val/auroc", "max"),
        ("val/psnr", "max"),
        ("val/mean_ap", "max"),
        ("valacc", "max"),
        ("val/acc1", "max"),
        ("metrics/mAP50(B)", "max"),  # Ultralytics' name
        ("metrics/mAP50-95(B)", "max"),
        ("val/iou50", "max"),
        ("val/aucroc", "max"),
        ("val/f1macro", "max"),
        ("val/bleu4", "max"),
        ("val/r2", "max"),
        ("val/top5", "max"),
        ("val/loss", "min"),
        ("val/dice_loss", "min"),  # a loss, though "dice" alone is maximised
        ("val/iou_loss", "min"),
        ("val/mape", "min"),  # not "map"
        ("val/rmse", "min"),
        ("val/something_new", "min"),
    ],
)
def test_auto_mode_reads_the_metric_name_as_words(name: str, mode: str) -> None:
    from trainhooks.monitor import infer_mode

    assert infer_mode(name, "auto") == mode
    assert EarlyStopping(monitor=name).monitor.mode == mode


def test_early_stopping_patience_zero_stops_at_the_first_epoch_without_improvement(make_trainer) -> None:
    es = EarlyStopping(monitor="val/loss", patience=0)
    values = iter([1.0, 0.5, 0.2, 0.3, 0.1])
    trainer = make_trainer(plugins=[es], epochs=5)
    trainer.add_callback("on_val_end", lambda trainer: trainer.metrics.__setitem__("val/loss", next(values)))
    train, val = tiny_digits(n_train=64, n_val=32)
    result = trainer.fit(train, val)
    assert result.epochs_completed == 4 and result.stopped_by == "EarlyStopping"
    assert "best 0.2 at epoch 3" in result.stop_reason


def test_early_stopping_on_a_metric_logged_every_other_epoch(make_trainer, loaders) -> None:
    """Epochs that do not log the metric neither improve nor use up patience."""
    values = iter([0.5, 0.6, 0.7, 0.4, 0.3])

    class EveryOther(trainhooks.Callback):
        def on_val_end(self, trainer):
            if trainer.epoch % 2 == 0:
                trainer.log_metric("val/slow", next(values))

    es = EarlyStopping(monitor="val/slow", patience=2)
    result = make_trainer(plugins=[es], callbacks=[EveryOther()], epochs=10).fit(*loaders)
    # logged at epochs 1, 3, 5, 7: 0.5 best, 0.6 and 0.7 no improvement -> stop after epoch 5
    assert result.epochs_completed == 5 and result.stopped_by == "EarlyStopping"
    assert [("val/slow" in h) for h in result.history] == [True, False, True, False, True]


# --------------------------------------------------------------------------- checkpoint
def test_checkpoint_last_every_epoch_best_on_improvement(make_trainer, loaders, tmp_path) -> None:
    rec = HookRecorder()
    ckpt = ModelCheckpoint(monitor="val/acc")
    trainer = make_trainer(plugins=[ckpt, rec], optimizer=sgd(0.3), epochs=4)
    result = trainer.fit(*loaders)
    weights = trainer.save_dir / "weights"
    accs = [h["val/acc"] for h in result.history]
    best_epoch = accs.index(max(accs))
    improvements = sum(1 for i, a in enumerate(accs) if all(a > b for b in accs[:i]))
    saves = [c.kwargs["path"].name for c in rec.of("on_model_save")]
    assert saves.count("last.pt") == 4 and saves.count("best.pt") == improvements
    # Built and serialised once per epoch, however many files it goes to.
    assert len(rec.of("on_save_checkpoint")) == 4
    best = torch.load(weights / "best.pt", weights_only=True)
    last = torch.load(weights / "last.pt", weights_only=True)
    assert best["epoch"] == best_epoch and last["epoch"] == 3
    assert best["metrics"]["val/acc"] == max(accs)
    assert best["plugins"]["ModelCheckpoint"]["monitor"]["best"] == max(accs)
    model = tiny_model()
    model.load_state_dict(last["model"])
    x = torch.randn(5, 64)
    trainer.model.eval()
    torch.testing.assert_close(model(x), trainer.model(x))
    assert not [p for p in weights.iterdir() if p.name.startswith(".")], "temporary files left behind"
    assert result.artifacts["best.pt"] == weights / "best.pt"


def test_checkpoint_copies_are_independent_files(make_trainer, loaders) -> None:
    """best.pt is a copy of last.pt, not a link: rewriting one in place leaves the other intact."""
    trainer = make_trainer(plugins=[ModelCheckpoint(monitor="val/loss")], optimizer=sgd(0.3), epochs=1)
    trainer.fit(*loaders)
    weights = trainer.save_dir / "weights"
    last, best = weights / "last.pt", weights / "best.pt"
    assert last.read_bytes() == best.read_bytes()
    assert last.stat().st_ino != best.stat().st_ino
    with open(best, "r+b") as fh:  # what an in-place "strip the optimizer" script does
        fh.truncate(10)
    assert torch.load(last, weights_only=True)["epoch"] == 0


def test_checkpoint_top_k(make_trainer, loaders) -> None:
    ckpt = ModelCheckpoint(monitor="val/loss", save_top_k=2)
    trainer = make_trainer(plugins=[ckpt], optimizer=sgd(0.3), epochs=5)
    result = trainer.fit(*loaders)
    losses = [h["val/loss"] for h in result.history]
    expected = {f"epoch{i + 1}.pt" for i in sorted(range(5), key=lambda i: losses[i])[:2]}
    files = {p.name for p in (trainer.save_dir / "weights").glob("epoch*.pt")}
    assert files == expected
    # The saved plugin state already counts the epoch it was saved in.
    last = torch.load(trainer.save_dir / "weights" / "last.pt", weights_only=True)
    assert {name for _, _, name in last["plugins"]["ModelCheckpoint"]["top"]} == expected


def test_checkpoint_never_saves_non_finite_weights(make_trainer, loaders) -> None:
    class Poison(trainhooks.Callback):
        def on_fit_epoch_end(self, trainer):
            if trainer.epoch == 1:
                with torch.no_grad():
                    next(trainer.model.parameters()).fill_(float("nan"))

    trainer = make_trainer(plugins=[ModelCheckpoint()], callbacks=[Poison()], epochs=2)
    with pytest.warns(RuntimeWarning, match="not finite at epoch 2; keeping the previous checkpoint"):
        trainer.fit(*loaders)
    last = torch.load(trainer.save_dir / "weights" / "last.pt", weights_only=True)
    assert last["epoch"] == 0 and all(torch.isfinite(t).all() for t in last["model"].values())


def test_checkpoint_save_top_k_zero_keeps_only_last(make_trainer, loaders) -> None:
    trainer = make_trainer(plugins=[ModelCheckpoint(save_top_k=0)], epochs=2)
    trainer.fit(*loaders)
    # previous.pt: the last.pt before this one, auto-resume's fallback (issue 14)
    assert sorted(p.name for p in (trainer.save_dir / "weights").iterdir()) == ["last.pt", "previous.pt"]


# --------------------------------------------------------------------------- csv
def test_csv_one_row_per_epoch_and_stable_columns(make_trainer, loaders) -> None:
    class LateMetric(trainhooks.Callback):
        def on_val_end(self, trainer):  # before the loggers' on_fit_epoch_end
            if trainer.epoch == 1:
                trainer.log_metric("extra/late", 42.0)

    trainer = make_trainer(plugins=[CSVLogger()], callbacks=[LateMetric()], epochs=3)
    result = trainer.fit(*loaders)
    rows = list(csv.DictReader((trainer.save_dir / "metrics.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    assert list(rows[0]) == ["epoch", "train/loss", "lr", "val/loss", "val/acc", "extra/late"]
    # Only epoch 2 logged it: its row has it, epoch 3's does not (nothing carried over).
    assert [r["extra/late"] for r in rows] == ["", "42.0", ""]
    assert "extra/late" not in result.history[2] and "extra/late" not in result.metrics
    for row, hist in zip(rows, result.history):
        assert float(row["val/loss"]) == hist["val/loss"]


def test_csv_matches_history_when_a_metric_is_logged_after_it_wrote_the_row(make_trainer, loaders) -> None:
    class Late(trainhooks.Callback):  # on_fit_epoch_end without tryfirst: runs after csv
        def on_fit_epoch_end(self, trainer):
            trainer.log_metric("val/best_loss", min(h["val/loss"] for h in trainer.history))

    trainer = make_trainer(plugins=[CSVLogger()], callbacks=[Late()], epochs=3)
    result = trainer.fit(*loaders)
    rows = list(csv.DictReader((trainer.save_dir / "metrics.csv").open()))
    assert [float(r["val/best_loss"]) for r in rows] == [h["val/best_loss"] for h in result.history]


def test_a_metric_logged_before_the_first_epoch_joins_the_first_row_only(make_trainer, loaders) -> None:
    class Params(trainhooks.Callback):
        def on_train_start(self, trainer):
            trainer.log_metric("model/params", 8.0)

    trainer = make_trainer(plugins=[CSVLogger()], callbacks=[Params()], epochs=2)
    result = trainer.fit(*loaders)
    assert [h.get("model/params") for h in result.history] == [8.0, None]
    rows = list(csv.DictReader((trainer.save_dir / "metrics.csv").open()))
    assert [r["model/params"] for r in rows] == ["8.0", ""]


# --------------------------------------------------------------------------- progress
def test_progress_bar_and_summary_lines(make_trainer, loaders) -> None:
    out = io.StringIO()
    trainer = make_trainer(plugins=[Progress(stream=out, bar=True)], epochs=2)
    trainer.fit(*loaders)
    text = out.getvalue()
    assert "Epoch 1/2:" in text and "batch" in text  # the tqdm bar
    lines = [
        line
        for line in text.replace("\r", "\n").splitlines()
        if line.startswith("Epoch ") and "train/loss" in line and "val/acc" in line
    ]
    assert len(lines) == 2


@pytest.mark.parametrize("accumulate", [1, 2])
def test_the_progress_bar_counts_batches_to_the_end_of_the_epoch(make_trainer, loaders, accumulate) -> None:
    ends: list[tuple[int, int | None]] = []

    class Seen(Progress):
        def on_train_epoch_end(self, trainer):
            ends.append((self._bar.n, self._bar.total))
            super().on_train_epoch_end(trainer)

    trainer = make_trainer(plugins=[Seen(stream=io.StringIO(), bar=True)], epochs=2, accumulate_grad_batches=accumulate)
    trainer.fit(*loaders)
    batches = trainer.num_train_batches
    assert batches is not None and batches % 2, "a last, partial group of micro-batches too"
    assert ends == [(batches, batches)] * 2


def test_progress_without_terminal_prints_only_lines_and_quiet_prints_nothing(make_trainer, loaders) -> None:
    out = io.StringIO()  # not a tty
    make_trainer(plugins=[Progress(stream=out)], epochs=2).fit(*loaders)
    assert out.getvalue().count("\n") == 2 and "\r" not in out.getvalue()
    quiet = io.StringIO()
    make_trainer(plugins=[Progress(stream=quiet)], epochs=2, verbose=False).fit(*loaders)
    assert quiet.getvalue() == ""


# --------------------------------------------------------------------------- lr
def test_lr_steps_an_epoch_scheduler(make_trainer, loaders) -> None:
    model = tiny_model()
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    result = make_trainer(model=model, optimizer=opt, lr_scheduler=sched, plugins=[LRScheduler()], epochs=3).fit(
        *loaders
    )
    assert [h["lr"] for h in result.history] == [1.0, 0.5, 0.25]


def test_lr_steps_one_cycle_per_batch(make_trainer, loaders) -> None:
    model = tiny_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=6)
    make_trainer(model=model, optimizer=opt, lr_scheduler=sched, plugins=[LRScheduler()], epochs=2).fit(*loaders)
    assert sched.last_epoch == 6


def test_lr_reduce_on_plateau_uses_the_monitored_metric(make_trainer, loaders) -> None:
    model = tiny_model()
    opt = torch.optim.SGD([{"params": model[0].parameters()}, {"params": model[2].parameters(), "lr": 0.2}], lr=0.1)
    # mode="max" on a decreasing loss: after the first epoch never an improvement, so the rate
    # halves after every later epoch.
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", factor=0.5, patience=0)
    trainer = make_trainer(model=model, optimizer=opt, lr_scheduler=sched, plugins=[LRScheduler()], epochs=4)
    with pytest.warns(UserWarning, match=r"mode='max' but monitors 'val/loss'.*mode='min'"):
        result = trainer.fit(*loaders)
    assert [h["lr"] for h in result.history] == [0.1, 0.1, 0.05, 0.025]  # the rate used in each epoch
    assert [h["lr/pg1"] for h in result.history] == [0.2, 0.2, 0.1, 0.05]  # likewise, per group


def test_lr_plateau_mode_that_fits_the_metric_does_not_warn(make_trainer, loaders) -> None:
    model = tiny_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max")
    trainer = make_trainer(
        model=model, optimizer=opt, lr_scheduler=sched, plugins=[LRScheduler()], options={"lr_monitor": "val/acc"}
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        trainer.fit(*loaders)


# --------------------------------------------------------------------------- nan_guard
class NaNAtStep(torch.nn.Module):
    def __init__(self, step: int):
        super().__init__()
        self.step, self.calls = step, 0

    def forward(self, preds, targets):
        loss = torch.nn.functional.cross_entropy(preds, targets)
        if not preds.requires_grad:  # validation: leave it alone
            return loss
        self.calls += 1
        return loss * float("nan") if self.calls == self.step else loss


@pytest.mark.parametrize("every", [1, 4])
def test_nan_guard_stops_at_the_bad_batch(make_trainer, loaders, every) -> None:
    guard = NaNGuard(check_every=every)
    trainer = make_trainer(plugins=[guard, ModelCheckpoint()], loss_fn=NaNAtStep(5), epochs=10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = trainer.fit(*loaders)
    assert result.stopped_by == "NaNGuard"
    assert result.stop_reason == "loss became nan at step 5 (epoch 2, batch 2)"  # all counted from 1
    assert trainer.global_step == (5 if every == 1 else 6)  # checked every 4 steps: at step 6 (epoch end)
    last = torch.load(trainer.save_dir / "weights" / "last.pt", weights_only=True)
    assert last["epoch"] == 0 and all(torch.isfinite(t).all() for t in last["model"].values())


# --------------------------------------------------------------------------- timer
def test_timer_stops_mid_epoch(make_trainer, loaders) -> None:
    import time

    slow = trainhooks.LambdaCallback(on_train_batch_end=lambda trainer: time.sleep(0.05))
    trainer = make_trainer(plugins=[Timer(max_time=0.12)], callbacks=[slow], epochs=50)
    result = trainer.fit(*loaders)
    assert result.stopped_by == "Timer" and result.global_step < 6
    assert result.stop_reason.startswith("time budget 00:00:00 used up after")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("00:10:00", 600),
        ("1:00:00:00", 86400),
        ("02:30", 150),
        ("90s", 90),
        ("15m", 900),
        ("2h", 7200),
        ("12", 12),
        (3.5, 3.5),
    ],
)
def test_parse_duration(text, seconds) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["ten minutes", "-5", "0", "1:2:3:4:5"])
def test_parse_duration_rejects(bad) -> None:
    with pytest.raises(trainhooks.ConfigError, match="timer"):
        parse_duration(bad)


def test_timer_from_the_command_line(tmp_path, capsys) -> None:
    code = cli.main(
        ["fit", "-p", "timer", "--max-time", "00:00:01", "--epochs", "100000", "--save-dir", str(tmp_path), "--quiet"]
    )
    assert code == 0
    code = cli.main(["fit", "-p", "timer", "--save-dir", str(tmp_path / "x")])
    assert code == 2 and "timer is enabled but has no budget" in capsys.readouterr().err


# --------------------------------------------------------------------------- plot
def test_plot_writes_results_png(make_trainer, loaders) -> None:
    trainer = make_trainer(plugins=[PlotResults()], epochs=3)
    result = trainer.fit(*loaders)
    png = trainer.save_dir / "results.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert result.artifacts["results.png"] == png
    panels = group_metrics(result.history)
    assert set(panels["loss"]) == {"train/loss", "val/loss"} and set(panels["acc"]) == {"val/acc"}
    assert panels["loss"]["val/loss"][0][0] == 1


def test_plot_is_written_even_when_training_fails(make_trainer, loaders) -> None:
    boom = trainhooks.LambdaCallback(on_train_epoch_start=lambda trainer: 1 / 0 if trainer.epoch == 2 else None)
    trainer = make_trainer(plugins=[PlotResults()], callbacks=[boom], epochs=5)
    with pytest.raises(trainhooks.HookError):
        trainer.fit(*loaders)
    assert (trainer.save_dir / "results.png").is_file()


def test_history_is_a_list_of_floats(make_trainer, loaders) -> None:
    trainer = make_trainer(epochs=2)
    trainer.fit(*loaders)
    assert len(trainer.history) == 2
    assert all(isinstance(v, float) and math.isfinite(v) for row in trainer.history for v in row.values())
