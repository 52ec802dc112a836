"""The audit's third check (docs/design/private.md 2.6): the masked vector a drawn client *sent* is its committed
model, masked.

The commitment and the norm bound (workers/fl/secagg_audit.py) hold a client to the model it committed to, not
to what it put in the sum: it could commit to a clipped model and mask another. So the client signs its
masked-vector reply like every stage reply (workers/fl/secagg_evidence.py), the aggregator's round document
records the digest of each participant's signed reply (`masked_vectors`), and a drawn client's reveal carries a
*masking record*: that signed reply, its self-mask seed ``rd_seed``, its mask key ``sk1`` and its neighbours'
``pk1`` keys. A validator removes the masks exactly as Flower's `secaggplus_mod` added them (its own
`pseudo_rand_gen` and key agreement) and checks that what is left is the weight factor followed by Flower's
quantization of the revealed model: every coordinate the ceiling of its deterministic part or one below
(Flower rounds stochastically, with numpy's unseeded generator, so either is honest).

Forging a record that passes for another model would take seeds whose masks cancel a chosen difference: the
masks are pseudo-random vectors, so there is no such search short of breaking the generator.

What revealing costs: a drawn client's update is revealed anyway; its ``sk1`` also lets the validators compute its
pairwise masks with each neighbour. A neighbour's update stays hidden while any of its own neighbours was not
drawn (all-to-all at a 10 % audit rate, nearly always), or while validators do not collude with the aggregator,
which alone can reconstruct live clients' self masks.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from flwr.common import bytes_to_ndarray
from flwr.common.secure_aggregation.crypto.symmetric_encryption import generate_shared_key
from flwr.common.secure_aggregation.secaggplus_constants import Key, Stage
from flwr.common.secure_aggregation.secaggplus_utils import pseudo_rand_gen
from flwr.supercore.primitives.asymmetric import bytes_to_private_key, bytes_to_public_key

from workers.fl.secagg_checks import check_masked_vector
from workers.fl.secagg_evidence import EvidenceError, StageReply, evidence_document, parse_evidence
from workers.fl.secagg_params import SecAggParams
from workers.fl.spec import canonical_json

MASKING_VERSION = "paratrain/secagg-masking/v1"
SEED_BYTES = 32
MAX_KEY_BYTES = 1024


class MaskingError(ValueError):
    """Bytes that are not a masking record (input from the store)."""


@dataclass(frozen=True)
class MaskingRecord:
    """What a drawn client shows of how it masked: its signed reply, its secrets, its neighbours' keys."""

    reply: StageReply                 # its signed collect_masked_vectors reply, with what it was asked
    rd_seed: bytes
    sk1: bytes                        # Flower's private_key_to_bytes of its mask key
    neighbour_keys: Mapping[int, bytes]   # node id -> pk1, for every source it added a pairwise mask for


def masking_document(record: MaskingRecord) -> bytes:
    return canonical_json({"version": MASKING_VERSION, "reply": json.loads(evidence_document(record.reply)),
                           "rd_seed": record.rd_seed.hex(), "sk1": record.sk1.hex(),
                           "neighbours": {str(n): k.hex() for n, k in sorted(record.neighbour_keys.items())}})


def parse_masking(raw: bytes, *, max_bytes: int) -> MaskingRecord:
    if len(raw) > max_bytes:
        raise MaskingError(f"over {max_bytes} bytes")
    try:
        doc = json.loads(raw)
        if not isinstance(doc, dict) or set(doc) != {"version", "reply", "rd_seed", "sk1", "neighbours"} \
                or doc["version"] != MASKING_VERSION or not isinstance(doc["neighbours"], dict):
            raise MaskingError(f"not a {MASKING_VERSION} document")
        reply = parse_evidence(canonical_json(doc["reply"]), max_bytes=max_bytes)
        keys = {int(n): bytes.fromhex(k) for n, k in doc["neighbours"].items()}
        record = MaskingRecord(reply, bytes.fromhex(doc["rd_seed"]), bytes.fromhex(doc["sk1"]), keys)
    except (EvidenceError, ValueError, TypeError, AttributeError, UnicodeDecodeError) as exc:
        raise MaskingError(f"a malformed masking record ({exc})") from None
    if len(record.rd_seed) != SEED_BYTES or not 0 < len(record.sk1) <= MAX_KEY_BYTES \
            or any(not 0 < len(k) <= MAX_KEY_BYTES for k in keys.values()):
        raise MaskingError("a seed or key of the wrong size")
    return record


def secrets_of(state: Mapping[str, Any], sources: Sequence[int]) -> tuple[bytes, bytes, dict[int, bytes]]:
    """rd_seed, sk1 and the sources' pk1 from Flower's saved ``secaggplus_state`` record (SecAggPlusState's
    `to_dict` form: ``public_keys_dict`` as node ids, then pk1 and pk2 of each)."""
    ids, keys = list(state["public_keys_dict:K"]), list(state["public_keys_dict:V"])
    pk1 = {int(n): bytes(keys[2 * i]) for i, n in enumerate(ids)}
    return bytes(state["rd_seed"]), bytes(state["sk1"]), {int(s): pk1[int(s)] for s in sources}


def unmasked(record: MaskingRecord, modulus: int) -> list[np.ndarray]:
    """The client's masked vector with its self mask and pairwise masks taken off, as Flower added them."""
    vectors = [bytes_to_ndarray(raw) for raw in record.reply.answer[Key.MASKED_PARAMETERS]]
    dims = [v.shape for v in vectors]
    out = [v.astype(np.int64) for v in vectors]
    out = [a - m for a, m in zip(out, pseudo_rand_gen(record.rd_seed, modulus, dims), strict=True)]
    own = bytes_to_private_key(record.sk1)
    for source in record.reply.asked[Key.SOURCE_LIST]:
        pairwise = pseudo_rand_gen(generate_shared_key(own, bytes_to_public_key(record.neighbour_keys[source])),
                                   modulus, dims)
        sign = -1 if record.reply.node_id > source else 1   # Flower added it when its node id is the larger
        out = [a + sign * m for a, m in zip(out, pairwise, strict=True)]
    return [np.mod(a, modulus) for a in out]


def quantization_bounds(params: SecAggParams, model: Sequence[np.ndarray], num_examples: int) -> tuple[
        int, list[np.ndarray]]:
    """The weight factor and, per array, the ceiling of Flower's pre-rounding value (secaggplus_mod's
    `_collect_masked_vectors` and `quantize`, step for step, in the model's dtypes)."""
    target, clip = params.quantization_range, float(params.clipping_range)
    q_ratio = round(num_examples / float(params.max_weight) * target)
    weighted = [np.asarray(a) * (q_ratio / target) for a in model]
    quantizer = target / (2 * clip)
    return q_ratio, [np.ceil((np.clip(a, -clip, clip) + clip) * quantizer).astype(np.int32).astype(np.int64)
                     for a in weighted]


def masking_problem(record: MaskingRecord, *, model: Sequence[np.ndarray], params: SecAggParams,
                    shapes: Sequence[tuple[int, ...]], task_id: int, round_: int, account: str, num_examples: int,
                    recorded_digest: bytes) -> str | None:
    """Why the masked vector the client sent is not `model` (the revealed one, in name order) masked; None: it is.
    `recorded_digest` is the round document's digest of the reply the aggregator summed."""
    reply = record.reply
    if reply.stage != Stage.COLLECT_MASKED_VECTORS or (reply.task_id, reply.round) != (task_id, round_):
        return "audit: the masking record is not its masked-vector reply of this round"
    if reply.digest() != recorded_digest:
        return "audit: the masked vector it reveals is not the one the aggregator summed"
    if not reply.is_from(account) or not reply.signed():
        return "audit: the masked-vector reply it reveals is not signed by it"
    if reply.num_examples != num_examples:
        return f"audit: its masked vector is weighted for {reply.num_examples} examples, it signed {num_examples}"
    problem = check_masked_vector(reply.answer, shapes, params.modulus_range)
    if problem is not None:
        return f"audit: {problem}"
    sources = reply.asked.get(Key.SOURCE_LIST)
    if not isinstance(sources, list) or any(s not in record.neighbour_keys for s in sources):
        return "audit: the masking record lacks a neighbour's key it masked with"
    try:
        plain = unmasked(record, params.modulus_range)
    except (ValueError, TypeError) as exc:   # a key that does not load
        return f"audit: its masks cannot be recomputed ({exc})"
    q_ratio, ceilings = quantization_bounds(params, model, num_examples)
    if plain[0].tolist() != [q_ratio]:
        return f"audit: its masked vector carries the weight factor {plain[0].tolist()}, not [{q_ratio}]"
    off = sum(int(np.count_nonzero((p != c) & (p != c - 1))) for p, c in zip(plain[1:], ceilings, strict=True))
    if off:
        total = sum(c.size for c in ceilings)
        return f"audit: the masked vector it sent is not its committed model ({off} of {total} values differ)"
    return None


__all__ = ["MASKING_VERSION", "MaskingError", "MaskingRecord", "masking_document", "masking_problem",
           "parse_masking", "quantization_bounds", "secrets_of", "unmasked"]
