"""The market's parts as subprocesses: `paratrain devnet`, `paratrain orchestrator`, `paratrain worker|validator`.

Each runs the real console entry point on loopback, reports the port it got from its own output (so `--port
0` / `--listen 127.0.0.1:0` pick a free one without a race), drains its output so the pipe never fills, and
is stopped with SIGINT (then SIGKILL) when its `with` block ends. Tests use them to kill -9 and restart a
part; benchmarks to measure a part's CPU apart from their own process.

devnet and the orchestrator run in a process group of their own, stopped as a group, and on Linux they die
with the process that started them, even when that one is killed with -9 (`die_with_parent`): a benchmark
or a test run cut short leaves no node holding a port. `die_with_parent` and `stop_group` are public so that
a benchmark's other nodes (chopsticks) are started and stopped the same way.
"""
from __future__ import annotations

import ctypes
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from abc import ABC, abstractmethod
from pathlib import Path
from typing import IO, Any

from paratrain._local.errors import HarnessError, HarnessTimeout

REPO_ROOT = Path(__file__).resolve().parents[2]
_DEVNET_LISTENING = re.compile(r"listening on ws://([\d.]+):(\d+)")
_ORCHESTRATOR_LISTENING = re.compile(r"orchestrator listening on ([\d.]+):(\d+)")


def free_port() -> int:
    """A loopback port free now (for a part that must be told its port before it starts, e.g. metrics)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


try:  # looked up here, in the parent: in the forked child, before exec, loading a library could deadlock
    _PRCTL = ctypes.CDLL("libc.so.6", use_errno=True).prctl if sys.platform == "linux" else None
except (OSError, AttributeError):
    _PRCTL = None
_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """A `preexec_fn`: on Linux, the child gets SIGTERM when its parent dies, even by SIGKILL (elsewhere a no-op).

    The kernel sends it when the *thread* that started the child ends, so start long-lived children from the
    main thread (or one that outlives them). If the parent is already gone by the time this runs, the child
    exits at once rather than outlive it."""
    if _PRCTL is None:
        return
    parent = os.getppid()
    _PRCTL(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(1)


def stop_group(proc: subprocess.Popen[Any], sig: int = signal.SIGINT, timeout: float = 15) -> int:
    """Stop `proc`, the leader of its own process group, and every process in that group: `sig` (SIGINT, a
    clean stop), then SIGKILL after `timeout` s; its exit status. The group is signalled only while the leader
    is unreaped, so a recycled process group id is never hit."""
    for signum, wait_s in ((sig, timeout), (signal.SIGKILL, 5.0)):
        if proc.poll() is not None:
            break
        try:
            os.killpg(proc.pid, signum)
        except ProcessLookupError:
            break
        try:
            return proc.wait(wait_s)
        except subprocess.TimeoutExpired:
            continue
    return proc.wait()


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "paratrain.cli", *args]


class _Child(ABC):
    """A `paratrain ...` child whose first lines are read until `pattern` says where it listens."""

    pattern: re.Pattern[str]
    what = "child"

    def __init__(self, env: dict[str, str] | None = None) -> None:
        self.env = dict(env or {})
        self.proc: subprocess.Popen[str] | None = None
        self.output: list[str] = []  # everything the process printed (all runs), drained continuously
        self.starts = 0

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @abstractmethod
    def _command(self) -> list[str]:
        """The command line of this part."""

    @abstractmethod
    def _listening(self, match: re.Match[str]) -> None:
        """Take the address from the line that matched `pattern`."""

    def start(self, timeout: float = 60) -> Any:
        """Start it and wait until it listens; HarnessError with its last output if it exits, HarnessTimeout if it
        does not listen in time."""
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        proc = subprocess.Popen(self._command(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, env=env, cwd=REPO_ROOT, start_new_session=True,
                                preexec_fn=die_with_parent)  # noqa: PLW1509 - only prctl runs there
        self.proc, self.starts = proc, self.starts + 1
        deadline = time.monotonic() + timeout
        assert proc.stdout is not None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                raise HarnessError(f"{self.what} exited with {proc.wait()}:\n{''.join(self.output[-40:])}")
            self.output.append(line)
            match = self.pattern.search(line)
            if match:
                self._listening(match)
                threading.Thread(target=self._drain, args=(proc,), name=f"{self.what}-output", daemon=True).start()
                return self
        stop_group(proc, signal.SIGKILL)
        raise HarnessTimeout(f"{self.what} did not start within {timeout} s:\n{''.join(self.output[-40:])}")

    def _drain(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.output.append(line)

    def stop(self, sig: int = signal.SIGINT, timeout: float = 15) -> int | None:
        """Send `sig` (SIGINT: a clean stop) to its process group, wait up to `timeout` s, then kill the group;
        the exit status (None if it never started)."""
        if self.proc is None:
            return None
        return stop_group(self.proc, sig, timeout)

    def kill9(self) -> None:
        self.stop(signal.SIGKILL)

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class DevnetProcess(_Child):
    """`paratrain devnet --port 0 ARGS` (instant seal, in memory unless ARGS say otherwise).

    The challenge period is 0 (a quorum pays at once) unless ARGS give `--challenge-period-ms`: devnet's
    own 5 s default would slow every test that does not test the period itself."""

    pattern = _DEVNET_LISTENING
    what = "devnet"

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        super().__init__(env)
        given = any(a.split("=", 1)[0] == "--challenge-period-ms" for a in args)
        period = [] if given else ["--challenge-period-ms", "0"]
        self.args = ["--port", "0", *period, *args]
        self.port = 0

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _command(self) -> list[str]:
        return _cli("devnet", *self.args)

    def _listening(self, match: re.Match[str]) -> None:
        self.port = int(match.group(2))

    def start(self, timeout: float = 30) -> DevnetProcess:
        started: DevnetProcess = super().start(timeout)
        return started


class OrchestratorProcess(_Child):
    """`paratrain orchestrator` on a free loopback port, with a metrics port chosen beforehand.

        with OrchestratorProcess(devnet.ws_url, db_path) as orch:
            WorkerClient(orch.target, keypair) ...
            orch.kill9(); orch.start()          # same --db, same --listen port

    The port is chosen once (`--listen 127.0.0.1:0` on the first start, then the port it got), so a
    restarted orchestrator is reachable at the same address."""

    pattern = _ORCHESTRATOR_LISTENING
    what = "orchestrator"

    def __init__(self, chain_url: str, db_path: str | Path, *args: str, port: int = 0,
                 metrics_port: int | None = None, env: dict[str, str] | None = None) -> None:
        super().__init__(env)
        self.chain_url, self.db_path, self.args = chain_url, str(db_path), list(args)
        self.port = port
        self.metrics_port = free_port() if metrics_port is None else metrics_port

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _command(self) -> list[str]:
        return _cli("orchestrator", "--chain", self.chain_url, "--listen", f"127.0.0.1:{self.port}",
                    "--db", self.db_path, "--metrics-port", str(self.metrics_port), *self.args)

    def _listening(self, match: re.Match[str]) -> None:
        self.port = int(match.group(2))

    def start(self, timeout: float = 60) -> OrchestratorProcess:
        started: OrchestratorProcess = super().start(timeout)
        return started

    def metrics(self) -> dict[str, float]:
        """The Prometheus samples without labels (name -> value)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as resp:
            text = resp.read().decode()
        samples: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#") and "{" not in line:
                name, _, value = line.rpartition(" ")
                try:
                    samples[name] = float(value)
                except ValueError:
                    pass
        return samples

    def index_height(self) -> int:
        return int(self.metrics().get("paratrain_orchestrator_index_height", -1))

    def wait_for_height(self, number: int, timeout: float = 30) -> int:
        """Until the index has applied block `number`; HarnessError after `timeout` s."""
        deadline = time.monotonic() + timeout
        height = -1
        while time.monotonic() < deadline:
            try:
                height = self.index_height()
            except OSError:
                height = -1
            if height >= number:
                return height
            time.sleep(0.1)
        raise HarnessTimeout(f"orchestrator index at {height}, not {number}, after {timeout}s")


class DaemonProcess:
    """`paratrain worker|validator ARGS` with its output in `log_path`; it listens on nothing, so `start`
    returns at once. Stopped with SIGTERM or SIGINT (either is a clean stop), then SIGKILL after `timeout`."""

    def __init__(self, kind: str, args: list[str], log_path: str | Path, env: dict[str, str] | None = None) -> None:
        if kind not in ("worker", "validator"):
            raise HarnessError(f"a daemon is a worker or a validator, not {kind!r}")
        self.kind, self.args, self.log_path = kind, list(args), Path(log_path)
        self.env = dict(env or {})
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[str] | None = None

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise HarnessError(f"the {self.kind} daemon has not started")
        return self.proc.pid

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def start(self) -> DaemonProcess:
        self._log = open(self.log_path, "w")  # noqa: SIM115 - closed by stop()
        self.proc = subprocess.Popen(_cli(self.kind, *self.args), cwd=REPO_ROOT, stdout=self._log,
                                     stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env})
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()
        finally:
            if self._log is not None:
                self._log.close()
                self._log = None

    def __enter__(self) -> DaemonProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
