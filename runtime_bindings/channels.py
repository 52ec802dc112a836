"""Payment channels (pallet PaymentChannels): what a client signs for each paid inference call, and what a
service checks before it serves the call and later claims on chain.

A payment is the client's sr25519 signature over ``b"paratrain/channel/v1" ++ SCALE(channel: u64, nonce: u32,
amount: u128)``: the cumulative amount it owes the service under the channel's current nonce. The pallet's
`claim` checks the same bytes (devnet/runtime/pallets/channels.py, `channel_message`).
"""
from __future__ import annotations

import struct

from substrateinterface import Keypair

from runtime_bindings.primitives import verify_signature

CHANNEL_DOMAIN = b"paratrain/channel/v1"


def channel_message(channel: int, nonce: int, amount: int) -> bytes:
    if not (0 <= channel < 2**64 and 0 <= nonce < 2**32 and 0 <= amount < 2**128):
        raise ValueError("channel, nonce or amount out of range")
    return CHANNEL_DOMAIN + struct.pack("<QI", channel, nonce) + amount.to_bytes(16, "little")


def sign_payment(signer: Keypair, channel: int, nonce: int, amount: int) -> bytes:
    """The client's signature for `amount` owed in all under `nonce` (sr25519; 64 bytes)."""
    return bytes(signer.sign(channel_message(channel, nonce, amount)))


def verify_payment(signer_public: bytes, channel: int, nonce: int, amount: int, signature: bytes) -> bool:
    """Whether `signature` is the channel signer's over (channel, nonce, amount); never raises on bad input."""
    try:
        message = channel_message(channel, nonce, amount)
    except ValueError:
        return False
    return len(signature) == 64 and verify_signature("Sr25519", signature, message, signer_public)


__all__ = ["CHANNEL_DOMAIN", "channel_message", "sign_payment", "verify_payment"]
