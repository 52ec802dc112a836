"""The paid-call gate (workers/serving/payments.py) without a server or a chain: every refusal with the status
that fits and nothing changed, claims taken once with the nonce moving on, extensions seen on refusal."""
from __future__ import annotations

from dataclasses import replace

import pytest
from substrateinterface import Keypair

from runtime_bindings.channels import sign_payment
from workers.serving.payments import (
    EXPECTED_NONCE_KEY,
    PAYMENT_BYTES,
    PAYMENT_KEY,
    ChannelView,
    Payment,
    PaymentGate,
    PaymentRefused,
    encode_payment,
    parse_payment,
)

CLIENT, OTHER = Keypair.create_from_uri("//GateClient"), Keypair.create_from_uri("//GateOther")
SERVICE, PRICE = b"\x01" * 32, 10


class Chain:
    def __init__(self) -> None:
        self.channels = {0: ChannelView(SERVICE, CLIENT.public_key, deposit=100, nonce=0, expiry_ms=10**9, open=True)}
        self.now, self.reads = 1_000, 0

    def read(self, channel: int) -> ChannelView | None:
        self.reads += 1
        return self.channels.get(channel)


@pytest.fixture
def chain() -> Chain:
    return Chain()


@pytest.fixture
def gate(chain: Chain) -> PaymentGate:
    return PaymentGate(SERVICE, PRICE, chain.read, lambda: chain.now)


def pay(amount: int, nonce: int = 0, channel: int = 0, signer: Keypair = CLIENT) -> Payment:
    return Payment(channel, nonce, amount, sign_payment(signer, channel, nonce, amount))


def refused(gate: PaymentGate, payment: Payment, code: str, match: str) -> PaymentRefused:
    calls = gate.calls(payment.channel)
    with pytest.raises(PaymentRefused, match=match) as info:
        gate.authorize(payment)
    assert info.value.code == code and gate.calls(payment.channel) == calls
    return info.value


def test_cumulative_payments_are_accepted_and_claimed_once_under_each_nonce(gate: PaymentGate) -> None:
    for n in range(1, 4):
        gate.authorize(pay(n * PRICE))
    (claim,) = gate.take_claims()
    assert (claim.channel, claim.nonce, claim.amount) == (0, 0, 30)
    assert gate.take_claims() == []                               # nothing new owed: nothing to claim twice
    trailers = refused(gate, pay(40), "FAILED_PRECONDITION", "wrong nonce 0").trailers
    assert trailers[EXPECTED_NONCE_KEY] == "1" and trailers["paratrain-available"] == "70"
    gate.authorize(pay(PRICE, nonce=1))
    refused(gate, pay(71, nonce=1), "RESOURCE_EXHAUSTED", "beyond the 70")   # 30 is still in flight
    gate.settled(claim, ChannelView(SERVICE, CLIENT.public_key, deposit=70, nonce=1, expiry_ms=10**9, open=True))
    gate.authorize(pay(70, nonce=1))
    assert gate.calls(0) == 5


def test_every_bad_payment_is_refused_with_its_status(gate: PaymentGate, chain: Chain) -> None:
    gate.authorize(pay(20))
    refused(gate, pay(20), "FAILED_PRECONDITION", "replayed")
    refused(gate, pay(15), "FAILED_PRECONDITION", "replayed")
    refused(gate, pay(25), "INVALID_ARGUMENT", "a call costs 10")
    refused(gate, pay(30, signer=OTHER), "UNAUTHENTICATED", "not the channel signer")
    forged = pay(30)
    refused(gate, replace(forged, amount=40), "UNAUTHENTICATED", "not the channel signer")
    refused(gate, pay(200), "RESOURCE_EXHAUSTED", "beyond")
    refused(gate, pay(10, channel=9), "NOT_FOUND", "no payment channel 9")
    chain.channels[1] = replace(chain.channels[0], service=b"\x02" * 32)
    refused(gate, pay(10, channel=1), "PERMISSION_DENIED", "another service")
    chain.channels[2] = replace(chain.channels[0], open=False)
    refused(gate, pay(10, channel=2), "FAILED_PRECONDITION", "closed")
    chain.channels[3] = replace(chain.channels[0], expiry_ms=chain.now + 30_000)
    refused(gate, pay(10, channel=3), "FAILED_PRECONDITION", "expires too soon")
    gate.authorize(pay(30))


def test_an_extension_made_since_the_channel_was_read_is_seen(gate: PaymentGate, chain: Chain) -> None:
    gate.authorize(pay(100))
    chain.channels[0] = replace(chain.channels[0], deposit=200)
    reads = chain.reads
    gate.authorize(pay(110))
    assert chain.reads == reads + 1
    refused(gate, pay(110), "FAILED_PRECONDITION", "replayed")
    assert chain.reads == reads + 1                               # a replay costs no chain read


def test_the_payment_metadata_round_trips_and_anything_else_is_an_invalid_argument() -> None:
    payment = pay(10)
    assert parse_payment({PAYMENT_KEY: encode_payment(payment)}) == payment
    assert len(encode_payment(payment)) == PAYMENT_BYTES
    for metadata in ({}, {PAYMENT_KEY: encode_payment(payment)[:-1]}, {PAYMENT_KEY: encode_payment(payment) + b"x"},
                     {PAYMENT_KEY: encode_payment(payment).hex()}):
        with pytest.raises(PaymentRefused) as info:
            parse_payment(metadata)
        assert info.value.code == "INVALID_ARGUMENT"
