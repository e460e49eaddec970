"""Testing helpers for plugin authors (and for trainhooks' own tests).

:class:`HookRecorder` is a plugin implementing every hook; register it beside the plugin under
test and inspect which hooks fired, in what order, with what arguments::

    recorder = HookRecorder()
    trainer = Trainer(model, loss_fn=..., plugins=[my_plugin, recorder], default_plugins=False)
    trainer.fit(train, val)
    assert recorder.names().count("on_train_epoch_end") == trainer.epochs
    assert recorder.first("on_model_save").kwargs["path"].exists()

It records at the end of each hook's call order (``trylast``), so it sees what the other
plugins did. A test-data helper, :func:`tiny_digits`, gives small real loaders.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from trainhooks.callbacks import hook_signatures
from trainhooks.hookspecs.markers import hookimpl


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
