"""A DP claim as it travels in a client's reply (the ``paratrain`` ConfigRecord) and as the chain takes it: the one
translation between workers.privacy's DpClaim (Opacus names, chain units) and runtime_bindings' typed DpClaim."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from runtime_bindings.generated import types as t
from runtime_bindings.privacy import accountant_name, accountant_of
from workers.privacy.accounting import ACCOUNTANTS, DpClaim

CLAIM_RECORD = "dp-claim"   # the trained reply's claim inside a ClientApp (its signing mod moves it into "paratrain")
INT_KEYS = ("noise_multiplier", "sample_rate", "steps", "max_grad_norm", "delta", "epsilon")
PREFIX = "dp-"
_U64_MAX = 2**64 - 1


def to_chain(claim: DpClaim) -> t.DpClaim:
    return t.DpClaim(accountant_of(claim.accountant), *(int(getattr(claim, k)) for k in INT_KEYS))


def from_chain(claim: t.DpClaim) -> DpClaim:
    return DpClaim(accountant_name(claim.accountant), *(int(getattr(claim, k)) for k in INT_KEYS))


def claim_fields(claim: DpClaim) -> dict[str, Any]:
    """The claim's entries for a reply's ConfigRecord."""
    return {f"{PREFIX}accountant": claim.accountant, **{f"{PREFIX}{k}": int(getattr(claim, k)) for k in INT_KEYS}}


def claim_of(record: Mapping[str, Any]) -> t.DpClaim | None:
    """The typed claim a reply's record carries; None when it carries none or a malformed one (input from the
    network: every field type- and range-checked)."""
    accountant = record.get(f"{PREFIX}accountant")
    values = [record.get(f"{PREFIX}{k}") for k in INT_KEYS]
    if accountant not in ACCOUNTANTS or not all(
            isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= _U64_MAX for v in values):
        return None
    return t.DpClaim(accountant_of(str(accountant)), *values)


__all__ = ["CLAIM_RECORD", "claim_fields", "claim_of", "from_chain", "to_chain"]
