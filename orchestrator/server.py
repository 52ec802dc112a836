"""The grpc.aio server of the worker API: translation only, plus auth, limits, health, reflection, TLS.

    server, port = build_server(worker_api, task_api, listen="127.0.0.1:0", tls=None,
                                limits=ServerLimits(), registered=None)
    await server.start(); ...; await server.stop(grace)

Call it from inside the running event loop. The servicers only translate: request
messages -> `orchestrator.serde` -> the `WorkerApi`/`TaskApi` call -> response messages;
an `ApiError` becomes its status code with its message; any other exception is
logged here and answered INTERNAL "internal error" (no traceback leaves the process).

Authentication (`AuthInterceptor`). gRPC interceptors do not see request bytes, so
the interceptor replaces each paratrain.v1 method handler with one whose request
deserializer is the identity: the wrapper receives the raw request bytes exactly as
they came off the wire, checks the signature over blake2_256(those bytes) (see
orchestrator/auth.py), and only then parses them with the method's own message type
(a parse failure is INVALID_ARGUMENT). No re-serialization, so no canonical-form
ambiguity (unknown fields, field order, map order): the client signs the bytes it
sends. For the client-streaming StreamProgress the signed body is b"". TaskService
is public and read-only: its calls skip authentication but get the same parsing.

Signed streams (HeartbeatStream): the stream opens like StreamProgress (signed empty
body, same checks), and then the interceptor checks every message on its own before
the servicer sees it (`AuthInterceptor.authenticate_message`: sequence, timestamp,
signature by the opening key over the message's own bytes, registration, rate limit,
replay cache for its nonce). A refused message ends the stream with its status.

Sessions (orchestrator/auth.py, "Sessions"): a unary call may carry a session token
(x-paratrain-session-bin) in place of the signature headers; it is checked by the
`SessionTable` (session live, timestamp, MAC over the raw bytes, counter), then
registration and the rate limit as for a signed call. OpenAuthSession itself and
stream openings must be signed. WorkerServicer.OpenAuthSession opens the session for
the signed caller.

Per WorkerService call, in order: signature metadata or session token
(UNAUTHENTICATED) -> `registered(account)` if given (PERMISSION_DENIED) -> per-account
token bucket (RESOURCE_EXHAUSTED) -> replay cache for a signed call (UNAUTHENTICATED;
a session call's counter was checked with its MAC). Nothing reaches the api before
all pass.
"""
from __future__ import annotations

import asyncio
import logging
import time
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable, NoReturn

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from grpc_reflection.v1alpha import reflection

from orchestrator import serde
from orchestrator.api import TaskApi, WorkerApi
from orchestrator.auth import (
    HEADER_SESSION,
    SESSION_TTL_S,
    SKEW_S,
    Caller,
    Metadata,
    RateLimiter,
    ReplayCache,
    SessionTable,
    Verifier,
    headers_of,
)
from orchestrator.errors import ApiError, InvalidArgument, PermissionDenied, Unauthenticated
from paratrain_api.v1 import task_pb2, task_pb2_grpc, worker_pb2, worker_pb2_grpc

log = logging.getLogger(__name__)

WORKER_SERVICE = worker_pb2.DESCRIPTOR.services_by_name["WorkerService"].full_name
TASK_SERVICE = task_pb2.DESCRIPTOR.services_by_name["TaskService"].full_name
_WORKER_PREFIX = f"/{WORKER_SERVICE}/"
_TASK_PREFIX = f"/{TASK_SERVICE}/"
_MAX_DETAILS = 512
HEARTBEAT_STREAM = _WORKER_PREFIX + "HeartbeatStream"
OPEN_AUTH_SESSION = _WORKER_PREFIX + "OpenAuthSession"
# signed-stream methods -> the envelope field that holds the signed body
SIGNED_STREAMS: dict[str, str] = {HEARTBEAT_STREAM: "heartbeat"}

STATUS_CODES: dict[str, grpc.StatusCode] = {code.name: code for code in grpc.StatusCode}

_caller: ContextVar[Caller | None] = ContextVar("paratrain_caller", default=None)


def current_caller() -> Caller:
    """The authenticated caller of the current WorkerService call (set by AuthInterceptor)."""
    caller = _caller.get()
    if caller is None:  # the interceptor is missing: fail closed
        raise Unauthenticated("call not authenticated")
    return caller


def caller_account() -> str:
    """The authenticated account of the current WorkerService call."""
    return current_caller().account


@dataclass(frozen=True)
class TlsConfig:
    """Server TLS; with `client_ca` and `require_client_auth` it is mTLS."""

    cert_chain: bytes
    private_key: bytes
    client_ca: bytes | None = None
    require_client_auth: bool = False

    @classmethod
    def from_files(cls, cert: str | Path, key: str | Path, client_ca: str | Path | None = None,
                   require_client_auth: bool | None = None) -> "TlsConfig":
        ca = Path(client_ca).read_bytes() if client_ca else None
        return cls(Path(cert).read_bytes(), Path(key).read_bytes(), ca,
                   bool(ca) if require_client_auth is None else require_client_auth)

    def credentials(self) -> grpc.ServerCredentials:
        if self.require_client_auth and not self.client_ca:
            raise ValueError("mTLS (require_client_auth) needs client_ca")
        return grpc.ssl_server_credentials([(self.private_key, self.cert_chain)],
                                           root_certificates=self.client_ca,
                                           require_client_auth=self.require_client_auth)


@dataclass(frozen=True)
class ServerLimits:
    max_receive_message_bytes: int = 4 * 1024 * 1024  # larger requests: RESOURCE_EXHAUSTED
    max_send_message_bytes: int = 16 * 1024 * 1024
    max_wait_s: float = 30.0  # server cap on RequestAssignment long polls
    long_poll_grace_s: float = 1.0  # an api overrunning wait + grace is answered "no assignment"
    deadline_margin_s: float = 0.05  # answer a long poll this long before the caller's deadline
    max_watch_s: float | None = None  # end WatchTask streams (OK) after this long; None: never
    keepalive_time_ms: int = 30_000
    keepalive_timeout_ms: int = 10_000
    min_client_ping_interval_ms: int = 10_000
    max_connection_idle_ms: int | None = None
    max_connection_age_ms: int | None = None
    max_concurrent_streams: int = 1_000  # per connection
    max_concurrent_rpcs: int | None = None  # per server; beyond it RESOURCE_EXHAUSTED
    rate_per_s: float = 100.0  # per account: calls (and StreamProgress / HeartbeatStream messages) a second
    rate_burst: float = 200.0
    rate_max_accounts: int = 100_000
    skew_s: float = SKEW_S
    replay_max_entries: int = 1_000_000
    session_ttl_s: float = SESSION_TTL_S  # an OpenAuthSession session is accepted this long
    max_sessions: int = 100_000  # open sessions in all; beyond it OpenAuthSession is RESOURCE_EXHAUSTED; 0: none
    sessions_per_account: int = 4  # an account's oldest session closes when it opens one more
    ss58_format: int = 42

    def channel_options(self) -> list[tuple[str, int]]:
        opts = [
            ("grpc.max_receive_message_length", self.max_receive_message_bytes),
            ("grpc.max_send_message_length", self.max_send_message_bytes),
            ("grpc.keepalive_time_ms", self.keepalive_time_ms),
            ("grpc.keepalive_timeout_ms", self.keepalive_timeout_ms),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.min_recv_ping_interval_without_data_ms", self.min_client_ping_interval_ms),
            ("grpc.http2.max_ping_strikes", 2),
            ("grpc.max_concurrent_streams", self.max_concurrent_streams),
            ("grpc.so_reuseport", 0),
        ]
        if self.max_connection_idle_ms is not None:
            opts.append(("grpc.max_connection_idle_ms", self.max_connection_idle_ms))
        if self.max_connection_age_ms is not None:
            opts.append(("grpc.max_connection_age_ms", self.max_connection_age_ms))
        return opts


async def _abort(context: Any, exc: BaseException) -> NoReturn:
    """Answer the call with the status of `exc` (raises grpc.aio.AbortError)."""
    if isinstance(exc, grpc.aio.AbortError):  # already answered (e.g. by the interceptor, inside a stream)
        raise exc
    if isinstance(exc, ApiError):
        code = STATUS_CODES.get(exc.status, grpc.StatusCode.UNKNOWN)
        details = (str(exc) or exc.status)[:_MAX_DETAILS]
    else:
        log.error("internal error in RPC", exc_info=exc)
        code, details = grpc.StatusCode.INTERNAL, "internal error"
    await context.abort(code, details)
    raise AssertionError("unreachable: ServicerContext.abort raises")


def _parser(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any]:
    def parse(raw: bytes) -> Any:
        if deserializer is None:
            return raw
        try:
            return deserializer(raw)
        except Exception:  # DecodeError, RuntimeError on bad UTF-8, recursion limits...
            raise InvalidArgument("malformed request message") from None
    return parse


RpcObserver = Callable[[str, str, float], None]  # (method path, status code name, seconds)


def _observe(on_rpc: RpcObserver, method: str, start: float, context: Any) -> None:
    try:
        code = context.code()
        name = "OK" if code is None else (code.name if isinstance(code, grpc.StatusCode) else str(code))
        on_rpc(method, name, time.perf_counter() - start)
    except Exception:  # an observer must never break a call
        log.debug("rpc observer failed", exc_info=True)


class AuthInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]  # grpc ships no types
    """Authenticates WorkerService calls over the raw request bytes; parses all paratrain.v1 requests."""

    def __init__(self, verifier: Verifier, limiter: RateLimiter | None,
                 registered: Callable[[str], bool] | None = None, on_rpc: RpcObserver | None = None,
                 sessions: SessionTable | None = None) -> None:
        self.verifier, self.limiter, self.registered, self.on_rpc = verifier, limiter, registered, on_rpc
        self.sessions = sessions
        self._wrapped: dict[str, tuple[Any, Any]] = {}

    def authenticate(self, metadata: Metadata, method: str, body: bytes) -> str:
        """Raises ApiError; returns the caller's account. Pure: usable without a server."""
        return self.authenticate_caller(metadata, method, body).account

    def authenticate_caller(self, metadata: Metadata, method: str, body: bytes, *, session_ok: bool = True) -> Caller:
        """A signed call, or (`session_ok`: a unary call other than OpenAuthSession) a session call."""
        headers = headers_of(metadata)
        token = headers.get(HEADER_SESSION)
        if token is None or self.sessions is None:
            return self._admit(self.verifier.check_signature(headers, method, body))
        if not session_ok or method == OPEN_AUTH_SESSION:
            raise Unauthenticated("OpenAuthSession and streams must be signed, not session calls")
        caller = self.sessions.check(token, method, body)
        if self.registered is not None and not self.registered(caller.account):
            raise PermissionDenied("account is not registered on chain as an active worker")
        if self.limiter is not None:
            self.limiter.check(caller.account)
        return caller

    def authenticate_message(self, opener: Caller, method: str, expected_sequence: int, envelope: Any,
                             body_field: str = "heartbeat") -> Caller:
        """One message of a signed stream opened by `opener`: raises ApiError. Pure: usable without a server."""
        caller = self.verifier.check_message(opener, method, expected_sequence, getattr(envelope, body_field),
                                             envelope.sequence, envelope.timestamp_ms, envelope.nonce,
                                             envelope.signature)
        return self._admit(caller)

    def _admit(self, caller: Caller) -> Caller:
        """After the signature: registration -> rate limit -> replay (only verified calls reach the cache)."""
        if self.registered is not None and not self.registered(caller.account):
            raise PermissionDenied("account is not registered on chain as an active worker")
        if self.limiter is not None:
            self.limiter.check(caller.account)
        self.verifier.check_replay(caller)
        return caller

    async def intercept_service(self, continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
                                details: grpc.HandlerCallDetails) -> Any:
        handler = await continuation(details)
        method: str = details.method
        if handler is None or not (method.startswith(_WORKER_PREFIX) or method.startswith(_TASK_PREFIX)):
            return handler
        # The wrapper of a method is built once and reused: it reads the call's metadata from its context.
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = self._wrap(method, handler)
        self._wrapped[method] = (handler, wrapped)  # bounded: only the paratrain.v1 methods get here
        return wrapped

    def _unary(self, method: str, inner: Callable[[Any, Any], Awaitable[Any]], parse: Callable[[bytes], Any],
               secured: bool) -> Callable[[bytes, Any], Awaitable[Any]]:
        """The unary wrapper, the path of most worker calls. Flat on purpose: every Python frame and check
        here runs on every call, and the server's CPU per call is what bounds its rate."""
        authenticate = self.authenticate_caller

        async def unary_unary(raw: bytes, context: Any) -> Any:
            try:
                if secured:
                    _caller.set(authenticate(context.invocation_metadata() or (), method, raw))
                request = parse(raw)
            except ApiError as exc:
                await _abort(context, exc)
            return await inner(request, context)

        on_rpc = self.on_rpc
        if on_rpc is None:
            return unary_unary

        async def observed(raw: bytes, context: Any) -> Any:
            start = time.perf_counter()
            try:
                return await unary_unary(raw, context)
            finally:
                _observe(on_rpc, method, start, context)
        return observed

    def _wrap(self, method: str, handler: Any) -> Any:
        secured = method.startswith(_WORKER_PREFIX)
        parse = _parser(handler.request_deserializer)
        this = self

        async def admit(context: Any, body: bytes) -> Caller | None:
            if not secured:
                return None
            try:
                caller = this.authenticate_caller(context.invocation_metadata() or (), method, body,
                                                  session_ok=False)
            except ApiError as exc:
                await _abort(context, exc)
            _caller.set(caller)
            return caller

        def observe(start: float, context: Any) -> None:
            if this.on_rpc is not None:
                _observe(this.on_rpc, method, start, context)

        def requests(raw_iterator: AsyncIterator[bytes], context: Any) -> AsyncIterator[Any]:
            limiter = this.limiter if secured else None

            async def gen() -> AsyncIterator[Any]:
                async for raw in raw_iterator:
                    try:
                        message = parse(raw)
                        if limiter is not None:
                            limiter.check(caller_account())
                    except ApiError as exc:
                        await _abort(context, exc)
                    yield message
            return gen()

        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(self._unary(method, handler.unary_unary, parse, secured),
                                                       None, handler.response_serializer)

        if handler.unary_stream is not None:
            inner_us = handler.unary_stream

            async def unary_stream(raw: bytes, context: Any) -> AsyncIterator[Any]:
                start = time.perf_counter()
                try:
                    await admit(context, raw)
                    try:
                        request = parse(raw)
                    except ApiError as exc:
                        await _abort(context, exc)
                    async for response in inner_us(request, context):
                        yield response
                finally:
                    observe(start, context)
            return grpc.unary_stream_rpc_method_handler(unary_stream, None, handler.response_serializer)

        if handler.stream_unary is not None:
            inner_su = handler.stream_unary

            async def stream_unary(raw_iterator: AsyncIterator[bytes], context: Any) -> Any:
                start = time.perf_counter()
                try:
                    await admit(context, b"")
                    return await inner_su(requests(raw_iterator, context), context)
                finally:
                    observe(start, context)
            return grpc.stream_unary_rpc_method_handler(stream_unary, None, handler.response_serializer)

        inner_ss = handler.stream_stream
        body_field = SIGNED_STREAMS.get(method) if secured else None

        def signed_requests(raw_iterator: AsyncIterator[bytes], context: Any, opener: Caller,
                            field: str) -> AsyncIterator[Any]:
            async def gen() -> AsyncIterator[Any]:
                expected = 1
                async for raw in raw_iterator:
                    try:
                        envelope = parse(raw)
                        this.authenticate_message(opener, method, expected, envelope, field)
                    except ApiError as exc:
                        await _abort(context, exc)
                    expected += 1
                    yield envelope
            return gen()

        async def stream_stream(raw_iterator: AsyncIterator[bytes], context: Any) -> AsyncIterator[Any]:
            start = time.perf_counter()
            try:
                opener = await admit(context, b"")
                if body_field is not None and opener is not None:
                    messages = signed_requests(raw_iterator, context, opener, body_field)
                else:
                    messages = requests(raw_iterator, context)
                async for response in inner_ss(messages, context):
                    yield response
            finally:
                observe(start, context)
        return grpc.stream_stream_rpc_method_handler(stream_stream, None, handler.response_serializer)


class _Unimplemented(ApiError):
    status = "UNIMPLEMENTED"


def _heartbeat_of(signed: worker_pb2.HeartbeatStreamRequest) -> worker_pb2.HeartbeatRequest:
    """The HeartbeatRequest inside a signed stream message (its bytes were verified, now parsed)."""
    try:
        request: worker_pb2.HeartbeatRequest = worker_pb2.HeartbeatRequest.FromString(signed.heartbeat)
        return request
    except Exception:  # DecodeError, bad UTF-8, recursion limits...
        raise InvalidArgument("malformed heartbeat message") from None


class WorkerServicer(worker_pb2_grpc.WorkerServiceServicer):
    """paratrain.v1.WorkerService over a WorkerApi. Translation only."""

    def __init__(self, api: WorkerApi, limits: ServerLimits, sessions: SessionTable | None = None) -> None:
        self.api, self.limits, self.sessions = api, limits, sessions

    async def OpenAuthSession(self, request: worker_pb2.OpenAuthSessionRequest,
                              context: Any) -> worker_pb2.OpenAuthSessionResponse:
        """A session for the signed caller (auth.SessionTable.open); UNIMPLEMENTED on a server without them."""
        try:
            if self.sessions is None:
                raise _Unimplemented("sessions are not enabled on this server")
            session_id, server_key, expires_in_ms = self.sessions.open(current_caller(), request.worker_key)
            return worker_pb2.OpenAuthSessionResponse(session_id=session_id, server_key=server_key,
                                                      expires_in_ms=expires_in_ms)
        except Exception as exc:
            await _abort(context, exc)

    async def RegisterWorker(self, request: worker_pb2.RegisterWorkerRequest,
                             context: Any) -> worker_pb2.RegisterWorkerResponse:
        try:
            caps = serde.capabilities_from_proto(request.capabilities)
            view = self.api.register_worker(caller_account(), caps)
            return worker_pb2.RegisterWorkerResponse(worker=serde.worker_to_proto(view))
        except Exception as exc:
            await _abort(context, exc)

    async def RequestAssignment(self, request: worker_pb2.RequestAssignmentRequest,
                                context: Any) -> worker_pb2.RequestAssignmentResponse:
        try:
            wait_s = min(serde.wait_s_from_request(request), self.limits.max_wait_s)
            declined = serde.declined_from_request(request)
            remaining = context.time_remaining()
            if remaining is not None:
                wait_s = max(0.0, min(wait_s, remaining - self.limits.deadline_margin_s))
            try:
                async with asyncio.timeout(wait_s + self.limits.long_poll_grace_s):
                    assignment = await self.api.request_assignment(caller_account(), wait_s, declined)
            except TimeoutError:
                assignment = None
            if assignment is None:
                return worker_pb2.RequestAssignmentResponse()
            return worker_pb2.RequestAssignmentResponse(assignment=serde.assignment_to_proto(assignment))
        except Exception as exc:
            await _abort(context, exc)

    async def StreamProgress(self, request_iterator: AsyncIterator[worker_pb2.StreamProgressRequest],
                             context: Any) -> worker_pb2.StreamProgressResponse:
        try:
            account = caller_account()
            updates = heartbeats = 0
            async for request in request_iterator:
                update, extrinsic = serde.stream_progress_from_proto(request, account)
                await self.api.report_progress(account, update, extrinsic)
                updates += 1
                heartbeats += extrinsic is not None
            return worker_pb2.StreamProgressResponse(updates=updates, heartbeats=heartbeats)
        except Exception as exc:
            await _abort(context, exc)

    async def Heartbeat(self, request: worker_pb2.HeartbeatRequest, context: Any) -> worker_pb2.HeartbeatResponse:
        try:
            account = caller_account()
            update, extrinsic = serde.stream_progress_from_proto(request, account)
            await self.api.report_progress(account, update, extrinsic)
            return worker_pb2.HeartbeatResponse(heartbeat_relayed=extrinsic is not None)
        except Exception as exc:
            await _abort(context, exc)

    async def HeartbeatStream(self, request_iterator: AsyncIterator[worker_pb2.HeartbeatStreamRequest],
                              context: Any) -> AsyncIterator[worker_pb2.HeartbeatStreamResponse]:
        try:
            account = caller_account()
            async for signed in request_iterator:  # each one authenticated by the interceptor
                update, extrinsic = serde.stream_progress_from_proto(_heartbeat_of(signed), account)
                await self.api.report_progress(account, update, extrinsic)
                yield worker_pb2.HeartbeatStreamResponse(sequence=signed.sequence,
                                                         heartbeat_relayed=extrinsic is not None)
        except Exception as exc:
            await _abort(context, exc)

    async def GetTaskSpec(self, request: worker_pb2.GetTaskSpecRequest, context: Any) -> worker_pb2.GetTaskSpecResponse:
        try:
            view = self.api.task_spec(caller_account(), request.task_id)
            return worker_pb2.GetTaskSpecResponse(task=serde.task_to_proto(view))
        except Exception as exc:
            await _abort(context, exc)

    async def RelayExtrinsic(self, request: worker_pb2.RelayExtrinsicRequest,
                             context: Any) -> worker_pb2.RelayExtrinsicResponse:
        try:
            task_id, extrinsic = serde.relay_from_request(request)
            tx_hash = await self.api.relay_extrinsic(caller_account(), task_id, extrinsic)
            return worker_pb2.RelayExtrinsicResponse(extrinsic_hash=serde.hash_from_hex(tx_hash, "extrinsic hash"))
        except Exception as exc:
            await _abort(context, exc)

    async def ReportResult(self, request: worker_pb2.ReportResultRequest,
                           context: Any) -> worker_pb2.ReportResultResponse:
        try:
            task_id, tx_hash = serde.report_result_from_request(request)
            await self.api.report_result(caller_account(), task_id, tx_hash)
            return worker_pb2.ReportResultResponse()
        except Exception as exc:
            await _abort(context, exc)


class TaskServicer(task_pb2_grpc.TaskServiceServicer):
    """paratrain.v1.TaskService over a TaskApi (public, read-only). Translation only."""

    def __init__(self, api: TaskApi, limits: ServerLimits) -> None:
        self.api, self.limits = api, limits

    async def ListTasks(self, request: task_pb2.ListTasksRequest, context: Any) -> task_pb2.ListTasksResponse:
        try:
            status, limit, token = serde.list_tasks_from_request(request)
            tasks, next_token = self.api.list_tasks(status, limit, token)
            return task_pb2.ListTasksResponse(tasks=[serde.task_to_proto(t) for t in tasks],
                                              next_page_token=next_token)
        except Exception as exc:
            await _abort(context, exc)

    async def GetTask(self, request: task_pb2.GetTaskRequest, context: Any) -> task_pb2.GetTaskResponse:
        try:
            return task_pb2.GetTaskResponse(task=serde.task_to_proto(self.api.get_task(request.task_id)))
        except Exception as exc:
            await _abort(context, exc)

    async def WatchTask(self, request: task_pb2.WatchTaskRequest,
                        context: Any) -> AsyncIterator[task_pb2.WatchTaskResponse]:
        try:
            self.api.get_task(request.task_id)  # NOT_FOUND before the stream starts
            loop = asyncio.get_running_loop()
            end = None if self.limits.max_watch_s is None else loop.time() + self.limits.max_watch_s
            events = self.api.watch_task(request.task_id)
            try:
                while True:
                    if end is None:
                        event = await anext(events)
                    else:
                        async with asyncio.timeout_at(end):
                            event = await anext(events)
                    yield task_pb2.WatchTaskResponse(event=serde.task_event_to_proto(event))
            except (StopAsyncIteration, TimeoutError):
                return
            finally:
                aclose = getattr(events, "aclose", None)
                if aclose is not None:
                    await aclose()
        except Exception as exc:
            await _abort(context, exc)


def _service_names() -> list[str]:
    return [WORKER_SERVICE, TASK_SERVICE, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME]


def build_server(worker_api: WorkerApi, task_api: TaskApi, *, listen: str, tls: TlsConfig | None = None,
                 limits: ServerLimits | None = None, registered: Callable[[str], bool] | None = None,
                 health: health_aio.HealthServicer | None = None, on_rpc: RpcObserver | None = None,
                 clock: Callable[[], float] = time.time) -> tuple[grpc.aio.Server, int]:
    """A grpc.aio server (not started) with both services, health, reflection and the auth
    interceptor, bound to `listen` ("host:port", port 0 picks one). Returns (server, bound port).

    `registered(account) -> bool`, when given, admits only accounts it approves (others:
    PERMISSION_DENIED before the api is called). `health` lets the caller flip serving
    status later (all services start SERVING). `on_rpc(method, code_name, seconds)` observes
    every paratrain.v1 call (metrics)."""
    limits = limits or ServerLimits()
    verifier = Verifier(skew_s=limits.skew_s, clock=clock, ss58_format=limits.ss58_format,
                        replay=ReplayCache(window_s=limits.skew_s, max_entries=limits.replay_max_entries, clock=clock))
    limiter = RateLimiter(limits.rate_per_s, limits.rate_burst, max_accounts=limits.rate_max_accounts)
    sessions = SessionTable(ttl_s=limits.session_ttl_s, max_sessions=limits.max_sessions,
                            per_account=limits.sessions_per_account, skew_s=limits.skew_s,
                            wall_clock=clock) if limits.max_sessions else None
    server = grpc.aio.server(
        interceptors=[AuthInterceptor(verifier, limiter, registered, on_rpc, sessions)],
        options=limits.channel_options(),
        maximum_concurrent_rpcs=limits.max_concurrent_rpcs,
    )
    # the generated registration functions carry no annotations (paratrain_api.v1 is generated, not typed)
    worker_pb2_grpc.add_WorkerServiceServicer_to_server(  # type: ignore[no-untyped-call]
        WorkerServicer(worker_api, limits, sessions), server)
    task_pb2_grpc.add_TaskServiceServicer_to_server(TaskServicer(task_api, limits), server)  # type: ignore[no-untyped-call]
    health = health or health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    reflection.enable_server_reflection(_service_names(), server)
    port = server.add_secure_port(listen, tls.credentials()) if tls is not None else server.add_insecure_port(listen)
    if not port:
        raise OSError(f"cannot listen on {listen}")
    _set_serving(health)
    return server, port


_pending: set[asyncio.Task[None]] = set()


def _set_serving(health: health_aio.HealthServicer) -> None:
    """Mark every service SERVING (health.set is a coroutine; build_server runs inside the loop)."""
    serving = health_pb2.HealthCheckResponse.SERVING
    for name in ("", WORKER_SERVICE, TASK_SERVICE):
        task = asyncio.get_running_loop().create_task(health.set(name, serving))
        _pending.add(task)
        task.add_done_callback(_pending.discard)
