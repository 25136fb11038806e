"""Holding back SIGINT, SIGTERM and SIGHUP while a step must not be cut in two.

camp turns those signals into an exception that unwinds the stack (cli/__init__.py). A few
steps must happen whole or not at all from that exception's point of view: creating or
removing the lock file, and starting a hook whose process must be known before anything
can stop it. There the signals are blocked and arrive, once released, where the caller's
``try`` handles them. Only the main thread receives Python's signal handlers; elsewhere
this is a no-op.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

HELD = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

Mask = set[int | signal.Signals]
"""A thread's signal mask, as ``pthread_sigmask`` returns it."""


def hold() -> Mask | None:
    """Block the signals camp handles; the mask to give :func:`release` (None: nothing was blocked)."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "pthread_sigmask"):
        return None
    return signal.pthread_sigmask(signal.SIG_BLOCK, HELD)


def release(mask: Mask | None) -> None:
    """Restore ``mask``: a signal that came meanwhile is delivered now."""
    if mask is not None:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


@contextlib.contextmanager
def held() -> Iterator[None]:
    """Hold the signals for the ``with`` block (a few system calls)."""
    mask = hold()
    try:
        yield
    finally:
        release(mask)
