"""A recipe's loss as the criterion Opacus's ghost clipping needs, shared by the bounty engine
(workers/privacy/training.py) and the federated clients' local DP-SGD (workers/fl/model.py). Torch only, so the
federated model module keeps its imports to torch and numpy."""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


class PerExampleLoss(nn.Module):
    """A recipe's loss function as a criterion that takes `reduction`, which Opacus's DPLossFastGradientClipping
    sets to "none" to get each example's loss (the recipes' losses are plain torch.nn.functional functions)."""

    def __init__(self, loss: Callable[..., torch.Tensor]) -> None:
        super().__init__()
        self.fn, self.reduction = loss, "mean"

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.fn(output, target, reduction=self.reduction)


__all__ = ["PerExampleLoss"]
