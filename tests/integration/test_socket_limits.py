"""Silent and idle sockets cannot lock clients out of devnet (issue 10), against a real devnet process.

Before: 100 idle WebSockets, or a few hundred sockets that never sent their request in full, made devnet
answer 429 to everyone, for ever. Now unfinished handshakes are counted apart and closed at a deadline,
idle WebSockets are closed after a timeout (and give their slot up when the server is full), and each
client address has its own cap. Every socket here comes from the loopback, so the flood test raises the
per-address cap and the per-address test connects from 127.0.0.2 as well.
"""
from __future__ import annotations

import asyncio
import json
import resource
import socket
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import aiohttp
import pytest

from paratrain.local import DevnetProcess

pytestmark = [pytest.mark.slow, pytest.mark.asyncio]  # slow: thousands of silent and idle sockets at a devnet

SILENT, IDLE_WS = 600, 100
FDS_NEEDED = 2 * (SILENT + IDLE_WS) + 256  # this process and devnet (which inherits the limit) hold each socket
HEALTH = {"jsonrpc": "2.0", "id": 1, "method": "system_health", "params": []}


@pytest.fixture(scope="module", autouse=True)
def enough_file_descriptors() -> Iterator[None]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = FDS_NEEDED if hard == resource.RLIM_INFINITY else min(hard, FDS_NEEDED)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    if wanted < FDS_NEEDED:
        pytest.skip(f"the hard file-descriptor limit ({hard}) is below {FDS_NEEDED}")
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@contextmanager
def devnet(*flags: str) -> Iterator[DevnetProcess]:
    with DevnetProcess(*flags) as node:
        yield node


def raw_socket(port: int, first_bytes: bytes = b"", source: str = "127.0.0.1") -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", port))
    if first_bytes:
        sock.sendall(first_bytes)
    return sock


def unfinished(port: int, index: int) -> socket.socket:
    """Three kinds: nothing sent, headers cut short, a POST whose body never comes."""
    return raw_socket(port, (b"", b"GET / HTTP/1.1\r\nHost: x\r\n",
                             b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                             b"Content-Length: 64\r\n\r\n")[index % 3])


def closed_by_server(sock: socket.socket, within: float) -> bool:
    """True when the server closed the socket (EOF or reset) within `within` seconds, False if still open."""
    sock.settimeout(within)
    try:
        return sock.recv(1024) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def still_open(sock: socket.socket) -> bool:
    return not closed_by_server(sock, 0.001)


@asynccontextmanager
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as client:
        yield client


async def http_health(client: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    async with client.post(url, json=HEALTH, timeout=aiohttp.ClientTimeout(total=5)) as response:
        assert response.status == 200, await response.text()
        return await response.json()


async def ws_call(ws: aiohttp.ClientWebSocketResponse, method: str, params: list[Any] | None = None) -> Any:
    await ws.send_str(json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}))
    reply = json.loads(await ws.receive_str(timeout=5))
    assert "result" in reply, reply
    return reply["result"]


async def test_silent_and_idle_sockets_do_not_lock_out_a_new_client() -> None:
    flags = ("--rpc-max-connections-per-ip", "1000", "--rpc-max-pending-handshakes", "1000",
             "--rpc-handshake-timeout-ms", "60000")  # nothing in this test may time out
    with devnet(*flags) as node:
        silent = [unfinished(node.port, i) for i in range(SILENT)]
        try:
            async with session() as client:
                idle = [await client.ws_connect(node.ws_url) for _ in range(IDLE_WS)]
                await asyncio.sleep(1.2)  # the WebSockets have been idle past EVICTABLE_AFTER_S

                started = time.monotonic()
                assert (await http_health(client, node.http_url))["result"]["isSyncing"] is False
                async with client.ws_connect(node.ws_url) as ws:
                    assert (await ws_call(ws, "system_health"))["peers"] == 0
                    assert (await ws_call(ws, "chain_getHeader"))["number"] == "0x0"
                assert time.monotonic() - started < 1.0

                assert all(still_open(s) for s in silent)  # nobody was dropped to make room but idle WebSockets
                assert sum(not ws.closed for ws in idle) >= IDLE_WS - 2
                for ws in idle:
                    await ws.close()
        finally:
            for sock in silent:
                sock.close()


async def test_the_server_closes_a_silent_socket_and_an_idle_websocket() -> None:
    with devnet("--rpc-handshake-timeout-ms", "500", "--rpc-idle-timeout-ms", "1000") as node:
        sockets = [unfinished(node.port, i) for i in range(3)]
        started = time.monotonic()
        async with session() as client, client.ws_connect(node.ws_url) as idle, \
                client.ws_connect(node.ws_url) as subscribed:
            await ws_call(subscribed, "chain_subscribeNewHeads")
            await subscribed.receive_str(timeout=5)  # the current head
            assert all(closed_by_server(s, 5) for s in sockets)
            assert 0.4 < time.monotonic() - started < 3

            await ws_call(idle, "system_health")
            answered = time.monotonic()
            closed = await idle.receive(timeout=5)
            assert (closed.type, closed.extra) == (aiohttp.WSMsgType.CLOSE, "idle timeout")
            assert 0.9 < time.monotonic() - answered < 3

            await asyncio.sleep(0.5)  # a subscription keeps its WebSocket open however quiet it is
            assert (await ws_call(subscribed, "system_health"))["peers"] == 0
        for sock in sockets:
            sock.close()


async def test_one_address_over_its_cap_is_refused_while_others_are_served() -> None:
    with devnet("--rpc-max-connections-per-ip", "5") as node:
        held = [raw_socket(node.port, source="127.0.0.2") for _ in range(5)]
        over = raw_socket(node.port, source="127.0.0.2")
        assert closed_by_server(over, 5)
        async with session() as client:
            assert (await http_health(client, node.http_url))["result"]["peers"] == 0  # from 127.0.0.1
            held.pop().close()
            await asyncio.sleep(0.2)
            again = raw_socket(node.port, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                          b"Content-Length: %d\r\n\r\n%s" % (len(json.dumps(HEALTH)),
                                                                             json.dumps(HEALTH).encode()),
                               source="127.0.0.2")
            again.settimeout(5)
            assert again.recv(4096).startswith(b"HTTP/1.1 200")
            again.close()
        assert all(still_open(s) for s in held)
        for sock in held:
            sock.close()
