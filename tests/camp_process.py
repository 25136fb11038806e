"""Run the installed ``camp`` binary as a real process (signals, pipes, permissions, full disks).

The ``camp`` fixture runs commands in-process, which cannot show what only a process
shows: its exit status after a signal, what the interpreter prints when it exits, or
what a user without root's permission bypass sees. Import from test modules:
``from camp_process import CAMP, assert_healthy, run, start, unprivileged``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

CAMP = os.path.join(os.path.dirname(sys.executable), "camp")
"""The console script pip installed beside the interpreter (``.venv/bin/camp``)."""

SETPRIV = shutil.which("setpriv")
DAC_CAPS = "-dac_override,-dac_read_search"


def unprivileged() -> list[str] | None:
    """A command prefix under which file modes apply to camp, or None if there is none here.

    Not root: nothing to add. Root (CI, this container): ``setpriv`` drops the two
    capabilities that let root ignore file modes, so a file of mode 000 is unreadable
    while camp keeps its user (another user cannot run the interpreter installed below
    /root, mode 0700).
    """
    if os.geteuid() != 0:
        return []
    if SETPRIV is None:
        return None
    return [SETPRIV, f"--bounding-set={DAC_CAPS}", f"--inh-caps={DAC_CAPS}"]


def _command(args: tuple[object, ...], prefix: list[str] | None) -> list[str]:
    return [*(prefix or []), CAMP, *map(str, args)]


def run(*args: object, cwd: str | os.PathLike | None = None, prefix: list[str] | None = None,
        timeout: float = 120, **kwargs) -> subprocess.CompletedProcess:
    """Run camp to its end; text output captured."""
    return subprocess.run(_command(args, prefix), cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, **kwargs)


def foreground_signals() -> None:
    """In a child before it runs: SIGINT, SIGQUIT, SIGTERM and SIGHUP as a shell leaves them for a
    command it starts in the foreground (the default action).

    An ignored signal stays ignored across exec, and camp keeps one ignored at its start
    ignored (``nohup``): when the test run itself was started in the background (``make test &``
    ignores SIGINT and SIGQUIT) or under ``nohup``, a test that sends camp one would otherwise
    wait for an exit that never comes.
    """
    for signum in (signal.SIGINT, signal.SIGQUIT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)


def start(*args: object, cwd: str | os.PathLike | None = None, **kwargs) -> subprocess.Popen:
    """Start camp and return at once (stderr captured as text unless given), with the signal
    dispositions of a foreground command unless ``preexec_fn`` says otherwise."""
    kwargs.setdefault("preexec_fn", foreground_signals)
    kwargs.setdefault("stdout", subprocess.PIPE)
    kwargs.setdefault("stderr", subprocess.PIPE)
    kwargs.setdefault("stdin", subprocess.DEVNULL)
    return subprocess.Popen(_command(args, None), cwd=cwd, text=True, **kwargs)


def catches(pid: int, signum: int) -> bool:
    """True once process ``pid`` has a handler for ``signum`` (Linux ``/proc``)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("SigCgt:"):
                    return bool(int(line.split()[1], 16) >> (signum - 1) & 1)
    except OSError:
        return False
    return False


def wait_until(condition, timeout: float = 30.0, step: float = 0.002) -> bool:
    """Poll ``condition()`` until it is true or ``timeout`` seconds passed; its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return bool(condition())


def assert_healthy(root) -> None:
    """What a user needs after any failure: no lock left, fsck clean, status works (real processes)."""
    assert not (root / ".git" / "camp" / "lock").exists()
    r = run("--repo", root, "fsck")
    assert r.returncode == 0 and "no problems" in r.stdout, r.stdout + r.stderr
    r = run("--repo", root, "status")
    assert r.returncode == 0 and r.stderr == "", r.stderr
