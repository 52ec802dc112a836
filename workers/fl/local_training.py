"""One client's local training for one round: the task's recipe on the local shard, from the global model.

Pure numpy and torch (no Flower), so that it is tested on its own and a validator could rerun it. The
hyperparameters are the requester's (the spec document's ``local_epochs``, ``batch_size``, ``lr``, ``seed``
and any recipe hyperparameter such as ``hidden``), never the aggregator's: an aggregator that could set a
client's learning rate could make honest clients look like poisoners.

Deterministic for given (base, shard, hyperparameters, task, round): one thread, the model's weights are the
received ones, and the batch order comes from a generator seeded with (seed, task, round). A retried
message therefore produces the same update, which the signing guard relies on.
"""
from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from workers.datasets import decode_dataset
from workers.fl.arrays import Arrays
from workers.fl.attacks import flip_labels
from workers.recipes import get_recipe
from workers.spec import Validation

FEDERATED_KEYS = frozenset({"local_epochs", "seed"})
"""Spec hyperparameters that steer the federated loop itself rather than the recipe."""


class LocalTrainingError(ValueError):
    """Local training that cannot run: an unknown recipe, a shard it cannot read, a global model of another shape."""


@dataclass(frozen=True)
class LocalResult:
    arrays: Arrays        # the trained weights, by the global model's names, in its order
    num_examples: int     # examples trained on (the whole shard)
    train_loss: float     # mean loss over the last local epoch


def round_seed(seed: int, task_id: int, round_: int) -> int:
    digest = hashlib.blake2b(f"paratrain/fl-local/{seed}/{task_id}/{round_}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


def _load_base(model: torch.nn.Module, base: Mapping[str, np.ndarray]) -> None:
    expected = model.state_dict()
    if set(expected) != set(base):
        raise LocalTrainingError(f"the global model's arrays {sorted(base)[:4]} are not the recipe model's "
                                 f"{sorted(expected)[:4]}")
    for name, value in expected.items():
        if tuple(base[name].shape) != tuple(value.shape):
            raise LocalTrainingError(f"array {name!r} has shape {list(base[name].shape)}, the recipe model's is "
                                     f"{list(value.shape)}")
    model.load_state_dict({name: torch.from_numpy(np.array(base[name], dtype=np.float32 if
                                                           expected[name].is_floating_point() else None))
                           for name in expected}, strict=True)


def train_round(recipe_name: str, hyperparameters: Mapping[str, Any], base: Mapping[str, np.ndarray],
                shard: bytes, *, task_id: int, round_: int, poison_labels: bool = False) -> LocalResult:
    """Train the global model `base` on `shard` for the spec's local epochs; `poison_labels` mirrors the
    labels first (the flip-labels attack, for tests and the demo)."""
    try:
        recipe = get_recipe(recipe_name, allow_custom=False)
        dataset = decode_dataset(shard)
    except (KeyError, ValueError) as exc:
        raise LocalTrainingError(str(exc)) from None
    if "X" not in dataset.arrays or "y" not in dataset.arrays:
        raise LocalTrainingError("the shard is not an arrays data set with X and y")
    hp = recipe.hyperparameters({k: v for k, v in hyperparameters.items() if k not in FEDERATED_KEYS})
    seed = int(hyperparameters.get("seed", 0))
    epochs = int(hyperparameters.get("local_epochs", 1))
    batch = max(1, int(hp["batch_size"]))
    classes = int(dataset.meta.get("classes", 0)) or None
    if poison_labels:
        y = dataset.arrays["y"]
        n_classes = classes or int(y.max().item()) + 1
        dataset.arrays["y"] = torch.from_numpy(flip_labels(y.numpy(), n_classes))
    prepared = recipe.prepare(dataset, hp, Validation(fraction=0.0, seed=seed))
    if classes is not None and "classes" in prepared.info:
        prepared.info["classes"] = classes    # a non-IID shard may lack the top class: the model's width is the set's
    x = torch.cat([prepared.train_x, prepared.val_x])
    y = torch.cat([prepared.train_y, prepared.val_y])
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    model = recipe.build_model(hp, prepared)
    _load_base(model, base)
    optimizer = recipe.optimizer(model.parameters(), hp)
    generator = torch.Generator().manual_seed(round_seed(seed, task_id, round_))
    model.train()
    losses: list[float] = []
    for _ in range(max(1, epochs)):
        losses = []
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), batch):
            idx = order[start:start + batch]
            optimizer.zero_grad()
            loss = recipe.loss(model(x[idx]), y[idx])
            loss.backward()
            optimizer.step()
            losses.append(float(loss.item()))
    state = model.state_dict()
    arrays = {name: state[name].detach().cpu().numpy().astype(np.asarray(base[name]).dtype, copy=True)
              for name in base}
    return LocalResult(arrays=arrays, num_examples=len(x), train_loss=float(np.mean(losses)) if losses else 0.0)


__all__ = ["LocalResult", "LocalTrainingError", "round_seed", "train_round"]
