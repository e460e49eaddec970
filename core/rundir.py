"""The run directory (``save_dir``): choosing a free one, recognising a used one, checking it.

A run writes ``weights/*.pt``, ``metrics.csv`` and ``results.png`` into its directory. A fresh run
never silently lands on top of another one: :func:`previous_run_files` finds what an earlier run
left, and the Trainer refuses such a directory unless it resumes or overwrites.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from trainhooks.errors import ConfigError

RUN_FILES = ("metrics.csv", "results.png")
"""Files a run writes directly in ``save_dir`` (besides ``weights/*.pt``): their presence means a run was there."""


def increment_dir(base: str | os.PathLike[str]) -> Path:
    """``runs/train``, then ``runs/train2``, ``runs/train3``... (the first that does not exist)."""
    base = Path(base)
    if not base.exists():
        return base
    n = 2
    while (candidate := base.with_name(f"{base.name}{n}")).exists():
        n += 1
    return candidate


def previous_run_files(save_dir: Path) -> list[Path]:
    """The files of an earlier run in ``save_dir``: checkpoints in ``weights/``, ``metrics.csv``, ``results.png``."""
    found = [save_dir / name for name in RUN_FILES if (save_dir / name).is_file()]
    weights = save_dir / "weights"
    if weights.is_dir():
        found.extend(sorted(p for p in weights.glob("*.pt") if p.is_file()))
    return found


def describe(paths: Sequence[Path]) -> str:
    """A short list of run files for messages: ``metrics.csv, weights/last.pt and 3 more``."""
    names = [p.name if p.parent.name != "weights" else f"weights/{p.name}" for p in paths]
    return ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")


def ensure_save_dir(save_dir: Path) -> None:
    """Create ``save_dir`` and check that it and its ``weights/`` can be written, before training."""
    try:
        save_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create save_dir {save_dir}: {exc.strerror or exc}") from exc
    if not os.access(save_dir, os.W_OK):
        raise ConfigError(f"save_dir {save_dir} is not writable")
    # Checkpoints (the emergency one included) go to save_dir/weights/: find out now, not
    # after the first epoch has trained, that they cannot.
    weights = save_dir / "weights"
    if weights.exists() and not weights.is_dir():
        raise ConfigError(
            f"{weights} is not a directory (a file is in the way): checkpoints are written into "
            f"{weights}/; move the file or pick another --save-dir"
        )
    if weights.is_dir() and not os.access(weights, os.W_OK):
        raise ConfigError(f"{weights} is not writable: checkpoints are written there")


__all__ = ["RUN_FILES", "describe", "ensure_save_dir", "increment_dir", "previous_run_files"]
