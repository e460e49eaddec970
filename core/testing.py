"""Testing helpers for plugin authors (and for trainhooks' own tests).

:class:`TrainhooksTester` runs a tiny but real fit / validate / predict with the plugins under
test and returns a :class:`RunResult`: which hooks fired, in what order, with what arguments,
plus the trainer and its outcome. pytest users get one per test as the ``trainhooks_tester``
fixture (:mod:`trainhooks.pytest_plugin`, registered automatically)::

    def test_my_plugin(trainhooks_tester):
        result = trainhooks_tester.fit(my_plugin, epochs=2)
        result.assert_order("on_train_epoch_end", "on_fit_epoch_end")
        assert result.count("on_fit_epoch_end") == 2
        assert result.fit_result.stop_reason == "completed 2 epochs"

Underneath, :class:`HookRecorder` is a plugin implementing every hook; register it beside the
plugin under test in a Trainer of your own and inspect the calls the same way::

    recorder = HookRecorder()
    trainer = Trainer(model, loss_fn=..., plugins=[my_plugin, recorder], default_plugins=False)
    trainer.fit(train, val)
    assert recorder.names().count("on_train_epoch_end") == trainer.epochs
    assert recorder.first("on_model_save").kwargs["path"].exists()

It records at the end of each hook's call order (``trylast``), so it sees what the other
plugins did. :func:`tiny_digits` and :func:`tiny_model` give small real loaders and a model;
:func:`tiny_trainer` a quiet Trainer around them; :class:`StepLog` and :class:`SignalAt` are
callbacks for tracker tests (what ``on_log`` handed over; a real SIGTERM at a chosen batch).
Nothing here imports torch until it is used.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainhooks.callbacks import hook_signatures
from trainhooks.hookspecs.markers import hookimpl

if TYPE_CHECKING:
    from trainhooks.trainer import FitResult, Trainer


@dataclass
class HookCall:
    """One recorded hook call: the hook's name, its arguments, and trainer counters at the time."""

    name: str
    kwargs: dict[str, Any]
    epoch: int | None = None
    global_step: int | None = None
    batch_idx: int | None = None
    stage: str | None = None

    def __repr__(self) -> str:
        args = ", ".join(k for k in self.kwargs if k != "trainer")
        return f"HookCall({self.name}({args}) epoch={self.epoch} step={self.global_step})"


@dataclass
class _RecorderBase:
    calls: list[HookCall] = field(default_factory=list)
    skip: frozenset[str] = frozenset()

    def _record(self, name: str, kwargs: dict[str, Any]) -> None:
        if name in self.skip:
            return
        trainer = kwargs.get("trainer")
        self.calls.append(
            HookCall(
                name,
                kwargs,
                epoch=getattr(trainer, "epoch", None),
                global_step=getattr(trainer, "global_step", None),
                batch_idx=getattr(trainer, "batch_idx", None),
                stage=getattr(trainer, "stage", None),
            )
        )

    def names(self) -> list[str]:
        """Hook names in call order."""
        return [c.name for c in self.calls]

    def of(self, name: str) -> list[HookCall]:
        """All recorded calls of hook ``name``."""
        return [c for c in self.calls if c.name == name]

    def first(self, name: str) -> HookCall:
        """The first call of hook ``name`` (AssertionError if it never fired)."""
        found = self.of(name)
        assert found, f"hook {name!r} never fired; fired: {sorted(set(self.names()))}"
        return found[0]

    def count(self, name: str) -> int:
        return len(self.of(name))

    def __iter__(self) -> Iterator[HookCall]:
        return iter(self.calls)

    def clear(self) -> None:
        self.calls.clear()


def _build_recorder() -> type:
    namespace: dict[str, Any] = {"hookimpl": hookimpl}
    lines = ["class HookRecorder(_RecorderBase):"]
    lines.append('    """Records every hook call; see the module docstring."""')
    lines.append("    __hash__ = object.__hash__")
    lines.append("    __eq__ = object.__eq__")
    for name, args in hook_signatures().items():
        params = ", ".join(("self", *args))
        kwargs = ", ".join(f"{a!r}: {a}" for a in args)
        lines.append("    @hookimpl(trylast=True)")
        lines.append(f"    def {name}({params}):")
        lines.append(f"        self._record({name!r}, {{{kwargs}}})")
    namespace["_RecorderBase"] = _RecorderBase
    exec("\n".join(lines), namespace)
    cls: type = namespace["HookRecorder"]
    cls.__module__ = __name__
    return cls


HookRecorder: Any = _build_recorder()
"""A plugin that records every hook call (see :class:`HookCall`)."""


def tiny_digits(n_train: int = 96, n_val: int = 64, batch_size: int = 32, seed: int = 0) -> tuple[Any, Any]:
    """Small real (train, val) DataLoaders from scikit-learn's digits, for fast plugin tests."""
    import torch
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.tensor(data.data[: n_train + n_val], dtype=torch.float32) / 16.0
    y = torch.tensor(data.target[: n_train + n_val], dtype=torch.int64)
    gen = torch.Generator().manual_seed(seed)
    train = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x[:n_train], y[:n_train]), batch_size=batch_size, shuffle=True, generator=gen
    )
    val = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x[n_train:], y[n_train:]), batch_size=batch_size)
    return train, val


def tiny_model(seed: int = 0) -> Any:
    """A 64-16-10 MLP for the digits data."""
    import torch

    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(64, 16), torch.nn.ReLU(), torch.nn.Linear(16, 10))


def tiny_trainer(
    save_dir: str | Path, *, plugins: Sequence[Any] = (), epochs: int = 3, **trainer_kwargs: Any
) -> Trainer:
    """A real, quiet Trainer for :func:`tiny_digits`: :func:`tiny_model`, cross entropy, SGD at
    lr 0.1, seed 0, writing to ``save_dir``.

    What tests that read a run back share (tracker plugins, integrations): their assertions
    check these settings (``lr`` 0.1, ``optimizer`` SGD, ``seed`` 0), so one place builds them.
    ``plugins`` run as given; the environment's other plugins load as in any Trainer unless
    ``default_plugins=False`` or ``autoload=False`` is passed. Any keyword argument of
    ``Trainer`` (``model=``, ``optimizer=``, ``options=``, ``callbacks=``...) overrides these.
    """
    import torch

    from trainhooks.trainer import Trainer

    model = trainer_kwargs.pop("model", None)
    if model is None:
        model = tiny_model()
    trainer_kwargs.setdefault("loss_fn", torch.nn.CrossEntropyLoss())
    if "optimizer" not in trainer_kwargs:
        trainer_kwargs["optimizer"] = torch.optim.SGD(model.parameters(), lr=0.1)
    trainer_kwargs.setdefault("seed", 0)
    trainer_kwargs.setdefault("verbose", False)
    return Trainer(model, epochs=epochs, save_dir=save_dir, plugins=list(plugins), **trainer_kwargs)


class StepLog:
    """A callback keeping what ``on_log`` hands over between epoch ends: ``steps``, a list of
    ``(global step, metrics)``. A tracker's per-step series should hold exactly these; pass it
    in ``callbacks=`` beside the tracker under test."""

    def __init__(self) -> None:
        self.steps: list[tuple[int, dict[str, float]]] = []

    def on_log(self, trainer: Trainer, metrics: dict[str, float], step: int, epoch_end: bool) -> None:
        if not epoch_end:
            self.steps.append((step, dict(metrics)))


class SignalAt:
    """A callback sending this process a real signal after batch ``batch_idx`` of epoch ``epoch``
    (both 0-based; SIGTERM by default): the Trainer stops gracefully there, writes its
    checkpoint and reports the stop, as after a pre-emption."""

    def __init__(self, epoch: int = 1, batch_idx: int = 0, signum: int | None = None) -> None:
        import signal

        self.epoch, self.batch_idx = epoch, batch_idx
        self.signum = signal.SIGTERM if signum is None else signum

    def on_train_batch_end(self, trainer: Trainer) -> None:
        if trainer.epoch == self.epoch and trainer.batch_idx == self.batch_idx:
            import os

            os.kill(os.getpid(), self.signum)


# ---------------------------------------------------------------------------- plugin testing
_UNSET: Any = object()


@dataclass
class RunResult:
    """One tiny run made by :class:`TrainhooksTester`: the trainer, its recorder and the outcome.

    The recorder sees every hook call from the trainer's construction on (``add_options``,
    ``configure``) to ``teardown``. It runs after the plugins under test (``trylast``), so it
    does not record a call that never reached it: a firstresult hook (``should_stop``,
    ``export_model``) answered by an earlier plugin (check ``fit_result.stop_reason`` and
    ``stopped_by``), or a hook in which a plugin raised (``on_exception`` then names it).
    """

    stage: str
    """``"fit"``, ``"validate"`` or ``"predict"``."""
    trainer: Trainer
    """The :class:`~trainhooks.Trainer` that ran (``trainer.options``, ``save_dir``, ``plugin_manager``...)."""
    recorder: Any
    """The :class:`HookRecorder` registered after the plugins under test."""
    output: Any = None
    """What the run returned: a FitResult, the validation metrics, or the predictions (None
    while running, or when the run raised)."""

    # ------------------------------------------------------------------ the outcome
    @property
    def fit_result(self) -> FitResult:
        """The :class:`~trainhooks.FitResult` of a fit (stop_reason, stopped_by, metrics, history...)."""
        if self.stage != "fit" or self.output is None:
            raise AttributeError(f"this {self.stage or 'unfinished'} run has no FitResult (not a completed fit)")
        result: FitResult = self.output
        return result

    @property
    def metrics(self) -> dict[str, float]:
        """``trainer.metrics`` after the run."""
        return dict(self.trainer.metrics)

    @property
    def plugins(self) -> list[str]:
        """Names of the registered plugins, in registration (= call) order, recorder excluded."""
        return [r.name for r in self.trainer.plugin_manager.active() if r.plugin is not self.recorder]

    def plugin_hooks(self, name: str) -> list[str]:
        """Hooks the plugin registered as ``name`` implements, in documentation order.

        A plugin given by entry-point name is registered under that name; a module under its
        ``__name__``; an object under its class name.
        """
        if not self.trainer.plugin_manager.has_plugin(name):
            raise AssertionError(f"no plugin {name!r} is registered; registered: {self.plugins}")
        hooks: list[str] = self.trainer.plugin_manager.plugin_hooks(name)
        return hooks

    # ------------------------------------------------------------------ which hooks fired
    @property
    def calls(self) -> list[HookCall]:
        """Every recorded hook call, in order."""
        return list(self.recorder.calls)

    def names(self) -> list[str]:
        """Names of the hooks that fired, in order (one entry per call)."""
        return [c.name for c in self.recorder.calls]

    def of(self, hook: str) -> list[HookCall]:
        """The calls of ``hook`` (each with ``.kwargs``, ``.epoch``, ``.global_step``, ``.stage``)."""
        return [c for c in self.recorder.calls if c.name == _known_hook(hook)]

    def first(self, hook: str) -> HookCall:
        """The first call of ``hook``; AssertionError naming the hooks that did fire if none."""
        found = self.of(hook)
        if not found:
            raise AssertionError(f"hook {hook!r} never fired; fired: {_fired_summary(self.names())}")
        return found[0]

    def count(self, hook: str) -> int:
        """How many times ``hook`` fired."""
        return len(self.of(hook))

    def fired(self, hook: str) -> bool:
        """Whether ``hook`` fired at least once."""
        return bool(self.of(hook))

    # ------------------------------------------------------------------ assertions
    def assert_fired(self, *hooks: str) -> None:
        """Each of ``hooks`` fired at least once."""
        missing = [h for h in hooks if not self.fired(h)]
        if missing:
            raise AssertionError(f"hooks never fired: {missing}; fired: {_fired_summary(self.names())}")

    def assert_not_fired(self, *hooks: str) -> None:
        """None of ``hooks`` fired."""
        fired = [h for h in hooks if self.fired(h)]
        if fired:
            raise AssertionError(f"hooks fired but should not have: {[f'{h} x{self.count(h)}' for h in fired]}")

    def assert_order(self, *hooks: str) -> None:
        """``hooks`` fired in this relative order (other hooks may come in between).

        Each hook is matched to its first call after the previous hook's match, so
        ``assert_order("on_train_epoch_end", "on_fit_epoch_end", "on_train_end")`` holds for a
        fit of any length.
        """
        for hook in hooks:
            _known_hook(hook)
        names = self.names()
        start = 0
        for i, hook in enumerate(hooks):
            try:
                start = names.index(hook, start) + 1
            except ValueError:
                after = f" after {hooks[i - 1]!r}" if i else ""
                raise AssertionError(
                    f"expected {hook!r} to fire{after} (order {list(hooks)}); fired: {_fired_summary(names)}"
                ) from None


def _known_hook(hook: str) -> str:
    """``hook`` itself; a ValueError with suggestions for names that are no hook (typos would
    otherwise make ``count("on_epoch_end") == 0`` pass silently)."""
    known = hook_signatures()
    if hook not in known:
        from trainhooks.errors import did_you_mean

        raise ValueError(f"{hook!r} is not a trainhooks hook{did_you_mean(hook, known)}")
    return hook


def _fired_summary(names: list[str]) -> str:
    """``a, b x3, c`` (first-fired order) — readable even for thousands of per-batch calls."""
    counts: dict[str, int] = {}
    for name in names:
        counts[name] = counts.get(name, 0) + 1
    return ", ".join(f"{n} x{c}" if c > 1 else n for n, c in counts.items()) or "nothing"


class TrainhooksTester:
    """Runs tiny but real trainings with the plugins under test, recording every hook call.

    What the ``trainhooks_tester`` pytest fixture returns (see :mod:`trainhooks.pytest_plugin`);
    usable without pytest too. Every run builds a fresh :class:`~trainhooks.Trainer` with

    * ``default_plugins=False``: only the plugins you pass run, not whatever else is installed
      in the environment (name an installed plugin, e.g. ``"torchscript"``, to load it from its
      entry point);
    * a :class:`HookRecorder` registered after them;
    * a 64-16-10 MLP, cross entropy and Adam, ``device="cpu"``, on 96 training and 64
      validation digits from scikit-learn (three and two batches): a fit of two epochs takes a
      fraction of a second;
    * ``save_dir`` a fresh directory under :attr:`path`.

    Any keyword argument of ``Trainer`` (``options=``, ``callbacks=``, ``loss_fn=``, ``model=``,
    ``device=``, ``seed=``...) overrides these.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        """Where the runs write (``run1``, ``run2``, ...)."""
        self.last: RunResult | None = None
        """The latest run, also when it raised (inspect ``last.recorder`` after ``pytest.raises``)."""
        self._runs = 0
        self._data: tuple[Any, Any] | None = None

    # ------------------------------------------------------------------ building blocks
    def data(self) -> tuple[Any, Any]:
        """The default (train, val) DataLoaders: 3 and 2 batches of 32 real digits (made once)."""
        if self._data is None:
            self._data = tiny_digits(n_train=96, n_val=64, batch_size=32)
        return self._data

    def trainer(self, *plugins: Any, **trainer_kwargs: Any) -> Trainer:
        """A Trainer with ``plugins`` (objects, modules or installed plugin names) and a recorder.

        :attr:`last` holds its (not yet run) :class:`RunResult`; :meth:`fit` and friends use
        this and then run it.
        """
        import torch

        from trainhooks.trainer import Trainer

        if "plugins" in trainer_kwargs:
            raise TypeError("pass the plugins under test positionally: tester.fit(my_plugin, 'other_plugin')")
        recorder = HookRecorder()
        self._runs += 1
        model = trainer_kwargs.pop("model", None)
        if model is None:
            model = tiny_model()
        trainer_kwargs.setdefault("loss_fn", torch.nn.CrossEntropyLoss())
        trainer_kwargs.setdefault("epochs", 2)
        trainer_kwargs.setdefault("device", "cpu")
        trainer_kwargs.setdefault("default_plugins", False)
        trainer_kwargs.setdefault("save_dir", self.path / f"run{self._runs}")
        trainer = Trainer(model, plugins=[*plugins, recorder], **trainer_kwargs)
        self.last = RunResult(stage="", trainer=trainer, recorder=recorder)
        return trainer

    # ------------------------------------------------------------------ runs
    def fit(
        self,
        *plugins: Any,
        epochs: int = 2,
        train_data: Any = None,
        val_data: Any = _UNSET,
        resume: str | Path | None = None,
        **trainer_kwargs: Any,
    ) -> RunResult:
        """Train for ``epochs`` epochs with ``plugins``; returns the run (``.fit_result``).

        :param train_data: batches to train on (default: the tiny digits).
        :param val_data: validation batches; default the tiny digits, ``None`` for no validation.
        :param resume: a checkpoint to continue from (``Trainer.fit(resume=...)``).
        """
        default_train, default_val = self.data()
        train_data = default_train if train_data is None else train_data
        val_data = default_val if val_data is _UNSET else val_data
        trainer = self.trainer(*plugins, epochs=epochs, **trainer_kwargs)
        return self._run("fit", lambda: trainer.fit(train_data, val_data, resume=resume))

    def validate(self, *plugins: Any, data: Any = None, **trainer_kwargs: Any) -> RunResult:
        """Validate (an untrained model) on ``data`` (default: the tiny validation digits)."""
        data = self.data()[1] if data is None else data
        trainer = self.trainer(*plugins, **trainer_kwargs)
        return self._run("validate", lambda: trainer.validate(data))

    def predict(self, *plugins: Any, data: Any = None, **trainer_kwargs: Any) -> RunResult:
        """Predict (with an untrained model) on ``data`` (default: the tiny validation digits)."""
        data = self.data()[1] if data is None else data
        trainer = self.trainer(*plugins, **trainer_kwargs)
        return self._run("predict", lambda: trainer.predict(data))

    def _run(self, stage: str, run: Callable[[], Any]) -> RunResult:
        result = self.last
        assert result is not None
        result.stage = stage
        result.output = run()
        return result
