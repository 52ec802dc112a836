"""Key-value state: the best block's state, overlays for block building, and recent history.

Storage is one flat map of real Substrate keys to SCALE bytes, ordered so that
paged key queries work. Each imported block records the values it replaced,
which lets RPC read any recent block's state without copying it; history
older than `keep_blocks` is discarded, as a pruning Substrate node does.
"""
from __future__ import annotations

import heapq
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
    """The head state with the values of later blocks rolled back."""

    def __init__(self, head: SortedView, reverted: dict[bytes, bytes | None]) -> None:
        self._head, self._reverted = head, reverted

    def get(self, key: bytes) -> bytes | None:
        if key in self._reverted:
            return self._reverted[key]
        return self._head.get(key)

    def iter_prefix(self, prefix: bytes, start: bytes = b"") -> Iterator[tuple[bytes, bytes]]:
        return _merge(self._head.iter_prefix(prefix, start), self._reverted, prefix, start)


class StateStore:
    """The best block's state and the undo records of the last `keep_blocks` blocks."""

    def __init__(self, initial: dict[bytes, bytes], best_hash: bytes, keep_blocks: int = 4096) -> None:
        self._data = SortedDict(initial)
        self._head = SortedView(self._data)
        self._undo: OrderedDict[bytes, Changes] = OrderedDict()  # block hash -> replaced values
        self._best = best_hash
        self._base = best_hash  # the block whose state undoing every record yields
        self._keep = keep_blocks

    @property
    def head(self) -> StateView:
        return self._head

    def apply_block(self, block_hash: bytes, changes: Changes) -> None:
        """Make `changes` (the block's writes) the new best state."""
        undo: Changes = {key: self._data.get(key) for key in changes}
        for key, value in changes.items():
            if value is None:
                self._data.pop(key, None)
            else:
                self._data[key] = value
        self._undo[block_hash] = undo
        self._best = block_hash
        while len(self._undo) > self._keep:
            self._base, _ = self._undo.popitem(last=False)

    def at(self, block_hash: bytes) -> StateView:
        if block_hash == self._best:
            return self._head
        if block_hash not in self._undo and block_hash != self._base:
            raise StateDiscarded(block_hash.hex())
        reverted: Changes = {}
        for later_hash in reversed(self._undo):
            if later_hash == block_hash:
                break
            reverted.update(self._undo[later_hash])  # older undo records overwrite newer ones
        return _HistoricalView(self._head, reverted)

    def snapshot(self) -> dict[bytes, bytes]:
        return dict(self._data)
