"""breast_cancer_logreg: logistic regression on scikit-learn's breast cancer set (standardized features)."""
from __future__ import annotations

import torch
from torch import nn

from workers.recipes.common import Prepared, Recipe, batched_outputs, split_xy, standardize


def prepare(dataset, hp, validation) -> Prepared:
    x, y = dataset.arrays["X"].float(), dataset.arrays["y"].float()
    train_x, train_y, val_x, val_y = split_xy(x, y, validation)
    train_x, val_x = standardize(train_x, val_x)
    return Prepared(train_x, train_y, val_x, val_y, info={"features": x.shape[1]})


class LogisticRegression(nn.Module):
    def __init__(self, features: int) -> None:
        super().__init__()
        self.linear = nn.Linear(features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x).squeeze(-1)


def build_model(hp, prepared: Prepared) -> nn.Module:
    return LogisticRegression(prepared.info["features"])


def evaluate(model, prepared: Prepared, hp) -> dict[str, float]:
    logits = batched_outputs(model, prepared.val_x)
    loss = nn.functional.binary_cross_entropy_with_logits(logits, prepared.val_y).item()
    accuracy = ((logits > 0).float() == prepared.val_y).float().mean().item()
    return {"accuracy": accuracy, "val_loss": loss}


RECIPE = Recipe(
    name="breast_cancer_logreg", description=__doc__.strip(), dataset="breast_cancer", metric="accuracy",
    mode="max", expected=0.95, defaults={"epochs": 10, "batch_size": 32, "lr": 0.01, "weight_decay": 0.0},
    prepare=prepare, build_model=build_model, loss=nn.functional.binary_cross_entropy_with_logits,
    evaluate=evaluate, module=__name__)
