"""`paratrain demo`, the README's main command, end to end: the real console script as a subprocess.

The full run goes through devnet's default challenge period: the result is approved, then paid once the
period is over by the worker daemon's own finalize_result.

The demo runs in a session of its own with $TMPDIR pointing at a fresh directory, so everything it starts
can be found: its descendants (sampled from /proc while it runs: devnet and orchestrator threads live in
it, Ray's GCS, raylet, workers and Ray Train actors are processes), every process of its session, and
every process whose command line names that directory (Ray's processes name their session directory).
After it exits, none of them may be left, and the temporary directory must be empty.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("ray")
pytest.importorskip("matplotlib")

pytestmark = pytest.mark.slow  # runs `paratrain demo`: devnet, orchestrator, Ray, a worker and two validators

ROOT = Path(__file__).resolve().parents[2]
PARATRAIN = Path(sys.executable).parent / "paratrain"  # the console script installed with the package
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _stat(pid: int) -> tuple[int, int, int] | None:
    """(ppid, session id, start time) of a live process, or None."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2:].split()
    return int(fields[1]), int(fields[3]), int(fields[19])  # ppid, session, starttime


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


class DemoRun:
    """`paratrain demo` in its own session and $TMPDIR, with every process it starts recorded."""

    def __init__(self, *args: str) -> None:
        # short: Ray's socket paths (under the demo's temporary directory) must stay under 108 bytes
        self.tmpdir = Path(tempfile.mkdtemp(prefix="ptt-", dir="/tmp"))
        env = {**os.environ, "TMPDIR": str(self.tmpdir), "PYTHONUNBUFFERED": "1", "COLUMNS": "120"}
        env.pop("RAY_ADDRESS", None)
        self.proc = subprocess.Popen([str(PARATRAIN), "demo", *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, start_new_session=True)
        self.output: list[str] = []
        self.seen: dict[int, int] = {}  # pid -> start time (a reused pid is another process)
        self._reader = threading.Thread(target=lambda: self.output.extend(self.proc.stdout), daemon=True)
        self._reader.start()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    @property
    def text(self) -> str:
        return "".join(self.output)

    def _ours(self) -> dict[int, int]:
        """Processes that belong to the demo now: descendants, session members, users of its directory."""
        table = {pid: st for pid in _pids() if (st := _stat(pid)) is not None}
        found: dict[int, int] = {}
        frontier = [self.proc.pid]
        while frontier:
            parent = frontier.pop()
            for pid, (ppid, _, start) in table.items():
                if ppid == parent and pid not in found:
                    found[pid] = start
                    frontier.append(pid)
        for pid, (_, sid, start) in table.items():
            if pid != self.proc.pid and (sid == self.proc.pid or str(self.tmpdir) in _cmdline(pid)):
                found[pid] = start
        return found

    def _sample(self) -> None:
        while self.proc.poll() is None:
            self.seen.update(self._ours())
            time.sleep(0.3)

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            self._reader.join(5)

    def survivors(self, grace: float = 10.0) -> list[str]:
        """What is still alive of everything the demo started, after up to `grace` seconds."""
        deadline = time.monotonic() + grace
        while True:
            alive = {pid: start for pid, start in self.seen.items() if (st := _stat(pid)) and st[2] == start}
            alive.update({pid: start for pid, start in self._ours().items()})
            alive.pop(self.proc.pid, None)
            if not alive or time.monotonic() > deadline:
                return [f"{pid}: {_cmdline(pid)[:200]}" for pid in alive]
            time.sleep(0.5)

    def kill_leftovers(self) -> None:
        for pid in list(self.seen):
            st = _stat(pid)
            if st and st[2] == self.seen[pid]:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        shutil.rmtree(self.tmpdir, ignore_errors=True)


def test_the_demo_pays_the_worker_and_leaves_nothing_behind(tmp_path):
    out = tmp_path / "out"
    run = DemoRun("--out", str(out))
    try:
        started = time.monotonic()
        code = run.wait(240)
        seconds = time.monotonic() - started
        text = run.text
        print(text)
        print(f"demo: exit {code} in {seconds:.1f} s; {len(run.seen)} processes started")
        assert code == 0, text[-4000:]
        # the end: verdicts, payout, model record, balances, curve; and the reason for exit 0
        # devnet's default challenge period: approved first, paid by the worker's finalize_result after it
        for words in ("challenge period 5 s", "approved by 2 validators", "challenge period until",
                      "the challenge period ended unchallenged", "made by //Bob's finalize_result"):
            assert words in text, words
        assert text.index("approved by 2 validators") < text.index("accepted in block")
        for words in ("verdicts on task", "ACCEPT", "payout in block", "worker reward", "validator reward",
                      "on-chain model record", "model_hash", "trainer", "balances", "free before", "reserved",
                      "the bounty reached the worker", "everything stopped"):
            assert words in text, words
        assert "Traceback" not in text
        png = out / "paratrain-demo-curve.png"
        assert png.read_bytes()[:8] == PNG_SIGNATURE and png.stat().st_size > 10_000
        assert len(run.seen) >= 3, "the demo should have started a Ray cluster (processes)"
        assert run.survivors() == []
        assert list(run.tmpdir.glob("paratrain-*")) == [], "the temporary directory was not removed"
    finally:
        run.kill_leftovers()


def test_ctrl_c_stops_everything(tmp_path):
    run = DemoRun("--out", str(tmp_path))
    try:
        time.sleep(15)
        assert run.proc.poll() is None, run.text
        started = run.seen.copy()
        os.killpg(run.proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the whole foreground group
        sent = time.monotonic()
        code = run.wait(20)
        print(run.text)
        print(f"demo: exit {code} {time.monotonic() - sent:.1f} s after SIGINT; {len(started)} processes at 15 s")
        assert code != 0
        assert "interrupted" in run.text and "Traceback" not in run.text
        assert run.survivors() == []
        assert list(run.tmpdir.glob("paratrain-*")) == [], "the temporary directory was not removed"
        assert not (tmp_path / "paratrain-demo-curve.png").exists()
    finally:
        run.kill_leftovers()
