"""Fast SCALE codecs compiled from type declarations.

scalecodec encodes the metadata and is the reference the tests compare
against; the runtime's hot path (every extrinsic, every storage read) uses
these closures because a scalecodec object costs ~100 us per struct, which
alone would cap devnet far below its throughput goal.

Value conventions: integers as int, byte sequences and byte arrays as bytes,
named composites as dict, a single unnamed field unwrapped (newtypes such as
AccountId32 are plain bytes), several unnamed fields and tuples as tuple, the
empty tuple as None, Option as None or the value, other variants as
(name, payload) with the payload following the composite rules.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, Callable

from devnet.scale.types import (
    Array,
    Compact,
    Composite,
    Field,
    Primitive,
    Sequence,
    Tuple,
    TypeSpec,
    VariantType,
)

Encoder = Callable[[Any], bytes]
Decoder = Callable[[bytes, int], tuple[Any, int]]


class CodecError(ValueError):
    """Bytes that are not a valid SCALE encoding of the expected type."""


@dataclass(frozen=True)
class Codec:
    encode: Encoder
    decode_from: Decoder

    def decode(self, data: bytes) -> Any:
        """Decode a whole buffer; trailing bytes are an error, as in parity-scale-codec's decode_all."""
        value, end = self.decode_from(data, 0)
        if end != len(data):
            raise CodecError(f"{len(data) - end} trailing bytes")
        return value


_INT_FORMATS = {"u8": "<B", "u16": "<H", "u32": "<I", "u64": "<Q", "i8": "<b", "i16": "<h", "i32": "<i", "i64": "<q"}


def encode_compact(value: int) -> bytes:
    if value < 0:
        raise CodecError("compact integers are unsigned")
    if value < 1 << 6:
        return bytes((value << 2,))
    if value < 1 << 14:
        return ((value << 2) | 1).to_bytes(2, "little")
    if value < 1 << 30:
        return ((value << 2) | 2).to_bytes(4, "little")
    length = (value.bit_length() + 7) // 8
    if length > 67:
        raise CodecError("compact integer too large")
    return bytes(((length - 4) << 2 | 3,)) + value.to_bytes(length, "little")


def decode_compact(data: bytes, offset: int) -> tuple[int, int]:
    try:
        mode = data[offset] & 3
        if mode == 0:
            return data[offset] >> 2, offset + 1
        if mode == 1:
            value = int.from_bytes(data[offset:offset + 2], "little") >> 2
            if offset + 2 > len(data) or value < 1 << 6:
                raise CodecError("non-canonical or short compact")
            return value, offset + 2
        if mode == 2:
            value = int.from_bytes(data[offset:offset + 4], "little") >> 2
            if offset + 4 > len(data) or value < 1 << 14:
                raise CodecError("non-canonical or short compact")
            return value, offset + 4
        length = (data[offset] >> 2) + 4
        end = offset + 1 + length
        if end > len(data):
            raise CodecError("short compact")
        value = int.from_bytes(data[offset + 1:end], "little")
        if value < 1 << 30 or value.bit_length() <= (length - 1) * 8:
            raise CodecError("non-canonical compact")
        return value, end
    except IndexError:
        raise CodecError("unexpected end of input") from None


def _compact_bits(inner: TypeSpec) -> int | None:
    """Width of the unsigned integer a Compact carries (through single-field newtypes); None if not one."""
    while isinstance(inner, Composite) and len(inner.fields) == 1:
        inner = inner.fields[0].ty
    if isinstance(inner, Primitive) and inner.name in ("u8", "u16", "u32", "u64", "u128", "u256"):
        return int(inner.name[1:])
    return None


def _compact(bits: int | None) -> Codec:
    """Compact<uN>: like parity-scale-codec, a value that does not fit uN is an error both ways."""
    if bits is None:
        return Codec(encode_compact, decode_compact)
    limit = 1 << bits

    def encode(value: int) -> bytes:
        if value >= limit:
            raise CodecError(f"{value} out of range for Compact<u{bits}>")
        return encode_compact(value)

    def decode(data: bytes, offset: int) -> tuple[int, int]:
        value, end = decode_compact(data, offset)
        if value >= limit:
            raise CodecError(f"out of range decoding Compact<u{bits}>")
        return value, end

    return Codec(encode, decode)


def _wide_int(size: int, signed: bool) -> Codec:
    def encode(value: int) -> bytes:
        try:
            return int(value).to_bytes(size, "little", signed=signed)
        except OverflowError as exc:
            raise CodecError(str(exc)) from None

    def decode(data: bytes, offset: int) -> tuple[int, int]:
        end = offset + size
        if end > len(data):
            raise CodecError("unexpected end of input")
        return int.from_bytes(data[offset:end], "little", signed=signed), end

    return Codec(encode, decode)


def _fixed_int(fmt: str) -> Codec:
    packer = struct.Struct(fmt)

    def encode(value: int) -> bytes:
        try:
            return packer.pack(value)
        except struct.error as exc:
            raise CodecError(str(exc)) from None

    def decode(data: bytes, offset: int) -> tuple[int, int]:
        try:
            return packer.unpack_from(data, offset)[0], offset + packer.size
        except struct.error:
            raise CodecError("unexpected end of input") from None

    return Codec(encode, decode)


def _bool() -> Codec:
    def decode(data: bytes, offset: int) -> tuple[bool, int]:
        if offset >= len(data) or data[offset] > 1:
            raise CodecError("invalid bool")
        return data[offset] == 1, offset + 1

    return Codec(lambda value: b"\x01" if value else b"\x00", decode)


def _bytes_seq() -> Codec:
    def encode(value: bytes) -> bytes:
        return encode_compact(len(value)) + bytes(value)

    def decode(data: bytes, offset: int) -> tuple[bytes, int]:
        length, offset = decode_compact(data, offset)
        end = offset + length
        if end > len(data):
            raise CodecError("sequence longer than input")
        return bytes(data[offset:end]), end

    return Codec(encode, decode)


def _str() -> Codec:
    raw = _bytes_seq()

    def decode(data: bytes, offset: int) -> tuple[str, int]:
        value, end = raw.decode_from(data, offset)
        try:
            return value.decode(), end
        except UnicodeDecodeError:
            raise CodecError("invalid utf-8") from None

    return Codec(lambda value: raw.encode(value.encode()), decode)


def _byte_array(length: int) -> Codec:
    def encode(value: bytes) -> bytes:
        if len(value) != length:
            raise CodecError(f"expected {length} bytes, got {len(value)}")
        return bytes(value)

    def decode(data: bytes, offset: int) -> tuple[bytes, int]:
        end = offset + length
        if end > len(data):
            raise CodecError("unexpected end of input")
        return bytes(data[offset:end]), end

    return Codec(encode, decode)


def _sequence(inner: Codec) -> Codec:
    def encode(value: list) -> bytes:
        return encode_compact(len(value)) + b"".join(inner.encode(item) for item in value)

    def decode(data: bytes, offset: int) -> tuple[list, int]:
        count, offset = decode_compact(data, offset)
        if count > len(data) - offset:  # every element takes at least one byte... or none: bound by input
            raise CodecError("sequence longer than input")
        items = []
        for _ in range(count):
            item, offset = inner.decode_from(data, offset)
            items.append(item)
        return items, offset

    return Codec(encode, decode)


def _array(inner: Codec, length: int) -> Codec:
    def encode(value: list) -> bytes:
        if len(value) != length:
            raise CodecError(f"expected {length} items")
        return b"".join(inner.encode(item) for item in value)

    def decode(data: bytes, offset: int) -> tuple[list, int]:
        items = []
        for _ in range(length):
            item, offset = inner.decode_from(data, offset)
            items.append(item)
        return items, offset

    return Codec(encode, decode)


def _fields(flds: tuple[Field, ...], compile_spec: Callable[[TypeSpec], Codec]) -> Codec:
    """Composite and variant payloads share these rules (see the module docstring)."""
    if not flds:
        return Codec(lambda value: b"", lambda data, offset: (None, offset))
    codecs = [compile_spec(f.ty) for f in flds]
    if len(flds) == 1 and flds[0].name is None:
        return codecs[0]
    if all(f.name is not None for f in flds):
        names = [f.name for f in flds]
        pairs = list(zip(names, codecs))

        def encode_named(value: dict) -> bytes:
            try:
                return b"".join(codec.encode(value[name]) for name, codec in pairs)
            except KeyError as exc:
                raise CodecError(f"missing field {exc}") from None

        def decode_named(data: bytes, offset: int) -> tuple[dict, int]:
            out = {}
            for name, codec in pairs:
                out[name], offset = codec.decode_from(data, offset)
            return out, offset

        return Codec(encode_named, decode_named)
    return _tuple(codecs)


def _tuple(codecs: list[Codec]) -> Codec:
    if not codecs:
        return Codec(lambda value: b"", lambda data, offset: (None, offset))

    def encode(value: tuple) -> bytes:
        if len(value) != len(codecs):
            raise CodecError(f"expected a {len(codecs)}-tuple")
        return b"".join(codec.encode(item) for codec, item in zip(codecs, value))

    def decode(data: bytes, offset: int) -> tuple[tuple, int]:
        out = []
        for codec in codecs:
            item, offset = codec.decode_from(data, offset)
            out.append(item)
        return tuple(out), offset

    return Codec(encode, decode)


def _option(inner: Codec) -> Codec:
    def encode(value: Any) -> bytes:
        return b"\x00" if value is None else b"\x01" + inner.encode(value)

    def decode(data: bytes, offset: int) -> tuple[Any, int]:
        if offset >= len(data):
            raise CodecError("unexpected end of input")
        tag = data[offset]
        if tag == 0:
            return None, offset + 1
        if tag == 1:
            return inner.decode_from(data, offset + 1)
        raise CodecError("invalid Option tag")

    return Codec(encode, decode)


def _variant(spec: VariantType, compile_spec: Callable[[TypeSpec], Codec]) -> Codec:
    by_name = {v.name: (v.index, _fields(v.fields, compile_spec)) for v in spec.variants}
    by_index = {v.index: (v.name, by_name[v.name][1]) for v in spec.variants}

    def encode(value: Any) -> bytes:
        name, payload = (value, None) if isinstance(value, str) else value
        try:
            index, codec = by_name[name]
        except KeyError:
            raise CodecError(f"unknown variant {name!r} of {'::'.join(spec.path)}") from None
        return bytes((index,)) + codec.encode(payload)

    def decode(data: bytes, offset: int) -> tuple[tuple[str, Any], int]:
        if offset >= len(data):
            raise CodecError("unexpected end of input")
        try:
            name, codec = by_index[data[offset]]
        except KeyError:
            raise CodecError(f"unknown variant index {data[offset]} of {'::'.join(spec.path)}") from None
        payload, offset = codec.decode_from(data, offset + 1)
        return (name, payload), offset

    return Codec(encode, decode)


class CodecFactory:
    """Compiles (and memoises) a codec per declared type."""

    def __init__(self) -> None:
        self._cache: dict[TypeSpec, Codec] = {}

    def __call__(self, spec: TypeSpec) -> Codec:
        codec = self._cache.get(spec)
        if codec is None:
            codec = self._compile(spec)
            self._cache[spec] = codec
        return codec

    def _compile(self, spec: TypeSpec) -> Codec:
        if isinstance(spec, Primitive):
            if spec.name in _INT_FORMATS:
                return _fixed_int(_INT_FORMATS[spec.name])
            if spec.name in ("u128", "i128", "u256", "i256"):
                return _wide_int(int(spec.name[1:]) // 8, spec.name.startswith("i"))
            if spec.name == "bool":
                return _bool()
            if spec.name == "str":
                return _str()
            raise CodecError(f"unsupported primitive {spec.name}")
        if isinstance(spec, Compact):
            return _compact(_compact_bits(spec.inner))
        if isinstance(spec, Sequence):
            if spec.inner == Primitive("u8"):
                return _bytes_seq()
            return _sequence(self(spec.inner))
        if isinstance(spec, Array):
            if spec.inner == Primitive("u8"):
                return _byte_array(spec.length)
            return _array(self(spec.inner), spec.length)
        if isinstance(spec, Tuple):
            return _tuple([self(item) for item in spec.items])
        if isinstance(spec, Composite):
            return _fields(spec.fields, self)
        if isinstance(spec, VariantType):
            if spec.path == ("Option",):
                return _option(self(spec.variants[1].fields[0].ty))
            return _variant(spec, self)
        raise TypeError(f"not a type spec: {spec!r}")


codec_for = CodecFactory()
