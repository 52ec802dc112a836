"""pallet_workers: trainer and validator registration, stakes, capabilities and reputation.

A worker registers once per account with a role (Trainer or Validator), a
stake (reserved in Balances; at least MinTrainerStake or MinValidatorStake)
and its hardware capabilities. The stake stays reserved while the account is
registered: `bond_extra` adds to it, `unregister` starts an unbonding period
of UnbondingPeriod blocks (refused while the worker holds a claim or has cast
a verdict on a result not yet resolved), and `withdraw` unreserves it once
the period is over and removes the registration.

TaskBounties counts a worker's claims and pending verdicts here
(`active_claims`, `pending_verdicts`) and slashes its stake through
`slash_stake`, which routes the slashed amount to beneficiaries with
`repatriate_reserved` and burns the rest with `slash_reserved`.

The reputation record (`Reputation`) outlives a registration: tasks
completed, rejected (a quorum of validators rejected the result), expired
(the claim's lease lapsed) and the total slashed.

Status: `Active` or `Unbonding { unlock_at }` (a block number).
"""
from __future__ import annotations

from typing import Any

from devnet.runtime.context import DispatchContext
from devnet.runtime.framework import BAD_ORIGIN, Constant, ErrorDef, EventDef, Pallet, StorageItem, call
from devnet.scale.types import U8, U32, U64, U128, AccountId, BoundedVec, Composite, enum, fields

UNIT = 10**12
PALLET = "pallet_workers"

Role = enum((PALLET, "types", "Role"), ("Trainer", ()), ("Validator", ()))
Capabilities = Composite((PALLET, "types", "Capabilities"), fields(
    ("cpus", U32, "u32"), ("gpus", U32, "u32"),
    ("gpu_model", BoundedVec(U8), "BoundedVec<u8, T::MaxGpuModelLen>"), ("memory_mb", U64, "u64")))
WorkerStatus = enum((PALLET, "types", "WorkerStatus"), ("Active", ()),
                    ("Unbonding", fields(("unlock_at", U32, "BlockNumberFor<T>"))))
WorkerInfo = Composite((PALLET, "types", "WorkerInfo"), fields(
    ("role", Role, "Role"), ("stake", U128, "BalanceOf<T>"), ("capabilities", Capabilities, "Capabilities<T>"),
    ("status", WorkerStatus, "WorkerStatus<BlockNumberFor<T>>"), ("registered_at", U32, "BlockNumberFor<T>"),
    ("active_claims", U32, "u32"), ("pending_verdicts", U32, "u32")))
Reputation = Composite((PALLET, "types", "Reputation"), fields(
    ("tasks_completed", U32, "u32"), ("tasks_rejected", U32, "u32"), ("tasks_expired", U32, "u32"),
    ("total_slashed", U128, "BalanceOf<T>")))
EMPTY_REPUTATION = {"tasks_completed": 0, "tasks_rejected": 0, "tasks_expired": 0, "total_slashed": 0}

_WHO = ("who", AccountId, "T::AccountId")
_AMOUNT = ("amount", U128, "BalanceOf<T>")


class Workers(Pallet):
    name = "Workers"
    index = 20
    module = PALLET

    Workers = StorageItem(WorkerInfo, (("Blake2_128Concat", AccountId),),
                          docs="The registration of each worker: role, stake, capabilities, status, load.")
    Reputation = StorageItem(Reputation, (("Blake2_128Concat", AccountId),), default=EMPTY_REPUTATION,
                             docs="Track record per account: tasks completed, rejected, expired, total slashed.")
    WorkerCount = StorageItem(U32, default=0, docs="The number of registered workers (unbonding ones included).")

    events = (
        EventDef("WorkerRegistered", fields(_WHO, ("role", Role, "Role"), ("stake", U128, "BalanceOf<T>")),
                 "A worker registered with a role and a reserved stake."),
        EventDef("StakeBonded", fields(_WHO, _AMOUNT, ("total", U128, "BalanceOf<T>")),
                 "A worker added to its stake."),
        EventDef("CapabilitiesUpdated", fields(_WHO, ("capabilities", Capabilities, "Capabilities<T>")),
                 "A worker changed its declared capabilities."),
        EventDef("UnbondingStarted", fields(_WHO, ("unlock_at", U32, "BlockNumberFor<T>")),
                 "A worker unregistered; its stake unlocks at `unlock_at`."),
        EventDef("Withdrawn", fields(_WHO, _AMOUNT), "A worker withdrew its stake and left."),
        EventDef("StakeSlashed", fields(_WHO, _AMOUNT, ("remaining", U128, "BalanceOf<T>")),
                 "Part of a worker's stake was slashed (see TaskBounties.WorkerSlashed for the reason)."),
    )
    errors = tuple(ErrorDef(n, d) for n, d in (
        ("AlreadyRegistered", "The account is already registered as a worker."),
        ("NotRegistered", "The account is not a registered worker."),
        ("InsufficientStake", "The stake is below the role's minimum."),
        ("GpuModelTooLong", "`gpu_model` is longer than MaxGpuModelLen."),
        ("ZeroAmount", "The amount must be positive."),
        ("NotActive", "The worker is unbonding."),
        ("AlreadyUnbonding", "The worker is already unbonding."),
        ("HasActiveClaims", "The worker holds a claim or a result awaiting verdicts."),
        ("HasPendingVerdicts", "The worker has cast a verdict on a result not yet resolved."),
        ("NotUnbonding", "The worker has not unregistered."),
        ("StillUnbonding", "The unbonding period has not ended."),
    ))

    def __init__(self, balances: Any, *, min_trainer_stake: int = 100 * UNIT, min_validator_stake: int = 50 * UNIT,
                 unbonding_period: int = 5, max_gpu_model_len: int = 64) -> None:
        self.constants = (
            Constant("MinTrainerStake", U128, min_trainer_stake, "The least stake a Trainer registers with."),
            Constant("MinValidatorStake", U128, min_validator_stake, "The least stake a Validator registers with."),
            Constant("UnbondingPeriod", U32, unbonding_period, "Blocks between `unregister` and `withdraw`."),
            Constant("MaxGpuModelLen", U32, max_gpu_model_len, "The longest `gpu_model` string, in bytes."),
        )
        self.balances = balances
        self.min_stake = {"Trainer": min_trainer_stake, "Validator": min_validator_stake}
        self.unbonding_period = unbonding_period
        self.max_gpu_model_len = max_gpu_model_len

    # Dispatchables ---------------------------------------------------------------------------
    @call(0, ("role", Role, "Role"), ("stake", U128, "BalanceOf<T>"),
          ("capabilities", Capabilities, "Capabilities<T>"), weight=250_000_000)
    def register(self, ctx: DispatchContext, origin: bytes | None, role: Any, stake: int,
                 capabilities: dict[str, Any]) -> None:
        """Register as a Trainer or Validator, reserving `stake` (at least the role's minimum)."""
        who = _signed(origin)
        role_name = role[0] if isinstance(role, tuple) else role
        if Workers.Workers.contains(ctx.state, who):
            raise Workers.error("AlreadyRegistered")
        if stake < self.min_stake[role_name]:
            raise Workers.error("InsufficientStake")
        self._check_capabilities(capabilities)
        self.balances.reserve(ctx, who, stake)
        Workers.Workers.set(ctx.state, who, {
            "role": (role_name, None), "stake": stake, "capabilities": capabilities, "status": ("Active", None),
            "registered_at": ctx.block_number, "active_claims": 0, "pending_verdicts": 0})
        Workers.WorkerCount.set(ctx.state, Workers.WorkerCount.get(ctx.state) + 1)
        ctx.deposit_event(Workers, "WorkerRegistered", {"who": who, "role": (role_name, None), "stake": stake})

    @call(1, ("amount", U128, "BalanceOf<T>"), weight=150_000_000)
    def bond_extra(self, ctx: DispatchContext, origin: bytes | None, amount: int) -> None:
        """Reserve `amount` more as stake."""
        who = _signed(origin)
        info = self._active(ctx, who)
        if amount == 0:
            raise Workers.error("ZeroAmount")
        self.balances.reserve(ctx, who, amount)
        info["stake"] += amount
        Workers.Workers.set(ctx.state, who, info)
        ctx.deposit_event(Workers, "StakeBonded", {"who": who, "amount": amount, "total": info["stake"]})

    @call(2, ("capabilities", Capabilities, "Capabilities<T>"), weight=100_000_000)
    def update_capabilities(self, ctx: DispatchContext, origin: bytes | None, capabilities: dict[str, Any]) -> None:
        """Replace the declared hardware capabilities."""
        who = _signed(origin)
        info = self.get(ctx, who)
        self._check_capabilities(capabilities)
        info["capabilities"] = capabilities
        Workers.Workers.set(ctx.state, who, info)
        ctx.deposit_event(Workers, "CapabilitiesUpdated", {"who": who, "capabilities": capabilities})

    @call(3, weight=120_000_000)
    def unregister(self, ctx: DispatchContext, origin: bytes | None) -> None:
        """Start unbonding; refused while the worker holds a claim or a pending verdict."""
        who = _signed(origin)
        info = self.get(ctx, who)
        if info["status"][0] != "Active":
            raise Workers.error("AlreadyUnbonding")
        if info["active_claims"]:
            raise Workers.error("HasActiveClaims")
        if info["pending_verdicts"]:
            raise Workers.error("HasPendingVerdicts")
        unlock_at = ctx.block_number + self.unbonding_period
        info["status"] = ("Unbonding", {"unlock_at": unlock_at})
        Workers.Workers.set(ctx.state, who, info)
        ctx.deposit_event(Workers, "UnbondingStarted", {"who": who, "unlock_at": unlock_at})

    @call(4, weight=150_000_000)
    def withdraw(self, ctx: DispatchContext, origin: bytes | None) -> None:
        """After the unbonding period: unreserve the stake and remove the registration."""
        who = _signed(origin)
        info = self.get(ctx, who)
        status, payload = info["status"]
        if status != "Unbonding":
            raise Workers.error("NotUnbonding")
        if ctx.block_number < payload["unlock_at"]:
            raise Workers.error("StillUnbonding")
        self.balances.unreserve(ctx, who, info["stake"])
        Workers.Workers.remove(ctx.state, who)
        Workers.WorkerCount.set(ctx.state, max(Workers.WorkerCount.get(ctx.state) - 1, 0))
        ctx.deposit_event(Workers, "Withdrawn", {"who": who, "amount": info["stake"]})

    # Helpers for TaskBounties ----------------------------------------------------------------
    def get(self, ctx: DispatchContext, who: bytes) -> dict[str, Any]:
        info = Workers.Workers.get(ctx.state, who)
        if info is None:
            raise Workers.error("NotRegistered")
        return info

    def _active(self, ctx: DispatchContext, who: bytes) -> dict[str, Any]:
        info = self.get(ctx, who)
        if info["status"][0] != "Active":
            raise Workers.error("NotActive")
        return info

    def active_with_role(self, ctx: DispatchContext, who: bytes, role: str) -> dict[str, Any] | None:
        """The record of an Active worker of `role`, or None."""
        info = Workers.Workers.get(ctx.state, who)
        if info is None or info["status"][0] != "Active" or info["role"][0] != role:
            return None
        return info

    def adjust(self, ctx: DispatchContext, who: bytes, *, claims: int = 0, verdicts: int = 0) -> None:
        info = Workers.Workers.get(ctx.state, who)
        if info is None:  # cannot happen while counters are non-zero: unregister is refused then
            return
        info["active_claims"] = max(info["active_claims"] + claims, 0)
        info["pending_verdicts"] = max(info["pending_verdicts"] + verdicts, 0)
        Workers.Workers.set(ctx.state, who, info)

    def record(self, ctx: DispatchContext, who: bytes, field: str, amount: int = 1) -> None:
        rep = Workers.Reputation.get(ctx.state, who)
        rep[field] += amount
        Workers.Reputation.set(ctx.state, who, rep)

    def slash_stake(self, ctx: DispatchContext, who: bytes, amount: int,
                    beneficiaries: list[tuple[bytes, int]]) -> int:
        """Take `amount` of `who`'s stake: each beneficiary's part is repatriated, the rest burned.

        Returns the amount actually slashed (never more than the stake).
        """
        info = Workers.Workers.get(ctx.state, who)
        if info is None or amount <= 0:
            return 0
        amount = min(amount, info["stake"])
        routed = 0
        for dest, part in beneficiaries:
            part = min(part, amount - routed)
            if part > 0:
                self.balances.repatriate_reserved(ctx, who, dest, part, "Free")
                routed += part
        if amount > routed:
            self.balances.slash_reserved(ctx, who, amount - routed)
        info["stake"] -= amount
        Workers.Workers.set(ctx.state, who, info)
        self.record(ctx, who, "total_slashed", amount)
        ctx.deposit_event(Workers, "StakeSlashed", {"who": who, "amount": amount, "remaining": info["stake"]})
        return amount

    def _check_capabilities(self, capabilities: dict[str, Any]) -> None:
        if len(capabilities["gpu_model"]) > self.max_gpu_model_len:
            raise Workers.error("GpuModelTooLong")


def _signed(origin: bytes | None) -> bytes:
    if origin is None:
        raise BAD_ORIGIN
    return origin
