"""Differential-privacy values in chain units: the one place floats become the integers the chain holds.

The PrivacyBudgets pallet holds no floats. Epsilon is in micro-epsilon (u64, 1e-6), delta in 1e-15 (u64, so
delta 1e-5 is 10_000_000_000), the noise multiplier and norms in 1e-6 (u64) and the sample rate as a Perbill
(u32, 1e-9). Everyone converts here, and the worker trains with exactly the decoded chain values, so that
what was committed on chain is what ran.

Rounding follows what a value is for. Epsilon and delta are privacy *claims*, so they round up: rounding must
never make a claim (or a cap) smaller than the float it came from. Norms, noise multipliers and sample rates
are parameters the worker then uses as decoded, so they round to nearest.

A float is converted through its shortest repr (``Decimal(repr(x))``), not its binary expansion: 1.1 is
1_100_000 micro-epsilon, not 1_100_001. This keeps the promise of rounding up in float terms: decoding the
chain value gives back a float ``>=`` the input, because float rounding is monotonic and the input is the
float nearest its repr.
"""
from __future__ import annotations

import hashlib
import math
import struct
from decimal import ROUND_CEILING, ROUND_HALF_EVEN, Decimal

from substrateinterface import Keypair, KeypairType

from runtime_bindings.generated.types import (
    Accountant,
    DpClaim,
    MultiSignature,
    MultiSignatureEd25519,
    MultiSignatureSr25519,
    Signature,
)
from runtime_bindings.primitives import verify_signature

EPSILON_UNIT = 10**6
"""Chain epsilon units per epsilon (micro-epsilon)."""
DELTA_UNIT = 10**15
"""Chain delta units per delta (1e-15)."""
NORM_UNIT = 10**6
"""Chain units per unit of noise multiplier or clipping norm (1e-6)."""
PERBILL = 10**9
"""Perbill units per 1 (a sample rate of 1.0 is 1_000_000_000)."""

U64_MAX = 2**64 - 1
DP_KEY_CONTEXT = b"paratrain/dp-key/v1"
"""Domain of the on-chain noise_key_hash: blake2_256(DP_KEY_CONTEXT ++ key)."""


def _decimal(value: float, what: str) -> Decimal:
    """The value as the Decimal of its shortest repr; ValueError for anything but a finite, non-negative real."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{what} must be a number, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{what} must be finite, got {value!r}")
    if value < 0:
        raise ValueError(f"{what} must not be negative, got {value!r}")
    return Decimal(value) if isinstance(value, int) else Decimal(repr(value))


def _to_chain(value: float, unit: int, rounding: str, limit: int, what: str) -> int:
    scaled = int((_decimal(value, what) * unit).to_integral_value(rounding=rounding))
    if scaled > limit:
        raise ValueError(f"{what} {value!r} is above the chain's largest ({limit / unit!r})")
    return scaled


def _from_chain(value: int, unit: int, limit: int, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"chain {what} must be an int, got {value!r}")
    if not 0 <= value <= limit:
        raise ValueError(f"chain {what} {value} is outside 0..{limit}")
    return value / unit


def epsilon_to_chain(epsilon: float) -> int:
    """Micro-epsilon, rounded up: a claim or a cap is never made smaller by rounding."""
    return _to_chain(epsilon, EPSILON_UNIT, ROUND_CEILING, U64_MAX, "epsilon")


def epsilon_from_chain(value: int) -> float:
    return _from_chain(value, EPSILON_UNIT, U64_MAX, "epsilon")


def delta_to_chain(delta: float) -> int:
    """Delta in 1e-15 units, rounded up (a smaller delta would be a stronger claim than the float's). At most
    1: a delta above 1 is no guarantee at all."""
    if _decimal(delta, "delta") > 1:
        raise ValueError(f"delta must be at most 1, got {delta!r}")
    return _to_chain(delta, DELTA_UNIT, ROUND_CEILING, DELTA_UNIT, "delta")


def delta_from_chain(value: int) -> float:
    return _from_chain(value, DELTA_UNIT, DELTA_UNIT, "delta")


def norm_to_chain(norm: float) -> int:
    """A clipping norm or noise multiplier in 1e-6 units, rounded to nearest (ties to even): the worker uses
    the decoded value, so the nearest one is the least surprising."""
    return _to_chain(norm, NORM_UNIT, ROUND_HALF_EVEN, U64_MAX, "norm")


def norm_from_chain(value: int) -> float:
    return _from_chain(value, NORM_UNIT, U64_MAX, "norm")


def rate_to_chain(rate: float) -> int:
    """A sample rate in [0, 1] as a Perbill, rounded to nearest (ties to even)."""
    if _decimal(rate, "sample rate") > 1:
        raise ValueError(f"sample rate must be at most 1, got {rate!r}")
    return _to_chain(rate, PERBILL, ROUND_HALF_EVEN, PERBILL, "sample rate")


def rate_from_chain(value: int) -> float:
    return _from_chain(value, PERBILL, PERBILL, "sample rate")


def noise_key_hash(key: bytes) -> bytes:
    """The DpSpec's noise_key_hash of a 32-byte noise key: blake2_256(DP_KEY_CONTEXT ++ key). The chain holds
    only this, so the key (and with it the noise) stays with the data's readers."""
    if not isinstance(key, (bytes, bytearray)) or len(key) != 32:
        raise ValueError("a noise key is 32 bytes")
    return hashlib.blake2b(DP_KEY_CONTEXT + bytes(key), digest_size=32).digest()


# The DP attestation -----------------------------------------------------------------------------
DP_ATTESTATION_CONTEXT = b"paratrain/attestation-dp/v1"
"""A private task's result is signed as DP_ATTESTATION_CONTEXT ++ SCALE(Attestation) ++ SCALE(DpClaim)."""
ACCOUNTANTS = {"rdp": "Rdp", "prv": "Prv"}
"""Opacus's accountant names -> the chain's Accountant variants, in variant order. Opacus's "gdp" is refused:
it can underestimate epsilon."""
_CLAIM = struct.Struct("<BQIQQQQ")  # accountant index, noise, sample rate, steps, norm, delta, epsilon


def accountant_of(name: str) -> Accountant:
    """The chain's Accountant for Opacus's name ("rdp" or "prv"); ValueError for any other, "gdp" included."""
    variant = ACCOUNTANTS.get(name) if isinstance(name, str) else None
    if variant is None:
        raise ValueError(f"accountant must be one of {', '.join(ACCOUNTANTS)}, got {name!r}")
    return Accountant.from_value(variant)


def accountant_name(accountant: Accountant) -> str:
    """Opacus's name of a chain Accountant ("rdp" or "prv")."""
    return next(name for name, variant in ACCOUNTANTS.items() if variant == accountant.name)


def dp_claim_bytes(claim: DpClaim) -> bytes:
    """SCALE of a DpClaim, packed by hand (every field is fixed-width) so that workers need no scalecodec."""
    index = list(ACCOUNTANTS.values()).index(claim.accountant.name)
    try:
        return _CLAIM.pack(index, claim.noise_multiplier, claim.sample_rate, claim.steps, claim.max_grad_norm,
                           claim.delta, claim.epsilon)
    except struct.error as error:
        raise ValueError(f"claim out of range: {error}") from None


def dp_signing_payload(encoded_attestation: bytes, claim: DpClaim) -> bytes:
    """The exact message a worker signs for a private task's result."""
    return DP_ATTESTATION_CONTEXT + bytes(encoded_attestation) + dp_claim_bytes(claim)


def sign_dp_attestation(encoded_attestation: bytes, claim: DpClaim, keypair: Keypair) -> MultiSignature:
    """The worker's signature over attestation and claim, as submit_private_result's `signature` argument."""
    schemes = {KeypairType.SR25519: MultiSignatureSr25519, KeypairType.ED25519: MultiSignatureEd25519}
    variant = schemes.get(keypair.crypto_type)
    if variant is None:
        raise ValueError("attestations are signed with sr25519 or ed25519 keys")
    return variant(Signature(bytes(keypair.sign(dp_signing_payload(encoded_attestation, claim)))))


def verify_dp_attestation(encoded_attestation: bytes, claim: DpClaim, signature: MultiSignature,
                          signer: bytes) -> bool:
    """The pallet's check: `signature` is the 32-byte account `signer`'s over attestation and claim."""
    if not isinstance(signature, (MultiSignatureSr25519, MultiSignatureEd25519)):
        return False
    message = dp_signing_payload(encoded_attestation, claim)
    return verify_signature(signature.name, bytes(signature.field_0), message, bytes(signer))
