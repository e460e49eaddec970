"""Dispatch micro-benchmarks: the cost of one hook call, facade vs pluggy vs a plain method loop.

Numbers are the best of several timeit repeats (the least disturbed), in nanoseconds per call.
"""

from __future__ import annotations

import tempfile
import timeit
from typing import Any

import torch

from benchmarks.loops import noop_plugins

IMPL_COUNTS = (0, 1, 5, 20)


def _trainer(n: int, profile: bool = False) -> Any:
    import trainhooks

    model = torch.nn.Linear(2, 2)
    return trainhooks.Trainer(
        model,
        loss_fn=torch.nn.MSELoss(),
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        plugins=noop_plugins(n),
        default_plugins=False,
        autoload=False,
        verbose=False,
        save_dir=tempfile.mkdtemp(prefix="trainhooks-micro-"),
        profile_hooks=profile,
    )


def _ns(fn: Any, number: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=7)) / number * 1e9


def dispatch_costs(number: int = 20000) -> list[tuple[str, float]]:
    """(what, ns per call) rows."""
    rows: list[tuple[str, float]] = []
    batch = (torch.zeros(1), torch.zeros(1))
    outputs: dict[str, Any] = {"loss": torch.zeros(())}

    def nothing() -> None:
        return None

    rows.append(("plain Python function call", _ns(nothing, number)))
    bound = [p.on_train_batch_end for p in noop_plugins(20)]

    def method_loop() -> None:
        for m in bound:
            m(None, batch, 0, outputs)

    rows.append(("plain loop over 20 pre-bound methods (4 arguments)", _ns(method_loop, number)))
    for n in IMPL_COUNTS:
        trainer = _trainer(n)
        hooks, hook = trainer.hooks, trainer.plugin_manager.hook

        def facade(hooks: Any = hooks) -> None:
            hooks.on_train_batch_end(batch, 0, outputs)

        def pluggy_call(hook: Any = hook, trainer: Any = trainer) -> None:
            hook.on_train_batch_end(trainer=trainer, batch=batch, batch_idx=0, outputs=outputs)

        rows.append((f"trainhooks facade `trainer.hooks.on_train_batch_end`, {n} impls", _ns(facade, number)))
        rows.append((f"pluggy `pm.hook.on_train_batch_end(...)`, {n} impls", _ns(pluggy_call, number)))
    trainer = _trainer(20)
    hooks = trainer.hooks
    rows.append(
        (
            "trainhooks facade, firstresult `should_stop`, 20 impls returning None",
            _ns(lambda: hooks.should_stop(), number),
        )
    )
    hook = trainer.plugin_manager.hook
    rows.append(("pluggy firstresult `should_stop`, 20 impls", _ns(lambda: hook.should_stop(trainer=trainer), number)))
    profiled = _trainer(20, profile=True)
    ph = profiled.hooks

    def profiled_call() -> None:
        ph.on_train_batch_end(batch, 0, outputs)

    rows.append(("trainhooks facade with --profile-hooks on, 20 impls", _ns(profiled_call, number)))
    return rows
