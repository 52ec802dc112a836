"""Signed fetches of data-set assets (pallet Datasets): what an account signs to fetch a Paid or ComputeOnly
data set from its owner's store, ``b"paratrain/fetch/v1" ++ dataset hash ++ public key ++ SCALE(timestamp_ms:
u64)`` with its sr25519 key, so that the owner's server knows which account asks before it checks the chain."""
from __future__ import annotations

import struct

from substrateinterface import Keypair

from runtime_bindings.primitives import ss58_decode, verify_signature

FETCH_DOMAIN = b"paratrain/fetch/v1"


def fetch_message(dataset_hash: bytes, public_key: bytes, timestamp_ms: int) -> bytes:
    if len(dataset_hash) != 32 or len(public_key) != 32 or not 0 <= timestamp_ms < 2**64:
        raise ValueError("a 32-byte data set hash, a 32-byte public key and a u64 timestamp")
    return FETCH_DOMAIN + dataset_hash + public_key + struct.pack("<Q", timestamp_ms)


def sign_fetch(signer: Keypair, dataset_hash: bytes, timestamp_ms: int) -> bytes:
    return bytes(signer.sign(fetch_message(dataset_hash, signer.public_key, timestamp_ms)))


def public_key_of(account: str) -> bytes:
    """The 32-byte public key of an SS58 address (ValueError when it is not one)."""
    try:
        key = bytes.fromhex(ss58_decode(account))
    except (ValueError, TypeError, IndexError) as exc:
        raise ValueError(f"not an SS58 address: {account[:64]!r}") from exc
    if len(key) != 32:
        raise ValueError("not the address of a 32-byte public key")
    return key


def verify_fetch(public_key: bytes, dataset_hash: bytes, timestamp_ms: int, signature: bytes) -> bool:
    """Whether `signature` is the account's over the fetch; never raises on bad input."""
    try:
        message = fetch_message(dataset_hash, public_key, timestamp_ms)
    except ValueError:
        return False
    return len(signature) == 64 and verify_signature("Sr25519", signature, message, public_key)


__all__ = ["FETCH_DOMAIN", "fetch_message", "public_key_of", "sign_fetch", "verify_fetch"]
