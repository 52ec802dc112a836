"""The JSON-RPC transport over real sockets: a real server on 127.0.0.1, real clients."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest

from devnet.rpc import RpcError, RpcLimits, RpcServer, Sink, Subscription
from devnet.rpc.errors import invalid_params

pytestmark = pytest.mark.asyncio

TIMEOUT = 5.0


class Feed:
    """A subscription source: sends the current value at once, then every published one."""

    def __init__(self) -> None:
        self.sinks: set[Sink] = set()
        self.cancelled = 0

    async def start(self, params: Any, sink: Sink) -> Any:
        if params not in ([], ["ok"]):
            raise invalid_params("expected no params")
        sink("current")
        self.sinks.add(sink)

        def cancel() -> None:
            self.sinks.discard(sink)
            self.cancelled += 1

        return cancel

    def publish(self, value: Any) -> None:
        for sink in list(self.sinks):
            sink(value)


class App:
    """Handlers of the test server, recording what they were called with."""

    def __init__(self) -> None:
        self.recorded: list[Any] = []
        self.release = asyncio.Event()
        self.feed = Feed()

    async def echo(self, params: Any) -> Any:
        return params

    async def record(self, params: Any) -> None:
        self.recorded.append(params)

    async def refuse(self, params: Any) -> None:
        raise RpcError(1010, "Invalid Transaction", "Inability to pay some fees")

    async def crash(self, params: Any) -> None:
        raise RuntimeError("boom")

    async def slow(self, params: Any) -> str:
        await self.release.wait()
        return "slow"

    async def big(self, params: Any) -> str:
        return "x" * params[0]

    def server(self, limits: RpcLimits) -> RpcServer:
        methods = {
            "echo": self.echo,
            "record": self.record,
            "refuse": self.refuse,
            "crash": self.crash,
            "slow": self.slow,
            "big": self.big,
        }
        feed = Subscription("test_subscribe", "test_value", "test_unsubscribe", self.feed.start)
        return RpcServer(methods, [feed], limits=limits)


@asynccontextmanager
async def running(limits: RpcLimits = RpcLimits()) -> AsyncIterator[tuple[App, str]]:
    app = App()
    server = app.server(limits)
    host, port = await server.start("127.0.0.1", 0)
    try:
        yield app, f"http://{host}:{port}/"
    finally:
        await server.stop()


@asynccontextmanager
async def ws_client(url: str) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        yield ws


def call(method: str, params: Any = None, id: Any = 1) -> dict[str, Any]:
    request: dict[str, Any] = {"jsonrpc": "2.0", "id": id, "method": method}
    if params is not None:
        request["params"] = params
    return request


async def receive(ws: aiohttp.ClientWebSocketResponse) -> Any:
    return json.loads(await ws.receive_str(timeout=TIMEOUT))


async def rpc(ws: aiohttp.ClientWebSocketResponse, request: Any) -> Any:
    await ws.send_str(json.dumps(request))
    return await receive(ws)


async def post(url: str, body: Any, raw: bool = False) -> tuple[int, str]:
    data = body if raw else json.dumps(body)
    async with aiohttp.ClientSession() as session, session.post(
        url, data=data, headers={"Content-Type": "application/json"}
    ) as response:
        return response.status, await response.text()


async def eventually(condition: Any) -> None:
    for _ in range(int(TIMEOUT / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


async def test_call_over_websocket_echoes_ids_exactly() -> None:
    async with running() as (_, url), ws_client(url) as ws:
        assert await rpc(ws, call("echo", [1, "a"], id=7)) == {"jsonrpc": "2.0", "result": [1, "a"], "id": 7}
        assert (await rpc(ws, call("echo", {"k": 1}, id="abc")))["id"] == "abc"
        assert (await rpc(ws, call("echo", id=None)))["result"] == []


async def test_call_over_http() -> None:
    async with running() as (_, url):
        status, text = await post(url, call("echo", ["x"], id=3))
        assert status == 200
        assert json.loads(text) == {"jsonrpc": "2.0", "result": ["x"], "id": 3}


async def test_http_requires_json_content_type_and_post() -> None:
    async with running() as (_, url), aiohttp.ClientSession() as session:
        async with session.post(url, data="{}", headers={"Content-Type": "text/plain"}) as response:
            assert response.status == 415
        async with session.get(url) as response:
            assert response.status == 405


async def test_batch_mixes_calls_notifications_and_errors() -> None:
    batch = [call("echo", [1], id=1), {"jsonrpc": "2.0", "method": "record", "params": ["n"]},
             call("nope", id="b"), 5]
    async with running() as (app, url), ws_client(url) as ws:
        replies = await rpc(ws, batch)
        assert len(replies) == 3
        by_id = {json.dumps(r["id"]): r for r in replies}
        assert by_id["1"]["result"] == [1]
        assert by_id['"b"']["error"]["code"] == -32601
        assert by_id["null"]["error"]["code"] == -32600
        assert app.recorded == [["n"]]


async def test_empty_and_oversized_batches_are_rejected() -> None:
    async with running(RpcLimits(max_batch_len=2)) as (_, url), ws_client(url) as ws:
        assert (await rpc(ws, []))["error"] == {"code": -32600, "message": "Invalid request"}
        too_long = await rpc(ws, [call("echo", id=i) for i in range(3)])
        assert too_long["error"] == {
            "code": -32010,
            "message": "The batch request was too large",
            "data": "Exceeded max limit of 2",
        }


async def test_notifications_run_but_get_no_reply() -> None:
    async with running() as (app, url), ws_client(url) as ws:
        await ws.send_str(json.dumps({"jsonrpc": "2.0", "method": "record", "params": [1]}))
        await ws.send_str(json.dumps([{"jsonrpc": "2.0", "method": "record", "params": [2]}]))
        assert (await rpc(ws, call("echo", ["after"], id=9)))["id"] == 9
        await eventually(lambda: len(app.recorded) == 2)
        status, text = await post(url, {"jsonrpc": "2.0", "method": "record", "params": [3]})
        assert (status, text) == (200, "")


async def test_unknown_method() -> None:
    async with running() as (_, url), ws_client(url) as ws:
        reply = await rpc(ws, call("nope", id=2))
        assert reply == {"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found"}, "id": 2}


async def test_parse_errors_answer_with_null_id() -> None:
    parse_error = {"jsonrpc": "2.0", "error": {"code": -32700, "message": "Parse error"}, "id": None}
    async with running() as (_, url), ws_client(url) as ws:
        await ws.send_str('{"jsonrpc": "2.0", "id": 1,')
        assert await receive(ws) == parse_error
        await ws.send_bytes(b"\xff\xfe{}")
        assert await receive(ws) == parse_error
        await ws.send_bytes(json.dumps(call("echo", ["bin"])).encode())
        assert (await receive(ws))["result"] == ["bin"]
        status, text = await post(url, "{oops", raw=True)
        assert json.loads(text) == parse_error


@pytest.mark.parametrize(
    ("request_", "reply_id"),
    [
        ({"id": 1, "method": "echo"}, 1),
        ({"jsonrpc": "1.0", "id": 1, "method": "echo"}, 1),
        ({"jsonrpc": "2.0", "id": "s", "method": 5}, "s"),
        ({"jsonrpc": "2.0", "id": 1, "method": "echo", "params": "x"}, 1),
        ({"jsonrpc": "2.0", "id": True, "method": "echo"}, None),
        ({"jsonrpc": "2.0", "id": [1], "method": "echo"}, None),
        (42, None),
        ("text", None),
    ],
)
async def test_invalid_requests(request_: Any, reply_id: Any) -> None:
    async with running() as (_, url), ws_client(url) as ws:
        reply = await rpc(ws, request_)
        assert reply == {"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid request"}, "id": reply_id}


async def test_handler_errors_and_crashes_are_answered() -> None:
    async with running() as (_, url), ws_client(url) as ws:
        refused = await rpc(ws, call("refuse", id=1))
        assert refused["error"] == {"code": 1010, "message": "Invalid Transaction", "data": "Inability to pay some fees"}
        crashed = await rpc(ws, call("crash", id=2))
        assert crashed == {"jsonrpc": "2.0", "error": {"code": -32603, "message": "Internal error"}, "id": 2}
        assert (await rpc(ws, call("echo", [1], id=3)))["result"] == [1]


async def test_oversized_response() -> None:
    async with running(RpcLimits(max_response_bytes=1000)) as (_, url), ws_client(url) as ws:
        assert (await rpc(ws, call("big", [10])))["result"] == "x" * 10
        assert (await rpc(ws, call("big", [2000])))["error"] == {
            "code": -32008,
            "message": "Response is too big",
            "data": "Exceeded max limit of 1000",
        }


async def test_requests_of_one_connection_run_concurrently() -> None:
    async with running() as (app, url), ws_client(url) as ws:
        await ws.send_str(json.dumps(call("slow", id="slow")))
        await ws.send_str(json.dumps(call("echo", id="fast")))
        assert (await receive(ws))["id"] == "fast"
        app.release.set()
        assert (await receive(ws))["id"] == "slow"


async def test_subscription_round_trip() -> None:
    async with running() as (app, url), ws_client(url) as ws:
        sub_id = (await rpc(ws, call("test_subscribe", id=1)))["result"]
        assert isinstance(sub_id, str) and len(sub_id) == 16 and sub_id.isalnum()

        def note(result: Any) -> dict[str, Any]:
            params = {"subscription": sub_id, "result": result}
            return {"jsonrpc": "2.0", "method": "test_value", "params": params}

        assert await receive(ws) == note("current")
        app.feed.publish({"n": 1})
        app.feed.publish({"n": 2})
        assert [await receive(ws), await receive(ws)] == [note({"n": 1}), note({"n": 2})]

        assert (await rpc(ws, call("test_unsubscribe", [sub_id], id=2)))["result"] is True
        assert app.feed.cancelled == 1
        assert (await rpc(ws, call("test_unsubscribe", [sub_id], id=3)))["result"] is False
        app.feed.publish("after")
        assert (await rpc(ws, call("echo", id=4)))["id"] == 4  # no notification came first


async def test_refused_subscription_registers_nothing() -> None:
    async with running() as (app, url), ws_client(url) as ws:
        reply = await rpc(ws, call("test_subscribe", [1, 2], id=1))
        assert reply["error"] == {"code": -32602, "message": "Invalid params", "data": "expected no params"}
        assert app.feed.sinks == set()


async def test_subscriptions_need_a_websocket() -> None:
    async with running() as (app, url):
        _, text = await post(url, call("test_subscribe", id=1))
        assert json.loads(text)["error"]["code"] == -32603
        assert app.feed.sinks == set()


async def test_subscription_limit_per_connection() -> None:
    async with running(RpcLimits(max_subscriptions_per_connection=2)) as (_, url), ws_client(url) as ws:
        ids = []
        for i in range(2):
            ids.append((await rpc(ws, call("test_subscribe", id=i)))["result"])
            await receive(ws)  # the current value
        refused = await rpc(ws, call("test_subscribe", id=2))
        assert refused["error"] == {
            "code": -32006,
            "message": "Too many subscriptions on the connection",
            "data": "Exceeded max limit of 2",
        }
        assert (await rpc(ws, call("test_unsubscribe", [ids[0]], id=3)))["result"] is True
        assert isinstance((await rpc(ws, call("test_subscribe", id=4)))["result"], str)


async def test_oversized_requests() -> None:
    limits = RpcLimits(max_request_bytes=1024)
    async with running(limits) as (_, url):
        status, text = await post(url, call("echo", ["x" * 2000]))
        assert status == 413
        assert json.loads(text)["error"] == {
            "code": -32007,
            "message": "Request is too big",
            "data": "Exceeded max limit of 1024",
        }
        async with ws_client(url) as ws:
            await ws.send_str(json.dumps(call("echo", ["x" * 2000])))
            closed = await ws.receive(timeout=TIMEOUT)
            assert closed.type is aiohttp.WSMsgType.CLOSE
            assert closed.data == aiohttp.WSCloseCode.MESSAGE_TOO_BIG
        async with ws_client(url) as ws:
            assert (await rpc(ws, call("echo", ["small"])))["result"] == ["small"]


async def test_closing_a_connection_cancels_its_subscriptions() -> None:
    async with running() as (app, url):
        async with ws_client(url) as ws:
            for i in range(3):
                await rpc(ws, call("test_subscribe", id=i))
                await receive(ws)
            assert len(app.feed.sinks) == 3
        await eventually(lambda: app.feed.cancelled == 3)
        assert app.feed.sinks == set()


async def test_stop_cancels_subscriptions() -> None:
    app = App()
    server = app.server(RpcLimits())
    host, port = await server.start("127.0.0.1", 0)
    async with ws_client(f"http://{host}:{port}/") as ws:
        await rpc(ws, call("test_subscribe"))
        await receive(ws)
        await server.stop()
        assert app.feed.cancelled == 1
        assert (await ws.receive(timeout=TIMEOUT)).type is aiohttp.WSMsgType.CLOSE


async def test_slow_client_is_disconnected_not_buffered() -> None:
    async with running(RpcLimits(send_queue_len=10)) as (app, url), ws_client(url) as ws:
        await rpc(ws, call("test_subscribe"))
        for i in range(100):  # synchronous bursts outrun any writer
            app.feed.publish(i)
        assert app.feed.cancelled == 1
        message = await ws.receive(timeout=TIMEOUT)
        while message.type is aiohttp.WSMsgType.TEXT:  # whatever was already written
            message = await ws.receive(timeout=TIMEOUT)
        assert message.type is aiohttp.WSMsgType.CLOSE
        assert message.data == aiohttp.WSCloseCode.POLICY_VIOLATION


async def test_thousands_of_idle_subscriptions() -> None:
    count = 2000
    limits = RpcLimits(max_subscriptions_per_connection=5000, send_queue_len=2 * count)
    async with running(limits) as (app, url), ws_client(url) as ws:
        for i in range(count):
            await ws.send_str(json.dumps(call("test_subscribe", id=i)))
        messages = [await receive(ws) for _ in range(2 * count)]
        ids = {m["result"] for m in messages if "result" in m}
        assert len(ids) == count
        assert len(app.feed.sinks) == count
        app.feed.publish("tick")
        ticks = [await receive(ws) for _ in range(count)]
        assert {t["params"]["subscription"] for t in ticks} == ids
        assert (await rpc(ws, call("echo", ["still fine"], id="x")))["result"] == ["still fine"]
    await eventually(lambda: app.feed.cancelled == count)


async def test_too_many_connections() -> None:
    """A connection with a subscription is in use: it keeps its slot however long it has been quiet."""
    async with running(RpcLimits(max_connections=1)) as (_, url), ws_client(url) as ws:
        assert "result" in await rpc(ws, call("test_subscribe"))
        await receive(ws)  # the current value
        await asyncio.sleep(1.2)  # past EVICTABLE_AFTER_S
        status, text = await post(url, call("echo"))
        assert (status, text) == (429, "Too many connections. Please try again later.")


async def test_a_full_server_closes_the_idlest_connection_for_a_new_one() -> None:
    async with running(RpcLimits(max_connections=2)) as (_, url), ws_client(url) as idle, ws_client(url) as busy:
        assert "result" in await rpc(busy, call("test_subscribe"))
        await receive(busy)
        assert (await post(url, call("echo")))[0] == 429  # both just connected: not idle long enough yet
        await asyncio.sleep(1.2)
        assert (await post(url, call("echo", ["in"]))) == (200, '{"jsonrpc":"2.0","result":["in"],"id":1}')
        closed = await idle.receive(timeout=TIMEOUT)
        assert closed.type is aiohttp.WSMsgType.CLOSE and closed.data == aiohttp.WSCloseCode.GOING_AWAY
        assert (await rpc(busy, call("echo", ["kept"])))["result"] == ["kept"]


async def test_an_idle_websocket_is_closed_unless_it_has_subscriptions() -> None:
    async with running(RpcLimits(idle_timeout_s=0.3)) as (_, url), ws_client(url) as idle, \
            ws_client(url) as subscribed:
        assert "result" in await rpc(subscribed, call("test_subscribe"))
        await receive(subscribed)
        assert (await rpc(idle, call("echo")))["result"] == []  # a request answered starts the idle clock anew
        closed = await idle.receive(timeout=TIMEOUT)
        assert (closed.type, closed.extra) == (aiohttp.WSMsgType.CLOSE, "idle timeout")
        await asyncio.sleep(0.5)
        assert (await rpc(subscribed, call("echo", ["alive"])))["result"] == ["alive"]


async def test_a_socket_without_a_complete_request_is_closed_at_the_handshake_deadline() -> None:
    limits = RpcLimits(handshake_timeout_s=0.3, max_connections_per_address=3)
    async with running(limits) as (_, url):
        host, port = url.removeprefix("http://").rstrip("/").split(":")
        streams = [await asyncio.open_connection(host, int(port)) for _ in range(3)]
        streams[1][1].write(b"GET / HTTP/1.1\r\nHost: x\r\n")  # headers never finished
        streams[2][1].write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                            b"Content-Length: 9\r\n\r\n")  # a body that never comes
        refused_reader, _ = await asyncio.open_connection(host, int(port))  # a 4th from this address
        assert await asyncio.wait_for(refused_reader.read(), TIMEOUT) == b""
        for reader, _ in streams:
            assert await asyncio.wait_for(reader.read(), TIMEOUT) == b""  # no response owed, just closed
        assert (await post(url, call("echo", ["after"])))[0] == 200


async def test_method_names_lists_every_callable_name_sorted() -> None:
    names = App().server(RpcLimits()).method_names()
    assert names == sorted(names)
    assert {"echo", "test_subscribe", "test_unsubscribe"} <= set(names)
    assert "test_value" not in names


async def test_unfinished_handshakes_are_capped_apart_from_live_connections() -> None:
    async with running(RpcLimits(max_pending_handshakes=2, max_connections=1)) as (_, url), ws_client(url) as ws:
        host, port = url.removeprefix("http://").rstrip("/").split(":")
        silent = [await asyncio.open_connection(host, int(port)) for _ in range(2)]  # pending; the ws is live
        refused_reader, _ = await asyncio.open_connection(host, int(port))
        assert await asyncio.wait_for(refused_reader.read(), TIMEOUT) == b""
        assert "result" in await rpc(ws, call("test_subscribe"))  # live, and in use: never evicted
        await receive(ws)
        silent[0][1].close()
        await asyncio.sleep(0.1)
        assert (await post(url, call("echo")))[0] == 429  # admitted as pending; the one live slot is taken
