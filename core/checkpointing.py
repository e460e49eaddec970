"""What a checkpoint holds, how it is written (atomically) and read (safely).

A checkpoint is a plain dict that loads with ``torch.load(weights_only=True)``::

    {
      "format": "trainhooks.checkpoint", "version": 1,
      "model": state_dict, "optimizer": state_dict | None, "lr_scheduler": state_dict | None,
      "epoch": int,             # the epoch this checkpoint was taken in (0-based)
      "epochs": int,            # the run's planned number of epochs
      "epoch_completed": bool,  # False for a checkpoint taken mid-epoch
      "global_step": int, "metrics": {name: float}, "history": [{name: float}, ...],
      "stop_reason": str | None, "stopped_by": str | None,
      "stop_resumable": bool,   # stopped by a budget (the timer): --resume may continue it
      "stop_deferred": None | {"value": str | True, "plugin": str},  # a stop asked for before
                                # min_epochs/min_steps: the resumed run still stops at the minimum
      "world_size": int, "seed": int | None,
      "rng": {"python": (version, tensor, gauss), "numpy": {...}, "torch": tensor, "cuda": [tensor],
              "loader": tensor | None},
      "progress": None | {"batches_done": int,       # mid-epoch checkpoints: where to resume
                           "losses": tensor, "sizes": [int],   # the epoch's losses so far
                           "rng_epoch_start": {... as "rng" ...},  # "python" None and no
                           # "numpy" when the data order draws only from torch (stock samplers)
                           "batch_size": int | None},
      "plugins": {plugin_name: plugin.state_dict()},
      ... plus whatever on_save_checkpoint hooks add
    }

Everything is a tensor, number, string, list, tuple or dict, so ``torch.load(weights_only=True)``
reads it without running any pickled code. Python's and NumPy's generator states are stored as
int64 tensors: a tuple of 625 ints costs a pickle call each, a tensor one; older checkpoints that
hold the tuple still load.

Writes go to a temporary file in the same directory, are flushed and fsynced, then renamed
over the target: a crash mid-write leaves the previous file intact. When the same checkpoint is
wanted under several names (``last.pt`` and ``best.pt`` of an improving epoch) it is serialised
once and the file copied (by the kernel, never through Python memory): each copy is its own file,
so rewriting one in place can never change the other, as a hard link would.

Writes behind training (:class:`CheckpointWriter`): the checkpoint is first *snapshotted* on the
training thread (:func:`snapshot`: every tensor copied to the CPU, every container copied), so
training can go on changing the weights; a background thread then serialises and writes the
snapshot with :func:`atomic_save`. At most one write is in flight: the next save waits for the
previous one. Whoever owns the writer (the Trainer) collects a finished write on its own thread:
only then does ``on_model_save`` fire (the file is durable), and a failed write's error is raised
there (at the next save, or when training ends), never lost. The thread is not a daemon, so a
normal process exit waits for it; a SIGKILL mid-write leaves only a temporary file, which the
next run removes: the file it was replacing is intact.

File modes honour the umask (``0o666 & ~umask``, like ``open()``), not ``mkstemp``'s 0600, so
teammates and a TensorBoard or web server running as another user can read the files.
"""

from __future__ import annotations

import copy
import os
import pickle
import re
import shutil
import tempfile
import threading
import warnings
import zipfile
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from pathlib import Path
from typing import Any

import torch

from trainhooks.errors import CheckpointError

FORMAT = "trainhooks.checkpoint"
VERSION = 1


def capture_rng(loader_generator: torch.Generator | None = None) -> dict[str, Any]:
    """The state of Python's, NumPy's and torch's (CPU and CUDA) global generators, plus the
    DataLoader sampler's own generator when it has one."""
    return RawRngState(loader_generator).as_state()


class RawRngState:
    """The random state as the generators hand it out, converted for a checkpoint only on demand.

    Every training epoch records the state it started with (a mid-epoch resume replays the
    epoch's data order from it), but only a mid-epoch checkpoint ever reads it: the raw states
    cost a third of converting them, per epoch, for nothing most of the time.
    ``host_generators=False`` leaves out Python's and NumPy's global generators (reading them
    takes about 12 and 65 us), for data whose order draws only from torch
    (:func:`trainhooks.data.order_uses_torch_rng_only`): the replay cannot depend on them.
    """

    __slots__ = ("cuda", "loader", "numpy", "python", "torch")

    def __init__(self, loader_generator: torch.Generator | None = None, *, host_generators: bool = True) -> None:
        self.torch = torch.get_rng_state()
        self.cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else []
        self.loader = loader_generator.get_state() if loader_generator is not None else None
        self.python: Any = None
        self.numpy: Any = None
        if host_generators:
            import random

            import numpy as np

            self.python = random.getstate()
            self.numpy = np.random.get_state(legacy=True)

    def as_state(self) -> dict[str, Any]:
        """The checkpoint's form (tensors and plain numbers), as :func:`restore_rng` takes it."""
        import numpy as np

        state: dict[str, Any] = {"python": None, "torch": self.torch, "cuda": self.cuda, "loader": self.loader}
        if self.python is not None:
            version, internal, gauss = self.python
            # via NumPy: half the time of torch.tensor(list of 625 ints)
            state["python"] = (version, torch.from_numpy(np.array(internal, dtype=np.int64)), gauss)
        if self.numpy is not None:
            name, keys, pos, has_gauss, cached = self.numpy
            state["numpy"] = {
                "name": str(name),
                "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
                "pos": int(pos),
                "has_gauss": int(has_gauss),
                "cached_gaussian": float(cached),
            }
        return state


def restore_rng(state: dict[str, Any], loader_generator: torch.Generator | None = None) -> None:
    """Put back what :func:`capture_rng` captured (missing parts are left alone)."""
    import random

    if state.get("python") is not None:
        version, internal, gauss = state["python"]
        if isinstance(internal, torch.Tensor):
            internal = internal.tolist()
        random.setstate((version, tuple(int(v) for v in internal), gauss))
    if state.get("torch") is not None:
        torch.set_rng_state(state["torch"])
    cuda = state.get("cuda") or []
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    if loader_generator is not None and state.get("loader") is not None:
        loader_generator.set_state(state["loader"])
    np_state = state.get("numpy")
    if np_state:
        import numpy as np

        np.random.set_state(
            (
                np_state["name"],
                np_state["keys"].numpy().astype("uint32"),
                np_state["pos"],
                np_state["has_gauss"],
                np_state["cached_gaussian"],
            )
        )


def atomic_save(
    obj: Any,
    path: str | os.PathLike[str],
    *,
    also: Iterable[str | os.PathLike[str]] = (),
    previous: str | os.PathLike[str] | None = None,
) -> Path:
    """``torch.save`` to ``path`` via temp file + fsync + rename; returns the path.

    :param also: more paths that get the same checkpoint: serialised once, then each is an
        atomic copy of ``path`` (temp file + fsync + rename too).
    :param previous: keep the file ``path`` held until now under this name (a hard link renamed
        into place, so it costs no copy): when the new ``path`` turns out damaged, the one before
        it is still there. Every step is a rename, so a crash between them leaves either name
        holding a whole checkpoint.
    :raises CheckpointError: the directory is not writable or the disk is full; the previous
        file at each path (if any) is untouched and no temp file is left behind.
    """
    path = Path(path)
    fd, tmp = _temp_beside(path)
    sink: _RecordingWriter | None = None
    try:
        with os.fdopen(fd, "wb") as fh:
            sink = _RecordingWriter(fh)
            torch.save(obj, sink)  # type: ignore[arg-type]  # any object with write() works
            fh.flush()
            os.fsync(fh.fileno())
        if previous is not None:
            _keep_previous(path, Path(previous))
        os.replace(tmp, path)
    except BaseException as exc:
        _discard(tmp)
        # torch reports a failed write (disk full, file too large) as an opaque RuntimeError:
        # name the operating system's error instead.
        cause = sink.error if sink is not None and sink.error is not None else exc
        if isinstance(exc, (OSError, RuntimeError)):
            raise _write_error(path, cause) from exc
        raise
    directories = {path.parent}
    try:
        for other in also:
            other = Path(other)
            if other != path:
                directories.add(other.parent)
                _atomic_copy(path, other)
    finally:
        for directory in directories:
            _fsync_dir(directory)
    return path


def _keep_previous(path: Path, previous: Path) -> None:
    """Make ``previous`` the file ``path`` is now (when there is one) without copying it."""
    if not path.is_file():
        return
    link = previous.with_name(f".{previous.name}.{os.getpid()}.link.tmp")
    _discard(str(link))
    try:
        os.link(path, link)
    except OSError:  # no hard links on this file system: copy instead
        _atomic_copy(path, previous)
        return
    os.replace(link, previous)


def file_mode() -> int:
    """The mode ``open()`` would give a new file: ``0o666`` less the process's umask."""
    return 0o666 & ~_umask()


def _umask() -> int:
    # Reading the umask without setting it: /proc on Linux; elsewhere set-and-restore (which is
    # not thread-safe, hence only as the fallback).
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def temp_file_beside(path: str | os.PathLike[str]) -> tuple[int, str]:
    """``mkstemp`` next to ``path`` (same file system, so renaming it over ``path`` is atomic),
    with the mode a plain ``open()`` would give (umask honoured) instead of mkstemp's 0600.

    For plugins writing their own files atomically (``metrics.csv``): returns ``(fd, name)``.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, file_mode())
    except OSError:  # a file system without permissions (some network mounts): keep mkstemp's
        pass
    return fd, tmp


def _temp_beside(path: Path) -> tuple[int, str]:
    """A new temporary file next to ``path`` (same file system, so the rename is atomic)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return temp_file_beside(path)
    except OSError as exc:
        raise CheckpointError(f"cannot write checkpoint {path}: {exc.strerror or exc}") from exc


def _atomic_copy(source: Path, target: Path) -> None:
    """Copy ``source`` to ``target`` atomically (temp file + fsync + rename)."""
    fd, tmp = _temp_beside(target)
    try:
        os.close(fd)
        shutil.copyfile(source, tmp)  # sendfile on Linux: the bytes never pass through Python
        fd = os.open(tmp, os.O_RDWR)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException as exc:
        _discard(tmp)
        if isinstance(exc, OSError):
            raise _write_error(target, exc) from exc
        raise


def _discard(tmp: str) -> None:
    try:
        os.unlink(tmp)
    except OSError:
        pass


def _write_error(path: Path, cause: BaseException) -> CheckpointError:
    reason = f"{cause.strerror} (errno {cause.errno})" if isinstance(cause, OSError) and cause.strerror else str(cause)
    return CheckpointError(f"cannot write checkpoint {path}: {reason}; the previous file is unchanged")


class _RecordingWriter:
    """A file wrapper remembering the OSError behind a failed write."""

    def __init__(self, fh: Any) -> None:
        self.fh = fh
        self.error: OSError | None = None

    def write(self, data: Any) -> int:
        try:
            return int(self.fh.write(data))
        except OSError as exc:
            self.error = exc
            raise

    def flush(self) -> None:
        self.fh.flush()


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


# ---------------------------------------------------------------------------- writes behind training
def snapshot(obj: Any, _memo: dict[int, Any] | None = None) -> Any:
    """A copy of a checkpoint that training can no longer change: tensors copied to the CPU
    (a tensor that appears twice, such as tied weights, is copied once and stays shared),
    dicts, lists and tuples copied, everything else (numbers, strings, None) as it is.

    This is the only part of a background write that runs on the training thread: a memcpy of
    the state, no serialisation, no file system.
    """
    memo: dict[int, Any] = {} if _memo is None else _memo
    if isinstance(obj, torch.Tensor):
        tensor = memo.get(id(obj))
        if tensor is None:
            tensor = obj.detach().to("cpu", copy=True)
            memo[id(obj)] = tensor
        return tensor
    if isinstance(obj, dict):
        # A state_dict is an OrderedDict whose ``_metadata`` (module versions) load_state_dict reads.
        copied: dict[Any, Any] = OrderedDict() if isinstance(obj, OrderedDict) else {}
        for key, value in obj.items():
            copied[key] = snapshot(value, memo)
        metadata = getattr(obj, "_metadata", None)
        if metadata is not None:
            copied._metadata = copy.deepcopy(metadata)  # type: ignore[attr-defined]
        return copied
    if isinstance(obj, list):
        return [snapshot(v, memo) for v in obj]
    if isinstance(obj, tuple):
        items = [snapshot(v, memo) for v in obj]
        return type(obj)(*items) if hasattr(obj, "_fields") else tuple(items)
    return obj


@dataclass
class WriteJob:
    """One checkpoint on its way to disk."""

    path: Path
    also: list[Path] = dataclass_field(default_factory=list)
    previous: Path | None = None
    global_step: int | None = None
    error: BaseException | None = None
    done: threading.Event = dataclass_field(default_factory=threading.Event)

    @property
    def files(self) -> list[Path]:
        """Every file the write produces, ``path`` first."""
        return [self.path, *(p for p in self.also if p != self.path)]


class CheckpointWriter:
    """Serialises and writes checkpoints on a background thread, one at a time.

    The owner calls :meth:`submit` with a :func:`snapshot` (never the live state), and
    :meth:`collect` on its own thread to learn that a write is durable (it then fires
    ``on_model_save``) or failed (the error is raised there, once). :meth:`wait` blocks until
    nothing is in flight, without raising: what signal handlers, the emergency checkpoint and a
    resume call before they touch checkpoint files.
    """

    def __init__(self) -> None:
        self._job: WriteJob | None = None
        self._thread: threading.Thread | None = None
        # step of the last durable write to each path: "does last.pt already hold this step?"
        self.durable_steps: dict[Path, int] = {}

    @property
    def pending(self) -> bool:
        """A write is in flight, or finished but not yet collected."""
        return self._job is not None

    def submit(
        self,
        checkpoint: dict[str, Any],
        path: str | os.PathLike[str],
        *,
        also: Iterable[str | os.PathLike[str]] = (),
        previous: str | os.PathLike[str] | None = None,
        global_step: int | None = None,
    ) -> WriteJob:
        """Start writing ``checkpoint`` (already a snapshot) to ``path`` (and ``also``).

        :raises RuntimeError: a previous write was not collected first (the owner's bug: at most
            one write is in flight, and no outcome may go unreported).
        """
        if self._job is not None:
            raise RuntimeError("CheckpointWriter.submit: collect() the previous write first")
        job = WriteJob(
            Path(path), [Path(p) for p in also], Path(previous) if previous is not None else None, global_step
        )
        # Not a daemon: a normal interpreter exit waits for the write to finish.
        thread = threading.Thread(target=self._write, args=(checkpoint, job), name="trainhooks-checkpoint-writer")
        self._job, self._thread = job, thread
        thread.start()
        return job

    @staticmethod
    def _write(checkpoint: dict[str, Any], job: WriteJob) -> None:
        try:
            atomic_save(checkpoint, job.path, also=job.also, previous=job.previous)
        except BaseException as exc:  # reported on the owner's thread by collect()
            job.error = exc
        finally:
            job.done.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the write in flight (if any) has finished; True when none is left running.
        Raises nothing: the outcome is reported by :meth:`collect`."""
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            return not thread.is_alive()
        return True

    def collect(self, on_durable: Callable[[Path], None] | None = None) -> WriteJob | None:
        """Wait for the write in flight and report it: ``on_durable(file)`` for each file it
        wrote, or its error raised (a :class:`CheckpointError` naming the file). Each write is
        reported once; None when there was nothing to report."""
        job = self._job
        if job is None:
            return None
        self.wait()
        self._job, self._thread = None, None
        if job.error is not None:
            raise job.error
        for written in job.files:
            if job.global_step is not None:
                self.durable_steps[written] = job.global_step
        if on_durable is not None:
            for written in job.files:
                on_durable(written)
        return job


#: What ``resume="auto"`` considers in ``save_dir/weights``, in this order when equally new.
RESUME_CANDIDATES = ("last.pt", "emergency.pt", "previous.pt")


@dataclass
class ResumeChoice:
    """What ``resume="auto"`` found: the newest good checkpoint (or None: start fresh), and
    the newer files it passed over, each with why."""

    path: Path | None
    checkpoint: dict[str, Any] | None = None
    skipped: list[tuple[Path, str]] = dataclass_field(default_factory=list)


def newest_good_checkpoint(weights_dir: str | os.PathLike[str]) -> ResumeChoice:
    """The newest checkpoint in ``weights_dir`` that loads (``last.pt``, ``emergency.pt`` or
    ``previous.pt``, newest first by modification time, ``last.pt`` first among equals).

    A damaged ``last.pt`` is passed over for the one before it (``previous.pt``, which the
    checkpoint plugin keeps): the choice says which files were skipped and why. None when
    there is no good checkpoint at all (a run killed before its first save starts fresh).
    """
    weights = Path(weights_dir)
    found: list[tuple[float, int, Path]] = []
    for rank, name in enumerate(RESUME_CANDIDATES):
        candidate = weights / name
        try:
            found.append((-candidate.stat().st_mtime, rank, candidate))
        except OSError:
            continue
    choice = ResumeChoice(None)
    for _, _, candidate in sorted(found):
        try:
            checkpoint = load_checkpoint(candidate)
        except CheckpointError as exc:
            choice.skipped.append((candidate, str(exc)))
            continue
        choice.path, choice.checkpoint = candidate, checkpoint
        break
    return choice


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a checkpoint safely (``weights_only=True``) onto the CPU.

    :raises CheckpointError: missing, truncated, corrupt, unsafe (needs pickled code) or not a
        trainhooks checkpoint; the message names the file.
    """
    path = Path(path)
    if path.is_dir():
        from trainhooks.manifest import read_manifest

        run = read_manifest(path)
        chosen = run.weights(("last.pt", "emergency.pt")) if run is not None else None
        example = f"{chosen[1]} (this run's {chosen[0]})" if chosen else path / "weights" / "last.pt"
        raise CheckpointError(f"checkpoint {path} is a directory; pass a checkpoint file, such as {example}")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    with path.open("rb") as fh:
        head = fh.read(4)
    if head != b"PK\x03\x04" and not head.startswith(b"\x80"):
        raise CheckpointError(f"checkpoint {path} is corrupt or truncated (not a torch.save file)")
    if head == b"PK\x03\x04":
        _verify_crcs(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # torch's note on old pickle protocols
            data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        culprit = re.search(r"GLOBAL ([\w.]+)", text)
        if culprit is None and "weights_only" not in text.lower() and "global" not in text.lower():
            raise CheckpointError(
                f"checkpoint {path} is corrupt or truncated (UnpicklingError: {_first_line(text)})"
            ) from exc
        what = f" (it holds {culprit.group(1)})" if culprit else ""
        raise CheckpointError(
            f"checkpoint {path} cannot be loaded safely (weights_only=True): it contains objects other than "
            f"tensors and plain data{what}; load it with weights_only=False only if you trust its source"
        ) from exc
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError, KeyError) as exc:
        raise CheckpointError(
            f"checkpoint {path} is corrupt or truncated ({type(exc).__name__}: {_first_line(str(exc))})"
        ) from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a trainhooks checkpoint (no 'format': {FORMAT!r} entry)")
    if data.get("version", 0) > VERSION:
        raise CheckpointError(
            f"checkpoint {path} has version {data.get('version')}; this trainhooks reads up to {VERSION}"
        )
    validate_checkpoint(data, path)
    return data


def _verify_crcs(path: Path) -> None:
    """Check every entry of a zip-format checkpoint against its CRC-32.

    torch.load does not: damaged tensor bytes (a bad disk, a partial copy) would load as
    garbage weights and train on silently. Reading the file once costs about what loading it
    does. Entries stored without a CRC (``torch.utils.serialization.config.save.compute_crc32 =
    False`` writes 0) cannot be checked and are skipped.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if info.CRC == 0 and info.file_size:
                    continue
                try:
                    with archive.open(info) as entry:
                        while entry.read(1 << 22):
                            pass
                except zipfile.BadZipFile as exc:
                    if "CRC" not in str(exc):
                        raise
                    raise CheckpointError(
                        f"checkpoint {path} is corrupt: its entry {info.filename!r} fails its CRC check (the file "
                        "was damaged after it was written); use an earlier checkpoint"
                    ) from exc
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, zlib.error) as exc:
        raise CheckpointError(
            f"checkpoint {path} is corrupt or truncated ({type(exc).__name__}: {_first_line(str(exc))})"
        ) from exc


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line[:200]


def load_weights(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The model ``state_dict`` of a trainhooks checkpoint, or of a bare ``state_dict`` file.

    :raises CheckpointError: as :func:`load_checkpoint`, and for weights holding NaN.
    """
    path = Path(path)
    if path.is_dir():
        from trainhooks.manifest import read_manifest

        run = read_manifest(path)
        chosen = run.weights() if run is not None else None
        example = f", such as {chosen[1]} (this run's {chosen[0]})" if chosen else " (a run's weights/best.pt)"
        raise CheckpointError(f"weights {path} is a directory, not a file; pass a checkpoint file{example}")
    if not path.is_file():
        raise CheckpointError(f"weights file {path} does not exist")
    try:
        state: dict[str, Any] = load_checkpoint(path)["model"]
    except CheckpointError as exc:
        if "not a trainhooks checkpoint" not in str(exc):
            raise
        data = torch.load(path, map_location="cpu", weights_only=True)
        if not (isinstance(data, dict) and all(isinstance(v, torch.Tensor) for v in data.values())):
            raise CheckpointError(f"{path} holds neither a trainhooks checkpoint nor a model state_dict") from None
        state = data
    check_finite_weights(state, path)
    return state


# ---------------------------------------------------------------------- schema (read side)
def validate_checkpoint(ckpt: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """Check a loaded checkpoint's fields against the schema above.

    A file can be a well-formed zip with ``format: trainhooks.checkpoint`` and still be wrong
    inside (edited by hand, written by a buggy script, from another tool): without this check
    ``model`` as a list or ``epoch`` as ``"abc"`` surfaces later as a traceback far from the
    file, and some wrong values (``epoch: -5``) would even be trained on silently. Fields that
    older checkpoints lack are allowed to be missing; a field that is present must be right.

    :raises CheckpointError: one message naming the file and the first wrong field.
    """
    check = _FieldCheck(path)
    check.model(ckpt)
    check.scalars(ckpt)
    check.metric_fields(ckpt)
    if ckpt.get("rng") is not None:
        check.rng("rng", ckpt["rng"])
    if ckpt.get("progress") is not None:
        check.progress(ckpt["progress"])
    check.plugins(ckpt)


class _FieldCheck:
    """The checks of :func:`validate_checkpoint`: each raises one error naming the field."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = path

    # ---------------------------------------------------------------- value checks
    def bad(self, field: str, expected: str, value: Any) -> CheckpointError:
        if isinstance(value, torch.Tensor):
            got = f"a {str(value.dtype).replace('torch.', '')} tensor of shape {tuple(value.shape)}"
        else:
            shown = repr(value)
            got = f"{type(value).__name__} {shown if len(shown) <= 60 else shown[:57] + '...'}"
        return CheckpointError(f"checkpoint {self.path} is malformed: field '{field}' must be {expected}, got {got}")

    def missing(self, field: str, what: str, key: str) -> CheckpointError:
        return CheckpointError(f"checkpoint {self.path} is malformed: field '{field}'{what} has no {key!r} key")

    def mapping(self, field: str, value: Any, *, optional: bool = False) -> None:
        if value is None and optional:
            return
        if not isinstance(value, dict):
            raise self.bad(field, "a dict" + (" or None" if optional else ""), value)

    def count(self, field: str, value: Any, *, minimum: int = 0, optional: bool = False) -> None:
        if value is None and optional:
            return
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.bad(field, f"an integer >= {minimum}" + (" or None" if optional else ""), value)
        if value < minimum:
            raise self.bad(field, f"an integer >= {minimum}", value)

    def text(self, field: str, value: Any) -> None:
        if value is not None and not isinstance(value, str):
            raise self.bad(field, "a string or None", value)

    def flag(self, field: str, value: Any) -> None:
        if not isinstance(value, bool):
            raise self.bad(field, "True or False", value)

    def metric_dict(self, field: str, value: Any) -> None:
        if not isinstance(value, dict):
            raise self.bad(field, "a dict of metric name -> number", value)
        for name, number in value.items():
            if not isinstance(name, str) or isinstance(number, bool) or not isinstance(number, (int, float)):
                raise self.bad(f"{field}.{name}", "a number under a string name", number)

    def tensor(self, field: str, value: Any, dtypes: tuple[torch.dtype, ...], *, optional: bool = False) -> None:
        if value is None and optional:
            return
        names = " or ".join(str(d).replace("torch.", "") for d in dtypes)
        expected = f"{'an' if names.startswith('int') else 'a'} {names} tensor"
        if not isinstance(value, torch.Tensor) or value.dtype not in dtypes:
            raise self.bad(field, expected, value)

    # ---------------------------------------------------------------- the checkpoint's fields
    def model(self, ckpt: dict[str, Any]) -> None:
        if "model" not in ckpt:
            raise CheckpointError(f"checkpoint {self.path} is malformed: it has no 'model' field")
        model = ckpt["model"]
        if not isinstance(model, dict):
            raise self.bad("model", "a state_dict (a dict of parameter name -> tensor)", model)
        for key in model:  # values: tensors, or a module's extra state (any plain data)
            if not isinstance(key, str):
                raise self.bad("model", "a state_dict with string keys", key)
        self.mapping("optimizer", ckpt.get("optimizer"), optional=True)
        self.mapping("lr_scheduler", ckpt.get("lr_scheduler"), optional=True)

    def scalars(self, ckpt: dict[str, Any]) -> None:
        for field in ("epoch", "global_step"):
            if field in ckpt:
                self.count(field, ckpt[field])
        if "epochs" in ckpt:
            self.count("epochs", ckpt["epochs"], minimum=1, optional=True)
        if "world_size" in ckpt:
            self.count("world_size", ckpt["world_size"], minimum=1)
        if "seed" in ckpt:
            if isinstance(ckpt["seed"], bool) or not isinstance(ckpt["seed"], (int, type(None))):
                raise self.bad("seed", "an integer or None", ckpt["seed"])
        for field in ("epoch_completed", "stop_resumable"):
            if field in ckpt:
                self.flag(field, ckpt[field])
        for field in ("stop_reason", "stopped_by"):
            self.text(field, ckpt.get(field))
        deferred = ckpt.get("stop_deferred")
        if deferred is not None:
            expected = "None or a dict {'value': a str or True, 'plugin': a str}"
            if not isinstance(deferred, dict):
                raise self.bad("stop_deferred", expected, deferred)
            value, plugin = deferred.get("value"), deferred.get("plugin")
            if not (value is True or (isinstance(value, str) and value)) or not isinstance(plugin, str):
                raise self.bad("stop_deferred", expected, deferred)

    def metric_fields(self, ckpt: dict[str, Any]) -> None:
        if "metrics" in ckpt:
            self.metric_dict("metrics", ckpt["metrics"])
        if "history" in ckpt:
            history = ckpt["history"]
            if not isinstance(history, list):
                raise self.bad("history", "a list of per-epoch metric dicts", history)
            for i, row in enumerate(history):
                self.metric_dict(f"history[{i}]", row)

    def rng(self, field: str, value: Any) -> None:
        self.mapping(field, value)
        if value.get("python") is not None:
            state = value["python"]
            if not isinstance(state, (tuple, list)) or len(state) != 3:
                raise self.bad(f"{field}.python", "a (version, state, gauss) tuple", state)
            if isinstance(state[1], torch.Tensor):
                self.tensor(f"{field}.python[1]", state[1], (torch.int64,))
            elif not isinstance(state[1], (tuple, list)):
                raise self.bad(f"{field}.python[1]", "an int64 tensor", state[1])
        self.tensor(f"{field}.torch", value.get("torch"), (torch.uint8,), optional=True)
        self.tensor(f"{field}.loader", value.get("loader"), (torch.uint8,), optional=True)
        cuda = value.get("cuda")
        if cuda is not None:
            if not isinstance(cuda, (list, tuple)):
                raise self.bad(f"{field}.cuda", "a list of uint8 tensors", cuda)
            for i, state in enumerate(cuda):
                self.tensor(f"{field}.cuda[{i}]", state, (torch.uint8,))
        np_state = value.get("numpy")
        if np_state is not None:
            self.mapping(f"{field}.numpy", np_state)
            for key in ("name", "keys", "pos", "has_gauss", "cached_gaussian"):
                if key not in np_state:
                    raise self.missing(f"{field}.numpy", "", key)
            self.tensor(f"{field}.numpy.keys", np_state["keys"], (torch.int64,))
            self.count(f"{field}.numpy.pos", np_state["pos"])

    def progress(self, progress: Any) -> None:
        self.mapping("progress", progress)
        for key in ("batches_done", "losses", "sizes", "rng_epoch_start"):
            if key not in progress:
                raise self.missing("progress", " (a mid-epoch position)", key)
        self.count("progress.batches_done", progress["batches_done"])
        floats = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
        self.tensor("progress.losses", progress["losses"], floats)
        sizes = progress["sizes"]
        if not isinstance(sizes, (list, tuple)) or any(isinstance(n, bool) or not isinstance(n, int) for n in sizes):
            raise self.bad("progress.sizes", "a list of batch sizes", sizes)
        if len(sizes) != progress["losses"].numel():
            raise CheckpointError(
                f"checkpoint {self.path} is malformed: field 'progress' holds {progress['losses'].numel()} losses "
                f"but {len(sizes)} batch sizes"
            )
        self.rng("progress.rng_epoch_start", progress["rng_epoch_start"])
        self.count("progress.batch_size", progress.get("batch_size"), minimum=1, optional=True)

    def plugins(self, ckpt: dict[str, Any]) -> None:
        if "plugins" not in ckpt:
            return
        plugins = ckpt["plugins"]
        if not isinstance(plugins, dict):
            raise self.bad("plugins", "a dict of plugin name -> state dict", plugins)
        for name, state in plugins.items():
            if not isinstance(state, dict):
                raise self.bad(f"plugins.{name}", "a dict (what the plugin's state_dict() returned)", state)


def check_finite_weights(state: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """Refuse model weights holding NaN: training from them or evaluating them only yields NaN.

    ``inf`` is left alone (attention masks legitimately hold ``-inf``). One pass over the
    weights, once per load.

    :raises CheckpointError: names the file, the first tensor with NaN and how many have them.
    """
    broken = [
        key
        for key, value in state.items()
        if isinstance(value, torch.Tensor) and value.is_floating_point() and bool(torch.isnan(value).any())
    ]
    if broken:
        others = f" (and {len(broken) - 1} more of {len(state)} tensors)" if len(broken) > 1 else ""
        raise CheckpointError(
            f"checkpoint {path}: model weight {broken[0]!r}{others} holds NaN values; these weights cannot be "
            "trained on or evaluated; use an earlier checkpoint"
        )


def load_model_state(model: torch.nn.Module, state: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """``model.load_state_dict(state)``, or a CheckpointError listing the first differences.

    torch's own message starts with ``Error(s) in loading state_dict for Sequential:`` and puts
    the useful part (which keys are missing or unexpected, which shapes differ) on the lines
    after it, which a one-line error would cut off.
    """
    try:
        model.load_state_dict(state)
    except (RuntimeError, ValueError, KeyError) as exc:
        raise CheckpointError(
            f"checkpoint {path} does not fit this model ({type(model).__name__}): {describe_mismatch(model, state)}"
        ) from exc


def describe_mismatch(model: torch.nn.Module, state: dict[str, Any], limit: int = 3) -> str:
    """The first few differences between ``model``'s state_dict and ``state``, on one line."""
    expected = model.state_dict()
    parts: list[str] = []

    def listing(what: str, keys: list[str]) -> None:
        if keys:
            more = f" and {len(keys) - limit} more" if len(keys) > limit else ""
            parts.append(f"{what} {', '.join(repr(k) for k in keys[:limit])}{more}")

    shapes = [
        f"{k!r} {tuple(state[k].shape)} vs the model's {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and isinstance(state[k], torch.Tensor) and tuple(state[k].shape) != tuple(v.shape)
    ]
    if shapes:
        more = f" and {len(shapes) - limit} more" if len(shapes) > limit else ""
        parts.append(f"shape of {'; '.join(shapes[:limit])}{more}")
    listing("missing", [k for k in expected if k not in state])
    listing("unexpected", [k for k in state if k not in expected])
    return "; ".join(parts) or "the model refused its state_dict"


def restore_plugin_states(plugin_manager: Any, checkpoint: dict[str, Any], path: Any) -> None:
    """Give each registered plugin instance its own state back, by registration name.

    State saved for a plugin that is not registered now (renamed, not enabled, one instance
    fewer) is not silently dropped: a warning names it (Lightning and HF warn too).
    """
    orphans = []
    for name, state in (checkpoint.get("plugins") or {}).items():
        plugin = plugin_manager.get_plugin(name)
        if plugin is None:
            orphans.append(name)
            continue
        loader = getattr(plugin, "load_state_dict", None)
        if callable(loader):
            try:
                loader(state)
            except Exception as exc:  # a state this plugin version cannot read
                raise CheckpointError(
                    f"checkpoint {path}: plugin {name!r} cannot restore its state from field 'plugins.{name}': "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
    if orphans:
        active = ", ".join(r.name for r in plugin_manager.active()) or "none"
        warnings.warn(
            f"checkpoint {path} holds state for plugin(s) {', '.join(repr(n) for n in orphans)}, which "
            f"are not registered in this trainer (registered: {active}); their state is not restored. "
            "Enable them (-p NAME, plugins=[...]) or give instances the same name= as in the saved run",
            UserWarning,
            stacklevel=3,
        )
