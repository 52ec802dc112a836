"""The audit of a drawn SecAgg+ client (workers/fl/secagg_audit.py): an honest client's reveal, built as
`clip_commit_mod` builds it (clip_update, commitment, Reveal), passes; every forgery and every malformed
document is refused with its reason named."""
from __future__ import annotations

import dataclasses
import json
import os
import struct

import numpy as np
import pytest

from workers.fl.arrays import MAGIC, dumps, loads
from workers.fl.secagg_audit import (
    NORM_RTOL,
    REVEAL_KIND,
    RevealedModel,
    RevealError,
    audit_document,
    audit_problem,
    parse_reveal,
    reveal_document,
    rounding_allowance,
    update_norm,
)
from workers.fl.secagg_client import Reveal, clip_update, commitment, weighted
from workers.fl.secagg_params import SecAggParams

NAMES = ("fc.bias", "fc.weight")
SHAPES = ((10,), (10, 64))
BOUND = 0.5
TASK, ROUND, EXAMPLES = 7, 3, 120
CLIENT = bytes(range(32))
MAX_BYTES = 64 * 1024


def _base(rng: np.random.Generator) -> list[np.ndarray]:
    return [rng.normal(0, 1, shape).astype(np.float32) for shape in SHAPES]


def _trained(rng: np.random.Generator, base: list[np.ndarray], size: float) -> list[np.ndarray]:
    return [(b + rng.normal(0, size, b.shape)).astype(np.float32) for b in base]


def _reveal(base: list[np.ndarray], model: list[np.ndarray], *, clip: bool = True, salt: bytes | None = None,
            task: int = TASK, round_: int = ROUND, examples: int = EXAMPLES) -> Reveal:
    """What clip_commit_mod keeps: the clipped model by name, a fresh salt and the commitment to both."""
    clipped, _ = clip_update(base, model, BOUND) if clip else (model, 0.0)
    named = dict(zip(NAMES, clipped, strict=True))
    salt = os.urandom(32) if salt is None else salt
    return Reveal(task, round_, named, salt, commitment(salt, named), examples,
                  weighted(SecAggParams(), clipped, examples))


@pytest.fixture()
def honest() -> tuple[dict[str, np.ndarray], Reveal, bytes]:
    rng = np.random.default_rng(0)
    base = _base(rng)
    reveal = _reveal(base, _trained(rng, base, 0.1))   # norm ~2.5 before clipping: the clip is active
    return dict(zip(NAMES, base, strict=True)), reveal, reveal_document(reveal, CLIENT)


def _audit(doc: RevealedModel, base: dict[str, np.ndarray], signed: bytes, **overrides: object) -> str | None:
    args: dict = {"signed_commitment": signed, "base": base, "norm_bound": BOUND, "task_id": TASK,
                  "round": ROUND, "client": CLIENT, "num_examples": EXAMPLES, **overrides}
    return audit_problem(doc, **args)


def _parse(raw: bytes, max_bytes: int = MAX_BYTES) -> RevealedModel:
    return parse_reveal(raw, max_bytes=max_bytes, names=NAMES, shapes=SHAPES)


# the document ---------------------------------------------------------------------------------------------
def test_the_document_round_trips_and_is_canonical(honest) -> None:  # type: ignore[no-untyped-def]
    _, reveal, raw = honest
    assert raw.startswith(MAGIC)
    _, meta = loads(raw)
    assert meta == {"client": CLIENT.hex(), "kind": REVEAL_KIND, "num_examples": EXAMPLES, "round": ROUND,
                    "salt": reveal.salt.hex(), "task_id": TASK, "version": 1}
    header = raw[len(MAGIC) + 8:len(MAGIC) + 8 + struct.unpack_from("<Q", raw, len(MAGIC))[0]]
    assert b" " not in header and json.loads(header)["meta"] == meta
    doc = _parse(raw)
    assert (doc.task_id, doc.round, doc.client, doc.salt, doc.num_examples) == \
        (TASK, ROUND, CLIENT, reveal.salt, EXAMPLES)
    assert all(np.array_equal(doc.arrays[k], reveal.arrays[k]) and doc.arrays[k].dtype == np.float32 for k in NAMES)
    assert reveal_document(reveal, CLIENT) == raw   # one byte form


def test_reveal_document_refuses_what_it_cannot_write(honest) -> None:  # type: ignore[no-untyped-def]
    _, reveal, _ = honest
    with pytest.raises(RevealError, match="32 bytes"):
        reveal_document(reveal, CLIENT[:31])
    with pytest.raises(RevealError, match="salt is 32 bytes"):
        reveal_document(dataclasses.replace(reveal, salt=b"short"), CLIENT)
    with pytest.raises(RevealError, match="round is not a positive u32"):
        reveal_document(dataclasses.replace(reveal, round=0), CLIENT)
    with pytest.raises(RevealError, match="dtype complex128"):
        reveal_document(dataclasses.replace(reveal, arrays={"x": np.zeros(2, np.complex128)}), CLIENT)


def _with_meta(raw: bytes, **changes: object) -> bytes:
    arrays, meta = loads(raw)
    meta.update(changes)
    return dumps(arrays, {k: v for k, v in meta.items() if v is not None})


@pytest.mark.parametrize("make, words", [
    (lambda raw: raw[:-1], "does not decode"),                                   # truncated
    (lambda raw: b"garbage" + raw, "does not decode: not a PTTS1 document"),
    (lambda raw: raw + b"\x00", "trailing bytes"),
    (lambda raw: _with_meta(raw, kind="fl-update"), "not a fl-secagg-reveal document of version 1"),
    (lambda raw: _with_meta(raw, version=2), "not a fl-secagg-reveal document of version 1"),
    (lambda raw: _with_meta(raw, salt=None), "a reveal has exactly"),
    (lambda raw: _with_meta(raw, extra=1), "a reveal has exactly"),
    (lambda raw: _with_meta(raw, salt="AB" * 32), "salt is not 64 lower-case hex"),
    (lambda raw: _with_meta(raw, client="00" * 31), "client is not 64 lower-case hex"),
    (lambda raw: _with_meta(raw, num_examples=0), "num_examples is not a positive u64"),
    (lambda raw: _with_meta(raw, task_id=-1), "task_id is not a u64"),
    (lambda raw: _with_meta(raw, round=True), "round is not a positive u32"),
    (lambda raw: dumps({"fc.weight": np.zeros((10, 64), np.float32)}, loads(raw)[1]),
     "not the model's (missing ['fc.bias'], unexpected [])"),
    (lambda raw: dumps({**loads(raw)[0], "extra": np.zeros(1, np.float32)}, loads(raw)[1]),
     "unexpected ['extra']"),
    (lambda raw: dumps({**loads(raw)[0], "fc.weight": np.zeros((64, 10), np.float32)}, loads(raw)[1]),
     "revealed array 'fc.weight' has shape [64, 10], the model's is [10, 64]"),
    (lambda raw: "text", "a reveal document is bytes, not str"),
])
def test_garbled_documents_are_refused(honest, make, words: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(RevealError, match=None) as caught:
        _parse(make(honest[2]))
    assert words in str(caught.value)


def test_an_oversized_document_is_refused_before_decoding(honest) -> None:  # type: ignore[no-untyped-def]
    raw = honest[2]
    assert _parse(raw, max_bytes=len(raw)).num_examples == EXAMPLES
    with pytest.raises(RevealError, match=f"{len(raw)} bytes, more than the {len(raw) - 1} allowed"):
        _parse(raw, max_bytes=len(raw) - 1)
    with pytest.raises(RevealError, match="more than the 1024 allowed"):
        _parse(b"\xff" * 10**6, max_bytes=1024)


# the audit -------------------------------------------------------------------------------------------------
def test_an_honest_reveal_passes(honest) -> None:  # type: ignore[no-untyped-def]
    base, reveal, raw = honest
    doc = _parse(raw)
    assert update_norm(doc.arrays, base) == pytest.approx(BOUND, rel=1e-6)   # clipped to the bound
    assert _audit(doc, base, reveal.commitment) is None
    assert audit_document(raw, max_bytes=MAX_BYTES, signed_commitment=reveal.commitment, base=base,
                          norm_bound=BOUND, task_id=TASK, round=ROUND, client=CLIENT, num_examples=EXAMPLES) is None


def test_an_update_under_the_bound_is_not_clipped_and_passes() -> None:
    rng = np.random.default_rng(1)
    base = _base(rng)
    reveal = _reveal(base, _trained(rng, base, 0.001))
    doc = _parse(reveal_document(reveal, CLIENT))
    assert update_norm(doc.arrays, dict(zip(NAMES, base, strict=True))) < BOUND / 2
    assert _audit(doc, dict(zip(NAMES, base, strict=True)), reveal.commitment) is None


def test_a_tight_bound_on_a_large_model_passes_despite_float32_rounding() -> None:
    """bound 1e-3 on 20 000 unit-scale float32 weights: the cast overshoots the bound by ~5e-5 relative, more
    than the relative tolerance alone allows; the rounding allowance keeps the honest client in."""
    rng = np.random.default_rng(2)
    base = [rng.normal(0, 1, (200, 100)).astype(np.float32)]
    model = [(base[0] + rng.normal(0, 1, base[0].shape)).astype(np.float32)]
    clipped, _ = clip_update(base, model, 1e-3)
    named = {"w": clipped[0]}
    norm = update_norm(named, {"w": base[0]})
    assert norm > 1e-3 * (1 + NORM_RTOL)                                   # what the tolerance alone misses
    assert norm <= 1e-3 * (1 + NORM_RTOL) + rounding_allowance(named)
    salt = os.urandom(32)
    doc = RevealedModel(TASK, ROUND, CLIENT, salt, EXAMPLES, named)
    assert _audit(doc, {"w": base[0]}, commitment(salt, named), norm_bound=1e-3) is None


def test_a_different_update_than_committed(honest) -> None:  # type: ignore[no-untyped-def]
    base, reveal, raw = honest
    doc = _parse(raw)
    arrays = {k: v.copy() for k, v in doc.arrays.items()}
    arrays["fc.bias"][0] += np.float32(1e-3)            # still inside the bound, but not what was committed
    problem = _audit(dataclasses.replace(doc, arrays=arrays), base, reveal.commitment)
    assert problem == "audit: the revealed model and salt do not open the signed commitment"


def test_a_different_salt(honest) -> None:  # type: ignore[no-untyped-def]
    base, reveal, raw = honest
    doc = dataclasses.replace(_parse(raw), salt=os.urandom(32))
    assert _audit(doc, base, reveal.commitment) == \
        "audit: the revealed model and salt do not open the signed commitment"
    assert _audit(dataclasses.replace(doc, salt=b"short"), base, reveal.commitment) == \
        "audit: the revealed salt is not 32 bytes"


def test_another_commitment(honest) -> None:  # type: ignore[no-untyped-def]
    base, _, raw = honest
    assert _audit(_parse(raw), base, bytes(32)) == \
        "audit: the revealed model and salt do not open the signed commitment"


def test_a_norm_above_the_bound() -> None:
    """An unclipped update, committed to honestly: the commitment opens, the bound is broken."""
    rng = np.random.default_rng(3)
    base = _base(rng)
    reveal = _reveal(base, _trained(rng, base, 0.1), clip=False)
    doc = _parse(reveal_document(reveal, CLIENT))
    problem = _audit(doc, dict(zip(NAMES, base, strict=True)), reveal.commitment)
    assert problem is not None and problem.startswith("audit: the update's L2 norm ")
    assert problem.endswith(f"is above the bound {BOUND:g}")


def test_just_above_the_bound_is_refused(honest) -> None:  # type: ignore[no-untyped-def]
    """A 1 % overshoot is far beyond every tolerance."""
    base, _, raw = honest
    doc = _parse(raw)
    arrays = {k: (base[k] + (doc.arrays[k] - base[k]) * np.float32(1.01)).astype(np.float32) for k in NAMES}
    salt = os.urandom(32)
    problem = _audit(dataclasses.replace(doc, arrays=arrays, salt=salt), base, commitment(salt, arrays))
    assert problem is not None and "is above the bound 0.5" in problem


def test_nan_and_infinity(honest) -> None:  # type: ignore[no-untyped-def]
    base, _, raw = honest
    doc = _parse(raw)
    for bad in (np.nan, np.inf):
        arrays = {k: v.copy() for k, v in doc.arrays.items()}
        arrays["fc.weight"][3, 7] = bad
        salt = os.urandom(32)
        problem = _audit(dataclasses.replace(doc, arrays=arrays, salt=salt), base, commitment(salt, arrays))
        assert problem == "audit: the revealed model: array 'fc.weight' has NaN or infinite values"


def test_a_wrong_shape_dtype_or_name(honest) -> None:  # type: ignore[no-untyped-def]
    base, _, raw = honest
    doc = _parse(raw)

    def committed(arrays: dict[str, np.ndarray]) -> str | None:
        salt = os.urandom(32)
        return _audit(dataclasses.replace(doc, arrays=arrays, salt=salt), base, commitment(salt, arrays))

    assert committed({**doc.arrays, "fc.weight": doc.arrays["fc.weight"].T.copy()}) == \
        "audit: the revealed model: array 'fc.weight' has shape [64, 10], the global model's is [10, 64]"
    assert committed({**doc.arrays, "fc.bias": doc.arrays["fc.bias"].astype(np.float64)}) == \
        "audit: the revealed model: array 'fc.bias' has dtype float64, the global model's is float32"
    problem = committed({"fc.weight": doc.arrays["fc.weight"]})
    assert problem is not None and "array names differ" in problem and "missing ['fc.bias']" in problem


def test_wrong_task_round_client_or_examples(honest) -> None:  # type: ignore[no-untyped-def]
    base, reveal, raw = honest
    doc = _parse(raw)
    signed = reveal.commitment
    assert _audit(doc, base, signed, task_id=TASK + 1) == f"audit: the reveal is for task {TASK}, not task {TASK + 1}"
    assert _audit(doc, base, signed, round=ROUND - 1) == f"audit: the reveal is for round {ROUND}, not round 2"
    other = bytes(32)
    assert _audit(doc, base, signed, client=other) == \
        f"audit: the reveal is of account {CLIENT.hex()[:16]}..., not {other.hex()[:16]}..."
    assert _audit(doc, base, signed, num_examples=EXAMPLES + 1) == \
        f"audit: the reveal says {EXAMPLES} examples, the signed commitment {EXAMPLES + 1}"
    # a reveal recommitted for another round does not pass for this one either
    moved = _reveal(*[list(doc.arrays.values())] * 2, salt=reveal.salt, round_=ROUND + 1)
    assert _audit(_parse(reveal_document(moved, CLIENT)), base, signed) == \
        f"audit: the reveal is for round {ROUND + 1}, not round {ROUND}"


def test_audit_document_names_a_garbled_reveal(honest) -> None:  # type: ignore[no-untyped-def]
    base, reveal, raw = honest
    problem = audit_document(raw[:100], max_bytes=MAX_BYTES, signed_commitment=reveal.commitment, base=base,
                             norm_bound=BOUND, task_id=TASK, round=ROUND, client=CLIENT, num_examples=EXAMPLES)
    assert problem is not None and problem.startswith("audit: the reveal document does not decode")
    problem = audit_document(raw, max_bytes=100, signed_commitment=reveal.commitment, base=base,
                             norm_bound=BOUND, task_id=TASK, round=ROUND, client=CLIENT, num_examples=EXAMPLES)
    assert problem == f"audit: the reveal document is {len(raw)} bytes, more than the 100 allowed"


def test_a_bad_bound_is_the_callers_error(honest) -> None:  # type: ignore[no-untyped-def]
    base, reveal, raw = honest
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="norm_bound"):
            _audit(_parse(raw), base, reveal.commitment, norm_bound=bad)
