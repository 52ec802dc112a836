"""Runs `paratrain devnet` as a real subprocess on a free loopback port, for tests and benchmarks."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

_LISTENING = re.compile(r"listening on ws://([\d.]+):(\d+)")


class DevnetProcess:
    def __init__(self, *args: str) -> None:
        # Tests pay out at once unless they test the challenge period: its 5 s default would slow them all.
        given = any(a.split("=", 1)[0] == "--challenge-period-ms" for a in args)
        period = [] if given else ["--challenge-period-ms", "0"]
        self.args = ["--port", "0", *period, *args]
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0
        self.output: list[str] = []  # the node's output after start-up, drained so the pipe never fills

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> "DevnetProcess":
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "paratrain.cli", "devnet", *self.args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
            cwd=Path(__file__).resolve().parents[1],
        )
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"devnet exited with {self.proc.wait()}")
            match = _LISTENING.search(line)
            if match:
                self.port = int(match.group(2))
                threading.Thread(target=self._drain, daemon=True).start()
                return self
        raise TimeoutError("devnet did not start")

    def _drain(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)

    def stop(self, sig: int = signal.SIGINT, timeout: float = 15) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()

    def kill9(self) -> None:
        self.stop(signal.SIGKILL)

    def __enter__(self) -> "DevnetProcess":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
