"""Type declarations for SCALE values, in the shape of scale-info.

Pallets declare their calls, storage, events, errors and constants with these
descriptors once; the portable registry of the metadata and the codecs the
runtime uses are both derived from them, so the two can never disagree.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

TypeSpec = Union["Primitive", "Compact", "Sequence", "Array", "Tuple", "Composite", "VariantType"]


@dataclass(frozen=True)
class Primitive:
    name: str  # one of scale-info's primitives: bool, str, u8 ... u128, i8 ... i128


@dataclass(frozen=True)
class Compact:
    inner: TypeSpec


@dataclass(frozen=True)
class Sequence:
    inner: TypeSpec


@dataclass(frozen=True)
class Array:
    inner: TypeSpec
    length: int


@dataclass(frozen=True)
class Tuple:
    items: tuple[TypeSpec, ...] = ()


@dataclass(frozen=True)
class Field:
    name: str | None
    ty: TypeSpec
    type_name: str | None = None
    docs: tuple[str, ...] = ()


@dataclass(frozen=True)
class Param:
    name: str
    ty: TypeSpec | None


@dataclass(frozen=True)
class Composite:
    path: tuple[str, ...]
    fields: tuple[Field, ...] = ()
    params: tuple[Param, ...] = ()
    docs: tuple[str, ...] = ()


@dataclass(frozen=True)
class Variant:
    name: str
    fields: tuple[Field, ...] = ()
    index: int = 0
    docs: tuple[str, ...] = ()


@dataclass(frozen=True)
class VariantType:
    path: tuple[str, ...]
    variants: tuple[Variant, ...] = field(default=())
    params: tuple[Param, ...] = ()
    docs: tuple[str, ...] = ()


def fields(*items: tuple) -> tuple[Field, ...]:
    """(name, type[, type_name]) triples to Field objects."""
    return tuple(Field(item[0], item[1], item[2] if len(item) > 2 else None) for item in items)


def enum(path: tuple[str, ...], *variants: tuple, params: tuple[Param, ...] = ()) -> VariantType:
    """A variant type from (name, fields) pairs indexed in declaration order."""
    return VariantType(
        path,
        tuple(Variant(name, tuple(flds), index) for index, (name, flds) in enumerate(variants)),
        params,
    )


# Primitives and the handful of well-known Substrate types every pallet uses.
Bool = Primitive("bool")
Str = Primitive("str")
U8 = Primitive("u8")
U16 = Primitive("u16")
U32 = Primitive("u32")
U64 = Primitive("u64")
U128 = Primitive("u128")
Bytes = Sequence(U8)
Unit = Tuple(())

H256 = Composite(("primitive_types", "H256"), (Field(None, Array(U8, 32), "[u8; 32]"),))
AccountId = Composite(("sp_core", "crypto", "AccountId32"), (Field(None, Array(U8, 32), "[u8; 32]"),))
Balance = U128


def Option(inner: TypeSpec) -> VariantType:  # noqa: N802 - mirrors the Rust name
    return VariantType(
        ("Option",),
        (Variant("None", (), 0), Variant("Some", (Field(None, inner),), 1)),
        (Param("T", inner),),
    )


def Result(ok: TypeSpec, err: TypeSpec) -> VariantType:  # noqa: N802
    return VariantType(
        ("Result",),
        (Variant("Ok", (Field(None, ok),), 0), Variant("Err", (Field(None, err),), 1)),
        (Param("T", ok), Param("E", err)),
    )


def BoundedVec(inner: TypeSpec) -> Composite:  # noqa: N802
    """A Vec with a runtime-enforced bound: same encoding, its own path as in FRAME."""
    return Composite(
        ("bounded_collections", "bounded_vec", "BoundedVec"),
        (Field(None, Sequence(inner), "Vec<T>"),),
        (Param("T", inner), Param("S", None)),
    )
