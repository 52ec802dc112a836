"""DP-SGD workers that cheat on the mechanism while their claims look right, for tests/integration/test_dp_attacks.py.

Each attacker trains the real spec with the real engine (workers.engine with Opacus), its optimizer or module
swapped for Opacus's own ghost-clipping one less one part of the mechanism; the claim the engine then writes in the
model card is the honest claim of the spec's terms, so nothing but the validators' replay of the clipping and the
keyed noise can tell. The swap holds workers.result_checks.TORCH_LOCK, which every validator takes to measure and
replay in this process: no validator thread ever replays with a cheating optimizer."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from opacus.grad_sample.grad_sample_module_fast_gradient_clipping import GradSampleModuleFastGradientClipping
from opacus.optimizers.optimizer_fast_gradient_clipping import DPOptimizerFastGradientClipping

import workers.privacy.training
from workers.result_checks import TORCH_LOCK

UNCLIPPED_NORM = 1e9  # "clipping" at this norm clips nothing


class NoNoise(DPOptimizerFastGradientClipping):
    """Trains with noise multiplier 0: the clipped gradients, unnoised (epsilon infinity, claimed finite)."""

    def __init__(self, *args: Any, noise_multiplier: float, **kwargs: Any) -> None:
        super().__init__(*args, noise_multiplier=0.0, **kwargs)


class NoClipping(GradSampleModuleFastGradientClipping):
    """Computes each example's clipping factor against a huge norm (nothing is clipped) while the optimizer adds
    the noise of the spec's norm, so the noise looks right while one example's gradient may dominate a step."""

    def __init__(self, *args: Any, max_grad_norm: float, **kwargs: Any) -> None:
        super().__init__(*args, max_grad_norm=UNCLIPPED_NORM, **kwargs)


@contextmanager
def cheating_engine(cheat: type) -> Iterator[None]:
    """While inside, the engine's DP runs use the cheating optimizer or module (and no validator in this process
    replays)."""
    name = "DPOptimizer" if issubclass(cheat, DPOptimizerFastGradientClipping) else "GradSampleModule"
    with TORCH_LOCK, pytest.MonkeyPatch.context() as patch:
        patch.setattr(workers.privacy.training, name, cheat)
        yield
