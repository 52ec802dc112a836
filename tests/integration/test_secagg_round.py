"""A SecAgg+ round in Flower's simulation on Ray, with 12 clients of known updates:

* round 1, all honest: the aggregate equals plain FedAvg of the clipped updates within the quantization bound
  N (2 clipping_range / quantization_range) max_weight / sum(n_i) per coordinate (docs/design/private.md 1.1);
  and the aggregator never holds an individual unmasked update: the grid it talks through records every reply
  (none carries a non-empty ArrayRecord) and every array the server side decodes is recorded (none equals or
  correlates with any client's quantized update, which the clients write to the test folder);
* round 2, four malformed clients (a public key that is not an EC point, unequal destination/ciphertext
  lists, a garbled ciphertext, a masked vector of the wrong shape): the guard names each client and its
  reason, the round completes without them and equals FedAvg of the eight others;
* round 3, the same unequal lists without the guard: Flower's workflow itself raises (what the guard is for).

One simulation for the module (Flower's RayBackend shuts Ray down at its end)."""
from __future__ import annotations

import base64
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from flwr.app import ConfigRecord, Context, Message
from flwr.common import bytes_to_ndarray, ndarray_to_bytes
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS, Key, Stage
from flwr.server.workflow.secure_aggregation import secaggplus_workflow
from ray import cloudpickle as ray_cloudpickle

import tests.secagg_simulation as sim
from workers.fl import secagg_checks
from workers.fl.secagg_app import SecAggRefusal, SecAggRound, run_round
from workers.fl.secagg_client import commitment
from workers.fl.secagg_params import SecAggParams

pytestmark = pytest.mark.slow
# Ray workers cannot import this module (pytest puts tests/integration on the driver's path only), so the
# test-only mods below travel by value
ray_cloudpickle.register_pickle_by_value(sys.modules[__name__])

N = 12
PARAMS = SecAggParams()   # all-to-all shares, threshold 0.6, clipping 8, Q 2**22, M 2**32, max_weight 1000
ATTACKS = {0: Stage.SETUP, 1: Stage.SHARE_KEYS, 2: Stage.SHARE_KEYS, 3: Stage.COLLECT_MASKED_VECTORS}
REASONS = {0: "not an EC point", 1: "destinations but", 2: "not a Fernet token", 3: "expected int64[100, 100]"}
UNGUARDED_ROUND = 3


def _not_ec_key() -> bytes:
    # imported here: this module's functions travel to Ray by value, and cryptography's modules do not pickle
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    return ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _garbled(token: bytes) -> bytes:
    raw = bytearray(base64.urlsafe_b64decode(token))
    raw[0] = 0   # no Fernet version byte: a server-side check can see it without the key
    return base64.urlsafe_b64encode(bytes(raw))


def attack_mod(msg: Message, ctx: Context, call_next: Callable[[Message, Context], Message]) -> Message:
    """Test-only, outside secaggplus_mod: in round 2 partitions 0-3 send one malformed reply each; in round 3
    partition 1 sends unequal lists again (rounds counted by the setup messages this node received)."""
    stage = msg.content.config_records[RECORD_KEY_CONFIGS].get(Key.STAGE)
    if stage == Stage.SETUP:
        seen = ctx.state.config_records.get("test.rounds", ConfigRecord({"n": 0}))
        ctx.state.config_records["test.rounds"] = ConfigRecord({"n": int(seen["n"]) + 1})
    round_ = int(ctx.state.config_records["test.rounds"]["n"])
    reply = call_next(msg, ctx)
    partition = sim.partition_of(ctx)
    attacking = (round_ == 2 and ATTACKS.get(partition) == stage) or \
        (round_ == UNGUARDED_ROUND and partition == 1 and stage == Stage.SHARE_KEYS)
    if not attacking or reply.has_error():
        return reply
    configs = reply.content.config_records[RECORD_KEY_CONFIGS]
    if partition == 0:
        configs[Key.PUBLIC_KEY_1] = _not_ec_key()
    elif partition == 1:
        configs[Key.CIPHERTEXT_LIST] = list(configs[Key.CIPHERTEXT_LIST])[:-1]
    elif partition == 2:
        tokens = list(configs[Key.CIPHERTEXT_LIST])
        configs[Key.CIPHERTEXT_LIST] = [_garbled(tokens[0]), *tokens[1:]]
    else:
        vectors = list(configs[Key.MASKED_PARAMETERS])
        configs[Key.MASKED_PARAMETERS] = [*vectors[:-1], ndarray_to_bytes(bytes_to_ndarray(vectors[-1])[:-1])]
    return reply


class RecordingGrid:
    """The workflow's grid, recording every reply it receives (wrapped under the guard)."""

    def __init__(self, grid: Any, replies: list[Message]) -> None:
        self.grid, self.replies = grid, replies

    def send_and_receive(self, messages: Any, *, timeout: float | None = None) -> list[Message]:
        got = list(self.grid.send_and_receive(messages, timeout=timeout))
        self.replies.extend(got)
        return got

    def __getattr__(self, name: str) -> Any:
        return getattr(self.grid, name)


@pytest.fixture(scope="module")
def simulation(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("secagg-round")
    strategy = sim.strategy(PARAMS, N)
    done: dict[str, Any] = {"replies": [], "decoded": [], "rounds": [], "refusals": [], "out": out,
                            "strategy": strategy, "bases": []}

    def recording(decode: Callable[[bytes], np.ndarray]) -> Callable[[bytes], np.ndarray]:
        def record(raw: bytes) -> np.ndarray:
            array = decode(raw)
            done["decoded"].append((len(done["rounds"]) + 1, array.copy()))
            return array
        return record

    def main(grid: Any, context: Context) -> None:
        recorded = RecordingGrid(grid, done["replies"])
        try:
            for round_ in (1, 2, UNGUARDED_ROUND):
                done["bases"].append(dict(strategy.base))
                done["rounds"].append(run_round(recorded, context, strategy, timeout=120.0,
                                                guard=round_ != UNGUARDED_ROUND,
                                                on_refusal=done["refusals"].append))
        except Exception as exc:  # noqa: BLE001 - the unguarded round's crash is the finding
            done["error"] = exc

    patch = pytest.MonkeyPatch()
    patch.setattr(secaggplus_workflow, "bytes_to_ndarray", recording(secaggplus_workflow.bytes_to_ndarray))
    patch.setattr(secagg_checks, "bytes_to_ndarray", recording(secagg_checks.bytes_to_ndarray))
    try:
        sim.run(main, sim.client_app(PARAMS, out, outer=[attack_mod]), N)
    finally:
        patch.undo()
    done["nodes"] = sim.nodes_by_partition(out)
    return done


def _within_bound(result: SecAggRound, base: dict[str, np.ndarray], partitions: list[int]) -> None:
    expected = sim.expected_aggregate(base, partitions)
    bound = PARAMS.error_bound(len(partitions), sum(sim.examples_of(p) for p in partitions))
    for name in sim.NAMES:
        error = np.abs(result.aggregate[name].astype(np.float64) - expected[name])
        assert float(error.max()) <= bound, (name, float(error.max()), bound)
    unclipped = {p: sim.trained(base, p) for p in partitions}
    plain = sum(unclipped[p]["w"].astype(np.float64) * sim.examples_of(p) for p in partitions) / \
        sum(sim.examples_of(p) for p in partitions)
    assert float(np.abs(plain - expected["w"]).max()) > 100 * bound   # the clipping changed what was summed


def test_secagg_aggregate_equals_fedavg_within_the_quantization_bound(simulation: dict[str, Any]) -> None:
    result = simulation["rounds"][0]
    assert result is not None and result.round == 1 and result.dropouts == 0
    nodes = simulation["nodes"]
    assert sorted(p.node_id for p in result.participants) == sorted(nodes.values())
    _within_bound(result, simulation["bases"][0], list(range(N)))
    # the commitments the aggregator saw are the clients' salted commitments to what they masked
    by_node = {p.node_id: p for p in result.participants}
    for partition, kept in sim.reveals(simulation["out"], 1).items():
        model = {name: kept[f"model.{name}"] for name in sim.NAMES}
        digest = commitment(kept["salt"].tobytes(), model)
        assert digest == kept["commitment"].tobytes() == by_node[nodes[partition]].commitment
        assert by_node[nodes[partition]].update_norm <= sim.NORM_BOUND + 1e-9


def test_the_aggregator_never_holds_an_unmasked_update(simulation: dict[str, Any]) -> None:
    replies = [r for r in simulation["replies"] if not r.has_error()]
    assert len(replies) >= 4 * N                 # four stages of round 1 at least
    for reply in replies:
        assert all(len(record) == 0 for record in reply.content.array_records.values())
    decoded = [a for round_, a in simulation["decoded"] if round_ == 1]
    assert len(decoded) == 2 * N * (1 + len(sim.NAMES))   # each masked vector: once by the guard, once by Flower
    quantized = []
    for kept in sim.reveals(simulation["out"], 1).values():
        for i, _ in enumerate(sim.NAMES):
            weighted = kept[f"weighted.{i}"]
            quantized.append((np.clip(weighted, -PARAMS.clipping_range, PARAMS.clipping_range)
                              + PARAMS.clipping_range) * PARAMS.quantization_range / (2 * PARAMS.clipping_range))
    assert len(quantized) == N * len(sim.NAMES)
    big = [q for q in quantized if q.size >= 1000]
    # the measure would see an unmasked vector: two clients' quantized updates correlate strongly
    assert abs(np.corrcoef(big[0].ravel(), big[1].ravel())[0, 1]) > 0.5
    for array in decoded:
        assert array.dtype == np.int64
        for q in quantized:
            if q.shape != array.shape:
                continue
            assert not np.array_equal(array, np.floor(q)) and not np.array_equal(array, np.ceil(q))
            if q.size >= 1000:
                r = np.corrcoef(array.ravel().astype(np.float64), q.ravel())[0, 1]
                assert abs(r) < 0.05, r


def test_malformed_clients_are_named_and_the_round_completes_without_them(simulation: dict[str, Any]) -> None:
    nodes = simulation["nodes"]
    refusals: list[SecAggRefusal] = [r for r in simulation["refusals"] if r.round == 2]
    by_node = {r.node_id: r for r in refusals}
    assert len(refusals) == len(by_node) == len(ATTACKS)
    for partition, stage in ATTACKS.items():
        refusal = by_node[nodes[partition]]
        assert refusal.stage == stage and REASONS[partition] in refusal.reason, refusal
    result = simulation["rounds"][1]
    assert result is not None and result.round == 2 and result.dropouts >= 1
    honest = [p for p in range(N) if p not in ATTACKS]
    assert sorted(p.node_id for p in result.participants) == sorted(nodes[p] for p in honest)
    _within_bound(result, simulation["bases"][1], honest)


def test_without_the_guard_flowers_workflow_crashes_on_unequal_lists(simulation: dict[str, Any]) -> None:
    assert len(simulation["rounds"]) == 2          # the third round never returned
    assert isinstance(simulation.get("error"), ValueError)
    assert "zip()" in str(simulation["error"])
