"""The wire under `Chain`: one JSON-RPC text frame out, one in, as httpx sits on a transport.

py-substrate-interface drives a WebSocket-like object (``send``, ``recv``, ``close``); a `Transport` is
that object plus ``connect`` and ``settimeout``, and it is the one place that opens the wire, opens it
again after a failure, and turns the wire's own failures into `ConnectionLost`. `Chain` retries and
reconnects on `ConnectionLost` alone, whatever the wire is.

* `WebSocketTransport` (the default, ``Chain(url)``): websocket-client to a node.
* `MemoryTransport` (``Chain(transport=MemoryTransport(app))``): no socket; each request is handed to
  ``app``, which answers it in-process. Unit tests drive the bindings, the orchestrator's indexer and its
  handlers this way, against devnet's method table (``devnet.rpc.inprocess``) or a hand-written app.
"""
from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Protocol, TypeAlias

import websocket

from runtime_bindings.errors import BindingsError, ConnectionLost

Json: TypeAlias = "bool | int | float | str | list[Json] | dict[str, Json] | None"
"""A JSON value as `json` parses it (a JSON-RPC result)."""

JsonObject = Mapping[str, object]
"""One JSON-RPC message (request, response or notification) as `json` parses it."""

App = Callable[[dict[str, object]], Iterable[JsonObject]]
"""An in-process node: given one JSON-RPC request, the messages that follow it on the wire (its
response, and any subscription notifications due by then, in order). Raising `OSError` (e.g.
`ConnectionError`) stands for a broken wire."""

WIRE_ERRORS: tuple[type[BaseException], ...] = (websocket.WebSocketException, OSError)
"""What websocket-client raises when the wire fails (OSError covers socket.timeout, ConnectionError and
BrokenPipeError)."""


def json_str(value: Json, what: str) -> str:
    """`value` if the node answered a string there (BindingsError otherwise; `what` names the place)."""
    if not isinstance(value, str):
        raise BindingsError(f"{what}: the node answered {value!r}, not a string")
    return value


def json_int(value: Json, what: str) -> int:
    """`value` if the node answered an integer there."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise BindingsError(f"{what}: the node answered {value!r}, not an integer")
    return value


def json_object(value: Json, what: str) -> dict[str, Json]:
    """`value` if the node answered an object there."""
    if not isinstance(value, dict):
        raise BindingsError(f"{what}: the node answered {value!r}, not an object")
    return value


def json_list(value: Json, what: str) -> list[Json]:
    """`value` if the node answered a list there."""
    if not isinstance(value, list):
        raise BindingsError(f"{what}: the node answered {value!r}, not a list")
    return value


class Transport(Protocol):
    """What `Chain` and py-substrate-interface need from the wire. Every method raises `ConnectionLost`
    when the wire fails (never the wire's own exceptions)."""

    @property
    def url(self) -> str:
        """Where the wire leads, for messages."""

    def connect(self) -> None:
        """Open the wire, or open it afresh (anything unread on the old one is dropped)."""

    def send(self, text: str) -> None:
        """Send one JSON-RPC frame."""

    def recv(self) -> str:
        """The next frame; waits at most the `settimeout` bound."""

    def settimeout(self, seconds: float) -> None:
        """Bound every later wait (`connect`, `send`, `recv`) to `seconds`."""

    def close(self) -> None:
        """Close the wire; idempotent, never raises."""

    def clone(self) -> Transport:
        """A new, unconnected transport to the same place (a second, independent connection)."""


class WebSocketTransport:
    """A WebSocket to a node (websocket-client): what ``Chain(url)`` opens."""

    def __init__(self, url: str, *, timeout: float = 30.0) -> None:
        self._url, self._timeout = url, timeout
        self._ws: websocket.WebSocket | None = None

    @property
    def url(self) -> str:
        return self._url

    def connect(self) -> None:
        self.close()
        try:
            self._ws = websocket.create_connection(self._url, timeout=self._timeout, skip_utf8_validation=True)
        except WIRE_ERRORS as exc:
            raise ConnectionLost(f"cannot connect to {self._url}: {exc}") from exc

    def send(self, text: str) -> None:
        try:
            self._open().send(text)
        except WIRE_ERRORS as exc:
            raise ConnectionLost(f"{self._url}: {type(exc).__name__}: {exc}") from exc

    def recv(self) -> str:
        try:
            frame = self._open().recv()
        except WIRE_ERRORS as exc:
            raise ConnectionLost(f"{self._url}: {type(exc).__name__}: {exc}") from exc
        return frame.decode() if isinstance(frame, bytes) else str(frame)

    def settimeout(self, seconds: float) -> None:
        self._timeout = seconds
        if self._ws is not None:
            self._ws.settimeout(seconds)

    def close(self) -> None:
        ws, self._ws = self._ws, None
        if ws is not None:
            try:
                ws.close()
            except WIRE_ERRORS:
                pass

    def clone(self) -> WebSocketTransport:
        return WebSocketTransport(self._url, timeout=self._timeout)

    def _open(self) -> websocket.WebSocket:
        if self._ws is None:
            raise ConnectionLost(f"{self._url}: not connected")
        return self._ws

    def __repr__(self) -> str:
        return f"<WebSocketTransport {self._url}>"


class MemoryTransport:
    """No socket: every frame sent is parsed and handed to `app`, whose answers are the frames received.

    Notifications a subscription produces come back with the answer of the request during which they
    were produced, so ``chain_subscribe*`` and ``author_submitAndWatchExtrinsic`` work as on a WebSocket;
    a `recv` with nothing left to read fails at once (`ConnectionLost`), as a socket's would once its
    timeout passed, since nothing else can ever arrive. Clones share `app`.
    """

    def __init__(self, app: App, *, url: str = "memory://") -> None:
        self._app, self._url = app, url
        self._inbox: deque[str] = deque()
        self._connected = False

    @property
    def url(self) -> str:
        return self._url

    def connect(self) -> None:
        self._inbox.clear()  # as a new socket would, the new connection starts with nothing unread
        self._connected = True

    def send(self, text: str) -> None:
        if not self._connected:
            raise ConnectionLost(f"{self._url}: not connected")
        request = json.loads(text)
        try:
            answers = [json.dumps(message) for message in self._app(request)]
        except OSError as exc:
            raise ConnectionLost(f"{self._url}: {type(exc).__name__}: {exc}") from exc
        self._inbox.extend(answers)

    def recv(self) -> str:
        if not self._connected:
            raise ConnectionLost(f"{self._url}: not connected")
        if not self._inbox:
            raise ConnectionLost(f"{self._url}: nothing to receive (every answer of the app was read)")
        return self._inbox.popleft()

    def settimeout(self, seconds: float) -> None:
        """Nothing to bound: `send` answers at once and `recv` never waits."""

    def close(self) -> None:
        self._connected = False
        self._inbox.clear()

    def clone(self) -> MemoryTransport:
        return MemoryTransport(self._app, url=self._url)

    def __repr__(self) -> str:
        return f"<MemoryTransport {self._url}>"


__all__ = ["App", "Json", "JsonObject", "MemoryTransport", "Transport", "WebSocketTransport", "json_int", "json_list",
           "json_object", "json_str"]
