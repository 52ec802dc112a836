"""Admission of TCP connections below HTTP: per-address limits and the handshake deadline.

aiohttp sees a connection only once a request's headers are complete, so a socket that never sends
them costs a file descriptor forever and is counted nowhere. This layer wraps aiohttp's protocol:
every accepted socket is *pending* until the RPC server says its request arrived in full
(``handshake_done``). Pending sockets are counted apart from live connections (they never take a
live slot), bounded in number, and aborted at the handshake deadline; every socket, pending or not,
counts against its client address, so one address cannot hold every descriptor or every slot.
"""
from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable

log = logging.getLogger(__name__)


class Admission:
    """The bookkeeping of every open socket of one listening server."""

    def __init__(self, *, handshake_timeout_s: float, max_pending: int, max_per_address: int) -> None:
        self._handshake_timeout_s = handshake_timeout_s
        self._max_pending = max_pending
        self._max_per_address = max_per_address
        self._deadlines: dict[asyncio.BaseTransport, asyncio.TimerHandle] = {}  # the pending sockets
        self._per_address: Counter[str] = Counter()

    def protocol_factory(self, inner: Callable[[], asyncio.Protocol]) -> Callable[[], asyncio.Protocol]:
        """What ``loop.create_server`` takes: aiohttp's protocol behind the admission checks."""
        return lambda: _Guarded(self, inner)

    def handshake_done(self, transport: asyncio.BaseTransport | None) -> None:
        """The socket's request arrived in full: no deadline any more, no longer pending (idempotent)."""
        timer = self._deadlines.pop(transport, None) if transport is not None else None
        if timer is not None:
            timer.cancel()

    def admit(self, transport: asyncio.BaseTransport, address: str) -> bool:
        """Count a new socket in, with its deadline; False: over a limit, the caller aborts it."""
        if self._per_address[address] >= self._max_per_address:
            log.info("%s has %d connections open: refused", address, self._per_address[address])
            return False
        if len(self._deadlines) >= self._max_pending:
            log.info("%d connections have not sent their request yet: refused %s", len(self._deadlines), address)
            return False
        self._per_address[address] += 1
        self._deadlines[transport] = asyncio.get_running_loop().call_later(
            self._handshake_timeout_s, _expire, transport)
        return True

    def release(self, transport: asyncio.BaseTransport, address: str) -> None:
        """The socket closed, whichever way: count it out."""
        self.handshake_done(transport)
        self._per_address[address] -= 1
        if not self._per_address[address]:
            del self._per_address[address]


def _expire(transport: asyncio.BaseTransport) -> None:
    """The handshake deadline passed: nothing more is owed to the client, not even a response."""
    log.debug("no complete request from %s in time: closed", transport.get_extra_info("peername"))
    transport.abort()  # type: ignore[attr-defined]


class _Guarded(asyncio.Protocol):
    """One socket: admitted (then every event goes to aiohttp's protocol) or aborted at once."""

    __slots__ = ("_admission", "_address", "_inner_factory", "_inner", "_transport")

    def __init__(self, admission: Admission, inner_factory: Callable[[], asyncio.Protocol]) -> None:
        self._admission = admission
        self._inner_factory = inner_factory
        self._inner: asyncio.Protocol | None = None  # None: refused, or not connected yet
        self._transport: asyncio.BaseTransport | None = None
        self._address = ""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        self._address = str(peer[0]) if peer else ""
        if not self._admission.admit(transport, self._address):
            transport.abort()  # type: ignore[attr-defined]  # before aiohttp ever sees it: nothing to undo
            return
        self._transport = transport
        self._inner = self._inner_factory()
        self._inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._inner is None or self._transport is None:
            return
        self._admission.release(self._transport, self._address)
        self._inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._inner is not None:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()
