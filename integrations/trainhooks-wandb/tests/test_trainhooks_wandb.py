"""trainhooks-wandb in W&B's offline mode, read back from the run folder W&B wrote.

No account, no API key, no network: ``offline-run-*/run-ID.wandb`` is W&B's transaction log (a
LevelDB-style record log of ``wandb_internal_pb2.Record`` protobufs, exactly what ``wandb sync``
uploads); the test decodes it with W&B's own protobuf classes.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("trainhooks_wandb", reason="install the plugin: pip install -e integrations/trainhooks-wandb")

from wandb.proto import wandb_internal_pb2 as pb

import trainhooks
from trainhooks import cli
from trainhooks.testing import SignalAt, StepLog, tiny_digits, tiny_trainer

pytestmark = pytest.mark.slow  # each run starts W&B's service process


@pytest.fixture(autouse=True)
def _isolate(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in ("TRAINHOOKS_DISABLE_PLUGIN_AUTOLOAD", "TRAINHOOKS_PLUGINS", "WANDB_MODE", "WANDB_DIR", "WANDB_RUN_ID"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("WANDB_API_KEY", "")  # offline must not need one
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb-cache"))
    monkeypatch.setenv("WANDB_DATA_DIR", str(tmp_path / "wandb-data"))
    monkeypatch.chdir(tmp_path)


# ---------------------------------------------------------------------- reading a .wandb file
def _chunks(data: bytes) -> Iterator[bytes]:
    """Records of a W&B transaction log: a 7-byte header, then 32 KiB blocks of LevelDB log records."""
    assert data[:4] == b":W&B", data[:7]
    pos, block, pending = 7, 32768, b""
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if length == 0 and kind == 0:  # zero padding to the end of a block
            pos += left
            continue
        chunk = data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind == 1:  # FULL
            yield chunk
        elif kind == 2:  # FIRST
            pending = chunk
        elif kind == 3:  # MIDDLE
            pending += chunk
        elif kind == 4:  # LAST
            yield pending + chunk
            pending = b""


def read_run(folder: Path) -> dict[str, Any]:
    """run id, config, history rows, summary, tags, files and exit code of one offline run."""
    (log,) = folder.glob("run-*.wandb")
    out: dict[str, Any] = {
        "config": {},
        "history": [],
        "summary": {},
        "tags": [],
        "files": set(),
        "exit_code": None,
        "axes": {},  # define_metric: metric name (or glob) -> its x-axis metric
    }
    for raw in _chunks(log.read_bytes()):
        record = pb.Record()
        record.ParseFromString(raw)
        kind = record.WhichOneof("record_type")
        if kind == "run":
            out["id"] = record.run.run_id
            out["tags"] = list(record.run.tags)
            for item in record.run.config.update:
                out["config"][item.key] = json.loads(item.value_json)
        elif kind == "config":
            for item in record.config.update:
                out["config"][item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
        elif kind == "history":
            out["history"].append(
                {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.history.item}
            )
        elif kind == "summary":
            for item in record.summary.update:
                out["summary"][item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
        elif kind == "files":
            out["files"].update(f.path for f in record.files.files)
        elif kind == "metric":
            out["axes"][record.metric.name or record.metric.glob_name] = record.metric.step_metric
        elif kind == "exit":
            out["exit_code"] = record.exit.exit_code
    return out


def offline_runs(save_dir: Path) -> list[Path]:
    return sorted((save_dir / "wandb").glob("offline-run-*"))


def make_trainer(save_dir: Path, *, plugins: list[Any] | None = None, **kwargs: Any) -> trainhooks.Trainer:
    """The shared tiny run (SGD at lr 0.1, seed 0: what the params assertions read back), with wandb."""
    return tiny_trainer(save_dir, plugins=plugins if plugins is not None else ["wandb"], **kwargs)


def test_offline_run_holds_config_metrics_tags_files_and_exit_code(tmp_path: Path) -> None:
    train, val = tiny_digits()
    save_dir = tmp_path / "run"
    result = make_trainer(save_dir, plugins=["wandb", "early_stopping"], options={"patience": 7}).fit(train, val)

    (folder,) = offline_runs(save_dir)
    run = read_run(folder)
    assert folder.name.endswith(run["id"])
    config = run["config"]
    assert config["epochs"] == 3
    assert config["optimizer"] == "SGD"
    assert config["lr"] == pytest.approx(0.1)
    assert config["early_stopping.patience"] == 7
    assert "checkpoint.ckpt_monitor" in config
    assert not any(key.startswith("tensorboard.") for key in config)
    epochs = [row for row in run["history"] if "val/loss" in row]
    assert [row["epoch"] for row in epochs] == [1, 2, 3]
    assert [row["val/loss"] for row in epochs] == pytest.approx([h["val/loss"] for h in result.history])
    summary = run["summary"]
    assert summary["status"] == "FINISHED"
    assert summary["stop_reason"] == "completed 3 epochs"
    assert summary["trainhooks_version"] == trainhooks.__version__
    assert summary["task"] == "custom"
    assert {"task:custom", f"trainhooks:{trainhooks.__version__}"} <= set(run["tags"])
    assert run["exit_code"] == 0
    assert {"weights/best.pt", "weights/last.pt", "metrics.csv", "results.png"} <= run["files"]
    copied = folder / "files" / "weights" / "last.pt"
    assert not copied.is_symlink()
    assert copied.read_bytes() == (save_dir / "weights" / "last.pt").read_bytes()


class FailAt:
    def on_train_epoch_end(self, trainer: trainhooks.Trainer) -> None:
        if trainer.epoch == 1:
            raise RuntimeError("disk on fire")


def test_failed_and_killed_runs_and_resume_continues_the_run_id(tmp_path: Path) -> None:
    train, val = tiny_digits()
    with pytest.raises(trainhooks.HookError):
        make_trainer(tmp_path / "failed", callbacks=[FailAt()]).fit(train, val)
    (folder,) = offline_runs(tmp_path / "failed")
    run = read_run(folder)
    assert run["summary"]["status"] == "FAILED"
    assert "disk on fire" in run["summary"]["stop_reason"]
    assert run["exit_code"] == 1

    save_dir = tmp_path / "killed"
    assert make_trainer(save_dir, callbacks=[SignalAt()]).fit(train, val).stopped_by == "signal"
    (folder,) = offline_runs(save_dir)
    first = read_run(folder)
    assert first["summary"]["status"] == "KILLED"
    assert first["exit_code"] == 143

    make_trainer(save_dir, epochs=3).fit(train, val, resume=save_dir / "weights" / "last.pt")
    folders = offline_runs(save_dir)
    assert len(folders) == 2  # W&B writes one folder per process; `wandb sync` merges them by id
    second = read_run(folders[-1])
    assert second["id"] == first["id"]
    assert second["summary"]["status"] == "FINISHED"
    assert [row["epoch"] for row in second["history"] if "val/loss" in row] == [2, 3]  # epoch 2 re-run


def test_disabled_mode_is_a_no_op(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    train, val = tiny_digits()
    monkeypatch.setenv("WANDB_MODE", "disabled")
    result = make_trainer(tmp_path / "run", epochs=2).fit(train, val)
    assert result.epochs_completed == 2
    assert not list(tmp_path.rglob("*.wandb"))
    assert not (tmp_path / "run" / "wandb").exists()
    assert not (tmp_path / "wandb").exists()


def test_cli_opt_in_mode_check_and_listing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert cli.main(["plugins", "--json"]) == 0
    listed = {p["name"]: p for p in json.loads(capsys.readouterr().out)}
    assert (listed["wandb"]["distribution"], listed["wandb"]["version"]) == ("trainhooks-wandb", "0.1.0")
    assert listed["wandb"]["status"] == "available"

    monkeypatch.setenv("WANDB_MODE", "sideways")  # a typo is bad input, not a silent online run
    assert cli.main(["fit", "--epochs", "1", "--save-dir", str(tmp_path / "bad"), "--quiet", "-p", "wandb"]) == 2
    assert "WANDB_MODE='sideways'" in capsys.readouterr().err
    monkeypatch.delenv("WANDB_MODE")

    save_dir = tmp_path / "cli"
    assert cli.main(["fit", "--epochs", "1", "--save-dir", str(save_dir), "--quiet", "-p", "wandb"]) == 0
    (folder,) = offline_runs(save_dir)
    assert read_run(folder)["summary"]["task"] == "digits"


def test_per_step_series_and_a_resume_after_a_signal_without_duplicated_steps(tmp_path: Path) -> None:
    train, val = tiny_digits()  # 3 batches per epoch: 9 steps in 3 epochs
    save_dir = tmp_path / "run"
    first, second = StepLog(), StepLog()
    stopped = make_trainer(save_dir, callbacks=[SignalAt(), first], log_every_n_steps=2).fit(train, val)
    assert (stopped.stopped_by, stopped.global_step) == ("signal", 4)
    result = make_trainer(save_dir, callbacks=[second], log_every_n_steps=2).fit(
        train, val, resume=save_dir / "weights" / "last.pt"
    )
    runs = [read_run(folder) for folder in offline_runs(save_dir)]
    assert len(runs) == 2 and runs[0]["id"] == runs[1]["id"]  # one W&B run, written by two processes
    assert [run["summary"]["status"] for run in runs] == ["KILLED", "FINISHED"]
    rows = [row for run in runs for row in run["history"]]
    step_rows = [row for row in rows if "train/loss_step" in row]
    logged = first.steps + second.steps
    assert [row["global_step"] for row in step_rows] == [s for s, _ in logged] == [2, 4, 6, 8]  # each once
    assert [row["train/loss_step"] for row in step_rows] == pytest.approx([m["train/loss"] for _, m in logged])
    assert all("lr_step" in row and "epoch" not in row for row in step_rows)
    for run in runs:  # per-step values against global_step, the epoch series against epoch
        assert run["axes"]["train/loss_step"] == "global_step"
        assert run["axes"]["*"] == "epoch"
    epoch_rows = [row for row in rows if "val/loss" in row]
    assert [row["epoch"] for row in epoch_rows] == [1, 2, 3]  # the cut epoch 2 only once, complete
    assert [row["val/loss"] for row in epoch_rows] == pytest.approx([h["val/loss"] for h in result.history])
    assert all("global_step" not in row for row in epoch_rows)
