"""Distributed training on ``torch.distributed``: process group, DDP, sharded data, agreed decisions.

Launch with PyTorch's own launcher; every worker runs the same command and discovers the same
entry-point plugins itself (nothing registered in a parent process has to survive a spawn)::

    torchrun --nproc_per_node 4 -m trainhooks fit ...
    torchrun --nnodes 2 --nproc_per_node 4 --rdzv_backend c10d --rdzv_endpoint host:29500 -m trainhooks fit ...

What :meth:`Trainer.fit <trainhooks.Trainer.fit>` does there, through :func:`start` and the
:class:`DistributedRun` it returns:

* **process group** from torchrun's environment (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``...):
  ``gloo`` on the CPU, ``nccl`` on CUDA with one device per local rank (``cuda:LOCAL_RANK``), a
  timeout on every collective (``dist_timeout``), torn down when ``fit`` ends, also on error. A
  group the caller initialised is used as it is and left alone.
* **model** wrapped in ``DistributedDataParallel`` for the duration of ``fit`` (``trainer.model``
  is the wrapper then; ``trainer.unwrapped_model`` is always the plain model, and what
  checkpoints hold). A model with ``training_step`` is called *through* the wrapper, since DDP
  synchronises gradients only when its own forward ran.
* **data** sharded: the training DataLoader is rebuilt with a ``DistributedSampler`` (shuffled if
  the original shuffled, seeded with the trainer's seed, ``set_epoch`` every epoch), the
  validation DataLoader with :class:`ShardSampler` (each sample on exactly one rank, no padding,
  so reduced validation metrics are exact).
* **metrics** reduced once per epoch, never per step: ``train/loss`` and ``val/*`` are means
  weighted by sample count over all ranks; any other metric (``lr``, what plugins logged) is made
  identical everywhere before ``on_fit_epoch_end``, so every rank sees the same numbers.
* **stops agreed**: after every batch (or every ``dist_sync_every`` batches) and every epoch one
  small all-reduce tells every rank whether any rank's ``should_stop`` asked; if one did, the
  lowest asking rank's answer is broadcast, so all ranks stop at the same step with the same
  reason. A collective that fails or times out becomes a :class:`~trainhooks.DistributedError`
  naming this rank and where, instead of a hang.

In a single process none of this runs: :func:`start` returns None and the Trainer's loop is the
plain one (no collectives, no extra device synchronisation).
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import math
import os
import socket
import time
import uuid
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, IterableDataset, RandomSampler, Sampler, SequentialSampler

from trainhooks.errors import ConfigError, DistributedError, TrainhooksError

if TYPE_CHECKING:
    from trainhooks.trainer import Trainer

log = logging.getLogger("trainhooks")

DEFAULT_TIMEOUT_S = 300.0
"""Seconds a collective may wait for the other ranks before it fails.

Not torch's 1800 s: a hang should cost minutes, not half an hour of every GPU in the job. Five
minutes is far above what one rank legitimately spends alone between two agreements (a
validation shard, rank 0 writing a checkpoint of a few GB) and still short enough to notice;
raise it with ``--dist-timeout`` for longer solo work (a huge checkpoint on a slow filesystem)."""

FAILURE_KEY = "trainhooks/failure"
"""Key in the process group's store under which the first rank that fails on its own (a bug, an
out-of-memory error, a failing plugin) leaves one line, so the ranks that then lose contact with
it can name it. Under torchrun the store lives in the agent and outlives a dead worker."""

StopAnswer = tuple[object, str]
"""A ``should_stop`` answer as the dispatcher returns it: (value, plugin name)."""


# ---------------------------------------------------------------------- environment and devices
def env_int(name: str, default: int) -> int:
    """An integer environment variable set by torchrun (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``).

    :raises ConfigError: the variable is set but is not a non-negative integer.
    """
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"environment variable {name}={raw!r} is not an integer") from None
    if value < 0:
        raise ConfigError(f"environment variable {name}={raw!r} must not be negative")
    return value


def local_device(device: torch.device, local_rank: int, world_size: int) -> torch.device:
    """``cuda`` means ``cuda:LOCAL_RANK`` when several processes share a machine.

    An explicit index (``cuda:1``) is kept: the caller chose it.

    :raises ConfigError: LOCAL_RANK names a GPU this process cannot see.
    """
    if world_size <= 1 or device.type != "cuda" or device.index is not None:
        return device
    count = torch.cuda.device_count()
    if local_rank >= count:
        raise ConfigError(
            f"LOCAL_RANK={local_rank} but only {count} CUDA device(s) are visible: start at most "
            f"{count} processes per node (torchrun --nproc_per_node {count}) or check CUDA_VISIBLE_DEVICES"
        )
    return torch.device("cuda", local_rank)


def backend_for(device: torch.device) -> str:
    """``nccl`` for CUDA devices, ``gloo`` for everything else."""
    return "nccl" if device.type == "cuda" else "gloo"


def init_from_env(device: torch.device, timeout_s: float) -> str:
    """Initialise the default process group from torchrun's environment; returns the backend.

    On CUDA the process is bound to ``device`` first (``torch.cuda.set_device``) and the group is
    created eagerly on it, so NCCL never guesses a device. Under torchrun's shared store (see
    :func:`round_store`) the group lives in a namespace of its own restart round.

    :raises DistributedError: the environment is incomplete (not started by torchrun) or the
        rendezvous failed.
    """
    world_size = env_int("WORLD_SIZE", 1)
    missing = [name for name in ("MASTER_ADDR", "MASTER_PORT") if not os.environ.get(name)]
    if missing:
        raise DistributedError(
            f"WORLD_SIZE={world_size} is set but {' and '.join(missing)} not: start distributed runs with "
            "torchrun (e.g. 'torchrun --nproc_per_node 2 -m trainhooks fit'), which sets them"
        )
    backend = backend_for(device)
    rank = env_int("RANK", 0)
    timeout = datetime.timedelta(seconds=timeout_s)
    kwargs: dict[str, Any] = {"timeout": timeout}
    if device.type == "cuda":
        torch.cuda.set_device(device)
        kwargs["device_id"] = device
    where = f"{os.environ.get('MASTER_ADDR')}:{os.environ.get('MASTER_PORT')}"
    try:
        if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True":
            agent_store = dist.TCPStore(
                os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), world_size, is_master=False, timeout=timeout
            )
            kwargs.update(store=round_store(agent_store, rank, world_size, timeout_s), rank=rank, world_size=world_size)
        dist.init_process_group(backend, **kwargs)
    except (RuntimeError, ValueError) as exc:
        raise DistributedError(
            f"rank {rank} of {world_size}: cannot initialise the {backend} process group ({where}): {_first_line(exc)}"
        ) from exc
    return backend


ROUND_KEY = "trainhooks/round"
"""Key in torchrun's agent store under which rank 0 of each restart round leaves its round's token."""


def round_store(store: Any, rank: int, world_size: int, timeout_s: float) -> Any:
    """A namespace of ``store`` that only the processes of this restart round share.

    torchrun's agent keeps one TCPStore for every restart of the group
    (``TORCHELASTIC_USE_AGENT_STORE=True``, torch's default since 2.4), and a process group's keys
    have the same names in every round. After a restart (``--max-restarts``) the previous round's
    keys are still there: gloo's listening addresses of workers that are dead now. A restarted
    rank that reads a peer's address before the peer has written its new one connects to a closed
    port until the timeout ("Gloo connectFullMesh failed ... Connection refused"), a race that
    load decides (torch issue 135712). ``TORCHELASTIC_RESTART_COUNT`` cannot name the round: each
    agent counts only its own restarts, so on several machines the counts differ.

    So rank 0 draws a fresh token for the round and publishes it; every other rank joins the token
    it reads with a nonce of its own and takes it only when rank 0 has acknowledged that very
    nonce under that token. A previous round's token (still in the store until rank 0 overwrites
    it) carries no acknowledgement of this process's nonce, so a rank that read it keeps watching
    for the new one. Store operations only: no sleep decides correctness, and each wait is bounded
    by ``timeout_s``.

    :raises DistributedError: a rank did not join, or no token arrived, within ``timeout_s``.
    """
    deadline = time.monotonic() + timeout_s
    if rank == 0:
        token = uuid.uuid4().hex
        store.set(ROUND_KEY, token)
        for peer in range(1, world_size):
            joined = f"{ROUND_KEY}/{token}/join/{peer}"
            try:
                store.wait([joined], datetime.timedelta(seconds=max(deadline - time.monotonic(), 0.001)))
            except RuntimeError as exc:  # the store's timeout (DistStoreError is a RuntimeError)
                raise DistributedError(
                    f"rank 0 of {world_size}: rank {peer} did not join the process group within "
                    f"dist_timeout ({timeout_s:g}s): {_first_line(exc)}"
                ) from exc
            store.set(f"{ROUND_KEY}/{token}/ack/{peer}", store.get(joined))
        return dist.PrefixStore(f"{ROUND_KEY}/{token}/pg/", store)
    nonce = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex}".encode()
    seen: bytes = b""
    pause = 0.001
    while True:
        if store.check([ROUND_KEY]):
            current: bytes = store.get(ROUND_KEY)
            if current != seen:  # a first token, or rank 0 of this round replaced a stale one
                seen, pause = current, 0.001
                store.set(f"{ROUND_KEY}/{seen.decode()}/join/{rank}", nonce)
            ack = f"{ROUND_KEY}/{seen.decode()}/ack/{rank}"
            if store.check([ack]) and store.get(ack) == nonce:
                return dist.PrefixStore(f"{ROUND_KEY}/{seen.decode()}/pg/", store)
        if time.monotonic() > deadline:
            raise DistributedError(
                f"rank {rank} of {world_size}: rank 0 did not open the process group within "
                f"dist_timeout ({timeout_s:g}s)"
            )
        time.sleep(pause)  # polling the store: how fast this rank notices, not whether
        pause = min(pause * 2, 0.05)


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside a ``DistributedDataParallel`` / ``DataParallel`` wrapper, else ``model``.

    Only real wrappers are unwrapped: a user's model may well have a submodule called ``module``.
    """
    if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
        return model.module
    return model


def call_through(wrapper: nn.Module, module: nn.Module, method: Callable[..., Any]) -> Callable[..., Any]:
    """``method`` (e.g. ``module.training_step``) called via ``wrapper``'s forward.

    DDP prepares its gradient all-reduce in its own ``forward``; calling ``module.training_step``
    directly would skip it and the ranks' weights would silently drift apart. So ``module.forward``
    is pointed at ``method`` for exactly one call of ``wrapper`` (the pattern Lightning calls
    forward redirection) and restored before ``method`` even runs.
    """
    own = module.__dict__

    def call(*args: Any, **kwargs: Any) -> Any:
        had_own = "forward" in own
        saved = own.get("forward")

        def restore() -> None:
            if had_own:
                own["forward"] = saved
            else:
                own.pop("forward", None)

        def redirected(*a: Any, **k: Any) -> Any:
            restore()
            return method(*a, **k)

        own["forward"] = redirected
        try:
            return wrapper(*args, **kwargs)
        finally:
            restore()

    return call


# ---------------------------------------------------------------------- samplers and loaders
class ShardSampler(Sampler[int]):
    """Indices ``rank, rank + world_size, ...`` of a dataset: every sample on exactly one rank.

    For evaluation. ``DistributedSampler`` pads the last rank's shard with repeated samples so
    all ranks take the same number of steps (which DDP training needs); validation does no
    collective per batch, so its shards may differ by one sample and the reduced metrics are then
    exactly those of the whole dataset.
    """

    def __init__(self, length: int, rank: int, world_size: int) -> None:
        self.length, self.rank, self.world_size = length, rank, world_size

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.length, self.world_size))

    def __len__(self) -> int:
        return len(range(self.rank, self.length, self.world_size))


_LOADER_ARGS = (
    "num_workers",
    "collate_fn",
    "pin_memory",
    "drop_last",
    "timeout",
    "worker_init_fn",
    "multiprocessing_context",
    "generator",
    "persistent_workers",
    "pin_memory_device",
    "in_order",
)


def rebuild_loader(loader: DataLoader[Any], sampler: Sampler[int]) -> DataLoader[Any]:
    """A DataLoader like ``loader`` (same dataset, batch size, collate, workers...) drawing from ``sampler``."""
    import inspect

    accepted = inspect.signature(DataLoader.__init__).parameters
    kwargs: dict[str, Any] = {name: getattr(loader, name) for name in _LOADER_ARGS if name in accepted}
    if loader.num_workers > 0:
        kwargs["prefetch_factor"] = loader.prefetch_factor
    return DataLoader(loader.dataset, batch_size=loader.batch_size, sampler=sampler, **kwargs)


def shard_loader(data: Any, *, rank: int, world_size: int, seed: int, train: bool) -> tuple[Any, Any, str | None]:
    """Shard ``data`` across ranks; returns (loader, sampler to ``set_epoch`` or None, warning or None).

    Only plain DataLoaders over map-style datasets with a random or sequential sampler are
    rebuilt; one that already has a ``DistributedSampler`` is kept (and gets ``set_epoch``).
    Anything else is returned unchanged with a warning: every rank then iterates all of it.
    """
    if not isinstance(data, DataLoader):
        return data, None, f"{type(data).__name__} is not a DataLoader: every rank iterates all of it"
    if isinstance(data.sampler, DistributedSampler):
        return data, data.sampler, None
    if isinstance(data.dataset, IterableDataset):
        return data, None, "an IterableDataset cannot be sharded by a sampler: shard it by rank yourself"
    if type(data) is not DataLoader or data.batch_size is None:
        what = f"a {type(data).__name__} subclass" if type(data) is not DataLoader else "a custom batch_sampler"
        return data, None, f"a DataLoader with {what} is not rebuilt: give it a DistributedSampler yourself"
    if not isinstance(data.sampler, (RandomSampler, SequentialSampler)):
        return (
            data,
            None,
            f"a DataLoader with a {type(data.sampler).__name__} is not rebuilt: make that sampler rank-aware",
        )
    if train:
        shuffle = isinstance(data.sampler, RandomSampler)
        sampler: Any = DistributedSampler(
            data.dataset, num_replicas=world_size, rank=rank, shuffle=shuffle, seed=seed, drop_last=False
        )
        return rebuild_loader(data, sampler), sampler, None
    return rebuild_loader(data, ShardSampler(len(data.dataset), rank, world_size)), None, None  # type: ignore[arg-type]


# ---------------------------------------------------------------------- pure reductions
def weighted_means(parts: Sequence[tuple[dict[str, float], int]]) -> dict[str, float]:
    """Per-key mean of all ranks' samples from each rank's (sums of value * batch size, sample count).

    A key counts only the samples of the ranks that reported it; ranks that saw no samples report
    nothing. Summation is exact-rounded (``math.fsum``) and in rank order, so every rank computes
    bit-identical results from the same gathered parts.
    """
    keys = list(dict.fromkeys(k for sums, _ in parts for k in sums))
    means: dict[str, float] = {}
    for key in keys:
        have = [(sums[key], count) for sums, count in parts if key in sums]
        total = sum(count for _, count in have)
        if total:
            means[key] = math.fsum(s for s, _ in have) / total
    return means


def merge_metrics(per_rank: Sequence[dict[str, float]]) -> dict[str, float]:
    """One metrics dict for every rank from each rank's own.

    A value all ranks that have the key agree on is kept as it is (``train/loss``, ``val/*`` and
    ``lr`` arrive already identical); differing values are averaged (ranks take equally many
    training samples, so this is the sample-weighted mean). A key only some ranks logged, e.g. by
    a rank-zero-only plugin, gets their value(s). Keys keep rank 0's order.
    """
    keys = list(dict.fromkeys(k for metrics in per_rank for k in metrics))
    merged: dict[str, float] = {}
    for key in keys:
        values = [float(m[key]) for m in per_rank if key in m]
        first = values[0]
        same = all(v == first or (math.isnan(v) and math.isnan(first)) for v in values)
        merged[key] = first if same else math.fsum(values) / len(values)
    return merged


def is_stop_request(answer: StopAnswer | None) -> bool:
    """True for a ``should_stop`` answer that asks to stop (a non-empty str or True)."""
    return answer is not None and isinstance(answer[0], (str, bool)) and bool(answer[0])


# ---------------------------------------------------------------------- one distributed fit
class DistributedRun:
    """The distributed side of one ``Trainer.fit``: created by :func:`start`, closed at its end."""

    def __init__(self, trainer: Trainer, *, owns_group: bool, sync_every: int = 1) -> None:
        self.trainer = trainer
        self.rank = dist.get_rank()
        self.world_size = dist.get_world_size()
        self.backend = str(dist.get_backend())
        self.owns_group = owns_group
        self.sync_every = sync_every
        self.timeout_s = trainer.dist_timeout
        # Collectives run on the CPU for gloo, on this process's GPU for nccl.
        if self.backend == "nccl":
            self.comm_device = torch.device("cuda", torch.cuda.current_device())
        else:
            self.comm_device = torch.device("cpu")
        self.wrapped = False
        self.train_sampler: Any = None
        self.stop_rank: int | None = None
        """The rank whose ``should_stop`` answer stopped training (the lowest that asked)."""
        self.interrupt: str | None = None
        """The interrupt (see :meth:`agree_stop`) agreed by the last agreement, or None."""
        self._pending: StopAnswer | None = None
        self._pending_interrupt: str | None = None
        self._announced = False
        self.hosts: list[str] = []
        self.fit_id = 0
        """Which fit of this process group this is (rank 0's count, agreed in :func:`start`)."""

    # -------------------------------------------------------------- errors instead of hangs
    @contextlib.contextmanager
    def collective(self, what: str) -> Iterator[None]:
        """Turn a failed or timed-out collective into a DistributedError naming rank, step and cause."""
        try:
            yield
        except DistributedError:
            raise
        except (RuntimeError, ValueError) as exc:  # gloo/nccl errors and timeouts (DistBackendError too)
            raise self.lost_contact(exc, what) from exc

    def lost_contact(self, exc: BaseException, what: str) -> DistributedError:
        """The error of a rank whose collective failed: names the failed rank when it said so."""
        t = self.trainer
        note = self.failure_note()
        cause = (
            f"{note}"
            if note
            else "another rank has probably failed (see its own error) or stalled longer than "
            f"dist_timeout ({self.timeout_s:g}s)"
        )
        return DistributedError(
            f"rank {self.rank} of {self.world_size} lost contact with the other ranks during {what} "
            f"(epoch {t.epoch + 1}, step {t.global_step}): {_first_line(exc)}. Cause: {cause}",
            rank=self.rank,
        )

    def step_failure(self, exc: BaseException) -> DistributedError:
        """A failure in the training step (forward, backward, optimizer, data) as a DistributedError.

        Either this rank's own (a bug, out of memory: announced to the others, the original is
        kept for its traceback) or DDP's gradient all-reduce failing because a peer is gone.
        """
        if is_communication_error(exc):
            return self.lost_contact(exc, "the gradient all-reduce")
        t = self.trainer
        error = DistributedError(
            f"rank {self.rank} of {self.world_size} failed in the training step "
            f"(epoch {t.epoch + 1}, step {t.global_step}): {type(exc).__name__}: {_first_line(exc)}",
            rank=self.rank,
            original=exc,
        )
        self.announce_failure(error)
        return error

    # -------------------------------------------------------------- who failed
    def _store(self) -> Any:
        try:
            return dist.distributed_c10d._get_default_store()
        except Exception:  # no store (a custom group), or torch moved it
            return None

    def _failure_key(self) -> str:
        return f"{FAILURE_KEY}/{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}/{self.fit_id}"

    def announce_failure(self, exc: BaseException) -> None:
        """Leave a line naming this rank and its error for the others (first failure wins). Never raises.

        Not for a lost contact (that rank is a victim, not the cause) or a stop deadline.
        """
        if self._announced or (isinstance(exc, DistributedError) and exc.original is None):
            return
        self._announced = True
        store = self._store()
        if store is None:
            return
        if isinstance(exc, DistributedError):
            line = str(exc)
        elif isinstance(exc, TrainhooksError):  # its message says what failed (a plugin, a hook...)
            line = f"rank {self.rank} of {self.world_size} failed: {_first_line(exc)}"
        else:
            line = f"rank {self.rank} of {self.world_size} failed: {type(exc).__name__}: {_first_line(exc)}"
        try:
            store.compare_set(self._failure_key(), "", line)
        except Exception as err:  # the store may be gone too
            log.debug("rank %d: could not announce the failure: %s", self.rank, err)

    def failure_note(self) -> str | None:
        """The line a failed rank left (see :meth:`announce_failure`), or None. Never raises or waits."""
        store = self._store()
        if store is None:
            return None
        key = self._failure_key()
        try:
            if not store.check([key]):
                return None
            value = store.get(key)
        except Exception:
            return None
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
        return text or None

    def broadcast(self, obj: Any, what: str, src: int = 0) -> Any:
        """``obj`` as rank ``src`` has it, on every rank."""
        box = [obj]
        with self.collective(what):
            dist.broadcast_object_list(box, src=src)
        return box[0]

    def gather(self, obj: Any, what: str) -> list[Any]:
        """Every rank's ``obj``, in rank order, on every rank."""
        out: list[Any] = [None] * self.world_size
        with self.collective(what):
            dist.all_gather_object(out, obj)
        return out

    # -------------------------------------------------------------- setup
    def prepare(self, train_data: Any, val_data: Any) -> tuple[Any, Any]:
        """Wrap the model in DDP and shard the data; returns the (train, val) loaders to use."""
        t = self.trainer
        if not isinstance(t.model, nn.parallel.DistributedDataParallel):
            device = t.device
            ids = [device.index] if device.type == "cuda" else None
            t.model = nn.parallel.DistributedDataParallel(
                t.model, device_ids=ids, output_device=ids[0] if ids else None
            )
            self.wrapped = True
        seed = t.seed if t.seed is not None else 0
        notes = []
        train, self.train_sampler, note = shard_loader(
            train_data, rank=self.rank, world_size=self.world_size, seed=seed, train=True
        )
        if note:
            notes.append(f"train_data: {note}")
        val = val_data
        if val_data is not None:
            val, _, note = shard_loader(val_data, rank=self.rank, world_size=self.world_size, seed=seed, train=False)
            if note:
                notes.append(f"val_data: {note}")
        if notes and self.rank == 0:
            for text in notes:
                warnings.warn(f"distributed: {text}", RuntimeWarning, stacklevel=3)
        return train, val

    def set_epoch(self, epoch: int) -> None:
        """A new shuffle of the training shards each epoch (same on every rank, different per epoch)."""
        if self.train_sampler is not None:
            self.train_sampler.set_epoch(epoch)

    def through_wrapper(self, method: Callable[..., Any]) -> Callable[..., Any]:
        """``method`` of the unwrapped model, called through the DDP wrapper (see :func:`call_through`)."""
        t = self.trainer
        if t.model is t.unwrapped_model:
            return method
        return call_through(t.model, t.unwrapped_model, method)

    # -------------------------------------------------------------- once per epoch
    def end_train_epoch(self, losses: list[torch.Tensor], sizes: list[int]) -> None:
        """``train/loss`` as the mean over every rank's samples; buffers made equal for validation.

        DDP keeps parameters identical, but buffers (BatchNorm statistics) are only broadcast at
        the start of each forward, so after the last step every rank's differ slightly. Rank 0's
        (the ones its checkpoint saves) are broadcast so all ranks validate the same model.
        """
        total = 0.0
        if losses:
            weights = torch.tensor(sizes, dtype=torch.float32, device=losses[0].device)
            total = float((torch.stack(losses).float() * weights).sum().item())
        parts = self.gather(({"loss": total} if losses else {}, int(sum(sizes))), "the training loss reduction")
        means = weighted_means(parts)
        if "loss" in means:
            self.trainer.metrics["train/loss"] = means["loss"]
        buffers = [b for b in self.trainer.unwrapped_model.buffers() if b.numel()]
        if buffers:
            with self.collective("the buffer broadcast"), torch.no_grad():
                for buf in buffers:
                    dist.broadcast(buf, src=0)

    def reduce_validation(self, sums: dict[str, float], count: int) -> dict[str, float]:
        """Validation means over every rank's shard from this rank's (sums, sample count)."""
        return weighted_means(self.gather((sums, count), "the validation metrics reduction"))

    def sync_metrics(self, metrics: dict[str, float]) -> None:
        """Make ``metrics`` identical on every rank (in place; see :func:`merge_metrics`)."""
        merged = merge_metrics(self.gather(dict(metrics), "the epoch metrics exchange"))
        metrics.clear()
        metrics.update(merged)

    # -------------------------------------------------------------- agreed stop
    def agree_stop(
        self, answer: StopAnswer | None, batch_idx: int | None = None, *, interrupt: str | None = None
    ) -> StopAnswer | None:
        """Combine every rank's ``should_stop`` answer: if any rank asks, all stop, with one reason.

        Called by every rank at the same points (after each batch, ``batch_idx`` given, and after
        each epoch). One all-reduce (MIN over the asking ranks' indices) per call; only when some
        rank asked, its answer is broadcast from the lowest asking rank. With ``sync_every`` N > 1
        the batch-level agreement happens every N batches and on the epoch's last batch; a request
        made in between is remembered until then. An answer of a wrong type is returned unchanged
        so that the Trainer raises its usual error for it.

        ``interrupt`` is a reason to stop from outside the hooks (e.g. the name of a signal this
        rank received; torchrun forwards signals to every worker, but they arrive at different
        steps). It is agreed the same way, in the same all-reduce, and the result is left in
        :attr:`interrupt` (None when no rank had one), so that no stop source can make one rank
        leave the loop alone.
        """
        if answer is not None and not isinstance(answer[0], (str, bool)):
            return answer
        if self._pending is None and is_stop_request(answer):
            self._pending = answer
        if interrupt is not None and self._pending_interrupt is None:
            self._pending_interrupt = interrupt
        self.interrupt = None
        if batch_idx is not None and self.sync_every > 1:
            n = batch_idx + 1
            if n % self.sync_every and n != self.trainer.num_train_batches:
                return None
        local, self._pending = self._pending, None
        local_interrupt, self._pending_interrupt = self._pending_interrupt, None
        none = self.world_size
        flags = torch.tensor(
            [self.rank if local is not None else none, self.rank if local_interrupt is not None else none],
            device=self.comm_device,
        )
        with self.collective("the stop agreement"):
            dist.all_reduce(flags, op=dist.ReduceOp.MIN)
            source, interrupt_source = (int(v) for v in flags.tolist())
        if interrupt_source < none:
            self.interrupt = self.broadcast(local_interrupt, "the stop agreement", src=interrupt_source)
        if source >= none:
            return None
        agreed: StopAnswer = self.broadcast(local, "the stop agreement", src=source)
        self.stop_rank = source
        log.info("rank %d: stopping because rank %d asked (%s: %s)", self.rank, source, agreed[1], agreed[0])
        return agreed

    def preamble(self) -> str:
        """One line printed by rank 0 at the start: how many processes, and which machine writes."""
        hosts = list(dict.fromkeys(self.hosts))
        where = hosts[0] if hosts else socket.gethostname()
        save_dir = Path(self.trainer.save_dir).absolute()
        return (
            f"Distributed: {self.world_size} processes on {len(hosts)} machine(s), backend {self.backend}; "
            f"outputs are written by rank 0 on {where} to {save_dir}"
        )

    # -------------------------------------------------------------- teardown
    def close(self, failed: bool) -> None:
        """Unwrap the model and end the process group if this run started it. Never raises."""
        t = self.trainer
        if self.wrapped and isinstance(t.model, nn.parallel.DistributedDataParallel):
            t.model = t.model.module
        self.wrapped = False
        if not self.owns_group or not dist.is_initialized():
            return
        try:
            abort = getattr(dist.distributed_c10d, "_abort_process_group", None)
            if failed and self.backend == "nccl" and abort is not None:
                abort()  # destroy could wait on a collective a dead peer never joins
            else:
                dist.destroy_process_group()
        except Exception as exc:  # teardown must not hide the error that ended the run
            log.warning("rank %d: could not destroy the process group: %s", self.rank, exc)


def start(trainer: Trainer) -> DistributedRun | None:
    """The distributed side of ``trainer.fit``, or None in a single process.

    Uses a process group the caller initialised (any size, e.g. ``mp.spawn`` scripts), else
    initialises one from torchrun's environment when ``WORLD_SIZE`` > 1. ``trainer.rank`` /
    ``world_size`` are corrected from the group if they differ from the environment. Every rank
    then uses rank 0's ``save_dir`` and ``name``: a default ``runs/train``, ``runs/train2``... is
    chosen per process and could otherwise differ.
    """
    if not dist.is_available():
        if trainer.world_size > 1:
            raise DistributedError(f"WORLD_SIZE={trainer.world_size} but this PyTorch has no torch.distributed")
        return None
    owns = False
    if not dist.is_initialized():
        if trainer.world_size <= 1:
            return None
        init_from_env(trainer.device, trainer.dist_timeout)
        owns = True
    rank, world_size = dist.get_rank(), dist.get_world_size()
    if (rank, world_size) != (trainer.rank, trainer.world_size):
        trainer.rank, trainer.world_size = rank, world_size
        trainer.hooks.invalidate()  # rank-zero-only implementations depend on the rank
    run = DistributedRun(trainer, owns_group=owns, sync_every=trainer.dist_sync_every)
    global _FITS
    _FITS += 1
    try:
        trainer.save_dir, trainer.name, run.fit_id = run.broadcast(
            (trainer.save_dir, trainer.name, _FITS), "the save_dir agreement"
        )
        nodes = run.gather(socket.gethostname(), "the host names exchange")
    except BaseException:
        run.close(failed=True)
        raise
    run.hosts = nodes
    if rank == 0 and trainer.verbose:
        print(run.preamble(), flush=True)
    return run


_FITS = 0  # fits started by this process, for the failure key (rank 0's count is used)


def is_communication_error(exc: BaseException) -> bool:
    """True for errors of the process group itself (a peer gone, a timeout), not of this rank's code."""
    backend_error = getattr(dist, "DistBackendError", None)
    if backend_error is not None and isinstance(exc, backend_error):
        return True
    text = str(exc)
    markers = ("gloo", "Gloo", "NCCL", "Connection closed by peer", "Connection reset by peer", "Timed out", "c10d")
    return isinstance(exc, RuntimeError) and any(m in text for m in markers)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


__all__ = [
    "DEFAULT_TIMEOUT_S",
    "DistributedRun",
    "ShardSampler",
    "backend_for",
    "call_through",
    "env_int",
    "init_from_env",
    "is_communication_error",
    "is_stop_request",
    "local_device",
    "merge_metrics",
    "rebuild_loader",
    "round_store",
    "shard_loader",
    "start",
    "unwrap",
    "weighted_means",
]
