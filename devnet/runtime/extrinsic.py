"""Extrinsic format V4: decoding, the signed payload, and encoding for tests and tools."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from devnet.crypto import blake2_256
from devnet.runtime.runtime import Runtime
from devnet.runtime.validity import BadFormat
from devnet.scale.codec import CodecError, codec_for, decode_compact, encode_compact
from devnet.scale.types import U32, U128, Compact

SIGNED_V4 = 0x84
UNSIGNED_V4 = 0x04
_NONCE = codec_for(Compact(U32))  # CheckNonce: Compact<u32>, a larger value does not decode
_TIP = codec_for(Compact(U128))  # ChargeTransactionPayment: Compact<u128>


@dataclass(frozen=True)
class Extrinsic:
    raw: bytes  # the whole encoding, length prefix included
    call: Any  # RuntimeCall value: (pallet, (call, args))
    call_bytes: bytes
    address: Any = None  # MultiAddress value; None when unsigned
    signature: Any = None  # MultiSignature value
    era: bytes = b"\x00"  # raw era encoding (1 or 2 bytes)
    nonce: int = 0
    tip: int = 0
    extra_bytes: bytes = b""

    @property
    def signed(self) -> bool:
        return self.address is not None

    @property
    def hash(self) -> bytes:
        return blake2_256(self.raw)


def decode_era(data: bytes, offset: int) -> tuple[bytes, int]:
    if offset >= len(data):
        raise CodecError("unexpected end of input")
    if data[offset] == 0:
        return b"\x00", offset + 1
    if offset + 2 > len(data):
        raise CodecError("unexpected end of input")
    raw = data[offset:offset + 2]
    encoded = int.from_bytes(raw, "little")
    if (encoded % (1 << 4)) == 0:
        raise CodecError("invalid era period")
    return raw, offset + 2


def mortal_era(raw: bytes) -> tuple[int, int] | None:
    """(period, phase) of a mortal era's two-byte encoding; None for immortal."""
    if raw == b"\x00":
        return None
    encoded = int.from_bytes(raw, "little")
    period = 2 << (encoded % (1 << 4))
    quantize_factor = max(period >> 12, 1)
    phase = (encoded >> 4) * quantize_factor
    if period < 4 or phase >= period:
        raise CodecError("invalid era")
    return period, phase


def era_birth(period: int, phase: int, current: int) -> int:
    return (max(current, phase) - phase) // period * period + phase


def decode_extrinsic(runtime: Runtime, raw: bytes) -> Extrinsic:
    try:
        length, offset = decode_compact(raw, 0)
        if length != len(raw) - offset:
            raise BadFormat("length prefix does not match")
        version = raw[offset]
        offset += 1
        if version == UNSIGNED_V4:
            call, end = runtime.call_codec.decode_from(raw, offset)
            if end != len(raw):
                raise BadFormat("trailing bytes after call")
            return Extrinsic(raw, call, raw[offset:])
        if version != SIGNED_V4:
            raise BadFormat(f"unsupported extrinsic version {version:#x}")
        address, offset = runtime.address_codec.decode_from(raw, offset)
        signature, offset = runtime.signature_codec.decode_from(raw, offset)
        extra_start = offset
        era, offset = decode_era(raw, offset)
        nonce, offset = _NONCE.decode_from(raw, offset)
        tip, offset = _TIP.decode_from(raw, offset)
        extra_bytes = raw[extra_start:offset]
        call, end = runtime.call_codec.decode_from(raw, offset)
        if end != len(raw):
            raise BadFormat("trailing bytes after call")
        return Extrinsic(raw, call, raw[offset:], address, signature, era, nonce, tip, extra_bytes)
    except (CodecError, IndexError) as exc:
        raise BadFormat(str(exc)) from None


def signed_payload(ext: Extrinsic, additional: bytes) -> bytes:
    """What the signer signed: call ++ extra ++ additional, hashed when longer than 256 bytes."""
    payload = ext.call_bytes + ext.extra_bytes + additional
    return blake2_256(payload) if len(payload) > 256 else payload


def encode_unsigned(call_bytes: bytes) -> bytes:
    body = bytes((UNSIGNED_V4,)) + call_bytes
    return encode_compact(len(body)) + body
