"""The data owner's ClientApp with hand-made Flower Messages (no Ray, no SuperNode): identity replies, local
training with the requester's hyperparameters, the update signature and the guard against signing twice."""
from __future__ import annotations

import json

import numpy as np
import pytest
from fl_client_messages import (
    HP,
    NODE_ID,
    RUN_ID,
    TASK,
    app_for,
    context,
    identity_message,
    initial_arrays,
    joined,
    keypair,
    spec_bytes,
    train_message,
)
from flwr.app import ArrayRecord, Context, RecordDict
from substrateinterface import KeypairType

from runtime_bindings.fl import verify_identity, verify_update
from workers.fl import child_key
from workers.fl.arrays import model_hash, update_hash
from workers.fl.attacks import record_arrays, to_record
from workers.fl.client_app import client_app, deployment_node
from workers.fl.client_tasks import (
    AlreadySignedError,
    ClientStateError,
    JoinedTask,
    NotJoinedError,
    claim_signature,
    joined_task,
    load_tasks,
    record_task,
)
from workers.fl.partition import federated_split
from workers.hashing import blake2_256_hex


@pytest.fixture(scope="module")
def split():
    return federated_split("digits", 4, 1.0, 5)


def test_identity_reply_is_signed_by_the_clients_account_for_its_node_and_run(tmp_path, split):
    key = keypair()
    reply = app_for(joined(tmp_path, split.shards[0]), key)(identity_message(), context())
    assert not reply.has_error(), reply.error
    record = reply.content["paratrain"]
    assert record["account"] == key.ss58_address
    assert verify_identity(record["account"], record["scheme"], record["signature"], TASK, NODE_ID, RUN_ID)
    assert not verify_identity(record["account"], record["scheme"], record["signature"], TASK, NODE_ID + 1, RUN_ID)


def test_identity_for_a_task_not_joined_is_an_error_reply(tmp_path, split):
    reply = app_for(joined(tmp_path, split.shards[0]), keypair())(identity_message(task=8), context())
    assert reply.has_error()
    assert "task 8 was not joined" in reply.error.reason


def test_train_reply_is_the_trained_model_signed_over_its_commitment(tmp_path, split):
    key, base = keypair(), initial_arrays()
    shard = split.shards[1]
    reply = app_for(joined(tmp_path, shard), key)(train_message(base, round_=2), context())
    assert not reply.has_error(), reply.error
    arrays = record_arrays(reply.content["arrays"])
    assert list(arrays) == list(base) and all(arrays[k].shape == base[k].shape for k in base)
    assert any(not np.array_equal(arrays[k], base[k]) for k in base)          # it trained
    assert reply.content["metrics"]["num-examples"] == shard.num_examples
    assert np.isfinite(reply.content["metrics"]["train-loss"])
    record = reply.content["paratrain"]
    assert record["update-hash"] == update_hash(arrays)
    assert record["account"] == key.ss58_address and record["num-examples"] == shard.num_examples
    assert verify_update(record["account"], record["scheme"], record["signature"], TASK, 2, model_hash(base),
                         update_hash(arrays), shard.num_examples)
    assert not verify_update(record["account"], record["scheme"], record["signature"], TASK, 3, model_hash(base),
                             update_hash(arrays), shard.num_examples)


def test_ed25519_client_signs_too(tmp_path, split):
    key, base = keypair(KeypairType.ED25519), initial_arrays()
    reply = app_for(joined(tmp_path, split.shards[0]), key)(train_message(base), context())
    record = reply.content["paratrain"]
    assert record["scheme"] == "Ed25519"
    assert verify_update(key.ss58_address, "Ed25519", record["signature"], TASK, 1, model_hash(base),
                         record["update-hash"], record["num-examples"])


def test_hyperparameters_come_from_the_spec_never_from_the_aggregator(tmp_path, split):
    base = initial_arrays()
    app = app_for(joined(tmp_path, split.shards[0]), keypair())
    plain = app(train_message(base, round_=1), context())
    steered = app(train_message(base, round_=1, extra={"lr": 100.0, "local_epochs": 50, "batch_size": 1}), context())
    assert not steered.has_error(), steered.error
    assert steered.content["paratrain"]["update-hash"] == plain.content["paratrain"]["update-hash"]


def test_a_retried_round_is_signed_again_but_a_different_update_is_refused(tmp_path, split):
    base = initial_arrays()
    state = joined(tmp_path, split.shards[0])
    app = app_for(state, keypair())
    first = app(train_message(base, round_=3), context())
    again = app(train_message(base, round_=3), context())
    assert not again.has_error()
    assert again.content["paratrain"]["update-hash"] == first.content["paratrain"]["update-hash"]
    # the requester's spec changes under the client (or a poisoner retrains): another update for round 3
    record_task(state, JoinedTask(TASK, spec_bytes({**HP, "lr": 0.05}), blake2_256_hex(spec_bytes({**HP, "lr": 0.05})),
                                  tmp_path / f"shard-{TASK}.ptts", split.shards[0].hash, split.shards[0].num_examples))
    other = app(train_message(base, round_=3), context())
    assert other.has_error()
    assert "already signed another update" in other.error.reason
    assert not app(train_message(base, round_=4), context()).has_error()   # the next round is free


def test_a_model_that_is_not_its_base_hash_is_refused_before_training(tmp_path, split):
    base = initial_arrays()
    state = joined(tmp_path, split.shards[0])
    reply = app_for(state, keypair())(train_message(base, base_hash=b"\x01" * 32), context())
    assert reply.has_error()
    assert "not the one its base hash names" in reply.error.reason
    assert not (state / "signed").exists()                                   # nothing signed, nothing claimed


def test_a_message_for_an_unjoined_task_or_a_changed_shard_is_refused(tmp_path, split):
    base = initial_arrays()
    state = joined(tmp_path, split.shards[0])
    app = app_for(state, keypair())
    assert "was not joined" in app(train_message(base, task=9), context()).error.reason
    (tmp_path / f"shard-{TASK}.ptts").write_bytes(split.shards[1].data)
    reply = app(train_message(base), context())
    assert reply.has_error() and "changed since the client joined" in reply.error.reason


def test_a_global_model_of_another_shape_is_refused(tmp_path, split):
    base = initial_arrays({**HP, "hidden": 8})
    reply = app_for(joined(tmp_path, split.shards[0]), keypair())(train_message(base), context())
    assert reply.has_error() and "shape" in reply.error.reason


def test_deployment_nodes_take_the_key_from_the_environment(tmp_path, split, monkeypatch):
    key, base = keypair(), initial_arrays()
    state = joined(tmp_path, split.shards[0])
    ctx = Context(run_id=RUN_ID, node_id=NODE_ID, node_config={"paratrain-state": str(state)}, state=RecordDict(),
                  run_config={})
    monkeypatch.delenv(child_key.KEY_ENV, raising=False)
    app = client_app(deployment_node)
    missing = app(train_message(base), ctx)
    assert missing.has_error() and child_key.KEY_ENV in missing.error.reason
    assert not (state / "signed").exists()
    monkeypatch.setenv(child_key.KEY_ENV, child_key.export_key(key))
    reply = app(train_message(base), ctx)
    assert not reply.has_error(), reply.error
    assert reply.content["paratrain"]["account"] == key.ss58_address
    no_state = Context(run_id=RUN_ID, node_id=NODE_ID, node_config={}, state=RecordDict(), run_config={})
    assert "paratrain-state" in app(identity_message(), no_state).error.reason


# the state directory and the key hand-off, without Flower --------------------------------------------------
def test_tasks_file_round_trips_and_refuses_damage(tmp_path, split):
    state = joined(tmp_path, split.shards[0])
    entry = joined_task(state, TASK)
    assert entry.read_shard() == split.shards[0].data and set(load_tasks(state)) == {TASK}
    with pytest.raises(NotJoinedError):
        joined_task(state, TASK + 1)
    doc = json.loads((state / "tasks.json").read_text())
    doc["tasks"][str(TASK)]["spec"] = doc["tasks"][str(TASK)]["spec"].replace("0.01", "0.02")
    (state / "tasks.json").write_text(json.dumps(doc))
    with pytest.raises(ClientStateError, match="does not match its hash"):
        load_tasks(state)
    (state / "tasks.json").write_text("{not json")
    with pytest.raises(ClientStateError, match="damaged"):
        load_tasks(state)


def test_signing_slot_is_exclusive_per_task_and_round(tmp_path):
    claim_signature(tmp_path, 1, 1, b"\x00" * 32, b"\x01" * 32)
    claim_signature(tmp_path, 1, 1, b"\x00" * 32, b"\x01" * 32)               # the same update again
    with pytest.raises(AlreadySignedError):
        claim_signature(tmp_path, 1, 1, b"\x00" * 32, b"\x02" * 32)
    with pytest.raises(AlreadySignedError):
        claim_signature(tmp_path, 1, 1, b"\x03" * 32, b"\x01" * 32)           # same update, other base
    claim_signature(tmp_path, 1, 2, b"\x00" * 32, b"\x02" * 32)
    claim_signature(tmp_path, 2, 1, b"\x00" * 32, b"\x02" * 32)


@pytest.mark.parametrize("kind", [KeypairType.SR25519, KeypairType.ED25519])
def test_child_key_round_trip(kind):
    key = keypair(kind)
    back = child_key.import_key(child_key.export_key(key))
    assert back.ss58_address == key.ss58_address
    assert key.verify(b"m", back.sign(b"m"))
    env = child_key.child_env(key, {"PATH": "/bin"})
    assert env["PATH"] == "/bin" and child_key.key_from_env(env).public_key == key.public_key


def test_child_key_refuses_what_it_did_not_write():
    other = keypair(KeypairType.ED25519)
    name, secret, _ = child_key.export_key(keypair(KeypairType.ED25519)).split(":")
    forged = f"{name}:{'11' * 32}:{bytes(other.public_key).hex()}"
    for value in ("", "sr25519:zz:00", "ecdsa:00:00", forged):
        with pytest.raises(child_key.ChildKeyError) as info:
            child_key.import_key(value) if value else child_key.key_from_env({})
        assert secret not in str(info.value)


def test_array_records_keep_names_and_values():
    arrays = initial_arrays()
    assert {k: v.tolist() for k, v in record_arrays(to_record(arrays)).items()} == \
        {k: v.tolist() for k, v in arrays.items()}
    assert isinstance(to_record(arrays), ArrayRecord)
