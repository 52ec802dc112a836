"""Compiled SCALE decoders derived from a runtime's metadata V14 portable type registry.

Each supported type id becomes a function (data, offset) -> (value, offset after it) whose value is what
scalecodec (as configured by substrate-interface for that runtime) decodes the same bytes to, so the
generated classes' `from_value` take either. Types scalecodec maps by path to a special decoder class
other than the few reproduced here (accounts, Option) are not compiled (`Unsupported`): callers fall back
to scalecodec for them. Nothing here comes from the devnet: only the chain's metadata and the runtime
configuration substrate-interface built for it.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from scalecodec.base import RuntimeConfigurationObject

from runtime_bindings.metadata import TypeJson
from runtime_bindings.scale import decode_compact_at
from runtime_bindings.values import ScaleValue

Decoder = Callable[[bytes, int], tuple[ScaleValue, int]]

_INTS = {"u8": (1, False), "u16": (2, False), "u32": (4, False), "u64": (8, False), "u128": (16, False),
         "i8": (1, True), "i16": (2, True), "i32": (4, True), "i64": (8, True), "i128": (16, True)}


class Unsupported(Exception):
    """A type this module does not reproduce scalecodec's value of."""


def _text_or_hex(raw: bytes) -> str:
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return "0x" + raw.hex()


class Codecs:
    """Decoders by type id for one runtime: `types` is the metadata's registry (id -> type dict, as in
    MetadataIndex.types), `config` scalecodec's RuntimeConfigurationObject for it (for path mappings and
    the SS58 format)."""

    def __init__(self, types: dict[int, TypeJson], config: RuntimeConfigurationObject) -> None:
        self.types, self.config = types, config
        self._decoders: dict[int, Decoder] = {}
        self._unsupported: set[int] = set()

    def _base(self, path: list[str]) -> Any:
        if not path:
            return None
        get = self.config.get_decoder_class
        try:
            return get("::".join(path)) or get("*::" + "::".join(path[1:])) \
                or get("*::" * (len(path) - 1) + path[-1])
        except Exception:  # noqa: BLE001 - an unparsable name maps to nothing
            return None

    def _is_u8(self, tid: int) -> bool:
        t = self.types[tid]
        return not t.get("path") and t["def"].get("primitive") == "u8"

    def decoder(self, tid: int) -> Decoder:
        """The compiled decoder of type `tid`; raises Unsupported."""
        fn = self._decoders.get(tid)
        if fn is not None:
            return fn
        if tid in self._unsupported:
            raise Unsupported(tid)
        cell: list[Decoder] = []
        self._decoders[tid] = lambda data, off: cell[0](data, off)  # recursive types
        try:
            fn = self._compile(tid)
        except (Unsupported, KeyError, ValueError):
            del self._decoders[tid]
            self._unsupported.add(tid)
            raise Unsupported(tid) from None
        cell.append(fn)
        self._decoders[tid] = fn
        return fn

    def _compile(self, tid: int) -> Decoder:  # noqa: C901 - one branch per type shape
        from scalecodec import types as sc

        t = self.types[tid]
        d, path = t["def"], list(t.get("path") or [])
        base = self._base(path)
        if base is not None and base.__name__.startswith("scale_info::"):
            # the class scalecodec built for a registry type (registered under its path): what it derives
            # from tells whether the path mapped to a special class
            base = base.__bases__[0] if base.__bases__ else None
            if base in (sc.Struct, sc.Tuple, sc.Enum, sc.Vec, sc.FixedLengthArray, sc.Compact):
                base = None
        if base is not None:
            if issubclass(base, sc.GenericAccountId) and ("composite" in d or "array" in d):
                fmt = self.config.ss58_format
                from scalecodec.utils.ss58 import ss58_encode

                def account(data: bytes, off: int) -> tuple[ScaleValue, int]:
                    raw = data[off:off + 32]
                    if len(raw) != 32:
                        raise ValueError("account: not enough data")
                    value = "0x" + raw.hex()
                    if fmt is not None:
                        try:
                            value = ss58_encode(value, ss58_format=fmt)
                        except ValueError:
                            pass
                    return value, off + 32
                return account
            hash_size = {sc.H160: 20, sc.H256: 32, sc.H512: 64}.get(base)
            if hash_size is not None:
                width = hash_size

                def fixed_hash(data: bytes, off: int) -> tuple[ScaleValue, int]:
                    end = off + width
                    if end > len(data):
                        raise ValueError("hash: not enough data")
                    return "0x" + data[off:end].hex(), end
                return fixed_hash
            if issubclass(base, sc.Option) and "variant" in d:
                some = next(v for v in d["variant"]["variants"] if v["name"] == "Some")
                inner = self.decoder(some["fields"][0]["type"])

                def option(data: bytes, off: int) -> tuple[ScaleValue, int]:
                    if data[off] == 0:
                        return None, off + 1
                    return inner(data, off + 1)
                return option
            raise Unsupported(tid)
        if "primitive" in d:
            p = d["primitive"]
            if p in _INTS:
                size, signed = _INTS[p]

                def integer(data: bytes, off: int) -> tuple[ScaleValue, int]:
                    end = off + size
                    if end > len(data):
                        raise ValueError("integer: not enough data")
                    return int.from_bytes(data[off:end], "little", signed=signed), end
                return integer
            if p == "bool":
                def boolean(data: bytes, off: int) -> tuple[ScaleValue, int]:
                    b = data[off]
                    if b > 1:
                        raise ValueError(f"invalid bool {b}")
                    return b == 1, off + 1
                return boolean
            if p == "str":
                def text(data: bytes, off: int) -> tuple[ScaleValue, int]:
                    n, off = decode_compact_at(data, off)
                    return _text_or_hex(data[off:off + n]), off + n
                return text
            raise Unsupported(tid)
        if "compact" in d:
            inner_def = self.types[d["compact"]["type"]]["def"]
            if inner_def.get("primitive") not in _INTS:
                raise Unsupported(tid)
            return lambda data, off: decode_compact_at(data, off)
        if "sequence" in d:
            inner_id = d["sequence"]["type"]
            if self._is_u8(inner_id):
                def byte_vec(data: bytes, off: int) -> tuple[ScaleValue, int]:
                    n, off = decode_compact_at(data, off)
                    end = off + n
                    if end > len(data):
                        raise ValueError("Vec<u8>: not enough data")
                    return _text_or_hex(data[off:end]), end
                return byte_vec
            item = self.decoder(inner_id)

            def seq(data: bytes, off: int) -> tuple[ScaleValue, int]:
                n, off = decode_compact_at(data, off)
                out = []
                for _ in range(n):
                    v, off = item(data, off)
                    out.append(v)
                return out, off
            return seq
        if "array" in d:
            length, inner_id = int(d["array"]["len"]), d["array"]["type"]
            if not length:
                return lambda data, off: ([], off)
            if self._is_u8(inner_id):
                def byte_array(data: bytes, off: int) -> tuple[ScaleValue, int]:
                    end = off + length
                    if end > len(data):
                        raise ValueError("[u8; N]: not enough data")
                    return "0x" + data[off:end].hex(), end
                return byte_array
            item = self.decoder(inner_id)

            def array(data: bytes, off: int) -> tuple[ScaleValue, int]:
                out = []
                for _ in range(length):
                    v, off = item(data, off)
                    out.append(v)
                return out, off
            return array
        if "composite" in d or "tuple" in d:
            if "composite" in d:
                fields = d["composite"].get("fields") or []
                named = all(f.get("name") for f in fields)
                ids = [f["type"] for f in fields]
            else:
                named, ids = False, list(d["tuple"])
            if named and ids:
                return self._struct([str(f["name"]) for f in fields], ids)
            if named:  # a composite without fields
                return lambda data, off: ({}, off)
            return self._tuple(ids)
        if "variant" in d:
            variants: dict[int, tuple[str, Decoder | None]] = {}
            for v in d["variant"]["variants"]:
                fields = v.get("fields") or []
                if not fields:
                    payload: Decoder | None = None
                elif all(f.get("name") for f in fields):
                    payload = self._struct([str(f["name"]) for f in fields], [f["type"] for f in fields])
                else:
                    payload = self._tuple([f["type"] for f in fields])
                variants[int(v["index"])] = (v["name"], payload)

            def enum(data: bytes, off: int) -> tuple[ScaleValue, int]:
                try:
                    name, payload = variants[data[off]]
                except KeyError:
                    raise ValueError(f"unknown variant index {data[off]} of type {tid}") from None
                if payload is None:
                    return name, off + 1
                value, off = payload(data, off + 1)
                return {name: value}, off
            return enum
        raise Unsupported(tid)

    def _struct(self, names: list[str], ids: list[int]) -> Decoder:
        parts = list(zip(names, [self.decoder(i) for i in ids]))

        def struct(data: bytes, off: int) -> tuple[ScaleValue, int]:
            out = {}
            for name, part in parts:
                out[name], off = part(data, off)
            return out, off
        return struct

    def _tuple(self, ids: list[int]) -> Decoder:
        parts = [self.decoder(i) for i in ids]
        if len(parts) == 1:
            return parts[0]

        def tup(data: bytes, off: int) -> tuple[ScaleValue, int]:
            out = []
            for part in parts:
                v, off = part(data, off)
                out.append(v)
            return tuple(out), off
        return tup

    def variant_payloads(self, tid: int) -> dict[int, tuple[str, Decoder | None]]:
        """For an enum type: variant index -> (name, decoder of its payload as scalecodec gives an enum
        variant's value: named fields a dict, one unnamed field its value, several a tuple; None: none).
        A variant whose payload is unsupported is left out."""
        out: dict[int, tuple[str, Decoder | None]] = {}
        for v in self.types[tid]["def"]["variant"]["variants"]:
            fields = v.get("fields") or []
            try:
                if not fields:
                    payload = None
                elif all(f.get("name") for f in fields):
                    payload = self._struct([str(f["name"]) for f in fields], [f["type"] for f in fields])
                else:
                    payload = self._tuple([f["type"] for f in fields])
            except Unsupported:
                continue
            out[int(v["index"])] = (v["name"], payload)
        return out


def decode_all(decoder: Decoder, data: bytes) -> ScaleValue:
    """Decode a whole value; raises ValueError if bytes are left over or missing."""
    value, off = decoder(data, 0)
    if off != len(data):
        raise ValueError(f"{len(data) - off} bytes left over")
    return value


__all__ = ["Codecs", "Decoder", "Unsupported", "decode_all"]
