"""Telling the user's Ctrl-C apart from a ``KeyboardInterrupt`` a plugin raised itself.

Both arrive as the same exception. A real Ctrl-C is a SIGINT, and signals are delivered to the
main thread only, so whoever handles SIGINT can count them: the ``trainhooks`` command counts
every SIGINT (:func:`watch`), and ``Trainer.fit`` installs its own handler (the first Ctrl-C
stops gracefully and is recorded on the trainer). A ``KeyboardInterrupt`` raised inside a hook
while nobody pressed Ctrl-C is then the plugin's doing, and is reported as that plugin's failure
(naming plugin and hook, with the emergency checkpoint) instead of as the user's interrupt.
"""

from __future__ import annotations

import signal
import threading
from typing import Any

_seen = 0
_watching = 0


def sigint_seen() -> bool:
    """True once :func:`watch`'s handler has received a SIGINT."""
    return _seen > 0


def watch() -> Any:
    """Count SIGINTs from now on (then raise KeyboardInterrupt as Python does); returns the
    previous handler for :func:`unwatch`. Outside the main thread it does nothing."""
    global _watching
    if threading.current_thread() is not threading.main_thread():
        return None
    previous = signal.getsignal(signal.SIGINT)

    def counting(signum: int, frame: Any) -> None:
        global _seen
        _seen += 1
        if callable(previous) and previous is not signal.default_int_handler:
            previous(signum, frame)
            return
        raise KeyboardInterrupt

    try:
        signal.signal(signal.SIGINT, counting)
    except (ValueError, OSError):  # pragma: no cover - not allowed here
        return None
    _watching += 1
    return previous


def unwatch(previous: Any) -> None:
    """Put back the handler :func:`watch` replaced."""
    global _watching
    if previous is None:
        return
    _watching -= 1
    try:
        signal.signal(signal.SIGINT, previous)
    except (ValueError, OSError, TypeError):  # pragma: no cover
        pass


def is_user_interrupt(exc: BaseException, trainer: Any) -> bool:
    """Whether ``exc``, raised inside a hook, is the user's Ctrl-C rather than the plugin's own.

    Certain only where SIGINT is watched (the CLI, or inside ``fit``); elsewhere (the Python
    API outside ``fit``) a KeyboardInterrupt is assumed to be the user's and passes unchanged.
    """
    if not isinstance(exc, KeyboardInterrupt):
        return False
    if threading.current_thread() is not threading.main_thread():
        return False  # signals only reach the main thread: this one was raised by code
    # The signal the fit's own handler received (whichever layout the trainer has).
    watch = getattr(trainer, "_signals", None)
    stop = getattr(trainer, "_stop", None)
    received = (
        getattr(watch, "received", None) or getattr(stop, "signal", None) or getattr(trainer, "_signal_received", None)
    )
    if _seen or received == "SIGINT" or getattr(trainer, "interrupted", None):
        return True
    return not (_watching or getattr(trainer, "stage", None) == "fit")
