"""pallet_balances: free and reserved balances, transfers, the existential deposit.

Other pallets escrow through `reserve`, `unreserve`, `repatriate_reserved`
and `slash_reserved`, the same primitives FRAME's ReservableCurrency gives.
"""
from __future__ import annotations

from typing import Any

from devnet.runtime.context import DispatchContext
from devnet.runtime.framework import BAD_ORIGIN, Constant, DispatchError, ErrorDef, EventDef, Pallet, StorageItem, call
from devnet.runtime.pallets.system import System
from devnet.runtime.primitives import BalanceStatus, MultiAddress
from devnet.scale.types import U32, U128, AccountId, Bool, Compact, fields

UNIT = 10**12
_ACCOUNT = ("account", AccountId, "T::AccountId")
_AMOUNT = ("amount", U128, "T::Balance")


def lookup(address: Any) -> bytes:
    """MultiAddress to AccountId; only the Id form is mapped by this runtime."""
    kind, value = address
    if kind == "Id":
        return value
    if kind in ("Address32",):
        return value
    raise DispatchError(("CannotLookup", None), "CannotLookup")


class Balances(Pallet):
    name = "Balances"
    index = 4
    module = "pallet_balances"

    TotalIssuance = StorageItem(U128, default=0, docs="The total units issued in the system.")
    InactiveIssuance = StorageItem(U128, default=0, docs="The total units of outstanding deactivated balance.")

    events = (
        EventDef("Endowed", fields(_ACCOUNT, ("free_balance", U128, "T::Balance")), "An account was created with some free balance."),
        EventDef("DustLost", fields(_ACCOUNT, _AMOUNT), "An account was removed whose balance was non-zero but below ExistentialDeposit."),
        EventDef("Transfer", fields(("from", AccountId, "T::AccountId"), ("to", AccountId, "T::AccountId"), _AMOUNT), "Transfer succeeded."),
        EventDef("BalanceSet", fields(("who", AccountId, "T::AccountId"), ("free", U128, "T::Balance")), "A balance was set by root."),
        EventDef("Reserved", fields(("who", AccountId, "T::AccountId"), _AMOUNT), "Some balance was reserved (moved from free to reserved)."),
        EventDef("Unreserved", fields(("who", AccountId, "T::AccountId"), _AMOUNT), "Some balance was unreserved (moved from reserved to free)."),
        EventDef("ReserveRepatriated", fields(("from", AccountId, "T::AccountId"), ("to", AccountId, "T::AccountId"), _AMOUNT,
                                              ("destination_status", BalanceStatus, "Status")),
                 "Some balance was moved from the reserve of the first account to the second account."),
        EventDef("Deposit", fields(("who", AccountId, "T::AccountId"), _AMOUNT), "Some amount was deposited (e.g. for transaction fees)."),
        EventDef("Withdraw", fields(("who", AccountId, "T::AccountId"), _AMOUNT), "Some amount was withdrawn from the account (e.g. for transaction fees)."),
        EventDef("Slashed", fields(("who", AccountId, "T::AccountId"), _AMOUNT), "Some amount was removed from the account (e.g. for misbehavior)."),
    )
    errors = tuple(ErrorDef(name, doc) for name, doc in (
        ("VestingBalance", "Vesting balance too high to send value."),
        ("LiquidityRestrictions", "Account liquidity restrictions prevent withdrawal."),
        ("InsufficientBalance", "Balance too low to send value."),
        ("ExistentialDeposit", "Value too low to create account due to existential deposit."),
        ("Expendability", "Transfer/payment would kill account."),
        ("ExistingVestingSchedule", "A vesting schedule already exists for this account."),
        ("DeadAccount", "Beneficiary account must pre-exist."),
        ("TooManyReserves", "Number of named reserves exceed `MaxReserves`."),
        ("TooManyHolds", "Number of holds exceed `VariantCountOf<T::RuntimeHoldReason>`."),
        ("TooManyFreezes", "Number of freezes exceed `MaxFreezes`."),
        ("IssuanceDeactivated", "The issuance cannot be modified since it is already deactivated."),
        ("DeltaZero", "The delta cannot be zero."),
    ))

    def __init__(self, *, existential_deposit: int) -> None:
        self.constants = (
            Constant("ExistentialDeposit", U128, existential_deposit,
                     "The minimum amount required to keep an account open."),
            Constant("MaxLocks", U32, 50, "The maximum number of locks that should exist on an account."),
            Constant("MaxReserves", U32, 50, "The maximum number of named reserves that can exist on an account."),
            Constant("MaxFreezes", U32, 8, "The maximum number of individual freeze locks that can exist on an account."),
        )
        self.ed = existential_deposit

    # Dispatchables ---------------------------------------------------------------------------
    @call(0, ("dest", MultiAddress, "AccountIdLookupOf<T>"), ("value", Compact(U128), "T::Balance"), weight=200_000_000)
    def transfer_allow_death(self, ctx: DispatchContext, origin: bytes | None, dest: Any, value: int) -> None:
        """Transfer some liquid free balance to another account; the sender may be reaped."""
        self.transfer(ctx, _signed(origin), lookup(dest), value, keep_alive=False)

    @call(3, ("dest", MultiAddress, "AccountIdLookupOf<T>"), ("value", Compact(U128), "T::Balance"), weight=160_000_000)
    def transfer_keep_alive(self, ctx: DispatchContext, origin: bytes | None, dest: Any, value: int) -> None:
        """Same as transfer_allow_death, but refuses to take the sender below the existential deposit."""
        self.transfer(ctx, _signed(origin), lookup(dest), value, keep_alive=True)

    @call(4, ("dest", MultiAddress, "AccountIdLookupOf<T>"), ("keep_alive", Bool, "bool"), weight=220_000_000)
    def transfer_all(self, ctx: DispatchContext, origin: bytes | None, dest: Any, keep_alive: bool) -> None:
        """Transfer the entire transferable balance from the caller account."""
        sender = _signed(origin)
        info = System.Account.get(ctx.state, sender)
        data = info["data"]
        keep = self.ed if keep_alive or data["reserved"] or info["consumers"] else 0
        self.transfer(ctx, sender, lookup(dest), max(data["free"] - max(keep, data["frozen"]), 0),
                      keep_alive=keep_alive)

    # Currency primitives ---------------------------------------------------------------------
    def free_balance(self, state: Any, who: bytes) -> int:
        return System.Account.get(state, who)["data"]["free"]

    def transfer(self, ctx: DispatchContext, source: bytes, dest: bytes, value: int, *, keep_alive: bool) -> None:
        state = ctx.state
        src = System.Account.get(state, source)
        if src["data"]["free"] < value:
            raise Balances.error("InsufficientBalance")
        remaining = src["data"]["free"] - value
        can_die = not keep_alive and src["data"]["reserved"] == 0 and src["consumers"] == 0
        if remaining < self.ed and remaining < src["data"]["free"] and not can_die:
            raise Balances.error("Expendability")
        if source == dest or value == 0:
            ctx.deposit_event(Balances, "Transfer", {"from": source, "to": dest, "amount": value})
            return
        dst = System.Account.get(state, dest)
        if dst["providers"] == 0 and value < self.ed:
            raise Balances.error("ExistentialDeposit")
        src["data"]["free"] = remaining
        self._write(ctx, source, src)
        dst = System.Account.get(state, dest)
        dst["data"]["free"] += value
        self._write(ctx, dest, dst)
        ctx.deposit_event(Balances, "Transfer", {"from": source, "to": dest, "amount": value})

    def deposit_creating(self, ctx: DispatchContext, who: bytes, amount: int) -> None:
        """Mint `amount` into `who` (genesis and rewards routed by the rules); raises issuance."""
        info = System.Account.get(ctx.state, who)
        info["data"]["free"] += amount
        self._write(ctx, who, info)
        Balances.TotalIssuance.set(ctx.state, Balances.TotalIssuance.get(ctx.state) + amount)

    def withdraw_fee(self, ctx: DispatchContext, who: bytes, fee: int) -> bool:
        """Burn a fee from free balance, keeping the account alive; False if it cannot pay."""
        info = System.Account.get(ctx.state, who)
        free = info["data"]["free"]
        if fee > free or (free - fee < self.ed and fee > 0):
            return False
        if fee == 0:
            return True
        info["data"]["free"] = free - fee
        System.Account.set(ctx.state, who, info)
        Balances.TotalIssuance.set(ctx.state, Balances.TotalIssuance.get(ctx.state) - fee)
        ctx.deposit_event(Balances, "Withdraw", {"who": who, "amount": fee})
        return True

    def reserve(self, ctx: DispatchContext, who: bytes, amount: int) -> None:
        info = System.Account.get(ctx.state, who)
        data = info["data"]
        if data["free"] - amount < self.ed and data["free"] >= amount:
            raise Balances.error("Expendability")
        if data["free"] < amount:
            raise Balances.error("InsufficientBalance")
        data["free"] -= amount
        data["reserved"] += amount
        System.Account.set(ctx.state, who, info)
        ctx.deposit_event(Balances, "Reserved", {"who": who, "amount": amount})

    def unreserve(self, ctx: DispatchContext, who: bytes, amount: int) -> int:
        """Move up to `amount` back to free; returns what could not be unreserved."""
        info = System.Account.get(ctx.state, who)
        data = info["data"]
        actual = min(amount, data["reserved"])
        data["reserved"] -= actual
        data["free"] += actual
        System.Account.set(ctx.state, who, info)
        if actual:
            ctx.deposit_event(Balances, "Unreserved", {"who": who, "amount": actual})
        return amount - actual

    def repatriate_reserved(self, ctx: DispatchContext, source: bytes, dest: bytes, amount: int,
                            status: str = "Free") -> int:
        """Move up to `amount` of `source`'s reserve to `dest`; returns the part that was missing."""
        src = System.Account.get(ctx.state, source)
        actual = min(amount, src["data"]["reserved"])
        src["data"]["reserved"] -= actual
        self._write(ctx, source, src)
        dst = System.Account.get(ctx.state, dest)
        dst["data"]["free" if status == "Free" else "reserved"] += actual
        self._write(ctx, dest, dst)
        if actual:
            ctx.deposit_event(Balances, "ReserveRepatriated",
                              {"from": source, "to": dest, "amount": actual, "destination_status": (status, None)})
        return amount - actual

    def slash_reserved(self, ctx: DispatchContext, who: bytes, amount: int) -> int:
        """Burn up to `amount` of `who`'s reserve (issuance falls); returns the part that was missing."""
        info = System.Account.get(ctx.state, who)
        actual = min(amount, info["data"]["reserved"])
        info["data"]["reserved"] -= actual
        System.Account.set(ctx.state, who, info)
        Balances.TotalIssuance.set(ctx.state, Balances.TotalIssuance.get(ctx.state) - actual)
        if actual:
            ctx.deposit_event(Balances, "Slashed", {"who": who, "amount": actual})
        return amount - actual

    def _write(self, ctx: DispatchContext, who: bytes, info: dict[str, Any]) -> None:
        """Store an account, creating or reaping it as its balance crosses the existential deposit."""
        data = info["data"]
        total = data["free"] + data["reserved"]
        if info["providers"] == 0 and total >= self.ed and total > 0:
            info["providers"] = 1
            System.Account.set(ctx.state, who, info)
            ctx.deposit_event(System, "NewAccount", {"account": who})
            ctx.deposit_event(Balances, "Endowed", {"account": who, "free_balance": data["free"]})
            return
        if info["providers"] > 0 and total < self.ed and info["consumers"] == 0:
            if total:
                Balances.TotalIssuance.set(ctx.state, Balances.TotalIssuance.get(ctx.state) - total)
                ctx.deposit_event(Balances, "DustLost", {"account": who, "amount": total})
            System.Account.remove(ctx.state, who)
            ctx.deposit_event(System, "KilledAccount", {"account": who})
            return
        System.Account.set(ctx.state, who, info)


def _signed(origin: bytes | None) -> bytes:
    if origin is None:
        raise BAD_ORIGIN
    return origin
