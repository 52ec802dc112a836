"""diabetes_regression: a small MLP regressor on scikit-learn's diabetes set (target standardized; R^2)."""
from __future__ import annotations

import torch
from torch import nn

from workers.recipes.common import Prepared, Recipe, batched_outputs, split_xy, standardize


def prepare(dataset, hp, validation) -> Prepared:
    x, y = dataset.arrays["X"].float(), dataset.arrays["y"].float()
    train_x, train_y, val_x, val_y = split_xy(x, y, validation)
    train_x, val_x = standardize(train_x, val_x)
    mean, std = train_y.mean(), train_y.std().clamp_min(1e-6)
    return Prepared(train_x, (train_y - mean) / std, val_x, (val_y - mean) / std,
                    info={"features": x.shape[1], "y_std": std.item()})


class Regressor(nn.Module):
    def __init__(self, features: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(features, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)


def build_model(hp, prepared: Prepared) -> nn.Module:
    return Regressor(prepared.info["features"], int(hp["hidden"]))


def evaluate(model, prepared: Prepared, hp) -> dict[str, float]:
    pred = batched_outputs(model, prepared.val_x)
    y = prepared.val_y
    ss_res = ((pred - y) ** 2).sum()
    ss_tot = ((y - y.mean()) ** 2).sum()
    mse_std = ((pred - y) ** 2).mean().item()
    return {"r2": (1 - ss_res / ss_tot).item(), "mse": mse_std * prepared.info["y_std"] ** 2}


RECIPE = Recipe(
    name="diabetes_regression", description=__doc__.strip(), dataset="diabetes", metric="r2", mode="max",
    expected=0.3, defaults={"epochs": 40, "batch_size": 32, "lr": 0.001, "hidden": 16, "weight_decay": 0.0},
    prepare=prepare, build_model=build_model, loss=nn.functional.mse_loss, evaluate=evaluate, module=__name__)
