"""A central-DP federated task's terms as the aggregator and the validators use them (docs/central-dp.md).

The chain holds the terms (PrivacyBudgets.FederatedCentralDp, set by `create_central_dp_task`); this module turns
them into Flower's wrapper for the aggregator (`wrap`), the aggregator's cumulative claim for a round (`claim`)
and the validators' check of a committed claim (`claim_problems`). Each round is one release of the Gaussian
mechanism on the round's mean with no amplification (Flower samples clients with `random.sample`, not by Poisson
sampling), so after round r the claim is the accountant's epsilon for r steps at sample rate 1.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from runtime_bindings.privacy import accountant_name, epsilon_to_chain, norm_from_chain
from workers.fl.central_dp import CentralRelease, noise_std, seed_words
from workers.fl.central_noise import CentralDpError, CentralNoise
from workers.fl.spec import PERBILL
from workers.privacy.accounting import (
    DpClaim,
    DpTerms,
    above_cap,
    mechanism_problems,
    recompute_epsilon,
    under_reported,
)

ONE_RELEASE = "central DP (one release a round, no amplification)"


@dataclass(frozen=True)
class CentralTask:
    """The task's central DP terms: who clips, and the mechanism in chain units (`terms.max_grad_norm` is the
    clipping norm of each client's whole update)."""

    clipped_by: str        # "server" | "client"
    terms: DpTerms

    @classmethod
    def from_chain(cls, value: Any) -> CentralTask:
        """From the bindings' CentralDp (PrivacyBudgets.FederatedCentralDp)."""
        return cls("server" if value.clipping.name == "ServerFixed" else "client",
                   DpTerms(accountant=accountant_name(value.accountant), epsilon_cap=int(value.epsilon_cap),
                           delta=int(value.delta), max_grad_norm=int(value.clipping_norm),
                           noise_multiplier=int(value.noise_multiplier)))

    @property
    def noise_multiplier(self) -> float:
        return norm_from_chain(self.terms.noise_multiplier)

    @property
    def clipping_norm(self) -> float:
        return norm_from_chain(self.terms.max_grad_norm)

    def claim(self, round_: int) -> DpClaim:
        """The aggregator's claim after releasing rounds 1..round_ (epsilon rounded up to chain units)."""
        epsilon = recompute_epsilon(self.terms, PERBILL, round_)
        try:
            units = epsilon_to_chain(epsilon)
        except ValueError:
            raise CentralDpError(f"epsilon {epsilon} after {round_} rounds is beyond what the chain can hold") from None
        return DpClaim(accountant=self.terms.accountant, noise_multiplier=self.terms.noise_multiplier,
                       sample_rate=PERBILL, steps=round_, max_grad_norm=self.terms.max_grad_norm,
                       delta=self.terms.delta, epsilon=units)

    def over_the_cap(self, rounds: int) -> str | None:
        """Why releasing `rounds` rounds would spend more than the cap each client reserved (None: it would not).
        Checked before a task is posted and before each release: a released model cannot be taken back."""
        claim = self.claim(rounds)
        if claim.epsilon > self.terms.epsilon_cap:
            return (f"{rounds} rounds of noise {self.noise_multiplier:g} spend epsilon {claim.epsilon / 1e6:g} "
                    f"({self.terms.accountant}), above the cap {self.terms.epsilon_cap / 1e6:g}")
        return None

    def claim_problems(self, claim: DpClaim, round_: int) -> list[str]:
        """Why a committed claim for round `round_` under-reports the rounds released so far (empty: it does not).
        The pallet already refused any other mechanism; the accountant is what it cannot run."""
        reasons = mechanism_problems(claim, self.terms, PERBILL, source="task", rate_source=ONE_RELEASE)
        if claim.steps != round_:
            reasons.append(f"steps: claimed {claim.steps}, round {round_} is release {round_}")
        low, cap = under_reported(claim, self.terms, PERBILL, round_), above_cap(claim, self.terms)
        return reasons + [r for r in (low, cap) if r]

    def wrap(self, inner: Any, participants: int) -> Any:
        """Flower's fixed-clipping wrapper of `inner` (FedAvg) for this task; `num_sampled_clients` is set again
        to each round's accepted count before it aggregates (workers/fl/strategy.py)."""
        from flwr.serverapp.strategy import (
            DifferentialPrivacyClientSideFixedClipping,
            DifferentialPrivacyServerSideFixedClipping,
        )

        wrapper = DifferentialPrivacyServerSideFixedClipping if self.clipped_by == "server" \
            else DifferentialPrivacyClientSideFixedClipping
        return wrapper(inner, self.noise_multiplier, self.clipping_norm, participants)


    def release(self, problems: Sequence[str] = ()) -> CentralRelease:
        """What a validator recomputes a round with, and what is wrong with the round's claim."""
        return CentralRelease(self.noise_multiplier, self.clipping_norm, tuple(problems))


@dataclass(frozen=True)
class SeededRelease:
    """One round's noise, seeded before Flower's wrapper draws it: the record the round document keeps."""

    task: CentralTask
    seed: bytes
    participants: int

    def record(self, order: Sequence[str]) -> CentralNoise:
        std = noise_std(self.task.noise_multiplier, self.task.clipping_norm, self.participants)
        return CentralNoise(self.seed.hex(), std, self.task.clipped_by, tuple(order)).validate()


def begin_release(task: CentralTask, wrapper: Any, metrics: Sequence[Any], weight_key: str) -> SeededRelease:
    """Make Flower's wrapper release this round as the chain's terms say, just before its aggregate_train: equal
    weights (the noise is calibrated to an unweighted mean, so each reply's weight metric becomes 1), the std for
    the replies actually aggregated (not the number sampled), and numpy's global generator, which Flower draws
    the noise from, seeded with 32 fresh random bytes. The aggregator's process must draw nothing else from
    numpy's global generator meanwhile (the ServerApp thread is the only one that does)."""
    for record in metrics:
        record[weight_key] = 1
    wrapper.num_sampled_clients = len(metrics)
    seed = os.urandom(32)
    np.random.seed(seed_words(seed))
    return SeededRelease(task, seed, len(metrics))


def central_task(chain: Any, task_id: int) -> CentralTask | None:
    """The task's central DP terms from the chain; None when it has none."""
    value = chain.privacy_budgets.federated_central_dp(task_id)
    return None if value is None else CentralTask.from_chain(value)


__all__ = ["CentralTask", "SeededRelease", "begin_release", "central_task"]
