"""Artifacts and attestations of cheating or placeholder workers, shared by the validator and CLI tests."""
from __future__ import annotations

from dataclasses import asdict
from typing import Any

from runtime_bindings.generated.types import Attestation
from workers.hashing import blake2_256_hex
from workers.trajectory import merkle_root_hex


def relabel(store: Any, checkpoints: list[str], model_hash: str, spec_hash: str) -> dict[str, Any]:
    """A run's checkpoints and model with their metadata naming `spec_hash` (a worker lying in its metadata),
    stored again: the attestation fields that name them."""
    from workers import tensorio

    relabelled = []
    for digest in checkpoints:
        state, optim, meta = tensorio.unpack_state(store.get(digest))
        relabelled.append(store.put(tensorio.pack_state(state, optim, {**meta, "spec_hash": spec_hash})))
    weights, meta = tensorio.loads(store.get(model_hash))
    model = store.put(tensorio.dumps(weights, {**meta, "spec_hash": spec_hash}))
    return {"model_hash": "0x" + model, "artifact_uri": store.uri(model),
            "trajectory_root": "0x" + merkle_root_hex(relabelled), "checkpoints": ["0x" + h for h in relabelled]}


def placeholder_attestation(task_id: int, worker: str, dataset_hash: str) -> dict[str, Any]:
    """An attestation of a training that never ran: one made-up checkpoint, nothing in any store."""
    checkpoint = "0x" + blake2_256_hex(f"checkpoint of task {task_id}".encode())
    return {"task_id": task_id, "worker": worker,
            "model_hash": "0x" + blake2_256_hex(f"model of task {task_id}".encode()),
            "artifact_uri": "file:///nowhere/model", "metrics": [("accuracy", 960_000)],
            "trajectory_root": checkpoint, "checkpoints": [checkpoint], "code_hash": "0x" + "00" * 32,
            "dataset_hash": dataset_hash, "started_ms": 1, "finished_ms": 2}


def forged(attestation: Attestation, **fields: Any) -> Attestation:
    """`attestation` with `fields` replaced, each given as the chain's decoder gives it (0x-hex hashes, text)."""
    return Attestation.from_value({**asdict(attestation), **fields})
