"""Poisoned clients for the tests and the demo: what a Byzantine data owner sends instead of its honest update.

An attack is real only if it goes through every path an honest update takes, so it is a Flower client mod
(`attack_mod`) that sits inside the signing mod: the poisoned arrays are signed like honest ones, which is what
lets the chain pay or slash their sender. It acts only on a node whose node config names an attack
(``paratrain-attack``); every other node's replies pass through unchanged.

Attacks on the update, with ``delta = trained - base`` (the received global model is ``base``):

* ``sign-flip``: ``base - delta`` (the direction reversed);
* ``scale:K``: ``base + K * delta`` (``scale:1000`` in the tests);
* ``free-rider``: ``base`` itself, claiming its examples without training on them;
* ``nan`` / ``inf``: one value of the first floating array replaced;
* ``wrong-shape``: the first array with one row cut off;
* ``oversize``: an extra zero array of twice the size limit (the spec's ``max_update_bytes``), so the reply is
  over it whatever per-array overhead a size check allows.

``dp-underreport`` (a private task only) halves the epsilon of the round's DP claim before the client signs it:
the update is honest, the privacy it says it spent is not.

``bad-shares`` (a SecAgg task only) cuts the last ciphertext off the client's share-keys reply and signs it all
the same, as a client out to break its neighbours' round would (workers/fl/secagg_evidence.py).

``flip-labels`` poisons the data instead (``y -> classes - 1 - y``): the train handler applies
`flip_labels` to the local shard and the update it sends is an honest one of poisoned data.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
from flwr.app import Array, ArrayRecord, Context, Message, MessageType

from workers.fl.arrays import Arrays
from workers.fl.dp_record import CLAIM_RECORD

ATTACK_KEY = "paratrain-attack"
UPDATE_ATTACKS = ("sign-flip", "scale", "free-rider", "nan", "inf", "wrong-shape", "oversize")
DATA_ATTACKS = ("flip-labels",)
CLAIM_ATTACKS = ("dp-underreport",)   # a private task's claim: epsilon halved before it is signed
SECAGG_ATTACKS = ("bad-shares",)      # a SecAgg stage reply malformed, and signed
PADDING_NAME = "paratrain.padding"
DEFAULT_OVERSIZE_BYTES = 64 << 20
MAX_SCALE = 1e12


class AttackSpecError(ValueError):
    """An attack name that is not one of the known ones (a typo must not silently run an honest client)."""


@dataclass(frozen=True)
class Attack:
    """One parsed attack: its kind, and the factor of ``scale:K``."""

    kind: str
    factor: float = 1.0

    @property
    def on_data(self) -> bool:
        return self.kind in DATA_ATTACKS


def parse_attack(text: str | None) -> Attack | None:
    """The attack a node-config value names; None for an honest node (no value, or an empty one)."""
    if text is None or not str(text).strip():
        return None
    name, _, argument = str(text).strip().partition(":")
    if name == "scale":
        try:
            factor = float(argument)
        except ValueError:
            raise AttackSpecError(f"scale needs a factor (scale:1000), got {text!r}") from None
        if not np.isfinite(factor) or abs(factor) > MAX_SCALE:
            raise AttackSpecError(f"scale factor {argument!r} is not a finite number up to {MAX_SCALE:g}")
        return Attack("scale", factor)
    if argument or name not in UPDATE_ATTACKS + DATA_ATTACKS + CLAIM_ATTACKS + SECAGG_ATTACKS:
        known = ", ".join(("scale:K",) + tuple(a for a in UPDATE_ATTACKS + DATA_ATTACKS + CLAIM_ATTACKS + SECAGG_ATTACKS
                                               if a != "scale"))
        raise AttackSpecError(f"unknown attack {text!r} (known: {known})")
    return Attack(name)


def flip_labels(y: np.ndarray, classes: int) -> np.ndarray:
    """Every label mirrored (``classes - 1 - y``): each class taught as another one, none left in place
    for an even number of classes."""
    return (classes - 1 - np.asarray(y)).astype(np.asarray(y).dtype)


def _first_float(arrays: Mapping[str, np.ndarray]) -> str:
    for name in arrays:
        if arrays[name].dtype.kind == "f" and arrays[name].size:
            return name
    raise ValueError("the update has no floating-point array to poison")


def poison(attack: Attack, base: Mapping[str, np.ndarray], update: Mapping[str, np.ndarray], *,
           max_update_bytes: int = DEFAULT_OVERSIZE_BYTES) -> Arrays:
    """The arrays a client running `attack` sends in place of `update` (trained from `base`)."""
    out: Arrays = {name: np.array(value, copy=True) for name, value in update.items()}
    kind = attack.kind
    if kind in ("sign-flip", "scale"):
        factor = -1.0 if kind == "sign-flip" else attack.factor
        for name, value in out.items():
            if value.dtype.kind == "f":
                b = np.asarray(base[name], dtype=value.dtype)
                out[name] = (b + (value - b) * value.dtype.type(factor)).astype(value.dtype)
    elif kind == "free-rider":
        out = {name: np.array(value, copy=True) for name, value in base.items()}
    elif kind in ("nan", "inf"):
        name = _first_float(out)
        out[name].reshape(-1)[0] = np.nan if kind == "nan" else np.inf
    elif kind == "wrong-shape":
        name = next(iter(out))
        value = out[name]
        out[name] = value[:-1] if value.ndim and value.shape[0] > 1 else np.concatenate([value.reshape(-1)] * 2)
    elif kind == "oversize":
        out[PADDING_NAME] = np.zeros(2 * max_update_bytes, dtype=np.uint8)
    elif kind not in DATA_ATTACKS:
        raise AttackSpecError(f"unknown attack {kind!r}")
    return out


def record_arrays(record: ArrayRecord) -> Arrays:
    """The numpy arrays of an ArrayRecord, by name, in the record's order (the record is left as it is)."""
    return {name: array.numpy() for name, array in record.items()}


def to_record(arrays: Mapping[str, np.ndarray]) -> ArrayRecord:
    """An ArrayRecord of named numpy arrays, in the mapping's order."""
    return ArrayRecord({name: Array(np.ascontiguousarray(value)) for name, value in arrays.items()})


MaxBytes = Callable[[Message, Context], int]


def make_attack_mod(attack_of: Callable[[Context], Attack | None], max_bytes: MaxBytes) -> Callable[..., Message]:
    """The attack mod for nodes whose attack `attack_of(context)` names, with the spec's size limit from
    `max_bytes(message, context)` (for ``oversize``)."""

    def attack_mod(msg: Message, ctx: Context, call_next: Callable[[Message, Context], Message]) -> Message:
        attack = attack_of(ctx) if msg.metadata.message_type.split(".")[0] == MessageType.TRAIN else None
        if attack is None or attack.on_data:
            return call_next(msg, ctx)
        if attack.kind in CLAIM_ATTACKS:
            reply = call_next(msg, ctx)
            claim = None if reply.has_error() else reply.content.config_records.get(CLAIM_RECORD)
            if claim is not None:
                claim["dp-epsilon"] = int(claim["dp-epsilon"]) // 2
            return reply
        base = record_arrays(msg.content["arrays"])
        reply = call_next(msg, ctx)
        if reply.has_error() or "arrays" not in reply.content:
            return reply
        limit = max_bytes(msg, ctx) if attack.kind == "oversize" else DEFAULT_OVERSIZE_BYTES
        poisoned = poison(attack, base, record_arrays(reply.content["arrays"]), max_update_bytes=limit)
        reply.content["arrays"] = to_record(poisoned)
        return reply

    return attack_mod


__all__ = ["ATTACK_KEY", "DATA_ATTACKS", "PADDING_NAME", "UPDATE_ATTACKS", "Attack", "AttackSpecError",
           "flip_labels", "make_attack_mod", "parse_attack", "poison", "record_arrays", "to_record"]
