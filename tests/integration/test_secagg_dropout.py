"""SecAgg+ dropout in Flower's simulation on Ray, N clients, all-to-all shares, threshold 60 % (t = 0.6 N):

* round 1: 30 % of the clients fail in the collect-masked-vectors stage (after key sharing; a test-only mod
  raises for them): the round completes and equals FedAvg of the survivors within the quantization bound;
* round 2: N - t + 1 fail: fewer than t clients are left, so the round halts with no result (any N - t
  survive: the pure survival rule, tests/unit/test_secagg_params.py, and docs/secagg.md).

N is 50 here; SECAGG_DROPOUT_CLIENTS=100 runs the issue's 100. Measured on the 2-core machine at 100: 373 s for
the module (round 1, 30 dropouts, 238 s; round 2, 41 dropouts, 125 s): Flower's Shamir sharing is pure Python
(pycryptodome), O(N t) per client and chunk, so all-to-all cost grows as N**3 and 100 is past this suite's
budget. The 100-client rule itself is checked without Flower in the unit test.

One simulation for the module (Flower's RayBackend shuts Ray down at its end)."""
from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest
from flwr.app import Context, Message
from ray import cloudpickle as ray_cloudpickle

import tests.secagg_simulation as sim
from workers.fl.secagg_app import SecAggRound, run_round
from workers.fl.secagg_client import ROUND
from workers.fl.secagg_params import SecAggParams

pytestmark = pytest.mark.slow
ray_cloudpickle.register_pickle_by_value(sys.modules[__name__])   # Ray workers cannot import this module

N = int(os.environ.get("SECAGG_DROPOUT_CLIENTS", "50"))
PARAMS = SecAggParams(num_shares=1.0, reconstruction_threshold=0.6)
T = PARAMS.threshold_for(N)
DROP_30 = round(0.3 * N)
# round -> partitions that fail after key sharing: 30 %, then one more than the N - t the round can lose
FAILING = {1: set(range(DROP_30)), 2: set(range(DROP_30, DROP_30 + N - T + 1))}
FITINS_CONFIG = "fitins.config"


class Dropout(RuntimeError):
    """A client that goes away after the key-sharing stage."""


def dropout_mod(msg: Message, ctx: Context, call_next: Callable[[Message, Context], Message]) -> Message:
    """Test-only, inside secaggplus_mod (so it runs in the collect-masked-vectors stage only)."""
    round_ = msg.content.config_records[FITINS_CONFIG][ROUND]
    if sim.partition_of(ctx) in FAILING.get(int(round_), set()):   # type: ignore[arg-type]
        raise Dropout(f"partition {sim.partition_of(ctx)} drops out of round {round_}")
    return call_next(msg, ctx)


@pytest.fixture(scope="module")
def simulation(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("secagg-dropout")
    strategy = sim.strategy(PARAMS, N)
    done: dict[str, Any] = {"rounds": [], "bases": [], "seconds": []}

    def main(grid: Any, context: Context) -> None:
        for _ in FAILING:
            done["bases"].append(dict(strategy.base))
            started = time.monotonic()
            done["rounds"].append(run_round(grid, context, strategy, timeout=300.0))
            done["seconds"].append(time.monotonic() - started)

    started = time.monotonic()
    sim.run(main, sim.client_app(PARAMS, out, inner=[dropout_mod]), N)
    done["total_s"] = time.monotonic() - started
    done["nodes"] = sim.nodes_by_partition(out)
    print(f"\nsecagg dropout simulation: {done['total_s']:.0f} s, rounds {[round(s) for s in done['seconds']]} s")
    return done


def test_thirty_percent_dropout_after_key_sharing_completes_and_is_correct(simulation: dict[str, Any]) -> None:
    result: SecAggRound | None = simulation["rounds"][0]
    assert result is not None and result.round == 1
    survivors = [p for p in range(N) if p not in FAILING[1]]
    nodes = simulation["nodes"]
    assert sorted(p.node_id for p in result.participants) == sorted(nodes[p] for p in survivors)
    assert result.dropouts == len(FAILING[1])
    expected = sim.expected_aggregate(simulation["bases"][0], survivors)
    bound = PARAMS.error_bound(len(survivors), sum(sim.examples_of(p) for p in survivors))
    for name in sim.NAMES:
        error = abs(result.aggregate[name].astype(float) - expected[name]).max()
        assert error <= bound, (name, error, bound)


def test_one_dropout_past_n_minus_t_halts_the_round(simulation: dict[str, Any]) -> None:
    assert round(0.6 * N) == T and len(FAILING[2]) == N - T + 1   # 41 of 100, 21 of 50
    assert simulation["rounds"][1] is None
    assert simulation["bases"][1] is not None and len(simulation["rounds"]) == 2
