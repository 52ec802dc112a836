"""The validators' pure check of an audited SecAgg+ client: its reveal document, and why it must be slashed.

Under SecAgg nobody sees an individual update, so each round a few participants are drawn for an audit
(docs/design/private.md 2.6; docs/secagg.md, "The audit"). A drawn client stores a *reveal document* of what
`clip_commit_mod` kept for that round (workers/fl/secagg_client.py, `Reveal`) and validators check it:

1. the revealed model and salt open the commitment the client signed and the aggregator put on chain:
   ``blake2_256(COMMIT_DOMAIN ++ salt ++ update_hash(model)) == signed commitment`` (`secagg_client.commitment`),
   for the task, round, account and example count it signed;
2. the model is the task's model (names, dtypes, shapes), finite, and its update stays inside the spec's L2
   bound: ``||model - base||_2 <= norm_bound``, the clipping every client promised.

`audit_problem` returns the reason of the first failed check (None: the client passed); validators put a
client with a reason, or with a document `parse_reveal` refuses (`RevealError`), or with none at all, in the
verdict's rejected clients. Which of several faults is named does not matter for the verdict.

The third check of docs/design/private.md 2.6, that the *masked vector the client sent* is this model, is
workers/fl/secagg_masks.py: a drawn client's reveal is then a bundle (`bundle`) of this document and its masking
record.

The reveal document is a PTTS1 document of workers/fl/arrays.py (the encoding every update and model uses, so
the arrays decode with the same bounds and hash the same way) whose meta carries the rest, under its own kind
and version::

    {"client": "<64 hex: the account's 32 bytes>", "kind": "fl-secagg-reveal", "num_examples": n,
     "round": r, "salt": "<64 hex: the 32-byte commitment salt>", "task_id": t, "version": 1}

The header is canonical JSON (sorted keys, no whitespace), and `loads` accepts only the canonical layout, so a
document has exactly one byte form and its blake2-256 names it in the store.
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from workers.fl.arrays import ArrayFormatError, Arrays, check_update, dumps, loads, nbytes
from workers.fl.secagg_client import SALT_BYTES, Reveal, commitment

REVEAL_KIND = "fl-secagg-reveal"
REVEAL_VERSION = 1
BUNDLE_MAGIC = b"PTRB1"   # a reveal document followed by its masking record
REVEAL_FIELDS = frozenset({"client", "kind", "num_examples", "round", "salt", "task_id", "version"})
ACCOUNT_BYTES = 32
U32_MAX, U64_MAX = 2**32 - 1, 2**64 - 1
NORM_RTOL = 1e-6
_HEX32 = re.compile(r"[0-9a-f]{64}")


class RevealError(ValueError):
    """Bytes that are not a reveal document of this model, or are larger than allowed (input from the store)."""


@dataclass(frozen=True)
class RevealedModel:
    """A reveal document's content: what a drawn client says it committed to in a round."""

    task_id: int
    round: int
    client: bytes        # the account's 32 bytes
    salt: bytes          # the commitment's 32-byte salt
    num_examples: int
    arrays: Arrays       # the clipped model it masked, by name


def _is_int(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _meta_problem(meta: Mapping[str, Any]) -> str | None:
    if set(meta) != REVEAL_FIELDS:
        return f"the meta has the keys {sorted(meta)[:8]}, a reveal has exactly {sorted(REVEAL_FIELDS)}"
    if meta["kind"] != REVEAL_KIND or meta["version"] != REVEAL_VERSION:
        return f"not a {REVEAL_KIND} document of version {REVEAL_VERSION}"
    if not _is_int(meta["task_id"], 0, U64_MAX):
        return "task_id is not a u64"
    if not _is_int(meta["round"], 1, U32_MAX):
        return "round is not a positive u32"
    if not _is_int(meta["num_examples"], 1, U64_MAX):
        return "num_examples is not a positive u64"
    for name in ("client", "salt"):
        if not isinstance(meta[name], str) or _HEX32.fullmatch(meta[name]) is None:
            return f"{name} is not 64 lower-case hex characters"
    return None


def reveal_document(reveal: Reveal, client: bytes) -> bytes:
    """The reveal document of what `clip_commit_mod` kept (`reveal`) for the account `client` (32 bytes)."""
    if not isinstance(client, bytes) or len(client) != ACCOUNT_BYTES:
        raise RevealError(f"a client account is {ACCOUNT_BYTES} bytes")
    if not isinstance(reveal.salt, bytes) or len(reveal.salt) != SALT_BYTES:
        raise RevealError(f"a commitment salt is {SALT_BYTES} bytes")
    meta = {"client": client.hex(), "kind": REVEAL_KIND, "num_examples": reveal.num_examples,
            "round": reveal.round, "salt": reveal.salt.hex(), "task_id": reveal.task_id, "version": REVEAL_VERSION}
    problem = _meta_problem(meta)
    if problem is not None:
        raise RevealError(f"cannot write the reveal: {problem}")
    try:
        return dumps(reveal.arrays, meta)
    except ArrayFormatError as exc:
        raise RevealError(f"cannot write the reveal: {exc}") from None


def bundle(reveal: bytes, masking: bytes) -> bytes:
    """A reveal document with the client's masking record (workers/fl/secagg_masks.py), as one sealed plaintext."""
    return BUNDLE_MAGIC + len(reveal).to_bytes(8, "little") + reveal + masking


def unbundle(raw: bytes) -> tuple[bytes, bytes | None]:
    """The reveal document and the masking record of a bundle; a plain reveal document has no record."""
    if not raw.startswith(BUNDLE_MAGIC):
        return raw, None
    start = len(BUNDLE_MAGIC) + 8
    size = int.from_bytes(raw[len(BUNDLE_MAGIC):start], "little")
    if len(raw) < start + size:
        raise RevealError("a reveal bundle shorter than its reveal document")
    return raw[start:start + size], raw[start + size:]


def parse_reveal(raw: bytes, *, max_bytes: int, names: Sequence[str],
                 shapes: Sequence[Sequence[int]]) -> RevealedModel:
    """The content of a reveal document of the model with these array `names` and `shapes` (in one order);
    RevealError for anything longer than `max_bytes`, not a canonical reveal document, or of other arrays."""
    if len(names) != len(shapes):
        raise ValueError(f"{len(names)} array names but {len(shapes)} shapes")
    if not isinstance(raw, (bytes, bytearray, memoryview)):
        raise RevealError(f"a reveal document is bytes, not {type(raw).__name__}")
    if len(raw) > max_bytes:   # before decoding anything
        raise RevealError(f"the reveal document is {len(raw)} bytes, more than the {max_bytes} allowed")
    try:
        arrays, meta = loads(bytes(raw), max_bytes=max_bytes)
    except ArrayFormatError as exc:
        raise RevealError(f"the reveal document does not decode: {exc}") from None
    problem = _meta_problem(meta)
    if problem is not None:
        raise RevealError(f"the reveal document's header: {problem}")
    expected = {name: tuple(int(d) for d in shape) for name, shape in zip(names, shapes, strict=True)}
    if set(arrays) != set(expected):
        missing, extra = sorted(set(expected) - set(arrays)), sorted(set(arrays) - set(expected))
        raise RevealError(f"the revealed arrays are not the model's (missing {missing[:4]}, unexpected {extra[:4]})")
    for name, shape in expected.items():
        if arrays[name].shape != shape:
            raise RevealError(f"revealed array {name!r} has shape {list(arrays[name].shape)}, the model's is "
                              f"{list(shape)}")
    return RevealedModel(task_id=meta["task_id"], round=meta["round"], client=bytes.fromhex(meta["client"]),
                         salt=bytes.fromhex(meta["salt"]), num_examples=meta["num_examples"], arrays=arrays)


def update_norm(arrays: Mapping[str, np.ndarray], base: Mapping[str, np.ndarray]) -> float:
    """||arrays - base||_2 over every array, computed in float64."""
    return math.sqrt(sum(float(np.sum(np.square(np.asarray(arrays[k], np.float64) - np.asarray(base[k], np.float64))))
                         for k in base))


def rounding_allowance(arrays: Mapping[str, np.ndarray]) -> float:
    """The L2 norm by which an honest clip can overshoot its bound once it is stored in the model's dtypes.

    `clip_update` computes ``base + delta * scale`` in float64 with ``||delta * scale|| = bound`` and casts the
    result to the model's dtype. The cast moves each coordinate by at most half an ulp of the stored value
    (``np.spacing(|x|) / 2``, which covers rounding across a binade boundary too) for a float dtype, and by less
    than 1 for an integer one (truncation); by the triangle inequality the stored update's norm is at most
    ``bound + ||those moves||``. This error is relative to the *weights*, not to the update: 10 000 float32
    weights of size 1 under a bound of 0.01 overshoot by about 5e-6 relative (measured), so a relative
    tolerance alone would slash honest clients whenever the bound is small against the model."""
    total = 0.0
    for value in arrays.values():
        a = np.asarray(value)
        if a.dtype.kind == "f":
            total += float(np.sum(np.square(np.spacing(np.abs(a)).astype(np.float64) / 2)))
        else:
            total += float(a.size)
    return math.sqrt(total)


def audit_problem(reveal: RevealedModel, *, signed_commitment: bytes, base: Mapping[str, np.ndarray],
                  norm_bound: float, task_id: int, round: int, client: bytes,  # noqa: A002 - the chain's name
                  num_examples: int) -> str | None:
    """Why the audited client must be slashed, or None when its reveal passes: `reveal` must be for this task,
    round and account, with the example count it signed (`num_examples`), a model of `base`'s names, dtypes
    and shapes, finite, that opens `signed_commitment` with its salt, and whose update from `base` has an L2
    norm of at most `norm_bound` (the spec's bound)."""
    if not math.isfinite(norm_bound) or norm_bound <= 0:
        raise ValueError(f"norm_bound {norm_bound!r} must be a finite number > 0")
    for what, found, wanted in (("task", reveal.task_id, task_id), ("round", reveal.round, round)):
        if found != wanted:
            return f"audit: the reveal is for {what} {found}, not {what} {wanted}"
    if reveal.client != client:
        return (f"audit: the reveal is of account {bytes(reveal.client).hex()[:16]}..., "
                f"not {bytes(client).hex()[:16]}...")
    if reveal.num_examples != num_examples:
        return f"audit: the reveal says {reveal.num_examples} examples, the signed commitment {num_examples}"
    if not isinstance(reveal.salt, bytes) or len(reveal.salt) != SALT_BYTES:
        return f"audit: the revealed salt is not {SALT_BYTES} bytes"
    problem = check_update(reveal.arrays, base, max_bytes=nbytes(base))
    if problem is not None:   # names, dtypes, shapes (so the size is the base's exactly), finite values
        return f"audit: the revealed model: {problem}"
    if commitment(reveal.salt, reveal.arrays) != bytes(signed_commitment):
        return "audit: the revealed model and salt do not open the signed commitment"
    norm = update_norm(reveal.arrays, base)
    # NORM_RTOL covers the float64 arithmetic of the clip and of this norm (relative errors ~1e-15 per
    # operation, far below 1e-6); rounding_allowance covers the cast to the model's dtype (its docstring)
    limit = norm_bound * (1 + NORM_RTOL) + rounding_allowance(reveal.arrays)
    if not norm <= limit:
        return f"audit: the update's L2 norm {norm:.9g} is above the bound {norm_bound:g}"
    return None


def audit_document(raw: bytes, *, max_bytes: int, signed_commitment: bytes, base: Mapping[str, np.ndarray],
                   norm_bound: float, task_id: int, round: int, client: bytes,  # noqa: A002
                   num_examples: int) -> str | None:
    """`audit_problem` of a stored reveal document; a document `parse_reveal` refuses is a reason too."""
    names = sorted(base)
    try:
        reveal = parse_reveal(raw, max_bytes=max_bytes, names=names, shapes=[np.shape(base[k]) for k in names])
    except RevealError as exc:
        return f"audit: {exc}"
    return audit_problem(reveal, signed_commitment=signed_commitment, base=base, norm_bound=norm_bound,
                         task_id=task_id, round=round, client=client, num_examples=num_examples)


__all__ = ["BUNDLE_MAGIC", "NORM_RTOL", "REVEAL_KIND", "REVEAL_VERSION", "RevealError", "RevealedModel",
           "audit_document", "audit_problem", "bundle", "parse_reveal", "reveal_document", "rounding_allowance",
           "unbundle", "update_norm"]
