"""A federated client's cumulative DP claim, and the validators' check of it.

A client of a private task (workers/fl/dp_task.py) trains each round with DP-SGD on its shard: Poisson batches
at rate q = batch_size / n (n its examples, as a Perbill), `round_steps` = what the engine's step count gives for
local_epochs over n. Its claim after its k-th round is *cumulative*: steps k * round_steps, epsilon of the whole
run so far with the task's accountant, so the chain spends each round only its increment
(PrivacyBudgets.spend_increment). A client whose next round would take its epsilon beyond the task's cap does not
train it (`CapReached`): its budget for the task is spent.

Validators recompute: the mechanism is the task's (accountant, delta, clipping norm, noise multiplier), q is what
the signed example count implies, the steps are at least round_steps times the rounds the chain shows the client
took part in up to this one, and the claimed epsilon is no more than CLAIM_TOLERANCE (1 %) below the epsilon of
the claimed steps. Claiming more only spends more of the client's own budget.
"""
from __future__ import annotations

from runtime_bindings.privacy import epsilon_to_chain, rate_from_chain
from workers.fl.dp_task import FlDp
from workers.privacy.accounting import (
    CLAIM_TOLERANCE,
    DpClaim,
    DpTerms,
    PrivacyError,
    mechanism_problems,
    recompute_epsilon,
    sample_rate_of,
    steps_for,
    under_reported,
)


class CapReached(PrivacyError):
    """The client's next round would spend more than the task's epsilon cap: it does not train it."""


def terms_of(dp: FlDp) -> DpTerms:
    return DpTerms.from_floats(dp.accountant, dp.epsilon, dp.delta, dp.max_grad_norm, dp.noise_multiplier)


def round_steps(num_examples: int, batch_size: int, local_epochs: int) -> int:
    return steps_for(num_examples, batch_size, local_epochs)


def client_claim(dp: FlDp, *, num_examples: int, batch_size: int, local_epochs: int, rounds: int) -> DpClaim:
    """The claim after `rounds` rounds of training (this one included); CapReached beyond the cap."""
    terms = terms_of(dp)
    rate = sample_rate_of(num_examples, batch_size)
    steps = rounds * round_steps(num_examples, batch_size, local_epochs)
    epsilon = recompute_epsilon(terms, rate, steps)
    units = epsilon_to_chain(epsilon) if epsilon <= 100 else terms.epsilon_cap + 1
    if units > terms.epsilon_cap:
        raise CapReached(f"{rounds} rounds of {steps // rounds} steps at rate {rate_from_chain(rate):.4f} spend "
                         f"epsilon {epsilon:.4g}, above the task's cap {dp.epsilon:g}")
    return DpClaim(accountant=terms.accountant, noise_multiplier=terms.noise_multiplier, sample_rate=rate,
                   steps=steps, max_grad_norm=terms.max_grad_norm, delta=terms.delta, epsilon=units)


def claim_problems(claim: DpClaim, dp: FlDp, *, num_examples: int, batch_size: int, local_epochs: int,
                   rounds_at_least: int, tolerance: float = CLAIM_TOLERANCE) -> list[str]:
    """Why `claim` under-reports the client's privacy loss (empty: it does not)."""
    terms = terms_of(dp)
    rate = sample_rate_of(num_examples, batch_size)
    least = rounds_at_least * round_steps(num_examples, batch_size, local_epochs)
    problems = mechanism_problems(claim, terms, rate, source="task",
                                  rate_source=f"signed example count ({batch_size} of {num_examples})")
    if claim.steps < least:
        problems.append(f"steps: claimed {claim.steps}, fewer than the {least} of its {rounds_at_least} rounds")
    low = under_reported(claim, terms, rate, max(claim.steps, least), tolerance=tolerance)
    return problems + ([low] if low else [])


__all__ = ["CapReached", "claim_problems", "client_claim", "round_steps", "terms_of"]
