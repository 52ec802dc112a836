"""One client's round of a private federated task: DP-SGD on its shard (workers/fl/model.py `train_private`) and
the cumulative claim the round brings it to (workers/fl/dp_claims.py).

The Poisson batches and the noise are drawn from seeds only this client can compute: a blake2b of its secret (the
account's private key, which never leaves it), the task and the round. The aggregator knows the task and the
round; were the seeds public, it could recompute the noise and the batches and subtract them from the update,
and the privacy amplification by sampling would be gone. Retrying the same round draws the same seeds, so a
retried message produces the same update (the signing guard relies on it).
"""
from __future__ import annotations

import hashlib
from collections.abc import Mapping

import numpy as np
import torch

from runtime_bindings.privacy import rate_from_chain
from workers.fl import model
from workers.fl.dp_claims import client_claim, round_steps
from workers.fl.local_training import LOSS_METRICS, LocalResult, LocalTrainingError
from workers.fl.spec import FlSpec
from workers.privacy.accounting import DpClaim

SEED_DOMAIN = b"paratrain/fl-dp-seed/v1"


def private_seed(secret: bytes, task_id: int, round_: int, what: bytes) -> int:
    digest = hashlib.blake2b(SEED_DOMAIN + bytes(secret) + task_id.to_bytes(8, "little")
                             + round_.to_bytes(4, "little") + what, digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


def train_private_round(spec: FlSpec, base: Mapping[str, np.ndarray], shard: bytes, *, task_id: int, round_: int,
                        secret: bytes, rounds: int) -> tuple[LocalResult, DpClaim]:
    """This client's `rounds`-th round of the task (this one included): the trained model and the claim. The
    cap is checked first (CapReached): a round beyond it is never trained."""
    if spec.dp is None:
        raise LocalTrainingError("the task has no dp terms")
    torch.set_num_threads(1)
    try:
        examples = model.read_examples(shard)
        batch, epochs = int(spec.hyperparameters["batch_size"]), int(spec.hyperparameters["local_epochs"])
        claim = client_claim(spec.dp, num_examples=len(examples), batch_size=batch, local_epochs=epochs,
                             rounds=rounds)
        trained = model.train_private(spec, base, examples,
                                      sample_seed=private_seed(secret, task_id, round_, b"sample"),
                                      noise_seed=private_seed(secret, task_id, round_, b"noise"),
                                      sample_rate=rate_from_chain(claim.sample_rate),
                                      steps=round_steps(len(examples), batch, epochs))
        metrics = model.evaluate(spec, trained, examples)
    except model.ModelError as exc:
        raise LocalTrainingError(str(exc)) from None
    loss = next((metrics[k] for k in LOSS_METRICS if k in metrics), float("nan"))
    return LocalResult(arrays=trained, num_examples=len(examples), train_loss=float(loss)), claim


__all__ = ["SEED_DOMAIN", "private_seed", "train_private_round"]
