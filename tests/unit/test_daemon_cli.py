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


# Where the daemons' key comes from ---------------------------------------------------------------
BOB = "5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty"


def key_of(argv: list[str], caplog) -> tuple[tuple[str, object] | None, list[logging.LogRecord]]:
    from paratrain.cli import build_parser
    from workers.daemon_cli import _load_key

    caplog.clear()
    with caplog.at_level(logging.WARNING):
        loaded = _load_key(build_parser().parse_args(argv), logging.getLogger("paratrain.test"))
    return loaded, [r for r in caplog.records if r.levelno >= logging.WARNING]


DAEMONS = [["worker", "--orchestrator", "127.0.0.1:1"], ["validator"]]


@pytest.mark.parametrize("daemon", DAEMONS)
def test_key_file_and_environment_load_without_a_warning(daemon, tmp_path, monkeypatch, caplog) -> None:
    monkeypatch.delenv("PARATRAIN_KEY", raising=False)
    secret = tmp_path / "bob.key"
    secret.write_text("//Bob\n")
    loaded, records = key_of([*daemon, "--key-file", str(secret)], caplog)
    assert loaded is not None and loaded[0] == str(secret) and loaded[1].ss58_address == BOB and not records

    monkeypatch.setenv("PARATRAIN_KEY", "//Bob")
    loaded, records = key_of(daemon, caplog)
    assert loaded is not None and loaded[1].ss58_address == BOB and not records


@pytest.mark.parametrize("daemon", DAEMONS)
def test_a_secret_on_the_command_line_works_with_one_warning(daemon, monkeypatch, caplog) -> None:
    from workers.keys import COMMAND_LINE_WARNING

    monkeypatch.delenv("PARATRAIN_KEY", raising=False)
    loaded, records = key_of([*daemon, "--key", "//Bob"], caplog)
    assert loaded is not None and loaded[1].ss58_address == BOB
    assert [r.getMessage() for r in records] == [COMMAND_LINE_WARNING]
    assert "--key-file" in COMMAND_LINE_WARNING and "$PARATRAIN_KEY" in COMMAND_LINE_WARNING


@pytest.mark.parametrize("daemon", DAEMONS)
def test_no_key_or_a_missing_key_file_is_one_error(daemon, tmp_path, monkeypatch, caplog) -> None:
    monkeypatch.delenv("PARATRAIN_KEY", raising=False)
    for argv, reason in (([], "no key given"), (["--key-file", str(tmp_path / "none")], "cannot read key file")):
        loaded, records = key_of([*daemon, *argv], caplog)
        assert loaded is None and len(records) == 1 and reason in records[0].getMessage()


def test_a_secret_on_the_command_line_is_warned_about_in_the_daemon_s_output(tmp_path) -> None:
    """The real command, in a subprocess: the warning and the refusal are one line each on stderr."""
    done = subprocess.run([sys.executable, "-m", "paratrain.cli", "validator", "--key", "//Bob//x",
                           "--key-file", str(tmp_path / "k")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "not allowed with argument" in done.stderr  # one source at a time
    done = subprocess.run([sys.executable, "-m", "paratrain.cli", "worker", "--orchestrator", "127.0.0.1:1",
                           "--key", "bottom drive obey lake //not a valid phrase"],
                          capture_output=True, text=True, timeout=60)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 2 and "Traceback" not in done.stderr
    assert "visible to other local users" in lines[0] and "not a valid secret URI" in lines[1]
    assert "bottom" not in done.stderr  # the secret is never repeated
