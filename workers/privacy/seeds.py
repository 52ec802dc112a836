"""The per-step seeds of a DP run: keyed by the requester's secret noise key.

Checkpoints are public by hash, so anyone who could recompute step s's noise and Poisson mask could subtract
the noise between two consecutive checkpoints and read the clipped gradient sum, which is no longer private
(docs/design/private.md fact 8); a public sample mask would also void the amplification by sampling the
accountant counts on. The seeds are therefore keyed blake2b of the spec hash and the step under the 32-byte
key that only the data's readers (the worker, the validators) hold. Stateless per step, so a segment replay
from any checkpoint draws the same batch and the same noise bitwise.
"""
from __future__ import annotations

import hashlib

from runtime_bindings.privacy import noise_key_hash

NOISE_DOMAIN = b"paratrain/dp-noise/v1"
SAMPLE_DOMAIN = b"paratrain/dp-sample/v1"
KEY_BYTES = 32


def _seed(domain: bytes, key: bytes, spec_hash: bytes, step: int) -> int:
    if not isinstance(key, (bytes, bytearray)) or len(key) != KEY_BYTES:
        raise ValueError(f"a noise key is {KEY_BYTES} bytes")
    if not isinstance(spec_hash, (bytes, bytearray)) or len(spec_hash) != 32:
        raise ValueError("a spec hash is 32 bytes")
    if isinstance(step, bool) or not isinstance(step, int) or not 0 <= step < 2**64:
        raise ValueError(f"a step is an integer in [0, 2^64), got {step!r}")
    digest = hashlib.blake2b(domain + bytes(spec_hash) + step.to_bytes(8, "little"), key=bytes(key), digest_size=8)
    return int.from_bytes(digest.digest(), "little")


def noise_seed(key: bytes, spec_hash: bytes, step: int) -> int:
    """The seed of step `step`'s Gaussian noise generator: a u64, blake2b-64 keyed with the noise key over
    ``NOISE_DOMAIN ++ spec_hash (32 bytes) ++ step (u64 little-endian)``, read little-endian."""
    return _seed(NOISE_DOMAIN, key, spec_hash, step)


def sample_seed(key: bytes, spec_hash: bytes, step: int) -> int:
    """The seed of step `step`'s Poisson sampling generator (as `noise_seed`, under SAMPLE_DOMAIN)."""
    return _seed(SAMPLE_DOMAIN, key, spec_hash, step)


__all__ = ["KEY_BYTES", "NOISE_DOMAIN", "SAMPLE_DOMAIN", "noise_key_hash", "noise_seed", "sample_seed"]
