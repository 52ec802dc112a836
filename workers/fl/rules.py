"""The aggregation rules as numpy references, written op-for-op after Flower 1.42's strategies.

`aggregate(rule, updates, weights)` recomputes what the aggregator's Flower strategy returned for the same
updates in the same order (the chain's: ascending account), so a validator can compare it with the committed
global model without running Flower, the code it checks. The operations and their order are Flower's, which
makes the result bitwise equal on the same numpy build (tests/integration/test_fl_rules_conformance.py pins
it); in particular:

- FedAvg (`strategy_utils.aggregate_arrayrecords`): factors ``w / sum(w)`` as Python floats, then per array
  ``u_0 * f_0`` and ``+= u_i * f_i`` in update order, in the arrays' own dtype;
- FedMedian: ``np.median(np.stack(layers), axis=0)`` per array;
- FedTrimmedAvg (`fedtrimmedavg.trim_mean`): ``np.partition`` at the cuts, then the mean of the middle;
- Krum / MultiKrum (`multikrum.compute_distances`, `select_multikrum`): squared distances as
  ``|x|^2 + |y|^2 - 2 x.y`` over the flattened updates (a BLAS product: its summation order is the build's,
  which is why `verify.compare` accepts another selection only between tied scores), scores over the
  ``max(1, n - f - 2)`` nearest, the ``m`` lowest in ``np.argsort`` order, FedAvg of those in that order.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from workers.fl.arrays import Arrays
from workers.fl.spec import RuleSpec


class AggregationError(ValueError):
    """Updates that cannot be aggregated together (none, different names, weights that do not match)."""


def _checked(updates: Sequence[Arrays], weights: Sequence[int]) -> list[int]:
    if not updates:
        raise AggregationError("no updates to aggregate")
    if len(weights) != len(updates):
        raise AggregationError(f"{len(updates)} updates but {len(weights)} weights")
    names = set(updates[0])
    if any(set(u) != names for u in updates[1:]):
        raise AggregationError("the updates do not have the same array names")
    plain = [int(w) for w in weights]   # Python ints, as Flower's MetricRecord holds them: a numpy scalar
    if any(w < 0 for w in plain) or sum(plain) <= 0:  # factor would promote float32 arrays to float64
        raise AggregationError("weights must be non-negative with a positive sum")
    return plain


def weighted_average(updates: Sequence[Arrays], weights: Sequence[int]) -> Arrays:
    """FedAvg: Flower's `aggregate_arrayrecords`."""
    plain = _checked(updates, weights)
    total_weight = sum(plain)
    weight_factors = [w / total_weight for w in plain]
    aggregated: Arrays = {}
    for update, weight in zip(updates, weight_factors, strict=True):
        for key, value in update.items():
            if key not in aggregated:
                aggregated[key] = np.asarray(value) * weight
            else:
                aggregated[key] += np.asarray(value) * weight
    return {k: np.asarray(v) for k, v in aggregated.items()}


def median(updates: Sequence[Arrays]) -> Arrays:
    """FedMedian: the coordinate-wise median of each array."""
    _checked(updates, [1] * len(updates))
    return {key: np.asarray(np.median(np.stack([u[key] for u in updates]), axis=0)) for key in updates[0]}


def trim_mean(array: np.ndarray, cut_fraction: float) -> np.ndarray:
    """Flower's `fedtrimmedavg.trim_mean` (after scipy's): the mean along axis 0 of what is left after
    cutting `cut_fraction` of the entries at each end."""
    if not 0.0 <= cut_fraction < 0.5:
        raise AggregationError("the cut fraction must be in [0, 0.5)")
    nobs = array.shape[0]
    lowercut = int(cut_fraction * nobs)
    uppercut = nobs - lowercut
    atmp = np.partition(array, (lowercut, uppercut - 1), 0)
    slices = [slice(None)] * atmp.ndim
    slices[0] = slice(lowercut, uppercut)
    result: np.ndarray = np.mean(atmp[tuple(slices)], axis=0)
    return result


def trimmed_mean(updates: Sequence[Arrays], beta: float) -> Arrays:
    """FedTrimmedAvg: the trimmed mean of each array."""
    _checked(updates, [1] * len(updates))
    return {key: np.asarray(trim_mean(np.stack([u[key] for u in updates]), beta)) for key in updates[0]}


def distances(updates: Sequence[Arrays]) -> np.ndarray:
    """Flower's `compute_distances`: squared L2 distances between the flattened updates (their arrays in
    each update's own order)."""
    flat_w = np.stack([np.concatenate(list(u.values()), axis=None).ravel() for u in updates], axis=0)
    norms: np.ndarray = np.square(flat_w).sum(axis=1)
    result: np.ndarray = norms[:, None] + norms[None, :] - 2 * flat_w @ flat_w.T
    return result


def krum_scores(updates: Sequence[Arrays], num_malicious: int) -> list[float]:
    """Each update's Krum score: the sum of its squared distances to its n - f - 2 nearest others."""
    distance_matrix = distances(updates)
    num_closest = max(1, len(updates) - num_malicious - 2)
    closest = [np.argsort(distance)[1:num_closest + 1].tolist() for distance in distance_matrix]
    return [np.sum(distance_matrix[i, closest[i]]) for i in range(len(distance_matrix))]


def select_multikrum(updates: Sequence[Arrays], num_malicious: int, num_to_select: int) -> list[int]:
    """The indices MultiKrum (Krum for one) aggregates, lowest score first, as Flower's `select_multikrum`."""
    scores = krum_scores(updates, num_malicious)
    return [int(i) for i in np.argsort(scores)[:num_to_select]]


def aggregate(rule: RuleSpec, updates: Sequence[Arrays], weights: Sequence[int]) -> Arrays:
    """The global model the rule makes of these updates (weighted by their example counts), in this order."""
    _checked(updates, weights)
    if rule.name == "fedavg":
        return weighted_average(updates, weights)
    if rule.name == "fedmedian":
        return median(updates)
    if rule.name == "fedtrimmedavg":
        return trimmed_mean(updates, rule.beta_fraction)
    if rule.name in ("krum", "multikrum"):
        chosen = select_multikrum(updates, rule.num_malicious, rule.num_to_select)
        return weighted_average([updates[i] for i in chosen], [weights[i] for i in chosen])
    raise AggregationError(f"unknown rule {rule.name!r}")
