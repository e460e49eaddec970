"""Tasks: what ``trainhooks fit`` trains. The built-in default is scikit-learn's digits.

A task is a function returning a :class:`Task`. ``trainhooks fit --task mypkg.tasks:my_task``
imports it and calls it with whichever of ``batch_size``, ``lr``, ``seed``, ``epochs`` it
accepts (values the user did not give on the command line are left to the task's defaults)::

    def my_task(batch_size: int = 64, lr: float = 1e-3, seed: int = 0) -> trainhooks.Task:
        model = ...
        return trainhooks.Task(model=model, train_data=train_loader, val_data=val_loader,
                               loss_fn=torch.nn.CrossEntropyLoss(),
                               optimizer=torch.optim.Adam(model.parameters(), lr=lr))
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from typing import Any

import torch
from torch import nn

from trainhooks.errors import TaskError


@dataclass
class Task:
    """Everything needed to train, validate, predict and export one model."""

    model: nn.Module
    train_data: Iterable[Any] | None = None
    val_data: Iterable[Any] | None = None
    loss_fn: Callable[..., torch.Tensor] | None = None
    optimizer: torch.optim.Optimizer | Callable[..., torch.optim.Optimizer] | None = None
    lr_scheduler: Any = None
    predict_data: Iterable[Any] | None = None
    example_input: torch.Tensor | None = None
    name: str = "task"


def digits_task(
    batch_size: int = 32,
    lr: float = 5e-3,
    seed: int = 0,
    epochs: int = 10,
    hidden: int = 64,
    val_fraction: float = 0.2,
) -> Task:
    """The built-in default task: an MLP (64-hidden-10) on scikit-learn's bundled digits.

    1797 8x8 grey-scale digits, pixel values scaled to [0, 1], a seeded 80/20 split, Adam (lr 5e-3),
    cross entropy and a cosine learning-rate schedule over ``epochs``: about 97% validation
    accuracy in 10 epochs, in seconds on a CPU, with no download.
    """
    from sklearn.datasets import load_digits  # imported here: scikit-learn is slow to import

    if batch_size < 1:
        raise TaskError(f"batch_size must be >= 1, got {batch_size}")
    if not 0.0 < val_fraction < 1.0:
        raise TaskError(f"val_fraction must be between 0 and 1, got {val_fraction}")
    data = load_digits()
    x = torch.tensor(data.data, dtype=torch.float32) / 16.0
    y = torch.tensor(data.target, dtype=torch.int64)
    split_gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(x), generator=split_gen)
    n_val = int(len(x) * val_fraction)
    val_idx, train_idx = order[:n_val], order[n_val:]
    train_set = torch.utils.data.TensorDataset(x[train_idx], y[train_idx])
    val_set = torch.utils.data.TensorDataset(x[val_idx], y[val_idx])
    train_loader = torch.utils.data.DataLoader(
        train_set, batch_size=batch_size, shuffle=True, generator=torch.Generator().manual_seed(seed)
    )
    val_loader = torch.utils.data.DataLoader(val_set, batch_size=max(batch_size, 256), shuffle=False)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(epochs, 1))
    return Task(
        model=model,
        train_data=train_loader,
        val_data=val_loader,
        loss_fn=nn.CrossEntropyLoss(),
        optimizer=optimizer,
        lr_scheduler=scheduler,
        predict_data=val_loader,
        example_input=x[:1],
        name="digits",
    )


DEFAULT_TASK = "trainhooks.tasks:digits_task"


def load_task(spec: str | None, **params: Any) -> Task:
    """Import ``module:function`` and call it with the parameters it accepts.

    :param spec: ``"package.module:function"``; None for the built-in digits task.
    :param params: candidate keyword arguments; ``None`` values are dropped (task default).
    :raises TaskError: the spec is malformed, not importable, not callable, raises, or does not
        return a :class:`Task` (a dict with Task's fields is accepted too).
    """
    spec = spec or DEFAULT_TASK
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise TaskError(f"--task {spec!r}: expected 'package.module:function'")
    try:
        from trainhooks.plugin_manager import import_user_module  # the current directory is searched too

        module = import_user_module(module_name)
    except Exception as exc:
        raise TaskError(f"--task {spec!r}: cannot import module {module_name!r}: {type(exc).__name__}: {exc}") from exc
    factory = getattr(module, attr, None)
    if factory is None or not callable(factory):
        raise TaskError(f"--task {spec!r}: module {module_name!r} has no callable {attr!r}")
    params = {k: v for k, v in params.items() if v is not None}
    try:
        sig = inspect.signature(factory)
        takes_all = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
        kwargs = params if takes_all else {k: v for k, v in params.items() if k in sig.parameters}
    except (TypeError, ValueError):
        kwargs = {}
    try:
        result = factory(**kwargs)
    except TaskError:
        raise
    except Exception as exc:
        raise TaskError(f"--task {spec!r} raised {type(exc).__name__}: {exc}") from exc
    if isinstance(result, dict):
        allowed = {f.name for f in fields(Task)}
        extra = set(result) - allowed
        if extra or "model" not in result:
            raise TaskError(
                f"--task {spec!r} returned a dict with keys {sorted(result)}; a task needs 'model' "
                f"and may have {sorted(allowed - {'model'})}"
            )
        result = Task(**result)
    if not isinstance(result, Task):
        raise TaskError(f"--task {spec!r} returned {type(result).__name__}, expected trainhooks.Task")
    if not isinstance(result.model, nn.Module):
        raise TaskError(f"--task {spec!r}: Task.model must be a torch.nn.Module, got {type(result.model).__name__}")
    return result
