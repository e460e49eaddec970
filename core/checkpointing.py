"""What a checkpoint holds, how it is written (atomically) and read (safely).

A checkpoint is a plain dict that loads with ``torch.load(weights_only=True)``::

    {
      "format": "trainhooks.checkpoint", "version": 1,
      "model": state_dict, "optimizer": state_dict | None, "lr_scheduler": state_dict | None,
      "epoch": int,             # the epoch this checkpoint was taken in (0-based)
      "epoch_completed": bool,  # False for a checkpoint taken mid-epoch
      "global_step": int, "metrics": {name: float}, "history": [{name: float}, ...],
      "stop_reason": str | None,
      "plugins": {plugin_name: plugin.state_dict()},
      ... plus whatever on_save_checkpoint hooks add
    }

Writes go to a temporary file in the same directory, are flushed and fsynced, then renamed
over the target: a crash mid-write leaves the previous file intact.
"""

from __future__ import annotations

import os
import pickle
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch

from trainhooks.errors import CheckpointError

FORMAT = "trainhooks.checkpoint"
VERSION = 1


def atomic_save(obj: Any, path: str | os.PathLike[str]) -> Path:
    """``torch.save`` to ``path`` via temp file + fsync + rename; returns the path.

    :raises CheckpointError: the directory is not writable or the disk is full; the previous
        file at ``path`` (if any) is untouched and no temp file is left behind.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise CheckpointError(f"cannot write checkpoint {path}: {exc.strerror or exc}") from exc
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, (OSError, RuntimeError)):
            raise CheckpointError(f"cannot write checkpoint {path}: {exc}") from exc
        raise
    _fsync_dir(path.parent)
    return path


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a checkpoint safely (``weights_only=True``) onto the CPU.

    :raises CheckpointError: missing, truncated, corrupt, unsafe (needs pickled code) or not a
        trainhooks checkpoint; the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"checkpoint {path} cannot be loaded safely (weights_only=True): {str(exc).splitlines()[0]}"
        ) from exc
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as exc:
        raise CheckpointError(
            f"checkpoint {path} is corrupt or truncated ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        ) from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a trainhooks checkpoint (no 'format': {FORMAT!r} entry)")
    if data.get("version", 0) > VERSION:
        raise CheckpointError(
            f"checkpoint {path} has version {data.get('version')}; this trainhooks reads up to {VERSION}"
        )
    return data


def load_weights(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The model ``state_dict`` of a trainhooks checkpoint, or of a bare ``state_dict`` file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"weights file {path} does not exist")
    try:
        return load_checkpoint(path)["model"]  # type: ignore[no-any-return]
    except CheckpointError as exc:
        if "not a trainhooks checkpoint" not in str(exc):
            raise
    data = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(data, dict) and all(isinstance(v, torch.Tensor) for v in data.values()):
        return data
    raise CheckpointError(f"{path} holds neither a trainhooks checkpoint nor a model state_dict")
