"""Reading and editing git trees by path, over any object store.

A commit's tree is edited by applying path → entry changes: only the trees on the changed
paths are rewritten (git trees are immutable), so a one-dataset change at 100,000
datasets writes five small trees.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from campaignvcs.gitobjects import TREE_MODE, TREE_TYPE, Entry
from campaignvcs.objectstore import ObjectStore


def lookup(store: ObjectStore, tree_id: bytes | None, path: str) -> Entry | None:
    """The (mode, id) at ``path`` below ``tree_id``, or None."""
    if tree_id is None:
        return None
    mode, oid = TREE_MODE, tree_id
    for part in path.split("/"):
        if mode != TREE_MODE:
            return None
        found = store.tree_entries(oid).get(part.encode())
        if found is None:
            return None
        mode, oid = found
    return mode, oid


def iter_tree(store: ObjectStore, tree_id: bytes, prefix: str = "") -> Iterator[tuple[str, int, bytes]]:
    """Every blob below ``tree_id``, as (path, mode, id), depth first in tree order."""
    for name, (mode, oid) in sorted(store.tree_entries(tree_id).items()):
        path = prefix + name.decode()
        if mode == TREE_MODE:
            yield from iter_tree(store, oid, path + "/")
        else:
            yield path, mode, oid


def apply_changes(store: ObjectStore, base: bytes | None, changes: Mapping[str, Entry | None]) -> bytes:
    """Tree ``base`` with path → entry changes applied (None removes); queues new trees, returns the root id."""
    root = _apply(store, base, {tuple(p.split("/")): v for p, v in changes.items()})
    if root is None:
        return store.add(TREE_TYPE, b"")
    return root


def _apply(store: ObjectStore, base: bytes | None, changes: dict[tuple[str, ...], Entry | None]) -> bytes | None:
    items: dict[bytes, Entry] = {}
    if base is not None:
        items = dict(store.tree_entries(base))
    nested: dict[str, dict[tuple[str, ...], Entry | None]] = {}
    for parts, value in changes.items():
        if len(parts) == 1:
            if value is None:
                items.pop(parts[0].encode(), None)
            else:
                items[parts[0].encode()] = value
        else:
            nested.setdefault(parts[0], {})[parts[1:]] = value
    for name, sub in nested.items():
        old = items.get(name.encode())
        sub_base = old[1] if old is not None and old[0] == TREE_MODE else None
        new = _apply(store, sub_base, sub)
        if new is None:
            items.pop(name.encode(), None)
        else:
            items[name.encode()] = (TREE_MODE, new)
    if not items:
        return None
    return store.add_tree(items)
