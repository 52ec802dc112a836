"""workers.fl.rules on hand-made cases: each rule's defining property, and the refusals."""
from __future__ import annotations

import numpy as np
import pytest

from workers.fl import rules
from workers.fl.rules import AggregationError, aggregate
from workers.fl.spec import parse_rule


def _u(*values: float, dtype: type = np.float32) -> dict[str, np.ndarray]:
    return {"w": np.array(values, dtype=dtype), "b": np.array(sum(values), dtype=dtype)}


def test_fedavg_weights_by_examples_and_keeps_dtype() -> None:
    out = aggregate(parse_rule("fedavg"), [_u(0.0, 0.0), _u(4.0, 8.0)], [3, 1])
    assert out["w"].tolist() == [1.0, 2.0] and out["w"].dtype == np.float32
    assert out["b"].shape == () and float(out["b"]) == 3.0
    assert list(out) == ["w", "b"]


def test_fedmedian_ignores_weights_and_outliers() -> None:
    updates = [_u(1.0, 10.0), _u(2.0, 20.0), _u(1000.0, -1e6)]
    out = aggregate(parse_rule("fedmedian"), updates, [1, 1, 1000])
    assert out["w"].tolist() == [2.0, 10.0]


def test_trimmed_mean_cuts_beta_at_each_end() -> None:
    updates = [_u(v) for v in (-100.0, 1.0, 2.0, 3.0, 100.0)]
    assert aggregate(parse_rule("fedtrimmedavg:0.2"), updates, [1] * 5)["w"].tolist() == [2.0]
    assert aggregate(parse_rule("fedtrimmedavg:0"), updates, [1] * 5)["w"].tolist() == [pytest.approx(1.2)]
    assert rules.trim_mean(np.array([[5.0], [1.0], [3.0]]), 0.34).tolist() == [3.0]
    with pytest.raises(AggregationError):
        rules.trim_mean(np.zeros((3, 1)), 0.5)


def test_krum_picks_the_update_closest_to_its_neighbours() -> None:
    honest = [_u(1.0, 1.0), _u(1.1, 0.9), _u(0.9, 1.1), _u(1.05, 1.0), _u(1.0, 0.95)]
    poison = [_u(-50.0, -50.0), _u(80.0, 0.0)]
    updates = honest + poison
    chosen = rules.select_multikrum(updates, num_malicious=2, num_to_select=1)
    assert chosen[0] < len(honest)
    out = aggregate(parse_rule("krum:2"), updates, [1] * len(updates))
    assert out["w"].tobytes() == updates[chosen[0]]["w"].tobytes()
    scores = rules.krum_scores(updates, 2)
    assert min(scores[5:]) > max(scores[:5])


def test_multikrum_averages_the_selected_by_examples_in_score_order() -> None:
    updates = [_u(1.0, 1.0), _u(1.2, 1.0), _u(0.8, 1.0), _u(1.0, 1.4), _u(100.0, 100.0)]
    weights = [1, 2, 3, 4, 5]
    chosen = rules.select_multikrum(updates, 1, 3)
    assert 4 not in chosen and len(chosen) == 3
    expected = rules.weighted_average([updates[i] for i in chosen], [weights[i] for i in chosen])
    out = aggregate(parse_rule("multikrum:1:3"), updates, weights)
    assert out["w"].tobytes() == expected["w"].tobytes()


def test_distances_are_squared_l2_over_all_arrays() -> None:
    d = rules.distances([{"a": np.array([0.0, 0.0]), "b": np.array(0.0)},
                         {"a": np.array([3.0, 0.0]), "b": np.array(4.0)}])
    assert d.tolist() == [[0.0, 25.0], [25.0, 0.0]]


def test_numpy_integer_weights_do_not_promote_float32() -> None:
    out = aggregate(parse_rule("fedavg"), [_u(1.0), _u(2.0)], list(np.array([1, 3], dtype=np.int64)))
    assert out["w"].dtype == np.float32


@pytest.mark.parametrize(("updates", "weights", "reason"), [
    ([], [], "no updates"),
    ([_u(1.0)], [1, 2], "weights"),
    ([_u(1.0), {"w": np.zeros(1, np.float32)}], [1, 1], "names"),
    ([_u(1.0), _u(2.0)], [0, 0], "positive sum"),
    ([_u(1.0), _u(2.0)], [-1, 3], "non-negative"),
])
def test_refusals(updates: list, weights: list, reason: str) -> None:
    for text in ("fedavg", "fedmedian", "fedtrimmedavg:0.2", "krum:0"):
        with pytest.raises(AggregationError, match=reason):
            aggregate(parse_rule(text), updates, weights)
