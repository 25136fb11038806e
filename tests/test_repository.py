"""The repository's parts, built in memory: transactions, commits, revisions, trees.

No disk, no subprocess: what `CampaignRepo.in_memory` exists for.
"""

from __future__ import annotations

import pytest

from campaignvcs import layout
from campaignvcs.errors import CampError, UnknownRevision
from campaignvcs.gitobjects import BLOB_MODE, TREE_MODE
from campaignvcs.model import Campaign, Dataset, DatasetName, HostName, Replica
from campaignvcs.objectstore import MemoryObjectStore
from campaignvcs.repo import CampaignRepo
from campaignvcs.trees import apply_changes, iter_tree, lookup

ME = b"Tester <t@example.org>"


def dataset(name: str, host: str = "laptop", size: int = 10) -> Dataset:
    replica = Replica(HostName(host), "/d", name, size, 1, "c")
    return Dataset(DatasetName(name), "u-" + name, "TEXT", 1, replicas=(replica,))


@pytest.fixture
def repo():
    return CampaignRepo.in_memory(Campaign("demo", "uuid-1", 1), ME)


def test_in_memory_repository_starts_with_the_campaign_commit(repo):
    assert repo.campaign().name == "demo"
    (first,) = list(repo.walk())
    assert first.message == b"Initialise campaign demo\n" and first.author == ME
    assert repo.resolve("HEAD") == repo.head() == first.id


def test_a_transaction_stages_and_commits_and_history_follows(repo):
    with repo.transaction() as tx:
        tx.stage_dataset(dataset("a.txt"))
        assert repo.dataset("a.txt") is not None  # staged state is visible before the commit
        assert repo.dataset("a.txt", repo.head()) is None
        one = tx.commit("add a", ME)
    with repo.transaction() as tx:
        tx.stage_dataset(dataset("b.txt"))
        two = tx.commit("add b", ME)
    assert [c.id for c in repo.walk()][:2] == [two, one]
    assert repo.resolve("HEAD~1") == one and repo.resolve("HEAD^") == one
    assert repo.resolve(two.decode()[:8]) == two
    assert sorted(d.name for d in repo.datasets(repo.tree_of(two))) == ["a.txt", "b.txt"]
    assert repo.staging.entries == {} and repo.staged_changes() == {}


def test_a_failed_transaction_leaves_the_staging_area_as_it_was(repo):
    with pytest.raises(RuntimeError), repo.transaction() as tx:
        tx.stage_dataset(dataset("a.txt"))
        raise RuntimeError("interrupted")
    assert repo.dataset("a.txt") is None
    assert repo.staged_changes() == {}


def test_staging_is_read_only_outside_a_transaction(repo):
    with pytest.raises(TypeError):
        repo.staging.entries["x"] = None  # type: ignore[index]
    with pytest.raises(RuntimeError, match="without the lock"):
        repo.set_branch(repo.head(), repo.head())


def test_removing_a_dataset_and_unknown_revisions(repo):
    with repo.transaction() as tx:
        tx.stage_dataset(dataset("a.txt"))
        tx.commit("add", ME)
    with repo.transaction() as tx:
        tx.remove_dataset("a.txt")
        assert list(repo.staged_changes()) == [layout.dataset_dir("a.txt")]
        tx.commit("rm", ME)
    assert repo.dataset("a.txt") is None
    assert repo.dataset("a.txt", repo.resolve("HEAD~1")) is not None
    for rev in ("HEAD~5", "nosuchbranch", "HEAD^3"):
        with pytest.raises(UnknownRevision):
            repo.resolve(rev)


def test_the_stat_cache_of_a_memory_repository_follows_its_transactions(repo):
    with repo.transaction() as tx:
        tx.stage_dataset(dataset("a.txt"))
        tx.cache.update([dataset("a.txt")])
    cache = repo.stat_cache()
    try:
        assert cache.token() == repo.state_token()
    finally:
        cache.close()


def test_tree_edits_rewrite_only_the_changed_paths():
    store = MemoryObjectStore()
    blob = store.add(3, b"x")
    root = apply_changes(store, None, {"a/b/c.json": (BLOB_MODE, blob), "a/d.json": (BLOB_MODE, blob)})
    sub = lookup(store, root, "a/b")
    assert sub is not None and sub[0] == TREE_MODE
    changed = apply_changes(store, root, {"a/d.json": None})
    assert lookup(store, changed, "a/b") == sub  # the untouched subtree is shared, not rewritten
    assert [p for p, _m, _o in iter_tree(store, changed)] == ["a/b/c.json"]
    assert apply_changes(store, changed, {"a/b/c.json": None}) == store.add(2, b"")  # empty tree


def test_reading_a_missing_object_is_a_camp_error():
    with pytest.raises(CampError, match="missing"):
        MemoryObjectStore().read_raw(b"0" * 40)
