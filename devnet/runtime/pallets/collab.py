"""pallet_collaborative_models: small models that live in chain state and learn from every contribution, kept
honest by DeCAI's incentive mechanisms (Harris and Waggoner, microsoft/0xDeCA10B; docs/collab.md).

`deploy` stores a Perceptron, NearestCentroid or NaiveBayes model (paratrain_api/collab_classifiers.py: integer
fixed point, so every node computes the same update) with its incentive mechanism. `add_data` updates the model
in the same call, as DeCAI's CollaborativeTrainer does, and records the contribution. Predictions need no
transaction: the runtime API `CollaborativeModelsApi_predict` (devnet/runtime/apis.py).

Deposit, Refund and Take (DeCAI's Stakeable.sol, on chain semantics):

* the deposit of a contribution is ``cost_weight * 3600 / isqrt(now - last_update)`` (seconds; a divisor of 0
  counts as 1), held (reserved) on the contributor's account: contributing right after someone else costs the
  most, and the cost falls as the model goes untouched;
* `refund` by the contributor, once ``refund_wait_s`` passed since it contributed, if the model still predicts its
  label: the whole deposit comes back and the contribution counts as good data of the contributor;
* `report` (a take) by another contributor with good data, after the refund wait, if the model predicts
  otherwise: ``deposit * reporter_good / total_good`` (floor; 0 or more than is left: all that is left), at most
  once per reporter; after ``owner_claim_wait_s`` the model's owner, and after ``any_claim_wait_s`` anyone, takes
  all that is left with no other condition.

Points (DeCAI's Points.sol): no deposit; a refund under the same conditions counts the contribution as good (the
contributor's points are its good contributions); a report only marks the contribution claimed. Each contribution
is claimed at most once under Points, as there.

Deposits move only by reserve, unreserve and repatriation, so total issuance changes by fees alone.
"""
from __future__ import annotations

from math import isqrt
from typing import Any

from devnet.runtime.context import DispatchContext
from devnet.runtime.framework import BAD_ORIGIN, Constant, ModuleError, Pallet, StorageItem, call
from devnet.runtime.pallets.collab_types import (
    CONTRIBUTION,
    ERRORS,
    EVENTS,
    MODEL,
    PALLET,
    Contribution,
    Input,
    Mechanism,
    ModelParams,
    ModelRecord,
    Stats,
)
from devnet.runtime.pallets.timestamp import Timestamp
from devnet.scale.types import U32, U64, AccountId
from paratrain_api.collab_classifiers import (
    MAX_CLASSES,
    MAX_FEATURES,
    MAX_VALUE,
    ModelInputError,
    check_params,
    predict,
    update,
)

HOUR_S = 3600
MAX_CLAIMERS = 64
ADD_DATA_BASE_WEIGHT, ADD_DATA_PER_TERM = 150_000_000, 200_000   # ref_time, from benchmarks/collab.py: a
# 30-value add_data took 1.3x a transfer's time (1871 against 2422 included per s) and is charged about that


class CollaborativeModels(Pallet):
    name = "CollaborativeModels"
    index = 25
    module = PALLET
    events = EVENTS
    errors = ERRORS

    Models = StorageItem(ModelRecord, (("Twox64Concat", U64),), docs="model -> its owner, shape and mechanism.")
    Parameters = StorageItem(ModelParams, (("Twox64Concat", U64),), docs="model -> its current parameters.")
    Contributions = StorageItem(Contribution, (("Twox64Concat", U64), ("Twox64Concat", U64)),
                                docs="(model, contribution) -> the example, its deposit and who claimed it.")
    ContributorStats = StorageItem(Stats, (("Twox64Concat", U64), ("Blake2_128Concat", AccountId)),
                                   docs="(model, account) -> contributions submitted and found good (its points).")
    NextModelId = StorageItem(U64, default=0, docs="The id the next deployed model gets.")

    def __init__(self, balances: Any) -> None:
        self.balances = balances
        self.constants = (
            Constant("MaxFeatures", U32, MAX_FEATURES, "The most features a collaborative model may have."),
            Constant("MaxClasses", U32, MAX_CLASSES, "The most classes a collaborative model may have."),
            Constant("MaxValue", U64, MAX_VALUE, "The largest |value| of a dense input (1e9 per unit)."),
            Constant("DepositPeriodS", U64, HOUR_S, "The deposit is cost_weight * this / isqrt(seconds since the "
                     "model's last update)."),
        )

    @call(0, ("features", U32, "u32"), ("classes", U32, "u32"), ("initial", ModelParams, "ModelParams"),
          ("mechanism", Mechanism, "Mechanism<T>"), weight=300_000_000)
    def deploy(self, ctx: DispatchContext, origin: bytes | None, features: int, classes: int, initial: Any,
               mechanism: Any) -> None:
        """Deploy a model of `features` inputs and `classes` labels from `initial` parameters, kept honest by
        `mechanism`."""
        if origin is None:
            raise BAD_ORIGIN
        self._checked(lambda: check_params(initial, features, classes))
        waits = mechanism[1]["waits"]
        if not waits["refund_wait_s"] <= waits["owner_claim_wait_s"] <= waits["any_claim_wait_s"]:
            raise self.error("InvalidMechanism")
        model = self.NextModelId.get(ctx.state)
        self.NextModelId.set(ctx.state, model + 1)
        self.Models.set(ctx.state, model, {
            "owner": origin, "features": features, "classes": classes, "mechanism": mechanism,
            "last_update_s": self._now_s(ctx), "contributions": 0, "total_good": 0, "held": 0})
        self.Parameters.set(ctx.state, model, initial)
        ctx.deposit_event(self, "ModelDeployed",
                          {"model": model, "owner": origin, "features": features, "classes": classes})

    @call(1, MODEL, ("input", Input, "Input"), ("label", U32, "u32"), weight=ADD_DATA_BASE_WEIGHT)
    def add_data(self, ctx: DispatchContext, origin: bytes | None, model: int, input: Any, label: int) -> None:  # noqa: A002
        """Add one labelled example: the model learns from it now, and the deposit the mechanism asks is held."""
        if origin is None:
            raise BAD_ORIGIN
        record = self._model(ctx, model)
        if not 0 <= label < record["classes"]:
            raise self.error("ClassOutOfRange")
        params = self.Parameters.get(ctx.state, model)
        updated = self._checked(lambda: update(params, record["features"], input, label))
        now = self._now_s(ctx)
        deposit = self.deposit(record, now)
        if deposit:
            try:
                self.balances.reserve(ctx, origin, deposit)
            except ModuleError:
                raise self.error("CannotPayDeposit") from None
        contribution = record["contributions"]
        self.Contributions.set(ctx.state, model, contribution, {
            "contributor": origin, "input": input, "label": label, "added_s": now, "deposit": deposit,
            "claimable": deposit, "claims": 0, "refunded": False, "claimed_by": []})
        stats = self._stats(ctx, model, origin)
        stats["submitted"] += 1
        self.ContributorStats.set(ctx.state, model, origin, stats)
        record.update(contributions=contribution + 1, last_update_s=now, held=record["held"] + deposit)
        self.Models.set(ctx.state, model, record)
        self.Parameters.set(ctx.state, model, updated)
        ctx.deposit_event(self, "DataAdded", {"model": model, "contribution": contribution, "contributor": origin,
                                              "label": label, "deposit": deposit})

    @call(2, MODEL, CONTRIBUTION, weight=80_000_000)
    def refund(self, ctx: DispatchContext, origin: bytes | None, model: int, contribution: int) -> None:
        """The contributor takes its deposit back once the refund wait passed, if the model still agrees."""
        if origin is None:
            raise BAD_ORIGIN
        record = self._model(ctx, model)
        entry = self._contribution(ctx, model, contribution)
        if entry["contributor"] != origin:
            raise self.error("NotContributor")
        if entry["refunded"] or entry["claims"] or (record["mechanism"][0] == "DepositRefundTake"
                                                    and not entry["claimable"]):
            raise self.error("AlreadyClaimed")
        if self._now_s(ctx) - entry["added_s"] < record["mechanism"][1]["waits"]["refund_wait_s"]:
            raise self.error("TooEarly")
        if self._predict(ctx, model, record, entry["input"]) != entry["label"]:
            raise self.error("ModelDisagrees")
        amount = entry["claimable"]
        if amount:
            self.balances.unreserve(ctx, origin, amount)
        entry.update(claimable=0, refunded=True, claims=entry["claims"] + 1)
        self.Contributions.set(ctx.state, model, contribution, entry)
        stats = self._stats(ctx, model, origin)
        stats["good"] += 1
        self.ContributorStats.set(ctx.state, model, origin, stats)
        record.update(total_good=record["total_good"] + 1, held=record["held"] - amount)
        self.Models.set(ctx.state, model, record)
        ctx.deposit_event(self, "Refunded",
                          {"model": model, "contribution": contribution, "contributor": origin, "amount": amount})

    @call(3, MODEL, CONTRIBUTION, weight=80_000_000)
    def report(self, ctx: DispatchContext, origin: bytes | None, model: int, contribution: int) -> None:
        """Take from a contribution the model disagrees with (or, after the longer waits, from any)."""
        if origin is None:
            raise BAD_ORIGIN
        record = self._model(ctx, model)
        entry = self._contribution(ctx, model, contribution)
        waits, drt = record["mechanism"][1]["waits"], record["mechanism"][0] == "DepositRefundTake"
        age = self._now_s(ctx) - entry["added_s"]
        if (drt and not entry["claimable"]) or (not drt and entry["claims"]):
            raise self.error("NothingToClaim" if drt else "AlreadyClaimed")
        if drt and (age >= waits["any_claim_wait_s"]
                    or (age >= waits["owner_claim_wait_s"] and origin == record["owner"])):
            amount = entry["claimable"]      # the longer waits: all that is left, no other condition
        else:
            amount = self._checked_take(ctx, model, record, entry, origin, age, waits["refund_wait_s"], drt)
        if amount:
            self.balances.repatriate_reserved(ctx, entry["contributor"], origin, amount, "Free")
        if origin not in entry["claimed_by"] and len(entry["claimed_by"]) < MAX_CLAIMERS:
            entry["claimed_by"].append(origin)
        entry.update(claimable=entry["claimable"] - amount, claims=entry["claims"] + 1)
        self.Contributions.set(ctx.state, model, contribution, entry)
        record["held"] -= amount
        self.Models.set(ctx.state, model, record)
        ctx.deposit_event(self, "Taken",
                          {"model": model, "contribution": contribution, "reporter": origin, "amount": amount})

    # Used by the calls and the runtime API ------------------------------------------------------
    def predict_at(self, state: Any, model: int, values: Any) -> int:
        """The model's class for `values` (the runtime API): ModuleError for a missing model or a bad input."""
        record = self.Models.get(state, model)
        if record is None:
            raise self.error("ModelNotFound")
        return self._checked(lambda: predict(self.Parameters.get(state, model), record["features"], values))

    def deposit(self, record: dict[str, Any], now_s: int) -> int:
        """What the next contribution must hold (module docstring); 0 under Points."""
        kind, payload = record["mechanism"]
        if kind != "DepositRefundTake" or not payload["cost_weight"]:
            return 0
        elapsed = max(now_s - record["last_update_s"], 0)
        return payload["cost_weight"] * HOUR_S // (isqrt(elapsed) if elapsed else 1)

    def weight_of(self, call_name: str, args: dict[str, Any]) -> int | None:
        """add_data's weight grows with its input: each value is a term of the prediction and the update in every
        class, so it is charged for MaxClasses of them (the weight is fixed before the model is read)."""
        if call_name != "add_data":
            return None
        return ADD_DATA_BASE_WEIGHT + ADD_DATA_PER_TERM * MAX_CLASSES * len(args["input"][1])

    def _checked_take(self, ctx: DispatchContext, model: int, record: dict[str, Any], entry: dict[str, Any],
                      origin: bytes, age: int, refund_wait_s: int, drt: bool) -> int:
        if origin == entry["contributor"]:
            raise self.error("OwnContribution")
        if origin in entry["claimed_by"]:
            raise self.error("AlreadyClaimed")
        if age < refund_wait_s:
            raise self.error("TooEarly")
        if self._predict(ctx, model, record, entry["input"]) == entry["label"]:
            raise self.error("ModelAgrees")
        if not drt:
            return 0
        good = self._stats(ctx, model, origin)["good"]
        if not good:
            raise self.error("NoGoodContributions")
        reward = entry["deposit"] * good // record["total_good"]
        return entry["claimable"] if reward == 0 or reward > entry["claimable"] else reward

    def _predict(self, ctx: DispatchContext, model: int, record: dict[str, Any], values: Any) -> int:
        return self._checked(lambda: predict(self.Parameters.get(ctx.state, model), record["features"], values))

    def _checked(self, compute: Any) -> Any:
        try:
            return compute()
        except ModelInputError as exc:
            raise self.error(exc.name) from None

    def _model(self, ctx: DispatchContext, model: int) -> dict[str, Any]:
        record = self.Models.get(ctx.state, model)
        if record is None:
            raise self.error("ModelNotFound")
        return record

    def _contribution(self, ctx: DispatchContext, model: int, contribution: int) -> dict[str, Any]:
        entry = self.Contributions.get(ctx.state, model, contribution)
        if entry is None:
            raise self.error("ContributionNotFound")
        return entry

    def _stats(self, ctx: DispatchContext, model: int, who: bytes) -> dict[str, Any]:
        return self.ContributorStats.get(ctx.state, model, who) or {"submitted": 0, "good": 0}

    @staticmethod
    def _now_s(ctx: DispatchContext) -> int:
        return Timestamp.Now.get(ctx.state) // 1000


__all__ = ["CollaborativeModels"]
