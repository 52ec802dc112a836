"""The SecAgg+ parameters a task fixes, checked before Flower's workflow ever sees them.

Flower's `SecAggPlusWorkflow._check_init_params` accepts settings that are unsafe for paratrain: a
reconstruction threshold of 2 shares (two colluders reconstruct a client's mask), a weight above
`max_weight` (only a log line, then silent clipping), more clients than `modulus_range /
quantization_range` (the sum wraps). `SecAggParams` refuses them with `SecAggParamsError`, so the values that
run are the values the task committed to (docs/secagg.md).

The survival rule is here too, as pure functions over the workflow's own ring-neighbour construction
(`setup_stage`): node i's neighbours are the `num_shares` nodes at ring offsets -num_shares//2 ..
+num_shares//2 of the shuffled order, itself included, and the round survives iff every sampled node keeps at
least `threshold` live neighbours (`_check_threshold`; a dropped node needs them to rebuild its masks).
"""
from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass
from typing import Any

MIN_THRESHOLD_FRACTION = 0.6
"""Below 60 % of the shares a lying aggregator with few colluders can reconstruct a live client's mask
(privacy needs 2t > num_shares + colluders, docs/design/private.md fact 4)."""
MAX_MODULUS = 2**32
FIELDS = ("num_shares", "reconstruction_threshold", "clipping_range", "quantization_range", "modulus_range",
          "max_weight")


class SecAggParamsError(ValueError):
    """SecAgg+ settings, a round size or an example count paratrain will not run."""


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class SecAggParams:
    """A task's SecAgg+ settings, Flower's `SecAggPlusWorkflow` arguments with paratrain's bounds.

    `num_shares`: a float in (0, 1] is that fraction of the sampled clients (1.0: all-to-all, the only setting
    whose dropout tolerance does not depend on the shuffle), an int > 2 a fixed count. `reconstruction_threshold`
    is a fraction of the shares, at least 0.6. `clipping_range` bounds each *weighted* parameter
    (num_examples / max_weight times the value) before quantization; it is not a DP clipping norm."""

    num_shares: int | float = 1.0
    reconstruction_threshold: float = MIN_THRESHOLD_FRACTION
    clipping_range: float = 8.0
    quantization_range: int = 2**22
    modulus_range: int = 2**32
    max_weight: float = 1000.0

    def __post_init__(self) -> None:
        shares, t = self.num_shares, self.reconstruction_threshold
        if isinstance(shares, bool) or not isinstance(shares, (int, float)):
            raise SecAggParamsError(f"num_shares must be an int > 2 or a fraction in (0, 1], not {shares!r}")
        if isinstance(shares, int) and shares <= 2:
            raise SecAggParamsError(f"num_shares {shares}: a count must be greater than 2")
        if isinstance(shares, float) and not 0 < shares <= 1:
            raise SecAggParamsError(f"num_shares {shares}: a fraction must be in (0, 1]")
        if not isinstance(t, float) or not MIN_THRESHOLD_FRACTION <= t <= 1:
            raise SecAggParamsError(f"reconstruction_threshold {t!r} must be a fraction of the shares in "
                                    f"[{MIN_THRESHOLD_FRACTION}, 1]")
        if not _number(self.clipping_range) or self.clipping_range <= 0:
            raise SecAggParamsError(f"clipping_range {self.clipping_range!r} must be a finite number > 0")
        if not _number(self.max_weight) or self.max_weight <= 0:
            raise SecAggParamsError(f"max_weight {self.max_weight!r} must be a finite number > 0")
        q, m = self.quantization_range, self.modulus_range
        if isinstance(q, bool) or not isinstance(q, int) or q <= 1:
            raise SecAggParamsError(f"quantization_range {q!r} must be an integer > 1")
        if isinstance(m, bool) or not isinstance(m, int) or m & (m - 1) or not q < m <= MAX_MODULUS:
            raise SecAggParamsError(f"modulus_range {m!r} must be a power of two above quantization_range {q}, "
                                    f"at most 2**32")

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> SecAggParams:
        """The parameters of a spec document's ``secagg`` object: exactly FIELDS, nothing else."""
        if not isinstance(doc, Mapping) or set(doc) != set(FIELDS):
            keys = sorted(doc) if isinstance(doc, Mapping) else doc
            raise SecAggParamsError(f"a secagg object has exactly the keys {', '.join(FIELDS)}, not {keys!r}")
        return cls(**{k: doc[k] for k in FIELDS})

    def document(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in FIELDS}

    # What one round uses -------------------------------------------------------------------------
    @property
    def max_clients(self) -> int:
        """The most clients one round may sum: each adds up to quantization_range per coordinate (and its weight
        factor up to as much), and the sum must stay below modulus_range or it wraps."""
        return self.modulus_range // self.quantization_range - 1

    def shares_for(self, num_sampled: int) -> int:
        """The share count the workflow uses for `num_sampled` clients (setup_stage's rounding, made odd)."""
        if isinstance(self.num_shares, int):
            return self.num_shares
        shares = round(self.num_shares * num_sampled)
        if shares < num_sampled and shares % 2 == 0:
            shares += 1
        return num_sampled if shares <= 2 else shares

    def threshold_for(self, num_sampled: int) -> int:
        return max(round(self.reconstruction_threshold * self.shares_for(num_sampled)), 2)

    def check_round(self, num_sampled: int) -> None:
        """SecAggParamsError unless `num_sampled` clients can be summed: at least 3 (two clients learn each
        other's update from the mean), no more than max_clients, and the shares fit the round."""
        if not 3 <= num_sampled <= self.max_clients:
            raise SecAggParamsError(f"{num_sampled} clients: a SecAgg round needs 3 to {self.max_clients}")
        if self.shares_for(num_sampled) > num_sampled:
            raise SecAggParamsError(f"{self.num_shares} shares are more than the {num_sampled} clients")

    def check_examples(self, num_examples: int) -> None:
        """SecAggParamsError for a weight Flower would only warn about and then clip (a wrong aggregate)."""
        if isinstance(num_examples, bool) or not isinstance(num_examples, int) or num_examples <= 0:
            raise SecAggParamsError(f"num_examples {num_examples!r} must be a positive integer")
        if num_examples > self.max_weight:
            raise SecAggParamsError(f"{num_examples} examples are more than the task's max_weight "
                                    f"{self.max_weight:g}")

    @property
    def step(self) -> float:
        """One quantization step of a weighted parameter: 2 clipping_range / quantization_range."""
        return 2 * self.clipping_range / self.quantization_range

    def error_bound(self, num_clients: int, total_examples: int) -> float:
        """The most a SecAgg mean can differ from FedAvg of the same (clipped) models, per coordinate: each
        client's stochastic rounding moves its weighted value by under one step, and the sum is divided by the
        total weight total_examples / max_weight (docs/design/private.md 1.1)."""
        return num_clients * self.step * self.max_weight / total_examples

# The survival rule ---------------------------------------------------------------------------------
def ring_neighbours(order: Sequence[int], num_shares: int) -> dict[int, set[int]]:
    """Each node's neighbours as SecAggPlusWorkflow.setup_stage builds them from its shuffled `order`."""
    half, n = num_shares >> 1, len(order)
    return {nid: {order[(idx + offset) % n] for offset in range(-half, half + 1)} for idx, nid in enumerate(order)}


def survives(neighbours: Mapping[int, Set[int]], active: Set[int], threshold: int) -> bool:
    """The workflow's `_check_threshold`: every sampled node, live or dropped, keeps `threshold` live
    neighbours (a live node's seed and a dropped node's key are rebuilt from their shares)."""
    return all(len(set(near) & set(active)) >= threshold for near in neighbours.values())


def survival_rate(num_sampled: int, num_shares: int, threshold: int, dropped: int, *, trials: int,
                  rng: random.Random) -> float:
    """The fraction of `trials` rounds, each with a fresh shuffle and `dropped` random dropouts, that survive."""
    nodes = list(range(num_sampled))
    alive = 0
    for _ in range(trials):
        order = nodes[:]
        rng.shuffle(order)
        gone = set(rng.sample(nodes, dropped))
        alive += survives(ring_neighbours(order, num_shares), set(nodes) - gone, threshold)
    return alive / trials


def max_dropouts_all_to_all(num_sampled: int, threshold: int) -> int:
    """With every client a neighbour of every other, a round survives exactly up to n - t dropouts."""
    return num_sampled - threshold


__all__ = ["MIN_THRESHOLD_FRACTION", "SecAggParams", "SecAggParamsError", "max_dropouts_all_to_all",
           "ring_neighbours", "survival_rate", "survives"]
