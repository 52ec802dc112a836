"""Model and update arrays as numpy, to and from the project's PTTS1 bytes (`workers.tensorio`).

Flower carries arrays as numpy; the chain names them by blake2-256 of their PTTS1 bytes. The bytes written
here are those `tensorio.dumps` writes for the same tensors (a unit test pins it), so an update hashes the
same whether a client, the aggregator or a validator computes it, and none of them needs torch to do so.

Decoding is for bytes from the network: the header length, the number of arrays, every dtype (an allow-list,
no object arrays), shape and offset are bounded and must be the canonical layout `dumps` writes, so a
document decodes only when re-encoding gives the same bytes (its hash is its name). Nothing is unpickled.

`check_update` is the aggregator's refusal of a malformed update (and the validator's re-check): the same
names, dtypes and shapes as the global model it was trained from, finite values, at most the spec's bytes.
"""
from __future__ import annotations

import json
import math
import struct
from collections.abc import Mapping
from typing import Any

import numpy as np

from workers.hashing import blake2_256

MAGIC = b"PTTS1\n"
UPDATE_META: dict[str, Any] = {"kind": "fl-update"}
MODEL_META: dict[str, Any] = {"kind": "fl-model"}
# dtypes both numpy and torch name alike (bfloat16 has no numpy dtype; complex and object arrays are refused)
DTYPES = frozenset({"bool", "uint8", "int8", "int16", "int32", "int64", "float16", "float32", "float64"})
MAX_HEADER_BYTES = 1 << 20
MAX_ARRAYS = 4096
MAX_NDIM = 8
MAX_NAME_BYTES = 256

Arrays = dict[str, np.ndarray]


class ArrayFormatError(ValueError):
    """Bytes that are not a canonical PTTS1 document of plain numeric arrays, or exceed a bound."""


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def _little_endian(array: np.ndarray) -> np.ndarray:
    a = array if array.flags.c_contiguous else array.copy(order="C")   # ascontiguousarray makes 0-d 1-d
    if a.dtype.name not in DTYPES:
        raise ArrayFormatError(f"dtype {a.dtype} is not one of {', '.join(sorted(DTYPES))}")
    return a if a.dtype.byteorder in ("=", "|", "<") else a.astype(a.dtype.newbyteorder("<"))


def dumps(arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any] | None = None) -> bytes:
    """PTTS1 bytes of named arrays, equal to `tensorio.dumps` of the same tensors."""
    entries, chunks, offset = [], [], 0
    for name in sorted(arrays):
        a = _little_endian(np.asarray(arrays[name]))
        raw = a.tobytes() if a.size else b""
        entries.append({"name": name, "dtype": a.dtype.name, "shape": list(a.shape), "offset": offset,
                        "nbytes": len(raw)})
        chunks.append(raw)
        offset += len(raw)
    header = _canonical({"meta": dict(meta or {}), "tensors": entries})
    return MAGIC + struct.pack("<Q", len(header)) + header + b"".join(chunks)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def loads(data: bytes, *, max_bytes: int | None = None) -> tuple[Arrays, dict[str, Any]]:
    """The arrays and meta of canonical PTTS1 bytes; ArrayFormatError for anything else or too large."""
    data = bytes(data)
    if max_bytes is not None and len(data) > max_bytes:
        raise ArrayFormatError(f"{len(data)} bytes, more than the {max_bytes} allowed")
    if not data.startswith(MAGIC) or len(data) < len(MAGIC) + 8:
        raise ArrayFormatError("not a PTTS1 document")
    (length,) = struct.unpack_from("<Q", data, len(MAGIC))
    start = len(MAGIC) + 8
    if length > MAX_HEADER_BYTES or start + length > len(data):
        raise ArrayFormatError(f"header of {length} bytes: truncated or over {MAX_HEADER_BYTES}")
    try:
        header = json.loads(data[start:start + length].decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ArrayFormatError(f"bad header: {exc}") from None
    if not isinstance(header, dict) or set(header) != {"meta", "tensors"} or not isinstance(header["meta"], dict) \
            or not isinstance(header["tensors"], list):
        raise ArrayFormatError("the header is not {meta: {...}, tensors: [...]}")
    entries = header["tensors"]
    if len(entries) > MAX_ARRAYS:
        raise ArrayFormatError(f"{len(entries)} arrays, more than {MAX_ARRAYS}")
    body = memoryview(data)[start + length:]
    arrays: Arrays = {}
    offset, previous = 0, None
    for entry in entries:
        name, dtype, shape = _entry(entry)
        if previous is not None and not previous < name:
            raise ArrayFormatError("arrays are not sorted by name, or a name repeats")
        nbytes = math.prod(shape) * np.dtype(dtype).itemsize
        if entry["offset"] != offset or entry["nbytes"] != nbytes or offset + nbytes > len(body):
            raise ArrayFormatError(f"array {name!r}: offset or size not the canonical layout, or truncated")
        arrays[name] = np.frombuffer(body[offset:offset + nbytes], dtype=np.dtype(dtype).newbyteorder("<")) \
            .astype(dtype, copy=True).reshape(shape)
        offset += nbytes
        previous = name
    if offset != len(body):
        raise ArrayFormatError(f"{len(body) - offset} trailing bytes after the arrays")
    if _canonical(header) != data[start:start + length]:
        raise ArrayFormatError("the header is not in canonical form")
    return arrays, header["meta"]


def _entry(entry: Any) -> tuple[str, str, list[int]]:
    if not isinstance(entry, dict) or set(entry) != {"name", "dtype", "shape", "offset", "nbytes"}:
        raise ArrayFormatError("an array entry is not {name, dtype, shape, offset, nbytes}")
    name, dtype, shape = entry["name"], entry["dtype"], entry["shape"]
    if not isinstance(name, str) or not 0 < len(name.encode()) <= MAX_NAME_BYTES:
        raise ArrayFormatError(f"an array name is empty, not a string or over {MAX_NAME_BYTES} bytes")
    if dtype not in DTYPES:
        raise ArrayFormatError(f"array {name!r}: dtype {dtype!r} is not allowed")
    if not isinstance(shape, list) or len(shape) > MAX_NDIM or not all(_is_int(d) and d >= 0 for d in shape):
        raise ArrayFormatError(f"array {name!r}: shape {shape!r} is not at most {MAX_NDIM} sizes >= 0")
    if not (_is_int(entry["offset"]) and _is_int(entry["nbytes"])):
        raise ArrayFormatError(f"array {name!r}: offset and nbytes must be integers")
    return name, dtype, shape


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def update_bytes(arrays: Mapping[str, np.ndarray]) -> bytes:
    """A client update's PTTS1 bytes: what its update_hash names and the store keeps."""
    return dumps(arrays, UPDATE_META)


def update_hash(arrays: Mapping[str, np.ndarray]) -> bytes:
    """The 32-byte update_hash a client signs: blake2-256 of PTTS1(arrays, meta {"kind": "fl-update"})."""
    return blake2_256(update_bytes(arrays))


def model_bytes(arrays: Mapping[str, np.ndarray]) -> bytes:
    """A global (or initial) model's PTTS1 bytes: what global_model_hash / initial_model_hash name."""
    return dumps(arrays, MODEL_META)


def model_hash(arrays: Mapping[str, np.ndarray]) -> bytes:
    """The 32-byte hash of a global model: blake2-256 of PTTS1(arrays, meta {"kind": "fl-model"})."""
    return blake2_256(model_bytes(arrays))


def nbytes(arrays: Mapping[str, np.ndarray]) -> int:
    """The arrays' data size (what a size bound counts; Flower's count_bytes adds a few bytes per array)."""
    return sum(int(np.asarray(a).nbytes) for a in arrays.values())


def check_update(update: Mapping[str, Any], base: Mapping[str, np.ndarray], max_bytes: int) -> str | None:
    """Why an update cannot be aggregated with this base model, or None when it can: the same names, and per
    name the same dtype and shape, only finite values, at most `max_bytes` of data."""
    if set(update) != set(base):
        missing, extra = sorted(set(base) - set(update)), sorted(set(update) - set(base))
        return f"array names differ from the global model's (missing {missing[:4]}, unexpected {extra[:4]})"
    size = 0
    for name in sorted(base):
        value = update[name]
        if not isinstance(value, np.ndarray):
            return f"array {name!r} is not a numpy array"
        if value.dtype != base[name].dtype:
            return f"array {name!r} has dtype {value.dtype}, the global model's is {base[name].dtype}"
        if value.shape != base[name].shape:
            return f"array {name!r} has shape {list(value.shape)}, the global model's is {list(base[name].shape)}"
        size += int(value.nbytes)
        if size > max_bytes:
            return f"the update is larger than the {max_bytes} bytes allowed"
        if value.dtype.kind == "f" and not bool(np.isfinite(value).all()):
            return f"array {name!r} has NaN or infinite values"
    return None
