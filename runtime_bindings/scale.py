"""SCALE compact integers: the one encoder and decoder every hand-built SCALE byte string here uses.

Most SCALE goes through scalecodec and the metadata; these two exist for the hot or dependency-light
paths (splitting System.Events without decoding, signing gRPC requests, holdout commitments).
"""
from __future__ import annotations


def encode_compact(n: int) -> bytes:
    """SCALE `Compact<u*>` of a non-negative integer."""
    if n < 1 << 6:
        return bytes([n << 2])
    if n < 1 << 14:
        return ((n << 2) | 1).to_bytes(2, "little")
    if n < 1 << 30:
        return ((n << 2) | 2).to_bytes(4, "little")
    raw = n.to_bytes((n.bit_length() + 7) // 8, "little")
    return bytes([((len(raw) - 4) << 2) | 3]) + raw


def decode_compact_at(data: bytes, off: int) -> tuple[int, int]:
    """(value, next offset) of the SCALE compact integer at `off`."""
    b = data[off]
    mode = b & 3
    if mode == 0:
        return b >> 2, off + 1
    if mode == 1:
        return int.from_bytes(data[off:off + 2], "little") >> 2, off + 2
    if mode == 2:
        return int.from_bytes(data[off:off + 4], "little") >> 2, off + 4
    n = (b >> 2) + 4
    return int.from_bytes(data[off + 1:off + 1 + n], "little"), off + 1 + n
