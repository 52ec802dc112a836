"""Attestation encoding, signing and verifying: one implementation, checked against the pallet's rules."""
from __future__ import annotations

import functools

import pytest

from devnet.crypto import verify_signature
from devnet.metadata import encode_metadata
from devnet.runtime.runtime import Runtime
from runtime_bindings import ATTESTATION_CONTEXT, AttestationCodec, Keypair, KeypairType
from runtime_bindings.metadata import MetadataIndex, decode_metadata

# A locally declared stand-in with the field list, for use whatever the runtime holds.
STAND_IN = {
    "StandInAttestation": {"type": "struct", "type_mapping": [
        ["task_id", "u64"], ["worker", "AccountId"], ["model_hash", "H256"], ["artifact_uri", "Bytes"],
        ["metrics", "Vec<(Bytes, i64)>"], ["trajectory_root", "H256"], ["checkpoints", "Vec<H256>"],
        ["code_hash", "H256"], ["dataset_hash", "H256"], ["started_ms", "u64"], ["finished_ms", "u64"],
    ]},
}


def attestation(worker: Keypair) -> dict:
    return {
        "task_id": 7, "worker": worker.ss58_address, "model_hash": "0x" + "11" * 32,
        "artifact_uri": b"s3://bucket/model.pt", "metrics": [(b"accuracy", 912_000), (b"loss", -5)],
        "trajectory_root": "0x" + "22" * 32, "checkpoints": ["0x" + "33" * 32, "0x" + "44" * 32],
        "code_hash": "0x" + "55" * 32, "dataset_hash": "0x" + "66" * 32,
        "started_ms": 1_700_000_000_000, "finished_ms": 1_700_000_360_000,
    }


@functools.cache
def devnet_metadata() -> bytes:
    return encode_metadata(Runtime())


@functools.cache
def devnet_codec() -> AttestationCodec:
    return AttestationCodec.from_metadata(devnet_metadata())


def runtime_has_task_bounties() -> bool:
    return "TaskBounties" in MetadataIndex(decode_metadata(devnet_metadata())).pallets


def codecs() -> list:
    found = [pytest.param(lambda: AttestationCodec.from_type_registry(STAND_IN, "StandInAttestation"),
                          id="stand-in")]
    if runtime_has_task_bounties():
        found.append(pytest.param(devnet_codec,
                                  id="devnet-metadata"))
    return found


@pytest.mark.parametrize("make_codec", codecs())
@pytest.mark.parametrize("crypto", [KeypairType.SR25519, KeypairType.ED25519], ids=["sr25519", "ed25519"])
def test_sign_and_verify(make_codec, crypto: int) -> None:
    codec = make_codec()
    worker = Keypair.create_from_seed("0x" + "01" * 32, crypto_type=crypto)
    other = Keypair.create_from_seed("0x" + "02" * 32, crypto_type=crypto)
    att = attestation(worker)
    encoded = codec.encode(att)
    assert codec.payload(att) == ATTESTATION_CONTEXT + encoded
    decoded = codec.decode(encoded)
    assert decoded["task_id"] == 7 and decoded["finished_ms"] == att["finished_ms"]
    signature = codec.sign(att, worker)
    scheme = "Sr25519" if crypto == KeypairType.SR25519 else "Ed25519"
    # the pallet's own check accepts exactly what we sign
    assert verify_signature(scheme, signature, ATTESTATION_CONTEXT + encoded, worker.public_key)
    assert codec.verify(att, signature, worker.ss58_address)
    assert codec.verify(att, codec.multi_signature(att, worker), worker.public_key)
    assert not codec.verify(att, signature, other.ss58_address)
    assert not codec.verify({**att, "task_id": 8}, signature, worker.ss58_address)
    assert not codec.verify(att, b"\x00" * 63, worker.ss58_address)  # malformed is just invalid
    # no context prefix: not a valid attestation signature
    assert not codec.verify(att, worker.sign(encoded), worker.ss58_address)


@pytest.mark.skipif(not runtime_has_task_bounties(), reason="TaskBounties pallet not in devnet's runtime yet")
def test_metadata_type_matches_stand_in_layout() -> None:
    worker = Keypair.create_from_uri("//Worker1")
    real = devnet_codec()
    stand_in = AttestationCodec.from_type_registry(STAND_IN, "StandInAttestation")
    assert real.encode(attestation(worker)) == stand_in.encode(attestation(worker))


@pytest.mark.skipif(not runtime_has_task_bounties(), reason="TaskBounties pallet not in devnet's runtime yet")
def test_generated_dataclass_encodes_like_a_dict() -> None:
    from runtime_bindings.generated import types

    worker = Keypair.create_from_uri("//Worker1")
    codec = devnet_codec()
    as_dict = attestation(worker)
    as_dataclass = types.Attestation(**as_dict)
    assert codec.encode(as_dataclass) == codec.encode(as_dict)
