"""The round document's record of a central-DP round's noise (workers/fl/central_dp.py says how it is used).

Its own module so that the round document (workers/fl/spec.py) can hold it without importing the arithmetic.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

CLIPPED_BY = ("server", "client")
CLIENT_CLIP_SLACK = 1e-5
"""A client-clipped update may exceed the norm by this relative amount (float32 rounding of a clip to exactly C)."""


class CentralDpError(ValueError):
    """A central-DP noise record or its inputs are unusable."""


@dataclass(frozen=True)
class CentralNoise:
    """The round document's record of the noise its global model carries: the generator's seed (64 hex), the
    std drawn with, who clipped, and the order in which the arrays were noised (Flower's ArrayRecord order)."""

    seed: str
    std: float
    clipped_by: str
    order: tuple[str, ...]

    def validate(self) -> CentralNoise:
        if not isinstance(self.seed, str) or re.fullmatch(r"[0-9a-f]{64}", self.seed) is None:
            raise CentralDpError("central_dp.seed: 64 lower-case hex characters")
        if isinstance(self.std, bool) or not isinstance(self.std, (int, float)) or not math.isfinite(self.std) \
                or self.std < 0:
            raise CentralDpError("central_dp.std: a finite number >= 0")
        if self.clipped_by not in CLIPPED_BY:
            raise CentralDpError(f"central_dp.clipped_by: one of {', '.join(CLIPPED_BY)}")
        if not isinstance(self.order, tuple) or not all(isinstance(n, str) and 0 < len(n) <= 256 for n in self.order) \
                or len(set(self.order)) != len(self.order) or len(self.order) > 1024:
            raise CentralDpError("central_dp.order: distinct array names")
        return self

    def to_dict(self) -> dict[str, object]:
        return {"clipped_by": self.clipped_by, "order": list(self.order), "seed": self.seed, "std": self.std}

    @classmethod
    def from_dict(cls, doc: object) -> CentralNoise:
        if not isinstance(doc, dict) or set(doc) != {"clipped_by", "order", "seed", "std"}:
            raise CentralDpError("central_dp: an object of clipped_by, order, seed and std")
        if not isinstance(doc["order"], list):
            raise CentralDpError("central_dp.order: a list of array names")
        return cls(seed=doc["seed"], std=float(doc["std"]) if isinstance(doc["std"], int) else doc["std"],
                   clipped_by=doc["clipped_by"], order=tuple(doc["order"])).validate()



__all__ = ["CLIENT_CLIP_SLACK", "CLIPPED_BY", "CentralDpError", "CentralNoise"]
