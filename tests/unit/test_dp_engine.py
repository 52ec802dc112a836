"""The engine's DP-SGD branch on digits_mlp: replays are bitwise, a worker that skips the noise or the clipping
is caught by the honest replay, the noise key and the cap are enforced, and the non-DP path is unchanged."""
from __future__ import annotations

import math
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("opacus")

from workers import ArtifactStore, DatasetRef, Evaluation, TaskSpec, add_dataset  # noqa: E402
from workers.engine import LoopPlan, TrainingError, run_loop  # noqa: E402
from workers.privacy import epsilon_spent, noise_key_hash, sample_rate_of, sample_seed  # noqa: E402
from workers.privacy.training import DpSession, EpsilonAboveCapError, NoiseKeyError  # noqa: E402
from workers.runner import replay_segment, spot_check, train_local  # noqa: E402
from workers.spec import NoiseKeyRef, Privacy, encode_spec  # noqa: E402

KEY = bytes(range(32))
DATA_URI = "file:///datasets/digits"  # the store serves the data by its hash, so the spec hash is fixed


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> ArtifactStore:
    return ArtifactStore(tmp_path_factory.mktemp("dp-store"))


@pytest.fixture(scope="module")
def plain(store) -> TaskSpec:
    digest, _ = add_dataset("digits", store)
    return TaskSpec(recipe="digits_mlp", dataset=DatasetRef(digest, DATA_URI), evaluation=Evaluation("accuracy", 0.5),
                    hyperparameters={"epochs": 1, "hidden": 16}, seed=3, checkpoint_every=11)


def privacy_of(store: ArtifactStore, key: bytes = KEY, **kw) -> Privacy:
    terms = {"accountant": "prv", "delta": 1e-5, "epsilon": 8.0, "max_grad_norm": 1.0, "noise_multiplier": 1.0, **kw}
    return Privacy(**terms, noise_key=NoiseKeyRef(hash=noise_key_hash(key).hex(), uri=store.uri(store.put(key))))


@pytest.fixture(scope="module")
def dp_spec(store, plain) -> TaskSpec:
    return replace(plain, hyperparameters={"epochs": 2, "hidden": 16}, privacy=privacy_of(store))


@pytest.fixture(scope="module")
def honest(store, dp_spec):
    return train_local(dp_spec, store)


def test_non_dp_training_is_bitwise_repeatable_and_never_loads_opacus(store, plain) -> None:
    """The plain path is untouched by DP: it never imports Opacus (checked in a fresh process, since other tests
    load it here) and its checkpoints repeat bitwise. (Hashes pinned on one machine did not match on another
    with the same torch and packages, so a pin across machines proves nothing.)"""
    first, second = train_local(plain, store), train_local(plain, store)
    assert len(first.checkpoints) == 2
    assert (first.checkpoints, first.model_hash) == (second.checkpoints, second.model_hash)
    script = ("import sys\n"
              "from workers import ArtifactStore\n"
              "from workers.runner import train_local\n"
              "from workers.spec import decode_spec\n"
              f"result = train_local(decode_spec({encode_spec(plain)!r}), ArtifactStore({store.root!r}))\n"
              f"print(result.checkpoints == {first.checkpoints!r} and 'opacus' not in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.strip().splitlines()[-1:] == ["True"], out.stderr[-2000:]


def test_dp_card_carries_the_claim(store, dp_spec, honest) -> None:
    import json

    card = json.loads(store.get(honest.card_hash))
    rate = sample_rate_of(1438, 64)
    assert card["privacy"] == {
        "accountant": "prv", "noise_multiplier": 1.0, "sample_rate": rate / 1e9, "steps": 44, "max_grad_norm": 1.0,
        "delta": 1e-5, "epsilon": math.ceil(epsilon_spent("prv", 1.0, rate / 1e9, 44, 1e-5) * 1e6) / 1e6}
    assert card["steps"] == 44 and len(honest.checkpoints) == 4
    assert all(math.isfinite(v) for v in honest.metrics.values())


def test_dp_replay_is_bitwise_from_every_checkpoint(store, dp_spec, honest) -> None:
    assert replay_segment(dp_spec, store, None) == honest.checkpoints[0]
    for i in range(len(honest.checkpoints) - 1):
        assert replay_segment(dp_spec, store, honest.checkpoints[i]) == honest.checkpoints[i + 1]
    resumed = train_local(dp_spec, store, resume_from=honest.checkpoints[:2])
    assert resumed.checkpoints == honest.checkpoints and resumed.model_hash == honest.model_hash


def test_the_noise_depends_on_the_key(store, dp_spec, honest) -> None:
    other = replace(dp_spec, privacy=privacy_of(store, key=b"\x07" * 32))
    assert train_local(other, store).checkpoints[0] != honest.checkpoints[0]


@pytest.mark.parametrize("cheat", [
    {"optimizer": {"noise_multiplier": 0.0}},   # skipped the noise
    {"module": {"max_grad_norm": 1e6}},         # skipped the clipping (ghost clipping clips in the module), same noise
], ids=["noise-skipped", "clipping-skipped"])
def test_a_worker_that_skips_noise_or_clipping_fails_every_spot_check(store, dp_spec, honest, monkeypatch,
                                                                       cheat) -> None:
    # The attacker runs the engine on the committed spec (same spec hash, seeds and checkpoint metadata) but
    # changes Opacus's mechanism after set-up, as a worker editing its own copy would.
    real_start = DpSession.start.__func__

    def cheating_start(cls, *args, **kwargs):
        session = real_start(cls, *args, **kwargs)
        for part, changes in cheat.items():
            for name, value in changes.items():
                setattr(getattr(session, part), name, value)
        return session

    with monkeypatch.context() as patch:
        patch.setattr(DpSession, "start", classmethod(cheating_start))
        forged = train_local(dp_spec, store)
    assert forged.checkpoints[0] != honest.checkpoints[0]
    assert not any(spot_check(dp_spec, store, forged.checkpoints, i) for i in range(len(forged.checkpoints)))


def test_a_weaker_spec_does_not_reproduce_the_committed_one(store, dp_spec, honest) -> None:
    weaker = replace(dp_spec, privacy=replace(dp_spec.privacy, noise_multiplier=0.5, max_grad_norm=10.0,
                                                         epsilon=20.0))
    assert train_local(weaker, store).checkpoints[0] != honest.checkpoints[0]
    # and a spec without real noise cannot run at all: its epsilon is far above any cap the chain allows
    noiseless = replace(dp_spec, privacy=replace(dp_spec.privacy, noise_multiplier=0.000001, epsilon=100.0))
    with pytest.raises(EpsilonAboveCapError):
        train_local(noiseless, store)


def test_wrong_or_missing_noise_key_refused(store, dp_spec) -> None:
    wrong_hash = replace(dp_spec.privacy, noise_key=replace(dp_spec.privacy.noise_key, hash="00" * 32))
    with pytest.raises(NoiseKeyError, match="does not hash"):
        train_local(replace(dp_spec, privacy=wrong_hash), store)
    missing = "file:///nowhere/blake2b256/aa/" + "aa" * 32
    with pytest.raises(NoiseKeyError, match="cannot fetch"):
        train_local(replace(dp_spec, privacy=replace(dp_spec.privacy, noise_key=NoiseKeyRef("aa" * 32, missing))),
                    store)


def test_cap_below_the_runs_epsilon_refused_before_training(store, dp_spec) -> None:
    with pytest.raises(EpsilonAboveCapError, match="above the cap"):
        train_local(replace(dp_spec, privacy=replace(dp_spec.privacy, epsilon=0.1)), store)


def test_world_size_above_one_refused(store, dp_spec) -> None:
    plan = LoopPlan(spec_json=dp_spec.canonical_bytes(), store=store, deadline=math.inf)
    with pytest.raises(TrainingError, match="world size 1"):
        run_loop(plan, rank=0, world_size=2, report=lambda r: None)


def test_empty_poisson_batches_are_valid_steps(store, plain) -> None:
    # batch 2 of 1438: q = 1/719, so about e^-2 of the steps draw no example at all
    spec = replace(plain, hyperparameters={"epochs": 1, "hidden": 8, "batch_size": 2}, checkpoint_every=60,
                   privacy=privacy_of(store, epsilon=100.0, noise_multiplier=2.0))
    rate = sample_rate_of(1438, 2) / 1e9
    empty = [s for s in range(719) if not (torch.rand(1438, generator=torch.Generator().manual_seed(
        sample_seed(KEY, spec.spec_hash(), s))) < rate).any()]
    assert len(empty) > 20
    result = train_local(spec, store)
    assert len(result.checkpoints) == 12 and math.isfinite(result.metrics["accuracy"])
    assert replay_segment(spec, store, result.checkpoints[-2]) == result.checkpoints[-1]
