"""orchestrator.scheduler: eligibility, FIFO order, reservations with TTL, fairness, no double assignment."""
from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.domain import Capabilities, Requirements, TaskStatus, TaskView, WorkerView
from orchestrator.scheduler import (
    FairnessPolicy,
    Reservations,
    ReservedByAnother,
    Waiter,
    can_take,
    choose_task,
)

BIG = Capabilities(cpus=16, gpus=2, gpu_model="H100", memory_mb=128_000)


def task(task_id: int, *, cpus: int = 2, gpus: int = 1, mem: int = 8_000, min_stake: int = 0,
         status: TaskStatus = TaskStatus.OPEN, requester: str = "req", deadline: int = 1_000,
         bounty: int = 10) -> TaskView:
    return TaskView(task_id=task_id, requester=requester, recipe="r", spec_hash=b"\x11" * 32, spec_uri="u",
                    dataset_hash=b"\x22" * 32, eval_metric="acc", eval_target=1, requirements=Requirements(cpus, gpus, mem),
                    bounty=bounty, min_stake=min_stake, deadline=deadline, validators_required=1, status=status)


def worker(account: str = "w1", *, caps: Capabilities = BIG, stake: int = 1_000, claims: int = 0,
           role: str = "Trainer", active: bool = True) -> WorkerView:
    return WorkerView(account=account, role=role, stake=stake, capabilities=caps, active=active, active_claims=claims)


# Eligibility -------------------------------------------------------------------------------------
@pytest.mark.parametrize("w,t,ok", [
    (worker(), task(0), True),
    (worker(caps=Capabilities(1, 2, "x", 128_000)), task(0), False),        # cpus
    (worker(caps=Capabilities(16, 0, "x", 128_000)), task(0), False),       # gpus
    (worker(caps=Capabilities(16, 2, "x", 4_000)), task(0), False),         # memory
    (worker(stake=10), task(0, min_stake=11), False),                        # stake
    (worker(stake=11), task(0, min_stake=11), True),
    (worker(role="Validator"), task(0), False),
    (worker(active=False), task(0), False),
    (worker("req"), task(0, requester="req"), False),                        # requester cannot work
    (worker(), task(0, status=TaskStatus.CLAIMED), False),
])
def test_can_take(w: WorkerView, t: TaskView, ok: bool) -> None:
    assert can_take(w, t) is ok


U32, U64, U128 = (1 << 32) - 1, (1 << 64) - 1, (1 << 128) - 1
MAX_CAPS = Capabilities(U32, U32, "x", U64)


@pytest.mark.parametrize("w,t,ok", [  # the chain's types at their ends: the comparisons are the pallet's
    (worker(caps=MAX_CAPS, stake=U128), task(U64, cpus=U32, gpus=U32, mem=U64, min_stake=U128, deadline=U32), True),
    (worker(caps=replace(MAX_CAPS, memory_mb=U64 - 1), stake=U128), task(0, cpus=U32, gpus=U32, mem=U64), False),
    (worker(caps=replace(MAX_CAPS, cpus=U32 - 1), stake=U128), task(0, cpus=U32, gpus=0, mem=0), False),
    (worker(caps=MAX_CAPS, stake=U128 - 1), task(0, min_stake=U128), False),
    (worker(caps=Capabilities(0, 0, "", 0), stake=0), task(0, cpus=0, gpus=0, mem=0, deadline=U32), True),
])
def test_can_take_at_the_extremes(w: WorkerView, t: TaskView, ok: bool) -> None:
    assert can_take(w, t, block=U32 - 1) is ok


def test_min_trainer_stake_and_deadline() -> None:
    assert not can_take(worker(stake=50), task(0), min_trainer_stake=100)
    assert not can_take(worker(), task(0, deadline=10), block=10)
    assert can_take(worker(), task(0, deadline=10), block=9)


def test_fifo_order_and_skips_ineligible() -> None:
    tasks = [task(0, gpus=8), task(1), task(2)]
    r = Reservations()
    assert choose_task(worker(), tasks, r, 4, now=0).task_id == 1


def test_claim_limit_counts_reservations() -> None:
    r = Reservations(ttl=30)
    tasks = [task(i) for i in range(10)]
    w = worker(claims=2)
    got = []
    for _ in range(5):
        t = choose_task(w, tasks, r, 4, now=0)
        if t is None:
            break
        r.reserve(t.task_id, w.account, now=0)
        got.append(t.task_id)
    assert got == [0, 1]  # 2 claims on chain + 2 reservations = MaxClaimsPerWorker
    assert choose_task(w, tasks, r, 4, now=31).task_id == 0  # the reservations expired


def test_reserved_task_is_not_offered_to_another() -> None:
    r = Reservations(ttl=30)
    r.reserve(0, "w1", now=0)
    assert choose_task(worker("w2"), [task(0), task(1)], r, 4, now=1).task_id == 1
    with pytest.raises(ReservedByAnother):
        r.reserve(0, "w2", now=1)
    assert r.reserve(0, "w2", now=30).worker == "w2"  # expired at 30: free again


def test_reservation_release_and_expiry() -> None:
    r = Reservations(ttl=10)
    r.reserve(1, "a", now=0)
    r.reserve(2, "a", now=5)
    assert r.next_expiry() == 10
    assert [x.task_id for x in r.expire(10)] == [1]
    assert r.holder(2, now=10) == "a"
    assert r.release(2, "b") is None and r.holder(2, now=10) == "a"  # only the holder's release counts
    assert r.release(2).task_id == 2
    assert len(r) == 0 and r.next_expiry() is None
    r.reserve(3, "a", now=0)
    r.reserve(3, "a", now=8)  # renewal moves the expiry
    assert r.expire(10) == [] and r.holder(3, now=17) == "a" and r.holder(3, now=18) is None


def test_fairness_prefers_fewer_held_then_longest_waiting() -> None:
    policy = FairnessPolicy()
    r = Reservations()
    busy = Waiter(worker("busy", claims=3), policy.next_seq())
    idle_late = Waiter(worker("idle2"), policy.next_seq())
    idle_early = Waiter(worker("idle1"), 0)  # arrived first
    order = [w.worker.account for w in policy.order([busy, idle_late, idle_early], r, 0)]
    assert order == ["idle1", "idle2", "busy"]
    # One task: the busy worker yields it to an idle one that can take it.
    served = policy.assign([busy, idle_late], lambda w: [task(7)], r, 4, now=0)
    assert [(w.worker.account, t.task_id) for w, _, t in served] == [("idle2", 7)]
    # ... but not to one that cannot take it.
    r2 = Reservations()
    weak = Waiter(worker("weak", caps=Capabilities(1, 0, "", 1)), 0)
    served = policy.assign([weak, busy], lambda w: [task(7)], r2, 4, now=0)
    assert [(w.worker.account, t.task_id) for w, _, t in served] == [("busy", 7)]


def test_round_robin_among_equals() -> None:
    policy = FairnessPolicy()
    r = Reservations()
    waiters = [Waiter(worker(f"w{i}"), policy.next_seq()) for i in range(3)]
    tasks = [task(i) for i in range(2)]
    served = policy.assign(waiters, lambda w: tasks, r, 4, now=0)
    assert [(w.worker.account, t.task_id) for w, _, t in served] == [("w0", 0), ("w1", 1)]


# Properties --------------------------------------------------------------------------------------
caps_st = st.builds(Capabilities, st.integers(0, 8), st.integers(0, 4), st.just("g"), st.integers(0, 64_000))


@st.composite
def scenario(draw):  # type: ignore[no-untyped-def]
    n_tasks = draw(st.integers(0, 40))
    tasks = [task(i, cpus=draw(st.integers(0, 8)), gpus=draw(st.integers(0, 4)), mem=draw(st.integers(0, 64_000)),
                  min_stake=draw(st.integers(0, 100)),
                  status=draw(st.sampled_from([TaskStatus.OPEN] * 4 + [TaskStatus.CLAIMED])),
                  requester=draw(st.sampled_from(["req", "w0"])))
             for i in range(n_tasks)]
    workers = [worker(f"w{i}", caps=draw(caps_st), stake=draw(st.integers(0, 100)), claims=draw(st.integers(0, 4)),
                      role=draw(st.sampled_from(["Trainer", "Trainer", "Validator"])))
               for i in range(draw(st.integers(1, 12)))]
    rounds = draw(st.lists(st.tuples(st.lists(st.integers(0, len(workers) - 1), max_size=12),
                                     st.floats(0, 20)), min_size=1, max_size=6))
    return tasks, workers, rounds


@settings(max_examples=200, deadline=None)
@given(scenario(), st.integers(1, 4))
def test_never_double_assigned_and_limits_hold(data, max_claims: int) -> None:  # type: ignore[no-untyped-def]
    tasks, workers, rounds = data
    policy, r = FairnessPolicy(), Reservations(ttl=10)
    now = 0.0
    for picks, dt in rounds:
        now += dt
        r.expire(now)
        waiters = [Waiter(workers[i], policy.next_seq()) for i in dict.fromkeys(picks)]
        served = policy.assign(waiters, lambda w: tasks, r, max_claims, now)
        ids = [t.task_id for _, _, t in served]
        assert len(ids) == len(set(ids))  # one task to one worker per round
        for waiter, reservation, t in served:
            w = waiter.worker
            assert can_take(w, t)
            assert reservation.worker == w.account and r.holder(t.task_id, now) == w.account
            assert w.active_claims + r.count(w.account, now) <= max_claims
        # globally: each task reserved by at most one worker
        holders: dict[int, str] = {}
        for w in workers:
            for res in r.of_worker(w.account, now):
                assert res.task_id not in holders
                holders[res.task_id] = w.account
        # a waiter left unserved really had nothing: no free eligible task within its limit
        served_accounts = {w.worker.account for w, _, _ in served}
        for waiter in waiters:
            if waiter.worker.account not in served_accounts:
                assert choose_task(waiter.worker, tasks, r, max_claims, now) is None


@settings(max_examples=100, deadline=None)
@given(st.lists(st.builds(lambda i, g: task(i, gpus=g), st.integers(0, 500), st.integers(0, 3)), unique_by=lambda t: t.task_id),
       caps_st)
def test_choice_is_oldest_eligible(tasks, caps) -> None:  # type: ignore[no-untyped-def]
    tasks = sorted(tasks, key=lambda t: t.task_id)
    w = worker(caps=replace(caps, cpus=16, memory_mb=128_000))
    chosen = choose_task(w, tasks, Reservations(), 4, now=0)
    eligible = [t for t in tasks if can_take(w, t)]
    assert chosen == (eligible[0] if eligible else None)
