"""How FederatedTasks resolves rounds and attempts: accept and pay, reject and slash, void, expire; the hooks.

A mixin of the pallet class (federated.py), kept apart so that the calls and the resolution each stay
readable; it reads the pallet's storage items and settings through `self`.

Every way out of Pending (accept, reject, void, timeout) unqueues the round from RoundDeadlines and releases
its voters' pending counts; a Rejected or Void round's verdicts are removed too, because its number is
committed again later (the record is overwritten in that same call). Every way out of Running ends the claim
(`_end_attempt`): lease unscheduled, AggregatorTasks entry removed, Workers' claim count released, pending
rounds void. Hooks process at most MaxExpiriesPerBlock entries per queue, each in its own state layer.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from devnet.runtime.context import DispatchContext
from devnet.runtime.framework import StorageItem
from devnet.runtime.pallets.federated_payout import (
    client_factors,
    client_pay,
    round_reward,
    slash_routes,
    split_round,
)
from devnet.runtime.pallets.task_bounties_types import perbill_mul
from devnet.runtime.pallets.timestamp import Timestamp
from devnet.runtime.pallets.workers import Workers

if TYPE_CHECKING:
    from devnet.runtime.framework import ModuleError
    from devnet.runtime.pallets.federated import FederatedSettings

log = logging.getLogger(__name__)
BLOCK_NUMBER_MAX = 2**32 - 1  # BlockNumberFor<T> is u32: no expiry slot exists beyond it


class FederatedRounds:
    """Resolution and hooks of FederatedTasks (see the module docstring)."""

    # provided by the pallet class
    Tasks: StorageItem
    Clients: StorageItem
    Rounds: StorageItem
    RoundVerdicts: StorageItem
    AggregatorTasks: StorageItem
    LeaseExpiries: StorageItem
    DeadlineExpiries: StorageItem
    RoundDeadlines: StorageItem
    settings: FederatedSettings
    balances: Any
    workers: Workers
    error: Callable[[str], ModuleError]
    _spend_private_round: Callable[..., None]

    # Accepting -------------------------------------------------------------------------------
    def _accept_in_order(self, ctx: DispatchContext, task: int, record: dict[str, Any]) -> None:
        """Accept last_accepted + 1 and then each following round that already has its quorum (at most
        MaxRoundsAhead rounds are pending)."""
        number = record["last_accepted"] + 1
        while record["status"][0] == "Running":
            committed = self.Rounds.get(ctx.state, task, number)
            if committed is None or committed["status"][0] != "Pending" \
                    or len(committed["accepts"]) < record["validators_required"]:
                return
            self._accept_round(ctx, task, record, number, committed)
            number += 1

    def _accept_round(self, ctx: DispatchContext, task: int, record: dict[str, Any], number: int,
                      committed: dict[str, Any]) -> None:
        """The only place anything is paid: entered only from Pending, which it leaves first."""
        committed["status"] = ("Accepted", None)
        self.Rounds.set(ctx.state, task, number, committed)
        self._unqueue_round(ctx, task, number)
        s, spec, requester = self.settings, record["spec"], record["requester"]
        deciders = committed["accepts"][:record["validators_required"]]
        verdicts = [self.RoundVerdicts.get(ctx.state, task, number, v) for v in deciders]
        participants = committed["participants"]
        position = {client: i for i, (client, _) in enumerate(participants)}
        named = set.intersection(*[{bytes(c) for c in v["rejected_clients"]} for v in verdicts])
        rejected = {position[c] for c in named if c in position}
        refused = sorted(named - set(position))   # reported refused (SecAgg): slashed, never paid
        factors = client_factors([v["contributions"] for v in verdicts], rejected)
        split = split_round(round_reward(record["bounty"], spec["rounds"], number), s.validator_reward_share,
                            spec["client_share"], len(deciders))
        pays = client_pay(split.clients, [n for _, n in participants], factors)
        paid_clients = 0
        for (client, _), amount, factor in zip(participants, pays, factors):
            paid_clients += self._pay_client(ctx, task, record, number, client, amount, factor)
        for i in sorted(rejected):
            self._slash_client(ctx, task, record, number, participants[i][0], deciders)
        for client in refused:
            self._slash_client(ctx, task, record, number, client, deciders)
        self._spend_private_round(ctx, task, number, participants)   # a private task's clients pay in epsilon
        self.balances.repatriate_reserved(ctx, requester, committed["aggregator"], split.aggregator, "Free")
        for validator in deciders:
            self.balances.repatriate_reserved(ctx, requester, validator, split.per_validator, "Free")
        record["paid"] += split.aggregator + split.per_validator * len(deciders)
        self._release_voters(ctx, committed)
        record["last_accepted"] = number
        record["accepted_model_hash"] = committed["global_model_hash"]
        self.Tasks.set(ctx.state, task, record)
        ctx.deposit_event(self, "RoundAccepted", {
            "task": task, "round": number, "clients_paid": paid_clients, "aggregator_reward": split.aggregator,
            "validator_reward": split.per_validator})
        if number == spec["rounds"]:
            self._complete(ctx, task, record)

    def _pay_client(self, ctx: DispatchContext, task: int, record: dict[str, Any], number: int, client: bytes,
                    amount: int, factor: int) -> int:
        """Pay one participant once per round (last_paid_round is checked and advanced); 1 if paid."""
        info = self.Clients.get(ctx.state, task, client)
        if not amount or info["last_paid_round"] >= number:
            return 0
        self.balances.repatriate_reserved(ctx, record["requester"], client, amount, "Free")
        info["paid"] += amount
        info["rounds_paid"] += 1
        info["last_paid_round"] = number
        self.Clients.set(ctx.state, task, client, info)
        record["paid"] += amount
        ctx.deposit_event(self, "ClientPaid",
                          {"task": task, "round": number, "client": client, "amount": amount, "factor": factor})
        return 1

    def _slash_client(self, ctx: DispatchContext, task: int, record: dict[str, Any], number: int, client: bytes,
                      listers: list[bytes]) -> None:
        info = self.Clients.get(ctx.state, task, client)
        amount = perbill_mul(self.settings.slash_fraction, info["stake"])
        routes, burned = slash_routes(amount, record["requester"], listers)
        for dest, part in routes:
            if part:
                self.balances.repatriate_reserved(ctx, client, dest, part, "Free")
        if burned:
            self.balances.slash_reserved(ctx, client, burned)
        info["stake"] -= amount
        info["rounds_rejected"] += 1
        self.Clients.set(ctx.state, task, client, info)
        ctx.deposit_event(self, "ClientSlashed",
                          {"task": task, "round": number, "client": client, "amount": amount, "burned": burned})

    def _complete(self, ctx: DispatchContext, task: int, record: dict[str, Any]) -> None:
        aggregator = record["status"][1]["aggregator"]
        self._end_attempt(ctx, task, record)
        self.workers.record(ctx, aggregator, "tasks_completed")
        refund = self._refund(ctx, record)
        record["status"] = ("Completed", {"final_model_hash": record["accepted_model_hash"]})
        self.Tasks.set(ctx.state, task, record)
        ctx.deposit_event(self, "TaskCompleted",
                          {"task": task, "final_model_hash": record["accepted_model_hash"], "refund": refund})

    # Rejecting, voiding, ending ----------------------------------------------------------------
    def _reject_round(self, ctx: DispatchContext, task: int, record: dict[str, Any], number: int,
                      committed: dict[str, Any]) -> None:
        """A quorum rejected the aggregator's round: slash it (half requester, half the rejecters), end the
        attempt (every pending round void) and reopen; its clients are neither paid nor slashed."""
        aggregator, rejecters = committed["aggregator"], committed["rejects"]
        info = Workers.Workers.get(ctx.state, aggregator)
        amount = perbill_mul(self.settings.aggregator_slash_fraction, info["stake"]) if info else 0
        to_requester = amount // 2
        each = (amount - to_requester) // len(rejecters)
        routes = [(record["requester"], to_requester)] + [(v, each) for v in rejecters]
        slashed = self.workers.slash_stake(ctx, aggregator, amount, routes)
        self.workers.record(ctx, aggregator, "tasks_rejected")
        self._close_round(ctx, task, number, committed, "Rejected")
        ctx.deposit_event(self, "RoundRejected", {"task": task, "round": number, "aggregator": aggregator})
        ctx.deposit_event(self, "AggregatorSlashed", {
            "task": task, "aggregator": aggregator, "amount": slashed,
            "burned": max(slashed - to_requester - each * len(rejecters), 0)})
        self._end_attempt(ctx, task, record)
        self._reopen_or_expire(ctx, task, record)

    def _close_round(self, ctx: DispatchContext, task: int, number: int, committed: dict[str, Any],
                     status: str) -> None:
        """Out of Pending without a payout: unqueued, voters released, verdicts removed (the number recurs)."""
        committed["status"] = (status, None)
        self.Rounds.set(ctx.state, task, number, committed)
        self._unqueue_round(ctx, task, number)
        self._release_voters(ctx, committed)
        for voter in committed["accepts"] + committed["rejects"]:
            self.RoundVerdicts.remove(ctx.state, task, number, voter)

    def _release_voters(self, ctx: DispatchContext, committed: dict[str, Any]) -> None:
        for voter in committed["accepts"] + committed["rejects"]:
            self.workers.adjust(ctx, voter, verdicts=-1)

    def _void_pending(self, ctx: DispatchContext, task: int, record: dict[str, Any]) -> None:
        """Every round after the last accepted one is void (at most MaxRoundsAhead); the next commit is
        last_accepted + 1."""
        for number in range(record["last_accepted"] + 1, record["last_committed"] + 1):
            committed = self.Rounds.get(ctx.state, task, number)
            if committed is not None and committed["status"][0] == "Pending":
                self._close_round(ctx, task, number, committed, "Void")
        record["last_committed"] = record["last_accepted"]

    def _end_attempt(self, ctx: DispatchContext, task: int, record: dict[str, Any]) -> None:
        """Leave Running: the claim ends, pending rounds are void (the caller sets the next status)."""
        payload = record["status"][1]
        self._unschedule(ctx, self.LeaseExpiries, payload["lease_until"], task)
        self.AggregatorTasks.remove(ctx.state, payload["aggregator"], task)
        self.workers.adjust(ctx, payload["aggregator"], claims=-1)
        self._void_pending(ctx, task, record)

    def _reopen_or_expire(self, ctx: DispatchContext, task: int, record: dict[str, Any]) -> None:
        if ctx.block_number >= record["deadline"]:
            self._expire(ctx, task, record)
            return
        record["status"] = ("Open", None)
        record["attempts"] += 1
        self.Tasks.set(ctx.state, task, record)
        ctx.deposit_event(self, "TaskReopened", {"task": task, "from_round": record["last_accepted"] + 1})

    def _expire(self, ctx: DispatchContext, task: int, record: dict[str, Any]) -> None:
        refund = self._refund(ctx, record)
        record["status"] = ("Expired", None)
        self.Tasks.set(ctx.state, task, record)
        ctx.deposit_event(self, "TaskExpired", {"task": task, "refund": refund})

    def _refund(self, ctx: DispatchContext, record: dict[str, Any]) -> int:
        """What the rounds did not pay, and the deposit, back to the requester (once: the task then ends)."""
        amount = record["bounty"] - record["paid"] + record["deposit"]
        self.balances.unreserve(ctx, record["requester"], amount)
        return amount

    def _open_if_due(self, ctx: DispatchContext, task: int, record: dict[str, Any]) -> None:
        """Joining past the join deadline with enough clients: Open (left Joining when too few joined)."""
        if record["status"][0] != "Joining" or ctx.block_number < record["join_deadline"] \
                or record["clients"] < record["spec"]["min_clients_per_round"]:
            return
        record["status"] = ("Open", None)
        self.Tasks.set(ctx.state, task, record)
        ctx.deposit_event(self, "TaskOpened", {"task": task, "clients": record["clients"]})

    def _renew_lease(self, ctx: DispatchContext, task: int, record: dict[str, Any]) -> int:
        payload = record["status"][1]
        self._unschedule(ctx, self.LeaseExpiries, payload["lease_until"], task)
        lease_until = self._schedule(ctx, self.LeaseExpiries, ctx.block_number + self.settings.round_lease, task)
        record["status"] = ("Running", {**payload, "lease_until": lease_until})
        self.Tasks.set(ctx.state, task, record)
        return lease_until

    # Hooks -----------------------------------------------------------------------------------
    def on_initialize(self, ctx: DispatchContext) -> None:
        """Lapsed leases, join deadlines and deadlines, rounds without a quorum by verify_until: bounded."""
        number, limit = ctx.block_number, self.settings.max_expiries_per_block
        for queue, handler in ((self.LeaseExpiries, self._lease_lapsed),
                               (self.DeadlineExpiries, self._deadline_reached)):
            for task in queue.take(ctx.state, number)[:limit]:
                self._guarded(ctx, handler, task)
        for until, task, round_number in self._take_due(ctx):
            self._guarded(ctx, self._round_timed_out, task, round_number, until)

    def _guarded(self, ctx: DispatchContext, handler: Callable[..., None], task: int, *args: Any) -> None:
        """Run one expiry in its own layer: a failure discards its writes and events, never the block."""
        outer, mark = ctx.state, len(ctx.events)
        ctx.state = outer.child()
        try:
            handler(ctx, task, *args)
            ctx.state.commit()
        except Exception:
            log.exception("expiry of federated task %d failed", task)
            del ctx.events[mark:]
        finally:
            ctx.state = outer

    def _lease_lapsed(self, ctx: DispatchContext, task: int) -> None:
        record = self.Tasks.get(ctx.state, task)
        if record is None or record["status"][0] != "Running" \
                or record["status"][1]["lease_until"] != ctx.block_number:
            return
        aggregator = record["status"][1]["aggregator"]
        info = Workers.Workers.get(ctx.state, aggregator)
        amount = perbill_mul(self.settings.lease_slash_fraction, info["stake"]) if info else 0
        self._end_attempt(ctx, task, record)
        self.workers.record(ctx, aggregator, "tasks_expired")
        ctx.deposit_event(self, "LeaseExpired", {"task": task, "aggregator": aggregator})
        if amount:
            slashed = self.workers.slash_stake(ctx, aggregator, amount, [(record["requester"], amount)])
            ctx.deposit_event(self, "AggregatorSlashed",
                              {"task": task, "aggregator": aggregator, "amount": slashed, "burned": 0})
        self._reopen_or_expire(ctx, task, record)

    def _deadline_reached(self, ctx: DispatchContext, task: int) -> None:
        """The join deadline (open, or expire when too few joined) or the deadline (expire what is live)."""
        record = self.Tasks.get(ctx.state, task)
        if record is None or record["status"][0] not in ("Joining", "Open", "Running"):
            return
        if ctx.block_number >= record["deadline"]:
            if record["status"][0] == "Running":
                self._end_attempt(ctx, task, record)
            self._expire(ctx, task, record)
        elif record["status"][0] == "Joining" and ctx.block_number >= record["join_deadline"]:
            self._open_if_due(ctx, task, record)
            if record["status"][0] == "Joining":
                self._expire(ctx, task, record)

    def _round_timed_out(self, ctx: DispatchContext, task: int, number: int, until: int) -> None:
        """No quorum by verify_until: this round and every later pending one are void, without a slash; a round
        that has its quorum and waits for its predecessor is left to that predecessor."""
        record = self.Tasks.get(ctx.state, task)
        committed = self.Rounds.get(ctx.state, task, number)
        if record is None or committed is None or committed["status"][0] != "Pending" \
                or committed["verify_until"] != until or len(committed["accepts"]) >= record["validators_required"]:
            return
        ctx.deposit_event(self, "RoundTimedOut", {"task": task, "round": number})
        self._void_pending(ctx, task, record)
        self.Tasks.set(ctx.state, task, record)

    def _take_due(self, ctx: DispatchContext) -> list[tuple[int, int, int]]:
        """Pop up to MaxExpiriesPerBlock due RoundDeadlines entries, in due order, whose moment the previous
        block's Timestamp.Now reached (this hook runs before the block's timestamp inherent)."""
        now = Timestamp.Now.get(ctx.state)
        queue = self.RoundDeadlines.get(ctx.state)
        due = 0
        while due < min(len(queue), self.settings.max_expiries_per_block) and queue[due][0] <= now:
            due += 1
        if not due:
            return []
        if due == len(queue):
            self.RoundDeadlines.remove(ctx.state)
        else:
            self.RoundDeadlines.set(ctx.state, queue[due:])
        return [(until, task, number) for until, task, number in queue[:due]]

    def _unqueue_round(self, ctx: DispatchContext, task: int, number: int) -> None:
        queue = self.RoundDeadlines.get(ctx.state)
        kept = [entry for entry in queue if (entry[1], entry[2]) != (task, number)]
        if len(kept) == len(queue):
            return
        if kept:
            self.RoundDeadlines.set(ctx.state, kept)
        else:
            self.RoundDeadlines.remove(ctx.state)

    def _schedule(self, ctx: DispatchContext, queue: StorageItem, block: int, task: int) -> int:
        """Put `task` in the first slot at or after `block` with room; returns that block (as TaskBounties)."""
        limit = self.settings.max_expiries_per_block
        for at in range(block, min(block + self.settings.max_expiry_spill, BLOCK_NUMBER_MAX) + 1):
            entries = queue.get(ctx.state, at)
            if len(entries) < limit:
                queue.set(ctx.state, at, entries + [task])
                return at
        raise self.error("ExpiryQueueFull")

    @staticmethod
    def _unschedule(ctx: DispatchContext, queue: StorageItem, block: int, task: int) -> None:
        entries = queue.get(ctx.state, block)
        if task in entries:
            entries.remove(task)
            if entries:
                queue.set(ctx.state, block, entries)
            else:
                queue.remove(ctx.state, block)
