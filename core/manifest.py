"""The run manifest: ``save_dir/run.json``, what a fit wrote and how it ended.

Plugins write a run's files and announce each one with ``trainer.log_artifact(name, path)``
(``last.pt`` and ``best.pt`` from the checkpoint plugin, ``metrics.csv``, ``results.png``...).
During a fit, rank 0 keeps those names in ``run.json`` next to the files, with the run's status
and why it stopped. ``trainhooks validate``, ``predict`` and ``export`` find a run's weights
there instead of guessing paths: a checkpoint plugin that writes elsewhere, or under other
names, is found all the same.

The file is rewritten (atomically) at the start of a fit, when an artifact is announced under a
new name or at a new path, and at the end: a run killed with SIGKILL still leaves a manifest
naming the files it had written, with the status ``running``. A resumed run keeps the artifacts of the run it continues
(``best.pt`` from before the restart is still its best) where their files still exist.

Example ``run.json``::

    {"format": "trainhooks-run", "version": 1, "status": "finished",
     "stop_reason": "completed 10 epochs", "task": "digits", "epochs_completed": 10,
     "global_step": 460, "updated": 1796112000.0,
     "artifacts": {"metrics.csv": "metrics.csv", "last.pt": "weights/last.pt",
                   "best.pt": "weights/best.pt"}}

Paths inside the run directory are stored relative to it, so a run directory can be moved or
copied and still be read.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

MANIFEST_NAME = "run.json"
FORMAT = "trainhooks-run"
VERSION = 1
STATUSES = ("running", "finished", "interrupted", "failed")
"""``running`` (or killed without a chance to say otherwise), ``finished`` (completed, or stopped
by a plugin), ``interrupted`` (a signal: resumable), ``failed`` (an exception)."""

WEIGHTS_PREFERENCE = ("best.pt", "last.pt")
"""The artifacts that ``validate``/``predict``/``export`` use without ``--weights``, best first."""


@dataclass
class RunManifest:
    """What one run directory's ``run.json`` says."""

    run_dir: Path
    status: str = "running"
    stop_reason: str | None = None
    task: str | None = None
    epochs_completed: int = 0
    global_step: int = 0
    updated: float = 0.0
    artifacts: dict[str, Path] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return self.run_dir / MANIFEST_NAME

    # ------------------------------------------------------------------ writing
    @classmethod
    def start(cls, run_dir: Path, *, resumed: bool, task: str | None = None) -> RunManifest:
        """The manifest of a fit starting in ``run_dir``, written at once (status ``running``).

        A resumed fit carries over the artifacts of the manifest already there whose files
        still exist; a fresh one starts with none.
        """
        manifest = cls(Path(run_dir), task=task)
        if resumed:
            previous = read_manifest(run_dir)
            if previous is not None:
                manifest.artifacts = {n: p for n, p in previous.artifacts.items() if p.exists()}
                manifest.task = task or previous.task
        manifest.write()
        return manifest

    def record(self, name: str, path: Path) -> None:
        """An artifact was announced: keep it, and rewrite the file if that changed what it says.

        The checkpoint plugin announces ``last.pt`` (and often ``best.pt``) every epoch, at the
        same path: the file already names it, and rewriting it would only cost every epoch a
        write and a rename.
        """
        path = Path(path)
        if self.artifacts.get(name) == path:
            return
        self.artifacts[name] = path
        self.write()

    def end(self, status: str, *, stop_reason: str | None, epochs_completed: int, global_step: int) -> None:
        """How the fit ended; rewrites the file."""
        if status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}, got {status!r}")
        self.status, self.stop_reason = status, stop_reason
        self.epochs_completed, self.global_step = epochs_completed, global_step
        self.write()

    def write(self) -> None:
        """Write ``run.json`` atomically (a reader never sees half a file). A failure to write
        is not the run's failure: the manifest is a convenience, the run's files are there."""
        self.updated = time.time()
        data = {
            "format": FORMAT,
            "version": VERSION,
            "status": self.status,
            "stop_reason": self.stop_reason,
            "task": self.task,
            "epochs_completed": self.epochs_completed,
            "global_step": self.global_step,
            "updated": self.updated,
            "artifacts": {name: _relative(path, self.run_dir) for name, path in self.artifacts.items()},
        }
        tmp = self.path.with_name(f".{MANIFEST_NAME}.tmp")
        try:
            tmp.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink()

    # ------------------------------------------------------------------ reading
    def weights(self, preference: Iterable[str] = WEIGHTS_PREFERENCE) -> tuple[str, Path] | None:
        """The first of ``preference`` this run announced whose file exists, as (name, path)."""
        for name in preference:
            path = self.artifacts.get(name)
            if path is not None and path.is_file():
                return name, path
        return None


def read_manifest(run_dir: str | os.PathLike[str]) -> RunManifest | None:
    """The manifest in ``run_dir``, or None: there is none, or it is not one (damaged, another
    tool's ``run.json``, a newer version)."""
    run_dir = Path(run_dir)
    try:
        data = json.loads((run_dir / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, Mapping) or data.get("format") != FORMAT or data.get("version", 0) > VERSION:
        return None
    artifacts = data.get("artifacts")
    if not isinstance(artifacts, Mapping):
        return None
    try:
        return RunManifest(
            run_dir,
            status=str(data.get("status", "running")),
            stop_reason=data.get("stop_reason"),
            task=data.get("task"),
            epochs_completed=int(data.get("epochs_completed", 0)),
            global_step=int(data.get("global_step", 0)),
            updated=float(data.get("updated", 0.0)),
            artifacts={str(n): run_dir / str(p) for n, p in artifacts.items()},
        )
    except (TypeError, ValueError):
        return None


def runs_in(runs: str | os.PathLike[str]) -> list[RunManifest]:
    """The runs directly under ``runs`` that have a manifest, the most recently updated first."""
    found = []
    root = Path(runs)
    if not root.is_dir():
        return []
    for run_dir in root.iterdir():
        manifest = read_manifest(run_dir) if run_dir.is_dir() else None
        if manifest is not None:
            found.append(manifest)
    return sorted(found, key=lambda m: (m.updated, str(m.run_dir)), reverse=True)


def run_dir_of(path: str | os.PathLike[str]) -> Path | None:
    """The run directory that ``path`` (a checkpoint, a weights file) belongs to, or None.

    The nearest directory above it whose ``run.json`` lists it as an artifact; for a file no
    manifest lists (a run written before manifests, a rotated ``previous.pt``), the directory
    above its ``weights/`` folder, the built-in checkpoint plugin's layout. A resume or an
    export of that file then continues in, or writes into, the run it came from.
    """
    path = Path(path)
    target = path.resolve()
    for parent in path.parents:
        run = read_manifest(parent)
        if run is not None and any(p.resolve() == target for p in run.artifacts.values()):
            return parent
    if path.parent.name == "weights":
        return path.parent.parent
    return None


def _relative(path: Path, run_dir: Path) -> str:
    try:
        return Path(path).resolve().relative_to(run_dir.resolve()).as_posix()
    except ValueError:  # outside the run directory: kept as given, absolute
        return str(Path(path).resolve())


__all__ = ["MANIFEST_NAME", "STATUSES", "WEIGHTS_PREFERENCE", "RunManifest", "read_manifest", "runs_in"]
