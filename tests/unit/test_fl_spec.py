"""workers.fl.spec: the FL spec document (canonical, hashed, validated), rule strings, the round document."""
from __future__ import annotations

import json

import pytest

from workers.fl.spec import (
    PERBILL,
    FlSpec,
    Participant,
    Policy,
    Refusal,
    RuleSpec,
    SpecDecodeError,
    SpecError,
    SpecValidationError,
    build_spec,
    canonical_json,
    decode_round_document,
    decode_spec,
    parse_rule,
    round_document,
)
from workers.hashing import blake2_256

ALICE = "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"
BOB = "5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty"


def _spec(**overrides) -> FlSpec:
    return build_spec(**{"recipe": "digits_mlp", "rule": "fedtrimmedavg:0.35", "rounds": 5,
                         "min_clients_per_round": 3, **overrides})


@pytest.mark.parametrize(("text", "expected", "canonical"), [
    ("fedavg", RuleSpec("fedavg"), "fedavg"),
    ("fedmedian", RuleSpec("fedmedian"), "fedmedian"),
    ("fedtrimmedavg:0.35", RuleSpec("fedtrimmedavg", beta=350_000_000), "fedtrimmedavg:0.35"),
    ("fedtrimmedavg", RuleSpec("fedtrimmedavg", beta=200_000_000), "fedtrimmedavg:0.2"),
    ("FedTrimmedAvg:0.350", RuleSpec("fedtrimmedavg", beta=350_000_000), "fedtrimmedavg:0.35"),
    ("fedtrimmedavg:0", RuleSpec("fedtrimmedavg"), "fedtrimmedavg:0"),
    ("krum:4", RuleSpec("krum", num_malicious=4), "krum:4"),
    ("krum", RuleSpec("krum"), "krum:0"),
    ("multikrum:4:9", RuleSpec("multikrum", num_malicious=4, num_to_select=9), "multikrum:4:9"),
])
def test_rule_strings_parse_to_their_canonical_text(text: str, expected: RuleSpec, canonical: str) -> None:
    rule = parse_rule(text)
    assert rule == expected and rule.text == canonical
    assert parse_rule(rule.text) == rule


def test_trimmed_beta_is_flowers_float() -> None:
    assert parse_rule("fedtrimmedavg:0.35").beta_fraction == 0.35
    assert parse_rule("fedtrimmedavg:0.000000001").beta == 1


@pytest.mark.parametrize("text", ["fedsgd", "fedavg:1", "fedtrimmedavg:0.5", "fedtrimmedavg:0.9",
                                  "fedtrimmedavg:-0.1", "fedtrimmedavg:0.0000000001", "fedtrimmedavg:abc",
                                  "krum:-1", "krum:x", "krum:1:2", "multikrum:4", "multikrum:4:0", "multikrum:a:b",
                                  "", "krum:99999999999"])
def test_bad_rule_strings_are_refused(text: str) -> None:
    with pytest.raises(SpecValidationError) as info:
        parse_rule(text)
    assert info.value.field == "rule"


def test_krum_needs_more_than_2f_plus_2_clients_as_the_pallet() -> None:
    assert parse_rule("krum:4").validate_for(11).num_malicious == 4
    with pytest.raises(SpecValidationError, match="more than 10"):
        parse_rule("krum:4").validate_for(10)
    with pytest.raises(SpecValidationError, match="selects 9"):
        parse_rule("multikrum:1:9").validate_for(8)
    with pytest.raises(SpecValidationError, match="krum"):
        _spec(rule="krum:2", min_clients_per_round=6)


def test_document_layout_defaults_and_hash() -> None:
    spec = _spec()
    doc = json.loads(spec.canonical_bytes())
    assert doc["kind"] == "fl-task-spec"
    assert set(doc) == {"aggregate_tolerance", "eval", "fraction_per_round", "hyperparameters", "initial_model_seed",
                        "kind", "max_update_bytes", "min_clients_per_round", "policy", "recipe", "round_timeout_s",
                        "rounds", "rule"}
    assert doc["policy"] == {"reject_norm_ratio": 50.0, "reject_cos": -0.2, "loo_reject": 0.05,
                             "loo_tolerance": 0.02, "root_fraction": 0.2}
    assert doc["eval"] == {"metric": "accuracy", "target": 0.95, "higher_is_better": True}
    assert doc["hyperparameters"] == {"batch_size": 64, "local_epochs": 1, "lr": 0.003, "seed": 0}
    assert doc["rule"] == "fedtrimmedavg:0.35" and doc["fraction_per_round"] == PERBILL
    assert spec.canonical_bytes() == canonical_json(doc)
    assert spec.spec_hash() == blake2_256(spec.canonical_bytes()) and spec.spec_hash_hex() == spec.spec_hash().hex()
    assert decode_spec(spec.canonical_bytes(), require_canonical=True) == spec


def test_build_spec_overrides() -> None:
    spec = _spec(seed=7, hyperparameters={"local_epochs": 2, "hidden": 32}, fraction_per_round=500_000_000,
                 aggregate_tolerance=1000, target=0.8, policy=Policy(loo_tolerance=0.01))
    assert spec.initial_model_seed == 7 and spec.hyperparameters["seed"] == 7
    assert spec.hyperparameters["local_epochs"] == 2 and spec.recipe_hyperparameters["hidden"] == 32
    assert "local_epochs" not in spec.recipe_hyperparameters and "seed" not in spec.recipe_hyperparameters
    assert spec.fraction == 0.5 and spec.tolerance == 1e-6 and spec.eval.target == 0.8
    assert spec.policy.loo_tolerance == 0.01
    assert _spec(seed=1).spec_hash() != _spec(seed=2).spec_hash()


def test_unknown_recipe_is_a_spec_error() -> None:
    with pytest.raises(SpecError, match="recipe"):
        _spec(recipe="nope")


def _mutated(**changes) -> bytes:
    doc = json.loads(_spec().canonical_bytes())
    for path, value in changes.items():
        target = doc
        *parents, last = path.split("__")
        for parent in parents:
            target = target[parent]
        if value is KeyError:
            del target[last]
        else:
            target[last] = value
    return canonical_json(doc)


@pytest.mark.parametrize(("changes", "field"), [
    ({"kind": "fl-round"}, "kind"),
    ({"rounds": 0}, "rounds"),
    ({"rounds": True}, "rounds"),
    ({"min_clients_per_round": 0}, "min_clients_per_round"),
    ({"fraction_per_round": 0}, "fraction_per_round"),
    ({"fraction_per_round": PERBILL + 1}, "fraction_per_round"),
    ({"fraction_per_round": 0.5}, "fraction_per_round"),
    ({"rule": "fedtrimmedavg:0.350"}, "rule"),
    ({"rule": "fedsgd"}, "rule"),
    ({"round_timeout_s": 0}, "round_timeout_s"),
    ({"max_update_bytes": 0}, "max_update_bytes"),
    ({"aggregate_tolerance": -1}, "aggregate_tolerance"),
    ({"initial_model_seed": -1}, "initial_model_seed"),
    ({"recipe": ""}, "recipe"),
    ({"eval__metric": ""}, "eval.metric"),
    ({"eval__higher_is_better": 1}, "eval.higher_is_better"),
    ({"eval__extra": 1}, "eval.extra"),
    ({"policy__root_fraction": 1.0}, "policy.root_fraction"),
    ({"policy__reject_cos": -2.0}, "policy.reject_cos"),
    ({"policy__reject_norm_ratio": 0.0}, "policy.reject_norm_ratio"),
    ({"policy__loo_tolerance": KeyError}, "policy.loo_tolerance"),
    ({"hyperparameters__lr": 0}, "hyperparameters.lr"),
    ({"hyperparameters__local_epochs": 0}, "hyperparameters.local_epochs"),
    ({"hyperparameters__batch_size": 1.5}, "hyperparameters.batch_size"),
    ({"hyperparameters__seed": KeyError}, "hyperparameters.seed"),
    ({"hyperparameters__nested": [1]}, "hyperparameters.nested"),
    ({"dataset": "digits"}, "spec.dataset"),
    ({"rounds": KeyError}, "spec.rounds"),
])
def test_bad_documents_name_the_field(changes: dict, field: str) -> None:
    with pytest.raises(SpecValidationError) as info:
        decode_spec(_mutated(**changes))
    assert info.value.field == field


def test_decoding_refuses_non_json_and_non_canonical_bytes() -> None:
    with pytest.raises(SpecDecodeError):
        decode_spec(b"\xff")
    with pytest.raises(SpecDecodeError):
        decode_spec(b"[1]")
    with pytest.raises(SpecDecodeError):
        decode_spec(b'{"rounds": NaN}')
    spaced = json.dumps(json.loads(_spec().canonical_bytes()), indent=1).encode()
    assert decode_spec(spaced) == _spec()
    with pytest.raises(SpecDecodeError, match="canonical"):
        decode_spec(spaced, require_canonical=True)


def _participants() -> list[Participant]:
    return [Participant(ALICE, "ab" * 32, 100, "sr25519", "01" * 64),
            Participant(BOB, "cd" * 32, 50, "ed25519", "02" * 64)]


def _round(**overrides):
    return round_document(**{"task_id": 7, "round": 2, "rule": parse_rule("krum:1"),
                             "base_model_hash": b"\x11" * 32, "global_model_hash": "0x" + "22" * 32,
                             "participants": _participants(),
                             "refused": [Refusal(9, None, "no identity"), Refusal(10, BOB, "NaN values")],
                             "train_metrics": {"train-loss": 0.5}, "flower_version": "1.42.0", "run_id": 3,
                             **overrides})


def test_round_document_layout_and_round_trip() -> None:
    document = _round()
    doc = json.loads(document.canonical_bytes())
    assert doc["kind"] == "fl-round" and doc["rule"] == "krum:1"
    assert doc["base_model_hash"] == "11" * 32 and doc["global_model_hash"] == "22" * 32
    assert doc["participants"][0] == {"client": ALICE, "update_hash": "ab" * 32, "num_examples": 100,
                                      "signature": {"scheme": "sr25519", "hex": "01" * 64}}
    assert doc["refused"] == [{"node_id": 9, "client": None, "reason": "no identity"},
                              {"node_id": 10, "client": BOB, "reason": "NaN values"}]
    assert doc["flower"] == {"version": "1.42.0", "run_id": 3} and doc["train_metrics"] == {"train-loss": 0.5}
    assert document.doc_hash() == blake2_256(document.canonical_bytes())
    assert decode_round_document(document.canonical_bytes()) == document
    assert document.update_hashes == ["ab" * 32, "cd" * 32]


def test_round_document_builder_normalizes_hex() -> None:
    rows = [Participant(ALICE, "0x" + "AB" * 32, 1, "sr25519", "0x" + bytes(range(64)).hex().upper())]
    document = _round(participants=rows)
    assert document.participants[0].signature == bytes(range(64)).hex()
    assert document.participants[0].update_hash == "ab" * 32


@pytest.mark.parametrize(("overrides", "field"), [
    ({"round": 0}, "round"),
    ({"rule": "krum:01"}, "rule"),
    ({"participants": [Participant(ALICE, "ab" * 32, 0, "sr25519", "01" * 64)]}, "participants[0].num_examples"),
    ({"participants": [Participant(ALICE, "ab" * 32, 1, "ecdsa", "01" * 64)]}, "participants[0].signature.scheme"),
    ({"participants": [Participant(ALICE, "ab" * 32, 1, "sr25519", "01")]}, "participants[0].signature.hex"),
    ({"participants": [Participant("a b", "ab" * 32, 1, "sr25519", "01" * 64)]}, "participants[0].client"),
    ({"participants": _participants()[:1] * 2}, "participants"),
    ({"refused": [Refusal(1, None, "")]}, "refused[0].reason"),
    ({"train_metrics": {"loss": float("nan")}}, "train_metrics.loss"),
])
def test_bad_round_documents_name_the_field(overrides: dict, field: str) -> None:
    with pytest.raises(SpecValidationError) as info:
        _round(**overrides)
    assert info.value.field == field


def test_round_document_decoding_refusals() -> None:
    raw = _round().canonical_bytes()
    doc = json.loads(raw)
    with pytest.raises(SpecDecodeError, match="canonical"):
        decode_round_document(json.dumps(doc).encode())
    assert decode_round_document(json.dumps(doc).encode(), require_canonical=False) == _round()
    for key, value, field in [("kind", "fl-task-spec", "kind"), ("extra", 1, "round.extra"),
                              ("participants", {}, "participants"), ("base_model_hash", "AB" * 32, "base_model_hash")]:
        with pytest.raises(SpecValidationError) as info:
            decode_round_document(canonical_json({**doc, key: value}))
        assert info.value.field == field
    del doc["participants"][0]["signature"]["scheme"]
    with pytest.raises(SpecValidationError, match="scheme"):
        decode_round_document(canonical_json(doc))
