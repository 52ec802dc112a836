"""The model `paratrain serve` serves: an accepted model (a Models record, written by TaskBounties when a
validator quorum accepted it), rebuilt from its task's spec document by the recipe that trained it, its weights
read from the artifact store by hash (PTTS1 tensors, workers.tensorio: nothing is unpickled).

Tensors, in the Open Inference Protocol's terms: one input ``input`` FP32 ``[-1, features]``; outputs
``logits`` FP32 ``[-1, classes]`` and ``class`` INT64 ``[-1]`` (the argmax), for the classification recipes.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

MAX_BATCH = 1024


class ModelNotServable(ValueError):
    """The hash names no accepted model, or its recipe, spec or weights cannot make a model to serve."""


@dataclass(frozen=True)
class TensorSpec:
    name: str
    datatype: str
    shape: tuple[int, ...]


class ServedModel:
    """A torch module behind the protocol's tensors; `predict` is thread-safe (torch inference, one lock)."""

    def __init__(self, name: str, module: Any, features: int, classes: int) -> None:
        self.name, self.version = name, "1"
        self.module, self.features, self.classes = module, features, classes
        self.inputs = (TensorSpec("input", "FP32", (-1, features)),)
        self.outputs = (TensorSpec("logits", "FP32", (-1, classes)), TensorSpec("class", "INT64", (-1,)))
        self._lock = threading.Lock()

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        x = inputs["input"]
        with self._lock, torch.inference_mode():
            logits = self.module(torch.from_numpy(np.array(x, dtype=np.float32))).numpy()   # a writable copy
        return {"logits": logits, "class": logits.argmax(axis=1).astype(np.int64)}


def load_accepted_model(chain: Any, store: Any, model_hash: str) -> ServedModel:
    """The Models record of `model_hash` (ModelNotServable without one: only accepted models are served), its
    task's spec document and data (for the recipe's shapes) and its weights, fetched and checked by hash."""
    import torch

    from workers import tensorio
    from workers.artifacts import Kind
    from workers.datasets import decode_dataset
    from workers.recipes import get_recipe
    from workers.spec import decode_spec

    record = chain.models.models(model_hash)
    if record is None:
        raise ModelNotServable(f"{model_hash} is not an accepted model (no Models record): only models a "
                               "validator quorum accepted can be served")
    task = chain.task_bounties.tasks(int(record.task_id))
    if task is None:
        raise ModelNotServable(f"the task {int(record.task_id)} that trained {model_hash} is not on chain")
    spec = decode_spec(store.fetch(task.spec.spec_uri.text, task.spec.spec_hash))
    recipe = get_recipe(spec.recipe)
    hp = recipe.hyperparameters(spec.hyperparameters)
    prepared = recipe.prepare(decode_dataset(store.fetch(spec.dataset.uri, spec.dataset.hash, kind=Kind.DATASET)),
                              hp, spec.validation)
    torch.manual_seed(spec.seed)
    module = recipe.build_model(hp, prepared)
    weights, _ = tensorio.loads(store.fetch(record.artifact_uri.text, model_hash))
    try:
        module.load_state_dict(weights)
    except (RuntimeError, KeyError) as exc:
        raise ModelNotServable(f"the weights of {model_hash} do not fit the {spec.recipe} model: {exc}") from None
    module.eval()
    info = prepared.info
    if "classes" not in info or "features" not in info:
        raise ModelNotServable(f"recipe {spec.recipe} is not a classifier of flat features, which is what "
                               "paratrain serve serves")
    return ServedModel(str(model_hash), module, int(info["features"]), int(info["classes"]))


__all__ = ["MAX_BATCH", "ModelNotServable", "ServedModel", "TensorSpec", "load_accepted_model"]
