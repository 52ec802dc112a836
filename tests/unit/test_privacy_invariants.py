"""Property test of PrivacyBudgets with TaskBounties: random sequences of set_budget, lower_budget,
create_private_task, claim + submit_private_result, accept, reject, cancel and block advances (which expire
tasks and time out verification) from several owners, trainers and validators, through the real runtime.

After every step, for every budget:
- spent + reserved <= budget, for epsilon and for delta; the owner never changes, the budget never rises;
- reserved is exactly the sum of the live reservations on it, and a task holds a reservation iff it is live;
- spent is exactly the sum of the BudgetSpent events on it, and no task spent twice;
- a BudgetSpent's epsilon plus its released part, and a BudgetReleased's epsilon, are the task's whole cap.
"""
from __future__ import annotations

from collections import Counter
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from privacy_harness import DELTA, GRACE_MS, OWNERS, TRAINERS, VALIDATORS, DpHarness, data_hash, dp_claim, dp_spec

from devnet.runtime.pallets.privacy import PrivacyBudgets
from devnet.runtime.pallets.task_bounties import TaskBounties

DATASETS = [data_hash(label) for label in "abc"]
LIVE = ("Open", "Claimed", "Submitted", "Approved", "Challenged")
CLAIMED = ("Submitted", "Approved", "Challenged", "Accepted")  # a DP claim is held for the result

EPSILONS = st.integers(min_value=1, max_value=12_000_000)
DELTAS = st.sampled_from([DELTA, 3 * DELTA, 10 * DELTA])
# (kind, who, target, amount, extra): for budget ops `who` 0 is the data set's own owner, 1 another owner;
# an attempt claims an Open task, submits a claim of `amount` per mille of its cap (above it now and then:
# refused) and is accepted, rejected or left to time out
OPS = st.one_of(
    st.tuples(st.just("set"), st.integers(0, 1), st.integers(0, 2), EPSILONS, DELTAS),
    st.tuples(st.just("lower"), st.integers(0, 1), st.integers(0, 2), EPSILONS, DELTAS),
    # lower to a per mille of the budget (delta too): often between what is reserved and spent + reserved
    st.tuples(st.just("lower"), st.just(0), st.integers(0, 2), st.integers(0, 1_000), st.just(-1)),
    st.tuples(st.just("create"), st.integers(0, 1), st.integers(0, 2), EPSILONS, DELTAS),
    st.tuples(st.just("create"), st.just(0), st.just(0), st.integers(1, 4_000_000), st.just(DELTA)),
    st.tuples(st.just("attempt"), st.integers(0, 1), st.integers(0, 20), st.integers(0, 1_050),
              st.sampled_from(["accept", "reject", "wait"])),
    st.tuples(st.just("attempt"), st.integers(0, 1), st.integers(0, 20), st.integers(0, 1_000),
              st.sampled_from(["accept", "reject"])),
    st.tuples(st.just("cancel"), st.just(0), st.integers(0, 20), st.just(0), st.just(0)),
    st.tuples(st.just("advance"), st.just(0), st.integers(1, GRACE_MS // 1_000 + 2), st.just(0), st.just(0)),
)
Op = tuple[str, int, int, int, Any]


def tasks(h: DpHarness) -> dict[int, dict[str, Any]]:
    return {keys[0]: task for keys, task in TaskBounties.Tasks.iter(h.ctx.state)}


def pick(h: DpHarness, index: int, status: str) -> int | None:
    found = sorted(task_id for task_id, task in tasks(h).items() if task["status"][0] == status)
    return found[index % len(found)] if found else None


def attempt(h: DpHarness, who: int, task_id: int, permille: int, outcome: str) -> None:
    worker = TRAINERS[who]
    if h.dispatch(worker, "claim_task", task_id=task_id) is not None:
        return
    spec = PrivacyBudgets.BountyPrivacy.get(h.ctx.state, task_id)
    claim = dp_claim(spec, epsilon=spec["epsilon_cap"] * permille // 1_000)
    if h.dispatch(worker, "submit_private_result", **h.private_submission(task_id, worker, claim)) is None \
            and outcome != "wait":
        h.dispatch(VALIDATORS[who], "submit_verdict", task_id=task_id,
                   verdict={"accept": outcome == "accept", "measured_metric": 0, "evidence_hash": bytes(32)})


def step(h: DpHarness, op: Op) -> None:
    kind, who, target, amount, extra = op
    owner = OWNERS[(target + who) % len(OWNERS)]
    if kind == "lower" and extra == -1:
        if (budget := h.budget(DATASETS[target])) is not None:
            h.dispatch(owner, "lower_budget", "PrivacyBudgets", data_hash=DATASETS[target],
                       epsilon=budget["epsilon"] * amount // 1_000, delta=budget["delta"] * amount // 1_000)
    elif kind in ("set", "lower"):
        h.dispatch(owner, f"{kind}_budget", "PrivacyBudgets", data_hash=DATASETS[target], epsilon=amount,
                   delta=extra)
    elif kind == "create":
        privacy = dp_spec(epsilon_cap=amount, delta=extra)
        h.dispatch(owner, "create_private_task", **h.create_args(DATASETS[target], privacy, deadline_blocks=10))
    elif kind == "attempt" and (task_id := pick(h, target, "Open")) is not None:
        attempt(h, who, task_id, amount, extra)
    elif kind == "cancel" and (task_id := pick(h, target, "Open")) is not None:
        requester = next(o for o in OWNERS if o.public_key == h.task(task_id)["requester"])
        h.dispatch(requester, "cancel_task", task_id=task_id)
    elif kind == "advance":
        h.advance(target)


class Ledger:
    """What earlier steps promised: owners and budgets as first seen, caps as reserved."""

    def __init__(self) -> None:
        self.owners: dict[bytes, bytes] = {}
        self.highest: dict[bytes, tuple[int, int]] = {}
        self.caps: dict[int, tuple[int, int]] = {}

    def check(self, h: DpHarness) -> None:
        spent_events = h.events("BudgetSpent")
        released_events = h.events("BudgetReleased")
        for event in h.events("BudgetReserved"):
            self.caps.setdefault(event["task"], (event["epsilon"], event["delta"]))
        settled = Counter(e["task"] for e in spent_events + released_events)
        assert all(count == 1 for count in settled.values()), settled  # nothing spent or released twice
        for event in spent_events:
            assert (event["epsilon"] + event["released_epsilon"], event["delta"]) <= self.caps[event["task"]]
            assert event["epsilon"] + event["released_epsilon"] == self.caps[event["task"]][0]
        for event in released_events:
            assert (event["epsilon"], event["delta"]) == self.caps[event["task"]]

        reservations: dict[bytes, list[tuple[int, int]]] = {}
        reserved_tasks = set()
        for (task_id, holder), reservation in PrivacyBudgets.BountyReservations.iter(h.ctx.state):
            assert holder == h.task(task_id)["requester"]
            assert holder == PrivacyBudgets.Budgets.get(h.ctx.state, reservation["data_hash"])["owner"]
            reservations.setdefault(reservation["data_hash"], []).append((reservation["epsilon"], reservation["delta"]))
            reserved_tasks.add(task_id)
        private = {task_id: task for task_id, task in tasks(h).items()
                   if PrivacyBudgets.BountyPrivacy.contains(h.ctx.state, task_id)}
        assert reserved_tasks == {task_id for task_id, task in private.items() if task["status"][0] in LIVE}
        assert all(settled[task_id] == 1 for task_id, task in private.items() if task["status"][0] not in LIVE)
        claimed = {keys[0] for keys, _ in PrivacyBudgets.BountyClaims.iter(h.ctx.state)}
        assert claimed == {task_id for task_id, task in private.items() if task["status"][0] in CLAIMED}

        for (data,), budget in PrivacyBudgets.Budgets.iter(h.ctx.state):
            assert budget["spent_epsilon"] + budget["reserved_epsilon"] <= budget["epsilon"]
            assert budget["spent_delta"] + budget["reserved_delta"] <= budget["delta"]
            assert self.owners.setdefault(data, budget["owner"]) == budget["owner"]
            top = self.highest.setdefault(data, (budget["epsilon"], budget["delta"]))
            assert budget["epsilon"] <= top[0] and budget["delta"] <= top[1]
            self.highest[data] = (budget["epsilon"], budget["delta"])
            held = reservations.get(data, [])
            assert (budget["reserved_epsilon"], budget["reserved_delta"]) == (sum(e for e, _ in held),
                                                                             sum(d for _, d in held))
            spent = [e for e in spent_events if e["data_hash"] == data]
            assert (budget["spent_epsilon"], budget["spent_delta"]) == (sum(e["epsilon"] for e in spent),
                                                                       sum(e["delta"] for e in spent))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from([0, 3_000]), st.lists(OPS, min_size=5, max_size=40))
def test_random_sequences_keep_the_budget_ledger(period: int, ops: list[Op]) -> None:
    h = DpHarness(challenge_period_ms=period)
    h.register_workers()
    h.set_budget(OWNERS[0], DATASETS[0], 6_000_000, 10 * DELTA)
    ledger = Ledger()
    for op in ops:
        step(h, op)
        ledger.check(h)
