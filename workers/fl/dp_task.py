"""What a private federated task fixes in its spec document: the local DP-SGD every client trains with.

The spec document's optional ``dp`` object holds the terms in floats, as a bounty task's ``privacy`` section does
(workers/spec.py) but without a noise key: a federated client draws its noise from its own secret, since nobody
else replays its training (validators never see its data). The chain holds the same terms as integers in
PrivacyBudgets.FederatedPrivacy (`create_private_task`); paratrain/fl_specs.py maps one to the other. `epsilon`
is each client's cap for the whole task: a client stops training for the task once its next round would spend
beyond it.

Pure (no torch, no chain): the spec module and the validators' checks import it.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from workers.spec import DP_ACCOUNTANTS, DP_GRID, dp_value_problem

KEYS = ("accountant", "delta", "epsilon", "max_grad_norm", "noise_multiplier")


class DpTaskError(ValueError):
    """DP terms the chain cannot hold exactly, or that promise nothing."""


@dataclass(frozen=True)
class FlDp:
    """Local DP-SGD terms: Opacus's accountant, the per-client epsilon cap and delta, the per-sample clipping
    norm and the noise multiplier (noise std noise_multiplier * max_grad_norm)."""

    accountant: str
    epsilon: float
    delta: float
    max_grad_norm: float
    noise_multiplier: float

    def __post_init__(self) -> None:
        if self.accountant not in DP_ACCOUNTANTS:
            raise DpTaskError(f"accountant must be one of {', '.join(DP_ACCOUNTANTS)} (gdp can underestimate "
                              "epsilon)")
        for name, top, places in DP_GRID:   # the grid a bounty's privacy section is held to
            problem = dp_value_problem(getattr(self, name), top, places)
            if problem is not None:
                raise DpTaskError(f"{name} {getattr(self, name)!r} must be {problem}")

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> FlDp:
        if not isinstance(doc, Mapping) or set(doc) != set(KEYS):
            keys = sorted(doc) if isinstance(doc, Mapping) else doc
            raise DpTaskError(f"a dp object has exactly the keys {', '.join(KEYS)}, not {keys!r}")
        return cls(**{k: doc[k] for k in KEYS})

    def document(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in KEYS}


__all__ = ["KEYS", "DpTaskError", "FlDp"]
