"""pallet_task_bounties: training tasks with escrowed bounties, claims, attested results, verdicts.

Lifecycle (`TaskStatus`, stored in `Task.status`):

    Open --claim_task--> Claimed{worker, lease_until} --submit_result--> Submitted{worker, verify_until}
      ^                     |  heartbeat: lease_until moves on                |
      |                     |  release_claim / lease lapses (slash)           | validators_required accepts
      +---------------------+  (Expired instead when past the deadline)       +--> Accepted{worker, model_hash}
      |                                                                       | validators_required rejects
      +<-- reject: SlashFraction of the stake slashed, task reopens ----------+ (Expired when past the deadline)
    Open --cancel_task--> Cancelled         Open past its deadline --> Expired (full refund)
    Submitted with no quorum by verify_until --> Expired (no slash, full refund)

Block numbers: `deadline`, `lease_until`, `verify_until` are block numbers; a
lease lapses, an Open task expires and a verification times out in the
`on_initialize` of that block. `lease_until` and `verify_until` are the block
the task is actually scheduled at: when that block's expiry slot already
holds MaxExpiriesPerBlock entries the entry spills to the next block with
room (at most MaxExpirySpill blocks later, else the call fails with
ExpiryQueueFull). Each hook processes at most 3 * MaxExpiriesPerBlock tasks.

Money: `create_task` reserves `bounty + TaskDeposit` from the requester.
Acceptance: the worker receives `bounty - ValidatorRewardShare * bounty`, the
accepting validators split the reward share equally (the worker gets the
division's remainder), the deposit is unreserved. Rejection: SlashFraction of
the worker's stake is slashed, half to the requester, half split equally
among the rejecting validators; the division's remainder is burned. A lapsed
lease slashes LeaseSlashFraction of the stake to the requester. Expiry,
cancellation and a verification timeout return bounty and deposit in full.

Attestation signature: the worker signs
`b"paratrain/attestation/v1" ++ SCALE(Attestation)` with its account key
(sr25519 or ed25519, as a MultiSignature); the pallet verifies it against the
claiming worker's account, so anyone may relay the result.

Holdout commitment: `holdout_commitment = blake2_256(SCALE((salt: H256,
holdout_uri: BoundedVec<u8>)))`, i.e. blake2_256(salt ++ compact(len(uri)) ++
uri). The requester reveals salt and URI with `reveal_holdout` once a result
is submitted.

Metrics: `(name, value)` pairs, value an i64 in micro-units (see pallet_models).
"""
from __future__ import annotations

import logging
from typing import Any, Callable

from devnet.crypto import blake2_256, verify_signature
from devnet.runtime.context import DispatchContext
from devnet.runtime.framework import BAD_ORIGIN, Constant, DispatchError, ErrorDef, EventDef, Pallet, StorageItem, call
from devnet.runtime.pallets.models import I64, BoundedBytes, Metrics, Models
from devnet.runtime.pallets.workers import UNIT, Workers
from devnet.runtime.primitives import MultiSignature
from devnet.scale.codec import codec_for
from devnet.scale.types import (
    U32, U64, U128, AccountId, Bool, Composite, Field, H256, Option, Sequence, Tuple, enum, fields,
)

log = logging.getLogger(__name__)
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
    ("Submitted", fields(("worker", AccountId, "T::AccountId"), ("verify_until", U32, "BlockNumberFor<T>"))),
    ("Accepted", fields(("worker", AccountId, "T::AccountId"), ("model_hash", H256, "H256"))),
    ("Expired", ()),
    ("Cancelled", ()),
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
SubmittedResult = Composite((PALLET, "types", "SubmittedResult"), fields(
    ("attestation", Attestation, "Attestation<T>"), ("attestation_hash", H256, "H256"),
    ("relayer", AccountId, "T::AccountId"), ("submitted_at", U32, "BlockNumberFor<T>"),
    ("accepts", Sequence(AccountId), "BoundedVec<T::AccountId, T::MaxValidatorsRequired>"),
    ("rejects", Sequence(AccountId), "BoundedVec<T::AccountId, T::MaxValidatorsRequired>")))
Holdout = Composite((PALLET, "types", "Holdout"), fields(
    ("salt", H256, "H256"), ("holdout_uri", BoundedBytes, "BoundedVec<u8, T::MaxUriLen>"),
    ("revealed_at", U32, "BlockNumberFor<T>")))

ATTESTATION_CODEC = codec_for(Attestation)
COMMITMENT_CODEC = codec_for(Tuple((H256, BoundedBytes)))


def attestation_message(attestation: dict[str, Any]) -> bytes:
    """The bytes a worker signs: the domain tag followed by the SCALE attestation."""
    return ATTESTATION_DOMAIN + ATTESTATION_CODEC.encode(attestation)


def holdout_commitment(salt: bytes, holdout_uri: bytes) -> bytes:
    return blake2_256(COMMITMENT_CODEC.encode((salt, holdout_uri)))


def perbill_mul(parts: int, amount: int) -> int:
    return amount * parts // PERBILL


_TASK = ("task_id", U64, "TaskId")
_WORKER = ("worker", AccountId, "T::AccountId")
_BAL = lambda name: (name, U128, "BalanceOf<T>")  # noqa: E731
_BLOCK = lambda name: (name, U32, "BlockNumberFor<T>")  # noqa: E731


class TaskBounties(Pallet):
    name = "TaskBounties"
    index = 21
    module = PALLET

    NextTaskId = StorageItem(U64, default=0, docs="The id the next task gets.")
    Tasks = StorageItem(Task, (("Twox64Concat", U64),), docs="Every task, terminal ones included.")
    Results = StorageItem(SubmittedResult, (("Twox64Concat", U64),),
                          docs="The result under verification (and the accepted one) per task.")
    Verdicts = StorageItem(Verdict, (("Twox64Concat", U64), ("Blake2_128Concat", AccountId)),
                           docs="(task, validator) -> verdict on the result under verification.")
    Holdouts = StorageItem(Holdout, (("Twox64Concat", U64),), docs="Revealed holdout data per task.")
    ClaimsByWorker = StorageItem(Tuple(), (("Blake2_128Concat", AccountId), ("Twox64Concat", U64)),
                                 docs="(worker, task) -> (): tasks a worker holds (Claimed or Submitted).")
    LeaseExpiries = StorageItem(Sequence(U64), (("Twox64Concat", U32),), default=[],
                                docs="block -> tasks whose lease lapses at that block.")
    DeadlineExpiries = StorageItem(Sequence(U64), (("Twox64Concat", U32),), default=[],
                                   docs="block -> tasks to expire at that block if still Open.")
    VerificationExpiries = StorageItem(Sequence(U64), (("Twox64Concat", U32),), default=[],
                                       docs="block -> tasks whose verification window closes at that block.")

    events = (
        EventDef("TaskCreated", fields(_TASK, ("requester", AccountId, "T::AccountId"), _BAL("bounty"),
                                       _BLOCK("deadline")), "A task was posted; bounty and deposit are reserved."),
        EventDef("TaskCancelled", fields(_TASK, _BAL("refund")), "The requester cancelled an Open task."),
        EventDef("TaskClaimed", fields(_TASK, _WORKER, _BLOCK("lease_until")), "A trainer claimed a task."),
        EventDef("Heartbeat", fields(_TASK, _WORKER, ("progress", Progress, "Progress"), _BLOCK("lease_until")),
                 "The worker committed progress and extended its lease."),
        EventDef("ClaimReleased", fields(_TASK, _WORKER), "The worker gave the task back."),
        EventDef("LeaseExpired", fields(_TASK, _WORKER), "The worker's lease lapsed."),
        EventDef("ResultSubmitted", fields(_TASK, _WORKER, ("model_hash", H256, "H256"),
                                           ("attestation_hash", H256, "H256"), _BLOCK("verify_until")),
                 "A signed attestation was submitted; validators may now vote."),
        EventDef("HoldoutRevealed", fields(_TASK, ("holdout_uri", BoundedBytes, "BoundedVec<u8, T::MaxUriLen>")),
                 "The requester revealed the committed holdout data."),
        EventDef("VerdictSubmitted", fields(_TASK, ("validator", AccountId, "T::AccountId"),
                                            ("verdict", Verdict, "Verdict")), "A validator voted."),
        EventDef("TaskAccepted", fields(_TASK, _WORKER, ("model_hash", H256, "H256"), _BAL("worker_reward"),
                                        _BAL("validator_reward")),
                 "A quorum accepted the result: the bounty is paid (`validator_reward` per accepting validator)."),
        EventDef("WorkerSlashed", fields(_TASK, _WORKER, _BAL("amount"), _BAL("burned")),
                 "Part of the worker's stake was slashed: routed to requester and validators, `burned` destroyed."),
        EventDef("TaskReopened", fields(_TASK), "The task is Open again."),
        EventDef("TaskExpired", fields(_TASK, _BAL("refund")), "The task expired; bounty and deposit returned."),
        EventDef("VerificationTimedOut", fields(_TASK, _WORKER),
                 "No quorum within VerificationGrace: resolved without a slash."),
    )
    errors = tuple(ErrorDef(n, d) for n, d in (
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
        ("HoldoutMismatch", "salt and holdout_uri do not match the commitment."),
        ("CannotJudgeOwnWork", "The worker may not judge its own result."),
        ("AlreadyVoted", "The validator already voted on this result."),
        ("ExpiryQueueFull", "No expiry slot within MaxExpirySpill blocks has room."),
    ))

    def __init__(self, balances: Any, workers: Workers, models: Models, *, task_deposit: int = UNIT,
                 min_bounty: int = UNIT, claim_lease: int = 10, verification_grace: int = 10,
                 max_claims_per_worker: int = 4, max_validators_required: int = 8,
                 validator_reward_share: int = 100_000_000, slash_fraction: int = 200_000_000,
                 lease_slash_fraction: int = 50_000_000, max_expiries_per_block: int = 32,
                 max_expiry_spill: int = 64, max_recipe_len: int = 64, max_uri_len: int = 256,
                 max_metric_name_len: int = 32, max_metrics: int = 16, max_checkpoints: int = 64) -> None:
        type(self).constants = (
            Constant("TaskDeposit", U128, task_deposit, "Reserved from the requester per task, returned at the end."),
            Constant("MinBounty", U128, min_bounty, "The least bounty a task may offer."),
            Constant("ClaimLease", U32, claim_lease, "Blocks a claim (or a heartbeat) keeps the task."),
            Constant("VerificationGrace", U32, verification_grace, "Blocks validators have to reach a quorum."),
            Constant("MaxClaimsPerWorker", U32, max_claims_per_worker, "Tasks a worker may hold at once."),
            Constant("MaxValidatorsRequired", U32, max_validators_required, "The largest quorum a task may ask."),
            Constant("ValidatorRewardShare", Perbill, validator_reward_share,
                     "The part of the bounty the accepting validators split."),
            Constant("SlashFraction", Perbill, slash_fraction, "The part of the stake a rejected result costs."),
            Constant("LeaseSlashFraction", Perbill, lease_slash_fraction,
                     "The part of the stake a lapsed lease costs (paid to the requester)."),
            Constant("MaxExpiriesPerBlock", U32, max_expiries_per_block, "Entries per expiry slot (per queue)."),
            Constant("MaxExpirySpill", U32, max_expiry_spill, "How many blocks later a full slot may spill to."),
            Constant("MaxRecipeLen", U32, max_recipe_len, "The longest recipe name, in bytes."),
            Constant("MaxUriLen", U32, max_uri_len, "The longest URI, in bytes."),
            Constant("MaxMetricNameLen", U32, max_metric_name_len, "The longest metric name, in bytes."),
            Constant("MaxMetrics", U32, max_metrics, "The most metrics an attestation carries."),
            Constant("MaxCheckpoints", U32, max_checkpoints, "The most checkpoint hashes an attestation carries."),
        )
        self.balances, self.workers, self.models = balances, workers, models
        self.task_deposit, self.min_bounty = task_deposit, min_bounty
        self.claim_lease, self.verification_grace = claim_lease, verification_grace
        self.max_claims, self.max_validators = max_claims_per_worker, max_validators_required
        self.validator_reward_share, self.slash_fraction = validator_reward_share, slash_fraction
        self.lease_slash_fraction = lease_slash_fraction
        self.max_expiries, self.max_spill = max_expiries_per_block, max_expiry_spill
        self.max_recipe_len, self.max_uri_len = max_recipe_len, max_uri_len
        self.max_metric_name_len, self.max_metrics, self.max_checkpoints = (
            max_metric_name_len, max_metrics, max_checkpoints)

    # Requester calls -------------------------------------------------------------------------
    @call(0, ("spec", TaskSpec, "TaskSpec<T>"), ("bounty", U128, "BalanceOf<T>"),
          ("min_stake", U128, "BalanceOf<T>"), ("deadline", U32, "BlockNumberFor<T>"),
          ("validators_required", U32, "u32"), ("holdout_commitment", Option(H256), "Option<H256>"),
          weight=400_000_000)
    def create_task(self, ctx: DispatchContext, origin: bytes | None, spec: dict[str, Any], bounty: int,
                    min_stake: int, deadline: int, validators_required: int,
                    holdout_commitment: bytes | None) -> None:
        """Post a task: reserves `bounty + TaskDeposit`; `deadline` is a block number."""
        requester = _signed(origin)
        self._check_len(spec["recipe"], self.max_recipe_len, "RecipeTooLong")
        self._check_len(spec["spec_uri"], self.max_uri_len, "UriTooLong")
        self._check_len(spec["eval_metric"], self.max_metric_name_len, "MetricNameTooLong")
        if bounty < self.min_bounty:
            raise TaskBounties.error("BountyTooLow")
        if deadline <= ctx.block_number:
            raise TaskBounties.error("DeadlineInPast")
        if not 1 <= validators_required <= self.max_validators:
            raise TaskBounties.error("InvalidValidatorsRequired")
        if spec["parent_model"] is not None and not self.models.exists(ctx.state, spec["parent_model"]):
            raise TaskBounties.error("UnknownParentModel")
        self.balances.reserve(ctx, requester, bounty + self.task_deposit)
        task_id = TaskBounties.NextTaskId.get(ctx.state)
        TaskBounties.NextTaskId.set(ctx.state, task_id + 1)
        self._schedule(ctx, TaskBounties.DeadlineExpiries, deadline, task_id)
        TaskBounties.Tasks.set(ctx.state, task_id, {
            "requester": requester, "spec": spec, "bounty": bounty, "deposit": self.task_deposit,
            "min_stake": min_stake, "deadline": deadline, "validators_required": validators_required,
            "holdout_commitment": holdout_commitment, "status": ("Open", None), "created_at": ctx.block_number,
            "attempts": 0, "progress": None})
        ctx.deposit_event(TaskBounties, "TaskCreated",
                          {"task_id": task_id, "requester": requester, "bounty": bounty, "deadline": deadline})

    @call(1, _TASK, weight=200_000_000)
    def cancel_task(self, ctx: DispatchContext, origin: bytes | None, task_id: int) -> None:
        """The requester withdraws an Open task; bounty and deposit are returned."""
        who = _signed(origin)
        task = self._task(ctx, task_id)
        if task["requester"] != who:
            raise TaskBounties.error("NotRequester")
        if task["status"][0] != "Open":
            raise TaskBounties.error("TaskNotOpen")
        refund = self._refund(ctx, task)
        task["status"] = ("Cancelled", None)
        TaskBounties.Tasks.set(ctx.state, task_id, task)
        ctx.deposit_event(TaskBounties, "TaskCancelled", {"task_id": task_id, "refund": refund})

    # Worker calls ----------------------------------------------------------------------------
    @call(2, _TASK, weight=300_000_000)
    def claim_task(self, ctx: DispatchContext, origin: bytes | None, task_id: int) -> None:
        """An active Trainer meeting the stake and requirements takes an Open task for ClaimLease blocks."""
        who = _signed(origin)
        task = self._task(ctx, task_id)
        if task["status"][0] != "Open":
            raise TaskBounties.error("TaskNotOpen")
        if ctx.block_number >= task["deadline"]:
            raise TaskBounties.error("DeadlinePassed")
        if task["requester"] == who:
            raise TaskBounties.error("RequesterCannotWork")
        info = self.workers.active_with_role(ctx, who, "Trainer")
        if info is None:
            raise TaskBounties.error("NotTrainer")
        if info["stake"] < max(task["min_stake"], self.workers.min_stake["Trainer"]):
            raise TaskBounties.error("InsufficientStake")
        caps, req = info["capabilities"], task["spec"]["requirements"]
        if caps["cpus"] < req["min_cpus"] or caps["gpus"] < req["min_gpus"] or caps["memory_mb"] < req["min_memory_mb"]:
            raise TaskBounties.error("RequirementsNotMet")
        if info["active_claims"] >= self.max_claims:
            raise TaskBounties.error("TooManyClaims")
        lease_until = self._schedule(ctx, TaskBounties.LeaseExpiries, ctx.block_number + self.claim_lease, task_id)
        task["status"] = ("Claimed", {"worker": who, "lease_until": lease_until})
        TaskBounties.Tasks.set(ctx.state, task_id, task)
        TaskBounties.ClaimsByWorker.set(ctx.state, who, task_id, None)
        self.workers.adjust(ctx, who, claims=1)
        ctx.deposit_event(TaskBounties, "TaskClaimed", {"task_id": task_id, "worker": who, "lease_until": lease_until})

    @call(3, _TASK, ("progress", Progress, "Progress"), weight=150_000_000)
    def heartbeat(self, ctx: DispatchContext, origin: bytes | None, task_id: int, progress: dict[str, Any]) -> None:
        """The claimant commits progress; the lease runs ClaimLease blocks from now."""
        who = _signed(origin)
        task = self._task(ctx, task_id)
        worker, lease_until = self._claimant(task, who)
        if ctx.block_number >= task["deadline"]:
            raise TaskBounties.error("DeadlinePassed")
        if task["progress"] is not None and progress["step"] < task["progress"]["step"]:
            raise TaskBounties.error("ProgressRegressed")
        self._unschedule(ctx, TaskBounties.LeaseExpiries, lease_until, task_id)
        lease_until = self._schedule(ctx, TaskBounties.LeaseExpiries, ctx.block_number + self.claim_lease, task_id)
        task["status"] = ("Claimed", {"worker": worker, "lease_until": lease_until})
        task["progress"] = progress
        TaskBounties.Tasks.set(ctx.state, task_id, task)
        ctx.deposit_event(TaskBounties, "Heartbeat",
                          {"task_id": task_id, "worker": who, "progress": progress, "lease_until": lease_until})

    @call(4, _TASK, weight=200_000_000)
    def release_claim(self, ctx: DispatchContext, origin: bytes | None, task_id: int) -> None:
        """The claimant gives the task back without a slash."""
        who = _signed(origin)
        task = self._task(ctx, task_id)
        worker, lease_until = self._claimant(task, who)
        self._unschedule(ctx, TaskBounties.LeaseExpiries, lease_until, task_id)
        self._end_claim(ctx, task_id, worker)
        ctx.deposit_event(TaskBounties, "ClaimReleased", {"task_id": task_id, "worker": worker})
        self._reopen_or_expire(ctx, task_id, task)

    @call(5, _TASK, ("attestation", Attestation, "Attestation<T>"), ("signature", MultiSignature, "MultiSignature"),
          weight=500_000_000)
    def submit_result(self, ctx: DispatchContext, origin: bytes | None, task_id: int, attestation: dict[str, Any],
                      signature: Any) -> None:
        """Submit the claimant's signed attestation (anyone may relay it); verification starts."""
        relayer = _signed(origin)
        task = self._task(ctx, task_id)
        status, payload = task["status"]
        if status != "Claimed":
            raise TaskBounties.error("NotClaimed")
        if attestation["task_id"] != task_id:
            raise TaskBounties.error("AttestationMismatch")
        if attestation["worker"] != payload["worker"]:
            raise TaskBounties.error("NotClaimant")
        if ctx.block_number >= task["deadline"]:
            raise TaskBounties.error("DeadlinePassed")
        self._check_len(attestation["artifact_uri"], self.max_uri_len, "UriTooLong")
        if len(attestation["metrics"]) > self.max_metrics:
            raise TaskBounties.error("TooManyMetrics")
        for name, _ in attestation["metrics"]:
            self._check_len(name, self.max_metric_name_len, "MetricNameTooLong")
        if len(attestation["checkpoints"]) > self.max_checkpoints:
            raise TaskBounties.error("TooManyCheckpoints")
        if attestation["dataset_hash"] != task["spec"]["dataset_hash"]:
            raise TaskBounties.error("DatasetMismatch")
        if attestation["finished_ms"] < attestation["started_ms"]:
            raise TaskBounties.error("InvalidTimestamps")
        scheme, raw_signature = signature
        if not verify_signature(scheme, raw_signature, attestation_message(attestation), payload["worker"]):
            raise TaskBounties.error("BadAttestationSignature")
        if self.models.exists(ctx.state, attestation["model_hash"]):
            raise TaskBounties.error("ModelAlreadyRegistered")
        self._unschedule(ctx, TaskBounties.LeaseExpiries, payload["lease_until"], task_id)
        verify_until = self._schedule(ctx, TaskBounties.VerificationExpiries,
                                      ctx.block_number + self.verification_grace, task_id)
        attestation_hash = blake2_256(ATTESTATION_CODEC.encode(attestation))
        task["status"] = ("Submitted", {"worker": payload["worker"], "verify_until": verify_until})
        TaskBounties.Tasks.set(ctx.state, task_id, task)
        TaskBounties.Results.set(ctx.state, task_id, {
            "attestation": attestation, "attestation_hash": attestation_hash, "relayer": relayer,
            "submitted_at": ctx.block_number, "accepts": [], "rejects": []})
        ctx.deposit_event(TaskBounties, "ResultSubmitted", {
            "task_id": task_id, "worker": payload["worker"], "model_hash": attestation["model_hash"],
            "attestation_hash": attestation_hash, "verify_until": verify_until})

    @call(6, _TASK, ("salt", H256, "H256"), ("holdout_uri", BoundedBytes, "BoundedVec<u8, T::MaxUriLen>"),
          weight=150_000_000)
    def reveal_holdout(self, ctx: DispatchContext, origin: bytes | None, task_id: int, salt: bytes,
                       holdout_uri: bytes) -> None:
        """The requester reveals the committed holdout data once a result is submitted."""
        who = _signed(origin)
        task = self._task(ctx, task_id)
        if task["requester"] != who:
            raise TaskBounties.error("NotRequester")
        if task["holdout_commitment"] is None:
            raise TaskBounties.error("NoHoldoutCommitment")
        if TaskBounties.Holdouts.contains(ctx.state, task_id):
            raise TaskBounties.error("HoldoutAlreadyRevealed")
        if task["status"][0] not in ("Submitted", "Accepted"):
            raise TaskBounties.error("HoldoutNotRevealable")
        self._check_len(holdout_uri, self.max_uri_len, "UriTooLong")
        if holdout_commitment(salt, holdout_uri) != task["holdout_commitment"]:
            raise TaskBounties.error("HoldoutMismatch")
        TaskBounties.Holdouts.set(ctx.state, task_id,
                                  {"salt": salt, "holdout_uri": holdout_uri, "revealed_at": ctx.block_number})
        ctx.deposit_event(TaskBounties, "HoldoutRevealed", {"task_id": task_id, "holdout_uri": holdout_uri})

    @call(7, _TASK, ("verdict", Verdict, "Verdict"), weight=400_000_000)
    def submit_verdict(self, ctx: DispatchContext, origin: bytes | None, task_id: int,
                       verdict: dict[str, Any]) -> None:
        """An active Validator (not the worker, not the requester) votes once on the submitted result."""
        who = _signed(origin)
        task = self._task(ctx, task_id)
        status, payload = task["status"]
        if status != "Submitted":
            raise TaskBounties.error("NotSubmitted")
        info = self.workers.active_with_role(ctx, who, "Validator")
        if info is None:
            raise TaskBounties.error("NotValidator")
        if info["stake"] < self.workers.min_stake["Validator"]:
            raise TaskBounties.error("InsufficientStake")
        if who == payload["worker"]:
            raise TaskBounties.error("CannotJudgeOwnWork")
        if who == task["requester"]:
            raise TaskBounties.error("RequesterCannotWork")
        if TaskBounties.Verdicts.contains(ctx.state, task_id, who):
            raise TaskBounties.error("AlreadyVoted")
        result = TaskBounties.Results.get(ctx.state, task_id)
        TaskBounties.Verdicts.set(ctx.state, task_id, who, verdict)
        result["accepts" if verdict["accept"] else "rejects"].append(who)
        TaskBounties.Results.set(ctx.state, task_id, result)
        self.workers.adjust(ctx, who, verdicts=1)
        ctx.deposit_event(TaskBounties, "VerdictSubmitted", {"task_id": task_id, "validator": who, "verdict": verdict})
        if len(result["accepts"]) >= task["validators_required"]:
            self._accept(ctx, task_id, task, result)
        elif len(result["rejects"]) >= task["validators_required"]:
            self._reject(ctx, task_id, task, result)

    # Resolution ------------------------------------------------------------------------------
    def _accept(self, ctx: DispatchContext, task_id: int, task: dict[str, Any], result: dict[str, Any]) -> None:
        worker, verify_until = task["status"][1]["worker"], task["status"][1]["verify_until"]
        attestation, requester, bounty = result["attestation"], task["requester"], task["bounty"]
        validators = result["accepts"]
        each = perbill_mul(self.validator_reward_share, bounty) // len(validators)
        worker_reward = bounty - each * len(validators)
        self.balances.repatriate_reserved(ctx, requester, worker, worker_reward, "Free")
        for validator in validators:
            if each:
                self.balances.repatriate_reserved(ctx, requester, validator, each, "Free")
        self.balances.unreserve(ctx, requester, task["deposit"])
        self._close_verification(ctx, task_id, worker, verify_until, result)
        task["status"] = ("Accepted", {"worker": worker, "model_hash": attestation["model_hash"]})
        TaskBounties.Tasks.set(ctx.state, task_id, task)
        self.workers.record(ctx, worker, "tasks_completed")
        ctx.deposit_event(TaskBounties, "TaskAccepted", {
            "task_id": task_id, "worker": worker, "model_hash": attestation["model_hash"],
            "worker_reward": worker_reward, "validator_reward": each})
        if not self.models.exists(ctx.state, attestation["model_hash"]):
            self.models.register(ctx, attestation["model_hash"], {
                "owner": requester, "trainer": worker, "task_id": task_id, "recipe": task["spec"]["recipe"],
                "dataset_hash": attestation["dataset_hash"], "parent": task["spec"]["parent_model"],
                "metrics": attestation["metrics"], "artifact_uri": attestation["artifact_uri"],
                "attestation_hash": result["attestation_hash"], "block": ctx.block_number})

    def _reject(self, ctx: DispatchContext, task_id: int, task: dict[str, Any], result: dict[str, Any]) -> None:
        worker, verify_until = task["status"][1]["worker"], task["status"][1]["verify_until"]
        stake = Workers.Workers.get(ctx.state, worker)["stake"]
        amount = perbill_mul(self.slash_fraction, stake)
        to_requester = amount // 2
        each = (amount - to_requester) // len(result["rejects"])
        routes = [(task["requester"], to_requester)] + [(v, each) for v in result["rejects"]]
        slashed = self.workers.slash_stake(ctx, worker, amount, routes)
        burned = slashed - to_requester - each * len(result["rejects"])
        self.workers.record(ctx, worker, "tasks_rejected")
        ctx.deposit_event(TaskBounties, "WorkerSlashed",
                          {"task_id": task_id, "worker": worker, "amount": slashed, "burned": max(burned, 0)})
        self._close_verification(ctx, task_id, worker, verify_until, result)
        TaskBounties.Results.remove(ctx.state, task_id)
        self._reopen_or_expire(ctx, task_id, task)

    def _close_verification(self, ctx: DispatchContext, task_id: int, worker: bytes, verify_until: int,
                            result: dict[str, Any]) -> None:
        self._unschedule(ctx, TaskBounties.VerificationExpiries, verify_until, task_id)
        for voter in result["accepts"] + result["rejects"]:
            TaskBounties.Verdicts.remove(ctx.state, task_id, voter)
            self.workers.adjust(ctx, voter, verdicts=-1)
        self._end_claim(ctx, task_id, worker)

    def _end_claim(self, ctx: DispatchContext, task_id: int, worker: bytes) -> None:
        TaskBounties.ClaimsByWorker.remove(ctx.state, worker, task_id)
        self.workers.adjust(ctx, worker, claims=-1)

    def _reopen_or_expire(self, ctx: DispatchContext, task_id: int, task: dict[str, Any]) -> None:
        task["progress"] = None
        if ctx.block_number >= task["deadline"]:
            self._expire(ctx, task_id, task)
            return
        task["status"] = ("Open", None)
        task["attempts"] += 1
        TaskBounties.Tasks.set(ctx.state, task_id, task)
        ctx.deposit_event(TaskBounties, "TaskReopened", {"task_id": task_id})

    def _expire(self, ctx: DispatchContext, task_id: int, task: dict[str, Any]) -> None:
        refund = self._refund(ctx, task)
        task["status"] = ("Expired", None)
        TaskBounties.Tasks.set(ctx.state, task_id, task)
        ctx.deposit_event(TaskBounties, "TaskExpired", {"task_id": task_id, "refund": refund})

    def _refund(self, ctx: DispatchContext, task: dict[str, Any]) -> int:
        amount = task["bounty"] + task["deposit"]
        self.balances.unreserve(ctx, task["requester"], amount)
        return amount

    # Hooks -----------------------------------------------------------------------------------
    def on_initialize(self, ctx: DispatchContext) -> None:
        """Lapsed leases, Open tasks past their deadline, verification windows that closed: bounded."""
        number = ctx.block_number
        for queue, handler in ((TaskBounties.LeaseExpiries, self._lease_lapsed),
                               (TaskBounties.DeadlineExpiries, self._deadline_reached),
                               (TaskBounties.VerificationExpiries, self._verification_timed_out)):
            for task_id in queue.take(ctx.state, number)[:self.max_expiries]:
                self._guarded(ctx, handler, task_id)

    def _guarded(self, ctx: DispatchContext, handler: Callable[[DispatchContext, int], None], task_id: int) -> None:
        """Run one expiry in its own layer: a failure discards its writes and events, never the block."""
        outer, mark = ctx.state, len(ctx.events)
        ctx.state = outer.child()
        try:
            handler(ctx, task_id)
            ctx.state.commit()
        except Exception:
            log.exception("expiry of task %d failed", task_id)
            del ctx.events[mark:]
        finally:
            ctx.state = outer

    def _lease_lapsed(self, ctx: DispatchContext, task_id: int) -> None:
        task = TaskBounties.Tasks.get(ctx.state, task_id)
        if task is None or task["status"][0] != "Claimed" or task["status"][1]["lease_until"] != ctx.block_number:
            return
        worker = task["status"][1]["worker"]
        info = Workers.Workers.get(ctx.state, worker)
        amount = perbill_mul(self.lease_slash_fraction, info["stake"]) if info else 0
        self._end_claim(ctx, task_id, worker)
        self.workers.record(ctx, worker, "tasks_expired")
        ctx.deposit_event(TaskBounties, "LeaseExpired", {"task_id": task_id, "worker": worker})
        if amount:
            slashed = self.workers.slash_stake(ctx, worker, amount, [(task["requester"], amount)])
            ctx.deposit_event(TaskBounties, "WorkerSlashed",
                              {"task_id": task_id, "worker": worker, "amount": slashed, "burned": 0})
        self._reopen_or_expire(ctx, task_id, task)

    def _deadline_reached(self, ctx: DispatchContext, task_id: int) -> None:
        task = TaskBounties.Tasks.get(ctx.state, task_id)
        if task is None or task["status"][0] != "Open":
            return  # a claimed or submitted task resolves through its lease or its verification
        self._expire(ctx, task_id, task)

    def _verification_timed_out(self, ctx: DispatchContext, task_id: int) -> None:
        task = TaskBounties.Tasks.get(ctx.state, task_id)
        if task is None or task["status"][0] != "Submitted" or task["status"][1]["verify_until"] != ctx.block_number:
            return
        worker = task["status"][1]["worker"]
        result = TaskBounties.Results.take(ctx.state, task_id)
        for voter in result["accepts"] + result["rejects"]:
            TaskBounties.Verdicts.remove(ctx.state, task_id, voter)
            self.workers.adjust(ctx, voter, verdicts=-1)
        self._end_claim(ctx, task_id, worker)
        ctx.deposit_event(TaskBounties, "VerificationTimedOut", {"task_id": task_id, "worker": worker})
        self._expire(ctx, task_id, task)

    # Helpers ---------------------------------------------------------------------------------
    def _task(self, ctx: DispatchContext, task_id: int) -> dict[str, Any]:
        task = TaskBounties.Tasks.get(ctx.state, task_id)
        if task is None:
            raise TaskBounties.error("TaskNotFound")
        return task

    @staticmethod
    def _claimant(task: dict[str, Any], who: bytes) -> tuple[bytes, int]:
        status, payload = task["status"]
        if status != "Claimed":
            raise TaskBounties.error("NotClaimed")
        if payload["worker"] != who:
            raise TaskBounties.error("NotClaimant")
        return payload["worker"], payload["lease_until"]

    def _check_len(self, value: bytes, bound: int, error: str) -> None:
        if len(value) > bound:
            raise TaskBounties.error(error)

    def _schedule(self, ctx: DispatchContext, queue: StorageItem, block: int, task_id: int) -> int:
        """Put `task_id` in the first slot at or after `block` with room; returns that block."""
        for at in range(block, block + self.max_spill + 1):
            entries = queue.get(ctx.state, at)
            if len(entries) < self.max_expiries:
                queue.set(ctx.state, at, entries + [task_id])
                return at
        raise TaskBounties.error("ExpiryQueueFull")

    @staticmethod
    def _unschedule(ctx: DispatchContext, queue: StorageItem, block: int, task_id: int) -> None:
        entries = queue.get(ctx.state, block)
        if task_id in entries:
            entries.remove(task_id)
            if entries:
                queue.set(ctx.state, block, entries)
            else:
                queue.remove(ctx.state, block)


def _signed(origin: bytes | None) -> bytes:
    if origin is None:
        raise BAD_ORIGIN
    return origin


__all__ = ["ATTESTATION_DOMAIN", "Attestation", "TaskBounties", "attestation_message", "holdout_commitment",
           "DispatchError"]
