"""``trainhooks fit --resume FILE|auto``: continue the run that wrote the checkpoint.

Every checkpoint records its run's settings (``checkpoint["run"]``: task, epochs, seed, batch
size, lr, precision, enabled plugins and plugin options). A resume takes them from there, so
``trainhooks fit --resume runs/train/weights/last.pt`` with no other flag continues that very
run; a flag given explicitly overrides its recorded value, and a line on stderr says so.

``--resume auto`` looks in ``--save-dir`` (default ``runs/train``) for the newest good checkpoint
(``last.pt``; ``previous.pt`` when ``last.pt`` is damaged; a newer ``emergency.pt``) and starts a
fresh run when there is none: the same command line works under ``torchrun --max-restarts``,
SLURM requeues and pod restarts.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from trainhooks.cli.args import NEVER

#: argparse destination -> (flag, key in the checkpoint's "run" record)
RECORDED = {
    "task": ("--task", "task"),
    "epochs": ("--epochs", "epochs"),
    "seed": ("--seed", "seed"),
    "batch_size": ("--batch-size", "batch_size"),
    "lr": ("--lr", "lr"),
    "precision": ("--precision", "precision"),
    # loop controls (trainhooks.controls): a resumed run keeps its length, accumulation, limits
    "accumulate_grad_batches": ("--accumulate-grad-batches", "accumulate_grad_batches"),
    "max_steps": ("--max-steps", "max_steps"),
    "min_epochs": ("--min-epochs", "min_epochs"),
    "min_steps": ("--min-steps", "min_steps"),
    "val_every_n_epochs": ("--val-every-n-epochs", "val_every_n_epochs"),
    "val_every_n_steps": ("--val-every-n-steps", "val_every_n_steps"),
    "limit_train_batches": ("--limit-train-batches", "limit_train_batches"),
    "limit_val_batches": ("--limit-val-batches", "limit_val_batches"),
    "log_every_n_steps": ("--log-every-n-steps", "log_every_n_steps"),
    "compile": ("--compile", "compile"),
    "deterministic": ("--deterministic", "deterministic"),
}
AUTO_SAVE_DIR = Path("runs") / "train"


def option_spellings(flags: Sequence[str], action: Any = None) -> tuple[str, ...]:
    """Every way to type a plugin option: its flags, plus ``--no-FLAG`` for a bool setting
    (``argparse.BooleanOptionalAction``), so an explicit ``--no-restore-best`` counts as given."""
    if action is argparse.BooleanOptionalAction:
        return (*flags, *(f"--no-{f[2:]}" for f in flags if f.startswith("--")))
    return tuple(flags)


def given(argv: Sequence[str], flags: Sequence[str]) -> bool:
    """Was any of ``flags`` typed on the command line (``--epochs 3`` or ``--epochs=3``)?"""
    for arg in argv:
        if arg == "--":
            break
        if any(arg == f or arg.startswith(f + "=") for f in flags):
            return True
    return False


def find_checkpoint(resume: str | None, save_dir: Path | None) -> tuple[Path | None, dict[str, Any] | None]:
    """The checkpoint a resume continues (and its contents), or (None, None) for a fresh start.

    :raises CheckpointError: an explicit ``--resume FILE`` that is missing or damaged.
    :raises ConfigError: an empty ``--resume``.
    """
    from trainhooks import checkpointing

    if resume is None:
        return None, None
    if not resume.strip():  # Path("") is ".": the current directory, never what was meant
        from trainhooks.errors import ConfigError

        raise ConfigError(f"--resume expects a checkpoint file or 'auto', got {resume!r}")
    if resume == "auto":
        weights = (save_dir or AUTO_SAVE_DIR) / "weights"
        choice = checkpointing.newest_good_checkpoint(weights)
        for skipped, why in choice.skipped:
            print(f"trainhooks: not resuming from {skipped}: {why}", file=sys.stderr)
        if choice.path is not None and choice.skipped:
            print(f"trainhooks: resuming from the previous good checkpoint, {choice.path}, instead", file=sys.stderr)
        return choice.path, choice.checkpoint
    path = Path(resume)
    return path, checkpointing.load_checkpoint(path)


def recorded_plugins(
    checkpoint: dict[str, Any] | None, argv: Sequence[str], enable: list[str], disable: list[str], active: list[str]
) -> tuple[list[str], list[str]] | None:
    """The ``-p`` lists that load the recorded run's plugins, or None to keep what is loaded
    (no record, ``-p`` given on this command line, or the same plugins anyway)."""
    run = (checkpoint or {}).get("run") or {}
    recorded = run.get("plugins")
    if not isinstance(recorded, list) or enable or disable:
        return None
    wanted = [str(n) for n in recorded]
    if set(wanted) == set(active):
        return None
    return [n for n in wanted if n not in active], [n for n in active if n not in wanted]


def apply_recorded(
    args: argparse.Namespace,
    argv: Sequence[str],
    checkpoint: dict[str, Any] | None,
    path: Path | None,
    option_flags: dict[str, Sequence[str]],
) -> None:
    """Fill ``args`` from the checkpoint's run record where no flag was given; say which given
    flags override a recorded value. ``option_flags``: plugin option destination -> its flags."""
    # auto with nothing to resume stays "auto": fit(resume="auto") then starts fresh, and says so
    args.resume = str(path) if path is not None else args.resume
    if path is not None and args.save_dir is None:
        from trainhooks.manifest import run_dir_of

        # --resume runs/train/weights/last.pt continues in runs/train: one metrics.csv, one run.
        args.save_dir = run_dir_of(path)
    run = (checkpoint or {}).get("run") or {}
    if not run:
        return
    overrides: list[str] = []
    for dest, (flag, key) in RECORDED.items():
        if key not in run:
            continue
        recorded = run[key]
        if dest == "val_every_n_epochs" and recorded is None:  # recorded off: not the default (1)
            recorded = NEVER
        if given(argv, [flag, f"--no-{flag[2:]}"]):  # --no-compile, --no-deterministic
            value = getattr(args, dest)
            if value != recorded and recorded is not None:
                typed = (flag if value else f"--no-{flag[2:]}") if isinstance(value, bool) else f"{flag} {value}"
                overrides.append(f"{typed} overrides the recorded {recorded}")
        else:
            setattr(args, dest, recorded)
    options = run.get("options") or {}
    for dest, flags in option_flags.items():
        if dest not in options:
            continue
        if given(argv, flags):
            if getattr(args, dest, None) != options[dest]:
                overrides.append(f"{flags[0]} {getattr(args, dest)} overrides the recorded {options[dest]}")
        else:
            setattr(args, dest, options[dest])
    for line in overrides:
        print(f"trainhooks: {line}", file=sys.stderr)
