"""FederatedTasks.report_refused in process: the aggregator names, once and before any verdict, the joined clients
its guard dropped from a SecAgg round for a malformed signed stage reply; validators' verdicts may then reject
(and so slash) exactly those clients besides the audited ones, never another non-participant
(devnet/runtime/pallets/federated_secagg.py, workers/fl/secagg_evidence.py)."""
from __future__ import annotations

from typing import Any

import pytest
from fl_pallet_harness import AGGREGATORS, CLIENTS, OUTSIDER, PARTICIPANTS, REQUESTER, UNIT, VALIDATORS, FlHarness
from fl_pallet_harness import model_hash as digest
from substrateinterface import Keypair

from devnet.runtime.pallets.federated import FederatedTasks
from devnet.runtime.pallets.task_bounties_types import PERBILL, perbill_mul

V1, V2 = VALIDATORS[:2]
BAD = CLIENTS[3]               # joined, but not among the round's participants: its guard dropped it
NANO = 10**9


def secagg_task(h: FlHarness, *, secagg: bool = True) -> int:
    task = int(FederatedTasks.NextTaskId.get(h.state))
    spec = h.spec(rule=("FedAvg", None))
    common = {"spec": spec, "bounty": 300 * UNIT, "join_deadline": h.now + 5, "deadline": h.now + 500,
              "validators_required": 2, "holdout_commitment": None}
    if secagg:
        h.ok(REQUESTER, "create_secagg_task", secagg={
            "num_shares": PERBILL, "reconstruction_threshold": 600_000_000, "clipping_range": 8 * NANO,
            "quantization_range": 2**22, "modulus_range": 2**32, "max_weight": 1000,
            "update_norm_bound": 4_500_000_000, "audit_rate": 100_000_000}, **common)
    else:
        h.ok(REQUESTER, "create_task", **common)
    h.join(task, [*PARTICIPANTS, BAD])
    h.advance_to(h.task(task)["join_deadline"])
    h.ok(AGGREGATORS[0], "claim_aggregator", task=task, endpoint=b"127.0.0.1:9092")
    h.commit(task, 1)
    return task


def report(h: FlHarness, task: int, clients: list[Keypair], who: Keypair = AGGREGATORS[0]) -> str | None:
    refused = [{"client": c.public_key, "evidence_hash": digest(f"evidence-{c.ss58_address}")} for c in clients]
    return h.dispatch(who, "report_refused", task=task, round=1, refused=refused)


def settle_audit(h: FlHarness, task: int) -> None:
    h.advance()
    h.ok(OUTSIDER, "draw_audit", task=task, round=1)
    for client in PARTICIPANTS:
        if client.public_key in FederatedTasks.Audits.get(h.state, task, 1)["drawn"]:
            h.ok(client, "reveal_update", task=task, round=1, reveal_hash=digest("r"), reveal_uri=b"file:///r")


@pytest.fixture
def h() -> FlHarness:
    harness = FlHarness()
    harness.register_workers()
    return harness


def unchanged(h: FlHarness, error: str, task: int, clients: list[Keypair], **kw: Any) -> None:
    before, events = h.snapshot(), len(h.ctx.events)
    assert report(h, task, clients, **kw) == error
    assert h.snapshot() == before and len(h.ctx.events) == events


def test_the_aggregator_reports_a_joined_non_participant_once(h: FlHarness) -> None:
    task = secagg_task(h)
    assert report(h, task, [BAD]) is None
    assert FederatedTasks.SecAggRefused.get(h.state, task, 1) == [
        {"client": BAD.public_key, "evidence_hash": digest(f"evidence-{BAD.ss58_address}")}]
    (event,) = h.events("RefusalsReported")
    assert event["clients"] == [BAD.public_key] and event["round"] == 1
    unchanged(h, "RefusalsClosed", task, [BAD])


@pytest.mark.parametrize("who, clients, error", [
    (AGGREGATORS[1], [BAD], "NotAggregator"),
    (AGGREGATORS[0], [PARTICIPANTS[0]], "BadRefusal"),      # a participant: its masked update is in the sum
    (AGGREGATORS[0], [OUTSIDER], "BadRefusal"),             # never joined: it has no stake to slash
    (AGGREGATORS[0], [], "BadRefusal"),
])
def test_a_report_naming_anyone_else_is_refused_by_name(h: FlHarness, who: Keypair, clients: list[Keypair],
                                                         error: str) -> None:
    unchanged(h, error, secagg_task(h), clients, who=who)


def test_a_plain_task_has_no_refusals_to_report(h: FlHarness) -> None:
    unchanged(h, "NotSecAgg", secagg_task(h, secagg=False), [BAD])


def test_no_report_once_a_validator_voted(h: FlHarness) -> None:
    task = secagg_task(h)
    settle_audit(h, task)
    assert h.verdict(V1, task, 1) is None
    unchanged(h, "RefusalsClosed", task, [BAD])


def test_an_unreported_non_participant_cannot_be_rejected(h: FlHarness) -> None:
    task = secagg_task(h)
    settle_audit(h, task)
    assert h.verdict(V1, task, 1, rejected=[BAD]) == "VerdictMismatch"


def test_a_reported_client_rejected_by_the_quorum_is_slashed_and_every_participant_paid(h: FlHarness) -> None:
    task = secagg_task(h)
    assert report(h, task, [BAD]) is None
    settle_audit(h, task)
    stake = h.client(task, BAD)["stake"]
    assert h.verdict(V1, task, 1, rejected=[BAD]) is None
    assert h.verdict(V2, task, 1, rejected=[BAD]) is None
    assert h.round(task, 1)["status"][0] == "Accepted"
    (slash,) = h.events("ClientSlashed")
    assert slash["client"] == BAD.public_key and slash["amount"] == perbill_mul(200_000_000, stake)
    assert {e["client"] for e in h.events("ClientPaid")} == {k.public_key for k in PARTICIPANTS}


def test_a_reported_client_only_one_validator_rejects_is_not_slashed(h: FlHarness) -> None:
    task = secagg_task(h)
    assert report(h, task, [BAD]) is None
    settle_audit(h, task)
    assert h.verdict(V1, task, 1, rejected=[BAD]) is None
    assert h.verdict(V2, task, 1) is None       # this validator found the evidence did not prove the fault
    assert h.round(task, 1)["status"][0] == "Accepted" and h.events("ClientSlashed") == []


def test_a_round_committed_again_forgets_its_refusals(h: FlHarness) -> None:
    task = secagg_task(h)
    assert report(h, task, [BAD]) is None
    h.advance_past_grace()                      # no quorum: void, and committed again
    h.commit(task, 1)
    assert FederatedTasks.SecAggRefused.get(h.state, task, 1) is None
    assert report(h, task, [BAD]) is None
