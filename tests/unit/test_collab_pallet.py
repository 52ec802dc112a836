"""CollaborativeModels in process (devnet/runtime/pallets/collab.py): models that learn from every add_data in
integer fixed point, DeCAI's Deposit-Refund-Take and Points, and every bad input refused by name with nothing
changed."""
from __future__ import annotations

from math import isqrt
from typing import Any

import pytest
from fl_pallet_harness import CLIENTS, OUTSIDER, REQUESTER, FlHarness

from devnet.runtime.framework import ModuleError
from devnet.runtime.pallets.collab import CollaborativeModels as CM
from paratrain_api.collab_classifiers import TO_FLOAT

PALLET = "CollaborativeModels"
DAY = 86_400
WAITS = {"refund_wait_s": DAY, "owner_claim_wait_s": 5 * DAY, "any_claim_wait_s": 9 * DAY}
COST_WEIGHT = 10**9
ALICE, BOB, CAROL = CLIENTS[:3]


def drt(**waits: int) -> Any:
    return "DepositRefundTake", {"waits": {**WAITS, **waits}, "cost_weight": COST_WEIGHT}


def perceptron(features: int = 2, intercept: int = 0) -> Any:
    return "Perceptron", {"weights": [0] * features, "intercept": intercept, "learning_rate": TO_FLOAT}


def centroid(features: int = 2, classes: int = 2) -> Any:
    return "NearestCentroid", {"centroids": [[0] * features for _ in range(classes)], "counts": [0] * classes}


def bayes(features: int = 3, classes: int = 2) -> Any:
    return "NaiveBayes", {"num_samples": [0] * classes, "total_feature_count": [0] * classes,
                          "feature_counts": [[0] * features for _ in range(classes)], "smoothing": TO_FLOAT}


def dense(*values: float) -> Any:
    return "Dense", [round(v * TO_FLOAT) for v in values]


class Harness(FlHarness):
    def call(self, who: Any, call: str, **args: Any) -> str | None:
        refused = self.dispatch(who, call, PALLET, **args)
        return refused.removeprefix(f"{PALLET}.") if refused else None

    def deploy(self, initial: Any, *, features: int = 2, classes: int = 2, mechanism: Any = None) -> int:
        model = CM.NextModelId.get(self.state)
        assert self.call(REQUESTER, "deploy", features=features, classes=classes, initial=initial,
                         mechanism=mechanism or drt()) is None
        return model

    def add(self, who: Any, model: int, values: Any, label: int) -> int:
        contribution = CM.Models.get(self.state, model)["contributions"]
        assert self.call(who, "add_data", model=model, input=values, label=label) is None
        return contribution

    def params(self, model: int) -> dict[str, Any]:
        return CM.Parameters.get(self.state, model)[1]

    def wait(self, seconds: int) -> None:
        self.advance(1, ms_per_block=seconds * 1000)

    def predict(self, model: int, values: Any) -> int:
        return self.runtime.collab.predict_at(self.state, model, values)

    def refused(self, error: str, who: Any, call: str, **args: Any) -> None:
        before, events = self.snapshot(), len(self.ctx.events)
        assert self.call(who, call, **args) == error
        assert self.snapshot() == before and len(self.ctx.events) == events


@pytest.fixture
def h() -> Harness:
    return Harness()


def test_a_perceptron_learns_only_from_its_mispredictions(h: Harness) -> None:
    model = h.deploy(perceptron())
    assert h.predict(model, dense(1, 0)) == 0
    h.add(ALICE, model, dense(1, 0), 0)                  # predicted right: no update
    assert h.params(model)["weights"] == [0, 0]
    h.add(ALICE, model, dense(1, 0.5), 1)                # mispredicted: w += lr * x
    assert h.params(model)["weights"] == [TO_FLOAT, TO_FLOAT // 2]
    assert h.predict(model, dense(1, 0)) == 1
    h.add(BOB, model, ("Sparse", [1]), 0)               # sparse: the present features move by lr
    assert h.params(model)["weights"] == [TO_FLOAT, TO_FLOAT // 2 - TO_FLOAT]


def test_a_nearest_centroid_keeps_running_means(h: Harness) -> None:
    model = h.deploy(centroid())
    h.add(ALICE, model, dense(2, 0), 1)
    h.add(BOB, model, dense(4, 2), 1)
    assert h.params(model)["centroids"][1] == [3 * TO_FLOAT, TO_FLOAT] and h.params(model)["counts"] == [0, 2]
    assert h.predict(model, dense(3, 1)) == 1 and h.predict(model, dense(0, 0)) == 0


def test_naive_bayes_counts_and_predicts_the_likelier_class(h: Harness) -> None:
    model = h.deploy(bayes(), features=3)
    h.add(ALICE, model, ("Sparse", [0, 0, 1]), 0)
    h.add(BOB, model, ("Sparse", [2]), 1)
    p = h.params(model)
    assert p["num_samples"] == [1, 1] and p["total_feature_count"] == [3, 1]
    assert p["feature_counts"] == [[2, 1, 0], [0, 0, 1]]
    assert h.predict(model, ("Sparse", [0])) == 0 and h.predict(model, ("Sparse", [2])) == 1


def test_the_deposit_falls_with_the_square_root_of_the_time_since_the_last_update(h: Harness) -> None:
    model = h.deploy(perceptron())
    h.wait(100)
    before = h.account(ALICE)
    h.add(ALICE, model, dense(1, 0), 0)
    deposit = COST_WEIGHT * 3600 // isqrt(100)
    assert h.account(ALICE)["reserved"] - before["reserved"] == deposit
    assert h.events("DataAdded", PALLET)[-1]["deposit"] == deposit
    h.add(BOB, model, dense(1, 0), 0)                    # the same second: the divisor is 1
    assert h.events("DataAdded", PALLET)[-1]["deposit"] == COST_WEIGHT * 3600


def test_a_good_contribution_is_refunded_after_the_wait_once(h: Harness) -> None:
    model = h.deploy(perceptron())
    h.wait(10)
    c = h.add(ALICE, model, dense(1, 0), 0)
    held = h.account(ALICE)["reserved"]
    h.refused("TooEarly", ALICE, "refund", model=model, contribution=c)
    h.wait(DAY)
    h.refused("NotContributor", BOB, "refund", model=model, contribution=c)
    assert h.call(ALICE, "refund", model=model, contribution=c) is None
    assert h.account(ALICE)["reserved"] == 0 < held
    assert CM.ContributorStats.get(h.state, model, ALICE.public_key)["good"] == 1
    h.refused("AlreadyClaimed", ALICE, "refund", model=model, contribution=c)


def test_a_bad_contribution_is_taken_in_proportion_to_the_reporters_good_data(h: Harness) -> None:
    model = h.deploy(perceptron(intercept=-1))            # predicts 0 until taught otherwise
    h.wait(100)
    good = [h.add(ALICE, model, dense(-1, 0), 0), h.add(BOB, model, dense(0, -1), 0)]
    h.wait(10)
    bad = h.add(CAROL, model, dense(1, 1), 1)            # mispredicted: the perceptron learns it ...
    h.wait(10)
    h.add(ALICE, model, dense(1, 1), 0)                  # ... and unlearns it
    deposit = CM.Contributions.get(h.state, model, bad)["deposit"]
    h.wait(DAY)
    for who, c in zip((ALICE, BOB), good):
        assert h.call(who, "refund", model=model, contribution=c) is None
    h.refused("OwnContribution", CAROL, "report", model=model, contribution=bad)
    h.refused("ModelDisagrees", CAROL, "refund", model=model, contribution=bad)
    h.refused("NoGoodContributions", OUTSIDER, "report", model=model, contribution=bad)
    free = h.account(ALICE)["free"]
    assert h.call(ALICE, "report", model=model, contribution=bad) is None
    assert h.account(ALICE)["free"] - free == deposit * 1 // 2   # Alice has 1 of the 2 good contributions
    h.refused("AlreadyClaimed", ALICE, "report", model=model, contribution=bad)
    assert h.call(BOB, "report", model=model, contribution=bad) is None
    assert CM.Contributions.get(h.state, model, bad)["claimable"] == 0
    h.refused("NothingToClaim", BOB, "report", model=model, contribution=bad)


def test_no_take_while_the_model_agrees_until_the_owner_and_then_anyone_may(h: Harness) -> None:
    model = h.deploy(perceptron())
    h.wait(100)
    mine = h.add(ALICE, model, dense(1, 0), 0)
    other = h.add(BOB, model, dense(-1, 0), 0)
    h.wait(DAY)
    assert h.call(BOB, "refund", model=model, contribution=other) is None
    h.refused("ModelAgrees", BOB, "report", model=model, contribution=mine)
    h.wait(4 * DAY)
    deposit = CM.Contributions.get(h.state, model, mine)["deposit"]
    free = h.account(REQUESTER)["free"]
    assert h.call(REQUESTER, "report", model=model, contribution=mine) is None   # the owner, after its wait
    assert h.account(REQUESTER)["free"] - free == deposit


def test_after_the_any_claim_wait_anyone_takes_what_is_left(h: Harness) -> None:
    model = h.deploy(perceptron())
    h.wait(100)
    mine = h.add(ALICE, model, dense(1, 0), 0)
    h.wait(9 * DAY)
    assert h.call(OUTSIDER, "report", model=model, contribution=mine) is None
    assert h.account(ALICE)["reserved"] == 0


def test_points_hold_no_deposit_and_count_good_contributions(h: Harness) -> None:
    model = h.deploy(perceptron(), mechanism=("Points", {"waits": WAITS}))
    reserved = h.account(ALICE)["reserved"]
    c = h.add(ALICE, model, dense(1, 0), 0)
    assert h.account(ALICE)["reserved"] == reserved
    h.wait(DAY)
    assert h.call(ALICE, "refund", model=model, contribution=c) is None
    assert CM.ContributorStats.get(h.state, model, ALICE.public_key) == {"submitted": 1, "good": 1}
    h.refused("AlreadyClaimed", BOB, "report", model=model, contribution=c)


@pytest.mark.parametrize("args, error", [
    ({"initial": perceptron(3)}, "DimensionMismatch"),
    ({"initial": perceptron(), "classes": 3}, "DimensionMismatch"),
    ({"initial": centroid(), "features": 0}, "InvalidDimensions"),
    ({"initial": centroid(classes=17), "classes": 17}, "InvalidDimensions"),
    ({"initial": perceptron(), "mechanism": drt(owner_claim_wait_s=1)}, "InvalidMechanism"),
])
def test_a_bad_deployment_is_refused_by_name(h: Harness, args: dict[str, Any], error: str) -> None:
    h.refused(error, REQUESTER, "deploy", **{"features": 2, "classes": 2, "mechanism": drt(), **args})


@pytest.mark.parametrize("initial, values, label, error", [
    (perceptron(), dense(1, 2, 3), 0, "DimensionMismatch"),
    (perceptron(), dense(1, 0), 2, "ClassOutOfRange"),
    (perceptron(), ("Sparse", [2]), 0, "FeatureOutOfRange"),
    (perceptron(), ("Dense", [10**13, 0]), 0, "ValueOutOfRange"),
    (bayes(2), dense(1, 0), 0, "InputNotSupported"),
])
def test_bad_data_is_refused_by_name(h: Harness, initial: Any, values: Any, label: int, error: str) -> None:
    model = h.deploy(initial)
    h.refused(error, ALICE, "add_data", model=model, input=values, label=label)


def test_a_missing_model_or_contribution_is_named(h: Harness) -> None:
    h.refused("ModelNotFound", ALICE, "add_data", model=7, input=dense(1, 0), label=0)
    model = h.deploy(perceptron())
    h.refused("ContributionNotFound", ALICE, "refund", model=model, contribution=3)
    with pytest.raises(ModuleError, match=r"CollaborativeModels\.ModelNotFound"):
        h.predict(9, dense(1, 0))


def test_a_contributor_who_cannot_pay_the_deposit_changes_nothing(h: Harness) -> None:
    model = h.deploy(perceptron(), mechanism=("DepositRefundTake", {"waits": WAITS, "cost_weight": 10**30}))
    h.refused("CannotPayDeposit", ALICE, "add_data", model=model, input=dense(1, 0), label=0)
