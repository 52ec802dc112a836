"""`paratrain task create --dp-epsilon ...` against a real devnet process: a private task on a data set with
a privacy budget. The command derives sigma from the run's q and steps (or checks a given one), prints them,
stores a fresh secret noise key next to the data set, writes the privacy section into the spec document and
posts create_private_task, whose reservation the budget then shows; a data set with no budget, too little of
it left, half the DP options, or a sigma that spends more than the cap are one-line errors that post nothing.
Commands run in-process (`paratrain.cli.main`, output captured), as tests/integration/test_cli_people.py does."""
from __future__ import annotations

import re

import pytest

pytest.importorskip("opacus")

from paratrain.cli import main
from runtime_bindings import Chain, Keypair
from runtime_bindings.privacy import epsilon_to_chain, noise_key_hash
from workers import ArtifactStore, add_dataset
from workers.artifacts import Kind
from workers.engine import _run_shape
from workers.privacy import epsilon_spent
from workers.spec import decode_spec

pytestmark = pytest.mark.slow  # a devnet process and Opacus's accountants

ALICE, BOB = Keypair.create_from_uri("//Alice"), Keypair.create_from_uri("//Bob")
COMMON = ("task", "create", "--recipe", "digits_mlp", "--dataset", "digits", "--bounty", "10", "--validators", "1",
          "--hyperparameters", "epochs=2")
DP = ("--dp-epsilon", "3", "--dp-delta", "1e-5", "--max-grad-norm", "1.0", "--accountant", "rdp")


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch, devnet):
    monkeypatch.setenv("PARATRAIN_CHAIN", devnet.ws_url)
    monkeypatch.setenv("PARATRAIN_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PARATRAIN_KEYSTORE", str(tmp_path / "keys"))
    monkeypatch.setenv("PARATRAIN_KEY", "//Alice")  # the requester (no --key warning: errors are one line)
    for name in ("PARATRAIN_ORCHESTRATOR", "PARATRAIN_KEY_PASSWORD"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> ArtifactStore:
    return ArtifactStore(tmp_path_factory.mktemp("requester-store"))


@pytest.fixture(scope="module")
def chain(devnet):
    with Chain.connect(devnet.ws_url, timeout=10) as c:
        yield c


def run(capsys, store: ArtifactStore, *argv: str) -> tuple[int, str, str]:
    code = main([*argv, "--store", store.root])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def refused(capsys, store: ArtifactStore, chain: Chain, *argv: str) -> str:
    """The command fails with one line and no traceback, and posts no task."""
    before = chain.task_bounties.next_task_id()
    code, out, err = run(capsys, store, *argv)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert chain.task_bounties.next_task_id() == before
    return err


def test_private_task_create(capsys, store, chain) -> None:
    digits, _ = add_dataset("digits", store)
    data = "0x" + digits
    assert "has no privacy budget" in refused(capsys, store, chain, *COMMON, *DP)
    chain.privacy_budgets.set_budget(ALICE, data, epsilon_to_chain(5.0), 10**11)  # epsilon 5, delta 1e-4
    for partial in (("--dp-epsilon", "3"), ("--accountant", "rdp")):
        assert "--dp-epsilon, --dp-delta and --max-grad-norm together" in refused(capsys, store, chain, *COMMON,
                                                                                  *partial)
    with pytest.raises(SystemExit) as exited:  # argparse's refusal: usage and one error line, status 2
        run(capsys, store, *COMMON, *DP, "--noise-multiplier", "nan")
    assert exited.value.code == 2 and "'nan' is not a noise multiplier" in capsys.readouterr().err
    assert "too small for the 8 asked" in refused(capsys, store, chain, *COMMON, *DP[:1], "8", *DP[2:])
    assert "above the cap 3" in refused(capsys, store, chain, *COMMON, *DP, "--noise-multiplier", "0.3")
    # a plain task on a budgeted data set: its result would spend epsilon infinity
    assert "DataSetHasBudget" in refused(capsys, store, chain, *COMMON)

    code, out, err = run(capsys, store, *COMMON, *DP)
    assert code == 0, err
    task_id = int(out.strip().splitlines()[-1])
    sigma, q, steps = re.search(r"sigma ([0-9.]+) \(derived\), sample rate q ([0-9.]+), (\d+) steps", err).groups()
    task = chain.task_bounties.tasks(task_id)
    spec = decode_spec(store.fetch(task.spec.spec_uri.text, task.spec.spec_hash.hex(), kind=Kind.SPEC))
    train_examples, batch_size, epochs = _run_shape(spec, store)
    assert (float(q), int(steps)) == (round(batch_size / train_examples, 9), train_examples // batch_size * epochs)
    spent = epsilon_spent("rdp", float(sigma), float(q), int(steps), 1e-5)
    assert 2.9 < spent <= 3.0  # the least noise that keeps the run within the cap
    privacy = spec.privacy
    assert (privacy.accountant, privacy.epsilon, privacy.delta, privacy.max_grad_norm, privacy.noise_multiplier) == (
        "rdp", 3.0, 1e-5, 1.0, float(sigma))
    key = store.get(privacy.noise_key.uri.rsplit("/", 1)[-1])
    assert len(key) == 32 and noise_key_hash(key).hex() == privacy.noise_key.hash  # the secret, next to the data
    on_chain = chain.privacy_budgets.bounty_privacy(task_id)
    assert (on_chain.accountant.name, on_chain.epsilon_cap, on_chain.delta, on_chain.max_grad_norm,
            on_chain.noise_multiplier, bytes(on_chain.noise_key_hash).hex()) == (
        "Rdp", 3_000_000, 10_000_000_000, 1_000_000, round(float(sigma) * 10**6), privacy.noise_key.hash)
    budget = chain.privacy_budgets.budgets(data)
    assert (budget.reserved_epsilon, budget.reserved_delta, budget.spent_epsilon) == (3_000_000, 10_000_000_000, 0)

    # 2 of 5 left: a second cap of 3 is refused before anything is stored or posted; a given sigma of 2 is not
    assert "epsilon 2 left (of 5): too small for the 3 asked" in refused(capsys, store, chain, *COMMON, *DP)
    code, out, err = run(capsys, store, *COMMON, "--dp-epsilon", "2", *DP[2:], "--noise-multiplier", "2",
                         "--accountant", "prv")
    assert code == 0, err
    assert "sigma 2 (given)" in err
    assert chain.privacy_budgets.budgets(data).reserved_epsilon == 5_000_000
    second = chain.privacy_budgets.bounty_privacy(int(out.strip().splitlines()[-1]))
    assert second.accountant.name == "Prv" and second.noise_key_hash != on_chain.noise_key_hash  # a key per task
