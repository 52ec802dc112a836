"""workers.verification: every check alone (no chain, no Ray), then the attacks through ValidatorDaemon.verify
with a real store and real (tiny, in-process) training runs, still without a chain; and the daemon's handling
of a result whose judging fails (retried, then abstained from: the daemon lives on)."""
from __future__ import annotations

import json
import os
from collections import Counter
from types import SimpleNamespace

import pytest
from forgeries import forged, relabel

from runtime_bindings.generated.types import Attestation
from runtime_bindings.values import Bytes
from workers import ArtifactStore
from workers.hashing import blake2_256_hex
from workers.trajectory import merkle_root_hex
from workers.verification import (
    HOLDOUT_MARGIN_MS,
    Check,
    await_holdout,
    check_final_model,
    check_trajectory_root,
    check_trajectory_schedule,
    checkpoint_schedule,
    choose_segments,
    claimed_metrics,
    compare_metric,
    compare_replay,
    compare_target,
    decide,
    document_meta,
    evidence_document,
    evidence_hash,
    may_vote,
    next_step,
    read_ptts1,
    recompute_root,
    round_of,
    store_root_of,
    to_micro,
    verify_hashes,
)

H = lambda i: blake2_256_hex(f"checkpoint {i}".encode())
RANDOMNESS = "0x" + "ab" * 32


@pytest.fixture
def store(tmp_path):
    return ArtifactStore(tmp_path / "store")


def attestation_in(store: ArtifactStore, n: int = 5) -> Attestation:
    model = store.put(b"model weights")
    checkpoints = [store.put(f"checkpoint {i}".encode()) for i in range(n)]
    return Attestation.from_value({"task_id": 1, "worker": "5Worker", "model_hash": "0x" + model, "artifact_uri": store.uri(model),
            "metrics": [("accuracy", 950_000), ("loss", 150_000)], "trajectory_root": "0x" + merkle_root_hex(checkpoints),
            "checkpoints": ["0x" + h for h in checkpoints], "code_hash": "0x" + "00" * 32,
            "dataset_hash": "0x" + "11" * 32, "started_ms": 1, "finished_ms": 2})


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
    att = forged(attestation_in(store), trajectory_root="0x" + merkle_root_hex([H(9), H(8)]))
    check = check_trajectory_root(att)
    assert not check.ok and "does not match" in check.detail["reason"]
    # the same checkpoints in another order: another root
    att = attestation_in(store)
    assert not check_trajectory_root(forged(att, checkpoints=list(reversed(att.checkpoints)))).ok
    assert not check_trajectory_root(forged(att, checkpoints=[])).ok


def test_verify_hashes_shows_each_verified_document_once(store):
    att = attestation_in(store, 3)
    os.unlink(store._path(att.checkpoints[1].hex()))
    seen: list[tuple[str, bytes]] = []
    checks = verify_hashes(att, store, lambda digest, data: seen.append((digest, data)))
    assert [c.name for c in checks] == ["model_hash", "checkpoints", "trajectory_root"]
    assert [d for d, _ in seen] == [att.model_hash.hex(), att.checkpoints[0].hex(), att.checkpoints[2].hex()]
    assert all(blake2_256_hex(data) == digest for digest, data in seen)  # verified bytes only


def test_verify_hashes_does_not_read_again_what_was_just_copied(store):
    """The validator copies a worker's objects into its store (each verified by hash on the copy and shown
    to on_read then): verify_hashes reads only the others."""
    att = attestation_in(store, 3)
    copied = {att.model_hash.hex(), att.checkpoints[1].hex()}
    for digest in copied:  # whatever is on disk now is not looked at again
        with open(store._path(digest), "wb") as f:
            f.write(b"overwritten after the verified copy")
    seen: list[str] = []
    checks = verify_hashes(att, store, lambda digest, data: seen.append(digest), verified=copied)
    assert all(c.ok for c in checks), checks
    assert seen == [att.checkpoints[0].hex(), att.checkpoints[2].hex()]


def test_model_not_in_the_store_fails(store, tmp_path):
    att = forged(attestation_in(store), model_hash="0x" + blake2_256_hex(b"weights nobody stored"))
    [model, *_] = verify_hashes(att, store)
    assert model.name == "model_hash" and not model.ok and "not in the artifact store" in model.detail["reason"]


def test_tampered_model_and_checkpoint_fail(store):
    att = attestation_in(store)
    model = att.model_hash.hex()
    with open(store._path(model), "wb") as f:  # bytes swapped under the same name
        f.write(b"other weights")
    checkpoint = att.checkpoints[2].hex()
    with open(store._path(checkpoint), "wb") as f:
        f.write(b"another checkpoint")
    by_name = {c.name: c for c in verify_hashes(att, store)}
    assert not by_name["model_hash"].ok and "tampered" in by_name["model_hash"].detail["reason"]
    assert not by_name["checkpoints"].ok and checkpoint in by_name["checkpoints"].detail["bad"]
    assert by_name["trajectory_root"].ok  # the list itself is consistent; its objects are not


def test_missing_checkpoint_fails(store):
    att = attestation_in(store)
    os.unlink(store._path(att.checkpoints[0].hex()))
    by_name = {c.name: c for c in verify_hashes(att, store)}
    assert not by_name["checkpoints"].ok


def test_artifact_uri_serving_other_bytes_fails(store, tmp_path):
    att = attestation_in(store)
    elsewhere = tmp_path / "elsewhere.bin"
    elsewhere.write_bytes(b"not the model")
    att = forged(att, artifact_uri="file://" + str(elsewhere))
    by_name = {c.name: c for c in verify_hashes(att, store)}
    assert by_name["model_hash"].ok and not by_name["artifact_uri"].ok


def test_store_root_of_content_addressed_uris(store):
    digest = store.put(b"x")
    assert store_root_of(store.uri(digest)) == store.root
    assert store_root_of("file:///tmp/model.bin") is None
    assert store_root_of("s3://bucket/blake2b256/zz/" + digest) is None


# The trajectory's end: the spec's whole schedule, and the model its last checkpoint --------------------------
SPEC = "5e" * 32


def meta(step: int, *, spec: str = SPEC, world: object = 1, kind: str = "checkpoint") -> dict:
    return {"kind": kind, "spec_hash": spec, "step": step, "epoch": 0, "world_size": world, "recipe": "digits_mlp"}


def schedule(metas, total=44, every=11):
    asked: list[object] = []

    def total_steps(world_size):
        asked.append(world_size)
        return total(world_size) if callable(total) else total
    check = check_trajectory_schedule(metas, spec_hash="0x" + SPEC, checkpoint_every=every, total_steps=total_steps)
    return check, asked


def test_checkpoint_schedule_is_the_engines():
    assert checkpoint_schedule(44, 11) == [11, 22, 33, 44]
    assert checkpoint_schedule(45, 11) == [11, 22, 33, 44, 45]  # and after the last step
    assert checkpoint_schedule(5, 11) == [5]
    assert checkpoint_schedule(0, 11) == [] and checkpoint_schedule(10, 0) == []


def test_the_whole_schedule_passes_for_its_world_size():
    check, asked = schedule([meta(s) for s in (11, 22, 33, 44)])
    assert check.ok and check.name == "trajectory_schedule" and asked == [1], check.detail
    assert check.detail["total_steps"] == 44 and check.detail["world_size"] == 1
    # world size 2 takes half the steps (the total is asked for the checkpoints' own world size)
    check, asked = schedule([meta(s, world=2) for s in (11, 22)], total=lambda w: 44 // w)
    assert check.ok and asked == [2]


def test_a_trajectory_stopped_early_fails():
    check, _ = schedule([meta(11), meta(22)])
    assert not check.ok and "stops at step 22 of 44" in check.detail["reason"]
    assert "the last 2 of 4 checkpoints are missing" in check.detail["reason"]
    check, _ = schedule([meta(11), meta(22), meta(33), meta(44)], total=45)  # one step short of the end
    assert not check.ok and "stops at step 44 of 45" in check.detail["reason"]


@pytest.mark.parametrize("metas, reason", [
    ([meta(11), meta(33), meta(44)], "not the spec's schedule"),                 # thinned out
    ([meta(22), meta(11), meta(33), meta(44)], "not the spec's schedule"),       # reordered
    ([meta(11), meta(22), meta(33), meta(44), meta(44)], "not the spec's schedule"),  # padded
    ([meta(10), meta(20), meta(30), meta(44)], "not the spec's schedule"),       # other spacing
    ([meta(s, spec="77" * 32) for s in (11, 22, 33, 44)], "another spec"),
    ([meta(11), meta(22), meta(33), meta(44, kind="model")], "not checkpoints"),
    ([meta(11), None, meta(33), meta(44)], "not PTTS1 documents"),
    ([meta(11), meta(22), meta(33, world=2), meta(44)], "world sizes"),
    ([meta(s, world=0) for s in (11, 22, 33, 44)], "world sizes"),
    ([meta(s, world=True) for s in (11, 22, 33, 44)], "world sizes"),
    ([meta(s, world="1") for s in (11, 22, 33, 44)], "world sizes"),
    ([], "names no checkpoint"),
])
def test_a_trajectory_that_is_not_the_specs_schedule_fails(metas, reason):
    check, _ = schedule(metas)
    assert not check.ok and reason in check.detail["reason"], check.detail


def ptts1(tensors: dict, meta_: dict) -> bytes:
    from workers import tensorio

    return tensorio.dumps(tensors, meta_)


@pytest.fixture
def weights():
    torch = pytest.importorskip("torch")
    gen = torch.Generator().manual_seed(0)
    return {"fc.weight": torch.randn(4, 3, generator=gen), "fc.bias": torch.randn(4, generator=gen),
            "steps": torch.tensor([7], dtype=torch.long)}


def checkpoint_of(weights: dict, spec: str = SPEC, step: int = 44) -> bytes:
    from workers import tensorio

    torch = pytest.importorskip("torch")
    optim = {"state": {0: {"exp_avg": torch.ones(4, 3), "step": 3}}, "param_groups": [{"lr": 0.1, "params": [0]}]}
    return tensorio.pack_state(weights, optim, meta(step, spec=spec))


def model_of(weights: dict, spec: str = SPEC, kind: str = "model") -> bytes:
    return ptts1(weights, {"kind": kind, "recipe": "digits_mlp", "spec_hash": spec})


def test_read_ptts1_reads_the_header_without_torch_and_refuses_garbage(weights):
    from workers import tensorio

    data = model_of(weights)
    doc = read_ptts1(data)
    tensors, meta_ = tensorio.loads(data)
    assert doc.meta == meta_ and set(doc.entries) == set(tensors)
    assert doc.raw("fc.bias") == tensors["fc.bias"].numpy().tobytes()
    assert document_meta(checkpoint_of(weights))["step"] == 44 and document_meta(b"not ptts1") is None
    for bad in (b"", b"PTTS1\n", b"PTTS1\n" + (10**6).to_bytes(8, "little") + b"{}", data[:-4],
                b"PTTS1\n" + (2).to_bytes(8, "little") + b"[]", b"PTTS1\n" + (3).to_bytes(8, "little") + b"\xff\xfe{"):
        with pytest.raises(ValueError):
            read_ptts1(bad)


def test_the_model_is_the_last_checkpoint_bitwise(weights):
    check = check_final_model(model_of(weights), checkpoint_of(weights), spec_hash=SPEC)
    assert check.ok and check.name == "final_model" and check.detail["tensors"] == 3, check.detail


def test_a_model_that_is_not_the_last_checkpoint_fails(weights):
    torch = pytest.importorskip("torch")
    last = checkpoint_of(weights)

    def fails(model: bytes, *words: str) -> None:
        check = check_final_model(model, last, spec_hash=SPEC)
        assert not check.ok and all(w in check.detail["reason"] for w in words), check.detail

    flipped = {**weights, "fc.weight": weights["fc.weight"].clone()}
    flipped["fc.weight"].view(torch.int32)[0, 0] ^= 1                     # one bit of one weight
    fails(model_of(flipped), "1 of the model's tensors differ", "not the end of the attested trajectory")
    fails(model_of({**weights, "fc.bias": torch.zeros(4)}), "differ")
    signed = {**weights, "fc.bias": torch.zeros(4)}
    zero = check_final_model(model_of({**signed, "fc.bias": -torch.zeros(4)}), checkpoint_of(signed), spec_hash=SPEC)
    assert not zero.ok  # -0.0 == 0.0, but not bitwise
    fails(model_of({k: v.double() if v.is_floating_point() else v for k, v in weights.items()}), "differ")  # dtype
    fails(model_of({**weights, "fc.weight": weights["fc.weight"].reshape(3, 4)}), "differ")   # shape
    fails(model_of({k: v for k, v in weights.items() if k != "steps"}), "missing ['steps']")
    fails(model_of({**weights, "extra": torch.ones(1)}), "extra ['extra']")
    fails(model_of(weights, spec="77" * 32), "of spec 7777")
    fails(model_of(weights, kind="checkpoint"), "not a model")
    fails(b"pickled weights", "the model weights are unreadable")
    assert not check_final_model(model_of(weights), b"junk", spec_hash=SPEC).ok
    assert not check_final_model(None, last, spec_hash=SPEC).ok
    nan = {**weights, "fc.bias": torch.full((4,), float("nan"))}
    assert check_final_model(model_of(nan), checkpoint_of(nan), spec_hash=SPEC).ok  # the same bits: equal


def test_the_holdout_is_awaited_until_the_margin_before_the_window_ends():
    until = 1_000_000
    assert await_holdout(until, until - HOLDOUT_MARGIN_MS - 1)
    assert not await_holdout(until, until - HOLDOUT_MARGIN_MS)
    assert not await_holdout(until, until + 5)
    assert await_holdout(until, until - 2_001, margin_ms=2_000) and not await_holdout(until, until - 2_000, 2_000)


# Metrics ----------------------------------------------------------------------------------------------------
def test_claimed_metrics_by_name(store):
    att = forged(attestation_in(store), metrics=[(Bytes(b"accuracy"), 950_000), (b"\xff", 1)])
    assert claimed_metrics(att) == {"accuracy": 950_000, "0xff": 1}


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
    assert may_vote("v", "w", "r") == (True, "")
    assert not may_vote("w", "w", "r")[0]
    assert not may_vote("r", "w", "r")[0]


# Rounds and challenges: next_step ---------------------------------------------------------------------------
NOW, UNTIL = 1_000_000, 1_005_000  # chain time (ms) within the challenge period


def step(status: str, accept: bool | None = None, **kw) -> tuple[str, str]:
    flags = {"voted_this_round": False, "approved_me": False, "challenger_me": False, "now_ms": NOW,
             "challenge_until": UNTIL, **kw}
    decided = next_step(status, accept=accept, **flags)
    return decided.action, decided.reason


def test_first_round_verifies_then_votes_once():
    assert step("Submitted") == ("verify", "")
    assert step("Submitted", True)[0] == step("Submitted", False)[0] == "vote"
    assert step("Submitted", False, voted_this_round=True)[0] == "abstain"


def test_an_approved_result_is_challenged_only_by_a_rejecting_outsider_within_the_period():
    assert step("Approved") == ("verify", "")            # not judged yet: verify first
    assert step("Approved", False) == ("challenge", "")
    action, reason = step("Approved", True)
    assert action == "abstain" and "accepts" in reason    # it agrees with the quorum
    action, reason = step("Approved", False, approved_me=True)
    assert action == "abstain" and "never challenges a result it accepted" in reason
    assert step("Approved", None, approved_me=True)[0] == "abstain"   # no verification needed to know that
    assert step("Approved", False, voted_this_round=True)[0] == "abstain"  # it challenged already
    # the chain's time decides: at or after challenge_until the pallet would refuse (ChallengePeriodOver)
    assert step("Approved", False, now_ms=UNTIL)[0] == "abstain"
    assert step("Approved", None, now_ms=UNTIL + 1)[0] == "abstain"  # and no verification is wasted on it
    assert step("Approved", False, now_ms=UNTIL - 1)[0] == "challenge"
    assert step("Approved", False, now_ms=None)[0] == "abstain"


def test_challenge_round_every_validator_but_the_challenger_votes_once():
    assert step("Challenged") == ("verify", "")
    assert step("Challenged", True)[0] == "vote"           # an approver votes again (its first verdict was cleared)
    assert step("Challenged", True, approved_me=True)[0] == "vote"
    assert step("Challenged", False)[0] == "vote"
    assert step("Challenged", False, challenger_me=True)[0] == "abstain"
    assert step("Challenged", True, voted_this_round=True)[0] == "abstain"


@pytest.mark.parametrize("status", ["Open", "Claimed", "Accepted", "Expired", "Cancelled", "Missing"])
def test_nothing_to_do_outside_verification(status):
    action, reason = step(status, False)
    assert action == "abstain" and status in reason


def test_rounds_of_statuses():
    assert round_of("Submitted") == "first"
    assert round_of("Approved") == round_of("Challenged") == "challenge"  # a challenge is a challenge-round vote


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
    from torch.utils.data.distributed import DistributedSampler

    import workers.engine
    from workers import DatasetRef, Evaluation, Limits, TaskSpec, add_dataset
    from workers.runner import train_local

    store = ArtifactStore(tmp_path_factory.mktemp("runs"))
    digest, uri = add_dataset("digits", store)

    def spec(seed: int, **hyperparameters) -> TaskSpec:
        return TaskSpec(recipe="digits_mlp", dataset=DatasetRef(digest, uri), evaluation=Evaluation("accuracy", 0.8),
                        hyperparameters={"epochs": 2, **hyperparameters}, seed=seed, checkpoint_every=11,
                        limits=Limits(timeout_s=120, memory_mb=1024))

    class OtherOrder(DistributedSampler):  # a worker that does not follow the protocol's data order
        def __init__(self, *args, seed: int = 0, **kwargs) -> None:
            super().__init__(*args, seed=seed + 1, **kwargs)

    honest, other = spec(11), spec(12)  # the other run: another seed, so another spec (data order and init)
    store.put(honest.canonical_bytes())
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(workers.engine, "DistributedSampler", OtherOrder)
        other_order = train_local(honest, store)
    return {"store": store, "spec": honest, "result": train_local(honest, store),
            "other": train_local(other, store), "other_order": other_order,
            "other_architecture": train_local(spec(11, hidden=32), store)}


def daemon_for(runs, spot_checks: int = 4):
    from workers.validator import ValidatorConfig, ValidatorDaemon

    return ValidatorDaemon(ValidatorConfig(chain_url="ws://unused", key="//Charlie", spot_checks=spot_checks),
                           store=runs["store"])


def judge(runs, attestation, spot_checks: int = 4):
    spec, store = runs["spec"], runs["store"]
    task = SimpleNamespace(spec=SimpleNamespace(spec_hash="0x" + spec.spec_hash_hex(),
                                                spec_uri=Bytes(store.uri(spec.spec_hash_hex()).encode()),
                                                higher_is_better=True, eval_target=800_000))
    verdict, segments, _ = daemon_for(runs, spot_checks).verify(1, task, attestation, RANDOMNESS)
    return verdict, segments


def failed(verdict) -> list[str]:
    return [r.split(":")[0] for r in verdict.reasons]


def true_metrics(runs, model_hash: str) -> list[tuple[str, int]]:
    """What an honest attestation of these weights claims: their real metrics."""
    return [(k, to_micro(v)) for k, v in sorted(daemon_for(runs).measure(runs["spec"], model_hash).items())]


def model_from_checkpoint(runs, checkpoint: str) -> str:
    """Model weights as the engine writes them at the end, taken from `checkpoint` instead."""
    from workers import tensorio

    state, _, _ = tensorio.unpack_state(runs["store"].get(checkpoint))
    return runs["store"].put(tensorio.dumps(state, {"kind": "model", "recipe": "digits_mlp",
                                                    "spec_hash": runs["spec"].spec_hash_hex()}))


def test_honest_run_is_accepted(runs):
    attestation = runs["result"].to_attestation(1, "5Worker")
    verdict, segments = judge(runs, attestation)
    assert verdict.accept, verdict.reasons
    assert len(segments) == 4 and verdict.measured_metric == dict(attestation.metrics)[b"accuracy"]
    by_name = {c.name: c for c in verdict.checks}
    assert by_name["trajectory_schedule"].detail["steps"] == by_name["trajectory_schedule"].detail["expected_steps"]
    assert by_name["trajectory_schedule"].detail["total_steps"] == by_name["trajectory_schedule"].detail["steps"][-1]
    assert by_name["final_model"].ok


def test_inflated_metric_is_rejected_with_the_real_measurement(runs):
    attestation = runs["result"].to_attestation(1, "5Worker")
    real = dict(attestation.metrics)[b"accuracy"]
    attestation = forged(attestation,
                         metrics=[(k, v + 20_000 if k == b"accuracy" else v) for k, v in attestation.metrics])
    verdict, _ = judge(runs, attestation)
    assert not verdict.accept and verdict.measured_metric == real
    assert failed(verdict) == ["metric"]


def test_trajectory_root_not_matching_the_checkpoints_is_rejected(runs):
    attestation = runs["result"].to_attestation(1, "5Worker")
    attestation = forged(attestation, trajectory_root="0x" + runs["other"].trajectory_root)
    verdict, _ = judge(runs, attestation)
    assert not verdict.accept and any(r.startswith("trajectory_root") for r in verdict.reasons)


def test_a_training_stopped_early_is_rejected_without_replaying(runs):
    """The spec's first half (bitwise the honest run's first checkpoints), its last weights as the model with
    their true metric: every segment is genuine, but the trajectory does not reach the spec's last step."""
    honest = runs["result"]
    kept = honest.checkpoints[:len(honest.checkpoints) // 2]
    model = model_from_checkpoint(runs, kept[-1])
    attestation = forged(honest.to_attestation(1, "5Worker"), model_hash="0x" + model,
                         artifact_uri=runs["store"].uri(model), metrics=true_metrics(runs, model),
                         trajectory_root="0x" + merkle_root_hex(kept), checkpoints=["0x" + h for h in kept])
    verdict, segments = judge(runs, attestation)
    assert not verdict.accept and segments == [] and verdict.measured_metric == 0
    assert failed(verdict) == ["trajectory_schedule", "metric"]  # the model is its trajectory's end: final_model ok
    [schedule] = [c for c in verdict.checks if c.name == "trajectory_schedule"]
    assert f"stops at step {schedule.detail['steps'][-1]} of {schedule.detail['total_steps']}" in schedule.detail["reason"]


def test_a_model_that_is_not_the_end_of_the_trajectory_is_rejected(runs):
    """The honest trajectory with other weights of the same architecture and spec (the mid-run checkpoint's, or
    another data order's final model), each with its true metric."""
    honest = runs["result"]
    for model in (model_from_checkpoint(runs, honest.checkpoints[1]), runs["other_order"].model_hash):
        attestation = forged(honest.to_attestation(1, "5Worker"), model_hash="0x" + model,
                             artifact_uri=runs["store"].uri(model), metrics=true_metrics(runs, model))
        verdict, segments = judge(runs, attestation)
        assert not verdict.accept and segments == []
        assert failed(verdict) == ["final_model", "metric"], verdict.reasons


def test_checkpoints_of_another_spec_are_rejected(runs):
    """The final model is honest, but the trajectory (and its root, consistently) is another task's run."""
    attestation = runs["result"].to_attestation(1, "5Worker")
    other = runs["other"]
    attestation = forged(attestation, checkpoints=["0x" + h for h in other.checkpoints],
                         trajectory_root="0x" + other.trajectory_root)
    verdict, segments = judge(runs, attestation)
    assert not verdict.accept and segments == []
    assert failed(verdict) == ["trajectory_schedule", "final_model", "metric"]
    # another task's run as a whole, model included: the same two
    verdict, _ = judge(runs, other.to_attestation(1, "5Worker"))
    assert failed(verdict) == ["trajectory_schedule", "final_model", "metric"]


def test_checkpoints_from_another_data_order_fail_the_replay(runs):
    """Same spec, initialisation, schedule and an end-consistent model: only the replays see the other order."""
    verdict, segments = judge(runs, runs["other_order"].to_attestation(1, "5Worker"))
    assert not verdict.accept
    assert failed(verdict) == [f"segment[{i}]" for i in segments] and len(segments) == 4


def relabelled(runs, result) -> Attestation:
    """`result`'s artifacts with their metadata naming the task's spec (a worker lying in its metadata)."""
    return forged(result.to_attestation(1, "5Worker"),
                  **relabel(runs["store"], result.checkpoints, result.model_hash, runs["spec"].spec_hash_hex()))


def test_weights_of_another_architecture_fail_the_checks_never_the_validator(runs):
    """Another architecture's run (hidden=32): as it is, another spec's trajectory; relabelled with the task's
    spec hash it passes the trajectory checks, and its weights cannot be loaded: the metric check fails with
    the error (it used to raise out of the daemon), the replays fail, nothing raises."""
    other = runs["other_architecture"]
    verdict, _ = judge(runs, other.to_attestation(1, "5Worker"))
    assert failed(verdict) == ["trajectory_schedule", "final_model", "metric"]
    verdict, segments = judge(runs, relabelled(runs, other), spot_checks=2)
    assert not verdict.accept and verdict.measured_metric == 0
    assert failed(verdict) == ["metric"] + [f"segment[{i}]" for i in segments]
    [metric] = [c for c in verdict.checks if c.name == "metric"]
    assert "cannot be evaluated" in metric.detail["reason"] and "size mismatch" in metric.detail["error"]


def test_a_model_that_is_not_ptts1_is_rejected_and_measuring_it_is_a_failed_check(runs):
    from workers.validator import ModelUnusable

    store = runs["store"]
    junk = store.put(b"\x80\x04 a pickle, say")
    attestation = forged(runs["result"].to_attestation(1, "5Worker"), model_hash="0x" + junk,
                         artifact_uri=store.uri(junk))
    verdict, _ = judge(runs, attestation)
    assert failed(verdict) == ["final_model", "metric"]
    [final] = [c for c in verdict.checks if c.name == "final_model"]
    assert "unreadable" in final.detail["reason"]
    with pytest.raises(ModelUnusable, match="TensorFormatError"):  # measure() itself: typed, for the caller
        daemon_for(runs).measure(runs["spec"], junk)


def test_model_not_in_store_is_rejected_without_measuring(runs):
    attestation = forged(runs["result"].to_attestation(1, "5Worker"),
                         model_hash="0x" + blake2_256_hex(b"never stored"))
    verdict, segments = judge(runs, attestation)
    assert not verdict.accept and segments == [] and verdict.measured_metric == 0
    assert any(r.startswith("model_hash") for r in verdict.reasons)


def test_revealed_holdout_is_measured_against_the_target(runs):
    from workers.validator import ValidatorConfig, ValidatorDaemon

    spec, store = runs["spec"], runs["store"]
    attestation = runs["result"].to_attestation(1, "5Worker")
    daemon = ValidatorDaemon(ValidatorConfig(chain_url="ws://unused", key="//Charlie", spot_checks=1), store=store)
    task = SimpleNamespace(spec=SimpleNamespace(spec_hash="0x" + spec.spec_hash_hex(),
                                                spec_uri=Bytes(store.uri(spec.spec_hash_hex()).encode()),
                                                higher_is_better=True, eval_target=800_000))
    size = len(store.get(spec.dataset.hash))
    # the requester's data stands for the holdout: the commitment binds its hash and size
    holdout = SimpleNamespace(holdout_uri=Bytes(spec.dataset.uri.encode()), holdout_hash="0x" + spec.dataset.hash,
                              holdout_size=size)
    verdict, _, _ = daemon.verify(1, task, attestation, RANDOMNESS, holdout)
    [check] = [c for c in verdict.checks if c.name == "holdout"]
    assert check.ok and verdict.accept, verdict.reasons
    elsewhere = "file://" + str(store.uri(spec.dataset.hash).removeprefix("file://")) + ".copy"
    for unusable in (SimpleNamespace(holdout_uri=Bytes(b"file:///nonexistent/holdout.ptts"),
                                     holdout_hash="0x" + "11" * 32, holdout_size=10),
                     SimpleNamespace(holdout_uri=Bytes(b"file:///dev/zero"), holdout_hash="0x" + "22" * 32,
                                     holdout_size=10),
                     SimpleNamespace(holdout_uri=Bytes(elsewhere.encode()), holdout_hash="0x" + "33" * 32,
                                     holdout_size=size - 1)):
        verdict, _, _ = daemon.verify(1, task, attestation, RANDOMNESS, unusable)
        [check] = [c for c in verdict.checks if c.name == "holdout"]
        assert check.ok and "skipped" in check.detail, check  # the requester's failure never costs the worker
    task.spec.eval_target = 999_999  # a target out of reach on the holdout: rejected
    verdict, _, _ = daemon.verify(1, task, attestation, RANDOMNESS, holdout)
    assert not verdict.accept and [r.split(":")[0] for r in verdict.reasons] == ["holdout"]


# The daemon: one result whose judging fails never stops it -------------------------------------------------
def test_a_result_whose_judging_fails_is_retried_then_abstained_and_the_others_judged(tmp_path):
    from workers.observers import Recorder
    from workers.validator import ValidatorConfig, ValidatorDaemon, ValidatorState

    path = tmp_path / "state.json"

    def daemon(delay: float = 0.0) -> ValidatorDaemon:
        d = ValidatorDaemon(ValidatorConfig(chain_url="ws://unused", key="//Charlie", max_judge_attempts=3,
                                            retry_delay_s=delay), store=ArtifactStore(tmp_path / "store"))
        d.state, d.state_path = ValidatorState.load(path), path
        d._judge = judge
        return d

    judged: list[int] = []

    def judge(task_id: int, entry: dict) -> bool:
        judged.append(task_id)
        if task_id == 7:
            raise RuntimeError("Error(s) in loading state_dict: size mismatch for fc.weight")
        return True

    first = daemon()
    first.state.pending = {"7": {"attestation_hash": "aa" * 32}, "8": {"attestation_hash": "bb" * 32}}
    first._judge_pending()
    assert judged == [7, 8] and list(first.state.pending) == ["7"]  # the other result is judged meanwhile
    assert first.state.pending["7"]["errors"] == 1 and "size mismatch" in first.state.pending["7"]["last_error"]
    # a restart (the count is in the state file) goes on counting; the next try waits for its delay
    waiting = daemon(delay=60.0)
    waiting._judge_pending()
    assert judged == [7, 8, 7] and waiting.state.pending["7"]["errors"] == 2
    waiting._judge_pending()
    assert judged == [7, 8, 7]  # not before retry_at
    last = daemon()
    abstained = Recorder(maxlen=10, only={"abstained"})
    last.subscribe(abstained)
    last.state.pending["7"]["retry_at"] = 0
    last._judge_pending()
    assert judged == [7, 8, 7, 7] and not last.state.pending and not ValidatorState.load(path).pending
    [skipped] = abstained.of("abstained")
    assert skipped["task_id"] == 7 and "judging failed 3 times" in skipped["reason"]


def test_a_lost_chain_connection_still_ends_the_daemons_loop(tmp_path):
    """Not a result's doing: run() reports it and exits (as before), nothing is counted against the result."""
    from runtime_bindings.errors import ConnectionLost
    from workers.validator import ValidatorConfig, ValidatorDaemon

    d = ValidatorDaemon(ValidatorConfig(chain_url="ws://unused", key="//Charlie"), store=ArtifactStore(tmp_path))
    d.state.pending = {"7": {"attestation_hash": "aa" * 32}}

    def judge(task_id: int, entry: dict) -> bool:
        raise ConnectionLost("the node went away")
    d._judge = judge
    with pytest.raises(ConnectionLost):
        d._judge_pending()
    assert "errors" not in d.state.pending["7"]
