"""The pager for long output on a terminal, as git's.

``$CAMP_PAGER``, else ``$PAGER``, else ``less`` (with ``LESS=FRX`` unless ``LESS`` is set:
quit if one screen, keep colours, leave the text on the screen). Only when standard output
is a terminal and ``--no-pager`` was not given; an empty value or ``cat`` means no pager.
The command runs through ``sh -c`` as git runs ``core.pager``, so ``PAGER='less -S'``
works. Quitting the pager early (``q``) ends the command quietly.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping


def pager_command(env: Mapping[str, str]) -> str | None:
    """The pager to run, or None for none."""
    for var in ("CAMP_PAGER", "PAGER"):
        if var in env:
            command = env[var].strip()
            return None if command in ("", "cat") else command
    return "less"


def _stdout_is_terminal() -> bool:
    try:
        return os.isatty(sys.stdout.fileno())
    except (AttributeError, OSError, ValueError):
        return False  # CliRunner's stdout, a closed stream


@contextlib.contextmanager
def paged(enabled: bool, env: Mapping[str, str]) -> Iterator[None]:
    """Send what the block prints to the pager (when ``enabled`` and stdout is a terminal)."""
    command = pager_command(env) if enabled and _stdout_is_terminal() else None
    if command is None:
        yield
        return
    child_env = dict(env)
    child_env.setdefault("LESS", "FRX")
    child_env.setdefault("LV", "-c")
    sys.stdout.flush()
    try:
        proc = subprocess.Popen(["/bin/sh", "-c", command], stdin=subprocess.PIPE, env=child_env, shell=False)
    except OSError:
        yield  # no shell to start it: print directly
        return
    assert proc.stdin is not None
    saved = os.dup(1)
    os.dup2(proc.stdin.fileno(), 1)
    proc.stdin.close()
    try:
        yield
        sys.stdout.flush()
    except BrokenPipeError:
        pass  # the reader quit the pager: nothing more to show
    finally:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)  # whatever is still buffered goes nowhere, not onto the terminal
        os.close(devnull)
        with contextlib.suppress(OSError, ValueError):
            sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
        with contextlib.suppress(KeyboardInterrupt):
            proc.wait()
