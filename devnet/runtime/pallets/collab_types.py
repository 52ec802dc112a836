"""Types, events and errors of pallet_collaborative_models (collab.py)."""
from __future__ import annotations

from devnet.runtime.framework import ErrorDef, EventDef
from devnet.runtime.pallets.models import I64
from devnet.scale.types import U32, U64, U128, AccountId, Bool, Composite, Sequence, enum, fields

PALLET = "pallet_collaborative_models"
MODEL = ("model", U64, "ModelId")
CONTRIBUTION = ("contribution", U64, "ContributionId")

Input = enum((PALLET, "types", "Input"),
             ("Dense", fields((None, Sequence(I64), "Vec<i64>"))),
             ("Sparse", fields((None, Sequence(U32), "Vec<u32>"))))
ModelParams = enum(
    (PALLET, "types", "ModelParams"),
    ("Perceptron", fields(("weights", Sequence(I64), "Vec<i64>"), ("intercept", I64, "i64"),
                          ("learning_rate", U64, "u64"))),
    ("NearestCentroid", fields(("centroids", Sequence(Sequence(I64)), "Vec<Vec<i64>>"),
                               ("counts", Sequence(U64), "Vec<u64>"))),
    ("NaiveBayes", fields(("num_samples", Sequence(U64), "Vec<u64>"),
                          ("total_feature_count", Sequence(U64), "Vec<u64>"),
                          ("feature_counts", Sequence(Sequence(U64)), "Vec<Vec<u64>>"),
                          ("smoothing", U64, "u64"))))
Waits = Composite((PALLET, "types", "Waits"), fields(
    ("refund_wait_s", U64, "u64"), ("owner_claim_wait_s", U64, "u64"), ("any_claim_wait_s", U64, "u64")))
Mechanism = enum((PALLET, "types", "Mechanism"),
                 ("DepositRefundTake", fields(("waits", Waits, "Waits"), ("cost_weight", U128, "BalanceOf<T>"))),
                 ("Points", fields(("waits", Waits, "Waits"))))
ModelRecord = Composite((PALLET, "types", "ModelRecord"), fields(
    ("owner", AccountId, "T::AccountId"), ("features", U32, "u32"), ("classes", U32, "u32"),
    ("mechanism", Mechanism, "Mechanism<T>"), ("last_update_s", U64, "u64"), ("contributions", U64, "u64"),
    ("total_good", U64, "u64"), ("held", U128, "BalanceOf<T>")))
Contribution = Composite((PALLET, "types", "Contribution"), fields(
    ("contributor", AccountId, "T::AccountId"), ("input", Input, "Input"), ("label", U32, "u32"),
    ("added_s", U64, "u64"), ("deposit", U128, "BalanceOf<T>"), ("claimable", U128, "BalanceOf<T>"),
    ("claims", U32, "u32"), ("refunded", Bool, "bool"),
    ("claimed_by", Sequence(AccountId), "BoundedVec<T::AccountId, T::MaxClaimers>")))
Stats = Composite((PALLET, "types", "ContributorStats"), fields(
    ("submitted", U64, "u64"), ("good", U64, "u64")))

EVENTS = (
    EventDef("ModelDeployed", fields(MODEL, ("owner", AccountId, "T::AccountId"), ("features", U32, "u32"),
                                     ("classes", U32, "u32")),
             "A collaborative model was deployed; it learns from every add_data."),
    EventDef("DataAdded", fields(MODEL, CONTRIBUTION, ("contributor", AccountId, "T::AccountId"),
                                 ("label", U32, "u32"), ("deposit", U128, "BalanceOf<T>")),
             "A contribution updated the model; its deposit (DepositRefundTake) is held until refunded or taken."),
    EventDef("Refunded", fields(MODEL, CONTRIBUTION, ("contributor", AccountId, "T::AccountId"),
                                ("amount", U128, "BalanceOf<T>")),
             "After the refund wait the model still agreed with the contribution: its deposit came back and it "
             "counts as good data."),
    EventDef("Taken", fields(MODEL, CONTRIBUTION, ("reporter", AccountId, "T::AccountId"),
                             ("amount", U128, "BalanceOf<T>")),
             "A reporter took (part of) a contribution's deposit: the model disagreed with it after the wait, or "
             "the longer waits had passed."),
)
ERRORS = tuple(ErrorDef(n, d) for n, d in (
    ("ModelNotFound", "No collaborative model with this id."),
    ("InvalidDimensions", "A model has 1..MaxFeatures features and 2..MaxClasses classes (a perceptron exactly 2)."),
    ("DimensionMismatch", "The input or the parameters do not have the model's number of features or classes."),
    ("ClassOutOfRange", "The label is not one of the model's classes."),
    ("FeatureOutOfRange", "A sparse input names a feature index beyond the model's features."),
    ("ValueOutOfRange", "An input value is beyond +-MaxValue (fixed point, 1e9 per unit)."),
    ("InputNotSupported", "This model takes sparse inputs only (Naive Bayes counts feature indices)."),
    ("InvalidMechanism", "The waits must satisfy refund <= owner claim <= any claim."),
    ("CannotPayDeposit", "The contributor's free balance does not cover the deposit."),
    ("ContributionNotFound", "No contribution with this id on this model."),
    ("NotContributor", "Only the contributor may ask for its refund."),
    ("TooEarly", "The wait for this refund or take has not passed."),
    ("AlreadyClaimed", "The contribution was already refunded, or this reporter already took from it."),
    ("ModelDisagrees", "The model does not predict the contribution's label: no refund."),
    ("ModelAgrees", "The model predicts the contribution's label: it may not be taken yet."),
    ("OwnContribution", "A contributor may not take from its own contribution before the any-claim wait."),
    ("NoGoodContributions", "Only a contributor with refunded (good) contributions may take before the longer waits."),
    ("NothingToClaim", "Nothing of the contribution's deposit is left."),
))

__all__ = ["CONTRIBUTION", "ERRORS", "EVENTS", "MODEL", "PALLET", "Contribution", "Input", "Mechanism",
           "ModelParams", "ModelRecord", "Stats", "Waits"]
