"""build: compile a commit into a campaign archive (.aca) that ADIOS2 opens."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace

from dulwich.objects import parse_tree

from campaignvcs import layout
from campaignvcs.aca.build import Counts, write_aca
from campaignvcs.aca.check import CheckReport, check_archive, encrypted_image_warnings
from campaignvcs.aca.extras import extras_for_build
from campaignvcs.aca.rules import RULES_VERSION
from campaignvcs.config import load_user_config
from campaignvcs.errors import BadInput, CampError
from campaignvcs.gitobjects import TREE_MODE
from campaignvcs.model import KINDS, Dataset
from campaignvcs.porcelain.common import environ, open_repo
from campaignvcs.repo import CampaignRepo
from campaignvcs.selection import Selection

ACA_SUFFIX = ".aca"


@dataclass(frozen=True)
class BuildResult:
    """The archive ``camp build`` wrote and what is in it."""

    path: str
    commit: str
    datasets: int
    replicas: int
    files: int
    size_bytes: int
    incremental: bool = False
    """True when the previous archive was patched instead of written anew."""
    rewritten: int = 0
    """Datasets whose rows an incremental build replaced."""
    warnings: list[str] = field(default_factory=list)
    """What readers should know: datasets left out or changed so ADIOS2 opens the archive, HDF5."""
    left_out: list[str] = field(default_factory=list)
    """Datasets left out because ADIOS2 2.12.1 can reach none of their replicas (see docs/build.md)."""
    instead_of: str | None = None
    """The store's own archive path, when another repository's archive is there and this one went elsewhere."""
    check: CheckReport | None = None
    """With ``check``: what the installed ADIOS2 made of the archive (opened in a child process)."""


INCREMENTAL_LIMIT = 5000
"""Beyond this many changed datasets a full build is as quick as patching."""


def build(
    rev: str | None = None,
    output: str | None = None,
    omit_deleted: bool = True,
    repo: str | CampaignRepo | None = None,
    cwd: str | None = None,
    env: Mapping[str, str] | None = None,
    exclude_kinds: tuple[str, ...] = (),
    hooks: bool = True,
    full: bool = False,
    force: bool = False,
    check: bool = False,
    elsewhere_if_taken: bool = False,
    include: tuple[str, ...] = (),
    exclude: tuple[str, ...] = (),
) -> BuildResult:
    """Compile commit ``rev`` (default HEAD) into an ACA file.

    The file goes to ``output`` (relative to ``cwd``), else to ``<campaign store>/<archive
    name>.aca`` where ADIOS2 looks for it. It appears atomically: a failed build leaves
    any previous archive as it was. Building only reads immutable objects, so it takes
    no lock and may run while another camp process records datasets. ``exclude_kinds``
    leaves datasets of those kinds out, for readers whose ADIOS2 lacks an engine (the
    PyPI wheel has no HDF5 and refuses a whole archive that lists one). With ``hooks``,
    ``pre-build`` runs before anything is written (it can refuse) and ``post-build`` after
    the archive is in place (a failure is one of the result's ``warnings``). When the output is an archive
    this repository built from another commit with the same options, only the datasets
    that changed are rewritten (an incremental build) unless ``full``.

    An existing archive another repository built (its ``camp_build`` table says which), or
    that camp did not build, is never overwritten unless ``force``; with
    ``elsewhere_if_taken`` (``camp clone``) the archive then goes to the first free
    ``<archive name>-<n>.aca`` beside it. Datasets ADIOS2 cannot open are left out and the
    result's ``warnings`` say which and why (docs/build.md). With ``check`` the installed
    ADIOS2 opens the result in a child process (``result.check``). ``include``/``exclude``
    (globs over dataset names, :mod:`campaignvcs.selection`) make a sub-archive; it needs
    an ``output`` (the store's name stands for the whole campaign). ``CAMP_FAULT`` in
    ``env`` (tests only) kills the process at a named point, as ``kill -9`` would.
    ``repo`` may be an open repository (push and pull build with theirs; it is left open).
    """
    unknown = [k for k in exclude_kinds if k not in KINDS]
    if unknown:
        raise BadInput(f"unknown dataset kind: {unknown[0]} (one of {', '.join(KINDS)})")
    env = environ(env)
    cwd = cwd or os.getcwd()
    selection = Selection(tuple(include), tuple(exclude))
    if output is None and not selection.everything:
        raise BadInput("a sub-archive (--include/--exclude) needs -o PATH.aca: the store's "
                       "<archive name>.aca is the whole campaign")
    with open_repo(repo, cwd, env) as camp:
        commit_id = camp.resolve(rev)
        commit = camp.read_commit(commit_id)
        path = _output_path(camp, commit_id, output, cwd, env)
        wanted = path
        if not force:
            path = _claim(camp.root, path, beside=output is None, new=elsewhere_if_taken)
        fault = env.get("CAMP_FAULT")
        if hooks:
            from campaignvcs.porcelain.hooks import post_hook, run_hook

            run_hook(camp, "pre-build", env, commit=commit_id, archive=path)
        provenance = _provenance(camp, commit_id, commit.tree, omit_deleted, exclude_kinds)
        provenance["selection"] = selection.recorded()
        keep = selection.keeps
        now = commit.commit_time * 1_000_000_000
        warned: list[str] = []
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            patched = None if full else _update(
                camp, path, commit.tree, provenance, now, omit_deleted, exclude_kinds, keep, fault
            )
            counts = patched[0] if patched else write_aca(
                path,
                (d for d in datasets_by_name(camp, commit.tree, keep) if d.kind not in exclude_kinds),
                camp.hosts(commit.tree),
                camp.timeseries(commit.tree),
                lambda blob: camp.read_blob(blob.encode()),
                # The commit's own time stands for "now", so a rebuild gives the same tables.
                now=now,
                omit_deleted=omit_deleted,
                provenance=provenance,
                extras=extras_for_build(camp, commit.tree, warned.append),
                fault=fault,
            )
        except OSError as exc:
            raise CampError(f"cannot write {path}: {exc.strerror or exc}") from None
        except sqlite3.Error as exc:
            raise CampError(f"cannot write {path}: {exc}") from None
        result = BuildResult(
            path, commit_id.decode(), counts.datasets, counts.replicas, counts.files, os.path.getsize(path),
            incremental=patched is not None, rewritten=patched[1] if patched else 0,
            warnings=[*warned, *counts.warnings, *encrypted_image_warnings(path)], left_out=list(counts.left_out),
            instead_of=wanted if path != wanted else None,
        )
        if check:
            result = replace(result, check=check_archive(path, env))
        from campaignvcs.porcelain.search import index_built_archive  # the store's search index, if any

        result = replace(result, warnings=[*result.warnings, *index_built_archive(path, env)])
        if hooks:
            result = replace(result, warnings=[*result.warnings,
                                               *post_hook(camp, "post-build", env, commit=commit_id, archive=path)])
        return result


def _update(camp: CampaignRepo, path: str, tree: bytes, provenance: dict[str, str], now: int,
            omit_deleted: bool, exclude_kinds: tuple[str, ...], keep: Callable[[str], bool],
            fault: str | None = None) -> tuple[Counts, int] | None:
    """Patch the archive at ``path`` if this repository built it with the same options; None: build in full.

    Only dataset changes are patched: a change to campaign.json, a host manifest or a
    time series (which renumber rows across the archive) means a full build.
    """
    from campaignvcs.aca.read import read_provenance
    from campaignvcs.aca.update import update_aca
    from campaignvcs.history_model import changed_paths, folder_dataset

    built = read_provenance(path) if os.path.isfile(path) else None
    same = ("repository", "archive_name", "omit_deleted", "exclude_kinds", "camp_version", "adios2_rules",
            "selection")
    if not built or "tree" not in built or any(built.get(k, "") != provenance[k] for k in same):
        return None
    old_tree = built["tree"].encode()
    try:
        camp.tree_entries(old_tree)
    except (CampError, KeyError, ValueError):
        return None  # built from a commit this repository no longer has
    if any(camp.lookup(old_tree, top) != camp.lookup(tree, top)
           for top in (layout.CAMPAIGN, layout.HOSTS, layout.TIMESERIES, layout.EXTRAS)):
        return None
    if camp.lookup(tree, layout.EXTRAS) is not None:
        return None  # extra tables hold dataset row ids, which a patch renumbers: a full build maps them
    changes = []
    for number, change in enumerate(changed_paths(camp, old_tree, tree, layout.DATASETS)):
        if number >= INCREMENTAL_LIMIT:
            return None
        changes.append(change)
    names: set[str] = set()
    new: list[Dataset] = []
    for where, before, after in changes:
        for entry in (before, after):
            ds = folder_dataset(camp, entry, where)
            if ds is not None:
                names.add(ds.name)
                if entry is after and ds.kind not in exclude_kinds and keep(ds.name):
                    new.append(ds)
    if any(names.intersection(series.datasets) for series in camp.timeseries(tree)):
        return None  # a member's series order depends on its neighbours: renumbered by a full build
    counts = update_aca(path, names, sorted(new, key=lambda d: d.name), {h.name: h for h in camp.hosts(tree)},
                        lambda blob: camp.read_blob(blob.encode()), now, omit_deleted, provenance, fault)
    return None if counts is None else (counts, len(names))


def _provenance(camp: CampaignRepo, commit: bytes, tree: bytes, omit_deleted: bool,
                exclude_kinds: tuple[str, ...]) -> dict[str, str]:
    """What ``camp store ls`` shows and an incremental rebuild checks: what built this archive."""
    from campaignvcs import __version__

    return {
        "commit": commit.decode(),
        "tree": tree.decode(),
        "repository": camp.root,
        "archive_name": camp.campaign(commit).name,
        "omit_deleted": "1" if omit_deleted else "0",
        "exclude_kinds": ",".join(sorted(exclude_kinds)),
        "camp_version": __version__,
        "adios2_rules": RULES_VERSION,
    }


def _claim(root: str, path: str, beside: bool, new: bool) -> str:
    """``path`` if this repository may write it, else an archive name beside it that is this repository's.

    Free means: absent, or an archive whose ``camp_build`` table names this repository.
    Anything else — another repository's archive, hpc-campaign's, a file that is no
    archive — belongs to someone else. For the store's default name (``beside``) the
    archive goes to the ``<archive name>-<n>.aca`` this repository built before (a second
    clone on this machine keeps its own name); with ``new`` (``camp clone``, ``camp
    pull``) to the first free one if there is none yet. Otherwise it is refused
    (``--force`` overrides).
    """
    owner = _other_owner(root, path)
    if owner is None:
        return path
    if beside or new:
        stem = path[: -len(ACA_SUFFIX)]
        first_free = None
        for n in range(2, 1000):
            candidate = f"{stem}-{n}{ACA_SUFFIX}"
            if not os.path.lexists(candidate):
                first_free = first_free or candidate
            elif _other_owner(root, candidate) is None:
                return candidate  # built by this repository before
        if new and first_free is not None:
            return first_free
    raise CampError(f"{path} was built by {owner}: not overwritten; pass --force to replace it, "
                    "or -o PATH.aca to build elsewhere")


def _other_owner(root: str, path: str) -> str | None:
    """Who else built the archive at ``path`` (as a phrase), or None when it is absent or this repository's."""
    from campaignvcs.aca.read import read_provenance

    if not os.path.lexists(path):
        return None
    built = read_provenance(path)
    if built is None or "repository" not in built:
        return "another tool (it has no camp_build table)"
    if built["repository"] == root:
        return None
    return f"another repository ({built['repository']})"


def _output_path(
    camp: CampaignRepo, commit: bytes, output: str | None, cwd: str, env: Mapping[str, str]
) -> str:
    """``-o PATH`` (must end in .aca: ADIOS2 picks its engine by the suffix) or the store default."""
    if output is not None:
        if not output.endswith(ACA_SUFFIX) or os.path.basename(output) == ACA_SUFFIX:
            raise BadInput(
                f"output must be a file name ending in {ACA_SUFFIX} (ADIOS2 opens archives by "
                f"that suffix): {output}"
            )
        path = os.path.join(cwd, output)
    else:
        store = load_user_config(env).campaign_store
        if not store:
            raise CampError(
                "no campaign store: set Campaign.campaignstorepath in "
                "~/.config/hpc-campaign/config.yaml or pass -o PATH"
            )
        path = os.path.join(cwd, store, camp.campaign(commit).name + ACA_SUFFIX)
    path = os.path.abspath(path)
    if os.path.isdir(path):
        raise BadInput(f"cannot write {path}: it is a directory")
    return path


def datasets_by_name(camp: CampaignRepo, tree: bytes,
                     keep: Callable[[str], bool] = lambda name: True) -> Iterator[Dataset]:
    """Every dataset manifest of ``tree`` whose name ``keep`` accepts, sorted by name, read one at a time.

    The tree is ordered by a hash of the name; the name is also in each folder's path,
    so sorting needs only the paths, never the manifests. The walk parses raw trees
    without keeping them (the repository's tree cache would hold every folder of the
    campaign), and the (name, manifest id) pairs are sorted by SQLite in a temporary
    database on disk rather than in a Python list, so a build's memory does not grow
    with the campaign (a million pairs would be ~250 MB here). Names go in as UTF-8 with
    lone surrogates kept (``surrogatepass``), whose byte order is Python's code-point order.
    """
    entry = camp.lookup(tree, layout.DATASETS)
    if entry is None or entry[0] != TREE_MODE:
        return
    manifest = layout.MANIFEST.encode()
    pairs = sqlite3.connect("")  # "": a private temporary database, on disk once it outgrows its cache
    try:
        pairs.execute("create table found(name blob, manifest blob)")
        batch: list[tuple[bytes, bytes]] = []

        def walk(oid: bytes, prefix: bytes) -> None:
            kind, data = camp.read_raw(oid)
            if kind != b"tree":
                raise CampError(f"object {oid.decode()} is not a tree")
            for name, mode, sha in parse_tree(data, 20):
                if mode == TREE_MODE:
                    walk(sha, prefix + name + b"/")
                elif name == manifest:
                    dataset = _name_of(prefix)
                    if keep(dataset):
                        batch.append((dataset.encode("utf-8", "surrogatepass"), sha))
                        if len(batch) >= 10_000:
                            pairs.executemany("insert into found values (?, ?)", batch)
                            batch.clear()

        walk(entry[1], layout.DATASETS.encode() + b"/")
        pairs.executemany("insert into found values (?, ?)", batch)
        for name, sha in pairs.execute("select name, manifest from found order by name, manifest"):
            yield Dataset.loads(camp.read_blob(sha), what=f"manifest of {name.decode('utf-8', 'surrogatepass')}")
    finally:
        pairs.close()


def _name_of(folder: bytes) -> str:
    """The dataset name of ``datasets/<aa>/<bb>/<encoded name>/`` (most names need no decoding)."""
    parts = folder.split(b"/")
    component = parts[3].decode("utf-8", "surrogateescape") if len(parts) > 4 else ""
    return layout.decode_component(component) if "%" in component else component
