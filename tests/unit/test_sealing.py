"""Sealed documents (workers/sealing.py): only the named validators open them, and nothing about an envelope can be
changed unnoticed. An audited SecAgg client's reveal is sealed this way (workers/fl/secagg_reveal.py)."""
from __future__ import annotations

import json
import struct

import pytest
from substrateinterface import Keypair, KeypairType

from workers.sealing import (
    MAGIC,
    MAX_RECIPIENTS,
    NotAddressed,
    SealedError,
    open_sealed,
    seal,
    seal_public,
    seal_secret,
)

CHARLIE = Keypair.create_from_uri("//Charlie")
DAVE = Keypair.create_from_seed("0x" + "42" * 32, crypto_type=KeypairType.ED25519)
EVE = Keypair.create_from_uri("//Eve")
DOCUMENT = b"a reveal document: a clipped model and its salt" * 50


def recipients(*keys: Keypair) -> dict[bytes, bytes]:
    return {k.public_key: seal_public(k) for k in keys}


def test_each_named_validator_opens_the_document_and_nobody_else_does() -> None:
    envelope = seal(DOCUMENT, recipients(CHARLIE, DAVE))
    assert DOCUMENT[:40] not in envelope   # the store holds ciphertext only
    for validator in (CHARLIE, DAVE):
        assert open_sealed(envelope, validator.public_key, seal_secret(validator)) == DOCUMENT
    with pytest.raises(NotAddressed):
        open_sealed(envelope, EVE.public_key, seal_secret(EVE))
    with pytest.raises(NotAddressed):   # Eve's key under Charlie's account is not an entry either
        open_sealed(envelope, CHARLIE.public_key, seal_secret(EVE))


def test_the_seal_key_is_the_accounts_own_and_only_its_owner_can_compute_it() -> None:
    assert seal_public(CHARLIE) == seal_public(Keypair.create_from_uri("//Charlie"))
    assert seal_public(CHARLIE) != seal_public(EVE) and len(seal_public(CHARLIE)) == 32
    with pytest.raises(SealedError):
        seal_secret(Keypair(ss58_address=CHARLIE.ss58_address))   # a public key alone derives nothing


def _parts(envelope: bytes) -> tuple[bytes, bytes]:
    (size,) = struct.unpack_from("<I", envelope, len(MAGIC))
    start = len(MAGIC) + 4
    return envelope[start:start + size], envelope[start + size:]


def _rebuilt(header: bytes, body: bytes) -> bytes:
    return MAGIC + struct.pack("<I", len(header)) + header + body


def test_a_tampered_body_or_header_does_not_open() -> None:
    envelope = seal(DOCUMENT, recipients(CHARLIE, DAVE))
    header, body = _parts(envelope)
    flipped = bytes([body[0] ^ 1]) + body[1:]
    doc = json.loads(header)
    doc["recipients"] = doc["recipients"][:1] if doc["recipients"][0]["account"] == CHARLIE.public_key.hex() \
        else doc["recipients"][1:]   # Charlie's entry kept, Dave's dropped: the body's associated data changes
    shortened = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    for bad in (_rebuilt(header, flipped), _rebuilt(shortened, body)):
        with pytest.raises(SealedError, match="authenticate"):
            open_sealed(bad, CHARLIE.public_key, seal_secret(CHARLIE))


@pytest.mark.parametrize("bad", [b"", b"not sealed", MAGIC + b"\xff\xff\xff\x7f", MAGIC + struct.pack("<I", 2) + b"{}",
                                 MAGIC + struct.pack("<I", 4) + b"null"])
def test_malformed_envelopes_are_refused_by_name(bad: bytes) -> None:
    with pytest.raises(SealedError):
        open_sealed(bad, CHARLIE.public_key, seal_secret(CHARLIE))


def test_an_envelope_has_one_to_sixteen_recipients() -> None:
    with pytest.raises(SealedError):
        seal(DOCUMENT, {})
    many = {bytes([i]) * 32: seal_public(CHARLIE) for i in range(MAX_RECIPIENTS + 1)}
    with pytest.raises(SealedError):
        seal(DOCUMENT, many)
