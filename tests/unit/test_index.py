"""orchestrator.index: idempotent, gap-free, atomic block application; queries; rebuild; open-task candidates."""
from __future__ import annotations

import time
from dataclasses import replace

import pytest

from orchestrator.domain import Capabilities, Requirements, TaskStatus, TaskView, WorkerView
from orchestrator.index import Index, IndexGap, TaskRecord, WorkerRecord
from runtime_bindings.generated import task_bounties as tb
from runtime_bindings.generated import types as t
from runtime_bindings.generated import workers as wk

CAPS = Capabilities(16, 2, "H100", 128_000)


def view(task_id: int, *, gpus: int = 1, min_stake: int = 0, status: TaskStatus = TaskStatus.OPEN) -> TaskView:
    return TaskView(task_id=task_id, requester="alice", recipe="mnist", spec_hash=b"\x11" * 32, spec_uri="s3://s",
                    dataset_hash=b"\x22" * 32, eval_metric="accuracy", eval_target=900_000,
                    requirements=Requirements(2, gpus, 8_000), bounty=10**13, min_stake=min_stake, deadline=100,
                    validators_required=1, status=status, created_at=1)


def created(task_id: int, **kw: object) -> list[object]:
    return [TaskRecord(view(task_id, **kw)), tb.TaskCreatedEvent(task_id, "alice", 10**13, 100)]


def registered(account: str, stake: int = 10**15) -> list[object]:
    return [WorkerRecord(account, WorkerView(account, "Trainer", stake, CAPS, True)),
            wk.WorkerRegisteredEvent(who=account, role="Trainer", stake=stake)]


@pytest.fixture
def index(tmp_path) -> Index:
    idx = Index(tmp_path / "index.db")
    yield idx
    idx.close()


def test_lifecycle_and_queries(index: Index) -> None:
    assert index.last_block.number == 0
    assert index.apply_block(1, "0x01", registered("bob") + created(0) + created(1))
    assert index.task(0).status is TaskStatus.OPEN and len(index.open_tasks) == 2
    index.apply_block(2, "0x02", [tb.TaskClaimedEvent(0, "bob", 12)])
    assert index.task(0).status is TaskStatus.CLAIMED and index.task(0).worker == "bob"
    assert index.task(0).lease_until == 12
    assert index.claims_of("bob") == [0] and index.worker("bob").active_claims == 1
    assert [x.task_id for x in index.open_tasks_for(CAPS, 10**15)] == [1]
    index.apply_block(3, "0x03", [tb.HeartbeatEvent(0, "bob", t.Progress(7, t.H256("0x" + "aa" * 32)), 15)])
    assert index.task(0).progress_step == 7 and index.task(0).checkpoint_root == b"\xaa" * 32
    index.apply_block(4, "0x04", [tb.ResultSubmittedEvent(0, "bob", "0x" + "01" * 32, "0x" + "02" * 32, 20)])
    assert index.task(0).status is TaskStatus.SUBMITTED and index.claims_of("bob") == [0]
    index.apply_block(5, "0x05", [tb.WorkerSlashedEvent(0, "bob", 5, 0), wk.StakeSlashedEvent("bob", 5, 10**15 - 5),
                                  tb.TaskReopenedEvent(0)])
    assert index.task(0).status is TaskStatus.OPEN and index.task(0).worker is None
    assert index.task(0).progress_step == 0 and index.claims_of("bob") == []
    assert index.worker("bob").stake == 10**15 - 5
    assert [x.task_id for x in index.open_tasks_for(CAPS, 10**15)] == [0, 1]
    index.apply_block(6, "0x06", [tb.TaskClaimedEvent(1, "bob", 16), tb.TaskCancelledEvent(0, 1)])
    index.apply_block(7, "0x07", [tb.ClaimReleasedEvent(1, "bob"), tb.TaskExpiredEvent(1, 1)])
    assert index.task(0).status is TaskStatus.CANCELLED and index.task(1).status is TaskStatus.EXPIRED
    assert len(index.open_tasks) == 0 and index.claims() == {}
    index.apply_block(8, "0x08", [wk.UnbondingStartedEvent("bob", 20)])
    assert index.worker("bob").active is False
    index.apply_block(9, "0x09", [wk.WithdrawnEvent("bob", 1)])
    assert index.worker("bob") is None
    assert [x.task_id for x in index.tasks()] == [0, 1]
    assert [x.task_id for x in index.tasks(TaskStatus.EXPIRED)] == [1]
    assert [x.task_id for x in index.tasks(limit=1, after_id=0)] == [1]
    assert index.last_block.number == 9 and index.last_block.hash == "0x09"


def test_apply_is_idempotent_and_refuses_gaps(index: Index) -> None:
    assert index.apply_block(1, "0x01", registered("bob") + created(0))
    assert index.apply_block(2, "0x02", [tb.TaskClaimedEvent(0, "bob", 12)])
    # replays after a restart: ignored, nothing applied twice
    assert not index.apply_block(1, "0x01", registered("bob") + created(0))
    assert not index.apply_block(2, "0x02", [tb.TaskClaimedEvent(0, "bob", 12)])
    assert index.task(0).status is TaskStatus.CLAIMED and index.worker("bob").active_claims == 1
    with pytest.raises(IndexGap):
        index.apply_block(4, "0x04", [])
    assert index.last_block.number == 2


def test_block_is_atomic_on_error(index: Index) -> None:
    index.apply_block(1, "0x01", registered("bob") + created(0))

    class Boom:
        pallet, name = "TaskBounties", "TaskClaimed"

        @property
        def task_id(self) -> int:
            raise RuntimeError("decoder blew up")

    with pytest.raises(RuntimeError):
        index.apply_block(2, "0x02", [tb.TaskClaimedEvent(0, "bob", 12)] + created(1) + [Boom()])
    assert index.last_block.number == 1
    assert index.task(0).status is TaskStatus.OPEN and index.task(1) is None
    assert index.claims() == {} and [x.task_id for x in index.open_tasks_for()] == [0]
    # the same block applies cleanly afterwards
    assert index.apply_block(2, "0x02", [tb.TaskClaimedEvent(0, "bob", 12)] + created(1))
    assert index.task(0).status is TaskStatus.CLAIMED and index.task(1) is not None


def test_task_created_without_record_is_refused(index: Index) -> None:
    with pytest.raises(ValueError):
        index.apply_block(1, "0x01", [tb.TaskCreatedEvent(0, "alice", 1, 100)])
    assert index.last_block.number == 0


def test_state_survives_reopen_and_rebuild_forgets(tmp_path) -> None:
    path = tmp_path / "i.db"
    index = Index(path)
    index.apply_block(1, "0x01", registered("bob") + created(0) + created(1))
    index.apply_block(2, "0x02", [tb.TaskClaimedEvent(0, "bob", 12)])
    index.close()
    again = Index(path)
    assert again.last_block.number == 2 and again.last_block.hash == "0x02"
    assert [x.task_id for x in again.open_tasks_for()] == [1]  # loaded into memory at start
    assert again.claims_of("bob") == [0]
    again.rebuild()
    assert again.last_block.number == 0 and again.task(0) is None and len(again.open_tasks) == 0
    assert again.apply_block(1, "0x01", registered("bob") + created(0))
    again.close()


def test_candidates_by_requirements_and_stake(index: Index) -> None:
    events: list[object] = []
    for i in range(30):
        events += created(i, gpus=i % 3, min_stake=(i % 2) * 100)
    index.apply_block(1, "0x01", events)
    got = [x.task_id for x in index.open_tasks_for(Capabilities(4, 1, "", 16_000), 50)]
    assert got == [i for i in range(30) if i % 3 <= 1 and i % 2 == 0]
    assert [x.task_id for x in index.open_tasks_for()] == list(range(30))


def test_assignment_candidates_fast_with_100k_open_tasks(index: Index) -> None:
    from orchestrator.scheduler import Reservations, choose_task

    events: list[object] = []
    for i in range(100_000):
        events += created(i, gpus=i % 4)  # four requirement classes
    index.apply_block(1, "0x01", events)
    assert len(index.open_tasks) == 100_000
    reservations = Reservations(on_reserve=index.open_tasks.hide, on_release=index.open_tasks.unhide)
    w = WorkerView("bob", "Trainer", 10**15, Capabilities(16, 1, "", 128_000), True)
    samples = []
    for n in range(500):
        started = time.perf_counter()
        chosen = choose_task(replace(w, account=f"w{n}"), index.open_tasks_for(w.capabilities, w.stake),
                             reservations, 10**9, now=0)
        reservations.reserve(chosen.task_id, f"w{n}", now=0)
        samples.append(time.perf_counter() - started)
    samples.sort()
    assert samples[int(len(samples) * 0.99)] < 0.005, samples[-5:]
    assert len(index.open_tasks) == 100_000  # reserved, still open on chain
    reservations.expire(now=31)
    assert next(index.open_tasks_for(w.capabilities, w.stake)).task_id == 0  # expired: offered again


def test_progress_is_batched_and_cleared_when_reopened(tmp_path) -> None:
    from orchestrator.domain import ProgressUpdate

    path = tmp_path / "p.db"
    index = Index(path)
    index.apply_block(1, "0x01", registered("bob") + created(0) + created(1))
    index.apply_block(2, "0x02", [tb.TaskClaimedEvent(0, "bob", 12), tb.TaskClaimedEvent(1, "bob", 12)])
    for step in (1, 2, 3):  # coalesced: only the latest per task is written
        index.record_progress(ProgressUpdate(0, "bob", step, 0, 0.5))
    index.record_progress(ProgressUpdate(1, "bob", 7, 0, 0.5))
    assert index.progress(0).step == 3  # answered from memory before any flush
    assert index.flush_progress() == 2 and index.flush_progress() == 0
    assert index.progress(0).step == 3 and index.progress(1).step == 7
    index.record_progress(ProgressUpdate(0, "bob", 4, 0, 0.5))
    index.record_progress(ProgressUpdate(1, "bob", 8, 0, 0.5))
    index.apply_block(3, "0x03", [tb.TaskReopenedEvent(1)])  # flushes first, then the block clears task 1
    assert index.progress(0).step == 4 and index.progress(1) is None
    index.record_progress(ProgressUpdate(0, "bob", 5, 0, 0.5))
    index.close()  # flushes
    again = Index(path)
    assert again.progress(0).step == 5 and again.progress(1) is None
    again.close()


def test_cached_reads_follow_blocks(index: Index) -> None:
    index.apply_block(1, "0x01", registered("bob") + created(0))
    assert index.task(0).status is TaskStatus.OPEN and index.worker("bob").active_claims == 0
    assert index.task(0) is index.task(0)  # cached
    assert index.task(5) is None and index.worker("carol") is None
    index.apply_block(2, "0x02", [tb.TaskClaimedEvent(0, "bob", 12)] + created(5) + registered("carol"))
    assert index.task(0).status is TaskStatus.CLAIMED and index.worker("bob").active_claims == 1
    assert index.task(5) is not None and index.worker("carol") is not None
    index.rebuild()
    assert index.task(0) is None and index.worker("bob") is None


# Values at the extremes of their chain types ------------------------------------------------------

U32, U64, U128 = (1 << 32) - 1, (1 << 64) - 1, (1 << 128) - 1
EXTREME_IDS = [0, 1, (1 << 63) - 1, 1 << 63, U64]
MAX_CAPS = Capabilities(U32, U32, "\x00" + "é" * 31, U64)


def extreme(task_id: int) -> TaskView:
    """A task whose every number is at an end of its chain type, with long, NUL-holding and non-UTF-8 text."""
    low = task_id % 2 == 0
    return replace(view(task_id), recipe="0x41" if low else "r" * 64, spec_uri="\x00" * 256,
                   eval_metric="0xfffe" if low else "", eval_target=-(1 << 63) if low else (1 << 63) - 1,
                   requirements=Requirements(U32, 0, U64) if low else Requirements(0, U32, 1),
                   bounty=U128 if low else 1, min_stake=U128 if low else 0, deadline=U32,
                   validators_required=U32, created_at=U32)


def test_values_at_their_type_extremes_round_trip_and_keep_their_order(tmp_path) -> None:
    path = tmp_path / "x.db"
    index = Index(path)
    whale = WorkerView("whale", "Trainer", U128, MAX_CAPS, True)
    changes: list[object] = [WorkerRecord("whale", whale)]
    for task_id in reversed(EXTREME_IDS):
        changes += [TaskRecord(extreme(task_id)), tb.TaskCreatedEvent(task_id, "alice", 1, U32)]
    assert index.apply_block(1, "0x01", changes)
    index.apply_block(2, "0x02", [tb.TaskClaimedEvent(1 << 63, "whale", U32), tb.TaskClaimedEvent(1, "whale", U32),
                                  tb.HeartbeatEvent(1 << 63, "whale", t.Progress(U64, t.H256("0x" + "ab" * 32)), U32),
                                  wk.StakeBondedEvent("whale", 0, U128)])
    index.close()
    index = Index(path)  # everything below is read back from the file, open tasks included
    try:
        assert [x.task_id for x in index.tasks()] == EXTREME_IDS
        assert [x.task_id for x in index.tasks(after_id=(1 << 63) - 1)] == [1 << 63, U64]
        assert index.tasks(after_id=U64) == [] and index.tasks(after_id=1 << 70) == []
        assert [x.task_id for x in index.tasks(TaskStatus.OPEN, after_id=-5)] == [0, (1 << 63) - 1, U64]
        for task_id in (0, (1 << 63) - 1, U64):
            assert index.task(task_id) == extreme(task_id)
        held = index.task(1 << 63)
        assert (held.progress_step, held.lease_until, held.status) == (U64, U32, TaskStatus.CLAIMED)
        assert index.task(-1) is None and index.task(1 << 64) is None and index.task(2) is None
        assert index.claims_of("whale") == [1, 1 << 63] and index.claims() == {1: "whale", 1 << 63: "whale"}
        assert index.worker("whale") == replace(whale, active_claims=2)
        # matching at the ends: memory 2^64-1 meets min_memory_mb 2^64-1, one megabyte less does not
        assert [x.task_id for x in index.open_tasks_for(MAX_CAPS, U128)] == [0, (1 << 63) - 1, U64]
        assert [x.task_id for x in index.open_tasks_for(replace(MAX_CAPS, memory_mb=U64 - 1), U128)] == [
            (1 << 63) - 1, U64]
        assert [x.task_id for x in index.open_tasks_for(MAX_CAPS, U128 - 1)] == [(1 << 63) - 1, U64]
        assert [x.task_id for x in index.open_tasks_for(replace(MAX_CAPS, gpus=U32 - 1), U128)] == [0]
    finally:
        index.close()


def test_progress_at_u64_extremes(tmp_path) -> None:
    from orchestrator.columns import Unrepresentable
    from orchestrator.domain import ProgressUpdate

    path = tmp_path / "p.db"
    index = Index(path)
    index.apply_block(1, "0x01", registered("bob") + [TaskRecord(replace(view(U64), status=TaskStatus.CLAIMED,
                                                                         worker="bob", lease_until=U32))])
    index.record_progress(ProgressUpdate(U64, "bob", U64, U64, 0.25, {"acc": 1.0}, b"\x01" * 32))
    with pytest.raises(Unrepresentable):  # refused when recorded, so no flush before a block can trip on it
        index.record_progress(ProgressUpdate(U64, "bob", 1 << 64, 0, 0.25))
    assert index.apply_block(2, "0x02", [])  # flushed first
    index.close()
    again = Index(path)
    assert again.progress(U64) == ProgressUpdate(U64, "bob", U64, U64, 0.25, {"acc": 1.0}, b"\x01" * 32)
    assert again.progress(1 << 64) is None
    again.close()


def test_a_value_the_index_cannot_store_skips_that_change_not_the_block(index: Index, caplog) -> None:
    """The chain cannot hold these either (the records are built by hand): the index must still go on."""
    too_big = replace(view(0), requirements=Requirements(2, 1, 1 << 64))
    changes = [TaskRecord(too_big), tb.TaskCreatedEvent(0, "alice", 1, 100)] + created(1) + registered("bob")
    changes += [wk.StakeBondedEvent("bob", 1, 1 << 128)]
    with caplog.at_level("ERROR", logger="orchestrator.index"):
        assert index.apply_block(1, "0x01", changes)
    assert index.task(0) is None and index.task(1) is not None
    assert index.worker("bob").stake == 10**15  # its stake event was skipped, its record kept
    assert "the record of task 0 not indexed" in caplog.text and "event Workers.StakeBonded not indexed" in caplog.text
    assert [x.task_id for x in index.open_tasks_for()] == [1]
    # later blocks keep being applied; events about the skipped task change nothing
    assert index.apply_block(2, "0x02", [tb.TaskClaimedEvent(0, "bob", 12)] + created(2))
    assert index.last_block.number == 2 and index.task(0) is None and index.task(2) is not None


def test_an_index_of_another_schema_version_is_rebuilt(tmp_path) -> None:
    import sqlite3

    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:  # the version 1 layout: u128 as decimal TEXT, u64 as plain INTEGER
        conn.executescript("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
                           "INSERT INTO meta VALUES ('schema', '1'), ('last_block', '7'), ('last_hash', '0x07');"
                           "CREATE TABLE tasks (task_id INTEGER PRIMARY KEY, bounty TEXT NOT NULL);"
                           "INSERT INTO tasks VALUES (3, '1000');")
    index = Index(path)
    try:
        assert index.last_block.number == 0 and index.tasks() == []  # the indexer starts again at block 1
        assert index.apply_block(1, "0x01", created(3))
        assert index.task(3) == view(3)
    finally:
        index.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone() == ("2",)


def test_indexer_leaves_out_a_record_it_cannot_convert_and_goes_on(index: Index, caplog) -> None:
    """A stored task whose status this version does not know (variants are only ever appended): that task is
    left out, the block and the ones after it are applied."""
    from types import SimpleNamespace

    from orchestrator.indexer import Indexer

    def stored(status: object) -> dict[str, object]:
        """A Tasks record as scalecodec decodes it (the bindings' types are built from that)."""
        spec = {"recipe": "mnist", "spec_hash": "0x" + "11" * 32, "spec_uri": "s3://s",
                "dataset_hash": "0x" + "22" * 32, "eval_metric": "accuracy", "eval_target": 900_000,
                "higher_is_better": True,
                "requirements": {"min_cpus": 2, "min_gpus": 1, "min_memory_mb": U64}, "parent_model": None}
        return {"requester": "alice", "spec": spec, "bounty": 10**13, "deposit": 10**12,
                "min_stake": U128, "deadline": 100, "validators_required": 1, "holdout_commitment": None,
                "status": status, "created_at": 1, "attempts": 0, "progress": None}

    def records(*task_ids: int) -> list[object]:
        return [SimpleNamespace(event=tb.TaskCreatedEvent(i, "alice", 10**13, 100)) for i in task_ids]

    on_chain = {0: stored("Paused")}  # read from the chain: decoding it fails in the bindings
    chain = SimpleNamespace(task_bounties=SimpleNamespace(tasks=lambda tid, at: t.Task.from_value(on_chain[tid])))
    indexer = Indexer("ws://127.0.0.1:1", index)
    with caplog.at_level("ERROR", logger="orchestrator.indexer"):
        assert indexer.apply(chain, 1, "0x01", records(0, 1), {(1, 1): t.Task.from_value(stored("Open"))})
    assert "task_view_from_chain(0, ...) failed, so that record is not indexed" in caplog.text
    assert "TaskStatus has no variant 'Paused'" in caplog.text
    assert index.task(0) is None and index.task(1).requirements.min_memory_mb == U64
    assert indexer.apply(chain, 2, "0x02", records(2), {(2, 2): t.Task.from_value(stored("Open"))})
    assert [x.task_id for x in index.tasks()] == [1, 2] and index.last_block.number == 2
