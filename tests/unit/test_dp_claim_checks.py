"""The validator's checks of a private task's result, as pure functions (no chain, no training): the spec
document's privacy section against the chain's DpSpec, and the worker's DpClaim against the spec and the
data size (epsilon recomputed with Opacus; more than 1 % under it is a reject, 0.5 % under is not)."""
from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

pytest.importorskip("opacus")

from runtime_bindings.generated import types as t
from runtime_bindings.privacy import epsilon_from_chain, epsilon_to_chain, noise_key_hash
from runtime_bindings.values import H256
from workers.privacy import DpTerms, honest_claim
from workers.result_checks import PrivateResult, ResultChecker, dp_claim_check, privacy_mismatch
from workers.spec import NoiseKeyRef, Privacy

KEY = bytes(range(32))
SHAPE = {"train_examples": 1437, "batch_size": 64, "epochs": 2}  # digits' training split, the recipe's batch
KEY_URI = "file:///store/blake2b256/00/" + "00" * 32
PRIVACY = Privacy(accountant="rdp", delta=1e-5, epsilon=8.0, max_grad_norm=1.0, noise_multiplier=1.1,
                  noise_key=NoiseKeyRef(hash=noise_key_hash(KEY).hex(), uri=KEY_URI))


def chain_spec(privacy: Privacy = PRIVACY, **changes: Any) -> t.DpSpec:
    """The DpSpec the chain holds for `privacy` (create_private_task's argument), with `changes`."""
    terms = DpTerms.from_privacy(privacy)
    spec = t.DpSpec(accountant=t.Accountant.from_value(terms.accountant.capitalize()), epsilon_cap=terms.epsilon_cap,
                    delta=terms.delta, max_grad_norm=terms.max_grad_norm, noise_multiplier=terms.noise_multiplier,
                    noise_key_hash=H256(bytes.fromhex(privacy.noise_key.hash)))
    return replace(spec, **changes)


def claim_of(spec: t.DpSpec, **changes: Any) -> t.DpClaim:
    """The honest worker's claim for SHAPE under `spec`, as the chain stores it, with `changes`."""
    terms = DpTerms(spec.accountant.name, spec.epsilon_cap, spec.delta, spec.max_grad_norm, spec.noise_multiplier)
    honest = honest_claim(terms, **SHAPE)
    claim = t.DpClaim(accountant=spec.accountant, noise_multiplier=honest.noise_multiplier,
                      sample_rate=honest.sample_rate, steps=honest.steps, max_grad_norm=honest.max_grad_norm,
                      delta=honest.delta, epsilon=honest.epsilon)
    return replace(claim, **changes)


def test_the_spec_document_must_say_what_the_chain_holds() -> None:
    assert privacy_mismatch(None, None) == []
    assert privacy_mismatch(PRIVACY, chain_spec()) == []
    assert privacy_mismatch(replace(PRIVACY, noise_key=NoiseKeyRef(PRIVACY.noise_key.hash, KEY_URI + "0")),
                            chain_spec()) == []  # where the key lies is not on chain, its hash is
    assert "no privacy section" in privacy_mismatch(None, chain_spec())[0]
    assert "not private on chain" in privacy_mismatch(PRIVACY, None)[0]
    spec = chain_spec()
    for field, value in (("noise_multiplier", spec.noise_multiplier - 1), ("max_grad_norm", spec.max_grad_norm + 1),
                         ("epsilon_cap", spec.epsilon_cap + 1), ("delta", spec.delta * 10),
                         ("accountant", t.Accountant.Prv), ("noise_key_hash", H256(noise_key_hash(bytes(32))))):
        [reason] = privacy_mismatch(PRIVACY, replace(spec, **{field: value}))
        assert reason.startswith(f"{field}:"), reason


def test_an_honest_claim_passes_and_a_wrong_mechanism_fails() -> None:
    spec = chain_spec()
    honest = claim_of(spec)
    check = dp_claim_check(honest, spec, **SHAPE)
    assert check.ok, check.detail
    # q = B/n as a Perbill; the engine's step count
    assert honest.sample_rate == round(64 * 10**9 / 1437) and honest.steps == 1437 // 64 * 2
    for field, value in (("noise_multiplier", spec.noise_multiplier + 1), ("max_grad_norm", 10**12),
                         ("sample_rate", honest.sample_rate + 1), ("steps", honest.steps - 1),
                         ("delta", spec.delta + 1), ("accountant", t.Accountant.Prv)):
        check = dp_claim_check(replace(honest, **{field: value}), spec, **SHAPE)
        assert not check.ok and f"{field}:" in check.detail["reason"], (field, check.detail)
    assert not dp_claim_check(None, spec, **SHAPE).ok
    # the data size fixes q and steps: a claim for another split is wrong even with the spec's mechanism
    assert "steps:" in dp_claim_check(honest, spec, **{**SHAPE, "epochs": 3}).detail["reason"]


@pytest.mark.parametrize(("under", "accepted"), [(0.0, True), (0.005, True), (0.02, False)])
def test_epsilon_more_than_one_percent_under_the_recomputation_fails(under: float, accepted: bool) -> None:
    spec = chain_spec()
    honest = claim_of(spec)
    claimed = epsilon_to_chain(epsilon_from_chain(honest.epsilon) * (1 - under))
    check = dp_claim_check(replace(honest, epsilon=claimed), spec, **SHAPE)
    assert check.ok is accepted, check.detail
    if not accepted:
        assert check.detail["reason"].startswith("epsilon:")
    # over-claiming only spends more budget; above the cap it is wrong (the pallet refuses it as well)
    assert dp_claim_check(replace(honest, epsilon=honest.epsilon * 2), spec, **SHAPE).ok
    assert not dp_claim_check(replace(honest, epsilon=spec.epsilon_cap + 1), spec, **SHAPE).ok


def test_prv_is_recomputed_with_prv() -> None:
    privacy = replace(PRIVACY, accountant="prv")
    spec = chain_spec(privacy)
    assert spec.accountant == t.Accountant.Prv and privacy_mismatch(privacy, spec) == []
    honest = claim_of(spec)
    assert dp_claim_check(honest, spec, **SHAPE).ok
    rdp = claim_of(chain_spec())  # the RDP epsilon of the same run is larger, so it passes as an over-claim
    assert rdp.epsilon > honest.epsilon


def test_a_plain_task_has_no_privacy_checks(tmp_path) -> None:
    from workers import ArtifactStore, DatasetRef, Evaluation, TaskSpec

    spec = TaskSpec(recipe="digits_mlp", dataset=DatasetRef("00" * 32, "file:///nowhere"),
                    evaluation=Evaluation("accuracy", 0.8))
    checker = ResultChecker(ArtifactStore(tmp_path))
    assert checker.privacy_checks(spec, None) == []
    # a private task whose document has no privacy section: rejected before anything is read
    [check] = checker.privacy_checks(spec, PrivateResult(chain_spec(), None))
    assert check.name == "privacy_spec" and not check.ok and "no privacy section" in check.detail["reason"]
