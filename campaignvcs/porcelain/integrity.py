"""verify and fsck: does the data still match the record, and is the record itself whole?

``verify`` reads the replicas this host can reach and compares them with their manifests
(exists, size, modification time, checksum of the metadata camp extracts from them).
``fsck`` checks the repository: every object reachable from a ref hashes to its id,
every manifest parses, every reference inside a manifest resolves. Both only read and
report; neither repairs anything nor takes the repository lock. The checks themselves are
core modules (:mod:`campaignvcs.verify`, :mod:`campaignvcs.fsck`); this module opens the
repository, chooses what to check and returns the reports.

(The module is not called ``verify``: importing ``campaignvcs.porcelain.verify`` would
set that attribute of the package to the module and hide the ``verify`` function.)
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from campaignvcs.errors import BadInput, CampError
from campaignvcs.fsck import Fsck, FsckProblem
from campaignvcs.model import Dataset
from campaignvcs.porcelain.common import environ, local_host, open_repo
from campaignvcs.repo import CampaignRepo
from campaignvcs.verify import ReplicaCheck, check_replica

__all__ = ["FsckProblem", "FsckReport", "ReplicaCheck", "VerifyReport", "fsck", "verify"]

# -- verify ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VerifyReport:
    """Every live replica of the selected datasets; ``ok`` when all checked ones match."""

    host: str
    commit: str | None
    """The commit verified against; None for the staged state (HEAD plus staged changes)."""
    checked: int
    matched: int
    ok: bool
    replicas: list[ReplicaCheck] = field(default_factory=list)

    @property
    def mismatched(self) -> list[ReplicaCheck]:
        """Checked replicas that do not match their record."""
        return [c for c in self.replicas if c.state not in ("ok", "not checked")]


def verify(
    names: Sequence[str] = (),
    host: str | None = None,
    rev: str | None = None,
    repo: str | None = None,
    cwd: str | None = None,
    env: Mapping[str, str] | None = None,
) -> VerifyReport:
    """Compare every replica reachable from this host with its record.

    A replica is reachable when it is on ``host`` (default: this machine's host name),
    not inside an archive, and its directory exists here; the others are listed as
    ``not checked``. Datasets come from ``rev``, else from the staged state (what
    ``camp status`` shows). ``names`` restricts the check to those datasets.
    """
    env = environ(env)
    with open_repo(repo, cwd, env) as camp:
        here = host or local_host(camp, env)
        if not here:
            raise BadInput(
                "no host to verify: pass --host, set one with 'camp init --host', "
                "or set Campaign.hostname in ~/.config/hpc-campaign/config.yaml"
            )
        commit = camp.resolve(rev) if rev is not None else None
        try:
            datasets = list(_selected(camp, names, commit))
        except CampError:
            raise
        except Exception as exc:  # noqa: BLE001 - a damaged object store: say so in one line
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise CampError(f"cannot read the campaign's manifests ({reason}): run 'camp fsck'") from None
        checks = [check_replica(ds, r, here) for ds in datasets if ds.live for r in ds.replicas if r.live]
    checked = [c for c in checks if c.state != "not checked"]
    matched = sum(1 for c in checked if c.state == "ok")
    return VerifyReport(
        host=here,
        commit=commit.decode() if commit else None,
        checked=len(checked),
        matched=matched,
        ok=matched == len(checked),
        replicas=checks,
    )


def _selected(camp: CampaignRepo, names: Sequence[str], commit: bytes | None) -> Iterator[Dataset]:
    if not names:
        yield from camp.datasets(camp.tree_of(commit) if commit else camp.staged_tree())
        return
    found = []
    for name in dict.fromkeys(names):
        ds = camp.dataset(name, commit)
        if ds is None:
            raise BadInput(f"unknown dataset: {name}")
        found.append(ds)
    yield from found


# -- fsck ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FsckReport:
    """What ``camp fsck`` read and what it found wrong; ``ok`` when nothing."""

    refs: int
    commits: int
    objects: int
    manifests: int
    packs: int
    ok: bool
    problems: list[FsckProblem] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)
    """Locks and temporaries of interrupted writers (``path: what clears it``): never read, not problems."""


def fsck(repo: str | None = None, cwd: str | None = None, env: Mapping[str, str] | None = None) -> FsckReport:
    """Check every object reachable from every ref (and the staging area) and every manifest.

    Each object is read once and its content hashed again (git's object id); commits
    and trees are parsed; every manifest is loaded; each dataset folder holds exactly
    the embedded objects its manifest names, at the recorded lengths. At each branch
    tip (and in the staged state) archived replicas must name an archive their host
    manifest lists, and time-series members must exist. Nothing is repaired.
    """
    env = environ(env)
    with open_repo(repo, cwd, env) as camp:
        from campaignvcs.porcelain.remote_status import remote_ref_problems  # loaded only for fsck

        c = Fsck(camp, dict(remote_ref_problems(camp)))
        c.run()
        return FsckReport(
            refs=c.ref_count, commits=c.commit_count, objects=len(c.seen), manifests=c.manifest_count,
            packs=c.pack_count, ok=not c.problems, problems=c.problems,
            leftovers=[f"{path}: {what}" for path, what in camp.leftovers()],
        )
