"""The paid-call gate of `paratrain serve`: every inference call carries a payment in its metadata, checked here
before any inference runs, and the latest payment of each channel is what the service later claims on chain
(claims.py). Pure logic over a channel's on-chain view; the servicer (server.py) only translates.

A payment is (channel, nonce, amount, signature): the client's sr25519 signature over the cumulative `amount` it
owes under the channel's `nonce` (runtime_bindings.channels). A call is served when, in this order:

1. the metadata entry `paratrain-payment-bin` is the 92 bytes of a payment (INVALID_ARGUMENT);
2. the channel exists (NOT_FOUND), pays this service (PERMISSION_DENIED), is open and more than
   `claim_margin_ms` from its expiry, so the claim can still land (FAILED_PRECONDITION);
3. the nonce is the one the service expects: the chain's, or the next one once the service took the latest
   payment to claim (FAILED_PRECONDITION, with the expected nonce and what is available in the trailers, so
   the client starts again from 0 under it);
4. the amount is above the last one accepted (else a replay, FAILED_PRECONDITION) by at least the price
   (INVALID_ARGUMENT) and within what the deposit has left after the claims in flight (RESOURCE_EXHAUSTED);
5. the signature is the channel signer's (UNAUTHENTICATED).

A refusal changes nothing. The view of a channel is read from the chain once and again when a payment would
be refused for its deposit or expiry (the client may have extended it); no other refusal costs a chain read.
"""
from __future__ import annotations

import struct
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from runtime_bindings.channels import verify_payment

PAYMENT_KEY = "paratrain-payment-bin"
"""The call metadata entry of a payment: SCALE(channel u64, nonce u32, amount u128) ++ the 64-byte signature,
92 bytes in one binary entry (one header rather than four: metadata is a paid call's largest cost after the
signature check)."""
PAYMENT_BYTES = 8 + 4 + 16 + 64
EXPECTED_NONCE_KEY, AVAILABLE_KEY = "paratrain-expected-nonce", "paratrain-available"


class PaymentRefused(Exception):
    """A call not served: `code` is the gRPC status name that fits, `trailers` what the client needs to retry."""

    def __init__(self, code: str, message: str, trailers: Mapping[str, str] | None = None, *,
                 stale: bool = False) -> None:
        super().__init__(message)
        self.code, self.trailers = code, dict(trailers or {})
        self.stale = stale      # a fresher view of the channel (extended since it was read) might accept it


@dataclass(frozen=True)
class Payment:
    channel: int
    nonce: int
    amount: int
    signature: bytes


@dataclass(frozen=True)
class ChannelView:
    """What the chain says of a channel (PaymentChannels.Channels)."""

    service: bytes
    signer: bytes
    deposit: int
    nonce: int
    expiry_ms: int
    open: bool


@dataclass(frozen=True)
class Claim:
    channel: int
    nonce: int
    amount: int
    signature: bytes


@dataclass
class _Account:
    view: ChannelView
    nonce: int                   # the nonce payments are accepted under
    amount: int = 0              # the latest accepted cumulative amount under it
    signature: bytes = b""
    in_flight: int = 0           # taken to claim, not yet seen on chain
    calls: int = 0
    unclaimed_calls: int = 0     # paid calls since the last claim was taken


def encode_payment(payment: Payment) -> bytes:
    return struct.pack("<QI", payment.channel, payment.nonce) + payment.amount.to_bytes(16, "little") \
        + payment.signature


def parse_payment(metadata: Mapping[str, Any]) -> Payment:
    """The payment of a call's metadata: exactly PAYMENT_BYTES bytes under PAYMENT_KEY."""
    raw = metadata.get(PAYMENT_KEY)
    if raw is None:
        raise PaymentRefused("INVALID_ARGUMENT", f"a paid call carries its payment in the {PAYMENT_KEY} metadata")
    if not isinstance(raw, bytes) or len(raw) != PAYMENT_BYTES:
        raise PaymentRefused("INVALID_ARGUMENT", f"the payment metadata is {PAYMENT_BYTES} bytes: SCALE(channel u64, "
                                                 "nonce u32, amount u128) and a 64-byte signature")
    channel, nonce = struct.unpack_from("<QI", raw)
    return Payment(channel, nonce, int.from_bytes(raw[12:28], "little"), raw[28:])


@dataclass
class PaymentGate:
    """The service's ledger of payments: `authorize` each call, `take_claims` what to claim, `settled` once a
    claim landed. `read_channel(id)` returns the chain's ChannelView or None; `now_ms()` the chain's time."""

    service: bytes
    price: int
    read_channel: Callable[[int], ChannelView | None]
    now_ms: Callable[[], int]
    claim_margin_ms: int = 60_000
    _accounts: dict[int, _Account] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def authorize(self, payment: Payment) -> None:
        """Accept `payment` for one call, or raise PaymentRefused having changed nothing."""
        with self._lock:
            account = self._accounts.get(payment.channel) or self._load(payment.channel)
            try:
                self._check(account, payment)
            except PaymentRefused as refused:
                if not refused.stale:
                    raise
                account.view = self._read(payment.channel)      # extended or moved on since we read it?
                self._check(account, payment)
            account.amount, account.signature = payment.amount, payment.signature
            account.calls += 1
            account.unclaimed_calls += 1

    def take_claims(self, min_calls: int = 1) -> list[Claim]:
        """The latest payment of every channel owed for at least `min_calls` calls: claimed under its nonce,
        after which payments are accepted under the next nonce from 0."""
        with self._lock:
            claims = []
            for channel, account in self._accounts.items():
                if account.amount and account.unclaimed_calls >= min_calls:
                    account.unclaimed_calls = 0
                    claims.append(Claim(channel, account.nonce, account.amount, account.signature))
                    account.in_flight += account.amount
                    account.nonce, account.amount, account.signature = account.nonce + 1, 0, b""
            return claims

    def settled(self, claim: Claim, view: ChannelView | None) -> None:
        """A claim landed (or failed for good): it is no longer in flight; the chain's view replaces ours."""
        with self._lock:
            account = self._accounts.get(claim.channel)
            if account is not None:
                account.in_flight -= claim.amount
                if view is not None:
                    account.view = view

    def calls(self, channel: int) -> int:
        with self._lock:
            account = self._accounts.get(channel)
            return account.calls if account else 0

    def _load(self, channel: int) -> _Account:
        view = self._read(channel)
        account = self._accounts[channel] = _Account(view=view, nonce=view.nonce)
        return account

    def _read(self, channel: int) -> ChannelView:
        view = self.read_channel(channel)
        if view is None:
            raise PaymentRefused("NOT_FOUND", f"no payment channel {channel} on chain")
        return view

    def _check(self, account: _Account, payment: Payment) -> None:
        view = account.view
        if view.service != self.service:
            raise PaymentRefused("PERMISSION_DENIED", f"channel {payment.channel} pays another service")
        if not view.open:
            raise PaymentRefused("FAILED_PRECONDITION", f"channel {payment.channel} is closed")  # for good
        if self.now_ms() >= view.expiry_ms - self.claim_margin_ms:
            raise PaymentRefused("FAILED_PRECONDITION", f"channel {payment.channel} expires too soon to be claimed: "
                                                        "extend it", stale=True)
        available = view.deposit - account.in_flight
        if payment.nonce != account.nonce:
            raise PaymentRefused("FAILED_PRECONDITION", f"wrong nonce {payment.nonce}: this service takes nonce "
                                 f"{account.nonce} of channel {payment.channel}, from amount 0",
                                 {EXPECTED_NONCE_KEY: str(account.nonce), AVAILABLE_KEY: str(available)})
        if payment.amount <= account.amount:
            raise PaymentRefused("FAILED_PRECONDITION", f"amount {payment.amount} was already paid (the last was "
                                                        f"{account.amount}): a replayed payment")
        if payment.amount - account.amount < self.price:
            raise PaymentRefused("INVALID_ARGUMENT", f"the payment adds {payment.amount - account.amount}; a call "
                                                     f"costs {self.price}")
        if payment.amount > available:
            raise PaymentRefused("RESOURCE_EXHAUSTED", f"amount {payment.amount} is beyond the {available} the "
                                                       f"deposit of channel {payment.channel} has left", stale=True)
        if not verify_payment(view.signer, payment.channel, payment.nonce, payment.amount, payment.signature):
            raise PaymentRefused("UNAUTHENTICATED", "the signature is not the channel signer's")


__all__ = ["AVAILABLE_KEY", "EXPECTED_NONCE_KEY", "PAYMENT_BYTES", "PAYMENT_KEY", "ChannelView", "Claim", "Payment",
           "PaymentGate", "PaymentRefused", "encode_payment", "parse_payment"]
