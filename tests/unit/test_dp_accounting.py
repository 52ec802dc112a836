"""workers.privacy.accounting: Opacus's accountants on fixed numbers, and every reason a claim is rejected."""
from __future__ import annotations

import math
from dataclasses import replace

import pytest

from runtime_bindings.privacy import epsilon_to_chain, norm_to_chain
from workers.privacy import (
    DpClaim,
    DpTerms,
    PrivacyError,
    UnsupportedAccountantError,
    check_claim,
    epsilon_spent,
    honest_claim,
    noise_multiplier_for,
    sample_rate_of,
    steps_for,
)

N, BATCH, EPOCHS = 1438, 64, 30          # digits' training split, the design's run
TERMS = DpTerms.from_floats("prv", epsilon_cap=3.5, delta=1e-5, max_grad_norm=1.0, noise_multiplier=1.792)


@pytest.fixture(scope="module")
def claim() -> DpClaim:
    return honest_claim(TERMS, train_examples=N, batch_size=BATCH, epochs=EPOCHS)


def test_design_numbers() -> None:
    # docs/design/private.md 1.3: sigma 1.792, q 1/23, T 690, delta 1e-5 -> PRV 2.997, RDP 3.262
    assert epsilon_spent("prv", 1.792, 1 / 23, 690, 1e-5) == pytest.approx(2.997, abs=0.002)
    assert epsilon_spent("rdp", 1.792, 1 / 23, 690, 1e-5) == pytest.approx(3.262, abs=0.002)
    assert epsilon_spent("Prv", 1.792, 1 / 23, 690, 1e-5) == epsilon_spent("prv", 1.792, 1 / 23, 690, 1e-5)


def test_edges_and_monotony() -> None:
    assert epsilon_spent("rdp", 0.0, 0.05, 10, 1e-5) == math.inf
    assert epsilon_spent("prv", 1.0, 0.05, 0, 1e-5) == 0.0
    assert epsilon_spent("rdp", 1.0, 0.05, 100, 1e-5) < epsilon_spent("rdp", 1.0, 0.05, 200, 1e-5)
    assert epsilon_spent("rdp", 2.0, 0.05, 100, 1e-5) < epsilon_spent("rdp", 1.0, 0.05, 100, 1e-5)


@pytest.mark.parametrize("name", ["gdp", "GDP", "", "moments", None])
def test_other_accountants_refused(name) -> None:
    with pytest.raises(UnsupportedAccountantError):
        epsilon_spent(name, 1.0, 0.05, 10, 1e-5)
    with pytest.raises(UnsupportedAccountantError):
        DpTerms.from_floats(name, 1.0, 1e-5, 1.0, 1.0)


@pytest.mark.parametrize("args", [(-1.0, 0.05, 10, 1e-5), (math.nan, 0.05, 10, 1e-5), (1.0, 1.5, 10, 1e-5),
                                  (1.0, 0.05, -1, 1e-5), (1.0, 0.05, 1.5, 1e-5), (1.0, 0.05, 10, 0.0),
                                  (1.0, 0.05, 10, 1.0)])
def test_bad_mechanism_refused(args) -> None:
    with pytest.raises(PrivacyError):
        epsilon_spent("rdp", *args)


def test_noise_multiplier_for_meets_target() -> None:
    rate = 1 / 23
    sigma = noise_multiplier_for(3.0, 1e-5, rate, 690, "prv")
    assert sigma == pytest.approx(1.792, abs=0.01)
    assert norm_to_chain(sigma) / 10**6 == sigma            # on the chain's grid: the worker uses it as is
    assert epsilon_spent("prv", sigma, rate, 690, 1e-5) <= 3.0
    assert epsilon_spent("prv", sigma * 0.97, rate, 690, 1e-5) > 2.95
    with pytest.raises(PrivacyError):
        noise_multiplier_for(0.0, 1e-5, rate, 690, "prv")
    with pytest.raises(UnsupportedAccountantError):
        noise_multiplier_for(3.0, 1e-5, rate, 690, "gdp")


def test_schedule_is_the_engines() -> None:
    assert steps_for(N, BATCH, EPOCHS) == 22 * 30
    assert sample_rate_of(N, BATCH) == round(64 / 1438 * 10**9)


def test_honest_claim_accepted(claim: DpClaim) -> None:
    assert claim.steps == 660 and claim.sample_rate == sample_rate_of(N, BATCH)
    expected = epsilon_spent("prv", 1.792, claim.sample_rate / 10**9, 660, 1e-5)
    assert claim.epsilon == epsilon_to_chain(expected)
    assert check_claim(claim, TERMS, train_examples=N, batch_size=BATCH, epochs=EPOCHS) == []
    # the same from the plain dicts the chain bindings give a validator (enum variants capitalised)
    chain_terms = {"accountant": "Prv", "epsilon_cap": TERMS.epsilon_cap, "delta": TERMS.delta,
                   "max_grad_norm": TERMS.max_grad_norm, "noise_multiplier": TERMS.noise_multiplier,
                   "noise_key_hash": "0x" + "11" * 32}
    assert check_claim({**claim.to_dict(), "accountant": "Prv"}, chain_terms, train_examples=N, batch_size=BATCH,
                       epochs=EPOCHS) == []
    assert claim.decoded()["epsilon"] == claim.epsilon / 10**6 and claim.decoded()["delta"] == 1e-5


def _reasons(claim: DpClaim, **kw) -> list[str]:
    return check_claim(claim, TERMS, **{"train_examples": N, "batch_size": BATCH, "epochs": EPOCHS, **kw})


def test_under_claim_tolerance(claim: DpClaim) -> None:
    over = replace(claim, epsilon=claim.epsilon * 11 // 10)           # over-claiming only spends more
    assert _reasons(over) == []
    slight = replace(claim, epsilon=int(claim.epsilon * 0.995))       # 0.5 % under: within the 1 % rule
    assert _reasons(slight) == []
    under = replace(claim, epsilon=int(claim.epsilon * 0.98))         # 2 % under: rejected
    (reason,) = _reasons(under)
    assert reason.startswith("epsilon:") and "below the recomputed" in reason


@pytest.mark.parametrize("field, value", [("accountant", "rdp"), ("delta", 10**9), ("max_grad_norm", 900_000),
                                          ("max_grad_norm", 1_100_000), ("noise_multiplier", 1_900_000),
                                          ("noise_multiplier", 1_000_000), ("sample_rate", 50_000_000),
                                          ("steps", 659)])
def test_each_parameter_mismatch(claim: DpClaim, field: str, value) -> None:
    reasons = _reasons(replace(claim, **{field: value}))
    assert len(reasons) == 1 and reasons[0].startswith(f"{field}:"), reasons


def test_data_size_decides_rate_and_steps(claim: DpClaim) -> None:
    # a claim made as if the split were smaller (fewer examples: a larger q, fewer steps) is wrong twice
    fields = sorted(r.split(":")[0] for r in _reasons(claim, train_examples=N + 200))
    assert fields == ["epsilon", "sample_rate", "steps"] or fields == ["sample_rate", "steps"]
    assert [r.split(":")[0] for r in _reasons(claim, epochs=EPOCHS + 1)] == ["steps", "epsilon"]


def test_claim_above_cap(claim: DpClaim) -> None:
    capped = replace(TERMS, epsilon_cap=claim.epsilon - 1)
    (reason,) = check_claim(claim, capped, train_examples=N, batch_size=BATCH, epochs=EPOCHS)
    assert "above the cap" in reason


def test_prv_past_the_cutoff_answers_with_the_rdp_bound() -> None:
    # PRV would ask numpy for petabytes here; the RDP bound (an upper bound, far above MaxEpsilon) comes back
    assert epsilon_spent("prv", 0.1, 0.0445, 660, 1e-5) == epsilon_spent("rdp", 0.1, 0.0445, 660, 1e-5) > 1000
    assert epsilon_spent("prv", 1e-6, 0.0445, 44, 1e-5) > 1000
