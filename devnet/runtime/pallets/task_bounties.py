"""pallet_task_bounties: training tasks with escrowed bounties, claims, attested results, verdicts, challenges.

Lifecycle (`TaskStatus`, stored in `Task.status`):

    Open --claim_task--> Claimed{worker, lease_until} --submit_result--> Submitted{worker, verify_until}
      ^                     |  heartbeat: lease_until moves on                |
      |                     |  release_claim / lease lapses (slash)           | validators_required accepts
      +---------------------+  (Expired instead when past the deadline)       +--> Approved{worker, challenge_until}
      |                                                                       |    (ChallengePeriod 0: Accepted at once)
      +<-- reject: SlashFraction of the stake slashed, task reopens ----------+ validators_required rejects
      |    (Expired when past the deadline)
      |    Approved --period over: finalize_result, or on_initialize--> Accepted{worker, model_hash}
      |    Approved --challenge_result--> Challenged{worker, challenger, settle_until}
      |    Challenged --quorum of accepts (dismissed) / no quorum by settle_until (timed out)--> Accepted
      +<-- Challenged --quorum of rejects (upheld): worker slashed as on a reject
    Open --cancel_task--> Cancelled         Open past its deadline --> Expired (full refund)
    Submitted with no quorum by verify_until --> Expired (no slash, full refund)

Block numbers: `deadline` and `lease_until` are block numbers; a lease lapses and an Open task expires in
the `on_initialize` of that block. `lease_until` is the block the task is actually scheduled at: when that
block's expiry slot already holds MaxExpiriesPerBlock entries the entry spills to the next block with room
(at most MaxExpirySpill blocks later, and never past u32::MAX, else the call fails with ExpiryQueueFull).
A deadline may be at most MaxDeadlineBlocks ahead of the current block (DeadlineTooFar), so a slot and its
spill stay far below u32::MAX on any chain younger than u32::MAX - MaxDeadlineBlocks blocks.

Moments: `verify_until`, `challenge_until` and `settle_until` are ms of pallet_timestamp's `Now`, not
blocks. With instant seal blocks come only with transactions, so a window counted in blocks would never
end on an idle chain, and anyone could end it at will: a worker that sends a few cheap transactions (say,
remarks) right after submitting a fraud would close a block-counted verification window before any
validator votes (VerificationTimedOut: no slash). `submit_result` opens the first round's window until
`now + VerificationGrace` (ms; devnet `--verification-grace-ms`, default 60 s), `challenge_result` the
challenge round's until `now + VerificationGrace` too. Both are queued in `VerificationDeadlines` and
Approved tasks in `PendingPayouts`: FIFOs of `(moment, task)`, in due order since the grace and the
period are constant and `Now` never decreases; every way out of a status unqueues its entry. A block's
`on_initialize` runs before its timestamp inherent (as in FRAME), so it compares with the *previous*
block's `Now`: a window (or period) ends with the first block whose previous block's `Now` is at or past
it; a verdict dispatched before that still counts. Each hook processes at most MaxExpiriesPerBlock entries
per queue (4 queues), the rest in later blocks.

Challenge period (docs/devnet.md has the full rules): a first-round quorum makes the result Approved until
`now + ChallengePeriod` (0: paid at once, never Approved); the bounty stays escrowed, the worker keeps the
claim and `approved_by` their verdicts. A Validator that is not the worker, the requester or an approver
may `challenge_result` before then with ChallengeDeposit: a challenge round (quorum
`2 * validators_required + 1`, VerificationGrace ms, the challenger's vote its first reject; `accepts` /
`rejects` always hold the current round; the approvers stay bound: no unregistering until it settles) upholds
(worker slashed to the round's rejecters, deposit back, each approver slashed ApproverSlashFraction of its stake
to the challenger, task reopens), dismisses (deposit split among the round's accepters, remainder to the worker, then paid
with them) or times out (deposit back, paid with `approved_by`). Unchallenged, `finalize_result` (anyone)
or a later block's `on_initialize` (`PendingPayouts`) pays with `approved_by`.

Money: `create_task` reserves `bounty + TaskDeposit` from the requester.
Payout: the worker receives `bounty - ValidatorRewardShare * bounty`, the deciding round's accepting
validators split the reward share equally (the worker gets the division's remainder), the deposit is
unreserved. Rejection: SlashFraction of the worker's stake is slashed, half to the requester, half
split equally among the rejecting validators; the division's remainder is burned. A lapsed lease
slashes LeaseSlashFraction of the stake to the requester. Expiry, cancellation and a verification
timeout return bounty and deposit in full.

Attestation signature: the worker signs
`b"paratrain/attestation/v1" ++ SCALE(Attestation)` with its account key
(sr25519 or ed25519, as a MultiSignature); the pallet verifies it against the
claiming worker's account, so anyone may relay the result.

Holdout commitment: `holdout_commitment = blake2_256(SCALE((salt: H256,
holdout_hash: H256, holdout_size: u64, holdout_uri: BoundedVec<u8>)))`, i.e.
blake2_256(salt ++ hash ++ u64_le(size) ++ compact(len(uri)) ++ uri): the bytes
are bound as well as their location, so validators read exactly the committed
bytes. The requester reveals all four with `reveal_holdout` once a result is
submitted.

Metrics: `(name, value)` pairs, value an i64 in micro-units (see pallet_models).
The types, events and errors are declared in task_bounties_types.py.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Callable

from devnet.crypto import blake2_256, verify_signature
from devnet.runtime.context import DispatchContext
from devnet.runtime.framework import BAD_ORIGIN, Constant, DispatchError, Pallet, StorageItem, call
from devnet.runtime.pallets.datasets import Datasets
from devnet.runtime.pallets.models import BoundedBytes, Models
from devnet.runtime.pallets.privacy import PrivacyBudgets
from devnet.runtime.pallets.privacy_types import DpClaim, DpSpec, dp_attestation_message
from devnet.runtime.pallets.task_bounties_types import (
    ATTESTATION_CODEC,
    ATTESTATION_DOMAIN,
    ERRORS,
    EVENTS,
    PALLET,
    TASK_ID,
    Attestation,
    Holdout,
    PendingPayout,
    Perbill,
    Progress,
    SubmittedResult,
    Task,
    TaskSpec,
    Verdict,
    VerificationDeadline,
    attestation_message,
    holdout_commitment,
    perbill_mul,
)
from devnet.runtime.pallets.timestamp import Timestamp
from devnet.runtime.pallets.workers import UNIT, Workers
from devnet.runtime.primitives import MultiSignature
from devnet.scale.types import H256, U32, U64, U128, AccountId, Option, Sequence, Tuple

log = logging.getLogger(__name__)
DEFAULT_CHALLENGE_PERIOD_MS = 5_000
DEFAULT_VERIFICATION_GRACE_MS = 60_000
BLOCK_NUMBER_MAX = 2**32 - 1  # BlockNumberFor<T> is u32: no expiry slot exists beyond it
_TASK = TASK_ID


class TaskBounties(Pallet):
    name = "TaskBounties"
    index = 21
    module = PALLET

    NextTaskId = StorageItem(U64, default=0, docs="The id the next task gets.")
    Tasks = StorageItem(Task, (("Twox64Concat", U64),), docs="Every task, terminal ones included.")
    Results = StorageItem(SubmittedResult, (("Twox64Concat", U64),),
                          docs="The result under verification (and the accepted one) per task.")
    Verdicts = StorageItem(Verdict, (("Twox64Concat", U64), ("Blake2_128Concat", AccountId)),
                           docs="(task, validator) -> verdict on the result under verification (current round).")
    Holdouts = StorageItem(Holdout, (("Twox64Concat", U64),), docs="Revealed holdout data per task.")
    ClaimsByWorker = StorageItem(Tuple(), (("Blake2_128Concat", AccountId), ("Twox64Concat", U64)),
                                 docs="(worker, task) -> (): tasks a worker holds (Claimed, Submitted, Approved "
                                      "or Challenged).")
    LeaseExpiries = StorageItem(Sequence(U64), (("Twox64Concat", U32),), default=[],
                                docs="block -> tasks whose lease lapses at that block.")
    DeadlineExpiries = StorageItem(Sequence(U64), (("Twox64Concat", U32),), default=[],
                                   docs="block -> tasks to expire at that block if still Open.")
    VerificationDeadlines = StorageItem(Sequence(VerificationDeadline), default=[],
                                        docs="(verify_until or settle_until, task) of every Submitted or Challenged "
                                             "task, in due order (FIFO).")
    PendingPayouts = StorageItem(Sequence(PendingPayout), default=[],
                                 docs="(challenge_until, task) of every Approved task, in due order (FIFO).")

    events = EVENTS
    errors = ERRORS

    def __init__(self, balances: Any, workers: Workers, models: Models, *, task_deposit: int = UNIT,
                 min_bounty: int = UNIT, claim_lease: int = 10,
                 verification_grace_ms: int = DEFAULT_VERIFICATION_GRACE_MS,
                 max_claims_per_worker: int = 4, max_validators_required: int = 8,
                 validator_reward_share: int = 100_000_000, slash_fraction: int = 200_000_000,
                 lease_slash_fraction: int = 50_000_000, approver_slash_fraction: int = 100_000_000,
                 max_expiries_per_block: int = 32, max_expiry_spill: int = 64,
                 max_deadline_blocks: int = 100_000_000, max_recipe_len: int = 64, max_uri_len: int = 256,
                 max_metric_name_len: int = 32, max_metrics: int = 16, max_checkpoints: int = 64,
                 challenge_period_ms: int = DEFAULT_CHALLENGE_PERIOD_MS, challenge_deposit: int = 10 * UNIT,
                 privacy: PrivacyBudgets, datasets: Datasets) -> None:
        self.constants = (
            Constant("TaskDeposit", U128, task_deposit, "Reserved from the requester per task, returned at the end."),
            Constant("MinBounty", U128, min_bounty, "The least bounty a task may offer."),
            Constant("ClaimLease", U32, claim_lease, "Blocks a claim (or a heartbeat) keeps the task."),
            Constant("VerificationGrace", U64, verification_grace_ms,
                     "Milliseconds (of Timestamp.Now) validators have to reach a quorum (in the first round and in "
                     "a challenge round)."),
            Constant("MaxClaimsPerWorker", U32, max_claims_per_worker, "Tasks a worker may hold at once."),
            Constant("MaxValidatorsRequired", U32, max_validators_required, "The largest quorum a task may ask."),
            Constant("ValidatorRewardShare", Perbill, validator_reward_share,
                     "The part of the bounty the accepting validators split."),
            Constant("SlashFraction", Perbill, slash_fraction, "The part of the stake a rejected result costs."),
            Constant("LeaseSlashFraction", Perbill, lease_slash_fraction,
                     "The part of the stake a lapsed lease costs (paid to the requester)."),
            Constant("ApproverSlashFraction", Perbill, approver_slash_fraction,
                     "The part of its stake a validator loses for approving a result that a challenge round "
                     "rejects (paid to the challenger)."),
            Constant("MaxExpiriesPerBlock", U32, max_expiries_per_block, "Entries per expiry slot (per queue)."),
            Constant("MaxExpirySpill", U32, max_expiry_spill, "How many blocks later a full slot may spill to."),
            Constant("MaxRecipeLen", U32, max_recipe_len, "The longest recipe name, in bytes."),
            Constant("MaxUriLen", U32, max_uri_len, "The longest URI, in bytes."),
            Constant("MaxMetricNameLen", U32, max_metric_name_len, "The longest metric name, in bytes."),
            Constant("MaxMetrics", U32, max_metrics, "The most metrics an attestation carries."),
            Constant("MaxCheckpoints", U32, max_checkpoints, "The most checkpoint hashes an attestation carries."),
            Constant("ChallengePeriod", U64, challenge_period_ms,
                     "Milliseconds (of Timestamp.Now) an approved result may be challenged; 0 pays at once."),
            Constant("ChallengeDeposit", U128, challenge_deposit,
                     "Reserved from a challenger: returned if upheld or timed out, slashed if dismissed."),
            Constant("MaxDeadlineBlocks", U32, max_deadline_blocks,
                     "How many blocks after the current one a task's deadline may be."),
        )
        self.balances, self.workers, self.models, self.privacy = balances, workers, models, privacy
        self.datasets = datasets   # the access rules of registered data sets (pallet Datasets)
        self.task_deposit, self.min_bounty = task_deposit, min_bounty
        self.claim_lease, self.verification_grace = claim_lease, verification_grace_ms
        self.max_claims, self.max_validators = max_claims_per_worker, max_validators_required
        self.validator_reward_share, self.slash_fraction = validator_reward_share, slash_fraction
        self.lease_slash_fraction, self.approver_slash_fraction = lease_slash_fraction, approver_slash_fraction
        self.max_expiries, self.max_spill = max_expiries_per_block, max_expiry_spill
        self.max_deadline_blocks = max_deadline_blocks
        self.max_recipe_len, self.max_uri_len = max_recipe_len, max_uri_len
        self.max_metric_name_len, self.max_metrics, self.max_checkpoints = (
            max_metric_name_len, max_metrics, max_checkpoints)
        self.challenge_period, self.challenge_deposit = challenge_period_ms, challenge_deposit

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
        self._check_new_task(ctx, spec, bounty, deadline, validators_required)
        if self.privacy.has_budget(ctx, spec["dataset_hash"]):
            raise PrivacyBudgets.error("DataSetHasBudget")
        self._open_task(ctx, requester, spec, bounty, min_stake, deadline, validators_required, holdout_commitment)

    def _check_new_task(self, ctx: DispatchContext, spec: dict[str, Any], bounty: int, deadline: int,
                        validators_required: int) -> None:
        """What create_task and create_private_task both refuse."""
        self._check_len(spec["recipe"], self.max_recipe_len, "RecipeTooLong")
        self._check_len(spec["spec_uri"], self.max_uri_len, "UriTooLong")
        self._check_len(spec["eval_metric"], self.max_metric_name_len, "MetricNameTooLong")
        if bounty < self.min_bounty:
            raise TaskBounties.error("BountyTooLow")
        if deadline <= ctx.block_number:
            raise TaskBounties.error("DeadlineInPast")
        if deadline - ctx.block_number > self.max_deadline_blocks:
            raise TaskBounties.error("DeadlineTooFar")
        if not 1 <= validators_required <= self.max_validators:
            raise TaskBounties.error("InvalidValidatorsRequired")
        if spec["parent_model"] is not None and not self.models.exists(ctx.state, spec["parent_model"]):
            raise TaskBounties.error("UnknownParentModel")

    def _open_task(self, ctx: DispatchContext, requester: bytes, spec: dict[str, Any], bounty: int, min_stake: int,
                   deadline: int, validators_required: int, holdout_commitment: bytes | None) -> int:
        """Reserve the bounty and deposit, store the Open task, schedule its deadline; returns its id. A registered
        data set must admit the requester (Datasets.check_task)."""
        self.datasets.check_task(ctx, spec["dataset_hash"], requester)
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
        return int(task_id)

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
        self.privacy.release(ctx, "Bounty", task_id, task["requester"])

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
        self.datasets.check_claim(ctx, task["spec"]["dataset_hash"], who)
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
        if PrivacyBudgets.BountyPrivacy.contains(ctx.state, task_id):
            raise TaskBounties.error("PrivateTaskNeedsClaim")
        self._check_submission(ctx, task_id, task, attestation, attestation_message(attestation), signature)
        self._record_submission(ctx, relayer, task_id, task, attestation)

    def _check_submission(self, ctx: DispatchContext, task_id: int, task: dict[str, Any],
                          attestation: dict[str, Any], message: bytes, signature: Any) -> None:
        """What submit_result and submit_private_result both refuse; `message` is what the worker signed."""
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
        self.datasets.check_result(ctx, attestation["dataset_hash"], attestation["code_hash"])
        if attestation["finished_ms"] < attestation["started_ms"]:
            raise TaskBounties.error("InvalidTimestamps")
        scheme, raw_signature = signature
        if not verify_signature(scheme, raw_signature, message, payload["worker"]):
            raise TaskBounties.error("BadAttestationSignature")
        if self.models.exists(ctx.state, attestation["model_hash"]):
            raise TaskBounties.error("ModelAlreadyRegistered")

    def _record_submission(self, ctx: DispatchContext, relayer: bytes, task_id: int, task: dict[str, Any],
                           attestation: dict[str, Any]) -> None:
        """The checked result is under verification: the lease ends, the window opens."""
        payload = task["status"][1]
        self._unschedule(ctx, TaskBounties.LeaseExpiries, payload["lease_until"], task_id)
        verify_until = self._queue_verification(ctx, task_id)
        attestation_hash = blake2_256(ATTESTATION_CODEC.encode(attestation))
        task["status"] = ("Submitted", {"worker": payload["worker"], "verify_until": verify_until})
        TaskBounties.Tasks.set(ctx.state, task_id, task)
        TaskBounties.Results.set(ctx.state, task_id, {
            "attestation": attestation, "attestation_hash": attestation_hash, "relayer": relayer,
            "submitted_at": ctx.block_number, "accepts": [], "rejects": [], "approved_by": [],
            "challenge": None})
        ctx.deposit_event(TaskBounties, "ResultSubmitted", {
            "task_id": task_id, "worker": payload["worker"], "model_hash": attestation["model_hash"],
            "attestation_hash": attestation_hash, "verify_until": verify_until})

    @call(6, _TASK, ("salt", H256, "H256"), ("holdout_hash", H256, "H256"), ("holdout_size", U64, "u64"),
          ("holdout_uri", BoundedBytes, "BoundedVec<u8, T::MaxUriLen>"), weight=150_000_000)
    def reveal_holdout(self, ctx: DispatchContext, origin: bytes | None, task_id: int, salt: bytes,
                       holdout_hash: bytes, holdout_size: int, holdout_uri: bytes) -> None:
        """The requester reveals the committed holdout data once a result is submitted."""
        who = _signed(origin)
        task = self._task(ctx, task_id)
        if task["requester"] != who:
            raise TaskBounties.error("NotRequester")
        if task["holdout_commitment"] is None:
            raise TaskBounties.error("NoHoldoutCommitment")
        if TaskBounties.Holdouts.contains(ctx.state, task_id):
            raise TaskBounties.error("HoldoutAlreadyRevealed")
        if task["status"][0] not in ("Submitted", "Approved", "Challenged", "Accepted"):
            raise TaskBounties.error("HoldoutNotRevealable")
        self._check_len(holdout_uri, self.max_uri_len, "UriTooLong")
        if holdout_commitment(salt, holdout_hash, holdout_size, holdout_uri) != task["holdout_commitment"]:
            raise TaskBounties.error("HoldoutMismatch")
        revealed = {"holdout_hash": holdout_hash, "holdout_size": holdout_size, "holdout_uri": holdout_uri}
        TaskBounties.Holdouts.set(ctx.state, task_id, {"salt": salt, **revealed, "revealed_at": ctx.block_number})
        ctx.deposit_event(TaskBounties, "HoldoutRevealed", {"task_id": task_id, **revealed})

    # Validator calls -------------------------------------------------------------------------
    @call(7, _TASK, ("verdict", Verdict, "Verdict"), weight=400_000_000)
    def submit_verdict(self, ctx: DispatchContext, origin: bytes | None, task_id: int,
                       verdict: dict[str, Any]) -> None:
        """An active Validator (not the worker or requester) votes once per round; a challenge round needs 2v+1."""
        who = _signed(origin)
        task = self._task(ctx, task_id)
        status, payload = task["status"]
        if status not in ("Submitted", "Challenged"):
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
        if status == "Submitted":
            if len(result["accepts"]) >= task["validators_required"]:
                self._approve(ctx, task_id, task, result)
            elif len(result["rejects"]) >= task["validators_required"]:
                self._reject(ctx, task_id, task, result)
        elif len(result["accepts"]) >= self.challenge_quorum(task):
            self._dismiss_challenge(ctx, task_id, task, result)
        elif len(result["rejects"]) >= self.challenge_quorum(task):
            self._uphold_challenge(ctx, task_id, task, result)

    @call(8, _TASK, ("evidence_hash", H256, "H256"), weight=400_000_000)
    def challenge_result(self, ctx: DispatchContext, origin: bytes | None, task_id: int, evidence_hash: bytes) -> None:
        """A Validator disputes an Approved result in its challenge period, reserving ChallengeDeposit."""
        who = _signed(origin)
        task = self._task(ctx, task_id)
        status, payload = task["status"]
        if status != "Approved":
            raise TaskBounties.error("NotApproved")
        # Who first: a worker is a Trainer, so the role check would hide why the worker may not challenge.
        if who == payload["worker"]:
            raise TaskBounties.error("CannotJudgeOwnWork")
        if who == task["requester"]:
            raise TaskBounties.error("RequesterCannotWork")
        info = self.workers.active_with_role(ctx, who, "Validator")
        if info is None:
            raise TaskBounties.error("NotValidator")
        if info["stake"] < self.workers.min_stake["Validator"]:
            raise TaskBounties.error("InsufficientStake")
        result = TaskBounties.Results.get(ctx.state, task_id)
        if who in result["approved_by"]:
            raise TaskBounties.error("AlreadyVoted")
        if Timestamp.Now.get(ctx.state) >= payload["challenge_until"]:
            raise TaskBounties.error("ChallengePeriodOver")
        self.balances.reserve(ctx, who, self.challenge_deposit)
        self._unqueue_payout(ctx, task_id)
        # a new round: everyone may vote again, but the approvers stay bound (no unregistering) until it settles
        self._clear_round(ctx, task_id, result, keep_pending=result["approved_by"])
        settle_until = self._queue_verification(ctx, task_id)
        TaskBounties.Verdicts.set(ctx.state, task_id, who,
                                  {"accept": False, "measured_metric": 0, "evidence_hash": evidence_hash})
        self.workers.adjust(ctx, who, verdicts=1)
        result["accepts"], result["rejects"] = [], [who]
        result["challenge"] = {"challenger": who, "deposit": self.challenge_deposit, "evidence_hash": evidence_hash,
                               "opened_at": ctx.block_number}
        TaskBounties.Results.set(ctx.state, task_id, result)
        task["status"] = ("Challenged", {"worker": payload["worker"], "challenger": who, "settle_until": settle_until})
        TaskBounties.Tasks.set(ctx.state, task_id, task)
        ctx.deposit_event(TaskBounties, "ResultChallenged", {
            "task_id": task_id, "challenger": who, "deposit": self.challenge_deposit, "settle_until": settle_until})

    @call(9, _TASK, weight=500_000_000)
    def finalize_result(self, ctx: DispatchContext, origin: bytes | None, task_id: int) -> None:
        """Anyone pays out an Approved result whose challenge period is over (a later block's hook does too)."""
        _signed(origin)
        task = self._task(ctx, task_id)
        status, payload = task["status"]
        if status != "Approved":
            raise TaskBounties.error("NotApproved")
        if Timestamp.Now.get(ctx.state) < payload["challenge_until"]:
            raise TaskBounties.error("ChallengePeriodNotOver")
        result = TaskBounties.Results.get(ctx.state, task_id)
        self._pay_out(ctx, task_id, task, result, result["approved_by"])

    # Private tasks (appended calls; docs/privacy-budgets.md) ---------------------------------
    @call(10, ("spec", TaskSpec, "TaskSpec<T>"), ("privacy", DpSpec, "DpSpec"), ("bounty", U128, "BalanceOf<T>"),
          ("min_stake", U128, "BalanceOf<T>"), ("deadline", U32, "BlockNumberFor<T>"),
          ("validators_required", U32, "u32"), ("holdout_commitment", Option(H256), "Option<H256>"),
          weight=500_000_000)
    def create_private_task(self, ctx: DispatchContext, origin: bytes | None, spec: dict[str, Any],
                            privacy: dict[str, Any], bounty: int, min_stake: int, deadline: int,
                            validators_required: int, holdout_commitment: bytes | None) -> None:
        """Post a DP task on a data set whose budget the caller owns: reserves (epsilon_cap, delta) of it."""
        requester = _signed(origin)
        self._check_new_task(ctx, spec, bounty, deadline, validators_required)
        self.privacy.check_spec(privacy)
        task_id = self._open_task(ctx, requester, spec, bounty, min_stake, deadline, validators_required,
                                  holdout_commitment)
        self.privacy.reserve(ctx, "Bounty", task_id, requester, spec["dataset_hash"], privacy["epsilon_cap"],
                             privacy["delta"])
        PrivacyBudgets.BountyPrivacy.set(ctx.state, task_id, privacy)

    @call(11, _TASK, ("attestation", Attestation, "Attestation<T>"), ("claim", DpClaim, "DpClaim"),
          ("signature", MultiSignature, "MultiSignature"), weight=550_000_000)
    def submit_private_result(self, ctx: DispatchContext, origin: bytes | None, task_id: int,
                              attestation: dict[str, Any], claim: dict[str, Any], signature: Any) -> None:
        """Submit a private task's result with the worker's DP claim, both under one signature."""
        relayer = _signed(origin)
        task = self._task(ctx, task_id)
        terms = PrivacyBudgets.BountyPrivacy.get(ctx.state, task_id)
        if terms is None:
            raise TaskBounties.error("NotPrivateTask")
        self._check_submission(ctx, task_id, task, attestation, dp_attestation_message(attestation, claim),
                               signature)
        self.privacy.check_claim(terms, claim)
        self._record_submission(ctx, relayer, task_id, task, attestation)
        PrivacyBudgets.BountyClaims.set(ctx.state, task_id, claim)
        ctx.deposit_event(self.privacy, "DpClaimed", {"market": ("Bounty", None), "task": task_id,
                                                      "worker": attestation["worker"], "epsilon": claim["epsilon"]})

    def _spend_privacy(self, ctx: DispatchContext, task_id: int, task: dict[str, Any]) -> None:
        """An accepted private result spends its claim; the rest of the reservation goes back."""
        claim = PrivacyBudgets.BountyClaims.get(ctx.state, task_id)
        if claim is not None:
            self.privacy.spend(ctx, "Bounty", task_id, task["requester"], claim["epsilon"], claim["delta"])

    @staticmethod
    def _drop_claim(ctx: DispatchContext, task_id: int) -> None:
        """The result under verification is gone (rejected, timed out): so is its claim; the reservation stays
        for the next attempt."""
        if PrivacyBudgets.BountyClaims.contains(ctx.state, task_id):
            PrivacyBudgets.BountyClaims.remove(ctx.state, task_id)

    @staticmethod
    def challenge_quorum(task: dict[str, Any]) -> int:
        """Verdicts that settle a challenge round: a strict majority of a round twice the first's size."""
        return 2 * task["validators_required"] + 1

    # Resolution ------------------------------------------------------------------------------
    def _approve(self, ctx: DispatchContext, task_id: int, task: dict[str, Any], result: dict[str, Any]) -> None:
        """The first round's quorum accepted: Approved for ChallengePeriod, or paid at once when it is 0."""
        if not self.challenge_period:
            self._pay_out(ctx, task_id, task, result, result["accepts"])
            return
        worker = task["status"][1]["worker"]
        self._unqueue_verification(ctx, task_id)
        challenge_until = Timestamp.Now.get(ctx.state) + self.challenge_period
        result["approved_by"] = list(result["accepts"])
        TaskBounties.Results.set(ctx.state, task_id, result)
        task["status"] = ("Approved", {"worker": worker, "challenge_until": challenge_until})
        TaskBounties.Tasks.set(ctx.state, task_id, task)
        # the period is constant, so appending keeps the queue in due order
        TaskBounties.PendingPayouts.set(ctx.state, TaskBounties.PendingPayouts.get(ctx.state)
                                        + [(challenge_until, task_id)])
        ctx.deposit_event(TaskBounties, "ResultApproved",
                          {"task_id": task_id, "worker": worker, "challenge_until": challenge_until})

    def _pay_out(self, ctx: DispatchContext, task_id: int, task: dict[str, Any], result: dict[str, Any],
                 validators: list[bytes]) -> None:
        """Pay the bounty: the worker, the reward share to `validators` (the deciding round's accepters)."""
        worker = task["status"][1]["worker"]
        attestation, requester, bounty = result["attestation"], task["requester"], task["bounty"]
        each = perbill_mul(self.validator_reward_share, bounty) // len(validators)
        worker_reward = bounty - each * len(validators)
        self.balances.repatriate_reserved(ctx, requester, worker, worker_reward, "Free")
        for validator in validators:
            if each:
                self.balances.repatriate_reserved(ctx, requester, validator, each, "Free")
        self.balances.unreserve(ctx, requester, task["deposit"])
        self._close_verification(ctx, task_id, task, result)
        task["status"] = ("Accepted", {"worker": worker, "model_hash": attestation["model_hash"]})
        TaskBounties.Tasks.set(ctx.state, task_id, task)
        self._spend_privacy(ctx, task_id, task)
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
        self.datasets.record_compute(ctx, attestation["dataset_hash"], attestation["model_hash"], {
            "task_id": task_id, "worker": worker, "code_hash": attestation["code_hash"],
            "attestation_hash": result["attestation_hash"]})

    def _reject(self, ctx: DispatchContext, task_id: int, task: dict[str, Any], result: dict[str, Any]) -> None:
        """The current round's rejecters won: slash the worker to requester and rejecters, reopen the task."""
        worker = task["status"][1]["worker"]
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
        self._close_verification(ctx, task_id, task, result)
        TaskBounties.Results.remove(ctx.state, task_id)
        self._drop_claim(ctx, task_id)
        self._reopen_or_expire(ctx, task_id, task)

    def _uphold_challenge(self, ctx: DispatchContext, task_id: int, task: dict[str, Any],
                          result: dict[str, Any]) -> None:
        """The challenger won: its deposit back, every approver slashed to it, the worker slashed as on a reject.

        An approver is slashed even when it rejects in the challenge round: otherwise approving without
        checking would cost nothing to a validator that watches for challenges and turns."""
        challenger, deposit = result["challenge"]["challenger"], result["challenge"]["deposit"]
        self.balances.unreserve(ctx, challenger, deposit)
        ctx.deposit_event(TaskBounties, "ChallengeUpheld", {"task_id": task_id, "challenger": challenger})
        for approver in self._release_approvers(ctx, result):
            info = Workers.Workers.get(ctx.state, approver)
            amount = perbill_mul(self.approver_slash_fraction, info["stake"]) if info else 0
            slashed = self.workers.slash_stake(ctx, approver, amount, [(challenger, amount)])
            ctx.deposit_event(TaskBounties, "ApproverSlashed",
                              {"task_id": task_id, "validator": approver, "challenger": challenger, "amount": slashed})
        self._reject(ctx, task_id, task, result)

    def _release_approvers(self, ctx: DispatchContext, result: dict[str, Any]) -> list[bytes]:
        """The challenge is settled: the first round's approvers are free to unregister again."""
        for approver in result["approved_by"]:
            self.workers.adjust(ctx, approver, verdicts=-1)
        return list(result["approved_by"])

    def _dismiss_challenge(self, ctx: DispatchContext, task_id: int, task: dict[str, Any],
                           result: dict[str, Any]) -> None:
        """The challenger lost: its deposit goes to the challenge round's accepters, then the result pays out."""
        challenger, deposit = result["challenge"]["challenger"], result["challenge"]["deposit"]
        accepters = result["accepts"]
        each = deposit // len(accepters)
        routes = [(v, each) for v in accepters] + [(task["status"][1]["worker"], deposit - each * len(accepters))]
        slashed = 0
        for dest, part in routes:
            if part:
                slashed += part - self.balances.repatriate_reserved(ctx, challenger, dest, part, "Free")
        ctx.deposit_event(TaskBounties, "ChallengeDismissed",
                          {"task_id": task_id, "challenger": challenger, "slashed": slashed})
        self._release_approvers(ctx, result)
        self._pay_out(ctx, task_id, task, result, accepters)

    def _close_verification(self, ctx: DispatchContext, task_id: int, task: dict[str, Any],
                            result: dict[str, Any]) -> None:
        """Leave the verifying statuses: unschedule, clear the current round's verdicts, end the claim."""
        status, payload = task["status"]
        if status in ("Submitted", "Challenged"):
            self._unqueue_verification(ctx, task_id)
        elif status == "Approved":
            self._unqueue_payout(ctx, task_id)
        self._clear_round(ctx, task_id, result)
        self._end_claim(ctx, task_id, payload["worker"])

    def _clear_round(self, ctx: DispatchContext, task_id: int, result: dict[str, Any],
                     keep_pending: Sequence[bytes] = ()) -> None:
        """Remove the current round's verdicts; their voters' pending counts drop, except `keep_pending`'s."""
        for voter in result["accepts"] + result["rejects"]:
            TaskBounties.Verdicts.remove(ctx.state, task_id, voter)
            if voter not in keep_pending:
                self.workers.adjust(ctx, voter, verdicts=-1)

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
        self._drop_claim(ctx, task_id)
        self.privacy.release(ctx, "Bounty", task_id, task["requester"])

    def _refund(self, ctx: DispatchContext, task: dict[str, Any]) -> int:
        amount = task["bounty"] + task["deposit"]
        self.balances.unreserve(ctx, task["requester"], amount)
        return amount

    # Hooks -----------------------------------------------------------------------------------
    def on_initialize(self, ctx: DispatchContext) -> None:
        """Lapsed leases, Open tasks past their deadline, closed verification windows, due payouts: bounded."""
        number = ctx.block_number
        for queue, handler in ((TaskBounties.LeaseExpiries, self._lease_lapsed),
                               (TaskBounties.DeadlineExpiries, self._deadline_reached)):
            for task_id in queue.take(ctx.state, number)[:self.max_expiries]:
                self._guarded(ctx, handler, task_id)
        for until, task_id in self._take_due(ctx, TaskBounties.VerificationDeadlines):
            self._guarded(ctx, self._verification_timed_out, task_id, until)
        for _, task_id in self._take_due(ctx, TaskBounties.PendingPayouts):
            self._guarded(ctx, self._payout_due, task_id)

    def _guarded(self, ctx: DispatchContext, handler: Callable[..., None], task_id: int, *args: Any) -> None:
        """Run one expiry in its own layer: a failure discards its writes and events, never the block."""
        outer, mark = ctx.state, len(ctx.events)
        ctx.state = outer.child()
        try:
            handler(ctx, task_id, *args)
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

    def _verification_timed_out(self, ctx: DispatchContext, task_id: int, until: int) -> None:
        task = TaskBounties.Tasks.get(ctx.state, task_id)
        if task is None:
            return
        # every way out of Submitted and Challenged unqueues the task; checked anyway (a stale entry is skipped)
        status, payload = task["status"]
        if status == "Submitted" and payload["verify_until"] == until:
            result = TaskBounties.Results.take(ctx.state, task_id)
            self._clear_round(ctx, task_id, result)
            self._end_claim(ctx, task_id, payload["worker"])
            ctx.deposit_event(TaskBounties, "VerificationTimedOut", {"task_id": task_id, "worker": payload["worker"]})
            self._expire(ctx, task_id, task)
        elif status == "Challenged" and payload["settle_until"] == until:
            result = TaskBounties.Results.get(ctx.state, task_id)
            challenge = result["challenge"]
            self.balances.unreserve(ctx, challenge["challenger"], challenge["deposit"])
            ctx.deposit_event(TaskBounties, "ChallengeTimedOut",
                              {"task_id": task_id, "challenger": challenge["challenger"]})
            self._release_approvers(ctx, result)
            self._pay_out(ctx, task_id, task, result, result["approved_by"])

    def _take_due(self, ctx: DispatchContext, fifo: StorageItem) -> list[tuple[int, int]]:
        """Pop up to MaxExpiriesPerBlock (moment, task) entries of a FIFO in due order whose moment the previous
        block's `Timestamp.Now` reached (this hook runs before the block's timestamp inherent, as in FRAME)."""
        now = Timestamp.Now.get(ctx.state)
        queue = fifo.get(ctx.state)
        due = 0
        while due < min(len(queue), self.max_expiries) and queue[due][0] <= now:
            due += 1
        if not due:
            return []
        if due == len(queue):
            fifo.remove(ctx.state)
        else:
            fifo.set(ctx.state, queue[due:])
        return [tuple(entry) for entry in queue[:due]]

    def _payout_due(self, ctx: DispatchContext, task_id: int) -> None:
        task = TaskBounties.Tasks.get(ctx.state, task_id)
        # every way out of Approved unqueues the task; checked anyway, as paying twice must be impossible
        if task is None or task["status"][0] != "Approved":
            return
        result = TaskBounties.Results.get(ctx.state, task_id)
        self._pay_out(ctx, task_id, task, result, result["approved_by"])

    def _unqueue_payout(self, ctx: DispatchContext, task_id: int) -> None:
        self._unqueue(ctx, TaskBounties.PendingPayouts, task_id)

    def _queue_verification(self, ctx: DispatchContext, task_id: int) -> int:
        """Open a verification window (a first round or a challenge round) of VerificationGrace ms from now;
        returns its end. The grace is constant and Now never decreases, so appending keeps the FIFO in due order."""
        until = Timestamp.Now.get(ctx.state) + self.verification_grace
        TaskBounties.VerificationDeadlines.set(ctx.state, TaskBounties.VerificationDeadlines.get(ctx.state)
                                               + [(until, task_id)])
        return until

    def _unqueue_verification(self, ctx: DispatchContext, task_id: int) -> None:
        self._unqueue(ctx, TaskBounties.VerificationDeadlines, task_id)

    @staticmethod
    def _unqueue(ctx: DispatchContext, fifo: StorageItem, task_id: int) -> None:
        queue = fifo.get(ctx.state)
        kept = [entry for entry in queue if entry[1] != task_id]
        if len(kept) == len(queue):
            return
        if kept:
            fifo.set(ctx.state, kept)
        else:
            fifo.remove(ctx.state)

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
        """Put `task_id` in the first slot at or after `block` with room; returns that block.

        The spill stops at u32::MAX: a later slot has no storage key (its block number does not encode)."""
        for at in range(block, min(block + self.max_spill, BLOCK_NUMBER_MAX) + 1):
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


__all__ = ["ATTESTATION_DOMAIN", "Attestation", "DEFAULT_CHALLENGE_PERIOD_MS", "DEFAULT_VERIFICATION_GRACE_MS",
           "TaskBounties", "attestation_message", "holdout_commitment", "DispatchError"]
