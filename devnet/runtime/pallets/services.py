"""pallet_model_services: accepted models sold as inference services (SingularityNET's registry, with provenance).

Only a model with an accepted verdict, a Models record that TaskBounties wrote when a validator quorum accepted
it, can be served, and only by its owner: that is the provenance gate neither SingularityNET nor Ocean has. A
service is keyed by the model's hash and holds the price per call and the endpoint (`paratrain serve` serves
the Open Inference Protocol there); clients pay through PaymentChannels (channels.py).
"""
from __future__ import annotations

from typing import Any

from devnet.runtime.context import DispatchContext
from devnet.runtime.framework import BAD_ORIGIN, Constant, Pallet, StorageItem, call
from devnet.runtime.pallets.channels_types import (
    SERVICE,
    SERVICE_ERRORS,
    SERVICE_EVENTS,
    SERVICES,
    ServiceRecord,
)
from devnet.runtime.pallets.models import BoundedBytes, Models
from devnet.scale.types import H256, U32, U128, Bool

MAX_ENDPOINT_LEN = 256


class ModelServices(Pallet):
    name = "ModelServices"
    index = 28
    module = SERVICES
    events = SERVICE_EVENTS
    errors = SERVICE_ERRORS

    Services = StorageItem(ServiceRecord, (("Identity", H256),), docs="model hash -> its inference service.")

    def __init__(self) -> None:
        self.constants = (Constant("MaxEndpointLen", U32, MAX_ENDPOINT_LEN, "The longest endpoint, in bytes."),)

    @call(0, SERVICE, ("price_per_call", U128, "BalanceOf<T>"),
          ("endpoint", BoundedBytes, "BoundedVec<u8, T::MaxEndpointLen>"), weight=150_000_000)
    def register(self, ctx: DispatchContext, origin: bytes | None, service: bytes, price_per_call: int,
                 endpoint: bytes) -> None:
        """The owner of an accepted model serves it at `endpoint` for `price_per_call` a call."""
        owner = self._model_owner(ctx, origin, service)
        if self.Services.contains(ctx.state, service):
            raise self.error("AlreadyRegistered")
        self._check(price_per_call, endpoint)
        self.Services.set(ctx.state, service, {"owner": owner, "price_per_call": price_per_call,
                                               "endpoint": endpoint, "active": True,
                                               "registered_at": ctx.block_number})
        ctx.deposit_event(self, "ServiceRegistered", {"service": service, "owner": owner,
                                                      "price_per_call": price_per_call})

    @call(1, SERVICE, ("price_per_call", U128, "BalanceOf<T>"),
          ("endpoint", BoundedBytes, "BoundedVec<u8, T::MaxEndpointLen>"), ("active", Bool, "bool"),
          weight=100_000_000)
    def update(self, ctx: DispatchContext, origin: bytes | None, service: bytes, price_per_call: int,
               endpoint: bytes, active: bool) -> None:
        """The owner changes the price or the endpoint, or retires the service (active false): channels already
        open stay claimable until their expiry."""
        self._model_owner(ctx, origin, service)
        record = self.Services.get(ctx.state, service)
        if record is None:
            raise self.error("ServiceNotFound")
        self._check(price_per_call, endpoint)
        record.update(price_per_call=price_per_call, endpoint=endpoint, active=active)
        self.Services.set(ctx.state, service, record)
        ctx.deposit_event(self, "ServiceUpdated", {"service": service, "price_per_call": price_per_call,
                                                   "active": active})

    def active(self, state: Any, service: bytes) -> dict[str, Any] | None:
        record = self.Services.get(state, service)
        return record if record is not None and record["active"] else None

    def _model_owner(self, ctx: DispatchContext, origin: bytes | None, service: bytes) -> bytes:
        if origin is None:
            raise BAD_ORIGIN
        model = Models.Models.get(ctx.state, service)
        if model is None:
            raise self.error("ModelNotAccepted")
        if bytes(model["owner"]) != origin:
            raise self.error("NotModelOwner")
        return origin

    def _check(self, price_per_call: int, endpoint: bytes) -> None:
        if price_per_call <= 0:
            raise self.error("InvalidPrice")
        if len(endpoint) > MAX_ENDPOINT_LEN:
            raise self.error("EndpointTooLong")


__all__ = ["MAX_ENDPOINT_LEN", "ModelServices"]
