"""The orchestrator's index of the chain: tasks, workers, claims, live progress and the last block applied.

SQLite in WAL mode. The only writer of chain-derived rows is `Index.apply_block`, which applies one
finalized block's changes and moves `last_block` in ONE transaction: either the whole block is in the
index or none of it is. A block at or below `last_block` is ignored, so replaying blocks after a
restart or a reconnect never applies anything twice; a block that does not follow `last_block`
directly is refused (`IndexGap`), so nothing is skipped either.

What `apply_block` takes, in block order:

- the typed events of `runtime_bindings.generated` (TaskBounties, Workers; others are ignored), read
  by `(event.pallet, event.name)` and their fields, and
- `TaskRecord` / `WorkerRecord`: full rows the indexer read from chain storage *at that block* for a
  task or worker the events only name (TaskCreated carries four fields, WorkerRegistered three).

Every value the chain can hold is stored exactly (orchestrator.columns: u64 as INTEGER offset by -2^63, u128
as 16-byte big-endian BLOBs), so SQL order and comparisons are the chain's. A change holding a value the
index still cannot store is skipped alone (logged) and the block goes on: one record never stops the index.
A file written by another SCHEMA_VERSION is dropped and rebuilt from the chain.

Open tasks are also kept in memory (`OpenTasks`: buckets per (requirements, min_stake), each sorted by
id), loaded at start and updated after each commit, so the scheduler finds a worker's candidates in
id order without scanning 100,000 rows: `open_tasks_for(capabilities, stake)`.

Hot-path reads (`task`, `worker`: every authenticated call asks them) are cached in memory; the caches
are dropped whenever this instance commits a block or rebuilds (the only writers of those rows), with a
generation check so that a read racing a commit never caches the older row. Live progress (off chain,
a heartbeat every few seconds per task) is kept in memory, latest per task, and written in batches
(`flush_progress`: by the handlers about once a second, before every block, and on close); `progress`
answers from memory first, so readers never see an older update than the last one recorded.
"""
from __future__ import annotations

import heapq
import json
import logging
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias, TypeVar

from sortedcontainers import SortedDict

from orchestrator.columns import (
    U64_MAX,
    Unrepresentable,
    is_u64,
    load_u64,
    load_u128,
    store_i64,
    store_opt_u32,
    store_u32,
    store_u64,
    store_u128,
)
from orchestrator.domain import Capabilities, ProgressUpdate, Requirements, TaskStatus, TaskView, WorkerView
from runtime_bindings.base import TypedEvent
from runtime_bindings.generated import task_bounties as tb
from runtime_bindings.generated import types as chain_types
from runtime_bindings.generated import workers as wk

SCHEMA_VERSION = 2  # 2: u64 columns offset by -2^63, u128 columns 16-byte big-endian BLOBs (orchestrator.columns)
# statuses in which a worker holds the task (the pallet's ClaimsByWorker): never assignable to another
HELD = (TaskStatus.CLAIMED, TaskStatus.SUBMITTED, TaskStatus.APPROVED, TaskStatus.CHALLENGED)

# Each column's chain type decides its storage (see orchestrator.columns): u64 columns hold value - 2^63,
# u128 columns 16-byte big-endian BLOBs, u32 / i64 columns the value itself.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tasks (
    task_id INTEGER PRIMARY KEY, requester TEXT NOT NULL, recipe TEXT NOT NULL, spec_hash BLOB NOT NULL,
    spec_uri TEXT NOT NULL, dataset_hash BLOB NOT NULL, eval_metric TEXT NOT NULL, eval_target INTEGER NOT NULL,
    min_cpus INTEGER NOT NULL, min_gpus INTEGER NOT NULL, min_memory_mb INTEGER NOT NULL,
    bounty BLOB NOT NULL, min_stake BLOB NOT NULL, deadline INTEGER NOT NULL, validators_required INTEGER NOT NULL,
    status TEXT NOT NULL, worker TEXT, lease_until INTEGER, progress_step INTEGER NOT NULL,
    checkpoint_root BLOB NOT NULL, created_at INTEGER NOT NULL, updated_block INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS tasks_by_status ON tasks (status, task_id);
CREATE TABLE IF NOT EXISTS workers (
    account TEXT PRIMARY KEY, role TEXT NOT NULL, stake BLOB NOT NULL, cpus INTEGER NOT NULL, gpus INTEGER NOT NULL,
    gpu_model TEXT NOT NULL, memory_mb INTEGER NOT NULL, active INTEGER NOT NULL, updated_block INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS claims (
    task_id INTEGER PRIMARY KEY, worker TEXT NOT NULL, since_block INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS claims_by_worker ON claims (worker, task_id);
CREATE TABLE IF NOT EXISTS progress (
    task_id INTEGER PRIMARY KEY, worker TEXT NOT NULL, step INTEGER NOT NULL, epoch INTEGER NOT NULL,
    loss REAL NOT NULL, metrics TEXT NOT NULL, checkpoint_root BLOB NOT NULL);
"""
_TABLES = ("tasks", "workers", "claims", "progress", "meta")
# what a value the index cannot store raises (Unrepresentable is a ValueError; sqlite3 raises OverflowError for
# an int beyond 64 bits and InterfaceError for a type it cannot bind): that change is skipped, not the block
_UNSTORABLE = (ValueError, TypeError, OverflowError, sqlite3.InterfaceError)
SqlValue: TypeAlias = int | float | str | bytes | None  # what a column is bound to
K = TypeVar("K")
V = TypeVar("V")


class IndexGap(Exception):
    """A block was offered that does not follow `last_block` (the caller must fetch the missing ones)."""


class MissingRecord(ValueError):
    """A TaskCreated came without its TaskRecord: the caller's mistake, not the chain's data, so the whole
    block is refused (unlike a value the index cannot store, which skips that one change)."""


@dataclass(frozen=True)
class TaskRecord:
    """A task's full row as read from chain storage at the block being applied."""

    task: TaskView


@dataclass(frozen=True)
class WorkerRecord:
    """A worker's row as read from chain storage at the block being applied (None: no longer registered)."""

    account: str
    worker: WorkerView | None


Change: TypeAlias = TaskRecord | WorkerRecord | TypedEvent
"""One entry of what `apply_block` takes (and what the indexer's `on_block` callbacks get)."""


@dataclass(frozen=True)
class BlockRef:
    number: int
    hash: str


# In-memory open tasks ---------------------------------------------------------------------------

class OpenTasks:
    """Open tasks by id, bucketed by (requirements, min_stake) so a worker's candidates come out in id order.

    Thread-safe: the indexer thread updates it after each commit, handlers read it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_id: dict[int, TaskView] = {}
        self._buckets: dict[tuple[Requirements, int], SortedDict] = {}
        self._hidden: set[int] = set()  # reserved off-chain: kept out of the candidate buckets

    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._by_id

    def get(self, task_id: int) -> TaskView | None:
        return self._by_id.get(task_id)

    def put(self, task: TaskView) -> None:
        with self._lock:
            self._discard(task.task_id)
            if task.status is TaskStatus.OPEN:
                self._by_id[task.task_id] = task
                if task.task_id not in self._hidden:
                    self._bucket_add(task)

    def hide(self, task_id: int) -> None:
        """Keep `task_id` out of `for_worker` (it is reserved) until `unhide`; `all()` still lists it."""
        with self._lock:
            if task_id in self._hidden:
                return
            self._hidden.add(task_id)
            task = self._by_id.get(task_id)
            if task is not None:
                self._bucket_remove(task)

    def unhide(self, task_id: int) -> None:
        with self._lock:
            if task_id not in self._hidden:
                return
            self._hidden.discard(task_id)
            task = self._by_id.get(task_id)
            if task is not None:
                self._bucket_add(task)

    def _bucket_add(self, task: TaskView) -> None:
        self._buckets.setdefault((task.requirements, task.min_stake), SortedDict())[task.task_id] = task

    def _bucket_remove(self, task: TaskView) -> None:
        key = (task.requirements, task.min_stake)
        bucket = self._buckets.get(key)
        if bucket is not None:
            bucket.pop(task.task_id, None)
            if not bucket:
                del self._buckets[key]

    def discard(self, task_id: int) -> None:
        with self._lock:
            self._discard(task_id)

    def clear(self) -> None:
        with self._lock:
            self._by_id.clear()
            self._buckets.clear()
            self._hidden.clear()

    def _discard(self, task_id: int) -> None:
        old = self._by_id.pop(task_id, None)
        if old is not None:
            self._bucket_remove(old)

    def all(self) -> Iterator[TaskView]:
        """Every open task in id order (a snapshot)."""
        with self._lock:
            tasks = sorted(self._by_id.values(), key=lambda t: t.task_id)
        return iter(tasks)

    def for_worker(self, capabilities: Capabilities | None = None, stake: int | None = None) -> Iterator[TaskView]:
        """Open tasks whose requirements `capabilities` meet and whose min_stake `stake` covers, oldest first.

        Lazy: merging the matching buckets costs O(log buckets) per task yielded, so a scheduler that stops
        at the first acceptable task touches only a few entries even with 100,000 open tasks.
        """
        with self._lock:
            keys = [key for key in self._buckets
                    if (capabilities is None or key[0].met_by(capabilities)) and (stake is None or stake >= key[1])]
        if len(keys) == 1:
            return self._iter_bucket(keys[0])
        return heapq.merge(*(self._iter_bucket(k) for k in keys), key=lambda t: t.task_id)

    def _iter_bucket(self, key: tuple[Requirements, int]) -> Iterator[TaskView]:
        """One bucket in id order, O(log n) per step, safe while the indexer changes it concurrently."""
        last = -1
        while True:
            with self._lock:
                bucket = self._buckets.get(key)
                if bucket is None:
                    return
                i = bucket.bisect_right(last)
                if i >= len(bucket):
                    return
                task_id, task = bucket.peekitem(i)
            last = task_id
            yield task


# The index --------------------------------------------------------------------------------------

log = logging.getLogger(__name__)
_CACHE_MAX = 100_000  # entries per read cache (a full cache is emptied, not grown)


class Index:
    """SQLite index of the chain (see the module doc). One instance per process; thread-safe."""

    def __init__(self, path: str | Path = ":memory:") -> None:
        self.path = str(path)
        self._memory = self.path == ":memory:"
        if self._memory:  # one shared in-memory database for every thread
            self.path = f"file:paratrain-index-{id(self)}?mode=memory&cache=shared"
        self._local = threading.local()
        self._write_lock = threading.RLock()
        self._keepalive = self._connect()  # keeps a shared in-memory db alive; also the writer
        with self._write_lock:
            self._open_schema(self._keepalive)
        self.open_tasks = OpenTasks()
        self._cache_lock = threading.Lock()
        self._generation = 0  # bumped (under _cache_lock) after every commit of chain-derived rows
        self._task_cache: dict[int, TaskView | None] = {}
        self._worker_cache: dict[str, WorkerView | None] = {}
        self._progress_lock = threading.Lock()
        self._pending_progress: dict[int, ProgressUpdate] = {}
        self._last_block = self._read_last_block()
        self._load_open_tasks()

    @staticmethod
    def _open_schema(conn: sqlite3.Connection) -> None:
        """Create the tables, or drop and recreate them when they were written by another schema version:
        rows of another encoding would decode into wrong values, and the index is rebuilt from the chain
        anyway (last_block goes with the tables, so the indexer starts again at block 1)."""
        found = _stored_schema(conn)
        drop = ""
        if found not in (None, str(SCHEMA_VERSION)):
            log.warning("index: schema version %s found, this is %d: rebuilding the index from the chain",
                        found, SCHEMA_VERSION)
            drop = "".join(f"DROP TABLE IF EXISTS {table};" for table in _TABLES)
        conn.executescript(f"BEGIN IMMEDIATE;{drop}{_SCHEMA}"  # one transaction: no half-migrated file
                           f"INSERT OR REPLACE INTO meta VALUES ('schema', '{SCHEMA_VERSION}');COMMIT;")

    # Connections ------------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, uri=self._memory, isolation_level=None, check_same_thread=False,
                               timeout=10.0)
        if not self._memory:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=10000")
        return conn

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
        return conn

    def close(self) -> None:
        try:
            self.flush_progress()
        except sqlite3.Error:  # closing anyway; live progress is advisory (the chain has the heartbeats)
            pass
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
        self._keepalive.close()

    # Blocks -----------------------------------------------------------------------------------
    @property
    def last_block(self) -> BlockRef:
        """The last block applied (number 0, hash "" before the first)."""
        return self._last_block

    def _read_last_block(self) -> BlockRef:
        rows = dict(self._conn().execute(
            "SELECT key, value FROM meta WHERE key IN ('last_block', 'last_hash')").fetchall())
        return BlockRef(int(rows.get("last_block", 0)), rows.get("last_hash", ""))

    def apply_block(self, number: int, block_hash: str, events: Sequence[Change]) -> bool:
        """Apply one finalized block's events (and storage records) atomically; False if already applied.

        Raises IndexGap if `number` is not `last_block + 1`, and re-raises whatever an event's
        application raised after rolling the whole block back.
        """
        with self._write_lock:
            last = self._last_block.number
            if number <= last:
                return False
            if number != last + 1:
                raise IndexGap(f"block {number} offered after {last}: blocks {last + 1}..{number - 1} are missing")
            try:  # recorded progress goes in before the block (which may reopen its task and clear it)
                self.flush_progress()
            except sqlite3.Error:  # kept in memory for the next flush; the block must not wait on it
                log.warning("index: progress flush failed; retrying later", exc_info=True)
            conn = self._keepalive
            touched: set[int] = set()
            conn.execute("BEGIN IMMEDIATE")
            try:
                for event in events:
                    self._apply_or_skip(conn, number, event, touched)
                conn.execute("INSERT OR REPLACE INTO meta VALUES ('last_block', ?)", (str(number),))
                conn.execute("INSERT OR REPLACE INTO meta VALUES ('last_hash', ?)", (block_hash,))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            self._last_block = BlockRef(number, block_hash)
            self._invalidate()
            for task_id in touched:  # memory follows the committed rows only
                task = self._task(conn, task_id)
                if task is None or task.status is not TaskStatus.OPEN:
                    self.open_tasks.discard(task_id)
                else:
                    self.open_tasks.put(task)
                if task is None or task.status not in HELD:  # progress recorded meanwhile is moot
                    with self._progress_lock:
                        self._pending_progress.pop(task_id, None)
            return True

    def _invalidate(self) -> None:
        with self._cache_lock:
            self._generation += 1
            self._task_cache.clear()
            self._worker_cache.clear()

    def _cache_put(self, cache: dict[K, V], key: K, value: V, generation: int) -> None:
        with self._cache_lock:
            if generation == self._generation:
                if len(cache) >= _CACHE_MAX:
                    cache.clear()
                cache[key] = value

    def rebuild(self) -> None:
        """Forget everything: the next block to apply is block 1 (the indexer then re-reads the chain)."""
        with self._write_lock:
            conn = self._keepalive
            conn.execute("BEGIN IMMEDIATE")
            try:
                for table in ("tasks", "workers", "claims", "progress"):
                    conn.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed names
                conn.execute("DELETE FROM meta WHERE key IN ('last_block', 'last_hash')")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            self._last_block = BlockRef(0, "")
            self._invalidate()
            with self._progress_lock:
                self._pending_progress.clear()
            self.open_tasks.clear()

    # Event application (inside the block's transaction) ----------------------------------------
    def _apply_or_skip(self, conn: sqlite3.Connection, block: int, change: Change, touched: set[int]) -> None:
        """Apply one change under its own savepoint. A change holding a value the index cannot store (there
        should be none: every column fits its chain type) is undone alone and logged, and the rest of the
        block is applied: one bad record must never stop the index, whose blocks are otherwise retried forever.
        Other errors (disk, locks) still undo the whole block, for a retry."""
        conn.execute("SAVEPOINT change")
        try:
            self._apply(conn, block, change, touched)
        except MissingRecord:
            raise
        except _UNSTORABLE:
            conn.execute("ROLLBACK TO change")
            log.error("index: block %d: %s not indexed: a value it cannot store", block, _describe(change),
                      exc_info=True)
        conn.execute("RELEASE change")

    def _apply(self, conn: sqlite3.Connection, block: int, event: Change, touched: set[int]) -> None:
        if isinstance(event, TaskRecord):
            touched.add(event.task.task_id)  # before the write: a record skipped still came (see TaskCreated)
            self._upsert_task(conn, block, event.task)
            return
        if isinstance(event, WorkerRecord):
            if event.worker is None:
                conn.execute("DELETE FROM workers WHERE account = ?", (event.account,))
            else:
                self._upsert_worker(conn, block, event.worker)
            return
        pallet = getattr(event, "pallet", None)
        if pallet == "TaskBounties":
            self._apply_task_event(conn, block, event, touched)
        elif pallet == "Workers":
            self._apply_worker_event(conn, block, event)

    def _apply_task_event(self, conn: sqlite3.Connection, block: int, ev: TypedEvent, touched: set[int]) -> None:
        """A TaskBounties event, by its generated class (another chain's event of the same name but another
        layout decodes as a GenericEvent, which names no task_id and changes nothing)."""
        task_id: int | None = getattr(ev, "task_id", None)
        if task_id is None:
            return
        key = store_u64(task_id)
        exists = conn.execute("SELECT 1 FROM tasks WHERE task_id = ?", (key,)).fetchone() is not None
        if not exists:
            if isinstance(ev, tb.TaskCreatedEvent) and task_id not in touched:
                raise MissingRecord(f"TaskCreated for task {task_id} without its TaskRecord")
            return  # its record was skipped, or it was created before this index began (not when from block 1)
        touched.add(task_id)
        if isinstance(ev, tb.TaskClaimedEvent):
            self._set_status(conn, block, task_id, TaskStatus.CLAIMED, ev.worker, ev.lease_until)
        elif isinstance(ev, tb.HeartbeatEvent):
            progress = ev.progress
            conn.execute("UPDATE tasks SET lease_until = ?, progress_step = ?, checkpoint_root = ?, updated_block = ? "
                         "WHERE task_id = ?", (store_u32(ev.lease_until), store_u64(progress.step),
                                               bytes(progress.checkpoint_root), block, key))
        elif isinstance(ev, tb.ResultSubmittedEvent):
            self._set_status(conn, block, task_id, TaskStatus.SUBMITTED, ev.worker, None)
        elif isinstance(ev, tb.ResultApprovedEvent):
            self._set_status(conn, block, task_id, TaskStatus.APPROVED, ev.worker, None)
        elif isinstance(ev, tb.ResultChallengedEvent):  # it names the challenger; the worker is the one holding it
            worker: str | None = conn.execute("SELECT worker FROM tasks WHERE task_id = ?", (key,)).fetchone()[0]
            self._set_status(conn, block, task_id, TaskStatus.CHALLENGED, worker, None)
        elif isinstance(ev, tb.TaskAcceptedEvent):
            self._set_status(conn, block, task_id, TaskStatus.ACCEPTED, ev.worker, None)
        elif isinstance(ev, tb.TaskReopenedEvent):
            self._set_status(conn, block, task_id, TaskStatus.OPEN, None, None)
        elif isinstance(ev, tb.TaskExpiredEvent):
            self._set_status(conn, block, task_id, TaskStatus.EXPIRED, None, None)
        elif isinstance(ev, tb.TaskCancelledEvent):
            self._set_status(conn, block, task_id, TaskStatus.CANCELLED, None, None)
        # TaskCreated (the TaskRecord did it), ClaimReleased / LeaseExpired / VerificationTimedOut (followed by
        # TaskReopened or TaskExpired), ChallengeUpheld (followed by TaskReopened or TaskExpired),
        # ChallengeDismissed / ChallengeTimedOut (followed by TaskAccepted), WorkerSlashed, ApproverSlashed (the
        # stake change comes as Workers.StakeSlashed), VerdictSubmitted,
        # HoldoutRevealed: nothing to change.

    def _set_status(self, conn: sqlite3.Connection, block: int, task_id: int, status: TaskStatus,
                    worker: str | None, lease_until: int | None) -> None:
        """Move a task to `status`; the claims table follows (a worker holds the tasks in HELD statuses)."""
        key = store_u64(task_id)
        if status in HELD:
            conn.execute("UPDATE tasks SET status = ?, worker = ?, lease_until = ?, updated_block = ? "
                         "WHERE task_id = ?", (status.value, worker, store_opt_u32(lease_until), block, key))
            conn.execute("INSERT INTO claims VALUES (?, ?, ?) "
                         "ON CONFLICT (task_id) DO UPDATE SET worker = excluded.worker", (key, worker, block))
            return
        keep_worker = status is TaskStatus.ACCEPTED
        if status is TaskStatus.OPEN:  # the pallet clears progress when it reopens a task
            conn.execute("UPDATE tasks SET progress_step = ?, checkpoint_root = x'' WHERE task_id = ?",
                         (store_u64(0), key))
            conn.execute("DELETE FROM progress WHERE task_id = ?", (key,))
        conn.execute("UPDATE tasks SET status = ?, worker = ?, lease_until = NULL, updated_block = ? WHERE task_id = ?",
                     (status.value, worker if keep_worker else None, block, key))
        conn.execute("DELETE FROM claims WHERE task_id = ?", (key,))

    def _apply_worker_event(self, conn: sqlite3.Connection, block: int, ev: TypedEvent) -> None:
        """A Workers event, by its generated class (as `_apply_task_event`)."""
        if isinstance(ev, wk.StakeBondedEvent):
            conn.execute("UPDATE workers SET stake = ?, updated_block = ? WHERE account = ?",
                         (store_u128(ev.total), block, ev.who))
        elif isinstance(ev, wk.StakeSlashedEvent):
            conn.execute("UPDATE workers SET stake = ?, updated_block = ? WHERE account = ?",
                         (store_u128(ev.remaining), block, ev.who))
        elif isinstance(ev, wk.CapabilitiesUpdatedEvent):
            conn.execute("UPDATE workers SET cpus = ?, gpus = ?, gpu_model = ?, memory_mb = ?, updated_block = ? "
                         "WHERE account = ?", (*_capabilities_row(_capabilities(ev.capabilities)), block, ev.who))
        elif isinstance(ev, wk.UnbondingStartedEvent):
            conn.execute("UPDATE workers SET active = 0, updated_block = ? WHERE account = ?", (block, ev.who))
        elif isinstance(ev, wk.WithdrawnEvent):
            conn.execute("DELETE FROM workers WHERE account = ?", (ev.who,))
        # WorkerRegistered: the WorkerRecord did it.

    def _upsert_task(self, conn: sqlite3.Connection, block: int, t: TaskView) -> None:
        row = _task_row(t, block)  # every value encoded before anything is written
        conn.execute("INSERT OR REPLACE INTO tasks VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", row)
        if t.status in HELD:
            conn.execute("INSERT OR REPLACE INTO claims VALUES (?, ?, ?)", (row[0], t.worker, block))
        else:
            conn.execute("DELETE FROM claims WHERE task_id = ?", (row[0],))

    def _upsert_worker(self, conn: sqlite3.Connection, block: int, w: WorkerView) -> None:
        conn.execute("INSERT OR REPLACE INTO workers VALUES (?,?,?,?,?,?,?,?,?)",
                     (w.account, w.role, store_u128(w.stake), *_capabilities_row(w.capabilities), int(w.active), block))

    # Live progress (off chain) --------------------------------------------------------------
    def record_progress(self, update: ProgressUpdate) -> None:
        """Remember the latest update of a task (in memory; written by the next `flush_progress`).

        Raises Unrepresentable for an update the index cannot store (a step beyond u64...), here rather than at
        the flush: the indexer flushes before every block, and a row it can never write must not hold blocks up.
        """
        _check_progress(update)
        with self._progress_lock:
            self._pending_progress[update.task_id] = update

    def flush_progress(self) -> int:
        """Write the progress recorded since the last flush in one transaction; returns the rows written."""
        with self._write_lock:
            with self._progress_lock:
                if not self._pending_progress:
                    return 0
                pending, self._pending_progress = self._pending_progress, {}
            rows = [_progress_row(u) for u in pending.values()]
            conn = self._keepalive
            try:
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany("INSERT OR REPLACE INTO progress VALUES (?,?,?,?,?,?,?)", rows)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                with self._progress_lock:  # keep them for the next flush unless newer ones came meanwhile
                    for task_id, update in pending.items():
                        self._pending_progress.setdefault(task_id, update)
                raise
            return len(rows)

    def progress(self, task_id: int) -> ProgressUpdate | None:
        with self._progress_lock:
            pending = self._pending_progress.get(task_id)
        if pending is not None:
            return pending
        if not is_u64(task_id):
            return None
        row = self._conn().execute("SELECT * FROM progress WHERE task_id = ?", (store_u64(task_id),)).fetchone()
        if row is None:
            return None
        return ProgressUpdate(load_u64(row[0]), row[1], load_u64(row[2]), load_u64(row[3]), row[4], json.loads(row[5]),
                              bytes(row[6]))

    # Queries ----------------------------------------------------------------------------------
    def task(self, task_id: int) -> TaskView | None:
        """The task `task_id` as indexed; None also for an id no chain task can have (negative, beyond u64)."""
        generation = self._generation
        try:
            return self._task_cache[task_id]
        except KeyError:
            pass
        task = self._task(self._conn(), task_id)
        self._cache_put(self._task_cache, task_id, task, generation)
        return task

    @staticmethod
    def _task(conn: sqlite3.Connection, task_id: int) -> TaskView | None:
        if not is_u64(task_id):
            return None
        row = conn.execute("SELECT * FROM tasks WHERE task_id = ?", (store_u64(task_id),)).fetchone()
        return None if row is None else _task_from_row(row)

    def tasks(self, status: TaskStatus | None = None, limit: int = 100, after_id: int = -1) -> list[TaskView]:
        """Tasks in id order after `after_id` (any int: -1 lists from the first), optionally of one status."""
        first = max(after_id + 1, 0)
        if first > U64_MAX:
            return []
        if status is None:
            rows = self._conn().execute("SELECT * FROM tasks WHERE task_id >= ? ORDER BY task_id LIMIT ?",
                                        (store_u64(first), limit)).fetchall()
        else:
            rows = self._conn().execute(
                "SELECT * FROM tasks WHERE status = ? AND task_id >= ? ORDER BY task_id LIMIT ?",
                (TaskStatus(status).value, store_u64(first), limit)).fetchall()
        return [_task_from_row(r) for r in rows]

    def count_tasks(self, status: TaskStatus | None = None) -> int:
        if status is None:
            return int(self._conn().execute("SELECT COUNT(*) FROM tasks").fetchone()[0])
        return int(self._conn().execute("SELECT COUNT(*) FROM tasks WHERE status = ?",
                                        (TaskStatus(status).value,)).fetchone()[0])

    def open_tasks_for(self, capabilities: Capabilities | None = None, stake: int | None = None) -> Iterator[TaskView]:
        """Open tasks a worker with these capabilities and stake can take, oldest first (from memory)."""
        return self.open_tasks.for_worker(capabilities, stake)

    def worker(self, account: str) -> WorkerView | None:
        generation = self._generation
        try:
            return self._worker_cache[account]
        except KeyError:
            pass
        conn = self._conn()
        row = conn.execute("SELECT * FROM workers WHERE account = ?", (account,)).fetchone()
        worker = None
        if row is not None:
            claims = conn.execute("SELECT COUNT(*) FROM claims WHERE worker = ?", (account,)).fetchone()[0]
            worker = _worker_from_row(row, claims)
        self._cache_put(self._worker_cache, account, worker, generation)
        return worker

    def workers(self) -> list[WorkerView]:
        conn = self._conn()
        counts = dict(conn.execute("SELECT worker, COUNT(*) FROM claims GROUP BY worker").fetchall())
        return [_worker_from_row(r, counts.get(r[0], 0))
                for r in conn.execute("SELECT * FROM workers ORDER BY account").fetchall()]

    def claims_of(self, account: str) -> list[int]:
        """Ids of the tasks `account` holds on chain (Claimed or Submitted), ascending."""
        return [load_u64(r[0]) for r in self._conn().execute(
            "SELECT task_id FROM claims WHERE worker = ? ORDER BY task_id", (account,)).fetchall()]

    def claims(self) -> dict[int, str]:
        return {load_u64(task_id): worker
                for task_id, worker in self._conn().execute("SELECT task_id, worker FROM claims").fetchall()}

    # Start-up ---------------------------------------------------------------------------------
    def _load_open_tasks(self) -> None:
        self.open_tasks.clear()
        for row in self._conn().execute("SELECT * FROM tasks WHERE status = 'Open' ORDER BY task_id"):
            self.open_tasks.put(_task_from_row(row))


# Conversions ------------------------------------------------------------------------------------

def _capabilities(value: chain_types.Capabilities) -> Capabilities:
    return Capabilities(value.cpus, value.gpus, value.gpu_model.text, value.memory_mb)


def _capabilities_row(c: Capabilities) -> tuple[int, int, str, int]:
    """(cpus, gpus, gpu_model, memory_mb) as stored: the order of both the workers table and its UPDATE."""
    return store_u32(c.cpus), store_u32(c.gpus), c.gpu_model, store_u64(c.memory_mb)


def _task_row(t: TaskView, block: int) -> tuple[SqlValue, ...]:
    r = t.requirements
    return (store_u64(t.task_id), t.requester, t.recipe, t.spec_hash, t.spec_uri, t.dataset_hash, t.eval_metric,
            store_i64(t.eval_target), store_u32(r.min_cpus), store_u32(r.min_gpus), store_u64(r.min_memory_mb),
            store_u128(t.bounty), store_u128(t.min_stake), store_u32(t.deadline), store_u32(t.validators_required),
            t.status.value, t.worker, store_opt_u32(t.lease_until), store_u64(t.progress_step), t.checkpoint_root,
            store_u32(t.created_at), block)


def _task_from_row(row: Sequence[Any]) -> TaskView:
    return TaskView(
        task_id=load_u64(row[0]), requester=row[1], recipe=row[2], spec_hash=bytes(row[3]), spec_uri=row[4],
        dataset_hash=bytes(row[5]), eval_metric=row[6], eval_target=row[7],
        requirements=Requirements(row[8], row[9], load_u64(row[10])), bounty=load_u128(row[11]),
        min_stake=load_u128(row[12]), deadline=row[13], validators_required=row[14], status=TaskStatus(row[15]),
        worker=row[16], lease_until=row[17], progress_step=load_u64(row[18]), checkpoint_root=bytes(row[19]),
        created_at=row[20])


def _worker_from_row(row: Sequence[Any], claims: int) -> WorkerView:
    return WorkerView(account=row[0], role=row[1], stake=load_u128(row[2]),
                      capabilities=Capabilities(row[3], row[4], row[5], load_u64(row[6])), active=bool(row[7]),
                      active_claims=claims)


def _check_progress(u: ProgressUpdate) -> None:
    """Raises Unrepresentable where `_progress_row` would fail, without building the row: it runs on every
    heartbeat, and most carry no metrics (then nothing can fail in json.dumps, so it is skipped)."""
    if not (is_u64(u.task_id) and is_u64(u.step) and is_u64(u.epoch)):
        raise Unrepresentable(f"task_id, step and epoch must be u64, not {u.task_id!r}, {u.step!r}, {u.epoch!r}")
    float(u.loss)  # (as the row does: a loss that is no number fails here, not at the flush)
    if u.metrics:
        _progress_row(u)


def _progress_row(u: ProgressUpdate) -> tuple[SqlValue, ...]:
    return (store_u64(u.task_id), u.worker, store_u64(u.step), store_u64(u.epoch), float(u.loss),
            json.dumps(u.metrics, sort_keys=True), u.checkpoint_root)


def _stored_schema(conn: sqlite3.Connection) -> str | None:
    """The schema version an existing index file was written with; None for a new file ("?" if unrecorded)."""
    if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").fetchone() is None:
        return None
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
    return "?" if row is None else row[0]


def _describe(change: Change) -> str:
    """What a change is about, for the log of one that was skipped."""
    if isinstance(change, TaskRecord):
        return f"the record of task {change.task.task_id}"
    if isinstance(change, WorkerRecord):
        return f"the record of worker {change.account}"
    return f"event {getattr(change, 'pallet', '?')}.{getattr(change, 'name', type(change).__name__)}"


def task_view_from_chain(task_id: int, task: chain_types.Task) -> TaskView:
    """A TaskView from `runtime_bindings.generated.types.Task` (as `chain.task_bounties.tasks(id)` returns)."""
    status = task.status
    worker = getattr(status, "worker", None)  # every status that holds the task names its worker
    spec, req = task.spec, task.spec.requirements
    progress = task.progress
    return TaskView(
        task_id=task_id, requester=task.requester.ss58, recipe=spec.recipe.text, spec_hash=bytes(spec.spec_hash),
        spec_uri=spec.spec_uri.text, dataset_hash=bytes(spec.dataset_hash), eval_metric=spec.eval_metric.text,
        eval_target=spec.eval_target,
        requirements=Requirements(req.min_cpus, req.min_gpus, req.min_memory_mb),
        bounty=task.bounty, min_stake=task.min_stake, deadline=task.deadline,
        validators_required=task.validators_required, status=TaskStatus(status.name),
        worker=None if worker is None else worker.ss58,
        lease_until=status.lease_until if isinstance(status, chain_types.TaskStatus.Claimed) else None,
        progress_step=progress.step if progress else 0,
        checkpoint_root=bytes(progress.checkpoint_root) if progress else b"", created_at=task.created_at)


def worker_view_from_chain(account: str, info: chain_types.WorkerInfo) -> WorkerView:
    """A WorkerView from `runtime_bindings.generated.types.WorkerInfo`."""
    return WorkerView(account=account, role=info.role.name, stake=info.stake,
                      capabilities=_capabilities(info.capabilities),
                      active=info.status == chain_types.WorkerStatus.Active, active_claims=info.active_claims)


__all__ = ["BlockRef", "Change", "Index", "IndexGap", "OpenTasks", "TaskRecord", "WorkerRecord", "task_view_from_chain",
           "worker_view_from_chain"]
