"""A devnet node answering JSON-RPC in-process: no socket, no server, no subprocess.

`InProcessNode` holds a `devnet.node.Node` and answers request dicts through the node's own
`RpcServer` dispatch (the same method table, subscriptions, error objects and limits as over a
WebSocket), on a private event loop. Blocks are authored at once, instant-seal style, after every
request that left transactions in the pool, so a submission is in a block (and, with no finality
lag, final) by the time its answer returns.

Each `connection()` is a callable `(request) -> [messages]`: the answer, then every notification its
subscriptions produced meanwhile (including those another connection's request caused, held until this
connection next speaks). That is the ``app`` runtime_bindings' ``MemoryTransport`` drives, which is how
unit tests run the bindings, the orchestrator's indexer and its handlers against the real runtime
without a node process; devnet does not import runtime_bindings (the layers' rule), it only speaks
JSON-RPC in-process.
"""
from __future__ import annotations

import asyncio
import json
import threading
from collections import deque
from collections.abc import Callable, Coroutine
from contextvars import Context
from typing import Any, TypeVar, TypeVarTuple

from devnet.chain import Chain
from devnet.node import Node, NodeConfig
from devnet.rpc.server import Sink, _Connection

Message = dict[str, Any]
T = TypeVar("T")
Ts = TypeVarTuple("Ts")
SETTLE_LIMIT_S = 2.0  # the longest a request waits for timers its handlers set (the 0.25 s {finalized} hold)


class _SettlingLoop(asyncio.SelectorEventLoop):
    """An event loop that knows which timers are still due, so a request can wait for the ones its handlers
    set (``author_submitAndWatchExtrinsic`` holds {finalized} back by a timer) before its answer returns."""

    def __init__(self) -> None:
        super().__init__()
        self.timers: list[asyncio.TimerHandle] = []

    def call_at(self, when: float, callback: Callable[[*Ts], object], *args: *Ts,
                context: Context | None = None) -> asyncio.TimerHandle:
        handle = super().call_at(when, callback, *args, context=context)
        self.timers.append(handle)
        return handle

    def pending_until(self) -> float | None:
        """When the last timer still to run is due (None: none is)."""
        self.timers = [t for t in self.timers if not t.cancelled() and t.when() > self.time()]
        return max((t.when() for t in self.timers), default=None)


class _MemoryConnection(_Connection):
    """One in-process connection: the WebSocket connection's subscription bookkeeping (held notifications,
    subscription ids, limits) with an outbox in place of a socket writer."""

    def __init__(self, node: Node) -> None:  # _Connection's state, without a socket or a request
        self.ws = None  # type: ignore[assignment]
        self._transport = None
        self._limits = node.config.rpc_limits
        self.subs: dict[str, Sink] = {}
        self.in_flight = asyncio.Semaphore(self._limits.max_requests_in_flight)
        self.tasks: set[asyncio.Task[None]] = set()
        self.closing = False
        self._queue: deque[tuple[str, bool]] = deque()
        self._notes = 0
        self._wakeup = asyncio.Event()
        self._closer = None
        self._last_activity = 0.0

    def notify(self, sink: Sink, text: str) -> None:
        """A notification: held until its subscription's id was answered, else queued (never dropped: the
        queue is drained at every request, so it cannot grow past one request's worth)."""
        if self.closing:
            return
        if sink._held is not None:
            sink._held.append(text)
        else:
            self._queue.append((text, False))

    def respond(self, text: str | None) -> None:
        if text is not None and not self.closing:
            self._queue.append((text, True))

    def drain(self) -> list[Message]:
        messages = [json.loads(text) for text, _ in self._queue]
        self._queue.clear()
        self._notes = 0
        return messages


class InProcessNode:
    """A devnet node answering JSON-RPC in this process; ``connection()`` per client. Close it when done.

    The node's event loop runs on a thread of its own, so connections may be used from any thread, and
    from inside another event loop (an async test, the orchestrator's handlers); requests from several
    threads interleave on that loop as they would on a server's."""

    def __init__(self, config: NodeConfig | None = None) -> None:
        config = config or NodeConfig()
        if config.block_time_ms is not None:
            raise ValueError("an in-process node authors on demand (instant seal): block_time_ms must be None")
        self.node = Node(config)
        self._loop = _SettlingLoop()
        self._connections: list[_MemoryConnection] = []
        self._closed = False
        self._thread = threading.Thread(target=self._loop.run_forever, name="devnet-inprocess", daemon=True)
        self._thread.start()

    @property
    def chain(self) -> Chain:
        """The node's chain, for tests that look at its own state (read it only while no request runs)."""
        return self.node.chain

    def connection(self) -> Callable[[Message], list[Message]]:
        """A new client connection: its own subscriptions; answers request dicts with message dicts."""
        conn = _MemoryConnection(self.node)
        self._connections.append(conn)

        def app(request: Message) -> list[Message]:
            if self._closed or conn.closing:
                raise ConnectionError("the in-process node was closed")
            return self._run(self._handle(conn, json.dumps(request)))

        return app

    def author(self) -> None:
        """Author blocks while transactions wait (and, with a finality lag, until the blocks holding them
        are final), as the node's instant-seal loop does; requests do this themselves."""
        self._run(self._author())

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    async def _handle(self, conn: _MemoryConnection, text: str) -> list[Message]:
        reply, sinks = await self.node.server._process(text, conn)
        conn.respond(reply)
        for sink in sinks:
            conn.activate(sink)
        await self._author()
        await self._settle()
        return conn.drain()

    async def _author(self) -> None:
        chain = self.node.chain
        while chain.pool.entries or chain.needs_finality_blocks:
            chain.produce_block()
            await asyncio.sleep(0)  # listeners' callbacks run before the next block

    async def _settle(self) -> None:
        """Wait for the timers handlers set (bounded by SETTLE_LIMIT_S), then let what they made ready run."""
        start = self._loop.time()
        while (due := self._loop.pending_until()) is not None and due - start <= SETTLE_LIMIT_S:
            await asyncio.sleep(max(0.0, due - self._loop.time()))
        await asyncio.sleep(0)

    async def _shut_down(self) -> None:
        for conn in self._connections:
            conn.shut_down()

    def close(self) -> None:
        """End every subscription, stop the loop and close the chain (and its store); idempotent."""
        if self._closed:
            return
        self._closed = True
        self._run(self._shut_down())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()
        self.node.chain.close()

    def __enter__(self) -> InProcessNode:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
