"""The chain side of a local federated task, for tests and benchmarks: the requester's spec document and initial
model in a store, the task on chain, each client's shard, state directory and join, and the aggregator's claim.

    split = federated_split("digits", 3, 0.5, seed=1)
    spec = build_spec(recipe="digits_mlp", rule="fedavg", rounds=2, min_clients_per_round=3)
    posted = post_federated_task(chain, spec, split, root=tmp, store=store, requester=alice,
                                 aggregator=trainer, clients=client_keys)
    posted.clients[0].state_dir   # what a ClientApp reads (<state>/tasks.json), as `paratrain client` writes it

Everything is a real extrinsic on a real node: the task is created, every client joins with its shard's hash
and size, the join deadline passes (blocks are sealed as extrinsics arrive, so the requester sends filler
transfers until it has), and the aggregator claims the task with its endpoint.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from paratrain.fl_specs import FlTaskTerms, chain_fl_task_spec
from workers.artifacts import ArtifactStore
from workers.fl.arrays import model_bytes
from workers.fl.client_tasks import JoinedTask, record_task
from workers.fl.model import initial_model
from workers.fl.partition import FederatedSplit, Shard
from workers.fl.spec import FlSpec

UNIT = 10**12


@dataclass(frozen=True)
class FlClient:
    """One data owner of a posted task: its key, its shard on disk and the state directory its ClientApp reads."""

    keypair: Any
    shard: Shard
    data_path: Path
    state_dir: Path


@dataclass(frozen=True)
class PostedFlTask:
    task_id: int
    spec: FlSpec
    spec_bytes: bytes
    initial_arrays: dict[str, np.ndarray]
    initial_hash: bytes
    clients: list[FlClient]
    aggregator: Any


def post_federated_task(chain: Any, spec: FlSpec, split: FederatedSplit, *, root: Path, store: ArtifactStore,
                        requester: Any, aggregator: Any, clients: Sequence[Any], endpoint: str = "simulation",
                        bounty: int = 100 * UNIT, client_stake: int = UNIT, validators_required: int = 1,
                        client_share: int = 700_000_000, deadline_blocks: int = 100_000) -> PostedFlTask:
    """Post `spec` on chain, join `clients[i]` with `split.shards[i]` and let `aggregator` (a registered Trainer)
    claim it at `endpoint`. Each client's shard and tasks.json go under `root/client-<i>/`."""
    if len(clients) != len(split.shards):
        raise ValueError(f"{len(clients)} client keys for {len(split.shards)} shards")
    spec_bytes = spec.canonical_bytes()
    spec_uri = store.uri(store.put(spec_bytes))
    initial = initial_model(spec)
    initial_hash = bytes.fromhex(store.put(model_bytes(initial)))
    fl = chain.federated_tasks
    task_id = int(fl.next_task_id())
    now = chain.best_number()
    join_deadline = now + len(clients) + 2  # one block per join, sealed as it arrives
    terms = FlTaskTerms(max_clients=len(clients), client_share=client_share, min_client_stake=client_stake,
                        requirements=(1, 0, 0))
    fl.create_task(requester, chain_fl_task_spec(spec, spec_uri, initial_model_hash=initial_hash.hex(), terms=terms),
                   bounty, join_deadline, now + deadline_blocks, validators_required, None)
    joined = []
    for keypair, shard in zip(clients, split.shards, strict=True):
        state_dir = Path(root) / f"client-{shard.client}"
        state_dir.mkdir(parents=True, exist_ok=True)
        data_path = state_dir / "shard.ptts"
        data_path.write_bytes(shard.data)
        record_task(state_dir, JoinedTask(task_id=task_id, spec=spec_bytes, spec_hash=spec.spec_hash_hex(),
                                          data=data_path, data_hash=shard.hash, num_examples=shard.num_examples))
        fl.join(keypair, task_id, "0x" + shard.hash, shard.num_examples, client_stake)
        joined.append(FlClient(keypair, shard, data_path, state_dir))
    while chain.best_number() <= join_deadline:
        chain.balances.transfer_keep_alive(requester, aggregator.ss58_address, 1)
    fl.claim_aggregator(aggregator, task_id, endpoint.encode())
    return PostedFlTask(task_id, spec, spec_bytes, initial, initial_hash, joined, aggregator)

