"""The three models DeCAI keeps on chain, in integer fixed point: every node computes the same prediction and the
same update, and so does every validator that replays a prediction market off chain (workers/collab/market_scores.py)
(Harris and Waggoner, microsoft/0xDeCA10B `classification/*.sol`).

Values are scaled by TO_FLOAT = 10^9, as DeCAI's `Classifier64.toFloat`. An input is dense (one value a feature,
scaled) or sparse (the indices of the features present, each worth 1.0; a repeated index counts again, as in
DeCAI's Naive Bayes). Products are exact integers (a Rust runtime would accumulate in i128: features <= 1024 and
|value| <= 10^12 keep every sum far inside it); divisions truncate toward zero, as Solidity's do.

* Perceptron (two classes): ``m = intercept * TO_FLOAT + sum(w_i * x_i)`` (sparse: ``intercept + sum(w_idx)``),
  class 1 when m > 0. Updated only on a misprediction: ``w_i += lr * x_i / TO_FLOAT`` towards the label
  (sparse: ``w_idx += lr``); the intercept stays as deployed, as in DeCAI. DeCAI's dense perceptron drops the
  intercept's scale and requires inputs of L2 norm 1; here the scales agree and any bounded input is taken.
* NearestCentroid: the class whose centroid has the least squared distance ``sum((x_j - c_j)^2) / TO_FLOAT``
  (ties: the lower class); every added example moves its class's centroid to the running mean,
  ``c_j = (c_j * n + x_j) / (n + 1)``. A sparse input is the dense vector of 1.0 at its indices.
* NaiveBayes (multinomial, sparse inputs only): per class the examples, the feature total and each feature's
  count; predict the class of largest ``n_c * TO_FLOAT * prod((TO_FLOAT * count_f + s) / (TO_FLOAT * total + s *
  features))``, floor-divided step by step as DeCAI does (s the smoothing, TO_FLOAT for Laplace's 1); every added
  example is counted.
"""
from __future__ import annotations

from typing import Any

TO_FLOAT = 10**9
MAX_FEATURES, MAX_CLASSES = 1024, 16
MAX_VALUE = 10**12          # |x_i| <= 1000.0: bounded so that fixed-point sums stay within i128
MAX_WEIGHT = 2**63 - 1      # parameters are stored as i64 (counts as u32/u64): saturate at the bounds


class ModelInputError(ValueError):
    """An input or a parameter set this model cannot take; `name` is the pallet error to raise."""

    def __init__(self, name: str, detail: str) -> None:
        super().__init__(detail)
        self.name = name


def _clamp(value: int) -> int:
    return max(-MAX_WEIGHT, min(MAX_WEIGHT, value))


def dense(values: Any, features: int) -> list[int]:
    """An input as one scaled value a feature (ModelInputError for a wrong dimension or value)."""
    kind, payload = values
    if kind == "Dense":
        if len(payload) != features:
            raise ModelInputError("DimensionMismatch", f"{len(payload)} values for {features} features")
        if any(abs(v) > MAX_VALUE for v in payload):
            raise ModelInputError("ValueOutOfRange", f"a value beyond +-{MAX_VALUE}")
        return list(payload)
    out = [0] * features
    for index in _indices(payload, features):
        out[index] = TO_FLOAT
    return out


def _indices(payload: Any, features: int) -> list[int]:
    if len(payload) > features:
        raise ModelInputError("DimensionMismatch", f"{len(payload)} indices for {features} features")
    if any(i >= features for i in payload):
        raise ModelInputError("FeatureOutOfRange", f"a feature index of at least {features}")
    return list(payload)


def check_params(params: Any, features: int, classes: int) -> None:
    """Initial parameters of the right shape for (features, classes) and within the stored types."""
    if not (1 <= features <= MAX_FEATURES and 2 <= classes <= MAX_CLASSES):
        raise ModelInputError("InvalidDimensions", f"1..{MAX_FEATURES} features and 2..{MAX_CLASSES} classes")
    kind, p = params
    if kind == "Perceptron":
        ok = classes == 2 and len(p["weights"]) == features and 0 < p["learning_rate"] <= MAX_VALUE
    elif kind == "NearestCentroid":
        ok = len(p["centroids"]) == classes and all(len(c) == features for c in p["centroids"]) \
            and len(p["counts"]) == classes
    else:
        ok = len(p["num_samples"]) == classes and len(p["total_feature_count"]) == classes \
            and len(p["feature_counts"]) == classes and all(len(c) == features for c in p["feature_counts"]) \
            and 0 < p["smoothing"] <= MAX_VALUE
    if not ok:
        raise ModelInputError("DimensionMismatch", f"{kind} parameters not of {features} features, {classes} classes")


def predict(params: Any, features: int, values: Any) -> int:
    kind, p = params
    if kind == "Perceptron":
        if values[0] == "Sparse":
            margin = p["intercept"] + sum(p["weights"][i] for i in _indices(values[1], features))
        else:
            margin = p["intercept"] * TO_FLOAT + sum(w * x for w, x in zip(p["weights"], dense(values, features)))
        return 1 if margin > 0 else 0
    if kind == "NearestCentroid":
        x = dense(values, features)
        distances = [sum(_trunc_div((xj - cj) ** 2, TO_FLOAT) for xj, cj in zip(x, c)) for c in p["centroids"]]
        return min(range(len(distances)), key=lambda c: (distances[c], c))
    if values[0] != "Sparse":
        raise ModelInputError("InputNotSupported", "Naive Bayes takes sparse inputs (feature indices)")
    indices = _indices(values[1], features)
    best, best_prob = 0, 0
    denominator = p["smoothing"] * features
    for c, n in enumerate(p["num_samples"]):
        prob = n * TO_FLOAT
        for i in indices:
            prob = prob * (TO_FLOAT * p["feature_counts"][c][i] + p["smoothing"]) \
                // (TO_FLOAT * p["total_feature_count"][c] + denominator)
        if prob > best_prob:
            best, best_prob = c, prob
    return best


def update(params: Any, features: int, values: Any, label: int) -> Any:
    """The parameters after one added example `(values, label)` (a new value; `params` is left as it is)."""
    kind, p = params
    if kind == "Perceptron":
        if predict(params, features, values) == label:
            return params
        sign = 1 if label > 0 else -1
        weights = list(p["weights"])
        if values[0] == "Sparse":
            for i in _indices(values[1], features):
                weights[i] = _clamp(weights[i] + sign * p["learning_rate"])
        else:
            for i, x in enumerate(dense(values, features)):
                weights[i] = _clamp(weights[i] + sign * _trunc_div(x * p["learning_rate"], TO_FLOAT))
        return kind, {**p, "weights": weights}
    if kind == "NearestCentroid":
        point = dense(values, features)
        n = p["counts"][label]
        centroids = [list(c) for c in p["centroids"]]
        centroids[label] = [_clamp(_trunc_div(c * n + xj, n + 1)) for c, xj in zip(centroids[label], point)]
        counts = list(p["counts"])
        counts[label] = n + 1
        return kind, {**p, "centroids": centroids, "counts": counts}
    if values[0] != "Sparse":
        raise ModelInputError("InputNotSupported", "Naive Bayes takes sparse inputs (feature indices)")
    indices = _indices(values[1], features)
    feature_counts = [list(c) for c in p["feature_counts"]]
    for i in indices:
        feature_counts[label][i] += 1
    return kind, {**p, "num_samples": _bump(p["num_samples"], label, 1),
                  "total_feature_count": _bump(p["total_feature_count"], label, len(indices)),
                  "feature_counts": feature_counts}


def _bump(values: list[int], index: int, by: int) -> list[int]:
    out = list(values)
    out[index] += by
    return out


def _trunc_div(a: int, b: int) -> int:
    """Division truncated toward zero, as Solidity's and Rust's integer division."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


__all__ = ["MAX_CLASSES", "MAX_FEATURES", "MAX_VALUE", "TO_FLOAT", "ModelInputError", "check_params", "dense",
           "predict", "update"]
