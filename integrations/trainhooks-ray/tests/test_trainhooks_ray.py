"""trainhooks-ray on a real local Ray cluster with CPU workers: two short runs, one of them crashing.

Both runs train the digits task for 3 epochs on 2 Ray Train workers with the same seed. In the
second, rank 1 kills its own process (``os._exit``) once, in the middle of epoch 2; with
``max_failures=1`` Ray restarts the worker group and every rank resumes from the checkpoint rank
0 attached to its epoch-1 report. One Ray session serves both runs (Ray's start-up is the
expensive part).
"""

from __future__ import annotations

import csv
import json
import os
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("trainhooks_ray", reason="install the plugin: pip install -e integrations/trainhooks-ray")

import ray
import torch
from trainhooks_ray import launch

from trainhooks import cli

pytestmark = pytest.mark.slow

PROBE = '''
"""Test helper plugin, imported by every Ray worker (-p ray_probe, found in the working dir)."""
import json
import os

import trainhooks

CRASH = os.environ.get("TRAINHOOKS_TEST_CRASH_FLAG")


@trainhooks.hookimpl
def on_train_batch_end(trainer, batch_idx):
    # Once, in epoch 2 on rank 1: die like a lost node (no exception, no cleanup).
    if CRASH and trainer.rank == 1 and trainer.epoch == 1 and batch_idx == 3 and not os.path.exists(CRASH):
        open(CRASH, "w").close()
        os._exit(1)


@trainhooks.hookimpl
def on_train_end(trainer):
    out = trainer.save_dir / f"final-rank{trainer.rank}.json"
    out.write_text(json.dumps({"metrics": trainer.metrics, "world_size": trainer.world_size}))
'''


@pytest.fixture(scope="module")
def ray_runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("ray")
    (root / "ray_probe.py").write_text(textwrap.dedent(PROBE))
    old_cwd = os.getcwd()
    saved = {
        k: os.environ.get(k)
        for k in ("TRAINHOOKS_TEST_CRASH_FLAG", "TRAINHOOKS_PLUGINS", "TRAINHOOKS_DISABLE_PLUGIN_AUTOLOAD")
    }
    for key in saved:
        os.environ.pop(key, None)
    os.environ["TRAINHOOKS_TEST_CRASH_FLAG"] = str(root / "crashed.flag")
    os.chdir(root)
    try:
        fit = ["--epochs", "3", "--seed", "0", "--quiet", "-p", "ray_probe"]
        ray.init(
            num_cpus=3,
            include_dashboard=False,
            runtime_env={
                "env_vars": {"PYTHONPATH": str(root), **{k: os.environ[k] for k in ("TRAINHOOKS_TEST_CRASH_FLAG",)}}
            },
        )
        # the crash flag exists before the plain run: it never crashes
        (root / "crashed.flag").write_text("")
        plain = launch.run([*fit, "--save-dir", str(root / "plain")], workers=2)
        (root / "crashed.flag").unlink()
        crashed = launch.run([*fit, "--save-dir", str(root / "crashed")], workers=2, max_failures=1)
        yield {"root": root, "plain": plain, "crashed": crashed}
    finally:
        ray.shutdown()
        os.chdir(old_cwd)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def final(save_dir: Path, rank: int) -> dict[str, Any]:
    return json.loads((save_dir / f"final-rank{rank}.json").read_text())


def weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["model"]


def test_two_workers_share_the_process_group_and_end_with_identical_metrics(ray_runs: dict[str, Any]) -> None:
    save_dir = ray_runs["root"] / "plain"
    rank0, rank1 = final(save_dir, 0), final(save_dir, 1)
    assert rank0["world_size"] == rank1["world_size"] == 2  # Ray's group, used by trainhooks
    assert rank0["metrics"] == rank1["metrics"]
    result = ray_runs["plain"]
    assert result.metrics["epoch"] == 3
    assert result.metrics["val/loss"] == pytest.approx(rank0["metrics"]["val/loss"])
    # Rank 0 attached the epoch's last.pt: Ray's newest checkpoint is the final weights.
    with result.checkpoint.as_directory() as folder:
        reported = weights(Path(folder) / "last.pt")
    for key, tensor in weights(save_dir / "weights" / "last.pt").items():
        assert torch.equal(reported[key], tensor), key


def test_a_crashed_worker_restarts_from_rays_checkpoint_exactly(ray_runs: dict[str, Any]) -> None:
    root = ray_runs["root"]
    assert (root / "crashed.flag").exists()  # rank 1 did die once
    plain, crashed = root / "plain", root / "crashed"
    with (crashed / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]  # each epoch once
    with (plain / "metrics.csv").open() as f:
        plain_rows = list(csv.DictReader(f))
    assert [float(r["val/loss"]) for r in rows] == pytest.approx([float(r["val/loss"]) for r in plain_rows])
    for key, tensor in weights(plain / "weights" / "last.pt").items():
        assert torch.equal(weights(crashed / "weights" / "last.pt")[key], tensor), key
    assert final(crashed, 0)["metrics"] == final(crashed, 1)["metrics"]
    assert ray_runs["crashed"].metrics["epoch"] == 3


def test_plugin_outside_ray_and_bad_counts_are_clear_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["fit", "--epochs", "1", "--save-dir", str(tmp_path / "x"), "--quiet", "-p", "ray"]) == 2
    assert "trainhooks-ray fit --workers N" in capsys.readouterr().err
    assert launch.main(["fit", "--workers", "0", "--", "--epochs", "1"]) == 2
    assert "--workers must be a positive integer" in capsys.readouterr().err
    assert cli.main(["plugins", "--json"]) == 0
    listed = {p["name"]: p for p in json.loads(capsys.readouterr().out)}
    assert (listed["ray"]["distribution"], listed["ray"]["version"], listed["ray"]["status"]) == (
        "trainhooks-ray",
        "0.1.0",
        "available",
    )
