"""workers/fl/secagg_pack.py: the masked vector travels as uint32 and the guard gets Flower's int64 bytes back,
identical, so the client's signature over them still verifies; anything else is left as it was sent."""
from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
from flwr.app import ConfigRecord, Message, RecordDict
from flwr.common import bytes_to_ndarray, ndarray_to_bytes
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS, Key, Stage

from workers.fl.secagg_pack import PACKING_RECORD, pack_mod, unpack


@pytest.fixture(autouse=True)
def flower_run(monkeypatch: pytest.MonkeyPatch) -> None:
    from flwr.supercore.task_identity import TaskIdentity
    for name, value in (("_run_id", 5), ("_node_id", 0), ("_task_id", 1)):
        monkeypatch.setattr(TaskIdentity, name, value)


def vectors(high: int = 2**32) -> list[bytes]:
    rng = np.random.default_rng(3)
    return [ndarray_to_bytes(np.array([7], dtype=np.int64)),
            ndarray_to_bytes(rng.integers(0, high, size=(40, 25), dtype=np.int64))]


def reply_of(masked: list[bytes]) -> Message:
    request = Message(RecordDict({RECORD_KEY_CONFIGS: ConfigRecord({Key.STAGE: Stage.COLLECT_MASKED_VECTORS})}),
                      dst_node_id=4, message_type="train")
    return pack_mod(request, None, lambda m, c: Message(RecordDict(  # type: ignore[arg-type]
        {RECORD_KEY_CONFIGS: ConfigRecord({Key.MASKED_PARAMETERS: list(masked)})}), reply_to=m))


def masked_of(content: Any) -> list[bytes]:
    return list(content.config_records[RECORD_KEY_CONFIGS][Key.MASKED_PARAMETERS])


def test_the_vector_travels_as_uint32_and_comes_back_as_the_same_int64_bytes() -> None:
    original = vectors()
    reply = reply_of(original)
    sent = masked_of(reply.content)
    assert [bytes_to_ndarray(raw).dtype for raw in sent] == [np.uint32, np.uint32]
    assert sum(map(len, sent)) < 0.55 * sum(map(len, original))
    received = copy.deepcopy(reply.content)
    unpack(received)
    assert masked_of(received) == original and PACKING_RECORD not in received.config_records


def test_a_vector_that_does_not_fit_in_uint32_goes_as_it_is() -> None:
    original = vectors(high=2**40)
    reply = reply_of(original)
    assert masked_of(reply.content) == original and PACKING_RECORD not in reply.content.config_records


def test_a_claimed_packing_of_something_else_is_left_for_the_guards_checks() -> None:
    content = RecordDict({RECORD_KEY_CONFIGS: ConfigRecord({Key.MASKED_PARAMETERS: vectors()}),
                          PACKING_RECORD: ConfigRecord({"masked": "uint32"})})
    before = masked_of(content)
    unpack(content)
    assert masked_of(content) == before       # int64 arrays, not uint32: nothing to undo
    junk = RecordDict({RECORD_KEY_CONFIGS: ConfigRecord({Key.MASKED_PARAMETERS: [b"not an array"]}),
                       PACKING_RECORD: ConfigRecord({"masked": "uint32"})})
    unpack(junk)
    assert masked_of(junk) == [b"not an array"]
