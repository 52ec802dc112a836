"""One client's local training for one round: the task's recipe on the local shard, from the global model.

No Flower here, so it is tested on its own. The training itself is workers/fl/model.py's `train` (the same
function a validator runs for its reference update); this module adds what only a client does: the shard it
committed to, the label poisoning of the flip-labels attack, and a batch order seeded from (spec seed, task,
round). The hyperparameters are the requester's (the spec document's), never the aggregator's: an
aggregator that could set a client's learning rate could make honest clients look like poisoners.

Deterministic for given (base, shard, spec, task, round), so a retried message produces the same update,
which the signing guard (workers/fl/client_tasks.py) relies on.
"""
from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

from workers.fl import model
from workers.fl.arrays import Arrays
from workers.fl.attacks import flip_labels
from workers.fl.spec import FlSpec

LOSS_METRICS = ("val_loss", "loss")
"""What the recipes' evaluate() calls the loss (the reply's ``train-loss``: the trained model on its shard)."""


class LocalTrainingError(ValueError):
    """Local training that cannot run: a shard the recipe cannot read, a global model of another shape."""


@dataclass(frozen=True)
class LocalResult:
    arrays: Arrays        # the trained weights, by the global model's names
    num_examples: int     # examples trained on (the whole shard)
    train_loss: float     # the trained model's loss on the shard


def round_seed(seed: int, task_id: int, round_: int) -> int:
    digest = hashlib.blake2b(f"paratrain/fl-local/{seed}/{task_id}/{round_}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


def train_round(spec: FlSpec, base: Mapping[str, np.ndarray], shard: bytes, *, task_id: int, round_: int,
                poison_labels: bool = False) -> LocalResult:
    """Train the global model `base` on `shard` as `spec` asks; `poison_labels` mirrors the labels first (the
    flip-labels attack, for tests and the demo)."""
    torch.set_num_threads(1)   # many clients share a machine in tests; one thread each is also the fastest here
    try:
        examples = model.read_examples(shard)
        if poison_labels:
            classes = examples.classes or int(np.max(examples.y)) + 1
            examples = model.Examples(examples.x, flip_labels(examples.y, classes), examples.classes)
        trained = model.train(spec, base, examples, round_seed(int(spec.hyperparameters["seed"]), task_id, round_))
        metrics = model.evaluate(spec, trained, examples)
    except model.ModelError as exc:
        raise LocalTrainingError(str(exc)) from None
    loss = next((metrics[k] for k in LOSS_METRICS if k in metrics), float("nan"))
    return LocalResult(arrays=trained, num_examples=len(examples), train_loss=float(loss))


__all__ = ["LocalResult", "LocalTrainingError", "round_seed", "train_round"]
