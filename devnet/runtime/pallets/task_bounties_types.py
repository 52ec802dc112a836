"""The declarations of pallet_task_bounties: its types, events and errors (the logic is in task_bounties.py).

Kept apart from the pallet's logic so that each file stays readable; the metadata derives from these
declarations exactly as if they sat in the pallet module. Variants, fields, events and errors are only
ever appended, so existing SCALE encodings and indices (and the clients that decode them) stay valid.
"""
from __future__ import annotations

from typing import Any

from devnet.crypto import blake2_256
from devnet.runtime.framework import ErrorDef, EventDef
from devnet.runtime.pallets.models import I64, BoundedBytes, Metrics
from devnet.scale.codec import codec_for
from devnet.scale.types import (
    H256,
    U32,
    U64,
    U128,
    AccountId,
    Bool,
    Composite,
    Field,
    Option,
    Sequence,
    Tuple,
    enum,
    fields,
)

PALLET = "pallet_task_bounties"
ATTESTATION_DOMAIN = b"paratrain/attestation/v1"
PERBILL = 1_000_000_000

Perbill = Composite(("sp_arithmetic", "per_things", "Perbill"), (Field(None, U32, "u32"),))
Requirements = Composite((PALLET, "types", "Requirements"), fields(
    ("min_cpus", U32, "u32"), ("min_gpus", U32, "u32"), ("min_memory_mb", U64, "u64")))
TaskSpec = Composite((PALLET, "types", "TaskSpec"), fields(
    ("recipe", BoundedBytes, "BoundedVec<u8, T::MaxRecipeLen>"), ("spec_hash", H256, "H256"),
    ("spec_uri", BoundedBytes, "BoundedVec<u8, T::MaxUriLen>"), ("dataset_hash", H256, "H256"),
    ("eval_metric", BoundedBytes, "BoundedVec<u8, T::MaxMetricNameLen>"), ("eval_target", I64, "i64"),
    ("higher_is_better", Bool, "bool"), ("requirements", Requirements, "Requirements"),
    ("parent_model", Option(H256), "Option<H256>")))
TaskStatus = enum(
    (PALLET, "types", "TaskStatus"),
    ("Open", ()),
    ("Claimed", fields(("worker", AccountId, "T::AccountId"), ("lease_until", U32, "BlockNumberFor<T>"))),
    # verify_until, challenge_until and settle_until are pallet_timestamp moments (ms), not block numbers:
    # with instant seal an idle chain makes no blocks, and anyone's transactions make blocks at will
    ("Submitted", fields(("worker", AccountId, "T::AccountId"), ("verify_until", U64, "T::Moment"))),
    ("Accepted", fields(("worker", AccountId, "T::AccountId"), ("model_hash", H256, "H256"))),
    ("Expired", ()),
    ("Cancelled", ()),
    ("Approved", fields(("worker", AccountId, "T::AccountId"), ("challenge_until", U64, "T::Moment"))),
    ("Challenged", fields(("worker", AccountId, "T::AccountId"), ("challenger", AccountId, "T::AccountId"),
                          ("settle_until", U64, "T::Moment"))),
)
Progress = Composite((PALLET, "types", "Progress"), fields(("step", U64, "u64"), ("checkpoint_root", H256, "H256")))
Task = Composite((PALLET, "types", "Task"), fields(
    ("requester", AccountId, "T::AccountId"), ("spec", TaskSpec, "TaskSpec<T>"), ("bounty", U128, "BalanceOf<T>"),
    ("deposit", U128, "BalanceOf<T>"), ("min_stake", U128, "BalanceOf<T>"), ("deadline", U32, "BlockNumberFor<T>"),
    ("validators_required", U32, "u32"), ("holdout_commitment", Option(H256), "Option<H256>"),
    ("status", TaskStatus, "TaskStatus<T>"), ("created_at", U32, "BlockNumberFor<T>"),
    ("attempts", U32, "u32"), ("progress", Option(Progress), "Option<Progress>")))
Attestation = Composite((PALLET, "types", "Attestation"), fields(
    ("task_id", U64, "TaskId"), ("worker", AccountId, "T::AccountId"), ("model_hash", H256, "H256"),
    ("artifact_uri", BoundedBytes, "BoundedVec<u8, T::MaxUriLen>"), ("metrics", Metrics, "Metrics<T>"),
    ("trajectory_root", H256, "H256"), ("checkpoints", Sequence(H256), "BoundedVec<H256, T::MaxCheckpoints>"),
    ("code_hash", H256, "H256"), ("dataset_hash", H256, "H256"), ("started_ms", U64, "u64"),
    ("finished_ms", U64, "u64")))
Verdict = Composite((PALLET, "types", "Verdict"), fields(
    ("accept", Bool, "bool"), ("measured_metric", I64, "i64"), ("evidence_hash", H256, "H256")))
Challenge = Composite((PALLET, "types", "Challenge"), fields(
    ("challenger", AccountId, "T::AccountId"), ("deposit", U128, "BalanceOf<T>"),
    ("evidence_hash", H256, "H256"), ("opened_at", U32, "BlockNumberFor<T>")))
SubmittedResult = Composite((PALLET, "types", "SubmittedResult"), fields(
    ("attestation", Attestation, "Attestation<T>"), ("attestation_hash", H256, "H256"),
    ("relayer", AccountId, "T::AccountId"), ("submitted_at", U32, "BlockNumberFor<T>"),
    ("accepts", Sequence(AccountId), "BoundedVec<T::AccountId, T::MaxValidatorsRequired>"),
    ("rejects", Sequence(AccountId), "BoundedVec<T::AccountId, T::MaxValidatorsRequired>"),
    ("approved_by", Sequence(AccountId), "BoundedVec<T::AccountId, T::MaxValidatorsRequired>"),
    ("challenge", Option(Challenge), "Option<Challenge<T>>")))
Holdout = Composite((PALLET, "types", "Holdout"), fields(
    ("salt", H256, "H256"), ("holdout_hash", H256, "H256"), ("holdout_size", U64, "u64"),
    ("holdout_uri", BoundedBytes, "BoundedVec<u8, T::MaxUriLen>"),
    ("revealed_at", U32, "BlockNumberFor<T>")))
PendingPayout = Tuple((U64, U64))  # (challenge_until moment, task id)
VerificationDeadline = Tuple((U64, U64))  # (verify_until or settle_until moment, task id)

ATTESTATION_CODEC = codec_for(Attestation)
COMMITMENT_CODEC = codec_for(Tuple((H256, H256, U64, BoundedBytes)))


def attestation_message(attestation: dict[str, Any]) -> bytes:
    """The bytes a worker signs: the domain tag followed by the SCALE attestation."""
    return ATTESTATION_DOMAIN + ATTESTATION_CODEC.encode(attestation)


def holdout_commitment(salt: bytes, holdout_hash: bytes, holdout_size: int, holdout_uri: bytes) -> bytes:
    """The requester's commitment to its hidden holdout: the bytes (their hash and size) as well as where they
    are, so that a validator reads exactly the committed bytes and no more."""
    return blake2_256(COMMITMENT_CODEC.encode((salt, holdout_hash, holdout_size, holdout_uri)))


def perbill_mul(parts: int, amount: int) -> int:
    return amount * parts // PERBILL


# Events and errors ------------------------------------------------------------------------------
TASK_ID = ("task_id", U64, "TaskId")
_WORKER = ("worker", AccountId, "T::AccountId")
_CHALLENGER = ("challenger", AccountId, "T::AccountId")


def _bal(name: str) -> tuple[str, Any, str]:
    return (name, U128, "BalanceOf<T>")


def _block(name: str) -> tuple[str, Any, str]:
    return (name, U32, "BlockNumberFor<T>")


def _moment(name: str) -> tuple[str, Any, str]:
    return (name, U64, "T::Moment")


EVENTS = (
    EventDef("TaskCreated", fields(TASK_ID, ("requester", AccountId, "T::AccountId"), _bal("bounty"),
                                   _block("deadline")), "A task was posted; bounty and deposit are reserved."),
    EventDef("TaskCancelled", fields(TASK_ID, _bal("refund")), "The requester cancelled an Open task."),
    EventDef("TaskClaimed", fields(TASK_ID, _WORKER, _block("lease_until")), "A trainer claimed a task."),
    EventDef("Heartbeat", fields(TASK_ID, _WORKER, ("progress", Progress, "Progress"), _block("lease_until")),
             "The worker committed progress and extended its lease."),
    EventDef("ClaimReleased", fields(TASK_ID, _WORKER), "The worker gave the task back."),
    EventDef("LeaseExpired", fields(TASK_ID, _WORKER), "The worker's lease lapsed."),
    EventDef("ResultSubmitted", fields(TASK_ID, _WORKER, ("model_hash", H256, "H256"),
                                       ("attestation_hash", H256, "H256"), _moment("verify_until")),
             "A signed attestation was submitted; validators may vote until `verify_until` (ms of Timestamp.Now)."),
    EventDef("HoldoutRevealed", fields(TASK_ID, ("holdout_hash", H256, "H256"), ("holdout_size", U64, "u64"),
                                       ("holdout_uri", BoundedBytes, "BoundedVec<u8, T::MaxUriLen>")),
             "The requester revealed the committed holdout data."),
    EventDef("VerdictSubmitted", fields(TASK_ID, ("validator", AccountId, "T::AccountId"),
                                        ("verdict", Verdict, "Verdict")), "A validator voted."),
    EventDef("TaskAccepted", fields(TASK_ID, _WORKER, ("model_hash", H256, "H256"), _bal("worker_reward"),
                                    _bal("validator_reward")),
             "A quorum accepted the result: the bounty is paid (`validator_reward` per accepting validator)."),
    EventDef("WorkerSlashed", fields(TASK_ID, _WORKER, _bal("amount"), _bal("burned")),
             "Part of the worker's stake was slashed: routed to requester and validators, `burned` destroyed."),
    EventDef("TaskReopened", fields(TASK_ID), "The task is Open again."),
    EventDef("TaskExpired", fields(TASK_ID, _bal("refund")), "The task expired; bounty and deposit returned."),
    EventDef("VerificationTimedOut", fields(TASK_ID, _WORKER),
             "No quorum within VerificationGrace (ms): resolved without a slash."),
    EventDef("ResultApproved", fields(TASK_ID, _WORKER, ("challenge_until", U64, "T::Moment")),
             "A quorum accepted the result; it pays out unless challenged before `challenge_until` (ms)."),
    EventDef("ResultChallenged", fields(TASK_ID, _CHALLENGER, _bal("deposit"), _moment("settle_until")),
             "A validator challenged an approved result; a larger quorum settles it by `settle_until` (ms)."),
    EventDef("ChallengeUpheld", fields(TASK_ID, _CHALLENGER),
             "The challenge round rejected the result: the worker is slashed, the challenger's deposit returned."),
    EventDef("ChallengeDismissed", fields(TASK_ID, _CHALLENGER, _bal("slashed")),
             "The challenge round accepted the result: the challenger's deposit went to its accepters."),
    EventDef("ChallengeTimedOut", fields(TASK_ID, _CHALLENGER),
             "No quorum in the challenge round: the deposit is returned and the original approval stands."),
    EventDef("ApproverSlashed", fields(TASK_ID, ("validator", AccountId, "T::AccountId"), _CHALLENGER, _bal("amount")),
             "A validator approved a result that the challenge round rejected: ApproverSlashFraction of its stake "
             "went to the challenger."),
)
ERRORS = tuple(ErrorDef(n, d) for n, d in (
    ("TaskNotFound", "No task with this id."),
    ("NotRequester", "Only the task's requester may do this."),
    ("TaskNotOpen", "The task is not Open."),
    ("NotClaimed", "The task is not Claimed."),
    ("NotClaimant", "The caller (or the attestation's worker) does not hold the claim."),
    ("NotSubmitted", "The task has no result under verification."),
    ("BountyTooLow", "The bounty is below MinBounty."),
    ("DeadlineInPast", "The deadline is not after the current block."),
    ("DeadlinePassed", "The task's deadline has passed."),
    ("InvalidValidatorsRequired", "validators_required is 0 or above MaxValidatorsRequired."),
    ("RecipeTooLong", "The recipe is longer than MaxRecipeLen."),
    ("UriTooLong", "A URI is longer than MaxUriLen."),
    ("MetricNameTooLong", "A metric name is longer than MaxMetricNameLen."),
    ("TooManyMetrics", "More than MaxMetrics metrics."),
    ("TooManyCheckpoints", "More than MaxCheckpoints checkpoints."),
    ("UnknownParentModel", "The parent model is not registered."),
    ("NotTrainer", "The caller is not an active Trainer."),
    ("NotValidator", "The caller is not an active Validator."),
    ("InsufficientStake", "The worker's stake is below the task's (or the role's) minimum."),
    ("RequirementsNotMet", "The worker's capabilities do not meet the task's requirements."),
    ("TooManyClaims", "The worker already holds MaxClaimsPerWorker claims."),
    ("RequesterCannotWork", "The requester may not claim or judge its own task."),
    ("ProgressRegressed", "The progress step went backwards."),
    ("AttestationMismatch", "The attestation's task id does not match."),
    ("DatasetMismatch", "The attestation's dataset hash differs from the task's."),
    ("InvalidTimestamps", "finished_ms is before started_ms."),
    ("BadAttestationSignature", "The signature is not the worker's over the attestation."),
    ("ModelAlreadyRegistered", "A model with this hash is already registered."),
    ("NoHoldoutCommitment", "The task has no holdout commitment."),
    ("HoldoutAlreadyRevealed", "The holdout was already revealed."),
    ("HoldoutNotRevealable", "The holdout may be revealed only once a result is submitted."),
    ("HoldoutMismatch", "salt, holdout_hash, holdout_size and holdout_uri do not match the commitment."),
    ("CannotJudgeOwnWork", "The worker may not judge its own result."),
    ("AlreadyVoted", "The validator already voted on this result (in this round, or approved it)."),
    ("ExpiryQueueFull", "No expiry slot within MaxExpirySpill blocks (and up to u32::MAX) has room."),
    ("NotApproved", "The task's result is not Approved (awaiting the end of its challenge period)."),
    ("ChallengePeriodOver", "The challenge period of this result has ended."),
    ("ChallengePeriodNotOver", "The challenge period of this result has not ended yet."),
    ("DeadlineTooFar", "The deadline is more than MaxDeadlineBlocks after the current block."),
    ("PrivateTaskNeedsClaim", "A private task's result is submitted with its DP claim (submit_private_result)."),
    ("NotPrivateTask", "submit_private_result on a task without DP terms (use submit_result)."),
))
