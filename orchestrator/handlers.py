"""The logic of every worker and task RPC, over (index, scheduler policy, relay, pub/sub, clock): no transport.

`Handlers` implements `orchestrator.api.WorkerApi` and `TaskApi`; the gRPC servicers call it after
authenticating the caller. State it keeps (sessions, reservations, long-poll waiters) lives on the
asyncio loop that calls it; the indexer thread reaches it only through `on_block`, which hops onto
that loop.

- register_worker: the account must be an active Trainer in the index (i.e. on chain). The session's
  capabilities are the declared ones capped by the on-chain ones (the chain checks the latter).
- request_assignment: long poll. Waiters are served by the FairnessPolicy whenever something may have
  changed: a new request, a finalized block (new or reopened tasks, ended claims), a reservation expiring.
  A served waiter gets a fresh off-chain reservation (TTL `reservation_ttl`); the claim becomes binding
  only when the worker's own signed `claim_task` is on chain, whereupon the reservation ends.
- relay_extrinsic / report_progress: the extrinsic is decoded with the chain's metadata and must be
  signed by the caller and be TaskBounties.{claim_task, heartbeat, release_claim, submit_result,
  submit_private_result} about the task named; it is relayed as is (the orchestrator never signs). A private
  task's result (submit_private_result: the attestation plus the worker's DpClaim) is held to exactly the
  checks of submit_result: whether the claim is honest is for the pallet and the validators to judge.
- watch_task: first a "State" event (the task as indexed, block = the index height), then the task's
  chain events (block > 0) and live progress ("Progress", block 0) as they happen.
"""
from __future__ import annotations

import asyncio
import logging
import math
import re
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from orchestrator.columns import is_u64
from orchestrator.domain import Assignment, Capabilities, ProgressUpdate, TaskEvent, TaskStatus, TaskView, WorkerView
from orchestrator.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied, Unavailable
from orchestrator.index import Change, Index
from orchestrator.indexer import PubSub
from orchestrator.scheduler import DEFAULT_RESERVATION_TTL, FairnessPolicy, Reservations, Waiter
from runtime_bindings.base import DecodedExtrinsic
from runtime_bindings.generated.types import Progress

if TYPE_CHECKING:  # the types only: the handlers are built on a chain connection and a relay made elsewhere
    from orchestrator.metrics import Metrics
    from orchestrator.relay import Relay
    from runtime_bindings import Chain

log = logging.getLogger(__name__)
RELAYABLE = ("claim_task", "heartbeat", "release_claim", "submit_result", "submit_private_result")
RESULTS = ("submit_result", "submit_private_result")  # a result: only from the worker holding the claim
MAX_PAGE = 1000
DEFAULT_PAGE = 100
_HASH = re.compile(r"^0x[0-9a-fA-F]{64}$")


@dataclass(frozen=True)
class ChainConstants:
    """The runtime constants the scheduler mirrors."""

    max_claims_per_worker: int = 4
    claim_lease: int = 10
    min_trainer_stake: int = 0

    @classmethod
    def from_chain(cls, chain: Chain) -> ChainConstants:
        return cls(max_claims_per_worker=chain.task_bounties.max_claims_per_worker,
                   claim_lease=chain.task_bounties.claim_lease,
                   min_trainer_stake=chain.workers.min_trainer_stake)


def _heartbeat_step(decoded: DecodedExtrinsic, default: int) -> int:
    """The step a decoded heartbeat commits, read through the chain's own `Progress` type (`default` when
    it carries no progress); a progress of another shape is the caller's error."""
    progress = decoded.args.get("progress")
    if progress is None:
        return default
    try:
        return Progress.from_value(progress).step
    except (KeyError, TypeError, ValueError):
        raise InvalidArgument(f"the heartbeat's progress is not a Progress: {progress!r}") from None


class ExtrinsicDecoder:
    """Decodes extrinsic bytes with the chain's metadata (`Chain.decode_extrinsic`, on the bindings' connection:
    one lost meanwhile, e.g. by a node restart, is re-opened and the decoding retried once)."""

    def __init__(self, chain: Chain) -> None:
        self.chain = chain

    def decode(self, raw: bytes) -> DecodedExtrinsic:
        try:
            return self.chain.decode_extrinsic(raw)
        except ValueError as exc:
            raise InvalidArgument(str(exc)) from None


@dataclass
class _Session:
    capabilities: Capabilities | None
    since: float


@dataclass
class _PendingWaiter(Waiter):
    """A long poll: the scheduler's waiter plus the future its assignment is set on."""

    future: asyncio.Future[Assignment] = field(kw_only=True, compare=False)


class Handlers:
    """WorkerApi + TaskApi (see orchestrator/api.py for the contract of each method)."""

    def __init__(self, index: Index, policy: FairnessPolicy | None = None, relay: Relay | None = None,
                 pubsub: PubSub | None = None, clock: Callable[[], float] = time.monotonic,
                 constants: ChainConstants = ChainConstants(), *, decoder: ExtrinsicDecoder | None = None,
                 reservation_ttl: float = DEFAULT_RESERVATION_TTL, max_wait_s: float = 60.0,
                 metrics: Metrics | None = None, progress_flush_s: float = 1.0) -> None:
        self.index, self.relay, self.clock, self.constants = index, relay, clock, constants
        self.policy = policy or FairnessPolicy()
        self.pubsub = pubsub or PubSub()
        self.decoder = decoder or (ExtrinsicDecoder(relay.chain) if relay is not None else None)
        self.max_wait_s, self.metrics = max_wait_s, metrics
        self.reservations = Reservations(reservation_ttl, on_reserve=index.open_tasks.hide,
                                         on_release=index.open_tasks.unhide)
        self.sessions: dict[str, _Session] = {}
        self._waiters: list[_PendingWaiter] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._flush_timer: asyncio.TimerHandle | None = None
        self.progress_flush_s = progress_flush_s
        self._lock = threading.Lock()

    # Loop affinity ----------------------------------------------------------------------------
    def bind_loop(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = loop or asyncio.get_running_loop()

    def _ensure_loop(self) -> None:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()

    def on_block(self, number: int, block_hash: str, changes: Sequence[Change]) -> None:
        """Indexer callback (any thread): a finalized block was committed to the index."""
        loop = self._loop
        if loop is None or loop.is_closed():
            self._after_block(number, changes)
            return
        try:
            loop.call_soon_threadsafe(self._after_block, number, changes)
        except RuntimeError:  # the loop closed meanwhile
            pass

    def _after_block(self, number: int, changes: Sequence[Change]) -> None:
        for change in changes:
            name, task_id = getattr(change, "name", None), getattr(change, "task_id", None)
            if task_id is None or getattr(change, "pallet", None) != "TaskBounties":
                continue
            if name == "TaskClaimed":  # binding now: the reservation has done its job (whoever claimed)
                self.reservations.release(task_id)
            elif name in ("TaskAccepted", "TaskReopened", "TaskExpired", "TaskCancelled", "ResultSubmitted"):
                self.reservations.release(task_id)
                if self.relay is not None:
                    self.relay.forget(task_id)
        if self.relay is not None and self._loop is not None and self._loop.is_running():
            self._loop.create_task(self.relay.flush(number))
        self._dispatch()

    # Workers ----------------------------------------------------------------------------------
    def _chain_worker(self, account: str) -> WorkerView:
        worker = self.index.worker(account)
        if worker is None:
            raise PermissionDenied(f"{account} is not registered as a worker on chain "
                                   f"(register with Workers.register as a Trainer first)")
        if worker.role != "Trainer":
            raise PermissionDenied(f"{account} is registered as a {worker.role}, not a Trainer")
        if not worker.active:
            raise PermissionDenied(f"{account} is unbonding: it gets no new tasks")
        return worker

    def _effective(self, worker: WorkerView) -> WorkerView:
        session = self.sessions.get(worker.account)
        if session is None or session.capabilities is None:
            return worker
        c, d = worker.capabilities, session.capabilities
        caps = Capabilities(min(c.cpus, d.cpus), min(c.gpus, d.gpus), c.gpu_model, min(c.memory_mb, d.memory_mb))
        return replace(worker, capabilities=caps)

    def register_worker(self, account: str, capabilities: Capabilities) -> WorkerView:
        if capabilities is not None and min(capabilities.cpus, capabilities.gpus, capabilities.memory_mb) < 0:
            raise InvalidArgument("capabilities must not be negative")
        worker = self._chain_worker(account)
        self.sessions[account] = _Session(capabilities, self.clock())
        return self._effective(worker)

    async def request_assignment(self, account: str, wait_s: float,
                                 declined: frozenset[int] = frozenset()) -> Assignment | None:
        if not isinstance(wait_s, (int, float)) or math.isnan(wait_s) or wait_s < 0:
            raise InvalidArgument("wait_s must be a number of seconds, zero or more")
        wait_s = min(float(wait_s), self.max_wait_s)
        self._chain_worker(account)
        self._ensure_loop()
        # a task the worker declined stays reserved for nobody: else a few tasks it cannot use (a hostile
        # requester's) would hold its reservation quota and be offered again and again, starving it
        for task_id in declined:
            self.reservations.release(task_id, account)
        future: asyncio.Future[Assignment] = asyncio.get_running_loop().create_future()
        waiter = _PendingWaiter(self._effective(self._chain_worker(account)), self.policy.next_seq(),
                                declined=frozenset(declined), future=future)
        self._waiters.append(waiter)
        self._dispatch()
        try:
            if not future.done():
                await asyncio.wait_for(asyncio.shield(future), wait_s if wait_s > 0 else 0)
        except TimeoutError:
            pass
        except asyncio.CancelledError:
            self._drop_waiter(waiter)
            if future.done() and not future.cancelled():
                self.reservations.release(future.result().task.task_id, account)
            raise
        self._drop_waiter(waiter)
        if future.done() and not future.cancelled():
            return future.result()
        future.cancel()
        if self.metrics is not None:
            self.metrics.assignment_timeouts.inc()
        return None

    def _drop_waiter(self, waiter: _PendingWaiter) -> None:
        try:
            self._waiters.remove(waiter)
        except ValueError:
            pass
        self._gauges()

    def _dispatch(self) -> None:
        """Serve waiting workers (fairness order) from the open tasks; re-arm the expiry timer."""
        now = self.clock()
        expired = self.reservations.expire(now)
        if expired and self.metrics is not None:
            self.metrics.reservations_expired.inc(len(expired))
        live = [w for w in self._waiters if not w.future.done()]
        if live:
            for waiter in live:  # refresh claims and stake from the index
                fresh = self.index.worker(waiter.worker.account)
                if fresh is not None:
                    waiter.worker = self._effective(fresh)
            served = self.policy.assign(
                live, lambda w: self.index.open_tasks_for(w.capabilities, w.stake), self.reservations,
                self.constants.max_claims_per_worker, now, min_trainer_stake=self.constants.min_trainer_stake,
                block=self.index.last_block.number or None)
            for waiter, reservation, task in served:
                waiter.future.set_result(Assignment(task, reservation.worker, reservation.expires_at))
                self._waiters.remove(waiter)
                if self.metrics is not None:
                    self.metrics.assignments.inc()
        self._arm_timer(now)
        self._gauges()

    def _arm_timer(self, now: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        nxt = self.reservations.next_expiry()
        if nxt is None or self._loop is None or not self._waiters:
            return
        try:
            self._timer = self._loop.call_later(max(nxt - now, 0.0) + 0.001, self._dispatch)
        except RuntimeError:
            self._timer = None

    def _gauges(self) -> None:
        if self.metrics is not None:
            self.metrics.reservations.set(len(self.reservations))
            self.metrics.waiting_workers.set(len(self._waiters))

    # Ownership --------------------------------------------------------------------------------
    def _task(self, task_id: int) -> TaskView:
        if not is_u64(task_id):  # no chain task has such an id (TaskId is a u64)
            raise InvalidArgument("task_id must be an integer in 0..2^64-1")
        task = self.index.task(task_id)
        if task is None:
            raise NotFound(f"no task {task_id}")
        return task

    def _holds(self, account: str, task: TaskView) -> bool:
        """The caller holds the task on chain, or it is reserved for the caller."""
        if task.worker == account and task.status in (TaskStatus.CLAIMED, TaskStatus.SUBMITTED):
            return True
        return self.reservations.holder(task.task_id, self.clock()) == account

    def task_spec(self, account: str, task_id: int) -> TaskView:
        task = self._task(task_id)
        if not (self._holds(account, task) or task.worker == account):
            raise PermissionDenied(f"task {task_id} is neither held by nor reserved for {account}")
        return task

    # Extrinsics -------------------------------------------------------------------------------
    async def _decode_checked(self, account: str, task_id: int, raw: bytes,
                              allowed: Sequence[str] = RELAYABLE) -> DecodedExtrinsic:
        if not isinstance(raw, (bytes, bytearray)) or not raw:
            raise InvalidArgument("the extrinsic must be non-empty bytes")
        if self.decoder is None:
            raise Unavailable("this orchestrator has no chain connection to relay through")
        try:
            decoded = await asyncio.to_thread(self.decoder.decode, bytes(raw))
        except (InvalidArgument, Unavailable):
            raise
        except Exception as exc:  # noqa: BLE001 - a lost connection while loading metadata
            raise Unavailable(f"cannot decode with the chain's metadata now: {exc}") from None
        if decoded.signer is None:
            raise PermissionDenied("the extrinsic is unsigned: it must be signed by the caller's own key")
        if decoded.signer != account:
            raise PermissionDenied(f"the extrinsic is signed by {decoded.signer}, not by the caller {account}")
        if decoded.pallet != "TaskBounties" or decoded.call not in allowed:
            raise InvalidArgument(f"{decoded.pallet}.{decoded.call} cannot be relayed here; only TaskBounties."
                                  f"{{{', '.join(allowed)}}}")
        if decoded.args.get("task_id") != task_id:
            raise InvalidArgument(f"the extrinsic is about task {decoded.args.get('task_id')}, not {task_id}")
        return decoded

    async def relay_extrinsic(self, account: str, task_id: int, extrinsic: bytes) -> str:
        task = self._task(task_id)
        decoded = await self._decode_checked(account, task_id, extrinsic)
        now = self.clock()
        if decoded.call == "claim_task":
            holder = self.reservations.holder(task_id, now)
            if holder is not None and holder != account:
                raise PermissionDenied(f"task {task_id} is reserved for another worker")
            if task.status is not TaskStatus.OPEN:
                raise FailedPrecondition(f"task {task_id} is {task.status.value}, not Open")
        elif decoded.call in RESULTS:
            if task.worker != account or task.status is not TaskStatus.CLAIMED:
                raise PermissionDenied(f"task {task_id} is not claimed by {account}")
        elif not self._holds(account, task):
            raise PermissionDenied(f"task {task_id} is not claimed by {account}")
        if self.relay is None:
            raise Unavailable("this orchestrator has no chain connection to relay through")
        if decoded.call == "heartbeat":
            step = _heartbeat_step(decoded, 0)
            sent = await self.relay.heartbeat(task_id, bytes(extrinsic), step)
            from runtime_bindings import extrinsic_hash
            return sent or extrinsic_hash(bytes(extrinsic))
        return await self.relay.submit(bytes(extrinsic), decoded.call)

    async def report_progress(self, account: str, update: ProgressUpdate, heartbeat_extrinsic: bytes | None) -> None:
        task = self._task(update.task_id)
        if not self._holds(account, task):
            raise PermissionDenied(f"task {update.task_id} is not held by {account}")
        if not (is_u64(update.step) and is_u64(update.epoch)) or not math.isfinite(update.loss):
            raise InvalidArgument("step and epoch must be integers in 0..2^64-1 and loss must be finite")
        if heartbeat_extrinsic:
            decoded = await self._decode_checked(account, update.task_id, heartbeat_extrinsic, ("heartbeat",))
            if self.relay is None:
                raise Unavailable("this orchestrator has no chain connection to relay through")
            step = _heartbeat_step(decoded, update.step)
            await self.relay.heartbeat(update.task_id, bytes(heartbeat_extrinsic), step)
        if update.worker != account:  # (the servicer already builds it with the caller's account)
            update = replace(update, worker=account)
        self.index.record_progress(update)  # memory only: written in batches (see _schedule_progress_flush)
        self._schedule_progress_flush()
        has_subscribers = getattr(self.pubsub, "has_subscribers", None)
        if has_subscribers is not None and not has_subscribers(update.task_id):
            return  # nobody watches this task: skip building the event
        self.pubsub.publish(TaskEvent(update.task_id, "Progress", 0, {
            "worker": account, "step": update.step, "epoch": update.epoch, "loss": update.loss,
            "metrics": dict(update.metrics), "checkpoint_root": "0x" + bytes(update.checkpoint_root).hex()}))

    def _schedule_progress_flush(self) -> None:
        """Write recorded progress to the index about once a second (the indexer also flushes before each block)."""
        if self._flush_timer is not None:
            return
        self._ensure_loop()
        loop = self._loop
        assert loop is not None

        def write() -> None:
            try:
                self.index.flush_progress()
            except Exception:  # noqa: BLE001 - kept in memory and retried with the next flush
                log.warning("handlers: progress flush failed; retrying", exc_info=True)

        def flush() -> None:  # on the loop
            self._flush_timer = None
            try:
                loop.run_in_executor(None, write)
            except RuntimeError:  # the loop or its executor is closing (close() flushes)
                pass
        self._flush_timer = loop.call_later(self.progress_flush_s, flush)

    async def report_result(self, account: str, task_id: int, extrinsic_hash: str) -> None:
        task = self._task(task_id)
        if not isinstance(extrinsic_hash, str) or not _HASH.match(extrinsic_hash):
            raise InvalidArgument("extrinsic_hash must be 0x followed by 64 hex digits")
        if task.worker != account:
            raise PermissionDenied(f"task {task_id} is not held by {account}")
        log.info("task %d: %s reports its result in extrinsic %s", task_id, account, extrinsic_hash.lower())

    # Tasks ------------------------------------------------------------------------------------
    def list_tasks(self, status: TaskStatus | None, limit: int, page_token: str) -> tuple[list[TaskView], str]:
        if not isinstance(limit, int) or limit < 0:
            raise InvalidArgument("limit must be zero (the default page) or more")
        limit = min(limit or DEFAULT_PAGE, MAX_PAGE)
        after = _after_id(page_token) if page_token else -1
        try:
            status = None if status is None else TaskStatus(status)
        except ValueError:
            raise InvalidArgument(f"unknown status {status!r}") from None
        page = self.index.tasks(status, limit + 1, after)
        more = len(page) > limit
        page = page[:limit]
        return page, (str(page[-1].task_id) if more and page else "")

    def get_task(self, task_id: int) -> TaskView:
        return self._task(task_id)

    def watch_task(self, task_id: int) -> AsyncIterator[TaskEvent]:
        self._task(task_id)  # NotFound before the stream starts
        return self._watch(task_id)

    async def _watch(self, task_id: int) -> AsyncIterator[TaskEvent]:
        sub = self.pubsub.subscribe(task_id)
        try:
            task = self.index.task(task_id)
            block = self.index.last_block.number
            assert task is not None
            yield TaskEvent(task_id, "State", block, {
                "status": task.status.value, "worker": task.worker, "lease_until": task.lease_until,
                "progress_step": task.progress_step, "checkpoint_root": "0x" + task.checkpoint_root.hex()})
            async for event in sub:
                if 0 < event.block <= block:
                    continue  # already in the state above
                yield event
        finally:
            sub.close()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        try:
            self.index.flush_progress()
        except Exception:  # noqa: BLE001 - the index may be closed already
            log.debug("handlers: final progress flush failed", exc_info=True)
        for waiter in self._waiters:
            if not waiter.future.done():
                waiter.future.cancel()
        self._waiters.clear()


def _after_id(page_token: str) -> int:
    """The task id a page token continues after. Tokens are the decimal task ids this server hands out, so
    anything else (signs, spaces, underscores, ids beyond u64) is refused rather than read by int()."""
    after = int(page_token) if page_token.isascii() and page_token.isdigit() and len(page_token) <= 20 else -1
    if not is_u64(after):
        raise InvalidArgument(f"bad page_token {page_token[:40]!r}")
    return after


__all__ = ["RELAYABLE", "ChainConstants", "DecodedExtrinsic", "ExtrinsicDecoder", "Handlers"]
