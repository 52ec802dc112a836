"""Paid inference end to end over real sockets: a devnet process, an accepted model (a digits_mlp the trainer
trained and a validator accepted through TaskBounties), its owner's service registered on chain, `paratrain
serve`'s gRPC server (Open Inference Protocol, health, reflection) on loopback, and a client paying through a
payment channel. Calls are paid and served, claims made, the client's refund after the expiry, balances exact to
the planck; replayed, forged, over-spent, wrongly-nonced and unpaid calls refused with their gRPC status before
any inference, and nothing lost for either side."""
from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import grpc
import numpy as np
import pytest

from paratrain._local.serving import accepted_model
from runtime_bindings import Chain, Keypair
from runtime_bindings.values import H256, Bytes
from workers.artifacts import ArtifactStore
from workers.serving.client import PaidClient, PaymentError
from workers.serving.model import ModelNotServable, load_accepted_model
from workers.serving.payments import PAYMENT_KEY, PaymentGate
from workers.serving.server import ChainClock, Claimer, InferenceHandlers, build_server, channel_view

pytestmark = pytest.mark.slow  # a devnet process, torch, a gRPC server

UNIT = 10**12
ALICE, BOB, CHARLIE, DAVE, EVE = (Keypair.create_from_uri(f"//{n}") for n in ("Alice", "Bob", "Charlie", "Dave",
                                                                                "Eve"))
PRICE = UNIT // 1000
HOUR_MS = 3_600_000


@pytest.fixture(scope="module")
def world(devnet, tmp_path_factory) -> Iterator[dict[str, Any]]:
    store = ArtifactStore(tmp_path_factory.mktemp("owner-store"))
    with Chain.connect(devnet.ws_url, timeout=20) as chain:
        made = accepted_model(chain, store, ALICE, BOB, DAVE)
        assert chain.models.models(made.model_hash) is not None
        model_hash, module = made.model_hash, made.module
        yield {"chain": chain, "store": store, "model_hash": model_hash, "module": module, "url": devnet.ws_url}


@pytest.fixture(scope="module")
def server(world: dict[str, Any]) -> Iterator[dict[str, Any]]:
    chain, model_hash = world["chain"], world["model_hash"]
    receipt = chain.model_services.register(ALICE, model_hash, PRICE, Bytes(b"grpc://127.0.0.1"))
    fees = {"claims": 0, "service": int(receipt.fee or 0)}
    model = load_accepted_model(chain, world["store"], model_hash)
    lock = threading.Lock()

    def read_channel(channel: int) -> Any:
        with lock:       # the bindings are not thread-safe: the test thread reads the same connection
            return channel_view(chain.payment_channels.channels(channel))

    with Chain.connect(world["url"], timeout=20) as claims_chain:
        clock = ChainClock(lambda: int(claims_chain.timestamp.now()))
        gate = PaymentGate(bytes(H256.from_value(model_hash)), PRICE, read_channel, clock.now_ms)
        claimer = Claimer(gate, claims_chain, ALICE, claim_every=10**9, clock=clock)
        grpc_server, port = build_server(InferenceHandlers(model, gate, on_paid=claimer.paid), "127.0.0.1:0")
        grpc_server.start()
        try:
            yield {"gate": gate, "claimer": claimer, "target": f"127.0.0.1:{port}", "fees": fees, "lock": lock,
                   "model": model}
        finally:
            grpc_server.stop(0)


def free(chain: Chain, who: Keypair) -> int:
    account = chain.system.account(who.ss58_address)
    return int(account.data.free)


def test_only_an_accepted_model_can_be_loaded_for_serving(world: dict[str, Any]) -> None:
    with pytest.raises(ModelNotServable, match="not an accepted model"):
        load_accepted_model(world["chain"], world["store"], "0x" + "11" * 32)


def test_paid_calls_are_served_claimed_and_the_rest_refunded_to_the_planck(world: dict[str, Any],
                                                                           server: dict[str, Any]) -> None:
    chain, model_hash = world["chain"], world["model_hash"]
    with server["lock"]:
        alice, charlie = free(chain, ALICE), free(chain, CHARLIE)
        opened = chain.payment_channels.open(CHARLIE, model_hash, H256(CHARLIE.public_key), 100 * PRICE,
                                             int(chain.timestamp.now()) + HOUR_MS)
    channel = int(next(e.channel for e in opened.events if e.name == "ChannelOpened"))
    client = PaidClient(server["target"], model_hash, CHARLIE, channel, PRICE)
    x = np.random.default_rng(0).uniform(0, 16, size=(3, 64)).astype(np.float32)
    import torch

    expected = world["module"](torch.from_numpy(x)).detach().numpy()
    for _ in range(25):
        out = client.infer(x)
    assert np.allclose(out["logits"], expected, atol=1e-5) and list(out["class"]) == list(expected.argmax(1))
    with server["lock"]:
        (claimed,) = server["claimer"].run_once()
    assert next(e.amount for e in claimed.events if e.name == "ChannelClaimed") == 25 * PRICE
    for _ in range(5):
        client.infer(x[:1])                       # the first of these learns the new nonce and starts from 0
    assert (client.nonce, client.spent) == (1, 30 * PRICE) and server["gate"].calls(channel) == 30
    with server["lock"]:
        (second,) = server["claimer"].run_once()
        chain.rpc("dev_timeTravel", [int(chain.timestamp.now()) + 2 * HOUR_MS])
        reclaimed = chain.payment_channels.reclaim(CHARLIE, channel)
        record = chain.payment_channels.channels(channel)
    assert next(e.amount for e in reclaimed.events if e.name == "ChannelReclaimed") == 70 * PRICE
    assert not record.open and record.claimed == 30 * PRICE
    claim_fees = int(claimed.fee or 0) + int(second.fee or 0)
    with server["lock"]:
        assert free(chain, ALICE) - alice == 30 * PRICE - claim_fees
        assert charlie - free(chain, CHARLIE) == 30 * PRICE + int(opened.fee or 0) + int(reclaimed.fee or 0)
    server["claimer"].clock.refresh()
    with pytest.raises(PaymentError) as info:
        client.infer(x[:1])
    assert info.value.code == grpc.StatusCode.FAILED_PRECONDITION and "closed" in str(info.value)


def test_bad_payments_are_refused_with_their_status_before_any_inference(world: dict[str, Any],
                                                                         server: dict[str, Any]) -> None:
    chain, model_hash = world["chain"], world["model_hash"]
    with server["lock"]:
        opened = chain.payment_channels.open(EVE, model_hash, H256(EVE.public_key), 3 * PRICE,
                                             int(chain.timestamp.now()) + HOUR_MS)
    channel = int(next(e.channel for e in opened.events if e.name == "ChannelOpened"))
    client = PaidClient(server["target"], model_hash, EVE, channel, PRICE)
    x = np.zeros((1, 64), dtype=np.float32)
    client.infer(x)
    predictions = server["model"].predict
    calls: list[int] = []
    server["model"].predict = lambda inputs: calls.append(1) or predictions(inputs)   # counts inferences
    try:
        from paratrain_api.inference import grpc_predict_v2_pb2 as v2
        from workers.serving.serde import encode_input

        tensor, raw = encode_input("input", x)
        request = v2.ModelInferRequest(model_name=model_hash, inputs=[tensor], raw_input_contents=[raw])

        def status(metadata: Any) -> grpc.StatusCode:
            try:
                client.stub.ModelInfer(request, metadata=metadata, timeout=10)
            except grpc.RpcError as exc:
                return exc.code()
            return grpc.StatusCode.OK

        replay = client.payment(PRICE)
        assert status(replay) == grpc.StatusCode.FAILED_PRECONDITION                      # already paid
        forged = PaidClient(server["target"], model_hash, CHARLIE, channel, PRICE, owed=PRICE)
        assert status(forged.payment(2 * PRICE)) == grpc.StatusCode.UNAUTHENTICATED
        assert status(client.payment(10 * PRICE)) == grpc.StatusCode.RESOURCE_EXHAUSTED   # beyond the deposit
        wrong = PaidClient(server["target"], model_hash, EVE, channel, PRICE, nonce=3, owed=PRICE)
        assert status(wrong.payment(2 * PRICE)) == grpc.StatusCode.FAILED_PRECONDITION
        assert status(()) == grpc.StatusCode.INVALID_ARGUMENT                              # no payment
        assert status(((PAYMENT_KEY, b"\x00" * 91),)) == grpc.StatusCode.INVALID_ARGUMENT
        assert calls == []                                                                 # nothing inferred
        client.infer(x)
        assert calls == [1] and client.spent == 2 * PRICE
    finally:
        server["model"].predict = predictions


def test_health_and_reflection_answer(server: dict[str, Any]) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    with grpc.insecure_channel(server["target"]) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for name in ("", "inference.GRPCInferenceService"):
            answer = health.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        (reply,) = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
                                             timeout=5)
        names = {s.name for s in reply.list_services_response.service}
        assert {"inference.GRPCInferenceService", "grpc.health.v1.Health"} <= names
