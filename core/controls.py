"""Loop controls: how long a fit runs, how often it validates and logs, how it steps.

Every control is a ``Trainer`` argument and a ``trainhooks fit`` flag (``docs/user-guide.md``,
"Loop controls"). :class:`LoopControls` checks them once, when the Trainer is built, so a value
that would silently change behaviour (a fraction where a count is meant, a zero that turns
something off) is one clear error naming the setting:

* ``accumulate_grad_batches`` N: one optimizer step per N micro-batches (gradients averaged);
* ``max_steps``, ``min_epochs``, ``min_steps``: the run's length besides ``epochs``;
* ``val_every_n_epochs`` / ``val_every_n_steps``: how often validation runs;
* ``limit_train_batches`` / ``limit_val_batches``: a count (int) or a fraction (float in (0, 1]);
* ``log_every_n_steps`` N: ``on_log`` fires every N optimizer steps with that step's values;
* ``dry_run``: one batch each of training, validation and prediction, no files kept;
* ``compile``: ``torch.compile`` the model (True, a backend name, or a dict of arguments);
* ``deterministic``: torch's deterministic algorithms, seeded workers.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, fields
from typing import Any

from trainhooks.errors import ConfigError

Limit = int | float | None


def is_integer(value: Any) -> bool:
    """An integer, Python's or NumPy's (``numbers.Integral``), but not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _count(name: str, value: Any, *, minimum: int = 1, optional: bool = True) -> int | None:
    if value is None and optional:
        return None
    if not is_integer(value) or value < minimum:
        kind = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        hint = " (a count of steps or batches, not a fraction)" if isinstance(value, float) else ""
        raise ConfigError(f"{name} must be {kind}{' or None' if optional else ''}, got {value!r}{hint}")
    return int(value)


def _limit(name: str, value: Any) -> Limit:
    """A batch limit: None (all), an int count >= 1, or a float fraction in (0, 1]."""
    if value is None:
        return None
    if not is_integer(value) and (isinstance(value, bool) or not isinstance(value, float)):
        raise ConfigError(f"{name} must be a batch count (int) or a fraction (float in (0, 1]), got {value!r}")
    if is_integer(value):
        if value < 1:
            raise ConfigError(f"{name} must be at least 1 batch, got {value!r}")
        return int(value)
    value = float(value)
    if not (0 < value <= 1) or math.isnan(value):
        raise ConfigError(
            f"{name} as a float is a fraction of the batches and must be in (0, 1], got {value!r}; "
            f"pass an int for a count (e.g. {name}={int(value) if value > 1 and float(value).is_integer() else 10})"
        )
    return value


def apply_limit(name: str, limit: Limit, length: int | None) -> int | None:
    """How many batches to take of data with ``length`` batches (None: all of an unsized iterable)."""
    if limit is None:
        return length
    if isinstance(limit, float):
        if length is None:
            raise ConfigError(f"{name}={limit} is a fraction, but the data has no len(): pass a batch count instead")
        taken = int(length * limit)
        if taken < 1:
            raise ConfigError(
                f"{name}={limit} of {length} batch{'es' if length != 1 else ''} is less than one batch; "
                "pass a larger fraction or a count"
            )
        return taken
    return limit if length is None else min(limit, length)


def compile_arguments(value: Any) -> dict[str, Any] | None:
    """``compile=`` as keyword arguments for ``torch.compile`` (None: do not compile)."""
    if value is None or value is False:
        return None
    if value is True:
        return {}
    if isinstance(value, str) and value:
        return {"backend": value}
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        check_compile_keywords(value)
        return dict(value)
    raise ConfigError(f"compile must be True/False, a backend name or a dict of torch.compile arguments, got {value!r}")


def check_compile_keywords(arguments: dict[str, Any]) -> None:
    """Refuse a ``compile=`` dict key that ``torch.compile`` has no argument for, naming the close ones.

    Checked when the Trainer is built (``torch.compile``'s signature costs nothing to read); the
    values (a backend name, a mode) are torch's to judge, when the fit compiles the model.
    """
    import inspect

    import torch

    from trainhooks.errors import suggest

    known = [name for name in inspect.signature(torch.compile).parameters if name != "model"]
    for key in arguments:
        if key not in known:
            close = suggest(key, known)
            hint = f"did you mean {' or '.join(close)}? " if close else ""
            raise ConfigError(
                f"compile={{{key!r}: ...}}: torch.compile has no argument {key!r} ({hint}its arguments: {', '.join(known)})"
            )


def compile_refused(arguments: dict[str, Any], exc: Exception) -> ConfigError:
    """torch.compile's refusal of a ``compile=`` value (an unknown backend or mode), naming the setting."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    shown = ", ".join(f"{k}={v!r}" for k, v in arguments.items()) or "True"
    return ConfigError(f"compile ({shown}): torch.compile refused it: {first}")


@dataclass(frozen=True)
class LoopControls:
    """The checked loop controls of one Trainer (see the module docstring)."""

    accumulate_grad_batches: int = 1
    max_steps: int | None = None
    min_epochs: int | None = None
    min_steps: int | None = None
    val_every_n_epochs: int | None = 1
    val_every_n_steps: int | None = None
    limit_train_batches: Limit = None
    limit_val_batches: Limit = None
    log_every_n_steps: int | None = 50
    dry_run: bool = False
    compile: Any = False
    deterministic: bool = False

    def __post_init__(self) -> None:
        # Checked, and stored as Python numbers (a NumPy integer is accepted, kept as an int).
        normal = object.__setattr__
        normal(
            self,
            "accumulate_grad_batches",
            _count("accumulate_grad_batches", self.accumulate_grad_batches, optional=False),
        )
        for name in (
            "max_steps",
            "min_epochs",
            "min_steps",
            "val_every_n_epochs",
            "val_every_n_steps",
            "log_every_n_steps",
        ):
            normal(self, name, _count(name, getattr(self, name)))
        for name in ("limit_train_batches", "limit_val_batches"):
            normal(self, name, _limit(name, getattr(self, name)))
        for name in ("dry_run", "deterministic"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be True or False, got {getattr(self, name)!r}")
        compile_arguments(self.compile)
        if self.min_steps is not None and self.max_steps is not None and self.min_steps > self.max_steps:
            raise ConfigError(f"min_steps={self.min_steps} is more than max_steps={self.max_steps}")

    def check_epochs(self, epochs: int) -> None:
        """``min_epochs`` cannot exceed ``epochs`` (the run could never stop where it should)."""
        if self.min_epochs is not None and self.min_epochs > epochs:
            raise ConfigError(f"min_epochs={self.min_epochs} is more than epochs={epochs}")

    def record(self) -> dict[str, Any]:
        """Plain values for the checkpoint's run record (resume continues with them)."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("dry_run", "compile")}
        out["compile"] = compile_arguments(self.compile) is not None
        return out


def validation_never_runs(
    epochs: int, val_every_n_epochs: int | None, val_every_n_steps: int | None, planned_steps: int | None
) -> str | None:
    """Why a fit given validation data would never validate, or None (it does, or it was turned off).

    ``planned_steps`` is the run's length in optimizer steps, None when the data has no len().
    Both settings None is validation turned off on purpose, not a mistake.
    """
    if val_every_n_epochs is None and val_every_n_steps is None:
        return None
    if val_every_n_epochs is not None and val_every_n_epochs <= epochs:
        return None
    if val_every_n_steps is not None and (planned_steps is None or val_every_n_steps <= planned_steps):
        return None
    why = []
    if val_every_n_epochs is not None:
        why.append(f"val_every_n_epochs={val_every_n_epochs} with epochs={epochs}")
    if val_every_n_steps is not None:
        why.append(f"val_every_n_steps={val_every_n_steps} with {planned_steps} steps planned")
    return (
        f"validation never runs in this fit ({' and '.join(why)}): the validation data goes unused "
        "and monitors of val/* metrics (early stopping, the best checkpoint) see no value"
    )


__all__ = ["LoopControls", "apply_limit", "compile_arguments", "validation_never_runs"]
