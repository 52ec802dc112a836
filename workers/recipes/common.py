"""What the recipes share: the Recipe record, the deterministic train/validation split, metrics."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn


@dataclass
class Prepared:
    """A recipe's tensors: training and validation split, and facts the model builder needs."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Recipe:
    """A registered training program. All callables are plain PyTorch, deterministic given the seeds.

    prepare(dataset, hyperparameters, validation) -> Prepared
    build_model(hyperparameters, prepared) -> nn.Module       (called after torch.manual_seed(spec.seed))
    loss(output, target) -> scalar tensor
    evaluate(model, prepared, hyperparameters) -> {metric: float}   (model in eval mode, no grad)
    """

    name: str
    description: str
    dataset: str                      # the built-in data set it is written for
    metric: str                       # the headline metric evaluate() returns
    mode: str                         # "max" or "min"
    expected: float                   # what the default hyperparameters reach (a sane evaluation target)
    defaults: dict[str, Any]
    prepare: Callable[..., Prepared]
    build_model: Callable[..., nn.Module]
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    evaluate: Callable[..., dict[str, float]]
    module: str = ""                  # the defining module: its source is the code_hash

    def hyperparameters(self, overrides: dict[str, Any]) -> dict[str, Any]:
        return {**self.defaults, **overrides}

    def optimizer(self, params, hp: dict[str, Any]) -> torch.optim.Optimizer:
        return torch.optim.Adam(params, lr=float(hp["lr"]), weight_decay=float(hp.get("weight_decay", 0.0)),
                                foreach=False)


def split_indices(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A fixed train/validation split: a seeded permutation, the first `fraction` held out."""
    order = np.random.RandomState(seed % (2**32)).permutation(n)
    n_val = max(1, int(round(n * fraction)))
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def split_xy(x: torch.Tensor, y: torch.Tensor, validation: Any) -> tuple[torch.Tensor, ...]:
    train, val = split_indices(len(x), validation.fraction, validation.seed)
    train_t, val_t = torch.from_numpy(train), torch.from_numpy(val)
    return x[train_t], y[train_t], x[val_t], y[val_t]


def standardize(train_x: torch.Tensor, val_x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    mean = train_x.mean(dim=0, keepdim=True)
    std = train_x.std(dim=0, keepdim=True).clamp_min(1e-6)
    return (train_x - mean) / std, (val_x - mean) / std


def batched_outputs(model: nn.Module, x: torch.Tensor, batch: int = 512) -> torch.Tensor:
    return torch.cat([model(x[i:i + batch]) for i in range(0, len(x), batch)])


def classification_metrics(model: nn.Module, prepared: Prepared, hp: dict[str, Any]) -> dict[str, float]:
    logits = batched_outputs(model, prepared.val_x)
    loss = nn.functional.cross_entropy(logits, prepared.val_y).item()
    accuracy = (logits.argmax(dim=1) == prepared.val_y).float().mean().item()
    return {"accuracy": accuracy, "val_loss": loss}
