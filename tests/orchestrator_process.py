"""The market scenario the orchestrator's end-to-end and fault tests share: fund and register Trainers,
post tasks, run simulated workers against the orchestrator, and read the chain's view; the test-only
assertions (assert_exactly_once). The orchestrator itself runs as the harness's OrchestratorProcess
(paratrain.local), re-exported here under the name the tests import.

    with OrchestratorProcess(devnet.ws_url, db_path) as orch:
        WorkerClient(orch.target, keypair) ...
        orch.kill9(); orch.start()          # same --db, same --listen port
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from paratrain.local import UNIT, OrchestratorProcess, free_port
from paratrain.local import synthetic_task_spec as task_spec
from runtime_bindings.generated.types import TaskStatus

__all__ = ["OrchestratorProcess", "free_port", "task_spec"]

WORKER_STAKE = 200 * UNIT
WORKER_FUNDS = 1_000 * UNIT
CAPS = (16, 2, "H100", 128_000)
# reconnect quickly after the orchestrator restarts (grpc's default backoff starts at 1 s, grows to 120 s)
FAST_RECONNECT = [("grpc.initial_reconnect_backoff_ms", 100), ("grpc.min_reconnect_backoff_ms", 100),
                  ("grpc.max_reconnect_backoff_ms", 500)]
log = logging.getLogger("orchestrator-scenario")


def keypairs(tag: str, n: int) -> list[Any]:
    from runtime_bindings import Keypair

    return [Keypair.create_from_uri(f"//paratrain/{tag}/{i}") for i in range(n)]


class Batch:
    """Signed submissions with explicit nonces (no per-transaction wait); `wait()` once at the end."""

    def __init__(self, chain: Any) -> None:
        self.chain = chain
        self.after = chain.best_number()
        self.pending: set[str] = set()
        self._nonces: dict[str, int] = {}

    def submit(self, call: Any, signer: Any) -> str:
        from runtime_bindings import extrinsic_hash

        who = signer.ss58_address
        if who not in self._nonces:
            self._nonces[who] = int(self.chain.rpc("system_accountNextIndex", [who]))
        raw = self.chain.sign(call, signer, nonce=self._nonces[who])
        self._nonces[who] += 1
        self.chain.rpc("author_submitExtrinsic", [raw], retry=False)
        xt = extrinsic_hash(raw)
        self.pending.add(xt)
        return xt

    def wait(self, timeout: float = 60) -> int:
        """Until every submitted extrinsic is in a block; checks none failed; returns the last block's number."""
        from runtime_bindings import extrinsic_hash

        deadline = time.monotonic() + timeout
        scanned, last = self.after, self.after
        while self.pending:
            best = self.chain.best_number()
            while scanned < best:
                scanned += 1
                block_hash = self.chain.block_hash(scanned)
                block = self.chain.rpc("chain_getBlock", [block_hash])
                mine = {i for i, raw in enumerate(block["block"]["extrinsics"]) if extrinsic_hash(raw) in self.pending}
                if not mine:
                    continue
                for i, raw in enumerate(block["block"]["extrinsics"]):
                    self.pending.discard(extrinsic_hash(raw))
                failed = [r.event for r in self.chain.events_at(block_hash)
                          if r.event.name == "ExtrinsicFailed" and r.extrinsic_index in mine]
                assert not failed, f"setup extrinsics failed in block {scanned}: {failed}"
                last = scanned
            if self.pending:
                assert time.monotonic() < deadline, f"{len(self.pending)} extrinsics not included in {timeout}s"
                time.sleep(0.05)
        self.after = scanned
        return last


def setup_market(chain: Any, workers: list[Any], requesters: list[Any], n_tasks: int, funder: Any) -> list[int]:
    """Fund and register `workers` as Trainers and post `n_tasks` tasks round-robin over `requesters`
    (batched: explicit nonces, one wait per stage). Returns the new task ids."""
    from runtime_bindings.generated import types as t
    from runtime_bindings.generated.balances import TransferKeepAliveCall
    from runtime_bindings.generated.task_bounties import CreateTaskCall
    from runtime_bindings.generated.workers import RegisterCall

    first = int(chain.task_bounties.next_task_id())
    deadline = chain.best_number() + 100_000
    batch = Batch(chain)
    for w in workers:
        batch.submit(TransferKeepAliveCall(dest=w.ss58_address, value=WORKER_FUNDS), funder)
    for i in range(n_tasks):
        batch.submit(CreateTaskCall(spec=task_spec(first + i), bounty=10 * UNIT, min_stake=0, deadline=deadline,
                                    validators_required=1, holdout_commitment=None), requesters[i % len(requesters)])
    batch.wait()
    for w in workers:
        batch.submit(RegisterCall(role="Trainer", stake=WORKER_STAKE, capabilities=t.Capabilities(*CAPS)), w)
    batch.wait()
    ids = list(range(first, int(chain.task_bounties.next_task_id())))
    assert len(ids) == n_tasks, ids
    return ids


@dataclass
class WorkerStats:
    assignments: int = 0
    relayed: int = 0
    errors: Counter = field(default_factory=Counter)
    messages: list = field(default_factory=list)


async def simulated_worker(target: str, keypair: Any, chain: Any, done: asyncio.Event, stats: WorkerStats,
                           wait_s: float = 1.0) -> None:
    """request_assignment -> sign claim_task with the worker's own key -> relay_extrinsic, until `done`.
    Survives an orchestrator restart (UNAVAILABLE: retry)."""
    from orchestrator import errors
    from orchestrator.client import WorkerClient
    from orchestrator.domain import Capabilities
    from runtime_bindings.generated.task_bounties import ClaimTaskCall

    def sign_claim(task_id: int) -> bytes:
        # the node's next nonce counting the pool (system_accountNextIndex), so a claim still in the pool is
        # not replaced and a relay lost in an orchestrator crash does not leave a gap. (Chain.sign's own
        # default comes from substrate-interface's AccountNonceApi runtime call: state only, no pool.)
        nonce = int(chain.rpc("system_accountNextIndex", [keypair.ss58_address]))
        return bytes.fromhex(chain.sign(ClaimTaskCall(task_id=task_id), keypair, nonce=nonce)[2:])

    async with WorkerClient(target, keypair, options=FAST_RECONNECT, timeout_s=10) as client:
        registered = False
        while not done.is_set():
            try:
                if not registered:
                    await client.register_worker(Capabilities(*CAPS))
                    registered = True
                assignment = await client.request_assignment(wait_s=wait_s)
                if assignment is None:
                    continue
                stats.assignments += 1
                task_id = assignment.task.task_id
                raw = await asyncio.to_thread(sign_claim, task_id)
                await client.relay_extrinsic(task_id, raw)
                stats.relayed += 1
            except errors.ApiError as exc:  # UNAVAILABLE while the orchestrator restarts; refusals are counted
                stats.errors[type(exc).__name__] += 1
                stats.messages = (stats.messages + [f"{type(exc).__name__}: {exc}"])[-3:]
                await asyncio.sleep(0.2)


def chain_tasks(chain: Any, ids: Iterable[int], at: str) -> dict[int, Any]:
    """The typed Tasks records of `ids` at block `at` (statuses are `TaskStatus` variants)."""
    wanted = set(ids)
    return {k: v for k, v in chain.task_bounties.tasks.entries(page_size=500, at=at) if k in wanted}


async def run_workers_until_claimed(target: str, keys: list[Any], chain: Any, ids: list[int], *, timeout: float,
                                    stats: list[WorkerStats] | None = None) -> list[WorkerStats]:
    """Run one simulated worker per key until every task in `ids` is Claimed on chain (or `timeout`).
    `stats` (one per key) may be passed in to watch the workers from outside."""
    done = asyncio.Event()
    stats = stats if stats is not None else [WorkerStats() for _ in keys]
    signer_chain = chain.clone()
    runners = [asyncio.create_task(simulated_worker(target, k, signer_chain, done, s)) for k, s in zip(keys, stats)]
    deadline = time.monotonic() + timeout
    try:
        while True:
            tasks = await asyncio.to_thread(lambda: chain_tasks(chain, ids, chain.best_hash()))
            claimed = sum(1 for v in tasks.values() if isinstance(v.status, TaskStatus.Claimed))
            if claimed == len(ids):
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"only {claimed}/{len(ids)} tasks claimed after {timeout}s; "
                                     f"errors {sum((s.errors for s in stats), Counter())}; "
                                     f"{[m for s in stats for m in s.messages][:12]}")
            await asyncio.sleep(0.3)
    finally:
        done.set()
        await asyncio.gather(*runners, return_exceptions=True)
        signer_chain.close()
    return stats


def claim_events(chain: Any, to_block: int, from_block: int = 1) -> tuple[Counter, list[Any]]:
    """TaskClaimed per task over every finalized block from_block..to_block, and any LeaseExpired events."""
    claimed: Counter = Counter()
    lapsed: list[Any] = []
    for block in chain.events.finalized(from_block=from_block, to_block=to_block, own_connection=False):
        for record in block.records:
            event = record.event
            if event.pallet == "TaskBounties" and event.name == "TaskClaimed":
                claimed[event.task_id] += 1
            elif event.pallet == "TaskBounties" and event.name == "LeaseExpired":
                lapsed.append(event)
    return claimed, lapsed


def claims_by_worker(chain: Any, at: str) -> list[tuple[str, int]]:
    """Every (worker, task) key of TaskBounties.ClaimsByWorker at `at`. Read through substrate-interface
    directly: `StorageMap.entries` of runtime_bindings fails on 2-key maps (query_map gives tuple keys)."""
    with chain.lock:
        result = chain.substrate.query_map("TaskBounties", "ClaimsByWorker", block_hash=at, page_size=1000)
        keys = [key for key, _ in result]
    return [(str(k[0].value if hasattr(k[0], "value") else k[0]), int(k[1].value if hasattr(k[1], "value") else k[1]))
            for k in keys]


async def index_tasks(target: str) -> dict[int, Any]:
    """Every task in the orchestrator's index, via TaskService.ListTasks over gRPC (all pages)."""
    from orchestrator.client import TaskClient

    out: dict[int, Any] = {}
    async with TaskClient(target) as client:
        token = ""
        while True:
            page, token = await client.list_tasks(page_size=100, page_token=token)
            out.update({t.task_id: t for t in page})
            if not token:
                return out


async def assert_exactly_once(chain: Any, orch: OrchestratorProcess, ids: list[int], workers: list[Any],
                              from_block: int = 1) -> int:
    """The issue's assertions: every task claimed on chain exactly once and Claimed; no worker over
    MaxClaimsPerWorker (ClaimsByWorker); the orchestrator's index (ListTasks/GetTask) equals chain storage.
    Events are counted from `from_block` (every block, unless the claims all came later: a restarted
    --base-path devnet keeps no state, hence no events, of blocks from before its restart).
    Returns the finalized block the chain was read at."""
    from orchestrator.client import TaskClient
    from orchestrator.index import task_view_from_chain

    head = await asyncio.to_thread(chain.finalized_number)
    head_hash = await asyncio.to_thread(chain.block_hash, head)
    claimed, lapsed = await asyncio.to_thread(claim_events, chain, head, from_block)
    assert not lapsed, f"leases lapsed during the test (it ran too slowly for ClaimLease): {lapsed[:3]}"
    assert {i: claimed[i] for i in ids} == {i: 1 for i in ids}, "a task was claimed more or less than once"
    on_chain = await asyncio.to_thread(chain_tasks, chain, ids, head_hash)
    assert set(on_chain) == set(ids)
    holders: Counter = Counter()
    for task_id, task in on_chain.items():
        assert isinstance(task.status, TaskStatus.Claimed), (task_id, task.status)
        holders[task.status.worker] += 1
    max_claims = int(chain.constant("TaskBounties", "MaxClaimsPerWorker"))
    by_worker: Counter = Counter()
    entries = await asyncio.to_thread(claims_by_worker, chain, head_hash)
    for worker, task_id in entries:
        if task_id in on_chain:
            by_worker[worker] += 1
            assert on_chain[task_id].status.worker == worker
    assert by_worker == holders and sum(by_worker.values()) == len(ids)
    assert max(by_worker.values()) <= max_claims, by_worker.most_common(3)
    assert set(by_worker) <= {w.ss58_address for w in workers}

    # the index, over gRPC, at (at least) the same height; nothing changes between them but leases (checked)
    await asyncio.to_thread(orch.wait_for_height, head, 30)
    indexed = await index_tasks(orch.target)
    expected = {i: task_view_from_chain(i, task) for i, task in on_chain.items()}
    keys = ("task_id", "requester", "status", "worker", "lease_until", "bounty", "min_stake", "deadline",
            "requirements", "spec_hash", "spec_uri", "created_at", "validators_required")
    pick = lambda v: tuple(getattr(v, k) for k in keys)
    assert {i: pick(indexed[i]) for i in ids} == {i: pick(v) for i, v in expected.items()}
    async with TaskClient(orch.target) as client:
        for i in ids:
            assert pick(await client.get_task(i)) == pick(expected[i])
    return head
