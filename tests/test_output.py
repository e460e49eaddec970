"""What a user reads: the run summary, the per-epoch lines, the plot."""

from __future__ import annotations

import io
import re

import matplotlib.image
import torch

import trainhooks
from trainhooks.batches import sample_count
from trainhooks.plugins.checkpoint import ModelCheckpoint
from trainhooks.plugins.plot import PlotResults, best_epoch, draw, group_metrics
from trainhooks.plugins.progress import Progress, format_metrics
from trainhooks.plugins.summary import Summary, count, data_line, size
from trainhooks.testing import tiny_digits, tiny_model


# --------------------------------------------------------------------------- summary
def test_summary_names_parameters_size_data_device_precision_and_plugins(
    make_trainer, loaders, tmp_path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the save dir shows relative to it: "run"
    out = io.StringIO()
    model = tiny_model()
    model[0].weight.requires_grad_(False)  # 64*16 frozen of 64*16+16+16*10+10 = 1210
    trainer = make_trainer(model=model, plugins=[Summary(stream=out), "csv"], callbacks=[trainhooks.Callback()])
    trainer.fit(*loaders)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0] == (
        "Model Sequential: 1,210 parameters (186 trainable), 4.7 KiB | data: 96 train, 64 val samples | cpu, precision 32"
    )
    assert lines[1] == "Plugins: Summary, csv; callbacks: Callback | save dir: run"
    assert all(len(line) <= 120 for line in lines)


def test_summary_says_the_model_is_compiled(make_trainer, loaders) -> None:
    out = io.StringIO()
    make_trainer(plugins=[Summary(stream=out)], compile="eager", epochs=1).fit(*loaders)
    assert "samples | cpu, precision 32, torch.compile (eager)\n" in out.getvalue()


def test_summary_keeps_a_long_save_dir_whole_on_a_line_of_its_own(make_trainer, loaders, tmp_path) -> None:
    out = io.StringIO()
    save_dir = tmp_path / ("a-long-run-name-" * 6)  # outside the working directory: the full path
    make_trainer(plugins=[Summary(stream=out)], save_dir=save_dir).fit(*loaders)
    lines = out.getvalue().splitlines()
    assert lines[1] == "Plugins: Summary"
    assert lines[2] == f"  save dir: {save_dir}"


def test_summary_is_silent_when_quiet_and_on_by_default(make_trainer, loaders, tmp_path) -> None:
    out = io.StringIO()
    make_trainer(plugins=[Summary(stream=out)], verbose=False).fit(*loaders)
    assert out.getvalue() == ""
    trainer = trainhooks.Trainer(tiny_model(), loss_fn=torch.nn.CrossEntropyLoss(), save_dir=tmp_path / "d")
    assert "summary" in {r.name for r in trainer.plugin_manager.active()}


def test_summary_gives_samples_and_falls_back_to_batches_saying_so(make_trainer, loaders) -> None:
    train, val = loaders  # DataLoaders: 96 and 64 samples in 3 and 2 batches
    as_lists = [list(train), list(val)]  # plain lists of batches: no sampler, no dataset

    def line(train_data, val_data) -> str:
        out = io.StringIO()
        make_trainer(plugins=[Summary(stream=out)], epochs=1).fit(train_data, val_data)
        return out.getvalue().splitlines()[0].split(" | ")[1]

    assert line(train, val) == "data: 96 train, 64 val samples"
    assert line(*as_lists) == "data: 3 train, 2 val batches"
    assert line(train, as_lists[1]) == "data: 96 train samples, 2 val batches"
    assert line(iter(as_lists[0]), None) == "data: ? train batches"  # a generator: no length at all


def test_summary_save_dir_is_relative_inside_the_working_directory(
    make_trainer, loaders, tmp_path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    make_trainer(plugins=[Summary(stream=out)], epochs=1, save_dir=tmp_path / "runs" / "mine").fit(*loaders)
    assert out.getvalue().splitlines()[1].endswith(" | save dir: runs/mine")
    out = io.StringIO()
    make_trainer(plugins=[Summary(stream=out)], dry_run=True).fit(*loaders)
    assert out.getvalue().splitlines()[1].endswith(" | save dir: none kept (dry run)")


def test_summary_samples_count_what_the_batch_limits_take(make_trainer, loaders) -> None:
    out = io.StringIO()
    make_trainer(plugins=[Summary(stream=out)], epochs=1, limit_train_batches=2, limit_val_batches=1).fit(*loaders)
    assert out.getvalue().splitlines()[0].split(" | ")[1] == "data: 64 train, 32 val samples"  # batches of 32


def test_summary_data_line_and_sample_counts() -> None:
    assert data_line(1, None, 1, None) == "data: 1 train sample"
    assert data_line(3, 1, None, None) == "data: 3 train, 1 val batch"
    assert data_line(45, 12, 1437, 360) == "data: 1,437 train, 360 val samples"
    dataset = torch.utils.data.TensorDataset(torch.zeros(10, 2))
    loader = torch.utils.data.DataLoader(dataset, batch_size=4)
    assert sample_count(loader) == 10 and sample_count(list(loader)) is None
    # This rank's share under DDP: a DistributedSampler over 2 ranks draws 5 of the 10.
    sharded = torch.utils.data.DataLoader(
        dataset, batch_size=4, sampler=torch.utils.data.DistributedSampler(dataset, num_replicas=2, rank=0)
    )
    assert sample_count(sharded) == 5

    class Stream(torch.utils.data.IterableDataset):
        def __iter__(self):
            yield from range(3)

    assert sample_count(torch.utils.data.DataLoader(Stream(), batch_size=None)) is None  # no length anywhere


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
    trainer.task_name = "digits"  # what `trainhooks fit` sets from its task
    assert plot_title(trainer) == "digits · run run"


# --------------------------------------------------------------------------- the final lines
def _result(tmp_path, **kw):
    from trainhooks.trainer import FitResult

    base = dict(
        epochs_completed=10,
        global_step=450,
        stop_reason="completed 10 epochs",
        stopped_early=False,
        stopped_by=None,
        metrics={},
        history=[],
        save_dir=tmp_path / "runs" / "train3",
        artifacts={
            n: tmp_path / "runs" / "train3" / n
            for n in ("metrics.csv", "weights/last.pt", "weights/best.pt", "results.png")
        },
        duration_s=12.34,
    )
    base.update(kw)
    return FitResult(**base)


def test_final_lines_say_it_once_fit_80_columns_and_use_plurals(tmp_path) -> None:
    from trainhooks.cli.render import summary_line

    lines = summary_line(_result(tmp_path), 10).splitlines()
    assert lines == [
        "Training finished after 10 of 10 epochs (450 steps, 12.3s).",
        f"Results in {tmp_path}/runs/train3/:",
        "  metrics.csv, weights/last.pt, weights/best.pt, results.png",
    ]
    one = summary_line(_result(tmp_path, epochs_completed=1, global_step=1, artifacts={}), 1).splitlines()
    assert one == [
        "Training finished after 1 of 1 epoch (1 step, 12.3s).",
        f"Nothing was saved to {tmp_path}/runs/train3.",
    ]
    stopped = _result(
        tmp_path,
        epochs_completed=7,
        stopped_early=True,
        stopped_by="early_stopping",
        stop_reason="val/loss did not improve for 5 epochs (patience 5); best 0.1012 at epoch 2",
    )
    lines = summary_line(stopped, 10).splitlines()
    assert lines[:2] == [
        "Training stopped early after 7 of 10 epochs (450 steps, 12.3s):",
        "  val/loss did not improve for 5 epochs (patience 5); best 0.1012 at epoch 2",
    ]
    assert lines[2] == "  [early_stopping]." or lines[1].endswith("[early_stopping].")
    cut = summary_line(stopped, 10, cut_short=(17, 45)).splitlines()
    assert cut[0] == "Training stopped early in epoch 7 of 10 at batch 17 of 45 (450 steps, 12.3s):"
    many = {f"weights/epoch{i}.pt": tmp_path / "runs" / "train3" / f"weights/epoch{i}.pt" for i in range(30)}
    for text in (summary_line(_result(tmp_path, artifacts=many), 10), summary_line(stopped, 10)):
        assert all(len(line) <= 80 for line in text.splitlines() if not line.startswith("Results in"))


def test_profile_times_use_readable_units() -> None:
    from trainhooks.cli.render import duration

    assert duration(1_713_489_100) == "1.71 s"
    assert [duration(n) for n in (950, 12_340, 4_560_000, 2_000_000_000_000)] == [
        "950 ns",
        "12.3 µs",
        "4.56 ms",
        "2,000 s",
    ]


def test_epochs_0_is_one_line_without_usage(tmp_path, monkeypatch, capsys) -> None:
    import pytest

    from trainhooks import cli

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as info:
        cli.main(["fit", "--epochs", "0"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert (
        err
        == "trainhooks fit: error: argument --epochs: expected a positive integer, got '0' (see 'trainhooks fit --help')\n"
    )
    assert not (tmp_path / "runs").exists()


def test_cli_profile_and_plot_title(tmp_path, monkeypatch, capsys) -> None:
    from trainhooks import cli

    monkeypatch.chdir(tmp_path)
    assert cli.main(["fit", "--epochs", "1", "--save-dir", "out", "--quiet", "--profile-hooks"]) == 0
    out = capsys.readouterr().out
    header = out.splitlines()[1].split()
    assert header == ["plugin", "hook", "calls", "total", "mean"]
    row = next(line for line in out.splitlines() if line.startswith("plot "))
    assert row.split()[-1] in ("ns", "µs", "ms", "s")


def test_a_plugins_warning_on_the_command_line_leaves_out_the_dispatch_location(tmp_path, monkeypatch, capsys) -> None:
    import sys
    import warnings

    from trainhooks import cli

    monkeypatch.chdir(tmp_path)
    argv = ["fit", "--epochs", "1", "--quiet", "-p", "no:plot", "--ckpt-monitor", "val/nope"]
    with warnings.catch_warnings():
        # printed to stderr through warnings.formatwarning, as Python does (not recorded by pytest)
        warnings.showwarning = lambda message, category, filename, lineno, file=None, line=None: sys.stderr.write(
            warnings.formatwarning(message, category, filename, lineno, line)
        )
        warnings.simplefilter("always")
        before = warnings.formatwarning
        assert cli.main(argv) == 0
        assert warnings.formatwarning is before, "the CLI puts Python's format back"
    err = capsys.readouterr().err
    assert "trainhooks: warning: checkpoint: monitored metric 'val/nope' is not in trainer.metrics" in err
    assert "<trainhooks dispatch" not in err and "RuntimeWarning" not in err
