"""The spec document's optional "privacy" section: parsing, validation naming the field, canonical form."""
from __future__ import annotations

import json
from dataclasses import replace

import pytest

from workers.hashing import blake2_256_hex
from workers.privacy import DpTerms, chain_spec_mismatches
from workers.spec import (
    DatasetRef,
    Evaluation,
    NoiseKeyRef,
    Privacy,
    SpecValidationError,
    TaskSpec,
    canonical_json,
    decode_spec,
)

KEY_URI = "file:///store/blake2b256/ab/" + "ab" * 32
PRIVACY = Privacy(accountant="prv", delta=1e-5, epsilon=3.0, max_grad_norm=1.0, noise_multiplier=1.792,
                  noise_key=NoiseKeyRef(hash="cd" * 32, uri=KEY_URI))
PLAIN = TaskSpec(recipe="digits_mlp", dataset=DatasetRef("ef" * 32, "file:///store/blake2b256/ef/" + "ef" * 32),
                 evaluation=Evaluation("accuracy", 0.9))


def test_plain_spec_has_no_privacy_and_the_same_bytes() -> None:
    doc = PLAIN.to_dict()
    assert "privacy" not in doc and PLAIN.privacy is None
    # the canonical form of a spec without privacy is the version-1 layout, key for key
    assert sorted(doc) == ["checkpoint_every", "dataset", "evaluation", "hyperparameters", "limits", "recipe",
                           "seed", "validation", "version"]
    assert PLAIN.spec_hash_hex() == blake2_256_hex(canonical_json(doc))
    assert decode_spec(PLAIN.canonical_bytes(), require_canonical=True) == PLAIN


def test_private_spec_round_trips() -> None:
    spec = replace(PLAIN, privacy=PRIVACY)
    raw = spec.canonical_bytes()
    assert json.loads(raw)["privacy"] == {"accountant": "prv", "delta": 1e-5, "epsilon": 3.0, "max_grad_norm": 1.0,
                                          "noise_key": {"hash": "cd" * 32, "uri": KEY_URI},
                                          "noise_multiplier": 1.792}
    assert decode_spec(raw, require_canonical=True) == spec
    assert spec.spec_hash() != PLAIN.spec_hash()
    terms = DpTerms.from_floats(PRIVACY.accountant, PRIVACY.epsilon, PRIVACY.delta, PRIVACY.max_grad_norm,
                                PRIVACY.noise_multiplier)
    assert (terms.epsilon_cap, terms.delta, terms.max_grad_norm, terms.noise_multiplier) == (
        3_000_000, 10_000_000_000, 1_000_000, 1_792_000)


def _doc(**privacy) -> dict:
    doc = replace(PLAIN, privacy=PRIVACY).to_dict()
    doc["privacy"].update(privacy)
    return doc


@pytest.mark.parametrize("changes, field", [
    ({"accountant": "gdp"}, "privacy.accountant"),
    ({"accountant": "PRV"}, "privacy.accountant"),
    ({"delta": 0.0}, "privacy.delta"),
    ({"delta": 0.01}, "privacy.delta"),
    ({"delta": 1.5e-16}, "privacy.delta"),                   # below the chain's 1e-15 grid
    ({"delta": "1e-5"}, "privacy.delta"),
    ({"epsilon": 0}, "privacy.epsilon"),
    ({"epsilon": 101.0}, "privacy.epsilon"),
    ({"epsilon": 3.0000001}, "privacy.epsilon"),
    ({"max_grad_norm": -1.0}, "privacy.max_grad_norm"),
    ({"max_grad_norm": True}, "privacy.max_grad_norm"),
    ({"noise_multiplier": 0.0}, "privacy.noise_multiplier"),
    ({"noise_multiplier": 1.7923456}, "privacy.noise_multiplier"),
    ({"noise_key": {"hash": "CD" * 32, "uri": KEY_URI}}, "privacy.noise_key.hash"),
    ({"noise_key": {"hash": "cd" * 31, "uri": KEY_URI}}, "privacy.noise_key.hash"),
    ({"noise_key": {"hash": "cd" * 32, "uri": "https://example.org/key"}}, "privacy.noise_key.uri"),
    ({"noise_key": {"hash": "cd" * 32}}, "privacy.noise_key.uri"),
    ({"noise_key": {"hash": "cd" * 32, "uri": KEY_URI, "secret": "00"}}, "privacy.noise_key.secret"),
    ({"noise_key": "cd" * 32}, "privacy.noise_key"),
    ({"extra": 1}, "privacy.extra"),
])
def test_bad_privacy_names_the_field(changes: dict, field: str) -> None:
    with pytest.raises(SpecValidationError) as err:
        TaskSpec.from_dict(_doc(**changes))
    assert err.value.field == field, str(err.value)


def test_missing_and_null_privacy_fields() -> None:
    doc = _doc()
    del doc["privacy"]["delta"]
    with pytest.raises(SpecValidationError) as err:
        TaskSpec.from_dict(doc)
    assert err.value.field == "privacy.delta"
    with pytest.raises(SpecValidationError) as err:
        TaskSpec.from_dict({**_doc(), "privacy": None})
    assert err.value.field == "privacy"


def test_chain_spec_mismatches() -> None:
    chain = {"accountant": "Prv", "epsilon_cap": 3_000_000, "delta": 10_000_000_000, "max_grad_norm": 1_000_000,
             "noise_multiplier": 1_792_000, "noise_key_hash": "0x" + "cd" * 32}
    assert chain_spec_mismatches(PRIVACY, chain) == []
    assert DpTerms.from_privacy(PRIVACY) == DpTerms.from_mapping(chain)
    wrong = {**chain, "accountant": "Rdp", "noise_multiplier": 1_000_000, "noise_key_hash": "0x" + "00" * 32}
    assert [r.split(":")[0] for r in chain_spec_mismatches(PRIVACY, wrong)] == [
        "accountant", "noise_multiplier", "noise_key_hash"]


@pytest.mark.parametrize("value", [1e-5, 1.792, 3.0, 0.1, 2.2e-7, 1.0000001, 1.7923456])
def test_the_grid_check_agrees_with_the_chain_round_trip(value: float) -> None:
    from runtime_bindings.privacy import norm_from_chain, norm_to_chain

    on_grid = norm_from_chain(norm_to_chain(value)) == value
    try:
        TaskSpec.from_dict(_doc(noise_multiplier=value))
        accepted = True
    except SpecValidationError:
        accepted = False
    assert accepted == on_grid
