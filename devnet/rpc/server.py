"""JSON-RPC 2.0 transport of the devnet node: WebSocket and HTTP POST on one port.

Like Substrate's jsonrpsee server, one port answers both transports, error codes
and limits follow jsonrpsee, and handlers are plain async functions: this module
only translates frames to calls and results to frames, so the runtime never sees
aiohttp.

Memory per connection is bounded: at most ``max_requests_in_flight`` requests
are handled or waiting to be written (beyond that the connection is not read,
so TCP pushes back on the client) and at most ``send_queue_len`` notifications
wait to be written (beyond that the client is too slow and is disconnected).
Subscriptions cost no task: a producer calls its ``Sink``, which queues a frame
for the connection's single writer task.

Sockets are bounded too (``devnet.rpc.admission``): a socket has
``handshake_timeout_s`` to send its request in full, and until then it is
pending, counted apart from the live connections; every socket counts against
its client address. A WebSocket that is idle (no subscription, no request in
flight, no frame received) for ``idle_timeout_s`` is closed, and when every
live slot is taken the connection idle longest makes way for a new one, as
nginx reuses idle keep-alive connections when it runs out: silent clients
cannot lock out those that talk.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import string
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from devnet.rpc.admission import Admission
from devnet.rpc.errors import (
    INTERNAL_ERROR,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    OVERSIZED_REQUEST,
    OVERSIZED_RESPONSE,
    PARSE_ERROR,
    TOO_BIG_BATCH_REQUEST,
    TOO_BIG_BATCH_RESPONSE,
    TOO_MANY_SUBSCRIPTIONS,
    RpcError,
    exceeded_limit,
)

log = logging.getLogger(__name__)

Handler = Callable[[Any], Awaitable[Any]]
"""A method: awaited with the request's params (a list or dict; ``[]`` when absent)."""

Cancel = Callable[[], None]

# A compact, reusable encoder: json.dumps with options builds a new encoder per call.
_dumps = json.JSONEncoder(separators=(",", ":")).encode
_SUB_ID_ALPHABET = string.ascii_letters + string.digits
_WS_CLOSED = frozenset({WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED})
_JSON_CONTENT_TYPES = frozenset({"application/json", "application/json-rpc"})
_SLOW_CLIENT_CLOSE_S = 1.0  # how long a closing client gets to take the close frame before the socket is aborted
EVICTABLE_AFTER_S = 1.0  # a full server closes only connections idle this long: a new one gets time to talk


@dataclass(frozen=True)
class RpcLimits:
    """Resource limits; the defaults are Substrate's CLI defaults where it has one."""

    max_request_bytes: int = 15 * 1024 * 1024
    max_response_bytes: int = 15 * 1024 * 1024
    max_connections: int = 100
    max_subscriptions_per_connection: int = 1024
    max_batch_len: int = 1000
    max_requests_in_flight: int = 1024  # per connection; reading pauses beyond it
    send_queue_len: int = 1024  # notifications waiting per connection before it is dropped
    # Sockets (docs/devnet.md says why these values): a request's headers, and an HTTP body, within
    # handshake_timeout_s of the socket's accept (an HTTP body on a kept-alive socket: of its headers).
    handshake_timeout_s: float = 10.0
    idle_timeout_s: float = 300.0  # a WebSocket with nothing to do; also a kept-alive HTTP socket
    max_pending_handshakes: int = 256  # sockets that have not sent their request in full yet
    max_connections_per_address: int = 50  # sockets from one client address, pending or live


@dataclass(frozen=True)
class Subscription:
    """A pub-sub method triple, e.g. chain_subscribeNewHeads / chain_newHead / chain_unsubscribeNewHeads.

    ``start(params, sink)`` validates params (raising RpcError refuses the
    subscription), arranges for ``sink(result)`` to be called for every
    notification (it may call it before returning, e.g. with the current value)
    and returns a ``cancel()`` callback, called exactly once when the
    subscription ends for any reason.
    """

    subscribe: str
    notification: str
    unsubscribe: str
    start: Callable[[Any, Sink], Awaitable[Cancel]]


class Sink:
    """The sending end of one subscription on one connection.

    Calling it never blocks: the notification is serialized and queued. Only
    call it from the event loop's thread.
    """

    __slots__ = ("_conn", "_cancel", "_held", "closed", "sub_id", "subscription")

    def __init__(self, conn: _Connection, subscription: Subscription, sub_id: str) -> None:
        self._conn = conn
        self._cancel: Cancel | None = None
        # Notifications sent before the subscribe response is queued wait here, so
        # the client always learns the subscription id before its first notification.
        self._held: list[str] | None = []
        self.closed = False
        self.sub_id = sub_id
        self.subscription = subscription

    def __call__(self, result: Any) -> None:
        """Send one notification carrying ``result``; a no-op once the subscription ended."""
        if self.closed:
            return
        text = _dumps(
            {
                "jsonrpc": "2.0",
                "method": self.subscription.notification,
                "params": {"subscription": self.sub_id, "result": result},
            }
        )
        self._conn.notify(self, text)

    def close(self) -> None:
        """End the subscription server-side: no more notifications, cancel() is called."""
        if self.closed:
            return
        self.closed = True
        self._conn.forget(self)
        if self._cancel is not None:
            _call_cancel(self._cancel)

    def _bind(self, cancel: Cancel) -> None:
        self._cancel = cancel
        if self.closed:  # closed while start() ran: the producer must still be told
            _call_cancel(cancel)


def _call_cancel(cancel: Cancel) -> None:
    try:
        cancel()
    except Exception:
        log.exception("subscription cancel callback failed")


class _Connection:
    """One WebSocket: its subscriptions, its send queue and the writer draining it."""

    def __init__(self, ws: web.WebSocketResponse, request: web.Request, limits: RpcLimits) -> None:
        self.ws = ws
        self._transport = request.transport
        self._limits = limits
        self.subs: dict[str, Sink] = {}
        self.in_flight = asyncio.Semaphore(limits.max_requests_in_flight)
        self.tasks: set[asyncio.Task[None]] = set()
        self.closing = False
        # (frame, is_response): a written response frees an in-flight slot.
        self._queue: deque[tuple[str, bool]] = deque()
        self._notes = 0  # notifications held or queued
        self._wakeup = asyncio.Event()
        self._closer: asyncio.Task[None] | None = None
        self._last_activity = time.monotonic()

    @property
    def busy(self) -> bool:
        """A subscription, or a request not answered yet: the client is waiting, not idle."""
        return bool(self.subs or self.tasks or self._queue)

    def idle_for(self, now: float) -> float:
        """Seconds since the client last had something going on (0 while busy)."""
        return 0.0 if self.busy else now - self._last_activity

    def touch(self) -> None:
        """Something happened for the client (a frame, a reply, a subscription ended): idle from now."""
        self._last_activity = time.monotonic()

    def new_sink(self, subscription: Subscription) -> Sink:
        sub_id = "".join(secrets.choice(_SUB_ID_ALPHABET) for _ in range(16))
        while sub_id in self.subs:
            sub_id = "".join(secrets.choice(_SUB_ID_ALPHABET) for _ in range(16))
        sink = Sink(self, subscription, sub_id)
        self.subs[sub_id] = sink
        return sink

    def forget(self, sink: Sink) -> None:
        self.subs.pop(sink.sub_id, None)
        self.touch()
        if sink._held:
            self._notes -= len(sink._held)
            sink._held = None

    def notify(self, sink: Sink, text: str) -> None:
        if self.closing:
            return
        if self._notes >= self._limits.send_queue_len:
            log.warning("client too slow: %d notifications queued, closing", self._notes)
            self.close(WSCloseCode.POLICY_VIOLATION, b"send queue overflow")
            return
        self._notes += 1
        if sink._held is not None:
            sink._held.append(text)
        else:
            self._queue.append((text, False))
            self._wakeup.set()

    def activate(self, sink: Sink) -> None:
        """Release notifications held back until the subscribe response was queued."""
        held = sink._held
        if held is None or sink.closed:
            return
        sink._held = None
        self._queue.extend((text, False) for text in held)
        self._wakeup.set()

    def respond(self, text: str | None) -> None:
        """Queue a response (None for notifications); its in-flight slot frees once written."""
        if text is None or self.closing:
            self.in_flight.release()
            return
        self._queue.append((text, True))
        self._wakeup.set()

    async def write_loop(self) -> None:
        """The connection's only writer, so frames never interleave and order is kept."""
        queue = self._queue
        try:
            while True:
                while not queue:
                    self._wakeup.clear()
                    await self._wakeup.wait()
                text, is_response = queue.popleft()
                await self.ws.send_str(text)
                if is_response:
                    self.in_flight.release()
                    self.touch()
                else:
                    self._notes -= 1
        except ConnectionError:  # the peer went away; the read loop ends too
            self.shut_down()

    def shut_down(self) -> None:
        """End every subscription and drop queued frames; idempotent."""
        if self.closing:
            return
        self.closing = True
        for sink in list(self.subs.values()):
            sink.close()
        for _, is_response in self._queue:
            if is_response:
                self.in_flight.release()
        self._queue.clear()

    def close(self, code: int, message: bytes) -> None:
        """Close from the server's side; the read loop sees the close and ends (idempotent)."""
        if self._closer is not None:
            return
        self.shut_down()
        self._closer = asyncio.get_running_loop().create_task(self._close_or_abort(code, message))

    async def _close_or_abort(self, code: int, message: bytes) -> None:
        """Send a close frame, but a client that does not read may never take it: then abort."""
        try:
            await asyncio.wait_for(self.ws.close(code=code, message=message), _SLOW_CLIENT_CLOSE_S)
        except asyncio.TimeoutError:
            if self._transport is not None:
                self._transport.abort()


class RpcServer:
    """Serves ``methods`` and ``subscriptions`` over WebSocket and HTTP POST at "/"."""

    def __init__(
        self,
        methods: Mapping[str, Handler],
        subscriptions: Sequence[Subscription],
        *,
        limits: RpcLimits = RpcLimits(),
    ) -> None:
        self._methods = dict(methods)
        self._subscribe = {s.subscribe: s for s in subscriptions}
        self._unsubscribe = {s.unsubscribe: s for s in subscriptions}
        names = [*self._methods, *self._subscribe, *self._unsubscribe]
        if len(set(names)) != len(names):
            raise ValueError("method names must be unique")
        self._limits = limits
        self._connections: set[_Connection] = set()  # WebSockets holding a live slot
        self._http_active = 0  # HTTP requests being answered, each holding a live slot
        self._admission = Admission(handshake_timeout_s=limits.handshake_timeout_s,
                                    max_pending=limits.max_pending_handshakes,
                                    max_per_address=limits.max_connections_per_address)
        self._runner: web.AppRunner | None = None
        self._listener: asyncio.AbstractServer | None = None

    def method_names(self) -> list[str]:
        """Every callable name, sorted: what Substrate's rpc_methods lists."""
        return sorted([*self._methods, *self._subscribe, *self._unsubscribe])

    async def start(self, host: str, port: int) -> tuple[str, int]:
        """Listen on host:port (0 picks a free port) and return the bound address."""
        app = web.Application(client_max_size=self._limits.max_request_bytes)
        app.router.add_get("/", self._serve_websocket)
        app.router.add_post("/", self._serve_http)
        # aiohttp's keep-alive timeout closes an HTTP socket that waits for its next request.
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0,
                                     keepalive_timeout=self._limits.idle_timeout_s)
        await self._runner.setup()
        # Not a TCPSite: every socket must pass the admission layer before aiohttp sees it.
        factory = self._admission.protocol_factory(self._runner.server)
        self._listener = await asyncio.get_running_loop().create_server(factory, host, port, backlog=128)
        bound = self._listener.sockets[0].getsockname()
        return bound[0], bound[1]

    async def stop(self) -> None:
        """Cancel every subscription, close every connection and stop listening."""
        connections = list(self._connections)
        for conn in connections:
            conn.shut_down()
        await asyncio.gather(
            *(c.ws.close(code=WSCloseCode.GOING_AWAY) for c in connections), return_exceptions=True
        )
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _has_room(self) -> bool:
        """A live slot is free, or the connection idle longest gives its slot up (closed, going away)."""
        if len(self._connections) + self._http_active < self._limits.max_connections:
            return True
        now = time.monotonic()
        idle = [(c.idle_for(now), c) for c in self._connections]
        victim_idle, victim = max(idle, key=lambda pair: pair[0], default=(0.0, None))
        if victim is None or victim_idle < EVICTABLE_AFTER_S:
            return False
        log.info("all %d connections taken: closing one idle for %.0f s", len(self._connections), victim_idle)
        self._connections.discard(victim)
        victim.close(WSCloseCode.GOING_AWAY, b"server full: idle connection closed")
        return True

    async def _serve_websocket(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(max_msg_size=self._limits.max_request_bytes, compress=False)
        if not ws.can_prepare(request).ok:
            return web.Response(
                status=405, text="Used HTTP Method is not allowed. POST is required\n"
            )
        if not self._has_room():
            return _too_many_connections()
        self._admission.handshake_done(request.transport)  # the upgrade request is all a WebSocket sends
        conn = _Connection(ws, request, self._limits)
        self._connections.add(conn)
        try:
            await ws.prepare(request)
            writer = asyncio.create_task(conn.write_loop())
            try:
                await self._read_loop(conn)
            finally:
                conn.shut_down()
                writer.cancel()
                # Like jsonrpsee, let calls already started finish (their replies are dropped).
                if conn.tasks:
                    await asyncio.gather(*conn.tasks, return_exceptions=True)
            return ws
        finally:
            self._connections.discard(conn)

    async def _read_loop(self, conn: _Connection) -> None:
        # aiohttp closes the socket with 1009 on an over-limit frame, before its
        # payload is read: the frame cannot be answered, unlike over HTTP.
        while True:
            # None: the close is under way, the next message is its end
            timeout = None if conn.closing else self._limits.idle_timeout_s - conn.idle_for(time.monotonic())
            if timeout is not None and timeout <= 0:
                conn.close(WSCloseCode.GOING_AWAY, b"idle timeout")
                continue
            try:
                msg = await conn.ws.receive(timeout=timeout)
            except asyncio.TimeoutError:  # busy meanwhile, or idle long enough: the top of the loop decides
                continue
            if msg.type in _WS_CLOSED:
                return
            if msg.type is WSMsgType.TEXT or msg.type is WSMsgType.BINARY:
                conn.touch()
                await conn.in_flight.acquire()
                task = asyncio.create_task(self._handle_frame(conn, msg.data))
                conn.tasks.add(task)
                task.add_done_callback(conn.tasks.discard)

    async def _handle_frame(self, conn: _Connection, data: str | bytes) -> None:
        reply, sinks = await self._process(data, conn)
        conn.respond(reply)
        for sink in sinks:
            conn.activate(sink)

    async def _serve_http(self, request: web.Request) -> web.StreamResponse:
        if not self._has_room():
            return _too_many_connections()
        if request.content_type not in _JSON_CONTENT_TYPES:
            return web.Response(
                status=415,
                text="Supplied content type is not allowed. Content-Type: application/json is required\n",
            )
        try:
            body = await asyncio.wait_for(request.read(), self._limits.handshake_timeout_s)
        except web.HTTPRequestEntityTooLarge:
            error = exceeded_limit(OVERSIZED_REQUEST, self._limits.max_request_bytes)
            return _json_response(_error_reply(None, error), status=413)
        except asyncio.TimeoutError:  # a body that stalls is a handshake that never finished
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=408)
        self._admission.handshake_done(request.transport)
        self._http_active += 1
        try:
            reply, _ = await self._process(body, None)
            return _json_response(reply or "")
        finally:
            self._http_active -= 1

    async def _process(
        self, data: str | bytes, conn: _Connection | None
    ) -> tuple[str | None, list[Sink]]:
        """Answer one frame or HTTP body: the reply (None when none is due) and new subscriptions."""
        try:
            payload = json.loads(data.decode() if isinstance(data, bytes) else data)
        except (ValueError, RecursionError):  # also UnicodeDecodeError; RecursionError: nesting too deep
            return _error_reply(None, RpcError.standard(PARSE_ERROR)), []
        if not isinstance(payload, list):
            reply, sink = await self._call(payload, conn)
            return reply, [sink] if sink is not None else []
        if not payload:
            return _error_reply(None, RpcError.standard(INVALID_REQUEST)), []
        if len(payload) > self._limits.max_batch_len:
            error = exceeded_limit(TOO_BIG_BATCH_REQUEST, self._limits.max_batch_len)
            return _error_reply(None, error), []
        results = await asyncio.gather(*(self._call(item, conn) for item in payload))
        replies = [reply for reply, _ in results if reply is not None]
        sinks = [sink for _, sink in results if sink is not None]
        if not replies:
            return None, sinks
        text = "[" + ",".join(replies) + "]"
        if len(text) > self._limits.max_response_bytes:
            for sink in sinks:  # the client never learns their ids
                sink.close()
            error = exceeded_limit(TOO_BIG_BATCH_RESPONSE, self._limits.max_response_bytes)
            return _error_reply(None, error), []
        return text, sinks

    async def _call(
        self, request: Any, conn: _Connection | None
    ) -> tuple[str | None, Sink | None]:
        """Run one request object; the reply is None for a notification (no "id")."""
        if not isinstance(request, dict):
            return _error_reply(None, RpcError.standard(INVALID_REQUEST)), None
        request_id = request.get("id")
        id_ok = request_id is None or (
            isinstance(request_id, (str, int, float)) and not isinstance(request_id, bool)
        )
        method = request.get("method")
        params = request.get("params")
        if params is None:
            params = []
        if (
            not id_ok
            or request.get("jsonrpc") != "2.0"
            or not isinstance(method, str)
            or not isinstance(params, (list, dict))
        ):
            error = RpcError.standard(INVALID_REQUEST)
            return _error_reply(request_id if id_ok else None, error), None
        is_notification = "id" not in request
        sink: Sink | None = None
        try:
            handler = self._methods.get(method)
            if handler is not None:
                result = await handler(params)
            elif method in self._subscribe:
                if is_notification:  # nobody could ever learn the subscription id
                    return None, None
                sink = await self._start_subscription(self._subscribe[method], params, conn)
                result = sink.sub_id
            elif method in self._unsubscribe:
                result = self._end_subscription(self._unsubscribe[method], params, conn)
            else:
                raise RpcError.standard(METHOD_NOT_FOUND)
            if is_notification:
                return None, None
            reply = _dumps({"jsonrpc": "2.0", "result": result, "id": request_id})
        except RpcError as error:
            reply = _error_reply(request_id, error)
        except Exception:
            log.exception("RPC method %s failed", method)
            reply = _error_reply(request_id, RpcError.standard(INTERNAL_ERROR))
        if is_notification:
            return None, None
        if len(reply) > self._limits.max_response_bytes:
            if sink is not None:
                sink.close()
                sink = None
            error = exceeded_limit(OVERSIZED_RESPONSE, self._limits.max_response_bytes)
            reply = _error_reply(request_id, error)
        return reply, sink

    async def _start_subscription(
        self, subscription: Subscription, params: Any, conn: _Connection | None
    ) -> Sink:
        if conn is None:  # jsonrpsee answers subscriptions over HTTP with a bare internal error
            raise RpcError.standard(INTERNAL_ERROR, "subscriptions need a WebSocket connection")
        limit = self._limits.max_subscriptions_per_connection
        if len(conn.subs) >= limit:
            raise exceeded_limit(TOO_MANY_SUBSCRIPTIONS, limit)
        sink = conn.new_sink(subscription)  # registered now so concurrent subscribes count
        try:
            cancel = await subscription.start(params, sink)
        except BaseException:
            sink.close()
            raise
        sink._bind(cancel)
        return sink

    def _end_subscription(
        self, subscription: Subscription, params: Any, conn: _Connection | None
    ) -> bool:
        """True when it ended an active subscription of this kind, False otherwise (as jsonrpsee)."""
        if conn is None:
            raise RpcError.standard(INTERNAL_ERROR, "subscriptions need a WebSocket connection")
        sub_id = params[0] if isinstance(params, list) and params else None
        sink = conn.subs.get(sub_id) if isinstance(sub_id, str) else None
        if sink is None or sink.subscription is not subscription:
            return False
        sink.close()
        return True


def _error_reply(request_id: Any, error: RpcError) -> str:
    return _dumps({"jsonrpc": "2.0", "error": error.to_json(), "id": request_id})


def _json_response(text: str, status: int = 200) -> web.Response:
    return web.Response(status=status, text=text, content_type="application/json")


def _too_many_connections() -> web.Response:
    response = web.Response(status=429, text="Too many connections. Please try again later.")
    response.force_close()  # a refused client keeps no socket (and no slot of its address) open
    return response
