"""orchestrator.handlers with the indexer and the relay on MemoryTransport chains, sockets forbidden:
registration checks, an assignment, the relay of a worker-signed claim (and of one it must refuse), and
the index and the reservation following the claim's block."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from memory_chain import URL, create_task, forbid_sockets, memory_chain, route_connects

from devnet.rpc.inprocess import InProcessNode
from orchestrator.domain import Capabilities, TaskStatus
from orchestrator.errors import InvalidArgument, PermissionDenied
from orchestrator.handlers import ChainConstants, Handlers
from orchestrator.index import Index
from orchestrator.indexer import Indexer
from orchestrator.relay import Relay
from runtime_bindings import Chain, Keypair
from runtime_bindings.generated import types as t
from runtime_bindings.generated.task_bounties import ClaimTaskCall

UNIT = 10**12
ALICE, BOB, CHARLIE, DAVE, EVE = (Keypair.create_from_uri(f"//{n}") for n in ("Alice", "Bob", "Charlie", "Dave", "Eve"))
CAPS = Capabilities(16, 2, "H100", 128_000)


@dataclass
class Orchestrator:
    chain: Chain
    index: Index
    indexer: Indexer
    handlers: Handlers

    async def caught_up(self) -> None:
        await asyncio.to_thread(self.indexer.sync)
        await asyncio.sleep(0.05)  # on_block reaches the handlers' loop


@pytest.fixture
async def orchestrator(monkeypatch: pytest.MonkeyPatch, tmp_path) -> AsyncIterator[Orchestrator]:
    forbid_sockets(monkeypatch)
    with InProcessNode() as node, memory_chain(node) as chain:
        route_connects(monkeypatch, node)
        for who in (BOB, CHARLIE):
            chain.workers.register(who, "Trainer", 1_000 * UNIT, t.Capabilities(16, 2, "H100", 128_000))
        chain.workers.register(DAVE, "Validator", 500 * UNIT, t.Capabilities(4, 0, "", 8_000))
        index = Index(tmp_path / "index.db")
        indexer = Indexer(URL, index)
        relay = Relay(chain, height=lambda: indexer.height)
        handlers = Handlers(index, relay=relay, constants=ChainConstants.from_chain(chain), reservation_ttl=30)
        handlers.bind_loop()
        indexer.on_block(handlers.on_block)
        o = Orchestrator(chain, index, indexer, handlers)
        await o.caught_up()
        try:
            yield o
        finally:
            handlers.close()
            indexer.stop()
            index.close()


async def test_handlers_assign_and_relay_a_claim(orchestrator: Orchestrator) -> None:
    o = orchestrator
    with pytest.raises(PermissionDenied, match="not registered"):
        o.handlers.register_worker(EVE.ss58_address, CAPS)
    with pytest.raises(PermissionDenied, match="Validator"):
        o.handlers.register_worker(DAVE.ss58_address, CAPS)
    assert o.handlers.register_worker(BOB.ss58_address, CAPS).stake == 1_000 * UNIT
    o.handlers.register_worker(CHARLIE.ss58_address, CAPS)

    task_id = await asyncio.to_thread(create_task, o.chain, ALICE)
    await o.caught_up()
    assignment = await o.handlers.request_assignment(BOB.ss58_address, 5)
    assert assignment is not None and assignment.task.task_id == task_id and assignment.worker == BOB.ss58_address
    assert await o.handlers.request_assignment(CHARLIE.ss58_address, 0.1) is None  # reserved for Bob

    bob_claim = bytes.fromhex(o.chain.sign(ClaimTaskCall(task_id=task_id), BOB)[2:])
    charlie_claim = bytes.fromhex(o.chain.sign(ClaimTaskCall(task_id=task_id), CHARLIE)[2:])
    with pytest.raises(PermissionDenied, match="reserved"):
        await o.handlers.relay_extrinsic(CHARLIE.ss58_address, task_id, charlie_claim)
    with pytest.raises(PermissionDenied, match="signed by"):
        await o.handlers.relay_extrinsic(CHARLIE.ss58_address, task_id, bob_claim)
    with pytest.raises(InvalidArgument):
        await o.handlers.relay_extrinsic(BOB.ss58_address, task_id, b"\x01\x02garbage")

    xt_hash = await o.handlers.relay_extrinsic(BOB.ss58_address, task_id, bob_claim)
    assert xt_hash.startswith("0x") and len(xt_hash) == 66
    await o.caught_up()  # the in-process node authored the claim's block before relay_extrinsic returned
    assert o.index.task(task_id).status is TaskStatus.CLAIMED and o.index.task(task_id).worker == BOB.ss58_address
    assert o.handlers.reservations.holder(task_id, o.handlers.clock()) is None
    chain_task = await asyncio.to_thread(o.chain.task_bounties.tasks, task_id)
    assert isinstance(chain_task.status, t.TaskStatus.Claimed) and chain_task.status.worker == BOB.ss58_address
