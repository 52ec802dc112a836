"""The command line for people (`paratrain task|account|model`) against a real devnet process.

Commands run in-process (`paratrain.cli.main`, output captured with capsys); the no-traceback
checks run the console script as a subprocess. The curve test starts a real orchestrator and
posts progress through the worker API from a registered Trainer that claimed the task.
"""
from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from forgeries import placeholder_attestation

from paratrain.cli import main
from runtime_bindings import Chain, Keypair

pytestmark = pytest.mark.slow  # starts an orchestrator and waits out challenge periods on a devnet

UNIT = 10**12
ROOT = Path(__file__).resolve().parents[2]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch, devnet):
    monkeypatch.setenv("PARATRAIN_CHAIN", devnet.ws_url)
    monkeypatch.setenv("PARATRAIN_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PARATRAIN_ARTIFACTS", str(tmp_path / "store"))
    monkeypatch.setenv("PARATRAIN_KEYSTORE", str(tmp_path / "keys"))
    for name in ("PARATRAIN_KEY", "PARATRAIN_ORCHESTRATOR", "PARATRAIN_KEY_PASSWORD"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def chain(devnet):
    with Chain.connect(devnet.ws_url, timeout=10) as c:
        yield c


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def script(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / "paratrain"
    cmd = [str(exe), *argv] if exe.exists() else [sys.executable, "-m", "paratrain.cli", *argv]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=ROOT, check=False,
                          env={**os.environ, **(env or {})})


def create_task(capsys, *extra: str, key: str = "//Alice") -> int:
    code, out, err = run(capsys, "task", "create", "--recipe", "digits_mlp", "--dataset", "digits", "--bounty", "10",
                         "--deadline-blocks", "500", "--validators", "1", "--hyperparameters", "epochs=2", "lr=0.01",
                         "--key", key, *extra)
    assert code == 0, err
    return int(out.strip().splitlines()[-1])


# account ----------------------------------------------------------------------------------------
def test_account_new_show_balance_transfer(capsys, tmp_path, chain):
    keyfile = tmp_path / "me.json"
    code, out, err = run(capsys, "account", "new", "--out", str(keyfile), "--no-password")
    assert code == 0, err
    assert stat.S_IMODE(keyfile.stat().st_mode) == 0o600
    doc = json.loads(keyfile.read_text())
    address = doc["address"]
    assert address in out
    assert doc["secretPhrase"] not in out + err  # never printed without --show-secret
    assert "--show-secret" in err

    code, _, _ = run(capsys, "account", "new", "--out", str(keyfile), "--no-password")
    assert code == 2 and keyfile.read_text() == json.dumps(doc, indent=2) + "\n"

    code, out, _ = run(capsys, "account", "show", "--key", str(keyfile))
    assert code == 0 and address in out and "0x" + Keypair(ss58_address=address).public_key.hex() in out

    code, out, err = run(capsys, "account", "transfer", address, "2.5", "--key", "//Alice")
    assert code == 0, err
    assert "sent 2.5 PARA" in out
    assert chain.system.account(address).data.free == 25 * UNIT // 10

    code, out, _ = run(capsys, "account", "balance", "--key", str(keyfile))
    assert code == 0
    assert "free      2.5 PARA" in out and "reserved  0 PARA" in out

    bob = Keypair.create_from_uri("//Bob").ss58_address
    code, out, err = run(capsys, "account", "transfer", bob, "1", "--key", str(keyfile))
    assert code == 0, err
    code, out, _ = run(capsys, "account", "balance", address)
    assert code == 0 and "free      1.4" in out  # 1.5 less the fee


def test_account_new_show_secret(capsys, tmp_path):
    code, out, _ = run(capsys, "account", "new", "--out", str(tmp_path / "k.json"), "--show-secret", "--no-password")
    assert code == 0
    assert json.loads((tmp_path / "k.json").read_text())["secretPhrase"] in out


def test_insufficient_balance(capsys, tmp_path, monkeypatch):
    poor = Keypair.create_from_uri("//paratrain/cli/poor")
    code, _, err = run(capsys, "account", "transfer", poor.ss58_address, "3", "--key", "//Alice")
    assert code == 0, err
    monkeypatch.setenv("PARATRAIN_KEY", "//paratrain/cli/poor")  # no --key warning: the error is the one line
    code, _, err = run(capsys, "account", "transfer", Keypair.create_from_uri("//Bob").ss58_address, "1000")
    assert code == 2
    assert err.startswith("error: insufficient balance") and len(err.strip().splitlines()) == 1
    # a bounty above the balance: the reserve fails, the same clear message
    code, _, err = run(capsys, "task", "create", "--recipe", "digits_mlp", "--bounty", "500")
    assert code == 2 and "insufficient balance" in err and "Traceback" not in err


# task -------------------------------------------------------------------------------------------
def test_task_create_list_show_cancel(capsys, tmp_path, chain):
    from workers.artifacts import ArtifactStore
    from workers.engine import total_steps
    from workers.spec import decode_spec

    before = chain.system.account(Keypair.create_from_uri("//Alice").ss58_address).data.reserved
    task_id = create_task(capsys)
    task = chain.task_bounties.tasks(task_id)
    assert task.bounty == 10 * UNIT and task.validators_required == 1 and task.status == "Open"
    # the spec document is in the store under its hash, and says what was asked
    raw = ArtifactStore(tmp_path / "store").fetch(task.spec.spec_uri.text, task.spec.spec_hash.hex())
    spec = decode_spec(raw, require_canonical=True)
    assert spec.recipe == "digits_mlp" and spec.hyperparameters == {"epochs": 2, "lr": 0.01}
    # no --checkpoint-every on a short run (44 steps): a checkpoint after every step
    assert total_steps(spec, ArtifactStore(tmp_path / "store")) == 44 and spec.checkpoint_every == 1
    assert spec.dataset.hash == task.spec.dataset_hash.hex()
    assert ArtifactStore(tmp_path / "store").exists(spec.dataset.hash)

    code, out, _ = run(capsys, "task", "list")
    assert code == 0
    row = next(line for line in out.splitlines() if line.strip("│ ").startswith(f"{task_id} "))
    assert "Open" in row and "digits_mlp" in row and "10 PARA" in row and "5Grwva" in row
    code, out, _ = run(capsys, "task", "list", "--status", "Cancelled")
    assert code == 0 and f"│ {task_id} " not in out.replace("│  ", "│ ")

    code, out, _ = run(capsys, "task", "show", str(task_id))
    assert code == 0
    for text in ("task " + str(task_id), "Open", "digits_mlp", "10 PARA", "accuracy >=", "spec hash", "deadline"):
        assert text in out

    code, out, err = run(capsys, "task", "cancel", str(task_id), "--key", "//Bob")
    assert code == 2 and "only its requester" in err
    code, out, err = run(capsys, "task", "cancel", str(task_id), "--key", "//Alice")
    assert code == 0, err
    assert "cancelled" in out and "refunded 11 PARA" in out
    assert chain.task_bounties.tasks(task_id).status == "Cancelled"
    assert chain.system.account(Keypair.create_from_uri("//Alice").ss58_address).data.reserved == before
    code, _, err = run(capsys, "task", "cancel", str(task_id), "--key", "//Alice")
    assert code == 2 and "is Cancelled" in err


def test_task_create_aims_at_64_checkpoints(capsys, tmp_path, chain):
    """Without --checkpoint-every a longer run gets about 64 checkpoints, never more than an attestation
    carries at any world size; a K that would exceed it is refused before anything is posted."""
    from workers.artifacts import ArtifactStore
    from workers.engine import total_steps
    from workers.spec import MAX_CHECKPOINTS, decode_spec
    from workers.verification import checkpoint_schedule

    task_id = create_task(capsys, "--hyperparameters", "epochs=30")
    store = ArtifactStore(tmp_path / "store")
    task = chain.task_bounties.tasks(task_id)
    spec = decode_spec(store.fetch(task.spec.spec_uri.text, task.spec.spec_hash.hex()))
    for world_size in (1, 2, 3, 5, 8):
        count = len(checkpoint_schedule(total_steps(spec, store, world_size), spec.checkpoint_every))
        assert 48 <= count <= MAX_CHECKPOINTS, (world_size, count)
    assert run(capsys, "task", "cancel", str(task_id), "--key", "//Alice")[0] == 0

    tasks_before = chain.task_bounties.next_task_id()
    code, _, err = run(capsys, "task", "create", "--recipe", "digits_mlp", "--bounty", "1", "--key", "//Alice",
                       "--hyperparameters", "epochs=30", "--checkpoint-every", "2")
    assert code == 2 and "330 checkpoints" in err and "at most 64" in err and "Traceback" not in err
    assert chain.task_bounties.next_task_id() == tasks_before


def test_task_create_with_holdout_commits_its_bytes_and_location(capsys, tmp_path, chain):
    import re

    from devnet.runtime.pallets.task_bounties import holdout_commitment
    from workers.artifacts import ArtifactStore

    holdout = tmp_path / "holdout.csv"
    holdout.write_text("0.1,0.2,1\n0.3,0.4,0\n")
    code, out, err = run(capsys, "task", "create", "--recipe", "digits_mlp", "--dataset", "digits", "--bounty", "10",
                         "--deadline-blocks", "500", "--validators", "1", "--key", "//Alice", "--holdout", str(holdout))
    assert code == 0, err
    task_id = int(out.strip().splitlines()[-1])
    found = re.search(r"holdout (\S+) committed; reveal it later with salt 0x([0-9a-f]{64}), hash 0x([0-9a-f]{64}) "
                      r"and size (\d+)", " ".join(err.split()))
    assert found, err
    uri, salt, digest, size = found[1], bytes.fromhex(found[2]), bytes.fromhex(found[3]), int(found[4])
    assert ArtifactStore(tmp_path / "store").get(digest.hex())  # the packaged holdout, by the hash committed
    committed = chain.task_bounties.tasks(task_id).holdout_commitment
    assert str(committed).removeprefix("0x") == holdout_commitment(salt, digest, size, uri.encode()).hex()


@pytest.mark.parametrize("argv, key, message", [
    (["task", "show", "987654"], None, "unknown task 987654"),
    (["task", "cancel", "987654"], "//Alice", "unknown task 987654"),
    (["task", "create", "--recipe", "nope", "--bounty", "1"], "//Alice", "unknown recipe 'nope'"),
    (["task", "create", "--recipe", "digits_mlp", "--bounty", "1 DOT"], "//Alice", "bad --bounty"),
    (["task", "create", "--recipe", "digits_mlp", "--bounty", "1"], "no such thing", "bad key"),
    (["account", "show", "--key", "/nonexistent/key.json"], None, "bad key"),
    (["account", "show", "--key-file", "/nonexistent/key"], None, "bad key"),
    (["account", "balance", "not-an-address"], None, "not a valid address"),
    (["model", "show", "0x" + "ab" * 32], None, "unknown model"),
    (["model", "show", "xyz"], None, "bad model hash"),
])
def test_user_errors_are_one_line(capsys, monkeypatch, argv, key, message):
    if key is not None:  # from the environment: a --key secret would add its warning line
        monkeypatch.setenv("PARATRAIN_KEY", key)
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ")


def test_unknown_task_no_traceback(devnet):
    result = script("task", "show", "424242", "--chain", devnet.ws_url)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines == [f"error: unknown task 424242: no such task on {devnet.ws_url}"]


def test_unreachable_node_no_traceback():
    from orchestrator_process import free_port

    url = f"ws://127.0.0.1:{free_port()}"
    for argv in (["account", "balance", Keypair.create_from_uri("//Alice").ss58_address],
                 ["task", "list"], ["task", "create", "--recipe", "digits_mlp", "--bounty", "1"]):
        result = script(*argv, "--chain", url, env={"PARATRAIN_KEY": "//Alice"})
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr
        assert result.stderr.strip() == f"error: cannot reach the node at {url}: connection refused"


def test_bad_arguments_exit_2():
    result = script("task", "show", "minus-one")
    assert result.returncode == 2 and "Traceback" not in result.stderr and "not an integer" in result.stderr


def usage_error(result: subprocess.CompletedProcess[str]) -> str:
    """argparse's refusal: status 2, its usage line(s), then exactly one error line; returns that line."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith("usage: ") and [line for line in lines if "error:" in line] == [lines[-1]]
    return lines[-1]


def test_out_of_range_numbers_are_one_line(devnet):
    """The tester's two tracebacks: a task id past u64, an amount past u128 (and past any float)."""
    alice = Keypair.create_from_uri("//Alice").ss58_address
    line = usage_error(script("task", "show", "99999999999999999999999", "--chain", devnet.ws_url))
    assert "argument task_id: '99999999999999999999999' is out of range for a task id" in line
    line = usage_error(script("account", "transfer", alice, "1e400", env={"PARATRAIN_KEY": "//Bob"}))
    assert "argument amount: '1e400' is more than a balance can hold" in line
    for argv in (["task", "watch", str(2**64)], ["task", "create", "--recipe", "x", "--bounty", "nan"],
                 ["task", "create", "--recipe", "x", "--bounty", "1", "--timeout-s", "inf"],
                 ["task", "create", "--recipe", "x", "--bounty", "1", "--min-memory-mb", str(2**64)],
                 ["account", "transfer", alice, "0.0000000000001"]):
        assert "error: argument" in usage_error(script(*argv))


# keys: encrypted keystores and where secrets come from --------------------------------------------
def test_account_new_encrypts_with_the_env_password(capsys, tmp_path, monkeypatch):
    from workers.keys import load_keypair

    keyfile = tmp_path / "secret.json"
    monkeypatch.setenv("PARATRAIN_KEY_PASSWORD", "correct horse battery")
    code, out, err = run(capsys, "account", "new", "--out", str(keyfile), "--show-secret")
    assert code == 0, err
    address = out.split("address", 1)[1].split()[0]
    mnemonic = out.split("mnemonic", 1)[1].strip()
    text = keyfile.read_text()
    doc = json.loads(text)
    assert stat.S_IMODE(keyfile.stat().st_mode) == 0o600 and "encrypted" in out
    assert doc["encoding"]["type"] == ["scrypt", "xsalsa20-poly1305"] and doc["address"] == address
    words = mnemonic.split()
    assert len(words) == 12 and not any(f"{a} {b}" in text for a, b in zip(words, words[1:]))
    assert "secretPhrase" not in text
    assert "correct horse" not in out + err + text
    assert load_keypair(str(keyfile)).ss58_address == address  # the password from the environment
    assert load_keypair(str(keyfile)).public_key == Keypair.create_from_mnemonic(mnemonic).public_key
    code, out, err = run(capsys, "account", "show", "--key-file", str(keyfile))
    assert code == 0 and address in out and err == ""
    monkeypatch.setenv("PARATRAIN_KEY_PASSWORD", "wrong")
    code, _, err = run(capsys, "account", "show", "--key-file", str(keyfile))
    assert code == 2 and "wrong password" in err and len(err.strip().splitlines()) == 1


def test_account_new_without_a_password_source_refuses(tmp_path):
    """No $PARATRAIN_KEY_PASSWORD, no terminal (stdin /dev/null, no controlling tty): nothing is written."""
    keyfile = tmp_path / "k.json"
    exe = Path(sys.executable).parent / "paratrain"
    result = subprocess.run([str(exe), "account", "new", "--out", str(keyfile)], capture_output=True, text=True,
                            timeout=120, cwd=ROOT, stdin=subprocess.DEVNULL, start_new_session=True,
                            env={k: v for k, v in os.environ.items() if k != "PARATRAIN_KEY_PASSWORD"})
    assert result.returncode == 2 and not keyfile.exists() and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "error: no password to encrypt the keystore with: set $PARATRAIN_KEY_PASSWORD, run it in a terminal to "
        "be asked, or pass --no-password to write it unencrypted"]


def test_account_new_no_password_writes_plain_with_a_warning(capsys, tmp_path):
    keyfile = tmp_path / "plain.json"
    code, out, err = run(capsys, "account", "new", "--out", str(keyfile), "--no-password")
    assert code == 0 and "not encrypted" in out
    assert "warning: the keystore is not encrypted" in err
    assert stat.S_IMODE(keyfile.stat().st_mode) == 0o600 and json.loads(keyfile.read_text())["secretPhrase"]


def test_people_commands_read_the_key_from_a_file_or_the_environment(capsys, tmp_path, monkeypatch):
    alice = Keypair.create_from_uri("//Alice").ss58_address
    secret = tmp_path / "alice.key"
    secret.write_text("//Alice\n")
    code, out, err = run(capsys, "account", "show", "--key-file", str(secret))
    assert code == 0 and alice in out and err == ""
    monkeypatch.setenv("PARATRAIN_KEY", "//Alice")
    code, out, err = run(capsys, "account", "show")
    assert code == 0 and alice in out and err == ""
    code, out, err = run(capsys, "account", "show", "--key", "//Alice")  # works, and says it is visible in ps
    assert code == 0 and alice in out
    assert err.strip().splitlines() == ["warning: a secret given with --key is visible to other local users "
                                        "(ps, /proc): use --key-file PATH or $PARATRAIN_KEY"]


# challenge period: task show|list, finalize, challenge ------------------------------------------------
PERIOD_MS = 20_000  # long enough for the commands run inside it on a loaded machine
BOB, CHARLIE, DAVE, FERDIE = (Keypair.create_from_uri(f"//{n}") for n in ("Bob", "Charlie", "Dave", "Ferdie"))


@pytest.fixture(scope="module")
def period_chain():
    """A devnet of its own with a challenge period; //Bob a Trainer, //Charlie and //Dave Validators."""
    from paratrain.local import DevnetProcess
    from runtime_bindings.generated import types as t

    with DevnetProcess("--challenge-period-ms", str(PERIOD_MS)) as node, Chain.connect(node.ws_url, timeout=10) as c:
        c.workers.register(BOB, "Trainer", 1_000 * UNIT, t.Capabilities(2, 0, "", 8_000))
        for validator in (CHARLIE, DAVE):
            c.workers.register(validator, "Validator", 100 * UNIT, t.Capabilities(2, 0, "", 8_000))
        yield c


def approved_task(capsys, chain) -> int:
    """A task created with the CLI, claimed by //Bob, a signed result submitted, approved by //Charlie."""
    from runtime_bindings import AttestationCodec
    from runtime_bindings.generated import types as t

    task_id = create_task(capsys, "--chain", chain.url)
    chain.task_bounties.claim_task(BOB, task_id)
    attestation = placeholder_attestation(task_id, BOB.ss58_address, chain.task_bounties.tasks(task_id).spec.dataset_hash)
    signature = AttestationCodec.from_chain(chain).multi_signature(attestation, BOB)
    chain.task_bounties.submit_result(BOB, task_id, attestation, signature)
    chain.task_bounties.submit_verdict(CHARLIE, task_id, t.Verdict(True, 960_000, "0x" + "22" * 32))
    assert isinstance(chain.task_bounties.tasks(task_id).status, t.TaskStatus.Approved)
    return task_id


def test_approved_and_challenged_tasks_shown_finalized_and_challenged(capsys, monkeypatch, period_chain):
    chain = period_chain
    monkeypatch.setenv("PARATRAIN_CHAIN", chain.url)
    monkeypatch.setenv("COLUMNS", "200")
    challenged = approved_task(capsys, chain)
    code, out, _ = run(capsys, "task", "show", str(challenged))
    assert code == 0
    assert "Approved, worker " + BOB.ss58_address in out and "challenge period until" in out and "s left" in out
    assert "approved by" in out and CHARLIE.ss58_address[:6] in out
    code, out, _ = run(capsys, "task", "list", "--status", "Approved")
    row = next(line for line in out.splitlines() if line.strip("│ ").startswith(f"{challenged} "))
    assert "Approved (" in row and "s left)" in row
    # the period is running: finalize is refused with the time left, no traceback
    monkeypatch.setenv("PARATRAIN_KEY", "//Ferdie")
    code, _, err = run(capsys, "task", "finalize", str(challenged))
    monkeypatch.delenv("PARATRAIN_KEY")
    assert code == 2 and "the challenge period is not over" in err and len(err.strip().splitlines()) == 1

    # //Dave (a validator who did not approve it) challenges it with his evidence's hash
    dave_reserved = chain.system.account(DAVE.ss58_address).data.reserved
    code, out, err = run(capsys, "task", "challenge", str(challenged), "--evidence", "ab" * 32, "--key", "//Dave")
    assert code == 0, err
    assert f"task {challenged} challenged in block #" in out and "deposit 10 PARA reserved" in out
    assert chain.system.account(DAVE.ss58_address).data.reserved == dave_reserved + 10 * UNIT
    code, out, _ = run(capsys, "task", "show", str(challenged))
    assert f"Challenged, worker {BOB.ss58_address}, challenger {DAVE.ss58_address}" in out
    assert "0 accept, 1 reject in the challenge round (quorum 3)" in out and "0x" + "ab" * 32 in out
    code, out, _ = run(capsys, "task", "list")
    assert "Challenged (1 reject, 0 accept)" in out
    for argv in (("finalize", str(challenged), "--key", "//Ferdie"),
                 ("challenge", str(challenged), "--evidence", "cd" * 32, "--key", "//Charlie")):
        code, _, err = run(capsys, "task", *argv)
        assert code == 2 and f"task {challenged} is Challenged: only an Approved task" in err

    # another one, unchallenged: once its period is over anyone pays it out
    paid = approved_task(capsys, chain)
    until = chain.task_bounties.tasks(paid).status.challenge_until
    time.sleep(max(0.0, until / 1000 - time.time()) + 0.2)
    bob_free = chain.system.account(BOB.ss58_address).data.free
    code, out, err = run(capsys, "task", "finalize", str(paid), "--key", "//Ferdie")
    assert code == 0, err
    assert f"task {paid} finalized in block #" in out and f"worker {BOB.ss58_address} paid 9 PARA" in out
    assert chain.system.account(BOB.ss58_address).data.free == bob_free + 9 * UNIT
    assert chain.task_bounties.tasks(paid).status.name == "Accepted"
    code, _, err = run(capsys, "task", "finalize", str(paid), "--key", "//Ferdie")
    assert code == 2 and "already Accepted" in err


def test_finalize_and_challenge_user_errors(capsys):
    task_id = create_task(capsys)
    code, _, err = run(capsys, "task", "finalize", str(task_id), "--key", "//Ferdie")
    assert code == 2 and f"task {task_id} is Open: only an Approved task" in err
    result = script("task", "challenge", str(task_id), "--evidence", "xyz", "--key", "//Dave")
    assert result.returncode == 2 and "Traceback" not in result.stderr and "not a 32-byte hash" in result.stderr
    result = script("task", "finalize", "424242", "--key", "//Ferdie")
    assert result.returncode == 2 and "Traceback" not in result.stderr and "unknown task 424242" in result.stderr


# curve ------------------------------------------------------------------------------------------
def test_show_curve_from_recorded_history(capsys, tmp_path):
    task_id = create_task(capsys)
    history = tmp_path / "history.jsonl"
    history.write_text("".join(json.dumps({"step": s, "epoch": s // 10, "loss": 2.0 / (1 + s),
                                           "metrics": {"accuracy": min(1.0, s / 50)}, "worker": "w"}) + "\n"
                               for s in range(0, 60, 5)))
    png = tmp_path / "curve.png"
    code, _, err = run(capsys, "task", "show", str(task_id), "--curve", str(png), "--history", str(history))
    assert code == 0, err
    data = png.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 1000
    assert "12 points" in err

    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    code, _, err = run(capsys, "task", "show", str(task_id), "--curve", str(tmp_path / "none.png"),
                         "--history", str(empty))
    assert code == 2 and "no training progress" in err and not (tmp_path / "none.png").exists()


def test_show_curve_from_the_orchestrator(capsys, tmp_path, chain, devnet):
    from orchestrator_process import OrchestratorProcess

    from orchestrator.client import WorkerClient
    from orchestrator.domain import ProgressUpdate
    from runtime_bindings.generated import types as t

    trainer = Keypair.create_from_uri("//paratrain/cli/trainer")
    alice = Keypair.create_from_uri("//Alice")
    chain.balances.transfer_keep_alive(alice, trainer.ss58_address, 1_000 * UNIT)
    chain.workers.register(trainer, "Trainer", 200 * UNIT, t.Capabilities(8, 0, "", 16_000))
    task_id = create_task(capsys)
    receipt = chain.task_bounties.claim_task(trainer, task_id)

    with OrchestratorProcess(devnet.ws_url, tmp_path / "orch.db") as orch:
        orch.wait_for_height(receipt.block_number)
        png = tmp_path / "curve.png"

        # nothing reported yet: said clearly, no file
        code, _, err = run(capsys, "task", "show", str(task_id), "--curve", str(png), "--wait", "0.5",
                           "--orchestrator", orch.target)
        assert code == 2 and "no training progress" in err and not png.exists()

        stop = threading.Event()

        async def report() -> None:  # a trainer reporting every 0.2 s until the CLI is done
            async with WorkerClient(orch.target, trainer) as client:
                step = 0
                while not stop.is_set():
                    step += 1
                    await client.report_progress(ProgressUpdate(task_id, trainer.ss58_address, step * 10, step // 3,
                                                                1.5 / step, {"accuracy": min(1.0, 0.05 * step)}))
                    await asyncio.sleep(0.2)

        errors: list[BaseException] = []
        poster = threading.Thread(target=lambda: _capture(errors, lambda: asyncio.run(report())))
        poster.start()
        try:
            code, out, err = run(capsys, "task", "show", str(task_id), "--curve", str(png), "--wait", "3",
                                 "--orchestrator", orch.target)
        finally:
            stop.set()
            poster.join(30)
        assert not errors, errors
        assert code == 0, err
        data = png.read_bytes()
        assert data.startswith(PNG_SIGNATURE) and len(data) > 1000
        points = int(err.split("(")[1].split(" points")[0])
        assert points >= 3 and "Claimed" in out

        # the points heard were recorded locally: a later curve needs no live progress
        png.unlink()
        code, out, err = run(capsys, "task", "show", str(task_id), "--curve", str(png), "--wait", "0.2",
                             "--orchestrator", orch.target)
        assert code == 0, err
        assert png.read_bytes().startswith(PNG_SIGNATURE)

        # watch: a live view that ends cleanly after --timeout
        start = time.monotonic()
        code, out, err = run(capsys, "task", "watch", str(task_id), "--timeout", "1", "--orchestrator", orch.target)
        assert code == 0, err
        assert "stopped watching" in err and time.monotonic() - start < 30


def _capture(errors: list[BaseException], fn) -> None:
    try:
        fn()
    except BaseException as exc:  # noqa: BLE001
        errors.append(exc)


def test_orchestrator_unreachable_for_watch(capsys):
    from orchestrator_process import free_port

    task_id = create_task(capsys)
    code, _, err = run(capsys, "task", "watch", str(task_id), "--orchestrator", f"127.0.0.1:{free_port()}",
                       "--timeout", "5")
    assert code == 2 and "cannot reach the orchestrator" in err


def test_model_download_reads_only_trusted_stores_and_verifies_the_hash(capsys, tmp_path, chain):
    """The model's artifact URI was written by its worker: `model download` opens it only under a store the user
    trusts (--trust-store), and writes only bytes that hash to the model's name."""
    from runtime_bindings import AttestationCodec
    from runtime_bindings.generated import types as t
    from workers import ArtifactStore

    trainer, validator = Keypair.create_from_uri("//Trainer//download"), Keypair.create_from_uri("//Judge//download")
    for who in (trainer, validator):
        chain.balances.transfer_keep_alive(Keypair.create_from_uri("//Alice"), who.ss58_address, 2_000 * UNIT)
    chain.workers.register(trainer, "Trainer", 1_000 * UNIT, t.Capabilities(2, 0, "", 8_000))
    chain.workers.register(validator, "Validator", 100 * UNIT, t.Capabilities(2, 0, "", 8_000))
    worker_store = ArtifactStore(tmp_path / "worker-store")
    weights = worker_store.put(b"the model's weights")
    task_id = create_task(capsys)
    chain.task_bounties.claim_task(trainer, task_id)
    attestation = {**placeholder_attestation(task_id, trainer.ss58_address,
                                             chain.task_bounties.tasks(task_id).spec.dataset_hash),
                   "model_hash": "0x" + weights, "artifact_uri": worker_store.uri(weights)}
    signature = AttestationCodec.from_chain(chain).multi_signature(attestation, trainer)
    chain.task_bounties.submit_result(trainer, task_id, attestation, signature)
    chain.task_bounties.submit_verdict(validator, task_id, t.Verdict(True, 960_000, "0x" + "22" * 32))

    out_file = tmp_path / "model.ptts"
    code, _, err = run(capsys, "model", "download", "0x" + weights, "--out", str(out_file))
    assert code == 2 and "refused" in err and "--trust-store" in err and len(err.strip().splitlines()) == 1, err
    assert not out_file.exists()
    code, _, err = run(capsys, "model", "download", "0x" + weights, "--out", str(out_file),
                       "--trust-store", worker_store.root)
    assert code == 0, err
    assert out_file.read_bytes() == b"the model's weights"
    with open(worker_store.uri(weights).removeprefix("file://"), "wb") as f:
        f.write(b"other weights")
    code, _, err = run(capsys, "model", "download", "0x" + weights, "--out", str(tmp_path / "again.ptts"),
                       "--store", str(tmp_path / "fresh-store"), "--trust-store", worker_store.root)
    assert code == 2 and "does not match the model hash" in err, err
    assert not (tmp_path / "again.ptts").exists()
