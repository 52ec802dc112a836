"""Polkadot.js (@polkadot/api 16.5.6), unchanged, drives the PrivacyBudgets pallet on a real devnet.

`tests/js/privacy_flow.mjs` reads the pallet's constants, sets a budget with api.tx.privacyBudgets.setBudget
and reads it with api.query.privacyBudgets.budgets, posts a private task (taskBounties.createPrivateTask) that
reserves from it, lowers it, cancels the task (which releases the reservation) and tries five wrong calls on
the way, a second setBudget among them. These tests run it as a real `node` process against the `devnet`
fixture and check its report against the chain read back through runtime_bindings: the module errors and their
doc lines as Polkadot.js decodes them, that a refused call changed nothing, and the field names of the events.
"""
from __future__ import annotations

from typing import Any

import pytest
from js_flow import NEEDS_NODE, run_flow
from substrateinterface import Keypair

from runtime_bindings import Chain

DATA = "0x" + "d7" * 32
ALICE = Keypair.create_from_uri("//Alice").ss58_address
EPSILON, DELTA, CAP, TASK_DELTA = 8_000_000, 10**11, 3_000_000, 10**10  # what the script sets and reserves

# slow: runs Polkadot.js in Node.js against a devnet process
pytestmark = [pytest.mark.slow, pytest.mark.compat, NEEDS_NODE]


@pytest.fixture(scope="module")
def flow(devnet) -> dict[str, Any]:
    """The script's report, from one run against a fresh devnet (its stderr must carry no complaint)."""
    return run_flow("privacy_flow.mjs", devnet.ws_url, timeout=120)


@pytest.fixture(scope="module")
def chain(devnet) -> Chain:
    with Chain.connect(devnet.ws_url, timeout=10) as connected:
        yield connected


def test_constants_are_read_as_the_bindings_read_them(flow, chain) -> None:
    assert flow["consts"] == {"maxEpsilon": str(chain.privacy_budgets.max_epsilon),
                              "minDelta": str(chain.privacy_budgets.min_delta),
                              "maxDelta": str(chain.privacy_budgets.max_delta),
                              "epsilonTolerance": str(chain.privacy_budgets.epsilon_tolerance)}


def test_set_budget_and_the_stored_budget(flow) -> None:
    assert flow["set"]["data"] == {"dataHash": DATA, "owner": ALICE, "epsilon": str(EPSILON), "delta": str(DELTA)}
    assert flow["budget"] == {"owner": ALICE, "epsilon": EPSILON, "delta": DELTA, "reservedEpsilon": 0,
                              "reservedDelta": 0, "spentEpsilon": 0, "spentDelta": 0,
                              "createdAt": flow["budget"]["createdAt"]}


@pytest.mark.parametrize(("label", "error"), [
    ("set twice", "BudgetExists"),
    ("plain task on a budgeted hash", "DataSetHasBudget"),
    ("lower by another", "NotBudgetOwner"),
    ("raise", "CannotRaiseBudget"),
    ("below reserved", "BelowCommitted"),
])
def test_wrong_calls_give_the_named_module_error_and_change_nothing(flow, label: str, error: str) -> None:
    refused = flow["refusals"][label]
    assert refused["error"]["kind"] == "Module" and refused["error"]["full"] == f"privacyBudgets.{error}"
    assert refused["error"]["docs"]  # the error's doc line from the metadata
    assert refused["events"][-1] == "system.ExtrinsicFailed"
    assert not any(name.startswith(("privacyBudgets.", "taskBounties.")) for name in refused["events"])
    assert refused["unchanged"]   # the budget is as it was


def test_a_private_task_reserves_and_its_cancellation_releases(flow, chain) -> None:
    reserved = flow["reserved"]
    task = reserved["taskId"]
    holder = {"dataHash": DATA, "market": "Bounty", "task": str(task), "holder": ALICE, "epsilon": str(CAP),
              "delta": str(TASK_DELTA)}
    assert reserved["event"]["data"] == holder
    assert (reserved["budget"]["reservedEpsilon"], reserved["budget"]["reservedDelta"]) == (CAP, TASK_DELTA)
    assert reserved["reservation"] == {"dataHash": DATA, "epsilon": CAP, "delta": TASK_DELTA}
    assert reserved["privacy"]["accountant"] == "Prv" and reserved["privacy"]["epsilonCap"] == CAP
    assert flow["lowered"]["data"] == {"dataHash": DATA, "epsilon": "5000000", "delta": str(DELTA)}
    assert flow["released"]["event"]["data"] == holder
    # read back through runtime_bindings: the lowered budget, nothing reserved, nothing spent
    budget = chain.privacy_budgets.budgets(DATA)
    assert (budget.owner, budget.epsilon, budget.delta) == (ALICE, 5_000_000, DELTA)
    assert (budget.reserved_epsilon, budget.reserved_delta, budget.spent_epsilon) == (0, 0, 0)
    assert chain.privacy_budgets.bounty_reservations(task, ALICE) is None
    assert chain.privacy_budgets.bounty_privacy(task).epsilon_cap == CAP


def test_events_with_field_names(flow) -> None:
    seen = flow["eventsSeen"]
    reservation = ["dataHash", "market", "task", "holder", "epsilon", "delta"]
    assert seen["privacyBudgets.BudgetSet"] == ["dataHash", "owner", "epsilon", "delta"]
    assert seen["privacyBudgets.BudgetLowered"] == ["dataHash", "epsilon", "delta"]
    assert seen["privacyBudgets.BudgetReserved"] == seen["privacyBudgets.BudgetReleased"] == reservation
