"""`paratrain serve`: the Open Inference Protocol over gRPC (KServe v2, paratrain_api.inference), with the
standard health service and reflection, every ModelInfer paid through a payment channel.

The servicer only translates between protobuf and the handlers (as Flower's do); `InferenceHandlers` holds the
logic: the model name, then the payment (payments.PaymentGate, before any inference runs), then the tensors
(serde) and the model. A refusal is the status its cause names, with the gate's trailers (the nonce to use).
`Claimer` claims the latest payment of a channel on chain once it pays for `claim_every` calls, and of every
channel owed anything each `claim_interval_s` seconds and on the way out, on its own chain connection (the
bindings are not thread-safe). A claim is an extrinsic: batching them is what keeps a paid call cheap.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent import futures
from dataclasses import dataclass
from typing import Any

import grpc

from paratrain_api.inference import grpc_predict_v2_pb2 as v2
from paratrain_api.inference import grpc_predict_v2_pb2_grpc as v2_grpc
from workers.serving.payments import ChannelView, Claim, PaymentGate, PaymentRefused, parse_payment
from workers.serving.serde import TensorError, decode_inputs, encode_outputs, tensor_metadata

log = logging.getLogger(__name__)
SERVICE_NAME = "inference.GRPCInferenceService"
MAX_MESSAGE_BYTES = 8 << 20


class ModelNotFound(LookupError):
    pass


class InferenceHandlers:
    """What each call does; `gate` None serves without payment (the benchmark's baseline)."""

    def __init__(self, model: Any, gate: PaymentGate | None, *, on_paid: Callable[[], None] | None = None) -> None:
        self.model, self.gate, self._on_paid = model, gate, on_paid

    def check_model(self, name: str) -> None:
        if name not in ("", self.model.name):
            raise ModelNotFound(f"this server serves model {self.model.name}, not {name!r}")

    def infer(self, request: Any, metadata: Mapping[str, Any]) -> Any:
        self.check_model(request.model_name)
        if self.gate is not None:
            self.gate.authorize(parse_payment(metadata))
            if self._on_paid is not None:
                self._on_paid()
        outputs = self.model.predict(decode_inputs(request, self.model.inputs))
        return encode_outputs(self.model, request.id, outputs)


class InferenceServicer(v2_grpc.GRPCInferenceServiceServicer):
    def __init__(self, handlers: InferenceHandlers) -> None:
        self.handlers = handlers

    def ServerLive(self, request: Any, context: Any) -> Any:  # noqa: N802
        return v2.ServerLiveResponse(live=True)

    def ServerReady(self, request: Any, context: Any) -> Any:  # noqa: N802
        return v2.ServerReadyResponse(ready=True)

    def ModelReady(self, request: Any, context: Any) -> Any:  # noqa: N802
        return v2.ModelReadyResponse(ready=request.name in ("", self.handlers.model.name))

    def ServerMetadata(self, request: Any, context: Any) -> Any:  # noqa: N802
        return v2.ServerMetadataResponse(name="paratrain", version="1", extensions=["paratrain-payment-channels"])

    def ModelMetadata(self, request: Any, context: Any) -> Any:  # noqa: N802
        model = self.handlers.model
        try:
            self.handlers.check_model(request.name)
        except ModelNotFound as exc:
            context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
        return v2.ModelMetadataResponse(name=model.name, versions=[model.version], platform="pytorch",
                                        inputs=tensor_metadata(model.inputs), outputs=tensor_metadata(model.outputs))

    def ModelInfer(self, request: Any, context: Any) -> Any:  # noqa: N802
        try:
            return self.handlers.infer(request, dict(context.invocation_metadata()))
        except PaymentRefused as refused:
            if refused.trailers:
                context.set_trailing_metadata(tuple(refused.trailers.items()))
            context.abort(grpc.StatusCode[refused.code], str(refused))
        except ModelNotFound as exc:
            context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
        except TensorError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))


def build_server(handlers: InferenceHandlers, address: str, *, threads: int = 8) -> tuple[Any, int]:
    """A started-ready gRPC server on `address` (port 0: any): the inference service, health (SERVING for the
    server and the service) and reflection. Returns (server, port); call `.start()`."""
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha import reflection

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=threads), options=[
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES), ("grpc.max_send_message_length", MAX_MESSAGE_BYTES)])
    v2_grpc.add_GRPCInferenceServiceServicer_to_server(InferenceServicer(handlers), server)
    health_servicer = health.HealthServicer()
    for name in ("", SERVICE_NAME):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection((SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    port = server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"cannot listen on {address}")
    return server, port


class ChainClock:
    """The chain's time (Timestamp.Now, ms) extrapolated with the local clock between reads, so a paid call
    costs no chain read; `refresh` from the claimer's loop."""

    def __init__(self, read_ms: Callable[[], int]) -> None:
        self._read, self._lock = read_ms, threading.Lock()
        self._at, self._chain_ms = time.monotonic(), read_ms()

    def refresh(self) -> None:
        chain_ms = self._read()
        with self._lock:
            self._at, self._chain_ms = time.monotonic(), chain_ms

    def now_ms(self) -> int:
        with self._lock:
            return self._chain_ms + int((time.monotonic() - self._at) * 1000)


def channel_view(record: Any) -> ChannelView | None:
    """A PaymentChannels.Channels record as the gate reads it."""
    if record is None:
        return None
    return ChannelView(bytes(record.service), bytes(record.signing_key), int(record.deposit), int(record.nonce),
                       int(record.expiry_ms), bool(record.open))


@dataclass
class Claimer:
    """Claims what the gate took, with the service owner's key; a claim that fails on a connection error is
    tried again next time, one the chain refuses is dropped (logged)."""

    gate: PaymentGate
    chain: Any
    keypair: Any
    claim_every: int = 1000
    claim_interval_s: float = 10.0
    clock: ChainClock | None = None

    def __post_init__(self) -> None:
        self._retry: list[Claim] = []
        self._paid_since = 0
        self._wake, self._stop = threading.Event(), threading.Event()
        self.claims_made = 0

    def paid(self) -> None:
        """One paid call served (the handlers' hook)."""
        self._paid_since += 1
        if self._paid_since >= self.claim_every:
            self._wake.set()

    def run_once(self, min_calls: int = 1) -> list[Any]:
        """Claim what channels owe for at least `min_calls` calls (1: everything owed); the receipts of the
        claims that landed."""
        from runtime_bindings import BindingsError, DispatchError
        from runtime_bindings.generated.types import MultiSignature

        self._paid_since = 0
        receipts = []
        for claim in self._retry + self.gate.take_claims(min_calls):
            try:
                receipt = self.chain.payment_channels.claim(self.keypair, claim.channel, claim.amount,
                                                            MultiSignature.Sr25519(claim.signature))
            except DispatchError as exc:
                log.error("channel %d: the chain refused the claim of %d: %s", claim.channel, claim.amount, exc)
                self.gate.settled(claim, None)
                continue
            except BindingsError as exc:
                log.warning("channel %d: claim of %d failed, tried again: %s", claim.channel, claim.amount, exc)
                self._retry.append(claim)
                continue
            if claim in self._retry:
                self._retry.remove(claim)
            self.claims_made += 1
            receipts.append(receipt)
            self.gate.settled(claim, channel_view(self.chain.payment_channels.channels(claim.channel)))
        if self.clock is not None:
            self.clock.refresh()
        return receipts

    def run(self) -> None:
        while not self._stop.is_set():
            woken = self._wake.wait(self.claim_interval_s)
            self._wake.clear()
            self.run_once(self.claim_every if woken and not self._stop.is_set() else 1)

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()


__all__ = ["ChainClock", "Claimer", "InferenceHandlers", "InferenceServicer", "ModelNotFound", "build_server",
           "channel_view"]
