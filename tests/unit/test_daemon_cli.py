"""`paratrain worker` / `paratrain validator` start-up: user errors are one CliError line and status 2, as for
every command, and the stop signals behave as documented (the first stops, a second exits at once)."""
from __future__ import annotations

import logging
import subprocess
import sys
import textwrap

import pytest

from paratrain.cli import main


@pytest.mark.parametrize("argv", [["worker", "--orchestrator", "127.0.0.1:1", "--key", "not a key"],
                                  ["validator", "--key", "not a key", "--chain", "ws://127.0.0.1:1"]])
def test_a_bad_key_is_one_line_and_status_2(argv, capsys) -> None:
    assert main(argv) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: ") and "not a valid secret URI" in line


def test_first_signal_stops_second_exits_at_once() -> None:
    script = textwrap.dedent("""
        import os, signal, sys, time
        from workers._daemon_base import stop_on_signals
        seen = []
        stop_on_signals(seen.append)
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


def key_of(argv: list[str], caplog) -> tuple[tuple[str, object] | str, list[logging.LogRecord]]:
    """(the daemon's key and keypair, or the CliError's message; the warnings logged)."""
    from paratrain.cli import CliError, build_parser
    from paratrain.commands.daemons import _load_key

    caplog.clear()
    with caplog.at_level(logging.WARNING):
        try:
            loaded: tuple[str, object] | str = _load_key(build_parser().parse_args(argv),
                                                         logging.getLogger("paratrain.test"))
        except CliError as exc:
            loaded = str(exc)
    return loaded, [r for r in caplog.records if r.levelno >= logging.WARNING]


DAEMONS = [["worker", "--orchestrator", "127.0.0.1:1"], ["validator"]]


@pytest.mark.parametrize("daemon", DAEMONS)
def test_key_file_and_environment_load_without_a_warning(daemon, tmp_path, monkeypatch, caplog) -> None:
    monkeypatch.delenv("PARATRAIN_KEY", raising=False)
    secret = tmp_path / "bob.key"
    secret.write_text("//Bob\n")
    loaded, records = key_of([*daemon, "--key-file", str(secret)], caplog)
    assert not isinstance(loaded, str) and loaded[0] == str(secret) and loaded[1].ss58_address == BOB and not records

    monkeypatch.setenv("PARATRAIN_KEY", "//Bob")
    loaded, records = key_of(daemon, caplog)
    assert not isinstance(loaded, str) and loaded[1].ss58_address == BOB and not records


@pytest.mark.parametrize("daemon", DAEMONS)
def test_a_secret_on_the_command_line_works_with_one_warning(daemon, monkeypatch, caplog) -> None:
    from workers.keys import COMMAND_LINE_WARNING

    monkeypatch.delenv("PARATRAIN_KEY", raising=False)
    loaded, records = key_of([*daemon, "--key", "//Bob"], caplog)
    assert not isinstance(loaded, str) and loaded[1].ss58_address == BOB
    assert [r.getMessage() for r in records] == [COMMAND_LINE_WARNING]
    assert "--key-file" in COMMAND_LINE_WARNING and "$PARATRAIN_KEY" in COMMAND_LINE_WARNING


@pytest.mark.parametrize("daemon", DAEMONS)
def test_no_key_or_a_missing_key_file_is_one_error(daemon, tmp_path, monkeypatch, caplog) -> None:
    monkeypatch.delenv("PARATRAIN_KEY", raising=False)
    for argv, reason in (([], "no key given"), (["--key-file", str(tmp_path / "none")], "cannot read key file")):
        loaded, records = key_of([*daemon, *argv], caplog)
        assert isinstance(loaded, str) and reason in loaded and not records


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


# Where the daemons' chain comes from -------------------------------------------------------------
ENV_CHAIN = "ws://chain.from.env:9944"


@pytest.mark.parametrize(("daemon", "config"), [(["worker", "--orchestrator", "127.0.0.1:1"], "worker_config"),
                                                (["validator"], "validator_config")])
def test_worker_and_validator_follow_paratrain_chain(daemon, config, monkeypatch) -> None:
    from paratrain.cli import build_parser
    from paratrain.commands import daemons
    from paratrain_api.endpoints import DEFAULT_CHAIN_URL

    make = getattr(daemons, config)
    monkeypatch.delenv("PARATRAIN_CHAIN", raising=False)
    assert make(build_parser().parse_args(daemon), "//Bob").chain_url == DEFAULT_CHAIN_URL
    monkeypatch.setenv("PARATRAIN_CHAIN", ENV_CHAIN)
    assert make(build_parser().parse_args(daemon), "//Bob").chain_url == ENV_CHAIN
    given = build_parser().parse_args([*daemon, "--chain", "ws://given:1"])
    assert make(given, "//Bob").chain_url == "ws://given:1"


def test_orchestrator_follows_paratrain_chain_below_its_own_setting(monkeypatch) -> None:
    """`paratrain orchestrator` as run: $PARATRAIN_CHAIN is its chain unless its own variable or --chain says
    otherwise."""
    import orchestrator.service

    served = []

    async def serve(config) -> int:
        served.append(config.chain_url)
        return 0

    monkeypatch.setattr(orchestrator.service, "run_orchestrator", serve)
    for name in ("PARATRAIN_CHAIN", "PARATRAIN_ORCHESTRATOR_CHAIN_URL", "PARATRAIN_ORCHESTRATOR_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PARATRAIN_CHAIN", ENV_CHAIN)
    assert main(["orchestrator"]) == 0
    monkeypatch.setenv("PARATRAIN_ORCHESTRATOR_CHAIN_URL", "ws://orchestrator.own:9944")
    assert main(["orchestrator"]) == 0
    assert main(["orchestrator", "--chain", "ws://given:1"]) == 0
    assert served == [ENV_CHAIN, "ws://orchestrator.own:9944", "ws://given:1"]
