"""frame_system: accounts, nonces, block hashes and the events of the block."""
from __future__ import annotations

from typing import Any

from devnet.crypto import blake2_256
from devnet.runtime.context import DispatchContext
from devnet.runtime.framework import BAD_ORIGIN, Constant, ErrorDef, EventDef, Pallet, StorageItem, call
from devnet.runtime.primitives import (
    AccountInfo,
    Digest,
    DispatchError,
    DispatchInfo,
    Phase,
    RuntimeDbWeight,
    RuntimeVersion,
)
from devnet.scale.types import (
    H256,
    U16,
    U32,
    AccountId,
    Bytes,
    Compact,
    Composite,
    Param,
    Sequence,
    Str,
    Tuple,
    fields,
)

EMPTY_ACCOUNT: dict[str, Any] = {
    "nonce": 0, "consumers": 0, "providers": 0, "sufficients": 0,
    "data": {"free": 0, "reserved": 0, "frozen": 0, "flags": 1 << 127},
}

LastRuntimeUpgradeInfo = Composite(("frame_system", "LastRuntimeUpgradeInfo"), fields(
    ("spec_version", Compact(U32), "codec::Compact<u32>"), ("spec_name", Str, "Cow<'static, str>")))


def event_record_type(runtime_event: Any) -> Composite:
    # EventRecord<E, T> carries its type params as in FRAME: Polkadot.js finds the
    # runtime's Event type through the first one and cannot build its registry without it.
    return Composite(("frame_system", "EventRecord"), fields(
        ("phase", Phase, "Phase"), ("event", runtime_event, "E"), ("topics", Sequence(H256), "Vec<T>")),
        (Param("E", runtime_event), Param("T", H256)))


class System(Pallet):
    name = "System"
    index = 0
    module = "frame_system"

    Account = StorageItem(AccountInfo, (("Blake2_128Concat", AccountId),), default=EMPTY_ACCOUNT,
                          docs="The full account information for a particular account ID.")
    ExtrinsicCount = StorageItem(U32, docs="Total extrinsics count for the current block.")
    BlockHash = StorageItem(H256, (("Twox64Concat", U32),), default=bytes(32),
                            docs="Map of block numbers to block hashes.")
    Number = StorageItem(U32, default=0, docs="The current block number being processed.")
    ParentHash = StorageItem(H256, default=bytes(32), docs="Hash of the previous block.")
    Digest = StorageItem(Digest, default={"logs": []}, docs="Digest of the current block.")
    # Events is declared by the runtime (its type needs the RuntimeEvent enum): see runtime.py.
    EventCount = StorageItem(U32, default=0, docs="The number of events in the `Events<T>` list.")
    EventTopics = StorageItem(Sequence(Tuple((U32, U32))), (("Blake2_128Concat", H256),), default=[],
                              docs="Mapping between a topic and the (block, event index) pairs it occurs in.")
    LastRuntimeUpgrade = StorageItem(LastRuntimeUpgradeInfo,
                                     docs="Stores the spec version and spec name of the last runtime upgrade.")

    events = (
        EventDef("ExtrinsicSuccess", fields(("dispatch_info", DispatchInfo, "DispatchInfo")),
                 "An extrinsic completed successfully."),
        EventDef("ExtrinsicFailed", fields(("dispatch_error", DispatchError, "DispatchError"),
                                           ("dispatch_info", DispatchInfo, "DispatchInfo")), "An extrinsic failed."),
        EventDef("CodeUpdated", (), "`:code` was updated."),
        EventDef("NewAccount", fields(("account", AccountId, "T::AccountId")), "A new account was created."),
        EventDef("KilledAccount", fields(("account", AccountId, "T::AccountId")), "An account was reaped."),
        EventDef("Remarked", fields(("sender", AccountId, "T::AccountId"), ("hash", H256, "T::Hash")),
                 "On on-chain remark happened."),
    )
    errors = (
        ErrorDef("InvalidSpecName"), ErrorDef("SpecVersionNeedsToIncrease"),
        ErrorDef("FailedToExtractRuntimeVersion"), ErrorDef("NonDefaultComposite"),
        ErrorDef("NonZeroRefCount"), ErrorDef("CallFiltered"),
    )

    def __init__(self, *, block_hash_count: int, ss58_prefix: int, version: dict[str, Any]) -> None:
        self.constants = (
            Constant("BlockHashCount", U32, block_hash_count, "Maximum number of block number to block hash mappings to keep."),
            Constant("DbWeight", RuntimeDbWeight, {"read": 25_000_000, "write": 100_000_000}, "The weight of runtime database operations."),
            Constant("Version", RuntimeVersion, version, "Get the chain's in-code version."),
            Constant("SS58Prefix", U16, ss58_prefix, "The designated SS58 prefix of this chain."),
        )
        self.block_hash_count = block_hash_count

    @call(0, ("remark", Bytes, "Vec<u8>"), weight=1_000_000)
    def remark(self, ctx: DispatchContext, origin: bytes | None, remark: bytes) -> None:
        """Make some on-chain remark."""
        if origin is None:
            raise BAD_ORIGIN

    @call(7, ("remark", Bytes, "Vec<u8>"), weight=2_000_000)
    def remark_with_event(self, ctx: DispatchContext, origin: bytes | None, remark: bytes) -> None:
        """Make some on-chain remark and emit an event."""
        if origin is None:
            raise BAD_ORIGIN
        ctx.deposit_event(System, "Remarked", {"sender": origin, "hash": blake2_256(remark)})

    def on_initialize(self, ctx: DispatchContext) -> None:
        state, number = ctx.state, ctx.block_number
        System.Number.set(state, number)
        System.ParentHash.set(state, System.BlockHash.get(state, number - 1))
        System.ExtrinsicCount.remove(state)
        stale = number - 1 - self.block_hash_count
        if stale > 0:
            System.BlockHash.remove(state, stale)  # genesis (0) stays: it identifies the chain

    # Account helpers used by Balances and the executive.
    @staticmethod
    def account(state: Any, who: bytes) -> dict[str, Any]:
        return System.Account.get(state, who)

    @staticmethod
    def inc_nonce(state: Any, who: bytes) -> None:
        info = System.Account.get(state, who)
        info["nonce"] += 1
        System.Account.set(state, who, info)
