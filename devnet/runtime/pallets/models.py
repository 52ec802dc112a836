"""pallet_models: the registry of accepted models.

TaskBounties registers a record here when a quorum of validators accepts a
result; the pallet has no dispatchables of its own. A record is keyed by the
model's content hash (`model_hash` of the attestation) and holds the owner
(the task's requester), the trainer, the task, the recipe, the dataset hash,
the parent model (the task spec's `parent_model`, for fine-tuning lineage),
the metrics, the artifact URI, the hash of the attestation and the block.
`ModelsByOwner` (owner, model_hash) -> () lists an owner's models by prefix
iteration.

Metrics everywhere (task specs, attestations, verdicts, model records) are
`Vec<(name: BoundedVec<u8>, value: i64)>`: the value is a fixed-point number
in micro-units (value * 10^6, rounded), signed so that log-likelihoods fit.
"""
from __future__ import annotations

from typing import Any

from devnet.runtime.context import DispatchContext
from devnet.runtime.framework import ErrorDef, EventDef, Pallet, StorageItem
from devnet.scale.types import (
    H256,
    U8,
    U32,
    U64,
    AccountId,
    BoundedVec,
    Composite,
    Option,
    Primitive,
    Sequence,
    Tuple,
    fields,
)

I64 = Primitive("i64")
PALLET = "pallet_models"

BoundedBytes = BoundedVec(U8)
Metric = Tuple((BoundedBytes, I64))
# Vectors of non-byte items are declared as plain Vec<T> (bounds checked by the calls): scalecodec
# 1.2.12 does not know the bounded_collections path and would make clients wrap every list in a list.
Metrics = Sequence(Metric)

ModelRecord = Composite((PALLET, "types", "ModelRecord"), fields(
    ("owner", AccountId, "T::AccountId"), ("trainer", AccountId, "T::AccountId"), ("task_id", U64, "TaskId"),
    ("recipe", BoundedBytes, "BoundedVec<u8, T::MaxRecipeLen>"), ("dataset_hash", H256, "H256"),
    ("parent", Option(H256), "Option<H256>"), ("metrics", Metrics, "Metrics<T>"),
    ("artifact_uri", BoundedBytes, "BoundedVec<u8, T::MaxUriLen>"), ("attestation_hash", H256, "H256"),
    ("block", U32, "BlockNumberFor<T>")))


class Models(Pallet):
    name = "Models"
    index = 22
    module = PALLET

    Models = StorageItem(ModelRecord, (("Blake2_128Concat", H256),),
                         docs="Every accepted model, keyed by its content hash.")
    ModelsByOwner = StorageItem(Tuple(), (("Blake2_128Concat", AccountId), ("Blake2_128Concat", H256)),
                                docs="(owner, model_hash) -> (): the models of each owner.")
    ModelCount = StorageItem(U64, default=0, docs="The number of registered models.")

    events = (
        EventDef("ModelRegistered", fields(
            ("model_hash", H256, "H256"), ("owner", AccountId, "T::AccountId"),
            ("trainer", AccountId, "T::AccountId"), ("task_id", U64, "TaskId"),
            ("parent", Option(H256), "Option<H256>")),
            "An accepted result registered a model."),
    )
    errors = (
        ErrorDef("ModelAlreadyRegistered", "A model with this hash is already registered."),
        ErrorDef("UnknownModel", "No model with this hash is registered."),
    )

    def exists(self, state: Any, model_hash: bytes) -> bool:
        return Models.Models.contains(state, model_hash)

    def register(self, ctx: DispatchContext, model_hash: bytes, record: dict[str, Any]) -> None:
        if Models.Models.contains(ctx.state, model_hash):
            raise Models.error("ModelAlreadyRegistered")
        Models.Models.set(ctx.state, model_hash, record)
        Models.ModelsByOwner.set(ctx.state, record["owner"], model_hash, None)
        Models.ModelCount.set(ctx.state, Models.ModelCount.get(ctx.state) + 1)
        ctx.deposit_event(Models, "ModelRegistered", {
            "model_hash": model_hash, "owner": record["owner"], "trainer": record["trainer"],
            "task_id": record["task_id"], "parent": record["parent"]})
