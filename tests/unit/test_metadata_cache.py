"""The process-wide decoded-metadata region: keyed by chain and metadata digest, bounded."""
from __future__ import annotations

from runtime_bindings.metadata_cache import MetadataRegion, _SharedMetadata

GENESIS_A, GENESIS_B = "0x" + "aa" * 32, "0x" + "bb" * 32


def test_same_chain_and_metadata_share_a_copy() -> None:
    shared = _SharedMetadata()
    decoded = object()
    MetadataRegion(GENESIS_A, "0x0102", shared).set("METADATA_2", decoded)
    assert MetadataRegion(GENESIS_A.upper().replace("0X", "0x"), "0x0102", shared).get("METADATA_2") is decoded


def test_another_chain_metadata_or_version_misses() -> None:
    shared = _SharedMetadata()
    MetadataRegion(GENESIS_A, "0x0102", shared).set("METADATA_2", object())
    assert MetadataRegion(GENESIS_B, "0x0102", shared).get("METADATA_2") is None  # another chain
    assert MetadataRegion(GENESIS_A, "0x0103", shared).get("METADATA_2") is None  # same spec, other constants
    assert MetadataRegion(GENESIS_A, "0x0102", shared).get("METADATA_3") is None  # another spec_version


def test_bounded_oldest_dropped_first() -> None:
    shared = _SharedMetadata(max_entries=2)
    first, second, third = (MetadataRegion(GENESIS_A, f"0x0{i}", shared) for i in (1, 2, 3))
    first.set("METADATA_1", "one")
    second.set("METADATA_1", "two")
    assert first.get("METADATA_1") == "one"  # used: now the newest
    third.set("METADATA_1", "three")
    assert len(shared) == 2
    assert second.get("METADATA_1") is None and first.get("METADATA_1") == "one"
