"""Signals in one process (real signals, raised by a hook at a known step) and runs never overwritten.

The torchrun side (no lost signal in the stop agreement, SIGTERM to the agent, a stuck rank) is
in tests/test_distributed.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
import torch

import trainhooks
from trainhooks import cli, distributed, signals
from trainhooks.testing import tiny_digits, tiny_model

SIGNAL_PLUGIN = textwrap.dedent(
    """
    import os, signal
    import trainhooks

    @trainhooks.hookimpl
    def on_train_batch_end(trainer):
        if trainer.global_step == int(os.environ["SIGNAL_AT"]):
            os.kill(os.getpid(), getattr(signal, os.environ["SIGNAL_NAME"]))
    """
)


@pytest.mark.slow
def test_pre_emption_signal_from_the_command_line_checkpoints_and_exits_75(tmp_path: Path) -> None:
    (tmp_path / "selfsignal.py").write_text(SIGNAL_PLUGIN)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAINHOOKS_")}
    env.update(PYTHONPATH=str(tmp_path), OMP_NUM_THREADS="1", SIGNAL_AT="7", SIGNAL_NAME="SIGUSR1")
    save = tmp_path / "run"
    cmd = [sys.executable, "-m", "trainhooks", "fit", "--epochs", "3", "--quiet", "--save-dir", str(save)]
    proc = subprocess.run([*cmd, "-p", "selfsignal"], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == signals.PREEMPT_EXIT_CODE == 75, proc.stderr
    assert "SIGUSR1 received: stopping after epoch 1, step 7" in proc.stderr
    assert f"--resume {save / 'weights' / 'last.pt'}" in proc.stderr
    saved = torch.load(save / "weights" / "last.pt", weights_only=True)
    assert (saved["global_step"], saved["stopped_by"], saved["epoch_completed"]) == (7, "signal", False)
    assert saved["stop_reason"] == "interrupted by SIGUSR1"


def _self_signal(trainer: trainhooks.Trainer, sig: signal.Signals, at: int) -> None:
    def kick(trainer: trainhooks.Trainer) -> None:
        if trainer.global_step == at:
            signal.raise_signal(sig)

    trainer.add_callback("on_train_batch_end", kick)


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(), reason="signals need the main thread")
def test_the_pre_emption_signal_is_configurable(tmp_path: Path) -> None:
    train, val = tiny_digits(n_train=128, n_val=32, batch_size=32)
    trainer = trainhooks.Trainer(
        tiny_model(), loss_fn=torch.nn.CrossEntropyLoss(), epochs=3, save_dir=tmp_path / "a",
        default_plugins=False, preempt_signal="USR2",
    )  # fmt: skip
    _self_signal(trainer, signal.SIGUSR2, 2)
    result = trainer.fit(train, val)
    assert (result.global_step, result.stop_reason, trainer.interrupted) == (2, "interrupted by SIGUSR2", "SIGUSR2")
    assert signal.getsignal(signal.SIGUSR2) is signal.SIG_DFL, "fit puts the previous handler back"

    previous = signal.signal(signal.SIGUSR1, lambda *_: seen.append("mine"))
    seen: list[str] = []
    try:
        off = trainhooks.Trainer(
            tiny_model(), loss_fn=torch.nn.CrossEntropyLoss(), epochs=1, save_dir=tmp_path / "b",
            default_plugins=False, preempt_signal=None,
        )  # fmt: skip
        _self_signal(off, signal.SIGUSR1, 2)
        result = off.fit(train, val)
        assert seen == ["mine"] and result.stop_reason == "completed 1 epoch", "None leaves SIGUSR1 to its owner"
    finally:
        signal.signal(signal.SIGUSR1, previous)


def test_signal_and_deadline_options_are_validated() -> None:
    assert signals.parse_signal("SIGUSR2") == signals.parse_signal("usr2") == signal.SIGUSR2
    assert signals.parse_signal(int(signal.SIGUSR1)) == signal.SIGUSR1
    assert signals.parse_signal("none") is None and signals.parse_signal(None) is None
    with pytest.raises(trainhooks.ConfigError, match="'SIGFOO' is not a signal name"):
        signals.parse_signal("SIGFOO")
    with pytest.raises(trainhooks.ConfigError, match="SIGTERM cannot be the pre-emption signal"):
        signals.parse_signal("TERM")
    assert signals.parse_stop_timeout(0) is None and signals.parse_stop_timeout(2) == 2.0
    with pytest.raises(trainhooks.ConfigError, match="stop_timeout"):
        signals.parse_stop_timeout(-1)
    assert signals.exit_code_for("SIGINT") == 130 and signals.exit_code_for("SIGTERM") == 143
    assert signals.exit_code_for("SIGUSR1") == 75


def test_dist_timeout_defaults_to_five_minutes(tmp_path: Path) -> None:
    trainer = trainhooks.Trainer(tiny_model(), loss_fn=torch.nn.CrossEntropyLoss(), save_dir=tmp_path)
    assert trainer.dist_timeout == distributed.DEFAULT_TIMEOUT_S == 300.0
    assert trainer.stop_timeout == 25.0 and trainer.preempt_signal == signal.SIGUSR1


# ---------------------------------------------------------------------- runs never overwritten
@pytest.mark.slow
def test_a_second_fit_into_a_used_save_dir_is_refused_and_overwrite_starts_over(tmp_path: Path, capsys) -> None:
    save = tmp_path / "exp"
    fit = ["fit", "--epochs", "1", "--quiet", "--save-dir", str(save)]
    assert cli.main(fit) == 0
    before = {p: p.read_bytes() for p in save.rglob("*") if p.is_file()}
    capsys.readouterr()
    assert cli.main(fit) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        f"trainhooks: error: save_dir {save} already holds a run (metrics.csv, results.png, weights/best.pt, "
        "weights/last.pt); continue it with --resume auto (fit(resume='auto')), start over in it with --overwrite "
        "(Trainer(overwrite=True)), or choose another --save-dir"
    ]
    assert {p: p.read_bytes() for p in save.rglob("*") if p.is_file()} == before, "nothing touched"

    stale = save / "weights" / "emergency.pt"
    stale.write_bytes((save / "weights" / "last.pt").read_bytes())  # an old run's leftover
    assert cli.main([*fit, "--overwrite", "--epochs", "2"]) == 0
    assert not stale.exists(), "starting over removes the previous run's checkpoints"
    saved = torch.load(save / "weights" / "last.pt", weights_only=True)
    assert saved["epoch"] == 1 and len(saved["history"]) == 2
    assert (save / "metrics.csv").read_text().count("\n") == 3  # header + 2 epochs of this run only

    # Resuming is not a second run: it continues in the same directory.
    assert cli.main(["fit", "--epochs", "3", "--quiet", "--resume", str(save / "weights" / "last.pt")]) == 0


def test_the_api_refuses_a_used_save_dir_too(tmp_path: Path) -> None:
    train, val = tiny_digits(n_train=64, n_val=32, batch_size=32)

    def make(**kwargs: object) -> trainhooks.Trainer:
        return trainhooks.Trainer(
            tiny_model(), loss_fn=torch.nn.CrossEntropyLoss(), epochs=1, save_dir=tmp_path, plugins=["checkpoint"],
            default_plugins=False, **kwargs,  # type: ignore[arg-type]
        )  # fmt: skip

    make().fit(train, val)
    with pytest.raises(trainhooks.ConfigError, match=r"already holds a run \(weights/best.pt, weights/last.pt\)"):
        make().fit(train, val)
    assert make(overwrite=True).fit(train, val).epochs_completed == 1
    with pytest.raises(trainhooks.ConfigError, match="overwrite must be True or False"):
        make(overwrite="yes")
    assert not (tmp_path / "elsewhere").exists()
    empty = trainhooks.Trainer(tiny_model(), loss_fn=torch.nn.CrossEntropyLoss(), save_dir=tmp_path / "elsewhere")
    empty.fit(train, epochs=1)  # an empty or missing directory is fine
