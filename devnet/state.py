"""Key-value state: the best block's state, overlays for block building, and recent history.

Storage is one flat map of real Substrate keys to SCALE bytes, ordered so that
paged key queries work. Each imported block records the values it replaced,
which lets RPC read any recent block's state without copying it; history
older than `keep_blocks` is discarded, as a pruning Substrate node does.

The same records are also kept per key: for every key, the positions of the
kept blocks that wrote it and the value each of them replaced. A key's value
at an old block is then the value replaced by the first later write of it (or
the head's value when there is none): one binary search, whatever the distance
from the head. A range of blocks (state_queryStorage) is answered by walking
forward over the writes of its keys within the range.
"""
from __future__ import annotations

import heapq
from bisect import bisect_right
from collections import OrderedDict
from typing import Iterator, Protocol

from sortedcontainers import SortedDict

Changes = dict[bytes, bytes | None]


class StateView(Protocol):
    def get(self, key: bytes) -> bytes | None: ...

    def iter_prefix(self, prefix: bytes, start: bytes = b"") -> Iterator[tuple[bytes, bytes]]: ...


class StateDiscarded(LookupError):
    """The requested block's state is older than the kept history."""


def _merge(base: Iterator[tuple[bytes, bytes]], changes: dict[bytes, bytes | None],
           prefix: bytes, start: bytes) -> Iterator[tuple[bytes, bytes]]:
    """Sorted (key, value) pairs of `base` with `changes` laid over it (None deletes)."""
    lo = max(prefix, start)
    over = sorted((k, v) for k, v in changes.items() if k.startswith(prefix) and k >= lo)
    merged = heapq.merge(((k, 1, v) for k, v in base), ((k, 0, v) for k, v in over))
    last = None
    for key, layer, value in merged:
        if key == last:
            continue  # the overlay (layer 0) sorts first and wins
        last = key
        if layer == 0 and value is None:
            continue
        yield key, value  # type: ignore[misc]


class Overlay:
    """Writes layered over a view; `commit` pushes them down, dropping the overlay discards them."""

    def __init__(self, parent: "StateView") -> None:
        self.parent = parent
        self.changes: Changes = {}

    def get(self, key: bytes) -> bytes | None:
        if key in self.changes:
            return self.changes[key]
        return self.parent.get(key)

    def set(self, key: bytes, value: bytes) -> None:
        self.changes[key] = value

    def remove(self, key: bytes) -> None:
        self.changes[key] = None

    def iter_prefix(self, prefix: bytes, start: bytes = b"") -> Iterator[tuple[bytes, bytes]]:
        return _merge(self.parent.iter_prefix(prefix, start), self.changes, prefix, start)

    def child(self) -> "Overlay":
        return Overlay(self)

    def commit(self) -> None:
        """Apply these changes to a parent overlay."""
        assert isinstance(self.parent, Overlay)
        self.parent.changes.update(self.changes)
        self.changes = {}


class SortedView:
    def __init__(self, data: SortedDict) -> None:
        self._data = data

    def get(self, key: bytes) -> bytes | None:
        return self._data.get(key)

    def iter_prefix(self, prefix: bytes, start: bytes = b"") -> Iterator[tuple[bytes, bytes]]:
        for key in self._data.irange(minimum=max(prefix, start)):
            if not key.startswith(prefix):
                return
            yield key, self._data[key]


class _HistoricalView:
    """The state at a kept block: the head with the values of later blocks rolled back.

    `get` is one binary search in the key's write positions; `iter_prefix` gathers the
    undo records of the later blocks (it is the rare query). The view reads the store
    live, so it stays right while later blocks are applied, until its block is pruned."""

    def __init__(self, store: "StateStore", position: int) -> None:
        self._store, self._position = store, position

    def get(self, key: bytes) -> bytes | None:
        return self._store._value_at(key, self._position)

    def iter_prefix(self, prefix: bytes, start: bytes = b"") -> Iterator[tuple[bytes, bytes]]:
        return _merge(self._store._head.iter_prefix(prefix, start), self._store._reverted(self._position),
                      prefix, start)


StorageChanges = list[tuple[bytes, list[tuple[bytes, bytes | None]]]]  # [(block hash, [(key, value)])]


class StateStore:
    """The best block's state and the undo records of the last `keep_blocks` blocks."""

    def __init__(self, initial: dict[bytes, bytes], best_hash: bytes, keep_blocks: int = 4096) -> None:
        self._data = SortedDict(initial)
        self._head = SortedView(self._data)
        self._undo: OrderedDict[bytes, Changes] = OrderedDict()  # block hash -> replaced values
        # key -> (positions of the kept blocks that wrote it, ascending; the value each replaced)
        self._versions: dict[bytes, tuple[list[int], list[bytes | None]]] = {}
        self._positions: dict[bytes, int] = {best_hash: 0}  # kept block hash -> position (base: the lowest)
        self._hashes: dict[int, bytes] = {0: best_hash}
        self._best = best_hash
        self._base = best_hash  # the block whose state undoing every record yields
        self._keep = keep_blocks

    @property
    def head(self) -> StateView:
        return self._head

    def apply_block(self, block_hash: bytes, changes: Changes) -> None:
        """Make `changes` (the block's writes) the new best state."""
        position = self._positions[self._best] + 1
        data, versions = self._data, self._versions
        undo: Changes = {}
        for key, value in changes.items():
            old = data.get(key)
            undo[key] = old
            entry = versions.get(key)
            if entry is None:
                versions[key] = ([position], [old])
            else:
                entry[0].append(position)
                entry[1].append(old)
            if value is None:
                data.pop(key, None)
            else:
                data[key] = value
        self._undo[block_hash] = undo
        self._positions[block_hash] = position
        self._hashes[position] = block_hash
        self._best = block_hash
        while len(self._undo) > self._keep:
            self._prune_oldest()

    def _prune_oldest(self) -> None:
        """The oldest kept block becomes the base: its undo record (and the old base) are forgotten."""
        oldest, undo = self._undo.popitem(last=False)
        for key in undo:
            positions, olds = self._versions[key]
            del positions[0], olds[0]  # the oldest write of every key it wrote is its own
            if not positions:
                del self._versions[key]
        del self._hashes[self._positions.pop(self._base)]
        self._base = oldest

    def _position(self, block_hash: bytes) -> int:
        position = self._positions.get(block_hash)
        if position is None:
            raise StateDiscarded(block_hash.hex())
        return position

    def at(self, block_hash: bytes) -> StateView:
        if block_hash == self._best:
            return self._head
        return _HistoricalView(self, self._position(block_hash))

    def _value_at(self, key: bytes, position: int) -> bytes | None:
        if position < self._positions[self._base]:
            raise StateDiscarded(f"state at position {position} was pruned")
        entry = self._versions.get(key)
        if entry is None or entry[0][-1] <= position:
            return self._data.get(key)  # not written since
        positions, olds = entry
        return olds[bisect_right(positions, position)]  # the value the first later write replaced

    def _reverted(self, position: int) -> Changes:
        """The values that undoing every block after `position` restores (for prefix iteration)."""
        if position < self._positions[self._base]:
            raise StateDiscarded(f"state at position {position} was pruned")
        reverted: Changes = {}
        for later_hash in reversed(self._undo):
            if self._positions[later_hash] <= position:
                break
            reverted.update(self._undo[later_hash])  # older undo records overwrite newer ones
        return reverted

    def query(self, keys: list[bytes], first: bytes, last: bytes) -> StorageChanges:
        """state_queryStorage over the kept blocks `first`..`last` (inclusive, in chain order): the first block
        with the value of every key (in the order given), then each later block where some keys' values differ
        from the block before, with those keys (first-occurrence order); blocks without changes are left out.

        Walks forward over the range's writes of these keys: O(keys x log(history) + writes in range)."""
        p0, p1 = self._position(first), self._position(last)
        if p1 < p0:
            raise ValueError("the last block comes before the first")
        start = self.at(first)
        found: dict[int, list[tuple[bytes, bytes | None]]] = {p0: [(key, start.get(key)) for key in keys]}
        data = self._data
        for key in dict.fromkeys(keys):
            entry = self._versions.get(key)
            if entry is None:
                continue
            positions, olds = entry
            i, j = bisect_right(positions, p0), bisect_right(positions, p1)
            if i == j:
                continue  # not written within the range
            previous = olds[i]  # the value at p0
            last_index = len(positions) - 1
            for k in range(i, j):
                value = olds[k + 1] if k < last_index else data.get(key)  # the value this write left
                if value != previous:
                    found.setdefault(positions[k], []).append((key, value))
                    previous = value
        return [(self._hashes[p], found[p]) for p in sorted(found) if found[p]]

    def snapshot(self) -> dict[bytes, bytes]:
        return dict(self._data)
