"""The Flower process plumbing without Flower's servers: the environment every Flower process gets, the config files
Flower's own parsers read, readiness from output, and a child whose detached descendants are still swept.

Starting a real SuperLink and SuperNodes is the deployment test's (tests/integration/test_fl_deployment.py, slow)."""
from __future__ import annotations

import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from flwr.cli.flower_config import read_superlink_connection
from flwr.common.config import parse_config_args

from workers.fl.flower_procs import (
    MARKER_ENV,
    FlowerChild,
    FlowerProcessError,
    FlowerTimeout,
    SuperLinkProcess,
    SuperNodeProcess,
    end_processes_marked,
    flower_env,
    processes_marked,
    processes_started_by,
    toml_document,
    write_connection,
)


def test_flower_env_turns_off_what_reaches_the_internet(tmp_path: Path) -> None:
    env = flower_env(tmp_path, {"PATH": "/usr/bin:/bin", "KEEP": "1"})
    assert env["FLWR_HOME"] == str(tmp_path / "flwr")
    assert env["FLWR_TELEMETRY_ENABLED"] == "0"
    assert env["FLWR_DISABLE_UPDATE_CHECK"] == "1"
    assert env["FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION"] == "1"
    assert float(env["FLWR_SUPEREXEC_TASK_POLL_INTERVAL"]) == 0.1
    assert env["PATH"].split(":")[0] == str(Path(sys.executable).parent)
    assert env["PATH"].split(":")[1:] == ["/usr/bin", "/bin"]
    assert env["KEEP"] == "1"
    again = flower_env(tmp_path, env)  # the venv's bin is not put first twice
    assert again["PATH"].split(":").count(str(Path(sys.executable).parent)) == 1


def test_toml_document_is_what_flower_reads(tmp_path: Path) -> None:
    values = {"task-id": 7, "chain-url": "ws://127.0.0.1:9944", "store": "/a path/with \"quotes\" and 'ticks'",
              "ratio": 0.25, "on": True, "off": False, "paratrain-data": "C:\\data\\shard 1.ptts"}
    path = tmp_path / "run-config.toml"
    path.write_text(toml_document(values))
    assert parse_config_args([str(path)]) == values
    with pytest.raises(ValueError, match="not finite"):
        toml_document({"x": float("inf")})
    with pytest.raises(TypeError, match="must be str"):
        toml_document({"x": [1]})  # type: ignore[dict-item]


def test_connection_file_is_what_flwr_cli_reads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = flower_env(tmp_path)
    write_connection(env, "127.0.0.1:4321")
    monkeypatch.setenv("FLWR_HOME", env["FLWR_HOME"])
    connection = read_superlink_connection(None)  # the default connection, as `flwr run APP` would pick it
    assert connection.address == "127.0.0.1:4321"
    assert connection.insecure is True
    assert read_superlink_connection("paratrain").address == "127.0.0.1:4321"


def test_flower_commands_name_the_verified_flags(tmp_path: Path) -> None:
    link = SuperLinkProcess(tmp_path / "link")
    assert link.command() == ["flower-superlink", "--insecure", "--host", "127.0.0.1", "--port", str(link.port),
                              "--disable-runtime-dependency-installation"]
    node = SuperNodeProcess(link.address, tmp_path / "node", node_config={"paratrain-data": "/d/s.ptts"})
    cmd = node.command()
    assert cmd[:4] == ["flower-supernode", "--insecure", "--superlink", link.address]
    assert cmd[cmd.index("--port") + 1] == str(node.port)
    config = Path(cmd[cmd.index("--node-config") + 1])
    assert parse_config_args([str(config)]) == {"paratrain-data": "/d/s.ptts"}
    # each flag is one the installed Flower accepts (its --help), so a Flower upgrade that drops one fails here
    for tool, flags in ((link.command()[0], link.command()[1:]), (cmd[0], cmd[1:])):
        text = subprocess.run([str(Path(sys.executable).parent / tool), "--help"], capture_output=True,
                              text=True, env=flower_env(tmp_path), timeout=300, check=True).stdout
        for flag in (f for f in flags if f.startswith("--")):
            assert re.search(rf"{re.escape(flag)}\b", text), f"{tool} has no {flag}"


class _Script(FlowerChild):
    """A stand-in Flower command: a Python script, ready on a line saying 'ready <n>'."""

    what = "script"
    ready = re.compile(r"ready (\d+)")

    def __init__(self, state_dir: Path, script: str, env: dict[str, str] | None = None) -> None:
        super().__init__(state_dir, env=env)
        self.script, self.value, self.ports = textwrap.dedent(script), 0, 0

    def command(self) -> list[str]:
        return [sys.executable, "-c", self.script, str(self.starts)]

    def on_ready(self, match: re.Match[str]) -> None:
        self.value = int(match.group(1))

    def choose_port(self) -> None:
        self.ports += 1


DETACHED = """
    import os, subprocess, sys, time
    # like flower-superexec: a descendant in a session of its own, out of reach of the child's group
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True)
    print("\\x1b[92mINFO\\x1b[0m: ready", os.getpid(), flush=True)
    time.sleep(120)
"""


def test_ready_line_then_stop_ends_the_group_and_detached_descendants(tmp_path: Path) -> None:
    child = _Script(tmp_path, DETACHED)
    with child:
        assert child.value == child.pid  # the ready line, its colour codes stripped
        deadline = time.monotonic() + 10
        while len(processes_marked(child.marker)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        marked = processes_marked(child.marker)
        assert child.pid in marked and len(marked) == 2
        assert "ready" in child.tail() and "\x1b" not in child.tail()
    assert not child.alive
    assert processes_marked(child.marker) == []


def test_kill9_sweeps_the_detached_descendant_too(tmp_path: Path) -> None:
    child = _Script(tmp_path, DETACHED).start()
    deadline = time.monotonic() + 10
    while len(processes_marked(child.marker)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    child.kill9()
    assert child.proc is not None and child.proc.returncode == -signal.SIGKILL
    assert processes_marked(child.marker) == []


def test_a_child_that_exits_before_ready_is_an_error_with_its_output(tmp_path: Path) -> None:
    child = _Script(tmp_path, "import sys; print('cannot start: bad flag'); sys.exit(3)")
    with pytest.raises(FlowerProcessError, match=r"exited with 3:\ncannot start: bad flag"):
        child.start(timeout=30)


def test_a_taken_port_is_retried_with_another(tmp_path: Path) -> None:
    script = """
        import sys, time
        if sys.argv[1] == "0":
            print("ERROR: [Errno 98] error while attempting to bind: address already in use")
            sys.exit(1)
        print("ready 5", flush=True)
        time.sleep(60)
    """
    with _Script(tmp_path, script) as child:
        assert child.value == 5 and child.starts == 2 and child.ports == 1


def test_a_child_that_never_gets_ready_times_out_and_is_killed(tmp_path: Path) -> None:
    child = _Script(tmp_path, "import time; print('starting'); time.sleep(60)")
    with pytest.raises(FlowerTimeout, match="not ready in time:\nstarting"):
        child.start(timeout=1.5)
    assert not child.alive
    assert processes_marked(child.marker) == []


def test_end_processes_marked_leaves_unmarked_processes_alone(tmp_path: Path) -> None:
    env = {**flower_env(tmp_path), MARKER_ENV: "mine"}
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    marked = subprocess.Popen(sleeper, env=env)
    other = subprocess.Popen(sleeper, env={**env, MARKER_ENV: "someone-else"})
    try:
        deadline = time.monotonic() + 10
        while marked.pid not in processes_marked("mine") and time.monotonic() < deadline:
            time.sleep(0.05)
        end_processes_marked("mine", grace=5)
        assert marked.wait(5) == -signal.SIGTERM
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()


def test_processes_started_by_a_pid_are_those_of_its_markers_only(tmp_path: Path) -> None:
    """A marker is "<pid of the starter>-<uuid>": pid 77 must not claim the processes of pid 777."""
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    procs = {marker: subprocess.Popen(sleeper, env={**flower_env(tmp_path), MARKER_ENV: marker})
             for marker in ("77-a", "77-b", "777-a", "x77-a")}
    try:
        mine = {procs["77-a"].pid, procs["77-b"].pid}
        deadline = time.monotonic() + 10
        while set(processes_started_by(77)) != mine and time.monotonic() < deadline:
            time.sleep(0.05)
        assert set(processes_started_by(77)) == mine
        assert processes_started_by(777) == [procs["777-a"].pid]
        assert processes_marked("77-a") == [procs["77-a"].pid]
    finally:
        for proc in procs.values():
            proc.kill()
            proc.wait()


def test_a_childs_extra_environment_goes_on_top_of_this_processs(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARATRAIN_TEST_INHERITED", "kept")
    script = """
        import os, time
        print("ready", 1 if os.environ.get("PARATRAIN_TEST_INHERITED") == "kept"
              and os.environ.get("PARATRAIN_FL_KEY") == "sr25519:x" and os.environ.get("FLWR_HOME") else 0, flush=True)
        time.sleep(60)
    """
    with _Script(tmp_path, script, env={"PARATRAIN_FL_KEY": "sr25519:x"}) as child:
        assert child.value == 1
