"""Signals during ``fit``: a graceful stop on the first one, a bounded wait, the pre-emption signal.

What :class:`SignalWatch` does while a fit runs (the Trainer installs it in the main thread):

* The first ``SIGINT``, ``SIGTERM`` or pre-emption signal (``SIGUSR1`` by default) is *recorded*
  (:attr:`SignalWatch.received`) and training stops after the current batch, as for any stop.
  The record is never cleared during the fit: under torchrun the ranks agree on it at the next
  stop agreement, and a signal that arrives while a rank waits inside that very agreement is
  simply carried to the next one instead of being overwritten by the agreement's result.
* The second one of the same signal acts as it would without trainhooks (Ctrl-C twice aborts).
* A **deadline** (``stop_timeout`` seconds) starts at the first ``SIGTERM`` or pre-emption signal.
  A rank that is stuck (in a hook, or in a collective waiting for a stuck peer) cannot stop
  gracefully, and Python runs signal handlers only between bytecodes, i.e. not while the main
  thread waits inside a C++ collective. So the signal is also seen by a helper thread through
  :func:`signal.set_wakeup_fd` (written by the C-level handler at once), and when the deadline
  passes with the fit still running, the Trainer's ``on_deadline`` callback runs on that thread
  (an emergency checkpoint when the state allows, a clear error line) and the process exits.
  Schedulers send SIGKILL some time after SIGTERM (torchrun's agent after ``--shutdown-timeout``,
  30 s by default; SLURM's ``KillWait`` and Kubernetes' grace period are 30 s by default too), so
  the default deadline is below that: the checkpoint is attempted before the kill.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import threading
from collections.abc import Callable
from typing import Any

from trainhooks.errors import ConfigError

log = logging.getLogger("trainhooks")

DEFAULT_PREEMPT_SIGNAL = "SIGUSR1"
"""The scheduler's "you are about to be pre-empted" signal (SLURM ``--signal=USR1@90``, Lightning's)."""

DEFAULT_STOP_TIMEOUT_S = 25.0
"""Seconds a graceful stop after SIGTERM may take before the process ends itself (below the 30 s
that torchrun, SLURM and Kubernetes wait before SIGKILL)."""

PREEMPT_EXIT_CODE = 75
"""Exit status after a stop on the pre-emption signal: ``EX_TEMPFAIL`` ("try again later") of
sysexits.h. The run is not finished and must be resumed; schedulers can match the code (a
Kubernetes ``podFailurePolicy`` rule, a wrapper script that requeues)."""


def parse_signal(value: str | int | signal.Signals | None) -> signal.Signals | None:
    """``"SIGUSR1"``, ``"USR1"``, ``10`` or a ``signal.Signals`` -> the signal; ``None``/``"none"`` -> None.

    :raises ConfigError: not a signal this platform knows, or one a graceful stop cannot use
        (SIGKILL and SIGSTOP cannot be caught; SIGINT and SIGTERM are handled already).
    """
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none", "off")):
        return None
    try:
        if isinstance(value, signal.Signals):
            sig = value
        elif isinstance(value, bool):
            raise ValueError
        elif isinstance(value, int):
            sig = signal.Signals(value)
        else:
            name = value.strip().upper()
            sig = signal.Signals[name if name.startswith("SIG") else f"SIG{name}"]
    except (KeyError, ValueError):
        raise ConfigError(
            f"preempt_signal {value!r} is not a signal name (e.g. 'SIGUSR1', 'SIGUSR2', or 'none' to disable)"
        ) from None
    if sig in (signal.SIGKILL, signal.SIGSTOP, signal.SIGINT, signal.SIGTERM):
        raise ConfigError(
            f"preempt_signal {sig.name} cannot be the pre-emption signal "
            "(SIGKILL/SIGSTOP cannot be caught; SIGINT and SIGTERM already stop gracefully): use e.g. SIGUSR1"
        )
    return sig


def parse_stop_timeout(value: float | None) -> float | None:
    """A positive number of seconds, or None/0 for no deadline.

    :raises ConfigError: negative, NaN or not a number.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ConfigError(f"stop_timeout must be a non-negative number of seconds (0: no deadline), got {value!r}")
    return float(value) or None


class SignalWatch:
    """Signal handlers for one fit; see the module docstring.

    :param preempt: the pre-emption signal, or None.
    :param stop_timeout: seconds from the first SIGTERM/pre-emption signal to ``on_deadline``;
        None for no deadline.
    :param on_deadline: called on the watch thread with the signal's name when the deadline
        passes and :meth:`restore` has not been called; it is expected to end the process.
    """

    def __init__(
        self,
        *,
        preempt: signal.Signals | None,
        stop_timeout: float | None,
        on_deadline: Callable[[str], None],
    ) -> None:
        self.preempt = preempt
        self.stop_timeout = stop_timeout
        self.on_deadline = on_deadline
        self.received: str | None = None
        """Name of the first signal received during this fit (never cleared before the fit ends)."""
        self._previous: dict[int, Any] = {}
        self._done = threading.Event()
        self._armed = threading.RLock()  # the handler may re-enter on a second signal
        self._deadline_started = False
        self._wakeup: tuple[socket.socket, socket.socket] | None = None
        self._previous_wakeup_fd = -1
        self._thread: threading.Thread | None = None

    @property
    def signals(self) -> tuple[signal.Signals, ...]:
        extra = (self.preempt,) if self.preempt is not None else ()
        return (signal.SIGINT, signal.SIGTERM, *extra)

    @property
    def _deadline_signals(self) -> set[int]:
        return {int(signal.SIGTERM)} | ({int(self.preempt)} if self.preempt is not None else set())

    def install(self) -> bool:
        """Install the handlers (main thread only; elsewhere nothing is installed). Returns whether it did."""
        if threading.current_thread() is not threading.main_thread():
            return False

        def handler(signum: int, frame: Any) -> None:
            if self.received is None:
                self.received = signal.Signals(signum).name
            with contextlib.suppress(ValueError, OSError, TypeError):
                signal.signal(signum, self._previous[signum])  # the next one acts as usual
            self._start_deadline(signum)  # also started from the watch thread, whichever is first

        for sig in self.signals:
            try:
                self._previous[sig] = signal.signal(sig, handler)
            except (ValueError, OSError):  # pragma: no cover - not allowed on this platform
                pass
        if self.stop_timeout is not None:
            self._watch_wakeups()
        return True

    def restore(self) -> None:
        """Put back the previous handlers and stop the watch thread (the deadline no longer applies)."""
        self._done.set()
        for sig, previous in self._previous.items():
            with contextlib.suppress(ValueError, OSError, TypeError):
                signal.signal(sig, previous)
        self._previous.clear()
        if self._wakeup is not None:
            with contextlib.suppress(ValueError, OSError):
                signal.set_wakeup_fd(self._previous_wakeup_fd)
            reader, writer = self._wakeup
            self._wakeup = None
            with contextlib.suppress(OSError):
                writer.send(b"\0")  # wake the thread: it sees _done and leaves
            writer.close()
            if self._thread is not None:
                self._thread.join(timeout=5)
            reader.close()

    # ---------------------------------------------------------------- deadline
    def _watch_wakeups(self) -> None:
        """Learn of signals even while the main thread is blocked in C++ (a collective)."""
        reader, writer = socket.socketpair()
        reader.setblocking(True)
        writer.setblocking(False)
        try:
            self._previous_wakeup_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
        except (ValueError, OSError):  # pragma: no cover
            reader.close()
            writer.close()
            return
        self._wakeup = (reader, writer)

        def watch() -> None:
            while not self._done.is_set():
                try:
                    data = reader.recv(64)
                except OSError:
                    return
                if not data or self._done.is_set():
                    return
                for signum in data:
                    self._start_deadline(signum)

        self._thread = threading.Thread(target=watch, name="trainhooks-signal-watch", daemon=True)
        self._thread.start()

    def _start_deadline(self, signum: int) -> None:
        if self.stop_timeout is None or signum not in self._deadline_signals:
            return
        with self._armed:
            if self._deadline_started or self._done.is_set():
                return
            self._deadline_started = True
        name = signal.Signals(signum).name
        timeout = self.stop_timeout

        def wait() -> None:
            if not self._done.wait(timeout):
                self.on_deadline(name)

        threading.Thread(target=wait, name="trainhooks-stop-deadline", daemon=True).start()


def exit_code_for(signal_name: str | None) -> int:
    """The CLI's exit status after a graceful stop on ``signal_name`` (outside torchrun)."""
    if signal_name == "SIGINT":
        return 130
    if signal_name == "SIGTERM":
        return 143
    return PREEMPT_EXIT_CODE


__all__ = [
    "DEFAULT_PREEMPT_SIGNAL",
    "DEFAULT_STOP_TIMEOUT_S",
    "PREEMPT_EXIT_CODE",
    "SignalWatch",
    "exit_code_for",
    "parse_signal",
    "parse_stop_timeout",
]
