"""Datasets in process (devnet/runtime/pallets/datasets.py) and what TaskBounties asks of it: access bought and
granted, a compute-only data set trained on only by a designated worker with an allowed recipe, the compute
receipt bound on acceptance, and every bad input refused by name with nothing changed."""
from __future__ import annotations

from typing import Any

import pytest
from privacy_harness import OUTSIDER, OWNERS, TRAINERS, UNIT, VALIDATORS, DpHarness, data_hash

from devnet.crypto import blake2_256
from devnet.runtime.pallets.datasets import Datasets as DS
from devnet.runtime.pallets.models import Models
from devnet.runtime.pallets.system import System
from devnet.runtime.pallets.task_bounties import attestation_message

OWNER, BUYER = OWNERS[:2]
DESIGNATED, OTHER_WORKER = TRAINERS
RECIPE = blake2_256(b"the allowed recipe's code")
PRICE = 5 * UNIT


def compute_only(**overrides: Any) -> Any:
    return "ComputeOnly", {"recipes": [RECIPE], "workers": [DESIGNATED.public_key], **overrides}


class Harness(DpHarness):
    def register(self, dataset: bytes, access: Any, price: int = PRICE, who: Any = OWNER) -> None:
        self.ok(who, "register", "Datasets", dataset=dataset, size=1000, format=b"npz", license=b"CC-BY-4.0",
                price=price, access=access)

    def refused(self, error: str, who: Any, call: str, pallet: str = "Datasets", **args: Any) -> None:
        before, events = self.snapshot(), len(self.ctx.events)
        assert self.dispatch(who, call, pallet, **args) == error
        assert self.snapshot() == before and len(self.ctx.events) == events

    def free(self, who: Any) -> int:
        return int(System.Account.get(self.ctx.state, who.public_key)["data"]["free"])

    def create(self, who: Any, dataset: bytes) -> int:
        task_id = int(self.task_count())
        self.ok(who, "create_task", **self.create_args(dataset))
        return task_id

    def create_args(self, dataset: bytes, **overrides: Any) -> dict[str, Any]:   # a plain (not private) task
        args = super().create_args(dataset, **overrides)
        del args["privacy"]
        return args

    def task_count(self) -> int:
        from devnet.runtime.pallets.task_bounties import TaskBounties

        return TaskBounties.NextTaskId.get(self.ctx.state)

    def submission(self, task_id: int, worker: Any, code_hash: bytes) -> dict[str, Any]:
        attestation = {**self.attestation(task_id, worker), "code_hash": code_hash}
        return {"task_id": task_id, "attestation": attestation,
                "signature": ("Sr25519", worker.sign(attestation_message(attestation)))}


@pytest.fixture
def h() -> Harness:
    harness = Harness()
    harness.register_workers()
    return harness


def test_paid_access_is_bought_once_and_pays_the_owner(h: Harness) -> None:
    dataset = data_hash("paid")
    h.register(dataset, ("Paid", None))
    owner, buyer = h.free(OWNER), h.free(BUYER)
    h.refused("Datasets.NoGrant", BUYER, "create_task", "TaskBounties", **h.create_args(dataset))
    h.ok(BUYER, "buy_access", "Datasets", dataset=dataset)
    assert (h.free(OWNER) - owner, buyer - h.free(BUYER)) == (PRICE, PRICE)
    assert DS.Grants.contains(h.ctx.state, dataset, BUYER.public_key)
    h.refused("Datasets.AlreadyGranted", BUYER, "buy_access", dataset=dataset)
    h.refused("Datasets.AlreadyGranted", OWNER, "buy_access", dataset=dataset)
    h.create(BUYER, dataset)               # a grant holder may post tasks on it


def test_a_compute_only_task_is_claimed_by_a_designated_worker_with_an_allowed_recipe(h: Harness) -> None:
    dataset = data_hash("compute only")
    h.register(dataset, compute_only())
    task_id = h.create(OWNER, dataset)
    h.refused("Datasets.NotDesignatedWorker", OTHER_WORKER, "claim_task", "TaskBounties", task_id=task_id)
    h.ok(DESIGNATED, "claim_task", task_id=task_id)
    h.refused("Datasets.RecipeNotAllowed", DESIGNATED, "submit_result", "TaskBounties",
              **h.submission(task_id, DESIGNATED, blake2_256(b"some other code")))
    submission = h.submission(task_id, DESIGNATED, RECIPE)
    h.ok(DESIGNATED, "submit_result", **submission)
    h.ok(VALIDATORS[0], "submit_verdict", task_id=task_id,
         verdict={"accept": True, "measured_metric": 900_000, "evidence_hash": bytes(32)})
    model_hash = submission["attestation"]["model_hash"]
    assert Models.Models.contains(h.ctx.state, model_hash)
    receipt = DS.ComputeReceipts.get(h.ctx.state, dataset, model_hash)
    assert receipt["task_id"] == task_id and bytes(receipt["code_hash"]) == RECIPE
    assert bytes(receipt["worker"]) == DESIGNATED.public_key
    (event,) = h.events("ComputeReceiptRecorded", "Datasets")
    assert bytes(event["model_hash"]) == model_hash


def test_a_compute_only_data_set_needs_a_grant_to_post_a_task_on(h: Harness) -> None:
    dataset = data_hash("compute only, bought")
    h.register(dataset, compute_only())
    h.refused("Datasets.NoGrant", BUYER, "create_task", "TaskBounties", **h.create_args(dataset))
    h.ok(BUYER, "buy_access", "Datasets", dataset=dataset)
    h.create(BUYER, dataset)


def test_public_and_unregistered_data_sets_change_nothing_for_tasks(h: Harness) -> None:
    public = data_hash("public")
    h.register(public, ("Public", None), price=0)
    h.refused("Datasets.NothingToBuy", BUYER, "buy_access", dataset=public)
    for dataset in (public, data_hash("not registered")):
        task_id = h.create(BUYER, dataset)
        h.ok(OTHER_WORKER, "claim_task", task_id=task_id)


def test_update_and_retire_are_the_owners_and_retiring_stops_grants_and_tasks(h: Harness) -> None:
    dataset = data_hash("retired")
    h.register(dataset, ("Paid", None))
    h.ok(BUYER, "buy_access", "Datasets", dataset=dataset)
    h.refused("Datasets.NotOwner", BUYER, "update", dataset=dataset, license=b"MIT", price=1, access=("Paid", None))
    h.ok(OWNER, "update", "Datasets", dataset=dataset, license=b"MIT", price=2 * PRICE, access=("Paid", None))
    assert DS.Datasets.get(h.ctx.state, dataset)["price"] == 2 * PRICE
    h.refused("Datasets.NotOwner", BUYER, "retire", dataset=dataset)
    h.ok(OWNER, "retire", "Datasets", dataset=dataset)
    h.refused("Datasets.Retired", OWNER, "retire", dataset=dataset)
    h.refused("Datasets.Retired", OUTSIDER, "buy_access", dataset=dataset)
    h.refused("Datasets.Retired", BUYER, "create_task", "TaskBounties", **h.create_args(dataset))


@pytest.mark.parametrize(("price", "access", "error"), [
    (0, ("Paid", None), "InvalidTerms"),
    (1, ("Public", None), "InvalidTerms"),
    (1, ("ComputeOnly", {"recipes": [], "workers": [bytes(32)]}), "InvalidTerms"),
    (1, ("ComputeOnly", {"recipes": [RECIPE], "workers": []}), "InvalidTerms"),
    (1, ("ComputeOnly", {"recipes": [RECIPE] * 17, "workers": [bytes(32)]}), "InvalidTerms"),
])
def test_bad_terms_are_refused_by_name(h: Harness, price: int, access: Any, error: str) -> None:
    h.refused(f"Datasets.{error}", OWNER, "register", dataset=data_hash("bad"), size=1000, format=b"npz",
              license=b"MIT", price=price, access=access)


def test_other_bad_input_is_refused_by_name(h: Harness) -> None:
    dataset = data_hash("once")
    args = {"dataset": dataset, "size": 1000, "format": b"npz", "license": b"MIT", "price": PRICE,
            "access": ("Paid", None)}
    h.refused("Datasets.InvalidTerms", OWNER, "register", **{**args, "size": 0})
    h.refused("Datasets.FieldTooLong", OWNER, "register", **{**args, "license": b"x" * 129})
    h.register(dataset, ("Paid", None))
    h.refused("Datasets.AlreadyRegistered", BUYER, "register", **args)
    h.refused("Datasets.DatasetNotFound", BUYER, "buy_access", dataset=data_hash("missing"))
    expensive = data_hash("expensive")
    h.register(expensive, ("Paid", None), price=10**9 * UNIT)
    h.refused("Datasets.CannotPay", BUYER, "buy_access", dataset=expensive)
