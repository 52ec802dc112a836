"""The validator's round judge (workers.fl.judge) on devnet's runtime in this process: no socket, no Flower.

The market is tests/fl_judged_round.py's: a FedMedian task over four clients' real local updates, round 1
committed by //Bob as ChainStrategy commits it, the holdout revealed; //Charlie judges from the finalized
events with a store that trusts the requester's and the aggregator's.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from fl_judged_round import ALICE, BOB, CAPS, CHARLIE, CLIENTS, UNIT, Market, World, build_world, post_task, scaled

from runtime_bindings import Chain
from workers.artifacts import ArtifactStore
from workers.fl import rules
from workers.fl.arrays import model_bytes, update_bytes
from workers.fl.judge import RoundJudge, vote_key
from workers.hashing import blake2_256_hex
from workers.uri_policy import UriPolicy
from workers.verification import as_hex


@pytest.fixture(scope="module")
def world() -> World:
    return build_world()


@pytest.fixture
def market(chain: Chain, world: World, tmp_path: Path) -> Market:
    for client in CLIENTS:
        chain.balances.transfer_keep_alive(ALICE, client.ss58_address, 20 * UNIT)
    chain.workers.register(BOB, "Trainer", chain.constant("Workers", "MinTrainerStake"), CAPS)
    chain.workers.register(CHARLIE, "Validator", chain.constant("Workers", "MinValidatorStake"), CAPS)
    requester, aggregator = ArtifactStore(tmp_path / "requester"), ArtifactStore(tmp_path / "aggregator")
    validator = ArtifactStore(tmp_path / "validator", policy=UriPolicy((requester.root, aggregator.root)))
    m = Market(chain, world, requester, aggregator, validator, from_block=chain.finalized_number() + 1)
    m.task = post_task(chain, world, requester)
    return m




def test_the_judge_reads_a_committed_round_from_the_aggregators_store(market: Market) -> None:
    """RoundCommitted in a finalized block becomes a round to judge; its document and objects are copied
    into the validator's store, each verified by hash, the document's updates bound to the update root."""
    doc_hash = market.commit(market.world.honest[:3])
    judge = market.judge()
    market.take_in(judge)
    assert list(market.state.rounds) == [f"{market.task}:1"]
    assert market.state.rounds[f"{market.task}:1"]["round_doc_hash"] == doc_hash
    record = market.chain.federated_tasks.rounds(market.task, 1)
    objects = judge.fetch_round(market.task, 1, record)
    assert objects.document.update_hashes == [blake2_256_hex(update_bytes(u)) for u in market.world.honest[:3]]
    assert objects.updates == [update_bytes(u) for u in market.world.honest[:3]]
    assert objects.base == model_bytes(market.world.base)
    assert market.validator.exists(doc_hash) and market.validator.exists(blake2_256_hex(objects.global_model))


def run(market: Market, judge: RoundJudge, stopping: Callable[[], bool] = lambda: False) -> None:
    """What the validator daemon does each poll: take in the finalized blocks, then judge."""
    market.take_in(judge)
    judge.judge_pending(stopping)


def votes(market: Market) -> list[dict]:
    return [detail for what, detail in market.events if what == "round-vote"]


def test_a_correct_round_is_accepted_with_positive_factors(market: Market) -> None:
    """Honest updates and their true FedMedian aggregate: accepted, measured on the holdout, no client
    rejected, every contribution above 0; the evidence document is in the store under its hash and the
    vote is kept under fl:<task>:<round>."""
    market.commit(market.world.honest)
    market.reveal()
    judge = market.judge()
    run(market, judge)
    verdict = market.verdict()
    assert verdict is not None and verdict.accept
    assert list(verdict.rejected_clients) == []
    assert len(verdict.contributions) == len(CLIENTS) and all(int(f) > 0 for f in verdict.contributions)
    evidence = json.loads(market.validator.get(as_hex(verdict.evidence_hash)))
    # one local epoch from a random model: well above chance (10 classes), measured on the holdout's rest
    assert verdict.measured_metric == evidence["measured"]["accuracy"] > 200_000
    assert evidence["kind"] == "fl-round-evidence" and evidence["aggregate"]["ok"]
    assert evidence["reference"] == "holdout-root"
    [vote] = votes(market)
    assert vote["accept"] and market.state.voted[vote_key(market.task, 1)]["evidence_hash"] == as_hex(
        verdict.evidence_hash)
    assert market.state.rounds == {}


def test_a_tampered_aggregate_is_rejected(market: Market) -> None:
    """A global model off the recomputed aggregate by 1e-3 in one weight (the spec asks for bitwise): the
    vote rejects the round, nobody listed, all factors 0, the reason in the evidence; this one validator is
    the task's quorum, so the round is Rejected on chain."""
    world = market.world
    aggregate = rules.aggregate(world.spec.rule, world.honest, world.examples)
    name = sorted(aggregate)[0]
    tampered = {**aggregate, name: aggregate[name].copy()}
    tampered[name].flat[0] += np.float32(1e-3)
    market.commit(world.honest, global_model=tampered)
    market.reveal()
    run(market, market.judge())
    [vote] = votes(market)
    assert not vote["accept"] and vote["rejected_clients"] == [] and vote["contributions"] == [0] * len(CLIENTS)
    assert market.chain.federated_tasks.rounds(market.task, 1).status.name == "Rejected"
    evidence = json.loads(market.validator.get(vote["evidence_hash"]))
    assert "differs from the recomputed aggregate" in evidence["reasons"][0]


def test_a_x1000_client_is_listed_for_slashing(market: Market) -> None:
    """FedMedian over three honest updates and one scaled x1000: the median still matches, so the round is
    accepted; the x1000 client is listed in rejected_clients (slashed at quorum) with factor 0, and no
    honest one is listed."""
    world = market.world
    updates = [*world.honest[:3], scaled(world.base, world.honest[3], 1000.0)]
    market.commit(updates)
    market.reveal()
    run(market, market.judge())
    verdict = market.verdict()
    assert verdict is not None and verdict.accept
    assert list(verdict.rejected_clients) == [CLIENTS[3].ss58_address]
    factors = [int(f) for f in verdict.contributions]
    assert factors[3] == 0


def test_a_free_rider_gets_factor_zero_and_is_not_slashed(market: Market) -> None:
    """A client that returns the model it received (its change is exactly zero): the round is accepted, the
    free rider earns factor 0 but is not listed for slashing (a copy is not poison)."""
    world = market.world
    updates = [world.honest[0], {k: v.copy() for k, v in world.base.items()}, *world.honest[2:]]
    market.commit(updates)
    market.reveal()
    run(market, market.judge())
    verdict = market.verdict()
    assert verdict is not None and verdict.accept
    assert list(verdict.rejected_clients) == []
    factors = [int(f) for f in verdict.contributions]
    assert factors[1] == 0 and factors[0] > 0
