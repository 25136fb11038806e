"""Fault injection for crash tests: die at a named point exactly as ``kill -9`` would.

Porcelain reads ``CAMP_FAULT`` from the environment and hands it down (core modules never
read the environment); :func:`fault` kills the process with SIGKILL when the name
matches, so no ``finally`` block, ``atexit`` handler or buffered write runs — what a
scheduler's kill or a node failure leaves is what the tests then repair from. Every point
name is distinct and kills at its own place.
"""

from __future__ import annotations

import os
import signal


def fault(selected: str | None, point: str) -> None:
    """Kill this process with SIGKILL if ``point`` is the fault ``selected`` (tests only)."""
    if selected is not None and selected == point:
        os.kill(os.getpid(), signal.SIGKILL)
