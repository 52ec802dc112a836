"""`paratrain fl partition|create|join|status|withdraw|reveal` against a real devnet process: the shards and the
task the commands write are the chain's and the store's facts, and every refusal is one line (exit 2) that
names the pallet error, with nothing signed. Commands run in-process (`paratrain.cli.main`); the
no-traceback check runs the console script."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import isolate, one_line_error, run

from paratrain.cli import main
from runtime_bindings import Chain, Keypair
from workers.artifacts import ArtifactStore
from workers.fl.arrays import loads, model_hash
from workers.fl.spec import decode_spec
from workers.hashing import blake2_256_hex

pytestmark = pytest.mark.slow  # a devnet process

UNIT = 10**12
ROOT = Path(__file__).resolve().parents[2]
CLIENT_KEYS = ("//Charlie", "//Dave", "//Eve")


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch, devnet):
    isolate(monkeypatch, tmp_path, devnet.ws_url)


@pytest.fixture(scope="module")
def chain(devnet):
    with Chain.connect(devnet.ws_url, timeout=10) as c:
        yield c


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("split")
    assert main(["fl", "partition", "--dataset", "digits", "--clients", "4", "--alpha", "0.5", "--seed", "3",
                 "--out", str(out)]) == 0
    return out




def create(capsys, shards: Path, *extra: str) -> int:
    code, out, err = run(capsys, "fl", "create", "--bounty", "50", "--rounds", "3", "--min-clients", "2",
                         "--max-clients", "3", "--rule", "fedtrimmedavg:0.2", "--join-blocks", "12",
                         "--deadline-blocks", "400", "--client-stake", "2", "--hp", "lr=0.01",
                         "--holdout", str(shards / "holdout.ptts"), "--key", "//Alice", *extra)
    assert code == 0, err
    assert "holdout committed" in err and "paratrain fl reveal" in err
    return int(out.strip().splitlines()[-1])


def test_partition_writes_shards_whose_manifest_is_their_bytes(shards: Path):
    manifest = json.loads((shards / "split.json").read_text())
    assert manifest["kind"] == "fl-split" and len(manifest["clients"]) == 4
    for entry in manifest["clients"]:
        data = (shards / entry["file"]).read_bytes()
        assert blake2_256_hex(data) == entry["hash"] and len(data) == entry["size"]
    assert blake2_256_hex((shards / "holdout.ptts").read_bytes()) == manifest["holdout"]["hash"]


def test_create_posts_the_spec_document_and_the_initial_model(capsys, chain, shards, tmp_path):
    task_id = create(capsys, shards)
    task = chain.federated_tasks.tasks(task_id)
    spec = task.spec
    assert task.status.VARIANT == "Joining" and task.requester == Keypair.create_from_uri("//Alice").ss58_address
    assert (spec.rounds, spec.min_clients_per_round, spec.max_clients) == (3, 2, 3)
    assert spec.rule.VARIANT == "FedTrimmedAvg" and spec.rule.beta == 200_000_000
    assert spec.min_client_stake == 2 * UNIT and spec.client_share == 700_000_000 and task.bounty == 50 * UNIT
    assert task.holdout_commitment is not None
    store = ArtifactStore(str(tmp_path / "store"))
    document = store.get(bytes(spec.spec_hash).hex())
    fl_spec = decode_spec(document, require_canonical=True)
    assert fl_spec.rule.text == "fedtrimmedavg:0.2" and fl_spec.hyperparameters["lr"] == 0.01
    assert spec.spec_uri.decode() == store.uri(bytes(spec.spec_hash).hex())
    initial = store.get(bytes(spec.initial_model_hash).hex())  # the base of round 1, by its hash
    arrays, meta = loads(initial)
    assert model_hash(arrays) == bytes(spec.initial_model_hash) and meta["kind"] == "fl-model"
    assert arrays["4.weight"].shape == (10, 128)  # digits_mlp on the digits' 64 features and 10 classes


def test_join_status_and_the_pallets_refusals(capsys, chain, shards):
    task_id = create(capsys, shards)
    manifest = json.loads((shards / "split.json").read_text())
    for key, entry in zip(CLIENT_KEYS[:2], manifest["clients"], strict=False):
        code, _, err = run(capsys, "fl", "join", str(task_id), "--data", str(shards / entry["file"]), "--key", key)
        assert code == 0, err
        info = chain.federated_tasks.clients(task_id, Keypair.create_from_uri(key).ss58_address)
        assert bytes(info.data_hash).hex() == entry["hash"] and info.num_examples == entry["num_examples"]
        assert info.stake == 2 * UNIT
    data = str(shards / "client-2.ptts")
    assert "FederatedTasks.AlreadyJoined" in one_line_error(capsys, "fl", "join", str(task_id), "--data", data,
                                                            "--key", "//Charlie")
    assert "FederatedTasks.RequesterCannotJoin" in one_line_error(capsys, "fl", "join", str(task_id), "--data",
                                                                  data, "--key", "//Alice")
    assert "FederatedTasks.ClientStakeTooLow" in one_line_error(capsys, "fl", "join", str(task_id), "--data", data,
                                                                "--stake", "1", "--key", "//Eve")
    assert "FederatedTasks.StakeLocked" in one_line_error(capsys, "fl", "withdraw", str(task_id),
                                                          "--key", "//Charlie")
    assert "FederatedTasks.NotClient" in one_line_error(capsys, "fl", "withdraw", str(task_id), "--key", "//Eve")
    assert chain.federated_tasks.tasks(task_id).clients == 2
    code, out, err = run(capsys, "fl", "status", str(task_id), "--full")
    assert code == 0, err
    assert f"federated task {task_id}: Joining" in out and "0/3 rounds accepted" in out
    for key in CLIENT_KEYS[:2]:
        assert Keypair.create_from_uri(key).ss58_address in out


def test_create_secagg_posts_the_settings_the_spec_document_fixes(capsys, chain, shards, tmp_path):
    from workers.fl.secagg_task import SecAggTask

    code, out, err = run(capsys, "fl", "create", "--secagg", "--bounty", "50", "--rounds", "2", "--min-clients",
                         "3", "--max-clients", "3", "--join-blocks", "12", "--deadline-blocks", "400",
                         "--client-stake", "2", "--norm-bound", "2.5", "--audit-rate", "20%", "--max-weight", "400",
                         "--key", "//Alice")
    assert code == 0, err
    assert "SecAgg+" in err and "20% of each round audited" in err
    task_id = int(out.strip().splitlines()[-1])
    spec = chain.federated_tasks.tasks(task_id).spec
    assert spec.rule.VARIANT == "FedAvg"   # the rule --secagg defaults to
    document = decode_spec(ArtifactStore(str(tmp_path / "store")).get(bytes(spec.spec_hash).hex()),
                           require_canonical=True)
    assert isinstance(document.secagg, SecAggTask) and document.secagg.update_norm_bound == 2.5
    on_chain = chain.federated_tasks.sec_agg_specs(task_id)
    assert vars(on_chain) == document.secagg.chain_values()
    assert (on_chain.audit_rate, on_chain.max_weight, on_chain.update_norm_bound) == (200_000_000, 400, 2_500_000_000)
    # a shard of more examples than max_weight may not join: the pallet's refusal, one line
    manifest = json.loads((shards / "split.json").read_text())
    big = max(manifest["clients"], key=lambda entry: entry["num_examples"])
    assert big["num_examples"] > 400
    assert "FederatedTasks.ExamplesAboveMaxWeight" in one_line_error(
        capsys, "fl", "join", str(task_id), "--data", str(shards / big["file"]), "--key", "//Charlie")
    code, out, err = run(capsys, "fl", "status", str(task_id))
    assert code == 0 and "SecAgg+: threshold 60% of the shares, updates clipped to L2 2.5" in out, err
    assert "bad federated spec" in one_line_error(capsys, "fl", "create", "--secagg", "--rule", "fedmedian",
                                                  "--bounty", "50", "--min-clients", "3", "--key", "//Alice")
    assert "bad federated spec" in one_line_error(capsys, "fl", "create", "--secagg", "--min-clients", "2",
                                                  "--bounty", "50", "--key", "//Alice")


def test_create_with_dp_epsilon_posts_a_private_task_and_a_join_needs_a_budget(capsys, chain, shards, tmp_path):
    code, out, err = run(capsys, "fl", "create", "--dp-epsilon", "4", "--noise-multiplier", "1.2", "--bounty", "50",
                         "--rounds", "2", "--min-clients", "2", "--max-clients", "3", "--rule", "fedavg",
                         "--join-blocks", "12", "--deadline-blocks", "400", "--client-stake", "2", "--key", "//Alice")
    assert code == 0, err
    assert "DP-SGD on every client: noise 1.2" in err
    task_id = int(out.strip().splitlines()[-1])
    terms = chain.privacy_budgets.federated_privacy(task_id)
    assert (terms.epsilon_cap, terms.noise_multiplier, terms.max_grad_norm) == (4_000_000, 1_200_000, 1_000_000)
    spec = chain.federated_tasks.tasks(task_id).spec
    document = decode_spec(ArtifactStore(str(tmp_path / "store")).get(bytes(spec.spec_hash).hex()))
    assert document.dp is not None and document.dp.epsilon == 4.0
    entry = json.loads((shards / "split.json").read_text())["clients"][0]
    data = str(shards / entry["file"])
    assert "PrivacyBudgets.NoBudget" in one_line_error(capsys, "fl", "join", str(task_id), "--data", data,
                                                       "--key", "//Ferdie")
    code, _, err = run(capsys, "budget", "set", "0x" + entry["hash"], "--epsilon", "8", "--delta", "1e-4",
                       "--key", "//Ferdie")
    assert code == 0, err
    code, _, err = run(capsys, "fl", "join", str(task_id), "--data", data, "--key", "//Ferdie")
    assert code == 0, err
    budget = chain.privacy_budgets.budgets("0x" + entry["hash"])
    assert budget.reserved_epsilon == 4_000_000
    code, out, err = run(capsys, "fl", "status", str(task_id))
    assert code == 0 and "DP-SGD on every client" in out and "0 / 4" in out, err


def test_create_with_central_dp_posts_its_terms_and_refuses_what_it_cannot_be(capsys, chain, shards, tmp_path):
    code, out, err = run(capsys, "fl", "create", "--central-dp", "client", "--dp-epsilon", "6", "--noise-multiplier",
                         "1.5", "--clipping-norm", "0.5", "--bounty", "50", "--rounds", "2", "--min-clients", "2",
                         "--max-clients", "3", "--join-blocks", "12", "--deadline-blocks", "400", "--client-stake", "2",
                         "--key", "//Alice")
    assert code == 0, err
    assert "central DP: each round's mean of updates clipped to L2 0.5 (by the clients)" in err
    task_id = int(out.strip().splitlines()[-1])
    terms = chain.privacy_budgets.federated_central_dp(task_id)
    assert (terms.clipping.name, terms.epsilon_cap, terms.noise_multiplier, terms.clipping_norm) == \
        ("ClientFixed", 6_000_000, 1_500_000, 500_000)
    assert chain.privacy_budgets.federated_privacy(task_id) is None   # no local DP-SGD on the clients
    assert chain.federated_tasks.tasks(task_id).spec.rule.name == "FedAvg"   # the default with --central-dp
    code, out, err = run(capsys, "fl", "status", str(task_id))
    assert code == 0 and "central DP" in out, err
    base = ("fl", "create", "--central-dp", "server", "--bounty", "50", "--min-clients", "2", "--key", "//Alice")
    assert "needs --dp-epsilon" in one_line_error(capsys, *base)
    assert "cannot be combined with --secagg" in one_line_error(capsys, *base, "--dp-epsilon", "3", "--secagg")
    assert "needs --rule fedavg" in one_line_error(capsys, *base, "--dp-epsilon", "3", "--rule", "fedmedian")
    assert "above the cap 1" in one_line_error(capsys, *base, "--dp-epsilon", "1", "--noise-multiplier", "0.5",
                                               "--rounds", "5")


def test_bad_files_and_unknown_tasks_are_one_line(capsys, shards, tmp_path):
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"not a data set")
    assert "bad data file" in one_line_error(capsys, "fl", "join", "0", "--data", str(junk), "--key", "//Eve")
    assert "does not exist" in one_line_error(capsys, "fl", "join", "0", "--data", str(tmp_path / "none"),
                                              "--key", "//Eve")
    assert "unknown federated task 9999" in one_line_error(capsys, "fl", "status", "9999")
    assert "unknown federated task 9999" in one_line_error(capsys, "client", "--task", "9999", "--data",
                                                           str(shards / "client-0.ptts"), "--key", "//Eve",
                                                           "--state-dir", str(tmp_path / "client"))
    assert "bad data file" in one_line_error(capsys, "client", "--task", "0", "--data", str(junk), "--key", "//Eve")
    assert "FederatedTasks.JoinClosed" not in one_line_error(capsys, "fl", "reveal", "9999", "--salt", "00" * 32,
                                                             "--holdout-hash", "11" * 32, "--size", "1", "--uri",
                                                             "file:///x", "--key", "//Alice")


def test_the_console_script_never_shows_a_traceback(devnet, shards):
    exe = Path(sys.executable).parent / "paratrain"
    done = subprocess.run([str(exe), "fl", "join", "9999", "--data", str(shards / "client-0.ptts"),
                           "--chain", devnet.ws_url], capture_output=True, text=True, timeout=120, cwd=ROOT,
                          check=False, env={**os.environ, "PARATRAIN_KEY": "//Eve"})
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == ["error: unknown federated task 9999: no such task on "
                                                f"{devnet.ws_url}"]
