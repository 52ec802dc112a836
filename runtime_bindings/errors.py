"""Typed exceptions of the bindings.

Three families, so callers can tell *where* a transaction failed:

* :class:`TransactionRejected` - the node's transaction pool refused it
  (JSON-RPC 1010 ``InvalidTransaction``, 1011 ``UnknownTransaction``, 1013, 1014 ...);
  nothing was included and nothing was charged.
* :class:`DispatchError` - the transaction was included (and paid for) but its call
  failed. :class:`ModuleError` is the pallet-error case; every pallet error has a
  subclass (``BalancesError.InsufficientBalance``), generated from metadata for
  known pallets and created on the fly for any other pallet of the connected chain.
* :class:`SubmitTimeout` / :class:`ConnectionLost` - the client gave up waiting.
"""
from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any, ClassVar

from runtime_bindings.base import to_scale_value
from runtime_bindings.values import ChainEnum

if TYPE_CHECKING:
    from runtime_bindings.base import Receipt


class BindingsError(Exception):
    """Base of every exception raised by runtime_bindings."""


class ConnectionLost(BindingsError):
    """The node could not be reached (or reached again) within the allowed time."""


class RpcError(BindingsError):
    """A JSON-RPC error object returned by the node."""

    def __init__(self, code: int | None, message: str, data: object = None) -> None:
        super().__init__(f"RPC error {code}: {message}" + (f" ({data})" if data is not None else ""))
        self.code, self.message, self.data = code, message, data


class SubmitTimeout(BindingsError):
    """The transaction was submitted but the wait for inclusion/finality ran out.

    It may still be included later: ``extrinsic_hash`` identifies it.
    """

    def __init__(self, extrinsic_hash: str, wait: str, timeout: float, block_hash: str | None = None) -> None:
        super().__init__(f"extrinsic {extrinsic_hash} not {'finalized' if wait == 'finality' else 'included'} "
                         f"within {timeout:g} s")
        self.extrinsic_hash, self.wait, self.timeout, self.block_hash = extrinsic_hash, wait, timeout, block_hash


# Transaction pool rejections ------------------------------------------------------------------

class TransactionRejected(RpcError):
    """The transaction pool refused the transaction; it was not included and nothing was charged."""


class InvalidTransaction(TransactionRejected):
    """JSON-RPC 1010: the runtime declared the transaction invalid.

    ``kind`` is the ``sp_runtime::InvalidTransaction`` variant: ``Call``, ``Payment``,
    ``Future``, ``Stale``, ``BadProof``, ``AncientBirthBlock``, ``ExhaustsResources``,
    ``Custom``, ``BadMandatory``, ``MandatoryValidation``, ``BadSigner`` (or ``Unknown``
    when the node's message could not be parsed); ``custom`` holds the Custom code.
    """

    def __init__(self, code: int | None, message: str, data: object, kind: str, custom: int | None = None) -> None:
        super().__init__(code, message, data)
        self.kind, self.custom = kind, custom
        self.args = (f"invalid transaction: {kind}" + (f" ({custom})" if custom is not None else ""),)


class UnknownTransaction(TransactionRejected):
    """JSON-RPC 1011 (or 1010 with an ``unknown`` payload): validity could not be determined."""

    def __init__(self, code: int | None, message: str, data: object, kind: str, custom: int | None = None) -> None:
        super().__init__(code, message, data)
        self.kind, self.custom = kind, custom


class TransactionAlreadyImported(TransactionRejected):
    """JSON-RPC 1013: the same transaction is already in the pool."""


class TransactionPriorityTooLow(TransactionRejected):
    """JSON-RPC 1014: another transaction with the same sender and nonce is in the pool."""


class TransactionBanned(TransactionRejected):
    """JSON-RPC 1012: the transaction is temporarily banned."""


class BadFormat(TransactionRejected):
    """JSON-RPC 1001/1002: the node could not decode or verify the extrinsic."""


_TEXT_KINDS = {  # sp_runtime's Display texts, as a real node sends them in `data`
    "transaction is outdated": "Stale",
    "transaction will be valid in the future": "Future",
    "inability to pay some fees (e.g. account balance too low)": "Payment",
    "transaction has a bad signature": "BadProof",
    "transaction has an ancient birth block": "AncientBirthBlock",
    "transaction would exhaust the block limits": "ExhaustsResources",
    "transaction call is not expected": "Call",
    "a call was labelled as mandatory, but resulted in an error.": "BadMandatory",
    "transaction dispatch is mandatory; transactions must not be validated.": "MandatoryValidation",
    "invalid signing address": "BadSigner",
    "could not lookup information required to validate the transaction": "CannotLookup",
    "could not find an unsigned validator for the unsigned transaction": "NoUnsignedValidator",
}


def _pascal(name: str) -> str:
    return name[:1].upper() + name[1:]


def _parse_validity(payload: Any) -> tuple[str, str, int | None] | None:
    """{"invalid": {"stale": null}} (devnet, chopsticks) -> ("invalid", "Stale", None)."""
    if isinstance(payload, str):
        try:
            payload = json.loads(payload)
        except ValueError:
            text = payload.strip().lower()
            if text in _TEXT_KINDS:
                kind = _TEXT_KINDS[text]
                category = "unknown" if kind in ("CannotLookup", "NoUnsignedValidator") else "invalid"
                return category, kind, None
            match = re.match(r"custom error: (\d+)", text)
            if match:
                return "invalid", "Custom", int(match.group(1))
            return None
    if isinstance(payload, dict) and len(payload) == 1:
        category, inner = next(iter(payload.items()))
        if isinstance(inner, dict) and len(inner) == 1:
            kind, value = next(iter(inner.items()))
            return category.lower(), _pascal(kind), value if isinstance(value, int) else None
        if isinstance(inner, str):
            return category.lower(), _pascal(inner), None
    return None


_CODE_CLASSES: dict[int, type[TransactionRejected]] = {
    1001: BadFormat, 1002: BadFormat, 1012: TransactionBanned,
    1013: TransactionAlreadyImported, 1014: TransactionPriorityTooLow,
}


def rpc_error_from(error: object) -> RpcError:
    """Turn a JSON-RPC error object (as py-substrate-interface raises it) into a typed exception."""
    if not isinstance(error, dict):
        return RpcError(None, str(error))
    code, message, data = error.get("code"), str(error.get("message", "")), error.get("data")
    if code in (1010, 1011):
        parsed = _parse_validity(data) if data is not None else None
        if parsed is None:
            parsed = _parse_validity(message)
        category, kind, custom = parsed or ("invalid" if code == 1010 else "unknown", "Unknown", None)
        cls = UnknownTransaction if category == "unknown" or (code == 1011 and parsed is None) else InvalidTransaction
        return cls(code, message, data, kind, custom)
    if code in _CODE_CLASSES:
        return _CODE_CLASSES[code](code, message, data)
    return RpcError(code, message, data)


# Dispatch errors ------------------------------------------------------------------------------

class DispatchError(BindingsError):
    """The extrinsic was included but its call failed (``System.ExtrinsicFailed``).

    ``kind`` is the ``sp_runtime::DispatchError`` variant (``Module``, ``BadOrigin``,
    ``Token``, ``Arithmetic`` ...), ``detail`` its payload, ``receipt`` the inclusion receipt
    (block, events, fee paid).
    """

    def __init__(self, kind: str, detail: object = None, receipt: Receipt | None = None) -> None:
        super().__init__(kind if detail is None else f"{kind}: {detail}")
        self.kind, self.detail, self.receipt = kind, detail, receipt

    @property
    def error_name(self) -> str:
        """``Pallet.Error`` for module errors, ``Kind.Reason`` (``Token.FundsUnavailable``) or ``Kind`` otherwise."""
        if isinstance(self.detail, str):
            return f"{self.kind}.{self.detail}"
        return self.kind


class TokenError(DispatchError):
    """``DispatchError::Token``: e.g. ``FundsUnavailable``, ``BelowMinimum``, ``NotExpendable``
    (what fungible-based pallet_balances returns where older versions used module errors)."""


class ArithmeticError(DispatchError):
    """``DispatchError::Arithmetic``: ``Underflow``, ``Overflow`` or ``DivisionByZero``."""


class BadOrigin(DispatchError):
    """``DispatchError::BadOrigin``: the call needs another origin (e.g. root)."""


_DISPATCH_CLASSES: dict[str, type[DispatchError]] = {
    "Token": TokenError, "Arithmetic": ArithmeticError, "BadOrigin": BadOrigin,
}


class ModuleError(DispatchError):
    """A pallet returned one of its declared errors.

    Subclasses are per pallet (``BalancesError``) and per error
    (``BalancesError.InsufficientBalance``); catch whichever level you need.
    """

    pallet: ClassVar[str] = ""
    name: ClassVar[str] = ""
    error_index: ClassVar[int | None] = None

    _registry: ClassVar[dict[tuple[str, str], type[ModuleError]]] = {}
    _pallet_bases: ClassVar[dict[str, type[ModuleError]]] = {}

    def __init__(self, pallet: str | None = None, name: str | None = None, docs: str = "",
                 receipt: Receipt | None = None, pallet_index: int | None = None, error_index: int | None = None) -> None:
        pallet = pallet or type(self).pallet
        name = name or type(self).name
        super().__init__("Module", f"{pallet}.{name}", receipt)
        self.pallet, self.name = pallet, name  # type: ignore[misc]
        self.docs = docs or (type(self).__doc__ or "").strip()
        self.pallet_index, self.error_index = pallet_index, error_index  # type: ignore[misc]
        self.args = (f"{pallet}.{name}" + (f": {self.docs}" if self.docs else ""),)

    @property
    def error_name(self) -> str:
        return f"{self.pallet}.{self.name}"

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        own = cls.__dict__
        if own.get("name"):  # an error class: attach it to its pallet's base
            ModuleError._registry[(cls.pallet, cls.name)] = cls
            base = ModuleError._pallet_bases.get(cls.pallet)
            if base is not None and base is not cls:
                setattr(base, cls.name, cls)
        elif own.get("pallet"):  # a pallet base class
            ModuleError._pallet_bases[cls.pallet] = cls

    @staticmethod
    def class_for(pallet: str, name: str) -> type[ModuleError]:
        """The exception class of `pallet`.`name`: the generated one, or one made (and kept) now."""
        cls = ModuleError._registry.get((pallet, name))
        if cls is not None:
            return cls
        base = ModuleError._pallet_bases.get(pallet)
        if base is None:
            base = type(f"{pallet}Error", (ModuleError,), {"pallet": pallet, "__module__": __name__,
                                                            "__doc__": f"Errors of the {pallet} pallet."})
        return type(name, (base,), {"pallet": pallet, "name": name, "__module__": __name__,
                                    "__qualname__": f"{base.__name__}.{name}"})


def dispatch_error_from(value: object, error_names: dict[tuple[int, int], tuple[str, str, str]],
                        receipt: Receipt | None = None) -> DispatchError:
    """Build the typed exception for a decoded ``sp_runtime::DispatchError`` value.

    `error_names` maps (pallet index, error index) to (pallet, error, docs), from metadata. The value is the
    generated `DispatchError` of an ExtrinsicFailed event, or scalecodec's form of it (a dynamic pallet's).
    """
    if isinstance(value, ChainEnum):
        value = to_scale_value(value)
    if isinstance(value, str):
        return _DISPATCH_CLASSES.get(value, DispatchError)(value, None, receipt)
    if isinstance(value, dict) and len(value) == 1:
        kind, detail = next(iter(value.items()))
        if kind == "Module":
            pallet_index = detail["index"]
            error = detail["error"]
            if isinstance(error, str):
                error_index = bytes.fromhex(error.removeprefix("0x"))[0]
            elif isinstance(error, (bytes, bytearray)):
                error_index = error[0]
            else:
                error_index = int(error)
            pallet, name, docs = error_names.get((pallet_index, error_index),
                                                 (f"Pallet{pallet_index}", f"Error{error_index}", ""))
            return ModuleError.class_for(pallet, name)(pallet, name, docs, receipt, pallet_index, error_index)
        return _DISPATCH_CLASSES.get(kind, DispatchError)(kind, detail, receipt)
    return DispatchError(str(value), None, receipt)
