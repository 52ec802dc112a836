"""orchestrator.handlers with a real devnet, indexer and relay (no gRPC): registration, long-poll assignment,
relaying worker-signed extrinsics, ownership errors, listing and watching tasks."""
from __future__ import annotations

import asyncio
import time

import pytest

from orchestrator.domain import Capabilities, ProgressUpdate, TaskStatus
from orchestrator.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from orchestrator.handlers import ChainConstants, Handlers
from orchestrator.index import Index
from orchestrator.indexer import Indexer, PubSub
from orchestrator.metrics import Metrics
from orchestrator.relay import Relay
from paratrain.local import DevnetProcess
from runtime_bindings import Chain, Keypair
from runtime_bindings.generated import types as t
from runtime_bindings.generated.balances import TransferKeepAliveCall
from runtime_bindings.generated.task_bounties import ClaimTaskCall, HeartbeatCall, ReleaseClaimCall

UNIT = 10**12
ALICE, BOB, CHARLIE, DAVE, EVE = (Keypair.create_from_uri(f"//{n}") for n in ("Alice", "Bob", "Charlie", "Dave", "Eve"))
CAPS = Capabilities(16, 2, "H100", 128_000)


def spec(gpus: int = 1) -> t.TaskSpec:
    return t.TaskSpec(recipe="mnist-mlp", spec_hash="0x" + "11" * 32, spec_uri="s3://specs/mnist.yaml",
                      dataset_hash="0x" + "22" * 32, eval_metric="accuracy", eval_target=900_000, higher_is_better=True,
                      requirements=t.Requirements(2, gpus, 8_000), parent_model=None)


def create_task(chain: Chain, gpus: int = 1) -> int:
    receipt = chain.task_bounties.create_task(ALICE, spec(gpus), 10 * UNIT, 0, chain.best_number() + 500, 1, None)
    return next(e.task_id for e in receipt.events if e.name == "TaskCreated")


class Orchestrator:
    def __init__(self, url: str, tmp_path, ttl: float = 30.0) -> None:
        self.chain = Chain.connect(url, timeout=10)
        self.index = Index(tmp_path / "index.db")
        self.pubsub = PubSub()
        self.metrics = Metrics()
        self.indexer = Indexer(url, self.index, self.pubsub, poll_interval=0.05)
        self.relay = Relay(self.chain, heartbeat_interval_blocks=3, height=lambda: self.indexer.height,
                           metrics=self.metrics)
        self.handlers = Handlers(self.index, relay=self.relay, pubsub=self.pubsub,
                                 constants=ChainConstants.from_chain(self.chain), reservation_ttl=ttl,
                                 metrics=self.metrics)
        self.indexer.on_block(self.handlers.on_block)

    async def start(self) -> None:
        self.handlers.bind_loop()
        await asyncio.to_thread(self.indexer.sync)
        self.indexer.start()

    async def caught_up(self) -> None:
        target = await asyncio.to_thread(self.chain.finalized_number)
        assert await asyncio.to_thread(self.indexer.wait_for, target, 20)
        await asyncio.sleep(0.05)  # let on_block reach the loop

    def stop(self) -> None:
        self.handlers.close()
        self.indexer.stop()
        self.index.close()
        self.chain.close()


@pytest.fixture(scope="module")
def registered(devnet: DevnetProcess) -> DevnetProcess:
    with Chain.connect(devnet.ws_url, timeout=10) as chain:
        for who in (BOB, CHARLIE):
            chain.workers.register(who, "Trainer", 1_000 * UNIT, t.Capabilities(16, 2, "H100", 128_000))
        chain.workers.register(DAVE, "Validator", 500 * UNIT, t.Capabilities(4, 0, "", 8_000))
    return devnet


async def test_register_assign_claim_progress(registered: DevnetProcess, tmp_path) -> None:
    o = Orchestrator(registered.ws_url, tmp_path)
    try:
        await o.start()
        # registration: only active Trainers
        with pytest.raises(PermissionDenied, match="not registered"):
            o.handlers.register_worker(EVE.ss58_address, CAPS)
        with pytest.raises(PermissionDenied, match="Validator"):
            o.handlers.register_worker(DAVE.ss58_address, CAPS)
        view = o.handlers.register_worker(BOB.ss58_address, Capabilities(8, 1, "H100", 64_000))
        assert view.capabilities == Capabilities(8, 1, "H100", 64_000) and view.stake == 1_000 * UNIT
        with pytest.raises(PermissionDenied):
            await o.handlers.request_assignment(EVE.ss58_address, 0)

        # a long poll is woken by a new task
        started = time.monotonic()
        poll = asyncio.create_task(o.handlers.request_assignment(BOB.ss58_address, 20))
        await asyncio.sleep(0.2)
        assert not poll.done()
        task_id = await asyncio.to_thread(create_task, o.chain)
        assignment = await poll
        assert assignment is not None and assignment.task.task_id == task_id and time.monotonic() - started < 10
        assert assignment.worker == BOB.ss58_address

        # reserved: nobody else gets it, the holder may read its spec, others may not
        o.handlers.register_worker(CHARLIE.ss58_address, CAPS)
        assert await o.handlers.request_assignment(CHARLIE.ss58_address, 0.2) is None
        assert o.handlers.task_spec(BOB.ss58_address, task_id).task_id == task_id
        with pytest.raises(PermissionDenied):
            o.handlers.task_spec(CHARLIE.ss58_address, task_id)

        # relay: Charlie may not claim Bob's reservation, nor pass Bob's extrinsic as his own
        bob_claim = bytes.fromhex(o.chain.sign(ClaimTaskCall(task_id=task_id), BOB)[2:])
        charlie_claim = bytes.fromhex(o.chain.sign(ClaimTaskCall(task_id=task_id), CHARLIE)[2:])
        with pytest.raises(PermissionDenied, match="reserved"):
            await o.handlers.relay_extrinsic(CHARLIE.ss58_address, task_id, charlie_claim)
        with pytest.raises(PermissionDenied, match="signed by"):
            await o.handlers.relay_extrinsic(CHARLIE.ss58_address, task_id, bob_claim)
        other = await asyncio.to_thread(create_task, o.chain)
        await o.caught_up()
        with pytest.raises(InvalidArgument, match="about task"):
            await o.handlers.relay_extrinsic(BOB.ss58_address, other, bob_claim)
        transfer = bytes.fromhex(o.chain.sign(TransferKeepAliveCall(dest=ALICE.ss58_address, value=UNIT), BOB)[2:])
        with pytest.raises(InvalidArgument, match="cannot be relayed"):
            await o.handlers.relay_extrinsic(BOB.ss58_address, task_id, transfer)
        with pytest.raises(InvalidArgument):
            await o.handlers.relay_extrinsic(BOB.ss58_address, task_id, b"\x01\x02garbage")
        with pytest.raises(NotFound):
            await o.handlers.relay_extrinsic(BOB.ss58_address, 10**9, bob_claim)

        # the worker-signed claim goes through; the index sees it and the reservation ends
        xt_hash = await o.handlers.relay_extrinsic(BOB.ss58_address, task_id, bob_claim)
        assert xt_hash.startswith("0x") and len(xt_hash) == 66
        for _ in range(100):
            await o.caught_up()
            if o.index.task(task_id).status is TaskStatus.CLAIMED:
                break
        assert o.index.task(task_id).worker == BOB.ss58_address
        assert o.handlers.reservations.holder(task_id, o.handlers.clock()) is None
        chain_task = await asyncio.to_thread(o.chain.task_bounties.tasks, task_id)
        assert isinstance(chain_task.status, t.TaskStatus.Claimed) and chain_task.status.worker == BOB.ss58_address

        # progress: ownership and the relayed heartbeat
        with pytest.raises(NotFound):
            await o.handlers.report_progress(BOB.ss58_address, ProgressUpdate(10**9, "", 1, 0, 0.5), None)
        with pytest.raises(PermissionDenied):
            await o.handlers.report_progress(CHARLIE.ss58_address, ProgressUpdate(task_id, "", 1, 0, 0.5), None)
        watch = o.handlers.watch_task(task_id)
        state = await watch.__anext__()
        assert state.kind == "State" and state.detail["status"] == "Claimed"
        heartbeat = bytes.fromhex(o.chain.sign(HeartbeatCall(task_id=task_id, progress=t.Progress(5, "0x" + "ab" * 32)),
                                               BOB)[2:])
        with pytest.raises(PermissionDenied):  # Bob's heartbeat reported by Charlie
            await o.handlers.report_progress(CHARLIE.ss58_address, ProgressUpdate(task_id, "", 5, 1, 0.4), heartbeat)
        await o.handlers.report_progress(BOB.ss58_address, ProgressUpdate(task_id, "", 5, 1, 0.4, {"acc": 0.9}),
                                         heartbeat)
        progress = await asyncio.wait_for(watch.__anext__(), 5)
        assert progress.kind == "Progress" and progress.block == 0 and progress.detail["step"] == 5
        chain_event = await asyncio.wait_for(watch.__anext__(), 10)
        assert chain_event.kind == "Heartbeat" and chain_event.block > 0
        await watch.aclose()
        assert o.index.progress(task_id).step == 5
        await o.caught_up()
        assert o.index.task(task_id).progress_step == 5

        # release through the relay; a pool refusal maps to FailedPrecondition with the kind
        release = bytes.fromhex(o.chain.sign(ReleaseClaimCall(task_id=task_id), BOB)[2:])
        await o.handlers.relay_extrinsic(BOB.ss58_address, task_id, release)
        for _ in range(100):
            await o.caught_up()
            if o.index.task(task_id).status is TaskStatus.OPEN:
                break
        assert o.index.task(task_id).status is TaskStatus.OPEN
        with pytest.raises((FailedPrecondition, PermissionDenied)):
            await o.handlers.relay_extrinsic(BOB.ss58_address, task_id, release)  # stale nonce / not held
        assert await o.handlers.request_assignment(CHARLIE.ss58_address, 5) is not None  # reopened: offered again

        # listing
        page, token = o.handlers.list_tasks(None, 1, "")
        assert len(page) == 1 and token == str(page[0].task_id)
        with pytest.raises(InvalidArgument):
            o.handlers.list_tasks(None, 1, "nope")
        with pytest.raises(NotFound):
            o.handlers.get_task(10**9)
        with pytest.raises(NotFound):
            o.handlers.watch_task(10**9)
        assert b"paratrain_orchestrator_assignments_total" in o.metrics.render()
    finally:
        o.stop()


async def test_reservation_expires_and_fairness(registered: DevnetProcess, tmp_path) -> None:
    o = Orchestrator(registered.ws_url, tmp_path, ttl=0.5)
    try:
        await o.start()
        task_id = await asyncio.to_thread(create_task, o.chain, 2)
        await o.caught_up()
        first = await o.handlers.request_assignment(BOB.ss58_address, 2)
        assert first is not None
        # Charlie waits; Bob's reservation expires unclaimed and the task goes to Charlie
        second = await o.handlers.request_assignment(CHARLIE.ss58_address, 5)
        open_ids = {x.task_id for x in o.index.open_tasks.all()}
        assert second is not None and second.task.task_id in open_ids
        if first.task.task_id == task_id:
            assert second.worker == CHARLIE.ss58_address
        holders = {o.handlers.reservations.holder(i, o.handlers.clock()) for i in open_ids} - {None}
        assert holders <= {BOB.ss58_address, CHARLIE.ss58_address}
    finally:
        o.stop()


async def test_declined_tasks_are_released_and_never_offered_again(registered: DevnetProcess, tmp_path) -> None:
    """A worker declines what it cannot use (a hostile spec URI, say): its reservations of those tasks end at
    once and it is offered the others; without that, MaxClaimsPerWorker declined tasks held its whole
    reservation quota and came back as the oldest open tasks, forever (found by the hostile-market test)."""
    o = Orchestrator(registered.ws_url, tmp_path, ttl=60)
    try:
        await o.start()
        quota = o.handlers.constants.max_claims_per_worker
        created = {await asyncio.to_thread(create_task, o.chain, 2) for _ in range(quota + 1)}
        await o.caught_up()
        declined: list[int] = []
        while not created <= set(declined):  # older open tasks of this module's devnet come first
            offer = await o.handlers.request_assignment(BOB.ss58_address, 2, frozenset(declined))
            assert offer is not None, f"starved after declining {len(declined)} tasks"
            assert offer.task.task_id not in declined
            declined.append(offer.task.task_id)
            assert len(declined) <= 100
        now = o.handlers.clock()
        assert [i for i in declined[:-1] if o.handlers.reservations.holder(i, now) == BOB.ss58_address] == []
    finally:
        o.stop()
