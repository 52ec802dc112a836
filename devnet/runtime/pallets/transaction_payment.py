"""pallet_transaction_payment: the fee of an extrinsic, from its weight and length."""
from __future__ import annotations

from dataclasses import dataclass

from devnet.runtime.framework import Constant, EventDef, Pallet, StorageItem
from devnet.runtime.primitives import FeeMultiplier
from devnet.scale.types import U8, U128, AccountId, enum, fields

Releases = enum(("pallet_transaction_payment", "Releases"), ("V1Ancient", ()), ("V2", ()))
FIXED_ONE = 10**18


@dataclass(frozen=True)
class FeeSchedule:
    """Linear weight-to-fee and length-to-fee, as a devnet's runtime configures them."""

    base_weight: int = 125_000_000  # ExtrinsicBaseWeight (ref_time)
    per_weight_divisor: int = 10_000  # fee = ref_time / divisor
    per_byte: int = 100_000  # fee per encoded byte

    def inclusion_fee(self, weight: int, length: int) -> tuple[int, int, int]:
        """(base_fee, len_fee, adjusted_weight_fee) as FeeDetails reports them."""
        return (self.base_weight // self.per_weight_divisor, length * self.per_byte,
                weight // self.per_weight_divisor)

    def fee(self, weight: int, length: int, tip: int = 0) -> int:
        return sum(self.inclusion_fee(weight, length)) + tip


class TransactionPayment(Pallet):
    name = "TransactionPayment"
    index = 5
    module = "pallet_transaction_payment"

    NextFeeMultiplier = StorageItem(FeeMultiplier, default=FIXED_ONE)
    StorageVersion = StorageItem(Releases, default=("V2", None))

    events = (
        EventDef("TransactionFeePaid", fields(("who", AccountId, "T::AccountId"), ("actual_fee", U128, "BalanceOf<T>"),
                                              ("tip", U128, "BalanceOf<T>")),
                 "A transaction fee `actual_fee`, of which `tip` was added to the minimum inclusion fee, has been paid by `who`."),
    )
    constants = (
        Constant("OperationalFeeMultiplier", U8, 5, "A fee multiplier for Operational extrinsics to compute virtual tip to boost their priority"),
    )

    def __init__(self, schedule: FeeSchedule = FeeSchedule()) -> None:
        self.schedule = schedule
