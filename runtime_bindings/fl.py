"""Federated rounds: the bytes a client signs, the signatures, and the round's update root.

One implementation for everyone who touches a signed update: the client signs it, the aggregator checks it
before aggregating, the FederatedTasks pallet checks it again in `commit_round` (it decides who is paid and
who can be slashed, so it must be a chain fact), and validators recompute the root. A client signs

    b"paratrain/fl-update/v1" ++ SCALE(UpdateCommitment{task_id: u64, round: u32, base_model_hash: H256,
                                                        update_hash: H256, num_examples: u64})

and answers the aggregator's identity query by signing

    b"paratrain/fl-identity/v1" ++ SCALE((task_id: u64, node_id: u64, run_id: u64))

so a Flower node id (which the SuperLink hands out and nobody can trust) is mapped to a chain account only
by that account's signature. The round's `update_root` is the RFC 9162 Merkle tree hash with blake2-256 (the
construction of workers/trajectory.py) over the leaves `blake2_256(SCALE((client: AccountId,
UpdateCommitment)))` in participant order (ascending account bytes); signatures are not leaves because
sr25519's are randomized.

The SCALE is written by hand: every field is fixed-width, so the encoding is plain little-endian packing
that workers can use without scalecodec (the layers contract), and the tests pin it against the pallet's
own codec and the metadata's.
"""
from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple, TypeAlias

from substrateinterface import Keypair, KeypairType

from runtime_bindings.generated.types import MultiSignature, MultiSignatureEd25519, MultiSignatureSr25519, Signature
from runtime_bindings.primitives import ss58_decode, verify_signature

UPDATE_CONTEXT = b"paratrain/fl-update/v1"
IDENTITY_CONTEXT = b"paratrain/fl-identity/v1"
STAGE_REPLY_CONTEXT = b"paratrain/secagg-reply/v1"
SCHEMES = ("Sr25519", "Ed25519")
"""The MultiSignature variants a client may sign with (the pallets' rule: ECDSA never verifies)."""

_U32_MAX, _U64_MAX = 2**32 - 1, 2**64 - 1
_COMMITMENT = struct.Struct("<QI32s32sQ")
_IDENTITY = struct.Struct("<QQQ")
_STAGE_REPLY = struct.Struct("<QI32s32s")
_LEAF_PREFIX, _NODE_PREFIX = b"\x00", b"\x01"

HashLike: TypeAlias = "bytes | str"
"""A 32-byte hash as bytes (H256 is bytes) or 0x-hex."""
AccountLike: TypeAlias = "bytes | str | Keypair"
"""An account as its 32-byte public key, 0x-hex of it, its SS58 address, or its keypair."""


class Signed(NamedTuple):
    """A signature and the MultiSignature variant it is made with (what the `scheme` record key carries)."""

    scheme: str
    signature: bytes


def _blake2_256(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=32).digest()


def _hash32(value: HashLike, name: str) -> bytes:
    raw = bytes(value) if isinstance(value, (bytes, bytearray)) else _hex(value, name)
    if len(raw) != 32:
        raise ValueError(f"{name} must be 32 bytes, got {len(raw)}")
    return raw


def _hex(value: str, name: str) -> bytes:
    try:
        return bytes.fromhex(value[2:] if value.startswith(("0x", "0X")) else value)
    except ValueError:
        raise ValueError(f"{name} is not hex: {value!r}") from None


def _uint(value: int, limit: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= limit:
        raise ValueError(f"{name} must be an integer in 0..{limit}, got {value!r}")
    return value


def account_public_key(account: AccountLike) -> bytes:
    """The 32 bytes an account is in SCALE (and sorts by): from a keypair, raw bytes, 0x-hex or SS58."""
    if isinstance(account, Keypair):
        raw = bytes(account.public_key)
    elif isinstance(account, (bytes, bytearray)):
        raw = bytes(account)
    elif account.startswith(("0x", "0X")):
        raw = _hex(account, "account")
    else:
        try:
            raw = bytes.fromhex(ss58_decode(account))
        except ValueError:
            raise ValueError(f"not an SS58 address: {account!r}") from None
    if len(raw) != 32:
        raise ValueError(f"an account is 32 bytes, got {len(raw)}")
    return raw


@dataclass(frozen=True)
class UpdateCommitment:
    """What one client commits to for one round: the pallet's `UpdateCommitment`. Construction checks every
    field's range, so an encodable commitment is the only kind there is."""

    task_id: int
    round: int
    base_model_hash: bytes
    update_hash: bytes
    num_examples: int

    @classmethod
    def of(cls, task_id: int, round: int, base_model_hash: HashLike, update_hash: HashLike,
           num_examples: int) -> UpdateCommitment:
        """From hashes as bytes or 0x-hex (ValueError on a wrong length, a negative or too large integer)."""
        return cls(task_id, round, _hash32(base_model_hash, "base_model_hash"), _hash32(update_hash, "update_hash"),
                   num_examples)

    def __post_init__(self) -> None:
        _uint(self.task_id, _U64_MAX, "task_id")
        _uint(self.round, _U32_MAX, "round")
        _uint(self.num_examples, _U64_MAX, "num_examples")
        object.__setattr__(self, "base_model_hash", _hash32(self.base_model_hash, "base_model_hash"))
        object.__setattr__(self, "update_hash", _hash32(self.update_hash, "update_hash"))

    def scale(self) -> bytes:
        """SCALE of the struct (84 bytes): u64, u32, H256, H256, u64, fields in declaration order."""
        return _COMMITMENT.pack(self.task_id, self.round, self.base_model_hash, self.update_hash, self.num_examples)

    def signing_payload(self) -> bytes:
        return UPDATE_CONTEXT + self.scale()


def update_commitment_bytes(task_id: int, round: int, base_model_hash: HashLike, update_hash: HashLike,
                            num_examples: int) -> bytes:
    """The exact message a client signs for its update in a round."""
    return UpdateCommitment.of(task_id, round, base_model_hash, update_hash, num_examples).signing_payload()


def _sign(keypair: Keypair, message: bytes) -> Signed:
    scheme = {KeypairType.SR25519: "Sr25519", KeypairType.ED25519: "Ed25519"}.get(keypair.crypto_type)
    if scheme is None:
        raise ValueError("federated updates are signed with sr25519 or ed25519 keys")
    return Signed(scheme, bytes(keypair.sign(message)))


def _verify(signer: AccountLike, scheme: str, signature: bytes | str, message: bytes) -> bool:
    """The pallet's rule (runtime_bindings.primitives.verify_signature); anything malformed is simply invalid.
    The scheme is matched without regard to case, so "sr25519" from a record reads as the variant name."""
    variant = next((s for s in SCHEMES if s.lower() == scheme.lower()), None) if isinstance(scheme, str) else None
    if variant is None:
        return False
    try:
        public = account_public_key(signer)
        raw = bytes(signature) if isinstance(signature, (bytes, bytearray)) else _hex(signature, "signature")
    except (ValueError, TypeError, AttributeError):
        return False
    return len(raw) == 64 and verify_signature(variant, raw, message, public)


def sign_update(keypair: Keypair, task_id: int, round: int, base_model_hash: HashLike, update_hash: HashLike,
                num_examples: int) -> Signed:
    """The client's signature over its update commitment (ValueError for an ECDSA key or a malformed field)."""
    return _sign(keypair, update_commitment_bytes(task_id, round, base_model_hash, update_hash, num_examples))


def verify_update(signer: AccountLike, scheme: str, signature: bytes | str, task_id: int, round: int,
                  base_model_hash: HashLike, update_hash: HashLike, num_examples: int) -> bool:
    """True only if `signature` is `signer`'s over exactly this commitment; a malformed field is False."""
    try:
        message = update_commitment_bytes(task_id, round, base_model_hash, update_hash, num_examples)
    except (ValueError, TypeError, AttributeError):
        return False
    return _verify(signer, scheme, signature, message)


def update_leaf(account: AccountLike, commitment: UpdateCommitment) -> bytes:
    """`blake2_256(SCALE((client: AccountId, UpdateCommitment)))`: one participant's leaf of the round."""
    return _blake2_256(account_public_key(account) + commitment.scale())


def _mth(leaves: Sequence[bytes]) -> bytes:
    if not leaves:
        return _blake2_256(b"")
    if len(leaves) == 1:
        return _blake2_256(_LEAF_PREFIX + leaves[0])
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return _blake2_256(_NODE_PREFIX + _mth(leaves[:k]) + _mth(leaves[k:]))


def update_root(leaves: Sequence[bytes]) -> bytes:
    """The round's `update_root`: RFC 9162's Merkle tree hash over the leaves in participant order. Runtime
    bindings may not import workers, so this restates workers.trajectory.merkle_root (tested equal)."""
    return _mth([_hash32(leaf, "leaf") for leaf in leaves])


def identity_bytes(task_id: int, node_id: int, run_id: int) -> bytes:
    """The message a client signs to say which Flower node of which run speaks for its account in a task."""
    return IDENTITY_CONTEXT + _IDENTITY.pack(_uint(task_id, _U64_MAX, "task_id"),
                                             _uint(node_id, _U64_MAX, "node_id"), _uint(run_id, _U64_MAX, "run_id"))


def sign_identity(keypair: Keypair, task_id: int, node_id: int, run_id: int) -> Signed:
    return _sign(keypair, identity_bytes(task_id, node_id, run_id))


def verify_identity(signer: AccountLike, scheme: str, signature: bytes | str, task_id: int, node_id: int,
                    run_id: int) -> bool:
    """True only if `signer` signed this (task, node, run) triple; a malformed field is False."""
    try:
        message = identity_bytes(task_id, node_id, run_id)
    except (ValueError, TypeError):
        return False
    return _verify(signer, scheme, signature, message)


def stage_reply_bytes(task_id: int, round: int, stage: str, digest: bytes) -> bytes:
    """The message a SecAgg+ client signs for one stage's reply: `digest` binds what it was sent and what it
    answered (workers/fl/secagg_evidence.py), the stage name is padded to 32 bytes."""
    name = stage.encode()
    if len(name) > 32 or len(digest) != 32:
        raise ValueError("a stage name is at most 32 bytes and a reply digest 32")
    return STAGE_REPLY_CONTEXT + _STAGE_REPLY.pack(_uint(task_id, _U64_MAX, "task_id"), _uint(round, _U32_MAX, "round"),
                                                   name.ljust(32, b"\0"), digest)


def sign_stage_reply(keypair: Keypair, task_id: int, round: int, stage: str, digest: bytes) -> Signed:
    return _sign(keypair, stage_reply_bytes(task_id, round, stage, digest))


def verify_stage_reply(signer: AccountLike, scheme: str, signature: bytes | str, task_id: int, round: int,
                       stage: str, digest: bytes) -> bool:
    """True only if `signer` signed this stage reply of this task and round; a malformed field is False."""
    try:
        message = stage_reply_bytes(task_id, round, stage, digest)
    except (ValueError, TypeError):
        return False
    return _verify(signer, scheme, signature, message)


def multi_signature(scheme: str, signature: bytes | str) -> MultiSignature:
    """The chain's MultiSignature of a (scheme, 64 bytes) pair, as a client's record carries it."""
    variant = next((s for s in SCHEMES if s.lower() == scheme.lower()), None)
    raw = bytes(signature) if isinstance(signature, (bytes, bytearray)) else _hex(signature, "signature")
    if variant is None:
        raise ValueError(f"unknown signature scheme {scheme!r}: expected one of {', '.join(SCHEMES)}")
    if len(raw) != 64:
        raise ValueError(f"a signature is 64 bytes, got {len(raw)}")
    cls = MultiSignatureSr25519 if variant == "Sr25519" else MultiSignatureEd25519
    return cls(Signature(raw))


def signed_update(client: AccountLike, update_hash: HashLike, num_examples: int, scheme: str,
                  signature: bytes | str) -> dict[str, object]:
    """One entry of `commit_round`'s `updates: Vec<SignedUpdate>` in the form the call encodes (the pallet
    rebuilds the commitment from the call's task, round and base hash, so those are not repeated here)."""
    return {
        "client": "0x" + account_public_key(client).hex(),
        "update_hash": "0x" + _hash32(update_hash, "update_hash").hex(),
        "num_examples": _uint(num_examples, _U64_MAX, "num_examples"),
        "signature": multi_signature(scheme, signature).to_value(),
    }


__all__ = [
    "IDENTITY_CONTEXT", "SCHEMES", "STAGE_REPLY_CONTEXT", "UPDATE_CONTEXT", "AccountLike", "HashLike", "Signed",
    "UpdateCommitment",
    "account_public_key", "identity_bytes", "multi_signature", "sign_identity", "sign_stage_reply", "sign_update",
    "signed_update", "stage_reply_bytes", "update_commitment_bytes", "update_leaf", "update_root", "verify_identity",
    "verify_stage_reply", "verify_update",
]
