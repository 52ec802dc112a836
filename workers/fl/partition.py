"""Non-IID shards of one data set for federated clients: the one Dirichlet(alpha) split of tests, demo and benchmarks.

Federated learning is only interesting when the clients' data differ, and the usual way to make them differ
in a controlled way is a per-class Dirichlet(alpha) draw of how much of each class each client gets (small
alpha: a client holds one or two classes; large alpha: nearly IID). Flower Datasets does this for Hugging
Face sets fetched from the Hub, which cannot be reached here, so this module does it over the data sets
`workers.datasets` packages (scikit-learn's bundled copies, no download).

Everything is a pure function of its arguments: the same (data set, clients, alpha, seed) gives the same
shards, byte for byte, so a client's `data_hash` on chain can be recomputed by anyone who knows the split.
Shards and the holdout are data sets in the PTTS1 arrays format (``X``, ``y``), readable by every recipe
through `workers.datasets.decode_dataset`.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from workers import tensorio
from workers.datasets import BUILTIN_DATASETS, DatasetError, decode_dataset, package
from workers.hashing import blake2_256_hex

SOURCE = "workers.fl.partition"
REGRESSION_BINS = 10  # a continuous target is split by its deciles, so "class" skew still means something


class PartitionError(ValueError):
    """A split that cannot be made (too few examples for the clients asked, bad arguments, not an arrays set)."""


def _check_labels(labels: np.ndarray) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.size == 0:
        raise PartitionError(f"labels must be a non-empty 1-D array, got shape {labels.shape}")
    return labels


def stratified_holdout(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, holdout indices), each sorted: `fraction` of every class held out, at least one example
    of each class that has two or more, so the requester's holdout measures every class the clients learn."""
    labels = _check_labels(labels)
    if not 0.0 < fraction < 1.0:
        raise PartitionError(f"holdout fraction must be in (0, 1), got {fraction}")
    rng = np.random.default_rng(seed)
    held: list[np.ndarray] = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        k = min(max(round(fraction * idx.size), 1), idx.size - 1) if idx.size >= 2 else 0
        held.append(idx[:k])
    holdout = np.sort(np.concatenate(held)) if held else np.empty(0, dtype=np.int64)
    train = np.setdiff1d(np.arange(labels.size), holdout, assume_unique=True)
    return train.astype(np.int64), holdout.astype(np.int64)


def dirichlet_split(labels: np.ndarray, num_clients: int, alpha: float, seed: int, *,
                    min_size: int = 10, max_tries: int = 100) -> list[np.ndarray]:
    """Indices of `labels` for each client (each sorted; together a partition of all indices).

    Per class, in ascending label order, the class's shuffled indices are cut by a Dirichlet([alpha] * n)
    draw; a client that already holds its fair share (len / n) gets no more, which keeps one client from
    swallowing the set at small alpha. A draw that leaves a client below `min_size` examples is redrawn
    from the same generator, up to `max_tries` times (PartitionError after that)."""
    labels = _check_labels(labels)
    if num_clients < 1:
        raise PartitionError(f"need at least one client, got {num_clients}")
    if not alpha > 0.0 or not np.isfinite(alpha):
        raise PartitionError(f"alpha must be a positive number, got {alpha}")
    if min_size < 0 or max_tries < 1:
        raise PartitionError(f"min_size must be >= 0 and max_tries >= 1, got {min_size} and {max_tries}")
    if labels.size < num_clients * min_size:
        raise PartitionError(f"{labels.size} examples cannot give {num_clients} clients {min_size} each")
    rng = np.random.default_rng(seed)
    fair_share = labels.size / num_clients
    classes = np.unique(labels)
    for _ in range(max_tries):
        parts: list[list[np.ndarray]] = [[] for _ in range(num_clients)]
        sizes = np.zeros(num_clients, dtype=np.int64)
        for c in classes:
            idx = np.flatnonzero(labels == c)
            rng.shuffle(idx)
            p = rng.dirichlet([alpha] * num_clients)
            p = np.where(sizes < fair_share, p, 0.0)
            total = p.sum()
            p = p / total if total > 0 else np.full(num_clients, 1.0 / num_clients)
            cuts = (np.cumsum(p) * idx.size).astype(int)[:-1]
            for j, chunk in enumerate(np.split(idx, cuts)):
                parts[j].append(chunk)
                sizes[j] += chunk.size
        if sizes.min() >= min_size:
            return [np.sort(np.concatenate(chunks)).astype(np.int64) for chunks in parts]
    raise PartitionError(f"no Dirichlet({alpha}) split of {labels.size} examples gave each of {num_clients} "
                         f"clients {min_size} examples in {max_tries} tries (raise alpha or lower the clients)")


def split_labels(y: np.ndarray) -> np.ndarray:
    """The labels a split is stratified by: the class for an integer target, the decile bin for a continuous one."""
    y = np.asarray(y)
    if y.ndim != 1:
        raise PartitionError(f"the target must be 1-D, got shape {y.shape}")
    if np.issubdtype(y.dtype, np.integer):
        return y.astype(np.int64)
    edges = np.quantile(y, np.linspace(0.0, 1.0, REGRESSION_BINS + 1)[1:-1])
    return np.digitize(y, edges).astype(np.int64)


@dataclass(frozen=True)
class Shard:
    """One client's local data set: the bytes it keeps, their hash (its on-chain data_hash) and a summary."""

    client: int
    data: bytes
    hash: str                          # blake2-256 hex of `data`
    num_examples: int
    label_counts: dict[int, int]       # examples per split label, for the report
    attack: str | None = None          # what this client is told to do (tests and demo); not in the bytes

    @property
    def size(self) -> int:
        return len(self.data)


@dataclass(frozen=True)
class FederatedSplit:
    """The shards of every client and the requester's stratified holdout, all in the PTTS1 arrays format."""

    dataset: str
    num_clients: int
    alpha: float
    seed: int
    shards: list[Shard]
    holdout: bytes
    holdout_hash: str
    holdout_examples: int
    classes: int                       # split labels in the whole set (the model's output width for classifiers)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def holdout_size(self) -> int:
        return len(self.holdout)

    def write(self, directory: str | Path) -> Path:
        """Write `client-<i>.ptts`, `holdout.ptts` and `split.json` (hashes, sizes, histograms) into `directory`;
        the manifest's path. Files are written whole under a temporary name first, so a reader never sees
        half a shard."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        files = {f"client-{s.client}.ptts": s.data for s in self.shards}
        files["holdout.ptts"] = self.holdout
        for name, data in files.items():
            _write_whole(out / name, data)
        manifest = {
            "kind": "fl-split", "dataset": self.dataset, "num_clients": self.num_clients, "alpha": self.alpha,
            "seed": self.seed, "classes": self.classes,
            "holdout": {"file": "holdout.ptts", "hash": self.holdout_hash, "size": self.holdout_size,
                        "num_examples": self.holdout_examples},
            "clients": [{"client": s.client, "file": f"client-{s.client}.ptts", "hash": s.hash, "size": s.size,
                         "num_examples": s.num_examples, "attack": s.attack,
                         "label_counts": {str(k): v for k, v in s.label_counts.items()}} for s in self.shards],
        }
        path = out / "split.json"
        _write_whole(path, (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode())
        return path


def _write_whole(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def _arrays_bytes(x: np.ndarray, y: np.ndarray, meta: Mapping[str, Any]) -> bytes:
    return tensorio.dumps({"X": torch.from_numpy(np.ascontiguousarray(x)),
                           "y": torch.from_numpy(np.ascontiguousarray(y))}, meta)


def federated_split(dataset: str, num_clients: int, alpha: float, seed: int, *, holdout_fraction: float = 0.2,
                    attacks: Mapping[int, str] | None = None, min_size: int = 10) -> FederatedSplit:
    """Split a built-in data set (or a packaged arrays file) into a stratified holdout and `num_clients`
    Dirichlet(alpha) shards of the rest. `attacks` maps client index to the attack that client is told to run
    (carried in its Shard for the caller, never in the data)."""
    attacks = dict(attacks or {})
    unknown = sorted(k for k in attacks if not 0 <= k < num_clients)
    if unknown:
        raise PartitionError(f"attacks name clients {unknown}, outside 0..{num_clients - 1}")
    try:
        decoded = decode_dataset(package(dataset))
    except DatasetError as exc:
        raise PartitionError(str(exc)) from None
    if "X" not in decoded.arrays or "y" not in decoded.arrays:
        raise PartitionError(f"{dataset!r} is not an arrays data set with X and y")
    x, y = decoded.arrays["X"].numpy(), decoded.arrays["y"].numpy()
    if x.shape[0] != y.shape[0]:
        raise PartitionError(f"{dataset!r}: {x.shape[0]} rows of X but {y.shape[0]} targets")
    labels = split_labels(y)
    train, held = stratified_holdout(labels, holdout_fraction, seed)
    parts = dirichlet_split(labels[train], num_clients, alpha, seed, min_size=min_size)
    name = dataset if dataset in BUILTIN_DATASETS else Path(dataset).stem
    classes = int(np.unique(labels).size)
    base_meta = {"kind": "dataset", "source": SOURCE, "alpha": float(alpha), "seed": int(seed),
                 "num_clients": int(num_clients), "classes": classes}
    shards = []
    for i, local in enumerate(parts):
        rows = train[local]
        data = _arrays_bytes(x[rows], y[rows], {**base_meta, "name": f"{name}-client-{i}", "client": i})
        values, counts = np.unique(labels[rows], return_counts=True)
        shards.append(Shard(client=i, data=data, hash=blake2_256_hex(data), num_examples=int(rows.size),
                            label_counts={int(k): int(v) for k, v in zip(values, counts, strict=True)},
                            attack=attacks.get(i)))
    holdout = _arrays_bytes(x[held], y[held], {**base_meta, "name": f"{name}-holdout"})
    return FederatedSplit(dataset=name, num_clients=num_clients, alpha=float(alpha), seed=int(seed), shards=shards,
                          holdout=holdout, holdout_hash=blake2_256_hex(holdout), holdout_examples=int(held.size),
                          classes=classes, meta=base_meta)
