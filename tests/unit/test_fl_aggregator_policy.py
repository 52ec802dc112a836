"""The aggregator's state machine and decisions (workers.fl.aggregator_policy), without Flower or a chain:
every transition, the chain status -> outcome table row by row, the claim pre-checks, the lease guard's
heartbeat/release rule at its edges, and the relaunch bound."""
from __future__ import annotations

import dataclasses

import pytest

from workers.fl.aggregator_policy import (
    FINAL,
    TRANSITIONS,
    ClaimPolicy,
    FederatedRun,
    FlRunState,
    GuardAction,
    InvalidTransition,
    LeaseGuard,
    Outcome,
    TaskView,
    claim_refusal,
    classify,
    may_relaunch,
)

ME, OTHER, REQUESTER = "5Me", "5Other", "5Requester"


def view(**changes: object) -> TaskView:
    base = TaskView(task_id=4, status="Open", requester=REQUESTER, deadline=500, join_deadline=20, clients=5,
                    min_clients=3, rounds=5, last_committed=0, last_accepted=0)
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


# The state machine -------------------------------------------------------------------------------------
def test_a_task_goes_from_discovery_to_done():
    run = FederatedRun(4)
    for state in (FlRunState.CLAIMED, FlRunState.LINK_UP, FlRunState.RUNNING, FlRunState.DONE):
        run.advance(state)
    assert run.final and run.state is FlRunState.DONE and not run.resumed and run.relaunches == 0
    assert run.history == [FlRunState.DISCOVERED, FlRunState.CLAIMED, FlRunState.LINK_UP, FlRunState.RUNNING]


def test_a_resumed_task_starts_claimed_and_never_claims_again():
    run = FederatedRun.from_claim(4, endpoint="127.0.0.1:9092")
    assert run.state is FlRunState.CLAIMED and run.resumed and run.endpoint == "127.0.0.1:9092"
    with pytest.raises(InvalidTransition, match="CLAIMED -> CLAIMED"):
        run.advance(FlRunState.CLAIMED)


def test_a_run_that_ended_goes_back_to_claimed_counts_a_relaunch_and_forgets_its_run_id():
    run = FederatedRun.from_claim(4)
    run.advance(FlRunState.LINK_UP)
    run.advance(FlRunState.RUNNING)
    run.run_id = 77
    run.advance(FlRunState.CLAIMED, "the SuperLink exited")
    assert run.relaunches == 1 and run.run_id is None and run.reason == "the SuperLink exited"
    assert may_relaunch(run, 1) and not may_relaunch(run, 0)


@pytest.mark.parametrize("state", list(FlRunState))
def test_every_live_state_can_be_lost_and_final_states_go_nowhere(state: FlRunState):
    if state in FINAL:
        assert TRANSITIONS[state] == frozenset()
        run = FederatedRun(1, state)
        for to in FlRunState:
            with pytest.raises(InvalidTransition):
                run.advance(to)
    else:
        run = FederatedRun(1, state)
        run.advance(FlRunState.LOST, "lease lapsed")
        assert run.final and run.reason == "lease lapsed"


def test_no_skipping_the_link_or_the_claim():
    with pytest.raises(InvalidTransition, match="DISCOVERED -> RUNNING"):
        FederatedRun(1).advance(FlRunState.RUNNING)
    with pytest.raises(InvalidTransition, match="CLAIMED -> RUNNING"):
        FederatedRun.from_claim(1).advance(FlRunState.RUNNING)
    assert {FlRunState.DONE, FlRunState.LOST} == FINAL


def test_the_record_written_to_the_state_directory_says_what_was_running():
    run = FederatedRun.from_claim(9, endpoint="127.0.0.1:1")
    run.advance(FlRunState.LINK_UP)
    run.advance(FlRunState.RUNNING)
    run.run_id = 5
    assert run.as_record() == {"task_id": 9, "state": "running", "run_id": 5, "endpoint": "127.0.0.1:1",
                               "relaunches": 0, "reason": None}


# What the chain's status means ------------------------------------------------------------------------
@pytest.mark.parametrize(("status", "aggregator", "outcome", "reason"), [
    ("Running", ME, Outcome.KEEP, None),
    ("Completed", None, Outcome.DONE, None),
    ("Running", OTHER, Outcome.LOST, "aggregated by 5Other now"),
    ("Open", None, Outcome.LOST, "reopened"),
    ("Expired", None, Outcome.LOST, "expired"),
    ("Cancelled", None, Outcome.LOST, "cancelled"),
    ("Joining", None, Outcome.LOST, "joining"),
])
def test_classify_maps_each_status(status: str, aggregator: str | None, outcome: Outcome, reason: str | None):
    got, why = classify(view(status=status, aggregator=aggregator), ME)
    assert got is outcome
    if reason is None:
        assert why is None
    else:
        assert why is not None and reason in why


def test_a_task_gone_from_the_chain_is_lost():
    assert classify(None, ME) == (Outcome.LOST, "the task is gone from the chain")


# Whether to claim --------------------------------------------------------------------------------------
POLICY = ClaimPolicy(min_blocks=6)


def test_an_open_task_with_time_left_may_be_claimed():
    assert claim_refusal(view(), me=ME, now=100, is_client=False, policy=POLICY) is None


def test_a_joining_task_is_claimable_once_its_join_deadline_passed_with_enough_clients():
    joining = view(status="Joining")
    assert "may join until block 20" in claim_refusal(joining, me=ME, now=19, is_client=False, policy=POLICY)
    assert claim_refusal(joining, me=ME, now=20, is_client=False, policy=POLICY) is None
    few = view(status="Joining", clients=2)
    assert "2 clients joined, fewer than the 3" in claim_refusal(few, me=ME, now=30, is_client=False,
                                                                 policy=POLICY)


@pytest.mark.parametrize(("changes", "me", "is_client", "now", "expected"), [
    ({"status": "Running", "aggregator": OTHER}, ME, False, 100, "the task is Running"),
    ({"status": "Completed"}, ME, False, 100, "the task is Completed"),
    ({}, REQUESTER, False, 100, "posted the task"),
    ({}, ME, True, 100, "joined the task as a client"),
    ({}, ME, False, 495, "5 blocks left before the deadline, fewer than 6"),
])
def test_claim_refusals(changes: dict[str, object], me: str, is_client: bool, now: int, expected: str):
    reason = claim_refusal(view(**changes), me=me, now=now, is_client=is_client, policy=POLICY)
    assert reason is not None and expected in reason


def test_the_deadline_edge_is_exact():
    assert claim_refusal(view(), me=ME, now=494, is_client=False, policy=POLICY) is None


# The lease guard ---------------------------------------------------------------------------------------
def test_the_guard_heartbeats_once_a_third_of_the_lease_ran():
    guard = LeaseGuard(round_lease=20, deadline_margin=3)
    # claimed at block 100: lease until 120; a third of 20 (6 blocks) later the lease is renewed
    assert guard.action(now=105, lease_until=120, deadline=500) is GuardAction.NONE
    assert guard.action(now=106, lease_until=120, deadline=500) is GuardAction.HEARTBEAT
    assert guard.action(now=119, lease_until=120, deadline=500) is GuardAction.HEARTBEAT


def test_the_guard_releases_near_the_deadline_before_anything_else():
    guard = LeaseGuard(round_lease=20, deadline_margin=3)
    assert guard.action(now=496, lease_until=516, deadline=500) is GuardAction.NONE
    assert guard.action(now=497, lease_until=510, deadline=500) is GuardAction.RELEASE
    assert guard.action(now=497, lease_until=498, deadline=500) is GuardAction.RELEASE


def test_a_tiny_lease_still_heartbeats_every_block():
    guard = LeaseGuard(round_lease=2, deadline_margin=0)
    assert guard.action(now=10, lease_until=12, deadline=100) is GuardAction.NONE
    assert guard.action(now=11, lease_until=12, deadline=100) is GuardAction.HEARTBEAT
