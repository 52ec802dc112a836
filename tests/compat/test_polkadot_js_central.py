"""Polkadot.js (@polkadot/api 16.5.6), unchanged, makes every central-DP call of FederatedTasks on a real devnet.

`tests/js/central_flow.mjs` sets three clients' budgets, creates a central-DP task (after two refused ones), joins
the clients (one without a budget is refused), commits round 1 with commitCentralRound and its claim (after a plain
commitRound and a wrong claim are refused) and accepts it. These tests run it as a real `node` process against the
`devnet` fixture and check its report against the chain, read through runtime_bindings.
"""
from __future__ import annotations

from typing import Any

import pytest
from js_flow import NEEDS_NODE, run_flow

from runtime_bindings import Chain

pytestmark = [pytest.mark.slow, pytest.mark.compat, NEEDS_NODE]


@pytest.fixture(scope="module")
def flow(devnet) -> dict[str, Any]:
    return run_flow("central_flow.mjs", devnet.ws_url, timeout=150)


@pytest.fixture(scope="module")
def chain(devnet) -> Chain:
    with Chain.connect(devnet.ws_url, timeout=10) as connected:
        yield connected


@pytest.mark.parametrize(("label", "error"), [
    ("FedMedian", "federatedTasks.CentralDpNeedsFedAvg"), ("no noise", "privacyBudgets.InvalidPrivacyParams"),
    ("join without a budget", "privacyBudgets.NoBudget"), ("commitRound", "federatedTasks.CentralDpNeedsClaim"),
    ("two releases claimed for round 1", "privacyBudgets.ClaimMismatch"),
])
def test_each_refusal_is_the_named_module_error_and_changes_nothing(flow, label, error) -> None:
    refused = flow["refusals"][label]
    assert refused["error"]["full"] == error and refused["error"]["docs"]
    assert refused["unchanged"] and not any(e.startswith("federatedTasks.") for e in refused["events"])


def test_the_stored_terms_and_claim_are_the_ones_sent(flow, chain) -> None:
    task = flow["create"]["taskId"]
    terms = chain.privacy_budgets.federated_central_dp(task)
    assert (terms.clipping.name, terms.accountant.name, terms.epsilon_cap, terms.clipping_norm,
            terms.noise_multiplier) == ("ServerFixed", "Prv", 7_000_000, 500_000, 1_000_000)
    assert flow["create"]["required"]["data"]["epsilonCap"] == "7000000"
    claim = chain.privacy_budgets.central_claims(task, 1)
    assert (claim.steps, claim.sample_rate, claim.epsilon) == (1, 10**9, 4_400_000)
    assert int(flow["claim"]["epsilon"]) == 4_400_000


def test_joining_reserved_the_cap_and_the_accepted_round_spent_the_claim(flow) -> None:
    assert flow["reserved"] == ["7000000"] * 3
    assert flow["accepted"] is not None and flow["spent"] == ["4400000"] * 3
