"""Property tests of Workers / TaskBounties / Models: random call sequences from many accounts, in process.

The runtime is driven without a node: a DispatchContext over an Overlay of the genesis state, pallet
handlers called as the executive calls them (each dispatch in a child layer that a DispatchError
discards) and the hooks run at every block. After every step:

- total issuance equals the sum of all balances and changes only by the burned part of slashes;
- every account's reserved balance equals its worker stake plus the bounty and deposit of its live tasks
  plus the deposits of the challenges it has open;
- worker counters match the claim and verdict indexes; the verdicts stored are the current round's votes;
  PendingPayouts holds exactly the Approved tasks and VerificationDeadlines exactly the Submitted and Challenged
  ones (with their verify_until / settle_until), each in due order; no task is paid twice, no terminal task changes;
- a call by the wrong account (not the requester, not the claimant, not a validator, the worker, the requester
  or an approver challenging, a payout before the period is over) fails and changes nothing.

Runs draw the challenge period: 0 (paid at once) or a few blocks' worth of the simulated timestamp. Blocks are
BLOCK_MS apart, or come in bursts 10 ms apart (instant seal under a stream of transactions): the verification
window (VerificationGrace, ms) must not care how many blocks are made.
"""
from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sortedcontainers import SortedDict
from substrateinterface import Keypair

import devnet.state
from devnet.chain import genesis_state
from devnet.runtime.context import DispatchContext
from devnet.runtime.framework import DispatchError
from devnet.runtime.pallets.balances import Balances
from devnet.runtime.pallets.models import Models
from devnet.runtime.pallets.system import System
from devnet.runtime.pallets.task_bounties import TaskBounties, attestation_message, holdout_commitment
from devnet.runtime.pallets.timestamp import Timestamp
from devnet.runtime.pallets.workers import Workers
from devnet.runtime.runtime import Runtime
from devnet.state import Overlay

_SortedView = getattr(devnet.state, "SortedView", None) or getattr(devnet.state, "_SortedView")

UNIT = 10**12
KEYS = [Keypair.create_from_uri(f"//Invariant{i}") for i in range(8)]
ACCOUNTS = [k.public_key for k in KEYS]
KEY_OF = {k.public_key: k for k in KEYS}
DATASET = bytes([7]) * 32
HELD = ("Claimed", "Submitted", "Approved", "Challenged")  # the worker holds the task (ClaimsByWorker)
VOTING = ("Submitted", "Approved", "Challenged")  # Verdicts hold the current round's votes
LIVE = ("Open",) + HELD
TERMINAL = ("Accepted", "Expired", "Cancelled")
BLOCK_MS = 1_000  # the simulated block time (advance() may make blocks closer together)
BURST_MS = 10  # blocks in a burst of transactions under instant seal
PERIODS = (0, 4_500)  # ChallengePeriod: paid at once, or four to five blocks
GRACE_MS = 10_000  # VerificationGrace: ten blocks at BLOCK_MS


class Harness:
    def __init__(self, challenge_period_ms: int = 0) -> None:
        self.runtime = Runtime(challenge_period_ms=challenge_period_ms, verification_grace_ms=GRACE_MS)
        changes = genesis_state(self.runtime, ACCOUNTS, balance=10_000 * UNIT)
        base = _SortedView(SortedDict({k: v for k, v in changes.items() if v is not None}))
        self.ctx = DispatchContext(Overlay(base), 1, BLOCK_MS)
        Timestamp.Now.set(self.ctx.state, BLOCK_MS)
        self.issuance0 = self.total_issuance()
        self.burned = 0
        self.accepted: set[int] = set()
        self.terminal: dict[int, Any] = {}

    # Driving ------------------------------------------------------------------------------------
    def dispatch(self, origin: bytes, pallet: str, call: str, **args: Any) -> bool:
        instance, call_def = self.runtime.calls[(pallet, call)]
        outer, mark = self.ctx.state, len(self.ctx.events)
        self.ctx.state = outer.child()
        try:
            call_def.handler(instance, self.ctx, origin, **args)
            self.ctx.state.commit()
            return True
        except DispatchError:
            del self.ctx.events[mark:]
            return False
        finally:
            self.ctx.state = outer

    def advance(self, blocks: int, ms_per_block: int = BLOCK_MS) -> None:
        for _ in range(blocks):
            for pallet in self.runtime.pallets:
                pallet.on_finalize(self.ctx)
            self.ctx.block_number += 1
            for pallet in self.runtime.pallets:
                pallet.on_initialize(self.ctx)
            self.ctx.timestamp_ms += ms_per_block  # the timestamp inherent, after the hooks
            Timestamp.Now.set(self.ctx.state, self.ctx.timestamp_ms)

    def advance_past(self, moment_ms: int) -> None:
        """Blocks of BLOCK_MS until Timestamp.Now reaches `moment_ms` (no hook has compared with it yet)."""
        while Timestamp.Now.get(self.state) < moment_ms:
            self.advance(1)

    # Reading ------------------------------------------------------------------------------------
    @property
    def state(self) -> Overlay:
        return self.ctx.state

    def total_issuance(self) -> int:
        return Balances.TotalIssuance.get(self.ctx.state)

    def tasks(self) -> dict[int, dict[str, Any]]:
        return {keys[0]: task for keys, task in TaskBounties.Tasks.iter(self.state)}

    def pick_task(self, pick: int, prefer: tuple[str, ...] = LIVE) -> int:
        """Mostly a task in a `prefer` status (so runs get somewhere), sometimes any id, one past the end too."""
        count = TaskBounties.NextTaskId.get(self.state)
        live = [i for i, t in self.tasks().items() if t["status"][0] in prefer]
        if live and pick % 4:
            return live[pick % len(live)]
        return pick % (count + 1)

    def snapshot(self) -> dict[bytes, Any]:
        return dict(self.state.changes)

    # Invariants ---------------------------------------------------------------------------------
    def check(self) -> None:
        events = self.ctx.events
        for record in events:
            pallet, (name, payload) = record["event"]
            if (pallet, name) == ("TaskBounties", "WorkerSlashed"):
                self.burned += payload["burned"]
            if (pallet, name) == ("TaskBounties", "TaskAccepted"):
                assert payload["task_id"] not in self.accepted, "task paid twice"
                self.accepted.add(payload["task_id"])
        slashed = sum(r["event"][1][1]["amount"] for r in events if r["event"][:1] == ("Balances",)
                      and r["event"][1][0] == "Slashed")
        burned_here = sum(r["event"][1][1]["burned"] for r in events
                          if r["event"][0] == "TaskBounties" and r["event"][1][0] == "WorkerSlashed")
        assert slashed == burned_here, "a burn that no rule routed"
        events.clear()

        balances = {a: System.Account.get(self.state, a)["data"] for a in ACCOUNTS}
        assert self.total_issuance() == sum(d["free"] + d["reserved"] for d in balances.values())
        assert self.total_issuance() == self.issuance0 - self.burned

        tasks = self.tasks()
        expected = {a: 0 for a in ACCOUNTS}
        claims = {a: set() for a in ACCOUNTS}
        due, verifying = [], []
        for task_id, task in tasks.items():
            status, payload = task["status"]
            if status in LIVE:
                expected[task["requester"]] += task["bounty"] + task["deposit"]
            if status in HELD:
                claims[payload["worker"]].add(task_id)
            if status in VOTING:
                result = TaskBounties.Results.get(self.state, task_id)
                voters = {keys[1] for keys, _ in TaskBounties.Verdicts.iter(self.state, task_id)}
                assert voters == set(result["accepts"] + result["rejects"]), "verdicts are not the round's votes"
            if status == "Submitted":
                verifying.append((payload["verify_until"], task_id))
            if status == "Approved":
                due.append((payload["challenge_until"], task_id))
                assert set(result["approved_by"]) == set(result["accepts"]) and result["challenge"] is None
            if status == "Challenged":
                challenge = result["challenge"]
                assert challenge["challenger"] == payload["challenger"] and payload["challenger"] in result["rejects"]
                assert payload["challenger"] not in result["approved_by"]
                expected[payload["challenger"]] += challenge["deposit"]
                verifying.append((payload["settle_until"], task_id))
            if status in TERMINAL:
                if task_id in self.terminal:
                    assert self.terminal[task_id] == task["status"], "a terminal task changed"
                self.terminal[task_id] = task["status"]
            if status == "Accepted":
                assert task_id in self.accepted and Models.Models.contains(self.state, payload["model_hash"])
        queue = TaskBounties.PendingPayouts.get(self.state)
        assert sorted(queue) == sorted(due) and queue == sorted(queue, key=lambda e: e[0]), "PendingPayouts drifted"
        queue = [tuple(e) for e in TaskBounties.VerificationDeadlines.get(self.state)]
        assert sorted(queue) == sorted(verifying) and queue == sorted(queue, key=lambda e: e[0]), \
            "VerificationDeadlines drifted"
        now = Timestamp.Now.get(self.state)
        assert all(until <= now + GRACE_MS for until, _ in queue), "a window longer than VerificationGrace"
        for who in ACCOUNTS:
            info = Workers.Workers.get(self.state, who)
            stake = info["stake"] if info else 0
            assert balances[who]["reserved"] == expected[who] + stake, "reserved != stake + live bounties"
            indexed = {keys[1] for keys, _ in TaskBounties.ClaimsByWorker.iter(self.state, who)}
            assert indexed == claims[who]
            if info:
                assert info["active_claims"] == len(claims[who])
                votes = sum(1 for t, task in tasks.items() if task["status"][0] in VOTING
                            and TaskBounties.Verdicts.contains(self.state, t, who))
                # an approver of a challenged result stays bound until the challenge settles
                bound = sum(1 for t, task in tasks.items() if task["status"][0] == "Challenged"
                            and who in TaskBounties.Results.get(self.state, t)["approved_by"])
                assert info["pending_verdicts"] == votes + bound
            else:
                assert not claims[who]


CAPS = {"cpus": 8, "gpus": 1, "gpu_model": b"A100", "memory_mb": 16_000}
SPEC = {"recipe": b"mlp", "spec_hash": bytes(32), "spec_uri": b"s3://spec", "dataset_hash": DATASET,
        "eval_metric": b"acc", "eval_target": 1, "higher_is_better": True,
        "requirements": {"min_cpus": 1, "min_gpus": 1, "min_memory_mb": 0}, "parent_model": None}


def submit_in_process(h: Harness, task_id: int, worker: bytes) -> bytes:
    """Claim-holder `worker` submits a validly signed attestation; returns its model hash."""
    att = {"task_id": task_id, "worker": worker, "model_hash": os.urandom(32), "artifact_uri": b"s3://m",
           "metrics": [(b"acc", 900_000)], "trajectory_root": bytes(32), "checkpoints": [],
           "code_hash": bytes(32), "dataset_hash": DATASET, "started_ms": 1, "finished_ms": 2}
    assert h.dispatch(worker, "TaskBounties", "submit_result", task_id=task_id, attestation=att,
                      signature=("Sr25519", KEY_OF[worker].sign(attestation_message(att))))
    return att["model_hash"]


def verdict(accept: bool) -> dict[str, Any]:
    return {"accept": accept, "measured_metric": 0, "evidence_hash": bytes(32)}


# One step of a random run ---------------------------------------------------------------------
def step(h: Harness, op: tuple) -> None:
    kind, actor_index, a, b, c = op
    actor = ACCOUNTS[actor_index]
    role = {"claim": "Trainer", "verdict": "Validator", "challenge": "Validator"}.get(kind)
    if role and c % 4:  # mostly an account that may act, sometimes anyone
        fit = [w for w in ACCOUNTS if (i := Workers.Workers.get(h.state, w)) and i["role"][0] == role]
        actor = fit[actor_index % len(fit)] if fit else actor
    if kind == "register":
        role = "Trainer" if a % 2 else "Validator"
        caps = {"cpus": 8, "gpus": b % 3, "gpu_model": b"A100", "memory_mb": 16_000}
        h.dispatch(actor, "Workers", "register", role=(role, None), stake=(90 + c % 200) * UNIT, capabilities=caps)
    elif kind == "bond_extra":
        h.dispatch(actor, "Workers", "bond_extra", amount=(a % 50) * UNIT)
    elif kind == "unregister":
        h.dispatch(actor, "Workers", "unregister")
    elif kind == "withdraw":
        h.dispatch(actor, "Workers", "withdraw")
    elif kind == "create":
        salt, uri = bytes([c % 256]) * 32, b"s3://holdout"
        spec = {"recipe": b"mlp", "spec_hash": bytes(32), "spec_uri": b"s3://spec", "dataset_hash": DATASET,
                "eval_metric": b"acc", "eval_target": 1, "higher_is_better": True,
                "requirements": {"min_cpus": 1, "min_gpus": b % 2, "min_memory_mb": 0}, "parent_model": None}
        h.dispatch(actor, "TaskBounties", "create_task", spec=spec, bounty=(a % 20) * UNIT,
                   min_stake=(b % 4) * 50 * UNIT, deadline=h.ctx.block_number + 1 + c % 30,
                   validators_required=1 + a % 3, holdout_commitment=holdout_commitment(salt, bytes(32), c, uri) if c % 2 else None)
    elif kind in ("cancel", "heartbeat", "release", "reveal"):
        task_id = h.pick_task(a)
        task = TaskBounties.Tasks.get(h.state, task_id)
        status = task["status"] if task else ("None", None)
        if task and c % 3:  # mostly the account that may act
            actor = status[1]["worker"] if kind in ("heartbeat", "release") and status[0] == "Claimed" else (
                task["requester"] if kind in ("cancel", "reveal") else actor)
        before = h.snapshot()
        if kind == "cancel":
            ok = h.dispatch(actor, "TaskBounties", "cancel_task", task_id=task_id)
            wrong = task is not None and task["requester"] != actor
        elif kind == "reveal":
            ok = h.dispatch(actor, "TaskBounties", "reveal_holdout", task_id=task_id, salt=bytes([c % 256]) * 32,
                            holdout_hash=bytes(32), holdout_size=c, holdout_uri=b"s3://holdout")
            wrong = task is not None and task["requester"] != actor
        else:
            if kind == "heartbeat":
                ok = h.dispatch(actor, "TaskBounties", "heartbeat", task_id=task_id,
                                progress={"step": b, "checkpoint_root": bytes(32)})
            else:
                ok = h.dispatch(actor, "TaskBounties", "release_claim", task_id=task_id)
            wrong = status[0] == "Claimed" and status[1]["worker"] != actor
        if wrong:
            assert not ok and h.snapshot() == before, f"{kind} by the wrong account changed state"
    elif kind == "claim":
        h.dispatch(actor, "TaskBounties", "claim_task", task_id=h.pick_task(a, ("Open",)))
    elif kind == "submit":
        task_id = h.pick_task(a, ("Claimed",))
        task = TaskBounties.Tasks.get(h.state, task_id)
        worker = task["status"][1]["worker"] if task and task["status"][0] == "Claimed" else actor
        att = {"task_id": task_id, "worker": worker, "model_hash": os.urandom(32), "artifact_uri": b"s3://m",
               "metrics": [(b"acc", 900_000)], "trajectory_root": bytes(32), "checkpoints": [bytes(32)],
               "code_hash": bytes(32), "dataset_hash": DATASET, "started_ms": 1, "finished_ms": 2}
        forged = b % 4 == 0
        signer = KEY_OF[actor] if forged else KEY_OF[worker]
        before = h.snapshot()
        ok = h.dispatch(actor, "TaskBounties", "submit_result", task_id=task_id, attestation=att,
                        signature=("Sr25519", signer.sign(attestation_message(att))))
        if forged and signer.public_key != worker:
            assert not ok and h.snapshot() == before, "a forged attestation was accepted"
    elif kind == "verdict":
        task_id = h.pick_task(a, ("Submitted", "Challenged"))
        info = Workers.Workers.get(h.state, actor)
        before = h.snapshot()
        ok = h.dispatch(actor, "TaskBounties", "submit_verdict", task_id=task_id,
                        verdict={"accept": b % 3 != 0, "measured_metric": 0, "evidence_hash": bytes(32)})
        if info is None or info["role"][0] != "Validator" or info["status"][0] != "Active":
            assert not ok and h.snapshot() == before, "a non-validator's verdict changed state"
    elif kind in ("challenge", "finalize"):
        task_id = h.pick_task(a, ("Approved",))
        task = TaskBounties.Tasks.get(h.state, task_id)
        approved = task is not None and task["status"][0] == "Approved"
        over = approved and Timestamp.Now.get(h.state) >= task["status"][1]["challenge_until"]
        before = h.snapshot()
        if kind == "finalize":
            ok = h.dispatch(actor, "TaskBounties", "finalize_result", task_id=task_id)
            assert ok == over and (ok or h.snapshot() == before), "finalize_result outside its rules"
            return
        info = Workers.Workers.get(h.state, actor)
        free = System.Account.get(h.state, actor)["data"]["free"]
        ok = h.dispatch(actor, "TaskBounties", "challenge_result", task_id=task_id, evidence_hash=bytes([b % 256]) * 32)
        may = (approved and not over and info is not None and info["role"][0] == "Validator"
               and info["status"][0] == "Active" and actor not in (task["status"][1]["worker"], task["requester"])
               and actor not in TaskBounties.Results.get(h.state, task_id)["approved_by"])
        if not may:
            assert not ok and h.snapshot() == before, "a barred challenge changed state"
        elif free >= h.runtime.task_bounties.constant("ChallengeDeposit") + UNIT:
            assert ok, "a permitted challenge was refused"
    elif kind == "advance":
        h.advance(1 + a % 5 if b % 3 else 5 + a % 20, BLOCK_MS if b % 3 else BURST_MS)


KINDS = ["register", "register", "bond_extra", "unregister", "withdraw", "create", "create", "cancel", "claim",
         "claim", "heartbeat", "release", "submit", "submit", "submit", "reveal", "verdict", "verdict", "verdict",
         "verdict", "verdict", "advance", "advance", "challenge", "challenge", "challenge", "finalize"]
OPS = st.tuples(st.sampled_from(KINDS), st.integers(0, len(ACCOUNTS) - 1), st.integers(0, 1000),
                st.integers(0, 1000), st.integers(0, 1000))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(PERIODS), st.lists(OPS, min_size=30, max_size=120))
def test_random_call_sequences_keep_the_invariants(period: int, ops: list[tuple]) -> None:
    h = Harness(period)
    # Two trainers and three validators from the start, so that runs reach verdicts and challenge rounds
    # (the other accounts register, or not, at random).
    for who, role, stake in ((ACCOUNTS[1], "Trainer", 300), (ACCOUNTS[2], "Trainer", 300),
                             (ACCOUNTS[3], "Validator", 100), (ACCOUNTS[4], "Validator", 100),
                             (ACCOUNTS[5], "Validator", 100)):
        assert h.dispatch(who, "Workers", "register", role=(role, None), stake=stake * UNIT, capabilities=CAPS)
    h.check()
    for op in ops:
        step(h, op)
        h.check()
    h.advance(60)  # every lease, deadline, verification window, challenge period and round runs out
    h.check()
    for task in h.tasks().values():
        assert task["status"][0] not in VOTING


def test_full_lifecycle_in_process() -> None:
    """A deterministic run through accept, reject and lease expiry, checking the invariants as it goes."""
    h = Harness()
    requester, t1, t2, v1, v2 = ACCOUNTS[:5]
    for who, role in ((t1, "Trainer"), (t2, "Trainer"), (v1, "Validator"), (v2, "Validator")):
        assert h.dispatch(who, "Workers", "register", role=(role, None), stake=500 * UNIT, capabilities=CAPS)
    for _ in range(3):
        assert h.dispatch(requester, "TaskBounties", "create_task", spec=SPEC, bounty=10 * UNIT, min_stake=0,
                          deadline=100, validators_required=2, holdout_commitment=None)
    h.check()

    assert h.dispatch(t1, "TaskBounties", "claim_task", task_id=0)
    model = submit_in_process(h, 0, t1)
    assert h.dispatch(v1, "TaskBounties", "submit_verdict", task_id=0, verdict=verdict(True))
    assert h.dispatch(v2, "TaskBounties", "submit_verdict", task_id=0, verdict=verdict(True))
    h.check()
    assert Models.Models.get(h.state, model)["trainer"] == t1 and 0 in h.accepted

    assert h.dispatch(t2, "TaskBounties", "claim_task", task_id=1)
    submit_in_process(h, 1, t2)
    assert h.dispatch(v1, "TaskBounties", "submit_verdict", task_id=1, verdict=verdict(False))
    assert h.dispatch(v2, "TaskBounties", "submit_verdict", task_id=1, verdict=verdict(False))
    h.check()
    assert TaskBounties.Tasks.get(h.state, 1)["status"][0] == "Open"
    assert Workers.Workers.get(h.state, t2)["stake"] == 400 * UNIT

    assert h.dispatch(t1, "TaskBounties", "claim_task", task_id=2)
    h.advance(10)
    h.check()
    assert TaskBounties.Tasks.get(h.state, 2)["status"][0] == "Open"
    assert Workers.Reputation.get(h.state, t1)["tasks_expired"] == 1
    h.advance(100)
    h.check()
    assert all(t["status"][0] == "Expired" for i, t in h.tasks().items() if i)


def test_challenge_rounds_in_process() -> None:
    """Unchallenged (paid by the hook once the period is over), dismissed, upheld and timed-out challenges."""
    h = Harness(challenge_period_ms=2_500)
    requester, t1, v1, v2, v3, v4 = ACCOUNTS[:6]
    assert h.dispatch(t1, "Workers", "register", role=("Trainer", None), stake=500 * UNIT, capabilities=CAPS)
    for v in (v1, v2, v3, v4):
        assert h.dispatch(v, "Workers", "register", role=("Validator", None), stake=100 * UNIT, capabilities=CAPS)
    bounty, deposit = 10 * UNIT, h.runtime.task_bounties.constant("ChallengeDeposit")
    share = bounty * h.runtime.task_bounties.constant("ValidatorRewardShare") // 10**9
    free = lambda who: System.Account.get(h.state, who)["data"]["free"]  # noqa: E731
    status = lambda task_id: TaskBounties.Tasks.get(h.state, task_id)["status"]  # noqa: E731

    def approved(task_id: int) -> None:
        """Post, claim, submit, and let v1 alone approve (validators_required 1: a challenge round needs 3)."""
        assert h.dispatch(requester, "TaskBounties", "create_task", spec=SPEC, bounty=bounty, min_stake=0,
                          deadline=h.ctx.block_number + 50, validators_required=1, holdout_commitment=None)
        assert h.dispatch(t1, "TaskBounties", "claim_task", task_id=task_id)
        submit_in_process(h, task_id, t1)
        assert h.dispatch(v1, "TaskBounties", "submit_verdict", task_id=task_id, verdict=verdict(True))
        assert status(task_id)[0] == "Approved" and task_id not in h.accepted
        h.check()

    # Unchallenged: the hook pays once a block starts with the previous block's Now past challenge_until.
    approved(0)
    w0, v0 = free(t1), free(v1)
    until = status(0)[1]["challenge_until"]
    assert until == Timestamp.Now.get(h.state) + 2_500
    assert not h.dispatch(requester, "TaskBounties", "finalize_result", task_id=0)
    h.advance(2)  # Now reaches until - 500
    assert status(0)[0] == "Approved" and not h.dispatch(v2, "TaskBounties", "finalize_result", task_id=0)
    h.advance(1)  # Now passes until, but this block's hook still saw the previous Now
    assert status(0)[0] == "Approved"
    h.advance(1)
    h.check()
    assert status(0)[0] == "Accepted" and free(t1) == w0 + bounty - share and free(v1) == v0 + share

    # Dismissed: v2's deposit goes to the challenge round's accepters (v1 voting again among them).
    approved(1)
    assert not h.dispatch(v1, "TaskBounties", "challenge_result", task_id=1, evidence_hash=bytes(32))  # approver
    assert h.dispatch(v2, "TaskBounties", "challenge_result", task_id=1, evidence_hash=bytes([1]) * 32)
    h.check()
    w0, frees = free(t1), {v: free(v) for v in (v1, v2, v3, v4)}
    for v in (v3, v4, v1):
        assert h.dispatch(v, "TaskBounties", "submit_verdict", task_id=1, verdict=verdict(True))
    h.check()
    each, reward = deposit // 3, share // 3
    assert status(1)[0] == "Accepted" and free(t1) == w0 + bounty - 3 * reward + deposit - 3 * each
    assert all(free(v) == frees[v] + each + reward for v in (v1, v3, v4)) and free(v2) == frees[v2]

    # Upheld: the worker is slashed to the requester and the round's rejecters; the deposit comes back; the
    # approver v1 is slashed to the challenger even though it turned and rejected in the challenge round.
    approved(2)
    assert h.dispatch(v2, "TaskBounties", "challenge_result", task_id=2, evidence_hash=bytes(32))
    assert not h.dispatch(v2, "TaskBounties", "submit_verdict", task_id=2, verdict=verdict(False))  # voted
    assert not h.dispatch(v1, "Workers", "unregister")  # bound while the challenge of its approval is open
    stake, r0 = Workers.Workers.get(h.state, t1)["stake"], free(requester)
    approver_stake = Workers.Workers.get(h.state, v1)["stake"]
    frees = {v: free(v) for v in (v1, v2, v3)}
    for v in (v3, v1):
        assert h.dispatch(v, "TaskBounties", "submit_verdict", task_id=2, verdict=verdict(False))
    h.check()
    amount = stake * h.runtime.task_bounties.constant("SlashFraction") // 10**9
    penalty = approver_stake * h.runtime.task_bounties.constant("ApproverSlashFraction") // 10**9
    each = (amount - amount // 2) // 3
    assert status(2)[0] == "Open" and Workers.Workers.get(h.state, t1)["stake"] == stake - amount
    assert free(requester) == r0 + amount // 2 and free(v2) == frees[v2] + deposit + each + penalty
    assert Workers.Workers.get(h.state, v1)["stake"] == approver_stake - penalty and free(v1) == frees[v1] + each
    assert Workers.Workers.get(h.state, v1)["pending_verdicts"] == 0

    # Timed out: no quorum within VerificationGrace (ms); the deposit comes back and the approval stands.
    approved(3)
    assert h.dispatch(v2, "TaskBounties", "challenge_result", task_id=3, evidence_hash=bytes(32))
    settle_until = status(3)[1]["settle_until"]
    assert settle_until == Timestamp.Now.get(h.state) + GRACE_MS == h.ctx.timestamp_ms + GRACE_MS
    w0, v0, c0 = free(t1), free(v1), free(v2)
    h.advance(200, BURST_MS)  # a burst of blocks (2 s): the round is still open
    assert status(3)[0] == "Challenged"
    h.advance_past(settle_until)  # this block's Now reaches settle_until; its hook saw the previous Now
    assert status(3)[0] == "Challenged"
    h.advance(1)
    h.check()
    assert status(3)[0] == "Accepted" and free(t1) == w0 + bounty - share and free(v1) == v0 + share
    assert free(v2) == c0 + deposit and TaskBounties.PendingPayouts.get(h.state) == []


def test_the_verification_window_counts_time_not_blocks() -> None:
    """VerificationGrace is ms of Timestamp.Now: a burst of blocks (a worker's own cheap transactions under
    instant seal) does not close the window, the validators' verdicts still count; once the time is up, the
    first block whose hook sees the previous block's Now at or past verify_until times the result out."""
    h = Harness()
    requester, t1, v1, v2 = ACCOUNTS[:4]
    assert h.dispatch(t1, "Workers", "register", role=("Trainer", None), stake=500 * UNIT, capabilities=CAPS)
    for v in (v1, v2):
        assert h.dispatch(v, "Workers", "register", role=("Validator", None), stake=100 * UNIT, capabilities=CAPS)
    status = lambda task_id: TaskBounties.Tasks.get(h.state, task_id)["status"]  # noqa: E731
    assert h.runtime.task_bounties.constant("VerificationGrace") == GRACE_MS
    for _ in range(2):
        assert h.dispatch(requester, "TaskBounties", "create_task", spec=SPEC, bounty=10 * UNIT, min_stake=0,
                          deadline=h.ctx.block_number + 500, validators_required=2, holdout_commitment=None)

    # A fraud submitted, then 300 blocks in 3 s: still Submitted, and the quorum of rejects slashes.
    assert h.dispatch(t1, "TaskBounties", "claim_task", task_id=0)
    submit_in_process(h, 0, t1)
    verify_until = status(0)[1]["verify_until"]
    assert verify_until == h.ctx.timestamp_ms + GRACE_MS
    assert TaskBounties.VerificationDeadlines.get(h.state) == [(verify_until, 0)]
    stake = Workers.Workers.get(h.state, t1)["stake"]
    h.advance(300, BURST_MS)
    h.check()
    assert status(0)[0] == "Submitted"
    for v in (v1, v2):
        assert h.dispatch(v, "TaskBounties", "submit_verdict", task_id=0, verdict=verdict(False))
    h.check()
    assert status(0)[0] == "Open" and Workers.Workers.get(h.state, t1)["stake"] < stake
    assert TaskBounties.VerificationDeadlines.get(h.state) == []

    # No quorum in time: VerificationTimedOut (no slash, full refund) with the first block whose hook sees it.
    assert h.dispatch(t1, "TaskBounties", "claim_task", task_id=1)
    submit_in_process(h, 1, t1)
    verify_until, stake = status(1)[1]["verify_until"], Workers.Workers.get(h.state, t1)["stake"]
    assert h.dispatch(v1, "TaskBounties", "submit_verdict", task_id=1, verdict=verdict(True))
    h.advance_past(verify_until)
    h.check()
    assert status(1)[0] == "Submitted"  # this block's hook compared with the previous block's Now
    h.advance(1)
    names = [r["event"][1][0] for r in h.ctx.events if r["event"][0] == "TaskBounties"]
    assert names == ["VerificationTimedOut", "TaskExpired"], names
    h.check()
    assert status(1) == ("Expired", None) and Workers.Workers.get(h.state, t1)["stake"] == stake
    assert TaskBounties.VerificationDeadlines.get(h.state) == []
    assert Workers.Workers.get(h.state, v1)["pending_verdicts"] == 0
