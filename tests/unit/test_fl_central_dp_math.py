"""The validators' recomputation of a central-DP round (workers/fl/central_dp.py) against Flower's own wrapper.

Flower's DifferentialPrivacyServerSideFixedClipping around FedAvg is run on hand-made replies with numpy's global
generator seeded as the aggregator seeds it; the pure recomputation must give the same model bit for bit, and a
model without the noise, or with the noise of another seed, must not match.
"""
from __future__ import annotations

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.serverapp.strategy import DifferentialPrivacyServerSideFixedClipping, FedAvg
from flwr.supercore import differential_privacy as flower_dp

from tests.unit.test_fl_strategy_unit import flower_run  # noqa: F401 - autouse: the run Flower's runtime sets
from workers.fl import central_dp
from workers.fl.central_noise import CentralDpError, CentralNoise

RNG = np.random.default_rng(5)
BASE = {"w": RNG.normal(size=(16, 8)).astype(np.float32), "b": RNG.normal(size=8).astype(np.float32)}
ORDER = ("w", "b")
SEED = bytes(range(32))



def model(scale: float) -> dict[str, np.ndarray]:
    return {k: (v + RNG.normal(scale=scale, size=v.shape)).astype(np.float32) for k, v in BASE.items()}


def reply(arrays: dict[str, np.ndarray]) -> Message:
    request = Message(RecordDict({"config": ConfigRecord({})}), 1, "train")
    return Message(RecordDict({"arrays": ArrayRecord({k: Array(arrays[k]) for k in ORDER}),
                              "metrics": MetricRecord({"num-examples": 1})}), reply_to=request)


def flower_release(updates: list[dict[str, np.ndarray]], noise_multiplier: float, clipping_norm: float,
                   seed: bytes) -> dict[str, np.ndarray]:
    wrapper = DifferentialPrivacyServerSideFixedClipping(FedAvg(), noise_multiplier, clipping_norm, len(updates))
    wrapper.current_arrays = ArrayRecord({k: Array(BASE[k]) for k in ORDER})
    np.random.seed(central_dp.seed_words(seed))
    arrays, _ = wrapper.aggregate_train(1, [reply(u) for u in updates])
    assert arrays is not None
    return {k: v.numpy() for k, v in arrays.items()}


def test_the_recomputed_release_is_flowers_bit_for_bit() -> None:
    updates = [model(0.01), model(1.0), model(3.0)]   # one under the norm, two clipped
    committed = flower_release(updates, 1.1, 0.5, SEED)
    noise = CentralNoise(SEED.hex(), central_dp.noise_std(1.1, 0.5, 3), "server", ORDER)
    ours = central_dp.released_model(BASE, updates, noise, 0.5)
    assert all(ours[k].tobytes() == committed[k].tobytes() for k in ORDER)


def test_a_release_without_the_noise_or_with_another_seed_does_not_match() -> None:
    updates = [model(1.0) for _ in range(4)]
    noise = CentralNoise(SEED.hex(), central_dp.noise_std(1.0, 1.0, 4), "server", ORDER)
    ours = central_dp.released_model(BASE, updates, noise, 1.0)
    silent = central_dp.released_model(BASE, updates, CentralNoise(SEED.hex(), 0.0, "server", ORDER), 1.0)
    reseeded = flower_release(updates, 1.0, 1.0, bytes(32))
    for other in (silent, reseeded):
        assert max(float(np.max(np.abs(ours[k] - other[k]))) for k in ORDER) > 0.05


def test_clipping_and_noise_are_flowers_functions() -> None:
    update = model(2.0)
    mine = central_dp.clip_model(BASE, update, 0.7, ORDER)
    theirs = [update[k].copy() for k in ORDER]
    flower_dp.compute_clip_model_update(theirs, [BASE[k] for k in ORDER], 0.7)
    assert all(mine[k].tobytes() == t.tobytes() for k, t in zip(ORDER, theirs, strict=True))
    assert central_dp.update_norm(BASE, mine, ORDER) == pytest.approx(0.7, rel=1e-5)
    assert central_dp.noise_std(1.3, 0.7, 5) == flower_dp.compute_stdv(1.3, 0.7, 5)


@pytest.mark.parametrize("bad", [
    {"seed": "ab", "std": 0.1, "clipped_by": "server", "order": ["w", "b"]},
    {"seed": "00" * 32, "std": -1.0, "clipped_by": "server", "order": ["w", "b"]},
    {"seed": "00" * 32, "std": 0.1, "clipped_by": "nobody", "order": ["w", "b"]},
    {"seed": "00" * 32, "std": 0.1, "clipped_by": "server", "order": ["w", "w"]},
    {"seed": "00" * 32, "std": 0.1, "clipped_by": "server"},
])
def test_a_malformed_noise_record_is_refused(bad: dict[str, object]) -> None:
    with pytest.raises(CentralDpError):
        CentralNoise.from_dict(bad)


def test_a_record_naming_other_arrays_is_refused() -> None:
    with pytest.raises(CentralDpError, match="order"):
        central_dp.released_model(BASE, [model(1.0)], CentralNoise("00" * 32, 0.1, "server", ("w",)), 1.0)
