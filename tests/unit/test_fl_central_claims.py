"""The validators' check of a central-DP round's claim (workers/fl/central_task.py): the accountant's epsilon for
one Gaussian release a round, recomputed from the task's terms, against what the aggregator committed."""
from __future__ import annotations

from dataclasses import replace

import pytest

from runtime_bindings.generated import types as t
from workers.fl.central_task import CentralTask
from workers.privacy.accounting import DpTerms, epsilon_spent

TERMS = DpTerms(accountant="rdp", epsilon_cap=20_000_000, delta=10_000_000_000, max_grad_norm=500_000,
                noise_multiplier=1_000_000)
TASK = CentralTask("server", TERMS)


def test_the_honest_claim_is_the_accountants_epsilon_for_that_many_releases() -> None:
    for round_ in (1, 2, 3):
        claim = TASK.claim(round_)
        assert (claim.steps, claim.sample_rate) == (round_, 10**9)
        assert claim.epsilon / 1e6 == pytest.approx(epsilon_spent("rdp", 1.0, 1.0, round_, 1e-5), abs=1e-6)
        assert TASK.claim_problems(claim, round_) == []
    assert TASK.claim(1).epsilon < TASK.claim(2).epsilon < TASK.claim(3).epsilon


@pytest.mark.parametrize(("change", "why"), [
    ({"epsilon": TASK.claim(2).epsilon // 2}, "more than 1% below"),
    ({"steps": 1}, "steps: claimed 1"),
    ({"epsilon": 25_000_000}, "above the cap"),
    ({"noise_multiplier": 2_000_000}, "noise_multiplier"),
])
def test_a_claim_that_under_reports_or_is_another_mechanism_is_named(change: dict, why: str) -> None:
    problems = TASK.claim_problems(replace(TASK.claim(2), **change), 2)
    assert any(why in p for p in problems), problems


def test_the_terms_come_from_the_chain_value() -> None:
    value = t.CentralDp(clipping=t.CentralClipping.ClientFixed, accountant=t.Accountant.Prv, epsilon_cap=1,
                        delta=2, clipping_norm=3, noise_multiplier=4)
    task = CentralTask.from_chain(value)
    assert task.clipped_by == "client"
    assert task.terms == DpTerms(accountant="prv", epsilon_cap=1, delta=2, max_grad_norm=3, noise_multiplier=4)
    assert (task.clipping_norm, task.noise_multiplier) == (3e-6, 4e-6)
