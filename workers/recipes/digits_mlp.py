"""digits_mlp: a two-layer perceptron on scikit-learn's 8x8 digits (10 classes)."""
from __future__ import annotations

from torch import nn

from workers.recipes.common import Prepared, Recipe, classification_metrics, split_xy


def prepare(dataset, hp, validation) -> Prepared:
    x, y = dataset.arrays["X"].float(), dataset.arrays["y"].long()
    return Prepared(*split_xy(x, y, validation), info={"features": x.shape[1], "classes": int(y.max()) + 1})


def build_model(hp, prepared: Prepared) -> nn.Module:
    hidden = int(hp["hidden"])
    return nn.Sequential(nn.Linear(prepared.info["features"], hidden), nn.ReLU(),
                         nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, prepared.info["classes"]))


RECIPE = Recipe(
    name="digits_mlp", description=__doc__.strip(), dataset="digits", metric="accuracy", mode="max",
    expected=0.95, defaults={"epochs": 10, "batch_size": 64, "lr": 0.003, "hidden": 128, "weight_decay": 0.0},
    prepare=prepare, build_model=build_model, loss=nn.functional.cross_entropy,
    evaluate=classification_metrics, module=__name__)
