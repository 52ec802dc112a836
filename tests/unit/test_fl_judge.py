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

from fl_judged_round import BOB, CLIENTS, Market, World, build_world, open_market, scaled

from runtime_bindings import Chain
from workers.artifacts import ArtifactStore, FetchLimits
from workers.fl import rules
from workers.fl.arrays import model_bytes, update_bytes
from workers.fl.judge import JudgeSettings, RoundJudge, may_judge, vote_key
from workers.hashing import blake2_256_hex
from workers.uri_policy import UriPolicy
from workers.verification import as_hex


@pytest.fixture(scope="module")
def world() -> World:
    return build_world()


@pytest.fixture
def market(chain: Chain, world: World, tmp_path: Path) -> Market:
    return open_market(chain, world, tmp_path)


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
    accepted; the x1000 client is listed in rejected_clients (slashed at quorum) with factor 0, the honest
    ones are not listed and keep factors above 0."""
    world = market.world
    updates = [*world.honest[:3], scaled(world.base, world.honest[3], 1000.0)]
    market.commit(updates)
    market.reveal()
    run(market, market.judge())
    verdict = market.verdict()
    assert verdict is not None and verdict.accept
    assert list(verdict.rejected_clients) == [CLIENTS[3].ss58_address]
    factors = [int(f) for f in verdict.contributions]
    assert factors[3] == 0 and all(f > 0 for f in factors[:3])


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
    assert factors[1] == 0 and all(f > 0 for i, f in enumerate(factors) if i != 1)


def test_a_document_listing_other_updates_than_the_signed_ones_is_rejected(market: Market) -> None:
    """The aggregator commits the clients' signed updates but its document lists another update for one of
    them (and aggregates that one): the update root of the listed hashes is not the committed root, so the
    round is rejected before any array is read."""
    world = market.world
    swapped = [*world.honest[:3], scaled(world.base, world.honest[3], 2.0)]
    market.commit(world.honest, listed=swapped,
                  global_model=rules.aggregate(world.spec.rule, swapped, world.examples))
    market.reveal()
    run(market, market.judge())
    [vote] = votes(market)
    assert not vote["accept"] and vote["contributions"] == [0] * len(CLIENTS)
    assert "not the ones the clients signed" in vote["reasons"][0]


def test_objects_in_a_store_the_validator_does_not_trust_fail_the_round(market: Market, tmp_path: Path) -> None:
    """A validator that trusts only the requester's store cannot read the aggregator's objects: the round is
    rejected with the reason (the aggregator did not make its round checkable), as missing artifacts fail a
    result."""
    market.commit(market.world.honest)
    market.reveal()
    store = ArtifactStore(tmp_path / "wary", policy=UriPolicy((market.requester.root,)))
    run(market, market.judge(store=store))
    [vote] = votes(market)
    assert not vote["accept"] and "cannot be read" in vote["reasons"][0]


def test_the_aggregator_never_judges_its_own_round(market: Market) -> None:
    """//Bob aggregated the round: its judge abstains with the reason and sends nothing (the pallet's
    CannotJudgeOwnWork is never hit); the round is dropped from the pending ones."""
    market.commit(market.world.honest)
    run(market, market.judge(keypair=BOB))
    assert votes(market) == []
    [(what, detail)] = market.events
    assert what == "round-abstained" and "aggregator" in detail["reason"]
    assert market.verdict(BOB) is None and market.state.rounds == {}


def test_may_judge_refuses_the_requester_and_participants() -> None:
    assert may_judge("v", aggregator="a", requester="r", participants=["c"]) == (True, "")
    assert not may_judge("r", aggregator="a", requester="r", participants=["c"])[0]
    assert not may_judge("c", aggregator="a", requester="r", participants=["c"])[0]


def test_the_holdout_is_awaited_then_the_round_judged_with_it(market: Market) -> None:
    """The task committed a holdout: while more than the margin of the round's window is left the judge waits
    (no vote, the round kept), and once it is revealed the round is judged with it."""
    market.commit(market.world.honest)
    judge = market.judge(margin_ms=1_000)
    run(market, judge)
    assert votes(market) == [] and list(market.state.rounds) == [f"{market.task}:1"]
    market.reveal()
    run(market, judge)
    [vote] = votes(market)
    evidence = json.loads(market.validator.get(vote["evidence_hash"]))
    assert vote["accept"] and evidence["reference"] == "holdout-root"


def test_objects_are_read_only_up_to_the_limit(market: Market, tmp_path: Path) -> None:
    """An operator whose artifact limit is below the size of the round's models reads none of them past it:
    the round is rejected with the limit named, nothing over it is kept."""
    market.commit(market.world.honest)
    market.reveal()
    store = ArtifactStore(tmp_path / "small", policy=UriPolicy((market.requester.root, market.aggregator.root)),
                          limits=FetchLimits(artifact_bytes=1_000))
    run(market, market.judge(store=store))
    [vote] = votes(market)
    assert not vote["accept"] and "1,000-byte limit" in vote["reasons"][0]
    assert not store.exists(blake2_256_hex(model_bytes(market.world.base)))


def test_an_unexpected_error_is_retried_then_abstained_from(market: Market, monkeypatch: pytest.MonkeyPatch) -> None:
    """An error while judging (here the checks themselves failing) never stops the loop: the round is kept
    with the error counted, tried again, and abstained from after max_judge_attempts; no vote is sent."""
    market.commit(market.world.honest)
    market.reveal()
    judge = market.judge()
    judge.settings = JudgeSettings(holdout_margin_ms=0, max_judge_attempts=2, retry_delay_s=0.0)

    def broken(*args: object) -> None:
        raise RuntimeError("out of disk")

    monkeypatch.setattr(judge, "verdict", broken)
    run(market, judge)
    [entry] = market.state.rounds.values()
    assert entry["errors"] == 1 and "out of disk" in entry["last_error"]
    run(market, judge)
    assert market.state.rounds == {} and votes(market) == [] and market.verdict() is None
    [(what, detail)] = market.events
    assert what == "round-abstained" and "judging failed 2 times" in detail["reason"]
