"""Repository hooks: executable files camp runs before and after its operations.

A campaign keeps its hooks in ``.git/camp/hooks/<name>``, not in ``.git/hooks``: stock
git runs ``.git/hooks/pre-commit``, ``post-commit`` and ``pre-push`` for its own commands
with its own interface (arguments, refs on stdin), so sharing the folder would run camp's
hooks from git with the wrong contract, and git's hooks from camp. Hooks are never part
of history and never travel with a push or a clone (like git's).

A hook is started from an argument list (never a shell) in the campaign folder, with
stdin closed; its output passes through to camp's stderr as it comes (as git's hooks'
does) and is kept for camp's own one-line messages. Its environment is the caller's plus
``CAMP_REPO`` (the campaign folder, so a ``camp`` command the hook runs acts on this
campaign), ``CAMP_HOOK`` (the hook name), ``CAMP_COMMIT`` / ``CAMP_ARCHIVE`` when there
is one, and hook-specific values. The folder of the running ``camp`` is put first on
``PATH`` (as git puts its exec-path), so ``camp`` inside a hook is the same camp.

A ``pre-*`` hook that exits non-zero, or cannot be started, stops the operation
(:class:`HookRefused`, :class:`HookNotRunnable`). A ``post-*`` hook cannot undo
anything: its failure comes back as :attr:`HookRun.warning` and the operation succeeds.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from campaignvcs import signals
from campaignvcs.errors import CampError

if TYPE_CHECKING:
    from campaignvcs.repo import CampaignRepo

HOOK_NAMES = ("pre-add", "pre-commit", "post-commit", "pre-build", "post-build", "pre-push", "post-pull")
"""Every hook camp runs, in the order an add → commit → build → push → pull cycle meets them."""

HOOKS_FOLDER = "hooks"
"""Below ``.git/camp``."""

READY_MARKER = "build-on-commit"
"""A ready hook every copy of the ready-hooks folder has (how :func:`ready_hooks_dir` knows it)."""

HEADER_TAG = "camp-hook:"
"""A ready hook names its hook point in a header comment line: ``# camp-hook: post-commit``."""


class HookRefused(CampError):
    """A pre-hook exited non-zero: the operation stops, nothing was changed."""


class HookNotRunnable(CampError):
    """A hook file exists but cannot be started (not executable, bad interpreter line)."""


@dataclass(frozen=True)
class HookRun:
    """One run of a hook: what it said and how it ended.

    ``status`` is the exit status (negative: killed by that signal), or ``None`` when
    the hook could not be started at all (``error`` says why).
    """

    name: str
    path: str
    status: int | None
    stdout: str
    stderr: str
    error: str = ""

    @property
    def ok(self) -> bool:
        """True when the hook ran and exited 0."""
        return self.status == 0

    @property
    def first_line(self) -> str:
        """The first non-blank line of stderr, else of stdout: the hook's own reason."""
        for text in (self.stderr, self.stdout):
            for line in text.splitlines():
                if line.strip():
                    return line.strip()
        return ""

    @property
    def outcome(self) -> str:
        """How it ended, in words: ``exit 2``, ``killed by signal 9``, ``not executable``."""
        if self.status is None:
            return self.error
        if self.status < 0:
            return f"killed by signal {-self.status}"
        return f"exit {self.status}"

    @property
    def warning(self) -> str | None:
        """The one-line warning a failed post-hook gives the user, or None when it succeeded."""
        if self.ok:
            return None
        if self.status is None:
            return f"{self.name} hook failed: {self.error}"
        reason = self.first_line
        return f"{self.name} hook failed ({self.outcome})" + (f": {reason}" if reason else "")


def hooks_dir(camp_dir: str) -> str:
    """The hooks folder of a campaign whose private folder is ``camp_dir`` (``.git/camp``)."""
    return os.path.join(camp_dir, HOOKS_FOLDER)


def check_name(name: str) -> str:
    """``name`` if camp runs a hook of that name, else CampError listing the names."""
    if name not in HOOK_NAMES:
        raise CampError(f"unknown hook name: {name!r} (one of {', '.join(HOOK_NAMES)})")
    return name


def find_hook(camp_dir: str, name: str) -> str | None:
    """The installed hook file for ``name``, or None (a missing hook is not an error)."""
    path = os.path.join(hooks_dir(camp_dir), check_name(name))
    return path if os.path.isfile(path) else None


def hook_environment(
    base: Mapping[str, str],
    root: str,
    name: str,
    commit: str | None = None,
    archive: str | None = None,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment a hook runs with (see the module docstring)."""
    env = dict(base)
    env.update({"CAMP_REPO": root, "CAMP_HOOK": name})
    for var, value in (("CAMP_COMMIT", commit), ("CAMP_ARCHIVE", archive)):
        if value:
            env[var] = value
        else:
            env.pop(var, None)  # never a stale value inherited from an outer hook
    env.update(extra or {})
    here = os.path.dirname(sys.executable)
    if os.path.isfile(os.path.join(here, "camp")):
        env["PATH"] = here + os.pathsep + env.get("PATH", os.defpath)
    return env


def execute(path: str, name: str, env: Mapping[str, str], cwd: str, args: Sequence[str] = (),
            timeout: float | None = None, echo_fd: int | None = 2) -> HookRun:
    """Run one hook file and wait for it; never raises for the hook's own failures.

    What the hook prints, on stdout or stderr, passes through to ``echo_fd`` (camp's
    stderr, as git passes a hook's output to its own stderr: camp's stdout stays its own,
    e.g. for ``--json``) as it comes, and is kept for :attr:`HookRun.first_line`.
    """
    if not os.access(path, os.X_OK):
        return HookRun(name, path, None, "", "", f"{path} is not executable (chmod +x it)")
    # A signal that arrives while Popen returns (the hook already running) would leave no
    # ``proc`` to stop: signals wait until the hook is known, then arrive inside the try below.
    mask = signals.hold()
    try:
        # Its own process group, so a timeout stops what the hook started too (camp push → rclone).
        proc = subprocess.Popen(
            [path, *args], cwd=cwd, env=dict(env), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, shell=False, start_new_session=True,
            preexec_fn=None if mask is None else lambda: signals.release(mask),  # the hook gets them all
        )
    except OSError as exc:
        signals.release(mask)
        # ENOEXEC (no #! line), a missing interpreter, a folder named like the hook.
        return HookRun(name, path, None, "", "", f"{path} cannot be started ({exc.strerror or exc})")
    except BaseException:
        signals.release(mask)
        raise
    try:
        signals.release(mask)
        out, err = _tee(proc, timeout, echo_fd)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return HookRun(name, path, None, "", "", f"{path} did not finish within {timeout:g} s")
    except BaseException:
        # camp was interrupted (Ctrl-C, SIGTERM): its own session keeps the hook from seeing
        # the signal, so stop it here rather than leave it running on its own.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    return HookRun(name, path, proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"))


def _tee(proc: subprocess.Popen[bytes], timeout: float | None, echo_fd: int | None) -> tuple[bytes, bytes]:
    """Wait for ``proc``, copying its stdout and stderr to ``echo_fd`` as they come; returns both."""
    import threading

    kept: tuple[list[bytes], list[bytes]] = ([], [])

    def pump(fd: int, sink: list[bytes]) -> None:
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                return
            if not chunk:
                return
            sink.append(chunk)
            if echo_fd is not None:
                with contextlib.suppress(OSError):  # camp's stderr is gone: the hook still runs to its end
                    os.write(echo_fd, chunk)

    assert proc.stdout is not None and proc.stderr is not None
    pumps = [threading.Thread(target=pump, args=(pipe.fileno(), sink), daemon=True)
             for pipe, sink in ((proc.stdout, kept[0]), (proc.stderr, kept[1]))]
    for t in pumps:
        t.start()
    try:
        proc.wait(timeout)
    finally:
        if proc.returncode is not None:  # what the hook left in the pipes (a child of it may hold them longer)
            for t in pumps:
                t.join(5)
    for pipe, t in zip((proc.stdout, proc.stderr), pumps):
        if not t.is_alive():  # never under a reader that a background child of the hook still feeds
            with contextlib.suppress(OSError):
                pipe.close()
    return b"".join(kept[0]), b"".join(kept[1])


def run_hook(
    camp: CampaignRepo,
    name: str,
    env: Mapping[str, str],
    commit: str | bytes | None = None,
    archive: str | None = None,
    extra: Mapping[str, str] | None = None,
    args: Sequence[str] = (),
    timeout: float | None = None,
) -> HookRun | None:
    """Run the campaign's hook ``name`` if one is installed.

    Args:
        camp: The open campaign (its folder becomes ``CAMP_REPO`` and the hook's cwd).
        name: One of :data:`HOOK_NAMES`.
        env: The caller's environment (porcelain's ``env``); the hook gets a copy.
        commit: Commit id for ``CAMP_COMMIT`` (hex str or bytes), if there is one.
        archive: Archive path for ``CAMP_ARCHIVE`` (build hooks).
        extra: Further ``CAMP_*`` variables, e.g. ``{"CAMP_REMOTE": "origin"}``.
        args: Arguments after the hook path (pre-add: the paths).
        timeout: Seconds before the hook is stopped and counts as failed (default:
            ``CAMP_HOOK_TIMEOUT`` from ``env``, else wait as long as it runs).

    Returns:
        None when no hook is installed; else the run. A post-hook's failure is in
        :attr:`HookRun.warning`; the caller reports it and carries on.

    Raises:
        HookRefused: a ``pre-*`` hook exited non-zero (message: its first output line).
        HookNotRunnable: a ``pre-*`` hook could not be started.
    """
    path = find_hook(camp.camp_dir, name)
    if path is None:
        return None
    if isinstance(commit, bytes):
        commit = commit.decode()
    if timeout is None and env.get("CAMP_HOOK_TIMEOUT"):
        try:
            timeout = float(env["CAMP_HOOK_TIMEOUT"])
        except ValueError:
            given = env["CAMP_HOOK_TIMEOUT"]
            raise CampError(f"CAMP_HOOK_TIMEOUT must be a number of seconds, not {given!r}") from None
    run = execute(path, name, hook_environment(env, camp.root, name, commit, archive, extra), camp.root,
                  args, timeout)
    if name.startswith("pre-") and not run.ok:
        if run.status is None:
            raise HookNotRunnable(f"{name} hook cannot run: {run.error}")
        reason = run.first_line or f"the hook gave no reason ({run.outcome})"
        raise HookRefused(f"{name} hook refused: {reason}")
    return run


def declared_hook_point(path: str) -> str | None:
    """The hook name a ready hook declares in its header (``# camp-hook: NAME``), if any."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            head = f.read(4096)
    except OSError:
        return None
    for line in head.splitlines():
        text = line.lstrip("#").strip()
        if text.startswith(HEADER_TAG):
            point = text[len(HEADER_TAG):].strip()
            return point if point in HOOK_NAMES else None
    return None


def ready_hooks_dir() -> str | None:
    """The folder of the hooks camp ships, in a source checkout or an installed wheel.

    The canonical copies are in ``hooks/`` next to the package (a source checkout, an
    editable install); a wheel installs them as data files into
    ``<prefix>/share/campaignvcs/hooks`` (pyproject.toml ``data-files``).
    """
    import site

    package = os.path.dirname(os.path.abspath(__file__))
    candidates = [os.path.join(os.path.dirname(package), "hooks")]
    for prefix in (sys.prefix, getattr(site, "USER_BASE", None) or ""):
        if prefix:
            candidates.append(os.path.join(prefix, "share", "campaignvcs", "hooks"))
    for candidate in candidates:
        # A marker file, so an unrelated "hooks" folder in site-packages is never taken for ours.
        if os.path.isfile(os.path.join(candidate, READY_MARKER)):
            return candidate
    return None


def ready_hooks() -> dict[str, str]:
    """Name → path of every ready hook camp ships (job-script helpers included)."""
    folder = ready_hooks_dir()
    if folder is None:
        return {}
    out = {}
    for entry in sorted(os.listdir(folder)):
        path = os.path.join(folder, entry)
        if os.path.isfile(path) and not entry.startswith((".", "_")) and not entry.endswith((".md", ".py", ".pyc")):
            out[entry] = path
    return out
