"""The orchestrator end to end: a real devnet, `paratrain orchestrator` as a real subprocess, real gRPC over
loopback and 50 simulated workers (asyncio tasks here, each with its own key) claiming 200 tasks.

Each worker loops request_assignment -> signs TaskBounties.claim_task with its own key -> relay_extrinsic.
At the end: every task is claimed on chain exactly once (one TaskClaimed over all finalized blocks, status
Claimed), no worker holds more than MaxClaimsPerWorker (ClaimsByWorker storage), and the orchestrator's
index (TaskService ListTasks/GetTask over gRPC) equals the chain's storage. Then forged, replayed, stale
and malformed calls against the running orchestrator: their status codes, no change to the index or the
chain, no crash.

The devnet authors a block every 3 s: with instant seal every claim would be its own block and the first
claims' leases (ClaimLease = 10 blocks) would lapse before the last ones land.
"""
from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from orchestrator_process import (
    OrchestratorProcess,
    assert_exactly_once,
    index_tasks,
    keypairs,
    run_workers_until_claimed,
    setup_market,
)

from orchestrator import auth
from orchestrator.client import TaskClient, WorkerClient
from paratrain.local import DevnetProcess
from paratrain_api.v1 import worker_pb2
from runtime_bindings import Chain, Keypair
from runtime_bindings.generated.task_bounties import ClaimTaskCall, ReleaseClaimCall

pytestmark = pytest.mark.slow  # 50 simulated workers claim 200 tasks through a real orchestrator

N_WORKERS, N_TASKS = 50, 200
BLOCK_MS = 3000
W = "/paratrain.v1.WorkerService/"
T = "/paratrain.v1.TaskService/"
ALICE = Keypair.create_from_uri("//Alice")
REQUESTERS = [Keypair.create_from_uri(f"//{n}") for n in ("Bob", "Charlie", "Dave", "Eve")]


@pytest.fixture(scope="module")
def node():
    with DevnetProcess("--block-time", str(BLOCK_MS)) as devnet:
        yield devnet


async def code_of(coro) -> grpc.StatusCode:
    try:
        await coro
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


def signed_extrinsics_between(chain: Chain, first: int, last: int) -> int:
    """Signed extrinsics (anything but inherents) in blocks first..last."""
    count = 0
    for number in range(first, last + 1):
        block = chain.rpc("chain_getBlock", [chain.block_hash(number)])
        for raw in block["block"]["extrinsics"]:
            body = bytes.fromhex(raw[2:])
            # strip the compact length prefix; the version byte's top bit marks a signed extrinsic
            mode = body[0] & 3
            offset = {0: 1, 1: 2, 2: 4}.get(mode, 1 + (body[0] >> 2) + 4)
            count += bool(body[offset] & 0x80)
    return count


async def test_fifty_workers_claim_two_hundred_tasks_exactly_once(node: DevnetProcess, tmp_path) -> None:
    started = time.monotonic()
    chain = Chain.connect(node.ws_url, timeout=10)
    workers = keypairs("e2e-worker", N_WORKERS)
    try:
        ids = await asyncio.to_thread(setup_market, chain, workers, REQUESTERS, N_TASKS, ALICE)
        setup_s = time.monotonic() - started
        with OrchestratorProcess(node.ws_url, tmp_path / "index.db") as orch:
            await asyncio.to_thread(orch.wait_for_height, chain.finalized_number(), 30)
            t0 = time.monotonic()
            stats = await run_workers_until_claimed(orch.target, workers, chain, ids, timeout=60)
            claim_s = time.monotonic() - t0
            assert sum(s.relayed for s in stats) >= N_TASKS
            head = await assert_exactly_once(chain, orch, ids, workers)
            await bad_input_changes_nothing(chain, orch, workers, ids, head)
            assert orch.alive, "the orchestrator crashed"
        print(f"\nsetup {setup_s:.1f}s, claims {claim_s:.1f}s, total {time.monotonic() - started:.1f}s; "
              f"errors seen by workers: {sum((s.errors for s in stats), start=__import__('collections').Counter())}")
    finally:
        chain.close()


async def bad_input_changes_nothing(chain: Chain, orch: OrchestratorProcess, workers: list, ids: list[int],
                                    head: int) -> None:
    """Forged, replayed, stale, malformed and unauthorised calls: the status codes, no state change, no crash."""
    owner, other = workers[0], workers[1]
    before = await index_tasks(orch.target)
    owned = next(i for i in ids if before[i].worker == owner.ss58_address)
    not_owned = next(i for i in ids if before[i].worker == other.ss58_address)
    stranger = Keypair.create_from_uri("//paratrain/e2e-stranger")  # never registered on chain
    channel = grpc.aio.insecure_channel(orch.target)

    def raw(path: str):
        return channel.unary_unary(path, request_serializer=None, response_deserializer=None)

    def signed(path: str, body: bytes, keypair=owner, **kw):
        return auth.sign_request(keypair, path, body, **kw)

    spec_path, relay_path, assign_path = W + "GetTaskSpec", W + "RelayExtrinsic", W + "RequestAssignment"
    spec_body = worker_pb2.GetTaskSpecRequest(task_id=owned).SerializeToString(deterministic=True)
    try:
        # a genuine call works (the baseline for the refusals below)
        assert await code_of(raw(spec_path)(spec_body, metadata=signed(spec_path, spec_body), timeout=5)) \
            == grpc.StatusCode.OK

        # UNAUTHENTICATED: unsigned; forged (another key signs for the owner's account); body swapped after
        # signing; stale timestamp; replay of a call already answered; garbage signature metadata
        forged = signed(spec_path, spec_body, keypair=other)
        forged = [(k, owner.ss58_address if k == auth.HEADER_ACCOUNT else v) for k, v in forged]
        other_body = worker_pb2.GetTaskSpecRequest(task_id=not_owned).SerializeToString(deterministic=True)
        genuine = signed(spec_path, spec_body)
        assert await code_of(raw(spec_path)(spec_body, metadata=genuine, timeout=5)) == grpc.StatusCode.OK
        refusals = {
            "unsigned": (spec_body, ()),
            "forged": (spec_body, forged),
            "body swapped": (other_body, signed(spec_path, spec_body)),
            "stale": (spec_body, signed(spec_path, spec_body, timestamp_ms=int((time.time() - 120) * 1000))),
            "replayed": (spec_body, genuine),
            "garbage": (spec_body, [(auth.HEADER_ACCOUNT, "nope"), (auth.HEADER_TIMESTAMP, "x"),
                                    (auth.HEADER_NONCE, "zz"), (auth.HEADER_SIGNATURE, "00")]),
            "method swapped": (spec_body, signed(assign_path, spec_body)),
        }
        for name, (body, metadata) in refusals.items():
            assert await code_of(raw(spec_path)(body, metadata=metadata, timeout=5)) \
                == grpc.StatusCode.UNAUTHENTICATED, name

        # a forged relay of a release of the owner's task (signed extrinsic genuine, gRPC signature forged)
        release = bytes.fromhex(chain.sign(ReleaseClaimCall(task_id=owned), owner)[2:])
        relay_body = worker_pb2.RelayExtrinsicRequest(task_id=owned, extrinsic=release).SerializeToString()
        forged_relay = [(k, owner.ss58_address if k == auth.HEADER_ACCOUNT else v)
                        for k, v in signed(relay_path, relay_body, keypair=other)]
        assert await code_of(raw(relay_path)(relay_body, metadata=forged_relay, timeout=5)) \
            == grpc.StatusCode.UNAUTHENTICATED
        # ... and the owner's genuine release, relayed by `other` under its own (valid) signature
        assert await code_of(raw(relay_path)(relay_body, metadata=signed(relay_path, relay_body, keypair=other),
                                             timeout=5)) == grpc.StatusCode.PERMISSION_DENIED

        # INVALID_ARGUMENT: signed but malformed messages, and malformed extrinsics
        for body in (b"\xff\xff\xff", b"\x08", b"\x0a\x05ab"):
            assert await code_of(raw(spec_path)(body, metadata=signed(spec_path, body), timeout=5)) \
                == grpc.StatusCode.INVALID_ARGUMENT, body
        garbage_xt = worker_pb2.RelayExtrinsicRequest(task_id=owned, extrinsic=b"\x01\x02garbage").SerializeToString()
        assert await code_of(raw(relay_path)(garbage_xt, metadata=signed(relay_path, garbage_xt), timeout=5)) \
            == grpc.StatusCode.INVALID_ARGUMENT
        assert await code_of(raw(T + "GetTask")(b"\x08", timeout=5)) == grpc.StatusCode.INVALID_ARGUMENT
        assert await code_of(raw(T + "ListTasks")(b"\x08\x63", timeout=5)) == grpc.StatusCode.INVALID_ARGUMENT

        # NOT_FOUND, PERMISSION_DENIED (another worker's task; an account not registered on chain)
        async with WorkerClient(orch.target, owner) as client, WorkerClient(orch.target, stranger) as unknown:
            with pytest.raises(Exception) as info:
                await client.get_task_spec(10**9)
            assert info.value.code == grpc.StatusCode.NOT_FOUND
            with pytest.raises(Exception) as info:
                await client.get_task_spec(not_owned)
            assert info.value.code == grpc.StatusCode.PERMISSION_DENIED
            theirs = bytes.fromhex(chain.sign(ReleaseClaimCall(task_id=not_owned), owner)[2:])
            with pytest.raises(Exception) as info:  # releasing a task it does not hold
                await client.relay_extrinsic(not_owned, theirs)
            assert info.value.code == grpc.StatusCode.PERMISSION_DENIED
            claim = bytes.fromhex(chain.sign(ClaimTaskCall(task_id=not_owned), owner)[2:])
            with pytest.raises(Exception) as info:  # claiming a task already Claimed
                await client.relay_extrinsic(not_owned, claim)
            assert info.value.code in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.PERMISSION_DENIED)
            for call in (unknown.request_assignment(0), unknown.get_task_spec(owned)):
                with pytest.raises(Exception) as info:
                    await call
                assert info.value.code == grpc.StatusCode.PERMISSION_DENIED
        async with TaskClient(orch.target) as tasks:
            with pytest.raises(Exception) as info:
                await tasks.get_task(10**9)
            assert info.value.code == grpc.StatusCode.NOT_FOUND

        # oversize: RESOURCE_EXHAUSTED before anything is parsed
        huge = os.urandom(5 * 1024 * 1024)
        assert await code_of(raw(T + "GetTask")(huge, timeout=10)) == grpc.StatusCode.RESOURCE_EXHAUSTED

        # still serving
        health = health_pb2_grpc.HealthStub(channel)
        reply = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        await channel.close()

    # nothing changed: no extrinsic reached the chain, the index is as it was, the process lives
    await asyncio.sleep(BLOCK_MS / 1000 + 0.5)  # anything relayed would be in a block by now
    now = await asyncio.to_thread(chain.finalized_number)
    assert await asyncio.to_thread(signed_extrinsics_between, chain, head + 1, now) == 0
    await asyncio.to_thread(orch.wait_for_height, now, 30)
    assert await index_tasks(orch.target) == before
    assert orch.alive
