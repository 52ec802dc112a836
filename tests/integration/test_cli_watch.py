"""`paratrain task watch` against orchestrators that answer nothing useful, as a real subprocess.

Each fake orchestrator is a real local server: a gRPC TaskService whose WatchTask stays silent forever, ends
at once every time, or sends one State event and then fails (UNAVAILABLE), and a TCP listener that never
speaks. The watch must idle (its CPU time, from /proc/<pid>/stat, stays low; reconnects are spaced out by
the backoff) and stop on the first SIGINT with status 130 and one line on stderr, no traceback.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from paratrain.cli import main
from paratrain_api.v1 import common_pb2, task_pb2, task_pb2_grpc

pytestmark = pytest.mark.slow  # the CLI as a subprocess, idling against silent orchestrators for seconds

ROOT = Path(__file__).resolve().parents[2]
TICKS = os.sysconf("SC_CLK_TCK")
IDLE_S = 4.0
MAX_CPU_SHARE = 0.15  # of one core while idle (a busy loop is 1.0; grpc's poller and the bar cost ~0.01)


class Wedged(task_pb2_grpc.TaskServiceServicer):
    """WatchTask that never helps; `calls` counts the streams (or, for "tcp", the connections) opened."""

    def __init__(self, mode: str) -> None:
        self.mode, self.calls = mode, 0
        self.released: asyncio.Event | None = None  # set at teardown: a silent stream then ends

    async def WatchTask(self, request, context):  # noqa: N802 - the gRPC method name
        self.calls += 1
        if self.mode == "ends":
            return
        if self.mode == "fails":
            yield task_pb2.WatchTaskResponse(event=common_pb2.TaskEvent(task_id=request.task_id, kind="State"))
            await context.abort(grpc.StatusCode.UNAVAILABLE, "wedged")
        if self.released is not None:  # "silent": until the test is over
            await self.released.wait()
        yield task_pb2.WatchTaskResponse()


@pytest.fixture
def wedged(request) -> Iterator[tuple[str, Wedged]]:
    """(target, servicer) served from a thread of its own; "tcp" is a listener that accepts and never speaks."""
    mode = request.param
    servicer = Wedged(mode)
    if mode == "tcp":
        with socket.create_server(("127.0.0.1", 0)) as listener:
            accepted: list[socket.socket] = []
            stop = threading.Event()

            def accept() -> None:
                listener.settimeout(0.2)
                while not stop.is_set():
                    try:
                        accepted.append(listener.accept()[0])
                        servicer.calls += 1
                    except TimeoutError:
                        continue

            thread = threading.Thread(target=accept, daemon=True)
            thread.start()
            yield f"127.0.0.1:{listener.getsockname()[1]}", servicer
            stop.set()
            thread.join(5)
            for conn in accepted:
                conn.close()
        return
    loop = asyncio.new_event_loop()
    started = threading.Event()
    holder: dict[str, object] = {}

    async def serve() -> None:
        server = grpc.aio.server()
        servicer.released = asyncio.Event()
        task_pb2_grpc.add_TaskServiceServicer_to_server(servicer, server)
        holder["port"] = server.add_insecure_port("127.0.0.1:0")
        holder["server"] = server
        await server.start()
        started.set()
        await server.wait_for_termination()

    thread = threading.Thread(target=lambda: loop.run_until_complete(serve()), daemon=True)
    thread.start()
    assert started.wait(10)
    yield f"127.0.0.1:{holder['port']}", servicer
    loop.call_soon_threadsafe(servicer.released.set)  # type: ignore[union-attr]
    stopping = asyncio.run_coroutine_threadsafe(holder["server"].stop(0), loop)  # type: ignore[union-attr]
    try:
        stopping.result(10)
    except concurrent.futures.TimeoutError:
        # grpc.aio's stop can hang after handlers aborted streams while a subprocess was forked beside the
        # server's thread; the test's verdict is in already, and the daemon thread ends with the process
        return
    thread.join(10)
    loop.close()


@pytest.fixture(scope="module")
def task_id(devnet, tmp_path_factory) -> int:
    """An Open task: what the watch looks up on chain before it listens to the orchestrator."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("PARATRAIN_KEY", "//Alice")
        env.setenv("PARATRAIN_CHAIN", devnet.ws_url)
        env.setenv("PARATRAIN_ARTIFACTS", str(tmp_path_factory.mktemp("store")))
        assert main(["task", "create", "--recipe", "digits_mlp", "--bounty", "1", "--deadline-blocks", "5000"]) == 0
    from runtime_bindings import Chain

    with Chain.connect(devnet.ws_url, timeout=10) as chain:
        return int(chain.task_bounties.next_task_id()) - 1


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


@pytest.mark.parametrize("wedged", ["silent", "ends", "fails", "tcp"], indirect=True)
def test_watch_idles_and_stops_on_the_first_ctrl_c(wedged, task_id, devnet, tmp_path) -> None:
    target, servicer = wedged
    env = {**os.environ, "PARATRAIN_CHAIN": devnet.ws_url, "PARATRAIN_HOME": str(tmp_path / "home"),
           "PARATRAIN_ARTIFACTS": str(tmp_path / "store")}
    proc = subprocess.Popen([sys.executable, "-m", "paratrain.cli", "task", "watch", str(task_id),
                             "--orchestrator", target], cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while servicer.calls == 0 and time.monotonic() < deadline:  # started up: it is listening
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.1)
        time.sleep(1.0)  # past start-up (imports, the chain query)
        assert proc.poll() is None, proc.communicate()
        calls, cpu = servicer.calls, cpu_seconds(proc.pid)
        time.sleep(IDLE_S)
        used = cpu_seconds(proc.pid) - cpu
        assert used < MAX_CPU_SHARE * IDLE_S, f"{used:.2f} s of CPU in {IDLE_S} s: a busy loop"
        if servicer.mode in ("ends", "fails"):
            reconnects = servicer.calls - calls
            assert 1 <= reconnects <= 4, reconnects  # 0.5, 1, 2, 4 s apart: retried, with a backoff
        proc.send_signal(signal.SIGINT)
        start = time.monotonic()
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert time.monotonic() - start < 15  # one signal only; generous for a loaded CI machine
    assert proc.returncode == 130, err
    assert "Traceback" not in err and err.strip().splitlines() == ["interrupted"], err
