"""Hashers and signature checks, as Substrate defines them."""
from __future__ import annotations

import hashlib
from typing import Callable

import ed25519_zebra
import sr25519
import xxhash


def blake2_256(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=32).digest()


def blake2_128(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()


def twox_128(data: bytes) -> bytes:
    return twox_64_seeded(data, 0) + twox_64_seeded(data, 1)


def twox_64_seeded(data: bytes, seed: int) -> bytes:
    return xxhash.xxh64_intdigest(data, seed=seed).to_bytes(8, "little")


def twox_256(data: bytes) -> bytes:
    return b"".join(twox_64_seeded(data, seed) for seed in range(4))


HASHERS: dict[str, Callable[[bytes], bytes]] = {
    "Blake2_128": blake2_128,
    "Blake2_256": blake2_256,
    "Blake2_128Concat": lambda data: blake2_128(data) + data,
    "Twox128": twox_128,
    "Twox256": twox_256,
    "Twox64Concat": lambda data: twox_64_seeded(data, 0) + data,
    "Identity": lambda data: data,
}

# Length of the hash part a hasher puts before the raw key, for hashers that keep the key.
CONCAT_PREFIX_LEN = {"Blake2_128Concat": 16, "Twox64Concat": 8, "Identity": 0}


def verify_signature(scheme: str, signature: bytes, message: bytes, public: bytes) -> bool:
    """MultiSignature check. ECDSA accounts are not supported by this runtime and never verify."""
    try:
        if scheme == "Sr25519":
            return bool(sr25519.verify(signature, message, public))
        if scheme == "Ed25519":
            return bool(ed25519_zebra.ed_verify(signature, message, public))
    except (ValueError, TypeError):
        return False
    return False
