"""A real chopsticks 1.5.1 node for tests and benchmarks: launcher and module-scoped fixture.

``ChopsticksNode`` runs ``@acala-network/chopsticks`` (``npm install`` in
``tests/js``) offline on a chain spec (default: the Kusama local test net in
``tests/fixtures/chainspecs``), bound to 127.0.0.1 on a free port, in its own process
group. ``stop()`` terminates the whole group (SIGTERM, then SIGKILL); it also
runs at interpreter exit, and on Linux the node gets SIGKILL if the process that
started it dies without cleaning up (the kernel's parent-death signal: start it
from a thread that outlives it, e.g. the main thread, as pytest fixtures are).

Use from a test module in ``tests/compat`` (start-up takes 20-60 s, so start it
once per module)::

    from chopsticks_node import chopsticks  # noqa: F401  (the module-scoped fixture)

    def test_something(chopsticks):
        SubstrateInterface(url=chopsticks.ws_url)

or, for another chain spec, ``chopsticks_fixture(spec_path)``; from a script or
benchmark::

    with ChopsticksNode() as node:
        ... node.ws_url ...

chopsticks' output goes to a temporary log file (``node.log_path``), removed by
``stop()`` unless ``CHOPSTICKS_KEEP_LOG`` is set; a failed start-up quotes its tail.

Mind chopsticks' surprises (docs/rpc-compat.md section 8): never ask it for an
*unknown block hash* (``chain_getHeader``/``chain_getBlock``): it then reports that
hash as its genesis hash, and every later signed extrinsic fails with badProof.
"""
from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import websocket  # websocket-client

ROOT = Path(__file__).resolve().parents[2]
JS_DIR = ROOT / "tests" / "js"
CHOPSTICKS_BIN = JS_DIR / "node_modules" / ".bin" / "chopsticks"
CHAINSPECS = ROOT / "tests" / "fixtures" / "chainspecs"
KUSAMA_LOCAL = CHAINSPECS / "kusama-local.json"
STARTUP_TIMEOUT_S = 240.0
_START_ATTEMPTS = 3  # a free port can be taken by someone else before chopsticks binds it


def unavailable_reason(spec: Path = KUSAMA_LOCAL) -> str | None:
    """Why chopsticks cannot run here (for pytest.skip), or None."""
    if shutil.which("node") is None:
        return "node is not installed"
    if not CHOPSTICKS_BIN.exists():
        return f"{CHOPSTICKS_BIN} missing (run npm install in tests/js)"
    if not Path(spec).exists():
        return f"chain spec {spec} missing"
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent_prefix() -> list[str]:
    """On Linux, exec through setpriv so the kernel sends SIGKILL to chopsticks if its parent dies."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "KILL"] if setpriv and sys.platform.startswith("linux") else []


class ChopsticksNode:
    """One chopsticks process (in its own process group) serving ``ws_url``."""

    def __init__(self, spec: Path = KUSAMA_LOCAL, *, build_block_mode: str = "Instant",
                 startup_timeout: float = STARTUP_TIMEOUT_S, extra_args: tuple[str, ...] = ()) -> None:
        self.spec = Path(spec)
        self.build_block_mode = build_block_mode
        self.startup_timeout = startup_timeout
        self.extra_args = tuple(extra_args)
        self.port = 0
        self.proc: subprocess.Popen | None = None
        self.log_path: Path | None = None
        self.startup_s: float | None = None
        self._atexit: Callable[[], None] | None = None

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def command(self, port: int) -> list[str]:
        return [*_die_with_parent_prefix(), str(CHOPSTICKS_BIN), "--genesis", str(self.spec),
                "--build-block-mode", self.build_block_mode, "--host", "127.0.0.1", "--port", str(port),
                *self.extra_args]

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:] if self.log_path else ""
        except OSError:
            return ""

    def start(self) -> ChopsticksNode:
        reason = unavailable_reason(self.spec)
        if reason:
            raise RuntimeError(f"chopsticks unavailable: {reason}")
        self._atexit = self.stop
        atexit.register(self._atexit)
        began = time.monotonic()
        last_error = ""
        for _ in range(_START_ATTEMPTS):
            try:
                self._spawn_and_wait()
                self.startup_s = time.monotonic() - began
                return self
            except _PortTaken as exc:
                last_error = str(exc)
                self._kill()
            except BaseException:
                self.stop()
                raise
        self.stop()
        raise RuntimeError(f"chopsticks could not bind a port: {last_error}")

    def _spawn_and_wait(self) -> None:
        self._kill()
        self.port = free_port()
        fd, name = tempfile.mkstemp(prefix="chopsticks-", suffix=".log")
        self._remove_log()
        self.log_path = Path(name)
        with os.fdopen(fd, "wb") as log:
            self.proc = subprocess.Popen(
                self.command(self.port), cwd=str(JS_DIR), stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )
        deadline = time.monotonic() + self.startup_timeout
        while True:
            if self.proc.poll() is not None:
                tail = self.log_tail()
                if "EADDRINUSE" in tail:
                    raise _PortTaken(tail[-300:])
                raise RuntimeError(f"chopsticks exited early (rc={self.proc.returncode}); log tail:\n{tail}")
            try:
                websocket.create_connection(self.ws_url, timeout=5).close()
                return
            except (OSError, websocket.WebSocketException):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"chopsticks did not listen within {self.startup_timeout:.0f}s; "
                                       f"log tail:\n{self.log_tail()}") from None
                time.sleep(0.5)

    def _kill(self) -> None:
        """Terminate the process group: SIGTERM, then SIGKILL."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(proc.pid, sig)  # pgid == pid: start_new_session
            except (ProcessLookupError, PermissionError):
                break
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                continue
            # the leader is gone; make sure nothing else of its group lingers
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            break
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)

    def _remove_log(self) -> None:
        if self.log_path is not None and not os.environ.get("CHOPSTICKS_KEEP_LOG"):
            try:
                self.log_path.unlink()
            except OSError:
                pass
        self.log_path = None

    def stop(self) -> None:
        self._kill()
        self._remove_log()
        if self._atexit is not None:
            atexit.unregister(self._atexit)
            self._atexit = None

    def __enter__(self) -> ChopsticksNode:  # noqa: PYI034
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _PortTaken(Exception):
    pass


def chopsticks_fixture(spec: Path = KUSAMA_LOCAL, **kwargs: object):
    """A module-scoped pytest fixture running chopsticks on ``spec``; skips where it cannot run."""

    @pytest.fixture(scope="module")
    def _node() -> Iterator[ChopsticksNode]:
        reason = unavailable_reason(spec)
        if reason:
            pytest.skip(reason)
        node = ChopsticksNode(spec, **kwargs)
        try:
            node.start()
            yield node
        finally:
            node.stop()

    return _node


#: chopsticks on the Kusama local test net, Instant block mode, one per test module.
chopsticks = chopsticks_fixture(KUSAMA_LOCAL)
