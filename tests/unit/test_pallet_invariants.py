"""Property tests of Workers / TaskBounties / Models: random call sequences from many accounts, in process.

The runtime is driven without a node: a DispatchContext over an Overlay of the genesis state, pallet
handlers called as the executive calls them (each dispatch in a child layer that a DispatchError
discards) and the hooks run at every block. After every step:

- total issuance equals the sum of all balances and changes only by the burned part of slashes;
- every account's reserved balance equals its worker stake plus the bounty and deposit of its live tasks;
- worker counters match the claim and verdict indexes; no task is paid twice, no terminal task changes;
- a call by the wrong account (not the requester, not the claimant, not a validator) fails and changes nothing.
"""
from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sortedcontainers import SortedDict
from substrateinterface import Keypair

from devnet.chain import genesis_state
from devnet.runtime.context import DispatchContext
from devnet.runtime.framework import DispatchError
from devnet.runtime.pallets.balances import Balances
from devnet.runtime.pallets.models import Models
from devnet.runtime.pallets.system import System
from devnet.runtime.pallets.task_bounties import TaskBounties, attestation_message, holdout_commitment
from devnet.runtime.pallets.workers import Workers
from devnet.runtime.runtime import Runtime
import devnet.state
from devnet.state import Overlay

_SortedView = getattr(devnet.state, "SortedView", None) or getattr(devnet.state, "_SortedView")

UNIT = 10**12
KEYS = [Keypair.create_from_uri(f"//Invariant{i}") for i in range(8)]
ACCOUNTS = [k.public_key for k in KEYS]
KEY_OF = {k.public_key: k for k in KEYS}
DATASET = bytes([7]) * 32
LIVE = ("Open", "Claimed", "Submitted")
TERMINAL = ("Accepted", "Expired", "Cancelled")


class Harness:
    def __init__(self) -> None:
        self.runtime = Runtime()
        changes = genesis_state(self.runtime, ACCOUNTS, balance=10_000 * UNIT)
        base = _SortedView(SortedDict({k: v for k, v in changes.items() if v is not None}))
        self.ctx = DispatchContext(Overlay(base), 1, 0)
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

    def advance(self, blocks: int) -> None:
        for _ in range(blocks):
            for pallet in self.runtime.pallets:
                pallet.on_finalize(self.ctx)
            self.ctx.block_number += 1
            for pallet in self.runtime.pallets:
                pallet.on_initialize(self.ctx)

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
        for task_id, task in tasks.items():
            status, payload = task["status"]
            if status in LIVE:
                expected[task["requester"]] += task["bounty"] + task["deposit"]
            if status in ("Claimed", "Submitted"):
                claims[payload["worker"]].add(task_id)
            if status in TERMINAL:
                if task_id in self.terminal:
                    assert self.terminal[task_id] == task["status"], "a terminal task changed"
                self.terminal[task_id] = task["status"]
            if status == "Accepted":
                assert task_id in self.accepted and Models.Models.contains(self.state, payload["model_hash"])
        for who in ACCOUNTS:
            info = Workers.Workers.get(self.state, who)
            stake = info["stake"] if info else 0
            assert balances[who]["reserved"] == expected[who] + stake, "reserved != stake + live bounties"
            indexed = {keys[1] for keys, _ in TaskBounties.ClaimsByWorker.iter(self.state, who)}
            assert indexed == claims[who]
            if info:
                assert info["active_claims"] == len(claims[who])
                votes = sum(1 for t, task in tasks.items() if task["status"][0] == "Submitted"
                            and TaskBounties.Verdicts.contains(self.state, t, who))
                assert info["pending_verdicts"] == votes
            else:
                assert not claims[who]


# One step of a random run ---------------------------------------------------------------------
def step(h: Harness, op: tuple) -> None:
    kind, actor_index, a, b, c = op
    actor = ACCOUNTS[actor_index]
    role = {"claim": "Trainer", "verdict": "Validator"}.get(kind)
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
                   validators_required=1 + a % 3, holdout_commitment=holdout_commitment(salt, uri) if c % 2 else None)
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
                            holdout_uri=b"s3://holdout")
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
        task_id = h.pick_task(a, ("Submitted",))
        info = Workers.Workers.get(h.state, actor)
        before = h.snapshot()
        ok = h.dispatch(actor, "TaskBounties", "submit_verdict", task_id=task_id,
                        verdict={"accept": b % 3 != 0, "measured_metric": 0, "evidence_hash": bytes(32)})
        if info is None or info["role"][0] != "Validator" or info["status"][0] != "Active":
            assert not ok and h.snapshot() == before, "a non-validator's verdict changed state"
    elif kind == "advance":
        h.advance(1 + a % 5)


KINDS = ["register", "register", "bond_extra", "unregister", "withdraw", "create", "create", "cancel", "claim",
         "claim", "heartbeat", "release", "submit", "submit", "reveal", "verdict", "verdict", "verdict", "advance",
         "advance"]
OPS = st.tuples(st.sampled_from(KINDS), st.integers(0, len(ACCOUNTS) - 1), st.integers(0, 1000),
                st.integers(0, 1000), st.integers(0, 1000))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(OPS, min_size=10, max_size=80))
def test_random_call_sequences_keep_the_invariants(ops: list[tuple]) -> None:
    h = Harness()
    h.check()
    for op in ops:
        step(h, op)
        h.check()
    h.advance(60)  # every lease, deadline and verification window runs out
    h.check()
    for task in h.tasks().values():
        assert task["status"][0] != "Submitted"


def test_full_lifecycle_in_process() -> None:
    """A deterministic run through accept, reject and lease expiry, checking the invariants as it goes."""
    h = Harness()
    requester, t1, t2, v1, v2 = ACCOUNTS[:5]
    caps = {"cpus": 8, "gpus": 1, "gpu_model": b"A100", "memory_mb": 16_000}
    for who, role in ((t1, "Trainer"), (t2, "Trainer"), (v1, "Validator"), (v2, "Validator")):
        assert h.dispatch(who, "Workers", "register", role=(role, None), stake=500 * UNIT, capabilities=caps)
    spec = {"recipe": b"mlp", "spec_hash": bytes(32), "spec_uri": b"s3://spec", "dataset_hash": DATASET,
            "eval_metric": b"acc", "eval_target": 1, "higher_is_better": True,
            "requirements": {"min_cpus": 1, "min_gpus": 1, "min_memory_mb": 0}, "parent_model": None}
    for _ in range(3):
        assert h.dispatch(requester, "TaskBounties", "create_task", spec=spec, bounty=10 * UNIT, min_stake=0,
                          deadline=100, validators_required=2, holdout_commitment=None)
    h.check()

    def submit(task_id: int, worker: bytes) -> bytes:
        att = {"task_id": task_id, "worker": worker, "model_hash": os.urandom(32), "artifact_uri": b"s3://m",
               "metrics": [(b"acc", 900_000)], "trajectory_root": bytes(32), "checkpoints": [],
               "code_hash": bytes(32), "dataset_hash": DATASET, "started_ms": 1, "finished_ms": 2}
        assert h.dispatch(worker, "TaskBounties", "submit_result", task_id=task_id, attestation=att,
                          signature=("Sr25519", KEY_OF[worker].sign(attestation_message(att))))
        return att["model_hash"]

    verdict = lambda accept: {"accept": accept, "measured_metric": 0, "evidence_hash": bytes(32)}  # noqa: E731
    assert h.dispatch(t1, "TaskBounties", "claim_task", task_id=0)
    model = submit(0, t1)
    assert h.dispatch(v1, "TaskBounties", "submit_verdict", task_id=0, verdict=verdict(True))
    assert h.dispatch(v2, "TaskBounties", "submit_verdict", task_id=0, verdict=verdict(True))
    h.check()
    assert Models.Models.get(h.state, model)["trainer"] == t1 and 0 in h.accepted

    assert h.dispatch(t2, "TaskBounties", "claim_task", task_id=1)
    submit(1, t2)
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
