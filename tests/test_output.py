"""What a user reads: the run summary, the per-epoch lines, the plot."""

from __future__ import annotations

import io
import re

import matplotlib.image
import torch

import trainhooks
from trainhooks.plugins.checkpoint import ModelCheckpoint
from trainhooks.plugins.plot import PlotResults, best_epoch, draw, group_metrics
from trainhooks.plugins.progress import Progress, format_metrics
from trainhooks.plugins.summary import Summary, count, size
from trainhooks.testing import tiny_digits, tiny_model


# --------------------------------------------------------------------------- summary
def test_summary_names_parameters_size_data_device_precision_and_plugins(make_trainer, loaders) -> None:
    out = io.StringIO()
    model = tiny_model()
    model[0].weight.requires_grad_(False)  # 64*16 frozen of 64*16+16+16*10+10 = 1210
    trainer = make_trainer(model=model, plugins=[Summary(stream=out), "csv"], callbacks=[trainhooks.Callback()])
    trainer.fit(*loaders)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0] == (
        "Model Sequential: 1,210 parameters (186 trainable), 4.7 KiB | data: 3 train, 2 val batches | cpu, precision 32"
    )
    assert lines[1] == "Plugins: Summary, csv; callbacks: Callback"
    assert all(len(line) <= 120 for line in lines)


def test_summary_is_silent_when_quiet_and_on_by_default(make_trainer, loaders, tmp_path) -> None:
    out = io.StringIO()
    make_trainer(plugins=[Summary(stream=out)], verbose=False).fit(*loaders)
    assert out.getvalue() == ""
    trainer = trainhooks.Trainer(tiny_model(), loss_fn=torch.nn.CrossEntropyLoss(), save_dir=tmp_path / "d")
    assert "summary" in {r.name for r in trainer.plugin_manager.active()}


def test_summary_units() -> None:
    assert [count(n) for n in (1, 1210, 999_999, 11_689_512, 1_300_000_000)] == [
        "1",
        "1,210",
        "999,999",
        "11.7M",
        "1.3B",
    ]
    assert [size(n) for n in (12, 4840, 46_800_000, 5 * 1024**3)] == ["12 B", "4.7 KiB", "44.6 MiB", "5.0 GiB"]


# --------------------------------------------------------------------------- progress
def test_lr_has_one_format_and_columns_line_up() -> None:
    lines = [format_metrics({"train/loss": 0.5, "lr": lr}) for lr in (0.005, 0.0004775, 3.078e-05, 1.0)]
    assert [line.split("lr ")[1] for line in lines] == ["5.00e-03", "4.78e-04", "3.08e-05", "1.00e+00"]
    assert len({len(line) for line in lines}) == 1


def test_an_epoch_cut_short_is_marked(make_trainer) -> None:
    class StopAtStep(trainhooks.Callback):
        def should_stop(self, trainer):
            return "enough" if trainer.global_step == 7 else None

    out = io.StringIO()
    train, val = tiny_digits(n_train=160, n_val=32, batch_size=32)  # 5 batches per epoch
    make_trainer(plugins=[Progress(stream=out)], callbacks=[StopAtStep()], epochs=3).fit(train, val)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("Epoch 1/3  train/loss")
    assert lines[1].startswith("Epoch 2/3 (cut short after batch 2 of 5)  train/loss")
    assert re.search(r"lr \d\.\d\de-\d\d", lines[1])


# --------------------------------------------------------------------------- plot
HISTORY = [
    {"train/loss": 1.0, "val/loss": 0.9, "val/acc": 0.5, "lr": 0.01},
    {"train/loss": 0.6, "val/loss": 0.5, "val/acc": 0.7, "lr": 0.01},
    {"train/loss": 0.4, "val/loss": 0.6, "val/acc": 0.8, "lr": 0.01},
]


def test_plot_panels_are_loss_metrics_lr_with_the_best_epoch_and_a_flat_constant_lr() -> None:
    history = [{"lr": h["lr"], "val/acc": h["val/acc"], **h} for h in HISTORY]  # lr logged first
    assert list(group_metrics(history)) == ["loss", "acc", "lr"]
    fig = draw(history, "digits · run train", best=("val/loss", "min"))
    axes = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in axes] == ["loss", "acc", "lr"]
    assert fig._suptitle.get_text() == "digits · run train  (best val/loss 0.5 at epoch 2)"
    for ax in axes:  # the best epoch is marked in every panel
        marks = [line for line in ax.get_lines() if line.get_label().startswith("best")]
        assert len(marks) == 1 and list(marks[0].get_xdata()) == [2, 2]
    low, high = axes[2].get_ylim()
    assert low < 0.01 < high and high - low >= 0.01  # the constant is drawn flat, not zoomed into
    assert best_epoch(history, "val/acc") == 3


def test_plot_file_is_titled_with_the_task_and_150_dpi(tmp_path, monkeypatch, capsys) -> None:
    from trainhooks import cli

    monkeypatch.chdir(tmp_path)
    assert cli.main(["fit", "--epochs", "2", "--save-dir", "out", "--quiet", "-p", "no:onnx"]) == 0
    image = matplotlib.image.imread(tmp_path / "out" / "results.png")
    assert image.shape[1] == int(4.2 * 3 * 150)  # three panels of 4.2 inches at 150 dpi


def test_plot_marks_the_checkpoints_monitor(make_trainer, loaders) -> None:
    trainer = make_trainer(plugins=[PlotResults(), ModelCheckpoint(monitor="val/acc")], epochs=2)
    trainer.fit(*loaders)
    from trainhooks.plugins.plot import best_metric, plot_title

    assert best_metric(trainer) == ("val/acc", "max")
    assert plot_title(trainer) == "run run"
