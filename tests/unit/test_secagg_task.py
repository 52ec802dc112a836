"""A SecAgg+ task's settings in the spec document and on chain: one mapping, refusals by name, and a spec without
SecAgg keeps the document (and so the spec hash) it had."""
from __future__ import annotations

import pytest

from workers.fl.secagg_params import SecAggParams, SecAggParamsError
from workers.fl.secagg_task import SecAggTask, secagg_task
from workers.fl.spec import SpecValidationError, build_spec, decode_spec


def spec(**kwargs):
    return build_spec(recipe="digits_mlp", rule=kwargs.pop("rule", "fedavg"), rounds=2,
                      min_clients_per_round=kwargs.pop("min_clients", 3), **kwargs)


def test_chain_values_are_the_documents_settings_as_integers() -> None:
    task = secagg_task(update_norm_bound=2.5, audit_rate=150_000_000, reconstruction_threshold=0.75,
                       clipping_range=4.0, max_weight=300)
    assert task.chain_values() == {"num_shares": 10**9, "reconstruction_threshold": 750_000_000,
                                   "clipping_range": 4 * 10**9, "quantization_range": 2**22,
                                   "modulus_range": 2**32, "max_weight": 300, "update_norm_bound": 2_500_000_000,
                                   "audit_rate": 150_000_000}


def test_a_spec_document_carries_the_settings_through_its_canonical_bytes() -> None:
    with_secagg = spec(secagg=secagg_task(update_norm_bound=2.5))
    again = decode_spec(with_secagg.canonical_bytes(), require_canonical=True)
    assert again.secagg == with_secagg.secagg and again.spec_hash() == with_secagg.spec_hash()
    plain = spec()
    assert "secagg" not in plain.to_dict() and plain.spec_hash() != with_secagg.spec_hash()


@pytest.mark.parametrize(("kwargs", "words"), [
    ({"rule": "fedmedian"}, "must be fedavg"),
    ({"min_clients": 2}, "at least 3 clients"),
])
def test_a_spec_whose_rule_or_round_size_cannot_run_under_secagg_is_refused(kwargs, words) -> None:
    with pytest.raises(SpecValidationError, match=words):
        spec(secagg=secagg_task(update_norm_bound=1.0), **kwargs)


@pytest.mark.parametrize(("make", "words"), [
    (lambda: SecAggTask(SecAggParams(num_shares=7), 1.0), "fraction of the sampled clients"),
    (lambda: SecAggTask(SecAggParams(max_weight=10.5), 1.0), "whole number"),
    (lambda: SecAggTask(SecAggParams(), float("nan")), "update_norm_bound"),
    (lambda: SecAggTask(SecAggParams(), 1.0, 0), "audit_rate"),
    (lambda: SecAggTask(SecAggParams(), 1.0, 10**9 + 1), "audit_rate"),
    (lambda: SecAggTask.from_document({"audit_rate": 1}), "exactly the keys"),
])
def test_settings_the_chain_cannot_state_exactly_are_refused(make, words) -> None:
    with pytest.raises(SecAggParamsError, match=words):
        make()


def test_a_document_with_a_bad_secagg_object_is_a_validation_error_on_the_field() -> None:
    doc = spec(secagg=secagg_task(update_norm_bound=2.5)).to_dict()
    doc["secagg"]["reconstruction_threshold"] = 0.5
    import json
    with pytest.raises(SpecValidationError, match="secagg"):
        decode_spec(json.dumps(doc))
