"""digits_cnn: a small convolutional classifier on scikit-learn's 8x8 digits."""
from __future__ import annotations

from torch import nn

from workers.recipes.common import Prepared, Recipe, classification_metrics, split_xy


def prepare(dataset, hp, validation) -> Prepared:
    x, y = dataset.arrays["X"].float().reshape(-1, 1, 8, 8), dataset.arrays["y"].long()
    return Prepared(*split_xy(x, y, validation), info={"classes": int(y.max()) + 1})


def build_model(hp, prepared: Prepared) -> nn.Module:
    c = int(hp["channels"])
    return nn.Sequential(nn.Conv2d(1, c, 3, padding=1), nn.ReLU(), nn.Conv2d(c, 2 * c, 3, padding=1), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(2 * c * 16, prepared.info["classes"]))


RECIPE = Recipe(
    name="digits_cnn", description=__doc__.strip(), dataset="digits", metric="accuracy", mode="max",
    expected=0.95, defaults={"epochs": 10, "batch_size": 64, "lr": 0.003, "channels": 8, "weight_decay": 0.0},
    prepare=prepare, build_model=build_model, loss=nn.functional.cross_entropy,
    evaluate=classification_metrics, module=__name__)
