"""What a SecAgg+ task fixes, in the spec document and on chain: Flower's SecAgg+ settings, the client's L2 norm
bound and the audit rate.

The spec document (workers/fl/spec.py, its optional ``secagg`` object) is what the aggregator, the clients and the
validators read, in Python floats; FederatedTasks' SecAggSpec holds the same values as integers (Perbill
fractions, reals in units of 1e-9) so the pallet can refuse unsafe settings and over-weight joins. `chain_values`
is the one mapping between them: `paratrain fl create --secagg` posts it, and a validator refuses to judge a round
whose on-chain SecAggSpec is not the document's.

Only what the chain can state exactly is allowed: num_shares as a fraction of the sampled clients (a fixed count
depends on the round size, which the chain does not fix), and a whole-number max_weight (the pallet compares it
with the examples a client commits to).
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from workers.fl.secagg_params import FIELDS, SecAggParams, SecAggParamsError

PERBILL = 1_000_000_000
NANO = 1_000_000_000
DEFAULT_AUDIT_RATE = 100_000_000   # 10 % of each round's participants
KEYS = (*FIELDS, "update_norm_bound", "audit_rate")


def _perbill(value: float) -> int:
    return round(value * PERBILL)


def _nano(value: float) -> int:
    return round(value * NANO)


@dataclass(frozen=True)
class SecAggTask:
    """A task's SecAgg+ settings (`params`), the L2 bound every client clips its update to, and the Perbill share
    of each round's participants the chain draws for the audit (joining consents to it)."""

    params: SecAggParams
    update_norm_bound: float
    audit_rate: int = DEFAULT_AUDIT_RATE

    def __post_init__(self) -> None:
        if not isinstance(self.params.num_shares, float):
            raise SecAggParamsError("on chain num_shares is a fraction of the sampled clients, such as 1.0")
        if float(self.params.max_weight) != int(self.params.max_weight):
            raise SecAggParamsError(f"max_weight {self.params.max_weight!r} must be a whole number of examples")
        bound = self.update_norm_bound
        if isinstance(bound, bool) or not isinstance(bound, (int, float)) or not math.isfinite(bound) or bound <= 0:
            raise SecAggParamsError(f"update_norm_bound {bound!r} must be a finite number > 0")
        rate = self.audit_rate
        if isinstance(rate, bool) or not isinstance(rate, int) or not 0 < rate <= PERBILL:
            raise SecAggParamsError(f"audit_rate {rate!r} must be a Perbill above 0, at most {PERBILL}")

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> SecAggTask:
        """The spec document's ``secagg`` object: exactly KEYS."""
        if not isinstance(doc, Mapping) or set(doc) != set(KEYS):
            keys = sorted(doc) if isinstance(doc, Mapping) else doc
            raise SecAggParamsError(f"a secagg object has exactly the keys {', '.join(KEYS)}, not {keys!r}")
        params = SecAggParams.from_document({k: doc[k] for k in FIELDS})
        return cls(params, doc["update_norm_bound"], doc["audit_rate"])

    def document(self) -> dict[str, Any]:
        return {**self.params.document(), "update_norm_bound": self.update_norm_bound, "audit_rate": self.audit_rate}

    def chain_values(self) -> dict[str, int]:
        """FederatedTasks' SecAggSpec fields for these settings."""
        p = self.params
        return {"num_shares": _perbill(float(p.num_shares)),
                "reconstruction_threshold": _perbill(p.reconstruction_threshold),
                "clipping_range": _nano(p.clipping_range), "quantization_range": p.quantization_range,
                "modulus_range": p.modulus_range, "max_weight": int(p.max_weight),
                "update_norm_bound": _nano(self.update_norm_bound), "audit_rate": self.audit_rate}


def secagg_task(*, update_norm_bound: float, audit_rate: int = DEFAULT_AUDIT_RATE,
                reconstruction_threshold: float = 0.6, clipping_range: float = 8.0,
                max_weight: int = 1000) -> SecAggTask:
    """The settings `paratrain fl create --secagg` builds: all-to-all shares (the only dropout tolerance that does
    not depend on the shuffle), Flower's quantization and modulus defaults."""
    return SecAggTask(SecAggParams(num_shares=1.0, reconstruction_threshold=float(reconstruction_threshold),
                                   clipping_range=float(clipping_range), max_weight=float(max_weight)),
                      float(update_norm_bound), audit_rate)


__all__ = ["DEFAULT_AUDIT_RATE", "KEYS", "SecAggTask", "secagg_task"]
