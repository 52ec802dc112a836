"""Flower's own processes as supervised children: a SuperLink (the aggregator's side), a SuperNode (a data owner's
side), and run submission with `flwr run`.

Both daemons (the worker's aggregator role and `paratrain client`) and the local harness start Flower through
this module, so every Flower process paratrain starts gets the same environment (`flower_env`: no telemetry, no
update check, no dependency installation, fast task polling, its own FLWR_HOME) and is cleaned up the same way.

Why the cleanup needs more than a process group: a SuperLink or SuperNode starts its `flower-superexec` in a new
session (`flwr.supercore.utils.get_popen_detach_kwargs`), which starts one `flwr-serverapp` / `flwr-clientapp`
per run or message, so signalling the child's group does not reach them. Flower's own answer is `--parent-pid`
polling (0.2 s), which leaves them running for a moment after a SIGKILL and not at all after a parent that hangs.
So every child gets a marker in its environment, which all its descendants inherit, and `stop` ends the group and
then every process that still carries the marker (`end_processes_marked`). On Linux the child itself also dies
with the process that started it (PR_SET_PDEATHSIG), as the harness's devnet does.

Verified against flwr 1.42.0: `flower-superlink --insecure --host H --port P
--disable-runtime-dependency-installation` serves Fleet, Control and Runtime over one HTTP port and logs uvicorn's
"Uvicorn running on http://H:P" once bound; the SuperExec it starts is told the same port, so the port is chosen
here before the start (a free one, retried when taken meanwhile). `flower-supernode --insecure --superlink H:P
--host 127.0.0.1 --port Q --node-config FILE.toml` logs "SuperNode ID: N" once registered and activated. `flwr run
APP CONNECTION --format json --run-config FILE.toml` prints {"success", "run-id", ...} or {"success": false,
"error-message"}; `flwr ls CONNECTION --run-id N --format json` gives the run's status ("finished:completed").
"""
from __future__ import annotations

import contextlib
import ctypes
import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

MARKER_ENV = "PARATRAIN_FLOWER"   # in the environment of a child and every process it starts
CONNECTION = "paratrain"          # the SuperLink connection name in $FLWR_HOME/config.toml
TASK_POLL_INTERVAL_S = 0.1        # SuperExec's poll for new runs and messages (Flower's default is 1 s)
OUTPUT_LINES = 2000               # lines of a child's output kept in memory (the log file, if any, has all)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_PORT_TAKEN = "address already in use"
_PORT_TRIES = 3

ConfigValue = str | int | float | bool


class FlowerProcessError(RuntimeError):
    """A Flower process did not start, stopped early, or `flwr` refused a command: the message says which."""


class FlowerTimeout(FlowerProcessError, TimeoutError):
    """A Flower process or run did not get where it was waited for in time."""


def flower_env(state_dir: str | os.PathLike[str], base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of every Flower process paratrain starts: `base` (default os.environ) with FLWR_HOME under
    `state_dir`, telemetry and the update check off (both would reach the internet), no `uv` installation of FAB
    dependencies (paratrain's FAB names installed modules only), fast SuperExec polling, and this interpreter's
    bin directory first on PATH (the SuperLink and SuperNode find `flower-superexec`, `flwr-serverapp` and
    `flwr-clientapp` on PATH)."""
    env = dict(os.environ if base is None else base)
    bin_dir = str(Path(sys.executable).parent)
    env.update({
        "FLWR_HOME": str(Path(state_dir) / "flwr"),
        "FLWR_TELEMETRY_ENABLED": "0",
        "FLWR_DISABLE_UPDATE_CHECK": "1",
        "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
        "FLWR_SUPEREXEC_TASK_POLL_INTERVAL": str(TASK_POLL_INTERVAL_S),
        "PATH": os.pathsep.join([bin_dir, *(p for p in env.get("PATH", "").split(os.pathsep) if p and p != bin_dir)]),
        "PYTHONUNBUFFERED": "1",
    })
    return env


def toml_document(values: Mapping[str, ConfigValue]) -> str:
    """`values` as flat TOML (quoted keys), the form `flwr run --run-config FILE` and `--node-config FILE` read.

    A file rather than `k=v` pairs on the command line: Flower splits those with a regular expression that breaks
    on a string holding a quote or a space (a path, a URL list)."""
    lines = []
    for key, value in values.items():
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, int):
            text = str(value)
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise ValueError(f"config value {key!r} is not finite: {value}")
            text = repr(value)
        elif isinstance(value, str):
            text = json.dumps(value)  # a JSON string is a TOML basic string (same escapes)
        else:
            raise TypeError(f"config value {key!r} must be str, int, float or bool, not {type(value).__name__}")
        lines.append(f"{json.dumps(str(key))} = {text}")
    return "\n".join(lines) + "\n"


def write_connection(env: Mapping[str, str], address: str, *, insecure: bool = True) -> Path:
    """Write `$FLWR_HOME/config.toml` naming the SuperLink at `address` as the default connection `CONNECTION`
    (the Flower Configuration that `flwr run|ls|stop` read since flwr 1.26); its path."""
    path = Path(env["FLWR_HOME"]) / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = (f"[superlink]\ndefault = {json.dumps(CONNECTION)}\n\n[superlink.{CONNECTION}]\n"
            f"address = {json.dumps(address)}\ninsecure = {'true' if insecure else 'false'}\n")
    path.write_text(text, encoding="utf-8")
    return path


def free_port(host: str = "127.0.0.1") -> int:
    """A port free on `host` now, for a Flower process that must be told its port before it starts."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


try:  # looked up here, in the parent: in the forked child, before exec, loading a library could deadlock
    _PRCTL = ctypes.CDLL("libc.so.6", use_errno=True).prctl if sys.platform == "linux" else None
except (OSError, AttributeError):
    _PRCTL = None
_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """A `preexec_fn`: on Linux the child gets SIGTERM when the thread that started it dies, even by SIGKILL (a
    no-op elsewhere); a child whose parent is already gone exits at once."""
    if _PRCTL is None:
        return
    parent = os.getppid()
    _PRCTL(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:
        os._exit(1)


def _marked(matches: Callable[[bytes], bool]) -> list[int]:
    """Pids (other than this process) with a MARKER_ENV value that `matches` (empty where /proc is absent)."""
    prefix = f"{MARKER_ENV}=".encode()
    found = []
    try:
        names = os.listdir("/proc")
    except OSError:
        return []
    for name in names:
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                if any(v.startswith(prefix) and matches(v[len(prefix):]) for v in f.read().split(b"\0")):
                    found.append(int(name))
        except OSError:
            continue
    return found


def processes_marked(marker: str) -> list[int]:
    """Pids (other than this process) whose environment has MARKER_ENV=`marker`."""
    value = marker.encode()
    return _marked(lambda v: v == value)


def processes_started_by(pid: int) -> list[int]:
    """Pids carrying the marker of any FlowerChild that process `pid` started (markers are "<pid>-<uuid>"), and
    their descendants wherever they were re-parented: what a crash of `pid` leaves behind."""
    prefix = f"{pid}-".encode()
    return _marked(lambda v: v.startswith(prefix))


def end_processes_marked(marker: str, grace: float = 5.0) -> None:
    """SIGTERM every process carrying `marker`, SIGKILL what is left after `grace` s."""
    pids = processes_marked(marker)
    for sig, wait_s in ((signal.SIGTERM, grace), (signal.SIGKILL, 0.0)):
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait_s
        while pids and time.monotonic() < deadline:
            time.sleep(0.05)
            pids = processes_marked(marker)
        if not pids:
            return


class FlowerChild:
    """One Flower command as a child in its own process group, ready when a line of its output matches `ready`.

    Its environment is this process's with `env` on top, then `flower_env`. Its output is drained continuously
    (the last OUTPUT_LINES in `output`, everything in `log_path` when given), so the pipe never fills. `stop` ends
    its group and then every process carrying its marker."""

    what = "flower process"
    ready: re.Pattern[str]

    def __init__(self, state_dir: str | os.PathLike[str], *, log_path: str | os.PathLike[str] | None = None,
                 env: Mapping[str, str] | None = None) -> None:
        self.state_dir = Path(state_dir)
        self.log_path = None if log_path is None else Path(log_path)
        self.marker = f"{os.getpid()}-{uuid.uuid4().hex}"
        self.env = {**flower_env(self.state_dir, {**os.environ, **(env or {})}), MARKER_ENV: self.marker}
        self.proc: subprocess.Popen[str] | None = None
        self.output: deque[str] = deque(maxlen=OUTPUT_LINES)
        self.starts = 0
        self._log: IO[str] | None = None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise FlowerProcessError(f"the {self.what} has not started")
        return self.proc.pid

    def command(self) -> list[str]:
        """The command line (a subclass's)."""
        raise NotImplementedError

    def on_ready(self, match: re.Match[str]) -> None:
        """Take what the ready line says (a subclass's)."""

    def choose_port(self) -> None:
        """Pick a new port before a retried start (a subclass that picks its own port)."""

    def tail(self, lines: int = 40) -> str:
        return "".join(list(self.output)[-lines:])

    def start(self, timeout: float = 60.0) -> FlowerChild:
        """Start it and wait for its ready line: FlowerProcessError with its last output if it exits first (a port
        taken between choosing and binding is retried with another), FlowerTimeout if it is not ready in time."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if self.log_path is not None and self._log is None:
            self._log = open(self.log_path, "a", encoding="utf-8")  # noqa: SIM115 - closed by stop()
        deadline = time.monotonic() + timeout
        for attempt in range(_PORT_TRIES):
            if attempt:
                self.choose_port()
            if self._start_once(deadline):
                return self
        raise FlowerProcessError(f"{self.what}: no free port after {_PORT_TRIES} tries:\n{self.tail()}")

    def _start_once(self, deadline: float) -> bool:
        proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, env=self.env, cwd=self.state_dir,
                                start_new_session=True, preexec_fn=die_with_parent)  # noqa: PLW1509 - prctl only
        self.proc, self.starts = proc, self.starts + 1
        assert proc.stdout is not None
        lines: deque[str] = deque(maxlen=OUTPUT_LINES)  # read until ready, then left to roll over
        reader = threading.Thread(target=self._drain, args=(proc, lines), name=f"{self.what}-output", daemon=True)
        reader.start()
        while time.monotonic() < deadline:
            while lines:
                line = lines.popleft()
                match = self.ready.search(line)
                if match:
                    self.on_ready(match)
                    return True
            if proc.poll() is not None and not reader.is_alive() and not lines:
                self._end(proc)
                if _PORT_TAKEN in self.tail().lower():
                    return False
                raise FlowerProcessError(f"{self.what} exited with {proc.returncode}:\n{self.tail()}")
            time.sleep(0.02)
        self._end(proc, signal.SIGKILL)
        raise FlowerTimeout(f"{self.what} was not ready in time:\n{self.tail()}")

    def _drain(self, proc: subprocess.Popen[str], pending: deque[str]) -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = _ANSI.sub("", raw)
            self.output.append(line)
            pending.append(line)
            if self._log is not None:
                with contextlib.suppress(ValueError):  # closed by stop() while the last lines arrive
                    self._log.write(line)
                    self._log.flush()

    def _end(self, proc: subprocess.Popen[str], sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        """`sig` to the child's group, SIGKILL after `timeout` s; then every process that carries the marker. The
        group is signalled only while its leader is unreaped, so a recycled group id is never hit."""
        for signum, wait_s in ((sig, timeout), (signal.SIGKILL, 5.0)):
            if proc.poll() is not None:
                break
            try:
                os.killpg(proc.pid, signum)
            except ProcessLookupError:
                break
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(wait_s)
        code = proc.wait()
        end_processes_marked(self.marker, grace=2.0)
        return code

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int | None:
        """End it (see `_end`); its exit status, None if it never started."""
        if self.proc is None:
            return None
        try:
            return self._end(self.proc, sig, timeout)
        finally:
            if self._log is not None:
                self._log.close()
                self._log = None

    def kill9(self) -> None:
        """SIGKILL its group and its marked descendants (a crash, for fault tests)."""
        self.stop(signal.SIGKILL)

    def __enter__(self) -> FlowerChild:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class SuperLinkProcess(FlowerChild):
    """`flower-superlink` on `host:port` (a free port when 0), its state in memory, plus the Flower Configuration
    naming it, so `submit_run`, `run_status` and `stop_run` reach it through `flwr`.

        with SuperLinkProcess(state_dir) as link:
            run_id = link.submit_run(app_dir, {"task-id": 7})
            link.wait_run(run_id, timeout=300)
    """

    what = "SuperLink"
    ready = re.compile(r"Uvicorn running on https?://(\S+):(\d+)")

    def __init__(self, state_dir: str | os.PathLike[str], *, host: str = "127.0.0.1", port: int = 0,
                 log_path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None) -> None:
        super().__init__(state_dir, log_path=log_path, env=env)
        self.host, self.fixed_port = host, port != 0
        self.port = port or free_port(host)

    @property
    def address(self) -> str:
        """host:port of its Fleet (and Control) API: what a SuperNode's --superlink and the chain's endpoint say."""
        return f"{self.host}:{self.port}"

    def command(self) -> list[str]:
        return ["flower-superlink", "--insecure", "--host", self.host, "--port", str(self.port),
                "--disable-runtime-dependency-installation"]

    def choose_port(self) -> None:
        if self.fixed_port:
            raise FlowerProcessError(f"the SuperLink's port {self.port} is taken:\n{self.tail()}")
        self.port = free_port(self.host)

    def on_ready(self, match: re.Match[str]) -> None:
        write_connection(self.env, self.address)

    def start(self, timeout: float = 60.0) -> SuperLinkProcess:
        super().start(timeout)
        return self

    def __enter__(self) -> SuperLinkProcess:
        return self.start()

    def _flwr(self, args: list[str], timeout: float) -> dict[str, Any]:
        """Run `flwr ARGS --format json` against this SuperLink; its JSON answer (FlowerProcessError when `flwr`
        fails or says success is false)."""
        try:
            done = subprocess.run(["flwr", *args, "--format", "json"], capture_output=True, text=True,
                                  env=self.env, cwd=self.state_dir, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise FlowerTimeout(f"`flwr {args[0]}` did not answer within {timeout} s") from None
        text = done.stdout.strip()
        try:
            answer = json.loads(text[text.index("{"):]) if "{" in text else {}
        except json.JSONDecodeError:
            answer = {}
        if done.returncode != 0 or not isinstance(answer, dict) or answer.get("success") is not True:
            reason = answer.get("error-message") if isinstance(answer, dict) else None
            detail = " ".join(str(reason or done.stderr.strip() or text or f"exit {done.returncode}").split())
            raise FlowerProcessError(f"`flwr {args[0]}` failed: {detail[:2000]}")
        return answer

    def submit_run(self, app_dir: str | os.PathLike[str], run_config: Mapping[str, ConfigValue] | None = None, *,
                   timeout: float = 120.0) -> int:
        """Submit the Flower app in `app_dir` with `run_config` overrides (keys its pyproject.toml declares) as a
        new run; the run id. The SuperLink's SuperExec then starts its ServerApp."""
        args = ["run", str(Path(app_dir).resolve()), CONNECTION]
        if run_config:
            path = self.state_dir / f"run-config-{uuid.uuid4().hex}.toml"
            path.write_text(toml_document(run_config), encoding="utf-8")
            args += ["--run-config", str(path)]
        answer = self._flwr(args, timeout)
        try:
            return int(answer["run-id"])
        except (KeyError, TypeError, ValueError):
            raise FlowerProcessError(f"`flwr run` gave no run id: {answer}") from None

    def run_status(self, run_id: int, *, timeout: float = 60.0) -> str:
        """The run's status as Flower names it: pending, starting, running, finished:completed|failed|stopped."""
        answer = self._flwr(["ls", CONNECTION, "--run-id", str(int(run_id))], timeout)
        runs = answer.get("runs") or []
        if not runs or not isinstance(runs[0], dict):
            raise FlowerProcessError(f"the SuperLink knows no run {run_id}")
        return str(runs[0].get("status", ""))

    def wait_run(self, run_id: int, *, timeout: float, poll: float = 1.0) -> str:
        """Until the run has finished; its final status ("finished:completed" when its ServerApp returned). A
        `flwr ls` that does not answer in time (a loaded machine: each is an interpreter start) is asked again."""
        deadline = time.monotonic() + timeout
        status = ""
        while time.monotonic() < deadline:
            if not self.alive:
                raise FlowerProcessError(f"the SuperLink exited while run {run_id} was {status or 'unknown'}")
            try:
                status = self.run_status(run_id, timeout=max(1.0, min(60.0, deadline - time.monotonic())))
            except FlowerTimeout:
                continue
            if status.startswith("finished"):
                return status
            time.sleep(poll)
        raise FlowerTimeout(f"run {run_id} still {status} after {timeout} s")

    def stop_run(self, run_id: int, *, timeout: float = 30.0) -> None:
        """Ask the SuperLink to stop the run (its ServerApp is told to exit)."""
        self._flwr(["stop", str(int(run_id)), CONNECTION], timeout)


class SuperNodeProcess(FlowerChild):
    """`flower-supernode` connected to the SuperLink at `superlink` (host:port), its ClientApp Runtime API on a
    free loopback port, `node_config` given to every ClientApp it runs (`context.node_config`). Ready once the
    SuperLink has registered it: `node_id` is the id the SuperLink gave it (new on every start)."""

    what = "SuperNode"
    ready = re.compile(r"SuperNode ID: (\d+)")

    def __init__(self, superlink: str, state_dir: str | os.PathLike[str], *,
                 node_config: Mapping[str, ConfigValue] | None = None, host: str = "127.0.0.1",
                 log_path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None) -> None:
        super().__init__(state_dir, log_path=log_path, env=env)
        self.superlink, self.host = superlink, host
        self.node_config = dict(node_config or {})
        self.port = free_port(host)
        self.node_id: int | None = None

    def command(self) -> list[str]:
        cmd = ["flower-supernode", "--insecure", "--superlink", self.superlink, "--host", self.host,
               "--port", str(self.port)]
        if self.node_config:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            path = self.state_dir / "node-config.toml"
            path.write_text(toml_document(self.node_config), encoding="utf-8")
            cmd += ["--node-config", str(path)]
        return cmd

    def choose_port(self) -> None:
        self.port = free_port(self.host)

    def on_ready(self, match: re.Match[str]) -> None:
        self.node_id = int(match.group(1))

    def start(self, timeout: float = 60.0) -> SuperNodeProcess:
        self.node_id = None
        super().start(timeout)
        return self

    def __enter__(self) -> SuperNodeProcess:
        return self.start()
