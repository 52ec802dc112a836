"""Scheduling decisions: pure functions and small policy objects, no I/O, no clock of their own.

Decisions (see docs/orchestrator.md):

- Eligibility mirrors `TaskBounties.claim_task`, so an offered task is one the chain will let the worker
  claim: the task is Open and not past its deadline, the worker is an active Trainer that is not the
  requester, its stake covers max(task.min_stake, MinTrainerStake), its capabilities meet the
  requirements, and its on-chain claims plus its live reservations stay below MaxClaimsPerWorker.
- Order: oldest task first (FIFO by task id). It is predictable, starves no task (a bounty-first order
  would leave cheap tasks waiting forever while richer ones keep arriving) and lets the index hand out
  candidates lazily in id order, so a decision costs O(log n) with 100,000 open tasks.
- Reservations: an off-chain hold of one task for one worker for `ttl` seconds. A task is reserved by at
  most one worker at a time; a reservation ends when the claim shows up on chain (any claimant), when the
  task leaves Open, when the worker releases it, or when it expires.
- Fairness: when several workers wait, `FairnessPolicy` serves first the one holding the fewest tasks
  (claims + reservations), then the one waiting longest (round robin among equals); a worker that already
  holds work yields a task to a waiting worker with less that can take it.
"""
from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from orchestrator.domain import TaskStatus, TaskView, WorkerView

DEFAULT_RESERVATION_TTL = 30.0


@dataclass(frozen=True)
class Reservation:
    task_id: int
    worker: str
    expires_at: float


class Reservations:
    """task -> (worker, expires_at) with a TTL; never one task to two workers at once.

    Times are whatever clock the caller passes as `now` (monotonic seconds in the orchestrator).
    """

    def __init__(self, ttl: float = DEFAULT_RESERVATION_TTL, *, on_reserve: Callable[[int], None] | None = None,
                 on_release: Callable[[int], None] | None = None) -> None:
        """`on_reserve(task_id)` / `on_release(task_id)` are told when a task becomes reserved / free (the
        orchestrator uses them to keep reserved tasks out of the index's candidate lists)."""
        if ttl <= 0:
            raise ValueError("ttl must be positive")
        self.ttl = ttl
        self._on_reserve, self._on_release = on_reserve, on_release
        self._by_task: dict[int, Reservation] = {}
        self._by_worker: dict[str, set[int]] = {}
        self._expiries: list[tuple[float, int]] = []  # heap; stale entries are skipped

    def __len__(self) -> int:
        return len(self._by_task)

    def expire(self, now: float) -> list[Reservation]:
        """Drop reservations whose time is up; returns them."""
        freed: list[Reservation] = []
        while self._expiries and self._expiries[0][0] <= now:
            expires_at, task_id = heapq.heappop(self._expiries)
            current = self._by_task.get(task_id)
            if current is not None and current.expires_at == expires_at:
                self._remove(current)
                freed.append(current)
        return freed

    def next_expiry(self) -> float | None:
        while self._expiries:
            expires_at, task_id = self._expiries[0]
            current = self._by_task.get(task_id)
            if current is not None and current.expires_at == expires_at:
                return expires_at
            heapq.heappop(self._expiries)
        return None

    def get(self, task_id: int, now: float) -> Reservation | None:
        current = self._by_task.get(task_id)
        if current is not None and current.expires_at <= now:
            self._remove(current)
            return None
        return current

    def holder(self, task_id: int, now: float) -> str | None:
        current = self.get(task_id, now)
        return None if current is None else current.worker

    def of_worker(self, worker: str, now: float) -> list[Reservation]:
        live: list[Reservation] = []
        for task_id in sorted(self._by_worker.get(worker, ())):
            current = self.get(task_id, now)
            if current is not None:
                live.append(current)
        return live

    def count(self, worker: str, now: float) -> int:
        return len(self.of_worker(worker, now))

    def reserve(self, task_id: int, worker: str, now: float, ttl: float | None = None) -> Reservation:
        """Hold `task_id` for `worker` until now + ttl (renewed if it already holds it).

        Raises ReservedByAnother if another worker holds a live reservation of the task.
        """
        current = self.get(task_id, now)
        if current is not None and current.worker != worker:
            raise ReservedByAnother(task_id, current.worker)
        if current is not None:
            self._remove(current, notify=False)
        reservation = Reservation(task_id, worker, now + (self.ttl if ttl is None else ttl))
        self._by_task[task_id] = reservation
        if current is None and self._on_reserve is not None:
            self._on_reserve(task_id)
        self._by_worker.setdefault(worker, set()).add(task_id)
        heapq.heappush(self._expiries, (reservation.expires_at, task_id))
        return reservation

    def release(self, task_id: int, worker: str | None = None) -> Reservation | None:
        """End the reservation of `task_id` (only if `worker` holds it, when given); returns it."""
        current = self._by_task.get(task_id)
        if current is None or (worker is not None and current.worker != worker):
            return None
        self._remove(current)
        return current

    def _remove(self, reservation: Reservation, *, notify: bool = True) -> None:
        self._by_task.pop(reservation.task_id, None)
        if notify and self._on_release is not None:
            self._on_release(reservation.task_id)
        tasks = self._by_worker.get(reservation.worker)
        if tasks is not None:
            tasks.discard(reservation.task_id)
            if not tasks:
                del self._by_worker[reservation.worker]


class ReservedByAnother(Exception):
    def __init__(self, task_id: int, holder: str) -> None:
        super().__init__(f"task {task_id} is reserved by {holder}")
        self.task_id, self.holder = task_id, holder


# Eligibility and choice -------------------------------------------------------------------------

def can_take(worker: WorkerView, task: TaskView, *, min_trainer_stake: int = 0, block: int | None = None) -> bool:
    """Whether the chain would let `worker` claim `task` (claim-count limits aside)."""
    return (task.status is TaskStatus.OPEN
            and worker.active and worker.role == "Trainer"
            and task.requester != worker.account
            and worker.stake >= max(task.min_stake, min_trainer_stake)
            and task.requirements.met_by(worker.capabilities)
            and (block is None or block < task.deadline))


def held(worker: WorkerView, reservations: Reservations, now: float) -> int:
    """Tasks the worker holds: claims on chain plus live reservations."""
    return worker.active_claims + reservations.count(worker.account, now)


def choose_task(worker: WorkerView, open_tasks: Iterable[TaskView], reservations: Reservations, max_claims: int,
                now: float, *, min_trainer_stake: int = 0, block: int | None = None,
                scan_limit: int | None = None) -> TaskView | None:
    """The oldest open task `worker` may take and nobody has reserved, or None. Reserves nothing.

    `open_tasks` is scanned in the order given (the index yields candidates in id order); `scan_limit`
    bounds how many are looked at.
    """
    if not worker.active or worker.role != "Trainer":
        return None
    reservations.expire(now)
    if held(worker, reservations, now) >= max_claims:
        return None
    for n, task in enumerate(open_tasks):
        if scan_limit is not None and n >= scan_limit:
            return None
        if not can_take(worker, task, min_trainer_stake=min_trainer_stake, block=block):
            continue
        if reservations.get(task.task_id, now) is not None:
            continue
        return task
    return None


# Fairness ---------------------------------------------------------------------------------------

@dataclass
class Waiter:
    """A worker waiting for an assignment; `seq` is its arrival order. Callers that need more per waiter
    (the handlers' future) subclass it: `FairnessPolicy` hands back the waiters it was given, typed as given."""

    worker: WorkerView
    seq: int
    declined: frozenset[int] = field(default=frozenset(), compare=False)  # tasks it will not take


W = TypeVar("W", bound=Waiter)


class FairnessPolicy:
    """Who is served first when several workers want work: fewest held tasks, then longest waiting."""

    def __init__(self) -> None:
        self._seq = itertools.count()

    def next_seq(self) -> int:
        return next(self._seq)

    def order(self, waiters: Sequence[W], reservations: Reservations, now: float) -> list[W]:
        return sorted(waiters, key=lambda w: (held(w.worker, reservations, now), w.seq))

    def assign(self, waiters: Sequence[W], candidates: Callable[[WorkerView], Iterable[TaskView]],
               reservations: Reservations, max_claims: int, now: float, *, min_trainer_stake: int = 0,
               block: int | None = None) -> list[tuple[W, Reservation, TaskView]]:
        """One round: each waiter in fairness order gets at most one task (never one it declined), reserved
        for it in `reservations`.

        Returns (waiter, reservation, task) for those served; the others keep waiting.
        """
        served: list[tuple[W, Reservation, TaskView]] = []
        for waiter in self.order(waiters, reservations, now):
            offered = (t for t in candidates(waiter.worker) if t.task_id not in waiter.declined)
            task = choose_task(waiter.worker, offered, reservations, max_claims, now,
                               min_trainer_stake=min_trainer_stake, block=block)
            if task is not None:
                served.append((waiter, reservations.reserve(task.task_id, waiter.worker.account, now), task))
        return served


__all__ = ["DEFAULT_RESERVATION_TTL", "FairnessPolicy", "Reservation", "Reservations", "ReservedByAnother",
           "Waiter", "can_take", "choose_task", "held"]
