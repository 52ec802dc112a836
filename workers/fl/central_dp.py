"""Central DP for a federated round, as pure numpy: what Flower's fixed-clipping wrappers do, recomputable.

The aggregator of a central-DP task wraps FedAvg in Flower's `DifferentialPrivacyServerSideFixedClipping` (or
`...ClientSideFixedClipping`, the clients clipping with `fixedclipping_mod`): each update's change from the base
is clipped to `clipping_norm` in L2, the clipped models are averaged with equal weights, and Gaussian noise of
std `noise_multiplier * clipping_norm / participants` is added to every entry (flwr.supercore.
differential_privacy). Flower draws that noise from numpy's global generator, so the aggregator seeds it, per
round, from 32 fresh random bytes and writes the seed into the round document (`CentralNoise`). A validator then
recomputes the released model here, from the same updates and seed, and a model that does not match (noise
skipped, shrunk or clipping left out) rejects the round and slashes the aggregator.

Why the seed may sit beside the updates: whoever can read it can also read every individual update (the round
document names them in the same store), from which the noiseless mean follows anyway. Central DP protects the
released model for those who get only the model; it trusts the aggregator, which sees every update. Why a fresh
random seed and not one derived from the round: the noise must be independent of the data, and the aggregator
could grind any seed it chooses; grinding among k seeds leaks at most log2(k) bits to a party that already holds
every update, and cannot make the noise measurably smaller in thousands of coordinates.

The functions repeat Flower's own numpy operations in Flower's order (tests/unit/test_fl_central_dp_math.py holds
them to Flower's functions bitwise); this module imports no Flower, so validators stay Flower-free.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from workers.fl import rules
from workers.fl.arrays import Arrays
from workers.fl.central_noise import CLIENT_CLIP_SLACK, CentralDpError, CentralNoise


@dataclass(frozen=True)
class CentralRelease:
    """What a validator checks a central-DP round against: the task's mechanism (from the chain) and what is
    wrong with the aggregator's committed claim (empty: nothing; the accountant runs in workers/fl/central_task.py,
    outside this Flower- and chain-free module)."""

    noise_multiplier: float
    clipping_norm: float
    claim_problems: tuple[str, ...] = ()


def noise_std(noise_multiplier: float, clipping_norm: float, participants: int) -> float:
    """Flower's compute_stdv: the std for an unweighted mean of `participants` updates clipped to the norm."""
    return float((noise_multiplier * clipping_norm) / participants)


def seed_words(seed: bytes) -> np.ndarray:
    """The 32-byte seed as numpy's legacy generator takes a long seed (eight little-endian uint32 words)."""
    if len(seed) != 32:
        raise CentralDpError("a central-DP noise seed is 32 bytes")
    return np.frombuffer(seed, dtype="<u4").astype(np.uint32)


def _norm(arrays: Sequence[np.ndarray]) -> float:
    """Flower's get_norm: the L2 norm of the arrays flattened, per array then over the arrays."""
    norms = [np.linalg.norm(array.flat) for array in arrays]
    return float(np.sqrt(sum([norm**2 for norm in norms])))


def update_norm(base: Mapping[str, np.ndarray], model: Mapping[str, np.ndarray], order: Sequence[str]) -> float:
    """Flower's get_norm of (model - base) over the arrays in `order`."""
    return _norm([np.subtract(model[n], base[n]) for n in order])


def clip_model(base: Mapping[str, np.ndarray], model: Mapping[str, np.ndarray], clipping_norm: float,
               order: Sequence[str]) -> Arrays:
    """Flower's compute_clip_model_update: base + (model - base) * min(1, C / ||model - base||)."""
    update = [np.subtract(model[n], base[n]) for n in order]
    scaling = min(1, clipping_norm / _norm(update))
    for array in update:
        array *= scaling
    return {n: base[n] + array for n, array in zip(order, update, strict=True)}


def over_the_norm(base: Mapping[str, np.ndarray], model: Mapping[str, np.ndarray], clipping_norm: float) -> str | None:
    """Why a client-clipped update is not clipped (None: it is): its change from the base is over the norm."""
    norm = update_norm(base, model, sorted(base))
    if not norm <= clipping_norm * (1 + CLIENT_CLIP_SLACK):
        return f"the update's change from the base has norm {norm:.6g}, over the task's clipping norm {clipping_norm:g}"
    return None


def add_noise(model: Mapping[str, np.ndarray], std: float, seed: bytes, order: Sequence[str]) -> Arrays:
    """Flower's add_gaussian_noise_inplace on a copy, with numpy's global generator seeded from `seed`."""
    rng = np.random.RandomState(seed_words(seed))
    out = {n: np.array(a, copy=True) for n, a in model.items()}
    for n in order:
        out[n] += rng.normal(0, std, out[n].shape).astype(out[n].dtype)
    return out


def released_model(base: Mapping[str, np.ndarray], updates: Sequence[Mapping[str, np.ndarray]],
                   noise: CentralNoise, clipping_norm: float) -> Arrays:
    """The global model an honest aggregator releases: every update clipped to `clipping_norm` (a no-op for
    updates the clients clipped themselves), averaged with equal weights, noised with the recorded seed."""
    if sorted(noise.order) != sorted(base):
        raise CentralDpError("central_dp.order does not name the model's arrays")
    clipped = [clip_model(base, u, clipping_norm, noise.order) for u in updates]
    mean = rules.weighted_average(clipped, [1] * len(clipped))
    return add_noise(mean, noise.std, bytes.fromhex(noise.seed), noise.order)


__all__ = ["CentralRelease", "add_noise", "clip_model", "noise_std", "over_the_norm",
           "released_model", "seed_words", "update_norm"]
