"""The orchestrator under faults, as a real subprocess over a real devnet and real gRPC:

- SIGKILL half-way through the claims, restarted on the same --db (and port): the simulated workers carry
  on; at the end every task is claimed on chain exactly once, no worker is over MaxClaimsPerWorker and the
  index equals the chain's storage (the same assertions as the end-to-end test).
- The devnet (--base-path) SIGKILLed and restarted on the same port under a running orchestrator: the
  indexer reconnects and catches up (its index height reaches the chain's finalized height) and tasks
  created after the restart are assigned and claimed through the orchestrator.
"""
from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from orchestrator_process import (
    OrchestratorProcess,
    WorkerStats,
    assert_exactly_once,
    free_port,
    keypairs,
    run_workers_until_claimed,
    setup_market,
    task_spec,
)

from paratrain.local import DevnetProcess
from runtime_bindings import Chain, Keypair

pytestmark = pytest.mark.slow  # kills and restarts a real orchestrator and devnet mid-run

ALICE = Keypair.create_from_uri("//Alice")
REQUESTERS = [Keypair.create_from_uri(f"//{n}") for n in ("Bob", "Charlie")]
UNIT = 10**12


async def test_orchestrator_sigkill_half_way_loses_nothing_claims_nothing_twice(tmp_path) -> None:
    n_workers, n_tasks = 25, 100
    started = time.monotonic()
    # a block every 6 s: ClaimLease (10 blocks, 60 s) outlasts the claims, the kill and the restart, even on a
    # loaded 2-core machine
    with DevnetProcess("--block-time", "6000") as node:
        chain = Chain.connect(node.ws_url, timeout=10)
        workers = keypairs("faults-worker", n_workers)
        try:
            ids = await asyncio.to_thread(setup_market, chain, workers, REQUESTERS, n_tasks, ALICE)
            orch = OrchestratorProcess(node.ws_url, tmp_path / "index.db").start()
            try:
                await asyncio.to_thread(orch.wait_for_height, chain.finalized_number(), 30)
                stats = [WorkerStats() for _ in workers]
                killed_at: dict[str, int] = {}

                async def kill_half_way() -> None:
                    while sum(s.relayed for s in stats) < n_tasks // 2:
                        await asyncio.sleep(0.01)
                    orch.kill9()
                    killed_at["relayed"] = sum(s.relayed for s in stats)
                    killed_at["height"] = await asyncio.to_thread(chain.finalized_number)
                    await asyncio.sleep(0.5)
                    await asyncio.to_thread(orch.start)  # same --db, same port

                killer = asyncio.create_task(kill_half_way())
                await run_workers_until_claimed(orch.target, workers, chain, ids, timeout=90, stats=stats)
                await killer
                assert orch.starts == 2 and 0 < killed_at["relayed"] < n_tasks, killed_at
                assert sum(s.errors["Unavailable"] for s in stats) > 0, "no worker saw the orchestrator go away"
                await assert_exactly_once(chain, orch, ids, workers)
                assert orch.alive
            finally:
                orch.stop()
        finally:
            chain.close()
    print(f"\nkilled after {killed_at['relayed']} relays at block {killed_at['height']}; "
          f"{time.monotonic() - started:.1f}s")


async def test_devnet_restart_under_the_orchestrator(tmp_path) -> None:
    from orchestrator_process import Batch

    from runtime_bindings.generated.task_bounties import CreateTaskCall

    port = free_port()
    args = ("--base-path", str(tmp_path / "chain"), "--port", str(port))
    node = DevnetProcess(*args).start()
    assert node.port == port
    workers = keypairs("restart-worker", 2)
    chain = Chain.connect(node.ws_url, timeout=10)
    old_ids = await asyncio.to_thread(setup_market, chain, workers, REQUESTERS, 2, ALICE)
    head = chain.finalized_number()
    chain.close()
    orch = OrchestratorProcess(node.ws_url, tmp_path / "index.db").start()
    try:
        # caught up before the node goes: a restarted --base-path devnet keeps the blocks but not the state
        # of blocks before the restart, so an indexer still behind could not read them afterwards
        height = await asyncio.to_thread(orch.wait_for_height, head, 30)

        node.kill9()
        await asyncio.sleep(1.0)  # the orchestrator runs on without its chain
        assert orch.alive
        node = DevnetProcess(*args).start()
        assert node.port == port
        chain = Chain.connect(node.ws_url, timeout=10)
        try:
            finalized = await asyncio.to_thread(chain.finalized_number)
            assert finalized >= height - 1  # persisted (at most the block being written when killed is lost)
            assert await asyncio.to_thread(orch.wait_for_height, finalized, 30) >= finalized

            # new blocks with new tasks after the restart: indexed up to the head, assigned and claimed
            batch = Batch(chain)
            first = int(chain.task_bounties.next_task_id())
            deadline = chain.best_number() + 100_000
            for i in range(3):
                batch.submit(CreateTaskCall(spec=task_spec(first + i), bounty=10 * UNIT, min_stake=0,
                                            deadline=deadline, validators_required=1, holdout_commitment=None),
                             REQUESTERS[i % 2])
            last = await asyncio.to_thread(batch.wait)
            new_ids = list(range(first, first + 3))
            assert await asyncio.to_thread(orch.wait_for_height, last, 30) >= last
            metrics = orch.metrics()
            assert metrics["paratrain_orchestrator_index_lag_blocks"] == 0
            assert metrics["paratrain_orchestrator_chain_height"] >= last
            ids = old_ids + new_ids
            stats = await run_workers_until_claimed(orch.target, workers, chain, ids, timeout=60)
            assert sum(s.assignments for s in stats) >= len(ids)
            # every claim came after the restart (events before it cannot be read from the restarted node)
            await assert_exactly_once(chain, orch, ids, workers, from_block=finalized + 1)
            assert orch.alive
        finally:
            chain.close()
    except BaseException:
        print("".join(orch.output[-60:]))  # the orchestrator's log, for the failure report
        raise
    finally:
        orch.stop()
        node.stop()


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q", "-s"]))
