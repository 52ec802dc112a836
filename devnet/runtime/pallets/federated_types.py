"""The declarations of pallet_federated_tasks: its types, events and errors (the logic is in federated.py).

Kept apart from the logic as task_bounties_types.py is; the metadata derives from these declarations.
Variants, fields, events and errors are only ever appended, so stored encodings and indices stay valid.
Vectors of non-byte items are plain Vec<T> in the metadata (their bounds are checked by the calls), as in
pallet_models: scalecodec 1.2.12 would otherwise make clients wrap every list in a list.

The signed update commitment (design section 3) is mirrored here with devnet's own codec, since devnet may
not import runtime_bindings: a client signs `b"paratrain/fl-update/v1" ++ SCALE(UpdateCommitment)`, and a
round's `update_root` is the RFC 9162 Merkle tree hash over `blake2_256(SCALE((AccountId, UpdateCommitment)))`
in ascending account order, the construction of workers/trajectory.py.
"""
from __future__ import annotations

from collections.abc import Sequence as Seq
from typing import Any

from devnet.crypto import blake2_256
from devnet.runtime.framework import ErrorDef, EventDef
from devnet.runtime.pallets.models import I64, BoundedBytes
from devnet.runtime.pallets.privacy_types import CentralClipping, DpClaim
from devnet.runtime.pallets.task_bounties_types import Perbill, Requirements
from devnet.runtime.primitives import MultiSignature
from devnet.scale.codec import codec_for
from devnet.scale.types import (
    H256,
    U32,
    U64,
    U128,
    AccountId,
    Bool,
    Composite,
    Option,
    Sequence,
    Tuple,
    enum,
    fields,
)

PALLET = "pallet_federated_tasks"
UPDATE_DOMAIN = b"paratrain/fl-update/v1"
_LEAF_PREFIX, _NODE_PREFIX = b"\x00", b"\x01"  # RFC 9162 section 2.1.1, as workers/trajectory.py

_ACCOUNTS = "Vec<T::AccountId>"
AggregationRule = enum(
    (PALLET, "types", "AggregationRule"),
    ("FedAvg", ()),
    ("FedMedian", ()),
    ("FedTrimmedAvg", fields(("beta", Perbill, "Perbill"))),
    ("Krum", fields(("num_malicious", U32, "u32"))),
    ("MultiKrum", fields(("num_malicious", U32, "u32"), ("num_to_select", U32, "u32"))),
)
FlTaskSpec = Composite((PALLET, "types", "FlTaskSpec"), fields(
    ("recipe", BoundedBytes, "BoundedVec<u8, T::MaxRecipeLen>"), ("spec_hash", H256, "H256"),
    ("spec_uri", BoundedBytes, "BoundedVec<u8, T::MaxUriLen>"), ("initial_model_hash", H256, "H256"),
    ("eval_metric", BoundedBytes, "BoundedVec<u8, T::MaxMetricNameLen>"), ("eval_target", I64, "i64"),
    ("higher_is_better", Bool, "bool"), ("rounds", U32, "u32"), ("min_clients_per_round", U32, "u32"),
    ("fraction_per_round", Perbill, "Perbill"), ("max_clients", U32, "u32"),
    ("rule", AggregationRule, "AggregationRule"), ("client_share", Perbill, "Perbill"),
    ("min_client_stake", U128, "BalanceOf<T>"),
    # max |a - b| between a recomputed and the committed aggregate, in units of 1e-9; 0 = bitwise
    ("aggregate_tolerance", U64, "u64"),
    ("requirements", Requirements, "Requirements")))
FlTaskStatus = enum(
    (PALLET, "types", "FlTaskStatus"),
    ("Joining", ()),
    ("Open", ()),
    ("Running", fields(("aggregator", AccountId, "T::AccountId"), ("lease_until", U32, "BlockNumberFor<T>"),
                       ("endpoint", BoundedBytes, "BoundedVec<u8, T::MaxEndpointLen>"))),
    ("Completed", fields(("final_model_hash", H256, "H256"))),
    ("Expired", ()),
    ("Cancelled", ()),
)
FlTask = Composite((PALLET, "types", "FlTask"), fields(
    ("requester", AccountId, "T::AccountId"), ("spec", FlTaskSpec, "FlTaskSpec<T>"),
    ("bounty", U128, "BalanceOf<T>"), ("deposit", U128, "BalanceOf<T>"),
    ("join_deadline", U32, "BlockNumberFor<T>"), ("deadline", U32, "BlockNumberFor<T>"),
    ("validators_required", U32, "u32"), ("holdout_commitment", Option(H256), "Option<H256>"),
    ("status", FlTaskStatus, "FlTaskStatus<T>"), ("created_at", U32, "BlockNumberFor<T>"),
    ("clients", U32, "u32"), ("paid", U128, "BalanceOf<T>"),
    ("last_committed", U32, "u32"), ("last_accepted", U32, "u32"), ("accepted_model_hash", H256, "H256"),
    ("attempts", U32, "u32")))
ClientInfo = Composite((PALLET, "types", "ClientInfo"), fields(
    ("data_hash", H256, "H256"), ("num_examples", U64, "u64"), ("stake", U128, "BalanceOf<T>"),
    ("joined_at", U32, "BlockNumberFor<T>"), ("paid", U128, "BalanceOf<T>"), ("rounds_paid", U32, "u32"),
    ("last_paid_round", U32, "u32"), ("rounds_rejected", U32, "u32"), ("withdrawn", Bool, "bool")))
UpdateCommitment = Composite((PALLET, "types", "UpdateCommitment"), fields(
    ("task_id", U64, "TaskId"), ("round", U32, "u32"), ("base_model_hash", H256, "H256"),
    ("update_hash", H256, "H256"), ("num_examples", U64, "u64")))
SignedUpdate = Composite((PALLET, "types", "SignedUpdate"), fields(
    ("client", AccountId, "T::AccountId"), ("update_hash", H256, "H256"), ("num_examples", U64, "u64"),
    ("signature", MultiSignature, "MultiSignature")))
RoundStatus = enum((PALLET, "types", "RoundStatus"), ("Pending", ()), ("Accepted", ()), ("Rejected", ()),
                   ("Void", ()))
Participant = Tuple((AccountId, U64))  # (client, signed example count)
RoundRecord = Composite((PALLET, "types", "RoundRecord"), fields(
    ("aggregator", AccountId, "T::AccountId"), ("base_model_hash", H256, "H256"),
    ("global_model_hash", H256, "H256"), ("update_root", H256, "H256"), ("round_doc_hash", H256, "H256"),
    ("artifact_uri", BoundedBytes, "BoundedVec<u8, T::MaxUriLen>"),
    ("participants", Sequence(Participant), "BoundedVec<(T::AccountId, u64), T::MaxClientsPerRound>"),
    ("committed_at", U32, "BlockNumberFor<T>"), ("verify_until", U64, "T::Moment"),
    ("status", RoundStatus, "RoundStatus"),
    ("accepts", Sequence(AccountId), _ACCOUNTS), ("rejects", Sequence(AccountId), _ACCOUNTS)))
RoundVerdict = Composite((PALLET, "types", "RoundVerdict"), fields(
    ("accept", Bool, "bool"), ("measured_metric", I64, "i64"), ("evidence_hash", H256, "H256"),
    ("rejected_clients", Sequence(AccountId), "BoundedVec<T::AccountId, T::MaxClientsPerRound>"),
    # aligned with the round's participants: each one's contribution factor
    ("contributions", Sequence(Perbill), "BoundedVec<Perbill, T::MaxClientsPerRound>")))
RoundDeadline = Tuple((U64, U64, U32))  # (verify_until moment, task, round)
# SecAgg+ tasks (docs/secagg.md): Flower's SecAggPlusWorkflow arguments as integers, the client's L2 bound, the audit.
# Real-valued settings are in units of 1e-9 (NANO), as aggregate_tolerance is.
SecAggSpec = Composite((PALLET, "types", "SecAggSpec"), fields(
    ("num_shares", Perbill, "Perbill"), ("reconstruction_threshold", Perbill, "Perbill"),
    ("clipping_range", U64, "u64"), ("quantization_range", U64, "u64"), ("modulus_range", U64, "u64"),
    ("max_weight", U64, "u64"), ("update_norm_bound", U64, "u64"), ("audit_rate", Perbill, "Perbill")))
AuditRecord = Composite((PALLET, "types", "AuditRecord"), fields(
    ("seed", H256, "H256"), ("drawn", Sequence(AccountId), _ACCOUNTS), ("reveal_until", U64, "T::Moment"),
    ("revealed", U32, "u32")))
RevealRecord = Composite((PALLET, "types", "RevealRecord"), fields(
    ("reveal_hash", H256, "H256"), ("reveal_uri", BoundedBytes, "BoundedVec<u8, T::MaxUriLen>"),
    ("revealed_at", U32, "BlockNumberFor<T>")))
# A SecAgg client the aggregator's guard dropped for a malformed stage reply, with the hash of its own signed
# reply (workers/fl/secagg_evidence.py): what validators re-check before a verdict slashes it
RefusedClient = Composite((PALLET, "types", "RefusedClient"), fields(
    ("client", AccountId, "T::AccountId"), ("evidence_hash", H256, "H256")))
AUDIT_DOMAIN = b"paratrain/fl-audit/v1"
# Private tasks (local DP-SGD on every client): an update's signature covers its cumulative DP claim too
PRIVATE_UPDATE_DOMAIN = b"paratrain/fl-update/v2"
PrivateUpdateCommitment = Composite((PALLET, "types", "PrivateUpdateCommitment"), fields(
    ("task_id", U64, "TaskId"), ("round", U32, "u32"), ("base_model_hash", H256, "H256"),
    ("update_hash", H256, "H256"), ("num_examples", U64, "u64"), ("claim", DpClaim, "DpClaim")))
SignedPrivateUpdate = Composite((PALLET, "types", "SignedPrivateUpdate"), fields(
    ("client", AccountId, "T::AccountId"), ("update_hash", H256, "H256"), ("num_examples", U64, "u64"),
    ("claim", DpClaim, "DpClaim"), ("signature", MultiSignature, "MultiSignature")))

UPDATE_COMMITMENT_CODEC = codec_for(UpdateCommitment)
_LEAF_CODEC = codec_for(Tuple((AccountId, UpdateCommitment)))
PRIVATE_COMMITMENT_CODEC = codec_for(PrivateUpdateCommitment)
_PRIVATE_LEAF_CODEC = codec_for(Tuple((AccountId, PrivateUpdateCommitment)))


def update_message(commitment: dict[str, Any]) -> bytes:
    """The bytes a client signs: the domain tag, then the SCALE commitment (task, round, base, update, count)."""
    return UPDATE_DOMAIN + UPDATE_COMMITMENT_CODEC.encode(commitment)


def update_leaf(client: bytes, commitment: dict[str, Any]) -> bytes:
    """A participant's leaf: its account bound to what it signed (signatures are randomized, so not leaves)."""
    return blake2_256(_LEAF_CODEC.encode((client, commitment)))


def private_update_message(commitment: dict[str, Any]) -> bytes:
    """What a client of a private task signs: the v2 domain, then the SCALE commitment with its DP claim."""
    return PRIVATE_UPDATE_DOMAIN + PRIVATE_COMMITMENT_CODEC.encode(commitment)


def private_update_leaf(client: bytes, commitment: dict[str, Any]) -> bytes:
    return blake2_256(_PRIVATE_LEAF_CODEC.encode((client, commitment)))


def merkle_root(leaves: Seq[bytes]) -> bytes:
    """RFC 9162 Merkle tree hash over leaf values with blake2_256 (the empty tree: the hash of nothing)."""
    if not leaves:
        return blake2_256(b"")
    if len(leaves) == 1:
        return blake2_256(_LEAF_PREFIX + leaves[0])
    split = 1
    while split * 2 < len(leaves):
        split *= 2
    return blake2_256(_NODE_PREFIX + merkle_root(leaves[:split]) + merkle_root(leaves[split:]))


# Events and errors ------------------------------------------------------------------------------
TASK = ("task", U64, "TaskId")
ROUND = ("round", U32, "u32")
_AGGREGATOR = ("aggregator", AccountId, "T::AccountId")
_CLIENT = ("client", AccountId, "T::AccountId")


def _bal(name: str) -> tuple[str, Any, str]:
    return (name, U128, "BalanceOf<T>")


def _block(name: str) -> tuple[str, Any, str]:
    return (name, U32, "BlockNumberFor<T>")


EVENTS = (
    EventDef("TaskCreated", fields(TASK, ("requester", AccountId, "T::AccountId"), _bal("bounty"),
                                   _block("join_deadline"), _block("deadline")),
             "A federated task was posted; bounty and deposit are reserved; clients may join until `join_deadline`."),
    EventDef("TaskCancelled", fields(TASK, _bal("refund")), "The requester cancelled a Joining or Open task."),
    EventDef("ClientJoined", fields(TASK, _CLIENT, ("data_hash", H256, "H256"), ("num_examples", U64, "u64"),
                                    _bal("stake")), "A data owner joined with a data commitment and a stake."),
    EventDef("ClientLeft", fields(TASK, _CLIENT), "A client left before the join deadline; its stake is free."),
    EventDef("TaskOpened", fields(TASK, ("clients", U32, "u32")),
             "The join deadline passed with enough clients: the task waits for an aggregator."),
    EventDef("AggregatorClaimed", fields(TASK, _AGGREGATOR, _block("lease_until"),
                                         ("endpoint", BoundedBytes, "BoundedVec<u8, T::MaxEndpointLen>")),
             "A Trainer took the aggregator role; clients connect to `endpoint`."),
    EventDef("Heartbeat", fields(TASK, _AGGREGATOR, _block("lease_until")), "The aggregator renewed its lease."),
    EventDef("RoundCommitted", fields(TASK, ROUND, _AGGREGATOR, ("global_model_hash", H256, "H256"),
                                      ("update_root", H256, "H256"), ("round_doc_hash", H256, "H256"),
                                      ("participants", U32, "u32"), ("verify_until", U64, "T::Moment")),
             "The aggregator committed a round; validators may vote until `verify_until` (ms of Timestamp.Now)."),
    EventDef("HoldoutRevealed", fields(TASK, ("holdout_hash", H256, "H256"), ("holdout_size", U64, "u64"),
                                       ("holdout_uri", BoundedBytes, "BoundedVec<u8, T::MaxUriLen>")),
             "The requester revealed the committed holdout data."),
    EventDef("RoundVerdictSubmitted", fields(TASK, ROUND, ("validator", AccountId, "T::AccountId"),
                                             ("accept", Bool, "bool")), "A validator voted on a round."),
    EventDef("RoundAccepted", fields(TASK, ROUND, ("clients_paid", U32, "u32"), _bal("aggregator_reward"),
                                     _bal("validator_reward")),
             "A quorum accepted the round: its clients, aggregator and accepters were paid "
             "(`validator_reward` per accepter)."),
    EventDef("ClientPaid", fields(TASK, ROUND, _CLIENT, _bal("amount"), ("factor", Perbill, "Perbill")),
             "A participant of an accepted round was paid, pro rata by examples times its contribution factor."),
    EventDef("ClientSlashed", fields(TASK, ROUND, _CLIENT, _bal("amount"), _bal("burned")),
             "A quorum rejected a participant's update: SlashFraction of its client stake went to the requester "
             "and the rejecting validators, `burned` destroyed."),
    EventDef("RoundRejected", fields(TASK, ROUND, _AGGREGATOR),
             "A quorum rejected the round: the aggregator is slashed and the task reopens."),
    EventDef("AggregatorSlashed", fields(TASK, _AGGREGATOR, _bal("amount"), _bal("burned")),
             "Part of the aggregator's Trainer stake was slashed (a rejected round or a lapsed lease)."),
    EventDef("RoundTimedOut", fields(TASK, ROUND),
             "No quorum within VerificationGrace (ms): the round and later pending ones are void; no slash."),
    EventDef("LeaseExpired", fields(TASK, _AGGREGATOR), "The aggregator's lease lapsed."),
    EventDef("AggregatorReleased", fields(TASK, _AGGREGATOR), "The aggregator gave the task back."),
    EventDef("TaskReopened", fields(TASK, ("from_round", U32, "u32")),
             "The task is Open again; the next aggregator starts at `from_round` from the accepted model."),
    EventDef("TaskCompleted", fields(TASK, ("final_model_hash", H256, "H256"), _bal("refund")),
             "The last round was accepted; what was not paid out and the deposit went back to the requester."),
    EventDef("TaskExpired", fields(TASK, _bal("refund")),
             "The task expired; what was not paid out and the deposit went back to the requester."),
    EventDef("StakeWithdrawn", fields(TASK, _CLIENT, _bal("amount")),
             "A client of an ended task took back what is left of its stake."),
    EventDef("SecAggRequired", fields(TASK, ("audit_rate", Perbill, "Perbill")),
             "The task just created aggregates under SecAgg+ with the stored SecAggSpec; joining consents to its "
             "audit rate."),
    EventDef("AuditDrawn", fields(TASK, ROUND, ("drawn", Sequence(AccountId), _ACCOUNTS),
                                  ("reveal_until", U64, "T::Moment")),
             "Chain randomness picked the participants of a SecAgg round who must reveal their update to the "
             "validators before `reveal_until` (ms of Timestamp.Now)."),
    EventDef("UpdateRevealed", fields(TASK, ROUND, _CLIENT, ("reveal_hash", H256, "H256")),
             "An audited participant stored its reveal document (update and salt) for the validators."),
    EventDef("DpRequired", fields(TASK, ("epsilon_cap", U64, "u64"), ("delta", U64, "u64")),
             "The task just created trains with local DP-SGD on every client: joining reserves epsilon_cap and "
             "delta of the client's own budget for its data, spent round by round by accepted rounds."),
    EventDef("CentralDpRequired", fields(TASK, ("clipping", CentralClipping, "CentralClipping"),
                                         ("epsilon_cap", U64, "u64"), ("delta", U64, "u64")),
             "The task just created releases each round's mean under central DP (terms in PrivacyBudgets."
             "FederatedCentralDp); joining reserves the epsilon cap of the client's own budget."),
    EventDef("SealKeyRegistered", fields(("validator", AccountId, "T::AccountId"), ("key", H256, "H256")),
             "A validator registered the X25519 key audited clients seal their reveal documents to."),
    EventDef("RefusalsReported", fields(TASK, ROUND, ("clients", Sequence(AccountId), "Vec<T::AccountId>")),
             "The aggregator reported the joined clients its guard dropped from a SecAgg round for a malformed, "
             "signed stage reply; a verdict may reject (and so slash) them once validators re-checked the evidence."),
)
ERRORS = tuple(ErrorDef(n, d) for n, d in (
    ("TaskNotFound", "No federated task with this id."),
    ("NotRequester", "Only the task's requester may do this."),
    ("BountyTooLow", "The bounty is below MinBounty."),
    ("DeadlineInPast", "The deadline is not after the current block."),
    ("DeadlineTooFar", "The deadline is more than MaxDeadlineBlocks after the current block."),
    ("DeadlinePassed", "The task's deadline has passed."),
    ("JoinDeadlineInvalid", "The join deadline is not after the current block or not before the deadline."),
    ("InvalidRounds", "rounds is 0 or above MaxRounds."),
    ("InvalidClientCounts", "Need 1 <= min_clients_per_round <= max_clients <= MaxClientsPerTask and "
                            "min_clients_per_round <= MaxClientsPerRound."),
    ("InvalidRule", "FedTrimmedAvg needs beta < 50 %; Krum and MultiKrum need min_clients_per_round > "
                    "2 num_malicious + 2; MultiKrum needs 1 <= num_to_select <= min_clients_per_round."),
    ("InvalidShare", "client_share plus ValidatorRewardShare exceeds 100 %."),
    ("InvalidValidatorsRequired", "validators_required is 0 or above MaxValidatorsRequired."),
    ("RecipeTooLong", "The recipe is longer than MaxRecipeLen."),
    ("UriTooLong", "A URI is longer than MaxUriLen."),
    ("MetricNameTooLong", "The metric name is longer than MaxMetricNameLen."),
    ("EndpointTooLong", "The endpoint is longer than MaxEndpointLen."),
    ("NotCancellable", "Only a Joining or Open task may be cancelled."),
    ("JoinClosed", "The task is not Joining or its join deadline has passed."),
    ("AlreadyJoined", "The account already joined this task."),
    ("RequesterCannotJoin", "The requester may not join its own task as a client."),
    ("TooManyClients", "The task already has max_clients clients."),
    ("ClientStakeTooLow", "The stake is below the task's min_client_stake or MinClientStake."),
    ("ZeroExamples", "A client must commit to at least one example."),
    ("NotClient", "The account has not joined this task."),
    ("NotJoinable", "The task is not Open for an aggregator."),
    ("NotTrainer", "The caller is not an active Trainer."),
    ("NotValidator", "The caller is not an active Validator."),
    ("InsufficientStake", "The worker's stake is below the role's minimum."),
    ("RequirementsNotMet", "The worker's capabilities do not meet the task's requirements."),
    ("TooManyClaims", "The worker already holds MaxClaimsPerWorker claims (TaskBounties' and these together)."),
    ("RequesterCannotWork", "The requester may not aggregate its own task."),
    ("ClientCannotAggregate", "A client of the task may not be its aggregator."),
    ("NotRunning", "The task has no aggregator."),
    ("NotAggregator", "Only the task's aggregator may do this."),
    ("RoundOutOfOrder", "The round is not the one after the last committed, or beyond the task's rounds."),
    ("TooManyRoundsAhead", "MaxRoundsAhead rounds are committed and not yet accepted."),
    ("BaseModelMismatch", "The base model is not the previous round's global model (or the initial model)."),
    ("TooFewParticipants", "Fewer signed updates than min_clients_per_round."),
    ("TooManyParticipants", "More signed updates than MaxClientsPerRound."),
    ("ParticipantsNotSorted", "The updates are not in strictly ascending client order (no client twice)."),
    ("UnknownParticipant", "An update's client has not joined the task."),
    ("ExamplesExceedCommitment", "An update claims more examples than its client committed when joining."),
    ("BadUpdateSignature", "An update's signature is not its client's over the update commitment."),
    ("RoundNotPending", "The round is not awaiting verdicts (or has its quorum and awaits its predecessor)."),
    ("CannotJudgeOwnWork", "The aggregator, the requester and the round's participants may not judge it."),
    ("AlreadyVoted", "The validator already voted on this round."),
    ("VerdictMismatch", "contributions are not aligned with the participants, a factor exceeds 100 %, or "
                        "rejected_clients are not participants (or reported refusals) in ascending order."),
    ("NoHoldoutCommitment", "The task has no holdout commitment."),
    ("HoldoutAlreadyRevealed", "The holdout was already revealed."),
    ("HoldoutNotRevealable", "The holdout may be revealed only once round 1 is committed."),
    ("HoldoutMismatch", "salt, holdout_hash, holdout_size and holdout_uri do not match the commitment."),
    ("StakeLocked", "Stakes are withdrawn only once the task is Completed, Expired or Cancelled."),
    ("AlreadyWithdrawn", "The client already withdrew its stake."),
    ("ExpiryQueueFull", "No expiry slot within MaxExpirySpill blocks (and up to u32::MAX) has room."),
    ("InvalidSecAggParams", "SecAggSpec: num_shares and audit_rate must be above 0, reconstruction_threshold at "
                            "least 60 %, clipping_range, max_weight and update_norm_bound above 0, "
                            "quantization_range above 1, modulus_range a power of two above it, at most 2^32."),
    ("SecAggNeedsFedAvg", "Under SecAgg+ the aggregator sees only the sum: the rule must be FedAvg."),
    ("SecAggRoundSize", "A SecAgg round needs at least 3 clients, and no more than modulus_range / "
                        "quantization_range - 1 (the masked sum would wrap)."),
    ("ExamplesAboveMaxWeight", "A client of a SecAgg task may not commit to more examples than max_weight."),
    ("NotSecAgg", "The task does not aggregate under SecAgg+."),
    ("AuditNotDue", "The round's audit is drawn from the hash of the block that included its commit: not yet."),
    ("AuditAlreadyDrawn", "The round's audit was already drawn."),
    ("NotAudited", "The account was not drawn for this round's audit."),
    ("AlreadyRevealed", "The account already revealed its update for this round."),
    ("RevealClosed", "The round's reveal window is over."),
    ("AuditOpen", "Verdicts on a SecAgg round wait until every drawn client revealed or the reveal window closed."),
    ("RejectedNotAudited", "A verdict on a SecAgg round may reject only the clients its audit drew or the "
                           "aggregator reported refused."),
    ("NotPrivate", "The task does not train with DP: commit its rounds with commit_round."),
    ("PrivateNeedsClaims", "The task trains with DP: its rounds carry each update's DP claim (commit_private_round)."),
    ("NotCentralDp", "The task has no central DP terms: commit its rounds with commit_round or "
                     "commit_private_round."),
    ("CentralDpNeedsClaim", "The task releases its rounds under central DP: commit them with commit_central_round "
                            "and the round's DP claim."),
    ("CentralDpNeedsFedAvg", "Central DP calibrates its noise to an unweighted mean: the rule must be FedAvg."),
    ("RefusalsClosed", "A round's refusals are reported once, by its aggregator, while it is pending and before "
                       "any verdict."),
    ("BadRefusal", "A reported client is not a joined client outside the round's participants, or the clients are "
                   "not in strictly ascending order, or there are more than MaxClientsPerRound."),
))
