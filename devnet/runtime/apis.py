"""Runtime APIs served through state_call, each named as `Api_method` and SCALE in, SCALE out."""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from devnet.runtime.framework import ModuleError
from devnet.runtime.pallets.collab_types import Input
from devnet.runtime.pallets.system import System
from devnet.runtime.primitives import DispatchClass, DispatchError, RuntimeVersion, Weight
from devnet.runtime.validity import INVALID_KINDS, UNKNOWN_KINDS, BadFormat, TransactionValidityError
from devnet.scale.codec import CodecError, codec_for, decode_compact
from devnet.scale.types import (
    U32,
    U64,
    U128,
    AccountId,
    Bool,
    Bytes,
    Composite,
    Option,
    Result,
    Sequence,
    Tuple,
    fields,
)

if TYPE_CHECKING:
    from devnet.chain import Chain

SUPPORTED_METADATA_VERSIONS = [14]

RuntimeDispatchInfo = Composite(("pallet_transaction_payment", "types", "RuntimeDispatchInfo"), fields(
    ("weight", Weight), ("class", DispatchClass), ("partial_fee", U128)))
InclusionFee = Composite(("pallet_transaction_payment", "types", "InclusionFee"), fields(
    ("base_fee", U128), ("len_fee", U128), ("adjusted_weight_fee", U128)))
FeeDetails = Composite(("pallet_transaction_payment", "types", "FeeDetails"), fields(
    ("inclusion_fee", Option(InclusionFee)), ("tip", U128)))
ValidTransactionType = Composite(("sp_runtime", "transaction_validity", "ValidTransaction"), fields(
    ("priority", U64), ("requires", Sequence(Bytes)), ("provides", Sequence(Bytes)), ("longevity", U64),
    ("propagate", Bool)))


class RuntimeApiError(Exception):
    """state_call failed: unknown method or undecodable input."""


def _extrinsic_and_len(data: bytes) -> tuple[bytes, int]:
    """Input of TransactionPaymentApi: the extrinsic (with its length prefix) then a u32 length."""
    length, offset = decode_compact(data, 0)
    end = offset + length
    if end + 4 != len(data):
        raise RuntimeApiError("expected an extrinsic followed by a u32 length")
    return data[:end], codec_for(U32).decode(data[end:])


def call_runtime_api(chain: "Chain", metadata: bytes, method: str, data: bytes, at: bytes) -> bytes:
    """Run `method` against the state at block `at`."""
    handlers: dict[str, Callable[[], bytes]] = {
        "Core_version": lambda: codec_for(RuntimeVersion).encode(chain.runtime.version),
        "Metadata_metadata": lambda: codec_for(Bytes).encode(metadata),
        "Metadata_metadata_versions": lambda: codec_for(Sequence(U32)).encode(SUPPORTED_METADATA_VERSIONS),
        "Metadata_metadata_at_version": lambda: codec_for(Option(Bytes)).encode(
            metadata if codec_for(U32).decode(data) in SUPPORTED_METADATA_VERSIONS else None),
        "AccountNonceApi_account_nonce": lambda: codec_for(U32).encode(
            System.Account.get(chain.state_at(at), codec_for(AccountId).decode(data))["nonce"]),
        "TransactionPaymentApi_query_info": lambda: codec_for(RuntimeDispatchInfo).encode(
            chain.executive.query_info(*_extrinsic_and_len(data))),
        "TransactionPaymentApi_query_fee_details": lambda: codec_for(FeeDetails).encode(
            chain.executive.fee_details(*_extrinsic_and_len(data))),
        "TaggedTransactionQueue_validate_transaction": lambda: _validate(chain, data, at),
        "CollaborativeModelsApi_predict": lambda: _predict(chain, data, at),
    }
    handler = handlers.get(method)
    if handler is None:
        raise RuntimeApiError(f"Exported method {method} is not found")
    try:
        return handler()
    except (CodecError, BadFormat) as exc:
        raise RuntimeApiError(f"Could not decode input of {method}: {exc}") from None


PREDICT_INPUT = Tuple((U64, Input))
PREDICT_OUTPUT = Result(U32, DispatchError)


def _predict(chain: "Chain", data: bytes, at: bytes) -> bytes:
    """CollaborativeModelsApi v1: (model: u64, input: Input) -> Result<u32, DispatchError>, without a transaction;
    a missing model or a bad input is the pallet's named error."""
    model, values = codec_for(PREDICT_INPUT).decode(data)
    try:
        return codec_for(PREDICT_OUTPUT).encode(("Ok", chain.runtime.collab.predict_at(chain.state_at(at), model,
                                                                                          values)))
    except ModuleError as exc:
        return codec_for(PREDICT_OUTPUT).encode(("Err", exc.value))


def _validate(chain: "Chain", data: bytes, at: bytes) -> bytes:
    """TaggedTransactionQueue v3: (source: u8, tx, block_hash) -> Result<ValidTransaction, Error>."""
    if len(data) < 1 + 32:
        raise RuntimeApiError("expected (TransactionSource, Extrinsic, BlockHash)")
    raw = data[1:-32]
    block = chain.by_hash.get(data[-32:]) or chain.best
    try:
        _, valid = chain.executive.validate(chain.state_at(block.hash), raw, block.number, block.hash)
    except TransactionValidityError as exc:
        kinds = INVALID_KINDS if exc.category == "Invalid" else UNKNOWN_KINDS
        outer = 0 if exc.category == "Invalid" else 1
        return bytes((1, outer, kinds.index(exc.kind))) + (bytes((exc.custom or 0,)) if exc.kind == "Custom" else b"")
    u32 = codec_for(U32)
    tag = lambda nonce: valid.sender + u32.encode(nonce)  # noqa: E731 - FRAME's (who, nonce) tag
    value = {"priority": valid.tip, "requires": [tag(valid.nonce - 1)] if valid.nonce > valid.account_nonce else [],
             "provides": [tag(valid.nonce)], "longevity": 2**64 - 1, "propagate": True}
    return b"\x00" + codec_for(ValidTransactionType).encode(value)
