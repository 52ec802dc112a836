"""The Substrate types every pallet and the executive share, with their Rust paths.

Clients recognise these by path (Polkadot.js and scalecodec both look for
sp_runtime::multiaddress::MultiAddress, sp_runtime::generic::era::Era, ...),
so the paths and field names follow FRAME exactly.
"""
from __future__ import annotations

from devnet.scale.types import (
    H256,
    U8,
    U16,
    U32,
    U64,
    U128,
    AccountId,
    Array,
    Bytes,
    Compact,
    Composite,
    Field,
    Param,
    Sequence,
    Str,
    Tuple,
    Variant,
    VariantType,
    enum,
    fields,
)

Weight = Composite(("sp_weights", "weight_v2", "Weight"),
                   fields(("ref_time", Compact(U64), "u64"), ("proof_size", Compact(U64), "u64")))
DispatchClass = enum(("frame_support", "dispatch", "DispatchClass"), ("Normal", ()), ("Operational", ()),
                     ("Mandatory", ()))
Pays = enum(("frame_support", "dispatch", "Pays"), ("Yes", ()), ("No", ()))
DispatchInfo = Composite(("frame_support", "dispatch", "DispatchInfo"),
                         fields(("weight", Weight, "Weight"), ("class", DispatchClass, "DispatchClass"),
                                ("pays_fee", Pays, "Pays")))

ModuleErrorType = Composite(("sp_runtime", "ModuleError"),
                            fields(("index", U8, "u8"), ("error", Array(U8, 4), "[u8; MAX_MODULE_ERROR_ENCODED_SIZE]")))
TokenError = enum(("sp_runtime", "TokenError"), *[(n, ()) for n in (
    "FundsUnavailable", "OnlyProvider", "BelowMinimum", "CannotCreate", "UnknownAsset", "Frozen",
    "Unsupported", "CannotCreateHold", "NotExpendable", "Blocked")])
ArithmeticError = enum(("sp_arithmetic", "ArithmeticError"), ("Underflow", ()), ("Overflow", ()),
                       ("DivisionByZero", ()))
TransactionalError = enum(("sp_runtime", "TransactionalError"), ("LimitReached", ()), ("NoLayer", ()))
DispatchError = enum(
    ("sp_runtime", "DispatchError"),
    ("Other", ()), ("CannotLookup", ()), ("BadOrigin", ()),
    ("Module", fields((None, ModuleErrorType, "ModuleError"))),
    ("ConsumerRemaining", ()), ("NoProviders", ()), ("TooManyConsumers", ()),
    ("Token", fields((None, TokenError, "TokenError"))),
    ("Arithmetic", fields((None, ArithmeticError, "ArithmeticError"))),
    ("Transactional", fields((None, TransactionalError, "TransactionalError"))),
    ("Exhausted", ()), ("Corruption", ()), ("Unavailable", ()), ("RootNotAllowed", ()),
)

MultiAddress = VariantType(
    ("sp_runtime", "multiaddress", "MultiAddress"),
    (
        Variant("Id", fields((None, AccountId, "AccountId")), 0),
        Variant("Index", fields((None, Compact(U32), "AccountIndex")), 1),
        Variant("Raw", fields((None, Bytes, "Vec<u8>")), 2),
        Variant("Address32", fields((None, Array(U8, 32), "[u8; 32]")), 3),
        Variant("Address20", fields((None, Array(U8, 20), "[u8; 20]")), 4),
    ),
    (Param("AccountId", AccountId), Param("AccountIndex", U32)),
)


def _signature(scheme: str, length: int) -> Composite:
    return Composite(("sp_core", scheme, "Signature"), (Field(None, Array(U8, length), f"[u8; {length}]"),))


MultiSignature = VariantType(
    ("sp_runtime", "MultiSignature"),
    (
        Variant("Ed25519", fields((None, _signature("ed25519", 64), "ed25519::Signature")), 0),
        Variant("Sr25519", fields((None, _signature("sr25519", 64), "sr25519::Signature")), 1),
        Variant("Ecdsa", fields((None, _signature("ecdsa", 65), "ecdsa::Signature")), 2),
    ),
)

# Era's encoding is one byte (0 = immortal) or two: as in FRAME's metadata, a variant per low byte.
Era = VariantType(
    ("sp_runtime", "generic", "era", "Era"),
    (Variant("Immortal", (), 0),) + tuple(
        Variant(f"Mortal{i}", (Field(None, U8),), i) for i in range(1, 256)),
)

Phase = enum(("frame_system", "Phase"), ("ApplyExtrinsic", fields((None, U32, "u32"))), ("Finalization", ()),
             ("Initialization", ()))

AccountData = Composite(("pallet_balances", "types", "AccountData"), fields(
    ("free", U128, "Balance"), ("reserved", U128, "Balance"), ("frozen", U128, "Balance"),
    ("flags", Composite(("pallet_balances", "types", "ExtraFlags"), fields((None, U128, "u128"))), "ExtraFlags")),
    (Param("Balance", U128),))
AccountInfo = Composite(("frame_system", "AccountInfo"), fields(
    ("nonce", U32, "Nonce"), ("consumers", U32, "RefCount"), ("providers", U32, "RefCount"),
    ("sufficients", U32, "RefCount"), ("data", AccountData, "AccountData")),
    (Param("Nonce", U32), Param("AccountData", AccountData)))

DigestItem = VariantType(("sp_runtime", "generic", "digest", "DigestItem"), (
    Variant("Other", fields((None, Bytes, "Vec<u8>")), 0),
    Variant("Consensus", fields((None, Array(U8, 4), "ConsensusEngineId"), (None, Bytes, "Vec<u8>")), 4),
    Variant("Seal", fields((None, Array(U8, 4), "ConsensusEngineId"), (None, Bytes, "Vec<u8>")), 5),
    Variant("PreRuntime", fields((None, Array(U8, 4), "ConsensusEngineId"), (None, Bytes, "Vec<u8>")), 6),
    Variant("RuntimeEnvironmentUpdated", (), 8),
))
Digest = Composite(("sp_runtime", "generic", "digest", "Digest"), fields(("logs", Sequence(DigestItem), "Vec<DigestItem>")))
Header = Composite(("sp_runtime", "generic", "header", "Header"), fields(
    ("parent_hash", H256, "Hash::Output"), ("number", Compact(U32), "Number"), ("state_root", H256, "Hash::Output"),
    ("extrinsics_root", H256, "Hash::Output"), ("digest", Digest, "Digest")),
    (Param("Number", U32), Param("Hash", Composite(("sp_runtime", "traits", "BlakeTwo256")))))

RuntimeVersion = Composite(("sp_version", "RuntimeVersion"), fields(
    ("spec_name", Str, "RuntimeString"), ("impl_name", Str, "RuntimeString"), ("authoring_version", U32, "u32"),
    ("spec_version", U32, "u32"), ("impl_version", U32, "u32"),
    ("apis", Sequence(Tuple((Array(U8, 8), U32))), "ApisVec"), ("transaction_version", U32, "u32"),
    ("state_version", U8, "u8")))

RuntimeDbWeight = Composite(("sp_weights", "RuntimeDbWeight"), fields(("read", U64, "u64"), ("write", U64, "u64")))
FeeMultiplier = Composite(("sp_arithmetic", "fixed_point", "FixedU128"), fields((None, U128, "u128")))
BalanceStatus = enum(("frame_support", "traits", "tokens", "misc", "BalanceStatus"), ("Free", ()), ("Reserved", ()))
SS58Prefix = U16
