"""The trainhooks command, run in-process through cli.main (subprocess runs live in test_entry_points)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from trainhooks import cli
from trainhooks.tasks import digits_task


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_fit_default_task(tmp_path, capsys) -> None:
    code, out, err = run(capsys, "fit", "--epochs", "2", "--save-dir", str(tmp_path / "run"))
    assert code == 0, err
    *_, head, where, files = out.strip().splitlines()
    assert re.fullmatch(r"Training finished after 2 of 2 epochs \(90 steps, \d+\.\ds\)\.", head)  # said once
    assert where == f"Results in {tmp_path / 'run'}/:"
    assert files == "  metrics.csv, weights/last.pt, weights/best.pt, results.png"


def test_fit_writes_where_the_trainer_api_and_the_docs_say(tmp_path, capsys, monkeypatch) -> None:
    """Without --save-dir: runs/train, then runs/train2 (the Trainer's default too), so that
    `trainhooks validate --weights runs/train/weights/best.pt` from the docs works."""
    monkeypatch.chdir(tmp_path)
    for _ in range(2):
        code, _, err = run(capsys, "fit", "--epochs", "1", "--quiet")
        assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["train", "train2"]
    code, _, err = run(capsys, "validate", "--weights", "runs/train/weights/best.pt")
    assert code == 0, err


def test_fit_with_profile_hooks(tmp_path, capsys, monkeypatch) -> None:
    (tmp_path / "slowish.py").write_text(
        "import trainhooks\n@trainhooks.hookimpl\ndef on_train_batch_end(trainer):\n    sum(range(100))\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    code, out, _ = run(
        capsys, "fit", "--epochs", "1", "--save-dir", str(tmp_path / "r"), "-p", "slowish", "--profile-hooks"
    )
    assert code == 0
    assert "Hook profile" in out
    row = next(line for line in out.splitlines() if line.startswith("slowish"))
    assert row.split()[1] == "on_train_batch_end" and row.split()[2] == "45"


def test_plugins_lists_builtins(capsys) -> None:
    code, out, _ = run(capsys, "plugins")
    assert code == 0
    assert "torchscript" in out and "builtin" in out and "export_model" in out
    code, out, _ = run(capsys, "plugins", "--json")
    data = {p["name"]: p for p in json.loads(out)}
    assert data["torchscript"]["source"] == "builtin"
    assert data["torchscript"]["distribution"] == "trainhooks"
    assert data["torchscript"]["hooks"] == ["export_formats", "export_model"]
    assert data["torchscript"]["location"].endswith("export_torchscript.py")


def test_hooks_lists_signatures_and_loop(capsys) -> None:
    code, out, _ = run(capsys, "hooks")
    assert code == 0
    assert "on_train_batch_end(trainer, batch, batch_idx, outputs)" in out
    assert "should_stop(trainer)  [firstresult]" in out
    code, out, _ = run(capsys, "hooks", "--loop")
    assert "for each training batch:" in out and "export_model -> onnx, torchscript" in out


def test_validate_predict_export_on_saved_weights(tmp_path, capsys) -> None:
    task = digits_task(seed=0)
    weights = tmp_path / "w.pt"
    torch.save(task.model.state_dict(), weights)
    code, out, err = run(capsys, "validate", "--weights", str(weights), "--save-dir", str(tmp_path / "v"))
    assert code == 0, err
    assert "val/loss" in out and "val/acc" in out
    code, out, err = run(capsys, "predict", "--weights", str(weights), "--save-dir", str(tmp_path / "p"))
    assert code == 0, err
    lines = (tmp_path / "p" / "predictions.csv").read_text().splitlines()
    assert lines[0] == "index,prediction,confidence" and len(lines) == 360
    target = tmp_path / "m.torchscript"
    code, out, err = run(capsys, "export", "--weights", str(weights), "--output", str(target))
    assert code == 0, err
    assert target.exists() and "exported torchscript" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["fit", "--epochs", "0"], "expected a positive integer"),
        (["fit", "--lr", "nan"], "expected a positive number"),
        (["fit", "--epochs", "ten"], "argument --epochs: expected a positive integer, got 'ten'"),
        (["fit", "--dist-timeout", "inf"], "argument --dist-timeout: expected a positive number, got 'inf'"),
        (
            ["fit", "--stop-timeout", "-1"],
            "argument --stop-timeout: expected a non-negative number of seconds, got '-1'",
        ),
        (
            ["fit", "--stop-timeout", "soon"],
            "argument --stop-timeout: expected a non-negative number of seconds, got 'soon'",
        ),
        (["fit", "--task", "no_such_module:make"], "cannot import module 'no_such_module'"),
        (["fit", "--task", "json"], "expected 'package.module:function'"),
        (["fit", "--task", "json:dumps"], "raised TypeError"),
        (["fit", "--task", "os.path:sep"], "has no callable 'sep'"),
        (["fit", "-p", "no_such_plugin"], "unknown plugin 'no_such_plugin'"),
        (["fit", "-p", "no:torchscrip"], "did you mean torchscript"),
        (["validate", "--weights", "missing.pt"], "weights file missing.pt does not exist"),
        (["export", "--weights", "W", "--format", "tflite"], "no plugin provides export format 'tflite'"),
        # an empty path is "." (files written into the current directory): refused, not taken
        (["fit", "--save-dir", ""], "argument --save-dir: expected a path, got ''"),
        (["validate", "--weights", " "], "argument --weights: expected a path, got ' '"),
        (["fit", "--resume", ""], "--resume expects a checkpoint file or 'auto', got ''"),
    ],
)
def test_bad_cli_input_is_one_clear_error(tmp_path, capsys, monkeypatch, args, message) -> None:
    monkeypatch.chdir(tmp_path)
    if "W" in args:
        torch.save(digits_task().model.state_dict(), tmp_path / "W")
    try:
        code = cli.main(args)
    except SystemExit as exc:  # argparse's own usage errors
        code = exc.code
    _, err = capsys.readouterr()
    assert code == (1 if "missing.pt" in args else 2)
    assert message in err
    assert [p.name for p in tmp_path.iterdir() if p.name != "W"] == [], "bad input must write nothing"
    assert "Traceback" not in err


def test_task_returning_wrong_thing(tmp_path, capsys, monkeypatch) -> None:
    (tmp_path / "badtask.py").write_text("def make():\n    return 42\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    code = cli.main(["fit", "--task", "badtask:make", "--save-dir", str(tmp_path / "r")])
    assert code == 2
    assert "returned int, expected trainhooks.Task" in capsys.readouterr().err


TASK_MODULE = (
    "import torch, trainhooks\n"
    "from trainhooks.testing import tiny_digits\n"
    "def make(batch_size=8):\n"
    "    train, val = tiny_digits(n_train=32, n_val=16, batch_size=batch_size)\n"
    "    model = torch.nn.Linear(64, 10)\n"
    "    return trainhooks.Task(model=model, train_data=train, val_data=val, loss_fn=torch.nn.CrossEntropyLoss())\n"
)
"""A user's --task module: a linear model on a little digits data."""


def test_user_task_gets_only_the_parameters_it_accepts(tmp_path, capsys, monkeypatch) -> None:
    (tmp_path / "mytask.py").write_text(TASK_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    code = cli.main(
        [
            "fit",
            "--task",
            "mytask:make",
            "--batch-size",
            "16",
            "--lr",
            "0.1",
            "--epochs",
            "1",
            "--save-dir",
            str(tmp_path / "r"),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "after 1 of 1 epoch (2 steps" in out


def test_task_and_plugin_modules_in_the_current_directory(tmp_path, capsys, monkeypatch) -> None:
    """A console script does not search the current directory; trainhooks does, as python -m does."""
    import sys

    (tmp_path / "cwd_task_mod.py").write_text(TASK_MODULE)
    (tmp_path / "cwd_stopper_mod.py").write_text(
        "import trainhooks\n"
        "@trainhooks.hookimpl\n"
        "def should_stop(trainer):\n"
        "    return 'stopper says stop' if trainer.epoch == 1 else None\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    for name in ("cwd_task_mod", "cwd_stopper_mod"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    code = cli.main(["fit", "--task", "cwd_task_mod:make", "-p", "cwd_stopper_mod", "--epochs", "5", "--save-dir", "r"])
    out = capsys.readouterr().out
    assert code == 0 and "stopper says stop" in out
    # export on the saved weights: the task has no example_input, so its data gives one
    code = cli.main(["export", "--task", "cwd_task_mod:make", "--weights", "r/weights/best.pt", "--save-dir", "e"])
    assert code == 0 and "exported torchscript model to" in capsys.readouterr().out
    exported = torch.jit.load(next((tmp_path / "e").rglob("*.torchscript")))
    assert exported(torch.zeros(2, 64)).shape == (2, 10)


def test_plugins_shows_an_option_clash_that_fit_would_reject(tmp_path, capsys, monkeypatch) -> None:
    import sys

    (tmp_path / "clashy_opts_mod.py").write_text(
        "import trainhooks\n"
        "@trainhooks.hookimpl\n"
        "def add_options(parser):\n"
        "    parser.add_option('--patience', type=int, default=3)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "clashy_opts_mod", raising=False)
    assert cli.main(["plugins", "--json", "-p", "clashy_opts_mod"]) == 0
    records = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    clashy = records["clashy_opts_mod"]
    assert clashy["status"] == "error"
    assert "--patience is declared by both plugin 'early_stopping' and plugin 'clashy_opts_mod'" in clashy["reason"]
    assert records["early_stopping"]["status"] == "available"
    assert cli.main(["fit", "-p", "clashy_opts_mod", "--save-dir", str(tmp_path / "r")]) != 0
    assert "--patience is declared by both" in capsys.readouterr().err


def test_help_lists_run_commands(capsys) -> None:
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    for command in ("fit", "validate", "predict", "export", "plugins", "hooks"):
        assert command in out


def test_help_shows_a_set_default_as_it_would_be_typed(capsys) -> None:
    # notify's events default is a frozenset: its repr, in an order that changes per process, is no help
    with pytest.raises(SystemExit):
        cli.main(["fit", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "(default: exception,train_end,train_start)" in out and "frozenset" not in out


def test_python_m_entry(tmp_path) -> None:
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "trainhooks", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.startswith("trainhooks ")


def test_scan_plugin_flags() -> None:
    assert cli.scan_plugin_flags(["fit", "-p", "a", "-pb", "--plugin", "no:c", "--plugin=d", "--", "-p", "e"]) == (
        ["a", "b", "d"],
        ["c"],
    )


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["fit", "--epochs", "3", "--resume", "auto", "--save-dir", "r"], {"command": "fit", "resume": "auto"}),
        (["-p", "x", "fit", "--lr", "-1"], {"command": "fit", "enable": ["x"]}),
        (["fit", "--resume=last.pt", "--quiet"], {"resume": "last.pt", "quiet": True}),
        (["fit", "--help"], {"asks_for_help": True}),
        (["fit", "--", "--help", "-p", "e"], {"asks_for_help": False, "enable": []}),  # after --: not ours
        (["fit", "--resum", "x", "-p", "a"], {"resume": None, "enable": ["a"]}),  # no abbreviations here
        (["fit", "-p"], {"command": None, "enable": []}),  # the full parser reports the missing value
    ],
)
def test_the_first_pass_reads_what_decides_the_plugins(argv: list[str], expected: dict[str, object]) -> None:
    from trainhooks.cli.preparse import first_pass

    found = first_pass(argv)
    for name, value in expected.items():
        assert getattr(found, name) == value, (argv, name)
    if "save_dir" not in expected and "--save-dir" in argv:
        assert str(found.save_dir) == argv[argv.index("--save-dir") + 1]


def test_the_resume_hint_repeats_the_command_line_without_its_resume(monkeypatch) -> None:
    from trainhooks.cli.fit import _resume_command

    monkeypatch.setattr(
        "sys.argv", ["trainhooks", "fit", "--epochs", "3", "--resume", "old.pt", "--resume=x", "-p", "a"]
    )
    assert _resume_command(Path("runs/train/weights/last.pt")) == (
        "trainhooks fit --epochs 3 -p a --resume runs/train/weights/last.pt"
    )


def test_an_abbreviated_flag_is_refused_with_the_flags_it_may_mean(capsys) -> None:
    """No abbreviations: a plugin's option could make one ambiguous, and a resume must see
    which recorded settings were typed (an abbreviated --epochs would be overwritten silently)."""
    with pytest.raises(SystemExit) as exc:
        cli.main(["fit", "--epoch", "2", "--quiet"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "trainhooks fit: error: unrecognized arguments: --epoch 2 (did you mean --epochs?)" in err
    with pytest.raises(SystemExit):
        cli.main(["fit", "--sed", "3", "--quiet"])
    assert "(did you mean --seed?)" in capsys.readouterr().err
