"""How the index stores chain values in SQLite columns: every value a pallet can hold fits, decodes back to
the same Python int, and compares in SQL (WHERE, ORDER BY) as the chain's numbers do.

SQLite's INTEGER is a signed 64-bit integer, and binding a larger Python int raises OverflowError: a single
legal `u64` above 2^63 - 1 (a task's `min_memory_mb`, a worker's `memory_mb`, a heartbeat's step) stopped
the indexer for good. So each column is stored according to the chain type it holds:

- `u32` (block numbers, cpus, gpus, quorums) and `i64` (metrics in micro-units): INTEGER as they are.
- `u64` (task ids, memory, steps): INTEGER offset by -2^63, i.e. 0 -> -2^63 and 2^64 - 1 -> 2^63 - 1.
  The order is kept, so `task_id > ?` and `ORDER BY task_id` work on the stored values, and `task_id` stays
  an INTEGER PRIMARY KEY (the table's rowid: no second index, as fast as before).
- `u128` (balances: bounties, stakes): a 16-byte big-endian BLOB. SQLite compares BLOBs with memcmp, which
  on fixed-width big-endian bytes is numeric order.

Byte strings (`BoundedVec<u8>`) are TEXT in the form runtime_bindings gives them (UTF-8 text, or "0x" and
hex when the bytes are not UTF-8): TEXT holds any length and NUL bytes. Accounts are SS58 TEXT.

`store_*` raise `Unrepresentable` for a value outside its chain type, so a malformed record is refused
before anything is written (the index then skips that record and keeps indexing).
"""
from __future__ import annotations

U32_MAX = (1 << 32) - 1
U64_MAX = (1 << 64) - 1
U128_MAX = (1 << 128) - 1
I64_MIN, I64_MAX = -(1 << 63), (1 << 63) - 1
_U64_OFFSET = 1 << 63
_U128_BYTES = 16


class Unrepresentable(ValueError):
    """A value outside the chain type of its column (the chain cannot hold it either)."""


def _int_in(value: object, low: int, high: int, kind: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise Unrepresentable(f"{value!r} is not a {kind}")
    return value


def is_u64(value: object) -> bool:
    """Whether `value` can be a u64 on chain (e.g. a task id): anything else names nothing in the index."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= U64_MAX


def store_u32(value: object) -> int:
    return _int_in(value, 0, U32_MAX, "u32")


def store_opt_u32(value: object) -> int | None:
    return None if value is None else store_u32(value)


def store_i64(value: object) -> int:
    return _int_in(value, I64_MIN, I64_MAX, "i64")


def store_u64(value: object) -> int:
    return _int_in(value, 0, U64_MAX, "u64") - _U64_OFFSET


def load_u64(stored: int) -> int:
    return stored + _U64_OFFSET


def store_u128(value: object) -> bytes:
    return _int_in(value, 0, U128_MAX, "u128").to_bytes(_U128_BYTES, "big")


def load_u128(stored: bytes) -> int:
    return int.from_bytes(stored, "big")


__all__ = [
    "I64_MAX",
    "I64_MIN",
    "U32_MAX",
    "U64_MAX",
    "U128_MAX",
    "Unrepresentable",
    "is_u64",
    "load_u64",
    "load_u128",
    "store_i64",
    "store_opt_u32",
    "store_u32",
    "store_u64",
    "store_u128",
]
