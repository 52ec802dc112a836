"""runtime_bindings: the typed Python client of the paratrain runtime (and of any Substrate chain).

    from runtime_bindings import Chain, Keypair

    chain = Chain.connect("ws://127.0.0.1:9944", timeout=10)
    alice, bob = Keypair.create_from_uri("//Alice"), Keypair.create_from_uri("//Bob")
    receipt = chain.balances.transfer_keep_alive(alice, bob.ss58_address, 10**12, wait="inclusion")
    receipt.fee, receipt.find(balances.TransferEvent)
    chain.system.account(alice.ss58_address).data.free
    for block in chain.events.finalized(from_block=1): ...

The typed layer in ``runtime_bindings.generated`` is generated from runtime metadata
(``python -m runtime_bindings.codegen``); see docs/runtime_bindings.md.
"""
from __future__ import annotations

from substrateinterface import Keypair, KeypairType

from runtime_bindings.attestation import (
    ATTESTATION_CONTEXT,
    AttestationCodec,
    sign_attestation,
    signing_payload,
    verify_attestation,
)
from runtime_bindings.base import (
    BlockEvents,
    CallArgs,
    DecodedExtrinsic,
    DynamicCall,
    EventRecord,
    GenericEvent,
    PalletApi,
    Receipt,
    StorageMap,
    StoragePage,
    StorageValue,
    SubmitOptions,
    TypedEvent,
    Wait,
)
from runtime_bindings.client import Chain, extrinsic_hash
from runtime_bindings.errors import (
    ArithmeticError,
    BadFormat,
    BadOrigin,
    BindingsError,
    ConnectionLost,
    DispatchError,
    InvalidTransaction,
    ModuleError,
    RpcError,
    SubmitTimeout,
    TokenError,
    TransactionAlreadyImported,
    TransactionBanned,
    TransactionPriorityTooLow,
    TransactionRejected,
    UnknownTransaction,
)
from runtime_bindings.generated import (
    balances,
    system,
    timestamp,
    transaction_payment,
    types,
)
from runtime_bindings.values import ScaleValue

__all__ = [
    "ATTESTATION_CONTEXT", "ArithmeticError", "AttestationCodec", "BadFormat", "BadOrigin", "BindingsError", "BlockEvents", "CallArgs", "Chain",
    "ConnectionLost", "DecodedExtrinsic", "DispatchError", "DynamicCall", "EventRecord", "GenericEvent", "InvalidTransaction",
    "Keypair", "KeypairType", "ModuleError", "PalletApi", "Receipt", "RpcError", "ScaleValue", "StorageMap", "StoragePage",
    "StorageValue", "SubmitOptions", "SubmitTimeout", "TokenError", "TransactionAlreadyImported", "TransactionBanned", "TransactionPriorityTooLow",
    "TransactionRejected", "TypedEvent", "UnknownTransaction", "Wait", "balances", "extrinsic_hash",
    "sign_attestation", "signing_payload", "system", "timestamp", "transaction_payment", "types",
    "verify_attestation",
]
