"""The ``camp`` command: a lazy click group and the single error boundary.

Subcommands live one per module and are imported only when run, so ``camp --help`` and
``camp status`` never load adios2, h5py or pillow. Every failure ends as one line on
stderr and an exit status (see :class:`CampGroup` and docs/architecture.md, "Errors"):
a :class:`CampError` as ``camp: error: <message>``, a usage error in the same form with a
pointer to ``--help`` (exit 2), a signal as ``camp: interrupted`` (130, 143 for SIGTERM),
a closed stdout silently (141), and anything else as one line too, with the traceback
only under ``--debug`` (or ``CAMP_DEBUG=1``).
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import os
import sys
from dataclasses import dataclass
from typing import Any

import click

from campaignvcs.errors import CampError, ExitStatus

COMMANDS: dict[str, tuple[str, str]] = {
    "init": ("campaignvcs.cli.workspace", "init_cmd"),
    "add": ("campaignvcs.cli.workspace", "add_cmd"),
    "status": ("campaignvcs.cli.workspace", "status_cmd"),
    "commit": ("campaignvcs.cli.workspace", "commit_cmd"),
    "log": ("campaignvcs.cli.history", "log_cmd"),
    "show": ("campaignvcs.cli.history", "show_cmd"),
    "build": ("campaignvcs.cli.archive", "build_cmd"),
    "import": ("campaignvcs.cli.migrate", "import_cmd"),
    "key": ("campaignvcs.cli.keys", "key_group"),
    "connect": ("campaignvcs.cli.connect", "connect_cmd"),
    "cat": ("campaignvcs.cli.cat", "cat_cmd"),
    "diff": ("campaignvcs.cli.history", "diff_cmd"),
    "whereis": ("campaignvcs.cli.history", "whereis_cmd"),
    "rm": ("campaignvcs.cli.replicas", "rm_cmd"),
    "mv": ("campaignvcs.cli.replicas", "mv_cmd"),
    "replica": ("campaignvcs.cli.replicas", "replica_group"),
    "archive": ("campaignvcs.cli.replicas", "archive_group"),
    "timeseries": ("campaignvcs.cli.replicas", "timeseries_cmd"),
    "tar-index": ("campaignvcs.cli.replicas", "tar_index_cmd"),
    "hooks": ("campaignvcs.cli.hooks", "hooks_group"),
    "verify": ("campaignvcs.cli.verify", "verify_cmd"),
    "fsck": ("campaignvcs.cli.verify", "fsck_cmd"),
    "remote": ("campaignvcs.cli.sync", "remote_group"),
    "push": ("campaignvcs.cli.sync", "push_cmd"),
    "fetch": ("campaignvcs.cli.sync", "fetch_cmd"),
    "pull": ("campaignvcs.cli.sync", "pull_cmd"),
    "clone": ("campaignvcs.cli.sync", "clone_cmd"),
    "resolve": ("campaignvcs.cli.sync", "resolve_cmd"),
    "store": ("campaignvcs.cli.store", "store_group"),
    "restore": ("campaignvcs.cli.restore", "restore_cmd"),
    "config": ("campaignvcs.cli.userconfig", "config_group"),
    "completion": ("campaignvcs.cli.completion", "completion_cmd"),
    "info": ("campaignvcs.cli.inspect", "info_cmd"),
    "search": ("campaignvcs.cli.inspect", "search_cmd"),
    "web": ("campaignvcs.cli.web", "web_cmd"),
}
"""Command name → (module, attribute). Add one line per new command."""


@dataclass
class Env:
    """What every command gets from the group: the selected repository and the environment."""

    repo: str | None
    debug: bool
    env: dict[str, str]
    pager: bool = True
    """False under --no-pager: long output is never piped through a pager."""
    color: str = "auto"
    """--color: never, auto (a terminal, unless NO_COLOR is set) or always."""


class Interrupted(KeyboardInterrupt):
    """SIGINT, SIGTERM or SIGHUP: unwinds like Ctrl-C, so every ``finally`` (lock, temporaries) runs."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


SIGNAL_EXIT = {2: ExitStatus.INTERRUPTED, 15: ExitStatus.TERMINATED, 1: ExitStatus.HANGUP}
"""Signal number → exit status (128 + the number, as a shell reports a process the signal killed)."""


class _Context(click.Context):
    """A context that records its command path in ``meta`` (shared by the whole chain).

    The innermost one wins, so the boundary can point a usage error raised by porcelain
    at ``camp remote add --help``.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.meta["camp.command_path"] = self.command_path


def _track(command: click.Command) -> click.Command:
    """Give ``command`` and its subcommands the recording context."""
    command.context_class = _Context
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            _track(sub)
    return command


class CampGroup(click.Group):
    """A group that loads subcommands on demand and turns every failure into one line.

    The boundary: :class:`CampError` → ``camp: error: <message>`` and its exit code; usage
    errors (click's and camp's :class:`~campaignvcs.errors.UsageError`) → the same prefix,
    a pointer to ``--help``, exit 2; Ctrl-C / SIGTERM → ``camp: interrupted``, 130 / 143;
    a closed stdout (``camp log | head -1``) → quiet, 141; permission problems and a full
    disk → one line naming the path (:mod:`campaignvcs.cli.failures`); anything else →
    ``camp: internal error: ...`` (the traceback only under ``--debug``).
    """

    context_class = _Context

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Every command name, without importing a module."""
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The command, its module imported only now."""
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module = importlib.import_module(target[0])
        command: click.Command = getattr(module, target[1])
        return _track(command)

    def resolve_command(self, ctx: click.Context, args: list[str]) -> tuple[str | None, click.Command | None,
                                                                           list[str]]:
        """The command, or a usage error that suggests the closest names (``camp stauts``)."""
        name = click.utils.make_str(args[0])
        if name not in COMMANDS and not ctx.resilient_parsing and not name.startswith("-"):
            import difflib

            close = difflib.get_close_matches(name, list(COMMANDS), n=3, cutoff=0.6)
            hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            raise click.UsageError(f"no such command '{name}'{hint}", ctx)
        return super().resolve_command(ctx, args)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """Accept the group's options after the command too (``camp add x --repo R``), as git does."""
        return super().parse_args(ctx, hoist_global_options(args))

    def make_context(self, info_name: str | None, args: list[str], parent: click.Context | None = None,
                     **extra: Any) -> click.Context:
        """The root context, under the boundary too.

        The options before the command (``camp --bogus``, ``camp --help``) are parsed here,
        outside :meth:`invoke`.
        """
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.exceptions.Exit:
            raise
        except (click.UsageError, KeyboardInterrupt, OSError) as exc:
            raise click.exceptions.Exit(_report(exc, debug=False)) from None

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; any failure becomes its one line and exit status (see :func:`_report`)."""
        try:
            result = super().invoke(ctx)
            sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
            return result
        except click.exceptions.Exit:
            raise
        except BaseException as exc:
            if isinstance(exc, SystemExit | GeneratorExit):
                raise
            ctx.exit(_report(exc, debug=_debug(ctx), ctx=ctx))


GLOBAL_OPTIONS = {"--repo": True, "--debug": False, "--no-pager": False, "--color": True}
"""The group's options (→ takes a value), accepted after the command name too."""


def hoist_global_options(args: list[str]) -> list[str]:
    """``args`` with the group's options found after the command moved in front of it (up to ``--``)."""
    i = 0
    while i < len(args) and args[i].startswith("-") and args[i] != "--":
        i += 2 if GLOBAL_OPTIONS.get(args[i]) else 1
    if i >= len(args) or args[i] == "--":
        return args
    head, command, rest = args[:i], args[i], args[i + 1:]
    moved: list[str] = []
    kept: list[str] = []
    j = 0
    while j < len(rest):
        arg = rest[j]
        if arg == "--":
            kept += rest[j:]
            break
        option = arg.split("=", 1)[0]
        if option in GLOBAL_OPTIONS:
            takes_value = GLOBAL_OPTIONS[option] and "=" not in arg
            moved += rest[j:j + 2] if takes_value else [arg]
            j += 2 if takes_value else 1
            continue
        kept.append(arg)
        j += 1
    return head + moved + [command] + kept


def _report(exc: BaseException, debug: bool, ctx: click.Context | None = None) -> int:
    """Print the one line for ``exc`` and return the exit status (re-raises under ``--debug``)."""
    if isinstance(exc, CampError):
        line = f"camp: error: {exc}"
        if exc.exit_code == ExitStatus.USAGE:
            line += _help_hint(ctx.meta.get("camp.command_path") if ctx is not None else None)
        _say(line)
        return int(exc.exit_code)
    if isinstance(exc, click.exceptions.NoArgsIsHelpError):
        exc.show()  # ``camp`` or ``camp remote`` alone: the help, as before
        return int(ExitStatus.USAGE)
    if isinstance(exc, click.UsageError):
        _say(usage_line(exc.format_message(), exc.ctx.command_path if exc.ctx else "camp"))
        return int(ExitStatus.USAGE)
    if isinstance(exc, click.ClickException):
        _say(f"camp: error: {_one_line(exc.format_message())}")
        return int(exc.exit_code)
    if isinstance(exc, KeyboardInterrupt | click.Abort):
        if isinstance(exc, click.Abort) and not isinstance(exc.__context__, KeyboardInterrupt):
            _say("camp: error: no answer (standard input is closed)")  # a prompt read end of file
            return int(ExitStatus.ERROR)
        signum = exc.signum if isinstance(exc, Interrupted) else 2
        _say("camp: interrupted" if signum == 2 else f"camp: interrupted by {_signal_name(signum)}")
        return int(SIGNAL_EXIT.get(signum, 128 + signum))
    if isinstance(exc, OSError) and _stdout_closed(exc):
        _silence_stdout()
        return int(ExitStatus.BROKEN_PIPE)
    if debug or not isinstance(exc, Exception):
        raise exc
    from campaignvcs.cli.failures import describe

    command = ctx.meta.get("camp.command_path", "camp") if ctx is not None else "camp"
    try:
        described = describe(exc, command)
    except Exception:  # noqa: BLE001 - describing must never hide the error it describes
        described = None
    if described is not None:
        _say(f"camp: error: {described}")
        return int(ExitStatus.ERROR)
    _say(f"camp: internal error: {type(exc).__name__}: {_one_line(str(exc))} "
         "(rerun with --debug for the traceback)")
    return int(ExitStatus.ERROR)


def usage_line(message: str, command_path: str) -> str:
    """A usage error in camp's one format: ``camp: error: <message> (see 'camp add --help')``."""
    text = _one_line(message).rstrip(".")
    if text[:1].isupper() and text[1:2].islower():
        text = text[0].lower() + text[1:]  # click's "No such option" reads as the rest of camp's lines
    return f"camp: error: {text}{_help_hint(command_path)}"


def _help_hint(command_path: str | None) -> str:
    return f" (see '{command_path or 'camp'} --help')"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _say(line: str) -> None:
    # stderr may be gone too (a closed terminal after SIGHUP): the exit status still tells.
    with contextlib.suppress(OSError, ValueError):
        click.echo(line, err=True)


def _signal_name(signum: int) -> str:
    import signal

    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def _stdout_closed(exc: OSError) -> bool:
    """True for EPIPE when camp's own stdout is the broken pipe (not a pipe to rclone or a hook)."""
    if exc.errno != errno.EPIPE:
        return False
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return False  # CliRunner's stdout: not a pipe of ours
    import select

    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    return any(events & select.POLLERR for _, events in poller.poll(0))


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's final flush has nowhere to fail."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def _debug(ctx: click.Context) -> bool:
    obj = ctx.find_object(Env)
    return bool(obj and obj.debug)


@click.group("camp", cls=CampGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--repo", "repo", metavar="PATH", help="Campaign repository (default: $CAMP_REPO, else the current "
              "directory or a parent).")
@click.option("--debug", is_flag=True, help="Show tracebacks of internal errors.")
@click.option("--no-pager", "no_pager", is_flag=True, help="Never pipe long output through a pager "
              "(default: $CAMP_PAGER, $PAGER or 'less -FRX' on a terminal).")
@click.option("--color", type=click.Choice(["never", "auto", "always"]), default="auto", show_default=True,
              help="Colour status, diff and log output (auto: on a terminal, unless NO_COLOR is set).")
@click.version_option(package_name="campaignvcs", prog_name="camp")
@click.pass_context
def cli(ctx: click.Context, repo: str | None, debug: bool, no_pager: bool, color: str) -> None:
    """camp: an HPC data campaign as a versioned, shareable repository.

    Record ADIOS2, HDF5, image and text datasets with their replicas, keep their
    history, and build campaign archives (.aca) that ADIOS2 opens. The options
    above may also follow the command (camp add x --repo R).
    """
    env = dict(os.environ)
    ctx.obj = Env(repo=repo or env.get("CAMP_REPO") or None, debug=debug or env.get("CAMP_DEBUG") == "1", env=env,
                  pager=not no_pager, color=color)


pass_env = click.make_pass_decorator(Env)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: the signal handlers, then the group.

    The handlers are installed inside the ``try``: a signal that lands between installing
    them and entering the group is still one line and 130, never Python's own exit by
    the signal (which the shell would report as -2). Once the command has finished, its
    exit status stands: a signal during the interpreter's shutdown (when Python has put
    the default handlers back) is ignored rather than killing camp without a word.
    """
    sys.unraisablehook = _unraisable
    try:
        _handle_signals()
        cli.main(args=argv, prog_name="camp")
    except KeyboardInterrupt as exc:  # between the boundaries (argument parsing, interpreter start)
        sys.exit(_report(exc, debug=False))
    finally:
        _ignore_signals()


DEFER_IN = ("cb", "__del__")
"""Code names of callbacks that swallow exceptions (importlib's module-lock ``cb``, finalisers)."""


def _handle_signals() -> None:
    """SIGINT, SIGTERM and SIGHUP unwind the stack (:class:`Interrupted`) instead of killing outright.

    The first one raises; later ones are ignored while the first unwinds, so the clean-up
    (releasing the lock, removing temporaries) is not itself cut short. A signal that was
    ignored when camp started (``nohup``, ``&`` in a script) stays ignored.
    """
    import signal
    import threading

    def on_signal(signum: int, frame: Any) -> None:
        if frame is not None and frame.f_code.co_name in DEFER_IN:
            # Python prints and drops an exception raised in a weakref callback or finaliser
            # ("Exception ignored in ..."), e.g. importlib's module-lock callback while a
            # command module loads: the signal comes again in a moment, outside it.
            threading.Timer(0.01, os.kill, (os.getpid(), signum)).start()
            return
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(s) is on_signal:
                signal.signal(s, signal.SIG_IGN)
        raise Interrupted(signum)

    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(s) not in (signal.SIG_IGN, None):
            signal.signal(s, on_signal)


def _ignore_signals() -> None:
    """Ignore the signals camp handles (not those it found ignored): the command is over."""
    import signal

    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(s) not in (signal.SIG_IGN, signal.SIG_DFL, None):
            signal.signal(s, signal.SIG_IGN)


def _unraisable(info: Any) -> None:
    """Say nothing for finalizers that fail on a full or read-only disk.

    dulwich's ``_GitFile.__del__`` closes a file whose flush already failed; the boundary
    has said what went wrong.
    """
    if isinstance(info.exc_value, OSError) and not os.environ.get("CAMP_DEBUG") == "1" \
            and "--debug" not in sys.argv:
        return
    sys.__unraisablehook__(info)
