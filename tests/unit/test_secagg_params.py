"""SecAgg+ parameters: paratrain's refusals, the workflow's share/threshold rounding, the quantization bound,
and the survival rule reproducing docs/design/private.md 1.1's table (n = 100)."""
from __future__ import annotations

import random
import re

import pytest
from flwr.server.workflow.secure_aggregation.secaggplus_workflow import SecAggPlusWorkflow, WorkflowState

from workers.fl.secagg_app import secagg_workflow
from workers.fl.secagg_params import (
    SecAggParams,
    SecAggParamsError,
    max_dropouts_all_to_all,
    ring_neighbours,
    survival_rate,
    survives,
)


@pytest.mark.parametrize("kwargs, words", [
    ({"num_shares": 2}, "greater than 2"),
    ({"num_shares": 0.0}, "(0, 1]"),
    ({"num_shares": True}, "num_shares"),
    ({"reconstruction_threshold": 0.5}, "[0.6, 1]"),
    ({"reconstruction_threshold": 60}, "fraction"),
    ({"clipping_range": 0.0}, "clipping_range"),
    ({"clipping_range": float("inf")}, "clipping_range"),
    ({"max_weight": -1.0}, "max_weight"),
    ({"quantization_range": 1}, "quantization_range"),
    ({"modulus_range": 3 * 2**22}, "power of two"),
    ({"modulus_range": 2**21}, "above quantization_range"),
    ({"modulus_range": 2**33}, "2**32"),
])
def test_refused_settings(kwargs: dict, words: str) -> None:
    with pytest.raises(SecAggParamsError, match=re.escape(words)):
        SecAggParams(**kwargs)


def test_document_round_trip_and_unknown_keys() -> None:
    params = SecAggParams(num_shares=1.0, reconstruction_threshold=0.7, clipping_range=4.0, max_weight=500.0)
    assert SecAggParams.from_document(params.document()) == params
    with pytest.raises(SecAggParamsError, match="exactly the keys"):
        SecAggParams.from_document({**params.document(), "extra": 1})


def test_examples_above_max_weight_are_refused() -> None:
    params = SecAggParams(max_weight=100.0)
    params.check_examples(100)
    for bad in (101, 0, -3, True, 2.5):
        with pytest.raises(SecAggParamsError):
            params.check_examples(bad)  # type: ignore[arg-type]


def test_round_size_bounds() -> None:
    params = SecAggParams()
    assert params.max_clients == 1023
    params.check_round(3)
    params.check_round(1023)
    for bad in (2, 1024):
        with pytest.raises(SecAggParamsError, match="clients"):
            params.check_round(bad)
    with pytest.raises(SecAggParamsError, match="more than"):
        SecAggParams(num_shares=11).check_round(5)


def test_shares_and_threshold_follow_the_workflow() -> None:
    """The workflow's own rounding (setup_stage): all-to-all is n shares; 0.51 of 100 is 51; threshold >= 2."""
    assert SecAggParams().shares_for(100) == 100
    assert SecAggParams().threshold_for(100) == 60
    assert SecAggParams(num_shares=0.5).shares_for(100) == 51       # even counts are made odd
    assert SecAggParams(num_shares=0.51, reconstruction_threshold=0.66).threshold_for(100) == 34
    assert SecAggParams(num_shares=1.0).threshold_for(3) == 2
    secagg_workflow(SecAggParams(), timeout=5.0)   # Flower accepts every setting paratrain accepts


def test_error_bound() -> None:
    params = SecAggParams(clipping_range=8.0, quantization_range=2**22, max_weight=1000.0)
    assert params.step == 16 / 2**22
    assert params.error_bound(20, 400) == pytest.approx(20 * 16 / 2**22 * 1000 / 400)


def _flower_check(neighbours: dict[int, set[int]], active: set[int], threshold: int) -> bool:
    state = WorkflowState(sampled_node_ids=set(neighbours), active_node_ids=set(active), threshold=threshold,
                          nid_to_neighbours={k: set(v) for k, v in neighbours.items()})
    return SecAggPlusWorkflow(1.0, 0.6)._check_threshold(state)


def test_ring_neighbours_and_flowers_threshold_check_agree() -> None:
    rng = random.Random(7)
    order = list(range(100))
    rng.shuffle(order)
    near = ring_neighbours(order, 51)
    assert all(len(v) == 51 and k in v for k, v in near.items())
    assert all(len(v) == 100 for v in ring_neighbours(order, 100).values())
    for dropped in (10, 30, 45):
        for _ in range(20):
            active = set(order) - set(rng.sample(order, dropped))
            for t in (26, 34):
                assert survives(near, active, t) == _flower_check(near, active, t)


@pytest.mark.parametrize("shares, t, dropped, expected", [
    # docs/design/private.md 1.1, measured with 400 random dropout sets per row: all-to-all is deterministic
    (100, 51, 30, 1.0), (100, 60, 30, 1.0), (100, 70, 30, 1.0),
    (100, 51, 40, 1.0), (100, 60, 40, 1.0), (100, 70, 40, 0.0),
    (51, 26, 30, 1.0), (51, 34, 30, 0.048), (51, 26, 40, 0.758), (51, 34, 40, 0.0),
])
def test_survival_table(shares: int, t: int, dropped: int, expected: float) -> None:
    rate = survival_rate(100, shares, t, dropped, trials=400, rng=random.Random(shares * 1000 + t * 10 + dropped))
    assert abs(rate - expected) <= 0.06, rate


def test_all_to_all_survives_exactly_n_minus_t() -> None:
    """num_shares = all sampled, t = 60 % of 100: any 40 dropouts survive, no 41 do."""
    n, t = 100, SecAggParams().threshold_for(100)
    assert max_dropouts_all_to_all(n, t) == 40
    near = ring_neighbours(list(range(n)), n)
    rng = random.Random(3)
    for _ in range(50):
        assert survives(near, set(range(n)) - set(rng.sample(range(n), 40)), t)
        assert not survives(near, set(range(n)) - set(rng.sample(range(n), 41)), t)
