"""orchestrator.indexer against real devnet processes: the index agrees with chain storage, restarts of the
indexer (from its DB) and of the node (--base-path) lose nothing and apply nothing twice."""
from __future__ import annotations

import asyncio
import socket
import time

import pytest

from orchestrator.domain import TaskStatus
from orchestrator.index import Index, task_view_from_chain, worker_view_from_chain
from orchestrator.indexer import Indexer, PubSub
from paratrain.local import DevnetProcess
from runtime_bindings import Chain, Keypair
from runtime_bindings.generated import types as t

pytestmark = pytest.mark.slow  # restarts the indexer and devnet processes

UNIT = 10**12
ALICE, BOB, CHARLIE, DAVE = (Keypair.create_from_uri(f"//{n}") for n in ("Alice", "Bob", "Charlie", "Dave"))


def spec(gpus: int = 1) -> t.TaskSpec:
    return t.TaskSpec(recipe="mnist-mlp", spec_hash="0x" + "11" * 32, spec_uri="s3://specs/mnist.yaml",
                      dataset_hash="0x" + "22" * 32, eval_metric="accuracy", eval_target=900_000, higher_is_better=True,
                      requirements=t.Requirements(2, gpus, 8_000), parent_model=None)


def create_task(chain: Chain, gpus: int = 1, deadline_in: int = 500) -> int:
    receipt = chain.task_bounties.create_task(ALICE, spec(gpus), 10 * UNIT, 0, chain.best_number() + deadline_in, 1,
                                              None)
    return receipt.events[[e.name for e in receipt.events].index("TaskCreated")].task_id


def register(chain: Chain, who: Keypair, gpus: int = 2) -> None:
    chain.workers.register(who, "Trainer", 1_000 * UNIT, t.Capabilities(16, gpus, "H100", 128_000))


def assert_agrees(index: Index, chain: Chain) -> None:
    """Every task and worker in chain storage (at the index's last block) equals the index's row."""
    at = index.last_block.hash
    tasks = dict(chain.task_bounties.tasks.entries(at=at))
    assert sorted(tasks) == [x.task_id for x in index.tasks(limit=10**6)]
    for task_id, task in tasks.items():
        assert index.task(task_id) == task_view_from_chain(task_id, task), task_id
    workers = dict(chain.workers.workers.entries(at=at))
    assert sorted(workers) == [w.account for w in index.workers()]
    for account, info in workers.items():
        assert index.worker(account) == worker_view_from_chain(account, info)
    # ClaimsByWorker per worker (entries() without a prefix trips on double-map keys in the bindings)
    claims = {task_id: who for who in workers for task_id, _ in chain.task_bounties.claims_by_worker.entries(who, at=at)}
    assert claims == index.claims()
    for account, info in workers.items():
        assert info.active_claims == len(index.claims_of(account))
    assert sorted(x.task_id for x in index.open_tasks_for()) == sorted(
        i for i, x in tasks.items() if x.status == "Open")


def test_index_follows_lifecycle_and_agrees_with_storage(devnet: DevnetProcess, tmp_path) -> None:
    with Chain.connect(devnet.ws_url, timeout=10) as chain:
        register(chain, BOB)
        register(chain, CHARLIE, gpus=0)
        ids = [create_task(chain) for _ in range(4)] + [create_task(chain, gpus=0)]
        chain.task_bounties.claim_task(BOB, ids[0])
        chain.task_bounties.heartbeat(BOB, ids[0], t.Progress(42, "0x" + "ab" * 32))
        chain.task_bounties.claim_task(BOB, ids[1])
        chain.task_bounties.release_claim(BOB, ids[1])
        chain.task_bounties.cancel_task(ALICE, ids[2])
        chain.task_bounties.claim_task(CHARLIE, ids[4])
        chain.workers.bond_extra(BOB, 5 * UNIT)
        index = Index(tmp_path / "i.db")
        indexer = Indexer(devnet.ws_url, index)
        height = indexer.sync()
        assert height == chain.finalized_number() and indexer.lag == 0
        assert_agrees(index, chain)
        assert index.task(ids[0]).progress_step == 42 and index.task(ids[0]).worker == BOB.ss58_address
        assert index.task(ids[1]).status is TaskStatus.OPEN and index.task(ids[2]).status is TaskStatus.CANCELLED
        assert index.worker(BOB.ss58_address).stake == 1_005 * UNIT
        assert index.claims_of(BOB.ss58_address) == [ids[0]]
        # rebuild from block 1 gives the same index
        before = (index.tasks(limit=10**6), index.workers(), index.claims())
        index.rebuild()
        assert indexer.sync() == height
        assert (index.tasks(limit=10**6), index.workers(), index.claims()) == before
        index.close()


def test_restart_from_db_no_gap_no_duplicate(devnet: DevnetProcess, tmp_path) -> None:
    path = tmp_path / "i.db"
    with Chain.connect(devnet.ws_url, timeout=10) as chain:
        register(chain, DAVE)
        index = Index(path)
        indexer = Indexer(devnet.ws_url, index, poll_interval=0.05).start()
        first = [create_task(chain) for _ in range(3)]
        chain.task_bounties.claim_task(DAVE, first[0])
        assert indexer.wait_for(chain.finalized_number(), timeout=20)
        indexer.stop()
        assert not indexer.running
        stopped_at = index.last_block.number
        index.close()
        # the chain moves on while the indexer is down
        second = [create_task(chain) for _ in range(3)]
        chain.task_bounties.claim_task(DAVE, second[0])
        chain.task_bounties.release_claim(DAVE, first[0])
        target = chain.finalized_number()
        applied: list[int] = []
        again = Index(path)
        assert again.last_block.number == stopped_at
        indexer = Indexer(devnet.ws_url, again, poll_interval=0.05)
        indexer.on_block(lambda n, h, ev: applied.append(n))
        indexer.start()
        assert indexer.wait_for(target, timeout=20)
        indexer.stop()
        assert applied == list(range(stopped_at + 1, target + 1))  # resumed exactly after its last block
        assert_agrees(again, chain)
        assert again.task(first[0]).status is TaskStatus.OPEN
        assert again.task(second[0]).worker == DAVE.ss58_address
        again.close()


async def test_pubsub_delivers_task_events(devnet: DevnetProcess, tmp_path) -> None:
    pubsub = PubSub()
    index = Index(tmp_path / "i.db")
    indexer = Indexer(devnet.ws_url, index, pubsub, poll_interval=0.05)
    await asyncio.to_thread(indexer.sync)
    sub_all = pubsub.subscribe()
    indexer.start()
    try:
        with Chain.connect(devnet.ws_url, timeout=10) as chain:
            task_id = await asyncio.to_thread(create_task, chain)
            sub_one = pubsub.subscribe(task_id)
            await asyncio.to_thread(chain.task_bounties.cancel_task, ALICE, task_id)
        created = await sub_all.get(timeout=10)
        assert created.kind == "TaskCreated" and created.task_id == task_id and created.block > 0
        kinds = []
        while not kinds or kinds[-1].kind != "TaskCancelled":
            kinds.append(await sub_one.get(timeout=10))
        assert {e.task_id for e in kinds} == {task_id}  # only this task's events
        cancelled = kinds[-1]
        assert cancelled.kind == "TaskCancelled" and cancelled.task_id == task_id
        assert cancelled.detail["refund"] == 11 * UNIT
        sub_one.close()
        assert await sub_one.get(timeout=1) is None
    finally:
        indexer.stop()
        index.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_devnet_restart_reconnects_and_catches_up(tmp_path) -> None:
    args = ("--port", str(_free_port()), "--base-path", str(tmp_path / "chain"))
    node = DevnetProcess(*args).start()
    index = Index(tmp_path / "i.db")
    indexer = Indexer(node.ws_url, index, poll_interval=0.05, reconnect_timeout=2, retry_pause=0.2)
    seen: list[int] = []
    indexer.on_block(lambda n, h, ev: seen.append(n))
    try:
        with Chain.connect(node.ws_url, timeout=5) as chain:
            register(chain, BOB)
            ids = [create_task(chain) for _ in range(2)]
            target = chain.finalized_number()
        indexer.start()
        assert indexer.wait_for(target, timeout=20)
        node.stop()
        time.sleep(1.0)  # the indexer notices the node is gone
        node = DevnetProcess(*args).start()
        with Chain.connect(node.ws_url, timeout=5) as chain:
            chain.task_bounties.claim_task(BOB, ids[0])
            ids.append(create_task(chain))
            target = chain.finalized_number()
            assert indexer.wait_for(target, timeout=30), (indexer.height, target, indexer.last_error)
            indexer.stop()
            assert seen == list(range(1, target + 1))  # no gap, no duplicate
            assert_agrees(index, chain)
            assert index.task(ids[0]).status is TaskStatus.CLAIMED and index.task(ids[2]) is not None
    finally:
        indexer.stop()
        node.stop()
        index.close()
