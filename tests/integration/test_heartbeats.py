"""A worker's steady heartbeats (`WorkerClient.heartbeats()`): over the signed stream, unary only when the stream
is unavailable, and a refusal is never retried as a unary call."""
from __future__ import annotations

import asyncio
from collections import Counter

import grpc
import pytest
from substrateinterface import Keypair

# the same fake api (task 7 is Alice's, 8 Bob's) and the generated messages wherever that module takes them from
from test_grpc_server import ALICE, FakeApi, worker_pb2

from orchestrator.client import SyncWorkerClient, WorkerClient
from orchestrator.domain import ProgressUpdate
from orchestrator.errors import PermissionDenied
from orchestrator.server import build_server

W = "/paratrain.v1.WorkerService/"


def update(task_id: int = 7, step: int = 1) -> ProgressUpdate:
    return ProgressUpdate(task_id, "", step, 0, 0.5)


class Orchestrator:
    """The real server over the fake api, counting the RPCs it served by method."""

    def __init__(self) -> None:
        self.api = FakeApi()
        self.rpcs: Counter[str] = Counter()

    async def __aenter__(self) -> str:
        self.server, port = build_server(self.api, self.api, listen="127.0.0.1:0",
                                         on_rpc=lambda method, code, s: self.rpcs.update([method.rsplit("/", 1)[1]]))
        await self.server.start()
        return f"127.0.0.1:{port}"

    async def __aexit__(self, *exc) -> None:
        await self.server.stop(0)


class BareOrchestrator:
    """A server without auth whose HeartbeatStream is missing (an older orchestrator) or breaks with
    UNAVAILABLE on its first `breaks` messages; its unary Heartbeat always answers."""

    def __init__(self, *, stream: bool, breaks: int = 0) -> None:
        self.stream, self.breaks = stream, breaks
        self.unary = self.streamed = 0

    async def _heartbeat(self, raw: bytes, context) -> bytes:
        self.unary += 1
        return worker_pb2.HeartbeatResponse().SerializeToString()

    async def _heartbeat_stream(self, requests, context):
        async for raw in requests:
            if self.breaks:
                self.breaks -= 1
                await context.abort(grpc.StatusCode.UNAVAILABLE, "connection reset")
            self.streamed += 1
            message = worker_pb2.HeartbeatStreamRequest.FromString(raw)
            yield worker_pb2.HeartbeatStreamResponse(sequence=message.sequence).SerializeToString()

    async def __aenter__(self) -> str:
        methods = {"Heartbeat": grpc.unary_unary_rpc_method_handler(self._heartbeat)}
        if self.stream:
            methods["HeartbeatStream"] = grpc.stream_stream_rpc_method_handler(self._heartbeat_stream)
        self.server = grpc.aio.server()
        self.server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("paratrain.v1.WorkerService",
                                                                                  methods)])
        port = self.server.add_insecure_port("127.0.0.1:0")
        await self.server.start()
        return f"127.0.0.1:{port}"

    async def __aexit__(self, *exc) -> None:
        await self.server.stop(0)


async def test_steady_heartbeats_ride_one_stream() -> None:
    orchestrator = Orchestrator()
    async with orchestrator as target, WorkerClient(target, ALICE) as client:
        beats = client.heartbeats()
        assert [await beats.send(update(step=s)) for s in (1, 2, 3)] == [False] * 3
        await beats.close()
    assert [c[0] for c in orchestrator.api.calls] == ["report_progress"] * 3
    assert orchestrator.rpcs == {"HeartbeatStream": 1}  # no unary Heartbeat at all
    assert beats.stream.opened == 1


async def test_a_refused_heartbeat_is_raised_not_retried_as_a_unary_call() -> None:
    orchestrator = Orchestrator()
    async with orchestrator as target, WorkerClient(target, ALICE) as client:
        beats = client.heartbeats()
        with pytest.raises(PermissionDenied):
            await beats.send(update(task_id=8))  # Bob's task
        assert await beats.send(update()) is False  # a new stream, still no unary call
        await beats.close()
    assert "Heartbeat" not in orchestrator.rpcs and orchestrator.rpcs["HeartbeatStream"] == 2
    assert beats.streamed


async def test_an_orchestrator_without_the_stream_gets_unary_heartbeats() -> None:
    old = BareOrchestrator(stream=False)
    async with old as target, WorkerClient(target, ALICE) as client:
        beats = client.heartbeats()
        for step in (1, 2, 3):
            assert await beats.send(update(step=step)) is False
        await beats.close()
    assert old.unary == 3 and not beats.streamed
    assert beats.stream.opened == 1  # UNIMPLEMENTED once: the stream is not tried again


async def test_a_broken_stream_sends_that_heartbeat_unary_and_the_next_on_a_new_stream() -> None:
    flaky = BareOrchestrator(stream=True, breaks=1)
    async with flaky as target, WorkerClient(target, ALICE) as client:
        beats = client.heartbeats()
        await beats.send(update(step=1))
        assert (flaky.unary, flaky.streamed) == (1, 0)
        await beats.send(update(step=2))
        await beats.send(update(step=3))
        await beats.close()
    assert (flaky.unary, flaky.streamed) == (1, 2) and beats.stream.opened == 2 and beats.streamed


async def test_sync_client_heartbeats() -> None:
    orchestrator = Orchestrator()
    async with orchestrator as target:
        def run() -> None:
            with SyncWorkerClient(target, Keypair.create_from_uri("//Alice")) as client, client.heartbeats() as beats:
                assert beats.send(update(step=1)) is False
                assert beats.send(update(step=2)) is False
        await asyncio.to_thread(run)
    assert orchestrator.rpcs == {"HeartbeatStream": 1}
