"""``trainhooks validate/predict/export`` without ``--weights`` use best.pt of the latest run;
export writes next to the weights and checks the format first; predict writes regression
outputs as values (issue 14). Real CLI runs, in process, on real files."""

from __future__ import annotations

import csv
import os
import time
from pathlib import Path

import pytest
import torch

from trainhooks import cli

REGRESSION_TASK = """
import torch
from torch.utils.data import DataLoader, TensorDataset
from trainhooks import Task

def make(batch_size=None, seed=0, **_):
    torch.manual_seed(seed)
    x = torch.randn(40, 3)
    y = x.sum(dim=1, keepdim=True)
    loader = DataLoader(TensorDataset(x, y), batch_size=batch_size or 8)
    model = torch.nn.Linear(3, 1)
    return Task(model=model, train_data=loader, val_data=loader, loss_fn=torch.nn.MSELoss(),
                example_input=x[:2], name="regression")
"""

BROKEN_TASK = """
def make(**_):
    raise AssertionError("the task must not be loaded for an unknown export format")
"""


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    (tmp_path / "regtask.py").write_text(REGRESSION_TASK)
    (tmp_path / "brokentask.py").write_text(BROKEN_TASK)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def fit(*args: str) -> None:
    assert cli.main(["fit", "--task", "regtask:make", "--quiet", "-p", "no:plot", *args]) == 0


def test_validate_predict_export_default_to_best_pt_of_the_latest_run(workdir, capsys) -> None:
    fit("--epochs", "1")
    fit("--epochs", "2")  # runs/train2: the latest
    older = time.time() - 100
    os.utime(workdir / "runs" / "train" / "weights" / "best.pt", (older, older))
    capsys.readouterr()
    latest = Path("runs") / "train2" / "weights" / "best.pt"
    assert cli.main(["validate", "--task", "regtask:make", "--quiet"]) == 0
    captured = capsys.readouterr()
    assert f"using {latest} (best.pt of the latest run" in captured.err
    assert "val/loss" in captured.out
    assert cli.main(["export", "--task", "regtask:make", "--quiet"]) == 0
    assert f"using {latest}" in capsys.readouterr().err
    # next to the weights it exported, no runs/exportN
    exported = latest.with_name("best.torchscript")
    assert exported.is_file() and not list(Path("runs").glob("export*"))
    scripted = torch.jit.load(str(exported))
    assert scripted(torch.zeros(2, 3)).shape == (2, 1)


def test_without_any_run_the_error_says_to_pass_weights(workdir, capsys) -> None:
    assert cli.main(["predict", "--task", "regtask:make"]) == 2
    assert "no --weights given" in capsys.readouterr().err


def test_export_checks_the_format_before_loading_the_task(workdir, capsys) -> None:
    fit("--epochs", "1")
    capsys.readouterr()
    code = cli.main(["export", "--task", "brokentask:make", "--format", "tflite"])
    err = capsys.readouterr().err
    assert code == 2 and "tflite" in err and "torchscript" in err and "AssertionError" not in err


def test_predict_writes_regression_outputs_as_values(workdir, capsys) -> None:
    fit("--epochs", "2")
    weights = Path("runs") / "train" / "weights" / "last.pt"
    assert cli.main(["predict", "--task", "regtask:make", "--weights", str(weights), "--quiet"]) == 0
    rows = list(csv.DictReader(next(Path("runs").glob("predict*/predictions.csv")).open()))
    assert len(rows) == 40 and list(rows[0]) == ["index", "prediction"]
    model = torch.nn.Linear(3, 1)
    from trainhooks.checkpointing import load_weights

    model.load_state_dict(load_weights(weights))
    torch.manual_seed(0)
    x = torch.randn(40, 3)
    expected = model(x).detach().reshape(-1).tolist()
    assert [float(r["prediction"]) for r in rows] == pytest.approx(expected, rel=1e-6)
    assert len({r["prediction"] for r in rows}) > 1  # not one constant (softmax over one column)
