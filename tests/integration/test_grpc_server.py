"""The worker API over real gRPC on loopback, against an in-memory fake of the api.

The fake records every call that reaches it: refused calls (auth, limits, malformed
input) must leave it empty."""
from __future__ import annotations

import asyncio
import datetime
import hashlib
import random
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from substrateinterface import Keypair, KeypairType

from orchestrator import auth
from orchestrator.client import ClientTls, SyncWorkerClient, TaskClient, WorkerClient
from orchestrator.domain import (
    Assignment,
    Capabilities,
    ProgressUpdate,
    Requirements,
    TaskEvent,
    TaskStatus,
    TaskView,
    WorkerView,
)
from orchestrator.errors import (
    ApiError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
)
from orchestrator.server import ServerLimits, TlsConfig, build_server
from paratrain_api.v1 import task_pb2, worker_pb2

ALICE = Keypair.create_from_uri("//Alice")
BOB = Keypair.create_from_uri("//Bob")
DAVE_ED = Keypair.create_from_seed("0x" + "44" * 32, crypto_type=KeypairType.ED25519)
CAPS = Capabilities(cpus=8, gpus=1, gpu_model="H100", memory_mb=65536)
W = "/paratrain.v1.WorkerService/"
T = "/paratrain.v1.TaskService/"


def make_task(task_id: int, worker: str | None) -> TaskView:
    return TaskView(task_id=task_id, requester=BOB.ss58_address, recipe="mlp", spec_hash=b"\x01" * 32,
                    spec_uri="file:///spec", dataset_hash=b"\x02" * 32, eval_metric="accuracy", eval_target=900_000,
                    requirements=Requirements(1, 0, 512), bounty=(1 << 100) + 5, min_stake=10**12, deadline=100,
                    validators_required=1, status=TaskStatus.CLAIMED if worker else TaskStatus.OPEN, worker=worker,
                    lease_until=50 if worker else None)


class FakeApi:
    """WorkerApi + TaskApi in memory. Task 7 is Alice's, task 8 Bob's, 9 open; others unknown."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.tasks = {7: make_task(7, ALICE.ss58_address), 8: make_task(8, BOB.ss58_address), 9: make_task(9, None)}
        self.offer: int | None = None
        self.fail_with: Exception | None = None

    def _own(self, account: str, task_id: int) -> TaskView:
        if self.fail_with is not None:
            raise self.fail_with
        task = self.tasks.get(task_id)
        if task is None:
            raise NotFound(f"task {task_id} not found")
        if task.worker not in (None, account):
            raise PermissionDenied("task held by another worker")
        return task

    def register_worker(self, account: str, capabilities: Capabilities) -> WorkerView:
        self.calls.append(("register_worker", account, capabilities))
        return WorkerView(account, "Trainer", 10**18, capabilities, True)

    async def request_assignment(self, account: str, wait_s: float,
                                 declined: frozenset[int] = frozenset()) -> Assignment | None:
        self.calls.append(("request_assignment", account, wait_s))
        if self.offer is not None:
            return Assignment(self.tasks[self.offer], account, time.monotonic() + 30)
        await asyncio.sleep(wait_s)
        return None

    async def report_progress(self, account: str, update: ProgressUpdate, heartbeat_extrinsic: bytes | None) -> None:
        self.calls.append(("report_progress", account, update, heartbeat_extrinsic))
        self._own(account, update.task_id)

    def task_spec(self, account: str, task_id: int) -> TaskView:
        self.calls.append(("task_spec", account, task_id))
        return self._own(account, task_id)

    async def relay_extrinsic(self, account: str, task_id: int, extrinsic: bytes) -> str:
        self.calls.append(("relay_extrinsic", account, task_id, extrinsic))
        self._own(account, task_id)
        return "0x" + hashlib.blake2b(extrinsic, digest_size=32).hexdigest()

    async def report_result(self, account: str, task_id: int, extrinsic_hash: str) -> None:
        self.calls.append(("report_result", account, task_id, extrinsic_hash))
        self._own(account, task_id)

    def list_tasks(self, status, limit, page_token):
        self.calls.append(("list_tasks", status, limit, page_token))
        ids = sorted(i for i, t in self.tasks.items() if status is None or t.status == status)
        start = int(page_token or 0)
        page = ids[start:start + limit]
        return [self.tasks[i] for i in page], (str(start + limit) if start + limit < len(ids) else "")

    def get_task(self, task_id: int) -> TaskView:
        self.calls.append(("get_task", task_id))
        if task_id not in self.tasks:
            raise NotFound(f"task {task_id} not found")
        return self.tasks[task_id]

    async def watch_task(self, task_id: int):
        self.calls.append(("watch_task", task_id))
        yield TaskEvent(task_id, "TaskClaimed", 10, {"worker": ALICE.ss58_address, "lease_until": 50})
        for step in range(1, 4):
            await asyncio.sleep(0.01)
            yield TaskEvent(task_id, "Progress", 0, {"worker": ALICE.ss58_address, "step": step, "epoch": 0,
                                                     "loss": 1.0 / step, "metrics": {"acc": step / 10},
                                                     "checkpoint_root": bytes([step]) * 32})
        yield TaskEvent(task_id, "ResultSubmitted", 11, {"bounty": 1 << 100})


class Harness:
    def __init__(self, api: FakeApi, server, port: int) -> None:
        self.api, self.server, self.port = api, server, port
        self.target = f"127.0.0.1:{port}"
        self.channel = grpc.aio.insecure_channel(self.target)

    def raw(self, path: str):
        return self.channel.unary_unary(path, request_serializer=None, response_deserializer=None)

    async def raw_call(self, path: str, body: bytes, metadata=None, timeout: float = 5.0):
        return await self.raw(path)(body, metadata=metadata, timeout=timeout)

    def worker(self, keypair=ALICE, **kw) -> WorkerClient:
        return WorkerClient(self.target, keypair, **kw)


async def start(api: FakeApi | None = None, **kw) -> Harness:
    api = api or FakeApi()
    kw.setdefault("limits", ServerLimits())
    server, port = build_server(api, api, listen="127.0.0.1:0", tls=kw.pop("tls", None), **kw)
    await server.start()
    return Harness(api, server, port)


@pytest.fixture
async def h():
    harness = await start()
    yield harness
    await harness.channel.close()
    await harness.server.stop(None)


async def code_of(coro) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await coro
    return info.value.code()


# ---------------------------------------------------------------- happy path


async def test_every_worker_method_round_trips(h: Harness) -> None:
    async with h.worker() as c:
        view = await c.register_worker(CAPS)
        assert view.account == ALICE.ss58_address and view.capabilities == CAPS and view.stake == 10**18
        assert await c.request_assignment(0) is None
        h.api.offer = 9
        a = await c.request_assignment(1)
        assert a is not None and a.task == h.api.tasks[9] and a.worker == ALICE.ss58_address
        assert 25 < a.expires_at - time.monotonic() <= 30
        assert await c.get_task_spec(7) == h.api.tasks[7]
        tx_hash = await c.relay_extrinsic(7, b"\x84signed")
        assert tx_hash == "0x" + hashlib.blake2b(b"\x84signed", digest_size=32).hexdigest()
        await c.report_result(7, tx_hash)
        updates = [(ProgressUpdate(7, "", s, 0, 0.5, {"acc": 0.1 * s}, b"\x09" * 32), b"hb" if s % 2 else None)
                   for s in range(5)]
        summary = await c.stream_progress(updates)
        assert (summary.updates, summary.heartbeats) == (5, 2)
    names = [call[0] for call in h.api.calls]
    assert names == ["register_worker", "request_assignment", "request_assignment", "task_spec", "relay_extrinsic",
                     "report_result"] + ["report_progress"] * 5
    assert all(call[1] == ALICE.ss58_address for call in h.api.calls)
    progress = [call for call in h.api.calls if call[0] == "report_progress"]
    assert progress[3][2] == ProgressUpdate(7, ALICE.ss58_address, 3, 0, 0.5, {"acc": 0.1 * 3}, b"\x09" * 32)
    assert [p[3] for p in progress] == [None, b"hb", None, b"hb", None]
    assert h.api.calls[5][3] == tx_hash


async def test_ed25519_worker(h: Harness) -> None:
    async with h.worker(DAVE_ED) as c:
        assert (await c.register_worker(CAPS)).account == DAVE_ED.ss58_address


async def test_task_service_list_get_watch(h: Harness) -> None:
    async with TaskClient(h.target) as c:
        page, token = await c.list_tasks(page_size=2)
        assert [t.task_id for t in page] == [7, 8] and token == "2"
        page, token = await c.list_tasks(page_size=2, page_token=token)
        assert [t.task_id for t in page] == [9] and token == ""
        assert [t.task_id for t in (await c.list_tasks(TaskStatus.OPEN))[0]] == [9]
        assert (await c.get_task(8)) == h.api.tasks[8]
        events = [e async for e in c.watch_task(7)]
        assert [e.kind for e in events] == ["TaskClaimed", "Progress", "Progress", "Progress", "ResultSubmitted"]
        assert events[2].detail["step"] == 2 and events[2].detail["checkpoint_root"] == b"\x02" * 32
        assert events[-1].detail["bounty"] == 1 << 100
        with pytest.raises(NotFound):
            await c.get_task(404)
        with pytest.raises(NotFound):
            [e async for e in c.watch_task(404)]
        with pytest.raises(InvalidArgument):
            await c.list_tasks(page_token="\x00" * 3)
    stream = h.channel.unary_stream(T + "WatchTask", request_serializer=None, response_deserializer=None)
    msgs = [task_pb2.WatchTaskResponse.FromString(m) async for m in stream(task_pb2.WatchTaskRequest(task_id=9)
                                                                              .SerializeToString())]
    assert msgs[1].event.progress.step == 1 and msgs[1].event.progress.metrics["acc"] == pytest.approx(0.1)


async def test_sync_client() -> None:
    harness = await start()
    try:
        def use() -> WorkerView:
            with SyncWorkerClient(harness.target, ALICE) as c:
                assert c.get_task_spec(7).task_id == 7
                with c.heartbeat_stream() as hb:
                    assert hb.send(ProgressUpdate(7, "", 1, 0, 0.5), b"hb") is True
                    assert hb.send(ProgressUpdate(7, "", 2, 0, 0.5)) is False
                return c.register_worker(CAPS)
        view = await asyncio.to_thread(use)
        assert view.account == ALICE.ss58_address
    finally:
        await harness.server.stop(None)


# ---------------------------------------------------------------- authentication


def signed(path: str, body: bytes, keypair=ALICE, **kw):
    return auth.sign_request(keypair, path, body, **kw)


async def test_unsigned_forged_replayed_and_stale_calls_never_reach_the_api(h: Harness) -> None:
    body = worker_pb2.GetTaskSpecRequest(task_id=7).SerializeToString()
    path = W + "GetTaskSpec"
    md = signed(path, body)
    forged = [(k, v) for k, v in signed(path, body, BOB) if k != auth.HEADER_ACCOUNT] + [(auth.HEADER_ACCOUNT, ALICE.ss58_address)]
    other_body = worker_pb2.GetTaskSpecRequest(task_id=8).SerializeToString()
    wrong_method = signed(W + "ReportResult", body)
    stale = signed(path, body, timestamp_ms=int((time.time() - 31) * 1000))
    future = signed(path, body, timestamp_ms=int((time.time() + 60) * 1000))
    cases = {
        "unsigned": (body, None),
        "partial": (body, md[:2]),
        "forged": (body, forged),
        "body swapped": (other_body, md),
        "wrong method": (body, wrong_method),
        "stale": (body, stale),
        "future": (body, future),
    }
    for name, (b, metadata) in cases.items():
        assert await code_of(h.raw_call(path, b, metadata)) == grpc.StatusCode.UNAUTHENTICATED, name
    assert h.api.calls == []
    # the genuine call (not spoiled by the forged attempts on its metadata) works once; its replay does not
    reply = await h.raw_call(path, body, md)
    assert worker_pb2.GetTaskSpecResponse.FromString(reply).task.task_id == 7
    assert len(h.api.calls) == 1
    assert await code_of(h.raw_call(path, body, md)) == grpc.StatusCode.UNAUTHENTICATED
    assert len(h.api.calls) == 1
    # every worker method is guarded, including the stream
    for method in ("RegisterWorker", "RequestAssignment", "RelayExtrinsic", "ReportResult"):
        assert await code_of(h.raw_call(W + method, b"")) == grpc.StatusCode.UNAUTHENTICATED, method
    stream = h.channel.stream_unary(W + "StreamProgress", request_serializer=None, response_deserializer=None)
    assert await code_of(stream(iter([b""]), timeout=5)) == grpc.StatusCode.UNAUTHENTICATED
    signed_other = signed(W + "StreamProgress", b"x")  # the stream signs the empty body
    assert await code_of(stream(iter([b""]), metadata=signed_other, timeout=5)) == grpc.StatusCode.UNAUTHENTICATED
    assert len(h.api.calls) == 1


async def test_client_side_errors_are_typed(h: Harness) -> None:
    async with h.worker(clock=lambda: time.time() - 120) as c:
        with pytest.raises(Unauthenticated) as info:
            await c.get_task_spec(7)
        assert info.value.code == grpc.StatusCode.UNAUTHENTICATED
    assert h.api.calls == []


async def test_registered_gate_refuses_unknown_accounts(h: Harness) -> None:
    harness = await start(registered=lambda account: account == ALICE.ss58_address)
    try:
        async with harness.worker(BOB) as c:
            with pytest.raises(PermissionDenied):
                await c.register_worker(CAPS)
        assert harness.api.calls == []
        async with harness.worker(ALICE) as c:
            await c.register_worker(CAPS)
        assert len(harness.api.calls) == 1
    finally:
        await harness.server.stop(None)


# ---------------------------------------------------------------- api errors and malformed input


async def test_permission_denied_not_found_and_internal(h: Harness) -> None:
    async with h.worker() as c:
        with pytest.raises(PermissionDenied):
            await c.get_task_spec(8)
        with pytest.raises(PermissionDenied):
            await c.relay_extrinsic(8, b"x")
        with pytest.raises(NotFound):
            await c.get_task_spec(404)
        with pytest.raises(NotFound):
            await c.report_result(404, b"\x01" * 32)
        with pytest.raises(PermissionDenied):
            await c.stream_progress([ProgressUpdate(7, "", 1, 0, 0.1), ProgressUpdate(8, "", 1, 0, 0.1)])
        h.api.fail_with = RuntimeError("secret internals /etc/passwd")
        with pytest.raises(Exception) as info:
            await c.get_task_spec(7)
    cause = info.value.__cause__
    assert cause.code() == grpc.StatusCode.INTERNAL and cause.details() == "internal error"
    assert "Traceback" not in (cause.debug_error_string() or "") and "secret" not in (cause.details() or "")


async def test_malformed_requests_are_invalid_argument_and_change_nothing(h: Harness) -> None:
    async with h.worker() as c:
        bad = [
            c.register_worker(Capabilities(cpus=0, gpus=0, gpu_model="", memory_mb=1)),
            c.register_worker(Capabilities(cpus=1, gpus=0, gpu_model="x" * 500, memory_mb=1)),
            c.relay_extrinsic(7, b""),
            c.relay_extrinsic(7, b"x" * (64 * 1024 + 1)),
            c.report_result(7, b"\x01" * 31),
            c.stream_progress([ProgressUpdate(7, "", 1, 0, float("nan"))]),
            c.stream_progress([ProgressUpdate(7, BOB.ss58_address, 1, 0, 0.1)]),
            c.stream_progress([ProgressUpdate(7, "", 1, 0, 0.1, {f"m{i}": 1.0 for i in range(100)})]),
        ]
        for coro in bad:
            with pytest.raises(InvalidArgument):
                await coro
        req = worker_pb2.RequestAssignmentRequest(wait_ms=3_600_001)
        with pytest.raises(InvalidArgument):
            await c._unary("RequestAssignment", req, worker_pb2.RequestAssignmentResponse)
    # properly signed garbage bytes
    for body in (b"\xff\xff\xff", b"\x0a\x05ab", b"\x12\x03\xff\xfe\xfd"):
        path = W + "RegisterWorker"
        assert await code_of(h.raw_call(path, body, signed(path, body))) == grpc.StatusCode.INVALID_ARGUMENT
    assert await code_of(h.raw_call(T + "GetTask", b"\x08")) == grpc.StatusCode.INVALID_ARGUMENT
    assert await code_of(h.raw_call(T + "ListTasks", b"\x08\x63")) == grpc.StatusCode.INVALID_ARGUMENT
    assert h.api.calls == []


# ---------------------------------------------------------------- limits


async def test_rate_limit_per_account() -> None:
    harness = await start(limits=ServerLimits(rate_per_s=0.001, rate_burst=3))
    try:  # signed calls (a session's opening call counts too: test_session_calls_are_rate_limited_and_gated)
        async with harness.worker(ALICE, sessions=False) as alice, harness.worker(BOB, sessions=False) as bob:
            for _ in range(3):
                await alice.get_task_spec(7)
            with pytest.raises(ResourceExhausted):
                await alice.get_task_spec(7)
            await bob.get_task_spec(8)  # per account
        assert len(harness.api.calls) == 4
    finally:
        await harness.server.stop(None)


async def test_oversize_message_is_resource_exhausted() -> None:
    harness = await start(limits=ServerLimits(max_receive_message_bytes=4096))
    try:
        async with harness.worker() as c:
            with pytest.raises(ResourceExhausted):
                await c.relay_extrinsic(7, b"x" * 8192)
            await c.relay_extrinsic(7, b"x" * 1024)
        assert await code_of(harness.raw_call(T + "GetTask", b"\x00" * 10_000)) == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert [call[0] for call in harness.api.calls] == ["relay_extrinsic"]
    finally:
        await harness.server.stop(None)


async def test_long_poll_is_bounded_by_server_cap_and_deadline() -> None:
    harness = await start(limits=ServerLimits(max_wait_s=0.2))
    try:
        async with harness.worker() as c:
            t0 = time.monotonic()
            assert await c.request_assignment(60) is None
            assert time.monotonic() - t0 < 2
            assert harness.api.calls[-1][2] == pytest.approx(0.2)
            # the caller's deadline bounds it too
            harness2 = await start(limits=ServerLimits(max_wait_s=30))
            try:
                async with harness2.worker() as c2:
                    assert await c2.request_assignment(60, timeout=1.0) is None
                    assert harness2.api.calls[-1][2] < 1.0
            finally:
                await harness2.server.stop(None)
    finally:
        await harness.server.stop(None)


# ---------------------------------------------------------------- health, reflection


async def test_health_serving_and_reflection(h: Harness) -> None:
    health = health_pb2_grpc.HealthStub(h.channel)
    for service in ("", "paratrain.v1.WorkerService", "paratrain.v1.TaskService"):
        resp = await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert resp.status == health_pb2.HealthCheckResponse.SERVING
    refl = reflection_pb2_grpc.ServerReflectionStub(h.channel)
    call = refl.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5)
    names = set()
    async for resp in call:
        names |= {s.name for s in resp.list_services_response.service}
    assert {"paratrain.v1.WorkerService", "paratrain.v1.TaskService", "grpc.health.v1.Health",
            "grpc.reflection.v1alpha.ServerReflection"} <= names
    call = refl.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(file_containing_symbol="paratrain.v1.WorkerService")]), timeout=5)
    async for resp in call:
        assert resp.file_descriptor_response.file_descriptor_proto


# ---------------------------------------------------------------- fuzz


def _client_write_race(exc: grpc.aio.AioRpcError) -> bool:
    """grpc.aio's own INTERNAL for a client-streaming call whose server ended it (here: refused a malformed
    message) while the client was still writing the next one; the server's status is then lost to the
    client, so the server-side record below is what the test checks for those."""
    return exc.code() == grpc.StatusCode.INTERNAL and exc.details().startswith("Internal error from Core")


async def test_fuzz_random_bodies_every_method() -> None:
    served: list[tuple[str, str]] = []  # (method, status) as the server answered, whatever the client saw
    h = await start(on_rpc=lambda method, code, _seconds: served.append((method, code)))
    try:
        await _fuzz_random_bodies(h)
    finally:
        await h.channel.close()
        await h.server.stop(None)
    assert served and not [entry for entry in served if entry[1] in ("UNKNOWN", "INTERNAL")]


async def _fuzz_random_bodies(h: Harness) -> None:
    rng = random.Random(1234)
    methods = [W + m for m in ("RegisterWorker", "RequestAssignment", "GetTaskSpec", "RelayExtrinsic", "ReportResult")]
    methods += [T + m for m in ("ListTasks", "GetTask")]
    answered: dict[str, set[grpc.StatusCode]] = {}

    def body() -> bytes:
        kind = rng.random()
        if kind < 0.3:
            return rng.randbytes(rng.randint(0, 64))
        if kind < 0.6:  # plausible tag/length structure
            out = bytearray()
            for _ in range(rng.randint(1, 6)):
                out += bytes([rng.choice([8, 10, 16, 18, 26, 34, 42, 0x7a, 0xff])])
                out += rng.randbytes(rng.randint(0, 8))
            return bytes(out)
        return rng.randbytes(rng.randint(0, 2048))

    for _ in range(600):
        path = rng.choice(methods)
        b = body()
        metadata = signed(path, b) if path.startswith(W) and rng.random() < 0.7 else None
        try:
            await h.raw_call(path, b, metadata, timeout=5)
            code = grpc.StatusCode.OK
        except grpc.aio.AioRpcError as exc:
            code = exc.code()
        assert code not in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL, grpc.StatusCode.DEADLINE_EXCEEDED,
                            grpc.StatusCode.UNAVAILABLE), (path, b, code)
        answered.setdefault(path, set()).add(code)
    # streams: random messages on StreamProgress and WatchTask
    stream = h.channel.stream_unary(W + "StreamProgress", request_serializer=None, response_deserializer=None)
    watch = h.channel.unary_stream(T + "WatchTask", request_serializer=None, response_deserializer=None)
    for _ in range(60):
        msgs = [body() for _ in range(rng.randint(1, 4))]
        try:
            await stream(iter(msgs), metadata=signed(W + "StreamProgress", b""), timeout=5)
            code = grpc.StatusCode.OK
        except grpc.aio.AioRpcError as exc:
            code = grpc.StatusCode.OK if len(msgs) > 1 and _client_write_race(exc) else exc.code()
        assert code not in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL, grpc.StatusCode.DEADLINE_EXCEEDED)
        try:
            [m async for m in watch(body(), timeout=5)]
        except grpc.aio.AioRpcError as exc:
            assert exc.code() not in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL, grpc.StatusCode.DEADLINE_EXCEEDED)
    assert set(answered) == set(methods)
    assert any(grpc.StatusCode.INVALID_ARGUMENT in codes for codes in answered.values())
    # still healthy afterwards
    resp = await health_pb2_grpc.HealthStub(h.channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert resp.status == health_pb2.HealthCheckResponse.SERVING


# ---------------------------------------------------------------- TLS and mTLS


def _cert(common_name: str, issuer_key=None, issuer_name=None, ca: bool = False):
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer_name or name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if not ca:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
    cert = builder.sign(issuer_key or key, hashes.SHA256())
    pem_key = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), pem_key, key, name


async def test_tls_and_mtls() -> None:
    ca_pem, _, ca_key, ca_name = _cert("paratrain test CA", ca=True)
    srv_pem, srv_key, _, _ = _cert("localhost", ca_key, ca_name)
    cli_pem, cli_key, _, _ = _cert("worker", ca_key, ca_name)
    tls_opts = ClientTls(root_ca=ca_pem, server_name="localhost")

    harness = await start(tls=TlsConfig(srv_pem, srv_key))
    try:
        async with harness.worker(tls=tls_opts) as c:
            assert (await c.get_task_spec(7)).task_id == 7
        async with TaskClient(harness.target, tls=tls_opts) as t:
            assert (await t.get_task(9)).task_id == 9
        async with harness.worker(timeout_s=2) as plain:  # plaintext client against a TLS port
            with pytest.raises(ApiError):
                await plain.get_task_spec(7)
    finally:
        await harness.server.stop(None)

    harness = await start(tls=TlsConfig(srv_pem, srv_key, client_ca=ca_pem, require_client_auth=True))
    try:
        mtls = ClientTls(root_ca=ca_pem, cert_chain=cli_pem, private_key=cli_key, server_name="localhost")
        async with harness.worker(tls=mtls) as c:
            assert (await c.get_task_spec(7)).task_id == 7
        async with harness.worker(tls=tls_opts, timeout_s=2) as no_cert:
            with pytest.raises(ApiError):
                await no_cert.get_task_spec(7)
        assert len(harness.api.calls) == 1
    finally:
        await harness.server.stop(None)


async def test_unary_heartbeat(h: Harness) -> None:
    async with h.worker() as c:
        assert await c.heartbeat(ProgressUpdate(7, "", 3, 1, 0.25, {"acc": 0.5}), b"hb") is True
        summary = await c.report_progress(ProgressUpdate(7, "", 4, 1, 0.2))  # the unary path too
        assert (summary.updates, summary.heartbeats) == (1, 0)
    progress = [call for call in h.api.calls if call[0] == "report_progress"]
    assert progress[0][1:] == (ALICE.ss58_address, ProgressUpdate(7, ALICE.ss58_address, 3, 1, 0.25, {"acc": 0.5}), b"hb")
    assert progress[1][2].step == 4 and progress[1][3] is None


# ---------------------------------------------------------------- heartbeat stream (each message signed)

HB = W + "HeartbeatStream"


def _stream_message(keypair, stream_nonce: bytes, sequence: int, update: ProgressUpdate, extrinsic=None, **kw):
    from orchestrator import serde

    body = serde.heartbeat_request(update, extrinsic).SerializeToString(deterministic=True)
    msg = auth.sign_message(keypair, HB, stream_nonce, sequence, body, **kw)
    return worker_pb2.HeartbeatStreamRequest(heartbeat=body, sequence=msg.sequence, timestamp_ms=msg.timestamp_ms,
                                             nonce=msg.nonce, signature=msg.signature)


def _open_raw(h: Harness, keypair=ALICE, metadata=None):
    md = signed(HB, b"", keypair) if metadata is None else metadata
    call = h.channel.stream_stream(HB, request_serializer=worker_pb2.HeartbeatStreamRequest.SerializeToString,
                                   response_deserializer=worker_pb2.HeartbeatStreamResponse.FromString)(
        metadata=md, timeout=5)
    return call, (bytes.fromhex(dict(md)[auth.HEADER_NONCE]) if md else b"")


async def test_heartbeat_stream_round_trips(h: Harness) -> None:
    async with h.worker() as c:
        async with c.heartbeat_stream() as hb:
            for step in range(1, 6):
                assert await hb.send(ProgressUpdate(7, "", step, 0, 1.0 / step, {"acc": step / 10}),
                                     b"hb" if step % 2 else None) is bool(step % 2)
            assert hb.opened == 1
        async with c.heartbeat_stream() as hb:  # a second stream of the same account
            assert await hb.send(ProgressUpdate(7, "", 6, 0, 0.1)) is False
    progress = [call for call in h.api.calls if call[0] == "report_progress"]
    assert [p[2].step for p in progress] == [1, 2, 3, 4, 5, 6]
    assert all(p[1] == ALICE.ss58_address and p[2].worker == ALICE.ss58_address for p in progress)
    assert progress[2][2] == ProgressUpdate(7, ALICE.ss58_address, 3, 0, 1.0 / 3, {"acc": 0.3})
    assert [p[3] for p in progress[:5]] == [b"hb", None, b"hb", None, b"hb"]


async def test_heartbeat_stream_ed25519(h: Harness) -> None:
    h.api.tasks[7] = make_task(7, DAVE_ED.ss58_address)
    async with h.worker(DAVE_ED) as c, c.heartbeat_stream() as hb:
        assert await hb.send(ProgressUpdate(7, "", 1, 0, 0.5)) is False
    assert h.api.calls[-1][1] == DAVE_ED.ss58_address


async def test_heartbeat_stream_refused_message_ends_the_stream_with_the_unary_status(h: Harness) -> None:
    async with h.worker() as c, c.heartbeat_stream() as hb:
        await hb.send(ProgressUpdate(7, "", 1, 0, 0.5))
        with pytest.raises(PermissionDenied):
            await hb.send(ProgressUpdate(8, "", 1, 0, 0.5))  # Bob's task
        with pytest.raises(NotFound):
            await hb.send(ProgressUpdate(404, "", 1, 0, 0.5))
        with pytest.raises(InvalidArgument):
            await hb.send(ProgressUpdate(7, "", 2, 0, float("nan")))
        with pytest.raises(InvalidArgument):
            await hb.send(ProgressUpdate(7, BOB.ss58_address, 2, 0, 0.5))
        assert await hb.send(ProgressUpdate(7, "", 3, 0, 0.5)) is False  # a new stream
        assert hb.opened == 5
    assert [c[2].step for c in h.api.calls if c[0] == "report_progress" and c[2].task_id == 7] == [1, 3]


async def test_heartbeat_stream_messages_are_each_authenticated(h: Harness) -> None:
    """Forged, replayed, out-of-order, stale or foreign messages end the stream UNAUTHENTICATED and never reach
    the api; the messages before them did."""
    update = ProgressUpdate(7, "", 1, 0, 0.5)

    def spoil(kind: str, nonce: bytes) -> list[worker_pb2.HeartbeatStreamRequest]:
        good = _stream_message(ALICE, nonce, 1, update)
        if kind == "forged signature":
            bad = _stream_message(ALICE, nonce, 2, update)
            bad.signature = bad.signature[:-1] + bytes([bad.signature[-1] ^ 1])
        elif kind == "other key":
            bad = _stream_message(BOB, nonce, 2, update)
        elif kind == "replayed message":
            bad = good
        elif kind == "skipped sequence":
            bad = _stream_message(ALICE, nonce, 3, update)
        elif kind == "other stream":
            bad = _stream_message(ALICE, b"\x00" * 16, 2, update)
        elif kind == "stale":
            bad = _stream_message(ALICE, nonce, 2, update, timestamp_ms=int((time.time() - 31) * 1000))
        elif kind == "body swapped":
            bad = _stream_message(ALICE, nonce, 2, update)
            bad.heartbeat = _stream_message(ALICE, nonce, 2, ProgressUpdate(7, "", 99, 0, 0.5)).heartbeat
        elif kind == "unsigned":
            bad = worker_pb2.HeartbeatStreamRequest(heartbeat=good.heartbeat, sequence=2)
        else:
            raise AssertionError(kind)
        return [good, bad]

    kinds = ["forged signature", "other key", "replayed message", "skipped sequence", "other stream", "stale",
             "body swapped", "unsigned"]
    for kind in kinds:
        before = len(h.api.calls)
        call, nonce = _open_raw(h)
        good, bad = spoil(kind, nonce)
        await call.write(good)
        assert (await call.read()).sequence == 1
        await call.write(bad)
        with pytest.raises(grpc.aio.AioRpcError):
            await call.read()
        assert (await call.code()) == grpc.StatusCode.UNAUTHENTICATED, kind
        assert len(h.api.calls) == before + 1, kind  # only the good message
    # the stream itself must be opened with a valid signature over the empty body
    for md in (None, signed(HB, b"x"), signed(W + "Heartbeat", b"")):
        call = h.channel.stream_stream(HB, request_serializer=None, response_deserializer=None)(
            metadata=md, timeout=5)
        assert await call.code() == grpc.StatusCode.UNAUTHENTICATED  # refused as it opens, before any message
    # a message replayed into a second stream (its signature names the first stream)
    call, nonce = _open_raw(h)
    first = _stream_message(ALICE, nonce, 1, update)
    await call.write(first)
    await call.read()
    await call.done_writing()
    assert await call.code() == grpc.StatusCode.OK
    call2, _ = _open_raw(h)
    await call2.write(first)
    assert await call2.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_heartbeat_stream_checks_registration_and_rate_per_message() -> None:
    allowed = {ALICE.ss58_address}
    harness = await start(registered=lambda account: account in allowed,
                          limits=ServerLimits(rate_per_s=0.001, rate_burst=4))
    try:
        async with harness.worker(ALICE) as c, c.heartbeat_stream() as hb:
            await hb.send(ProgressUpdate(7, "", 1, 0, 0.5))  # the opening call and this message: 2 tokens
            await hb.send(ProgressUpdate(7, "", 2, 0, 0.5))
            allowed.clear()  # e.g. the worker unbonded meanwhile
            with pytest.raises(PermissionDenied):
                await hb.send(ProgressUpdate(7, "", 3, 0, 0.5))
            allowed.add(ALICE.ss58_address)
            with pytest.raises(ResourceExhausted):  # the reopening took the last token
                await hb.send(ProgressUpdate(7, "", 4, 0, 0.5))
        assert [call[2].step for call in harness.api.calls] == [1, 2]
    finally:
        await harness.server.stop(None)


async def test_heartbeat_stream_malformed_messages(h: Harness) -> None:
    for raw in (b"\xff\xff", b"\x0a\x02\xff\xfe", b"\x10" + b"\xff" * 11):
        call = h.channel.stream_stream(HB, request_serializer=None, response_deserializer=None)(
            metadata=signed(HB, b""), timeout=5)
        await call.write(raw)
        assert await call.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.UNAUTHENTICATED), raw
    # a validly signed envelope around bytes that are no HeartbeatRequest
    call, nonce = _open_raw(h)
    msg = auth.sign_message(ALICE, HB, nonce, 1, b"\xff\xff\xff")
    await call.write(worker_pb2.HeartbeatStreamRequest(heartbeat=b"\xff\xff\xff", sequence=1, timestamp_ms=msg.timestamp_ms,
                                                       nonce=msg.nonce, signature=msg.signature))
    assert await call.code() == grpc.StatusCode.INVALID_ARGUMENT
    # random messages: never INTERNAL/UNKNOWN, never reach the api. One message per stream, answered before
    # anything else is written, as HeartbeatStream clients do: a grpc.aio client that writes after the server
    # ended the stream reports INTERNAL "Internal error from Core" instead of the server's status (grpc#36066).
    rng = random.Random(99)
    for _ in range(40):
        call = h.channel.stream_stream(HB, request_serializer=None, response_deserializer=None)(
            metadata=signed(HB, b""), timeout=5)
        await call.write(rng.randbytes(rng.randint(0, 300)))
        with pytest.raises(grpc.aio.AioRpcError):
            await call.read()
        assert await call.code() not in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL,
                                         grpc.StatusCode.DEADLINE_EXCEEDED), await call.details()
    assert h.api.calls == []


# ---------------------------------------------------------------- ids and numbers at their ends, on a real index


U32, U64, U128 = (1 << 32) - 1, (1 << 64) - 1, (1 << 128) - 1


def extreme_task(task_id: int, worker: str | None) -> TaskView:
    """Every field at an end of its chain type (what the chain can hold and the API must carry)."""
    return TaskView(task_id=task_id, requester=BOB.ss58_address, recipe="0x41", spec_hash=b"\xff" * 32,
                    spec_uri="s3://" + "u" * 251, dataset_hash=b"\x00" * 32, eval_metric="0xfffe",
                    eval_target=-(1 << 63), requirements=Requirements(U32, U32, U64), bounty=U128, min_stake=U128,
                    deadline=U32, validators_required=U32, status=TaskStatus.CLAIMED if worker else TaskStatus.OPEN,
                    worker=worker, lease_until=U32 if worker else None, created_at=U32)


async def test_ids_and_numbers_at_their_ends_answer_not_found_or_invalid_argument() -> None:
    """Handlers over a real Index: an id beyond the index (0, 2^64-1) is NOT_FOUND, a number the API refuses
    INVALID_ARGUMENT, never INTERNAL; a task whose values sit at their type's ends is served exactly."""
    from orchestrator.handlers import Handlers
    from orchestrator.index import Index, TaskRecord, WorkerRecord

    index = Index()
    alice = ALICE.ss58_address
    held, open_ = extreme_task(U64 - 1, alice), extreme_task(1, None)
    index.apply_block(1, "0x01", [WorkerRecord(alice, WorkerView(alice, "Trainer", U128, Capabilities(U32, U32, "", U64),
                                                                 True)), TaskRecord(held), TaskRecord(open_)])
    handlers = Handlers(index)
    server, port = build_server(handlers, handlers, listen="127.0.0.1:0",
                                registered=lambda account: index.worker(account) is not None)
    await server.start()
    h = Harness(FakeApi(), server, port)
    try:
        async with TaskClient(h.target) as c:
            assert await c.get_task(U64 - 1) == held and await c.get_task(1) == open_
            for task_id in (0, U64, 2, U64 - 2):
                with pytest.raises(NotFound):
                    await c.get_task(task_id)
                with pytest.raises(NotFound):
                    [e async for e in c.watch_task(task_id)]
            assert [t.task_id for t in (await c.list_tasks(page_size=U32))[0]] == [1, U64 - 1]
            assert (await c.list_tasks(page_size=1)) == ([open_], "1")
            assert (await c.list_tasks(page_token="1")) == ([held], "")
            for token in (str(U64 - 1), str(U64)):
                assert await c.list_tasks(page_token=token) == ([], "")
            for token in (str(U64 + 1), "9" * 512, "-1", "+1", "1_0", " 1"):
                with pytest.raises(InvalidArgument):
                    await c.list_tasks(page_token=token)
        watch = h.channel.unary_stream(T + "WatchTask", request_serializer=None, response_deserializer=None)
        call = watch(task_pb2.WatchTaskRequest(task_id=U64 - 1).SerializeToString())
        state = task_pb2.WatchTaskResponse.FromString(await call.read()).event
        call.cancel()
        assert (state.task_id, state.kind, state.detail["lease_until"].int_value) == (U64 - 1, "State", U32)
        async with h.worker() as w:
            assert await w.get_task_spec(U64 - 1) == held
            assert await w.heartbeat(ProgressUpdate(U64 - 1, "", U64, U64, 0.5)) is False
            assert index.progress(U64 - 1).step == U64
            not_found = [w.get_task_spec(U64), w.get_task_spec(0), w.relay_extrinsic(U64, b"\x84x"),
                         w.report_result(U64, b"\x01" * 32), w.heartbeat(ProgressUpdate(U64, "", 0, 0, 0.5)),
                         w.report_progress(ProgressUpdate(0, "", U64, U64, 0.5))]
            for coro in not_found:
                with pytest.raises(NotFound):
                    await coro
            invalid = [w.register_worker(Capabilities(U32, U32, "", U64)),
                       w._unary("RequestAssignment", worker_pb2.RequestAssignmentRequest(wait_ms=U32),
                                worker_pb2.RequestAssignmentResponse)]
            for coro in invalid:
                with pytest.raises(InvalidArgument):
                    await coro
    finally:
        await h.channel.close()
        await server.stop(None)
        handlers.close()
        index.close()


# ---------------------------------------------------------------- sessions (MAC per call instead of a signature)

OPEN = W + "OpenAuthSession"
SPEC = W + "GetTaskSpec"


async def _raw_session(h: Harness, keypair=ALICE) -> auth.ClientSession:
    """A session opened by a raw signed OpenAuthSession call (what WorkerClient does on its first call)."""
    secret, worker_key = auth.x25519_keypair()
    body = worker_pb2.OpenAuthSessionRequest(worker_key=worker_key).SerializeToString()
    resp = worker_pb2.OpenAuthSessionResponse.FromString(await h.raw_call(OPEN, body, signed(OPEN, body, keypair)))
    return auth.ClientSession.accept(secret, worker_key, keypair.public_key, resp.session_id, resp.server_key,
                                     resp.expires_in_ms, time.monotonic())


def _spec(task_id: int) -> bytes:
    return worker_pb2.GetTaskSpecRequest(task_id=task_id).SerializeToString()


def _token_md(session: auth.ClientSession, path: str, body: bytes, **kw) -> list[tuple[str, bytes]]:
    return [(auth.HEADER_SESSION, session.token(path, body, kw.get("timestamp_ms", int(time.time() * 1000))))]


async def _refusal(coro) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await coro
    return info.value.code(), info.value.details() or ""


async def test_client_calls_ride_one_session(h: Harness) -> None:
    async with h.worker() as c:
        await c.register_worker(CAPS)
        assert await c.get_task_spec(7) == h.api.tasks[7]
        assert await c.heartbeat(ProgressUpdate(7, "", 1, 0, 0.5)) is False
        await c.report_result(7, "0x" + "11" * 32)
        assert c.sessions_opened == 1 and c._session is not None and c._session.counter == 4
    assert [call[0] for call in h.api.calls] == ["register_worker", "task_spec", "report_progress", "report_result"]
    assert all(call[1] == ALICE.ss58_address for call in h.api.calls)


async def test_forged_replayed_and_unknown_session_calls_are_unauthenticated_and_change_nothing(h: Harness) -> None:
    session = await _raw_session(h)
    body = _spec(7)
    good = _token_md(session, SPEC, body)
    forged = [(auth.HEADER_SESSION, good[0][1][:-1] + bytes([good[0][1][-1] ^ 1]))]
    unknown = _token_md(auth.ClientSession(b"\x05" * 16, session.key, 0.0), SPEC, body)
    stale = _token_md(session, SPEC, body, timestamp_ms=int((time.time() - 31) * 1000))
    cases = {"forged MAC": (body, forged), "body swapped": (_spec(8), good), "wrong method": (body, good),
             "unknown session": (body, unknown), "stale": (body, stale),
             "short token": (body, [(auth.HEADER_SESSION, good[0][1][:40])])}
    for name, (b, md) in cases.items():
        path = W + "ReportResult" if name == "wrong method" else SPEC
        code, details = await _refusal(h.raw_call(path, b, md))
        assert code == grpc.StatusCode.UNAUTHENTICATED, name
        assert details.startswith(auth.SESSION_UNKNOWN) is (name == "unknown session"), name
    assert h.api.calls == []
    reply = await h.raw_call(SPEC, body, good)  # the genuine call, untouched by the forgeries, once
    assert worker_pb2.GetTaskSpecResponse.FromString(reply).task.task_id == 7
    code, details = await _refusal(h.raw_call(SPEC, body, good))
    assert code == grpc.StatusCode.UNAUTHENTICATED and "replayed" in details
    assert len(h.api.calls) == 1


async def test_a_session_of_another_account() -> None:
    """Alice's session speaks for Alice only: Bob's task is PERMISSION_DENIED by the api, and Bob, holding a
    session of his own, cannot use her session id (his key is not hers): UNAUTHENTICATED, her session intact."""
    harness = await start(registered=lambda account: account in (ALICE.ss58_address, BOB.ss58_address))
    try:
        alice, bob = await _raw_session(harness, ALICE), await _raw_session(harness, BOB)
        code, _ = await _refusal(harness.raw_call(SPEC, _spec(8), _token_md(alice, SPEC, _spec(8))))
        assert code == grpc.StatusCode.PERMISSION_DENIED
        assert harness.api.calls == [("task_spec", ALICE.ss58_address, 8)]
        stolen = auth.ClientSession(alice.session_id, bob.key, 0.0, counter=alice.counter)
        code, details = await _refusal(harness.raw_call(SPEC, _spec(8), _token_md(stolen, SPEC, _spec(8))))
        assert code == grpc.StatusCode.UNAUTHENTICATED and "MAC" in details
        assert len(harness.api.calls) == 1
        await harness.raw_call(SPEC, _spec(7), _token_md(alice, SPEC, _spec(7)))
        await harness.raw_call(SPEC, _spec(8), _token_md(bob, SPEC, _spec(8)))
        assert harness.api.calls[1:] == [("task_spec", ALICE.ss58_address, 7), ("task_spec", BOB.ss58_address, 8)]
    finally:
        await harness.channel.close()
        await harness.server.stop(None)


async def test_handshakes_that_are_badly_signed_or_not_signed_open_nothing(h: Harness) -> None:
    _, worker_key = auth.x25519_keypair()
    body = worker_pb2.OpenAuthSessionRequest(worker_key=worker_key).SerializeToString()
    md = signed(OPEN, body)
    bad_sig = [(k, v if k != auth.HEADER_SIGNATURE else v[:-2] + ("00" if v[-2:] != "00" else "01")) for k, v in md]
    session = await _raw_session(h)
    by_session = _token_md(session, OPEN, body)
    cases = {"unsigned": None, "bad signature": bad_sig, "signed over another body": signed(OPEN, b"\x0a\x01x"),
             "opened by a session call": by_session}
    for name, metadata in cases.items():
        assert await code_of(h.raw_call(OPEN, body, metadata)) == grpc.StatusCode.UNAUTHENTICATED, name
    small_order = worker_pb2.OpenAuthSessionRequest(worker_key=bytes(32)).SerializeToString()
    assert await code_of(h.raw_call(OPEN, small_order, signed(OPEN, small_order))) == grpc.StatusCode.INVALID_ARGUMENT
    # streams open with a signature only
    stream = h.channel.stream_unary(W + "StreamProgress", request_serializer=None, response_deserializer=None)
    assert await code_of(stream(iter([b""]), metadata=_token_md(session, W + "StreamProgress", b""),
                                timeout=5)) == grpc.StatusCode.UNAUTHENTICATED
    assert h.api.calls == []
    reply = await h.raw_call(OPEN, body, md)  # the genuine handshake still opens its session
    assert len(worker_pb2.OpenAuthSessionResponse.FromString(reply).session_id) == auth.SESSION_ID_LEN


async def test_client_opens_a_new_session_when_the_server_forgets_it() -> None:
    harness = await start(limits=ServerLimits(session_ttl_s=0.3))
    try:  # the client's clock stands still: it would never renew by itself
        async with harness.worker(monotonic=lambda: 0.0) as c:
            assert await c.get_task_spec(7) == harness.api.tasks[7]
            await asyncio.sleep(0.4)  # expired on the server
            assert await c.get_task_spec(7) == harness.api.tasks[7]
            assert c.sessions_opened == 2
        assert harness.api.calls == [("task_spec", ALICE.ss58_address, 7)] * 2
    finally:
        await harness.channel.close()
        await harness.server.stop(None)


async def test_client_renews_its_session_halfway_through_its_life() -> None:
    now = [0.0]
    harness = await start(limits=ServerLimits(session_ttl_s=60))
    try:
        async with harness.worker(monotonic=lambda: now[0]) as c:
            await c.get_task_spec(7)
            now[0] = 29.0
            await c.get_task_spec(7)
            assert c.sessions_opened == 1
            now[0] = 30.0
            await c.get_task_spec(7)
            assert c.sessions_opened == 2
        assert len(harness.api.calls) == 3
    finally:
        await harness.channel.close()
        await harness.server.stop(None)


async def test_client_signs_every_call_for_a_server_without_sessions() -> None:
    harness = await start(limits=ServerLimits(max_sessions=0))
    try:
        async with harness.worker() as c:
            assert await c.get_task_spec(7) == harness.api.tasks[7]
            assert c.sessions is False and c.sessions_opened == 0
            assert await c.get_task_spec(7) == harness.api.tasks[7]
        assert len(harness.api.calls) == 2
    finally:
        await harness.channel.close()
        await harness.server.stop(None)


async def test_session_calls_are_rate_limited_and_gated() -> None:
    allowed = {ALICE.ss58_address}
    harness = await start(limits=ServerLimits(rate_per_s=0.001, rate_burst=3), registered=lambda a: a in allowed)
    try:
        async with harness.worker() as c:
            await c.get_task_spec(7)  # the OpenAuthSession call and this one
            await c.get_task_spec(7)
            with pytest.raises(ResourceExhausted):
                await c.get_task_spec(7)
        assert len(harness.api.calls) == 2
    finally:
        await harness.channel.close()
        await harness.server.stop(None)
    harness = await start(registered=lambda a: a in allowed)
    try:
        async with harness.worker() as c:
            await c.get_task_spec(7)
            allowed.clear()  # deregistered on chain: the open session does not outlive it
            with pytest.raises(PermissionDenied):
                await c.get_task_spec(7)
        assert len(harness.api.calls) == 1
    finally:
        await harness.channel.close()
        await harness.server.stop(None)
