"""Types, events and errors of pallet_model_services and pallet_payment_channels (services.py, channels.py)."""
from __future__ import annotations

from devnet.runtime.framework import ErrorDef, EventDef
from devnet.runtime.pallets.models import BoundedBytes
from devnet.scale.types import H256, U32, U64, U128, AccountId, Bool, Composite, fields

SERVICES = "pallet_model_services"
CHANNELS = "pallet_payment_channels"
BALANCE = "BalanceOf<T>"
SERVICE = ("service", H256, "H256")       # a service is keyed by the accepted model's hash
CHANNEL = ("channel", U64, "ChannelId")
CHANNEL_DOMAIN = b"paratrain/channel/v1"

ServiceRecord = Composite((SERVICES, "types", "ServiceRecord"), fields(
    ("owner", AccountId, "T::AccountId"), ("price_per_call", U128, BALANCE),
    ("endpoint", BoundedBytes, "BoundedVec<u8, T::MaxEndpointLen>"), ("active", Bool, "bool"),
    ("registered_at", U32, "BlockNumberFor<T>")))
Channel = Composite((CHANNELS, "types", "Channel"), fields(
    ("sender", AccountId, "T::AccountId"), ("recipient", AccountId, "T::AccountId"), SERVICE,
    ("signing_key", H256, "[u8; 32]"), ("deposit", U128, BALANCE), ("nonce", U32, "u32"),
    ("expiry_ms", U64, "T::Moment"), ("claimed", U128, BALANCE), ("open", Bool, "bool")))

SERVICE_EVENTS = (
    EventDef("ServiceRegistered", fields(SERVICE, ("owner", AccountId, "T::AccountId"),
                                         ("price_per_call", U128, BALANCE)),
             "The owner of an accepted model serves it for `price_per_call` a call at its endpoint."),
    EventDef("ServiceUpdated", fields(SERVICE, ("price_per_call", U128, BALANCE), ("active", Bool, "bool")),
             "The owner changed the price or the endpoint, or retired the service (active false)."),
)
SERVICE_ERRORS = tuple(ErrorDef(n, d) for n, d in (
    ("ModelNotAccepted", "Only a model with an accepted verdict (a Models record) can be served."),
    ("NotModelOwner", "Only the model's owner registers or changes its service."),
    ("AlreadyRegistered", "This model already has a service."),
    ("ServiceNotFound", "No service for this model."),
    ("InvalidPrice", "The price per call must be above 0."),
    ("EndpointTooLong", "The endpoint is longer than MaxEndpointLen bytes."),
))
CHANNEL_EVENTS = (
    EventDef("ChannelOpened", fields(CHANNEL, ("sender", AccountId, "T::AccountId"), SERVICE,
                                     ("deposit", U128, BALANCE), ("expiry_ms", U64, "T::Moment")),
             "A client escrowed `deposit` for a service until `expiry_ms` (a Timestamp.Now moment)."),
    EventDef("ChannelClaimed", fields(CHANNEL, ("amount", U128, BALANCE), ("nonce", U32, "u32")),
             "The service claimed `amount` with the client's latest signature; the channel's nonce is now "
             "`nonce` and signed amounts start again from 0."),
    EventDef("ChannelExtended", fields(CHANNEL, ("deposit", U128, BALANCE), ("expiry_ms", U64, "T::Moment")),
             "The client added to the deposit or moved the expiry later."),
    EventDef("ChannelReclaimed", fields(CHANNEL, ("amount", U128, BALANCE)),
             "After the expiry the client took back what was left; the channel is closed."),
)
CHANNEL_ERRORS = tuple(ErrorDef(n, d) for n, d in (
    ("ChannelNotFound", "No payment channel with this id."),
    ("ServiceUnavailable", "The service does not exist or is retired."),
    ("InvalidDeposit", "A deposit (or an extension) must be above 0."),
    ("InvalidExpiry", "The expiry must be in the future, at most MaxChannelMs ahead, and never earlier than before."),
    ("CannotPayDeposit", "The sender's free balance does not cover the deposit."),
    ("NotRecipient", "Only the service's owner claims from a channel."),
    ("NotSender", "Only the client that opened the channel extends or reclaims it."),
    ("ChannelExpired", "The channel's expiry passed: the service can no longer claim."),
    ("NotExpired", "The channel's expiry has not passed: the client cannot reclaim yet."),
    ("ChannelClosed", "The channel was reclaimed and is closed."),
    ("BadSignature", "The signature is not the channel signer's over (channel, nonce, amount)."),
    ("InvalidAmount", "The amount must be above 0 and at most the channel's deposit."),
))

__all__ = ["BALANCE", "CHANNEL", "CHANNELS", "CHANNEL_DOMAIN", "CHANNEL_ERRORS", "CHANNEL_EVENTS", "SERVICE",
           "SERVICES", "SERVICE_ERRORS", "SERVICE_EVENTS", "Channel", "ServiceRecord"]
