"""workers.fl.rules against Flower 1.42's own strategies: the same updates in the same order give bitwise the
same global model (FedAvg, FedMedian, FedTrimmedAvg, Krum, MultiKrum), so a validator recomputing a round
without Flower gets exactly what the aggregator's Flower committed. Fast: no processes, no Ray."""
from __future__ import annotations

import time

import numpy as np
import pytest

flwr = pytest.importorskip("flwr")

from flwr.app import Array, ArrayRecord, Message, Metadata, MetricRecord, RecordDict  # noqa: E402
from flwr.serverapp.strategy import FedAvg, FedMedian, FedTrimmedAvg, Krum, MultiKrum  # noqa: E402

from workers.fl import rules  # noqa: E402
from workers.fl.spec import parse_rule  # noqa: E402

SHAPES = {"0.weight": (16, 8), "0.bias": (16,), "2.weight": (4, 16), "2.bias": (4,)}


def _updates(seed: int, n: int, dtype: type = np.float32) -> tuple[list[dict[str, np.ndarray]], list[int]]:
    rng = np.random.default_rng(seed)
    base = {k: rng.standard_normal(s).astype(dtype) for k, s in SHAPES.items()}
    updates = [{k: (v + rng.standard_normal(v.shape) * rng.uniform(0.01, 1.0)).astype(dtype) for k, v in base.items()}
               for _ in range(n)]
    if n > 4:   # an outlier or two, as poisoners would send, so Krum's selection is not trivial
        updates[1] = {k: v * -50 for k, v in updates[1].items()}
        updates[3] = {k: v + 20 for k, v in updates[3].items()}
    return updates, [int(w) for w in rng.integers(1, 400, size=n)]


def _replies(updates: list[dict[str, np.ndarray]], weights: list[int]) -> list[Message]:
    replies = []
    for i, (update, weight) in enumerate(zip(updates, weights, strict=True)):
        content = RecordDict({"arrays": ArrayRecord({k: Array(v) for k, v in update.items()}),
                              "metrics": MetricRecord({"num-examples": weight, "train-loss": 0.5})})
        replies.append(Message(content, metadata=Metadata(
            run_id=1, message_id=f"m{i}", src_node_id=100 + i, dst_node_id=1, reply_to_message_id="i",
            group_id="1", created_at=time.time(), ttl=600.0, message_type="train")))
    return replies


def _flower(text: str):
    rule = parse_rule(text)
    if rule.name == "fedavg":
        return FedAvg()
    if rule.name == "fedmedian":
        return FedMedian()
    if rule.name == "fedtrimmedavg":
        return FedTrimmedAvg(beta=rule.beta_fraction)
    if rule.name == "krum":
        return Krum(num_malicious_nodes=rule.num_malicious)
    return MultiKrum(num_malicious_nodes=rule.num_malicious, num_nodes_to_select=rule.num_to_select)


CASES = [("fedavg", 5), ("fedavg", 1), ("fedmedian", 6), ("fedmedian", 7), ("fedtrimmedavg:0.35", 9),
         ("fedtrimmedavg:0.2", 5), ("fedtrimmedavg:0", 4), ("krum:2", 8), ("krum:4", 13), ("multikrum:2:4", 9),
         ("multikrum:4:9", 13)]


@pytest.mark.parametrize(("text", "n"), CASES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_reference_equals_flower_bitwise(text: str, n: int, seed: int) -> None:
    updates, weights = _updates(seed * 100 + n, n)
    ours = rules.aggregate(parse_rule(text), updates, weights)
    arrays, _ = _flower(text).aggregate_train(1, _replies(updates, weights))
    assert arrays is not None
    theirs = {k: v.numpy() for k, v in arrays.items()}
    assert list(ours) == list(theirs)
    for key in theirs:
        assert ours[key].dtype == theirs[key].dtype and ours[key].shape == theirs[key].shape
        assert ours[key].tobytes() == theirs[key].tobytes(), f"{text}: {key} differs"


@pytest.mark.parametrize("text", ["fedavg", "fedmedian", "fedtrimmedavg:0.35", "krum:1"])
def test_float64_updates_also_match(text: str) -> None:
    updates, weights = _updates(11, 7, np.float64)
    ours = rules.aggregate(parse_rule(text), updates, weights)
    arrays, _ = _flower(text).aggregate_train(1, _replies(updates, weights))
    assert arrays is not None
    assert all(ours[k].tobytes() == v.numpy().tobytes() for k, v in arrays.items())


def test_krum_selection_is_flowers() -> None:
    from flwr.serverapp.strategy.multikrum import select_multikrum

    updates, weights = _updates(5, 11)
    contents = [m.content for m in _replies(updates, weights)]
    chosen = select_multikrum(contents, num_malicious_nodes=3, num_nodes_to_select=4)
    expected = [next(i for i, c in enumerate(contents) if c is picked) for picked in chosen]
    assert rules.select_multikrum(updates, 3, 4) == expected
    assert 1 not in expected and 3 not in expected


@pytest.mark.parametrize(("text", "n"), CASES)
def test_a_validator_reading_ptts1_matches_flower_fed_in_state_dict_order(text: str, n: int) -> None:
    """The aggregator's Flower sees the arrays in the client's state-dict order; a validator decodes the
    stored PTTS1 updates, whose arrays are sorted by name. Per-array rules do not care; Krum's flattened
    distances sum in another order, which compare_round absorbs (ties only), and the committed model
    compares bitwise."""
    from workers.fl import verify
    from workers.fl.arrays import loads, update_bytes

    updates, weights = _updates(7 * n, n)
    arrays, _ = _flower(text).aggregate_train(1, _replies(updates, weights))
    assert arrays is not None
    committed = {k: v.numpy() for k, v in arrays.items()}
    decoded = [loads(update_bytes(u))[0] for u in updates]
    assert list(decoded[0]) == sorted(SHAPES) != list(SHAPES)
    result = verify.compare_round(parse_rule(text), decoded, weights, committed, 0)
    assert result.ok, result.reason
