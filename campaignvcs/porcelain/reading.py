"""camp add's first half: what each path holds, read ahead by worker processes.

Reading needs no repository, so ``camp add`` starts it before the repository code is
even loaded: the CLI calls :func:`start_reading` first (this module imports only the
extractors), worker processes read while this process loads dulwich, opens the
campaign and takes the lock, and :mod:`campaignvcs.porcelain.staging` stages each
source as it arrives. Nothing is recorded here: a bad path is an error at its place
in the order given, raised when staging reaches it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from campaignvcs.errors import BadInput
from campaignvcs.extract import Extracted, Options, detect, extract
from campaignvcs.extract.parallel import Results, imap_in_order

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Source:
    """One path read for ``camp add``: what its extractor found, and where the file is."""

    shown: str
    name: str
    """The dataset it goes to: given (``named``), else "" until staging names it."""
    directory: str
    path: str
    extracted: Extracted
    named: bool = False
    """The name was given (--name): the dataset is that one even if the file is recorded under another."""
    location: str = ""
    """The file as the stat cache keys it (absolute, normalised; "": not worked out yet)."""

    def where(self) -> str:
        """:attr:`location`, worked out here when the reader left it empty."""
        return self.location or location_of(self.directory, self.path)


@dataclass
class Reading:
    """The paths of one ``camp add`` being read: their sources in order, as workers deliver them."""

    paths: list[str]
    name: str | None
    sources: Results[Source]
    started: int
    """``time.time_ns()`` before any file was read: a change after it is seen as racy (statcache)."""

    def close(self) -> None:
        """Stop the workers (reading was abandoned, or is complete)."""
        self.sources.close()


def start_reading(paths: Sequence[str], name: str | None = None, store: bool = False,
                  thumbnail: tuple[int, int] | None = None, kind: str = "auto", cwd: str | None = None,
                  env: Mapping[str, str] | None = None, progress: Progress | None = None) -> Reading:
    """Begin reading ``paths`` (relative to ``cwd``); workers start now when there are many.

    ``CAMP_JOBS`` in ``env``: how many processes read (1: only this one); unset: camp chooses
    (see :mod:`campaignvcs.extract.parallel`). Threads were measured slower (the GIL).
    """
    processes = worker_count(os.environ if env is None else env)
    cwd = cwd or os.getcwd()
    options = Options(store=store, thumbnail=thumbnail, kind=kind)
    real: dict[str, str] = {}  # one realpath per folder, not per dataset (it lstats every component)

    def realpath(folder: str) -> str:
        found = real.get(folder)
        if found is None:
            found = real[folder] = os.path.realpath(folder)
        return found

    todo = list(paths)
    started = time.time_ns()
    sources = imap_in_order(lambda given: _read_source(given, name, cwd, options, realpath), todo, processes,
                            progress)
    return Reading(todo, name, sources, started)


def worker_count(env: Mapping[str, str]) -> int | None:
    """``CAMP_JOBS``: how many processes read datasets (1: only this one); None: camp chooses."""
    value = env.get("CAMP_JOBS", "").strip()
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise BadInput(f"invalid CAMP_JOBS: {value!r} (a number of processes, 1 for no worker processes)")
    return int(value)


def _read_source(given: str, name: str | None, cwd: str, options: Options,
                 realpath: Callable[[str], str]) -> Source:
    if not given or "\0" in given:
        raise BadInput(f"invalid path: {given!r}")
    shown = os.path.normpath(given)
    full = os.path.join(cwd, given)
    kind = detect(full, options.kind)
    extracted = extract(full, kind, options)
    if os.path.isabs(given):
        # ADIOS2 reads dir + "/" + path: record the real folder and the base name.
        directory, path = realpath(os.path.dirname(shown)), os.path.basename(shown)
    else:
        directory, path = realpath(cwd), shown
    # The location is worked out here, in the worker processes, not in the staging loop.
    return Source(given, name or "", directory, path, extracted, name is not None, location_of(directory, path))


def location_of(directory: str, path: str) -> str:
    """A replica's file as the stat cache keys it (absolute, normalised)."""
    return os.path.normpath(os.path.join(directory, path))
