"""Every failure path ends honestly, checked on real ``trainhooks`` processes: the exit status
(0 finished, 1 failed run, 2 bad input, 3 training produced nothing usable, 130 Ctrl-C), one
``trainhooks: error:`` line naming the culprit, and nothing already saved destroyed.

Plugins that exit or raise, training that yields nothing usable, checkpoints that are valid zips
but wrong inside, outputs that cannot be written, bad metric values, and ``fit --help`` while a
broken third-party plugin is installed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from trainhooks import checkpointing

from .conftest import PluginEnv, write_plugin_package

pytestmark = pytest.mark.slow

TASK = textwrap.dedent(
    """
    import torch
    from torch.utils.data import DataLoader, TensorDataset
    from trainhooks.tasks import digits_task

    def small(batch_size=32, lr=0.005, seed=0, epochs=2):
        return digits_task(batch_size=batch_size, lr=lr, seed=seed, epochs=epochs)

    def _scaled(factor, **kw):
        task = small(**kw)
        base = task.loss_fn
        task.loss_fn = lambda preds, y: base(preds, y) * factor
        return task

    def nan_loss(**kw):
        return _scaled(float("nan"), **kw)

    def inf_loss(**kw):
        return _scaled(float("inf"), **kw)

    def _empty():
        return DataLoader(TensorDataset(torch.zeros(0, 64), torch.zeros(0, dtype=torch.long)), batch_size=4)

    def empty_train(**kw):
        task = small(**kw)
        task.train_data = _empty()
        return task

    def empty_val(**kw):
        task = small(**kw)
        task.val_data = _empty()
        return task

    class Nothing:
        "An iterable of batches without a length that yields none."
        def __iter__(self):
            return iter(())

    def nothing_train(**kw):
        task = small(**kw)
        task.train_data = Nothing()
        return task
    """
)

# One plugin, told by TH_DO what to do at step 3 (training has started by then).
PLUGIN = textwrap.dedent(
    """
    import math, os, sys, time
    import trainhooks

    DO = os.environ.get("TH_DO", "")

    @trainhooks.hookimpl
    def on_train_batch_end(trainer):
        if trainer.global_step != 3:
            return
        if DO == "exit0":
            sys.exit()
        if DO == "exitmsg":
            sys.exit("plugin says bye")
        if DO == "kbint":
            raise KeyboardInterrupt
        if DO == "sleep":
            with open(os.environ["TH_READY"], "w") as fh:
                fh.write("ready")
            time.sleep(120)
        if DO.startswith("metric:"):
            value = {"1e3": "1e3", "hello": "hello", "None": None, "nan": math.nan, "inf": math.inf}[DO[7:]]
            trainer.log_metric("my/metric", value)
        if DO == "metrics_str":
            trainer.metrics["my/metric"] = "oops"

    @trainhooks.hookimpl
    def should_stop(trainer):
        if DO == "badstop" and trainer.global_step == 3:
            return {"stop": True}
        return None
    """
)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("failures")
    (root / "failtask.py").write_text(TASK)
    (root / "failplugin.py").write_text(PLUGIN)
    return root


def th(
    workdir: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    """``python -m trainhooks ARGS`` in ``workdir``, with its task and plugin modules importable."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("TRAINHOOKS_", "TH_"))}
    full_env.update(PYTHONPATH=str(workdir), OMP_NUM_THREADS="1", **(env or {}))
    return subprocess.run(
        [sys.executable, "-m", "trainhooks", *args],
        cwd=workdir,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def fit(workdir: Path, save_dir: Path, *extra: str, task: str = "small", **kw) -> subprocess.CompletedProcess:
    return th(workdir, "fit", "--task", f"failtask:{task}", "--epochs", "1", "--save-dir", str(save_dir), *extra, **kw)


def last_line(proc: subprocess.CompletedProcess) -> str:
    lines = proc.stderr.strip().splitlines()
    return lines[-1] if lines else ""


# ---------------------------------------------------------------------- a failure never exits 0
@pytest.mark.parametrize(
    ("do", "said"),
    [
        ("exit0", "it called sys.exit(None)"),
        ("exitmsg", "it called sys.exit('plugin says bye')"),
        ("kbint", "it raised KeyboardInterrupt (nobody pressed Ctrl-C)"),
    ],
)
def test_a_plugin_that_exits_or_interrupts_is_a_failed_run(workdir: Path, do: str, said: str) -> None:
    save_dir = workdir / f"exit-{do}"
    proc = fit(workdir, save_dir, "-p", "failplugin", "--quiet", env={"TH_DO": do})
    assert proc.returncode == 1, proc.stderr
    assert last_line(proc).startswith(
        f"trainhooks: error: plugin 'failplugin' failed in hook 'on_train_batch_end': {said}"
    )
    assert "interrupted" not in proc.stderr
    # Training had started: what was trained is saved, and resumable.
    emergency = checkpointing.load_checkpoint(save_dir / "weights" / "emergency.pt")
    assert emergency["global_step"] == 3


def test_a_non_critical_plugin_that_exits_is_disabled_and_training_goes_on(workdir: Path) -> None:
    proc = fit(
        workdir,
        workdir / "exit-noncritical",
        "-p",
        "failplugin",
        "--quiet",
        "--non-critical",
        "failplugin",
        env={"TH_DO": "exitmsg"},
    )
    assert proc.returncode == 0, proc.stderr
    assert "plugin 'failplugin' failed in hook 'on_train_batch_end'" in proc.stderr
    assert "disabled for the rest of the run" in proc.stderr


def test_the_users_second_ctrl_c_inside_a_hook_is_still_an_interrupt(workdir: Path) -> None:
    save_dir = workdir / "ctrl-c"
    ready = workdir / "ctrl-c.ready"
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("TRAINHOOKS_", "TH_"))}
    full_env.update(PYTHONPATH=str(workdir), OMP_NUM_THREADS="1", TH_DO="sleep", TH_READY=str(ready))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "trainhooks",
            "fit",
            "--task",
            "failtask:small",
            "--epochs",
            "1",
            "--quiet",
            "--save-dir",
            str(save_dir),
            "-p",
            "failplugin",
        ],
        cwd=workdir,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not ready.exists():
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)  # the first: stop gracefully after this batch
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)  # the second, while the plugin's hook still runs
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "failed in hook" not in err


# ---------------------------------------------------------------------- nothing usable
@pytest.mark.parametrize("task", ["nan_loss", "inf_loss"])
def test_a_run_stopped_by_a_non_finite_loss_at_step_1_exits_3(workdir: Path, task: str) -> None:
    proc = fit(workdir, workdir / f"nothing-{task}", "--quiet", task=task)
    assert proc.returncode == 3, proc.stderr
    line = last_line(proc)
    assert line.startswith("trainhooks: error: training produced nothing usable:"), proc.stderr
    assert "not finite" in line and "nan_guard" in line


def test_a_run_whose_training_data_yields_nothing_exits_3(workdir: Path) -> None:
    save_dir = workdir / "nothing-iterable"
    proc = fit(workdir, save_dir, "--quiet", task="nothing_train")
    assert proc.returncode == 3, proc.stderr
    assert last_line(proc).startswith("trainhooks: error: training produced nothing usable:")
    assert "train_data yielded no batches" in last_line(proc)
    assert not (save_dir / "weights" / "best.pt").exists()


@pytest.mark.parametrize(("task", "what"), [("empty_train", "train_data"), ("empty_val", "val_data")])
def test_an_empty_loader_is_an_error_at_start(workdir: Path, task: str, what: str) -> None:
    save_dir = workdir / f"empty-{task}"
    proc = fit(workdir, save_dir, task=task)
    assert proc.returncode == 2, proc.stderr
    assert last_line(proc).startswith(f"trainhooks: error: {what} has no batches")
    assert "Epoch 1" not in proc.stdout and not (save_dir / "weights").exists()


# ---------------------------------------------------------------------- malformed checkpoints
@pytest.fixture(scope="module")
def good_checkpoint(workdir: Path) -> Path:
    save_dir = workdir / "good"
    proc = fit(workdir, save_dir, "--quiet", "--save-every-n-steps", "3")
    assert proc.returncode == 0, proc.stderr
    return save_dir / "weights" / "last.pt"


def _edited(good: Path, target: Path, edit) -> Path:
    ckpt = torch.load(good, weights_only=True)
    edit(ckpt)
    torch.save(ckpt, target)
    return target


def _mid_epoch(good: Path) -> dict:
    """A mid-epoch checkpoint with a progress entry (the good run's one is taken at its end)."""
    ckpt = torch.load(good, weights_only=True)
    ckpt["epoch_completed"] = False
    ckpt["progress"] = {
        "batches_done": 1,
        "losses": torch.zeros(1),
        "sizes": [32],
        "rng_epoch_start": ckpt["rng"],
        "batch_size": 32,
    }
    return ckpt


MALFORMED = {
    "model-list": (lambda c: c.update(model=[1, 2]), "field 'model' must be a state_dict"),
    "epoch-abc": (lambda c: c.update(epoch="abc"), "field 'epoch' must be an integer >= 0, got str 'abc'"),
    "epoch-negative": (lambda c: c.update(epoch=-5), "field 'epoch' must be an integer >= 0, got int -5"),
    "plugin-state-string": (
        lambda c: c["plugins"].update(early_stopping="patience=3"),
        "field 'plugins.early_stopping' must be a dict",
    ),
    "rng-dtype": (lambda c: c["rng"].update(torch=torch.zeros(8)), "field 'rng.torch' must be a uint8 tensor"),
    "history-string": (lambda c: c.update(history="epoch 1"), "field 'history' must be a list"),
    "progress-missing-key": (
        lambda c: c.update(progress={k: v for k, v in c["progress"].items() if k != "sizes"}),
        "field 'progress' (a mid-epoch position) has no 'sizes' key",
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_checkpoint_is_one_error_naming_file_and_field(
    workdir: Path, good_checkpoint: Path, case: str
) -> None:
    edit, message = MALFORMED[case]
    source = workdir / "mid.pt"
    if not source.exists():
        torch.save(_mid_epoch(good_checkpoint), source)
    bad = _edited(source, workdir / f"{case}.pt", edit)
    proc = fit(workdir, workdir / f"resume-{case}", "--resume", str(bad), "--epochs", "3")
    assert proc.returncode == 1, proc.stderr
    assert last_line(proc) == last_line(proc).strip() and "Traceback" not in proc.stderr
    assert last_line(proc).startswith(f"trainhooks: error: checkpoint {bad} is malformed: {message}"), proc.stderr


@pytest.mark.parametrize("command", ["fit", "validate"])
def test_a_model_that_is_a_list_fails_resume_and_validate_alike(
    workdir: Path, good_checkpoint: Path, command: str
) -> None:
    bad = _edited(good_checkpoint, workdir / "model-list-both.pt", lambda c: c.update(model=[1, 2]))
    args = ["--resume", str(bad), "--epochs", "3"] if command == "fit" else ["--weights", str(bad)]
    proc = th(workdir, command, "--task", "failtask:small", "--save-dir", str(workdir / f"list-{command}"), *args)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert last_line(proc).startswith(f"trainhooks: error: checkpoint {bad} is malformed: field 'model'")


@pytest.mark.parametrize("command", ["fit", "validate"])
def test_nan_weights_are_refused_by_resume_and_validate(workdir: Path, good_checkpoint: Path, command: str) -> None:
    def poison(ckpt: dict) -> None:
        ckpt["model"] = {k: torch.full_like(v, float("nan")) for k, v in ckpt["model"].items()}

    bad = _edited(good_checkpoint, workdir / "nan-weights.pt", poison)
    args = ["--resume", str(bad), "--epochs", "3"] if command == "fit" else ["--weights", str(bad)]
    proc = th(workdir, command, "--task", "failtask:small", "--save-dir", str(workdir / f"nan-{command}"), *args)
    assert proc.returncode == 1, proc.stderr
    assert "holds NaN values" in last_line(proc) and str(bad) in last_line(proc)
    assert "val/loss nan" not in proc.stdout


def test_a_checkpoint_of_another_architecture_shows_the_differences(workdir: Path, good_checkpoint: Path) -> None:
    def widen(ckpt: dict) -> None:
        ckpt["model"] = {**ckpt["model"], "extra.weight": torch.zeros(2)}
        first = next(iter(ckpt["model"]))
        ckpt["model"][first] = torch.zeros(3, 3)

    bad = _edited(good_checkpoint, workdir / "other-arch.pt", widen)
    for args in (["fit", "--resume", str(bad), "--epochs", "3"], ["validate", "--weights", str(bad)]):
        proc = th(workdir, *args, "--task", "failtask:small", "--save-dir", str(workdir / f"arch-{args[0]}"))
        assert proc.returncode == 1, proc.stderr
        line = last_line(proc)
        assert str(bad) in line and "does not fit this model" in line
        assert "shape of" in line and "(3, 3)" in line and "unexpected 'extra.weight'" in line


def test_validate_weights_given_a_directory_says_it_is_one(workdir: Path, good_checkpoint: Path) -> None:
    run_dir = good_checkpoint.parent.parent
    proc = th(workdir, "validate", "--task", "failtask:small", "--weights", str(run_dir))
    assert proc.returncode == 1, proc.stderr
    assert f"weights {run_dir} is a directory, not a file" in last_line(proc)
    assert "does not exist" not in proc.stderr


# ---------------------------------------------------------------------- outputs that cannot be written
def _unwritable(workdir: Path, name: str) -> Path:
    """A save dir nothing can be written to, even as root: its parent is a regular file."""
    blocker = workdir / f"{name}.file"
    blocker.write_text("not a directory")
    return blocker / "out"


@pytest.mark.parametrize("command", ["predict", "export"])
def test_predict_and_export_into_an_unwritable_save_dir(workdir: Path, good_checkpoint: Path, command: str) -> None:
    save_dir = _unwritable(workdir, f"ro-{command}")
    proc = th(
        workdir, command, "--task", "failtask:small", "--weights", str(good_checkpoint), "--save-dir", str(save_dir)
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert last_line(proc).startswith("trainhooks: error: cannot create save_dir") and str(save_dir) in last_line(proc)


def test_a_file_named_weights_in_the_save_dir_is_reported_before_training(workdir: Path) -> None:
    save_dir = workdir / "weights-file"
    save_dir.mkdir()
    (save_dir / "weights").write_text("my notes")
    proc = fit(workdir, save_dir)
    assert proc.returncode == 2, proc.stderr
    assert "Epoch 1" not in proc.stdout
    assert str(save_dir / "weights") in last_line(proc) and "not a directory" in last_line(proc)
    assert (save_dir / "weights").read_text() == "my notes"


# ---------------------------------------------------------------------- metrics
@pytest.mark.parametrize("value", ["1e3", "hello", "None"])
def test_log_metric_refuses_what_is_not_a_number(workdir: Path, value: str) -> None:
    proc = fit(workdir, workdir / f"metric-{value}", "-p", "failplugin", "--quiet", env={"TH_DO": f"metric:{value}"})
    assert proc.returncode == 2, proc.stderr
    line = last_line(proc)
    assert line.startswith("trainhooks: error: plugin 'failplugin' failed in hook 'on_train_batch_end': ConfigError:")
    assert "metric 'my/metric' must be a number" in line


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_log_metric_warns_about_non_finite_values_naming_the_plugin(workdir: Path, value: str) -> None:
    proc = fit(workdir, workdir / f"metric-{value}", "-p", "failplugin", "--quiet", env={"TH_DO": f"metric:{value}"})
    assert proc.returncode == 0, proc.stderr
    assert f"metric 'my/metric' logged by plugin 'failplugin' is {value}" in proc.stderr


def test_a_string_written_into_trainer_metrics_names_the_plugin(workdir: Path) -> None:
    proc = fit(workdir, workdir / "metrics-str", "-p", "failplugin", "--quiet", env={"TH_DO": "metrics_str"})
    assert proc.returncode == 2, proc.stderr
    line = last_line(proc)
    assert line.startswith("trainhooks: error: plugin 'failplugin' failed in hook 'on_train_batch_end'")
    assert "metric 'my/metric' must be a number" in line and "plot" not in line


# ---------------------------------------------------------------------- should_stop
def test_a_bad_should_stop_answer_names_the_plugin_and_respects_non_critical(workdir: Path) -> None:
    proc = fit(workdir, workdir / "badstop", "-p", "failplugin", "--quiet", env={"TH_DO": "badstop"})
    assert proc.returncode == 1, proc.stderr
    assert "plugin 'failplugin': should_stop must return None, a bool or a str reason, got dict" in last_line(proc)
    proc = fit(
        workdir,
        workdir / "badstop-nc",
        "-p",
        "failplugin",
        "--quiet",
        "--non-critical",
        "failplugin",
        env={"TH_DO": "badstop"},
    )
    assert proc.returncode == 0, proc.stderr
    assert "should_stop must return" in proc.stderr and "disabled for the rest of the run" in proc.stderr


# ---------------------------------------------------------------------- help with a broken plugin installed
@pytest.fixture(scope="module")
def broken_plugin_site(plugin_env: PluginEnv, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("broken-help")
    pkg = write_plugin_package(
        root,
        "th-helpbreaker",
        "th_helpbreaker",
        "import no_such_dependency_xyz\n",
        entry_points={"helpbreaker": "th_helpbreaker"},
    )
    target = root / "site"
    plugin_env.pip_install(pkg, target=target)
    return target


def test_fit_help_works_while_a_broken_plugin_is_installed(plugin_env: PluginEnv, broken_plugin_site: Path) -> None:
    proc = plugin_env.run(["fit", "--help"], extra_path=[broken_plugin_site])
    assert proc.returncode == 0, proc.stderr
    assert "--epochs" in proc.stdout and "--patience" in proc.stdout  # built-in plugins' options still shown
    assert "helpbreaker" in proc.stdout + proc.stderr and "failed to load" in proc.stdout + proc.stderr
    # Running (not asking for help) still refuses the broken plugin, naming it.
    proc = plugin_env.run(["fit", "--epochs", "1"], extra_path=[broken_plugin_site])
    assert proc.returncode != 0 and "plugin 'helpbreaker'" in proc.stderr
