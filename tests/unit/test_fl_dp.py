"""A federated client's local DP-SGD: the spec document's dp terms, the cumulative claim round by round and the
cap, the validators' check of a claim, and Opacus's training itself (deterministic for its seeds, noisy)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from runtime_bindings.privacy import rate_from_chain
from workers.fl.dp_claims import CapReached, claim_problems, client_claim
from workers.fl.dp_task import DpTaskError, FlDp
from workers.fl.model import initial_model, read_examples, train_private
from workers.fl.partition import federated_split
from workers.fl.spec import SpecValidationError, build_spec, decode_spec
from workers.privacy.accounting import sample_rate_of

DP = FlDp(accountant="prv", epsilon=8.0, delta=1e-5, max_grad_norm=1.0, noise_multiplier=1.1)
N, BATCH, EPOCHS = 200, 32, 2


def test_the_dp_object_travels_in_the_spec_document_and_bad_terms_are_refused() -> None:
    spec = build_spec(recipe="digits_mlp", rule="fedavg", rounds=2, min_clients_per_round=3, dp=DP)
    assert decode_spec(spec.canonical_bytes(), require_canonical=True).dp == DP
    assert "dp" not in build_spec(recipe="digits_mlp", rule="fedavg", rounds=2, min_clients_per_round=3).to_dict()
    for bad in ({"accountant": "gdp"}, {"epsilon": 0}, {"delta": 1e-2}, {"noise_multiplier": 1.0000001}):
        with pytest.raises(DpTaskError):
            FlDp(**{**DP.document(), **bad})
    doc = spec.to_dict()
    doc["dp"]["epsilon"] = -1
    with pytest.raises(SpecValidationError, match="dp"):
        decode_spec(json.dumps(doc))


def test_the_claim_is_cumulative_and_stops_at_the_cap() -> None:
    one = client_claim(DP, num_examples=N, batch_size=BATCH, local_epochs=EPOCHS, rounds=1)
    two = client_claim(DP, num_examples=N, batch_size=BATCH, local_epochs=EPOCHS, rounds=2)
    assert two.steps == 2 * one.steps and two.epsilon > one.epsilon > 0
    assert one.sample_rate == sample_rate_of(N, BATCH)
    with pytest.raises(CapReached, match="above the task's cap"):
        client_claim(DP, num_examples=N, batch_size=BATCH, local_epochs=EPOCHS, rounds=200)


def test_validators_find_every_under_report_and_accept_an_honest_claim() -> None:
    honest = client_claim(DP, num_examples=N, batch_size=BATCH, local_epochs=EPOCHS, rounds=2)
    check = {"num_examples": N, "batch_size": BATCH, "local_epochs": EPOCHS, "rounds_at_least": 2}
    assert claim_problems(honest, DP, **check) == []
    from dataclasses import replace
    assert any("epsilon" in p for p in claim_problems(replace(honest, epsilon=honest.epsilon // 2), DP, **check))
    assert any("steps" in p for p in claim_problems(replace(honest, steps=honest.steps // 2), DP, **check))
    assert any("noise_multiplier" in p for p in claim_problems(replace(honest, noise_multiplier=1), DP, **check))
    assert any("sample_rate" in p for p in claim_problems(honest, DP, **{**check, "num_examples": N * 2}))
    # a claim of more rounds than the chain shows spends more of its own budget: not a problem
    assert claim_problems(client_claim(DP, num_examples=N, batch_size=BATCH, local_epochs=EPOCHS, rounds=3), DP,
                          **check) == []


def test_dp_sgd_is_deterministic_for_its_seeds_and_its_noise_is_real() -> None:
    spec = build_spec(recipe="digits_mlp", rule="fedavg", rounds=1, min_clients_per_round=3, dp=DP,
                      hyperparameters={"batch_size": BATCH, "local_epochs": 1})
    shard = federated_split("digits", 4, alpha=10.0, seed=1).shards[0]
    examples = read_examples(shard.data)
    base = initial_model(spec)
    rate = rate_from_chain(sample_rate_of(len(examples.y), BATCH))
    run = {"sample_seed": 1, "sample_rate": rate, "steps": 5}
    a = train_private(spec, base, examples, noise_seed=7, **run)
    b = train_private(spec, base, examples, noise_seed=7, **run)
    c = train_private(spec, base, examples, noise_seed=8, **run)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert any(not np.array_equal(a[k], c[k]) for k in a)          # another noise seed, another model
    assert any(not np.array_equal(a[k], base[k]) for k in a)
