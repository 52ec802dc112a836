"""Epsilon of a DP-SGD run, and the check a validator makes of a worker's claim.

The chain cannot run an accountant, so every party recomputes epsilon off chain with Opacus's own accountants
(`create_accountant` with one ``history`` entry (noise_multiplier, sample_rate, steps); no training needed).
Only "rdp" and "prv" are accepted: Opacus's "gdp" warns that it can underestimate, and an underestimate would
spend less budget than the run used. The claim's values are chain units (runtime_bindings.privacy) so that a
validator checks exactly what was signed; everything here is a pure function of plain values.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from runtime_bindings.privacy import (
    delta_from_chain,
    delta_to_chain,
    epsilon_from_chain,
    epsilon_to_chain,
    norm_from_chain,
    norm_to_chain,
    rate_from_chain,
    rate_to_chain,
)
from workers.hashing import normalize_hash

if TYPE_CHECKING:
    from workers.spec import Privacy

ACCOUNTANTS = ("prv", "rdp")
PRV_CUTOFF = 150.0      # RDP epsilon above which "prv" answers with the RDP bound (see epsilon_spent)
CLAIM_TOLERANCE = 0.01  # the pallet's EpsilonTolerance: a claim more than 1 % below the recomputation is wrong


class PrivacyError(ValueError):
    """DP parameters that cannot be accounted for."""


class UnsupportedAccountantError(PrivacyError):
    """An accountant other than "rdp" or "prv" (the chain's Accountant enum)."""


def accountant_name(value: str) -> str:
    """The Opacus name of an accountant given as Opacus spells it ("prv") or as the chain's enum variant
    ("Prv"); UnsupportedAccountantError for "gdp" and anything else."""
    name = value.lower() if isinstance(value, str) else value
    if name not in ACCOUNTANTS:
        raise UnsupportedAccountantError(
            f"accountant {value!r}: only 'prv' and 'rdp' (Opacus's 'gdp' can underestimate epsilon)")
    return name


def _check_mechanism(noise_multiplier: float, sample_rate: float, steps: int, delta: float) -> None:
    if not (isinstance(noise_multiplier, (int, float)) and math.isfinite(noise_multiplier) and noise_multiplier >= 0):
        raise PrivacyError(f"noise_multiplier must be a finite number >= 0, got {noise_multiplier!r}")
    if not (isinstance(sample_rate, (int, float)) and 0 <= sample_rate <= 1):
        raise PrivacyError(f"sample_rate must be in [0, 1], got {sample_rate!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise PrivacyError(f"steps must be an integer >= 0, got {steps!r}")
    if not (isinstance(delta, (int, float)) and 0 < delta < 1):
        raise PrivacyError(f"delta must be in (0, 1), got {delta!r}")


@functools.lru_cache(maxsize=256)
def _epsilon(accountant: str, noise_multiplier: float, sample_rate: float, steps: int, delta: float) -> float:
    from opacus.accountants import create_accountant

    if accountant == "prv":
        bound = _epsilon("rdp", noise_multiplier, sample_rate, steps, delta)
        if bound > PRV_CUTOFF:
            return bound
    acc = create_accountant(accountant)
    acc.history = [(noise_multiplier, sample_rate, steps)]
    try:
        return float(acc.get_epsilon(delta))
    except (ArithmeticError, MemoryError, ValueError) as exc:
        raise PrivacyError(f"the {accountant} accountant cannot bound sigma {noise_multiplier}, q {sample_rate}, "
                           f"{steps} steps: {type(exc).__name__}") from None


def epsilon_spent(accountant: str, noise_multiplier: float, sample_rate: float, steps: int, delta: float) -> float:
    """Epsilon at `delta` after `steps` Poisson-sampled Gaussian steps, by Opacus's accountant. No noise is no
    privacy (infinity); no steps or an empty sample spend nothing. Cached: PRV takes up to seconds.

    PRV's discretisation grows with epsilon (sigma 0.1 at q 0.045 for 660 steps asks numpy for petabytes), so
    past an RDP bound of PRV_CUTOFF the RDP bound itself is returned for "prv": still an upper bound (RDP is
    looser, ~5-10 % above PRV here), and far above any cap the chain allows (MaxEpsilon 100)."""
    name = accountant_name(accountant)
    _check_mechanism(noise_multiplier, sample_rate, steps, delta)
    if noise_multiplier == 0:
        return math.inf
    if steps == 0 or sample_rate == 0:
        return 0.0
    return _epsilon(name, float(noise_multiplier), float(sample_rate), int(steps), float(delta))


def noise_multiplier_for(target_epsilon: float, delta: float, sample_rate: float, steps: int,
                         accountant: str) -> float:
    """The noise multiplier (Opacus's `get_noise_multiplier`, binary search to 0.01 epsilon) that keeps the run
    at or below `target_epsilon`, rounded *up* to the chain's 1e-6 so that the decoded value still does."""
    from opacus.accountants.utils import get_noise_multiplier

    name = accountant_name(accountant)
    _check_mechanism(1.0, sample_rate, steps, delta)
    if not (isinstance(target_epsilon, (int, float)) and math.isfinite(target_epsilon) and target_epsilon > 0):
        raise PrivacyError(f"target_epsilon must be a finite number > 0, got {target_epsilon!r}")
    if steps == 0 or sample_rate == 0:
        raise PrivacyError("a run of no steps or an empty sample needs no noise")
    try:
        sigma = get_noise_multiplier(target_epsilon=float(target_epsilon), target_delta=float(delta),
                                     sample_rate=float(sample_rate), steps=int(steps), accountant=name)
    except ValueError as exc:  # "The privacy budget is too low."
        raise PrivacyError(f"no noise multiplier reaches epsilon {target_epsilon} at delta {delta}: {exc}") from None
    return norm_from_chain(math.ceil(sigma * 10**6 - 1e-9))


def sample_rate_of(train_examples: int, batch_size: int) -> int:
    """The Poisson sample rate q = batch_size / train_examples as a Perbill (the contract's q)."""
    if train_examples < 1 or batch_size < 1:
        raise PrivacyError(f"no sample rate for {batch_size} of {train_examples} examples")
    return rate_to_chain(min(1.0, batch_size / train_examples))


def steps_for(train_examples: int, batch_size: int, epochs: int) -> int:
    """The optimizer steps of a DP run: the engine's own count at world size 1 (DP runs on one rank)."""
    from workers.engine import steps_of

    return steps_of(train_examples, batch_size, epochs, 1)


@dataclass(frozen=True)
class DpTerms:
    """What the spec fixes, in chain units: the on-chain DpSpec without its noise_key_hash."""

    accountant: str          # "prv" | "rdp"
    epsilon_cap: int         # micro-epsilon
    delta: int               # 1e-15
    max_grad_norm: int       # 1e-6
    noise_multiplier: int    # 1e-6

    def __post_init__(self) -> None:
        object.__setattr__(self, "accountant", accountant_name(self.accountant))

    @classmethod
    def from_mapping(cls, value: Mapping[str, Any]) -> DpTerms:
        """From the chain's DpSpec as the bindings decode it (extra keys such as noise_key_hash ignored)."""
        return cls(accountant=value["accountant"], epsilon_cap=int(value["epsilon_cap"]), delta=int(value["delta"]),
                   max_grad_norm=int(value["max_grad_norm"]), noise_multiplier=int(value["noise_multiplier"]))

    @classmethod
    def from_floats(cls, accountant: str, epsilon_cap: float, delta: float, max_grad_norm: float,
                    noise_multiplier: float) -> DpTerms:
        """From the spec document's floats, converted as the chain holds them."""
        return cls(accountant=accountant, epsilon_cap=epsilon_to_chain(epsilon_cap), delta=delta_to_chain(delta),
                   max_grad_norm=norm_to_chain(max_grad_norm), noise_multiplier=norm_to_chain(noise_multiplier))

    @classmethod
    def from_privacy(cls, privacy: Privacy) -> DpTerms:
        """From a spec document's "privacy" section."""
        return cls.from_floats(privacy.accountant, privacy.epsilon, privacy.delta, privacy.max_grad_norm,
                               privacy.noise_multiplier)


def chain_spec_mismatches(privacy: Privacy, chain_dp_spec: Mapping[str, Any]) -> list[str]:
    """How the on-chain DpSpec differs from the spec document's "privacy" section (empty: they agree). A worker
    refuses, and a validator rejects, a task whose two disagree: the run would not be the one committed."""
    want = DpTerms.from_privacy(privacy)
    got = DpTerms.from_mapping(chain_dp_spec)
    reasons = [f"{name}: the chain holds {getattr(got, name)}, the spec document {getattr(want, name)}"
               for name in ("accountant", "epsilon_cap", "delta", "max_grad_norm", "noise_multiplier")
               if getattr(got, name) != getattr(want, name)]
    chain_hash = normalize_hash(chain_dp_spec["noise_key_hash"])
    if chain_hash != privacy.noise_key.hash:
        reasons.append(f"noise_key_hash: the chain holds {chain_hash}, the spec document {privacy.noise_key.hash}")
    return reasons


@dataclass(frozen=True)
class DpClaim:
    """A worker's claim in chain units, field for field the pallet's DpClaim."""

    accountant: str          # "prv" | "rdp"
    noise_multiplier: int    # 1e-6
    sample_rate: int         # Perbill
    steps: int
    max_grad_norm: int       # 1e-6
    delta: int               # 1e-15
    epsilon: int             # micro-epsilon, as claimed

    def __post_init__(self) -> None:
        object.__setattr__(self, "accountant", accountant_name(self.accountant))

    @classmethod
    def from_mapping(cls, value: Mapping[str, Any]) -> DpClaim:
        return cls(accountant=value["accountant"], noise_multiplier=int(value["noise_multiplier"]),
                   sample_rate=int(value["sample_rate"]), steps=int(value["steps"]),
                   max_grad_norm=int(value["max_grad_norm"]), delta=int(value["delta"]),
                   epsilon=int(value["epsilon"]))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def decoded(self) -> dict[str, Any]:
        """The float values the run used (the Report card's "privacy" section)."""
        return {"accountant": self.accountant, "noise_multiplier": norm_from_chain(self.noise_multiplier),
                "sample_rate": rate_from_chain(self.sample_rate), "steps": self.steps,
                "max_grad_norm": norm_from_chain(self.max_grad_norm), "delta": delta_from_chain(self.delta),
                "epsilon": epsilon_from_chain(self.epsilon)}


def recompute_epsilon(terms: DpTerms, sample_rate: int, steps: int) -> float:
    """Epsilon of the run `terms` commit to, with the chain values decoded as the worker trains with them."""
    return epsilon_spent(terms.accountant, norm_from_chain(terms.noise_multiplier), rate_from_chain(sample_rate),
                         steps, delta_from_chain(terms.delta))


def honest_claim(terms: DpTerms, *, train_examples: int, batch_size: int, epochs: int) -> DpClaim:
    """The claim an honest worker makes for a run of `terms` on `train_examples` (epsilon rounded up)."""
    rate, steps = sample_rate_of(train_examples, batch_size), steps_for(train_examples, batch_size, epochs)
    epsilon = recompute_epsilon(terms, rate, steps)
    try:
        epsilon_units = epsilon_to_chain(epsilon)
    except ValueError:
        raise PrivacyError(f"epsilon {epsilon} of this run is beyond what the chain can hold") from None
    return DpClaim(accountant=terms.accountant, noise_multiplier=terms.noise_multiplier, sample_rate=rate,
                   steps=steps, max_grad_norm=terms.max_grad_norm, delta=terms.delta, epsilon=epsilon_units)


def mechanism_problems(claim: DpClaim, terms: DpTerms, rate: int, *, source: str, rate_source: str) -> list[str]:
    """Where `claim`'s mechanism is not `terms`' (named by `source`) or its sample rate not `rate` (named by
    `rate_source`): the replay, or a federated client's accounting, reproduces only that one mechanism."""
    return [f"{name}: claimed {got}, the {where} says {want}" for name, got, want, where in (
        ("accountant", claim.accountant, terms.accountant, source),
        ("delta", claim.delta, terms.delta, source),
        ("max_grad_norm", claim.max_grad_norm, terms.max_grad_norm, source),
        ("noise_multiplier", claim.noise_multiplier, terms.noise_multiplier, source),
        ("sample_rate", claim.sample_rate, rate, rate_source),
    ) if got != want]


def under_reported(claim: DpClaim, terms: DpTerms, rate: int, steps: int, *,
                   tolerance: float = CLAIM_TOLERANCE) -> str | None:
    """Why `claim`'s epsilon is more than `tolerance` below a recomputation of `steps` steps at `rate` under
    `terms` (None: it is not); epsilon is recomputed from the terms, never from the claim's own values."""
    recomputed = recompute_epsilon(terms, rate, steps)
    claimed = epsilon_from_chain(claim.epsilon)
    if claimed < (1 - tolerance) * recomputed:
        return f"epsilon: claimed {claimed}, more than {tolerance:.0%} below the recomputed {recomputed:.6f}"
    return None


def check_claim(claim: DpClaim | Mapping[str, Any], terms: DpTerms | Mapping[str, Any], *, train_examples: int,
                batch_size: int, epochs: int, tolerance: float = CLAIM_TOLERANCE) -> list[str]:
    """Why `claim` is wrong for a run of `terms` on `train_examples` (empty: it is right). The mechanism must be
    the spec's exactly, q and steps what the data size implies, and the claimed epsilon at least
    (1 - tolerance) of the recomputation; claiming more only spends more budget."""
    claim = claim if isinstance(claim, DpClaim) else DpClaim.from_mapping(claim)
    terms = terms if isinstance(terms, DpTerms) else DpTerms.from_mapping(terms)
    rate, steps = sample_rate_of(train_examples, batch_size), steps_for(train_examples, batch_size, epochs)
    reasons = mechanism_problems(claim, terms, rate, source="spec",
                                 rate_source=f"data size ({batch_size} of {train_examples})")
    if claim.steps != steps:
        reasons.append(f"steps: claimed {claim.steps}, the data size ({train_examples // batch_size} steps an "
                       f"epoch, {epochs} epochs) says {steps}")
    low = under_reported(claim, terms, rate, steps, tolerance=tolerance)
    reasons += [low] if low else []
    cap = above_cap(claim, terms)
    return reasons + ([cap] if cap else [])


def above_cap(claim: DpClaim, terms: DpTerms) -> str | None:
    """Why `claim` spends more than the cap `terms` reserved (None: it does not)."""
    if claim.epsilon > terms.epsilon_cap:
        return (f"epsilon: claimed {epsilon_from_chain(claim.epsilon)}, "
                f"above the cap {epsilon_from_chain(terms.epsilon_cap)}")
    return None
