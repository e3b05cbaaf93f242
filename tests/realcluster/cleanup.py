"""Undo everything the real-cluster harness set up, whatever way the run ends.

Each piece of setup (a namespace, a process, an /etc/netns directory, a work directory) registers
its undo action here as soon as it exists. The actions run, newest first,

- when the owner undoes it normally (`Cleanup.run(token)` from a fixture finalizer or a
  `finally`),
- at interpreter exit (`atexit`: an exception or KeyboardInterrupt that escaped everything),
- on SIGTERM, SIGHUP and SIGQUIT (which would otherwise end Python without running `finally`
  blocks or `atexit`): the actions run, then the signal's previous disposition is restored and
  the signal re-delivered, so the process still ends the way its sender asked.

Every action is best effort and runs at most once; one failing never stops the others.
"""

from __future__ import annotations

import atexit
import itertools
import os
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType

_lock = threading.RLock()
_actions: dict[int, tuple[str, Callable[[], None]]] = {}
_tokens = itertools.count(1)
_installed = False
_HANDLED_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)


def register(what: str, action: Callable[[], None]) -> int:
    """Remember `action` (undoing `what`); returns a token for `run`/`forget`."""
    _install_once()
    with _lock:
        token = next(_tokens)
        _actions[token] = (what, action)
        return token


def forget(token: int) -> None:
    """The owner undid it itself."""
    with _lock:
        _actions.pop(token, None)


def run(token: int) -> None:
    """Undo one thing now (at most once)."""
    with _lock:
        entry = _actions.pop(token, None)
    if entry is not None:
        _call(*entry)


def run_all() -> None:
    """Undo everything still registered, newest first."""
    while True:
        with _lock:
            if not _actions:
                return
            token = max(_actions)
            entry = _actions.pop(token)
        _call(*entry)


def pending() -> list[str]:
    with _lock:
        return [what for _, (what, _) in sorted(_actions.items())]


def _call(what: str, action: Callable[[], None]) -> None:
    try:
        action()
    except Exception as error:  # best effort: report and go on with the rest
        print(f"realcluster cleanup: undoing {what} failed: {error}", file=sys.stderr)


def _on_signal(signum: int, frame: FrameType | None) -> None:
    run_all()
    previous = _previous.get(signum, signal.SIG_DFL)
    if callable(previous):
        previous(signum, frame)
        return
    signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
    os.kill(os.getpid(), signum)


_previous: dict[int, Callable[[int, FrameType | None], object] | int | None] = {}


def _install_once() -> None:
    global _installed
    with _lock:
        if _installed:
            return
        _installed = True
        atexit.register(run_all)
        # Signal handlers can only be installed from the main thread.
        if threading.current_thread() is threading.main_thread():
            for signum in _HANDLED_SIGNALS:
                previous = signal.getsignal(signum)
                if previous is signal.SIG_IGN:
                    continue
                _previous[signum] = previous
                signal.signal(signum, _on_signal)
