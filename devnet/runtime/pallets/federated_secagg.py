"""SecAgg+ tasks of pallet_federated_tasks: their parameters, the per-round audit draw and the reveals.

A mixin of the pallet class (federated.py), as FederatedRounds is; the framework collects its calls and storage
after the class's own (docs/secagg.md, design docs/design/private.md 2.6).

Under SecAgg+ the aggregator, and so the validators, see only the sum of a round's updates. What keeps a client
honest is the audit its joining consented to: once a round is committed, the hash of the block that included the
commit (unknown to the aggregator and the clients when they signed) picks `max(1, ceil(audit_rate * n))` of the
n participants, those with the smallest `blake2_256(AUDIT_DOMAIN ++ seed ++ SCALE(task) ++ SCALE(round) ++
account)`. Each drawn client stores a reveal document (its clipped update and the salt of its signed
commitment) and records its hash with `reveal_update` within the reveal window (AuditRevealShare of the
VerificationGrace, counted from the commit). Validators check every reveal against the signed commitment and
the norm bound (workers/fl/secagg_audit.py) and list a drawn client whose reveal is missing or wrong in
`rejected_clients`, which slashes it when the round is accepted. The pallet holds verdicts back until the audit
is settled (`AuditOpen`) and refuses a verdict that names an undrawn client (`RejectedNotAudited`): validators
cannot slash a client they could not have checked.

Grinding: with devnet's instant seal whoever authors blocks could try block contents until the draw suits
them; a production chain would take the seed from BABE's VRF randomness instead of a block hash.
"""
from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise
from typing import Any

from devnet.crypto import blake2_256
from devnet.runtime.context import DispatchContext
from devnet.runtime.framework import BAD_ORIGIN, ModuleError, StorageItem, call
from devnet.runtime.pallets.federated_types import (
    AUDIT_DOMAIN,
    ROUND,
    TASK,
    AuditRecord,
    FlTaskSpec,
    RefusedClient,
    RevealRecord,
    SecAggSpec,
)
from devnet.runtime.pallets.models import BoundedBytes
from devnet.runtime.pallets.system import System
from devnet.runtime.pallets.task_bounties_types import PERBILL
from devnet.runtime.pallets.timestamp import Timestamp
from devnet.scale.types import H256, U32, U64, U128, AccountId, Option, Sequence

MIN_THRESHOLD = 600_000_000   # Perbill: below 60 % of the shares a lying aggregator with few colluders
#                               reconstructs a live client's mask (docs/design/private.md fact 4)
MAX_MODULUS = 2**32
MIN_SECAGG_CLIENTS = 3        # with two, each learns the other's update from the mean


def audit_score(seed: bytes, task: int, round_number: int, account: bytes) -> bytes:
    """The draw's order: the participants with the smallest scores are audited."""
    return blake2_256(AUDIT_DOMAIN + seed + task.to_bytes(8, "little") + round_number.to_bytes(4, "little")
                      + account)


def audit_count(rate: int, participants: int) -> int:
    """max(1, ceil(rate * n)) with rate a Perbill: at least one client of every round is audited."""
    return min(participants, max(1, -(-rate * participants // PERBILL)))


def draw(seed: bytes, task: int, round_number: int, accounts: list[bytes], rate: int) -> list[bytes]:
    """The audited accounts, in ascending account order."""
    ranked = sorted(accounts, key=lambda a: audit_score(seed, task, round_number, a))
    return sorted(ranked[:audit_count(rate, len(accounts))])


class FederatedSecAgg:
    """The SecAgg+ calls and checks of FederatedTasks (see the module docstring)."""

    SecAggSpecs = StorageItem(SecAggSpec, (("Twox64Concat", U64),),
                              docs="task -> its SecAgg+ parameters and audit rate (absent: a plain task).")
    Audits = StorageItem(AuditRecord, (("Twox64Concat", U64), ("Twox64Concat", U32)),
                         docs="(task, round) -> the round's audit draw (reset when the round is committed again).")
    AuditReveals = StorageItem(RevealRecord, (("Twox64Concat", U64), ("Twox64Concat", U32),
                                              ("Blake2_128Concat", AccountId)),
                               docs="(task, round, client) -> the hash and place of a drawn client's reveal.")
    SealKeys = StorageItem(H256, (("Blake2_128Concat", AccountId),),
                           docs="validator -> the X25519 key audited clients seal their reveal documents to.")
    SecAggRefused = StorageItem(Sequence(RefusedClient), (("Twox64Concat", U64), ("Twox64Concat", U32)),
                                docs="(task, round) -> the clients the aggregator's guard dropped for a malformed "
                                     "signed stage reply, with the hash of that reply (reset when re-committed).")

    # provided by the pallet class
    Clients: StorageItem
    Rounds: StorageItem
    Tasks: StorageItem
    settings: Any
    workers: Any
    error: Callable[[str], ModuleError]
    create_task: Callable[..., None]
    _task: Callable[..., dict[str, Any]]
    _check_len: Callable[..., None]

    @call(11, ("spec", FlTaskSpec, "FlTaskSpec<T>"), ("secagg", SecAggSpec, "SecAggSpec"),
          ("bounty", U128, "BalanceOf<T>"), ("join_deadline", U32, "BlockNumberFor<T>"),
          ("deadline", U32, "BlockNumberFor<T>"), ("validators_required", U32, "u32"),
          ("holdout_commitment", Option(H256), "Option<H256>"), weight=550_000_000)
    def create_secagg_task(self, ctx: DispatchContext, origin: bytes | None, spec: dict[str, Any],
                           secagg: dict[str, Any], bounty: int, join_deadline: int, deadline: int,
                           validators_required: int, holdout_commitment: bytes | None) -> None:
        """create_task for a task whose rounds are aggregated under SecAgg+ with `secagg` and audited."""
        self._check_secagg(spec, secagg)
        task = self.NextTaskId.get(ctx.state)  # type: ignore[attr-defined]
        self.create_task(ctx, origin, spec, bounty, join_deadline, deadline, validators_required,
                         holdout_commitment)
        self.SecAggSpecs.set(ctx.state, task, secagg)
        ctx.deposit_event(self, "SecAggRequired", {"task": task, "audit_rate": secagg["audit_rate"]})

    @call(12, TASK, ROUND, weight=150_000_000)
    def draw_audit(self, ctx: DispatchContext, origin: bytes | None, task: int, round: int) -> None:
        """Anyone draws a committed SecAgg round's audit once the block that included the commit has a hash."""
        if origin is None:
            raise BAD_ORIGIN
        if self.Audits.contains(ctx.state, task, round):
            raise self.error("AuditAlreadyDrawn")
        self._audit(ctx, task, round)

    @call(13, TASK, ROUND, ("reveal_hash", H256, "H256"),
          ("reveal_uri", BoundedBytes, "BoundedVec<u8, T::MaxUriLen>"), weight=150_000_000)
    def reveal_update(self, ctx: DispatchContext, origin: bytes | None, task: int, round: int,
                      reveal_hash: bytes, reveal_uri: bytes) -> None:
        """A drawn client records where its reveal document is, within the reveal window."""
        if origin is None:
            raise BAD_ORIGIN
        self._check_len(reveal_uri, self.settings.max_uri_len, "UriTooLong")
        audit = self._audit(ctx, task, round)
        if origin not in audit["drawn"]:
            raise self.error("NotAudited")
        if self.AuditReveals.contains(ctx.state, task, round, origin):
            raise self.error("AlreadyRevealed")
        if Timestamp.Now.get(ctx.state) >= audit["reveal_until"]:
            raise self.error("RevealClosed")
        self.AuditReveals.set(ctx.state, task, round, origin, {
            "reveal_hash": reveal_hash, "reveal_uri": reveal_uri, "revealed_at": ctx.block_number})
        audit["revealed"] += 1
        self.Audits.set(ctx.state, task, round, audit)
        ctx.deposit_event(self, "UpdateRevealed",
                          {"task": task, "round": round, "client": origin, "reveal_hash": reveal_hash})

    @call(18, ("key", H256, "H256"), weight=100_000_000)
    def register_seal_key(self, ctx: DispatchContext, origin: bytes | None, key: bytes) -> None:
        """An active Validator registers (or replaces) the X25519 key that audited clients seal their reveal
        documents to, so that only validators read a revealed update."""
        if origin is None:
            raise BAD_ORIGIN
        if self.workers.active_with_role(ctx, origin, "Validator") is None:
            raise self.error("NotValidator")
        self.SealKeys.set(ctx.state, origin, key)
        ctx.deposit_event(self, "SealKeyRegistered", {"validator": origin, "key": key})

    @call(19, TASK, ROUND, ("refused", Sequence(RefusedClient), "BoundedVec<RefusedClient<T>, T::MaxClientsPerRound>"),
          weight=150_000_000)
    def report_refused(self, ctx: DispatchContext, origin: bytes | None, task: int, round: int,
                       refused: list[dict[str, Any]]) -> None:
        """The round's aggregator names, once and before any verdict, the joined clients its guard dropped for a
        malformed stage reply they signed, each with the hash of that evidence in the store. The pallet cannot
        read the evidence; a verdict may reject a named client only because validators re-checked it."""
        if origin is None:
            raise BAD_ORIGIN
        if not self.SecAggSpecs.contains(ctx.state, task):
            raise self.error("NotSecAgg")
        committed = self.Rounds.get(ctx.state, task, round)
        if committed is None or committed["status"][0] != "Pending":
            raise self.error("RoundNotPending")
        if origin != committed["aggregator"]:
            raise self.error("NotAggregator")
        if committed["accepts"] or committed["rejects"] or self.SecAggRefused.contains(ctx.state, task, round):
            raise self.error("RefusalsClosed")
        clients = [bytes(r["client"]) for r in refused]
        members = {bytes(c) for c, _ in committed["participants"]}
        if not clients or len(clients) > self.settings.max_clients_per_round \
                or any(a >= b for a, b in pairwise(clients)) \
                or any(c in members or not self.Clients.contains(ctx.state, task, c) for c in clients):
            raise self.error("BadRefusal")
        self.SecAggRefused.set(ctx.state, task, round, refused)
        ctx.deposit_event(self, "RefusalsReported", {"task": task, "round": round, "clients": clients})

    # Used by the pallet's own calls -------------------------------------------------------------
    def _check_secagg(self, spec: dict[str, Any], secagg: dict[str, Any]) -> None:
        q, m = secagg["quantization_range"], secagg["modulus_range"]
        if not (0 < secagg["num_shares"] <= PERBILL and MIN_THRESHOLD <= secagg["reconstruction_threshold"] <= PERBILL
                and 0 < secagg["audit_rate"] <= PERBILL and secagg["clipping_range"] > 0
                and secagg["max_weight"] > 0 and secagg["update_norm_bound"] > 0
                and 1 < q < m <= MAX_MODULUS and not m & (m - 1)):
            raise self.error("InvalidSecAggParams")
        if spec["rule"][0] != "FedAvg":
            raise self.error("SecAggNeedsFedAvg")
        largest = min(spec["max_clients"], self.settings.max_clients_per_round)
        if spec["min_clients_per_round"] < MIN_SECAGG_CLIENTS or largest > m // q - 1:
            raise self.error("SecAggRoundSize")

    def _check_secagg_join(self, ctx: DispatchContext, task: int, num_examples: int) -> None:
        secagg = self.SecAggSpecs.get(ctx.state, task)
        if secagg is not None and num_examples > secagg["max_weight"]:
            raise self.error("ExamplesAboveMaxWeight")

    def _reset_audit(self, ctx: DispatchContext, task: int, round_number: int) -> None:
        """A round committed again (after a Void or Rejected one) gets a fresh draw, no old reveals or refusals."""
        self.SecAggRefused.remove(ctx.state, task, round_number)
        old = self.Audits.get(ctx.state, task, round_number)
        if old is None:
            return
        for client in old["drawn"]:
            self.AuditReveals.remove(ctx.state, task, round_number, client)
        self.Audits.remove(ctx.state, task, round_number)

    def _check_secagg_verdict(self, ctx: DispatchContext, task: int, round_number: int,
                              verdict: dict[str, Any]) -> None:
        """A SecAgg round is judged once its audit is settled, and only drawn or reported clients may be rejected."""
        if not self.SecAggSpecs.contains(ctx.state, task):
            return
        audit = self._audit(ctx, task, round_number)
        if audit["revealed"] < len(audit["drawn"]) and Timestamp.Now.get(ctx.state) < audit["reveal_until"]:
            raise self.error("AuditOpen")
        named = {*audit["drawn"], *self.refused_accounts(ctx, task, round_number)}
        if any(client not in named for client in verdict["rejected_clients"]):
            raise self.error("RejectedNotAudited")

    def refused_accounts(self, ctx: DispatchContext, task: int, round_number: int) -> list[bytes]:
        """The clients the aggregator reported refused in this round (empty: none, or not a SecAgg task)."""
        return [bytes(r["client"]) for r in self.SecAggRefused.get(ctx.state, task, round_number) or []]

    def _audit(self, ctx: DispatchContext, task: int, round_number: int) -> dict[str, Any]:
        """The round's audit, drawn now if it is due and not drawn yet."""
        audit = self.Audits.get(ctx.state, task, round_number)
        if audit is not None:
            return audit
        self._task(ctx, task)
        secagg = self.SecAggSpecs.get(ctx.state, task)
        if secagg is None:
            raise self.error("NotSecAgg")
        committed = self.Rounds.get(ctx.state, task, round_number)
        if committed is None or committed["status"][0] != "Pending":
            raise self.error("RoundNotPending")
        if ctx.block_number <= committed["committed_at"]:
            raise self.error("AuditNotDue")
        seed = bytes(System.BlockHash.get(ctx.state, committed["committed_at"]))
        drawn = draw(seed, task, round_number, [bytes(c) for c, _ in committed["participants"]],
                     secagg["audit_rate"])
        grace = self.settings.verification_grace_ms
        reveal_until = committed["verify_until"] - grace + grace * self.settings.audit_reveal_share // PERBILL
        audit = {"seed": seed, "drawn": drawn, "reveal_until": reveal_until, "revealed": 0}
        self.Audits.set(ctx.state, task, round_number, audit)
        ctx.deposit_event(self, "AuditDrawn", {"task": task, "round": round_number, "drawn": drawn,
                                               "reveal_until": reveal_until})
        return audit


__all__ = ["FederatedSecAgg", "audit_count", "audit_score", "draw"]
