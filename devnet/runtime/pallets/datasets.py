"""pallet_datasets: data sets as on-chain assets (Ocean Protocol's data NFTs and compute-to-data, docs/assets.md).

A data set is registered by its content hash (the `dataset_hash` tasks and attestations already carry) with its
size, format, license, price and access rule:

* Public: anyone fetches it and posts tasks on it; no grant.
* Paid: `buy_access` pays the price to the owner and records a grant; the artifact store serves the data to
  grant holders' signed requests (workers/asset_store.py).
* ComputeOnly (recipes, workers): the data never leaves the owner's designated workers. A grant (bought the same
  way) lets its holder post tasks on it; only a designated worker may claim such a task, its result must come
  from an allowed recipe (the attestation's code hash), and when it is accepted the chain records a compute
  receipt binding the data set, the recipe's code hash, the attestation and the model.

TaskBounties asks this pallet at create_task (`check_task`), claim_task (`check_claim`), submit_result
(`check_result`) and acceptance (`record_compute`); a task whose dataset_hash is not registered is unchanged.
`update` changes the price, access and license for grants to come; `retire` stops new grants and tasks.
"""
from __future__ import annotations

from typing import Any

from devnet.runtime.context import DispatchContext
from devnet.runtime.framework import BAD_ORIGIN, Constant, ModuleError, Pallet, StorageItem, call
from devnet.runtime.pallets.datasets_types import (
    DATASET,
    ERRORS,
    EVENTS,
    PALLET,
    Access,
    ComputeReceipt,
    DatasetRecord,
)
from devnet.runtime.pallets.models import BoundedBytes
from devnet.scale.types import H256, U32, U64, U128, AccountId

MAX_ALLOWED, MAX_FORMAT_LEN, MAX_LICENSE_LEN = 16, 64, 128


class Datasets(Pallet):
    name = "Datasets"
    index = 27
    module = PALLET
    events = EVENTS
    errors = ERRORS

    Datasets = StorageItem(DatasetRecord, (("Identity", H256),), docs="content hash -> the registered data set.")
    Grants = StorageItem(U32, (("Identity", H256), ("Blake2_128Concat", AccountId)),
                         docs="(data set, account) -> the block its access was bought in.")
    ComputeReceipts = StorageItem(ComputeReceipt, (("Identity", H256), ("Identity", H256)),
                                  docs="(ComputeOnly data set, model hash) -> the accepted task that computed it.")

    def __init__(self, balances: Any) -> None:
        self.balances = balances
        self.constants = (
            Constant("MaxAllowed", U32, MAX_ALLOWED, "The most recipes, and workers, a ComputeOnly rule names."),
            Constant("MaxFormatLen", U32, MAX_FORMAT_LEN, "The longest format, in bytes."),
            Constant("MaxLicenseLen", U32, MAX_LICENSE_LEN, "The longest license, in bytes."),
        )

    @call(0, DATASET, ("size", U64, "u64"), ("format", BoundedBytes, "BoundedVec<u8, T::MaxFormatLen>"),
          ("license", BoundedBytes, "BoundedVec<u8, T::MaxLicenseLen>"), ("price", U128, "BalanceOf<T>"),
          ("access", Access, "Access<T>"), weight=200_000_000)
    def register(self, ctx: DispatchContext, origin: bytes | None, dataset: bytes, size: int, format: bytes,  # noqa: A002
                 license: bytes, price: int, access: Any) -> None:
        """Register a data set by its content hash, with its access rule and price."""
        owner = _signed(origin)
        if self.Datasets.contains(ctx.state, dataset):
            raise self.error("AlreadyRegistered")
        self._check_terms(size, format, license, price, access)
        self.Datasets.set(ctx.state, dataset, {
            "owner": owner, "size": size, "format": format, "license": license, "price": price, "access": access,
            "retired": False, "registered_at": ctx.block_number, "grants": 0})
        ctx.deposit_event(self, "DatasetRegistered", {"dataset": dataset, "owner": owner, "access": access,
                                                      "price": price})

    @call(1, DATASET, weight=150_000_000)
    def buy_access(self, ctx: DispatchContext, origin: bytes | None, dataset: bytes) -> None:
        """Pay the owner the price and hold a grant."""
        buyer = _signed(origin)
        record = self._dataset(ctx, dataset)
        if record["access"][0] == "Public":
            raise self.error("NothingToBuy")
        if record["retired"]:
            raise self.error("Retired")
        if buyer == bytes(record["owner"]) or self.Grants.contains(ctx.state, dataset, buyer):
            raise self.error("AlreadyGranted")
        try:
            self.balances.transfer(ctx, buyer, bytes(record["owner"]), record["price"], keep_alive=True)
        except ModuleError:
            raise self.error("CannotPay") from None
        self.Grants.set(ctx.state, dataset, buyer, ctx.block_number)
        record["grants"] += 1
        self.Datasets.set(ctx.state, dataset, record)
        ctx.deposit_event(self, "AccessBought", {"dataset": dataset, "buyer": buyer, "price": record["price"]})

    @call(2, DATASET, ("license", BoundedBytes, "BoundedVec<u8, T::MaxLicenseLen>"),
          ("price", U128, "BalanceOf<T>"), ("access", Access, "Access<T>"), weight=150_000_000)
    def update(self, ctx: DispatchContext, origin: bytes | None, dataset: bytes, license: bytes, price: int,
               access: Any) -> None:
        """The owner changes the license, price and access rule; grants already bought stay."""
        record = self._owned(ctx, origin, dataset)
        self._check_terms(record["size"], record["format"], license, price, access)
        record.update(license=license, price=price, access=access)
        self.Datasets.set(ctx.state, dataset, record)
        ctx.deposit_event(self, "DatasetUpdated", {"dataset": dataset, "access": access, "price": price})

    @call(3, DATASET, weight=100_000_000)
    def retire(self, ctx: DispatchContext, origin: bytes | None, dataset: bytes) -> None:
        """The owner stops new grants and new tasks; what was bought and computed stays on record."""
        record = self._owned(ctx, origin, dataset)
        if record["retired"]:
            raise self.error("Retired")
        record["retired"] = True
        self.Datasets.set(ctx.state, dataset, record)
        ctx.deposit_event(self, "DatasetRetired", {"dataset": dataset})

    # What TaskBounties asks ----------------------------------------------------------------------
    def check_task(self, ctx: DispatchContext, dataset: bytes, requester: bytes) -> None:
        """A task may be posted on this data set by `requester` (nothing to check if it is not registered)."""
        record = self.Datasets.get(ctx.state, dataset)
        if record is None:
            return
        if record["retired"]:
            raise self.error("Retired")
        if record["access"][0] != "Public" and not self.may_use(ctx.state, dataset, requester):
            raise self.error("NoGrant")

    def check_claim(self, ctx: DispatchContext, dataset: bytes, worker: bytes) -> None:
        record = self.Datasets.get(ctx.state, dataset)
        if record is not None and record["access"][0] == "ComputeOnly" \
                and worker not in [bytes(w) for w in record["access"][1]["workers"]]:
            raise self.error("NotDesignatedWorker")

    def check_result(self, ctx: DispatchContext, dataset: bytes, code_hash: bytes) -> None:
        record = self.Datasets.get(ctx.state, dataset)
        if record is not None and record["access"][0] == "ComputeOnly" \
                and bytes(code_hash) not in [bytes(r) for r in record["access"][1]["recipes"]]:
            raise self.error("RecipeNotAllowed")

    def record_compute(self, ctx: DispatchContext, dataset: bytes, model_hash: bytes, receipt: dict[str, Any]) -> None:
        """An accepted task on a ComputeOnly data set: bind its data, recipe code, attestation and model."""
        record = self.Datasets.get(ctx.state, dataset)
        if record is None or record["access"][0] != "ComputeOnly":
            return
        self.ComputeReceipts.set(ctx.state, dataset, model_hash, {**receipt, "block": ctx.block_number})
        ctx.deposit_event(self, "ComputeReceiptRecorded", {"dataset": dataset, "model_hash": model_hash,
                                                           "task_id": receipt["task_id"],
                                                           "code_hash": receipt["code_hash"]})

    def may_use(self, state: Any, dataset: bytes, who: bytes) -> bool:
        """The owner, or a grant holder."""
        record = self.Datasets.get(state, dataset)
        return record is not None and (bytes(record["owner"]) == who or self.Grants.contains(state, dataset, who))

    def _check_terms(self, size: int, format: bytes, license: bytes, price: int, access: Any) -> None:  # noqa: A002
        if len(format) > MAX_FORMAT_LEN or len(license) > MAX_LICENSE_LEN:
            raise self.error("FieldTooLong")
        kind, rule = access
        ok = size > 0 and (price == 0 if kind == "Public" else price > 0)
        if kind == "ComputeOnly":
            ok = ok and 1 <= len(rule["recipes"]) <= MAX_ALLOWED and 1 <= len(rule["workers"]) <= MAX_ALLOWED
        if not ok:
            raise self.error("InvalidTerms")

    def _dataset(self, ctx: DispatchContext, dataset: bytes) -> dict[str, Any]:
        record = self.Datasets.get(ctx.state, dataset)
        if record is None:
            raise self.error("DatasetNotFound")
        return record

    def _owned(self, ctx: DispatchContext, origin: bytes | None, dataset: bytes) -> dict[str, Any]:
        who = _signed(origin)
        record = self._dataset(ctx, dataset)
        if bytes(record["owner"]) != who:
            raise self.error("NotOwner")
        return record


def _signed(origin: bytes | None) -> bytes:
    if origin is None:
        raise BAD_ORIGIN
    return origin


__all__ = ["MAX_ALLOWED", "Datasets"]
