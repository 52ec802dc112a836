"""pallet_payment_channels: paying for inference call by call without a transaction per call, in the shape of
SingularityNET's multi-party escrow (docs/assets.md).

* `open(service, signing_key, deposit, expiry_ms)`: a client escrows (reserves) `deposit` for a service until
  `expiry_ms` (a Timestamp.Now moment); `signing_key` is the sr25519 public key that signs its payments (its account
  key, or a session key it keeps off chain).
* Each call carries the client's signature over ``CHANNEL_DOMAIN ++ SCALE(channel: u64, nonce: u32, amount:
  u128)``: the cumulative amount it owes under the channel's current nonce. The service checks it off chain
  (workers/serving/payments.py) before any inference runs.
* `claim(channel, amount, signature)`: the service's owner, before the expiry, with the latest signature: the
  amount moves from the client's reserve to the owner, the nonce goes up by one (so no signature can be claimed
  twice) and the client's signed amounts start again from 0 against the deposit that is left.
* `extend(channel, add, expiry_ms)`: the client adds to the deposit or moves the expiry later.
* `reclaim(channel)`: after the expiry the client takes back what is left and the channel closes.

The service never receives more than the client signed (one claim per signature, each at most the deposit), and
the client never loses more than it signed: money moves only by reserve, repatriation and unreserve.
"""
from __future__ import annotations

from typing import Any

from devnet.crypto import verify_signature
from devnet.runtime.context import DispatchContext
from devnet.runtime.framework import BAD_ORIGIN, Constant, ModuleError, Pallet, StorageItem, call
from devnet.runtime.pallets.channels_types import (
    CHANNEL,
    CHANNEL_DOMAIN,
    CHANNEL_ERRORS,
    CHANNEL_EVENTS,
    CHANNELS,
    SERVICE,
    Channel,
)
from devnet.runtime.pallets.timestamp import Timestamp
from devnet.runtime.primitives import MultiSignature
from devnet.scale.types import H256, U64, U128

MAX_CHANNEL_MS = 365 * 86_400_000


def channel_message(channel: int, nonce: int, amount: int) -> bytes:
    """What a client signs for a payment: the domain, then SCALE(channel u64, nonce u32, amount u128)."""
    return CHANNEL_DOMAIN + channel.to_bytes(8, "little") + nonce.to_bytes(4, "little") + amount.to_bytes(16, "little")


class PaymentChannels(Pallet):
    name = "PaymentChannels"
    index = 29
    module = CHANNELS
    events = CHANNEL_EVENTS
    errors = CHANNEL_ERRORS

    Channels = StorageItem(Channel, (("Twox64Concat", U64),), docs="channel -> its parties, deposit, nonce, expiry.")
    NextChannelId = StorageItem(U64, default=0, docs="The id the next channel gets.")

    def __init__(self, balances: Any, services: Any) -> None:
        self.balances, self.services = balances, services
        self.constants = (Constant("MaxChannelMs", U64, MAX_CHANNEL_MS,
                                   "How far ahead of now (ms) a channel's expiry may be."),)

    @call(0, SERVICE, ("signing_key", H256, "[u8; 32]"), ("deposit", U128, "BalanceOf<T>"),
          ("expiry_ms", U64, "T::Moment"), weight=200_000_000)
    def open(self, ctx: DispatchContext, origin: bytes | None, service: bytes, signing_key: bytes, deposit: int,
             expiry_ms: int) -> None:
        """Escrow `deposit` for `service` until `expiry_ms`; `signing_key` signs the payments."""
        sender = _signed(origin)
        record = self.services.active(ctx.state, service)
        if record is None:
            raise self.error("ServiceUnavailable")
        if deposit <= 0:
            raise self.error("InvalidDeposit")
        self._check_expiry(ctx, expiry_ms, 0)
        try:
            self.balances.reserve(ctx, sender, deposit)
        except ModuleError:
            raise self.error("CannotPayDeposit") from None
        channel = self.NextChannelId.get(ctx.state)
        self.NextChannelId.set(ctx.state, channel + 1)
        self.Channels.set(ctx.state, channel, {
            "sender": sender, "recipient": bytes(record["owner"]), "service": service,
            "signing_key": signing_key,
            "deposit": deposit, "nonce": 0, "expiry_ms": expiry_ms, "claimed": 0, "open": True})
        ctx.deposit_event(self, "ChannelOpened", {"channel": channel, "sender": sender, "service": service,
                                                  "deposit": deposit, "expiry_ms": expiry_ms})

    @call(1, CHANNEL, ("amount", U128, "BalanceOf<T>"), ("signature", MultiSignature, "MultiSignature"),
          weight=250_000_000)
    def claim(self, ctx: DispatchContext, origin: bytes | None, channel: int, amount: int, signature: Any) -> None:
        """The service's owner claims the latest signed amount; the nonce moves on."""
        who = _signed(origin)
        record = self._open_channel(ctx, channel)
        if bytes(record["recipient"]) != who:
            raise self.error("NotRecipient")
        if Timestamp.Now.get(ctx.state) >= record["expiry_ms"]:
            raise self.error("ChannelExpired")
        if not 0 < amount <= record["deposit"]:
            raise self.error("InvalidAmount")
        scheme, raw = signature
        if scheme != "Sr25519" or not verify_signature(
                scheme, bytes(raw), channel_message(channel, record["nonce"], amount), bytes(record["signing_key"])):
            raise self.error("BadSignature")
        self.balances.repatriate_reserved(ctx, bytes(record["sender"]), who, amount, "Free")
        record.update(deposit=record["deposit"] - amount, nonce=record["nonce"] + 1,
                      claimed=record["claimed"] + amount)
        self.Channels.set(ctx.state, channel, record)
        ctx.deposit_event(self, "ChannelClaimed", {"channel": channel, "amount": amount, "nonce": record["nonce"]})

    @call(2, CHANNEL, ("add", U128, "BalanceOf<T>"), ("expiry_ms", U64, "T::Moment"), weight=150_000_000)
    def extend(self, ctx: DispatchContext, origin: bytes | None, channel: int, add: int, expiry_ms: int) -> None:
        """The client adds `add` to the deposit (0: none) and moves the expiry to `expiry_ms` (never earlier)."""
        record = self._sent(ctx, origin, channel)
        self._check_expiry(ctx, expiry_ms, record["expiry_ms"])
        if add:
            try:
                self.balances.reserve(ctx, bytes(record["sender"]), add)
            except ModuleError:
                raise self.error("CannotPayDeposit") from None
        record.update(deposit=record["deposit"] + add, expiry_ms=expiry_ms)
        self.Channels.set(ctx.state, channel, record)
        ctx.deposit_event(self, "ChannelExtended", {"channel": channel, "deposit": record["deposit"],
                                                    "expiry_ms": expiry_ms})

    @call(3, CHANNEL, weight=150_000_000)
    def reclaim(self, ctx: DispatchContext, origin: bytes | None, channel: int) -> None:
        """After the expiry the client takes back what is left; the channel closes."""
        record = self._sent(ctx, origin, channel)
        if Timestamp.Now.get(ctx.state) < record["expiry_ms"]:
            raise self.error("NotExpired")
        amount = record["deposit"]
        if amount:
            self.balances.unreserve(ctx, bytes(record["sender"]), amount)
        record.update(deposit=0, open=False)
        self.Channels.set(ctx.state, channel, record)
        ctx.deposit_event(self, "ChannelReclaimed", {"channel": channel, "amount": amount})

    def _check_expiry(self, ctx: DispatchContext, expiry_ms: int, previous: int) -> None:
        now = Timestamp.Now.get(ctx.state)
        if not (now < expiry_ms <= now + MAX_CHANNEL_MS and expiry_ms >= previous):
            raise self.error("InvalidExpiry")

    def _open_channel(self, ctx: DispatchContext, channel: int) -> dict[str, Any]:
        record = self.Channels.get(ctx.state, channel)
        if record is None:
            raise self.error("ChannelNotFound")
        if not record["open"]:
            raise self.error("ChannelClosed")
        return record

    def _sent(self, ctx: DispatchContext, origin: bytes | None, channel: int) -> dict[str, Any]:
        who = _signed(origin)
        record = self._open_channel(ctx, channel)
        if bytes(record["sender"]) != who:
            raise self.error("NotSender")
        return record


def _signed(origin: bytes | None) -> bytes:
    if origin is None:
        raise BAD_ORIGIN
    return origin


__all__ = ["MAX_CHANNEL_MS", "PaymentChannels", "channel_message"]
