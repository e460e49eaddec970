"""trainhooks-mlflow against a real MLflow SQLite store, everything read back with MlflowClient.

The plugin is found through its installed entry point (``plugins=["mlflow"]``, ``-p mlflow``),
as a user's run would find it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("trainhooks_mlflow", reason="install the plugin: pip install -e integrations/trainhooks-mlflow")

import torch
from mlflow import MlflowClient

import trainhooks
from trainhooks import cli
from trainhooks.testing import SignalAt, StepLog, tiny_digits, tiny_trainer

pytestmark = pytest.mark.slow  # each test creates an MLflow database (seconds of migrations)


@pytest.fixture(autouse=True)
def _isolate(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in ("TRAINHOOKS_DISABLE_PLUGIN_AUTOLOAD", "TRAINHOOKS_PLUGINS", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)  # nothing lands in the repository (./mlruns would)


def make_trainer(save_dir: Path, *, plugins: list[Any] | None = None, **kwargs: Any) -> trainhooks.Trainer:
    """The shared tiny run (SGD at lr 0.1, seed 0: what the params assertions read back), with mlflow."""
    return tiny_trainer(save_dir, plugins=plugins if plugins is not None else ["mlflow"], **kwargs)


def only_run(store: str) -> Any:
    client = MlflowClient(tracking_uri=store)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert len(runs) == 1, [r.info.run_id for r in runs]
    return client, runs[0]


def sqlite_uri(save_dir: Path) -> str:
    return f"sqlite:///{(save_dir.resolve() / 'mlflow.db').as_posix()}"


def test_run_reads_back_params_metrics_tags_artifacts_and_status(tmp_path: Path) -> None:
    train, val = tiny_digits()
    save_dir = tmp_path / "run"
    result = make_trainer(save_dir, plugins=["mlflow", "early_stopping"], options={"patience": 7}).fit(train, val)

    client, run = only_run(sqlite_uri(save_dir))  # the default store: a SQLite file in the run dir
    assert run.info.status == "FINISHED"
    params = run.data.params
    assert params["epochs"] == "3"
    assert params["optimizer"] == "SGD"
    assert float(params["lr"]) == pytest.approx(0.1)
    assert params["batch_size"] == "32"
    assert params["seed"] == "0"
    assert params["early_stopping.patience"] == "7"  # an enabled plugin's option
    assert "checkpoint.ckpt_monitor" in params
    assert "mlflow" in params["plugins"].split(",")
    assert not any(key.startswith("tensorboard.") for key in params)  # installed, not enabled
    tags = run.data.tags
    assert tags["trainhooks_version"] == trainhooks.__version__
    assert tags["stop_reason"] == result.stop_reason == "completed 3 epochs"
    assert tags["task"] == "custom"  # API run without a task name
    history = client.get_metric_history(run.info.run_id, "val/loss")
    assert [m.step for m in history] == [1, 2, 3]
    assert [m.value for m in history] == pytest.approx([h["val/loss"] for h in result.history])
    assert {m.step for m in client.get_metric_history(run.info.run_id, "train/loss")} == {1, 2, 3}

    top = {f.path for f in client.list_artifacts(run.info.run_id)}
    assert {"metrics.csv", "results.png", "weights"} <= top
    weights = {f.path for f in client.list_artifacts(run.info.run_id, "weights")}
    assert weights == {"weights/best.pt", "weights/last.pt"}
    local = Path(client.download_artifacts(run.info.run_id, "weights/last.pt", str(tmp_path / "dl")))
    assert local.read_bytes() == (save_dir / "weights" / "last.pt").read_bytes()  # the final file
    assert (
        Path(client.download_artifacts(run.info.run_id, "metrics.csv", str(tmp_path / "dl"))).read_text()
        == (save_dir / "metrics.csv").read_text()
    )
    assert not (tmp_path / "mlruns").exists()


def test_tracking_uri_env_is_honoured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = f"sqlite:///{(tmp_path / 'shared.db').as_posix()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    train, val = tiny_digits()
    make_trainer(tmp_path / "run", epochs=1, plugins=["mlflow"], default_plugins=False).fit(train, val)
    _, run = only_run(store)
    assert run.info.status == "FINISHED"
    assert not (tmp_path / "run" / "mlflow.db").exists()


class FailAt:
    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_end(self, trainer: trainhooks.Trainer) -> None:
        if trainer.epoch == self.epoch:
            raise RuntimeError("disk on fire")


def test_exception_marks_the_run_failed_and_a_signal_killed(tmp_path: Path) -> None:
    train, val = tiny_digits()
    failing = make_trainer(tmp_path / "failed", callbacks=[FailAt(epoch=1)])
    with pytest.raises(trainhooks.HookError):
        failing.fit(train, val)
    client, run = only_run(sqlite_uri(tmp_path / "failed"))
    assert run.info.status == "FAILED"
    assert "disk on fire" in run.data.tags["stop_reason"]
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val/loss")] == [1]
    assert "weights/last.pt" in {f.path for f in client.list_artifacts(run.info.run_id, "weights")}

    result = make_trainer(tmp_path / "killed", callbacks=[SignalAt()]).fit(train, val)
    assert result.stopped_by == "signal"
    _, run = only_run(sqlite_uri(tmp_path / "killed"))
    assert run.info.status == "KILLED"
    assert run.data.tags["stop_reason"] == "interrupted by SIGTERM"


def test_resume_continues_the_same_run(tmp_path: Path) -> None:
    train, val = tiny_digits()
    save_dir = tmp_path / "run"
    make_trainer(save_dir, epochs=2).fit(train, val)
    client, first = only_run(sqlite_uri(save_dir))
    assert first.info.status == "FINISHED"

    make_trainer(save_dir, epochs=4).fit(train, val, resume=save_dir / "weights" / "last.pt")
    client, run = only_run(sqlite_uri(save_dir))
    assert run.info.run_id == first.info.run_id
    assert run.info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val/loss")] == [1, 2, 3, 4]
    assert run.data.tags["stop_reason"] == "completed 4 epochs"


def test_cli_opt_in_task_tag_and_listing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["plugins", "--json"]) == 0
    listed = {p["name"]: p for p in json.loads(capsys.readouterr().out)}
    assert listed["mlflow"]["distribution"] == "trainhooks-mlflow"
    assert listed["mlflow"]["version"] == "0.1.0"
    assert listed["mlflow"]["status"] == "available"  # opt-in: installed is not enabled

    save_dir = tmp_path / "cli"
    assert (
        cli.main(
            [
                "fit",
                "--epochs",
                "1",
                "--save-dir",
                str(save_dir),
                "--quiet",
                "-p",
                "mlflow",
                "--mlflow-experiment",
                "digits",
            ]
        )
        == 0
    )
    client, run = only_run(sqlite_uri(save_dir))
    assert client.get_experiment(run.info.experiment_id).name == "digits"
    assert run.data.tags["task"] == "digits"
    assert run.info.status == "FINISHED"

    assert cli.main(["fit", "--epochs", "1", "--save-dir", str(tmp_path / "plain"), "--quiet"]) == 0
    assert not (tmp_path / "plain" / "mlflow.db").exists()  # not enabled by default


def test_per_step_series_and_a_resume_after_a_signal_without_duplicated_steps(tmp_path: Path) -> None:
    train, val = tiny_digits()  # 3 batches per epoch: 9 steps in 3 epochs
    save_dir = tmp_path / "run"
    first, second = StepLog(), StepLog()
    stopped = make_trainer(save_dir, callbacks=[SignalAt(), first], log_every_n_steps=2).fit(train, val)
    assert (stopped.stopped_by, stopped.global_step) == ("signal", 4)  # epoch 2 cut short after its first step
    client, run = only_run(sqlite_uri(save_dir))
    assert run.info.status == "KILLED"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "train/loss_step")] == [2, 4]
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val/loss")] == [1]  # not the cut epoch

    result = make_trainer(save_dir, callbacks=[second], log_every_n_steps=2).fit(
        train, val, resume=save_dir / "weights" / "last.pt"
    )
    client, run = only_run(sqlite_uri(save_dir))
    assert run.info.status == "FINISHED"
    logged = first.steps + second.steps
    assert [s for s, _ in logged] == [2, 4, 6, 8]
    history = client.get_metric_history(run.info.run_id, "train/loss_step")
    assert [m.step for m in history] == [2, 4, 6, 8]  # each step once, across the two processes
    assert [m.value for m in history] == pytest.approx([m["train/loss"] for _, m in logged])
    assert [m.step for m in client.get_metric_history(run.info.run_id, "lr_step")] == [2, 4, 6, 8]
    # The epoch series is as without per-step logging: one point per epoch, step = epoch.
    for key in ("train/loss", "val/loss", "val/acc", "lr"):
        points = client.get_metric_history(run.info.run_id, key)
        assert [m.step for m in points] == [1, 2, 3], key
        assert [m.value for m in points] == pytest.approx([h[key] for h in result.history]), key
    assert not any(key.endswith("_step_step") for key in run.data.metrics)


def test_a_final_stop_mid_epoch_logs_that_epoch_at_the_end(tmp_path: Path) -> None:
    train, val = tiny_digits()
    result = make_trainer(tmp_path / "run", max_steps=4).fit(train, val)
    assert result.stopped_by != "signal" and result.global_step == 4
    client, run = only_run(sqlite_uri(tmp_path / "run"))
    assert run.info.status == "FINISHED"
    points = client.get_metric_history(run.info.run_id, "val/loss")
    assert [m.step for m in points] == [1, 2]  # epoch 2 ended after its first step, and nothing resumes it
    assert [m.value for m in points] == pytest.approx([h["val/loss"] for h in result.history])


class CrashAtStep:
    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer: trainhooks.Trainer) -> None:
        if trainer.global_step == self.step:
            raise RuntimeError("power cut")


def test_a_resume_from_an_older_checkpoint_does_not_log_the_run_s_points_again(tmp_path: Path) -> None:
    train, val = tiny_digits()  # 3 steps per epoch; last.pt at each epoch end
    save_dir = tmp_path / "run"
    with pytest.raises(trainhooks.HookError):  # step 9 fails after step 8 was logged
        make_trainer(save_dir, epochs=4, callbacks=[CrashAtStep(9)], log_every_n_steps=2).fit(train, val)
    client, run = only_run(sqlite_uri(save_dir))
    assert [m.step for m in client.get_metric_history(run.info.run_id, "train/loss_step")] == [2, 4, 6, 8]
    assert torch.load(save_dir / "weights" / "last.pt", weights_only=True)["global_step"] == 6

    make_trainer(save_dir, epochs=4, log_every_n_steps=2).fit(train, val, resume=save_dir / "weights" / "last.pt")
    client, run = only_run(sqlite_uri(save_dir))
    assert run.info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "train/loss_step")] == [2, 4, 6, 8, 10, 12]
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val/loss")] == [1, 2, 3, 4]
