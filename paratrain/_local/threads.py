"""The market's parts in this process, each on a thread of its own: devnet, the orchestrator, the daemons.

In-process parts start in well under a second and share this process's Ray connection, which is what the
demo wants; tests and benchmarks that kill or measure a part use the subprocesses of `processes.py`.
"""
from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from paratrain._local.errors import HarnessError, HarnessTimeout

log = logging.getLogger("paratrain.local")
T = TypeVar("T")
DEVNET_DEFAULT_CHALLENGE_PERIOD_MS = 5_000  # devnet's own default (devnet.node.NodeConfig)


class DevnetThread:
    """A devnet node on its own event loop thread, on 127.0.0.1:`port` (0: any free port); stopped (and
    its port freed) when the `with` block ends."""

    def __init__(self, port: int = 0, challenge_period_ms: int = DEVNET_DEFAULT_CHALLENGE_PERIOD_MS) -> None:
        self._port, self._challenge_period_ms = port, challenge_period_ms
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="devnet", daemon=True)
        self.url = ""
        self.node: Any = None
        self.error: BaseException | None = None

    @property
    def ws_url(self) -> str:
        """The same as `url`: the name DevnetProcess has, so either fits where a devnet is wanted."""
        return self.url

    def _run(self) -> None:
        from devnet.node import Node, NodeConfig

        asyncio.set_event_loop(self._loop)
        try:
            self.node = Node(NodeConfig(challenge_period_ms=self._challenge_period_ms))
            host, port = self._loop.run_until_complete(self.node.start("127.0.0.1", self._port))
            self.url = f"ws://{host}:{port}"
        except BaseException as exc:  # noqa: BLE001 - reported to the starting thread
            self.error = exc
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self.node.stop())

    def __enter__(self) -> DevnetThread:
        self._thread.start()
        if not self._ready.wait(30):
            raise HarnessTimeout("devnet did not start within 30 s")
        if self.error:
            raise HarnessError(f"devnet cannot listen on 127.0.0.1:{self._port}: {self.error}")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


class OrchestratorThread:
    """The orchestrator (indexer, scheduler, gRPC worker API) on its own event loop thread, listening on a
    free loopback port, its index in `db_path`, no metrics port."""

    def __init__(self, chain_url: str, db_path: str | Path, *, reservation_ttl_s: float = 10.0) -> None:
        from orchestrator.config import OrchestratorConfig

        self.config = OrchestratorConfig(chain_url=chain_url, listen="127.0.0.1:0", db_path=str(db_path),
                                         metrics_port=0, reservation_ttl_s=reservation_ttl_s)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="orchestrator", daemon=True)
        self.running: Any = None
        self.target = ""

    def __enter__(self) -> OrchestratorThread:
        from orchestrator.service import start_orchestrator

        self._thread.start()
        self.running = self.call(start_orchestrator(self.config), 60)
        self.target = f"127.0.0.1:{self.running.port}"
        return self

    def call(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        """Run `coro` on the orchestrator's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def __exit__(self, *exc: object) -> None:
        from orchestrator.service import stop_orchestrator

        try:
            if self.running is not None:
                self.call(stop_orchestrator(self.running, grace=1.0), 15)
        except Exception as exc:  # noqa: BLE001 - stopping: say it, go on
            log.debug("stopping the orchestrator: %s", exc)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
            if not self._thread.is_alive():
                self.loop.close()


class DaemonThread:
    """A worker or validator daemon's `run()` on a thread; `stop()` asks it to return between tasks.

    Subscribe to the daemon (`thread.daemon.subscribe(observer)`, workers.observers) before `start()`."""

    def __init__(self, daemon: Any, name: str) -> None:
        self.daemon = daemon
        self.exit_code: int | None = None
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.error: BaseException | None = None

    def _run(self) -> None:
        try:
            self.exit_code = self.daemon.run()
        except BaseException as exc:  # noqa: BLE001 - reported to whoever started it
            self.error = exc

    @property
    def alive(self) -> bool:
        return self.thread.is_alive()

    def start(self) -> DaemonThread:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.daemon.stop()

    def join(self, timeout: float) -> None:
        self.thread.join(timeout)

    def __enter__(self) -> DaemonThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self.join(30)
