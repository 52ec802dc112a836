"""Sealed documents: bytes only the named validators can open, for what a party reveals to the validators alone.

An audited SecAgg+ client reveals its clipped model and salt to the validators, not to whoever can read the store
it writes to (docs/secagg.md, "The audit"). It seals the reveal document to the X25519 keys the validators
registered on chain (FederatedTasks.SealKeys) and stores the envelope; the hash on chain names the envelope.

Scheme (`cryptography`'s primitives, nothing hand-rolled): a fresh 32-byte content key encrypts the document with
ChaCha20-Poly1305, the envelope's header as associated data, so the recipients list cannot be changed. For each
recipient, X25519 between one ephemeral key and the recipient's key, HKDF-SHA256 over the shared secret (info: the
domain, the ephemeral and the recipient's public keys) gives a key-encryption key that wraps the content key
(ChaCha20-Poly1305, the recipient's account as associated data). Every key is used once, so the nonces are zero.

A validator's X25519 key is derived from its own account key (`seal_secret`), so it needs no second secret to
keep, and nobody else can compute it; the public half is what it registers.

Envelope: ``MAGIC ++ u32 LE header length ++ header ++ body``; the header is canonical JSON
``{"ephemeral": hex, "recipients": [{"account": hex, "key": hex, "wrapped": hex}], "version": 1}``.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import struct
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MAGIC = b"PTSEAL1\n"
DOMAIN = b"paratrain/sealed/v1"
KEY_DOMAIN = b"paratrain/seal-key/v1"
MAX_RECIPIENTS = 16
MAX_HEADER_BYTES = 16 * 1024
SEAL_OVERHEAD = len(MAGIC) + 4 + MAX_HEADER_BYTES + 16
"""The most an envelope adds to its document: the magic, the header length, the header and the body's tag."""
NONCE = bytes(12)
_HEX32 = re.compile(r"[0-9a-f]{64}")


class SealedError(ValueError):
    """Bytes that are not an envelope this key can open (malformed, tampered, or not addressed to it)."""


class NotAddressed(SealedError):
    """A well-formed envelope that does not name this recipient: nobody's fault but the sealer's choice."""


def seal_secret(keypair: Any) -> X25519PrivateKey:
    """The X25519 key of an account, derived from its private key (only its owner can compute it)."""
    private = getattr(keypair, "private_key", None)
    if not private:
        raise SealedError("a seal key needs the account's private key")
    return X25519PrivateKey.from_private_bytes(hashlib.blake2b(bytes(private), key=KEY_DOMAIN, digest_size=32).digest())


def seal_public(keypair: Any) -> bytes:
    """The 32-byte public X25519 key an account registers (FederatedTasks.register_seal_key)."""
    return seal_secret(keypair).public_key().public_bytes_raw()


def _kek(shared: bytes, ephemeral: bytes, recipient: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                info=DOMAIN + ephemeral + recipient).derive(shared)


def seal(document: bytes, recipients: Mapping[bytes, bytes]) -> bytes:
    """`document` sealed to `recipients` (account public key -> its 32-byte X25519 key), at most MAX_RECIPIENTS."""
    if not 0 < len(recipients) <= MAX_RECIPIENTS:
        raise SealedError(f"an envelope has 1 to {MAX_RECIPIENTS} recipients, not {len(recipients)}")
    content_key = os.urandom(32)
    ephemeral = X25519PrivateKey.generate()
    ephemeral_public = ephemeral.public_key().public_bytes_raw()
    rows = []
    for account, key in sorted(recipients.items()):
        if len(account) != 32 or len(key) != 32:
            raise SealedError("a recipient is a 32-byte account with a 32-byte X25519 key")
        kek = _kek(ephemeral.exchange(X25519PublicKey.from_public_bytes(key)), ephemeral_public, key)
        wrapped = ChaCha20Poly1305(kek).encrypt(NONCE, content_key, account)
        rows.append({"account": account.hex(), "key": key.hex(), "wrapped": wrapped.hex()})
    header = json.dumps({"ephemeral": ephemeral_public.hex(), "recipients": rows, "version": 1},
                        sort_keys=True, separators=(",", ":")).encode()
    body = ChaCha20Poly1305(content_key).encrypt(NONCE, document, header)
    return MAGIC + struct.pack("<I", len(header)) + header + body


def _header(envelope: bytes) -> tuple[dict[str, Any], bytes, bytes]:
    if not envelope.startswith(MAGIC) or len(envelope) < len(MAGIC) + 4:
        raise SealedError("not a sealed envelope")
    (size,) = struct.unpack_from("<I", envelope, len(MAGIC))
    start = len(MAGIC) + 4
    if size > MAX_HEADER_BYTES or start + size > len(envelope):
        raise SealedError("the envelope's header is over its bound or past its end")
    raw = envelope[start:start + size]
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise SealedError("the envelope's header is not JSON") from None
    rows = header.get("recipients") if isinstance(header, dict) else None
    if not isinstance(header, dict) or set(header) != {"ephemeral", "recipients", "version"} \
            or header["version"] != 1 or not isinstance(header["ephemeral"], str) \
            or _HEX32.fullmatch(header["ephemeral"]) is None or not isinstance(rows, list) \
            or not 0 < len(rows) <= MAX_RECIPIENTS:
        raise SealedError("the envelope's header is not a version 1 header")
    for row in rows:
        if not isinstance(row, dict) or set(row) != {"account", "key", "wrapped"} \
                or not all(isinstance(row[k], str) for k in row) \
                or _HEX32.fullmatch(row["account"]) is None or _HEX32.fullmatch(row["key"]) is None \
                or re.fullmatch(r"[0-9a-f]{96}", row["wrapped"]) is None:
            raise SealedError("a recipient of the envelope is malformed")
    return header, raw, envelope[start + size:]


def open_sealed(envelope: bytes, account: bytes, secret: X25519PrivateKey) -> bytes:
    """The document sealed in `envelope` for `account` holding `secret`. NotAddressed when the envelope does not
    name this account and key; SealedError when it is malformed or does not authenticate."""
    header, raw, body = _header(envelope)
    own_key = secret.public_key().public_bytes_raw()
    row = next((r for r in header["recipients"] if r["account"] == account.hex() and r["key"] == own_key.hex()), None)
    if row is None:
        raise NotAddressed("the envelope is not sealed to this account's registered key")
    ephemeral = bytes.fromhex(header["ephemeral"])
    try:
        kek = _kek(secret.exchange(X25519PublicKey.from_public_bytes(ephemeral)), ephemeral, own_key)
        content_key = ChaCha20Poly1305(kek).decrypt(NONCE, bytes.fromhex(row["wrapped"]), account)
        return ChaCha20Poly1305(content_key).decrypt(NONCE, body, raw)
    except (InvalidTag, ValueError):
        raise SealedError("the envelope does not authenticate (tampered, or sealed with another key)") from None


__all__ = ["MAX_RECIPIENTS", "SEAL_OVERHEAD", "NotAddressed", "SealedError", "open_sealed", "seal", "seal_public",
           "seal_secret"]
