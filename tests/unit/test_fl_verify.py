"""workers.fl.verify (and workers.fl.model): a validator's round checks on real digits updates, trained here
with the task's recipe, without Flower, gRPC, sockets or a chain."""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

from workers.fl import model as fl_model
from workers.fl import rules, verify
from workers.fl.arrays import model_bytes, model_hash, update_bytes, update_hash
from workers.fl.partition import federated_split
from workers.fl.spec import PERBILL, Participant, Policy, build_spec, parse_rule, round_document
from workers.fl.verify import ChainRound, ClientScore, Comparison

CLIENTS = 9
ACCOUNTS = [f"5{chr(65 + i)}" + "x" * 46 for i in range(CLIENTS)]   # stand-ins: ascending, SS58-shaped
HONEST = 5              # clients 0..4; 5 sign-flip, 6 x1000, 7 free rider, 8 flipped labels


@pytest.fixture(scope="module")
def spec():
    return build_spec(recipe="digits_mlp", rule="fedmedian", rounds=3, min_clients_per_round=3, seed=1,
                      hyperparameters={"local_epochs": 1, "lr": 0.01, "hidden": 32})


@pytest.fixture(scope="module")
def split():
    return federated_split("digits", CLIENTS, alpha=1.0, seed=3)


@pytest.fixture(scope="module")
def round_one(spec, split):
    """A round past the first few: the base is the initial model trained centrally on the honest shards (as
    earlier rounds would have brought it along), then every client's update from it."""
    honest = [fl_model.read_examples(s.data) for s in split.shards[:HONEST]]
    warm = replace(spec, hyperparameters={**spec.hyperparameters, "local_epochs": 3})
    pooled = fl_model.Examples(np.concatenate([e.x for e in honest]), np.concatenate([e.y for e in honest]), 10)
    base = fl_model.train(warm, fl_model.initial_model(spec), pooled, seed=0)
    updates = []
    for i, shard in enumerate(split.shards):
        examples = fl_model.read_examples(shard.data)
        if i == 8:
            examples = fl_model.Examples(examples.x, 9 - examples.y, examples.classes)
        trained = fl_model.train(spec, base, examples, seed=i)
        if i == 5:
            trained = {k: base[k] - (v - base[k]) for k, v in trained.items()}
        elif i == 6:
            trained = {k: (v * 1000).astype(v.dtype) for k, v in trained.items()}
        elif i == 7:
            trained = {k: v.copy() for k, v in base.items()}
        updates.append(trained)
    weights = [s.num_examples for s in split.shards]
    return base, updates, weights


def _objects(spec, base, updates, weights, rule_text: str, *, global_model=None):
    rule = parse_rule(rule_text)
    committed = rules.aggregate(rule, updates, weights) if global_model is None else global_model
    participants = [Participant(a, update_hash(u).hex(), n, "sr25519", "00" * 64)
                    for a, u, n in zip(ACCOUNTS, updates, weights, strict=True)]
    doc = round_document(task_id=4, round=1, rule=rule, base_model_hash=model_hash(base),
                         global_model_hash=model_hash(committed), participants=participants,
                         flower_version="1.42.0", run_id=9)
    chain = ChainRound(task_id=4, round=1, rule=rule.text, base_model_hash=model_hash(base).hex(),
                       global_model_hash=model_hash(committed).hex(),
                       participants=tuple(zip(ACCOUNTS, weights, strict=True)))
    return chain, doc, model_bytes(base), model_bytes(committed), [update_bytes(u) for u in updates]


def test_pure_modules_load_no_flower_grpc_chain_or_bindings() -> None:
    code = ("import sys, workers.fl.arrays, workers.fl.spec, workers.fl.rules, workers.fl.verify, workers.fl.model; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('flwr', 'grpc', 'runtime_bindings', 'devnet', 'scalecodec', 'substrateinterface', 'ray')); "
            "print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_initial_model_is_the_seeded_recipe_model(spec) -> None:
    a, b = fl_model.initial_model(spec), fl_model.initial_model(spec)
    assert model_hash(a) == model_hash(b)
    assert list(a) == ["0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"]
    assert a["4.weight"].shape == (10, 32) and a["0.weight"].dtype == np.float32
    other = build_spec(recipe="digits_mlp", rule="fedmedian", rounds=3, min_clients_per_round=3, seed=2,
                       hyperparameters={"hidden": 32})
    assert model_hash(fl_model.initial_model(other)) != model_hash(a)


def test_model_refuses_arrays_of_another_architecture(spec, split) -> None:
    base = fl_model.initial_model(spec)
    holdout = fl_model.read_examples(split.holdout)
    with pytest.raises(fl_model.ModelError, match="shape"):
        verify.measure(spec, {**base, "0.bias": np.zeros(3, np.float32)}, holdout)
    with pytest.raises(fl_model.ModelError, match="not the recipe model"):
        verify.measure(spec, {"x": np.zeros(3, np.float32)}, holdout)


def test_training_moves_the_model_and_is_deterministic(spec, split) -> None:
    base = fl_model.initial_model(spec)
    shard = fl_model.read_examples(split.shards[0].data)
    one, two = fl_model.train(spec, base, shard, 5), fl_model.train(spec, base, shard, 5)
    assert update_hash(one) == update_hash(two)
    assert update_hash(fl_model.train(spec, base, shard, 6)) != update_hash(one)
    assert not np.array_equal(one["0.weight"], base["0.weight"])
    holdout = fl_model.read_examples(split.holdout)
    assert verify.measure(spec, one, holdout) > verify.measure(spec, base, holdout)


def test_an_honest_round_is_accepted_and_poisoners_rejected(spec, split, round_one) -> None:
    base, updates, weights = round_one
    chain, doc, base_b, global_b, update_b = _objects(spec, base, updates, weights, "fedmedian")
    value = verify.round_verdict(spec, chain, doc.canonical_bytes(), base_b, global_b, update_b, split.holdout)
    assert value.accept, value.reasons
    assert value.rejected_clients == [ACCOUNTS[5], ACCOUNTS[6]]          # sign flip, x1000: slashed
    assert len(value.contributions) == CLIENTS
    assert value.contributions[5:] == [0, 0, 0, 0]                        # and the free rider, flipped labels
    assert all(0 <= f <= PERBILL for f in value.contributions)
    assert sum(f > 0 for f in value.contributions[:HONEST]) >= 3, value.contributions
    _, rest = verify.split_holdout(fl_model.read_examples(split.holdout), 0.2, seed=1)
    assert value.measured_metric == verify.to_micro(verify.measure(spec, rules.median(updates), rest))
    evidence = json.loads(value.evidence)
    assert evidence["kind"] == "fl-round-evidence" and evidence["reference"] == "holdout-root"
    assert evidence["aggregate"]["ok"] and evidence["aggregate"]["max_abs_diff"] == 0.0
    assert evidence["clients"][7]["is_copy"] and not evidence["clients"][7]["rejected"]
    assert not evidence["clients"][8]["rejected"]
    assert evidence["clients"][6]["norm_ratio"] > 50 and evidence["clients"][5]["cos"] < -0.2
    assert evidence["measured"]["examples"] + evidence["measured"]["root_examples"] == split.holdout_examples


def test_without_a_holdout_clients_are_judged_against_the_median(spec, round_one) -> None:
    base, updates, weights = round_one
    chain, doc, base_b, global_b, update_b = _objects(spec, base, updates, weights, "fedmedian")
    value = verify.round_verdict(spec, chain, doc.canonical_bytes(), base_b, global_b, update_b, None)
    assert value.accept and value.measured_metric == 0
    assert value.rejected_clients == [ACCOUNTS[5], ACCOUNTS[6]]
    assert value.contributions[7] == 0 and sum(f > 0 for f in value.contributions[:HONEST]) >= 3
    assert json.loads(value.evidence)["reference"] == "median"


def test_an_unusable_holdout_is_judged_without_it(spec, round_one) -> None:
    base, updates, weights = round_one
    chain, doc, base_b, global_b, update_b = _objects(spec, base, updates, weights, "fedmedian")
    value = verify.round_verdict(spec, chain, doc.canonical_bytes(), base_b, global_b, update_b, b"\xff\x00")
    assert value.accept and value.rejected_clients == [ACCOUNTS[5], ACCOUNTS[6]]
    assert any("holdout is unusable" in r for r in value.reasons)


def test_a_tampered_aggregate_is_rejected(spec, round_one) -> None:
    base, updates, weights = round_one
    honest = rules.aggregate(parse_rule("fedmedian"), updates, weights)
    tampered = {k: v.copy() for k, v in honest.items()}
    tampered["0.bias"][0] += np.float32(1e-3)
    chain, doc, base_b, global_b, update_b = _objects(spec, base, updates, weights, "fedmedian",
                                                      global_model=tampered)
    value = verify.round_verdict(spec, chain, doc.canonical_bytes(), base_b, global_b, update_b, None)
    assert not value.accept and value.contributions == [0] * CLIENTS and value.rejected_clients == []
    assert "differs from the recomputed aggregate" in value.reasons[0]


def test_fedavg_with_the_poisoners_is_consistent_so_accepted_but_they_are_rejected(spec, split, round_one) -> None:
    base, updates, weights = round_one
    chain, doc, base_b, global_b, update_b = _objects(spec, base, updates, weights, "fedavg")
    value = verify.round_verdict(spec, chain, doc.canonical_bytes(), base_b, global_b, update_b, split.holdout)
    assert value.accept
    assert ACCOUNTS[6] in value.rejected_clients and ACCOUNTS[5] in value.rejected_clients
    assert not set(value.rejected_clients) & set(ACCOUNTS[:HONEST])


def test_tolerance_is_honoured() -> None:
    a = {"w": np.array([1.0, 2.0], np.float32)}
    b = {"w": np.array([1.0, 2.0 + 2e-6], np.float32)}
    assert verify.compare(a, a, 0) == Comparison(True, 0.0, "")
    assert not verify.compare(a, b, 0).ok
    assert verify.compare(a, b, 10_000).ok                # 1e-5
    result = verify.compare(a, b, 1_000)                  # 1e-6
    assert not result.ok and result.max_abs_diff == pytest.approx(2e-6, rel=0.1)
    assert not verify.compare(a, {"w": np.array([1.0, 2.0])}, 10**9).ok       # dtype
    assert not verify.compare(a, {"v": a["w"]}, 10**9).ok                       # names
    assert not verify.compare(a, {"w": np.array([1.0, np.nan], np.float32)}, 10**9).ok


def test_krum_accepts_another_selection_only_between_tied_scores() -> None:
    same = {"w": np.array([1.0, 1.0], np.float32)}
    twin = {"w": np.array([1.0, 1.0], np.float32)}
    near = {"w": np.array([1.1, 0.9], np.float32)}
    far = {"w": np.array([9.0, 9.0], np.float32)}
    updates, weights = [near, same, twin, far, {"w": np.array([1.2, 1.0], np.float32)}], [1, 1, 1, 1, 1]
    rule = parse_rule("multikrum:1:2")
    scores = rules.krum_scores(updates, 1)
    assert scores[1] == scores[2]
    assert sorted(map(sorted, verify.tied_selections(scores, 2))) == [[1, 2], [1, 2]]
    reversed_pair = rules.weighted_average([twin, same], [1, 1])
    assert verify.compare_round(rule, updates, weights, reversed_pair, 0).ok
    wrong = rules.weighted_average([same, far], [1, 1])
    result = verify.compare_round(rule, updates, weights, wrong, 0)
    assert not result.ok and "no selection among tied" in result.reason


def test_tied_selections_are_bounded() -> None:
    assert len(verify.tied_selections([1.0] * 12, 6)) == verify.MAX_ALTERNATIVES
    assert verify.tied_selections([3.0, 1.0, 2.0], 2) == [[1, 2]]


def test_client_scores() -> None:
    base = {"w": np.zeros(3, np.float32)}
    ref = {"w": np.array([1.0, 0.0, 0.0], np.float32)}
    scores = verify.client_scores(base, [{"w": np.array([2.0, 0.0, 0.0], np.float32)},
                                         {"w": np.array([-1.0, 0.0, 0.0], np.float32)},
                                         {"w": np.zeros(3, np.float32)},
                                         {"w": np.array([0.0, 3.0, 0.0], np.float32)}], ref)
    assert scores == [ClientScore(1.0, 2.0, False), ClientScore(-1.0, 1.0, False), ClientScore(0.0, 0.0, True),
                      ClientScore(0.0, 3.0, False)]


def test_decide_follows_the_policy() -> None:
    policy = Policy()
    scores = [ClientScore(0.8, 1.0, False), ClientScore(-0.9, 1.0, False), ClientScore(0.9, 1000.0, False),
              ClientScore(0.0, 0.0, True), ClientScore(-0.05, 1.0, False), ClientScore(0.5, 1.0, False),
              ClientScore(-0.1, 1.0, False), ClientScore(0.05, 1.0, False)]
    loo = (0.80, [0.79, 0.80, 0.80, 0.80, 0.90, 0.83, 0.80, 0.90])
    rejected, factors = verify.decide(scores, loo, policy)
    assert rejected == [1, 2, 4]          # sign flip, x1000, a harmful update pointing away from the root's
    # 5: improves by 0.03 > loo_tolerance; 6: cos clipped; 7: as harmful as 4 but not pointing away (an honest
    # client's skewed shard can do that): worth nothing, not slashed
    assert factors == [800_000_000, 0, 0, 0, 0, 0, 0, 0]
    assert verify.decide(scores, loo, Policy(loo_tolerance=0.05))[1][5] == 500_000_000
    # a lower-is-better metric: a gain is a drop
    rejected, _ = verify.decide(scores, (0.5, [0.5, 0.5, 0.5, 0.5, 0.4, 0.5, 0.5, 0.4]), policy,
                                higher_is_better=False)
    assert rejected == [1, 2, 4]
    assert verify.decide(scores, None, policy)[0] == [1, 2]


def test_leave_one_out_aggregates_the_rest() -> None:
    updates = [{"w": np.array([v], np.float64)} for v in (1.0, 2.0, 6.0)]
    full, without = verify.leave_one_out(parse_rule("fedavg"), updates, [1, 1, 1], lambda a: float(a["w"][0]))
    assert full == pytest.approx(3.0) and without == [pytest.approx(4.0), pytest.approx(3.5), pytest.approx(1.5)]
    assert verify.leave_one_out(parse_rule("fedavg"), updates[:1], [1], lambda a: 7.0) == (7.0, [7.0])


def test_split_holdout_is_seeded_and_disjoint(split) -> None:
    holdout = fl_model.read_examples(split.holdout)
    root, rest = verify.split_holdout(holdout, 0.2, seed=1)
    again, _ = verify.split_holdout(holdout, 0.2, seed=1)
    assert len(root) + len(rest) == len(holdout) and len(root) == round(0.2 * len(holdout))
    assert np.array_equal(root.x, again.x)
    assert not np.array_equal(verify.split_holdout(holdout, 0.2, seed=2)[0].x, root.x)
    with pytest.raises(fl_model.ModelError):
        verify.split_holdout(holdout.subset(np.array([0])), 0.2, 1)


def _doc_problems(spec, round_one, **chain_changes):
    base, updates, weights = round_one
    chain, doc, *_ = _objects(spec, base, updates, weights, "fedmedian")
    fields = {**chain.__dict__, **chain_changes}
    return verify.check_round_document(doc, ChainRound(**fields))


def test_round_document_must_say_what_the_chain_says(spec, round_one) -> None:
    assert _doc_problems(spec, round_one) == []
    assert "task 4 round 1" in _doc_problems(spec, round_one, round=2)[0]
    assert "rule" in _doc_problems(spec, round_one, rule="fedavg")[0]
    assert "base_model_hash" in _doc_problems(spec, round_one, base_model_hash="00" * 32)[0]
    assert "global_model_hash" in _doc_problems(spec, round_one, global_model_hash="00" * 32)[0]
    _, _, weights = round_one
    swapped = tuple(zip([ACCOUNTS[1], ACCOUNTS[0], *ACCOUNTS[2:]], weights, strict=True))
    assert "chain's order" in _doc_problems(spec, round_one, participants=swapped)[0]
    fewer = tuple(zip(ACCOUNTS, [w + 1 for w in weights], strict=True))
    assert len(_doc_problems(spec, round_one, participants=fewer)) == CLIENTS


def test_objects_that_are_not_what_they_claim_reject_the_round(spec, round_one) -> None:
    base, updates, weights = round_one
    chain, doc, base_b, global_b, update_b = _objects(spec, base, updates, weights, "fedmedian")
    raw = doc.canonical_bytes()
    swapped = [update_b[1], update_b[0], *update_b[2:]]
    cases = [
        (verify.round_verdict(spec, chain, raw, base_b, global_b, swapped), "not the object its hash names"),
        (verify.round_verdict(spec, chain, raw, global_b, global_b, update_b), "base model"),
        (verify.round_verdict(spec, chain, raw, base_b, global_b, update_b[:-1]), "8 updates for 9"),
        (verify.round_verdict(spec, chain, raw + b" ", base_b, global_b, update_b), "round document is unusable"),
    ]
    for value, reason in cases:
        assert not value.accept and value.contributions == [0] * CLIENTS
        assert reason in "; ".join(value.reasons), value.reasons


def test_a_committed_update_with_nan_or_a_wrong_shape_rejects_the_round(spec, round_one) -> None:
    base, updates, weights = round_one
    bad = [dict(u) for u in updates]
    bad[2] = {**bad[2], "0.bias": np.full_like(bad[2]["0.bias"], np.nan)}
    bad[3] = {**bad[3], "2.bias": np.zeros(3, np.float32)}
    chain, doc, base_b, global_b, update_b = _objects(spec, base, updates, weights, "fedmedian")
    participants = list(doc.participants)
    for i in (2, 3):
        participants[i] = Participant(ACCOUNTS[i], update_hash(bad[i]).hex(), weights[i], "sr25519", "00" * 64)
        update_b[i] = update_bytes(bad[i])
    doc = round_document(task_id=4, round=1, rule="fedmedian", base_model_hash=doc.base_model_hash,
                         global_model_hash=doc.global_model_hash, participants=participants)
    value = verify.round_verdict(spec, chain, doc.canonical_bytes(), base_b, global_b, update_b)
    reasons = "; ".join(value.reasons)
    assert not value.accept and "NaN" in reasons and "shape" in reasons


def test_no_client_is_paid_for_a_round_without_a_learning_signal(spec, split, round_one) -> None:
    """After FedAvg took x1000 updates for a round or two, the base predicts one class: every update (the
    label-flipped one too) lines up with a root update that learns nothing, so nobody is paid; only the
    x1000 update, whose norm says it all, is still rejected."""
    base, _, weights = round_one
    poisoned = {k: (v * 1000).astype(v.dtype) for k, v in base.items()}
    next_round = []
    for i, shard in enumerate(split.shards):
        examples = fl_model.read_examples(shard.data)
        if i == 8:
            examples = fl_model.Examples(examples.x, 9 - examples.y, examples.classes)
        trained = fl_model.train(spec, poisoned, examples, seed=10 + i)
        if i == 5:
            trained = {k: poisoned[k] - (v - poisoned[k]) for k, v in trained.items()}
        elif i == 6:
            trained = {k: (v * 1000).astype(v.dtype) for k, v in trained.items()}
        next_round.append(trained)
    chain, doc, base_b, global_b, update_b = _objects(spec, poisoned, next_round, weights, "fedavg")
    value = verify.round_verdict(spec, chain, doc.canonical_bytes(), base_b, global_b, update_b, split.holdout)
    measured = json.loads(value.evidence)["measured"]
    assert value.accept and not measured["learning"], measured
    assert value.contributions == [0] * CLIENTS
    assert value.rejected_clients == [ACCOUNTS[6]]
    assert "no learning signal" in value.reasons[0]


def test_has_signal_when_anything_moved() -> None:
    assert verify.has_signal(0.5, 0.6, 0.5)
    assert verify.has_signal(0.5, 0.5, 0.4)      # a poisoned FedAvg round that made the model worse: judged
    assert not verify.has_signal(0.101, 0.101, 0.101)


def test_decide_without_a_learning_signal_pays_nobody_and_still_rejects() -> None:
    scores = [ClientScore(0.8, 1.0, False), ClientScore(-0.9, 1.0, False), ClientScore(0.5, 1000.0, False)]
    assert verify.decide(scores, None, Policy(), learning=False) == ([2], [0, 0, 0])
    assert verify.decide(scores, (0.5, [0.5, 0.5, 0.9]), Policy(), learning=False) == ([2], [0, 0, 0])


def test_far_worse_is_a_ratio_to_a_positive_yardstick() -> None:
    assert verify.far_worse(0.09, 0.51, 1 / 3) and not verify.far_worse(0.2, 0.51, 1 / 3)
    assert verify.far_worse(1.6, 0.5, 1 / 3, higher_is_better=False)          # a loss three times the yardstick's
    assert not verify.far_worse(1.4, 0.5, 1 / 3, higher_is_better=False)
    assert not verify.far_worse(-5.0, 0.0, 0.5) and not verify.far_worse(0.0, -1.0, 0.5)   # no ratio to take
    assert verify.far_worse(float("nan"), 0.5, 0.5) and verify.far_worse(float("inf"), 0.5, 0.5,
                                                                          higher_is_better=False)


def test_worthless_flags_own_models_far_below_the_reference() -> None:
    # the Byzantine matrix's first round: the reference 0.51, the label-flipped model 0.09, the weakest honest 0.20
    assert verify.worthless([0.09, 0.20, 0.45, 0.80], 0.51) == [True, False, False, False]
    assert verify.worthless([0.3, 2.0], 0.6, higher_is_better=False) == [False, True]


def test_valued_needs_a_live_base_and_a_global_model_that_kept_it() -> None:
    assert verify.valued(0.82, 0.51, 0.93)
    assert verify.valued(0.843, 0.51, 0.843)            # a good base the root update leaves where it was: valued
    assert not verify.valued(0.11, 0.51, 0.11)          # FedAvg after x1000: a near-constant predictor
    assert not verify.valued(0.20, 0.51, 0.24)
    assert not verify.valued(0.45, 0.51, 0.20)          # the aggregate lost most of what one root update gets
    assert verify.valued(0.45, 0.51, 0.34)
    assert not verify.valued(0.5, 0.3, 1.2, higher_is_better=False)


def test_decide_pays_nothing_to_unpaid_clients_or_in_a_round_not_valued() -> None:
    scores = [ClientScore(0.8, 1.0, False), ClientScore(0.15, 1.0, False), ClientScore(0.5, 1000.0, False)]
    assert verify.decide(scores, None, Policy()) == ([2], [800_000_000, 150_000_000, 0])
    assert verify.decide(scores, None, Policy(), unpaid=[False, True, False]) == ([2], [800_000_000, 0, 0])
    assert verify.decide(scores, None, Policy(), paying=False) == ([2], [0, 0, 0])   # poisoners still rejected
    with pytest.raises(ValueError, match="unpaid flags"):
        verify.decide(scores, None, Policy(), unpaid=[False])


def test_a_label_flipped_model_that_points_the_root_way_is_paid_nothing(split) -> None:
    """The first round from the initial model with the Byzantine matrix's hyperparameters: the update taught
    flipped labels still points roughly where the root update does (cos > 0, so the cosine alone would pay
    it, and leaving it out gains too little for leave-one-out to), but its own model measures near zero where
    the reference measures about 0.5: factor 0, not slashed; every honest client is paid."""
    matrix = build_spec(recipe="digits_mlp", rule="fedmedian", rounds=5, min_clients_per_round=3, seed=7,
                        hyperparameters={"local_epochs": 5, "batch_size": 32, "lr": 0.01, "hidden": 64})
    base = fl_model.initial_model(matrix)
    updates = []
    for i, shard in enumerate(split.shards):
        examples = fl_model.read_examples(shard.data)
        if i == 0:
            examples = fl_model.Examples(examples.x, 9 - examples.y, examples.classes)
        updates.append(fl_model.train(matrix, base, examples, seed=i))
    weights = [s.num_examples for s in split.shards]
    chain, doc, base_b, global_b, update_b = _objects(matrix, base, updates, weights, "fedmedian")
    value = verify.round_verdict(matrix, chain, doc.canonical_bytes(), base_b, global_b, update_b, split.holdout)
    evidence = json.loads(value.evidence)
    flipped, reference = evidence["clients"][0], evidence["measured"]["reference"] / verify.METRIC_SCALE
    assert value.accept and evidence["measured"]["valued"], evidence["measured"]
    assert flipped["cos"] > 0.05 and flipped["own"] < reference * verify.OWN_FLOOR, (flipped, reference)
    assert value.contributions[0] == 0 and value.rejected_clients == []
    assert all(f > 0 for f in value.contributions[1:]), value.contributions
    scores = [ClientScore(c["cos"], c["norm_ratio"], c["is_copy"]) for c in evidence["clients"]]
    without = [c["without"] for c in evidence["clients"]]
    assert verify.decide(scores, (evidence["loo_full"], without), matrix.policy)[1][0] > 0   # what it was paid before
