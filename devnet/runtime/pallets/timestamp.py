"""pallet_timestamp: the block's time, set by an inherent at the start of every block."""
from __future__ import annotations

from devnet.runtime.context import DispatchContext
from devnet.runtime.framework import BAD_ORIGIN, Constant, DispatchError, Pallet, StorageItem, call
from devnet.scale.types import U64, Bool, Compact


class Timestamp(Pallet):
    name = "Timestamp"
    index = 2
    module = "pallet_timestamp"

    Now = StorageItem(U64, default=0, docs="The current time for the current block.")
    DidUpdate = StorageItem(Bool, default=False, docs="Whether the timestamp has been updated in this block.")

    def __init__(self, *, minimum_period_ms: int) -> None:
        self.constants = (
            Constant("MinimumPeriod", U64, minimum_period_ms,
                     "The minimum period between blocks; clients take twice it as the block time."),
        )

    @call(0, ("now", Compact(U64), "T::Moment"), weight=10_000_000)
    def set(self, ctx: DispatchContext, origin: bytes | None, now: int) -> None:
        """Set the current time; only as the block's inherent (no origin)."""
        if origin is not None:
            raise BAD_ORIGIN
        if Timestamp.DidUpdate.get(ctx.state):
            raise DispatchError(("Other", None), "Timestamp must be updated only once in the block")
        if now < Timestamp.Now.get(ctx.state):
            raise DispatchError(("Other", None), "Timestamp must increment")
        Timestamp.Now.set(ctx.state, now)
        Timestamp.DidUpdate.set(ctx.state, True)

    def on_finalize(self, ctx: DispatchContext) -> None:
        Timestamp.DidUpdate.remove(ctx.state)
