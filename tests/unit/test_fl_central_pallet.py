"""FederatedTasks' central-DP tasks in process: the aggregator noises each round's mean and commits one cumulative
claim for it. Creating needs FedAvg and sound terms; joining reserves the cap of the client's own budget; a round
goes on chain only with commit_central_round and a claim of one release per round within the cap; an accepted
round spends the claim beyond what earlier rounds spent on every participant, a rejected one spends nothing. Every
refusal is named and changes nothing."""
from __future__ import annotations

from typing import Any

import pytest
from fl_pallet_harness import (
    AGGREGATORS,
    PARTICIPANTS,
    REQUESTER,
    UNIT,
    VALIDATORS,
    FlHarness,
    budgeted,
    data_of,
)

from devnet.runtime.pallets.federated import FederatedTasks
from devnet.runtime.pallets.privacy import PrivacyBudgets

V1, V2 = VALIDATORS[:2]
PERBILL = 10**9
DELTA, CAP, BUDGET = 10_000_000_000, 7_000_000, 20_000_000   # 1e-5; epsilon 7 per client per task; 20 owned
CENTRAL = {"clipping": ("ServerFixed", None), "accountant": ("Prv", None), "epsilon_cap": CAP, "delta": DELTA,
           "clipping_norm": 500_000, "noise_multiplier": 1_000_000}


def claim(round_: int, epsilon: int, **overrides: Any) -> dict[str, Any]:
    return {"accountant": ("Prv", None), "noise_multiplier": 1_000_000, "sample_rate": PERBILL, "steps": round_,
            "max_grad_norm": 500_000, "delta": DELTA, "epsilon": epsilon, **overrides}


@pytest.fixture
def h() -> FlHarness:
    return budgeted(BUDGET, 10 * DELTA)


def create_args(h: FlHarness, dp: dict[str, Any] = CENTRAL, rule: Any = ("FedAvg", None)) -> dict[str, Any]:
    return {"spec": h.spec(rule=rule), "dp": dp, "bounty": 300 * UNIT, "join_deadline": h.now + 5,
            "deadline": h.now + 500, "validators_required": 2, "holdout_commitment": None}


def running(h: FlHarness) -> int:
    task = int(FederatedTasks.NextTaskId.get(h.state))
    h.ok(REQUESTER, "create_central_dp_task", **create_args(h))
    for client in PARTICIPANTS:
        h.ok(client, "join", task=task, data_hash=data_of(client), num_examples=100, stake=10 * UNIT)
    h.advance_to(h.task(task)["join_deadline"])
    h.ok(AGGREGATORS[0], "claim_aggregator", task=task, endpoint=b"127.0.0.1:9092")
    return task


def refused(h: FlHarness, error: str, who: Any, call: str, **args: Any) -> None:
    before, events = h.snapshot(), len(h.ctx.events)
    assert h.dispatch(who, call, "FederatedTasks", **args) == error
    assert h.snapshot() == before and len(h.ctx.events) == events


def commit(h: FlHarness, task: int, number: int, epsilon: int, **overrides: Any) -> dict[str, Any]:
    return {**h.commit_args(task, number, PARTICIPANTS), "claim": claim(number, epsilon, **overrides)}


def budget(h: FlHarness, client: Any) -> dict[str, Any]:
    return PrivacyBudgets.Budgets.get(h.state, data_of(client))


def test_a_central_task_stores_its_terms_and_joining_reserves_the_cap(h: FlHarness) -> None:
    task = running(h)
    assert PrivacyBudgets.FederatedCentralDp.get(h.state, task) == CENTRAL
    assert PrivacyBudgets.FederatedPrivacy.get(h.state, task) is None   # no local DP-SGD
    [event] = h.events("CentralDpRequired")
    assert (event["clipping"][0], event["epsilon_cap"], event["delta"]) == ("ServerFixed", CAP, DELTA)
    for client in PARTICIPANTS:
        assert (budget(h, client)["reserved_epsilon"], budget(h, client)["reserved_delta"]) == (CAP, DELTA)


@pytest.mark.parametrize(("dp", "rule", "error"), [
    ({**CENTRAL, "noise_multiplier": 0}, ("FedAvg", None), "PrivacyBudgets.InvalidPrivacyParams"),
    ({**CENTRAL, "clipping_norm": 0}, ("FedAvg", None), "PrivacyBudgets.InvalidPrivacyParams"),
    ({**CENTRAL, "epsilon_cap": 0}, ("FedAvg", None), "PrivacyBudgets.InvalidPrivacyParams"),
    (CENTRAL, ("FedMedian", None), "CentralDpNeedsFedAvg"),
])
def test_bad_terms_or_a_robust_rule_are_refused(h: FlHarness, dp: dict[str, Any], rule: Any, error: str) -> None:
    refused(h, error, REQUESTER, "create_central_dp_task", **create_args(h, dp, rule))


def test_each_kind_of_round_has_its_own_commit(h: FlHarness) -> None:
    task = running(h)
    refused(h, "CentralDpNeedsClaim", AGGREGATORS[0], "commit_round", **h.commit_args(task, 1, PARTICIPANTS))
    plain = h.running(clients=PARTICIPANTS, aggregator=AGGREGATORS[1])
    refused(h, "NotCentralDp", AGGREGATORS[1], "commit_central_round", **commit(h, plain, 1, 1_000_000))


@pytest.mark.parametrize(("overrides", "error"), [
    ({"sample_rate": PERBILL // 2}, "PrivacyBudgets.ClaimMismatch"),      # amplification the release does not get
    ({"steps": 2}, "PrivacyBudgets.ClaimMismatch"),                       # round 1 is one release
    ({"noise_multiplier": 900_000}, "PrivacyBudgets.ClaimMismatch"),      # less noise than the task's
    ({"max_grad_norm": 600_000}, "PrivacyBudgets.ClaimMismatch"),         # a looser clip
    ({"accountant": ("Rdp", None)}, "PrivacyBudgets.ClaimMismatch"),
    ({"epsilon": CAP + 1}, "PrivacyBudgets.EpsilonAboveReservation"),
])
def test_a_claim_that_is_not_one_release_a_round_under_the_terms_is_refused(h: FlHarness, overrides: dict,
                                                                           error: str) -> None:
    task = running(h)
    epsilon = overrides.pop("epsilon", 4_000_000)
    refused(h, error, AGGREGATORS[0], "commit_central_round", **commit(h, task, 1, epsilon, **overrides))


def test_accepted_rounds_spend_the_claim_on_every_participant_and_a_rejected_one_nothing(h: FlHarness) -> None:
    task = running(h)
    for number, cumulative in ((1, 4_400_000), (2, 6_600_000)):
        h.ok(AGGREGATORS[0], "commit_central_round", **commit(h, task, number, cumulative))
        assert PrivacyBudgets.CentralClaims.get(h.state, task, number)["epsilon"] == cumulative
        assert h.verdict(V1, task, number) is None and h.verdict(V2, task, number) is None
        for client in PARTICIPANTS:
            b = budget(h, client)
            assert (b["spent_epsilon"], b["reserved_epsilon"]) == (cumulative, CAP - cumulative)
    h.ok(AGGREGATORS[0], "commit_central_round", **commit(h, task, 3, 6_900_000))
    assert h.verdict(V1, task, 3, accept=False) is None and h.verdict(V2, task, 3, accept=False) is None
    assert h.status(task) != "Completed"
    for client in PARTICIPANTS:
        assert budget(h, client)["spent_epsilon"] == 6_600_000   # the rejected release spent nothing
