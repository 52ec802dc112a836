"""Task specs (canonical JSON, validation) and the recipes, trained briefly in-process (no Ray)."""
from __future__ import annotations

import hashlib
import json

import pytest

torch = pytest.importorskip("torch")

from runtime_bindings.values import METRIC_SCALE  # noqa: E402
from workers import (  # noqa: E402
    ArtifactStore,
    DatasetRef,
    Evaluation,
    Limits,
    SpecDecodeError,
    SpecValidationError,
    TaskSpec,
    Validation,
    add_dataset,
    decode_spec,
    encode_spec,
)
from workers.artifacts import ArtifactIntegrityError  # noqa: E402
from workers.engine import CheckpointMismatchError, TrainingTimeoutError  # noqa: E402
from workers.recipes import REGISTRY, RecipeNotAllowedError, UnknownRecipeError, code_hash, get_recipe  # noqa: E402
from workers.runner import replay_segment, spot_check, train_local  # noqa: E402
from workers.trajectory import merkle_root_hex  # noqa: E402

pytestmark = pytest.mark.slow  # trains every recipe briefly with torch

H = "ab" * 32


def make_spec(**kw) -> TaskSpec:
    base = dict(recipe="digits_mlp", dataset=DatasetRef(H, "file:///tmp/x"), evaluation=Evaluation("accuracy", 0.9),
                hyperparameters={"epochs": 3, "lr": 0.003}, seed=1)
    return TaskSpec(**{**base, **kw})


# Specs -----------------------------------------------------------------------------------------
def test_canonical_json_is_sorted_compact_utf8():
    spec = make_spec(dataset=DatasetRef(H, "file:///tmp/données"))
    raw = encode_spec(spec)
    assert b" " not in raw and b"\n" not in raw
    assert "données".encode() in raw
    doc = json.loads(raw)
    assert raw == json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert list(doc) == sorted(doc)
    assert spec.spec_hash() == hashlib.blake2b(raw, digest_size=32).digest()
    assert decode_spec(raw, require_canonical=True) == spec


def test_spec_hash_is_independent_of_key_order_and_changes_with_content():
    spec = make_spec()
    shuffled = json.dumps(dict(reversed(list(spec.to_dict().items()))), indent=2)
    again = decode_spec(shuffled)
    assert again == spec and again.spec_hash() == spec.spec_hash()
    with pytest.raises(SpecDecodeError):
        decode_spec(shuffled, require_canonical=True)
    assert make_spec(seed=2).spec_hash() != spec.spec_hash()
    assert spec.with_hyperparameters(lr=0.01).spec_hash() != spec.spec_hash()


@pytest.mark.parametrize("mutate,field", [
    (lambda d: d.pop("recipe"), "recipe"),
    (lambda d: d["dataset"].update(hash="xyz"), "dataset.hash"),
    (lambda d: d["dataset"].update(hash="AB" * 32), "dataset.hash"),
    (lambda d: d.update(seed=-1), "seed"),
    (lambda d: d.update(seed=True), "seed"),
    (lambda d: d["validation"].update(fraction=1.0), "validation.fraction"),
    (lambda d: d["evaluation"].update(mode="up"), "evaluation.mode"),
    (lambda d: d.update(checkpoint_every=0), "checkpoint_every"),
    (lambda d: d["limits"].update(timeout_s=0), "limits.timeout_s"),
    (lambda d: d["hyperparameters"].update(layers=[1, 2]), "hyperparameters.layers"),
    (lambda d: d.update(extra=1), "extra"),
    (lambda d: d.update(version=2), "version"),
])
def test_invalid_specs_raise_typed_errors(mutate, field):
    doc = make_spec().to_dict()
    mutate(doc)
    with pytest.raises(SpecValidationError) as info:
        decode_spec(json.dumps(doc))
    assert info.value.field == field


def test_malformed_documents():
    for raw in (b"", b"[1]", b"{", b'{"seed": NaN}', b"\xff"):
        with pytest.raises((SpecDecodeError, SpecValidationError)):
            decode_spec(raw)
    with pytest.raises(SpecValidationError):
        make_spec(hyperparameters={"lr": float("nan")}).canonical_bytes()


# Registry ----------------------------------------------------------------------------------------
def test_registry_is_an_allow_list(monkeypatch):
    assert {"digits_mlp", "digits_cnn", "breast_cancer_logreg", "diabetes_regression", "char_lm"} <= set(REGISTRY)
    with pytest.raises(UnknownRecipeError):
        get_recipe("rm_rf")
    monkeypatch.delenv("PARATRAIN_ALLOW_CUSTOM_RECIPES", raising=False)
    with pytest.raises(RecipeNotAllowedError):
        get_recipe("custom:workers.recipes.digits_mlp:RECIPE")
    assert get_recipe("custom:workers.recipes.digits_mlp:RECIPE", allow_custom=True) is REGISTRY["digits_mlp"]
    monkeypatch.setenv("PARATRAIN_ALLOW_CUSTOM_RECIPES", "1")
    assert get_recipe("custom:workers.recipes.digits_mlp:RECIPE") is REGISTRY["digits_mlp"]


def test_code_hashes_are_distinct_and_stable():
    hashes = {name: code_hash(name) for name in REGISTRY}
    assert len(set(hashes.values())) == len(hashes)
    assert code_hash("digits_mlp") == hashes["digits_mlp"]


# Training in-process -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return ArtifactStore(tmp_path_factory.mktemp("artifacts"))


def recipe_spec(store, name, **hp) -> TaskSpec:
    recipe = REGISTRY[name]
    digest, uri = add_dataset(recipe.dataset, store)
    return TaskSpec(recipe=name, dataset=DatasetRef(digest, uri),
                    evaluation=Evaluation(recipe.metric, recipe.expected, recipe.mode), hyperparameters=hp, seed=3,
                    validation=Validation(0.2, 0), checkpoint_every=10)


# brief runs of every recipe: they train, checkpoint and report a sane metric
BRIEF = {"digits_mlp": {"epochs": 1}, "digits_cnn": {"epochs": 1}, "breast_cancer_logreg": {"epochs": 2},
         "diabetes_regression": {"epochs": 3}, "char_lm": {"epochs": 1, "context": 32}}


@pytest.mark.parametrize("name", sorted(BRIEF))
def test_each_recipe_trains_briefly(store, name):
    spec = recipe_spec(store, name, **BRIEF[name])
    events = []
    result = train_local(spec, store, on_progress=events.append)
    recipe = REGISTRY[name]
    assert recipe.metric in result.metrics
    assert all(v == v for v in result.metrics.values())  # no NaN
    assert result.checkpoints and result.trajectory_root == merkle_root_hex(result.checkpoints)
    assert events[-1].final and events[-1].checkpoints == len(result.checkpoints)
    card = json.loads(store.get(result.card_hash))
    assert card["recipe"] == name and card["weights"]["hash"] == result.model_hash
    assert result.code_hash == code_hash(name) and result.dataset_hash == spec.dataset.hash
    att = result.to_attestation(task_id=7, worker="5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY")
    assert {name.text: value for name, value in att.metrics}[recipe.metric] == round(
        result.metrics[recipe.metric] * METRIC_SCALE)


def test_digits_mlp_reaches_its_expected_accuracy(store):
    spec = recipe_spec(store, "digits_mlp")
    result = train_local(spec, store)
    assert result.metrics["accuracy"] >= 0.9
    assert result.target_met


def test_same_spec_same_model_and_replay_is_bitwise(store):
    spec = recipe_spec(store, "breast_cancer_logreg", epochs=3)
    first, second = train_local(spec, store), train_local(spec, store)
    assert first.model_hash == second.model_hash and first.checkpoints == second.checkpoints
    assert len(first.checkpoints) >= 3
    for i in range(len(first.checkpoints) - 1):
        assert replay_segment(spec, store, first.checkpoints[i]) == first.checkpoints[i + 1]
    assert spot_check(spec, store, first.checkpoints, 0)
    # a resumed run (the daemon restarted) finishes with the same result
    resumed = train_local(spec, store, resume_from=first.checkpoints[:2])
    assert resumed.model_hash == first.model_hash and resumed.checkpoints == first.checkpoints


def test_replay_refuses_a_checkpoint_of_another_task(store):
    spec = recipe_spec(store, "breast_cancer_logreg", epochs=1)
    result = train_local(spec, store)
    other = spec.with_hyperparameters(lr=0.02)
    with pytest.raises(CheckpointMismatchError):
        replay_segment(other, store, result.checkpoints[0])


def test_a_dataset_with_the_wrong_hash_is_refused(store):
    """The URI serves other bytes than the hash names (and this store holds nothing by that hash, else it would
    serve those bytes: content addressing makes the URI only a hint)."""
    spec = recipe_spec(store, "breast_cancer_logreg", epochs=1)
    missing = hashlib.blake2b(b"a data set nobody has", digest_size=32).hexdigest()
    wrong = TaskSpec(**{**spec.__dict__, "dataset": DatasetRef(missing, spec.dataset.uri)})
    with pytest.raises(ArtifactIntegrityError):
        train_local(wrong, store)


def test_time_limit(store):
    spec = recipe_spec(store, "digits_mlp", epochs=1)
    spec = TaskSpec(**{**spec.__dict__, "limits": Limits(timeout_s=1e-6)})
    with pytest.raises(TrainingTimeoutError):
        train_local(spec, store)
