"""workers.verification: every check alone (no chain, no Ray), then the attacks through ValidatorDaemon.verify
with a real store and real (tiny, in-process) training runs, still without a chain."""
from __future__ import annotations

import json
import os
from collections import Counter
from types import SimpleNamespace

import pytest

from workers import ArtifactStore
from workers.hashing import blake2_256_hex
from workers.trajectory import merkle_root_hex
from workers.verification import (
    Check,
    as_text,
    check_trajectory_root,
    choose_segments,
    claimed_metrics,
    compare_metric,
    compare_replay,
    compare_target,
    decide,
    evidence_document,
    evidence_hash,
    may_vote,
    recompute_root,
    store_root_of,
    to_micro,
    verify_hashes,
)

H = lambda i: blake2_256_hex(f"checkpoint {i}".encode())
RANDOMNESS = "0x" + "ab" * 32


@pytest.fixture
def store(tmp_path):
    return ArtifactStore(tmp_path / "store")


def attestation_in(store: ArtifactStore, n: int = 5) -> dict:
    model = store.put(b"model weights")
    checkpoints = [store.put(f"checkpoint {i}".encode()) for i in range(n)]
    return {"task_id": 1, "worker": "5Worker", "model_hash": "0x" + model, "artifact_uri": store.uri(model),
            "metrics": [("accuracy", 950_000), ("loss", 150_000)], "trajectory_root": "0x" + merkle_root_hex(checkpoints),
            "checkpoints": ["0x" + h for h in checkpoints], "code_hash": "0x" + "00" * 32,
            "dataset_hash": "0x" + "11" * 32, "started_ms": 1, "finished_ms": 2}


# Hashes -----------------------------------------------------------------------------------------------------
def test_recomputed_root_is_the_trajectory_merkle_root():
    hashes = [H(i) for i in range(7)]
    assert recompute_root(hashes) == merkle_root_hex(hashes)
    assert recompute_root(["0x" + h for h in hashes]) == recompute_root([bytes.fromhex(h) for h in hashes])


def test_honest_artifacts_pass_every_hash_check(store):
    checks = verify_hashes(attestation_in(store), store)
    assert [c.name for c in checks] == ["model_hash", "checkpoints", "trajectory_root"]
    assert all(c.ok for c in checks)


def test_a_trajectory_root_that_does_not_match_the_checkpoints_fails(store):
    att = attestation_in(store)
    att["trajectory_root"] = "0x" + merkle_root_hex([H(9), H(8)])
    check = check_trajectory_root(att)
    assert not check.ok and "does not match" in check.detail["reason"]
    # the same checkpoints in another order: another root
    att = attestation_in(store)
    att["checkpoints"] = list(reversed(att["checkpoints"]))
    assert not check_trajectory_root(att).ok
    att["checkpoints"] = []
    assert not check_trajectory_root(att).ok


def test_model_not_in_the_store_fails(store, tmp_path):
    att = attestation_in(store)
    att["model_hash"] = "0x" + blake2_256_hex(b"weights nobody stored")
    [model, *_] = verify_hashes(att, store)
    assert model.name == "model_hash" and not model.ok and "not in the artifact store" in model.detail["reason"]


def test_tampered_model_and_checkpoint_fail(store):
    att = attestation_in(store)
    model = att["model_hash"][2:]
    with open(store._path(model), "wb") as f:  # bytes swapped under the same name
        f.write(b"other weights")
    checkpoint = att["checkpoints"][2][2:]
    with open(store._path(checkpoint), "wb") as f:
        f.write(b"another checkpoint")
    by_name = {c.name: c for c in verify_hashes(att, store)}
    assert not by_name["model_hash"].ok and "tampered" in by_name["model_hash"].detail["reason"]
    assert not by_name["checkpoints"].ok and checkpoint in by_name["checkpoints"].detail["bad"]
    assert by_name["trajectory_root"].ok  # the list itself is consistent; its objects are not


def test_missing_checkpoint_fails(store):
    att = attestation_in(store)
    os.unlink(store._path(att["checkpoints"][0][2:]))
    by_name = {c.name: c for c in verify_hashes(att, store)}
    assert not by_name["checkpoints"].ok


def test_artifact_uri_serving_other_bytes_fails(store, tmp_path):
    att = attestation_in(store)
    elsewhere = tmp_path / "elsewhere.bin"
    elsewhere.write_bytes(b"not the model")
    att["artifact_uri"] = "file://" + str(elsewhere)
    by_name = {c.name: c for c in verify_hashes(att, store)}
    assert by_name["model_hash"].ok and not by_name["artifact_uri"].ok


def test_store_root_of_content_addressed_uris(store):
    digest = store.put(b"x")
    assert store_root_of(store.uri(digest)) == store.root
    assert store_root_of("file:///tmp/model.bin") is None
    assert store_root_of("s3://bucket/blake2b256/zz/" + digest) is None


# Metrics ----------------------------------------------------------------------------------------------------
def test_claimed_metrics_decode_chain_values():
    att = {"metrics": [("0x" + b"accuracy".hex(), 950_000), (b"loss", 1)]}
    assert claimed_metrics(att) == {"accuracy": 950_000, "loss": 1}
    assert as_text("plain") == "plain"


def test_an_inflated_metric_is_rejected():
    check = compare_metric(980_000, 0.95, higher_is_better=True, name="accuracy")
    assert not check.ok and "claimed accuracy 0.980000" in check.detail["reason"]
    assert compare_metric(950_001, 0.95).ok        # within the tolerance (1e-4)
    assert not compare_metric(950_101, 0.95).ok   # beyond it
    assert compare_metric(900_000, 0.95).ok        # claiming less than it is: not fraud


def test_lower_is_better_metrics():
    assert compare_metric(100_000, 0.1, higher_is_better=False).ok
    assert not compare_metric(50_000, 0.1, higher_is_better=False).ok   # claims a lower loss than measured
    assert compare_metric(200_000, 0.1, higher_is_better=False).ok


def test_missing_claim_and_micro_units():
    assert not compare_metric(None, 0.9).ok
    assert to_micro(0.1234567) == 123_457 and to_micro(1e30) == 2**63 - 1


def test_holdout_target():
    assert compare_target(0.88, 900_000, 0.05).ok
    assert not compare_target(0.80, 900_000, 0.05).ok
    assert compare_target(0.2, 150_000, 0.1, higher_is_better=False).ok


# Segment choice ---------------------------------------------------------------------------------------------
def test_segment_choice_is_deterministic_distinct_and_spread():
    first = choose_segments(RANDOMNESS, 64, 4)
    assert first == choose_segments(bytes.fromhex("ab" * 32), 64, 4)     # same randomness, same choice
    assert len(set(first)) == 4 and all(0 <= i < 64 for i in first)
    assert [i // 16 for i in first] == [0, 1, 2, 3]                      # one per quarter of the run
    assert choose_segments(RANDOMNESS, 3, 5) == [0, 1, 2]                # Q >= n: every segment
    assert choose_segments(RANDOMNESS, 0, 2) == [] and choose_segments(RANDOMNESS, 9, 0) == []


def test_segment_choice_depends_on_the_block_hash_and_covers_every_segment():
    choices = [tuple(choose_segments(blake2_256_hex(bytes([b])), 10, 2)) for b in range(200)]
    assert len(set(choices)) > 10
    counts = Counter(i for c in choices for i in c)
    assert set(counts) == set(range(10))  # no segment is safe from a check
    assert all(c[0] < 5 <= c[1] for c in choices)


# Replay, votes, evidence ------------------------------------------------------------------------------------
def test_compare_replay():
    assert compare_replay(2, H(1), H(2), H(2)).ok
    mismatch = compare_replay(2, H(1), H(2), H(3))
    assert not mismatch.ok and mismatch.name == "segment[2]" and "differs" in mismatch.detail["reason"]
    assert not compare_replay(0, None, H(0), None, error="CheckpointMismatchError: other spec").ok


def test_validators_never_vote_on_their_own_work_or_twice():
    assert may_vote("v", "w", "r", False) == (True, "")
    assert not may_vote("w", "w", "r", False)[0]
    assert not may_vote("r", "w", "r", False)[0]
    assert not may_vote("v", "w", "r", True)[0]


def test_verdict_and_evidence_document():
    checks = [Check("model_hash", True), Check("metric", False, {"reason": "inflated"})]
    verdict = decide(checks, 950_000)
    assert not verdict.accept and verdict.reasons == ["metric: inflated"]
    assert decide([Check("a", True)], 1).accept and not decide([], 0).accept
    doc = evidence_document(task_id=3, attestation_hash="0x" + "cd" * 32, validator="5V", randomness=RANDOMNESS,
                            verdict=verdict, segments=[1, 4])
    assert doc == evidence_document(task_id=3, attestation_hash="cd" * 32, validator="5V",
                                    randomness=bytes.fromhex("ab" * 32), verdict=verdict, segments=[1, 4])
    parsed = json.loads(doc)
    assert parsed["measured_metric"] == 950_000 and parsed["segments"] == [1, 4] and not parsed["accept"]
    assert doc == json.dumps(parsed, sort_keys=True, separators=(",", ":")).encode()  # canonical
    assert evidence_hash(doc) == blake2_256_hex(doc)


# The attacks through the validator's whole check list (real training, no chain) -----------------------------
@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    pytest.importorskip("torch")
    from workers import DatasetRef, Evaluation, Limits, TaskSpec, add_dataset
    from workers.runner import train_local

    store = ArtifactStore(tmp_path_factory.mktemp("runs"))
    digest, uri = add_dataset("digits", store)

    def spec(seed: int) -> TaskSpec:
        return TaskSpec(recipe="digits_mlp", dataset=DatasetRef(digest, uri), evaluation=Evaluation("accuracy", 0.8),
                        hyperparameters={"epochs": 2}, seed=seed, checkpoint_every=11,
                        limits=Limits(timeout_s=120, memory_mb=1024))

    honest, other = spec(11), spec(12)  # the other run: another seed, so another data order (and init)
    store.put(honest.canonical_bytes())
    return {"store": store, "spec": honest, "result": train_local(honest, store),
            "other": train_local(other, store)}


def judge(runs, attestation, spot_checks: int = 4):
    from workers.validator import ValidatorConfig, ValidatorDaemon

    spec, store = runs["spec"], runs["store"]
    daemon = ValidatorDaemon(ValidatorConfig(chain_url="ws://unused", key="//Charlie", spot_checks=spot_checks),
                             store=store)
    task = SimpleNamespace(spec=SimpleNamespace(spec_hash="0x" + spec.spec_hash_hex(),
                                                spec_uri=store.uri(spec.spec_hash_hex()),
                                                higher_is_better=True, eval_target=800_000))
    verdict, segments, _ = daemon.verify(1, task, attestation, RANDOMNESS)
    return verdict, segments


def test_honest_run_is_accepted(runs):
    attestation = runs["result"].to_attestation(1, "5Worker")
    verdict, segments = judge(runs, attestation)
    assert verdict.accept, verdict.reasons
    assert len(segments) == 4 and verdict.measured_metric == dict(attestation["metrics"])["accuracy"]


def test_inflated_metric_is_rejected_with_the_real_measurement(runs):
    attestation = runs["result"].to_attestation(1, "5Worker")
    real = dict(attestation["metrics"])["accuracy"]
    attestation["metrics"] = [(k, v + 20_000 if k == "accuracy" else v) for k, v in attestation["metrics"]]
    verdict, _ = judge(runs, attestation)
    assert not verdict.accept and verdict.measured_metric == real
    assert [r.split(":")[0] for r in verdict.reasons] == ["metric"]


def test_trajectory_root_not_matching_the_checkpoints_is_rejected(runs):
    attestation = runs["result"].to_attestation(1, "5Worker")
    attestation["trajectory_root"] = "0x" + runs["other"].trajectory_root
    verdict, _ = judge(runs, attestation)
    assert not verdict.accept and any(r.startswith("trajectory_root") for r in verdict.reasons)


def test_checkpoints_from_another_data_order_fail_the_replay(runs):
    """The final model is honest, but the trajectory (and its root, consistently) is another run's."""
    attestation = runs["result"].to_attestation(1, "5Worker")
    other = runs["other"]
    attestation["checkpoints"] = ["0x" + h for h in other.checkpoints]
    attestation["trajectory_root"] = "0x" + other.trajectory_root
    verdict, segments = judge(runs, attestation)
    assert not verdict.accept
    failed = [r.split(":")[0] for r in verdict.reasons]
    assert failed and all(f.startswith("segment[") for f in failed) and len(failed) == len(segments)


def test_model_not_in_store_is_rejected_without_measuring(runs):
    attestation = runs["result"].to_attestation(1, "5Worker")
    attestation["model_hash"] = "0x" + blake2_256_hex(b"never stored")
    verdict, segments = judge(runs, attestation)
    assert not verdict.accept and segments == [] and verdict.measured_metric == 0
    assert any(r.startswith("model_hash") for r in verdict.reasons)


def test_revealed_holdout_is_measured_against_the_target(runs):
    from workers.validator import ValidatorConfig, ValidatorDaemon

    spec, store = runs["spec"], runs["store"]
    attestation = runs["result"].to_attestation(1, "5Worker")
    daemon = ValidatorDaemon(ValidatorConfig(chain_url="ws://unused", key="//Charlie", spot_checks=1), store=store)
    task = SimpleNamespace(spec=SimpleNamespace(spec_hash="0x" + spec.spec_hash_hex(),
                                                spec_uri=store.uri(spec.spec_hash_hex()),
                                                higher_is_better=True, eval_target=800_000))
    holdout = SimpleNamespace(holdout_uri=spec.dataset.uri)  # the requester's data, content-addressed
    verdict, _, _ = daemon.verify(1, task, attestation, RANDOMNESS, holdout)
    [check] = [c for c in verdict.checks if c.name == "holdout"]
    assert check.ok and verdict.accept, verdict.reasons
    unreachable = SimpleNamespace(v=1, holdout_uri="file:///nonexistent/holdout.ptts")
    verdict, _, _ = daemon.verify(1, task, attestation, RANDOMNESS, unreachable)
    [check] = [c for c in verdict.checks if c.name == "holdout"]
    assert check.ok and "skipped" in check.detail  # the requester's failure never costs the worker
    task.spec.eval_target = 999_999  # a target out of reach on the holdout: rejected
    verdict, _, _ = daemon.verify(1, task, attestation, RANDOMNESS, holdout)
    assert not verdict.accept and [r.split(":")[0] for r in verdict.reasons] == ["holdout"]
