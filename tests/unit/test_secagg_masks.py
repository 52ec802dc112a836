"""The audit's mask recomputation (workers/fl/secagg_masks.py) against Flower's own client code: three nodes run
secaggplus_mod's setup, share-keys and masked-vector steps for real, and the validator's check passes the honest
masked vector and names every way a record can fail to show the committed model masked."""
from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from flwr.client.mod.secure_aggregation.secaggplus_mod import (
    SecAggPlusState,
    _collect_masked_vectors,
    _setup,
    _share_keys,
)
from flwr.common import ndarrays_to_parameters
from flwr.common.secure_aggregation.secaggplus_constants import Key, Stage
from substrateinterface import Keypair

from workers.fl.secagg_evidence import StageReply, signature_fields
from workers.fl.secagg_masks import (
    MaskingError,
    MaskingRecord,
    masking_document,
    masking_problem,
    parse_masking,
    secrets_of,
)
from workers.fl.secagg_params import SecAggParams

TASK, ROUND, NODES, ME = 4, 2, (5, 9, 17), 9
PARAMS = SecAggParams()
KEY = Keypair.create_from_uri("//MaskedNode")
EXAMPLES = 40
SHAPES = [(3,), (2, 2)]


def model() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.standard_normal(s).astype(np.float32) * 0.1 for s in SHAPES]


def masked_round(sent: list[np.ndarray]) -> tuple[SecAggPlusState, dict[str, Any], dict[str, Any]]:
    """Flower's client steps for three nodes; node ME masks `sent`. Its state, what it was asked, its answer."""
    configs = {Key.SAMPLE_NUMBER: 3, Key.SHARE_NUMBER: 3, Key.THRESHOLD: 2,
               Key.CLIPPING_RANGE: float(PARAMS.clipping_range), Key.TARGET_RANGE: PARAMS.quantization_range,
               Key.MOD_RANGE: PARAMS.modulus_range, Key.MAX_WEIGHT: float(PARAMS.max_weight)}
    states = {n: SecAggPlusState(nid=n) for n in NODES}
    keys = {str(n): list(_setup(states[n], dict(configs)).values()) for n in NODES}
    shares = {n: _share_keys(states[n], {k: list(v) for k, v in keys.items()}) for n in NODES}
    sources = [n for n in NODES if n != ME]
    ciphertexts = [shares[n][Key.CIPHERTEXT_LIST][shares[n][Key.DESTINATION_LIST].index(ME)] for n in sources]
    asked = {Key.STAGE: Stage.COLLECT_MASKED_VECTORS, Key.CIPHERTEXT_LIST: ciphertexts, Key.SOURCE_LIST: sources}
    answer = _collect_masked_vectors(states[ME], {k: v for k, v in asked.items() if k != Key.STAGE}, EXAMPLES,
                                     ndarrays_to_parameters(sent))
    return states[ME], asked, answer


def record_of(state: SecAggPlusState, asked: dict[str, Any], answer: dict[str, Any]) -> MaskingRecord:
    fields = signature_fields(KEY, TASK, ROUND, Stage.COLLECT_MASKED_VECTORS, asked, answer, EXAMPLES)
    reply = StageReply(TASK, ROUND, Stage.COLLECT_MASKED_VECTORS, ME, fields["account"], fields["scheme"],
                       fields["signature"], asked, answer, EXAMPLES)
    rd_seed, sk1, neighbours = secrets_of(SecAggPlusState(**state.to_dict()).to_dict(), asked[Key.SOURCE_LIST])
    return MaskingRecord(reply, rd_seed, sk1, neighbours)


def check(record: MaskingRecord, committed: list[np.ndarray], **overrides: Any) -> str | None:
    args = {"model": committed, "params": PARAMS, "shapes": SHAPES, "task_id": TASK, "round_": ROUND,
            "account": KEY.ss58_address, "num_examples": EXAMPLES, "recorded_digest": record.reply.digest()}
    return masking_problem(record, **{**args, **overrides})


@pytest.fixture(scope="module")
def honest() -> MaskingRecord:
    return record_of(*masked_round(model()))


def test_the_honest_masked_vector_is_the_committed_model_masked(honest: MaskingRecord) -> None:
    assert check(honest, model()) is None


def test_the_record_round_trips_through_its_document(honest: MaskingRecord) -> None:
    again = parse_masking(masking_document(honest), max_bytes=1 << 20)
    assert check(again, model()) is None and again.rd_seed == honest.rd_seed


def test_another_model_masked_is_caught() -> None:
    swapped = record_of(*masked_round([-a for a in model()]))
    assert "is not its committed model" in check(swapped, model())


def test_a_model_off_by_more_than_a_rounding_step_is_caught(honest: MaskingRecord) -> None:
    nudged = [a.copy() for a in model()]
    nudged[1][0, 0] += 1e-3     # weighted by 40/1000: ten quantization steps of 2 * 8 / 2**22 ~ 3.8e-6
    assert "1 of 7 values differ" in check(honest, nudged)


def test_a_reply_other_than_the_one_summed_is_caught(honest: MaskingRecord) -> None:
    assert "not the one the aggregator summed" in check(honest, model(), recorded_digest=b"\0" * 32)


def test_a_reply_signed_by_someone_else_is_caught(honest: MaskingRecord) -> None:
    other = Keypair.create_from_uri("//MaskedOther").ss58_address
    assert "not signed by it" in check(honest, model(), account=other)


def test_another_example_count_is_caught(honest: MaskingRecord) -> None:
    assert "weighted for 40 examples" in check(honest, model(), num_examples=EXAMPLES + 1)


def test_a_wrong_seed_is_caught(honest: MaskingRecord) -> None:
    assert check(replace(honest, rd_seed=b"\1" * 32), model()) is not None


def test_a_missing_neighbour_key_is_caught(honest: MaskingRecord) -> None:
    keys = dict(honest.neighbour_keys)
    keys.pop(NODES[0])
    assert "lacks a neighbour's key" in check(replace(honest, neighbour_keys=keys), model())


@pytest.mark.parametrize("raw", [b"{}", b"x" * 70, b"[]"])
def test_a_malformed_record_is_refused(raw: bytes) -> None:
    with pytest.raises(MaskingError):
        parse_masking(raw, max_bytes=64)
