"""Property tests of FederatedTasks: random call sequences from many accounts, in process (fl_pallet_harness).

After every step:

- money is conserved: total issuance equals the sum of all balances and falls only by what slashes burn;
  every account's reserved balance is its worker stake, plus `bounty - paid + deposit` of each live task it
  requested, plus its client stakes not yet withdrawn; `paid` never exceeds the bounty nor decreases, and an
  ended task refunded exactly `bounty - paid + deposit`;
- nothing is paid twice: no (task, round, client) appears in two ClientPaid events, and a client's `paid`
  is the sum of its ClientPaid events;
- no honest slash: validators only ever reject the designated poisoners, and only poisoners are slashed;
- the books agree: Workers' claim counts equal AggregatorTasks and the Running tasks, pending verdict counts
  equal the votes on Pending rounds, RoundDeadlines holds exactly the Pending rounds (with their
  verify_until) in due order, an ended task never changes again;
- a refused call changes nothing (the harness's dispatch layer, checked against a full snapshot).
"""
from __future__ import annotations

from collections import Counter
from typing import Any

from fl_pallet_harness import AGGREGATORS, CLIENTS, OUTSIDER, REQUESTER, UNIT, VALIDATORS, FlHarness, sorted_clients
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from substrateinterface import Keypair

from devnet.runtime.pallets.federated import FederatedTasks
from devnet.runtime.pallets.system import System
from devnet.runtime.pallets.task_bounties_types import PERBILL
from devnet.runtime.pallets.workers import Workers

POISONERS = {CLIENTS[1].public_key, CLIENTS[3].public_key}
REQUESTERS = [REQUESTER, OUTSIDER]
LIVE = ("Joining", "Open", "Running")
KINDS = ("create", "create", "join", "join", "join", "join", "leave", "cancel", "claim", "claim", "commit", "commit",
         "commit", "heartbeat", "release", "verdict", "verdict", "verdict", "verdict", "verdict", "withdraw", "advance",
         "advance", "grace")  # weighted towards what moves a task on
PREFER = {"join": ("Joining",), "leave": ("Joining",), "claim": ("Joining", "Open"), "commit": ("Running",),
          "verdict": ("Running",), "heartbeat": ("Running",), "release": ("Running",),
          "withdraw": ("Completed", "Expired", "Cancelled")}


# two tasks with clients joined, one of them claimed: random runs start where commits and verdicts can happen
PRELUDE = [("create", 0, 7, 2), ("create", 1, 6, 1), *[("join", 4 * t + 1, client, 20) for t in (0, 1)
                                                       for client in range(4)], ("grace", 0, 0, 0), ("claim", 1, 0, 0)]


class Books:
    """What the run has seen, to check the pallet's state against."""

    def __init__(self, h: FlHarness) -> None:
        self.h = h
        self.issuance0 = h.issuance()
        self.paid: dict[int, int] = {}
        self.ended: dict[int, dict[str, Any]] = {}

    def check(self) -> None:
        h = self.h
        tasks = {keys[0]: t for keys, t in FederatedTasks.Tasks.iter(h.state)}
        self._money(tasks)
        self._payments(tasks)
        self._counters(tasks)
        for task, record in tasks.items():
            assert record["paid"] <= record["bounty"]
            assert record["paid"] >= self.paid.get(task, 0), "paid decreased"
            self.paid[task] = record["paid"]
            if task in self.ended:
                assert record == self.ended[task], f"ended task {task} changed"
            elif record["status"][0] not in LIVE:
                self.ended[task] = record

    def _money(self, tasks: dict[int, dict[str, Any]]) -> None:
        h = self.h
        accounts = {keys[0]: info["data"] for keys, info in System.Account.iter(h.state)}
        assert h.issuance() == sum(d["free"] + d["reserved"] for d in accounts.values())
        burned = sum(e["amount"] for e in h.events("Slashed", pallet="Balances"))
        assert self.issuance0 - h.issuance() == burned
        expected: Counter[bytes] = Counter()
        for keys, info in Workers.Workers.iter(h.state):
            expected[keys[0]] += info["stake"]
        for record in tasks.values():
            if record["status"][0] in LIVE:
                expected[record["requester"]] += record["bounty"] - record["paid"] + record["deposit"]
        for (_, client), info in FederatedTasks.Clients.iter(h.state):
            if not info["withdrawn"]:
                expected[client] += info["stake"]
        for who, data in accounts.items():
            assert data["reserved"] == expected[who], f"reserved of {who.hex()[:8]}"
        refunds = {e["task"]: e["refund"] for e in h.events("TaskCompleted") + h.events("TaskExpired")
                   + h.events("TaskCancelled")}
        for task, refund in refunds.items():
            record = tasks[task]
            assert refund == record["bounty"] - record["paid"] + record["deposit"]

    def _payments(self, tasks: dict[int, dict[str, Any]]) -> None:
        h = self.h
        paid = [(e["task"], e["round"], e["client"]) for e in h.events("ClientPaid")]
        assert len(paid) == len(set(paid)), "a client was paid twice for a round"
        totals: Counter[tuple[int, bytes]] = Counter()
        for e in h.events("ClientPaid"):
            totals[(e["task"], e["client"])] += e["amount"]
        for (task, client), info in FederatedTasks.Clients.iter(h.state):
            assert info["paid"] == totals[(task, client)]
        assert {e["client"] for e in h.events("ClientSlashed")} <= POISONERS, "an honest client was slashed"

    def _counters(self, tasks: dict[int, dict[str, Any]]) -> None:
        h = self.h
        claims: Counter[bytes] = Counter()
        for task, record in tasks.items():
            if record["status"][0] == "Running":
                aggregator = record["status"][1]["aggregator"]
                claims[aggregator] += 1
                assert FederatedTasks.AggregatorTasks.contains(h.state, aggregator, task)
                assert task in FederatedTasks.LeaseExpiries.get(h.state, record["status"][1]["lease_until"])
        assert sum(1 for _ in FederatedTasks.AggregatorTasks.iter(h.state)) == sum(claims.values())
        pending_votes: Counter[bytes] = Counter()
        queued = []
        for (task, number), committed in FederatedTasks.Rounds.iter(h.state):
            if committed["status"][0] == "Pending":
                assert tasks[task]["status"][0] == "Running"
                assert tasks[task]["last_accepted"] < number <= tasks[task]["last_committed"]
                queued.append((committed["verify_until"], task, number))
                for voter in committed["accepts"] + committed["rejects"]:
                    pending_votes[voter] += 1
        fifo = [tuple(entry) for entry in FederatedTasks.RoundDeadlines.get(h.state)]
        assert sorted(fifo) == sorted(queued) and [e[0] for e in fifo] == sorted(e[0] for e in fifo)
        for keys, info in Workers.Workers.iter(h.state):
            assert info["active_claims"] == claims[keys[0]]
            assert info["pending_verdicts"] == pending_votes[keys[0]]


def step(h: FlHarness, kind: str, a: int, b: int, c: int) -> None:
    task = pick(h, a, PREFER.get(kind, LIVE))
    record = h.task(task)
    if kind == "create" and live_tasks(h) < 2:  # few tasks at a time, so that they get somewhere
        rule = [("FedAvg", None), ("FedMedian", None), ("FedTrimmedAvg", {"beta": 200_000_000})][b % 3]
        h.dispatch(REQUESTERS[a % 2], "create_task", spec=h.spec(rounds=1 + b % 3, min_clients_per_round=2 + c % 2,
                                                                 max_clients=4, rule=rule),
                   bounty=(1 + c % 97) * UNIT + b, join_deadline=h.now + 2 + b % 8, deadline=h.now + 30 + c % 60,
                   validators_required=1 + b % 2, holdout_commitment=None)
    elif kind == "join":
        h.dispatch(CLIENTS[b % len(CLIENTS)], "join", task=task, data_hash=bytes(32), num_examples=1 + c % 50,
                   stake=(10 + c % 5) * UNIT)
    elif kind in ("leave", "withdraw"):
        h.dispatch(CLIENTS[b % len(CLIENTS)], "leave" if kind == "leave" else "withdraw_stake", task=task)
    elif kind == "cancel":
        h.dispatch(REQUESTERS[b % 2], "cancel_task", task=task)
    elif kind == "claim":
        h.dispatch(AGGREGATORS[b % 2], "claim_aggregator", task=task, endpoint=b"127.0.0.1:1")
    elif kind in ("heartbeat", "release"):
        h.dispatch(AGGREGATORS[b % 2], kind, task=task)
    elif kind == "commit" and record is not None:
        commit(h, task, record, b, c)
    elif kind == "verdict" and record is not None:
        verdict(h, task, record, b, c)
    elif kind == "advance":
        h.advance(1 + b % 6, ms_per_block=10 if c % 3 == 0 else 1_000)  # bursts under instant seal, or steady
    elif kind == "grace":
        h.advance_past_grace()


def live_tasks(h: FlHarness) -> int:
    return sum(1 for _, t in FederatedTasks.Tasks.iter(h.state) if t["status"][0] in LIVE)


def pick(h: FlHarness, a: int, prefer: tuple[str, ...]) -> int:
    """Mostly a task in a `prefer` status (so runs get somewhere), sometimes any id, one past the end too."""
    count = int(FederatedTasks.NextTaskId.get(h.state))
    fitting = [keys[0] for keys, t in FederatedTasks.Tasks.iter(h.state) if t["status"][0] in prefer]
    if fitting and a % 4:
        return int(fitting[(a >> 2) % len(fitting)])
    return a % (count + 1)


def commit(h: FlHarness, task: int, record: dict[str, Any], b: int, c: int) -> None:
    joined = [k for k in CLIENTS if FederatedTasks.Clients.contains(h.state, task, k.public_key)]
    number = record["last_committed"] + (1 if b % 5 else 2)  # sometimes out of order
    running = record["status"][0] == "Running"
    aggregator = record["status"][1]["aggregator"] if running else AGGREGATORS[b % 2].public_key
    picked = [k for i, k in enumerate(joined) if (c >> i) & 1 or len(joined) <= 2]
    if b % 7 == 0:
        picked.append(OUTSIDER)
    clients: list[Keypair] = sorted_clients(picked)
    base = h.expected_base(task, number) if number > 1 and h.round(task, number - 1) else bytes(
        record["accepted_model_hash"])
    examples = [FederatedTasks.Clients.get(h.state, task, k.public_key)["num_examples"]
                if FederatedTasks.Clients.contains(h.state, task, k.public_key) else 1 for k in clients]
    updates = h.updates(task, number, base, clients, examples=examples)
    if b % 11 == 0 and updates:
        updates[0]["update_hash"] = bytes(32)  # a signature that no longer covers the update
    h.dispatch(aggregator, "commit_round", **h.commit_args(task, number, clients, base=base, updates=updates))


def verdict(h: FlHarness, task: int, record: dict[str, Any], b: int, c: int) -> None:
    number = record["last_accepted"] + 1 + b % 2
    committed = h.round(task, number)
    if committed is None:
        return
    participants = [client for client, _ in committed["participants"]]
    accept = c % 4 != 0
    rejected = sorted(p for p in participants if p in POISONERS and (c >> 3) & 1)
    factors = [0 if p in POISONERS else (PERBILL * ((c + i) % 5)) // 4 for i, p in enumerate(participants)]
    h.dispatch(VALIDATORS[b % len(VALIDATORS)], "submit_round_verdict", task=task, round=number, verdict={
        "accept": accept, "measured_metric": c, "evidence_hash": bytes(32), "rejected_clients": rejected,
        "contributions": factors})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(KINDS), st.integers(0, 2**16), st.integers(0, 2**16),
                          st.integers(0, 2**16)), min_size=10, max_size=80))
def test_random_call_sequences_keep_the_books(calls: list[tuple[str, int, int, int]]) -> None:
    h = FlHarness()
    h.register_workers()
    books = Books(h)
    for kind, a, b, c in [*PRELUDE, *calls]:
        before, events = h.snapshot(), len(h.ctx.events)
        step(h, kind, a, b, c)
        if kind not in ("advance", "grace") and len(h.ctx.events) == events:
            assert h.snapshot() == before, f"a refused {kind} changed the state"
        books.check()


def test_a_scripted_run_reaches_every_outcome_and_keeps_the_books() -> None:
    """A fixed sequence through acceptance, a client slash, a rejection, a timeout and an expiry, so the
    properties above are seen to hold where the random runs might not go."""
    h = FlHarness()
    h.register_workers()
    books = Books(h)
    task = h.running(clients=CLIENTS[:4], rounds=3, deadline_blocks=60)
    books.check()
    h.commit(task, 1, CLIENTS[:4])
    for v in VALIDATORS[:2]:
        h.verdict(v, task, 1, rejected=[CLIENTS[1]])
        books.check()
    h.commit(task, 2, CLIENTS[:4])
    for v in VALIDATORS[:2]:
        h.verdict(v, task, 2, accept=False)
        books.check()
    h.ok(AGGREGATORS[1], "claim_aggregator", task=task, endpoint=b"h:2")
    h.commit(task, 2, CLIENTS[:4], aggregator=AGGREGATORS[1])
    h.advance_past_grace()
    books.check()
    assert h.events("ClientSlashed") and h.events("RoundRejected") and h.events("RoundTimedOut")
    h.advance_to(h.task(task)["deadline"])
    books.check()
    assert h.status(task) == "Expired"
