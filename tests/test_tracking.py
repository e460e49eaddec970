"""trainhooks.TrackerSink with an in-memory tracker: the lifecycle every tracker plugin inherits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import trainhooks
import trainhooks.tracking
from trainhooks.testing import tiny_digits, tiny_trainer


class MemoryTracker(trainhooks.TrackerSink):
    """Keeps every call; runs survive in ``store`` across trainers (like a tracking server)."""

    def __init__(self, store: dict[str, dict[str, Any]]) -> None:
        self.store = store
        self.calls: list[str] = []

    def open_run(self, trainer: trainhooks.Trainer, run_id: str | None) -> str:
        self.calls.append("open")
        if run_id is None or run_id not in self.store:
            run_id = f"run{len(self.store) + 1}"
            self.store[run_id] = {"params": {}, "metrics": [], "tags": {}, "artifacts": {}, "status": None}
        self.store[run_id]["status"] = "RUNNING"
        return run_id

    def _run(self) -> dict[str, Any]:
        assert self.run_id is not None
        return self.store[self.run_id]

    def log_params(self, params: dict[str, Any]) -> None:
        self.calls.append("params")
        self._run()["params"].update(params)

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        self.calls.append("metrics")
        self._run()["metrics"].append((step, dict(metrics)))

    def log_artifact(self, path: Path, name: str) -> None:
        self.calls.append("artifact")
        self._run()["artifacts"][name] = path.read_bytes()

    def set_tags(self, tags: dict[str, str]) -> None:
        self._run()["tags"].update(tags)

    def close_run(self, status: str) -> None:
        self.calls.append("close")
        self._run()["status"] = status


def make(save_dir: Path, tracker: MemoryTracker, epochs: int, **kwargs: Any) -> trainhooks.Trainer:
    return tiny_trainer(save_dir, plugins=[tracker], epochs=epochs, autoload=False, **kwargs)


def test_lifecycle_params_metrics_final_artifacts_and_resume(tmp_path: Path) -> None:
    store: dict[str, dict[str, Any]] = {}
    train, val = tiny_digits()
    tracker = MemoryTracker(store)
    result = make(tmp_path, tracker, epochs=2).fit(train, val)
    (run,) = store.values()
    assert tracker.calls[:2] == ["open", "params"] and tracker.calls[-1] == "close"
    assert run["status"] == "FINISHED"
    assert run["params"]["epochs"] == 2 and run["params"]["optimizer"] == "SGD"
    assert run["params"]["lr"] == pytest.approx(0.1)
    assert run["params"]["checkpoint.ckpt_monitor"] == "val/loss"  # an enabled plugin's option
    assert [step for step, _ in run["metrics"]] == [1, 2]
    assert run["metrics"][-1][1] == pytest.approx(result.metrics)
    assert run["tags"]["task"] == "custom" and run["tags"]["stop_reason"] == "completed 2 epochs"
    # Artifacts hold the files as they ended, logged once each, after they were written.
    assert run["artifacts"]["weights/last.pt"] == (tmp_path / "weights" / "last.pt").read_bytes()
    assert {"weights/best.pt", "metrics.csv", "results.png"} <= set(run["artifacts"])

    again = MemoryTracker(store)
    make(tmp_path, again, epochs=3).fit(train, val, resume=tmp_path / "weights" / "last.pt")
    assert list(store) == ["run1"]  # the same run continued
    assert again.resumed and "params" not in again.calls
    assert [step for step, _ in store["run1"]["metrics"]] == [1, 2, 3]


def test_failed_run_is_closed_failed_with_the_error(tmp_path: Path) -> None:
    store: dict[str, dict[str, Any]] = {}
    train, val = tiny_digits()

    def explode(trainer: trainhooks.Trainer) -> None:
        raise ValueError("bad batch")

    trainer = make(tmp_path, MemoryTracker(store), epochs=2)
    trainer.add_callback("on_train_epoch_end", explode)
    with pytest.raises(trainhooks.HookError):
        trainer.fit(train, val)
    (run,) = store.values()
    assert run["status"] == "FAILED"
    assert "bad batch" in run["tags"]["stop_reason"]


def test_keyboard_interrupt_is_killed() -> None:
    assert trainhooks.tracking.exception_status(KeyboardInterrupt()) == "KILLED"
    interrupt = KeyboardInterrupt()
    wrapped = trainhooks.HookError(plugin="p", hook="h", original=interrupt)
    wrapped.__cause__ = interrupt
    assert trainhooks.tracking.exception_status(wrapped) == "KILLED"
    assert trainhooks.tracking.exception_status(RuntimeError("x")) == "FAILED"


def test_a_tracker_is_opt_in_and_says_what_it_lacks() -> None:
    assert trainhooks.TrackerSink.default_enabled is False and trainhooks.TrackerSink.rank_zero_only is True
    with pytest.raises(NotImplementedError, match="must implement open_run"):
        trainhooks.TrackerSink().open_run(None, None)  # type: ignore[arg-type]
