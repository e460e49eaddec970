"""The training loops under test, each timed the same way.

Every loop trains a fresh model (fixed seeds) for ``epochs`` epochs and stamps the time (see
:class:`EpochClock`) through the framework's own per-epoch events (a plugin, a callback, an event
handler). Nothing is added to the per-step path of any loop. Set-up (building the Trainer) and
end-of-training work (plots) are outside the timed span; per-epoch work (metric conversion,
checkpoints, CSV rows) is inside the *whole epochs* number and outside the *steps only* one.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from benchmarks.workloads import Workload
from trainhooks import loopmap

NOOP_PLUGINS = 20
PER_STEP_HOOKS = loopmap.TRAIN_BATCH


@dataclass
class EpochClock:
    """Timestamps of one training run, and optionally the baton of a lock-step schedule.

    The loop calls ``epoch()`` when an epoch starts, ``steps_done()`` when its training steps are
    over (after the engine's own end-of-epoch reduction, before plugins' per-epoch work such as
    checkpoints) and ``done()`` when training ends. Per epoch that gives *whole* (start to the
    next epoch's start, or to the end: per-epoch work included) and *steps* (start to
    steps-done).

    With ``turn`` set (see :func:`benchmarks.measure.lockstep`), ``epoch()`` and ``done()`` hand
    control back to the scheduler and ``epoch()`` waits for this loop's next turn; the clock
    reads happen outside the waiting, so no scheduling time is counted.
    """

    clock: Callable[[], float] = time.perf_counter
    turn: Any = None
    starts: list[float] = field(default_factory=list)
    ends: list[float] = field(default_factory=list)
    leaves: list[float] = field(default_factory=list)

    def epoch(self) -> None:
        if self.starts:
            self.leaves.append(self.clock())
        if self.turn is not None:
            self.turn.wait_for_turn()
        self.starts.append(self.clock())

    def steps_done(self) -> None:
        self.ends.append(self.clock())

    def done(self) -> None:
        self.leaves.append(self.clock())
        if self.turn is not None:
            self.turn.finish()

    def per_epoch(self) -> list[tuple[float, float]]:
        """(whole, steps) seconds of each epoch, in order."""
        n = len(self.starts)
        if not (len(self.ends) == len(self.leaves) == n) or n == 0:
            raise RuntimeError(
                f"the loop stamped {n} epoch starts, {len(self.ends)} steps-done and {len(self.leaves)} ends"
            )
        return [(lv - st, en - st) for st, en, lv in zip(self.starts, self.ends, self.leaves)]


@dataclass(frozen=True)
class Loop:
    """One configuration of the benchmark table."""

    key: str
    label: str
    data_path: str
    """``dataloader``, ``prebatched`` or ``fast`` (trainhooks' in-memory fast path)."""
    run: Callable[[Workload, int, EpochClock], None]
    framework: str = "plain"
    requires: str | None = None
    """A module that must be importable (peers are optional: the ``bench`` extra)."""
    workloads: tuple[str, ...] = ("tiny", "small")
    """The workloads it runs on (the compiled loops only on ``small``: compiling is slow)."""

    def missing(self) -> str | None:
        """Why this loop cannot run here, or None."""
        if self.requires is None:
            return None
        import importlib.util

        if importlib.util.find_spec(self.requires) is None:
            return f"{self.requires} not installed (pip install -e '.[bench]')"
        return None


# ---------------------------------------------------------------------- plain PyTorch
def _plain(data_path: str, accumulate: int = 1, compiled: bool = False) -> Callable[[Workload, int, EpochClock], None]:
    def run(wl: Workload, epochs: int, clock: EpochClock) -> None:
        model = wl.model()
        optimizer = wl.make_optimizer(model)
        loss_fn = nn.CrossEntropyLoss()
        loader = wl.loader()
        forward = torch.compile(model) if compiled else model
        data: Any
        if data_path == "prebatched":
            data = list(loader)  # collated once, outside the timing; the same order every epoch
        elif data_path == "fast":
            from trainhooks.data import fast_batches

            data = fast_batches(loader)
            assert type(data) is not type(loader), "fast path not taken"
        else:
            data = loader
        model.train()
        if accumulate > 1:
            n_batches = len(loader)
            for _ in range(epochs):
                clock.epoch()
                for i, (x, y) in enumerate(data):
                    group = min(accumulate, n_batches - (i - i % accumulate))
                    (loss_fn(forward(x), y) / group).backward()
                    if (i + 1) % accumulate == 0 or i + 1 == n_batches:
                        optimizer.step()
                        optimizer.zero_grad(set_to_none=True)
                clock.steps_done()
            clock.done()
            return
        for _ in range(epochs):
            clock.epoch()
            for x, y in data:
                optimizer.zero_grad(set_to_none=True)
                loss = loss_fn(forward(x), y)
                loss.backward()
                optimizer.step()
            clock.steps_done()
        clock.done()

    return run


# ---------------------------------------------------------------------- trainhooks
def _noop_plugin_class() -> type:
    """A plugin implementing every per-step hook with an empty body, taking every argument."""
    import trainhooks

    class NoOp:
        @trainhooks.hookimpl
        def on_train_batch_start(self, trainer: Any, batch: Any, batch_idx: int) -> None:
            pass

        @trainhooks.hookimpl
        def on_before_backward(self, trainer: Any, loss: Any) -> None:
            pass

        @trainhooks.hookimpl
        def on_after_backward(self, trainer: Any) -> None:
            pass

        @trainhooks.hookimpl
        def on_before_optimizer_step(self, trainer: Any, optimizer: Any) -> None:
            pass

        @trainhooks.hookimpl
        def on_before_zero_grad(self, trainer: Any, optimizer: Any) -> None:
            pass

        @trainhooks.hookimpl
        def on_train_batch_end(self, trainer: Any, batch: Any, batch_idx: int, outputs: Any) -> None:
            pass

        @trainhooks.hookimpl
        def should_stop(self, trainer: Any) -> None:
            return None

    return NoOp


def noop_plugins(n: int = NOOP_PLUGINS) -> list[Any]:
    cls = _noop_plugin_class()
    return [cls() for _ in range(n)]


def _stamp_plugin(clock: EpochClock) -> Any:
    import trainhooks

    class Stamp:
        @trainhooks.hookimpl(tryfirst=True)
        def on_train_epoch_start(self) -> None:
            clock.epoch()

        @trainhooks.hookimpl(tryfirst=True)
        def on_train_epoch_end(self) -> None:
            clock.steps_done()

        @trainhooks.hookimpl(tryfirst=True)
        def on_train_end(self) -> None:
            clock.done()

    return Stamp()


@contextlib.contextmanager
def _scratch_dir() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="trainhooks-bench-") as tmp:
        yield tmp


def make_trainer(
    wl: Workload, epochs: int, plugins: str, fast: bool, extra: list[Any], save_dir: str, **settings: Any
) -> Any:
    """A trainhooks Trainer for ``wl``: ``plugins`` is ``none``, ``default``, ``noop20``, ``mlflow`` or ``wandb``."""
    from trainhooks import Trainer

    model = wl.model()
    objects = list(extra)
    if plugins == "noop20":
        objects += noop_plugins()
    elif plugins in TRACKERS:
        objects.append(tracker_plugin(plugins, save_dir))
    return Trainer(
        model,
        loss_fn=nn.CrossEntropyLoss(),
        optimizer=wl.make_optimizer(model),
        epochs=epochs,
        plugins=objects,
        default_plugins=plugins == "default",
        autoload=False,
        verbose=False,
        save_dir=save_dir,
        fast_data=fast,
        device="cpu",
        **settings,
    )


TRACKERS = {"mlflow": "trainhooks_mlflow", "wandb": "trainhooks_wandb"}
"""Tracker plugins of integrations/ (installed separately): ``plugins=`` value -> module."""


def tracker_plugin(name: str, save_dir: str) -> Any:
    """The tracker writing to a local store inside the run dir: SQLite for MLflow, offline W&B."""
    if name == "mlflow":
        from trainhooks_mlflow import MLflowTracker

        return MLflowTracker(tracking_uri=f"sqlite:///{os.path.abspath(save_dir)}/mlflow.db")
    from trainhooks_wandb import WandbTracker

    return WandbTracker(mode="offline", dir=save_dir)


def _trainhooks(plugins: str, fast: bool, **settings: Any) -> Callable[[Workload, int, EpochClock], None]:
    def run(wl: Workload, epochs: int, clock: EpochClock) -> None:
        with _scratch_dir() as tmp:
            trainer = make_trainer(
                wl, epochs, plugins, fast, [_stamp_plugin(clock)], os.path.join(tmp, "run"), **settings
            )
            trainer.fit(wl.loader())

    return run


# ---------------------------------------------------------------------- peers
@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence banners, warnings and progress bars (still rendered, into a buffer).

    Process-wide (``sys.stdout``, the warnings filters and loggers are global), so it is
    entered once around a whole measurement, never by the loops themselves, which run in
    threads.
    """
    sink = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        warnings.simplefilter("ignore")
        for name in ("pytorch_lightning", "lightning", "lightning.pytorch", "lightning_fabric", "ignite"):
            logging.getLogger(name).setLevel(logging.ERROR)
        yield


def _lightning(defaults: bool) -> Callable[[Workload, int, EpochClock], None]:
    def run(wl: Workload, epochs: int, clock: EpochClock) -> None:
        import pytorch_lightning as pl

        model = wl.model()
        optimizer = wl.make_optimizer(model)
        loss_fn = nn.CrossEntropyLoss()

        class Module(pl.LightningModule):
            def __init__(self) -> None:
                super().__init__()
                self.net = model

            def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
                x, y = batch
                out: torch.Tensor = loss_fn(self.net(x), y)
                return out

            def configure_optimizers(self) -> torch.optim.Optimizer:
                return optimizer

        class Stamp(pl.Callback):
            def on_train_epoch_start(self, trainer: Any, module: Any) -> None:
                clock.epoch()

            def on_train_epoch_end(self, trainer: Any, module: Any) -> None:
                clock.steps_done()

            def on_train_end(self, trainer: Any, module: Any) -> None:
                clock.done()

        with _scratch_dir() as tmp:
            if defaults:
                kwargs: dict[str, Any] = {"default_root_dir": tmp}
            else:
                kwargs = {
                    "logger": False,
                    "enable_checkpointing": False,
                    "enable_progress_bar": False,
                    "enable_model_summary": False,
                }
            trainer = pl.Trainer(
                max_epochs=epochs, accelerator="cpu", devices=1, callbacks=[Stamp()], num_sanity_val_steps=0, **kwargs
            )
            trainer.fit(Module(), wl.loader())
        wl.apply_threads()  # in case the framework changed them

    return run


def _ignite(wl: Workload, epochs: int, clock: EpochClock) -> None:
    from ignite.engine import Events, create_supervised_trainer

    model = wl.model()
    trainer = create_supervised_trainer(model, wl.make_optimizer(model), nn.CrossEntropyLoss())
    trainer.add_event_handler(Events.EPOCH_STARTED, lambda engine: clock.epoch())
    trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda engine: clock.steps_done())
    trainer.add_event_handler(Events.COMPLETED, lambda engine: clock.done())
    trainer.run(wl.loader(), max_epochs=epochs)


LOOPS: list[Loop] = [
    Loop("plain-dl", "plain loop, DataLoader (reference)", "dataloader", _plain("dataloader")),
    Loop("plain-pre", "plain loop, pre-batched tensors", "prebatched", _plain("prebatched")),
    Loop("plain-fast", "plain loop, trainhooks fast path", "fast", _plain("fast")),
    # A/A controls: the references again. Their ratio to the reference is the noise floor of the run.
    Loop("control-dl", "A/A control: plain loop, DataLoader, again", "dataloader", _plain("dataloader")),
    Loop("control-fast", "A/A control: plain loop, fast path, again", "fast", _plain("fast")),
    Loop("th-bare-dl", "trainhooks, no plugins", "dataloader", _trainhooks("none", False), "trainhooks"),
    Loop("th-noop-dl", "trainhooks, 20 no-op plugins", "dataloader", _trainhooks("noop20", False), "trainhooks"),
    Loop("th-default-dl", "trainhooks, default plugins", "dataloader", _trainhooks("default", False), "trainhooks"),
    Loop("th-bare", "trainhooks, no plugins", "fast", _trainhooks("none", True), "trainhooks"),
    Loop("th-noop", "trainhooks, 20 no-op plugins", "fast", _trainhooks("noop20", True), "trainhooks"),
    Loop("th-default", "trainhooks, default plugins", "fast", _trainhooks("default", True), "trainhooks"),
    # Per-epoch cost of the tracker plugins (integrations/), local stores: compare with th-bare.
    Loop(
        "th-mlflow",
        "trainhooks + mlflow (SQLite store)",
        "fast",
        _trainhooks("mlflow", True),
        "trainhooks",
        requires="trainhooks_mlflow",
    ),
    Loop(
        "th-wandb",
        "trainhooks + wandb (offline)",
        "fast",
        _trainhooks("wandb", True),
        "trainhooks",
        requires="trainhooks_wandb",
    ),
    # Loop controls (issue 13): gradient accumulation, torch.compile, against the same plain loop.
    Loop("plain-acc4", "plain loop, fast path, accumulating 4 batches", "fast", _plain("fast", accumulate=4)),
    Loop(
        "th-acc4",
        "trainhooks, no plugins, accumulate_grad_batches=4",
        "fast",
        _trainhooks("none", True, accumulate_grad_batches=4),
        "trainhooks",
    ),
    Loop(
        "plain-compiled",
        "plain loop, fast path, torch.compile(model)",
        "fast",
        _plain("fast", compiled=True),
        workloads=("small",),
    ),
    Loop(
        "th-compiled",
        "trainhooks, no plugins, compile=True",
        "fast",
        _trainhooks("none", True, compile=True),
        "trainhooks",
        workloads=("small",),
    ),
    Loop("ignite", "Ignite create_supervised_trainer", "dataloader", _ignite, "ignite", requires="ignite"),
    Loop(
        "pl-lean",
        "Lightning, progress/logger/checkpoint/summary off",
        "dataloader",
        _lightning(False),
        "lightning",
        requires="pytorch_lightning",
    ),
    Loop("pl-default", "Lightning defaults", "dataloader", _lightning(True), "lightning", requires="pytorch_lightning"),
]
LOOPS_BY_KEY = {loop.key: loop for loop in LOOPS}
SAME_PATH_REFERENCE = {"dataloader": "plain-dl", "prebatched": "plain-pre", "fast": "plain-fast"}
