"""Typed exceptions: pool rejections in every dialect, dispatch errors, generated error classes."""
from __future__ import annotations

import pytest

from runtime_bindings import (
    BadFormat,
    BadOrigin,
    DispatchError,
    InvalidTransaction,
    ModuleError,
    TokenError,
    TransactionAlreadyImported,
    TransactionPriorityTooLow,
    UnknownTransaction,
)
from runtime_bindings.errors import dispatch_error_from, rpc_error_from
from runtime_bindings.generated.balances import BalancesError


@pytest.mark.parametrize("error, kind", [
    ({"code": 1010, "message": "Invalid Transaction", "data": {"invalid": {"stale": None}}}, "Stale"),  # devnet
    ({"code": 1010, "message": "Invalid Transaction", "data": "Transaction is outdated"}, "Stale"),  # substrate
    ({"code": 1010, "message": "Invalid Transaction",
      "data": "Inability to pay some fees (e.g. account balance too low)"}, "Payment"),
    ({"code": 1010, "message": "Invalid Transaction", "data": "Transaction will be valid in the future"}, "Future"),
    ({"code": 1010, "message": "{\"invalid\":{\"badProof\":null}}"}, "BadProof"),  # chopsticks
    ({"code": 1010, "message": "Invalid Transaction", "data": "Transaction has a bad signature"}, "BadProof"),
])
def test_invalid_transaction_kinds(error: dict, kind: str) -> None:
    exc = rpc_error_from(error)
    assert isinstance(exc, InvalidTransaction) and exc.kind == kind and exc.code == 1010


def test_custom_and_unknown_and_other_codes() -> None:
    custom = rpc_error_from({"code": 1010, "message": "Invalid Transaction", "data": {"invalid": {"custom": 7}}})
    assert isinstance(custom, InvalidTransaction) and (custom.kind, custom.custom) == ("Custom", 7)
    unknown = rpc_error_from({"code": 1011, "message": "Unknown Transaction Validity",
                              "data": "Could not lookup information required to validate the transaction"})
    assert isinstance(unknown, UnknownTransaction) and unknown.kind == "CannotLookup"
    assert isinstance(rpc_error_from({"code": 1013, "message": "Transaction Already Imported"}),
                      TransactionAlreadyImported)
    assert isinstance(rpc_error_from({"code": 1014, "message": "Priority is too low"}), TransactionPriorityTooLow)
    assert isinstance(rpc_error_from({"code": 1001, "message": "Extrinsic has invalid format"}), BadFormat)


def test_module_error_maps_to_generated_class() -> None:
    names = {(4, 2): ("Balances", "InsufficientBalance", "Balance too low to send value.")}
    exc = dispatch_error_from({"Module": {"index": 4, "error": "0x02000000"}}, names)
    assert type(exc) is BalancesError.InsufficientBalance
    assert (exc.pallet, exc.name, exc.pallet_index, exc.error_index) == ("Balances", "InsufficientBalance", 4, 2)
    assert "Balances.InsufficientBalance" in str(exc)


def test_unknown_pallet_error_gets_a_stable_class() -> None:
    names = {(60, 1): ("Proxy", "NotFound", "Proxy registration not found.")}
    first = dispatch_error_from({"Module": {"index": 60, "error": "0x01000000"}}, names)
    second = dispatch_error_from({"Module": {"index": 60, "error": "0x01000000"}}, names)
    assert type(first) is type(second) and isinstance(first, ModuleError)
    assert (first.pallet, first.name) == ("Proxy", "NotFound")
    assert type(first).__qualname__ == "ProxyError.NotFound"


def test_other_dispatch_errors() -> None:
    origin = dispatch_error_from("BadOrigin", {})
    assert isinstance(origin, BadOrigin) and origin.error_name == "BadOrigin"
    token = dispatch_error_from({"Token": "FundsUnavailable"}, {})
    assert isinstance(token, TokenError) and isinstance(token, DispatchError)
    assert (token.kind, token.detail, token.error_name) == ("Token", "FundsUnavailable", "Token.FundsUnavailable")
