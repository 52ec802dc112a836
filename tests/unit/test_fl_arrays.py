"""workers.fl.arrays: numpy PTTS1 bytes equal tensorio's, bounded canonical decoding, update refusals."""
from __future__ import annotations

import json
import struct

import numpy as np
import pytest
import torch

from workers import tensorio
from workers.fl import arrays
from workers.fl.arrays import ArrayFormatError, check_update, dumps, loads
from workers.hashing import blake2_256


def _sample() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    return {"w": rng.standard_normal((3, 4)).astype(np.float32), "b": rng.standard_normal(4).astype(np.float64),
            "steps": np.array(7, dtype=np.int64), "mask": np.array([True, False, True]),
            "empty": np.zeros((0, 5), dtype=np.float32), "small": np.arange(6, dtype=np.int8).reshape(2, 3),
            "half": np.linspace(-1, 1, 5).astype(np.float16), "u": np.arange(4, dtype=np.uint8)}


def test_bytes_equal_tensorio_dumps_for_every_dtype() -> None:
    sample = _sample()
    meta = {"kind": "fl-update", "note": "é"}
    expected = tensorio.dumps({k: torch.from_numpy(v.copy()) for k, v in sample.items()}, meta)
    assert dumps(sample, meta) == expected


def test_big_endian_and_strided_inputs_write_the_same_bytes() -> None:
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    assert dumps({"a": a.astype(">f4")}) == dumps({"a": a})
    assert dumps({"a": np.asfortranarray(a)}) == dumps({"a": a})


def test_round_trip_is_bitwise_and_keeps_dtypes() -> None:
    sample = _sample()
    data = dumps(sample, {"kind": "x"})
    decoded, meta = loads(data)
    assert meta == {"kind": "x"}
    assert list(decoded) == sorted(sample)
    for name, value in sample.items():
        assert decoded[name].dtype == value.dtype and decoded[name].shape == value.shape
        assert decoded[name].tobytes() == value.tobytes()
        assert decoded[name].flags.writeable
    assert dumps(decoded, meta) == data


def test_tensorio_reads_what_arrays_wrote() -> None:
    sample = _sample()
    tensors, meta = tensorio.loads(dumps(sample, arrays.UPDATE_META))
    assert meta == arrays.UPDATE_META
    assert torch.equal(tensors["w"], torch.from_numpy(sample["w"]))


def test_update_and_model_hashes_name_their_ptts1_bytes() -> None:
    sample = _sample()
    as_torch = {k: torch.from_numpy(v.copy()) for k, v in sample.items()}
    assert arrays.update_hash(sample) == blake2_256(tensorio.dumps(as_torch, {"kind": "fl-update"}))
    assert arrays.model_hash(sample) == blake2_256(tensorio.dumps(as_torch, {"kind": "fl-model"}))
    assert arrays.update_hash(sample) != arrays.model_hash(sample)
    changed = dict(sample, w=sample["w"] + np.float32(1e-6))
    assert arrays.update_hash(changed) != arrays.update_hash(sample)


def test_unsupported_dtypes_are_refused_when_writing() -> None:
    with pytest.raises(ArrayFormatError, match="dtype"):
        dumps({"c": np.zeros(2, dtype=np.complex64)})
    with pytest.raises(ArrayFormatError, match="dtype"):
        dumps({"o": np.array([object()], dtype=object)})


def _document(header: dict, body: bytes) -> bytes:
    raw = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    return arrays.MAGIC + struct.pack("<Q", len(raw)) + raw + body


def _entry(name: str = "a", dtype: str = "float32", shape: list | None = None, offset: int = 0,
           nbytes: int = 8) -> dict:
    return {"name": name, "dtype": dtype, "shape": [2] if shape is None else shape, "offset": offset,
            "nbytes": nbytes}


@pytest.mark.parametrize(("data", "reason"), [
    (b"PTTS0\n" + bytes(16), "not a PTTS1"),
    (arrays.MAGIC + b"\x01", "not a PTTS1"),
    (arrays.MAGIC + struct.pack("<Q", 10**9) + b"{}", "header"),
    (arrays.MAGIC + struct.pack("<Q", 3) + b"{x}", "bad header"),
    (_document({"meta": {}}, b""), "header is not"),
    (_document({"meta": {}, "tensors": [_entry(dtype="object")]}, bytes(8)), "dtype"),
    (_document({"meta": {}, "tensors": [_entry(shape=[-2])]}, bytes(8)), "shape"),
    (_document({"meta": {}, "tensors": [_entry(shape=[1] * 9)]}, bytes(8)), "shape"),
    (_document({"meta": {}, "tensors": [_entry(name="")]}, bytes(8)), "name"),
    (_document({"meta": {}, "tensors": [_entry(nbytes=4)]}, bytes(8)), "canonical layout"),
    (_document({"meta": {}, "tensors": [_entry(offset=4)]}, bytes(12)), "canonical layout"),
    (_document({"meta": {}, "tensors": [_entry()]}, bytes(4)), "truncated"),
    (_document({"meta": {}, "tensors": [_entry()]}, bytes(9)), "trailing"),
    (_document({"meta": {}, "tensors": [_entry("b"), _entry("a", offset=8)]}, bytes(16)), "sorted"),
    (_document({"meta": {}, "tensors": [_entry("a"), _entry("a", offset=8)]}, bytes(16)), "sorted"),
    (_document({"meta": {}, "tensors": [{**_entry(), "extra": 1}]}, bytes(8)), "entry"),
    (_document({"meta": {}, "tensors": [_entry(nbytes=8.0)]}, bytes(8)), "integers"),
])
def test_malformed_documents_are_refused_with_a_reason(data: bytes, reason: str) -> None:
    with pytest.raises(ArrayFormatError, match=reason):
        loads(data)


def test_non_canonical_header_is_refused() -> None:
    good = dumps({"a": np.zeros(2, dtype=np.float32)})
    (length,) = struct.unpack_from("<Q", good, len(arrays.MAGIC))
    start = len(arrays.MAGIC) + 8
    spaced = json.dumps(json.loads(good[start:start + length])).encode()   # ", " and ": " separators
    with pytest.raises(ArrayFormatError, match="canonical form"):
        loads(arrays.MAGIC + struct.pack("<Q", len(spaced)) + spaced + good[start + length:])


def test_nan_in_the_header_is_refused() -> None:
    with pytest.raises(ArrayFormatError, match="bad header"):
        loads(_document({"meta": {"x": float("nan")}, "tensors": []}, b""))


def test_size_bound_is_checked_before_parsing() -> None:
    data = dumps({"a": np.zeros(100, dtype=np.float64)})
    assert loads(data, max_bytes=len(data))[0]["a"].shape == (100,)
    with pytest.raises(ArrayFormatError, match="allowed"):
        loads(data, max_bytes=len(data) - 1)


def test_too_many_arrays_are_refused() -> None:
    entries = [_entry(f"a{i:05d}", shape=[0], nbytes=0) for i in range(arrays.MAX_ARRAYS + 1)]
    with pytest.raises(ArrayFormatError, match="more than"):
        loads(_document({"meta": {}, "tensors": entries}, b""))


def _base() -> dict[str, np.ndarray]:
    return {"w": np.zeros((2, 3), dtype=np.float32), "b": np.zeros(3, dtype=np.float32)}


def test_a_well_formed_update_passes() -> None:
    update = {k: v + 1 for k, v in _base().items()}
    assert check_update(update, _base(), max_bytes=arrays.nbytes(update)) is None
    assert arrays.nbytes(update) == 36


@pytest.mark.parametrize(("update", "reason"), [
    ({"w": np.zeros((2, 3), np.float32)}, "names differ"),
    ({**_base(), "x": np.zeros(1, np.float32)}, "names differ"),
    ({**_base(), "w": np.zeros((3, 2), np.float32)}, "shape"),
    ({**_base(), "w": np.zeros((2, 3), np.float64)}, "dtype"),
    ({**_base(), "b": np.array([0, np.nan, 0], np.float32)}, "NaN or infinite"),
    ({**_base(), "b": np.array([0, -np.inf, 0], np.float32)}, "NaN or infinite"),
    ({**_base(), "b": [0.0, 0.0, 0.0]}, "not a numpy array"),
])
def test_malformed_updates_are_refused_with_a_reason(update: dict, reason: str) -> None:
    assert reason in (check_update(update, _base(), max_bytes=1 << 20) or "")


def test_oversize_update_is_refused() -> None:
    assert "larger than the 35 bytes" in (check_update(_base(), _base(), max_bytes=35) or "")
