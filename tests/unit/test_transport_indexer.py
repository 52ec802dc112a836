"""orchestrator.indexer following devnet's runtime over MemoryTransport, with sockets forbidden: the index
agrees with chain storage after a lifecycle, later blocks are followed from where it stopped, and each
block reaches on_block once, in order; the orchestrator service opens its connections with the factory
it is given."""
from __future__ import annotations

import asyncio
from collections.abc import Sequence

from memory_chain import URL, chain_factory, create_task, memory_chain

from devnet.rpc.inprocess import InProcessNode
from orchestrator.config import OrchestratorConfig
from orchestrator.domain import TaskStatus
from orchestrator.index import Change, Index, task_view_from_chain
from orchestrator.indexer import Indexer
from orchestrator.service import start_orchestrator, stop_orchestrator
from runtime_bindings import Chain, Keypair
from runtime_bindings.generated import types as t

UNIT = 10**12
ALICE, BOB = Keypair.create_from_uri("//Alice"), Keypair.create_from_uri("//Bob")


def test_indexer_follows_blocks_from_a_memory_chain(node: InProcessNode, chain: Chain, tmp_path) -> None:
    chain.workers.register(BOB, "Trainer", 1_000 * UNIT, t.Capabilities(16, 2, "H100", 128_000))
    claimed, cancelled = create_task(chain, ALICE), create_task(chain, ALICE)
    chain.task_bounties.claim_task(BOB, claimed)
    chain.task_bounties.cancel_task(ALICE, cancelled)

    index = Index(tmp_path / "index.db")
    seen: list[tuple[int, list[str]]] = []

    def on_block(number: int, block_hash: str, changes: Sequence[Change]) -> None:
        seen.append((number, [getattr(c, "name", type(c).__name__) for c in changes]))

    indexer = Indexer(URL, index, connect=chain_factory(node))
    indexer.on_block(on_block)
    try:
        assert indexer.sync() == chain.finalized_number() == 5 and indexer.lag == 0
        at = index.last_block.hash
        assert at == chain.finalized_hash()
        for task_id, task in chain.task_bounties.tasks.entries(at=at):
            assert index.task(task_id) == task_view_from_chain(task_id, task)
        assert index.task(claimed).status is TaskStatus.CLAIMED and index.task(claimed).worker == BOB.ss58_address
        assert index.task(cancelled).status is TaskStatus.CANCELLED
        assert index.claims_of(BOB.ss58_address) == [claimed]
        assert index.worker(BOB.ss58_address).stake == 1_000 * UNIT
        assert [number for number, _ in seen] == [1, 2, 3, 4, 5]  # each block once, in order

        # later blocks: followed from the index's last block, nothing applied twice
        chain.task_bounties.release_claim(BOB, claimed)
        assert indexer.sync() == 6 == chain.finalized_number()
        assert index.task(claimed).status is TaskStatus.OPEN and index.claims_of(BOB.ss58_address) == []
        assert [number for number, _ in seen] == [1, 2, 3, 4, 5, 6]
        assert indexer.sync() == 6 and len(seen) == 6
    finally:
        indexer.stop()
        index.close()


async def test_start_orchestrator_opens_its_connections_with_the_factory(node: InProcessNode, chain: Chain,
                                                                         tmp_path) -> None:
    create_task(chain, ALICE)
    opened: list[Chain] = []

    def connect() -> Chain:
        opened.append(memory_chain(node))
        return opened[-1]

    config = OrchestratorConfig(chain_url="ws://in-process.invalid:9944", listen="127.0.0.1:0",
                                db_path=str(tmp_path / "orchestrator.db"), metrics_port=0)
    running = await start_orchestrator(config, connect=connect)
    try:
        assert await asyncio.to_thread(running.indexer.wait_for, chain.finalized_number(), 30)
        assert running.index.open_tasks and running.chain is opened[0]
        assert len(opened) == 2  # the relay's and the indexer's, no socket (forbid_sockets)
    finally:
        await stop_orchestrator(running)
