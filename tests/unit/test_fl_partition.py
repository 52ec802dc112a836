"""The Dirichlet split: a deterministic partition of every index, each client big enough, skew that follows alpha,
a holdout stratified by class, and shards that are data sets the recipes read."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from workers import tensorio
from workers.datasets import decode_dataset
from workers.fl.partition import (
    PartitionError,
    dirichlet_split,
    federated_split,
    split_labels,
    stratified_holdout,
)
from workers.hashing import blake2_256_hex

LABELS = np.repeat(np.arange(10), 100)  # 1000 examples, 10 balanced classes


def _classes_holding(parts: list[np.ndarray], share: float) -> float:
    """Mean number of classes that make up `share` of a client's examples (1 = one class, 10 = IID)."""
    counts = []
    for part in parts:
        hist = np.sort(np.bincount(LABELS[part], minlength=10))[::-1]
        counts.append(int(np.searchsorted(np.cumsum(hist) / hist.sum(), share) + 1))
    return float(np.mean(counts))


def test_same_seed_same_split_other_seed_other_split() -> None:
    a = dirichlet_split(LABELS, 8, 0.5, seed=3)
    b = dirichlet_split(LABELS, 8, 0.5, seed=3)
    c = dirichlet_split(LABELS, 8, 0.5, seed=4)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c, strict=True))


@pytest.mark.parametrize("alpha", [0.1, 0.5, 100.0])
def test_split_is_a_partition_of_every_index_with_min_size(alpha: float) -> None:
    parts = dirichlet_split(LABELS, 10, alpha, seed=1, min_size=20)
    joined = np.concatenate(parts)
    assert joined.size == LABELS.size
    assert np.array_equal(np.sort(joined), np.arange(LABELS.size))
    assert min(p.size for p in parts) >= 20
    assert all(np.array_equal(p, np.sort(p)) for p in parts)


def test_small_alpha_concentrates_classes_large_alpha_is_near_iid() -> None:
    skewed = dirichlet_split(LABELS, 10, 0.1, seed=7)
    iid = dirichlet_split(LABELS, 10, 100.0, seed=7)
    # at alpha 0.1 a client's data is mostly one or two classes; at alpha 100 it needs nearly all ten
    assert _classes_holding(skewed, 0.8) <= 3.0
    assert _classes_holding(iid, 0.8) >= 7.0
    sizes = [p.size for p in iid]
    assert max(sizes) - min(sizes) <= 0.3 * LABELS.size / 10


def test_impossible_split_is_refused() -> None:
    with pytest.raises(PartitionError, match="cannot give"):
        dirichlet_split(LABELS, 200, 0.5, seed=1, min_size=10)
    with pytest.raises(PartitionError, match="in 2 tries"):
        dirichlet_split(LABELS, 50, 0.01, seed=1, min_size=19, max_tries=2)
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(PartitionError, match="alpha"):
            dirichlet_split(LABELS, 4, bad, seed=1)
    with pytest.raises(PartitionError, match="at least one client"):
        dirichlet_split(LABELS, 0, 1.0, seed=1)
    with pytest.raises(PartitionError, match="1-D"):
        dirichlet_split(LABELS.reshape(10, 100), 2, 1.0, seed=1)


def test_holdout_is_stratified_and_disjoint() -> None:
    labels = np.concatenate([np.zeros(500, int), np.ones(50, int), np.full(5, 2)])
    train, held = stratified_holdout(labels, 0.2, seed=2)
    assert np.intersect1d(train, held).size == 0
    assert np.array_equal(np.sort(np.concatenate([train, held])), np.arange(labels.size))
    assert np.bincount(labels[held]).tolist() == [100, 10, 1]
    again = stratified_holdout(labels, 0.2, seed=2)
    assert np.array_equal(again[1], held)
    with pytest.raises(PartitionError, match="fraction"):
        stratified_holdout(labels, 1.0, seed=2)


def test_regression_targets_are_split_by_deciles() -> None:
    y = np.linspace(0.0, 1.0, 100, dtype=np.float32)
    bins = split_labels(y)
    assert np.bincount(bins).tolist() == [10] * 10
    assert split_labels(np.array([3, 1, 2])).tolist() == [3, 1, 2]


def test_federated_split_of_digits_gives_readable_hashed_shards(tmp_path) -> None:
    split = federated_split("digits", 6, 0.5, seed=11, attacks={2: "sign-flip"})
    again = federated_split("digits", 6, 0.5, seed=11)
    assert [s.hash for s in split.shards] == [s.hash for s in again.shards]
    assert split.holdout_hash == again.holdout_hash == blake2_256_hex(split.holdout)
    assert [s.attack for s in split.shards] == [None, None, "sign-flip", None, None, None]

    total = split.holdout_examples + sum(s.num_examples for s in split.shards)
    assert total == 1797  # every digit is in exactly one place
    holdout = decode_dataset(split.holdout)
    assert holdout.arrays["X"].shape == (split.holdout_examples, 64)
    assert np.bincount(holdout.arrays["y"].numpy(), minlength=10).min() >= 30  # every class measured
    for shard in split.shards:
        assert shard.hash == blake2_256_hex(shard.data)
        data = decode_dataset(shard.data)
        assert data.arrays["X"].shape == (shard.num_examples, 64)
        assert sum(shard.label_counts.values()) == shard.num_examples
        assert data.meta["kind"] == "dataset" and data.meta["client"] == shard.client
        assert data.meta["classes"] == 10
    # the attack is told to the caller, never written into the data whose hash goes on chain
    assert split.shards[2].data == again.shards[2].data

    manifest = json.loads(split.write(tmp_path).read_text())
    assert manifest["holdout"]["hash"] == split.holdout_hash
    for entry, shard in zip(manifest["clients"], split.shards, strict=True):
        assert (tmp_path / entry["file"]).read_bytes() == shard.data
        assert entry["hash"] == shard.hash and entry["attack"] == shard.attack
    assert not list(tmp_path.glob("*.tmp"))


def test_federated_split_refuses_bad_requests(tmp_path) -> None:
    with pytest.raises(PartitionError, match="outside"):
        federated_split("digits", 3, 0.5, seed=1, attacks={3: "sign-flip"})
    with pytest.raises(PartitionError, match="not an arrays data set"):
        federated_split("tiny_shakespeare", 3, 0.5, seed=1)
    with pytest.raises(PartitionError, match="neither a built-in"):
        federated_split(str(tmp_path / "missing.csv"), 3, 0.5, seed=1)
    arrays = tensorio.dumps({"X": torch.zeros(20, 2), "y": torch.zeros(20, dtype=torch.int64)})
    path = tmp_path / "tiny.ptts"
    path.write_bytes(arrays)
    with pytest.raises(PartitionError, match="cannot give"):
        federated_split(str(path), 4, 0.5, seed=1)
