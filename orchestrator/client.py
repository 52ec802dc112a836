"""Worker-side gRPC clients (grpc.aio): `WorkerClient` signs every call; `TaskClient` is public.

    async with WorkerClient("127.0.0.1:50051", keypair) as client:
        worker = await client.register_worker(Capabilities(cpus=8, gpus=1, gpu_model="H100", memory_mb=65536))
        assignment = await client.request_assignment(wait_s=10)

Each unary call serializes its request once (`SerializeToString(deterministic=True)`),
authenticates those bytes (orchestrator/auth.py) and sends the very same bytes (a
pass-through serializer), so client and server hash identical bytes. StreamProgress
signs the empty body when the stream opens.

Sessions: the first unary call opens an authentication session (OpenAuthSession,
signed), and every unary call then carries a MAC under the session key instead of an
sr25519 signature, which costs both sides far less CPU. The session is renewed halfway
through its life; a call refused for an unknown or expired session (the server
restarted, or dropped it) opens a new session and is sent once more (the refusal came
before the server did anything). A server without OpenAuthSession (UNIMPLEMENTED) gets
signed calls, as does every call when the client is built with `sessions=False`.

Heartbeats: `heartbeat()` (and `report_progress()`) is one unary Heartbeat call per
heartbeat, authenticated per call. `heartbeat_stream()` keeps one HeartbeatStream open and
sends each heartbeat as a message signed on its own (orchestrator/auth.py, "Signed
streams"): the same checks on the server, without a new call per heartbeat.
`heartbeats()` is what a worker daemon uses: the stream, and a unary call for a
heartbeat the stream cannot carry (an orchestrator without it, a broken stream).

    async with client.heartbeat_stream() as hb:
        relayed = await hb.send(update, heartbeat_extrinsic)   # waits for the server's answer

Failures raise `orchestrator.errors` exceptions by status code (InvalidArgument,
Unauthenticated, PermissionDenied, NotFound, FailedPrecondition, ResourceExhausted,
Unavailable for UNAVAILABLE/DEADLINE_EXCEEDED) or `RpcError` for other codes; each has
`.code` (grpc.StatusCode) and the original grpc.aio.AioRpcError as `__cause__`.
`SyncWorkerClient` runs a WorkerClient on a private event loop thread for blocking code.
"""
from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterable, AsyncIterator, Callable, Coroutine, Iterable, Sequence, TypeVar

import grpc

from orchestrator import errors, serde
from orchestrator.auth import (
    HEADER_NONCE,
    HEADER_SESSION,
    SESSION_UNKNOWN,
    ClientSession,
    SigningKey,
    sign_message,
    sign_request,
    x25519_keypair,
)
from orchestrator.domain import Assignment, Capabilities, ProgressUpdate, TaskEvent, TaskStatus, TaskView, WorkerView
from paratrain_api.v1 import task_pb2, task_pb2_grpc, worker_pb2

_WORKER = "/paratrain.v1.WorkerService/"
T = TypeVar("T")
_OPEN_AUTH_SESSION = _WORKER + "OpenAuthSession"


@dataclass(frozen=True)
class ClientTls:
    """Channel TLS: `root_ca` to trust (None: system roots); with cert_chain+private_key it is mTLS."""

    root_ca: bytes | None = None
    cert_chain: bytes | None = None
    private_key: bytes | None = None
    server_name: str | None = None  # override the name checked against the server certificate

    @classmethod
    def from_files(cls, root_ca: str | Path | None = None, cert: str | Path | None = None,
                   key: str | Path | None = None, server_name: str | None = None) -> "ClientTls":
        def read(path: str | Path | None) -> bytes | None:
            return Path(path).read_bytes() if path else None
        return cls(read(root_ca), read(cert), read(key), server_name)

    def credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(self.root_ca, self.private_key, self.cert_chain)


class RpcError(errors.ApiError):
    """A status with no dedicated orchestrator.errors class (INTERNAL, UNIMPLEMENTED, ...)."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.status = code.name


_ERRORS: dict[grpc.StatusCode, type[errors.ApiError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: errors.InvalidArgument,
    grpc.StatusCode.UNAUTHENTICATED: errors.Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: errors.PermissionDenied,
    grpc.StatusCode.NOT_FOUND: errors.NotFound,
    grpc.StatusCode.FAILED_PRECONDITION: errors.FailedPrecondition,
    grpc.StatusCode.RESOURCE_EXHAUSTED: errors.ResourceExhausted,
    grpc.StatusCode.UNAVAILABLE: errors.Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: errors.Unavailable,
}


def api_error(exc: grpc.aio.AioRpcError) -> errors.ApiError:
    return status_error(exc.code(), exc.details() or "")


def status_error(code: grpc.StatusCode, details: str) -> errors.ApiError:
    cls = _ERRORS.get(code)
    err = cls(details) if cls is not None else RpcError(code, details)
    err.code = code  # type: ignore[attr-defined]
    return err


def _channel(target: str, tls: ClientTls | None, options: Sequence[tuple[str, Any]] | None) -> grpc.aio.Channel:
    opts = list(options or [])
    if tls is not None and tls.server_name:
        opts.append(("grpc.ssl_target_name_override", tls.server_name))
    if tls is None:
        return grpc.aio.insecure_channel(target, options=opts)
    return grpc.aio.secure_channel(target, tls.credentials(), options=opts)


@dataclass(frozen=True)
class ProgressSummary:
    updates: int
    heartbeats: int


class WorkerClient:
    """The worker API, every call authenticated by `keypair` (substrateinterface.Keypair, sr25519/ed25519):
    signed, or through a session that a signed call opened (`sessions`, see the module docstring)."""

    def __init__(self, target: str, keypair: SigningKey, *, tls: ClientTls | None = None,
                 options: Sequence[tuple[str, Any]] | None = None, timeout_s: float = 30.0,
                 clock: Callable[[], float] = time.time, sessions: bool = True,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.keypair, self.timeout_s, self.clock, self.monotonic = keypair, timeout_s, clock, monotonic
        self.channel = _channel(target, tls, options)
        self._calls: dict[str, Any] = {}
        self.sessions = sessions  # False once the server has answered UNIMPLEMENTED to OpenAuthSession
        self._session: ClientSession | None = None
        self._session_lock = asyncio.Lock()
        self.sessions_opened = 0

    @property
    def account(self) -> str:
        return self.keypair.ss58_address

    async def close(self) -> None:
        await self.channel.close()

    async def __aenter__(self) -> "WorkerClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _method(self, path: str, response_type: Any) -> Any:
        call = self._calls.get(path)
        if call is None:  # raw bytes out (we authenticate exactly what we send), messages in
            call = self._calls[path] = self.channel.unary_unary(
                path, request_serializer=None, response_deserializer=response_type.FromString)
        return call

    async def _unary(self, name: str, request: Any, response_type: Any, timeout: float | None = None) -> Any:
        path = _WORKER + name
        call = self._method(path, response_type)
        body = request.SerializeToString(deterministic=True)
        deadline = self.timeout_s if timeout is None else timeout
        for attempt in range(2):
            session = self._session
            if session is None or self.monotonic() >= session.renew_at:
                session = await self._open_session() if self.sessions else None
            if session is None:
                metadata: Sequence[tuple[str, str | bytes]] = sign_request(self.keypair, path, body, clock=self.clock)
            else:
                metadata = ((HEADER_SESSION, session.token(path, body, int(self.clock() * 1000))),)
            try:
                return await call(body, metadata=metadata, timeout=deadline)
            except grpc.aio.AioRpcError as exc:
                if (session is not None and attempt == 0 and exc.code() == grpc.StatusCode.UNAUTHENTICATED
                        and (exc.details() or "").startswith(SESSION_UNKNOWN)):
                    if self._session is session:
                        self._session = None
                    continue  # refused before anything ran: once more, on a new session
                raise api_error(exc) from exc
        raise AssertionError("unreachable: the second attempt returns or raises")

    async def _open_session(self) -> ClientSession | None:
        """The session for the next call: the current one while it is fresh, else a new one opened by a signed
        OpenAuthSession (one at a time: concurrent calls wait for it). None when the server has no sessions."""
        async with self._session_lock:
            session = self._session
            if session is not None and self.monotonic() < session.renew_at:
                return session
            if not self.sessions:
                return None
            secret, worker_key = x25519_keypair()
            body = worker_pb2.OpenAuthSessionRequest(worker_key=worker_key).SerializeToString(deterministic=True)
            call = self._method(_OPEN_AUTH_SESSION, worker_pb2.OpenAuthSessionResponse)
            try:
                resp = await call(body, metadata=sign_request(self.keypair, _OPEN_AUTH_SESSION, body, clock=self.clock),
                                  timeout=self.timeout_s)
            except grpc.aio.AioRpcError as exc:
                if exc.code() == grpc.StatusCode.UNIMPLEMENTED:  # an orchestrator without sessions: sign every call
                    self.sessions = False
                    return None
                raise api_error(exc) from exc
            self._session = ClientSession.accept(secret, worker_key, self.keypair.public_key, resp.session_id,
                                                 resp.server_key, resp.expires_in_ms, self.monotonic())
            self.sessions_opened += 1
            return self._session

    async def register_worker(self, capabilities: Capabilities) -> WorkerView:
        req = worker_pb2.RegisterWorkerRequest(capabilities=serde.capabilities_to_proto(capabilities))
        resp = await self._unary("RegisterWorker", req, worker_pb2.RegisterWorkerResponse)
        return serde.worker_from_proto(resp.worker)

    async def request_assignment(self, wait_s: float = 0.0, *, declined: Iterable[int] = (),
                                 timeout: float | None = None) -> Assignment | None:
        """Long poll; the call's deadline defaults to wait_s + 5 s. `declined`: tasks this worker will not
        take (the most recent MAX_DECLINED are sent)."""
        wait_ms = max(0, min(int(wait_s * 1000), serde.MAX_WAIT_MS))
        req = worker_pb2.RequestAssignmentRequest(wait_ms=wait_ms,
                                                  declined_task_ids=list(declined)[-serde.MAX_DECLINED:])
        resp = await self._unary("RequestAssignment", req, worker_pb2.RequestAssignmentResponse,
                                 timeout=wait_s + 5.0 if timeout is None else timeout)
        return serde.assignment_from_proto(resp.assignment) if resp.HasField("assignment") else None

    async def stream_progress(self, updates: AsyncIterable[Any] | Iterable[Any], *,
                              timeout: float | None = None) -> ProgressSummary:
        """Send ProgressUpdates (or (ProgressUpdate, heartbeat_extrinsic | None) pairs) on one stream."""
        path = _WORKER + "StreamProgress"
        call = self.channel.stream_unary(path, request_serializer=worker_pb2.StreamProgressRequest.SerializeToString,
                                         response_deserializer=worker_pb2.StreamProgressResponse.FromString)

        def message(item: Any) -> worker_pb2.StreamProgressRequest:
            if isinstance(item, ProgressUpdate):
                return serde.stream_progress_request(item)
            update, extrinsic = item
            return serde.stream_progress_request(update, extrinsic)

        async def requests() -> AsyncIterator[worker_pb2.StreamProgressRequest]:
            if isinstance(updates, AsyncIterable):
                async for item in updates:
                    yield message(item)
            else:
                for item in updates:
                    yield message(item)

        metadata = sign_request(self.keypair, path, b"", clock=self.clock)
        try:
            resp = await call(requests(), metadata=metadata, timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            raise api_error(exc) from exc
        return ProgressSummary(updates=resp.updates, heartbeats=resp.heartbeats)

    async def heartbeat(self, update: ProgressUpdate, heartbeat_extrinsic: bytes | None = None) -> bool:
        """One update (and optional worker-signed heartbeat extrinsic) as a unary Heartbeat call, authenticated
        over its own bytes. Returns whether an extrinsic was accepted for relay."""
        resp = await self._unary("Heartbeat", serde.heartbeat_request(update, heartbeat_extrinsic),
                                 worker_pb2.HeartbeatResponse)
        return bool(resp.heartbeat_relayed)

    async def report_progress(self, update: ProgressUpdate, heartbeat_extrinsic: bytes | None = None) -> ProgressSummary:
        """One update: a unary Heartbeat call (cheaper than a stream per update)."""
        relayed = await self.heartbeat(update, heartbeat_extrinsic)
        return ProgressSummary(updates=1, heartbeats=int(relayed))

    def heartbeat_stream(self, *, timeout: float | None = None) -> "HeartbeatStream":
        """A long-lived HeartbeatStream (opened on the first send; see HeartbeatStream)."""
        return HeartbeatStream(self, timeout=timeout)

    def heartbeats(self) -> "Heartbeats":
        """A worker's steady heartbeat traffic: over one HeartbeatStream, unary when the stream is unavailable."""
        return Heartbeats(self)

    async def get_task_spec(self, task_id: int) -> TaskView:
        resp = await self._unary("GetTaskSpec", worker_pb2.GetTaskSpecRequest(task_id=task_id),
                                 worker_pb2.GetTaskSpecResponse)
        return serde.task_from_proto(resp.task)

    async def relay_extrinsic(self, task_id: int, extrinsic: bytes) -> str:
        """Returns the extrinsic hash as 0x-hex."""
        resp = await self._unary("RelayExtrinsic", worker_pb2.RelayExtrinsicRequest(task_id=task_id, extrinsic=extrinsic),
                                 worker_pb2.RelayExtrinsicResponse)
        return serde.hash_to_hex(resp.extrinsic_hash)

    async def report_result(self, task_id: int, extrinsic_hash: str | bytes) -> None:
        raw = extrinsic_hash if isinstance(extrinsic_hash, (bytes, bytearray)) else serde.hash_from_hex(extrinsic_hash)
        await self._unary("ReportResult", worker_pb2.ReportResultRequest(task_id=task_id, extrinsic_hash=bytes(raw)),
                          worker_pb2.ReportResultResponse)


class HeartbeatStream:
    """Heartbeats as messages on one HeartbeatStream call, each signed on its own.

    `send` waits for the server's answer to that message and returns whether its extrinsic was
    accepted for relay. A refused message ends the stream on the server with the status a unary
    Heartbeat would have got: `send` raises the same typed error (orchestrator.errors), and the
    next `send` opens a new stream. Sends are serialized (one message in flight per stream)."""

    METHOD = _WORKER + "HeartbeatStream"

    def __init__(self, client: WorkerClient, *, timeout: float | None = None) -> None:
        self.client, self.timeout = client, timeout
        self._call: Any = None
        self._stream_nonce = b""
        self._sequence = 0
        self._lock = asyncio.Lock()
        self.opened = 0  # streams opened so far

    def _open(self) -> None:
        metadata = sign_request(self.client.keypair, self.METHOD, b"", clock=self.client.clock)
        self._stream_nonce = bytes.fromhex(dict(metadata)[HEADER_NONCE])
        self._sequence = 0
        method = self.client.channel.stream_stream(
            self.METHOD, request_serializer=worker_pb2.HeartbeatStreamRequest.SerializeToString,
            response_deserializer=worker_pb2.HeartbeatStreamResponse.FromString)
        self._call = method(metadata=metadata, timeout=self.timeout)
        self.opened += 1

    async def send(self, update: ProgressUpdate, heartbeat_extrinsic: bytes | None = None) -> bool:
        body = serde.heartbeat_request(update, heartbeat_extrinsic).SerializeToString(deterministic=True)
        async with self._lock:
            if self._call is None:
                self._open()
            call = self._call
            self._sequence += 1
            signed = sign_message(self.client.keypair, self.METHOD, self._stream_nonce, self._sequence, body,
                                  clock=self.client.clock)
            request = worker_pb2.HeartbeatStreamRequest(heartbeat=body, sequence=signed.sequence,
                                                        timestamp_ms=signed.timestamp_ms, nonce=signed.nonce,
                                                        signature=signed.signature)
            try:
                await call.write(request)
                response = await call.read()
                if response is grpc.aio.EOF:  # the server ended the stream: its status says why
                    code = await call.code()
                    if code != grpc.StatusCode.OK:
                        raise status_error(code, await call.details() or "")
                    raise errors.Unavailable("the server closed the heartbeat stream")
            except grpc.aio.AioRpcError as exc:
                self._reset()
                raise api_error(exc) from exc
            except asyncio.InvalidStateError:  # the call had already ended with OK (e.g. server shutdown)
                self._reset()
                raise errors.Unavailable("the heartbeat stream has ended") from None
            except BaseException:
                self._reset()
                raise
            if response.sequence != signed.sequence:
                self._reset()
                raise errors.Unavailable(f"heartbeat stream answered message {response.sequence}, "
                                         f"not {signed.sequence}")
            return bool(response.heartbeat_relayed)

    def _reset(self) -> None:
        call, self._call = self._call, None
        if call is not None:
            call.cancel()

    async def close(self) -> None:
        """End the stream (done writing; the server's OK ends the call)."""
        async with self._lock:
            call, self._call = self._call, None
            if call is None:
                return
            try:
                await call.done_writing()
                await call.code()
            except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
                pass

    async def __aenter__(self) -> "HeartbeatStream":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class Heartbeats:
    """Heartbeats over one HeartbeatStream, with unary Heartbeat calls as the fallback.

    A message on the open stream costs both sides less than a unary call (docs/benchmarks.md), so
    a worker's steady traffic goes there. The stream is a transport choice, not a different contract:
    the server checks each message as it checks a unary call and refuses it with the same status, so
    a refusal (UNAUTHENTICATED, PERMISSION_DENIED, ...) is raised as it is, and the next send opens a
    new stream. Only when the stream itself is unavailable does the heartbeat go as a unary call:
    an orchestrator without HeartbeatStream (UNIMPLEMENTED: every later heartbeat goes unary), or a
    stream that broke (UNAVAILABLE and the like: this heartbeat goes unary, the next tries a new stream).
    """

    def __init__(self, client: WorkerClient) -> None:
        self.client = client
        self.stream = client.heartbeat_stream()
        self.streamed = True  # False once the server has answered UNIMPLEMENTED to the stream

    async def send(self, update: ProgressUpdate, heartbeat_extrinsic: bytes | None = None) -> bool:
        """Returns whether the extrinsic was accepted for relay (as `WorkerClient.heartbeat`)."""
        if self.streamed:
            try:
                return await self.stream.send(update, heartbeat_extrinsic)
            except (errors.Unavailable, RpcError) as exc:
                if getattr(exc, "code", None) == grpc.StatusCode.UNIMPLEMENTED:
                    self.streamed = False
        return await self.client.heartbeat(update, heartbeat_extrinsic)

    async def close(self) -> None:
        await self.stream.close()


class TaskClient:
    """The public TaskService (no signing)."""

    def __init__(self, target: str, *, tls: ClientTls | None = None,
                 options: Sequence[tuple[str, Any]] | None = None, timeout_s: float = 30.0) -> None:
        self.timeout_s = timeout_s
        self.channel = _channel(target, tls, options)
        self.stub = task_pb2_grpc.TaskServiceStub(self.channel)  # type: ignore[no-untyped-call]  # generated

    async def close(self) -> None:
        await self.channel.close()

    async def __aenter__(self) -> "TaskClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def list_tasks(self, status: TaskStatus | None = None, page_size: int = 0,
                         page_token: str = "") -> tuple[list[TaskView], str]:
        req = task_pb2.ListTasksRequest(status=serde.status_to_proto(status), page_size=page_size, page_token=page_token)
        try:
            resp = await self.stub.ListTasks(req, timeout=self.timeout_s)
        except grpc.aio.AioRpcError as exc:
            raise api_error(exc) from exc
        return [serde.task_from_proto(t) for t in resp.tasks], resp.next_page_token

    async def get_task(self, task_id: int) -> TaskView:
        try:
            resp = await self.stub.GetTask(task_pb2.GetTaskRequest(task_id=task_id), timeout=self.timeout_s)
        except grpc.aio.AioRpcError as exc:
            raise api_error(exc) from exc
        return serde.task_from_proto(resp.task)

    async def watch_task(self, task_id: int, *, timeout: float | None = None) -> AsyncIterator[TaskEvent]:
        call = self.stub.WatchTask(task_pb2.WatchTaskRequest(task_id=task_id), timeout=timeout)
        try:
            async for resp in call:
                yield serde.task_event_from_proto(resp.event)
        except grpc.aio.AioRpcError as exc:
            raise api_error(exc) from exc
        finally:
            call.cancel()


class SyncWorkerClient:
    """Blocking facade over WorkerClient: a private event loop in a daemon thread."""

    def __init__(self, target: str, keypair: SigningKey, **kwargs: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="paratrain-grpc-client", daemon=True)
        self._thread.start()

        async def make() -> WorkerClient:
            return WorkerClient(target, keypair, **kwargs)
        self._client = self._run(make())

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if not callable(attr) or name.startswith("_"):
            return attr
        return lambda *a, **kw: self._run(attr(*a, **kw))

    def heartbeat_stream(self, **kwargs: Any) -> "SyncHeartbeatStream":
        """A blocking facade over WorkerClient.heartbeat_stream (same loop thread)."""
        return SyncHeartbeatStream(self, self._client.heartbeat_stream(**kwargs))

    def heartbeats(self) -> "SyncHeartbeatStream":
        """A blocking facade over WorkerClient.heartbeats (stream, unary fallback; same loop thread)."""
        return SyncHeartbeatStream(self, self._client.heartbeats())

    def close(self) -> None:
        if self._loop.is_running():
            self._run(self._client.close())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
        self._loop.close()

    def __enter__(self) -> "SyncWorkerClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SyncHeartbeatStream:
    """Blocking `send`/`close` of a HeartbeatStream (or Heartbeats), run on its SyncWorkerClient's loop."""

    def __init__(self, owner: SyncWorkerClient, stream: HeartbeatStream | Heartbeats) -> None:
        self._owner, self._stream = owner, stream

    def send(self, update: ProgressUpdate, heartbeat_extrinsic: bytes | None = None) -> bool:
        return self._owner._run(self._stream.send(update, heartbeat_extrinsic))

    def close(self) -> None:
        self._owner._run(self._stream.close())

    def __enter__(self) -> "SyncHeartbeatStream":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
