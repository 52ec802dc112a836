"""The data owner's side of a SecAgg+ round: Flower's own `secaggplus_mod`, with paratrain's clipping and
commitment inside it.

    ClientApp(client_fn=..., mods=[*outer, secaggplus_mod, clip_commit_mod(settings), *inner])

Flower's mod runs the four stages and calls the inner app only in ``collect_masked_vectors``; there the
legacy FitRes the inner app returns is masked, and every ArrayRecord of the reply is cleared. Inside it,
`clip_commit_mod`:

* refuses (raises `SecAggClientRefusal`, which the runtime turns into an error reply: the client is a dropout)
  an example count above the task's `max_weight` (Flower would only warn, then clip the weight) and a model
  whose weighted values leave `[-clipping_range, clipping_range]` (Flower would clip them silently, so the
  aggregate would be wrong with nobody knowing);
* clips the update (the trained model minus the base it was sent) to the spec's L2 bound `norm_bound`, so the
  audit of docs/design/private.md 2.6 can hold every client to it;
* commits to the clipped model: ``blake2_256(b"paratrain/fl-secagg-commit/v1" ++ salt ++ update_hash)`` with
  a fresh 32-byte salt and the PTTS1 update hash of workers/fl/arrays.py, written into the FitRes metrics
  (``paratrain.commitment``), which the aggregator sees in clear; the salt and the model stay with the client
  (`keep`), to be revealed only if the audit draws it;
* signs, with the data owner's key (`sign`), FederatedTasks' UpdateCommitment whose update_hash is that
  commitment, so the aggregator can put the participant on chain and nobody can add or swap one.

The norm bound and the SecAgg settings are the task's (the spec document), never the aggregator's: an
aggregator that could set them could make honest clients break the bound.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from flwr.app import Context, Message
from flwr.client import Client, NumPyClient
from flwr.client.mod import secaggplus_mod
from flwr.clientapp import ClientApp
from flwr.common import ndarrays_to_parameters, parameters_to_ndarrays
from flwr.compat.common import recorddict_compat as compat

from workers.fl.arrays import Arrays, model_hash, update_hash
from workers.fl.secagg_params import SecAggParams, SecAggParamsError
from workers.hashing import blake2_256

COMMIT_DOMAIN = b"paratrain/fl-secagg-commit/v1"
ROUND, TASK_ID = "paratrain.round", "paratrain.task-id"   # the fit config the aggregator's strategy sends
COMMITMENT, UPDATE_NORM = "paratrain.commitment", "paratrain.update-norm"
ACCOUNT, SCHEME, SIGNATURE = "paratrain.account", "paratrain.scheme", "paratrain.signature"
SALT_BYTES = 32

Mod = Callable[[Message, Context, Callable[[Message, Context], Message]], Message]
Train = Callable[[Context, list[np.ndarray], Mapping[str, Any]], tuple[list[np.ndarray], int]]
"""Local training: (context, base model arrays in the task's order, fit config) -> (trained arrays, examples)."""
Sign = Callable[[Context, int, int, bytes, bytes, int], tuple[str, str, bytes]]
"""The data owner's key: (context, task, round, base model hash, commitment, examples) -> (its account, the
signature scheme, the signature over FederatedTasks' UpdateCommitment with the commitment as update_hash)."""


class SecAggClientRefusal(ValueError):
    """A round this client will not mask and send; the runtime reports it as an error reply (a dropout)."""


@dataclass(frozen=True)
class Reveal:
    """What a client keeps for the audit: the clipped model it masked, the salt, and its commitment."""

    task_id: int
    round: int
    arrays: Arrays
    salt: bytes
    commitment: bytes
    num_examples: int
    weighted: list[np.ndarray]   # the values Flower quantizes: arrays times round(n / max_weight * Q) / Q


@dataclass(frozen=True)
class SecAggClientSettings:
    params: SecAggParams
    norm_bound: float            # the spec's L2 bound on (model - base)
    names: Sequence[str]         # the model's array names, in the order Flower carries them


def commitment(salt: bytes, arrays: Mapping[str, np.ndarray]) -> bytes:
    """The salted commitment to a clipped model (checked at reveal time against the salt and the model)."""
    if len(salt) != SALT_BYTES:
        raise ValueError(f"a commitment salt is {SALT_BYTES} bytes, not {len(salt)}")
    return blake2_256(COMMIT_DOMAIN + salt + update_hash(arrays))


def clip_update(base: Sequence[np.ndarray], model: Sequence[np.ndarray],
                bound: float) -> tuple[list[np.ndarray], float]:
    """`model` with its update (model - base) scaled down to L2 norm `bound` if it is longer; the norm it had."""
    if len(base) != len(model) or any(b.shape != m.shape for b, m in zip(base, model, strict=True)):
        raise SecAggClientRefusal("the trained model's arrays are not the base model's")
    deltas = [np.asarray(m, dtype=np.float64) - np.asarray(b, dtype=np.float64)
              for b, m in zip(base, model, strict=True)]
    norm = float(np.sqrt(sum(float(np.sum(d * d)) for d in deltas)))
    if not np.isfinite(norm):
        raise SecAggClientRefusal("the trained model has NaN or infinite values")
    scale = bound / norm if norm > bound else 1.0
    return [(b + d * scale).astype(np.asarray(m).dtype) for b, d, m in zip(base, deltas, model, strict=True)], norm


def weighted(params: SecAggParams, arrays: Sequence[np.ndarray], num_examples: int) -> list[np.ndarray]:
    """The weighted values secaggplus_mod quantizes (its q_ratio arithmetic)."""
    ratio = round(num_examples / params.max_weight * params.quantization_range) / params.quantization_range
    return [np.asarray(a) * ratio for a in arrays]


def clip_commit_mod(settings: SecAggClientSettings, keep: Callable[[Context, Reveal], None] | None = None,
                    sign: Sign | None = None) -> Mod:
    """The mod inside secaggplus_mod that clips, range-checks, commits and (with `sign`) signs the trained model
    (module docstring)."""
    params = settings.params

    def mod(msg: Message, ctx: Context, call_next: Callable[[Message, Context], Message]) -> Message:
        fitins = compat.recorddict_to_fitins(msg.content, keep_input=True)
        base = parameters_to_ndarrays(fitins.parameters)
        task_id, round_ = (v if isinstance(v := fitins.config.get(k), int) else 0 for k in (TASK_ID, ROUND))
        reply = call_next(msg, ctx)
        if reply.has_error():
            raise SecAggClientRefusal(f"local training failed: {reply.error.reason}")
        fitres = compat.recorddict_to_fitres(reply.content, keep_input=True)
        try:
            params.check_examples(fitres.num_examples)
        except SecAggParamsError as exc:
            raise SecAggClientRefusal(str(exc)) from None
        clipped, norm = clip_update(base, parameters_to_ndarrays(fitres.parameters), settings.norm_bound)
        scaled = weighted(params, clipped, fitres.num_examples)
        if any(a.size and float(np.max(np.abs(a))) > params.clipping_range for a in scaled):
            raise SecAggClientRefusal(f"weighted parameters leave [-{params.clipping_range:g}, "
                                      f"{params.clipping_range:g}]: Flower would clip them and the sum would be wrong")
        if len(clipped) != len(settings.names):
            raise SecAggClientRefusal(f"{len(clipped)} arrays, the task's model has {len(settings.names)}")
        named = dict(zip(settings.names, clipped, strict=True))
        salt = os.urandom(SALT_BYTES)
        digest = commitment(salt, named)
        fitres.parameters = ndarrays_to_parameters(clipped)
        fitres.metrics = {**fitres.metrics, COMMITMENT: digest, UPDATE_NORM: min(norm, settings.norm_bound)}
        if sign is not None:
            base_hash = model_hash(dict(zip(settings.names, base, strict=True)))
            account, scheme, signature = sign(ctx, task_id, round_, base_hash, digest, fitres.num_examples)
            fitres.metrics.update({ACCOUNT: account, SCHEME: scheme, SIGNATURE: signature})
        if keep is not None:
            keep(ctx, Reveal(task_id, round_, named, salt, digest, fitres.num_examples, scaled))
        return Message(compat.fitres_to_recorddict(fitres, keep_input=False), reply_to=msg)

    return mod


class _Trainer(NumPyClient):
    def __init__(self, train: Train, ctx: Context) -> None:
        self.train, self.ctx = train, ctx

    def fit(self, parameters: list[np.ndarray], config: dict[str, Any]) -> tuple[list[np.ndarray], int, dict]:
        arrays, examples = self.train(self.ctx, parameters, config)
        return arrays, examples, {}


def secagg_client_app(train: Train, settings: SecAggClientSettings, *,
                      keep: Callable[[Context, Reveal], None] | None = None, sign: Sign | None = None,
                      outer: Sequence[Mod] = (), inner: Sequence[Mod] = ()) -> ClientApp:
    """The legacy-format ClientApp of a SecAgg task: `train` inside clipping, commitment and Flower's masking.
    `outer` mods see Flower's SecAgg replies, `inner` ones the trained FitRes (tests use both)."""
    def client_fn(ctx: Context) -> Client:
        return _Trainer(train, ctx).to_client()

    return ClientApp(client_fn=client_fn, mods=[*outer, secaggplus_mod, clip_commit_mod(settings, keep, sign), *inner])


__all__ = ["ACCOUNT", "COMMITMENT", "COMMIT_DOMAIN", "ROUND", "SCHEME", "SIGNATURE", "TASK_ID", "UPDATE_NORM", "Reveal",
           "SecAggClientRefusal", "SecAggClientSettings", "Sign", "clip_commit_mod", "clip_update", "commitment",
           "secagg_client_app", "weighted"]
