"""Run one extraction per path in forked worker processes, with the results of a serial run.

``camp add`` of many datasets spends most of its time reading and compressing metadata;
threads do not help (the GIL), processes do. :func:`map_in_order` starts serially and
forks workers only once the work left is clearly worth it (fork, pickling the results
and a second interpreter's page faults cost a few milliseconds), so small adds pay
nothing. The outcome is exactly what a serial loop gives: results in the order of the
items, and, if any item fails, the exception of the first failing item (in item order).
Workers are plain ``os.fork`` children (Linux): they inherit the modules already
imported (h5py, pillow), write their pickled results to a pipe and leave with
``os._exit``, so nothing of the parent (buffers, locks, atexit handlers) runs twice.
A worker that dies without answering has its share done again in the parent.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import gc
import os
import pickle
import signal
import struct
import sys
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from typing import Any, Generic, Protocol, TypeVar

T = TypeVar("T")
R = TypeVar("R")
T_co = TypeVar("T_co", covariant=True)

AUTO_MAX_PROCESSES = 4
"""Processes (the parent included) when the count is chosen automatically."""
WORTH_FORKING = 0.05
"""Seconds of serial work still ahead above which forking pays.

Measured on 2 cores: a fork and collecting its results take ~2 ms, the child's first
page faults a few more; for BP5 (~0.3 ms each) the gain is lost in noise below ~150
datasets and is 1.5x at 1,000.
"""


def available_cpus() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def auto_processes() -> int:
    """How many processes an automatic choice uses here (1: this system cannot fork workers)."""
    if not hasattr(os, "fork") or not sys.platform.startswith("linux"):
        return 1
    return max(1, min(AUTO_MAX_PROCESSES, available_cpus()))


def map_in_order(
    fn: Callable[[T], R],
    items: Sequence[T],
    processes: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[R]:
    """``[fn(item) for item in items]``, spread over processes when that is faster.

    Args:
        fn: Called once per item; its result must pickle.
        items: The work, in the order the results come back.
        processes: None chooses: serial at first, then :func:`auto_processes` once the
            remaining work is estimated at more than :data:`WORTH_FORKING` seconds.
            1 never forks; N > 1 forks N - 1 workers at once.
        progress: Called with (items done, total) as work completes (approximate while
            workers run: the parent counts its own share).

    Raises:
        Whatever ``fn`` raised for the first failing item, as a serial loop would.
    """
    total = len(items)
    results: list[R] = []
    if processes is not None and processes > 1 and total > 1:
        return _parallel(fn, items, 0, min(processes, total), progress, results)
    limit = auto_processes() if processes is None else 1
    started = 0.0
    for i, item in enumerate(items):
        if i == 1:
            started = time.perf_counter()  # item 0 pays one-time imports (h5py, pillow): not counted
        elif i > 1 and limit > 1:
            left = total - i
            if left >= 2 * limit and (time.perf_counter() - started) / (i - 1) * left > WORTH_FORKING:
                return _parallel(fn, items, i, limit, progress, results)
        results.append(fn(item))
        if progress:
            progress(i + 1, total)
    return results


STREAM_CHUNK = 16
"""Results a streaming worker pickles and sends at a time: small enough that the consumer
starts within a few items, large enough that framing costs nothing."""

_FRAME = struct.Struct("<Q")
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
PIPE_SIZE = 1 << 20
"""A streaming worker's pipe (Linux allows 1 MiB unprivileged): ~500 BP5 results in flight."""


START_NOW_MIN = 64
"""Items from which :func:`imap_in_order` forks at once, without timing any first.

64 BP5 datasets are ~20 ms of work against a few ms for the forks; slower kinds more."""


class Results(Protocol[T_co]):
    """What :func:`imap_in_order` returns: an iterator that ``close()`` stops (workers included)."""

    def __iter__(self) -> Iterator[T_co]: ...

    def __next__(self) -> T_co: ...

    def close(self) -> None:
        """Stop computing (worker processes are stopped and reaped)."""


def imap_in_order(
    fn: Callable[[T], R],
    items: Sequence[T],
    processes: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Results[R]:
    """``(fn(item) for item in items)``, computed ahead, by worker processes when that is faster.

    For a consumer with work of its own per result (``camp add`` stages each dataset while
    the next ones are read): computing starts before this returns, so it runs while the
    caller prepares to consume (``camp add`` loads the repository code meanwhile). With
    :data:`START_NOW_MIN` items or more, workers are forked at once; with fewer, items are
    computed here, timed, until the rest is worth forking for (:data:`WORTH_FORKING`).
    Once workers run they compute every item left and stream results in small chunks, and
    this process only consumes, so consuming overlaps computing to the end (with
    :func:`map_in_order` the consumer's work starts when the last worker is done).

    The outcome is the serial generator's: results in item order, the first failing item's
    exception raised at its place, a worker that dies has the rest of its items computed
    here. ``close()`` stops the workers, iterated or not. ``processes``: None chooses
    (:func:`auto_processes`); 1 (or a single item) computes each item here when it is
    asked for; N > 1 starts N workers at once.
    """
    workers = auto_processes() if processes is None else processes
    if workers <= 1 or len(items) <= 1:
        return _lazily(fn, items, progress)
    if processes is not None or len(items) >= max(START_NOW_MIN, 2 * workers):
        return _Streamed(fn, items, 0, workers, progress)
    return _Ahead(fn, items, workers, progress)


def _lazily(fn: Callable[[T], R], items: Sequence[T],
            progress: Callable[[int, int], None] | None) -> Generator[R, None, None]:
    for i, item in enumerate(items):
        result = fn(item)
        if progress:
            progress(i + 1, len(items))
        yield result


class _Ahead(Generic[T, R]):
    """Items computed here at once, timed, until forking workers for the rest pays; then they stream."""

    def __init__(self, fn: Callable[[T], R], items: Sequence[T], workers: int,
                 progress: Callable[[int, int], None] | None) -> None:
        self.done: list[tuple[bool, Any]] = []
        self.position = 0
        self.rest: _Streamed[T, R] | None = None
        spent = 0.0  # seconds in fn, item 0 (one-time imports) excluded
        for i, item in enumerate(items):
            left = len(items) - i
            if left >= 2 * workers and i > 1 and spent / (i - 1) * left > WORTH_FORKING:
                self.rest = _Streamed(fn, items, i, workers, progress)
                break
            began = time.perf_counter()
            try:
                self.done.append((True, fn(item)))
            except Exception as exc:  # noqa: BLE001 - raised when the consumer reaches it, in item order
                self.done.append((False, exc))
                break
            if i:
                spent += time.perf_counter() - began
            if progress:
                progress(i + 1, len(items))

    def __iter__(self) -> _Ahead[T, R]:
        return self

    def __next__(self) -> R:
        if self.position < len(self.done):
            ok, value = self.done[self.position]
            self.done[self.position] = (ok, None)  # handed over: not kept here
            self.position += 1
            if not ok:
                self.close()
                raise value
            return value
        if self.rest is not None:
            return next(self.rest)
        raise StopIteration

    def close(self) -> None:
        """Stop the workers, if any were started."""
        self.position = len(self.done)
        if self.rest is not None:
            self.rest.close()


class _Streamed(Generic[T, R]):
    """Items from ``offset`` on, computed by forked workers (item ``offset + j``: worker ``j % workers``)."""

    def __init__(self, fn: Callable[[T], R], items: Sequence[T], offset: int, workers: int,
                 progress: Callable[[int, int], None] | None) -> None:
        self.fn, self.items, self.offset, self.progress = fn, items, offset, progress
        self.next_item = offset
        self.feeds: list[_Feed] = []
        rest = items[offset:]
        try:
            for worker in range(workers):
                _start_worker(functools.partial(_stream_and_exit, fn, rest, worker, workers),
                              lambda pid, fd: self.feeds.append(_Feed(pid, fd)),
                              [feed.fd for feed in self.feeds])  # the earlier workers' pipes are ours
        except BaseException:
            self.close()
            raise

    def __iter__(self) -> _Streamed[T, R]:
        return self

    def __next__(self) -> R:
        i = self.next_item
        if i >= len(self.items):
            self.close()
            raise StopIteration
        try:
            answer = self.feeds[(i - self.offset) % len(self.feeds)].next()
            if answer is None:  # that worker is gone: its items are computed here
                value = self.fn(self.items[i])
            elif answer[0]:
                value = answer[1]
            else:
                raise answer[1]
        except BaseException:
            self.close()
            raise
        self.next_item = i + 1
        if self.progress:
            self.progress(i + 1, len(self.items))
        return value

    def close(self) -> None:
        """Stop and reap every worker (those done included); later items are not computed."""
        for feed in self.feeds:
            feed.close()
        self.next_item = len(self.items)


class _Feed:
    """One streaming worker's results, read a chunk at a time as the consumer reaches them."""

    def __init__(self, pid: int, fd: int) -> None:
        self.pid, self.fd = pid, fd
        self.queue: list[tuple[bool, Any]] = []
        self.done = False  # reaped: no more chunks come

    def next(self) -> tuple[bool, Any] | None:
        """(ok, result or exception) of this worker's next item; None once it died without it."""
        if not self.queue and not self.done:
            chunk = self._read_chunk()
            if chunk is None:
                self.close()
            else:
                self.queue = chunk[::-1]
        return self.queue.pop() if self.queue else None

    def _read_chunk(self) -> list[tuple[bool, Any]] | None:
        head = _read_exactly(self.fd, _FRAME.size)
        body = _read_exactly(self.fd, _FRAME.unpack(head)[0]) if head is not None else None
        if body is None:
            return None
        try:
            return pickle.loads(body)
        except Exception:  # noqa: BLE001 - a damaged answer: the consumer computes these items
            return None

    def close(self) -> None:
        """Stop the worker (it may still be computing items nobody will ask for) and reap it."""
        if self.done:
            return
        self.done = True
        with contextlib.suppress(OSError):
            os.kill(self.pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            os.close(self.fd)
        with contextlib.suppress(OSError):
            os.waitpid(self.pid, 0)


def _read_exactly(fd: int, size: int) -> bytes | None:
    """``size`` bytes from a pipe, or None at its end (the writer is gone)."""
    parts = []
    while size:
        part = os.read(fd, min(size, 1 << 20))
        if not part:
            return None
        parts.append(part)
        size -= len(part)
    return b"".join(parts)


def _stream_and_exit(fn: Callable[[T], R], rest: Sequence[T], worker: int, workers: int,
                     write_end: int) -> None:  # pragma: no cover - child process
    """Compute this worker's items, sending them in chunks; stop after the first failure."""
    gc.disable()  # short-lived; a collection would touch (and so copy) every page shared with the parent
    _keep_freed_memory()
    with contextlib.suppress(OSError):  # a worker ahead of the consumer keeps computing instead of blocking
        fcntl.fcntl(write_end, F_SETPIPE_SZ, PIPE_SIZE)
    try:
        with os.fdopen(write_end, "wb") as pipe:
            chunk: list[tuple[bool, Any]] = []
            for j in range(worker, len(rest), workers):
                try:
                    chunk.append((True, fn(rest[j])))
                except Exception as exc:  # noqa: BLE001 - handed to the consumer, raised at its place
                    chunk.append((False, _portable(exc)))
                    break
                if len(chunk) == STREAM_CHUNK:
                    _send(pipe, chunk)
                    chunk = []
            if chunk:
                _send(pipe, chunk)
    except BaseException:  # noqa: BLE001, S110 - the consumer computes what did not arrive
        pass
    finally:
        os._exit(0)


def _keep_freed_memory() -> None:
    """Ask glibc to keep freed memory instead of returning the top of the heap to the system.

    Every zlib compression allocates and frees ~270 KB of state; in a fresh worker that block
    sits at the heap's top, so glibc gave it back after each call and the next call took page
    faults on all of it again (~9,000 faults per worker per 500 BP5 datasets, a third of its time).
    """
    with contextlib.suppress(Exception):  # not glibc (musl, macOS): nothing to tune
        import ctypes

        libc = ctypes.CDLL(None)
        libc.mallopt(M_TRIM_THRESHOLD, 64 << 20)
        libc.mallopt(M_TOP_PAD, 8 << 20)


M_TRIM_THRESHOLD, M_TOP_PAD = -1, -2
"""glibc's mallopt parameters (malloc.h)."""


def _send(pipe: Any, chunk: list[tuple[bool, Any]]) -> None:
    data = pickle.dumps(chunk, pickle.HIGHEST_PROTOCOL)
    pipe.write(_FRAME.pack(len(data)))
    pipe.write(data)
    pipe.flush()


def _parallel(fn: Callable[[T], R], items: Sequence[T], offset: int, processes: int,
              progress: Callable[[int, int], None] | None, results: list[R]) -> list[R]:
    """Items from ``offset`` on: item ``offset + j`` goes to process ``j % processes`` (0 = this one)."""
    rest = items[offset:]
    children: dict[int, tuple[int, int]] = {}  # worker number → (pid, read end)
    try:
        for worker in range(1, processes):
            _start_worker(functools.partial(_work_and_exit, fn, rest, worker, processes),
                          lambda pid, fd: children.__setitem__(worker, (pid, fd)))  # noqa: B023 - called at once
        shares: dict[int, list[tuple[bool, Any]]] = {0: []}
        for j in range(0, len(rest), processes):
            try:
                shares[0].append((True, fn(rest[j])))
            except Exception as exc:  # noqa: BLE001 - re-raised below at its place in item order
                shares[0].append((False, exc))
                break
            if progress:
                progress(offset + j + 1, len(items))
        for worker in list(children):
            answer = _collect(*children[worker])
            del children[worker]  # reaped, its pipe closed
            # A worker that died without answering: do its share here.
            shares[worker] = answer if answer is not None else _share(fn, rest, worker, processes)
    finally:
        for pid, read_end in children.values():  # interrupted: stop the workers we started
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(OSError):
                os.close(read_end)
            with contextlib.suppress(OSError):
                os.waitpid(pid, 0)
    position = dict.fromkeys(shares, 0)
    for j in range(len(rest)):
        worker = j % processes
        ok, value = shares[worker][position[worker]]  # a share ends at its first failure
        position[worker] += 1
        if not ok:
            raise value
        results.append(value)
    if progress:
        progress(len(items), len(items))
    return results


def _share(fn: Callable[[T], R], rest: Sequence[T], worker: int, processes: int) -> list[tuple[bool, Any]]:
    """One worker's items, stopping at the first failure (recorded, not raised)."""
    out: list[tuple[bool, Any]] = []
    for j in range(worker, len(rest), processes):
        try:
            out.append((True, fn(rest[j])))
        except Exception as exc:  # noqa: BLE001 - handed to the parent
            out.append((False, exc))
            break
    return out


def _work_and_exit(fn: Callable[[T], R], rest: Sequence[T], worker: int, processes: int,
                   write_end: int) -> None:  # pragma: no cover - child process
    code = 1
    _keep_freed_memory()
    try:
        out = _share(fn, rest, worker, processes)
        if out and not out[-1][0]:
            out[-1] = (False, _portable(out[-1][1]))
        data = pickle.dumps(out, pickle.HIGHEST_PROTOCOL)
        with os.fdopen(write_end, "wb") as f:
            f.write(data)
        code = 0
    except BaseException:  # noqa: BLE001 - the parent redoes this share
        pass
    finally:
        os._exit(code)


def _start_worker(run: Callable[[int], None], record: Callable[[int, int], None],
                  inherited: Sequence[int] = ()) -> None:
    """Fork a worker that runs ``run(write end of its pipe)`` and never returns.

    ``record(pid, read end)`` is called here while SIGINT and SIGTERM are still held back,
    so a Ctrl-C lands once the caller knows the worker (and its cleanup stops it).
    ``inherited``: this process's descriptors the worker closes (earlier workers' pipes).
    """
    sys.stdout.flush()
    sys.stderr.flush()
    read_end, write_end = os.pipe()
    with _signals_held() as previous:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child, which never returns
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)
            os.close(read_end)
            for fd in inherited:
                os.close(fd)
            run(write_end)
        os.close(write_end)
        record(pid, read_end)


@contextlib.contextmanager
def _signals_held() -> Iterator[set[int | signal.Signals]]:
    """SIGINT and SIGTERM held back around a fork; yields the signal mask to restore in the child.

    Modules register fork handlers (logging releases its lock in the parent); a Ctrl-C
    landing inside one is printed by Python as an ignored exception with a traceback,
    and lost. Held back, it arrives once the new worker is recorded, so the caller's
    cleanup stops it.
    """
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield previous
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _portable(exc: Exception) -> Exception:
    """The exception itself if it survives pickling, else a RuntimeError with its text."""
    try:
        again = pickle.loads(pickle.dumps(exc, pickle.HIGHEST_PROTOCOL))
        if type(again) is type(exc) and str(again) == str(exc):
            return exc
    except Exception:  # noqa: BLE001, S110 - any failure means: send the text instead
        pass
    return RuntimeError(f"{type(exc).__name__}: {exc}")


def _collect(pid: int, read_end: int) -> list[tuple[bool, Any]] | None:
    """A worker's results, or None if it exited without a complete answer.

    The pipe is read to its end before waiting, so a worker never blocks on a full pipe.
    """
    chunks = []
    while True:
        chunk = os.read(read_end, 1 << 20)
        if not chunk:
            break
        chunks.append(chunk)
    _, status = os.waitpid(pid, 0)
    os.close(read_end)
    if status != 0:
        return None
    try:
        out: list[tuple[bool, Any]] = pickle.loads(b"".join(chunks))
    except Exception:  # noqa: BLE001 - a truncated answer: redo the share
        return None
    return out
