"""The chain indexer: follows finalized blocks and keeps `orchestrator.index.Index` in step with the chain.

It streams finalized blocks with `runtime_bindings` (`chain.events.finalized(from_block=last + 1)`), reads
from storage *at that block* the full records the events only name (a created task, a registered
worker), and hands the block to `Index.apply_block`, which applies it and records it as the last block
in one transaction. After a restart it resumes at `index.last_block + 1`; after a lost connection the
stream (or, when the node stays away longer, a fresh stream) resumes from the same place. A block is
applied only after all its reads succeeded, so nothing is missed, and the index ignores a block it
already has, so nothing is applied twice.

If the chain's hash of the index's last block differs (the index belongs to another chain, e.g. a
devnet restarted without --base-path), the index is rebuilt from block 1.

Subscribers (`PubSub`) get a `TaskEvent` for each TaskBounties event after its block is committed;
`on_block` callbacks get (number, hash, events) for the handlers (reservations, long polls, relay).
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, TypeVar

from orchestrator.domain import TaskEvent
from orchestrator.index import (
    Change,
    Index,
    IndexGap,
    TaskRecord,
    WorkerRecord,
    task_view_from_chain,
    worker_view_from_chain,
)
from runtime_bindings import BindingsError, BlockEvents, Chain, ConnectionLost, EventRecord, TypedEvent
from runtime_bindings.generated import task_bounties as tb
from runtime_bindings.generated import types as chain_types
from runtime_bindings.generated import workers as wk
from runtime_bindings.values import Bytes

if TYPE_CHECKING:  # the stream's type only: Chain.events loads the module when a stream is first made
    from runtime_bindings.events import CatchUp

log = logging.getLogger(__name__)
BlockCallback = Callable[[int, str, Sequence[Change]], None]
INDEXED_PALLETS = ("TaskBounties", "Workers", "Models")  # the pallets whose events the index follows
K = TypeVar("K")
R = TypeVar("R")
T = TypeVar("T")


# Pub/sub ----------------------------------------------------------------------------------------

class Subscription:
    """A subscriber's queue on an asyncio loop; iterate it with `async for`. Ends on close or overflow.

    The queue holds events and, last, None: the end of the subscription."""

    def __init__(self, hub: PubSub, task_id: int | None, loop: asyncio.AbstractEventLoop, maxsize: int) -> None:
        self.hub, self.task_id, self.loop = hub, task_id, loop
        self.queue: asyncio.Queue[TaskEvent | None] = asyncio.Queue(maxsize)
        self.closed = False
        self.overflowed = False

    def _put(self, item: TaskEvent | None) -> None:  # on the subscriber's loop
        if self.closed:
            return
        if item is None:
            self.closed = True
            try:
                self.queue.put_nowait(item)
            except asyncio.QueueFull:
                self.queue.get_nowait()
                self.queue.put_nowait(item)
            return
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:  # a subscriber too slow to keep up is ended, not silently skipped
            self.overflowed = True
            self.hub.unsubscribe(self)
            self._put(None)

    async def get(self, timeout: float | None = None) -> TaskEvent | None:
        """The next event, None when the subscription ended (or `timeout` passed)."""
        try:
            item = await asyncio.wait_for(self.queue.get(), timeout)
        except TimeoutError:
            return None
        if item is None:
            self.closed = True
        return item

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> TaskEvent:
        item = await self.get()
        if item is None:
            raise StopAsyncIteration
        return item

    def close(self) -> None:
        self.hub.unsubscribe(self)
        try:
            self.loop.call_soon_threadsafe(self._put, None)
        except RuntimeError:  # loop closed
            self.closed = True


class PubSub:
    """In-process fan-out of TaskEvents (from any thread) to asyncio subscribers (per task or all)."""

    def __init__(self, maxsize: int = 1000) -> None:
        self.maxsize = maxsize
        self._lock = threading.Lock()
        self._subs: dict[int | None, set[Subscription]] = {}

    def subscribe(self, task_id: int | None = None, loop: asyncio.AbstractEventLoop | None = None) -> Subscription:
        sub = Subscription(self, task_id, loop or asyncio.get_running_loop(), self.maxsize)
        with self._lock:
            self._subs.setdefault(task_id, set()).add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            subs = self._subs.get(sub.task_id)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._subs[sub.task_id]

    def publish(self, event: TaskEvent) -> None:
        with self._lock:
            targets = list(self._subs.get(event.task_id, ())) + list(self._subs.get(None, ()))
        for sub in targets:
            try:
                sub.loop.call_soon_threadsafe(sub._put, event)
            except RuntimeError:  # its loop is closed
                self.unsubscribe(sub)

    def has_subscribers(self, task_id: int) -> bool:
        """Whether an event about `task_id` would reach anyone (lets publishers skip building it)."""
        subs = self._subs  # read without the lock: a subscriber joining meanwhile gets the next event
        return bool(subs.get(task_id) or subs.get(None))

    def subscriber_count(self) -> int:
        with self._lock:
            return sum(len(s) for s in self._subs.values())


def task_event(number: int, event: TypedEvent) -> TaskEvent | None:
    """The TaskEvent of a TaskBounties event (None for other pallets, and for an event that names no task:
    another chain's TaskBounties, decoded as a GenericEvent)."""
    task_id: int | None = getattr(event, "task_id", None)
    if event.pallet != "TaskBounties" or task_id is None:
        return None
    detail = {k: _plain(v) for k, v in dataclasses.asdict(event).items() if k != "task_id"}
    return TaskEvent(task_id=task_id, kind=event.name, block=number, detail=detail)


def _plain(value: object) -> object:
    """An event field as the stream carries it: a BoundedVec as its text, a hash as 0x-hex."""
    if isinstance(value, Bytes):
        return value.text
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


# The indexer ------------------------------------------------------------------------------------

ChainFactory = Callable[[], Chain]
"""Opens a new connection to the chain: the indexer calls it at start and after each lost connection."""


class Indexer:
    """Follows finalized blocks into `index` on a background thread (`start`/`stop`), or step by step (`sync`).

    It connects with `connect` when given (a `Chain` on any transport, e.g. ``lambda: Chain(transport=...)``
    for an in-process node), else with ``Chain.connect(chain_url)``; `chain_url` names the chain in messages."""

    def __init__(self, chain_url: str, index: Index, pubsub: PubSub | None = None, *, timeout: float = 10.0,
                 poll_interval: float = 0.1, reconnect_timeout: float = 10.0, retry_pause: float = 0.5,
                 rebuild_on_mismatch: bool = True, batch: int = 256, connect: ChainFactory | None = None) -> None:
        self.chain_url, self.index = chain_url, index
        self._open: ChainFactory = connect or (lambda: Chain.connect(chain_url, timeout=self.timeout))
        self.batch = batch
        self._range_reads = True
        self.pubsub = pubsub or PubSub()
        self.timeout, self.poll_interval = timeout, poll_interval
        self.reconnect_timeout, self.retry_pause = reconnect_timeout, retry_pause
        self.rebuild_on_mismatch = rebuild_on_mismatch
        self.chain_height = 0  # the chain's finalized height, as last seen
        self.reconnects = 0
        self.blocks_applied = 0
        self.last_error: BaseException | None = None
        self._callbacks: list[BlockCallback] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._chain: Chain | None = None

    # Status -----------------------------------------------------------------------------------
    @property
    def height(self) -> int:
        """The last block in the index."""
        return self.index.last_block.number

    @property
    def lag(self) -> int:
        """Finalized blocks the index is behind the chain (as last seen)."""
        return max(self.chain_height - self.height, 0)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def on_block(self, callback: BlockCallback) -> None:
        """Call `callback(number, hash, events)` (on the indexer thread) after each block is committed."""
        self._callbacks.append(callback)

    # Background thread ------------------------------------------------------------------------
    def start(self) -> Indexer:
        if self.running:
            return self
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="paratrain-indexer", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self._close()

    def wait_for(self, number: int, timeout: float = 30.0) -> bool:
        """Block until the index reaches block `number` (for tests and tools)."""
        deadline = time.monotonic() + timeout
        while self.height < number:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def _run(self) -> None:
        pause = self.retry_pause
        while not self._stop.is_set():
            try:
                self._follow()
                pause = self.retry_pause
            except (ConnectionLost, OSError, BindingsError) as exc:
                self.last_error = exc
                self.reconnects += 1
                log.warning("indexer: chain unavailable (%s); resuming after block %d", exc, self.height)
                self._close()
                self._stop.wait(pause)
                pause = min(pause * 2, 5.0)
            except Exception as exc:  # noqa: BLE001 - keep following; the block was not applied
                self.last_error = exc
                log.exception("indexer: failed at block %d; retrying", self.height + 1)
                self._close()
                self._stop.wait(pause)
                pause = min(pause * 2, 5.0)

    def _close(self) -> None:
        if self._chain is not None:
            try:
                self._chain.close()
            except Exception:  # noqa: BLE001
                pass
            self._chain = None

    def _connect(self) -> Chain:
        if self._chain is None:
            self._chain = self._open()
        return self._chain

    def _follow(self) -> None:
        """Catch up to the finalized head in bounded streams, then poll; returns only when stopping."""
        chain = self._connect()
        self._check_fork(chain)
        while not self._stop.is_set():
            target = chain.finalized_number()
            self.chain_height = max(self.chain_height, target)
            if target <= self.height:
                self._stop.wait(self.poll_interval)
                continue
            stream = self._blocks(chain, target)
            for blocks in stream.batches():
                tasks = self._prefetch_tasks(chain, blocks, stream)
                for block in blocks:
                    self.apply(chain, block.number, block.hash, block.records, tasks)
                    if self._stop.is_set():
                        return

    # Step by step -----------------------------------------------------------------------------
    def sync(self, to_block: int | None = None) -> int:
        """Apply every finalized block after the index's last, up to `to_block` (default: the finalized head),
        on the calling thread; returns the new height."""
        chain = self._connect()
        self._check_fork(chain)
        target = chain.finalized_number() if to_block is None else to_block
        self.chain_height = max(self.chain_height, target)
        if target > self.height:
            stream = self._blocks(chain, target)
            for blocks in stream.batches():
                tasks = self._prefetch_tasks(chain, blocks, stream)
                for block in blocks:
                    self.apply(chain, block.number, block.hash, block.records, tasks)
        return self.height

    def _blocks(self, chain: Chain, target: int) -> CatchUp:
        """The finalized blocks after the index's last up to `target`, in order: fetched in batches with only
        the indexed pallets' events decoded (other events change nothing here)."""
        return chain.events.catch_up(self.height + 1, target, pallets=INDEXED_PALLETS, batch=self.batch,
                                     reconnect_timeout=self.reconnect_timeout)

    def _check_fork(self, chain: Chain) -> None:
        last = self.index.last_block
        if last.number == 0:
            return
        actual = chain.block_hash(last.number)
        self.chain_height = max(self.chain_height, chain.finalized_number())
        if actual == last.hash:
            return
        message = (f"the index's block {last.number} is {last.hash} but the chain at {self.chain_url} has "
                   f"{actual}: the index belongs to another chain")
        if not self.rebuild_on_mismatch:
            raise IndexMismatch(message)
        log.warning("%s; rebuilding it from block 1", message)
        self.index.rebuild()

    def _prefetch_tasks(self, chain: Chain, blocks: Sequence[BlockEvents],
                        stream: CatchUp | None = None) -> dict[tuple[int, int], chain_types.Task]:
        """The TaskBounties.Tasks records of the tasks created in `blocks`, each as stored at its creation
        block, keyed by (block number, task id): one `state_queryStorage` over the batch instead of a
        storage read per task. Empty (apply() then reads each) when the node refuses the range query."""
        wanted = [(b.number, r.event.task_id) for b in blocks for r in b.records
                  if isinstance(r.event, tb.TaskCreatedEvent)]
        if not wanted or not self._range_reads:
            return {}
        from runtime_bindings.fastscale import decode_all

        numbers = {b.hash: b.number for b in blocks}
        try:
            # the runtime of this batch is loaded already: its events were split and decoded with it
            changes = chain.storage_changes("TaskBounties", "Tasks", [tid for _, tid in wanted], blocks[0].hash,
                                            blocks[-1].hash)
            decode = chain_types.Task.from_value  # what `chain.task_bounties.tasks` decodes with
            # compiled from the metadata's type registry when the batch had one runtime; else scalecodec
            fast = stream.storage_decoder("TaskBounties", "Tasks") if stream is not None else None
            out: dict[tuple[int, int], chain_types.Task] = {}
            for number, tid in wanted:
                value = None
                for block_hash, v in changes[tid]:
                    at = numbers.get(block_hash)
                    if at is None:
                        raise BindingsError("state_queryStorage answered a block outside the range")
                    if at <= number:
                        value = v
                if value is None:
                    continue  # apply() reads it (and fails loudly if it is really absent)
                if fast is not None:
                    try:
                        out[(number, tid)] = decode(decode_all(fast, bytes.fromhex(value[2:])))
                        continue
                    except (ValueError, IndexError, KeyError, TypeError):
                        pass  # scalecodec says what is wrong with it
                out[(number, tid)] = decode(chain.decode_storage("TaskBounties", "Tasks", value))
            return out
        except ConnectionLost:
            raise
        except Exception as exc:  # noqa: BLE001 - e.g. a node without the (unsafe) range query
            log.info("indexer: batched task reads unavailable (%s); reading tasks one by one", exc)
            self._range_reads = False
            return {}

    def apply(self, chain: Chain, number: int, block_hash: str, records: Sequence[EventRecord],
              tasks: dict[tuple[int, int], chain_types.Task] | None = None) -> bool:
        """Enrich one block's events with storage records read at that block, apply it, then notify.
        `tasks` may hold created tasks' records already read at this block, keyed (number, task id)."""
        if number <= self.height:
            return False
        events = [r.event for r in records]
        changes: list[Change] = []
        for event in events:
            if isinstance(event, tb.TaskCreatedEvent):
                known = (tasks or {}).get((number, event.task_id))
                read: Callable[[], chain_types.Task | None] = \
                    partial(chain.task_bounties.tasks, event.task_id, at=block_hash) if known is None \
                    else partial(_itself, known)
                try:
                    view = _converted(task_view_from_chain, event.task_id, number, read)
                except Unconvertible:
                    continue  # neither the record nor its event: the index then ignores the task's later events
                if view is None:
                    raise BindingsError(f"task {event.task_id} created in block {number} is not in storage there")
                changes.append(TaskRecord(view))
            elif isinstance(event, wk.WorkerRegisteredEvent):
                try:
                    worker = _converted(worker_view_from_chain, event.who, number,
                                        partial(chain.workers.workers, event.who, at=block_hash))
                except Unconvertible:
                    continue  # likewise: its later events then update nothing
                changes.append(WorkerRecord(event.who, worker))
            if event.pallet in INDEXED_PALLETS:
                changes.append(event)
        try:
            applied = self.index.apply_block(number, block_hash, changes)
        except IndexGap:
            raise BindingsError(f"block {number} does not follow the index's {self.height}") from None
        if not applied:
            return False
        self.blocks_applied += 1
        self.chain_height = max(self.chain_height, number)
        for event in events:
            published = task_event(number, event)
            if published is not None:
                self.pubsub.publish(published)
        for callback in self._callbacks:
            try:
                callback(number, block_hash, changes)
            except Exception:  # noqa: BLE001 - a listener's bug must not stop indexing
                log.exception("indexer: block callback failed")
        return True


def _itself(value: T) -> T:
    return value


class Unconvertible(Exception):
    """A storage record the index cannot hold (logged when raised)."""


def _converted(convert: Callable[[K, R], T], key: K, number: int, read: Callable[[], R | None]) -> T | None:
    """`convert(key, read())`: a storage record as the index takes it (None when there is none), or
    Unconvertible (logged) when it does not decode or convert: an enum variant this version does not know
    fails in the bindings' decoding already. A record the index cannot hold must not stop the indexer, which
    would retry its block forever; it is left out of the index instead."""
    try:
        record = read()
        return None if record is None else convert(key, record)
    except (ValueError, TypeError) as exc:
        log.error("indexer: block %d: %s(%r, ...) failed, so that record is not indexed: %s", number,
                  convert.__name__, key, exc)
        raise Unconvertible(str(exc)) from exc


class IndexMismatch(Exception):
    """The index was built from another chain (and rebuilding was not allowed)."""


__all__ = ["IndexMismatch", "Indexer", "PubSub", "Subscription", "task_event"]
