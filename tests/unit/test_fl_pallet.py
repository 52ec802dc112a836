"""FederatedTasks in process: every call's refusals by name with the state unchanged, and the task lifecycle
(join, leave, claim, commit, verdicts, payout, slash, lease lapse, reopen, completion, expiry, withdrawal).

The three refusals the issue names: a second join is AlreadyJoined, round 3 before round 2 is
RoundOutOfOrder, a commit by anyone but the aggregator is NotAggregator; each leaves the state unchanged.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fl_pallet_harness import (
    AGGREGATORS,
    CLIENTS,
    GRACE_MS,
    INITIAL_MODEL,
    OUTSIDER,
    PARTICIPANTS,
    REQUESTER,
    UNIT,
    VALIDATORS,
    FlHarness,
    model_hash,
    sorted_clients,
)
from substrateinterface import Keypair

from devnet.runtime.executive import MAX_NORMAL_LENGTH, MAX_NORMAL_WEIGHT
from devnet.runtime.framework import DispatchError
from devnet.runtime.pallets.federated_payout import client_pay, round_reward, split_round
from devnet.runtime.pallets.task_bounties_types import PERBILL, holdout_commitment, perbill_mul
from devnet.runtime.pallets.workers import Workers
from runtime_bindings import fl

AGG, AGG2 = AGGREGATORS
V1, V2, V3, V4 = VALIDATORS


@pytest.fixture
def h() -> FlHarness:
    harness = FlHarness()
    harness.register_workers()
    return harness


def refused(h: FlHarness, error: str, who: Any, call: str, **args: Any) -> None:
    """`call` fails with FederatedTasks.`error` and changes no storage and deposits no event."""
    before, events = h.snapshot(), len(h.ctx.events)
    assert h.dispatch(who, call, **args) == error
    assert h.snapshot() == before
    assert len(h.ctx.events) == events


def stake_of(h: FlHarness, who: Any) -> int:
    return int(Workers.Workers.get(h.state, who.public_key)["stake"])


# The three named refusals ---------------------------------------------------------------
def test_a_second_join_is_already_joined_and_changes_nothing(h: FlHarness) -> None:
    task = h.create()
    h.join(task, CLIENTS[:1])
    refused(h, "AlreadyJoined", CLIENTS[0], "join", task=task, data_hash=model_hash("again"), num_examples=5,
            stake=10 * UNIT)
    assert h.task(task)["clients"] == 1


def test_round_three_before_round_two_is_round_out_of_order(h: FlHarness) -> None:
    task = h.running(rounds=4)
    refused(h, "RoundOutOfOrder", AGG, "commit_round", **h.commit_args(task, 2, PARTICIPANTS, base=INITIAL_MODEL))
    h.commit(task, 1)
    refused(h, "RoundOutOfOrder", AGG, "commit_round",
            **h.commit_args(task, 3, PARTICIPANTS, base=bytes(h.round(task, 1)["global_model_hash"])))
    refused(h, "RoundOutOfOrder", AGG, "commit_round", **h.commit_args(task, 1, PARTICIPANTS, base=INITIAL_MODEL))
    assert h.task(task)["last_committed"] == 1


def test_round_beyond_the_tasks_rounds_is_out_of_order(h: FlHarness) -> None:
    task = h.running(rounds=1)
    h.commit(task, 1)
    h.verdict(V1, task, 1)
    h.verdict(V2, task, 1)
    assert h.status(task) == "Completed"
    refused(h, "NotRunning", AGG, "commit_round", **h.commit_args(task, 2, PARTICIPANTS))


@pytest.mark.parametrize("who", [AGG2, CLIENTS[0], REQUESTER, V1])
def test_a_commit_by_anyone_but_the_aggregator_is_not_aggregator(h: FlHarness, who: Any) -> None:
    task = h.running()
    refused(h, "NotAggregator", who, "commit_round", **h.commit_args(task, 1, PARTICIPANTS))
    refused(h, "NotAggregator", who, "heartbeat", task=task)
    refused(h, "NotAggregator", who, "release", task=task)


# A task from creation to completion -------------------------------------------------------------
def test_three_rounds_pay_every_party_once_and_complete_with_the_rest_refunded(h: FlHarness) -> None:
    bounty = 301 * UNIT + 7  # not divisible by the rounds: the last round takes the remainder
    requester0 = h.account(REQUESTER)["free"]
    task = h.running(bounty=bounty)
    assert h.account(REQUESTER)["reserved"] == bounty + UNIT
    agg0, val0 = h.account(AGG)["free"], h.account(V1)["free"]
    clients = sorted_clients(PARTICIPANTS)
    free0 = {c.public_key: h.account(c)["free"] for c in clients}
    for number in (1, 2, 3):
        h.commit(task, number)
        assert h.verdict(V1, task, number) is None
        assert h.status(task) == "Running" and h.round(task, number)["status"][0] == "Pending"
        assert h.verdict(V2, task, number) is None
        assert h.round(task, number)["status"][0] == "Accepted"
        assert h.task(task)["last_accepted"] == number
    record = h.task(task)
    assert record["status"] == ("Completed", {"final_model_hash": h.round(task, 3)["global_model_hash"]})
    assert record["accepted_model_hash"] == h.round(task, 3)["global_model_hash"]

    examples = [h.client(task, c)["num_examples"] for c in clients]
    expected_clients, aggregator_total, validator_total = [0] * len(clients), 0, 0
    for number in (1, 2, 3):
        split = split_round(round_reward(bounty, 3, number), 100_000_000, 700_000_000, 2)
        for i, pay in enumerate(client_pay(split.clients, examples, [PERBILL] * len(clients))):
            expected_clients[i] += pay
        aggregator_total += split.aggregator
        validator_total += split.per_validator
    for client, pay in zip(clients, expected_clients):
        assert h.account(client)["free"] - free0[client.public_key] == pay
        assert h.client(task, client)["paid"] == pay
        assert h.client(task, client)["rounds_paid"] == 3 and h.client(task, client)["last_paid_round"] == 3
    assert h.account(AGG)["free"] - agg0 == aggregator_total
    assert h.account(V1)["free"] - val0 == validator_total
    paid = sum(expected_clients) + aggregator_total + 2 * validator_total
    assert record["paid"] == paid
    (completed,) = h.events("TaskCompleted")
    assert completed["refund"] == bounty - paid + UNIT
    assert h.account(REQUESTER) == {"free": requester0 - paid, "reserved": 0}
    pairs = [(e["round"], e["client"]) for e in h.events("ClientPaid")]
    assert len(pairs) == len(set(pairs)) == 3 * len(clients)
    assert Workers.Workers.get(h.state, AGG.public_key)["active_claims"] == 0
    assert Workers.Workers.get(h.state, V1.public_key)["pending_verdicts"] == 0


def test_commit_records_the_round_with_the_root_of_the_signed_commitments(h: FlHarness) -> None:
    task = h.running()
    args = h.commit_args(task, 1, PARTICIPANTS)
    h.ok(AGG, "commit_round", **args)
    committed = h.round(task, 1)
    commitments = [fl.UpdateCommitment.of(task, 1, INITIAL_MODEL, u["update_hash"], u["num_examples"])
                   for u in args["updates"]]
    leaves = [fl.update_leaf(u["client"], c) for u, c in zip(args["updates"], commitments)]
    assert committed["update_root"] == fl.update_root(leaves)
    assert committed["participants"] == [(u["client"], u["num_examples"]) for u in args["updates"]]
    assert committed["status"] == ("Pending", None)
    assert committed["verify_until"] == h.ctx.timestamp_ms + GRACE_MS
    (event,) = h.events("RoundCommitted")
    assert event["update_root"] == committed["update_root"] and event["participants"] == len(PARTICIPANTS)
    assert h.task(task)["status"][1]["lease_until"] == h.now + h.pallet.settings.round_lease


def test_a_quorum_rejecting_a_client_slashes_it_and_it_earns_nothing(h: FlHarness) -> None:
    task = h.running()
    h.commit(task, 1)
    poisoner = sorted_clients(PARTICIPANTS)[1]
    stake = h.client(task, poisoner)["stake"]
    before = {k.public_key: h.account(k)["free"] for k in (REQUESTER, V1, V2)}
    free0 = h.account(poisoner)["free"]
    assert h.verdict(V1, task, 1, rejected=[poisoner]) is None
    assert h.verdict(V2, task, 1, rejected=[poisoner]) is None
    amount = perbill_mul(200_000_000, stake)
    (slash,) = h.events("ClientSlashed")
    assert (slash["client"], slash["amount"], slash["burned"]) == (poisoner.public_key, amount, 0)
    assert h.client(task, poisoner)["stake"] == stake - amount
    assert h.client(task, poisoner)["rounds_rejected"] == 1 and h.client(task, poisoner)["paid"] == 0
    assert h.account(poisoner) == {"free": free0, "reserved": stake - amount}
    assert poisoner.public_key not in [e["client"] for e in h.events("ClientPaid")]
    split = split_round(round_reward(300 * UNIT, 3, 1), 100_000_000, 700_000_000, 2)
    assert h.account(REQUESTER)["free"] - before[REQUESTER.public_key] == amount // 2
    assert h.account(V1)["free"] - before[V1.public_key] == split.per_validator + amount // 4
    # a slashed client still withdraws what is left once the task ends
    for number in (2, 3):
        h.commit(task, number)
        h.verdict(V1, task, number)
        h.verdict(V2, task, number)
    h.ok(poisoner, "withdraw_stake", task=task)
    later = h.client(task, poisoner)["paid"]
    assert later > 0 and h.client(task, poisoner)["rounds_paid"] == 2
    assert h.account(poisoner) == {"free": free0 + later + stake - amount, "reserved": 0}


def test_a_client_only_one_decider_rejects_is_paid_at_the_lower_median_factor(h: FlHarness) -> None:
    task = h.running()
    h.commit(task, 1)
    clients = sorted_clients(PARTICIPANTS)
    factors_v1 = [PERBILL, 400_000_000, PERBILL, 0]
    factors_v2 = [PERBILL, 800_000_000, 300_000_000, PERBILL]
    h.verdict(V1, task, 1, rejected=[clients[1]], factors=factors_v1)
    h.verdict(V2, task, 1, factors=factors_v2)
    assert not h.events("ClientSlashed")
    factors = [min(a, b) for a, b in zip(factors_v1, factors_v2)]
    split = split_round(round_reward(300 * UNIT, 3, 1), 100_000_000, 700_000_000, 2)
    pays = client_pay(split.clients, [h.client(task, c)["num_examples"] for c in clients], factors)
    paid = {e["client"]: (e["amount"], e["factor"]) for e in h.events("ClientPaid")}
    assert paid == {c.public_key: (p, f) for c, p, f in zip(clients, pays, factors) if p}
    assert clients[3].public_key not in paid  # factor 0: a free rider earns nothing and is not slashed
    accepted = h.events("RoundAccepted")[0]
    assert accepted["clients_paid"] == 3
    # what zero factors and rounding leave stays with the requester: paid < the round's reward
    assert h.task(task)["paid"] == sum(pays) + split.aggregator + 2 * split.per_validator < split.reward


def test_a_quorum_rejecting_the_round_slashes_the_aggregator_and_reopens_the_task(h: FlHarness) -> None:
    task = h.running()
    h.commit(task, 1)
    h.commit(task, 2)
    stake = stake_of(h, AGG)
    requester0, v3_0 = h.account(REQUESTER)["free"], h.account(V3)["free"]
    assert h.verdict(V1, task, 1) is None  # an accept, then two rejects
    assert h.verdict(V2, task, 1, accept=False, factors=[]) is None
    assert h.verdict(V3, task, 1, accept=False) is None
    amount = perbill_mul(200_000_000, stake)
    assert stake_of(h, AGG) == stake - amount
    assert h.account(REQUESTER)["free"] - requester0 == amount // 2
    assert h.account(V3)["free"] - v3_0 == (amount - amount // 2) // 2
    assert [e["name"] for e in h.events()][-3:] == ["RoundRejected", "AggregatorSlashed", "TaskReopened"]
    assert h.events("TaskReopened")[-1]["from_round"] == 1
    record = h.task(task)
    assert record["status"] == ("Open", None) and record["attempts"] == 1
    assert (record["last_committed"], record["last_accepted"], record["paid"]) == (0, 0, 0)
    assert h.round(task, 1)["status"][0] == "Rejected" and h.round(task, 2)["status"][0] == "Void"
    assert h.pallet.RoundDeadlines.get(h.state) == []
    assert not h.events("ClientPaid") and not h.events("ClientSlashed")
    for v in (V1, V2, V3):
        assert Workers.Workers.get(h.state, v.public_key)["pending_verdicts"] == 0
    assert Workers.Workers.get(h.state, AGG.public_key)["active_claims"] == 0
    # another aggregator recommits round 1 from the accepted (initial) model; the same validators vote again
    h.ok(AGG2, "claim_aggregator", task=task, endpoint=b"127.0.0.1:9093")
    h.commit(task, 1, aggregator=AGG2)
    assert h.verdict(V1, task, 1) is None and h.verdict(V2, task, 1) is None
    assert h.task(task)["last_accepted"] == 1


def test_a_round_with_its_quorum_waits_for_its_predecessor_and_is_applied_with_it(h: FlHarness) -> None:
    task = h.running()
    h.commit(task, 1)
    h.commit(task, 2)
    h.verdict(V1, task, 2)
    h.verdict(V2, task, 2)
    assert h.round(task, 2)["status"][0] == "Pending" and h.task(task)["last_accepted"] == 0
    assert not h.events("ClientPaid")
    refused(h, "RoundNotPending", V3, "submit_round_verdict", task=task, round=2, verdict={
        "accept": False, "measured_metric": 0, "evidence_hash": model_hash("e"), "rejected_clients": [],
        "contributions": []})
    h.verdict(V1, task, 1)
    h.verdict(V2, task, 1)
    assert [e["round"] for e in h.events("RoundAccepted")] == [1, 2]
    assert h.task(task)["last_accepted"] == 2


def test_no_quorum_by_verify_until_voids_the_round_and_later_ones_without_a_slash(h: FlHarness) -> None:
    task = h.running()
    h.commit(task, 1)
    h.commit(task, 2)
    h.verdict(V1, task, 2)
    h.verdict(V2, task, 2)  # its quorum waits for round 1, which times out: voided with it
    h.verdict(V3, task, 1)
    stake = stake_of(h, AGG)
    for _ in range(GRACE_MS // 1000):
        h.ok(AGG, "heartbeat", task=task)  # the lease outlives the window
        h.advance()
    h.advance(2)
    assert [e["round"] for e in h.events("RoundTimedOut")] == [1]
    assert h.round(task, 1)["status"][0] == "Void" and h.round(task, 2)["status"][0] == "Void"
    assert h.task(task)["last_committed"] == 0 and h.status(task) == "Running"
    assert stake_of(h, AGG) == stake and not h.events("ClientPaid")
    assert all(Workers.Workers.get(h.state, v.public_key)["pending_verdicts"] == 0 for v in (V1, V2, V3))
    h.commit(task, 1)  # recommitted: the void record is overwritten and the old verdicts are gone
    assert h.round(task, 1)["status"][0] == "Pending" and h.round(task, 1)["accepts"] == []
    assert h.verdict(V3, task, 1) is None


def test_a_lapsed_lease_slashes_the_aggregator_to_the_requester_and_reopens(h: FlHarness) -> None:
    task = h.running()
    h.commit(task, 1)
    lease_until = h.task(task)["status"][1]["lease_until"]
    stake, requester0 = stake_of(h, AGG), h.account(REQUESTER)["free"]
    h.advance_to(lease_until - 1)
    assert h.status(task) == "Running"
    h.advance()
    amount = perbill_mul(50_000_000, stake)
    assert h.events("LeaseExpired") == [{"name": "LeaseExpired", "task": task, "aggregator": AGG.public_key}]
    assert h.events("AggregatorSlashed")[0]["amount"] == amount
    assert h.account(REQUESTER)["free"] - requester0 == amount
    assert h.status(task) == "Open" and h.round(task, 1)["status"][0] == "Void"
    assert h.events("TaskReopened")[-1]["from_round"] == 1
    assert not h.pallet.AggregatorTasks.contains(h.state, AGG.public_key, task)


def test_heartbeat_and_commit_renew_the_lease(h: FlHarness) -> None:
    task = h.running()
    first = h.task(task)["status"][1]["lease_until"]
    h.advance(3)
    h.ok(AGG, "heartbeat", task=task)
    renewed = h.task(task)["status"][1]["lease_until"]
    assert renewed == h.now + h.pallet.settings.round_lease > first
    assert h.pallet.LeaseExpiries.get(h.state, first) == [] and h.pallet.LeaseExpiries.get(h.state, renewed) == [task]
    h.advance_to(first)
    assert h.status(task) == "Running"


def test_release_voids_pending_rounds_and_reopens_without_a_slash(h: FlHarness) -> None:
    task = h.running()
    h.commit(task, 1)
    h.verdict(V1, task, 1)
    stake = stake_of(h, AGG)
    h.ok(AGG, "release", task=task)
    assert stake_of(h, AGG) == stake
    assert h.events("AggregatorReleased")[0]["aggregator"] == AGG.public_key
    assert h.status(task) == "Open" and h.round(task, 1)["status"][0] == "Void"
    assert Workers.Workers.get(h.state, V1.public_key)["pending_verdicts"] == 0
    refused(h, "NotRunning", AGG, "release", task=task)


# Join deadline, deadline, cancellation, withdrawal ----------------------------------------------
def test_join_deadline_opens_the_task_or_expires_it_when_too_few_joined(h: FlHarness) -> None:
    full, short = h.create(), h.create()
    h.join(full, CLIENTS[:3])
    h.join(short, CLIENTS[:2])
    requester0 = h.account(REQUESTER)["free"]
    h.advance_to(h.task(full)["join_deadline"])
    assert h.status(full) == "Open" and h.events("TaskOpened") == [{"name": "TaskOpened", "task": full, "clients": 3}]
    assert h.status(short) == "Expired"
    assert h.account(REQUESTER)["free"] - requester0 == 300 * UNIT + UNIT
    h.ok(CLIENTS[0], "withdraw_stake", task=short)
    refused(h, "StakeLocked", CLIENTS[0], "withdraw_stake", task=full)


def test_claim_opens_a_joining_task_whose_join_deadline_passed_before_its_hook_ran(h: FlHarness) -> None:
    task = h.create()
    h.join(task, PARTICIPANTS)
    h.ctx.block_number = h.task(task)["join_deadline"]  # instant seal: no block, so no hook, since then
    h.ok(AGG, "claim_aggregator", task=task, endpoint=b"127.0.0.1:1")
    assert h.events("TaskOpened")[0]["clients"] == len(PARTICIPANTS) and h.status(task) == "Running"


def test_the_deadline_expires_a_running_task_refunding_what_was_not_paid(h: FlHarness) -> None:
    task = h.running(deadline_blocks=20)
    h.commit(task, 1)
    h.verdict(V1, task, 1)
    h.verdict(V2, task, 1)
    h.commit(task, 2)
    paid = h.task(task)["paid"]
    requester0 = h.account(REQUESTER)
    h.advance_to(h.task(task)["deadline"])
    assert h.status(task) == "Expired" and h.round(task, 2)["status"][0] == "Void"
    assert h.events("TaskExpired")[0]["refund"] == 300 * UNIT - paid + UNIT
    assert h.account(REQUESTER)["reserved"] == 0
    assert h.account(REQUESTER)["free"] == requester0["free"] + requester0["reserved"]
    assert Workers.Workers.get(h.state, AGG.public_key)["active_claims"] == 0
    for client in PARTICIPANTS:
        h.ok(client, "withdraw_stake", task=task)
        assert h.client(task, client)["withdrawn"]
    refused(h, "AlreadyWithdrawn", PARTICIPANTS[0], "withdraw_stake", task=task)


def test_cancel_refunds_a_joining_task_and_frees_its_clients(h: FlHarness) -> None:
    task = h.create()
    h.join(task, CLIENTS[:2])
    refused(h, "NotRequester", OUTSIDER, "cancel_task", task=task)
    refused(h, "StakeLocked", CLIENTS[0], "withdraw_stake", task=task)
    h.ok(REQUESTER, "cancel_task", task=task)
    assert h.events("TaskCancelled")[0]["refund"] == 301 * UNIT and h.account(REQUESTER)["reserved"] == 0
    refused(h, "NotCancellable", REQUESTER, "cancel_task", task=task)
    h.ok(CLIENTS[0], "withdraw_stake", task=task)
    assert h.account(CLIENTS[0])["reserved"] == 0
    refused(h, "NotClient", OUTSIDER, "withdraw_stake", task=task)


def test_a_running_task_cannot_be_cancelled(h: FlHarness) -> None:
    refused(h, "NotCancellable", REQUESTER, "cancel_task", task=h.running())


def test_leave_unreserves_the_stake_before_the_join_deadline_only(h: FlHarness) -> None:
    task = h.create()
    h.join(task, CLIENTS[:2])
    h.ok(CLIENTS[0], "leave", task=task)
    assert h.account(CLIENTS[0])["reserved"] == 0 and h.task(task)["clients"] == 1
    assert h.client(task, CLIENTS[0]) is None
    refused(h, "NotClient", CLIENTS[0], "leave", task=task)
    h.advance_to(h.task(task)["join_deadline"])
    refused(h, "JoinClosed", CLIENTS[1], "leave", task=task)


def test_holdout_is_revealed_once_round_one_is_committed_and_only_as_committed(h: FlHarness) -> None:
    salt, digest, size, uri = model_hash("salt"), model_hash("holdout"), 360, b"file:///store/holdout"
    task = h.running(holdout=holdout_commitment(salt, digest, size, uri))
    reveal = {"task": task, "salt": salt, "holdout_hash": digest, "holdout_size": size, "holdout_uri": uri}
    refused(h, "HoldoutNotRevealable", REQUESTER, "reveal_holdout", **reveal)
    h.commit(task, 1)
    refused(h, "NotRequester", OUTSIDER, "reveal_holdout", **reveal)
    refused(h, "HoldoutMismatch", REQUESTER, "reveal_holdout", **{**reveal, "holdout_size": size + 1})
    refused(h, "UriTooLong", REQUESTER, "reveal_holdout", **{**reveal, "holdout_uri": b"x" * 257})
    h.ok(REQUESTER, "reveal_holdout", **reveal)
    assert h.pallet.Holdouts.get(h.state, task)["holdout_hash"] == digest
    assert h.events("HoldoutRevealed")[0]["holdout_uri"] == uri
    refused(h, "HoldoutAlreadyRevealed", REQUESTER, "reveal_holdout", **reveal)
    other = h.running(clients=CLIENTS[:3], aggregator=AGG2)
    h.commit(other, 1, CLIENTS[:3], aggregator=AGG2)
    refused(h, "NoHoldoutCommitment", REQUESTER, "reveal_holdout", **{**reveal, "task": other})


# Refusals of each call --------------------------------------------------------------------------
def _create(h: FlHarness, bounty: int = 300 * UNIT, join: int = 5, deadline: int = 500, validators: int = 2,
            **spec: Any) -> dict[str, Any]:
    return {"spec": h.spec(**spec), "bounty": bounty, "join_deadline": h.now + join, "deadline": h.now + deadline,
            "validators_required": validators, "holdout_commitment": None}


CREATE_REFUSALS: list[tuple[str, Callable[[FlHarness], dict[str, Any]]]] = [
    ("RecipeTooLong", lambda h: _create(h, recipe=b"r" * 65)),
    ("UriTooLong", lambda h: _create(h, spec_uri=b"u" * 257)),
    ("MetricNameTooLong", lambda h: _create(h, eval_metric=b"m" * 33)),
    ("BountyTooLow", lambda h: _create(h, bounty=UNIT - 1)),
    ("DeadlineInPast", lambda h: _create(h, deadline=0)),
    ("DeadlineTooFar", lambda h: _create(h, deadline=100_000_001)),
    ("JoinDeadlineInvalid", lambda h: _create(h, join=0)),
    ("JoinDeadlineInvalid", lambda h: _create(h, join=500, deadline=500)),
    ("InvalidRounds", lambda h: _create(h, rounds=0)),
    ("InvalidRounds", lambda h: _create(h, rounds=101)),
    ("InvalidClientCounts", lambda h: _create(h, min_clients_per_round=0)),
    ("InvalidClientCounts", lambda h: _create(h, min_clients_per_round=6, max_clients=5)),
    ("InvalidClientCounts", lambda h: _create(h, max_clients=257)),
    ("InvalidClientCounts", lambda h: _create(h, min_clients_per_round=129, max_clients=200)),
    ("InvalidRule", lambda h: _create(h, rule=("FedTrimmedAvg", {"beta": 500_000_000}))),
    ("InvalidRule", lambda h: _create(h, rule=("Krum", {"num_malicious": 1}), min_clients_per_round=4)),
    ("InvalidRule", lambda h: _create(h, rule=("MultiKrum", {"num_malicious": 0, "num_to_select": 0}))),
    ("InvalidRule", lambda h: _create(h, rule=("MultiKrum", {"num_malicious": 0, "num_to_select": 4}))),
    ("InvalidShare", lambda h: _create(h, client_share=900_000_001)),
    ("InvalidShare", lambda h: _create(h, fraction_per_round=0)),
    ("InvalidShare", lambda h: _create(h, fraction_per_round=PERBILL + 1)),
    ("InvalidValidatorsRequired", lambda h: _create(h, validators=0)),
    ("InvalidValidatorsRequired", lambda h: _create(h, validators=9)),
]


@pytest.mark.parametrize(("error", "args"), CREATE_REFUSALS,
                         ids=[f"{e}-{i}" for i, (e, _) in enumerate(CREATE_REFUSALS)])
def test_create_task_refusals(h: FlHarness, error: str, args: Callable[[FlHarness], dict[str, Any]]) -> None:
    refused(h, error, REQUESTER, "create_task", **args(h))


def test_create_task_accepts_the_robust_rules_at_their_bounds(h: FlHarness) -> None:
    for rule, low in ((("FedTrimmedAvg", {"beta": 499_999_999}), 3), (("Krum", {"num_malicious": 1}), 5),
                      (("MultiKrum", {"num_malicious": 1, "num_to_select": 5}), 5)):
        h.ok(REQUESTER, "create_task", **_create(h, rule=rule, min_clients_per_round=low))


def test_create_task_without_the_funds_changes_nothing(h: FlHarness) -> None:
    before = h.snapshot()
    assert h.dispatch(REQUESTER, "create_task", **_create(h, bounty=20_000 * UNIT)) == "Balances.InsufficientBalance"
    assert h.snapshot() == before


def test_join_refusals(h: FlHarness) -> None:
    task = h.create(max_clients=3, min_client_stake=20 * UNIT)
    join = {"task": task, "data_hash": model_hash("d"), "num_examples": 10, "stake": 20 * UNIT}
    refused(h, "TaskNotFound", CLIENTS[0], "join", **{**join, "task": task + 1})
    refused(h, "RequesterCannotJoin", REQUESTER, "join", **join)
    refused(h, "ClientStakeTooLow", CLIENTS[0], "join", **{**join, "stake": 20 * UNIT - 1})
    refused(h, "ZeroExamples", CLIENTS[0], "join", **{**join, "num_examples": 0})
    h.join(task, CLIENTS[:3], stake=20 * UNIT)
    refused(h, "TooManyClients", CLIENTS[3], "join", **join)
    late = h.create()
    h.advance_to(h.task(late)["join_deadline"])
    refused(h, "JoinClosed", CLIENTS[0], "join", **{**join, "task": late})


def test_the_pallet_minimum_client_stake_applies_when_the_task_asks_less(h: FlHarness) -> None:
    task = h.create(min_client_stake=0)
    refused(h, "ClientStakeTooLow", CLIENTS[0], "join", task=task, data_hash=model_hash("d"), num_examples=1,
            stake=UNIT - 1)


def test_claim_aggregator_refusals(h: FlHarness) -> None:
    task = h.create(requirements={"min_cpus": 1, "min_gpus": 0, "min_memory_mb": 0})
    h.join(task, CLIENTS[:2])
    refused(h, "NotJoinable", AGG, "claim_aggregator", task=task, endpoint=b"h:1")
    h.join(task, CLIENTS[2:3])
    refused(h, "NotJoinable", AGG, "claim_aggregator", task=task, endpoint=b"h:1")  # join deadline not yet
    h.advance_to(h.task(task)["join_deadline"])
    refused(h, "RequesterCannotWork", REQUESTER, "claim_aggregator", task=task, endpoint=b"h:1")
    refused(h, "ClientCannotAggregate", CLIENTS[0], "claim_aggregator", task=task, endpoint=b"h:1")
    refused(h, "NotTrainer", V1, "claim_aggregator", task=task, endpoint=b"h:1")
    refused(h, "NotTrainer", OUTSIDER, "claim_aggregator", task=task, endpoint=b"h:1")
    refused(h, "EndpointTooLong", AGG, "claim_aggregator", task=task, endpoint=b"e" * 129)
    refused(h, "TaskNotFound", AGG, "claim_aggregator", task=99, endpoint=b"h:1")
    needy = h.create(requirements={"min_cpus": 64, "min_gpus": 0, "min_memory_mb": 0})
    h.join(needy, CLIENTS[:3])
    h.advance_to(h.task(needy)["join_deadline"])
    refused(h, "RequirementsNotMet", AGG, "claim_aggregator", task=needy, endpoint=b"h:1")
    h.ok(AGG, "claim_aggregator", task=task, endpoint=b"h:1")
    refused(h, "NotJoinable", AGG2, "claim_aggregator", task=task, endpoint=b"h:2")


def test_claim_refused_at_the_claims_limit_and_below_the_trainer_minimum(h: FlHarness) -> None:
    tasks = [h.create() for _ in range(5)]
    for task in tasks:
        h.join(task, CLIENTS[:3])
    h.advance_to(h.task(tasks[0])["join_deadline"])
    for task in tasks[:4]:  # TaskBounties' MaxClaimsPerWorker counts these claims too
        h.ok(AGG, "claim_aggregator", task=task, endpoint=b"h:1")
    spare = tasks[4]
    refused(h, "TooManyClaims", AGG, "claim_aggregator", task=spare, endpoint=b"h:1")
    info = Workers.Workers.get(h.state, AGG2.public_key)
    Workers.Workers.set(h.state, AGG2.public_key, {**info, "stake": 99 * UNIT})  # as after a slash
    refused(h, "InsufficientStake", AGG2, "claim_aggregator", task=spare, endpoint=b"h:1")


def test_commit_round_refusals(h: FlHarness) -> None:
    task = h.running(rounds=3, deadline_blocks=15)  # inside the lease
    clients = sorted_clients(PARTICIPANTS)
    base = INITIAL_MODEL

    def args(**changes: Any) -> dict[str, Any]:
        return {**h.commit_args(task, 1, clients), **changes}

    refused(h, "BaseModelMismatch", AGG, "commit_round", **h.commit_args(task, 1, clients, base=model_hash("other")))
    refused(h, "TooFewParticipants", AGG, "commit_round", **h.commit_args(task, 1, clients[:2]))
    refused(h, "UriTooLong", AGG, "commit_round", **args(artifact_uri=b"u" * 257))
    updates = h.updates(task, 1, base, clients)
    refused(h, "ParticipantsNotSorted", AGG, "commit_round", **args(updates=updates[::-1]))
    refused(h, "ParticipantsNotSorted", AGG, "commit_round", **args(updates=updates[:2] + updates[1:]))
    outsider = h.updates(task, 1, base, [OUTSIDER], examples=[1])
    mixed = sorted(updates[:3] + outsider, key=lambda u: u["client"])
    refused(h, "UnknownParticipant", AGG, "commit_round", **args(updates=mixed))
    greedy = h.updates(task, 1, base, clients, examples=[10_000] * 4)
    refused(h, "ExamplesExceedCommitment", AGG, "commit_round", **args(updates=greedy))
    for forged in _forgeries(h, task, base, clients, updates):
        refused(h, "BadUpdateSignature", AGG, "commit_round", **args(updates=forged))
    h.commit(task, 1)
    h.commit(task, 2)
    refused(h, "TooManyRoundsAhead", AGG, "commit_round", **h.commit_args(task, 3, clients))
    h.advance_to(h.task(task)["deadline"] - 1)
    h.ctx.block_number += 1  # the deadline block, before its hook has expired the task
    refused(h, "DeadlinePassed", AGG, "heartbeat", task=task)
    h.verdict(V1, task, 1)
    h.verdict(V2, task, 1)
    refused(h, "DeadlinePassed", AGG, "commit_round", **h.commit_args(task, 3, clients))


def _forgeries(h: FlHarness, task: int, base: bytes, clients: list[Any],
               updates: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Update lists that differ from the honest one only in what one signature covers."""
    other_round = h.updates(task, 2, base, clients)
    wrong_base = h.updates(task, 1, model_hash("other base"), clients)
    tampered = [dict(u) for u in updates]
    tampered[0]["update_hash"] = model_hash("swapped update")
    fewer = [dict(u) for u in updates]
    fewer[1]["num_examples"] -= 1  # the signed count differs from the committed one
    stolen = [dict(u) for u in updates]
    stolen[2]["signature"] = updates[3]["signature"]
    wrong_scheme = [dict(u) for u in updates]
    scheme, raw = wrong_scheme[0]["signature"]
    wrong_scheme[0]["signature"] = ("Ed25519" if scheme == "Sr25519" else "Sr25519", raw)
    ecdsa = [dict(u) for u in updates]
    ecdsa[0]["signature"] = ("Ecdsa", bytes(65))
    return [[*updates[:1], other_round[1], *updates[2:]], wrong_base, tampered, fewer, stolen, wrong_scheme, ecdsa]


def test_commit_round_refuses_more_participants_than_the_bound() -> None:
    h = FlHarness(max_clients_per_round=3)
    h.register_workers()
    task = h.running()
    refused(h, "TooManyParticipants", AGG, "commit_round", **h.commit_args(task, 1, PARTICIPANTS))


def test_commit_round_on_a_task_without_an_aggregator_is_not_running(h: FlHarness) -> None:
    task = h.create()
    refused(h, "NotRunning", AGG, "commit_round", **h.commit_args(task, 1, PARTICIPANTS, base=INITIAL_MODEL,
                                                                  updates=[]))
    refused(h, "NotRunning", AGG, "heartbeat", task=task)
    refused(h, "TaskNotFound", AGG, "heartbeat", task=task + 5)


def test_submit_round_verdict_refusals(h: FlHarness) -> None:
    h.register(REQUESTER, "Validator")
    participant = sorted_clients(PARTICIPANTS)[0]
    h.register(participant, "Validator")
    task = h.running()
    refused(h, "RoundNotPending", V1, "submit_round_verdict", **_verdict(task, 1, 4))
    h.commit(task, 1)
    n = len(PARTICIPANTS)
    refused(h, "NotValidator", OUTSIDER, "submit_round_verdict", **_verdict(task, 1, n))
    refused(h, "NotValidator", AGG, "submit_round_verdict", **_verdict(task, 1, n))
    refused(h, "CannotJudgeOwnWork", REQUESTER, "submit_round_verdict", **_verdict(task, 1, n))
    refused(h, "CannotJudgeOwnWork", participant, "submit_round_verdict", **_verdict(task, 1, n))
    refused(h, "VerdictMismatch", V1, "submit_round_verdict", **_verdict(task, 1, n - 1))
    refused(h, "VerdictMismatch", V1, "submit_round_verdict", **_verdict(task, 1, n, factor=PERBILL + 1))
    refused(h, "VerdictMismatch", V1, "submit_round_verdict", **_verdict(task, 1, n, rejected=[OUTSIDER.public_key]))
    twice = [participant.public_key] * 2
    refused(h, "VerdictMismatch", V1, "submit_round_verdict", **_verdict(task, 1, n, rejected=twice))
    backwards = sorted((c.public_key for c in PARTICIPANTS[:2]), reverse=True)
    refused(h, "VerdictMismatch", V1, "submit_round_verdict", **_verdict(task, 1, n, rejected=backwards))
    refused(h, "VerdictMismatch", V1, "submit_round_verdict", **_verdict(task, 1, 1, accept=False))
    h.ok(V1, "submit_round_verdict", **_verdict(task, 1, n))
    refused(h, "AlreadyVoted", V1, "submit_round_verdict", **_verdict(task, 1, n))
    info = Workers.Workers.get(h.state, V2.public_key)
    Workers.Workers.set(h.state, V2.public_key, {**info, "stake": 49 * UNIT})
    refused(h, "InsufficientStake", V2, "submit_round_verdict", **_verdict(task, 1, n))
    h.ok(V3, "submit_round_verdict", **_verdict(task, 1, n))
    refused(h, "RoundNotPending", V4, "submit_round_verdict", **_verdict(task, 1, n))


def _verdict(task: int, number: int, count: int, *, accept: bool = True, factor: int = PERBILL,
             rejected: list[bytes] | None = None) -> dict[str, Any]:
    return {"task": task, "round": number, "verdict": {
        "accept": accept, "measured_metric": 1, "evidence_hash": model_hash("evidence"),
        "rejected_clients": rejected or [], "contributions": [factor] * count}}


def test_calls_refuse_an_unsigned_origin(h: FlHarness) -> None:
    task = h.create()
    instance, call_def = h.runtime.calls[("FederatedTasks", "heartbeat")]
    with pytest.raises(DispatchError, match="BadOrigin"):
        call_def.handler(instance, h.ctx, None, task=task)


# Bounds ------------------------------------------------------------------------------------------
def test_hooks_time_out_at_most_max_expiries_per_block_rounds_per_block() -> None:
    h = FlHarness(max_expiries_per_block=2)
    h.register_workers()
    tasks = [h.create() for _ in range(2)] + [h.create(join_blocks=6)]
    for task in tasks:
        h.join(task, PARTICIPANTS)
    h.advance_to(h.task(tasks[2])["join_deadline"])
    for task, aggregator in zip(tasks, [AGG, AGG2, AGG]):
        h.ok(aggregator, "claim_aggregator", task=task, endpoint=b"h:1")
        h.commit(task, 1, aggregator=aggregator)  # all three due at the same moment
    while not h.events("RoundTimedOut"):
        for task, aggregator in zip(tasks, [AGG, AGG2, AGG]):
            h.ok(aggregator, "heartbeat", task=task)
        h.advance()
    assert len(h.events("RoundTimedOut")) == 2 and len(h.pallet.RoundDeadlines.get(h.state)) == 1
    h.advance()
    assert len(h.events("RoundTimedOut")) == 3 and h.pallet.RoundDeadlines.get(h.state) == []


def test_a_full_expiry_slot_spills_and_then_refuses_with_expiry_queue_full() -> None:
    h = FlHarness(max_expiries_per_block=2, max_expiry_spill=1)
    # each task takes a join-deadline and a deadline entry: slots N and N+1 hold two tasks' entries
    first = h.create(join_blocks=5, deadline_blocks=6)
    second = h.create(join_blocks=5, deadline_blocks=6)
    assert h.pallet.DeadlineExpiries.get(h.state, h.now + 5) == [first, second]
    assert h.pallet.DeadlineExpiries.get(h.state, h.now + 6) == [first, second]
    refused(h, "ExpiryQueueFull", REQUESTER, "create_task", **_create(h, join=5, deadline=6))


def test_a_commit_at_max_clients_per_round_verifies_every_signature_within_the_block_limits() -> None:
    h = FlHarness()
    h.register_workers()
    bound = h.pallet.settings.max_clients_per_round
    many = [Keypair.create_from_uri(f"//FlBound{i}") for i in range(bound)]
    for who in many:
        h.runtime.balances.deposit_creating(h.ctx, who.public_key, 100 * UNIT)
    task = h.running(clients=many, min_clients_per_round=bound, max_clients=bound)
    args = h.commit_args(task, 1, many)
    bad = [dict(u) for u in args["updates"]]
    bad[-1]["update_hash"] = model_hash("the last one lies")  # the last of the bound is checked too
    refused(h, "BadUpdateSignature", AGG, "commit_round", **{**args, "updates": bad})
    h.ok(AGG, "commit_round", **args)
    assert len(h.round(task, 1)["participants"]) == bound
    encoded = h.runtime.call_codec.encode(("FederatedTasks", ("commit_round", args)))
    assert len(encoded) < MAX_NORMAL_LENGTH
    assert h.runtime.call_weight(("FederatedTasks", ("commit_round", args))) < MAX_NORMAL_WEIGHT
