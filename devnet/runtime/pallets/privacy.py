"""pallet_privacy_budgets: a data owner's differential-privacy budget per data set, and what tasks take from it.

One ledger per data hash, whichever market uses the data set (design docs/design/private.md section 2.1), so
the busy task pallets gain a few lines each and no stored task changes its encoding. TaskBounties calls the
Python methods `reserve`, `spend` and `release`, FederatedTasks `reserve_federated`, `spend_increment` and
`close_federated` (a client's reservation for a whole task, spent round by round up to its cumulative claim);
none is an extrinsic.

A budget is a public promise to the people in the data set: `set_budget` makes it once (the caller owns it),
`lower_budget` may only lower it and never below what is already spent plus reserved, and there is no raise
and no delete. Raising, or deleting and setting again, would let the owner spend more privacy than it
promised; lowering only makes the promise stronger.

Arithmetic is basic composition across tasks: epsilons add, deltas add. That is conservative (advanced
composition would allow more) but needs no accountant, which the pallet cannot run. Per task the pallet holds
a reservation of (epsilon_cap, delta) from creation to the end; an accepted result spends its claimed epsilon
and the task's delta and releases the rest of the cap; a task that ends unaccepted releases it all. So at all
times `spent + reserved <= budget` for epsilon and for delta, which the invariant tests check.

The claimed epsilon cannot be checked here: validators recompute it off chain with the same Opacus accountant
and reject a result whose claim is more than EpsilonTolerance below the recomputation. What the pallet checks
(`check_claim`) is that the claim describes the task: the same accountant and delta, a clipping norm no larger
and a noise multiplier no smaller than the task's, and an epsilon within the cap.

Types, events and errors are declared in privacy_types.py.
"""
from __future__ import annotations

from typing import Any

from devnet.runtime.context import DispatchContext
from devnet.runtime.framework import BAD_ORIGIN, Constant, Pallet, StorageItem, call
from devnet.runtime.pallets.privacy_types import (
    ERRORS,
    EVENTS,
    PALLET,
    Budget,
    CentralDp,
    DpClaim,
    DpSpec,
    FederatedReservation,
    Reservation,
)
from devnet.runtime.pallets.task_bounties_types import PERBILL, Perbill
from devnet.scale.types import H256, U32, U64, AccountId

MAX_EPSILON = 100_000_000  # epsilon 100: beyond it a DP guarantee means nothing
MIN_DELTA, MAX_DELTA = 1, 10**12  # 1e-15 .. 1e-3, in 1e-15 units
EPSILON_TOLERANCE = 10_000_000  # 1 %
_DATA = ("data_hash", H256, "H256")


class PrivacyBudgets(Pallet):
    name = "PrivacyBudgets"
    index = 24
    module = PALLET

    Budgets = StorageItem(Budget, (("Blake2_128Concat", H256),),
                          docs="data hash -> its owner's budget, what is reserved and what is spent.")
    BountyPrivacy = StorageItem(DpSpec, (("Twox64Concat", U64),),
                                docs="TaskBounties task id -> its DP terms (kept after the task ends).")
    BountyClaims = StorageItem(DpClaim, (("Twox64Concat", U64),),
                               docs="TaskBounties task id -> the DP claim of the result under verification "
                                    "(and of the accepted one).")
    # one map per market, keyed (task, holder): the holder is the requester of a bounty task (a client of a
    # federated one); no enum in a key, since substrate-interface 1.8 decodes such keys short
    BountyReservations = StorageItem(Reservation, (("Twox64Concat", U64), ("Blake2_128Concat", AccountId)),
                                     docs="(TaskBounties task, requester) -> what a live private task holds of a "
                                          "budget.")
    FederatedPrivacy = StorageItem(DpSpec, (("Twox64Concat", U64),),
                                   docs="FederatedTasks task id -> the local DP-SGD terms every client trains under "
                                        "(its epsilon cap is per client, for the whole task).")
    FederatedReservations = StorageItem(FederatedReservation, (("Twox64Concat", U64), ("Blake2_128Concat", AccountId)),
                                        docs="(FederatedTasks task, client) -> what the client's own budget holds for "
                                             "the task, and how much of it accepted rounds have spent.")
    FederatedClaims = StorageItem(DpClaim, (("Twox64Concat", U64), ("Twox64Concat", U32),
                                            ("Blake2_128Concat", AccountId)),
                                  docs="(FederatedTasks task, round, client) -> the cumulative DP claim its signed "
                                       "update carried.")

    FederatedCentralDp = StorageItem(CentralDp, (("Twox64Concat", U64),),
                                     docs="FederatedTasks task id -> its central DP terms: the aggregator noises "
                                          "each round's mean of clipped updates (the epsilon cap is per client, for "
                                          "the whole task).")
    CentralClaims = StorageItem(DpClaim, (("Twox64Concat", U64), ("Twox64Concat", U32)),
                                docs="(FederatedTasks task, round) -> the aggregator's cumulative DP claim for the "
                                     "rounds released so far, as committed with the round.")

    events = EVENTS
    errors = ERRORS
    constants = (
        Constant("MaxEpsilon", U64, MAX_EPSILON, "The largest budget or epsilon cap, in micro-epsilon."),
        Constant("MinDelta", U64, MIN_DELTA, "The smallest delta of a budget or task, in 1e-15."),
        Constant("MaxDelta", U64, MAX_DELTA, "The largest delta of a budget or task, in 1e-15 (1e-3)."),
        Constant("EpsilonTolerance", Perbill, EPSILON_TOLERANCE,
                 "Validators reject a result whose claimed epsilon is more than this below their recomputation."),
    )

    # Calls ----------------------------------------------------------------------------------
    @call(0, _DATA, ("epsilon", U64, "u64"), ("delta", U64, "u64"), weight=150_000_000)
    def set_budget(self, ctx: DispatchContext, origin: bytes | None, data_hash: bytes, epsilon: int,
                   delta: int) -> None:
        """Promise a budget for a data set (once; the caller becomes its owner): micro-epsilon, delta in 1e-15."""
        owner = _signed(origin)
        if self.Budgets.contains(ctx.state, data_hash):
            raise self.error("BudgetExists")
        self._check_amounts(epsilon, delta)
        self.Budgets.set(ctx.state, data_hash, {
            "owner": owner, "epsilon": epsilon, "delta": delta, "reserved_epsilon": 0, "reserved_delta": 0,
            "spent_epsilon": 0, "spent_delta": 0, "created_at": ctx.block_number})
        ctx.deposit_event(self, "BudgetSet", {"data_hash": data_hash, "owner": owner, "epsilon": epsilon,
                                              "delta": delta})

    @call(1, _DATA, ("epsilon", U64, "u64"), ("delta", U64, "u64"), weight=150_000_000)
    def lower_budget(self, ctx: DispatchContext, origin: bytes | None, data_hash: bytes, epsilon: int,
                     delta: int) -> None:
        """The owner lowers its budget, never below spent plus reserved; there is no raise and no delete."""
        who = _signed(origin)
        budget = self._owned(ctx, data_hash, who)
        if epsilon > budget["epsilon"] or delta > budget["delta"]:
            raise self.error("CannotRaiseBudget")
        if (epsilon < budget["spent_epsilon"] + budget["reserved_epsilon"]
                or delta < budget["spent_delta"] + budget["reserved_delta"]):
            raise self.error("BelowCommitted")
        budget["epsilon"], budget["delta"] = epsilon, delta
        self.Budgets.set(ctx.state, data_hash, budget)
        ctx.deposit_event(self, "BudgetLowered", {"data_hash": data_hash, "epsilon": epsilon, "delta": delta})

    # What the task pallets call -------------------------------------------------------------
    def has_budget(self, ctx: DispatchContext, data_hash: bytes) -> bool:
        return self.Budgets.contains(ctx.state, data_hash)

    def check_spec(self, spec: dict[str, Any]) -> None:
        """A task's DP terms are within the chain's bounds (InvalidPrivacyParams)."""
        self._check_amounts(spec["epsilon_cap"], spec["delta"])
        if not spec["max_grad_norm"] or not spec["noise_multiplier"]:
            raise self.error("InvalidPrivacyParams")

    def check_claim(self, spec: dict[str, Any], claim: dict[str, Any]) -> None:
        """A worker's claim describes a run under the task's terms (ClaimMismatch) within its cap."""
        if not 0 < claim["sample_rate"] <= PERBILL or not claim["max_grad_norm"]:
            raise self.error("InvalidPrivacyParams")
        if (claim["accountant"][0] != spec["accountant"][0] or claim["delta"] != spec["delta"]
                or claim["max_grad_norm"] > spec["max_grad_norm"]
                or claim["noise_multiplier"] < spec["noise_multiplier"]):
            raise self.error("ClaimMismatch")
        if claim["epsilon"] > spec["epsilon_cap"]:
            raise self.error("EpsilonAboveReservation")

    def reserve(self, ctx: DispatchContext, market: str, task: int, holder: bytes, data_hash: bytes,
                epsilon: int, delta: int) -> None:
        """Hold (epsilon, delta) of the holder's own budget for a task until it ends."""
        budget = self._owned(ctx, data_hash, holder)
        if epsilon > budget["epsilon"] - budget["spent_epsilon"] - budget["reserved_epsilon"]:
            raise self.error("BudgetExceeded")
        if delta > budget["delta"] - budget["spent_delta"] - budget["reserved_delta"]:
            raise self.error("DeltaExceeded")
        budget["reserved_epsilon"] += epsilon
        budget["reserved_delta"] += delta
        self.Budgets.set(ctx.state, data_hash, budget)
        self._reservations(market).set(ctx.state, task, holder,
                              {"data_hash": data_hash, "epsilon": epsilon, "delta": delta})
        ctx.deposit_event(self, "BudgetReserved", {"data_hash": data_hash, "market": (market, None), "task": task,
                                                   "holder": holder, "epsilon": epsilon, "delta": delta})

    def spend(self, ctx: DispatchContext, market: str, task: int, holder: bytes, epsilon: int, delta: int) -> None:
        """An accepted result spends (epsilon, delta) and closes the reservation; the rest of it goes back.

        The task pallet has checked the claim against the cap already; checked again, because spending more
        than was reserved would break spent + reserved <= budget."""
        reservation = self._reservations(market).get(ctx.state, task, holder)
        if reservation is None:  # settled already: nothing is spent twice
            return
        if epsilon > reservation["epsilon"] or delta > reservation["delta"]:
            raise self.error("EpsilonAboveReservation")
        self._reservations(market).remove(ctx.state, task, holder)
        data_hash = reservation["data_hash"]
        budget = self.Budgets.get(ctx.state, data_hash)
        budget["reserved_epsilon"] -= reservation["epsilon"]
        budget["reserved_delta"] -= reservation["delta"]
        budget["spent_epsilon"] += epsilon
        budget["spent_delta"] += delta
        self.Budgets.set(ctx.state, data_hash, budget)
        ctx.deposit_event(self, "BudgetSpent", {
            "data_hash": data_hash, "market": (market, None), "task": task, "holder": holder, "epsilon": epsilon,
            "delta": delta, "released_epsilon": reservation["epsilon"] - epsilon,
            "remaining_epsilon": remaining_epsilon(budget)})

    def release(self, ctx: DispatchContext, market: str, task: int, holder: bytes) -> None:
        """A task ended unaccepted: its whole reservation goes back (nothing when it holds none)."""
        reservation = self._reservations(market).get(ctx.state, task, holder)
        if reservation is None:  # a plain task, or one already settled: no write at all
            return
        self._reservations(market).remove(ctx.state, task, holder)
        data_hash = reservation["data_hash"]
        budget = self.Budgets.get(ctx.state, data_hash)
        budget["reserved_epsilon"] -= reservation["epsilon"]
        budget["reserved_delta"] -= reservation["delta"]
        self.Budgets.set(ctx.state, data_hash, budget)
        ctx.deposit_event(self, "BudgetReleased", {
            "data_hash": data_hash, "market": (market, None), "task": task, "holder": holder,
            "epsilon": reservation["epsilon"], "delta": reservation["delta"]})

    def check_central(self, spec: dict[str, Any]) -> None:
        """A federated task's central DP terms are within the chain's bounds (InvalidPrivacyParams)."""
        self._check_amounts(spec["epsilon_cap"], spec["delta"])
        if not spec["clipping_norm"] or not spec["noise_multiplier"]:
            raise self.error("InvalidPrivacyParams")

    def check_central_claim(self, spec: dict[str, Any], claim: dict[str, Any], round_number: int) -> None:
        """The aggregator's claim for round `round_number` is of the task's mechanism, released once per round
        without amplification (Flower samples clients without Poisson sampling), within the cap."""
        self.check_claim({**spec, "max_grad_norm": spec["clipping_norm"]}, claim)
        if claim["sample_rate"] != PERBILL or claim["steps"] != round_number:
            raise self.error("ClaimMismatch")

    # The federated ledger: one reservation per (task, client), spent round by round -----------------
    def federated_terms(self, ctx: DispatchContext, task: int) -> dict[str, Any] | None:
        """A federated task's per-client (epsilon cap, delta), local or central DP; None when it has no DP."""
        terms = self.FederatedPrivacy.get(ctx.state, task)
        return terms if terms is not None else self.FederatedCentralDp.get(ctx.state, task)

    def reserve_federated(self, ctx: DispatchContext, task: int, client: bytes, data_hash: bytes) -> None:
        """A client joining a private federated task holds the task's (epsilon cap, delta) of its own budget (a
        task without DP terms holds nothing)."""
        terms = self.federated_terms(ctx, task)
        if terms is None:
            return
        budget = self._owned(ctx, data_hash, client)
        if terms["epsilon_cap"] > remaining_epsilon(budget):
            raise self.error("BudgetExceeded")
        if terms["delta"] > budget["delta"] - budget["spent_delta"] - budget["reserved_delta"]:
            raise self.error("DeltaExceeded")
        budget["reserved_epsilon"] += terms["epsilon_cap"]
        budget["reserved_delta"] += terms["delta"]
        self.Budgets.set(ctx.state, data_hash, budget)
        self.FederatedReservations.set(ctx.state, task, client, {
            "data_hash": data_hash, "epsilon": terms["epsilon_cap"], "delta": terms["delta"], "spent_epsilon": 0})
        ctx.deposit_event(self, "BudgetReserved", {
            "data_hash": data_hash, "market": ("Federated", None), "task": task, "holder": client,
            "epsilon": terms["epsilon_cap"], "delta": terms["delta"]})

    def spend_increment(self, ctx: DispatchContext, task: int, client: bytes, cumulative: int) -> None:
        """An accepted round whose update claimed `cumulative` epsilon so far: the part not spent yet moves from
        reserved to spent; the reservation stays open for the next rounds. A claim below what is spent
        changes nothing (epsilon never comes back); the delta is spent once, when the reservation closes."""
        reservation = self.FederatedReservations.get(ctx.state, task, client)
        if reservation is None or cumulative <= reservation["spent_epsilon"]:
            return
        if cumulative > reservation["epsilon"]:
            raise self.error("EpsilonAboveReservation")
        increment = cumulative - reservation["spent_epsilon"]
        budget = self.Budgets.get(ctx.state, reservation["data_hash"])
        budget["reserved_epsilon"] -= increment
        budget["spent_epsilon"] += increment
        self.Budgets.set(ctx.state, reservation["data_hash"], budget)
        reservation["spent_epsilon"] = cumulative
        self.FederatedReservations.set(ctx.state, task, client, reservation)
        ctx.deposit_event(self, "BudgetSpent", {
            "data_hash": reservation["data_hash"], "market": ("Federated", None), "task": task, "holder": client,
            "epsilon": increment, "delta": 0, "released_epsilon": 0, "remaining_epsilon": remaining_epsilon(budget)})

    def close_federated(self, ctx: DispatchContext, task: int, client: bytes) -> None:
        """The client left or took its stake back: what no accepted round spent goes back; its delta is spent
        if any round spent epsilon, else released too."""
        reservation = self.FederatedReservations.get(ctx.state, task, client)
        if reservation is None:
            return
        self.FederatedReservations.remove(ctx.state, task, client)
        data_hash, spent = reservation["data_hash"], reservation["spent_epsilon"]
        budget = self.Budgets.get(ctx.state, data_hash)
        budget["reserved_epsilon"] -= reservation["epsilon"] - spent
        budget["reserved_delta"] -= reservation["delta"]
        if spent:
            budget["spent_delta"] += reservation["delta"]
        self.Budgets.set(ctx.state, data_hash, budget)
        ctx.deposit_event(self, "BudgetReleased", {
            "data_hash": data_hash, "market": ("Federated", None), "task": task, "holder": client,
            "epsilon": reservation["epsilon"] - spent, "delta": 0 if spent else reservation["delta"]})

    def _reservations(self, market: str) -> StorageItem:
        return {"Bounty": self.BountyReservations}[market]

    # Checks ---------------------------------------------------------------------------------
    def _check_amounts(self, epsilon: int, delta: int) -> None:
        if not 0 < epsilon <= MAX_EPSILON or not MIN_DELTA <= delta <= MAX_DELTA:
            raise self.error("InvalidPrivacyParams")

    def _owned(self, ctx: DispatchContext, data_hash: bytes, who: bytes) -> dict[str, Any]:
        budget = self.Budgets.get(ctx.state, data_hash)
        if budget is None:
            raise self.error("NoBudget")
        if budget["owner"] != who:
            raise self.error("NotBudgetOwner")
        return budget


def remaining_epsilon(budget: dict[str, Any]) -> int:
    """What a budget can still reserve: neither spent nor held by a live task."""
    return int(budget["epsilon"] - budget["spent_epsilon"] - budget["reserved_epsilon"])


def _signed(origin: bytes | None) -> bytes:
    if origin is None:
        raise BAD_ORIGIN
    return origin


__all__ = ["EPSILON_TOLERANCE", "MAX_DELTA", "MAX_EPSILON", "MIN_DELTA", "PrivacyBudgets", "remaining_epsilon"]
