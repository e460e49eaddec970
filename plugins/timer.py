"""``timer``: stop after a wall-clock budget, mid-epoch if needed.

Opt-in: ``trainhooks fit -p timer --max-time 00:10:00`` (also ``DD:HH:MM:SS``, ``90s``, ``15m``,
``2h``, or plain seconds). The budget is checked after every batch (a clock read, no device
sync); the stop reason says the budget and the time used. Time already spent is saved in
checkpoints, so a resumed run gets only what is left of the budget: a run the timer stopped can
be resumed (``--resume .../last.pt --max-time`` with a bigger budget), unlike one that
finished or early stopping ended.
"""

from __future__ import annotations

import re
import time
from typing import Any

import trainhooks
from trainhooks import Option


def parse_duration(text: str | float | int) -> float:
    """a duration (HH:MM:SS, 90s, 15m, 2h or seconds).

    Seconds in ``HH:MM:SS``, ``DD:HH:MM:SS``, ``MM:SS``, ``90s``/``15m``/``2h``/``1d`` or a number."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        seconds = float(text)
    else:
        raw = str(text).strip()
        unit = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([smhd])", raw)
        if unit:
            seconds = float(unit.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit.group(2)]
        elif re.fullmatch(r"\d+(?:\.\d+)?", raw):
            seconds = float(raw)
        elif re.fullmatch(r"\d+(:\d{1,2}){1,3}", raw):
            parts = [int(p) for p in raw.split(":")]
            weights = [86400, 3600, 60, 1][-len(parts) :]
            seconds = float(sum(p * w for p, w in zip(parts, weights)))
        else:
            raise trainhooks.ConfigError(
                f"timer: cannot read duration {text!r}; use HH:MM:SS, DD:HH:MM:SS, 90s, 15m, 2h or seconds"
            )
    if not seconds > 0:
        raise trainhooks.ConfigError(f"timer: the time budget must be positive, got {text!r}")
    return seconds


def format_duration(seconds: float) -> str:
    whole = round(seconds)
    return f"{whole // 3600:02d}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


class Timer(trainhooks.Callback):
    """Stop training once ``max_time`` has elapsed."""

    default_enabled = False
    # A used-up budget ends this run, not the training: ``--resume`` continues it (with a
    # bigger --max-time, since the time already spent counts).
    resumable_stop = True

    max_time = Option(parse_duration, None, "wall-clock budget, e.g. 00:10:00 or 2h")

    elapsed_before = 0.0
    started: float | None = None

    def configure(self, trainer: trainhooks.Trainer) -> None:
        if self.max_time is None:
            raise trainhooks.ConfigError("timer is enabled but has no budget: pass --max-time (e.g. 00:10:00)")

    def on_fit_start(self, trainer: trainhooks.Trainer) -> None:
        # A new run gets the whole budget (a resume restores the time already spent).
        self.elapsed_before, self.started = 0.0, None

    def on_train_start(self, trainer: trainhooks.Trainer) -> None:
        if self.max_time is not None and self.elapsed_before >= self.max_time:
            raise trainhooks.ConfigError(
                f"timer: the resumed run already used {format_duration(self.elapsed_before)} of its "
                f"{format_duration(self.max_time)} budget; pass a bigger --max-time to train further"
            )
        self.started = time.monotonic()

    def elapsed(self) -> float:
        return self.elapsed_before + (time.monotonic() - self.started if self.started is not None else 0.0)

    def should_stop(self, trainer: trainhooks.Trainer) -> str | None:
        if self.max_time is None or self.started is None:
            return None
        used = self.elapsed()
        if used >= self.max_time:
            return (
                f"time budget {format_duration(self.max_time)} used up after {format_duration(used)} "
                f"(epoch {trainer.epoch + 1}, step {trainer.global_step})"
            )
        return None

    def state_dict(self) -> dict[str, Any]:
        return {"elapsed": self.elapsed()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.elapsed_before = float(state_dict.get("elapsed", 0.0))
