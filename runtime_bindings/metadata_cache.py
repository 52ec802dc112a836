"""Decoded metadata shared by every connection of the process.

substrate-interface decodes a node's metadata with scalecodec on each new connection: about 0.5 s of CPU
here, nearly all of a connection's cost, paid again by every `Chain` a process opens (a reconnecting
indexer, a validator's threads, a worker's lease guard). It can take a decoded copy from a `cache_region`
(dogpile's `get`/`set` interface), keyed only by spec_version. This module is such a region, but keyed by
the chain (genesis hash) and by the blake2-256 of the metadata's encoding too, so that two nodes whose
runtimes share a spec_version but differ (devnet's constants are start-up options) never share a copy.
"""
from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

MAX_ENTRIES = 16  # distinct runtimes kept; the oldest is dropped beyond that


class _SharedMetadata:
    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple[str, str, str], object] = OrderedDict()
        self._max = max_entries

    def get(self, key: tuple[str, str, str]) -> object:
        with self._lock:
            value = self._entries.get(key)
            if value is not None:
                self._entries.move_to_end(key)
            return value

    def set(self, key: tuple[str, str, str], value: object) -> None:
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        """Forget every decoded copy (the next connection decodes again, as a fresh process does)."""
        with self._lock:
            self._entries.clear()


SHARED = _SharedMetadata()


class MetadataRegion:
    """One connection's view of `SHARED`: what substrate-interface passes as key ("METADATA_<spec>") is
    prefixed with the chain's genesis hash and the digest of the metadata the node serves."""

    def __init__(self, genesis_hash: str, metadata_hex: str, shared: _SharedMetadata = SHARED) -> None:
        digest = hashlib.blake2b(bytes.fromhex(metadata_hex.removeprefix("0x")), digest_size=32).hexdigest()
        self._prefix = (genesis_hash.lower(), digest)
        self._shared = shared

    def get(self, key: str) -> object:
        return self._shared.get((*self._prefix, key))

    def set(self, key: str, value: object) -> None:
        self._shared.set((*self._prefix, key), value)
