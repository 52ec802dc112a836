"""Transaction validity errors, as sp_runtime::transaction_validity names them."""
from __future__ import annotations

from dataclasses import dataclass

INVALID_KINDS = (
    "Call", "Payment", "Future", "Stale", "BadProof", "AncientBirthBlock", "ExhaustsResources",
    "Custom", "BadMandatory", "MandatoryValidation", "BadSigner",
)
UNKNOWN_KINDS = ("CannotLookup", "NoUnsignedValidator", "Custom")


class TransactionValidityError(Exception):
    """The transaction cannot enter the pool; the node answers JSON-RPC error 1010."""

    category: str

    def __init__(self, kind: str, custom: int | None = None) -> None:
        super().__init__(f"{self.category}: {kind}")
        self.kind, self.custom = kind, custom


class InvalidTransaction(TransactionValidityError):
    category = "Invalid"

    def __init__(self, kind: str, custom: int | None = None) -> None:
        assert kind in INVALID_KINDS, kind
        super().__init__(kind, custom)


class UnknownTransaction(TransactionValidityError):
    category = "Unknown"

    def __init__(self, kind: str, custom: int | None = None) -> None:
        assert kind in UNKNOWN_KINDS, kind
        super().__init__(kind, custom)


class BadFormat(Exception):
    """The bytes do not decode as an extrinsic (JSON-RPC error 1001)."""


@dataclass(frozen=True)
class ValidTransaction:
    sender: bytes
    nonce: int
    account_nonce: int
    fee: int
    tip: int
    weight: int
    length: int
