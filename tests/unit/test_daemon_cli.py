"""`paratrain worker` / `paratrain validator` start-up: user errors are one log line and status 2, and the
stop signals behave as documented (the first stops, a second exits at once)."""
from __future__ import annotations

import logging
import subprocess
import sys
import textwrap

import pytest

from paratrain.cli import main


@pytest.mark.parametrize("argv", [["worker", "--orchestrator", "127.0.0.1:1", "--key", "not a key"],
                                  ["validator", "--key", "not a key", "--chain", "ws://127.0.0.1:1"]])
def test_a_bad_key_is_one_line_and_status_2(argv, caplog) -> None:
    with caplog.at_level(logging.ERROR):
        assert main(argv) == 2
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "not a valid secret URI" in errors[0].getMessage() and errors[0].exc_info is None


def test_first_signal_stops_second_exits_at_once() -> None:
    script = textwrap.dedent("""
        import os, signal, sys, time
        from workers.daemon_cli import _stop_on_signals
        seen = []
        _stop_on_signals(seen.append)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.1)
        print(seen, flush=True)
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)
        sys.exit(0)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "['SIGTERM']"
    assert done.returncode == 130
