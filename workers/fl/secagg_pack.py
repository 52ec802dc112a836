"""The masked vector on the wire as uint32, not Flower's int64: half the upload, bit for bit the same vector.

Flower's `secaggplus_mod` sends the masked vector as int64 arrays (its masks come from `pseudo_rand_gen` as int64)
although every value is below the modulus, at most 2**32 (SecAggParams bounds it): that alone is 1.99x a float32
model's upload (docs/benchmarks.md). `pack_mod`, the client's outermost mod, re-encodes those arrays as uint32
when every value fits and says so in a config record; the aggregator's guard (workers/fl/secagg_app.py) turns
them back into Flower's exact int64 bytes (`unpack`) before it checks, verifies the client's signature (made
over the int64 form, inside this mod) or hands the reply to Flower's workflow. Nothing of Flower changes; a reply
that claims packing but does not decode as uint32 arrays is left as it is, and the guard's checks refuse it.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from flwr.app import ConfigRecord, Context, Message
from flwr.common import bytes_to_ndarray, ndarray_to_bytes
from flwr.common.secure_aggregation.secaggplus_constants import Key

from workers.fl.secagg_checks import configs_of

PACKING_RECORD = "paratrain.packing"
PACKED = "uint32"
_LIMIT = 2**32

Handler = Callable[[Message, Context], Message]


def pack_mod(msg: Message, ctx: Context, call_next: Handler) -> Message:
    reply = call_next(msg, ctx)
    answer = None if reply.has_error() else configs_of(reply.content)
    vectors = answer.get(Key.MASKED_PARAMETERS) if answer is not None else None
    if not isinstance(vectors, list) or not vectors:
        return reply
    arrays = [bytes_to_ndarray(raw) for raw in vectors]
    if any(a.dtype != np.int64 or (a.size and (int(a.min()) < 0 or int(a.max()) >= _LIMIT)) for a in arrays):
        return reply
    answer[Key.MASKED_PARAMETERS] = [ndarray_to_bytes(a.astype(np.uint32)) for a in arrays]  # type: ignore[index]
    reply.content.config_records[PACKING_RECORD] = ConfigRecord({"masked": PACKED})
    return reply


def unpack(content: Any) -> None:
    """Flower's int64 masked vector back in place of a packed one (content: a reply's RecordDict)."""
    packing = content.config_records.get(PACKING_RECORD)
    answer = configs_of(content)
    if packing is None or packing.get("masked") != PACKED or answer is None:
        return
    vectors = answer.get(Key.MASKED_PARAMETERS)
    if not isinstance(vectors, list) or not all(isinstance(v, bytes) for v in vectors):
        return
    try:
        arrays = [bytes_to_ndarray(raw) for raw in vectors]
    except Exception:  # noqa: BLE001 - whatever np.load refuses stays as sent; the guard's checks name it
        return
    if all(a.dtype == np.uint32 for a in arrays):
        answer[Key.MASKED_PARAMETERS] = [ndarray_to_bytes(a.astype(np.int64)) for a in arrays]
        del content.config_records[PACKING_RECORD]


__all__ = ["PACKED", "PACKING_RECORD", "pack_mod", "unpack"]
