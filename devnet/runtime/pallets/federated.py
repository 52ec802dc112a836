"""pallet_federated_tasks: federated learning tasks, their clients, rounds, round verdicts and payouts.

Lifecycle (`FlTaskStatus`, stored in `FlTask.status`; design docs/design/federated.md section 2):

    Joining --join deadline, >= min_clients_per_round joined--> Open --claim_aggregator--> Running{aggregator,
      |      (fewer joined: Expired, full refund)                 ^        lease_until, endpoint}
      |                                                           |           | commit_round r (lease renewed),
      +--cancel_task (Joining or Open)--> Cancelled               |           | heartbeat, verdicts per round
                                                                  +-----------+ release / lease lapse / round
                                                                  |             rejected: TaskReopened from
    Running --round `rounds` accepted--> Completed{final_model_hash}            last_accepted + 1
    any live status at its deadline --> Expired (refund of bounty - paid + deposit)

A Joining task whose join deadline has passed is moved to Open by `claim_aggregator` itself (instant seal
makes no block on an idle chain, so the hook of that block may not have run yet).

Rounds (`RoundStatus`): `commit_round` records round r Pending with `verify_until = Now + VerificationGrace`
(ms) in `RoundDeadlines`; `validators_required` accepts accept it (in order: r is applied only when
r = last_accepted + 1, and later rounds that already have their quorum are applied in the same call),
`validators_required` rejects reject it (the aggregator is slashed, every pending round voided, the task
reopens), no quorum by `verify_until` times it out (it and every later pending round Void, no slash,
last_committed = last_accepted; the aggregator keeps its lease and recommits). At most MaxRoundsAhead rounds
are committed and not accepted.

Signatures are checked here, in `commit_round`: every participant's `MultiSignature` over
`b"paratrain/fl-update/v1" ++ SCALE(UpdateCommitment)` with the task, the round, the base model (the previous
round's global model, so an aggregator cannot show clients different models), the update's hash and its
example count. The participant list decides who is paid and who may be slashed, so it is a chain fact that
neither the aggregator nor a validator quorum can forge. `update_root` is computed here from the same
commitments (federated_types.merkle_root).

Money (section 4; arithmetic in federated_payout.py): `create_task` reserves `bounty + TaskDeposit`; each
accepted round pays its reward `bounty // rounds` (the last round also the remainder) from that reserve:
ValidatorRewardShare to the deciding accepters, client_share of the rest to the participants pro rata by
examples times the lower median of the deciders' contribution factors, the rest to the aggregator. A
participant every decider rejects gets nothing and loses SlashFraction of its client stake (half to the
requester, the rest to the deciders, the remainder burned). Nothing is paid twice: payment happens only in
`_accept_round`, whose first act is the Pending -> Accepted transition, and `ClientInfo.last_paid_round` is
checked and advanced with each payment. Every end refunds `bounty - paid` and the deposit; client stakes are
taken back by their owners (`withdraw_stake`) once the task has ended, so no hook iterates over clients.

The types, events and errors are declared in federated_types.py; resolution and hooks in federated_rounds.py;
SecAgg+ tasks, their audit draw and reveals in federated_secagg.py.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from devnet.crypto import verify_signature
from devnet.runtime.context import DispatchContext
from devnet.runtime.framework import BAD_ORIGIN, Constant, Pallet, StorageItem, call
from devnet.runtime.pallets.federated_private import FederatedPrivate
from devnet.runtime.pallets.federated_rounds import FederatedRounds
from devnet.runtime.pallets.federated_secagg import FederatedSecAgg
from devnet.runtime.pallets.federated_types import (
    ERRORS,
    EVENTS,
    PALLET,
    ROUND,
    TASK,
    ClientInfo,
    FlTask,
    FlTaskSpec,
    RoundDeadline,
    RoundRecord,
    RoundVerdict,
    SignedUpdate,
    merkle_root,
    update_leaf,
    update_message,
)
from devnet.runtime.pallets.models import BoundedBytes
from devnet.runtime.pallets.privacy import PrivacyBudgets
from devnet.runtime.pallets.task_bounties_types import PERBILL, Holdout, Perbill, holdout_commitment
from devnet.runtime.pallets.timestamp import Timestamp
from devnet.runtime.pallets.workers import UNIT, Workers
from devnet.scale.types import H256, U32, U64, U128, AccountId, Option, Sequence, Tuple

log = logging.getLogger(__name__)
DEFAULT_FL_VERIFICATION_GRACE_MS = 60_000
_ENDED = ("Completed", "Expired", "Cancelled")


@dataclass(frozen=True)
class FederatedSettings:
    """The pallet's constants (devnet defaults); each is a Constant in the metadata."""

    task_deposit: int = UNIT
    min_bounty: int = UNIT
    min_client_stake: int = UNIT
    max_rounds: int = 100
    max_clients_per_task: int = 256
    max_clients_per_round: int = 128
    max_rounds_ahead: int = 2
    round_lease: int = 20
    verification_grace_ms: int = DEFAULT_FL_VERIFICATION_GRACE_MS
    max_validators_required: int = 8
    validator_reward_share: int = 100_000_000
    slash_fraction: int = 200_000_000
    aggregator_slash_fraction: int = 200_000_000
    lease_slash_fraction: int = 50_000_000
    max_expiries_per_block: int = 32
    max_expiry_spill: int = 64
    max_deadline_blocks: int = 100_000_000
    max_recipe_len: int = 64
    max_uri_len: int = 256
    max_metric_name_len: int = 32
    max_endpoint_len: int = 128
    audit_reveal_share: int = 500_000_000


def _constants(s: FederatedSettings) -> tuple[Constant, ...]:
    return (
        Constant("TaskDeposit", U128, s.task_deposit, "Reserved from the requester per task, returned at the end."),
        Constant("MinBounty", U128, s.min_bounty, "The least bounty a federated task may offer."),
        Constant("MinClientStake", U128, s.min_client_stake,
                 "The least stake a client joins with (a task may ask more: min_client_stake)."),
        Constant("MaxRounds", U32, s.max_rounds, "The most rounds a task may ask."),
        Constant("MaxClientsPerTask", U32, s.max_clients_per_task, "The most clients that may join one task."),
        Constant("MaxClientsPerRound", U32, s.max_clients_per_round,
                 "The most participants (signed updates) one round commit carries."),
        Constant("MaxRoundsAhead", U32, s.max_rounds_ahead, "Rounds that may be committed but not yet accepted."),
        Constant("RoundLease", U32, s.round_lease,
                 "Blocks the aggregator keeps the task after a claim, a commit or a heartbeat."),
        Constant("VerificationGrace", U64, s.verification_grace_ms,
                 "Milliseconds (of Timestamp.Now) validators have to reach a quorum on a committed round."),
        Constant("MaxValidatorsRequired", U32, s.max_validators_required, "The largest quorum a task may ask."),
        Constant("ValidatorRewardShare", Perbill, s.validator_reward_share,
                 "The part of each round's reward the deciding accepters split."),
        Constant("SlashFraction", Perbill, s.slash_fraction,
                 "The part of a client's stake an update rejected by a quorum costs."),
        Constant("AggregatorSlashFraction", Perbill, s.aggregator_slash_fraction,
                 "The part of the aggregator's Trainer stake a rejected round costs."),
        Constant("LeaseSlashFraction", Perbill, s.lease_slash_fraction,
                 "The part of the aggregator's Trainer stake a lapsed lease costs (paid to the requester)."),
        Constant("MaxExpiriesPerBlock", U32, s.max_expiries_per_block, "Entries per expiry slot (per queue)."),
        Constant("MaxExpirySpill", U32, s.max_expiry_spill, "How many blocks later a full slot may spill to."),
        Constant("MaxDeadlineBlocks", U32, s.max_deadline_blocks,
                 "How many blocks after the current one a task's deadline may be."),
        Constant("MaxRecipeLen", U32, s.max_recipe_len, "The longest recipe name, in bytes."),
        Constant("MaxUriLen", U32, s.max_uri_len, "The longest URI, in bytes."),
        Constant("MaxMetricNameLen", U32, s.max_metric_name_len, "The longest metric name, in bytes."),
        Constant("MaxEndpointLen", U32, s.max_endpoint_len, "The longest aggregator endpoint (host:port), in bytes."),
        Constant("AuditRevealShare", Perbill, s.audit_reveal_share,
                 "The part of VerificationGrace, from a SecAgg round's commit, its drawn clients have to reveal."),
    )


class FederatedTasks(FederatedRounds, FederatedSecAgg, FederatedPrivate, Pallet):
    name = "FederatedTasks"
    index = 23
    module = PALLET

    NextTaskId = StorageItem(U64, default=0, docs="The id the next federated task gets.")
    Tasks = StorageItem(FlTask, (("Twox64Concat", U64),), docs="Every federated task, ended ones included.")
    Clients = StorageItem(ClientInfo, (("Twox64Concat", U64), ("Blake2_128Concat", AccountId)),
                          docs="(task, client) -> its data commitment, stake and payouts.")
    Rounds = StorageItem(RoundRecord, (("Twox64Concat", U64), ("Twox64Concat", U32)),
                         docs="(task, round) -> the committed round (a Void or Rejected one is overwritten when "
                              "its number is committed again).")
    RoundVerdicts = StorageItem(RoundVerdict, (("Twox64Concat", U64), ("Twox64Concat", U32),
                                               ("Blake2_128Concat", AccountId)),
                                docs="(task, round, validator) -> verdict; kept for accepted rounds.")
    Holdouts = StorageItem(Holdout, (("Twox64Concat", U64),), docs="Revealed holdout data per task.")
    AggregatorTasks = StorageItem(Tuple(), (("Blake2_128Concat", AccountId), ("Twox64Concat", U64)),
                                  docs="(aggregator, task) -> (): the Running tasks an aggregator holds.")
    LeaseExpiries = StorageItem(Sequence(U64), (("Twox64Concat", U32),), default=[],
                                docs="block -> tasks whose aggregator lease lapses at that block.")
    DeadlineExpiries = StorageItem(Sequence(U64), (("Twox64Concat", U32),), default=[],
                                   docs="block -> tasks whose join deadline or deadline is at that block.")
    RoundDeadlines = StorageItem(Sequence(RoundDeadline), default=[],
                                 docs="(verify_until, task, round) of every Pending round, in due order (FIFO).")

    events = EVENTS
    errors = ERRORS

    def __init__(self, balances: Any, workers: Workers, privacy: PrivacyBudgets, *, max_claims_per_worker: int,
                 settings: FederatedSettings = FederatedSettings()) -> None:
        self.constants = _constants(settings)
        self.settings = settings
        self.balances, self.workers, self.privacy, self.max_claims = balances, workers, privacy, max_claims_per_worker

    # Requester calls -------------------------------------------------------------------------
    @call(0, ("spec", FlTaskSpec, "FlTaskSpec<T>"), ("bounty", U128, "BalanceOf<T>"),
          ("join_deadline", U32, "BlockNumberFor<T>"), ("deadline", U32, "BlockNumberFor<T>"),
          ("validators_required", U32, "u32"), ("holdout_commitment", Option(H256), "Option<H256>"),
          weight=500_000_000)
    def create_task(self, ctx: DispatchContext, origin: bytes | None, spec: dict[str, Any], bounty: int,
                    join_deadline: int, deadline: int, validators_required: int,
                    holdout_commitment: bytes | None) -> None:
        """Post a federated task: reserves `bounty + TaskDeposit`; clients join until `join_deadline` (a block)."""
        requester = _signed(origin)
        s, now = self.settings, ctx.block_number
        self._check_len(spec["recipe"], s.max_recipe_len, "RecipeTooLong")
        self._check_len(spec["spec_uri"], s.max_uri_len, "UriTooLong")
        self._check_len(spec["eval_metric"], s.max_metric_name_len, "MetricNameTooLong")
        if bounty < s.min_bounty:
            raise self.error("BountyTooLow")
        if deadline <= now:
            raise self.error("DeadlineInPast")
        if deadline - now > s.max_deadline_blocks:
            raise self.error("DeadlineTooFar")
        if join_deadline <= now or join_deadline >= deadline:
            raise self.error("JoinDeadlineInvalid")
        if not 1 <= spec["rounds"] <= s.max_rounds:
            raise self.error("InvalidRounds")
        low, high = spec["min_clients_per_round"], spec["max_clients"]
        if not (1 <= low <= high <= s.max_clients_per_task and low <= s.max_clients_per_round):
            raise self.error("InvalidClientCounts")
        self._check_rule(spec["rule"], low)
        if spec["client_share"] + s.validator_reward_share > PERBILL or not 0 < spec["fraction_per_round"] <= PERBILL:
            raise self.error("InvalidShare")
        if not 1 <= validators_required <= s.max_validators_required:
            raise self.error("InvalidValidatorsRequired")
        self.balances.reserve(ctx, requester, bounty + s.task_deposit)
        task_id = self.NextTaskId.get(ctx.state)
        self.NextTaskId.set(ctx.state, task_id + 1)
        self._schedule(ctx, self.DeadlineExpiries, join_deadline, task_id)
        self._schedule(ctx, self.DeadlineExpiries, deadline, task_id)
        self.Tasks.set(ctx.state, task_id, {
            "requester": requester, "spec": spec, "bounty": bounty, "deposit": s.task_deposit,
            "join_deadline": join_deadline, "deadline": deadline, "validators_required": validators_required,
            "holdout_commitment": holdout_commitment, "status": ("Joining", None), "created_at": now,
            "clients": 0, "paid": 0, "last_committed": 0, "last_accepted": 0,
            "accepted_model_hash": spec["initial_model_hash"], "attempts": 0})
        ctx.deposit_event(self, "TaskCreated", {"task": task_id, "requester": requester, "bounty": bounty,
                                                "join_deadline": join_deadline, "deadline": deadline})

    @call(1, TASK, weight=300_000_000)
    def cancel_task(self, ctx: DispatchContext, origin: bytes | None, task: int) -> None:
        """The requester withdraws a Joining or Open task; what was not paid and the deposit are returned."""
        who = _signed(origin)
        record = self._task(ctx, task)
        if record["requester"] != who:
            raise self.error("NotRequester")
        if record["status"][0] not in ("Joining", "Open"):
            raise self.error("NotCancellable")
        refund = self._refund(ctx, record)
        record["status"] = ("Cancelled", None)
        self.Tasks.set(ctx.state, task, record)
        ctx.deposit_event(self, "TaskCancelled", {"task": task, "refund": refund})

    @call(8, TASK, ("salt", H256, "H256"), ("holdout_hash", H256, "H256"), ("holdout_size", U64, "u64"),
          ("holdout_uri", BoundedBytes, "BoundedVec<u8, T::MaxUriLen>"), weight=150_000_000)
    def reveal_holdout(self, ctx: DispatchContext, origin: bytes | None, task: int, salt: bytes,
                       holdout_hash: bytes, holdout_size: int, holdout_uri: bytes) -> None:
        """The requester reveals the committed holdout once round 1 is committed (validators measure on it)."""
        who = _signed(origin)
        record = self._task(ctx, task)
        if record["requester"] != who:
            raise self.error("NotRequester")
        if record["holdout_commitment"] is None:
            raise self.error("NoHoldoutCommitment")
        if self.Holdouts.contains(ctx.state, task):
            raise self.error("HoldoutAlreadyRevealed")
        if not self.Rounds.contains(ctx.state, task, 1):
            raise self.error("HoldoutNotRevealable")
        self._check_len(holdout_uri, self.settings.max_uri_len, "UriTooLong")
        if holdout_commitment(salt, holdout_hash, holdout_size, holdout_uri) != record["holdout_commitment"]:
            raise self.error("HoldoutMismatch")
        revealed = {"holdout_hash": holdout_hash, "holdout_size": holdout_size, "holdout_uri": holdout_uri}
        self.Holdouts.set(ctx.state, task, {"salt": salt, **revealed, "revealed_at": ctx.block_number})
        ctx.deposit_event(self, "HoldoutRevealed", {"task": task, **revealed})

    # Client calls ----------------------------------------------------------------------------
    @call(2, TASK, ("data_hash", H256, "H256"), ("num_examples", U64, "u64"), ("stake", U128, "BalanceOf<T>"),
          weight=300_000_000)
    def join(self, ctx: DispatchContext, origin: bytes | None, task: int, data_hash: bytes, num_examples: int,
             stake: int) -> None:
        """A data owner joins before the join deadline with a data commitment, reserving `stake`."""
        who = _signed(origin)
        record = self._task(ctx, task)
        if record["status"][0] != "Joining" or ctx.block_number >= record["join_deadline"]:
            raise self.error("JoinClosed")
        if self.Clients.contains(ctx.state, task, who):
            raise self.error("AlreadyJoined")
        if who == record["requester"]:
            raise self.error("RequesterCannotJoin")
        if record["clients"] >= record["spec"]["max_clients"]:
            raise self.error("TooManyClients")
        if stake < max(record["spec"]["min_client_stake"], self.settings.min_client_stake):
            raise self.error("ClientStakeTooLow")
        if num_examples == 0:
            raise self.error("ZeroExamples")
        self._check_secagg_join(ctx, task, num_examples)
        self.privacy.reserve_federated(ctx, task, who, data_hash)
        self.balances.reserve(ctx, who, stake)
        self.Clients.set(ctx.state, task, who, {
            "data_hash": data_hash, "num_examples": num_examples, "stake": stake, "joined_at": ctx.block_number,
            "paid": 0, "rounds_paid": 0, "last_paid_round": 0, "rounds_rejected": 0, "withdrawn": False})
        record["clients"] += 1
        self.Tasks.set(ctx.state, task, record)
        ctx.deposit_event(self, "ClientJoined", {"task": task, "client": who, "data_hash": data_hash,
                                                 "num_examples": num_examples, "stake": stake})

    @call(3, TASK, weight=200_000_000)
    def leave(self, ctx: DispatchContext, origin: bytes | None, task: int) -> None:
        """A client leaves before the join deadline; its stake is unreserved."""
        who = _signed(origin)
        record = self._task(ctx, task)
        info = self.Clients.get(ctx.state, task, who)
        if info is None:
            raise self.error("NotClient")
        if record["status"][0] != "Joining" or ctx.block_number >= record["join_deadline"]:
            raise self.error("JoinClosed")
        self.balances.unreserve(ctx, who, info["stake"])
        self.privacy.close_federated(ctx, task, who)
        self.Clients.remove(ctx.state, task, who)
        record["clients"] -= 1
        self.Tasks.set(ctx.state, task, record)
        ctx.deposit_event(self, "ClientLeft", {"task": task, "client": who})

    @call(10, TASK, weight=150_000_000)
    def withdraw_stake(self, ctx: DispatchContext, origin: bytes | None, task: int) -> None:
        """A client of an ended task (Completed, Expired, Cancelled) takes back what is left of its stake."""
        who = _signed(origin)
        record = self._task(ctx, task)
        info = self.Clients.get(ctx.state, task, who)
        if info is None:
            raise self.error("NotClient")
        if record["status"][0] not in _ENDED:
            raise self.error("StakeLocked")
        if info["withdrawn"]:
            raise self.error("AlreadyWithdrawn")
        self.balances.unreserve(ctx, who, info["stake"])
        self.privacy.close_federated(ctx, task, who)   # what no accepted round spent goes back to its budget
        info["withdrawn"] = True
        self.Clients.set(ctx.state, task, who, info)
        ctx.deposit_event(self, "StakeWithdrawn", {"task": task, "client": who, "amount": info["stake"]})

    # Aggregator calls ------------------------------------------------------------------------
    @call(4, TASK, ("endpoint", BoundedBytes, "BoundedVec<u8, T::MaxEndpointLen>"), weight=400_000_000)
    def claim_aggregator(self, ctx: DispatchContext, origin: bytes | None, task: int, endpoint: bytes) -> None:
        """An active Trainer (not the requester, not a client) takes an Open task for RoundLease blocks."""
        who = _signed(origin)
        record = self._task(ctx, task)
        self._open_if_due(ctx, task, record)
        if record["status"][0] != "Open":
            raise self.error("NotJoinable")
        if ctx.block_number >= record["deadline"]:
            raise self.error("DeadlinePassed")
        # who first: the role check would hide why the requester or a client may not aggregate
        if who == record["requester"]:
            raise self.error("RequesterCannotWork")
        if self.Clients.contains(ctx.state, task, who):
            raise self.error("ClientCannotAggregate")
        info = self.workers.active_with_role(ctx, who, "Trainer")
        if info is None:
            raise self.error("NotTrainer")
        if info["stake"] < self.workers.min_stake["Trainer"]:
            raise self.error("InsufficientStake")
        caps, req = info["capabilities"], record["spec"]["requirements"]
        if caps["cpus"] < req["min_cpus"] or caps["gpus"] < req["min_gpus"] or caps["memory_mb"] < req["min_memory_mb"]:
            raise self.error("RequirementsNotMet")
        if info["active_claims"] >= self.max_claims:
            raise self.error("TooManyClaims")
        self._check_len(endpoint, self.settings.max_endpoint_len, "EndpointTooLong")
        lease_until = self._schedule(ctx, self.LeaseExpiries, ctx.block_number + self.settings.round_lease, task)
        record["status"] = ("Running", {"aggregator": who, "lease_until": lease_until, "endpoint": endpoint})
        self.Tasks.set(ctx.state, task, record)
        self.AggregatorTasks.set(ctx.state, who, task, None)
        self.workers.adjust(ctx, who, claims=1)
        ctx.deposit_event(self, "AggregatorClaimed", {"task": task, "aggregator": who, "lease_until": lease_until,
                                                      "endpoint": endpoint})

    @call(5, TASK, ROUND, ("base_model_hash", H256, "H256"), ("global_model_hash", H256, "H256"),
          ("round_doc_hash", H256, "H256"), ("artifact_uri", BoundedBytes, "BoundedVec<u8, T::MaxUriLen>"),
          ("updates", Sequence(SignedUpdate), "BoundedVec<SignedUpdate<T>, T::MaxClientsPerRound>"),
          weight=20_000_000_000)  # 128 signature checks at the bound
    def commit_round(self, ctx: DispatchContext, origin: bytes | None, task: int, round: int,
                     base_model_hash: bytes, global_model_hash: bytes, round_doc_hash: bytes, artifact_uri: bytes,
                     updates: list[dict[str, Any]]) -> None:
        """The aggregator commits round `round`: its global model and the participants' signed updates."""
        self._commit(ctx, _signed(origin), task, round, base_model_hash, global_model_hash, round_doc_hash,
                     artifact_uri, updates, private=False)

    def _commit(self, ctx: DispatchContext, who: bytes, task: int, round: int, base_model_hash: bytes,
                global_model_hash: bytes, round_doc_hash: bytes, artifact_uri: bytes, updates: list[dict[str, Any]],
                *, private: bool, central: bool = False) -> None:
        """commit_round, commit_private_round and commit_central_round: the same checks and record, each update's
        leaf by its kind (a central-DP round's updates are plain ones; its one claim is the aggregator's)."""
        record = self._task(ctx, task)
        self._aggregator(record, who)
        if self.privacy.FederatedPrivacy.contains(ctx.state, task) != private:
            raise self.error("NotPrivate" if private else "PrivateNeedsClaims")
        if self.privacy.FederatedCentralDp.contains(ctx.state, task) != central:
            raise self.error("NotCentralDp" if central else "CentralDpNeedsClaim")
        spec, s = record["spec"], self.settings
        if round != record["last_committed"] + 1 or round > spec["rounds"]:
            raise self.error("RoundOutOfOrder")
        if round - record["last_accepted"] > s.max_rounds_ahead:
            raise self.error("TooManyRoundsAhead")
        if ctx.block_number >= record["deadline"]:
            raise self.error("DeadlinePassed")
        self._check_len(artifact_uri, s.max_uri_len, "UriTooLong")
        if base_model_hash != self._base_of(ctx, task, record, round):
            raise self.error("BaseModelMismatch")
        if len(updates) < spec["min_clients_per_round"]:
            raise self.error("TooFewParticipants")
        if len(updates) > s.max_clients_per_round:
            raise self.error("TooManyParticipants")
        clients = [u["client"] for u in updates]
        if any(a >= b for a, b in pairwise(clients)):
            raise self.error("ParticipantsNotSorted")
        check = self._checked_private_update if private else self._checked_update
        leaves = [check(ctx, task, round, base_model_hash, i, u) for i, u in enumerate(updates)]
        verify_until = Timestamp.Now.get(ctx.state) + s.verification_grace_ms
        update_root = merkle_root(leaves)
        self._reset_audit(ctx, task, round)
        self.Rounds.set(ctx.state, task, round, {
            "aggregator": who, "base_model_hash": base_model_hash, "global_model_hash": global_model_hash,
            "update_root": update_root, "round_doc_hash": round_doc_hash, "artifact_uri": artifact_uri,
            "participants": [(u["client"], u["num_examples"]) for u in updates], "committed_at": ctx.block_number,
            "verify_until": verify_until, "status": ("Pending", None), "accepts": [], "rejects": []})
        # the grace is constant and Now never decreases, so appending keeps the FIFO in due order
        self.RoundDeadlines.set(ctx.state, self.RoundDeadlines.get(ctx.state) + [(verify_until, task, round)])
        record["last_committed"] = round
        self._renew_lease(ctx, task, record)
        ctx.deposit_event(self, "RoundCommitted", {
            "task": task, "round": round, "aggregator": who, "global_model_hash": global_model_hash,
            "update_root": update_root, "round_doc_hash": round_doc_hash, "participants": len(updates),
            "verify_until": verify_until})

    @call(6, TASK, weight=200_000_000)
    def heartbeat(self, ctx: DispatchContext, origin: bytes | None, task: int) -> None:
        """The aggregator renews its lease for RoundLease blocks (rounds longer than the lease)."""
        who = _signed(origin)
        record = self._task(ctx, task)
        self._aggregator(record, who)
        if ctx.block_number >= record["deadline"]:
            raise self.error("DeadlinePassed")
        lease_until = self._renew_lease(ctx, task, record)
        ctx.deposit_event(self, "Heartbeat", {"task": task, "aggregator": who, "lease_until": lease_until})

    @call(7, TASK, weight=600_000_000)
    def release(self, ctx: DispatchContext, origin: bytes | None, task: int) -> None:
        """The aggregator gives the task back without a slash: pending rounds are void, the task reopens."""
        who = _signed(origin)
        record = self._task(ctx, task)
        self._aggregator(record, who)
        self._end_attempt(ctx, task, record)
        ctx.deposit_event(self, "AggregatorReleased", {"task": task, "aggregator": who})
        self._reopen_or_expire(ctx, task, record)

    # Validator calls -------------------------------------------------------------------------
    @call(9, TASK, ROUND, ("verdict", RoundVerdict, "RoundVerdict<T>"),
          weight=32_000_000_000)  # MaxRoundsAhead rounds of 128 payments and slashes at the bound
    def submit_round_verdict(self, ctx: DispatchContext, origin: bytes | None, task: int, round: int,
                             verdict: dict[str, Any]) -> None:
        """An active Validator (not the aggregator, the requester or a participant) votes once on a round."""
        who = _signed(origin)
        record = self._task(ctx, task)
        committed = self.Rounds.get(ctx.state, task, round)
        if committed is None or committed["status"][0] != "Pending" or self._has_quorum(record, committed):
            raise self.error("RoundNotPending")
        info = self.workers.active_with_role(ctx, who, "Validator")
        if info is None:
            raise self.error("NotValidator")
        if info["stake"] < self.workers.min_stake["Validator"]:
            raise self.error("InsufficientStake")
        if who in (committed["aggregator"], record["requester"]) or any(
                who == client for client, _ in committed["participants"]):
            raise self.error("CannotJudgeOwnWork")
        if self.RoundVerdicts.contains(ctx.state, task, round, who):
            raise self.error("AlreadyVoted")
        self._check_verdict(verdict, committed, self.refused_accounts(ctx, task, round))
        self._check_secagg_verdict(ctx, task, round, verdict)
        self.RoundVerdicts.set(ctx.state, task, round, who, verdict)
        committed["accepts" if verdict["accept"] else "rejects"].append(who)
        self.Rounds.set(ctx.state, task, round, committed)
        self.workers.adjust(ctx, who, verdicts=1)
        ctx.deposit_event(self, "RoundVerdictSubmitted",
                          {"task": task, "round": round, "validator": who, "accept": verdict["accept"]})
        if len(committed["rejects"]) >= record["validators_required"]:
            self._reject_round(ctx, task, record, round, committed)
        elif self._has_quorum(record, committed) and round == record["last_accepted"] + 1:
            self._accept_in_order(ctx, task, record)

    # Checks ----------------------------------------------------------------------------------
    def _task(self, ctx: DispatchContext, task: int) -> dict[str, Any]:
        record = self.Tasks.get(ctx.state, task)
        if record is None:
            raise self.error("TaskNotFound")
        return record

    def _aggregator(self, record: dict[str, Any], who: bytes) -> None:
        status, payload = record["status"]
        if status != "Running":
            raise self.error("NotRunning")
        if payload["aggregator"] != who:
            raise self.error("NotAggregator")

    def _check_len(self, value: bytes, bound: int, error: str) -> None:
        if len(value) > bound:
            raise self.error(error)

    def _check_rule(self, rule: Any, min_clients: int) -> None:
        name, payload = rule
        if name == "FedTrimmedAvg" and payload["beta"] * 2 >= PERBILL:
            raise self.error("InvalidRule")
        if name in ("Krum", "MultiKrum") and min_clients <= 2 * payload["num_malicious"] + 2:
            raise self.error("InvalidRule")
        if name == "MultiKrum" and not 1 <= payload["num_to_select"] <= min_clients:
            raise self.error("InvalidRule")

    def _base_of(self, ctx: DispatchContext, task: int, record: dict[str, Any], round: int) -> bytes:
        """The model round `round` must start from: the accepted model, or the pending predecessor's global."""
        if round - 1 == record["last_accepted"]:
            return bytes(record["accepted_model_hash"])
        return bytes(self.Rounds.get(ctx.state, task, round - 1)["global_model_hash"])

    def _checked_update(self, ctx: DispatchContext, task: int, round: int, base: bytes, index: int,
                        update: dict[str, Any]) -> bytes:
        """A participant's leaf, once it is a joined client within its commitment whose signature verifies."""
        client = update["client"]
        info = self.Clients.get(ctx.state, task, client)
        if info is None:
            raise self.error("UnknownParticipant")
        if update["num_examples"] > info["num_examples"]:
            raise self.error("ExamplesExceedCommitment")
        commitment = {"task_id": task, "round": round, "base_model_hash": base,
                      "update_hash": update["update_hash"], "num_examples": update["num_examples"]}
        scheme, signature = update["signature"]
        if not verify_signature(scheme, signature, update_message(commitment), client):
            log.info("FederatedTasks.commit_round: bad signature of update %d (task %d, round %d)",
                          index, task, round)
            raise self.error("BadUpdateSignature")
        return update_leaf(client, commitment)

    def _check_verdict(self, verdict: dict[str, Any], committed: dict[str, Any], refused: list[bytes]) -> None:
        """Factors aligned with the participants (a rejecting verdict may carry none), each at most 100 %;
        rejected clients are participants, or clients reported refused, in ascending order."""
        count = len(committed["participants"])
        factors, rejected = verdict["contributions"], verdict["rejected_clients"]
        members = {client for client, _ in committed["participants"]} | set(refused)
        if (len(factors) != count and (verdict["accept"] or factors)) or any(f > PERBILL for f in factors) \
                or any(c not in members for c in rejected) or any(a >= b for a, b in pairwise(rejected)):
            raise self.error("VerdictMismatch")

    def _has_quorum(self, record: dict[str, Any], committed: dict[str, Any]) -> bool:
        return len(committed["accepts"]) >= record["validators_required"]


def _signed(origin: bytes | None) -> bytes:
    if origin is None:
        raise BAD_ORIGIN
    return origin


__all__ = ["DEFAULT_FL_VERIFICATION_GRACE_MS", "FederatedSettings", "FederatedTasks"]
