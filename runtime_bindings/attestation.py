"""Attestations: the one implementation of building, encoding, signing and verifying them.

A worker attests to a training result with the SCALE struct the TaskBounties pallet
declares as the `attestation` argument of `submit_result`:
{task_id, worker, model_hash, artifact_uri, metrics, trajectory_root, checkpoints,
code_hash, dataset_hash, started_ms, finished_ms}. The signed message is

    b"paratrain/attestation/v1" + SCALE(attestation)

signed with the worker's sr25519 or ed25519 key (``Keypair.sign``), and verified as
the pallet does (``devnet.crypto.verify_signature``: a MultiSignature against the
worker's 32-byte public key). The SCALE type is taken from the runtime metadata
(the call argument's type id), so the encoding follows the pallet, never a copy of it.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from scalecodec.base import RuntimeConfigurationObject, ScaleBytes
from scalecodec.type_registry import load_type_registry_preset
from scalecodec.types import GenericMetadataVersioned
from substrateinterface import Keypair, KeypairType
from substrateinterface.utils.ss58 import ss58_decode

from runtime_bindings.base import to_scale_value
from runtime_bindings.generated.types import (
    Attestation,
    MultiSignature,
    MultiSignatureEcdsa,
    MultiSignatureEd25519,
    MultiSignatureSr25519,
)
from runtime_bindings.metadata import MetadataIndex, v14_of
from runtime_bindings.primitives import verify_signature
from runtime_bindings.values import ScaleValue

if TYPE_CHECKING:
    from runtime_bindings.client import Chain

AttestationValue = Attestation | Mapping[str, object]
SignatureValue = MultiSignature | Mapping[str, str | bytes] | tuple[str, str | bytes] | bytes | str
ATTESTATION_CONTEXT = b"paratrain/attestation/v1"
PALLET, CALL, ARGUMENT = "TaskBounties", "submit_result", "attestation"
ATTESTATION_FIELDS = ("task_id", "worker", "model_hash", "artifact_uri", "metrics", "trajectory_root",
                      "checkpoints", "code_hash", "dataset_hash", "started_ms", "finished_ms")


@dataclass(frozen=True)
class AttestationCodec:
    """SCALE codec of the attestation type of one runtime (or of a locally declared stand-in)."""

    config: RuntimeConfigurationObject
    type_string: str

    # Construction -------------------------------------------------------------------------------
    @classmethod
    def from_metadata(cls, raw_metadata: bytes) -> AttestationCodec:
        """From SCALE-encoded metadata: the type of TaskBounties.submit_result's `attestation`."""
        config = RuntimeConfigurationObject()
        config.update_type_registry(load_type_registry_preset("core"))
        metadata = config.create_scale_object("MetadataVersioned", data=ScaleBytes(raw_metadata))
        metadata.decode()
        return cls._from_decoded(metadata, config)

    @classmethod
    def _from_decoded(cls, metadata: GenericMetadataVersioned,
                      config: RuntimeConfigurationObject | None = None) -> AttestationCodec:
        """From scalecodec's decoded metadata: its portable registry in a configuration of the codec's own."""
        if config is None:
            config = RuntimeConfigurationObject()
            config.update_type_registry(load_type_registry_preset("core"))
        config.add_portable_registry(metadata)
        type_id = MetadataIndex(v14_of(metadata.value)).call_arg_type(PALLET, CALL, ARGUMENT)
        return cls(config, f"scale_info::{type_id}")

    @classmethod
    def from_chain(cls, chain: Chain) -> AttestationCodec:
        """From the runtime of a connected chain (KeyError if it has no TaskBounties.submit_result): its
        decoded metadata, which the connection holds already (no second download and 0.5 s decode)."""
        return cls._from_decoded(chain.decoded_metadata())

    @classmethod
    def from_type_registry(cls, types: Mapping[str, object], type_string: str) -> AttestationCodec:
        """From a scalecodec type-registry declaration: a stand-in before the pallet exists."""
        config = RuntimeConfigurationObject()
        config.update_type_registry(load_type_registry_preset("core"))
        config.update_type_registry({"types": dict(types)})
        return cls(config, type_string)

    # Codec --------------------------------------------------------------------------------------
    def encode(self, attestation: AttestationValue) -> bytes:
        """SCALE bytes of an attestation: the generated types.Attestation (what workers build and the chain
        gives back), or scalecodec's plain form of it (a stand-in type's value)."""
        value = to_scale_value(attestation)
        obj = self.config.create_scale_object(self.type_string)
        return bytes(obj.encode(value).data)

    def decode(self, data: bytes) -> dict[str, ScaleValue]:
        """SCALE bytes back to the attestation as scalecodec decodes it (ValueError when not a struct)."""
        obj = self.config.create_scale_object(self.type_string, data=ScaleBytes(bytes(data)))
        value: ScaleValue = obj.decode()
        if not isinstance(value, dict):
            raise ValueError(f"{self.type_string} decoded to {type(value).__name__}, not a struct")
        return value

    def payload(self, attestation: AttestationValue) -> bytes:
        """The exact message that is signed: the context prefix and the SCALE encoding."""
        return signing_payload(self.encode(attestation))

    def sign(self, attestation: AttestationValue, keypair: Keypair) -> bytes:
        return sign_attestation(self.encode(attestation), keypair)

    def multi_signature(self, attestation: AttestationValue, keypair: Keypair) -> dict[str, str]:
        """The signature as the `signature: MultiSignature` argument of submit_result."""
        scheme = {KeypairType.SR25519: "Sr25519", KeypairType.ED25519: "Ed25519"}.get(keypair.crypto_type)
        if scheme is None:
            raise ValueError("attestations are signed with sr25519 or ed25519 keys")
        return {scheme: "0x" + self.sign(attestation, keypair).hex()}

    def verify(self, attestation: AttestationValue, signature: SignatureValue, signer: bytes | str,
               scheme: str | None = None) -> bool:
        return verify_attestation(self.encode(attestation), signature, signer, scheme)


def signing_payload(encoded_attestation: bytes) -> bytes:
    return ATTESTATION_CONTEXT + bytes(encoded_attestation)


def sign_attestation(encoded_attestation: bytes, keypair: Keypair) -> bytes:
    """Sign ``ATTESTATION_CONTEXT + SCALE(attestation)`` with the worker's key."""
    return bytes(keypair.sign(signing_payload(encoded_attestation)))


def _public_key(signer: bytes | str | Keypair) -> bytes:
    if isinstance(signer, Keypair):
        return bytes(signer.public_key)
    if isinstance(signer, (bytes, bytearray)):
        return bytes(signer)
    if signer.startswith("0x"):
        return bytes.fromhex(signer[2:])
    return bytes.fromhex(ss58_decode(signer))


def _signature(signature: SignatureValue, scheme: str | None) -> list[tuple[str, bytes]]:
    """(scheme, 64 bytes) candidates from a MultiSignature (as the chain stores it, or its dict/tuple form),
    raw bytes or 0x-hex."""
    value: object = signature
    if isinstance(signature, (MultiSignatureEd25519, MultiSignatureSr25519, MultiSignatureEcdsa)):
        scheme, value = signature.name, signature.field_0
    elif isinstance(signature, Mapping) and len(signature) == 1:
        scheme, value = next(iter(signature.items()))
    elif isinstance(signature, (tuple, list)) and len(signature) == 2 and isinstance(signature[0], str):
        scheme, value = signature
    if isinstance(value, str):
        raw = bytes.fromhex(value[2:] if value.startswith("0x") else value)
    elif isinstance(value, (bytes, bytearray)):
        raw = bytes(value)
    else:
        raise ValueError(f"not a signature: {signature!r}")
    return [(scheme, raw)] if scheme else [("Sr25519", raw), ("Ed25519", raw)]


def verify_attestation(encoded_attestation: bytes, signature: SignatureValue, signer: bytes | str | Keypair,
                       scheme: str | None = None) -> bool:
    """True if `signature` (MultiSignature, raw or hex) is `signer`'s over the attestation.

    The one verifier (runtime_bindings.primitives.verify_signature, which the orchestrator's auth uses too):
    the pallet's rules, Sr25519 and Ed25519 only; malformed input is simply invalid. With no scheme given,
    either is accepted.
    """
    try:
        public = _public_key(signer)
        candidates = _signature(signature, scheme)
    except (ValueError, TypeError):
        return False
    message = signing_payload(encoded_attestation)
    return any(verify_signature(kind, raw, message, public) for kind, raw in candidates)

