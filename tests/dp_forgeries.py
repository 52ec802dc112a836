"""DP-SGD workers that cheat on the mechanism while their claims look right, for tests/integration/test_dp_attacks.py.

Each attacker trains the real spec with the real engine (workers.engine with Opacus), its optimizer swapped for
Opacus's own DPOptimizer less one part of the mechanism; the claim the engine then writes in the model card is
the honest claim of the spec's terms, so nothing but the validators' replay of the clipping and the keyed noise
can tell. The swap holds workers.result_checks.TORCH_LOCK, which every validator takes to measure and replay in
this process: no validator thread ever replays with a cheating optimizer."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from opacus.optimizers import DPOptimizer

import workers.privacy.training
from workers.result_checks import TORCH_LOCK

UNCLIPPED_NORM = 1e9  # "clipping" at this norm clips nothing


class NoNoise(DPOptimizer):
    """Trains with noise multiplier 0: the clipped gradients, unnoised (epsilon infinity, claimed finite)."""

    def __init__(self, *args: Any, noise_multiplier: float, **kwargs: Any) -> None:
        super().__init__(*args, noise_multiplier=0.0, **kwargs)


class NoClipping(DPOptimizer):
    """Clips at a huge max_grad_norm (nothing is clipped) but adds the noise of the spec's norm, so the noise
    looks right while one example's gradient may dominate a step."""

    def clip_and_accumulate(self) -> None:
        spec_norm = self.max_grad_norm
        self.max_grad_norm = UNCLIPPED_NORM
        try:
            super().clip_and_accumulate()
        finally:
            self.max_grad_norm = spec_norm


@contextmanager
def cheating_engine(optimizer: type[DPOptimizer]) -> Iterator[None]:
    """While inside, the engine's DP runs use `optimizer` (and no validator in this process replays)."""
    with TORCH_LOCK, pytest.MonkeyPatch.context() as patch:
        patch.setattr(workers.privacy.training, "DPOptimizer", optimizer)
        yield
