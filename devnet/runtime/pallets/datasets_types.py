"""Types, events and errors of pallet_datasets (datasets.py)."""
from __future__ import annotations

from devnet.runtime.framework import ErrorDef, EventDef
from devnet.runtime.pallets.models import BoundedBytes
from devnet.scale.types import H256, U32, U64, U128, AccountId, Bool, Composite, Sequence, enum, fields

PALLET = "pallet_datasets"
DATASET = ("dataset", H256, "H256")
BALANCE = "BalanceOf<T>"

Access = enum(
    (PALLET, "types", "Access"),
    ("Public", ()),
    ("Paid", ()),
    ("ComputeOnly", fields(("recipes", Sequence(H256), "BoundedVec<H256, T::MaxAllowed>"),
                           ("workers", Sequence(AccountId), "BoundedVec<T::AccountId, T::MaxAllowed>"))),
)
DatasetRecord = Composite((PALLET, "types", "DatasetRecord"), fields(
    ("owner", AccountId, "T::AccountId"), ("size", U64, "u64"),
    ("format", BoundedBytes, "BoundedVec<u8, T::MaxFormatLen>"),
    ("license", BoundedBytes, "BoundedVec<u8, T::MaxLicenseLen>"), ("price", U128, BALANCE),
    ("access", Access, "Access<T>"), ("retired", Bool, "bool"), ("registered_at", U32, "BlockNumberFor<T>"),
    ("grants", U32, "u32")))
ComputeReceipt = Composite((PALLET, "types", "ComputeReceipt"), fields(
    ("task_id", U64, "TaskId"), ("worker", AccountId, "T::AccountId"), ("code_hash", H256, "H256"),
    ("attestation_hash", H256, "H256"), ("block", U32, "BlockNumberFor<T>")))

EVENTS = (
    EventDef("DatasetRegistered", fields(DATASET, ("owner", AccountId, "T::AccountId"), ("access", Access, "Access<T>"),
                                         ("price", U128, BALANCE)),
             "A data set's content hash is registered with its access rule and price."),
    EventDef("AccessBought", fields(DATASET, ("buyer", AccountId, "T::AccountId"), ("price", U128, BALANCE)),
             "The buyer paid the owner and holds a grant: it may fetch a Paid data set, or post tasks on a "
             "ComputeOnly one."),
    EventDef("DatasetUpdated", fields(DATASET, ("access", Access, "Access<T>"), ("price", U128, BALANCE)),
             "The owner changed the price, the access rule or the license; grants already bought stay."),
    EventDef("DatasetRetired", fields(DATASET,),
             "The owner retired the data set: no new grant and no new task on it."),
    EventDef("ComputeReceiptRecorded", fields(DATASET, ("model_hash", H256, "H256"), ("task_id", U64, "TaskId"),
                                              ("code_hash", H256, "H256")),
             "A task on a ComputeOnly data set was accepted: the model, the recipe's code and the data are bound "
             "on chain."),
)
ERRORS = tuple(ErrorDef(n, d) for n, d in (
    ("DatasetNotFound", "No data set with this content hash is registered."),
    ("AlreadyRegistered", "A data set with this content hash is already registered."),
    ("NotOwner", "Only the data set's owner may update or retire it."),
    ("InvalidTerms", "A Paid or ComputeOnly data set has a price above 0, a Public one 0; a ComputeOnly one names "
                     "1..MaxAllowed recipes and 1..MaxAllowed workers; the size is above 0."),
    ("FieldTooLong", "The format or the license is longer than MaxFormatLen / MaxLicenseLen bytes."),
    ("NothingToBuy", "A Public data set needs no grant."),
    ("AlreadyGranted", "This account already holds a grant (or owns the data set)."),
    ("Retired", "The data set is retired: no new grant and no new task."),
    ("CannotPay", "The buyer's free balance does not cover the price."),
    ("NoGrant", "A task on a Paid or ComputeOnly data set is posted by its owner or a grant holder."),
    ("NotDesignatedWorker", "A task on a ComputeOnly data set is claimed only by one of the owner's designated "
                            "workers."),
    ("RecipeNotAllowed", "A result on a ComputeOnly data set must come from an allowed recipe (its code hash)."),
))

__all__ = ["BALANCE", "DATASET", "ERRORS", "EVENTS", "PALLET", "Access", "ComputeReceipt", "DatasetRecord"]
