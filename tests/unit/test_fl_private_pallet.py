"""FederatedTasks' private tasks in process: every client's local DP-SGD paid from its own budget. Joining
reserves the task's cap of the client's budget, each accepted round spends the client's cumulative claim beyond
what earlier rounds spent, leaving or taking the stake back returns the rest; claims that do not describe the
task's terms, or that the signature does not cover, are refused by name and change nothing."""
from __future__ import annotations

from typing import Any

import pytest
from fl_pallet_harness import (
    AGGREGATORS,
    OUTSIDER,
    PARTICIPANTS,
    REQUESTER,
    UNIT,
    VALIDATORS,
    FlHarness,
    budgeted,
    data_of,
    model_hash,
    sorted_clients,
)
from substrateinterface import Keypair

from devnet.runtime.pallets.federated import FederatedTasks
from devnet.runtime.pallets.federated_types import private_update_leaf
from devnet.runtime.pallets.privacy import PrivacyBudgets
from runtime_bindings import fl_private
from runtime_bindings.fl import UpdateCommitment
from runtime_bindings.fl_private import sign_private_update
from runtime_bindings.generated import types as t

V1, V2 = VALIDATORS[:2]
DELTA, CAP, BUDGET = 10_000_000_000, 3_000_000, 8_000_000   # 1e-5; epsilon 3 per client per task; 8 owned
DP = {"accountant": ("Prv", None), "epsilon_cap": CAP, "delta": DELTA, "max_grad_norm": 1_000_000,
      "noise_multiplier": 1_100_000, "noise_key_hash": model_hash("noise key")}


def claim(epsilon: int, **overrides: Any) -> dict[str, Any]:
    out = {"accountant": ("Prv", None), "noise_multiplier": 1_100_000, "sample_rate": 50_000_000, "steps": 20,
           "max_grad_norm": 1_000_000, "delta": DELTA, "epsilon": epsilon}
    out.update(overrides)
    return out


def typed_claim(value: dict[str, Any]) -> t.DpClaim:
    return t.DpClaim(t.Accountant.from_value(value["accountant"][0]), value["noise_multiplier"],
                     value["sample_rate"], value["steps"], value["max_grad_norm"], value["delta"], value["epsilon"])


@pytest.fixture
def h() -> FlHarness:
    return budgeted(BUDGET, 10 * DELTA)


def create(h: FlHarness, dp: dict[str, Any] = DP) -> int:
    task = int(FederatedTasks.NextTaskId.get(h.state))
    h.ok(REQUESTER, "create_private_task", spec=h.spec(rule=("FedAvg", None)), dp=dp, secagg=None,
         bounty=300 * UNIT, join_deadline=h.now + 5, deadline=h.now + 500, validators_required=2,
         holdout_commitment=None)
    return task


def join(h: FlHarness, task: int, client: Keypair) -> str | None:
    return h.dispatch(client, "join", task=task, data_hash=data_of(client), num_examples=100, stake=10 * UNIT)


def running(h: FlHarness) -> int:
    task = create(h)
    for client in PARTICIPANTS:
        assert join(h, task, client) is None
    h.advance_to(h.task(task)["join_deadline"])
    h.ok(AGGREGATORS[0], "claim_aggregator", task=task, endpoint=b"127.0.0.1:9092")
    return task


def private_updates(h: FlHarness, task: int, number: int, epsilon: int, *, signed_claim: dict | None = None,
                    **claim_overrides: Any) -> list[dict[str, Any]]:
    base = h.expected_base(task, number)
    out = []
    for client in sorted_clients(PARTICIPANTS):
        update_hash = model_hash(f"update-{task}-{number}-{client.ss58_address}")
        sent = claim(epsilon, **claim_overrides)
        # signed with runtime_bindings' own encoder: the pallet's verification checks the two agree
        signed = sign_private_update(client, UpdateCommitment.of(task, number, base, update_hash, 100),
                                     typed_claim(signed_claim or sent))
        out.append({"client": client.public_key, "update_hash": update_hash, "num_examples": 100, "claim": sent,
                    "signature": (signed.scheme, signed.signature)})
    return out


def commit_args(h: FlHarness, task: int, number: int, updates: list[dict[str, Any]]) -> dict[str, Any]:
    return {**h.commit_args(task, number, PARTICIPANTS), "updates": updates}


def budget(h: FlHarness, client: Keypair) -> dict[str, Any]:
    return PrivacyBudgets.Budgets.get(h.state, data_of(client))


def refused(h: FlHarness, error: str, who: Any, call: str, pallet: str = "FederatedTasks", **args: Any) -> None:
    before, events = h.snapshot(), len(h.ctx.events)
    assert h.dispatch(who, call, pallet, **args) == error
    assert h.snapshot() == before and len(h.ctx.events) == events


def test_a_private_task_stores_its_terms_and_bad_terms_are_refused(h: FlHarness) -> None:
    task = create(h)
    assert PrivacyBudgets.FederatedPrivacy.get(h.state, task) == DP
    assert [(e["epsilon_cap"], e["delta"]) for e in h.events("DpRequired")] == [(CAP, DELTA)]
    refused(h, "PrivacyBudgets.InvalidPrivacyParams", REQUESTER, "create_private_task",
            spec=h.spec(rule=("FedAvg", None)), dp={**DP, "noise_multiplier": 0}, secagg=None, bounty=300 * UNIT,
            join_deadline=h.now + 5, deadline=h.now + 500, validators_required=2, holdout_commitment=None)


def test_joining_reserves_the_cap_of_the_clients_own_budget(h: FlHarness) -> None:
    task = create(h)
    client = PARTICIPANTS[0]
    assert join(h, task, client) is None
    assert (budget(h, client)["reserved_epsilon"], budget(h, client)["reserved_delta"]) == (CAP, DELTA)
    stranger = OUTSIDER
    refused(h, "PrivacyBudgets.NoBudget", stranger, "join", task=task, data_hash=model_hash("no budget"),
            num_examples=100, stake=10 * UNIT)
    refused(h, "PrivacyBudgets.NotBudgetOwner", stranger, "join", task=task, data_hash=data_of(PARTICIPANTS[1]),
            num_examples=100, stake=10 * UNIT)
    poor = PARTICIPANTS[1]
    h.ok(poor, "lower_budget", "PrivacyBudgets", data_hash=data_of(poor), epsilon=CAP - 1, delta=10 * DELTA)
    refused(h, "PrivacyBudgets.BudgetExceeded", poor, "join", task=task, data_hash=data_of(poor), num_examples=100,
            stake=10 * UNIT)


def test_leaving_gives_the_whole_reservation_back(h: FlHarness) -> None:
    task = create(h)
    client = PARTICIPANTS[0]
    assert join(h, task, client) is None
    h.ok(client, "leave", task=task)
    assert (budget(h, client)["reserved_epsilon"], budget(h, client)["spent_epsilon"]) == (0, 0)
    assert PrivacyBudgets.FederatedReservations.get(h.state, task, client.public_key) is None


def test_each_kind_of_round_has_its_own_commit(h: FlHarness) -> None:
    task = running(h)
    refused(h, "PrivateNeedsClaims", AGGREGATORS[0], "commit_round", **h.commit_args(task, 1, PARTICIPANTS))
    plain = h.running(clients=PARTICIPANTS, aggregator=AGGREGATORS[1])
    refused(h, "NotPrivate", AGGREGATORS[1], "commit_private_round",
            **commit_args(h, plain, 1, private_updates(h, task, 1, 1_000_000)))


@pytest.mark.parametrize(("overrides", "error"), [
    ({"noise_multiplier": 1_000_000}, "PrivacyBudgets.ClaimMismatch"),     # less noise than the task's
    ({"max_grad_norm": 2_000_000}, "PrivacyBudgets.ClaimMismatch"),        # a looser clip
    ({"delta": DELTA * 2}, "PrivacyBudgets.ClaimMismatch"),
    ({"epsilon": CAP + 1}, "PrivacyBudgets.EpsilonAboveReservation"),
])
def test_a_claim_that_does_not_describe_the_tasks_terms_is_refused(h: FlHarness, overrides: dict, error: str) -> None:
    task = running(h)
    epsilon = overrides.pop("epsilon", 1_000_000)
    refused(h, error, AGGREGATORS[0], "commit_private_round",
            **commit_args(h, task, 1, private_updates(h, task, 1, epsilon, **overrides)))


def test_a_claim_the_signature_does_not_cover_is_a_bad_signature(h: FlHarness) -> None:
    task = running(h)
    updates = private_updates(h, task, 1, 2_000_000, signed_claim=claim(1_000_000))  # signed 1.0, sent 2.0
    refused(h, "BadUpdateSignature", AGGREGATORS[0], "commit_private_round", **commit_args(h, task, 1, updates))


def test_accepted_rounds_spend_the_cumulative_claims_and_the_stake_back_returns_the_rest(h: FlHarness) -> None:
    task = running(h)
    spent = {}
    for number, cumulative in ((1, 1_200_000), (2, 1_900_000), (3, 2_500_000)):
        h.ok(AGGREGATORS[0], "commit_private_round",
             **commit_args(h, task, number, private_updates(h, task, number, cumulative)))
        assert PrivacyBudgets.FederatedClaims.get(h.state, task, number, PARTICIPANTS[0].public_key)["epsilon"] \
            == cumulative
        assert h.verdict(V1, task, number) is None and h.verdict(V2, task, number) is None
        for client in PARTICIPANTS:
            b = budget(h, client)
            spent[client.ss58_address] = b["spent_epsilon"]
            assert b["spent_epsilon"] == cumulative and b["reserved_epsilon"] == CAP - cumulative
            assert b["spent_epsilon"] + b["reserved_epsilon"] <= b["epsilon"]
    assert h.status(task) == "Completed"
    client = PARTICIPANTS[0]
    h.ok(client, "withdraw_stake", task=task)
    b = budget(h, client)
    assert (b["spent_epsilon"], b["reserved_epsilon"], b["spent_delta"], b["reserved_delta"]) == \
        (2_500_000, 0, DELTA, 0)
    assert PrivacyBudgets.FederatedReservations.get(h.state, task, client.public_key) is None
    released = [e for e in h.events("BudgetReleased", "PrivacyBudgets") if e["holder"] == client.public_key]
    assert [e["epsilon"] for e in released] == [CAP - 2_500_000]


def test_a_rejected_round_spends_nothing(h: FlHarness) -> None:
    task = running(h)
    h.ok(AGGREGATORS[0], "commit_private_round", **commit_args(h, task, 1, private_updates(h, task, 1, 1_000_000)))
    assert h.verdict(V1, task, 1, accept=False, factors=[]) is None
    assert h.verdict(V2, task, 1, accept=False, factors=[]) is None
    assert all(budget(h, c)["spent_epsilon"] == 0 and budget(h, c)["reserved_epsilon"] == CAP for c in PARTICIPANTS)


def test_the_bindings_leaf_is_the_pallets_and_their_entry_encodes_as_the_call_takes_it(h: FlHarness) -> None:
    task = running(h)
    client = PARTICIPANTS[0]
    value = claim(1_500_000)
    commitment = {"task_id": task, "round": 1, "base_model_hash": h.expected_base(task, 1),
                  "update_hash": model_hash("u"), "num_examples": 100, "claim": value}
    ours = fl_private.private_update_leaf(client.ss58_address, UpdateCommitment.of(
        task, 1, commitment["base_model_hash"], commitment["update_hash"], 100), typed_claim(value))
    assert ours == private_update_leaf(client.public_key, commitment)
    entry = fl_private.signed_private_update(client.ss58_address, model_hash("u"), 100, typed_claim(value),
                                             "Sr25519", bytes(64))
    assert entry["claim"] == {**value, "accountant": "Prv"} and entry["num_examples"] == 100
