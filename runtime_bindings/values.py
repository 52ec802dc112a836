"""The Python types of chain values that the generated layer builds on: bytes, accounts and enums.

scalecodec hands back strings for every byte-like value (a hash as 0x-hex, a ``BoundedVec<u8>`` as text
when its bytes are UTF-8 and as 0x-hex otherwise) and ``"Name"`` / ``{"Name": payload}`` for enums, so
every consumer used to carry its own decoder for them. The generated classes turn those forms into the
types here once, at the edge, and turn them back when a value goes into a call.
"""
from __future__ import annotations

from typing import Any, ClassVar, TypeAlias, TypeVar

from scalecodec.utils.ss58 import ss58_decode

METRIC_SCALE = 1_000_000
"""The chain's fixed-point scale for metrics (``Attestation.metrics``, ``Verdict.measured_metric``,
``TaskSpec.eval_target``): i64 micro-units, so 0.97 is 970_000."""

ScaleValue: TypeAlias = "bool | int | str | list[ScaleValue] | tuple[ScaleValue, ...] | dict[str, ScaleValue] | None"
"""A SCALE value as decoded without a generated type (``Chain.query``, ``constant``, ``decode_storage``,
storage read through the dynamic ``PalletApi``, a ``GenericEvent``'s attributes): what scalecodec and
``fastscale`` give: integers, booleans, text (0x-hex for byte arrays), lists, tuples (unnamed fields),
dicts (named fields; an enum variant as ``{"Name": payload}``, a unit variant as its name) and None (an
absent Option). Narrow it with ``isinstance`` or, better, read the item through the generated pallet API,
whose ``from_value`` turns it into the precise class."""

B = TypeVar("B", bound="FixedBytes")
E = TypeVar("E", bound="ChainEnum")


def _hex_bytes(value: str) -> bytes | None:
    """The bytes of a 0x-hex string, or None when `value` is not one."""
    if not value.startswith(("0x", "0X")):
        return None
    try:
        return bytes.fromhex(value[2:])
    except ValueError:
        return None


class FixedBytes(bytes):
    """A fixed-length byte array (``[u8; N]``, ``H256``). ``str()`` gives the 0x-hex form nodes print;
    ``hex()`` stays bytes' own (no prefix) so code that treats it as bytes keeps working."""

    LENGTH: ClassVar[int | None] = None

    def __new__(cls: type[B], value: bytes | bytearray | str = b"") -> B:
        raw = value if isinstance(value, (bytes, bytearray)) else _hex_bytes(value)
        if raw is None:
            raise ValueError(f"{cls.__name__}: expected bytes or 0x-hex, got {value!r}")
        if cls.LENGTH is not None and len(raw) != cls.LENGTH:
            raise ValueError(f"{cls.__name__}: expected {cls.LENGTH} bytes, got {len(raw)}")
        return super().__new__(cls, raw)

    @classmethod
    def from_value(cls: type[B], value: bytes | str | list[int]) -> B:
        """From scalecodec's 0x-hex (or a list of ints, as it gives for some arrays)."""
        return cls(bytes(value) if isinstance(value, list) else value)

    def __str__(self) -> str:
        return "0x" + self.hex()

    def __repr__(self) -> str:
        return f"{type(self).__name__}('0x{self.hex()}')"


class H256(FixedBytes):
    """A 32-byte hash (``primitive_types::H256``)."""

    LENGTH = 32


class Bytes(bytes):
    """A ``Vec<u8>`` / ``BoundedVec<u8>``: ``.text`` for what people and URIs read, ``hex()`` as bytes do."""

    @classmethod
    def from_value(cls, value: bytes | str | list[int]) -> Bytes:
        """Undo scalecodec's decoding: it returns text when the bytes are UTF-8 and 0x-hex otherwise, so a
        str is hex only when it is 0x-hex of bytes that are not UTF-8. (Text that itself reads as 0x-hex of
        non-UTF-8 bytes cannot be told apart; scalecodec loses that.)"""
        if isinstance(value, (bytes, bytearray)):
            return cls(value)
        if isinstance(value, list):
            return cls(bytes(value))
        raw = _hex_bytes(value)
        if raw is not None:
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                return cls(raw)
        return cls(value.encode("utf-8"))

    @property
    def text(self) -> str:
        """The bytes as UTF-8, or "0x" and their hex when they are not UTF-8: the chain stores whatever a
        requester sent, and this form never fails, loses nothing and is what the index stores and shows."""
        try:
            return self.decode("utf-8")
        except UnicodeDecodeError:
            return "0x" + self.hex()

    def __repr__(self) -> str:
        return f"Bytes({bytes(self)!r})"


class AccountId(str):
    """An account, as its SS58 address in the chain's format: equal (and hash-equal) to that string, which
    is what every consumer keys tables and compares on; ``public_key`` gives the 32 bytes."""

    @classmethod
    def from_value(cls, value: str) -> AccountId:
        return cls(value)

    @property
    def ss58(self) -> str:
        return str.__str__(self)

    @property
    def public_key(self) -> bytes:
        return bytes.fromhex(ss58_decode(self.ss58))

    def __repr__(self) -> str:
        return f"AccountId({self.ss58!r})"


class ChainEnum:
    """Base of a generated enum: one subclass per variant (``TaskStatus.Claimed(worker, lease_until)``),
    unit variants as singletons (``TaskStatus.Open``), so consumers ``match`` on them instead of parsing
    ``{"Claimed": {...}}``."""

    VARIANT: ClassVar[str] = ""
    _VARIANTS: ClassVar[dict[str, Any]]  # name -> variant class or unit singleton, set per generated enum

    @property
    def name(self) -> str:
        return self.VARIANT

    @classmethod
    def from_value(cls: type[E], value: ScaleValue | ChainEnum) -> E:
        """From scalecodec's ``"Name"`` or ``{"Name": payload}``."""
        if isinstance(value, ChainEnum):
            return value  # type: ignore[return-value]
        if isinstance(value, str):
            name, payload = value, None
        elif isinstance(value, dict) and len(value) == 1:
            name, payload = next(iter(value.items()))
        else:
            raise ValueError(f"{cls.__name__}: not an enum value: {value!r}")
        variant = cls._VARIANTS.get(name)
        if variant is None:
            raise ValueError(f"{cls.__name__} has no variant {name!r}")
        made = variant if isinstance(variant, ChainEnum) else variant.from_payload(payload)
        if not isinstance(made, cls):
            raise ValueError(f"{cls.__name__}: variant {name!r} is a {type(made).__name__}")
        return made

    def to_value(self) -> object:
        """The form scalecodec encodes: a unit variant's name; variants with data return ``{name: payload}``."""
        return self.VARIANT

    def __str__(self) -> str:
        return self.VARIANT  # messages name the variant ("the task is Claimed on chain")


class UnitVariant(ChainEnum):
    """A variant without data: equal to its name, so ``status == "Open"`` reads as it always did."""

    def __eq__(self, other: object) -> bool:
        if isinstance(other, str):
            return other == self.VARIANT
        return type(other) is type(self)

    def __hash__(self) -> int:
        return hash(self.VARIANT)

    def __repr__(self) -> str:
        return f"{type(self).__mro__[1].__name__}.{self.VARIANT}"


__all__ = ["METRIC_SCALE", "AccountId", "Bytes", "ChainEnum", "FixedBytes", "H256", "ScaleValue", "UnitVariant"]
