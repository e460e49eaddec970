"""``notify``: POST a JSON message to a webhook when training starts, ends or fails.

Opt-in: ``trainhooks fit -p notify --notify-url https://hooks.slack.com/services/...``.

The body is Slack-compatible (a ``text`` field) and carries the details as JSON::

    {"text": "trainhooks run 'train3' finished: completed 10 epochs (val/acc 0.9722, ...)",
     "run": "train3", "event": "train_end", "epoch": 9, "global_step": 450,
     "metrics": {...}, "stop_reason": "completed 10 epochs", "save_dir": "runs/train3"}

Events: ``train_start``, ``train_end`` and ``exception`` (``--notify-events`` picks some). Each
POST has a timeout and is retried with a short back-off; a notification that still fails is a
warning — it never stops training. Runs on global rank zero only.
"""

from __future__ import annotations

import json
import math
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
from typing import Any

import trainhooks
from trainhooks import Option

EVENTS = ("train_start", "train_end", "exception")


def _parse_events(value: str | list[str] | tuple[str, ...] | set[str]) -> frozenset[str]:
    """a comma-separated list of events (train_start, train_end, exception)."""
    if isinstance(value, frozenset):
        return value
    names = [e.strip() for e in (value.split(",") if isinstance(value, str) else value) if str(e).strip()]
    unknown = set(names) - set(EVENTS)
    if unknown:
        raise ValueError(f"unknown event(s) {sorted(unknown)}; choose from {', '.join(EVENTS)}")
    return frozenset(names)


class NotificationWarning(UserWarning):
    """A webhook could not be reached; training went on."""


class Notify(trainhooks.Callback):
    """Send start/end/exception messages to a webhook URL."""

    default_enabled = False
    rank_zero_only = True

    url = Option(str, None, "webhook URL to POST JSON messages to", flag="notify-url")
    events = Option(_parse_events, ",".join(EVENTS), "comma-separated: " + ", ".join(EVENTS), flag="notify-events")
    timeout = Option(float, 5.0, "seconds per attempt", min=0.001, flag="notify-timeout")
    retries = Option(int, 2, "extra attempts after a failure", min=0, flag="notify-retries")

    failures = 0

    def on_fit_start(self, trainer: trainhooks.Trainer) -> None:
        self.sent: list[dict[str, Any]] = []
        self.failures = 0

    def configure(self, trainer: trainhooks.Trainer) -> None:
        try:
            parts = urllib.parse.urlsplit(str(self.url or ""))
            _ = parts.port  # raises ValueError for a port that is not a number in 0-65535
        except ValueError as exc:
            raise trainhooks.ConfigError(
                f"notify: --notify-url must be an http(s) URL, got {self.url!r} ({exc})"
            ) from None
        if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in str(self.url)):
            raise trainhooks.ConfigError(f"notify: --notify-url must be an http(s) URL, got {self.url!r}")

    def message(self, trainer: trainhooks.Trainer, event: str, text: str, **extra: Any) -> dict[str, Any]:
        return {
            "text": text,
            "run": trainer.name,
            "event": event,
            "epoch": trainer.epoch,
            "global_step": trainer.global_step,
            # JSON has no NaN/Infinity: a non-finite metric (the run a NaN guard stopped) is
            # null here, so strict parsers (Slack's) accept the message; `text` shows the value.
            "metrics": {
                k: (v if not isinstance(v, float) or math.isfinite(v) else None) for k, v in trainer.metrics.items()
            },
            "stop_reason": trainer.stop_reason,
            "save_dir": str(trainer.save_dir),
            **extra,
        }

    def post(self, payload: dict[str, Any]) -> bool:
        """POST ``payload``; True on a 2xx answer. Never raises."""
        assert self.url is not None
        try:
            data = json.dumps(payload, allow_nan=False, default=str).encode("utf-8")
        except ValueError:  # a non-finite float in a field a subclass added
            data = json.dumps(payload, default=str).encode("utf-8")
        last_error = ""
        for attempt in range(self.retries + 1):
            request = urllib.request.Request(
                self.url, data=data, headers={"Content-Type": "application/json"}, method="POST"
            )
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    if 200 <= response.status < 300:
                        self.sent.append(payload)
                        return True
                    last_error = f"HTTP {response.status}"
            except urllib.error.HTTPError as exc:
                last_error = f"HTTP {exc.code} {exc.reason}"
            except (urllib.error.URLError, OSError, TimeoutError) as exc:
                last_error = str(getattr(exc, "reason", exc))
            except Exception as exc:  # a malformed answer (http.client.BadStatusLine), an odd URL...
                # ...: still only a failed notification, never a failed run.
                last_error = " ".join(f"{type(exc).__name__}: {exc}".split())
            if attempt < self.retries:
                time.sleep(min(0.2 * 2**attempt, 2.0))
        self.failures += 1
        warnings.warn(
            f"notify: could not deliver {payload['event']!r} to {self.url} after {self.retries + 1} attempts "
            f"({last_error}); training continues",
            NotificationWarning,
            stacklevel=2,
        )
        return False

    def on_train_start(self, trainer: trainhooks.Trainer) -> None:
        if "train_start" in self.events:
            text = f"trainhooks run {trainer.name!r} started: {trainer.epochs} epochs, saving to {trainer.save_dir}"
            self.post(self.message(trainer, "train_start", text))

    def on_train_end(self, trainer: trainhooks.Trainer) -> None:
        if "train_end" in self.events:
            shown = ", ".join(f"{k} {v:.4g}" for k, v in trainer.metrics.items())
            text = f"trainhooks run {trainer.name!r} finished: {trainer.stop_reason} ({shown})"
            self.post(self.message(trainer, "train_end", text))

    def on_exception(self, trainer: trainhooks.Trainer, exception: BaseException) -> None:
        if "exception" in self.events:
            error = f"{type(exception).__name__}: {exception}"
            text = f"trainhooks run {trainer.name!r} failed at epoch {trainer.epoch + 1}, step {trainer.global_step}: {error}"
            self.post(self.message(trainer, "exception", text, error=error))
