"""`paratrain stake` refusing bad input against a real devnet process: one line naming the pallet error and what
to do, and nothing changed on chain (no block authored on the instant-seal node: nothing was even submitted,
so no fee was paid either). The set-up of claims and verdicts uses the bindings; what is tested is the CLI.

Also: the worker daemon refuses to start when its account declared more than the machine has.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from forgeries import placeholder_attestation

from paratrain.cli import main
from runtime_bindings import AttestationCodec, Chain, Keypair
from runtime_bindings.generated import types as t

pytestmark = pytest.mark.slow  # a devnet process, some thirty CLI runs and a worker daemon's start: ~30 s

UNIT = 10**12
ROOT = Path(__file__).resolve().parents[2]
ALICE = Keypair.create_from_uri("//Alice")


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch, devnet):
    monkeypatch.setenv("PARATRAIN_CHAIN", devnet.ws_url)
    monkeypatch.setenv("PARATRAIN_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PARATRAIN_ARTIFACTS", str(tmp_path / "store"))
    for name in ("PARATRAIN_KEY", "PARATRAIN_ORCHESTRATOR", "PARATRAIN_KEY_PASSWORD"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def chain(devnet):
    with Chain.connect(devnet.ws_url, timeout=10) as c:
        yield c


def funded(chain: Chain, name: str, tokens: int = 1_000) -> tuple[str, Keypair]:
    """A fresh account with `tokens` free: (its secret URI, its keypair)."""
    uri = f"//paratrain/stake/{name}"
    keypair = Keypair.create_from_uri(uri)
    chain.balances.transfer_keep_alive(ALICE, keypair.ss58_address, tokens * UNIT)
    return uri, keypair


def stake(capsys, monkeypatch, key: str, *argv: str) -> tuple[int, str, str]:
    """`paratrain stake ...` signed by `key` (from $PARATRAIN_KEY: no argv warning on stderr)."""
    monkeypatch.setenv("PARATRAIN_KEY", key)
    code = main(["stake", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def snapshot(chain: Chain, who: str) -> tuple[Any, ...]:
    return chain.best_number(), chain.workers.workers(who), chain.system.account(who).data


def refused(result: tuple[int, str, str], *phrases: str) -> str:
    code, out, err = result
    assert code == 2 and out == "", (code, out, err)
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: "), err
    for phrase in phrases:
        assert phrase in err, err
    return err


def test_a_stake_below_the_minimum(capsys, monkeypatch, chain):
    key, kp = funded(chain, "small")
    before = snapshot(chain, kp.ss58_address)
    err = refused(stake(capsys, monkeypatch, key, "register", "--role", "trainer", "--stake", "99.5"),
                  "Workers.InsufficientStake", "below MinTrainerStake (100 PARA)", "--stake")
    assert "99.5 PARA" in err
    refused(stake(capsys, monkeypatch, key, "register", "--role", "validator", "--stake", "10"),
            "Workers.InsufficientStake", "below MinValidatorStake (50 PARA)")
    assert snapshot(chain, kp.ss58_address) == before


def test_registering_twice(capsys, monkeypatch, chain):
    key, kp = funded(chain, "twice")
    code, out, err = stake(capsys, monkeypatch, key, "register", "--role", "validator", "--stake", "60",
                           "--cpus", "1", "--memory-mb", "512")
    assert code == 0, err
    assert f"registered {kp.ss58_address} as a Validator with 60 PARA staked" in out and "1 CPU, 0 GPUs, 512 MiB" in out
    info = chain.workers.workers(kp.ss58_address)
    assert info.role == "Validator" and info.stake == 60 * UNIT and info.capabilities.cpus == 1
    before = snapshot(chain, kp.ss58_address)
    refused(stake(capsys, monkeypatch, key, "register", "--role", "trainer", "--stake", "200"),
            "Workers.AlreadyRegistered", "already registered as a Validator", "stake bond-extra")
    assert snapshot(chain, kp.ss58_address) == before


def test_unregistering_with_an_open_claim_and_with_a_pending_verdict(capsys, monkeypatch, chain):
    trainer_key, trainer = funded(chain, "claimer")
    validator_key, validator = funded(chain, "voter")
    assert stake(capsys, monkeypatch, trainer_key, "register", "--role", "trainer", "--stake", "100")[0] == 0
    assert stake(capsys, monkeypatch, validator_key, "register", "--role", "validator", "--stake", "50")[0] == 0
    monkeypatch.setenv("PARATRAIN_KEY", "//Alice")
    assert main(["task", "create", "--recipe", "digits_mlp", "--bounty", "5", "--validators", "2",
                 "--deadline-blocks", "500"]) == 0
    task_id = int(capsys.readouterr().out.strip().splitlines()[-1])
    chain.task_bounties.claim_task(trainer, task_id)

    before = snapshot(chain, trainer.ss58_address)
    refused(stake(capsys, monkeypatch, trainer_key, "unregister"),
            "Workers.HasActiveClaims", f"1 open claim (task {task_id})", "settled")
    assert snapshot(chain, trainer.ss58_address) == before
    code, out, _ = stake(capsys, monkeypatch, trainer_key, "show")
    assert code == 0 and f"open claims    1 (task {task_id})" in out and "unregistering is refused" in out

    attestation = placeholder_attestation(task_id, trainer.ss58_address,
                                          chain.task_bounties.tasks(task_id).spec.dataset_hash)
    signature = AttestationCodec.from_chain(chain).multi_signature(attestation, trainer)
    chain.task_bounties.submit_result(trainer, task_id, attestation, signature)
    chain.task_bounties.submit_verdict(validator, task_id, t.Verdict(True, 960_000, "0x" + "22" * 32))
    before = snapshot(chain, validator.ss58_address)
    refused(stake(capsys, monkeypatch, validator_key, "unregister"),
            "Workers.HasPendingVerdicts", "1 verdict on results not yet settled")
    assert snapshot(chain, validator.ss58_address) == before


def test_withdrawing_before_the_unbonding_period(capsys, monkeypatch, chain):
    key, kp = funded(chain, "leaver")
    before = snapshot(chain, kp.ss58_address)
    refused(stake(capsys, monkeypatch, key, "withdraw"), "Workers.NotRegistered", "stake register")
    refused(stake(capsys, monkeypatch, key, "unregister"), "Workers.NotRegistered")
    assert snapshot(chain, kp.ss58_address) == before

    assert stake(capsys, monkeypatch, key, "register", "--role", "trainer", "--stake", "150")[0] == 0
    before = snapshot(chain, kp.ss58_address)
    refused(stake(capsys, monkeypatch, key, "withdraw"), "Workers.NotUnbonding", "stake unregister")
    assert snapshot(chain, kp.ss58_address) == before

    code, out, err = stake(capsys, monkeypatch, key, "unregister")
    assert code == 0, err
    unlock_at = chain.workers.workers(kp.ss58_address).status.unlock_at
    period = int(chain.constant("Workers", "UnbondingPeriod"))
    assert unlock_at == chain.best_number() + period and f"from block #{unlock_at}" in out
    before = snapshot(chain, kp.ss58_address)
    refused(stake(capsys, monkeypatch, key, "withdraw"), "Workers.StillUnbonding",
            f"ends at block #{unlock_at}, {period} blocks from now")
    refused(stake(capsys, monkeypatch, key, "unregister"), "Workers.AlreadyUnbonding", f"#{unlock_at}")
    refused(stake(capsys, monkeypatch, key, "bond-extra", "5"), "Workers.NotActive")
    assert snapshot(chain, kp.ss58_address) == before
    code, out, _ = stake(capsys, monkeypatch, key, "show")
    assert code == 0 and f"unbonding: withdrawable from block #{unlock_at} ({period} blocks from now)" in out

    # instant seal: blocks come with transactions; once past unlock_at the stake comes back
    for _ in range(period):
        chain.balances.transfer_keep_alive(ALICE, Keypair.create_from_uri("//Bob").ss58_address, UNIT)
    code, out, err = stake(capsys, monkeypatch, key, "withdraw")
    assert code == 0, err
    assert "withdrew 150 PARA" in out
    assert chain.workers.workers(kp.ss58_address) is None
    assert chain.system.account(kp.ss58_address).data.reserved == 0


def test_bond_extra_update_capabilities_and_show(capsys, monkeypatch, chain):
    key, kp = funded(chain, "grower")
    assert stake(capsys, monkeypatch, key, "register", "--role", "trainer", "--stake", "100", "--cpus", "1",
                 "--memory-mb", "1024")[0] == 0
    before = snapshot(chain, kp.ss58_address)
    refused(stake(capsys, monkeypatch, key, "bond-extra", "0"), "Workers.ZeroAmount")
    refused(stake(capsys, monkeypatch, key, "bond-extra", "5000"), "insufficient balance")
    refused(stake(capsys, monkeypatch, key, "update-capabilities", "--gpus", "1", "--gpu-model", "x" * 65),
            "Workers.GpuModelTooLong", "MaxGpuModelLen (64)")
    assert snapshot(chain, kp.ss58_address) == before

    code, out, err = stake(capsys, monkeypatch, key, "bond-extra", "25")
    assert code == 0 and "125 PARA staked" in out, err
    code, out, err = stake(capsys, monkeypatch, key, "update-capabilities", "--cpus", "4096", "--memory-mb", "2048")
    assert code == 0, err
    assert "4096 CPUs declared" in err and "refuse to start" in err  # a warning: the worker may run elsewhere
    caps = chain.workers.workers(kp.ss58_address).capabilities
    assert (caps.cpus, caps.memory_mb) == (4096, 2048)
    code, out, _ = stake(capsys, monkeypatch, key, "show")
    assert code == 0
    for line in ("role           Trainer", "stake          125 PARA (reserved)", "status         active",
                 "capabilities   4096 CPUs, 0 GPUs, 2,048 MiB", "open claims    0", "completed      0",
                 "slashed        0 PARA"):
        assert line in out, out
    # anyone's record by address, no key needed
    monkeypatch.delenv("PARATRAIN_KEY")
    assert main(["stake", "show", kp.ss58_address]) == 0 and "125 PARA" in capsys.readouterr().out


def test_the_worker_refuses_a_declaration_beyond_its_machine(capsys, monkeypatch, chain, devnet, tmp_path):
    key, kp = funded(chain, "boaster")
    code, _, err = stake(capsys, monkeypatch, key, "register", "--role", "trainer", "--stake", "100",
                         "--cpus", "4096")
    assert code == 0 and "refuse to start" in err and chain.workers.workers(kp.ss58_address).capabilities.cpus == 4096
    env = {**os.environ, "PARATRAIN_CHAIN": devnet.ws_url, "PARATRAIN_KEY": key}
    # no orchestrator listens there: the refusal comes before the worker contacts one (or starts Ray)
    proc = subprocess.run([sys.executable, "-m", "paratrain.cli", "worker", "--orchestrator", "127.0.0.1:9",
                           "--no-metrics", "--state-dir", str(tmp_path / "state")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode != 0, proc
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "4096 CPUs declared" in lines[0] and "paratrain stake update-capabilities" in lines[0], lines
