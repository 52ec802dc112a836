"""PrivacyBudgets and TaskBounties' private tasks through the real runtime in process: every named refusal
leaves storage and events unchanged, and reservations, spends and releases move exact amounts.

The lifecycle paths that end a private task are each driven: accepted at once, accepted after the challenge
period (finalize_result and the hook), rejected and reopened (the reservation stays, the claim goes), rejected
past the deadline, expired, cancelled and timed out (all released).
"""
from __future__ import annotations

from typing import Any

import pytest
from privacy_harness import (
    DELTA,
    GRACE_MS,
    OUTSIDER,
    OWNERS,
    TRAINERS,
    VALIDATORS,
    DpHarness,
    data_hash,
    dp_claim,
    dp_spec,
    typed_claim,
)
from substrateinterface import Keypair

from devnet.metadata import encode_metadata
from devnet.runtime.pallets.privacy import MAX_DELTA, MAX_EPSILON, PrivacyBudgets
from devnet.runtime.pallets.privacy_types import DP_CLAIM_CODEC, dp_attestation_message
from devnet.runtime.pallets.task_bounties import TaskBounties, attestation_message
from devnet.runtime.runtime import Runtime
from runtime_bindings import privacy as units
from runtime_bindings.generated import privacy_budgets as generated
from runtime_bindings.metadata import MetadataIndex, decode_metadata, docs_of

OWNER, OTHER = OWNERS[0], OWNERS[1]
DATA, DATA2 = data_hash("a"), data_hash("b")
CAP = dp_spec()["epsilon_cap"]
BUDGET_EPS, BUDGET_DELTA = 10_000_000, 10 * DELTA


@pytest.fixture
def h() -> DpHarness:
    harness = DpHarness()
    harness.register_workers()
    harness.set_budget(OWNER, DATA, BUDGET_EPS, BUDGET_DELTA)
    return harness


def refused(h: DpHarness, error: str, who: Keypair, call: str, pallet: str = "TaskBounties", **args: Any) -> None:
    """`call` fails with `error` (Pallet.Name) and changes no storage and deposits no event."""
    before, events = h.snapshot(), len(h.ctx.events)
    assert h.dispatch(who, call, pallet, **args) == error
    assert h.snapshot() == before
    assert len(h.ctx.events) == events


def ledger(h: DpHarness, dataset: bytes = DATA) -> tuple[int, int, int, int]:
    budget = h.budget(dataset)
    assert budget is not None
    return (budget["reserved_epsilon"], budget["reserved_delta"], budget["spent_epsilon"], budget["spent_delta"])


# The metadata ------------------------------------------------------------------------------------
def test_the_pallet_is_index_24_of_spec_version_5_with_documented_errors_and_constants() -> None:
    md = MetadataIndex(decode_metadata(encode_metadata(Runtime())))
    assert md.pallets["PrivacyBudgets"]["index"] == 24 and Runtime.spec_version >= 5  # 6 added SecAgg tasks
    errors = md.pallet_errors("PrivacyBudgets")
    assert {"BudgetExists", "NoBudget", "NotBudgetOwner", "BudgetExceeded", "DeltaExceeded", "DataSetHasBudget",
            "EpsilonAboveReservation", "InvalidPrivacyParams"} <= {e["name"] for e in errors}
    assert all(docs_of(e) for e in errors)
    constants = {c["name"]: c for c in md.constants("PrivacyBudgets")}
    assert {"MaxEpsilon", "MinDelta", "MaxDelta", "EpsilonTolerance"} <= set(constants)
    assert all(docs_of(c) for c in constants.values())
    assert [c["name"] for c in md.calls("TaskBounties")][-2:] == ["create_private_task", "submit_private_result"]
    assert issubclass(generated.BudgetExists, generated.PrivacyBudgetsError)


def test_the_bindings_claim_bytes_are_the_pallets() -> None:
    claim = dp_claim(dp_spec(accountant=("Rdp", None)), steps=2**40, epsilon=2**63)
    assert units.dp_claim_bytes(typed_claim(claim)) == DP_CLAIM_CODEC.encode(claim)
    with pytest.raises(ValueError):
        units.dp_claim_bytes(typed_claim({**claim, "steps": 2**64}))
    assert units.accountant_name(units.accountant_of("rdp")) == "rdp"
    with pytest.raises(ValueError, match="gdp"):
        units.accountant_of("gdp")


# set_budget / lower_budget -----------------------------------------------------------------------
def test_set_budget_makes_the_caller_owner_once(h: DpHarness) -> None:
    budget = h.budget(DATA)
    assert budget is not None and budget["owner"] == OWNER.public_key
    assert (budget["epsilon"], budget["delta"], budget["created_at"]) == (BUDGET_EPS, BUDGET_DELTA, 1)
    assert h.events("BudgetSet") == [{"data_hash": DATA, "owner": OWNER.public_key, "epsilon": BUDGET_EPS,
                                      "delta": BUDGET_DELTA}]
    for who in (OWNER, OTHER):
        refused(h, "PrivacyBudgets.BudgetExists", who, "set_budget", "PrivacyBudgets", data_hash=DATA,
                epsilon=1, delta=1)


@pytest.mark.parametrize(("epsilon", "delta"), [(0, DELTA), (MAX_EPSILON + 1, DELTA), (1_000_000, 0),
                                                (1_000_000, MAX_DELTA + 1)])
def test_set_budget_refuses_bounds(h: DpHarness, epsilon: int, delta: int) -> None:
    refused(h, "PrivacyBudgets.InvalidPrivacyParams", OTHER, "set_budget", "PrivacyBudgets", data_hash=DATA2,
            epsilon=epsilon, delta=delta)


def test_lower_budget_is_the_owners_and_only_lowers(h: DpHarness) -> None:
    lower = {"data_hash": DATA, "epsilon": 5_000_000, "delta": DELTA}
    refused(h, "PrivacyBudgets.NoBudget", OWNER, "lower_budget", "PrivacyBudgets", **{**lower, "data_hash": DATA2})
    refused(h, "PrivacyBudgets.NotBudgetOwner", OTHER, "lower_budget", "PrivacyBudgets", **lower)
    refused(h, "PrivacyBudgets.CannotRaiseBudget", OWNER, "lower_budget", "PrivacyBudgets",
            **{**lower, "epsilon": BUDGET_EPS + 1})
    refused(h, "PrivacyBudgets.CannotRaiseBudget", OWNER, "lower_budget", "PrivacyBudgets",
            **{**lower, "delta": BUDGET_DELTA + 1})
    h.ok(OWNER, "lower_budget", "PrivacyBudgets", **lower)
    budget = h.budget(DATA)
    assert budget is not None and (budget["epsilon"], budget["delta"]) == (5_000_000, DELTA)
    assert h.events("BudgetLowered") == [lower]


def test_lower_budget_never_goes_below_spent_plus_reserved(h: DpHarness) -> None:
    first = h.create_private(OWNER, DATA)
    h.claim_and_submit(first, dp_claim(dp_spec(), epsilon=2_000_000))
    h.verdict(first, True)  # spent 2.0
    h.create_private(OWNER, DATA)  # reserved 3.0
    refused(h, "PrivacyBudgets.BelowCommitted", OWNER, "lower_budget", "PrivacyBudgets", data_hash=DATA,
            epsilon=4_999_999, delta=BUDGET_DELTA)
    refused(h, "PrivacyBudgets.BelowCommitted", OWNER, "lower_budget", "PrivacyBudgets", data_hash=DATA,
            epsilon=5_000_000, delta=2 * DELTA - 1)
    h.ok(OWNER, "lower_budget", "PrivacyBudgets", data_hash=DATA, epsilon=5_000_000, delta=2 * DELTA)
    refused(h, "PrivacyBudgets.BudgetExceeded", OWNER, "create_private_task",
            **h.create_args(DATA, dp_spec(epsilon_cap=1)))


# create_task / create_private_task ---------------------------------------------------------------
def test_a_plain_task_on_a_budgeted_data_set_is_refused(h: DpHarness) -> None:
    args = h.create_args(DATA)
    del args["privacy"]
    refused(h, "PrivacyBudgets.DataSetHasBudget", OWNER, "create_task", **args)
    refused(h, "PrivacyBudgets.DataSetHasBudget", OTHER, "create_task", **args)
    h.ok(OWNER, "create_task", **{**args, "spec": {**args["spec"], "dataset_hash": DATA2}})


def test_create_private_task_reserves_the_cap_and_delta(h: DpHarness) -> None:
    balance = h.reserved_balance(OWNER)
    task = h.create_private(OWNER, DATA)
    assert ledger(h) == (CAP, DELTA, 0, 0)
    assert PrivacyBudgets.BountyPrivacy.get(h.ctx.state, task) == dp_spec()
    assert h.reserved_balance(OWNER) - balance == 10 * 10**12 + h.runtime.task_bounties.task_deposit
    assert h.events("BudgetReserved") == [{"data_hash": DATA, "market": ("Bounty", None), "task": task,
                                           "holder": OWNER.public_key, "epsilon": CAP, "delta": DELTA}]
    assert h.status(task) == "Open"


def test_create_private_task_needs_the_owners_budget_with_room(h: DpHarness) -> None:
    refused(h, "PrivacyBudgets.NoBudget", OWNER, "create_private_task", **h.create_args(DATA2))
    refused(h, "PrivacyBudgets.NotBudgetOwner", OTHER, "create_private_task", **h.create_args(DATA))
    refused(h, "PrivacyBudgets.BudgetExceeded", OWNER, "create_private_task",
            **h.create_args(DATA, dp_spec(epsilon_cap=BUDGET_EPS + 1)))
    refused(h, "PrivacyBudgets.DeltaExceeded", OWNER, "create_private_task",
            **h.create_args(DATA, dp_spec(delta=BUDGET_DELTA + 1)))


@pytest.mark.parametrize("bad", [{"epsilon_cap": 0}, {"epsilon_cap": MAX_EPSILON + 1}, {"delta": 0},
                                 {"delta": MAX_DELTA + 1}, {"max_grad_norm": 0}, {"noise_multiplier": 0}])
def test_create_private_task_refuses_bad_terms(h: DpHarness, bad: dict[str, int]) -> None:
    refused(h, "PrivacyBudgets.InvalidPrivacyParams", OWNER, "create_private_task",
            **h.create_args(DATA, dp_spec(**bad)))


def test_create_private_task_keeps_create_tasks_checks(h: DpHarness) -> None:
    refused(h, "TaskBounties.BountyTooLow", OWNER, "create_private_task", **h.create_args(DATA, bounty=1))
    refused(h, "TaskBounties.DeadlineInPast", OWNER, "create_private_task", **h.create_args(DATA, deadline=1))


def test_basic_composition_across_tasks(h: DpHarness) -> None:
    """Caps add: 3 + 3 + 3 of 10 fit, a fourth does not; 1 does."""
    for _ in range(3):
        h.create_private(OWNER, DATA)
    assert ledger(h) == (3 * CAP, 3 * DELTA, 0, 0)
    refused(h, "PrivacyBudgets.BudgetExceeded", OWNER, "create_private_task", **h.create_args(DATA))
    h.create_private(OWNER, DATA, privacy=dp_spec(epsilon_cap=BUDGET_EPS - 3 * CAP))
    refused(h, "PrivacyBudgets.BudgetExceeded", OWNER, "create_private_task",
            **h.create_args(DATA, dp_spec(epsilon_cap=1)))


# Submissions -------------------------------------------------------------------------------------
def test_plain_and_private_submissions_do_not_mix(h: DpHarness) -> None:
    private = h.create_private(OWNER, DATA)
    args = h.create_args(DATA2)
    del args["privacy"]
    plain = int(TaskBounties.NextTaskId.get(h.ctx.state))
    h.ok(OWNER, "create_task", **args)
    worker = TRAINERS[0]
    for task in (private, plain):
        h.ok(worker, "claim_task", task_id=task)
    attestation = h.attestation(private, worker)
    refused(h, "TaskBounties.PrivateTaskNeedsClaim", worker, "submit_result", task_id=private,
            attestation=attestation, signature=("Sr25519", worker.sign(attestation_message(attestation))))
    refused(h, "TaskBounties.NotPrivateTask", worker, "submit_private_result",
            **h.private_submission(plain, worker, dp_claim(dp_spec())))


@pytest.mark.parametrize(("error", "change"), [
    ("ClaimMismatch", {"accountant": ("Rdp", None)}), ("ClaimMismatch", {"delta": DELTA + 1}),
    ("ClaimMismatch", {"max_grad_norm": 1_000_001}), ("ClaimMismatch", {"noise_multiplier": 1_099_999}),
    ("EpsilonAboveReservation", {"epsilon": CAP + 1}), ("InvalidPrivacyParams", {"sample_rate": 0}),
    ("InvalidPrivacyParams", {"sample_rate": 10**9 + 1}), ("InvalidPrivacyParams", {"max_grad_norm": 0})])
def test_a_claim_outside_the_tasks_terms_is_refused(h: DpHarness, error: str, change: dict[str, Any]) -> None:
    task = h.create_private(OWNER, DATA)
    h.ok(TRAINERS[0], "claim_task", task_id=task)
    refused(h, f"PrivacyBudgets.{error}", TRAINERS[0], "submit_private_result",
            **h.private_submission(task, TRAINERS[0], dp_claim(dp_spec(), **change)))
    assert h.status(task) == "Claimed"


def test_a_claim_within_the_terms_is_accepted_at_its_edges(h: DpHarness) -> None:
    task = h.create_private(OWNER, DATA)
    claim = dp_claim(dp_spec(), epsilon=CAP, max_grad_norm=1, noise_multiplier=10**7, sample_rate=10**9)
    h.claim_and_submit(task, claim)
    assert PrivacyBudgets.BountyClaims.get(h.ctx.state, task) == claim
    assert h.events("DpClaimed") == [{"market": ("Bounty", None), "task": task, "worker": TRAINERS[0].public_key,
                                      "epsilon": CAP}]


def test_the_signature_binds_the_claim(h: DpHarness) -> None:
    task = h.create_private(OWNER, DATA)
    worker = TRAINERS[0]
    h.ok(worker, "claim_task", task_id=task)
    args = h.private_submission(task, worker, dp_claim(dp_spec()))
    encoded = h.codec().encode(h.typed_attestation(args["attestation"]))
    claim = typed_claim(args["claim"])
    signature = units.sign_dp_attestation(encoded, claim, worker)
    assert units.verify_dp_attestation(encoded, claim, signature, worker.public_key)
    lower = typed_claim({**args["claim"], "epsilon": args["claim"]["epsilon"] - 1})
    assert not units.verify_dp_attestation(encoded, lower, signature, worker.public_key)
    refused(h, "TaskBounties.BadAttestationSignature", worker, "submit_private_result",
            **{**args, "claim": {**args["claim"], "epsilon": args["claim"]["epsilon"] - 1}})
    plain_signature = ("Sr25519", worker.sign(attestation_message(args["attestation"])))
    refused(h, "TaskBounties.BadAttestationSignature", worker, "submit_private_result",
            **{**args, "signature": plain_signature})
    own = ("Sr25519", worker.sign(dp_attestation_message(args["attestation"], args["claim"])))
    h.ok(worker, "submit_private_result", **{**args, "signature": own})


# Spend and release -------------------------------------------------------------------------------
def test_acceptance_spends_the_claim_and_releases_the_rest(h: DpHarness) -> None:
    task = h.create_private(OWNER, DATA)
    h.claim_and_submit(task, dp_claim(dp_spec(), epsilon=2_345_678))
    h.verdict(task, True)
    assert h.status(task) == "Accepted"
    assert ledger(h) == (0, 0, 2_345_678, DELTA)
    assert PrivacyBudgets.BountyReservations.get(h.ctx.state, task, OWNER.public_key) is None
    assert h.events("BudgetSpent") == [{
        "data_hash": DATA, "market": ("Bounty", None), "task": task, "holder": OWNER.public_key,
        "epsilon": 2_345_678, "delta": DELTA, "released_epsilon": CAP - 2_345_678,
        "remaining_epsilon": BUDGET_EPS - 2_345_678}]
    assert h.events("BudgetReleased") == []


@pytest.mark.parametrize("path", ["finalize_result", "hook", "challenge_timed_out"])
def test_acceptance_after_the_challenge_period_spends_once(path: str) -> None:
    h = DpHarness(challenge_period_ms=3_000)
    h.register_workers()
    h.set_budget(OWNER, DATA, BUDGET_EPS, BUDGET_DELTA)
    task = h.create_private(OWNER, DATA)
    h.claim_and_submit(task, dp_claim(dp_spec(), epsilon=1_500_000))
    h.verdict(task, True)
    assert h.status(task) == "Approved" and ledger(h) == (CAP, DELTA, 0, 0)
    if path == "finalize_result":
        h.advance(3)  # Now reached challenge_until; the hook has seen only the block before
        assert h.status(task) == "Approved"
        h.ok(OUTSIDER, "finalize_result", task_id=task)
    elif path == "hook":
        h.advance(5)
    else:
        h.ok(VALIDATORS[1], "challenge_result", task_id=task, evidence_hash=bytes(32))
        h.advance(GRACE_MS // 1_000 + 2)  # no quorum of 3: the approval stands and pays
    assert h.status(task) == "Accepted"
    assert ledger(h) == (0, 0, 1_500_000, DELTA)
    assert len(h.events("BudgetSpent")) == 1
    h.advance(5)
    assert ledger(h) == (0, 0, 1_500_000, DELTA)


def test_a_rejection_keeps_the_reservation_and_drops_the_claim(h: DpHarness) -> None:
    task = h.create_private(OWNER, DATA)
    h.claim_and_submit(task, dp_claim(dp_spec(), epsilon=2_900_000))
    h.verdict(task, False)
    assert h.status(task) == "Open"
    assert ledger(h) == (CAP, DELTA, 0, 0)
    assert PrivacyBudgets.BountyClaims.get(h.ctx.state, task) is None
    h.claim_and_submit(task, dp_claim(dp_spec(), epsilon=1_000_000), worker=TRAINERS[1])
    h.verdict(task, True)
    assert ledger(h) == (0, 0, 1_000_000, DELTA)


def test_a_rejection_past_the_deadline_releases_everything(h: DpHarness) -> None:
    task = h.create_private(OWNER, DATA, deadline_blocks=3)
    h.claim_and_submit(task, dp_claim(dp_spec()))
    h.advance(3)
    h.verdict(task, False)
    assert h.status(task) == "Expired"
    assert ledger(h) == (0, 0, 0, 0)
    assert PrivacyBudgets.BountyClaims.get(h.ctx.state, task) is None


def released(h: DpHarness, task: int) -> None:
    assert ledger(h) == (0, 0, 0, 0)
    assert h.events("BudgetReleased") == [{"data_hash": DATA, "market": ("Bounty", None), "task": task,
                                           "holder": OWNER.public_key, "epsilon": CAP, "delta": DELTA}]
    assert h.events("BudgetSpent") == []


def test_expiry_releases_the_whole_reservation(h: DpHarness) -> None:
    task = h.create_private(OWNER, DATA, deadline_blocks=3)
    h.advance(4)
    assert h.status(task) == "Expired"
    released(h, task)


def test_cancellation_releases_the_whole_reservation(h: DpHarness) -> None:
    task = h.create_private(OWNER, DATA)
    refused(h, "TaskBounties.NotRequester", OTHER, "cancel_task", task_id=task)
    h.ok(OWNER, "cancel_task", task_id=task)
    assert h.status(task) == "Cancelled"
    released(h, task)


def test_a_verification_timeout_releases_and_drops_the_claim(h: DpHarness) -> None:
    task = h.create_private(OWNER, DATA)
    h.claim_and_submit(task, dp_claim(dp_spec()))
    h.advance(GRACE_MS // 1_000 + 2)
    assert h.status(task) == "Expired"
    released(h, task)
    assert PrivacyBudgets.BountyClaims.get(h.ctx.state, task) is None


def test_a_plain_task_touches_no_budget(h: DpHarness) -> None:
    args = h.create_args(DATA2)
    del args["privacy"]
    task = int(TaskBounties.NextTaskId.get(h.ctx.state))
    h.ok(OWNER, "create_task", **args)
    h.ok(OWNER, "cancel_task", task_id=task)
    assert ledger(h) == (0, 0, 0, 0) and h.budget(DATA2) is None
    assert h.events("BudgetReleased") == []
