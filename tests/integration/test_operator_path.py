"""The market run as docs/quickstart.md runs it: every party its own process, driven by the command line only.

devnet, the orchestrator, a worker and two validators are `paratrain` daemons; the people are `paratrain`
commands: fresh keys (`account new`) funded by //Alice, `stake register` for a Trainer and two Validators with
detected capabilities, `task create` by //Alice, `task watch` until the payout, `task show` for the model's
hash, `model download` (through the worker's store, trusted by name), then every party `stake unregister`,
waits out the unbonding period (`stake show`) and `stake withdraw`s. No Python call crosses between parties:
the test reads the chain only through `paratrain ... show|balance` output. Each party has its own artifact
store; the worker trusts the requester's, the validators both the requester's and the worker's, as on
separate machines sharing those stores.

devnet authors a block a second (the unbonding period is 5 blocks: an idle instant-seal chain would never
reach it) and pays approved results at once (no challenge period); validators replay one segment.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import IO

import pytest

from paratrain.local import DevnetProcess

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]  # Ray, training, five daemons: minutes

ROOT = Path(__file__).resolve().parents[2]
FUNDS, TRAINER_STAKE, VALIDATOR_STAKE, BOUNTY = 1_000, 200, 100, 10
WORKER_SHARE, VALIDATOR_SHARE = Decimal("0.9"), Decimal("0.05")  # of the bounty (TaskBounties' split)
MAX_FEES = Decimal("0.1")  # all the fees one party pays over the run (about 0.00002 PARA each)


class Party:
    """A daemon in its own process, its output in a log file (never a pipe that could fill)."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], logs: Path) -> None:
        self.name, self.log_path = name, logs / f"{name}.log"
        self._log: IO[str] = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([sys.executable, "-m", "paratrain.cli", *argv], cwd=ROOT, env=env,
                                     stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT)

    def output(self) -> str:
        return self.log_path.read_text()

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(pattern, self.output())
            if match:
                return match
            assert self.proc.poll() is None, f"{self.name} exited: {self.output()[-3000:]}"
            time.sleep(0.2)
        raise AssertionError(f"{self.name}: no {pattern!r} in {timeout} s: {self.output()[-3000:]}")

    def stop(self, timeout: float = 30) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


def tokens(text: str, label: str) -> Decimal:
    """The amount on `label`'s line of `account balance` output ("free      1,008.98 PARA")."""
    match = re.search(rf"^{label}\s+([\d,.]+) PARA$", text, re.MULTILINE)
    assert match, text
    return Decimal(match.group(1).replace(",", ""))


@pytest.fixture
def market(tmp_path: Path) -> Iterator[Callable[..., subprocess.CompletedProcess[str]]]:
    """Yields `cli(*argv)`; the devnet runs meanwhile, and every Party started is stopped at the end."""
    with DevnetProcess("--block-time", "1000", "--verification-grace-ms", "600000") as node:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "PARATRAIN_CHAIN": node.ws_url,
               "PARATRAIN_HOME": str(tmp_path / "home"), "PARATRAIN_KEYSTORE": str(tmp_path / "keys"),
               "COLUMNS": "200"}  # `task show`'s panel unfolded: one line per field
        for name in ("PARATRAIN_KEY", "PARATRAIN_ORCHESTRATOR", "PARATRAIN_ARTIFACTS", "PARATRAIN_TRUSTED_STORES",
                     "PARATRAIN_KEY_PASSWORD", "RAY_ADDRESS"):
            env.pop(name, None)

        def cli(*argv: str, ok: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
            done = subprocess.run([sys.executable, "-m", "paratrain.cli", *argv], cwd=ROOT, env=env,
                                  capture_output=True, text=True, timeout=timeout, check=False)
            if ok:
                assert done.returncode == 0, f"paratrain {' '.join(argv)}: {done.stderr}"
            return done

        cli.env, cli.parties = env, []  # type: ignore[attr-defined]
        try:
            yield cli
        finally:
            for party in reversed(cli.parties):  # type: ignore[attr-defined]
                party.stop()


def test_the_market_from_the_command_line(market, tmp_path: Path) -> None:
    cli, env = market, market.env
    logs = tmp_path / "logs"
    logs.mkdir()

    def start(name: str, *argv: str) -> Party:
        party = Party(name, list(argv), env, logs)
        market.parties.append(party)
        return party

    # terminal 2: the orchestrator
    orchestrator = start("orchestrator", "orchestrator", "--listen", "127.0.0.1:0", "--db",
                         str(tmp_path / "orchestrator.db"), "--metrics-port", "0")
    target = orchestrator.wait_for(r"orchestrator listening on (\S+:\d+)", 60).group(1)

    # the operators: a key each, funded, staked; capabilities detected on this machine
    keys: dict[str, Path] = {}
    address: dict[str, str] = {}
    for name in ("trainer", "validator1", "validator2"):
        keys[name] = tmp_path / "keys" / f"{name}.json"
        created = cli("account", "new", "--out", str(keys[name]), "--no-password")
        address[name] = re.search(r"^address\s+(\S+)$", created.stdout, re.MULTILINE).group(1)
        cli("account", "transfer", address[name], str(FUNDS), "--key", "//Alice")
    registered = cli("stake", "register", "--role", "trainer", "--stake", str(TRAINER_STAKE),
                     "--key-file", str(keys["trainer"]))
    assert f"as a Trainer with {TRAINER_STAKE} PARA staked" in registered.stdout
    assert "warning" not in registered.stderr  # what was detected is what the machine has
    for name in ("validator1", "validator2"):
        cli("stake", "register", "--role", "validator", "--stake", str(VALIDATOR_STAKE), "--key-file", str(keys[name]))
    shown = cli("stake", "show", address["trainer"]).stdout
    assert re.search(r"^status\s+active$", shown, re.MULTILINE) and "open claims    0" in shown

    # the stores: each party its own; who reads whose is named with --trust-store
    requester, worker_store = tmp_path / "stores" / "alice", tmp_path / "stores" / "trainer"
    start("worker", "worker", "--orchestrator", target, "--key-file", str(keys["trainer"]),
          "--store", str(worker_store), "--trust-store", str(requester),
          "--state-dir", str(tmp_path / "trainer-state"), "--no-metrics")
    for name in ("validator1", "validator2"):
        start(name, "validator", "--key-file", str(keys[name]), "--store", str(tmp_path / "stores" / name),
              "--trust-store", str(requester), "--trust-store", str(worker_store), "--spot-checks", "1",
              "--state-dir", str(tmp_path / f"{name}-state"), "--no-metrics")
    alice_before = cli("account", "balance", "--key", "//Alice").stdout

    # the requester
    created = cli("task", "create", "--recipe", "digits_mlp", "--dataset", "digits", "--bounty", str(BOUNTY),
                  "--validators", "2", "--hyperparameters", "epochs=2", "--target", "0.5", "--store", str(requester),
                  "--key", "//Alice")
    task_id = int(created.stdout.strip().splitlines()[-1])
    watched = cli("task", "watch", str(task_id), "--orchestrator", target, "--timeout", "600", timeout=660)
    assert f"task {task_id} is Accepted" in watched.stderr, watched.stderr + "".join(
        party.output()[-2000:] for party in market.parties)

    record = cli("task", "show", str(task_id)).stdout
    model_hash = re.search(r"model hash\s+(0x[0-9a-f]{64})", record).group(1)
    weights = tmp_path / "model.bin"
    downloaded = cli("model", "download", model_hash, "--out", str(weights), "--store", str(tmp_path / "stores" / "me"),
                     "--trust-store", str(worker_store))
    assert downloaded.stdout.strip() == str(weights) and weights.stat().st_size > 0
    assert "hash verified" in downloaded.stderr

    # the operators leave: the daemons stop, the stakes unbond, then come back (withdrawing too early is
    # refused in test_stake_refusals.py, on an instant-seal chain: here each command takes seconds, blocks do not)
    for party in market.parties[1:]:
        assert party.stop() == 0, party.output()[-3000:]
    shown = cli("stake", "show", address["trainer"]).stdout
    assert re.search(r"^completed\s+1$", shown, re.MULTILINE) and re.search(r"^slashed\s+0 PARA$", shown, re.MULTILINE)
    for name in keys:
        left = cli("stake", "unregister", "--key-file", str(keys[name]))
        assert "unbonding" in left.stdout
    deadline = time.monotonic() + 60
    while "withdrawable now" not in cli("stake", "show", address["validator2"]).stdout:
        assert time.monotonic() < deadline, "the unbonding period did not end"
        time.sleep(1)
    for name in keys:
        assert "withdrew" in cli("stake", "withdraw", "--key-file", str(keys[name])).stdout
        assert "registered  no" in cli("stake", "show", address[name]).stdout

    # the balances: stakes back, the bounty split among worker and validators, less fees
    for name, share in (("trainer", WORKER_SHARE), ("validator1", VALIDATOR_SHARE), ("validator2", VALIDATOR_SHARE)):
        balance = cli("account", "balance", address[name]).stdout
        assert tokens(balance, "reserved") == 0, balance
        paid = FUNDS + share * BOUNTY
        assert paid - MAX_FEES < tokens(balance, "free") < paid, (name, balance)
    alice_after = cli("account", "balance", "--key", "//Alice").stdout
    spent = tokens(alice_before, "free") - tokens(alice_after, "free")
    assert BOUNTY <= spent < BOUNTY + MAX_FEES, (alice_before, alice_after)
    assert tokens(alice_after, "reserved") == tokens(alice_before, "reserved")
