"""Hand-made Flower Messages and a joined client's state directory, for the ClientApp's unit tests (no Ray, no
SuperNode): what a SuperLink would deliver, and what the client daemon would have written."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from flwr.app import ConfigRecord, Context, Message, Metadata, RecordDict
from substrateinterface import Keypair, KeypairType

from workers.fl import child_key
from workers.fl.arrays import model_hash
from workers.fl.attacks import to_record
from workers.fl.client_app import ClientNode, client_app, simulated_nodes
from workers.fl.client_tasks import JoinedTask, record_task
from workers.fl.model import initial_model
from workers.fl.spec import FlSpec, build_spec
from workers.hashing import blake2_256_hex

TASK, NODE_ID, RUN_ID = 7, 4242, 99
HP = {"local_epochs": 1, "batch_size": 32, "lr": 0.01, "seed": 3, "hidden": 16}


def spec_of(hp=HP, max_update_bytes=1 << 20) -> FlSpec:
    return build_spec(recipe="digits_mlp", rule="fedavg", rounds=5, min_clients_per_round=1, hyperparameters=hp,
                      seed=11, max_update_bytes=max_update_bytes)


def initial_arrays(hp=HP) -> dict[str, np.ndarray]:
    return initial_model(spec_of(hp))


def spec_bytes(hp=HP, max_update_bytes=1 << 20) -> bytes:
    return spec_of(hp, max_update_bytes).canonical_bytes()


def joined(tmp: Path, shard, *, task=TASK, hp=HP) -> Path:
    tmp.mkdir(parents=True, exist_ok=True)
    state = tmp / "state"
    data = tmp / f"shard-{task}.ptts"
    data.write_bytes(shard.data)
    spec = spec_bytes(hp)
    record_task(state, JoinedTask(task, spec, blake2_256_hex(spec), data, shard.hash, shard.num_examples))
    return state


def keypair(kind=KeypairType.SR25519) -> Keypair:
    return Keypair.create_from_seed("0x" + "2a" * 32, crypto_type=kind)


def app_for(state: Path, key: Keypair, attack: str | None = None):
    return client_app(simulated_nodes([ClientNode(state, child_key.export_key(key), attack)]))


def context() -> Context:
    """The context simulation gives node 0."""
    return Context(run_id=RUN_ID, node_id=NODE_ID, node_config={"partition-id": 0, "num-partitions": 1},
                   state=RecordDict(), run_config={})


def instruction(content: RecordDict, message_type: str, message_id: str) -> Message:
    """A message as the SuperLink delivers it (ids set), made without a running ServerApp."""
    return Message(content, metadata=Metadata(run_id=RUN_ID, message_id=message_id, src_node_id=1,
                                              dst_node_id=NODE_ID, reply_to_message_id="", group_id="1",
                                              created_at=time.time(), ttl=600.0, message_type=message_type))


def train_message(base, *, task=TASK, round_=1, base_hash=None, extra=None) -> Message:
    config = {"paratrain.task-id": task, "paratrain.round": round_,
              "paratrain.base-hash": base_hash if base_hash is not None else model_hash(base), **(extra or {})}
    return instruction(RecordDict({"arrays": to_record(base), "config": ConfigRecord(config)}), "train",
                       f"m-{task}-{round_}")


def identity_message(task=TASK) -> Message:
    return instruction(RecordDict({"config": ConfigRecord({"paratrain.task-id": task})}), "query.identity",
                       f"q-{task}")
