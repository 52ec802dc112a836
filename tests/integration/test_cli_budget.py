"""`paratrain budget set|lower|show` against a real devnet process: a budget is set once, shown with what a
private task reserved, lowered only by its owner and never raised or below what is committed; every refusal
is one line naming the PrivacyBudgets error and changes nothing on chain. Commands run in-process
(`paratrain.cli.main`, output captured), the no-traceback check as the console script, as
tests/integration/test_cli_people.py does."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from paratrain.cli import main
from runtime_bindings import Chain, Keypair
from runtime_bindings.generated import types as t
from runtime_bindings.privacy import noise_key_hash
from runtime_bindings.values import H256

pytestmark = pytest.mark.slow  # a devnet process

UNIT = 10**12
ROOT = Path(__file__).resolve().parents[2]
ALICE, BOB = Keypair.create_from_uri("//Alice"), Keypair.create_from_uri("//Bob")
DATA = "0x" + "5a" * 32
MISSING = "0x" + "5b" * 32


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch, devnet):
    monkeypatch.setenv("PARATRAIN_CHAIN", devnet.ws_url)
    monkeypatch.setenv("PARATRAIN_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PARATRAIN_KEYSTORE", str(tmp_path / "keys"))
    monkeypatch.setenv("PARATRAIN_KEY", "//Alice")  # the owner (no --key warning: errors are one line)
    for name in ("PARATRAIN_ORCHESTRATOR", "PARATRAIN_KEY_PASSWORD"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def chain(devnet):
    with Chain.connect(devnet.ws_url, timeout=10) as c:
        yield c


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def refused(capsys, chain: Chain, error: str, *argv: str) -> str:
    """The command fails with one line naming PrivacyBudgets.`error`, and the budget is as it was."""
    before = chain.privacy_budgets.budgets(DATA)
    code, out, err = run(capsys, *argv)
    assert code == 2 and not out, out
    assert len(err.strip().splitlines()) == 1 and f"PrivacyBudgets.{error}" in err, err
    assert chain.privacy_budgets.budgets(DATA) == before
    return err


def private_task(chain: Chain, cap: int) -> int:
    spec = t.TaskSpec(recipe="digits_mlp", spec_hash="0x" + "11" * 32, spec_uri="file:///specs/x", dataset_hash=DATA,
                      eval_metric="accuracy", eval_target=800_000, higher_is_better=True,
                      requirements=t.Requirements(1, 0, 512), parent_model=None)
    privacy = t.DpSpec(accountant=t.Accountant.Prv, epsilon_cap=cap, delta=10_000_000_000, max_grad_norm=1_000_000,
                       noise_multiplier=1_100_000, noise_key_hash=H256(noise_key_hash(bytes(32))))
    receipt = chain.task_bounties.create_private_task(ALICE, spec, privacy, 10 * UNIT, 0, chain.best_number() + 500,
                                                      1, None)
    return int(next(e.task_id for e in receipt.events if e.name == "TaskCreated"))


def test_set_show_lower_and_every_refusal(capsys, chain, monkeypatch):
    refused(capsys, chain, "NoBudget", "budget", "show", MISSING)
    code, out, err = run(capsys, "budget", "set", DATA, "--epsilon", "8", "--delta", "1e-4")
    assert code == 0, err
    assert f"budget of {DATA} set to epsilon 8.0, delta 0.0001" in out and ALICE.ss58_address in out
    budget = chain.privacy_budgets.budgets(DATA)
    assert (budget.owner, budget.epsilon, budget.delta) == (ALICE.ss58_address, 8_000_000, 10**11)

    monkeypatch.setenv("PARATRAIN_KEY", "//Bob")
    refused(capsys, chain, "BudgetExists", "budget", "set", DATA.removeprefix("0x"), "--epsilon", "9", "--delta",
            "1e-4")
    monkeypatch.setenv("PARATRAIN_KEY", "//Alice")
    refused(capsys, chain, "InvalidPrivacyParams", "budget", "set", MISSING, "--epsilon", "101", "--delta", "1e-5")
    refused(capsys, chain, "InvalidPrivacyParams", "budget", "set", MISSING, "--epsilon", "1", "--delta", "0.01")
    code, _, err = run(capsys, "budget", "set", MISSING, "--epsilon", "1.0000001", "--delta", "1e-5")
    assert code == 2 and "at most 6 decimals" in err and chain.privacy_budgets.budgets(MISSING) is None

    task = private_task(chain, 3_000_000)
    code, out, err = run(capsys, "budget", "show", DATA)
    assert code == 0, err
    rows = dict(re.split(r"\s{2,}", line, maxsplit=1) for line in out.strip().splitlines())
    assert rows["budget"] == "epsilon 8.0, delta 0.0001"
    assert rows["spent"] == "epsilon 0.0, delta 0.0"
    assert rows["reserved"] == "epsilon 3.0, delta 1e-05"
    assert rows["remaining"] == "epsilon 5.0, delta 9e-05"
    assert rows["reservation"] == f"bounty task {task}: epsilon 3.0, delta 1e-05"
    assert rows["owner"] == ALICE.ss58_address

    monkeypatch.setenv("PARATRAIN_KEY", "//Bob")
    refused(capsys, chain, "NotBudgetOwner", "budget", "lower", DATA, "--epsilon", "4", "--delta", "1e-4")
    monkeypatch.setenv("PARATRAIN_KEY", "//Alice")
    refused(capsys, chain, "CannotRaiseBudget", "budget", "lower", DATA, "--epsilon", "8.5", "--delta", "1e-4")
    refused(capsys, chain, "BelowCommitted", "budget", "lower", DATA, "--epsilon", "2.999999", "--delta", "1e-4")
    refused(capsys, chain, "NoBudget", "budget", "lower", MISSING, "--epsilon", "1", "--delta", "1e-5")
    code, out, err = run(capsys, "budget", "lower", DATA, "--epsilon", "3", "--delta", "1e-5")
    assert code == 0, err
    assert "lowered to epsilon 3.0, delta 1e-05" in out
    budget = chain.privacy_budgets.budgets(DATA)
    assert (budget.epsilon, budget.delta, budget.reserved_epsilon) == (3_000_000, 10_000_000_000, 3_000_000)


def test_a_refusal_is_one_line_without_a_traceback():
    exe = Path(sys.executable).parent / "paratrain"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "paratrain.cli"]
    proc = subprocess.run([*cmd, "budget", "show", "0x" + "5c" * 32], capture_output=True, text=True, timeout=120,
                          cwd=ROOT, check=False, env=dict(os.environ))
    assert proc.returncode == 2 and not proc.stdout
    assert proc.stderr.strip().startswith("error:") and len(proc.stderr.strip().splitlines()) == 1
    assert "PrivacyBudgets.NoBudget" in proc.stderr and "Traceback" not in proc.stderr
