"""The challenge period of TaskBounties end to end, on a devnet started with `--challenge-period-ms 3000` and
`--verification-grace-ms 8000` (a challenge round that times out is waited for; 8 s leaves a loaded machine
time to vote in the rounds that must not time out).

A quorum of accepts makes a result Approved; it pays out when the period ends (finalize_result, or the
on_initialize of a later block), unless a validator challenges it with a deposit: a larger quorum
(2 * validators_required + 1) then upholds the challenge (worker slashed, task reopened), dismisses it
(deposit slashed to the accepters, result paid) or lets it time out (deposit back, paid as approved).

Roles: Alice requests, Bob and Charlie train, Dave, Eve, Ferdie and a fourth validator judge, a poor
validator cannot afford the deposit. Balances are checked to the unit, fees included. The period is in
milliseconds of Timestamp.Now, so the tests compare block timestamps, never their own clock, when they
assert that something happened inside (or after) a period or a challenge round's `settle_until`.
"""
from __future__ import annotations

import time
from collections import Counter
from typing import Any, Iterator

import pytest
from substrateinterface import Keypair
from test_pallets_lifecycle import (
    ALICE,
    BOB,
    CHARLIE,
    DAVE,
    EVE,
    FERDIE,
    UNIT,
    Chain,
    caps,
    events,
    fee,
    register_roles,
    spec,
    submit_result,
    verdict,
)

from orchestrator.domain import TaskStatus
from orchestrator.index import Index, task_view_from_chain
from orchestrator.indexer import Indexer
from orchestrator.serde import status_from_proto, status_to_proto
from paratrain.local import DevnetProcess
from paratrain_api.v1 import common_pb2
from runtime_bindings import Chain as TypedChain
from runtime_bindings.generated.task_bounties import TaskBountiesError

pytestmark = pytest.mark.slow  # waits out challenge periods and verification windows on a devnet

PERIOD_MS = 3_000
GRACE_MS = 8_000  # VerificationGrace: the first round's and a challenge round's window
BOUNTY, DEPOSIT = 10 * UNIT, 10 * UNIT  # every task's bounty; ChallengeDeposit
EVIDENCE = "0x" + "e7" * 32
V4 = Keypair.create_from_uri("//ChallengeValidator")
POOR = Keypair.create_from_uri("//ChallengePoorValidator")


@pytest.fixture(scope="module")
def devnet() -> Iterator[DevnetProcess]:
    with DevnetProcess("--challenge-period-ms", str(PERIOD_MS), "--verification-grace-ms", str(GRACE_MS)) as node:
        yield node


@pytest.fixture(scope="module")
def chain(devnet: DevnetProcess) -> Iterator[Chain]:
    c = Chain(devnet.ws_url)
    register_roles(c)
    c.ok(ALICE, "Balances", "transfer_keep_alive", {"dest": V4.ss58_address, "value": 1_000 * UNIT})
    c.ok(V4, "Workers", "register", {"role": "Validator", "stake": 100 * UNIT, "capabilities": caps(gpus=0)})
    # The least stake and 9 PARA free: less than the 10 PARA deposit.
    c.ok(ALICE, "Balances", "transfer_keep_alive", {"dest": POOR.ss58_address, "value": 59 * UNIT})
    c.ok(POOR, "Workers", "register", {"role": "Validator", "stake": 50 * UNIT, "capabilities": caps(gpus=0)})
    yield c
    c.close()


@pytest.fixture(scope="module")
def typed(devnet: DevnetProcess) -> Iterator[TypedChain]:
    with TypedChain.connect(devnet.ws_url, timeout=20) as c:
        yield c


# Helpers --------------------------------------------------------------------------------------
class Ledger:
    """Submits through `Chain` and books each signer's fees, failed calls included, for exact balances."""

    def __init__(self, c: Chain) -> None:
        self.c, self.fees = c, Counter()

    def submit(self, signer: Keypair, pallet: str, call: str, params: dict[str, Any] | None = None) -> Any:
        receipt = self.c.submit(signer, pallet, call, params)
        self.fees[signer.ss58_address] += fee(receipt)
        return receipt

    def ok(self, signer: Keypair, pallet: str, call: str, params: dict[str, Any] | None = None) -> Any:
        receipt = self.submit(signer, pallet, call, params)
        assert receipt.is_success, receipt.error_message
        return receipt

    def fails(self, error: str, signer: Keypair, pallet: str, call: str,
              params: dict[str, Any] | None = None) -> Any:
        receipt = self.submit(signer, pallet, call, params)
        assert not receipt.is_success, f"{pallet}.{call} succeeded, expected {error}"
        assert receipt.error_message["name"] == error, receipt.error_message
        return receipt

    def fee(self, who: Keypair) -> int:
        return self.fees[who.ss58_address]


def block_time(c: Chain, block_hash: str) -> int:
    """Timestamp.Now of a block: the clock the pallet compares challenge_until with."""
    return c.client.query("Timestamp", "Now", block_hash=block_hash).value


def wait_past(moment_ms: int) -> None:
    """Sleep until the wall clock (devnet's source of block timestamps) is past `moment_ms`."""
    time.sleep(max(moment_ms / 1000 - time.time(), 0) + 0.05)


def result(c: Chain, task_id: int) -> dict[str, Any]:
    return c.client.query("TaskBounties", "Results", [task_id]).value


def queued(c: Chain, task_id: int) -> list[int]:
    """The challenge_until moments PendingPayouts holds for `task_id`."""
    queue = c.client.query("TaskBounties", "PendingPayouts").value
    return [until for until, queued_id in queue if queued_id == task_id]


def in_verification(c: Chain, task_id: int) -> list[int]:
    """The verify_until / settle_until moments VerificationDeadlines holds for `task_id`."""
    queue = c.client.query("TaskBounties", "VerificationDeadlines").value
    return [until for until, queued_id in queue if queued_id == task_id]


def block_events(c: Chain, block_hash: str, name: str) -> list[dict[str, Any]]:
    """TaskBounties events `name` of a block, with their phase (hooks deposit theirs in Initialization)."""
    return [{**r.value["attributes"], "phase": r.value["phase"]} for r in c.client.get_events(block_hash)
            if r.value["module_id"] == "TaskBounties" and r.value["event_id"] == name]


def create(book: Ledger, validators_required: int) -> int:
    receipt = book.ok(ALICE, "TaskBounties", "create_task", {
        "spec": spec(), "bounty": BOUNTY, "min_stake": 0, "deadline": book.c.block_number() + 200,
        "validators_required": validators_required, "holdout_commitment": None})
    return events(receipt, "TaskBounties", "TaskCreated")[0]["task_id"]


def approve(book: Ledger, worker: Keypair, approvers: tuple[Keypair, ...]) -> tuple[int, bytes, int]:
    """Alice posts a task, `worker` submits, `approvers` (the whole quorum) accept: (task id, model hash, until)."""
    task_id = create(book, validators_required=len(approvers))
    book.ok(worker, "TaskBounties", "claim_task", {"task_id": task_id})
    receipt, att = submit_result(book.c, task_id, worker)
    assert receipt.is_success, receipt.error_message
    book.fees[worker.ss58_address] += fee(receipt)
    verify_until = events(receipt, "TaskBounties", "ResultSubmitted")[0]["verify_until"]
    assert verify_until == block_time(book.c, receipt.block_hash) + GRACE_MS
    assert in_verification(book.c, task_id) == [verify_until]
    for validator in approvers:
        r = book.ok(validator, "TaskBounties", "submit_verdict", {"task_id": task_id, "verdict": verdict(True)})
    [approved] = events(r, "TaskBounties", "ResultApproved")
    assert not events(r, "TaskBounties", "TaskAccepted") and approved["worker"] == worker.ss58_address
    assert approved["challenge_until"] == block_time(book.c, r.block_hash) + PERIOD_MS
    assert in_verification(book.c, task_id) == []  # the window closed with the quorum
    return task_id, att["model_hash"], approved["challenge_until"]


def challenge(book: Ledger, task_id: int, challenger: Keypair = EVE) -> Any:
    return book.submit(challenger, "TaskBounties", "challenge_result", {"task_id": task_id, "evidence_hash": EVIDENCE})


def share_of(c: Chain) -> int:
    return BOUNTY * c.constant("TaskBounties", "ValidatorRewardShare") // 10**9


def model(c: Chain, model_hash: bytes) -> dict[str, Any] | None:
    return c.client.query("Models", "Models", ["0x" + model_hash.hex()]).value


# Tests ----------------------------------------------------------------------------------------
def test_the_flags_set_the_period_and_the_grace(chain: Chain) -> None:
    assert chain.constant("TaskBounties", "ChallengePeriod") == PERIOD_MS
    assert chain.constant("TaskBounties", "VerificationGrace") == GRACE_MS
    assert chain.constant("TaskBounties", "ChallengeDeposit") == DEPOSIT


def test_unchallenged_result_is_paid_by_finalize_once_the_period_is_over(chain: Chain, typed: TypedChain) -> None:
    book, task_deposit, share = Ledger(chain), chain.constant("TaskBounties", "TaskDeposit"), share_of(chain)
    a0, b0, c0, d0, e0 = (chain.account(k) for k in (ALICE, BOB, CHARLIE, DAVE, EVE))
    claims0, votes0 = chain.worker(BOB)["active_claims"], chain.worker(DAVE)["pending_verdicts"]
    task_id, model_hash, until = approve(book, BOB, (DAVE, EVE))
    assert chain.task(task_id)["status"] == {"Approved": {"worker": BOB.ss58_address, "challenge_until": until}}
    res = result(chain, task_id)
    assert res["approved_by"] == [DAVE.ss58_address, EVE.ss58_address] and res["challenge"] is None
    assert queued(chain, task_id) == [until]

    # Nothing is paid yet: the bounty stays escrowed, the worker holds the task, the approvers their votes.
    a1, b1 = chain.account(ALICE), chain.account(BOB)
    assert a1["reserved"] == a0["reserved"] + BOUNTY + task_deposit and b1["free"] == b0["free"] - book.fee(BOB)
    assert chain.worker(BOB)["active_claims"] == claims0 + 1 and chain.worker(DAVE)["pending_verdicts"] == votes0 + 1
    assert chain.client.query("TaskBounties", "ClaimsByWorker", [BOB.ss58_address, task_id]).value is not None
    assert model(chain, model_hash) is None

    # Too early, through the typed bindings: refused, in a block whose timestamp is before challenge_until.
    with pytest.raises(TaskBountiesError.ChallengePeriodNotOver) as early:
        typed.task_bounties.finalize_result(CHARLIE, task_id)
    assert block_time(chain, early.value.receipt.block_hash) < until
    book.fees[CHARLIE.ss58_address] += early.value.receipt.fee
    assert "Approved" in chain.task(task_id)["status"]

    wait_past(until)
    r = book.ok(CHARLIE, "TaskBounties", "finalize_result", {"task_id": task_id})  # anyone may
    [accepted] = events(r, "TaskBounties", "TaskAccepted")
    assert accepted["validator_reward"] == share // 2 and accepted["worker_reward"] == BOUNTY - 2 * (share // 2)
    assert events(r, "Models", "ModelRegistered")[0]["trainer"] == BOB.ss58_address
    a2, b2, c2, d2, e2 = (chain.account(k) for k in (ALICE, BOB, CHARLIE, DAVE, EVE))
    assert a2["reserved"] == a0["reserved"] and a2["free"] == a0["free"] - BOUNTY - book.fee(ALICE)
    assert b2["free"] == b0["free"] + BOUNTY - 2 * (share // 2) - book.fee(BOB) and b2["reserved"] == b0["reserved"]
    assert c2["free"] == c0["free"] - book.fee(CHARLIE)
    assert d2["free"] == d0["free"] + share // 2 - book.fee(DAVE)
    assert e2["free"] == e0["free"] + share // 2 - book.fee(EVE)
    assert chain.task(task_id)["status"]["Accepted"]["worker"] == BOB.ss58_address
    assert chain.worker(BOB)["active_claims"] == claims0 and chain.worker(DAVE)["pending_verdicts"] == votes0
    assert queued(chain, task_id) == []
    assert model(chain, model_hash)["task_id"] == task_id
    book.fails("NotApproved", CHARLIE, "TaskBounties", "finalize_result", {"task_id": task_id})


def test_a_block_after_the_period_pays_and_a_late_challenge_changes_nothing(chain: Chain) -> None:
    book, share = Ledger(chain), share_of(chain)
    task_id, model_hash, until = approve(book, BOB, (DAVE,))
    a1, b1, d1, f1 = (chain.account(k) for k in (ALICE, BOB, DAVE, FERDIE))
    task1, result1 = chain.task(task_id), result(chain, task_id)
    wait_past(until)
    late = challenge(book, task_id, FERDIE)
    assert late.error_message["name"] == "ChallengePeriodOver" and block_time(chain, late.block_hash) >= until
    # Its block's hook compared with the block before it (before the timestamp inherent): not paid yet.
    assert chain.task(task_id) == task1 and result(chain, task_id) == result1
    f2 = chain.account(FERDIE)
    assert f2 == {**f1, "free": f1["free"] - book.fee(FERDIE)}

    r = chain.ok(CHARLIE, "System", "remark", {"remark": "0x00"})  # any block: its hook pays
    [paid] = block_events(chain, r.block_hash, "TaskAccepted")
    assert paid["task_id"] == task_id and paid["phase"] == "Initialization" and paid["validator_reward"] == share
    assert chain.task(task_id)["status"]["Accepted"]["model_hash"] == "0x" + model_hash.hex()
    a2, b2, d2 = (chain.account(k) for k in (ALICE, BOB, DAVE))
    assert a2["reserved"] == a1["reserved"] - BOUNTY - chain.constant("TaskBounties", "TaskDeposit")
    assert b2["free"] == b1["free"] + BOUNTY - share and d2["free"] == d1["free"] + share
    assert queued(chain, task_id) == [] and model(chain, model_hash)["trainer"] == BOB.ss58_address


def test_who_may_challenge_and_a_challenge_that_times_out(chain: Chain) -> None:
    book, share = Ledger(chain), share_of(chain)
    votes0 = {k.ss58_address: chain.worker(k)["pending_verdicts"] for k in (DAVE, EVE)}
    task_id, model_hash, until = approve(book, BOB, (DAVE,))
    poor0, task1 = chain.account(POOR), chain.task(task_id)
    for error, who in (("CannotJudgeOwnWork", BOB), ("RequesterCannotWork", ALICE), ("AlreadyVoted", DAVE),
                       ("NotValidator", CHARLIE), ("InsufficientBalance", POOR)):
        refused = challenge(book, task_id, who)
        assert block_time(chain, refused.block_hash) < until, "the period ran out before the test: machine too slow?"
        assert not refused.is_success and refused.error_message["name"] == error, (who, refused.error_message)
    assert chain.account(POOR) == {**poor0, "free": poor0["free"] - book.fee(POOR)}
    assert chain.task(task_id) == task1 and result(chain, task_id)["challenge"] is None

    e0 = chain.account(EVE)
    r = challenge(book, task_id)
    assert r.is_success, r.error_message
    assert block_time(chain, r.block_hash) < until
    [opened] = events(r, "TaskBounties", "ResultChallenged")
    settle_until = opened["settle_until"]
    assert opened["challenger"] == EVE.ss58_address and opened["deposit"] == DEPOSIT
    assert settle_until == block_time(chain, r.block_hash) + GRACE_MS
    assert chain.task(task_id)["status"] == {"Challenged": {
        "worker": BOB.ss58_address, "challenger": EVE.ss58_address, "settle_until": settle_until}}
    e1 = chain.account(EVE)
    assert e1["reserved"] == e0["reserved"] + DEPOSIT and e1["free"] == e0["free"] - DEPOSIT - fee(r)
    res = result(chain, task_id)
    assert (res["accepts"], res["rejects"], res["approved_by"]) == ([], [EVE.ss58_address], [DAVE.ss58_address])
    assert res["challenge"]["challenger"] == EVE.ss58_address and res["challenge"]["evidence_hash"] == EVIDENCE
    assert res["challenge"]["deposit"] == DEPOSIT and res["challenge"]["opened_at"] == chain.block_number()
    # The first round's verdicts are gone; the challenger's counts as the round's first reject.
    assert chain.client.query("TaskBounties", "Verdicts", [task_id, DAVE.ss58_address]).value is None
    assert chain.client.query("TaskBounties", "Verdicts", [task_id, EVE.ss58_address]).value == {
        "accept": False, "measured_metric": 0, "evidence_hash": EVIDENCE}
    # The approver stays bound (no unregistering, so no escaping a slash) until the challenge settles.
    assert chain.worker(DAVE)["pending_verdicts"] == votes0[DAVE.ss58_address] + 1
    assert chain.worker(EVE)["pending_verdicts"] == votes0[EVE.ss58_address] + 1
    assert queued(chain, task_id) == [] and in_verification(chain, task_id) == [settle_until]
    book.fails("HasPendingVerdicts", EVE, "Workers", "unregister")
    book.fails("HasPendingVerdicts", DAVE, "Workers", "unregister")
    book.fails("AlreadyVoted", EVE, "TaskBounties", "submit_verdict", {"task_id": task_id, "verdict": verdict(False)})
    assert challenge(book, task_id, FERDIE).error_message["name"] == "NotApproved"
    last = book.fails("NotApproved", CHARLIE, "TaskBounties", "finalize_result", {"task_id": task_id})
    assert block_time(chain, last.block_hash) < settle_until, "the round ran out before the test: machine too slow?"

    # No quorum within VerificationGrace (ms of Timestamp.Now, not blocks): the deposit comes back and the
    # approval stands. The first block after settle_until still compared with its parent's Now (before it).
    b1, d1, e2 = (chain.account(k) for k in (BOB, DAVE, EVE))
    wait_past(settle_until)
    first = chain.ok(CHARLIE, "System", "remark", {"remark": "0x00"})
    assert block_time(chain, first.block_hash) >= settle_until and "Challenged" in chain.task(task_id)["status"]
    r = chain.ok(CHARLIE, "System", "remark", {"remark": "0x00"})  # any block: its hook times the round out
    [timed_out] = block_events(chain, r.block_hash, "ChallengeTimedOut")
    assert timed_out["challenger"] == EVE.ss58_address and timed_out["phase"] == "Initialization"
    [paid] = block_events(chain, r.block_hash, "TaskAccepted")
    assert paid["validator_reward"] == share and paid["worker_reward"] == BOUNTY - share
    b2, d2, e3 = (chain.account(k) for k in (BOB, DAVE, EVE))
    assert e3 == {**e2, "free": e2["free"] + DEPOSIT, "reserved": e2["reserved"] - DEPOSIT}
    assert b2["free"] == b1["free"] + BOUNTY - share and d2["free"] == d1["free"] + share
    assert chain.worker(EVE)["pending_verdicts"] == votes0[EVE.ss58_address]
    assert chain.worker(DAVE)["pending_verdicts"] == votes0[DAVE.ss58_address]  # the approver is free again
    assert model(chain, model_hash)["trainer"] == BOB.ss58_address
    assert in_verification(chain, task_id) == [] and queued(chain, task_id) == []


def test_a_challenge_upheld_by_the_larger_quorum_slashes_the_worker(chain: Chain) -> None:
    book = Ledger(chain)
    task_id, model_hash, _ = approve(book, CHARLIE, (DAVE,))
    assert challenge(book, task_id).is_success
    quorum = 2 * 1 + 1
    stake, rejected = chain.worker(CHARLIE)["stake"], chain.client.query(
        "Workers", "Reputation", [CHARLIE.ss58_address]).value["tasks_rejected"]
    approver_stake = chain.worker(DAVE)["stake"]
    a0, c0, d0, e0, f0 = (chain.account(k) for k in (ALICE, CHARLIE, DAVE, EVE, FERDIE))
    book.fees.clear()
    # Dave approved in the first round and may vote again; a challenge-round voter cannot unregister.
    book.ok(DAVE, "TaskBounties", "submit_verdict", {"task_id": task_id, "verdict": verdict(False)})
    book.fails("HasPendingVerdicts", DAVE, "Workers", "unregister")
    assert "Challenged" in chain.task(task_id)["status"]  # 2 of 3 rejects: not yet
    r = book.ok(FERDIE, "TaskBounties", "submit_verdict", {"task_id": task_id, "verdict": verdict(False)})

    names = [e.value["event_id"] for e in r.triggered_events if e.value["module_id"] == "TaskBounties"]
    assert names.index("ChallengeUpheld") < names.index("WorkerSlashed") < names.index("TaskReopened")
    assert events(r, "TaskBounties", "ChallengeUpheld")[0]["challenger"] == EVE.ss58_address
    amount = stake * chain.constant("TaskBounties", "SlashFraction") // 10**9
    to_requester, each = amount // 2, (amount - amount // 2) // quorum
    assert events(r, "TaskBounties", "WorkerSlashed")[0]["amount"] == amount
    assert chain.worker(CHARLIE)["stake"] == stake - amount
    c1 = chain.account(CHARLIE)
    assert c1["reserved"] == c0["reserved"] - amount and c1["free"] == c0["free"]
    a1 = chain.account(ALICE)  # the task reopened: the bounty stays reserved
    assert a1 == {**a0, "free": a0["free"] + to_requester}
    # Dave approved the result the round rejected: ApproverSlashFraction of its stake goes to the challenger,
    # although it turned and rejected in the challenge round (where it earns a rejecter's share)
    penalty = approver_stake * chain.constant("TaskBounties", "ApproverSlashFraction") // 10**9
    assert penalty > 0 and events(r, "TaskBounties", "ApproverSlashed") == [
        {"task_id": task_id, "validator": DAVE.ss58_address, "challenger": EVE.ss58_address, "amount": penalty}]
    assert chain.worker(DAVE)["stake"] == approver_stake - penalty
    d1 = chain.account(DAVE)
    assert d1 == {**d0, "free": d0["free"] + each - book.fee(DAVE), "reserved": d0["reserved"] - penalty}
    assert chain.account(FERDIE)["free"] == f0["free"] + each - book.fee(FERDIE)
    e1 = chain.account(EVE)
    assert e1 == {**e0, "free": e0["free"] + each + DEPOSIT + penalty, "reserved": e0["reserved"] - DEPOSIT}
    task = chain.task(task_id)
    assert task["status"] == "Open" and task["attempts"] == 1 and result(chain, task_id) is None
    assert model(chain, model_hash) is None
    rep = chain.client.query("Workers", "Reputation", [CHARLIE.ss58_address]).value
    assert rep["tasks_rejected"] == rejected + 1
    for k in (DAVE, EVE, FERDIE):
        assert chain.client.query("TaskBounties", "Verdicts", [task_id, k.ss58_address]).value is None
    chain.ok(ALICE, "TaskBounties", "cancel_task", {"task_id": task_id})


def test_a_challenge_dismissed_by_the_larger_quorum_pays_its_deposit_to_the_accepters(chain: Chain) -> None:
    book, share = Ledger(chain), share_of(chain)
    task_id, model_hash, _ = approve(book, BOB, (DAVE,))
    assert challenge(book, task_id).is_success
    a0, b0, d0, e0, f0, v0 = (chain.account(k) for k in (ALICE, BOB, DAVE, EVE, FERDIE, V4))
    book.fees.clear()
    for validator in (FERDIE, V4):
        book.ok(validator, "TaskBounties", "submit_verdict", {"task_id": task_id, "verdict": verdict(True)})
    assert "Challenged" in chain.task(task_id)["status"]
    r = book.ok(DAVE, "TaskBounties", "submit_verdict", {"task_id": task_id, "verdict": verdict(True)})

    each, reward = DEPOSIT // 3, share // 3
    [dismissed] = events(r, "TaskBounties", "ChallengeDismissed")
    assert dismissed["challenger"] == EVE.ss58_address and dismissed["slashed"] == DEPOSIT
    [accepted] = events(r, "TaskBounties", "TaskAccepted")
    assert accepted["validator_reward"] == reward and accepted["worker_reward"] == BOUNTY - 3 * reward
    e1 = chain.account(EVE)
    assert e1 == {**e0, "reserved": e0["reserved"] - DEPOSIT}  # the deposit is gone, nothing else
    for k, before in ((FERDIE, f0), (V4, v0), (DAVE, d0)):
        assert chain.account(k)["free"] == before["free"] + each + reward - book.fee(k), k.ss58_address
    b1 = chain.account(BOB)  # the worker: its reward and the deposit's division remainder
    assert b1["free"] == b0["free"] + BOUNTY - 3 * reward + DEPOSIT - 3 * each
    a1 = chain.account(ALICE)
    assert a1["reserved"] == a0["reserved"] - BOUNTY - chain.constant("TaskBounties", "TaskDeposit")
    assert chain.task(task_id)["status"]["Accepted"]["worker"] == BOB.ss58_address
    assert model(chain, model_hash)["trainer"] == BOB.ss58_address


def test_the_orchestrator_indexes_approved_and_challenged_tasks(chain: Chain, devnet: DevnetProcess,
                                                               typed: TypedChain, tmp_path) -> None:
    book = Ledger(chain)
    approved_id, _, until = approve(book, BOB, (DAVE,))
    challenged_id, _, _ = approve(book, BOB, (DAVE,))
    assert challenge(book, challenged_id).is_success
    index = Index(tmp_path / "index.db")
    indexer = Indexer(devnet.ws_url, index)
    try:
        indexer.sync()
        at = index.last_block.hash
        for task_id, status in ((approved_id, TaskStatus.APPROVED), (challenged_id, TaskStatus.CHALLENGED)):
            view = index.task(task_id)
            assert view.status is status and view.worker == BOB.ss58_address
            assert view == task_view_from_chain(task_id, typed.task_bounties.tasks(task_id, at=at))
            assert status_from_proto(status_to_proto(status)) is status
        assert status_to_proto(TaskStatus.APPROVED) == common_pb2.TASK_STATUS_APPROVED
        assert status_to_proto(TaskStatus.CHALLENGED) == common_pb2.TASK_STATUS_CHALLENGED
        # The worker still holds both: they are its claims, and nobody else is offered them.
        assert {approved_id, challenged_id} <= set(index.claims_of(BOB.ss58_address))
        assert not {approved_id, challenged_id} & {t.task_id for t in index.open_tasks_for()}

        wait_past(until)
        book.ok(CHARLIE, "TaskBounties", "finalize_result", {"task_id": approved_id})
        for validator in (FERDIE, V4):  # 1 reject (Eve's) + 3 accepts: dismissed
            book.ok(validator, "TaskBounties", "submit_verdict", {"task_id": challenged_id, "verdict": verdict(True)})
        book.ok(DAVE, "TaskBounties", "submit_verdict", {"task_id": challenged_id, "verdict": verdict(True)})
        indexer.sync()
        for task_id in (approved_id, challenged_id):
            assert index.task(task_id).status is TaskStatus.ACCEPTED and index.task(task_id).worker == BOB.ss58_address
            assert task_id not in index.claims_of(BOB.ss58_address)
    finally:
        index.close()
