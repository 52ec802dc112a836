"""The declarations of pallet_privacy_budgets: its types, events and errors (the logic is in privacy.py).

Units (no floats on chain; runtime_bindings/privacy.py converts): epsilon in micro-epsilon (u64, 1e-6),
delta in 1e-15 (u64), noise multiplier and norms in 1e-6 (u64), sample rate as a Perbill. Variants, fields,
events and errors are only ever appended, so stored encodings and indices stay valid.

The DP attestation (design docs/design/private.md section 2.3) is mirrored here with devnet's own codec, since
devnet may not import runtime_bindings: a worker signs
`b"paratrain/attestation-dp/v1" ++ SCALE(Attestation) ++ SCALE(DpClaim)`, so the claim is bound to the very
result it describes and the plain attestation's bytes and domain stay as they were.
"""
from __future__ import annotations

from typing import Any

from devnet.runtime.framework import ErrorDef, EventDef
from devnet.runtime.pallets.task_bounties_types import ATTESTATION_CODEC, Perbill
from devnet.scale.codec import codec_for
from devnet.scale.types import H256, U32, U64, AccountId, Composite, enum, fields

PALLET = "pallet_privacy_budgets"
DP_ATTESTATION_DOMAIN = b"paratrain/attestation-dp/v1"

Market = enum((PALLET, "types", "Market"), ("Bounty", ()), ("Federated", ()))
# Opacus's "rdp" and "prv"; "gdp" is refused because it can underestimate epsilon
Accountant = enum((PALLET, "types", "Accountant"), ("Rdp", ()), ("Prv", ()))
Budget = Composite((PALLET, "types", "Budget"), fields(
    ("owner", AccountId, "T::AccountId"), ("epsilon", U64, "u64"), ("delta", U64, "u64"),
    ("reserved_epsilon", U64, "u64"), ("reserved_delta", U64, "u64"),
    ("spent_epsilon", U64, "u64"), ("spent_delta", U64, "u64"), ("created_at", U32, "BlockNumberFor<T>")))
DpSpec = Composite((PALLET, "types", "DpSpec"), fields(
    ("accountant", Accountant, "Accountant"), ("epsilon_cap", U64, "u64"), ("delta", U64, "u64"),
    ("max_grad_norm", U64, "u64"), ("noise_multiplier", U64, "u64"),
    # blake2_256(b"paratrain/dp-key/v1" ++ key): the key itself stays with the data's readers
    ("noise_key_hash", H256, "H256")))
# central DP for a federated task: who clips (the aggregator, Flower's DifferentialPrivacyServerSideFixedClipping,
# or each client with fixedclipping_mod under DifferentialPrivacyClientSideFixedClipping); the aggregator noises
# the unweighted mean of the clipped updates with std noise_multiplier * clipping_norm / participants
CentralClipping = enum((PALLET, "types", "CentralClipping"), ("ServerFixed", ()), ("ClientFixed", ()))
CentralDp = Composite((PALLET, "types", "CentralDp"), fields(
    ("clipping", CentralClipping, "CentralClipping"), ("accountant", Accountant, "Accountant"),
    ("epsilon_cap", U64, "u64"), ("delta", U64, "u64"), ("clipping_norm", U64, "u64"),
    ("noise_multiplier", U64, "u64")))
DpClaim = Composite((PALLET, "types", "DpClaim"), fields(
    ("accountant", Accountant, "Accountant"), ("noise_multiplier", U64, "u64"), ("sample_rate", Perbill, "Perbill"),
    ("steps", U64, "u64"), ("max_grad_norm", U64, "u64"), ("delta", U64, "u64"), ("epsilon", U64, "u64")))
Reservation = Composite((PALLET, "types", "Reservation"), fields(
    ("data_hash", H256, "H256"), ("epsilon", U64, "u64"), ("delta", U64, "u64")))
# a federated client's reservation for a whole task: each accepted round spends up to its cumulative claim
FederatedReservation = Composite((PALLET, "types", "FederatedReservation"), fields(
    ("data_hash", H256, "H256"), ("epsilon", U64, "u64"), ("delta", U64, "u64"), ("spent_epsilon", U64, "u64")))

DP_CLAIM_CODEC = codec_for(DpClaim)


def dp_attestation_message(attestation: dict[str, Any], claim: dict[str, Any]) -> bytes:
    """The bytes a worker signs for a private task: the DP domain, the SCALE attestation, the SCALE claim."""
    return DP_ATTESTATION_DOMAIN + ATTESTATION_CODEC.encode(attestation) + DP_CLAIM_CODEC.encode(claim)


# Events and errors ------------------------------------------------------------------------------
_DATA = ("data_hash", H256, "H256")
_MARKET = ("market", Market, "Market")
_TASK = ("task", U64, "TaskId")
_HOLDER = ("holder", AccountId, "T::AccountId")


def _u64(name: str) -> tuple[str, Any, str]:
    return (name, U64, "u64")


EVENTS = (
    EventDef("BudgetSet", fields(_DATA, ("owner", AccountId, "T::AccountId"), _u64("epsilon"), _u64("delta")),
             "A data owner promised a privacy budget for a data set (micro-epsilon, delta in 1e-15)."),
    EventDef("BudgetLowered", fields(_DATA, _u64("epsilon"), _u64("delta")),
             "The owner lowered a budget (never below what is spent plus reserved)."),
    EventDef("BudgetReserved", fields(_DATA, _MARKET, _TASK, _HOLDER, _u64("epsilon"), _u64("delta")),
             "A private task reserved (epsilon, delta) of a budget until it ends."),
    EventDef("BudgetSpent", fields(_DATA, _MARKET, _TASK, _HOLDER, _u64("epsilon"), _u64("delta"),
                                   _u64("released_epsilon"), _u64("remaining_epsilon")),
             "An accepted result spent its claimed (epsilon, delta); the rest of the reservation went back."),
    EventDef("BudgetReleased", fields(_DATA, _MARKET, _TASK, _HOLDER, _u64("epsilon"), _u64("delta")),
             "A private task ended unaccepted (expired, cancelled, timed out): its whole reservation went back."),
    EventDef("DpClaimed", fields(_MARKET, _TASK, ("worker", AccountId, "T::AccountId"), _u64("epsilon")),
             "A worker's signed DP claim for a result under verification (validators recompute epsilon)."),
)
ERRORS = tuple(ErrorDef(n, d) for n, d in (
    ("BudgetExists", "This data set already has a budget: a budget is set once (and only ever lowered)."),
    ("NoBudget", "This data set has no budget."),
    ("NotBudgetOwner", "Only the budget's owner may do this (lower it, or reserve from it for a task)."),
    ("BudgetExceeded", "The epsilon asked is more than the budget's remaining epsilon."),
    ("DeltaExceeded", "The delta asked is more than the budget's remaining delta."),
    ("DataSetHasBudget", "A non-private task on a budgeted data set: a result without DP spends epsilon infinity."),
    ("EpsilonAboveReservation", "The claimed epsilon is above the task's epsilon cap (what was reserved)."),
    ("InvalidPrivacyParams", "epsilon is 0 or above MaxEpsilon, delta outside [MinDelta, MaxDelta], a clipping "
                             "norm or noise multiplier is 0, or a sample rate is 0 or above 100 %."),
    ("ClaimMismatch", "The claim's accountant or delta differs from the task's, its clipping norm is above the "
                      "task's or its noise multiplier below it; or a central-DP round's claim is not of one release "
                      "per round (sample rate 100 %, steps equal to the round)."),
    ("CannotRaiseBudget", "lower_budget may not raise epsilon or delta: a budget is a public promise."),
    ("BelowCommitted", "The lowered budget is below what is already spent plus reserved."),
))
