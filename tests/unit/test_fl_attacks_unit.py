"""The poisoned clients of the Byzantine and malformed-update tests, with hand-made Flower Messages (no Ray):
each attack's arithmetic, its parsing, and that the attack mod's poison is what the client signs."""
from __future__ import annotations

import numpy as np
import pytest
from fl_client_messages import TASK, app_for, context, initial_arrays, joined, keypair, train_message

from runtime_bindings.fl import verify_update
from workers.fl.arrays import check_update, model_hash, update_hash
from workers.fl.attacks import PADDING_NAME, Attack, AttackSpecError, flip_labels, parse_attack, poison, record_arrays
from workers.fl.partition import federated_split


@pytest.fixture(scope="module")
def split():
    return federated_split("digits", 4, 1.0, 5)


def arrays_pair():
    rng = np.random.default_rng(0)
    base = {"a": rng.normal(size=(3, 4)).astype(np.float32), "b": rng.normal(size=4).astype(np.float32),
            "steps": np.array([5], dtype=np.int64)}
    trained = {k: (v + 0.5).astype(v.dtype) if v.dtype.kind == "f" else v.copy() for k, v in base.items()}
    return base, trained


def test_parse_attack_names():
    assert parse_attack(None) is None and parse_attack("") is None and parse_attack("  ") is None
    assert parse_attack("sign-flip") == Attack("sign-flip")
    assert parse_attack("scale:1000") == Attack("scale", 1000.0)
    assert parse_attack("flip-labels").on_data and not parse_attack("free-rider").on_data
    for name in ("nan", "inf", "wrong-shape", "oversize"):
        assert parse_attack(name).kind == name


@pytest.mark.parametrize("text", ["sign_flip", "scale", "scale:x", "scale:inf", "scale:1e13", "nan:1", "honest"])
def test_parse_attack_refuses_unknown(text):
    with pytest.raises(AttackSpecError):
        parse_attack(text)


def test_sign_flip_and_scale_act_on_the_delta():
    base, trained = arrays_pair()
    flipped = poison(Attack("sign-flip"), base, trained)
    scaled = poison(Attack("scale", 1000.0), base, trained)
    for name in ("a", "b"):
        np.testing.assert_allclose(flipped[name], base[name] - 0.5, rtol=1e-6)
        np.testing.assert_allclose(scaled[name] - base[name], np.full_like(base[name], 500.0), rtol=1e-4)
        assert scaled[name].dtype == np.float32
    assert np.array_equal(flipped["steps"], trained["steps"])                 # integer arrays untouched
    assert check_update(flipped, base, 1 << 20) is None                        # well-formed: only judges catch it


def test_free_rider_returns_the_received_model():
    base, trained = arrays_pair()
    rider = poison(Attack("free-rider"), base, trained)
    assert update_hash(rider) == update_hash(base) != update_hash(trained)


@pytest.mark.parametrize("kind,reason", [("nan", "NaN or infinite"), ("inf", "NaN or infinite"),
                                         ("wrong-shape", "has shape"), ("oversize", "names differ")])
def test_malformed_updates_are_what_the_aggregators_check_refuses(kind, reason):
    base, trained = arrays_pair()
    bad = poison(Attack(kind), base, trained, max_update_bytes=1000)
    assert check_update(trained, base, 1 << 20) is None
    assert reason in check_update(bad, base, 1 << 20)
    if kind == "oversize":
        assert bad[PADDING_NAME].nbytes == 2000
    if kind == "inf":
        assert np.isinf(bad["a"]).sum() == 1


def test_flip_labels_mirrors_every_class():
    y = np.arange(10, dtype=np.int64)
    assert flip_labels(y, 10).tolist() == list(range(9, -1, -1))
    assert (flip_labels(y, 10) != y).all()
    assert flip_labels(np.array([0.0, 1.0], dtype=np.float32), 2).tolist() == [1.0, 0.0]


def _train(tmp_path, shard, attack, round_=1):
    base = initial_arrays()
    key = keypair()
    state = joined(tmp_path / (attack or "honest"), shard)
    reply = app_for(state, key, attack)(train_message(base, round_=round_), context())
    assert not reply.has_error(), reply.error
    return base, key, reply


@pytest.mark.parametrize("attack", ["sign-flip", "scale:1000", "free-rider", "nan", "wrong-shape", "oversize"])
def test_the_attack_mod_sends_the_poison_and_signs_it(tmp_path, split, attack):
    base, key, honest = _train(tmp_path, split.shards[0], None)
    _, _, poisoned = _train(tmp_path, split.shards[0], attack)
    sent = record_arrays(poisoned.content["arrays"])
    record = poisoned.content["paratrain"]
    assert record["update-hash"] == update_hash(sent) != honest.content["paratrain"]["update-hash"]
    assert verify_update(key.ss58_address, record["scheme"], record["signature"], TASK, 1, model_hash(base),
                         update_hash(sent), record["num-examples"])
    expected = poison(parse_attack(attack), base, record_arrays(honest.content["arrays"]), max_update_bytes=1 << 20)
    assert sent.keys() == expected.keys()
    assert all(np.array_equal(sent[k], expected[k], equal_nan=True) for k in sent)


def test_flip_labels_trains_on_poisoned_data_into_a_well_formed_update(tmp_path, split):
    base, _, honest = _train(tmp_path, split.shards[2], None)
    _, _, flipped = _train(tmp_path, split.shards[2], "flip-labels")
    sent = record_arrays(flipped.content["arrays"])
    assert check_update(sent, base, 1 << 20) is None
    assert flipped.content["paratrain"]["update-hash"] != honest.content["paratrain"]["update-hash"]
    assert flipped.content["metrics"]["num-examples"] == honest.content["metrics"]["num-examples"]


def test_an_unknown_attack_is_an_error_reply_not_an_honest_update(tmp_path, split):
    base = initial_arrays()
    state = joined(tmp_path, split.shards[0])
    reply = app_for(state, keypair(), "scale:lots")(train_message(base), context())
    assert reply.has_error() and "scale needs a factor" in reply.error.reason
