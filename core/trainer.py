"""The Trainer: real PyTorch loops for fit / validate / predict / export, firing every hook.

The simple case is a few lines::

    trainer = trainhooks.Trainer(model, loss_fn=nn.CrossEntropyLoss(), optimizer=opt, epochs=10)
    trainer.fit(train_loader, val_loader)

Batches are ``(inputs, targets)`` pairs by default. For anything else give the model a
``training_step(batch)`` returning the loss (or a dict with ``"loss"``), and optionally
``validation_step(batch)`` returning a dict of metric tensors and ``predict_step(batch)``.

What plugins read on the trainer (by convention read-only): ``model``, ``optimizer``,
``lr_scheduler``, ``epoch``, ``epochs``, ``global_step``, ``batch_idx``, ``metrics``,
``history``, ``num_train_batches``, ``num_train_samples`` (and ``val``), ``save_dir``, ``stop_reason``, ``plugin_manager``, ``options``, ``rank``,
``world_size``, ``is_global_zero``, ``device``, ``stage``. They write through
:meth:`Trainer.log_metric`, :meth:`Trainer.log_artifact`, hook return values and
:meth:`Trainer.save_checkpoint`.

No device synchronisation happens per step in the engine: losses are kept as tensors and turned
into floats once per epoch.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import itertools
import logging
import os
import random
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from trainhooks import amp, checkpointing, distributed, loops, rundir, signals, strategy
from trainhooks import resume as resume_module
from trainhooks.batches import model_inputs, safe_len
from trainhooks.callbacks import FunctionCallback
from trainhooks.controls import LoopControls, apply_limit, compile_arguments, compile_refused, is_integer
from trainhooks.dispatch import HookDispatcher, HookProfile
from trainhooks.errors import (
    CheckpointError,
    ConfigError,
    DistributedError,
    ExportFormatError,
    HookError,
    PluginError,
)
from trainhooks.keywords import checked_keywords
from trainhooks.manifest import RunManifest
from trainhooks.metrics import MetricLog
from trainhooks.options import CORE_OPTIONS, apply_options, collect_options
from trainhooks.plugin_manager import PluginManager
from trainhooks.stopping import StopState

log = logging.getLogger("trainhooks")


@dataclass
class FitResult:
    """What :meth:`Trainer.fit` returns."""

    epochs_completed: int
    global_step: int
    stop_reason: str
    stopped_early: bool
    stopped_by: str | None
    metrics: dict[str, float]
    history: list[dict[str, float]]
    save_dir: Path
    artifacts: dict[str, Path] = field(default_factory=dict)
    duration_s: float = 0.0


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's generators."""
    random.seed(seed)
    torch.manual_seed(seed)
    try:
        import numpy as np

        np.random.seed(seed % 2**32)
    except ImportError:  # pragma: no cover - numpy ships with torch in practice
        pass


def _resolve_device(device: str | torch.device | None) -> torch.device:
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"device {device!r} is not a torch device (try 'cpu', 'cuda', 'cuda:1', 'auto')") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} requested but CUDA is not available on this machine")
    return resolved


def _is_compiled(model: nn.Module) -> bool:
    """A ``torch.compile(model)`` wrapper (its state_dict keys carry an ``_orig_mod.`` prefix)."""
    return type(model).__name__ == "OptimizedModule" and isinstance(getattr(model, "_orig_mod", None), nn.Module)


def _seed_worker(worker_id: int, chained: Callable[[int], None] | None = None) -> None:
    """Seed Python's and NumPy's generators in a DataLoader worker from torch's worker seed
    (torch seeds only its own; without this every worker draws the same NumPy numbers)."""
    worker_seed = torch.initial_seed() % 2**32
    random.seed(worker_seed)
    try:
        import numpy as np

        np.random.seed(worker_seed)
    except ImportError:  # pragma: no cover
        pass
    if chained is not None:
        chained(worker_id)


def _seed_workers(loader: Any) -> None:
    if isinstance(loader, torch.utils.data.DataLoader) and loader.num_workers > 0:
        current = loader.worker_init_fn
        if not (isinstance(current, functools.partial) and current.func is _seed_worker):
            loader.worker_init_fn = functools.partial(_seed_worker, chained=current)


def _positive_int(name: str, value: Any) -> int:
    if not is_integer(value) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _check_arguments(
    model: Any,
    save_dir: Any,
    epochs: Any,
    grad_clip_norm: Any,
    plugins: Any,
    disable: Any,
    dist_timeout: Any,
    dist_sync_every: Any,
) -> None:
    """The Trainer's own arguments, checked before anything is built: one clear error each."""
    if save_dir is not None and (not isinstance(save_dir, (str, os.PathLike)) or not str(os.fspath(save_dir)).strip()):
        # "" would silently mean the working directory.
        raise ConfigError(f"save_dir must be a directory path, got {save_dir!r}")
    if not isinstance(model, nn.Module):
        raise ConfigError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    _positive_int("epochs", epochs)
    if grad_clip_norm is not None and not grad_clip_norm > 0:
        raise ConfigError(f"grad_clip_norm must be positive, got {grad_clip_norm!r}")
    if isinstance(plugins, (str, bytes)) or isinstance(disable, (str, bytes)):
        raise ConfigError("plugins= and disable= take lists of names, e.g. plugins=['early_stopping']")
    if isinstance(dist_timeout, bool) or not isinstance(dist_timeout, (int, float)) or not dist_timeout > 0:
        raise ConfigError(f"dist_timeout must be a positive number of seconds, got {dist_timeout!r}")
    _positive_int("dist_sync_every", dist_sync_every)


class Trainer:
    """Runs training, validation, prediction and export, calling every plugin at every stage.

    :param model: the ``torch.nn.Module`` to train.
    :param loss_fn: ``loss_fn(outputs, targets) -> scalar tensor``; not needed if the model has
        ``training_step``.
    :param optimizer: an optimizer, or a factory ``f(params) -> optimizer``; default Adam(1e-3).
    :param lr_scheduler: any ``torch.optim.lr_scheduler``; stepped by the ``lr`` plugin.
    :param epochs: maximum number of epochs.
    :param device: ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or ``"auto"`` (default: CUDA if available).
    :param save_dir: where plugins write (checkpoints, metrics.csv, results.png); default
        ``runs/train``, ``runs/train2``, ... whichever is free.
    :param plugins: entry-point plugin names to enable (``"early_stopping"``, like ``-p NAME``)
        and plugin objects or modules to register. An object that is an instance of an
        entry-point plugin's class replaces that plugin's default instance.
    :param disable: entry-point plugin names not to load (like ``-p no:NAME``).
    :param callbacks: callback objects (methods named after hooks; no markers needed), run in
        list order.
    :param autoload: load installed third-party plugins; default true unless
        ``TRAINHOOKS_DISABLE_PLUGIN_AUTOLOAD=1``. Built-in plugins always load.
    :param default_plugins: when false, no entry-point plugin loads unless named in
        ``plugins`` (a bare trainer, as in the benchmarks).
    :param non_critical: plugin names whose failures are reported once and disable the plugin
        for the rest of the run instead of stopping it (``--non-critical NAME``). By default a
        failing plugin stops the run: ``on_exception`` fires and an emergency checkpoint is
        written to ``weights/emergency.pt``.
    :param options: plugin options, e.g. ``{"patience": 5}`` (see ``trainhooks fit --help``).
    :param seed: seed Python, NumPy and torch at the start of ``fit``.
    :param grad_clip_norm: clip the gradient norm to this value before each optimizer step.
    :param name: run name shown by loggers and notifications (default: ``save_dir``'s name).
    :param profile_hooks: time every plugin's hooks; see :attr:`hook_profile`.
    :param verbose: let plugins print (progress bars, per-epoch lines); ``--quiet`` sets it false.
    :param fast_data: iterate a ``DataLoader`` over a ``TensorDataset`` by indexing its tensors
        instead of collating samples one by one; same batches, same order, same random numbers
        (see :mod:`trainhooks.data`). False uses the DataLoader as given.
    :param plugin_host: an already loaded :class:`~trainhooks.plugin_manager.PluginManager` (the CLI builds
        one to show plugin options in ``--help``); ``plugins`` names and ``disable`` are then
        ignored, objects are still registered.
    :param precision: ``"32"`` (default), ``"bf16"`` (autocast to bfloat16) or ``"16"`` (autocast
        to float16 with a GradScaler); see :mod:`trainhooks.amp`.
    :param dist_timeout: under torchrun, seconds a collective waits for the other ranks before it
        fails with :class:`~trainhooks.DistributedError` instead of hanging; see
        :mod:`trainhooks.distributed`.
    :param dist_sync_every: under torchrun, agree on ``should_stop`` answers every N batches
        (and at every epoch end) instead of after every batch: fewer collectives, a stop up to
        N - 1 steps later.
    :param preempt_signal: the scheduler's pre-emption signal (default ``"SIGUSR1"``; ``None``
        to leave it alone): stops like SIGTERM, and ``trainhooks fit`` then exits with 75
        (see :mod:`trainhooks.signals`).
    :param stop_timeout: seconds a graceful stop after SIGTERM or the pre-emption signal may
        take; a process still running then (a stuck rank) writes an emergency checkpoint if it
        can and exits. ``None`` or 0: no deadline.
    :param overwrite: start over in a ``save_dir`` that already holds a run (its checkpoints,
        ``metrics.csv`` and ``results.png`` are deleted first). Without it, ``fit`` refuses such
        a directory unless it resumes.
    :param accumulate_grad_batches: one optimizer step per N batches (micro-batches), with the
        gradient of their mean loss; ``global_step`` counts optimizer steps. The last, partial
        group of an epoch is stepped too. Under DDP the micro-batches that do not step skip the
        gradient sync.
    :param max_steps: stop after this many optimizer steps (the planned end, not an early stop).
    :param min_epochs: a stop asked for (``should_stop``) before this many epochs waits, and
        takes effect once they are done; a signal never waits.
    :param min_steps: the same, in optimizer steps.
    :param val_every_n_epochs: validate at the end of every N-th epoch (None: never at epoch ends).
    :param val_every_n_steps: also validate every N optimizer steps, inside the epoch; its
        ``val/*`` metrics reach plugins through ``trainer.metrics`` and ``on_log``.
    :param limit_train_batches: batches per training epoch: an int count, or a float fraction
        in (0, 1] of the data's batches.
    :param limit_val_batches: the same for validation (``validate`` too).
    :param log_every_n_steps: fire ``on_log`` with the step's ``train/loss`` and ``lr`` every N
        steps, converted to floats only then (and only when some plugin implements ``on_log``);
        None: only the end-of-epoch ``on_log``.
    :param dry_run: ``fit`` runs one batch each of training, validation and prediction in a
        temporary save_dir that is deleted afterwards: a check of a task and its plugins.
    :param compile: ``torch.compile`` the model for the fit (True, a backend name such as
        ``"eager"``, or a dict of ``torch.compile`` arguments). The module stays the same object:
        hooks see it, and checkpoints of compiled and uncompiled runs load into each other. A
        model already wrapped by ``torch.compile`` is unwrapped and compiled the same way.
    :param deterministic: use torch's deterministic algorithms (an error where an operation has
        none) and seed Python and NumPy in DataLoader workers; recorded in checkpoints.
    :param plugin_manager: an already loaded :class:`~trainhooks.plugin_manager.PluginManager`;
        ``plugin_host`` is its older name, kept working.
    """

    @checked_keywords
    def __init__(
        self,
        model: nn.Module,
        *,
        loss_fn: Callable[..., torch.Tensor] | None = None,
        optimizer: torch.optim.Optimizer | Callable[..., torch.optim.Optimizer] | None = None,
        lr_scheduler: Any = None,
        epochs: int = 10,
        device: str | torch.device | None = None,
        save_dir: str | os.PathLike[str] | None = None,
        plugins: Sequence[Any] = (),
        disable: Sequence[str] = (),
        callbacks: Sequence[Any] = (),
        autoload: bool | None = None,
        default_plugins: bool = True,
        non_critical: Sequence[str] = (),
        options: Mapping[str, Any] | None = None,
        seed: int | None = None,
        grad_clip_norm: float | None = None,
        name: str | None = None,
        profile_hooks: bool = False,
        verbose: bool = True,
        plugin_host: PluginManager | None = None,
        precision: str | int = "32",
        dist_timeout: float = distributed.DEFAULT_TIMEOUT_S,
        dist_sync_every: int = 1,
        fast_data: bool = True,
        preempt_signal: str | int | None = signals.DEFAULT_PREEMPT_SIGNAL,
        stop_timeout: float | None = signals.DEFAULT_STOP_TIMEOUT_S,
        overwrite: bool = False,
        accumulate_grad_batches: int = 1,
        max_steps: int | None = None,
        min_epochs: int | None = None,
        min_steps: int | None = None,
        val_every_n_epochs: int | None = 1,
        val_every_n_steps: int | None = None,
        limit_train_batches: int | float | None = None,
        limit_val_batches: int | float | None = None,
        log_every_n_steps: int | None = 50,
        dry_run: bool = False,
        compile: bool | str | dict[str, Any] = False,
        deterministic: bool = False,
        plugin_manager: PluginManager | None = None,
    ) -> None:
        _check_arguments(model, save_dir, epochs, grad_clip_norm, plugins, disable, dist_timeout, dist_sync_every)
        self._set_stop_settings(preempt_signal, stop_timeout, overwrite)

        self.model: nn.Module = model
        self.loss_fn = loss_fn
        self.optimizer: torch.optim.Optimizer = self._make_optimizer(optimizer)
        self.lr_scheduler = lr_scheduler
        self.epochs = int(epochs)
        self.device = _resolve_device(device)
        self.save_dir = Path(save_dir) if save_dir is not None else rundir.increment_dir(Path("runs") / "train")
        self.name = name or self.save_dir.name
        # What was trained, for trackers' 'task' tag: the CLI sets the --task name (None from the API).
        self.task_name: str | None = None
        self.seed = seed
        self.grad_clip_norm = grad_clip_norm
        self.verbose = verbose
        self.fast_data = fast_data
        self._set_controls(
            LoopControls(
                accumulate_grad_batches=accumulate_grad_batches,
                max_steps=max_steps,
                min_epochs=min_epochs,
                min_steps=min_steps,
                val_every_n_epochs=val_every_n_epochs,
                val_every_n_steps=val_every_n_steps,
                limit_train_batches=limit_train_batches,
                limit_val_batches=limit_val_batches,
                log_every_n_steps=log_every_n_steps,
                dry_run=dry_run,
                compile=compile,
                deterministic=deterministic,
            )
        )
        self._init_run_state()
        self._init_distributed(dist_timeout, dist_sync_every)
        # mixed precision (trainhooks.amp): None at "32", so the default loop is untouched.
        self.precision = amp.parse_precision(precision)
        self._amp = amp.MixedPrecision(self.precision, self.device) if self.precision != "32" else None
        if plugin_manager is not None and plugin_host is not None and plugin_manager is not plugin_host:
            raise ConfigError("pass plugin_manager= or its old name plugin_host=, not both")
        self._init_plugins(
            plugin_manager or plugin_host, plugins, disable, callbacks, autoload, default_plugins, non_critical
        )
        self._init_hooks(profile_hooks, options)

    def _set_stop_settings(self, preempt_signal: str | int | None, stop_timeout: float | None, overwrite: bool) -> None:
        """The pre-emption signal, the stop deadline and whether a fresh run may replace one."""
        self.preempt_signal = signals.parse_signal(preempt_signal)
        self.stop_timeout = signals.parse_stop_timeout(stop_timeout)
        if not isinstance(overwrite, bool):
            raise ConfigError(f"overwrite must be True or False, got {overwrite!r}")
        self.overwrite = overwrite

    def _init_hooks(self, profile_hooks: bool, options: Mapping[str, Any] | None) -> None:
        """The hook dispatcher over the loaded plugins, and their options resolved and applied."""
        self.hooks = HookDispatcher(self.plugin_manager, self)
        self.hook_profile: HookProfile | None = self.hooks.enable_profiling() if profile_hooks else None
        table = collect_options(self.plugin_manager, reserved=CORE_OPTIONS)
        self.options: dict[str, Any] = table.resolve(options)
        apply_options(self.plugin_manager, self.options)  # declared settings (trainhooks.Option) see their values
        self.hooks.configure()

    def _set_controls(self, controls: LoopControls) -> None:
        """The loop controls (see :mod:`trainhooks.controls`), as attributes plugins can read."""
        controls.check_epochs(self.epochs)
        self.controls = controls
        self.accumulate_grad_batches = controls.accumulate_grad_batches
        self.max_steps = controls.max_steps
        self.min_epochs = controls.min_epochs
        self.min_steps = controls.min_steps
        self.val_every_n_epochs = controls.val_every_n_epochs
        self.val_every_n_steps = controls.val_every_n_steps
        self.limit_train_batches = controls.limit_train_batches
        self.limit_val_batches = controls.limit_val_batches
        self.log_every_n_steps = controls.log_every_n_steps
        self.dry_run = controls.dry_run
        self.deterministic = controls.deterministic
        self._compile = compile_arguments(controls.compile)
        # torch.compile's own context (backend, mode, options) of a model passed already compiled
        self._compile_context: Callable[[Any], Any] | None = None
        if _is_compiled(self.model):  # hooks and checkpoints see the original module
            if self._compile is None:  # compiled again as the caller compiled it
                self._compile_context = getattr(self.model, "dynamo_ctx", None)
                self._compile = {}
            self.model = self.model._orig_mod  # type: ignore[assignment]

    def _init_run_state(self) -> None:
        """Counters, metric log, stop state and position: what a fit changes."""
        self.epoch = 0
        self.global_step = 0
        self.batch_idx = 0
        self.stage: str | None = None
        self.example_input: Any = None
        self.artifacts: dict[str, Path] = {}
        # run.json in save_dir, kept by rank 0 during a fit (trainhooks.manifest); None otherwise.
        self.manifest: RunManifest | None = None
        self.num_train_batches: int | None = None
        self.num_val_batches: int | None = None
        self.num_train_samples: int | None = None
        self.num_val_samples: int | None = None
        self._stop = StopState()
        self._position = resume_module.EpochPosition()
        self._train_data: Any = None
        self._resume_position: dict[str, Any] | None = None
        self._signals: signals.SignalWatch | None = None
        self._updating = False  # between optimizer step and step count: no consistent snapshot
        self._first_step: int | None = None
        self._validated_at_step: int | None = None
        self.emergency_checkpoint: Path | None = None
        # Background checkpoint writes (save_checkpoint(background=True)): one in flight at most.
        self.checkpoint_writer = checkpointing.CheckpointWriter()
        # Settings recorded in every checkpoint's "run" entry, so that a resume continues the same
        # run; the CLI adds what only it knows (task, batch size, lr).
        self.run_settings: dict[str, Any] = {}

    def _init_distributed(self, dist_timeout: float, dist_sync_every: int) -> None:
        self.rank = distributed.env_int("RANK", 0)
        self.local_rank = distributed.env_int("LOCAL_RANK", 0)
        self.world_size = distributed.env_int("WORLD_SIZE", 1)
        # cuda means cuda:LOCAL_RANK under torchrun; the process group, DDP wrapper and sharded
        # loaders exist only during fit (self.strategy, see trainhooks.strategy).
        self.device = distributed.local_device(self.device, self.local_rank, self.world_size)
        self.dist_timeout = float(dist_timeout)
        self.dist_sync_every = dist_sync_every
        self.strategy: strategy.SingleProcess = strategy.SINGLE_PROCESS

    def _init_plugins(
        self,
        plugin_host: PluginManager | None,
        plugins: Sequence[Any],
        disable: Sequence[str],
        callbacks: Sequence[Any],
        autoload: bool | None,
        default_plugins: bool,
        non_critical: Sequence[str],
    ) -> None:
        objects = [p for p in plugins if not isinstance(p, str)]
        names = [p for p in plugins if isinstance(p, str)]
        host = plugin_host
        if host is None:
            host = PluginManager()
            host.load_plugins(
                enable=names, disable=disable, autoload=autoload, defaults=default_plugins, replacements=objects
            )
        self.plugin_manager: PluginManager = host
        self._log = MetricLog(host)
        used = {id(r.plugin) for r in host.records.values()}
        for obj in objects:
            if id(obj) not in used:
                host.register(obj, source="api")
        for obj in callbacks:
            host.register(obj, source="callback", callback_style=True)
        if isinstance(non_critical, (str, bytes)):
            raise ConfigError("non_critical= takes a list of plugin names, e.g. non_critical=['notify']")
        # Any plugin this host knows may be named, enabled or not (an opt-in plugin marked
        # non-critical "in case it is enabled" is fine); a name nobody knows is a typo.
        known = sorted({n for n, p in host.list_name_plugin() if p is not None} | set(host.records))
        for name in non_critical:
            if name not in known:
                from trainhooks.errors import UnknownPluginError

                raise UnknownPluginError(name, known)
        host.non_critical.update(non_critical)

    # ------------------------------------------------------------------ public helpers
    @property
    def is_global_zero(self) -> bool:
        """True on the process of global rank zero (always, outside distributed runs)."""
        return self.rank == 0

    @property
    def compile_arguments(self) -> dict[str, Any] | None:
        """The ``torch.compile`` keyword arguments a fit runs the model with (``{}``: torch's
        defaults, or those of a model passed already compiled), or None when it runs eagerly."""
        return None if self._compile is None else dict(self._compile)

    @property
    def unwrapped_model(self) -> nn.Module:
        """The model without a DistributedDataParallel (or DataParallel) wrapper."""
        return distributed.unwrap(self.model)

    @property
    def stopped_early(self) -> bool:
        """True when a plugin's ``should_stop`` (or a signal) ended training before ``epochs``
        (reaching ``max_steps`` is the planned end, not an early stop)."""
        return self._stop.early

    @property
    def stop_reason(self) -> str | None:
        """Why training stopped (``"completed 10 epochs"``, a plugin's reason, a signal), or None."""
        return self._stop.reason

    @stop_reason.setter
    def stop_reason(self, value: str | None) -> None:
        self._stop.reason = value

    @property
    def stopped_by(self) -> str | None:
        """The plugin whose ``should_stop`` ended training, ``"signal"``, or None."""
        return self._stop.stopped_by

    @stopped_by.setter
    def stopped_by(self, value: str | None) -> None:
        self._stop.stopped_by = value

    @property
    def interrupted(self) -> str | None:
        """The name of the signal that stopped this fit (``"SIGTERM"``), or None."""
        return self._stop.interrupted

    @interrupted.setter
    def interrupted(self, value: str | None) -> None:
        self._stop.interrupted = value

    @property
    def epoch_completed(self) -> bool:
        """Whether the current epoch's training ran through all its batches."""
        return self._position.completed

    @epoch_completed.setter
    def epoch_completed(self, value: bool) -> None:
        self._position.completed = value

    @property
    def _dist(self) -> distributed.DistributedRun | None:
        """The distributed side of the current fit (None in one process); see :attr:`strategy`."""
        return self.strategy.run

    def add_callback(self, event: str, fn: Callable[..., Any]) -> str:
        """Run ``fn`` at hook ``event``; returns the registration name (for ``unregister``).

        ``fn`` takes any of the hook's arguments by name, or one positional argument that
        receives the trainer. Callbacks added later run after earlier ones.

        :raises UnknownHookError: ``event`` names no hook (with suggestions).
        :raises HookArgumentError: ``fn`` wants an argument the hook does not pass.
        """
        base = f"{event}:{getattr(fn, '__name__', type(fn).__name__)}"
        holder = FunctionCallback(owner=base, **{event: fn})
        name, n = base, 1
        while self.plugin_manager.has_plugin(name):
            n += 1
            name = f"{base}#{n}"
        return self.plugin_manager.register(holder, name, source="callback", callback_style=True)

    def log_metric(self, name: str, value: float | torch.Tensor) -> None:
        """Record a metric; it appears in ``trainer.metrics`` (as a float) and in the history.

        Tensors logged from per-step hooks are converted to floats once, at the end of the
        epoch's training, so logging there does not synchronise with the device; elsewhere they
        are converted right away. A metric logged in ``on_fit_epoch_end`` joins that epoch's
        ``history`` entry; loggers (csv, tensorboard) see it if it is logged before them — log
        with ``@hookimpl(tryfirst=True)`` there, or earlier (``on_val_end``).
        See :mod:`trainhooks.metrics` for the rules.
        """
        self._log.log(name, value)

    @property
    def metrics(self) -> dict[str, float]:
        """The latest value of every metric. Writing a non-number into it (a string, None) is a
        ConfigError at the write, naming the plugin whose hook wrote it."""
        return self._log.current

    @metrics.setter
    def metrics(self, values: Any) -> None:
        self._log.set_current(values)

    @property
    def history(self) -> list[dict[str, float]]:
        """One dict of metrics per finished epoch (``history[-1]`` is the latest epoch's)."""
        return self._log.history

    @history.setter
    def history(self, rows: list[dict[str, float]]) -> None:
        self._log.history = rows

    def log_artifact(self, name: str, path: str | os.PathLike[str]) -> None:
        """Announce a file a plugin wrote: listed in the final summary and ``FitResult.artifacts``,
        and kept in the run's ``run.json``, where ``trainhooks validate/predict/export`` find the
        run's weights (``best.pt``, ``last.pt``) by these names."""
        self.artifacts[name] = Path(path)
        if self.manifest is not None:
            self.manifest.record(name, Path(path))

    def _make_optimizer(self, optimizer: Any) -> torch.optim.Optimizer:
        if optimizer is None:
            return torch.optim.Adam(self.model.parameters(), lr=1e-3)
        if isinstance(optimizer, torch.optim.Optimizer):
            return optimizer
        if callable(optimizer):
            made = optimizer(self.model.parameters())
            if not isinstance(made, torch.optim.Optimizer):
                raise ConfigError(f"optimizer factory returned {type(made).__name__}, expected a torch.optim.Optimizer")
            return made
        raise ConfigError(f"optimizer must be a torch.optim.Optimizer or a factory, got {type(optimizer).__name__}")

    # ------------------------------------------------------------------ fit
    @checked_keywords
    def fit(
        self,
        train_data: Iterable[Any],
        val_data: Iterable[Any] | None = None,
        *,
        epochs: int | None = None,
        resume: str | os.PathLike[str] | None = None,
    ) -> FitResult:
        """Train for ``epochs`` epochs (or until a plugin's ``should_stop`` says so).

        :param train_data: a DataLoader (or any re-iterable of batches).
        :param val_data: validation batches, run after every epoch; optional.
        :param epochs: overrides the constructor's ``epochs``.
        :param resume: a checkpoint to continue from (model, optimizer, scheduler, counters,
            plugin state), or ``"auto"``: the newest good checkpoint in ``save_dir/weights``
            (``last.pt``; ``previous.pt`` when ``last.pt`` is damaged; a newer ``emergency.pt``),
            or a fresh start when there is none. The same call then works after a restart
            (torchrun ``--max-restarts``, SLURM requeue, a pod restart).
        :raises HookError: a plugin failed (``on_exception`` has fired); the original exception
            is its ``__cause__``.
        """
        if isinstance(resume, str) and not resume.strip():  # Path("") is "."; refused before anything changes
            raise ConfigError(f"resume expects a checkpoint file or 'auto', got {resume!r}")
        if epochs is not None:
            self.epochs = _positive_int("epochs", epochs)
        self._check_data(train_data, "train_data")
        if val_data is not None:
            self._check_data(val_data, "val_data")
        self.stage = "fit"
        self._stop.reset()
        self._resume_position, self._first_step, self._updating = None, None, False
        if isinstance(resume, str) and resume == "auto":
            resume = resume_module.auto_resume_path(self)
        if resume is None:  # a fresh run: counters start over (resume restores them)
            self.epoch, self.global_step = 0, 0
            self._log.reset()
        self._train_data = train_data
        self.num_train_batches = safe_len(train_data)
        self.num_val_batches = safe_len(val_data) if val_data is not None else None
        # Refusals come before fit changes anything: --overwrite has not deleted the previous
        # run yet, and a refused resume leaves its run.json and plots as they were. A dry run
        # takes one batch, but checks the limits the real run will take.
        self._check_limits(train_data, val_data)
        if self.dry_run:
            return self._dry_run(train_data, val_data, resume)
        # Under torchrun the checkpoint is read once the process group exists: a rank that
        # cannot read it (a node without the file) then tells the others why it failed.
        pending = resume_module.prepare(self, resume) if resume is not None and self.world_size == 1 else resume
        with self._compiled(), self._determinism(train_data, val_data):
            result = loops.FitLoop(self, train_data, val_data).run(pending)
        self._print_summary(result)
        return result

    def _print_summary(self, result: FitResult) -> None:
        """The final lines of a fit (the CLI's too): how training ended, where the files went."""
        if not self.verbose or not self.is_global_zero:
            return
        from trainhooks.cli.render import summary_line

        done, total = self.batch_idx + 1, self.num_train_batches
        cut_short = (
            (done, total) if result.history and not self.epoch_completed and (total is None or done < total) else None
        )
        print(summary_line(result, self.epochs, cut_short=cut_short), flush=True)

    def _dry_run(self, train_data: Iterable[Any], val_data: Iterable[Any] | None, resume: Any) -> FitResult:
        """``dry_run``: one batch each of training, validation and prediction in a temporary
        save_dir that is deleted afterwards, to check a task and its plugins end to end."""
        if resume is not None:
            raise ConfigError("dry_run checks a task from scratch: it does not resume (drop --resume or --dry-run)")
        names: tuple[str, ...] = (
            "save_dir",
            "epochs",
            "limit_train_batches",
            "limit_val_batches",
            "max_steps",
            "min_epochs",
        )
        names += ("min_steps", "val_every_n_epochs", "val_every_n_steps")
        kept = {n: getattr(self, n) for n in names}
        with tempfile.TemporaryDirectory(prefix="trainhooks-dry-run-") as tmp:
            self.save_dir, self.epochs = Path(tmp) / self.save_dir.name, 1
            self.limit_train_batches = self.limit_val_batches = 1
            self.max_steps = self.min_epochs = self.min_steps = self.val_every_n_steps = None
            self.val_every_n_epochs = 1
            try:
                self.num_train_batches = 1
                with self._compiled(), self._determinism(train_data, val_data):
                    result = loops.FitLoop(self, train_data, val_data).run(None)
                    self.predict(list(itertools.islice(iter(val_data if val_data is not None else train_data), 1)))
            finally:
                for n, value in kept.items():
                    setattr(self, n, value)
                self.artifacts = {k: p for k, p in self.artifacts.items() if not str(p).startswith(tmp)}
        result.save_dir, result.artifacts = self.save_dir, dict(self.artifacts)
        if self.verbose and self.is_global_zero:
            print(
                f"Dry run passed: 1 training batch, {'1 validation batch, ' if val_data is not None else ''}"
                f"1 prediction batch ({result.duration_s:.1f}s); nothing was kept",
                flush=True,
            )
        return result

    @contextlib.contextmanager
    def _compiled(self) -> Iterator[None]:
        """``compile``: ``torch.compile`` the model's forward in place for this fit. The module
        stays the same object, so hooks, checkpoints and state_dict keys are the uncompiled ones."""
        if self._compile is None:
            yield
            return
        model = self.unwrapped_model
        call_impl = model._call_impl

        # Not Module.compile (torch.compile of the bound _call_impl): dynamo skips that frame, as
        # torch.nn's own, and compiles nothing. A function of ours is traced, inlining _call_impl.
        def call(*args: Any, **kwargs: Any) -> Any:
            return call_impl(*args, **kwargs)

        if self._compile_context is not None:  # a model passed compiled: its backend and options
            model._compiled_call_impl = self._compile_context(call)
        else:
            try:
                model._compiled_call_impl = torch.compile(call, **self._compile)
            # a backend or mode torch does not know; torch asserts some values ({"dynamic": "yes"})
            except (RuntimeError, ValueError, TypeError, AssertionError) as exc:
                raise compile_refused(self._compile, exc) from exc
        try:
            yield
        finally:
            model._compiled_call_impl = None  # back to eager for predict/export/deepcopy

    @contextlib.contextmanager
    def _determinism(self, *loaders: Any) -> Iterator[None]:
        """``deterministic``: torch's deterministic algorithms and seeded DataLoader workers for
        this fit; the previous global settings come back afterwards."""
        if not self.deterministic:
            yield
            return
        cudnn = torch.backends.cudnn
        before = (torch.are_deterministic_algorithms_enabled(), cudnn.benchmark, cudnn.deterministic)
        warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
        if self.device.type == "cuda":  # cuBLAS needs a fixed workspace to be deterministic
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        cudnn.benchmark, cudnn.deterministic = False, True
        for loader in loaders:
            _seed_workers(loader)
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(before[0], warn_only=warn_only)
            cudnn.benchmark, cudnn.deterministic = before[1], before[2]

    def _result(self, duration_s: float) -> FitResult:
        return FitResult(
            epochs_completed=len(self.history),
            global_step=self.global_step,
            stop_reason=self.stop_reason or "",
            stopped_early=self._stop.early,
            stopped_by=self.stopped_by,
            metrics=dict(self.metrics),
            history=[dict(h) for h in self.history],
            save_dir=self.save_dir,
            artifacts=dict(self.artifacts),
            duration_s=duration_s,
        )

    def min_length_missing(self) -> str | None:
        """Why a stop asked for now must wait (``min_epochs``/``min_steps`` not reached), or None."""
        epochs_done = self.epoch + (1 if self._position.completed and not self._log.in_batch_loop else 0)
        if self.min_epochs is not None and epochs_done < self.min_epochs:
            return f"min_epochs={self.min_epochs} is not reached ({epochs_done} done)"
        if self.min_steps is not None and self.global_step < self.min_steps:
            return f"min_steps={self.min_steps} is not reached ({self.global_step} done)"
        return None

    def _consult_should_stop(self) -> None:
        answer = self.hooks.should_stop()
        interrupt = self._signals.received if self._signals is not None else None
        # all ranks stop after the same epoch, signals too (see trainhooks.strategy)
        answer, interrupt = self.strategy.agree_stop(answer, interrupt=interrupt)
        if answer is not None:
            self._stop.accept(self, answer, "epoch")
        if not self._stop.requested and interrupt is not None:
            self._stop.accept_signal(self, interrupt)
        if not self._stop.requested and answer is None:
            self._stop.release(self, "epoch")

    def _accept_stop(self, answer: tuple[object, str], where: str) -> bool:
        return self._stop.accept(self, answer, where)

    # ------------------------------------------------------------------ signals
    def _install_signal_handlers(self) -> signals.SignalWatch | None:
        """First SIGINT/SIGTERM/pre-emption signal: stop gracefully after the current batch
        (checkpoints are written as for any stop); the second one acts as usual. A stop that
        does not happen within ``stop_timeout`` ends the process (see :mod:`trainhooks.signals`)."""
        watch = signals.SignalWatch(
            preempt=self.preempt_signal, stop_timeout=self.stop_timeout, on_deadline=self._stop_deadline_passed
        )
        return watch if watch.install() else None

    def _restore_signal_handlers(self) -> None:
        if self._signals is not None:
            self._signals.restore()

    def _stop_deadline_passed(self, name: str) -> None:
        """On the watch thread: the graceful stop after ``name`` did not finish in time. This rank
        is stuck (in a hook, or in a collective waiting for a stuck peer): save what can be saved
        and end the process, before the scheduler's SIGKILL does it with nothing saved."""
        where = f"rank {self.rank} of {self.world_size}: " if self.world_size > 1 else ""
        log.error(
            "error: %straining did not stop within %gs of %s (stuck at epoch %d, step %d, stage %s): exiting",
            where,
            self.stop_timeout or 0,
            name,
            self.epoch + 1,
            self.global_step,
            self.stage,
        )
        with contextlib.suppress(Exception):
            # A background checkpoint write in flight finishes first (a bounded wait: the
            # scheduler's SIGKILL is coming), then the emergency checkpoint.
            pending = getattr(getattr(self, "checkpoint_writer", None), "wait", None)
            if callable(pending):
                pending(timeout=3.0)
            self._emergency_checkpoint(DistributedError(f"{name}: the stop deadline passed", rank=self.rank))
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(signals.exit_code_for(name))

    # ------------------------------------------------------------------ validation
    @checked_keywords
    def validate(self, data: Iterable[Any]) -> dict[str, float]:
        """Run the validation loop once and return its metrics (``val/loss``, ``val/acc``, ...)."""
        self._check_data(data, "data")
        self.stage = "validate"
        self.num_val_batches = safe_len(data)
        failed = False
        try:
            self.model.to(self.device)
            metrics = loops.run_validation(self, data)
        except BaseException as exc:
            failed = True
            self._on_exception(exc)
            raise
        finally:
            self._teardown("validate", failed)
        return metrics

    # ------------------------------------------------------------------ prediction
    @checked_keywords
    def predict(self, data: Iterable[Any]) -> Any:
        """Run the model over ``data``; returns the predictions, concatenated when they are tensors."""
        self._check_data(data, "data")
        self.stage = "predict"
        was_training = self.model.training
        failed = False
        try:
            results = loops.run_prediction(self, data)
        except BaseException as exc:
            failed = True
            self._on_exception(exc)
            raise
        finally:
            self.model.train(was_training)
            self._teardown("predict", failed)
        if results and all(isinstance(r, torch.Tensor) for r in results):
            return torch.cat(results)
        return results

    # ------------------------------------------------------------------ export
    def export_formats(self) -> list[str]:
        """Formats some plugin can export to (``torchscript``, ``onnx``, ...)."""
        return sorted({fmt for found in self.hooks.export_formats() for fmt in (found or ())})

    @checked_keywords
    def export(
        self,
        format: str = "torchscript",
        path: str | os.PathLike[str] | None = None,
        *,
        example_input: Any = None,
    ) -> Path:
        """Export the model with the plugin providing ``format``; returns the file written.

        :param format: a format name; :meth:`export_formats` lists them.
        :param path: output file; default ``save_dir/weights/model.<format>``.
        :param example_input: a batch of model inputs for tracing; default the first batch the
            trainer saw (or the task's example).
        :raises ExportFormatError: no plugin provides ``format``; lists those that exist.
        """
        available = self.export_formats()
        if format not in available:
            raise ExportFormatError(format, available)
        if example_input is not None:
            self.example_input = example_input
        if self.example_input is None:
            raise ConfigError(
                "export needs an example input: pass example_input=..., or run fit/validate/predict first"
            )
        target = Path(path) if path is not None else self.save_dir / "weights" / f"model.{format}"
        try:  # before the exporter runs: one line instead of its OSError traceback
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create {target.parent} for the export: {exc.strerror or exc}") from exc
        if not os.access(target.parent, os.W_OK) or target.is_dir():
            raise ConfigError(
                f"cannot write the export to {target}: " + ("it is a directory" if target.is_dir() else "not writable")
            )
        model = copy.deepcopy(self.unwrapped_model).cpu().eval()
        model._compiled_call_impl = None  # a copy taken during a compiled fit runs its own forward
        self.stage = "export"
        self.hooks.on_export_start(format)
        answer = self.hooks.export_model(model, format, target)
        if answer is None:
            raise ExportFormatError(format, available)
        value, provider = answer
        if not isinstance(value, (str, os.PathLike)) or not Path(value).is_file():
            raise PluginError(
                f"plugin {provider!r}: export_model must return the path of the file it wrote "
                f"(or None to decline), got {value!r}",
                plugin=provider,
            )
        written = Path(value)
        self.log_artifact(f"export:{format}", written)
        self.hooks.on_export_end(format, written)
        return written

    # ------------------------------------------------------------------ checkpoints
    def state_checkpoint(self, *, epoch_completed: bool | None = None, fire_hooks: bool = True) -> dict[str, Any]:
        """Build the checkpoint dict (see :mod:`trainhooks.checkpointing`), firing ``on_save_checkpoint``.

        :param epoch_completed: whether the current epoch's training finished; by default
            worked out from where training is (inside the batch loop, or after an epoch cut short
            by a stop, it is not), and a mid-epoch checkpoint records the position to resume at.
        :param fire_hooks: False for emergency checkpoints written while handling an error.
        """
        return resume_module.checkpoint_state(self, epoch_completed=epoch_completed, fire_hooks=fire_hooks)

    def _run_record(self) -> dict[str, Any]:
        """The settings that make this run this run (see :attr:`run_settings`): what a resume
        from the CLI reuses unless a flag overrides it. Plain values only (weights_only loads)."""
        options = {k: v for k, v in self.options.items() if _plain(v)}
        plugins = [r.name for r in self.plugin_manager.active() if r.source in ("builtin", "entrypoint", "module")]
        record: dict[str, Any] = {
            "epochs": self.epochs,
            "seed": self.seed,
            "precision": self.precision,
            "grad_clip_norm": self.grad_clip_norm,
            "options": options,
            "plugins": plugins,
            **self.controls.record(),
        }
        record.update({k: v for k, v in self.run_settings.items() if _plain(v)})
        return record

    def save_checkpoint(
        self,
        path: str | os.PathLike[str],
        *,
        epoch_completed: bool | None = None,
        also: Sequence[str | os.PathLike[str]] = (),
        background: bool = False,
        previous: str | os.PathLike[str] | None = None,
    ) -> Path:
        """Write a checkpoint atomically and fire ``on_model_save`` for each file; returns ``path``.

        :param also: more paths for the same checkpoint (``best.pt`` in an epoch that also
            writes ``last.pt``): built and serialised once, then copied, so ``on_save_checkpoint``
            fires once and ``on_model_save`` once per file.
        :param background: snapshot the state now (tensors copied) and serialise and write it on
            a background thread while training goes on (the checkpoint plugin does). The call
            returns before the file exists; ``on_model_save`` fires once it is durable, at the
            next save or :meth:`flush_checkpoints` (which ``fit`` calls when training ends).
        :param previous: keep the file ``path`` held until now under this name (the checkpoint
            plugin keeps ``weights/previous.pt``, auto-resume's fallback).
        :raises CheckpointError: the file cannot be written (the previous one is kept); for a
            background write, raised by the next save or by :meth:`flush_checkpoints`.
        """
        others = [Path(p) for p in also]
        self.flush_checkpoints()  # at most one write in flight; an earlier write's error surfaces here
        checkpoint = self.state_checkpoint(epoch_completed=epoch_completed)
        if background:
            self.checkpoint_writer.submit(
                checkpointing.snapshot(checkpoint), path, also=others, previous=previous, global_step=self.global_step
            )
            return Path(path)
        written = checkpointing.atomic_save(checkpoint, path, also=others, previous=previous)
        self.checkpoint_writer.durable_steps.update({p: self.global_step for p in [written, *others]})
        self.hooks.on_model_save(written)
        for other in others:
            if other != written:
                self.hooks.on_model_save(other)
        return written

    def flush_checkpoints(self) -> None:
        """Wait for a background checkpoint write; fire ``on_model_save`` for its files.

        :raises CheckpointError: the write failed (the previous file is unchanged).
        """
        self.checkpoint_writer.collect(self.hooks.on_model_save)

    def _flush_checkpoints_quietly(self) -> None:
        """:meth:`flush_checkpoints` while handling another error: a failed write is logged."""
        try:
            self.checkpoint_writer.collect(self.hooks.on_model_save)
        except Exception as exc:
            log.error("a background checkpoint write failed too: %s", exc)

    def load_checkpoint(self, path: str | os.PathLike[str]) -> dict[str, Any]:
        """Restore model, optimizer, scheduler, counters and plugin state; fires ``on_load_checkpoint``.

        :raises CheckpointError: the file is missing, corrupt, unsafe or not a trainhooks
            checkpoint, or does not fit this model/optimizer; the message names the file.
        """
        return resume_module.restore(self, path)

    def _emergency_checkpoint(self, exc: BaseException) -> None:
        """After a failure (``on_exception`` has fired): save what was trained, without hooks,
        to ``weights/emergency.pt``, never over ``last.pt``/``best.pt``."""
        first = getattr(self, "_first_step", None)
        if first is None or self.global_step <= first or not self.is_global_zero:
            return  # nothing was trained by this call: there is nothing to lose
        if self._updating:
            log.error(
                "not writing an emergency checkpoint: the failure interrupted an optimizer step "
                "(weights and step count may not match)"
            )
            return
        if isinstance(exc, CheckpointError) or isinstance(getattr(exc, "original", None), CheckpointError):
            return  # writing is what failed: do not try again
        path = self.save_dir / "weights" / "emergency.pt"
        self._flush_checkpoints_quietly()  # never race a background write of last.pt
        last = self.save_dir / "weights" / "last.pt"
        if self.checkpoint_writer.durable_steps.get(last) == self.global_step and last.is_file():
            log.error(
                "training failed; %s holds the last step (%d): resume with --resume %s", last, self.global_step, last
            )
            self.emergency_checkpoint = last  # an emergency.pt would hold the same step
            return
        try:
            finite = all(
                bool(torch.isfinite(t).all())
                for t in self.unwrapped_model.state_dict().values()
                if t.is_floating_point()
            )
            if not finite:
                log.error("not writing an emergency checkpoint: the model's weights are not finite")
                return
            checkpointing.atomic_save(self.state_checkpoint(fire_hooks=False), path)
        except (Exception, SystemExit) as inner:
            log.error("could not write an emergency checkpoint to %s: %s", path, inner)
            return
        self.log_artifact("emergency.pt", path)
        log.error("training failed; emergency checkpoint written to %s (resume with --resume %s)", path, path)
        self.emergency_checkpoint = path

    # ------------------------------------------------------------------ plumbing
    def _claim_save_dir(self, resume: Any) -> None:
        """Refuse to start a fresh run over a previous one in ``save_dir`` (unless ``overwrite``).

        Decided on rank 0, which writes the outputs, and agreed with the others (on another node
        the directory may not even exist), so every rank raises the same error.
        """
        problem = None
        if self.is_global_zero and resume is None:
            previous = rundir.previous_run_files(self.save_dir)
            if previous and self.overwrite:
                for path in previous:
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
                log.warning("overwrite: deleted the previous run's %s in %s", rundir.describe(previous), self.save_dir)
            elif previous:
                problem = (
                    f"save_dir {self.save_dir} already holds a run ({rundir.describe(previous)}); "
                    "continue it with --resume auto (fit(resume='auto')), start over in it with --overwrite "
                    "(Trainer(overwrite=True)), or choose another --save-dir"
                )
        problem = self.strategy.agree(problem, "the save_dir check")  # every rank refuses, or none
        if problem is not None:
            raise ConfigError(problem)

    def _check_limits(self, train_data: Iterable[Any], val_data: Iterable[Any] | None) -> None:
        """``limit_*_batches`` against the data as given (a fraction of it below one batch).

        Under torchrun each rank's shard is smaller: the fit checks again once the data is sharded.
        """
        apply_limit("limit_train_batches", self.limit_train_batches, safe_len(train_data))
        if val_data is not None:
            apply_limit("limit_val_batches", self.limit_val_batches, safe_len(val_data))

    def _ensure_save_dir(self) -> None:
        rundir.ensure_save_dir(self.save_dir)

    def _capture_example(self, batch: Any) -> None:
        x = model_inputs(batch)
        if isinstance(x, torch.Tensor) and x.dim() > 0:
            self.example_input = x[:1].detach().cpu().clone()

    @staticmethod
    def _check_data(data: Any, what: str) -> None:
        if data is None or not isinstance(data, Iterable):
            raise ConfigError(f"{what} must be a DataLoader or another iterable of batches, got {type(data).__name__}")
        if safe_len(data) == 0:  # else "finished (0 steps)" with untrained weights saved as best.pt
            dataset = getattr(data, "dataset", None)
            size = safe_len(dataset) if dataset is not None else None
            detail = f" (its dataset has {size} samples)" if size is not None else ""
            raise ConfigError(f"{what} has no batches{detail}: nothing to train or evaluate on; check the data source")

    def _on_exception(self, exc: BaseException) -> None:
        if getattr(exc, "_trainhooks_reported", False):
            return
        try:
            exc._trainhooks_reported = True  # type: ignore[attr-defined]
        except AttributeError:  # pragma: no cover - exceptions with __slots__
            pass
        try:
            self.hooks.on_exception(exc)
        except Exception as inner:
            log.error("on_exception failed while handling %s: %s", type(exc).__name__, inner)

    def _teardown(self, stage: str, failing: bool) -> None:
        try:
            self.hooks.teardown(stage)
        except HookError as exc:
            if failing:
                log.error("teardown failed while handling an error: %s", exc)
            else:
                raise
        finally:
            if self.stage == stage:
                self.stage = None

    def __repr__(self) -> str:
        return f"<Trainer model={type(self.unwrapped_model).__name__} epochs={self.epochs} save_dir={str(self.save_dir)!r}>"


def _plain(value: Any) -> bool:
    """A value ``torch.load(weights_only=True)`` reads back as it was."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_plain(v) for v in value)
    return False


__all__ = ["FitResult", "Trainer", "seed_everything"]
