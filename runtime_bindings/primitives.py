"""Substrate's primitives for the layers above the bindings: SS58 addresses, MultiSignature checks, storage
hashers and metadata-driven SCALE decoding.

The orchestrator, the workers and the CLI reach the chain's encodings only through runtime_bindings, never
through scalecodec or devnet (the layers contract in pyproject.toml): this module is that door. The
signature rules are the pallets' (Sr25519 and Ed25519; anything malformed is simply invalid), restated here
because devnet and the bindings are siblings that share only the metadata.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable

import ed25519_zebra
import sr25519
import xxhash
from scalecodec.base import RuntimeConfigurationObject, ScaleBytes
from scalecodec.types import GenericMetadataVersioned
from scalecodec.utils.ss58 import get_ss58_format, ss58_decode, ss58_encode

from runtime_bindings.values import ScaleValue


def _twox_64(data: bytes, seed: int = 0) -> bytes:
    return xxhash.xxh64_intdigest(data, seed=seed).to_bytes(8, "little")


def _blake2_128(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()


STORAGE_HASHERS: dict[str, Callable[[bytes], bytes]] = {
    "Blake2_128": _blake2_128,
    "Blake2_256": lambda data: hashlib.blake2b(data, digest_size=32).digest(),
    "Blake2_128Concat": lambda data: _blake2_128(data) + data,
    "Twox128": lambda data: _twox_64(data, 0) + _twox_64(data, 1),
    "Twox256": lambda data: b"".join(_twox_64(data, seed) for seed in range(4)),
    "Twox64Concat": lambda data: _twox_64(data) + data,
    "Identity": lambda data: data,
}
"""The metadata's hasher names (StorageHasher), as the runtime applies them to a map's key."""


def verify_signature(scheme: str, signature: bytes, message: bytes, public: bytes) -> bool:
    """A MultiSignature check as the pallets make it: ECDSA is not supported and never verifies."""
    try:
        if scheme == "Sr25519":
            return bool(sr25519.verify(signature, message, public))
        if scheme == "Ed25519":
            return bool(ed25519_zebra.ed_verify(signature, message, public))
    except (ValueError, TypeError):
        return False
    return False


def decode_scale(runtime_config: RuntimeConfigurationObject, type_string: str, data: bytes | str,
                 metadata: GenericMetadataVersioned | None) -> ScaleValue:
    """`data` (bytes or 0x-hex) decoded as `type_string` with the chain's metadata; every byte must be used,
    so a value of another type fails instead of decoding into nonsense. Raises what scalecodec raises."""
    obj = runtime_config.create_scale_object(type_string, data=ScaleBytes(data if isinstance(data, str)
                                                                          else bytes(data)), metadata=metadata)
    value: ScaleValue = obj.decode(check_remaining=True)
    return value


__all__ = ["STORAGE_HASHERS", "decode_scale", "get_ss58_format", "ss58_decode", "ss58_encode", "verify_signature"]
