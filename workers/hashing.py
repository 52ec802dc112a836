"""blake2-256, the one hash of paratrain's off-chain data (as the chain's H256 values)."""
from __future__ import annotations

import hashlib

HASH_HEX_LEN = 64


def blake2_256(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=32).digest()


def blake2_256_hex(data: bytes) -> str:
    """The hex digest (64 lower-case characters, no 0x), as artifacts are named."""
    return hashlib.blake2b(data, digest_size=32).hexdigest()


def normalize_hash(value: str | bytes) -> str:
    """64 lower-case hex characters from a 0x-hex string, bare hex or 32 raw bytes (ValueError otherwise)."""
    if isinstance(value, (bytes, bytearray)):
        if len(value) != 32:
            raise ValueError(f"a hash is 32 bytes, got {len(value)}")
        return bytes(value).hex()
    text = value[2:] if value.startswith(("0x", "0X")) else value
    if len(text) != HASH_HEX_LEN:
        raise ValueError(f"a hash is 64 hex characters, got {value!r}")
    try:
        bytes.fromhex(text)
    except ValueError:
        raise ValueError(f"not a hex hash: {value!r}") from None
    return text.lower()


def to_h256(value: str | bytes) -> str:
    """The 0x-hex form the chain bindings take for an H256."""
    return "0x" + normalize_hash(value)
