"""ModelServices and PaymentChannels in process (devnet/runtime/pallets/services.py, channels.py): only an
accepted model's owner serves it; a channel escrows, the service claims the latest signed amount once per nonce,
the client extends or reclaims after the expiry; every bad input refused by name with nothing changed, and a
property test over random channel operations: the service never receives more than the client signed, the
client never loses more than it signed, and no planck is created or lost."""
from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from privacy_harness import OUTSIDER, OWNERS, UNIT, DpHarness

from devnet.crypto import blake2_256
from devnet.runtime.pallets.balances import Balances
from devnet.runtime.pallets.channels import PaymentChannels as PC
from devnet.runtime.pallets.channels import channel_message
from devnet.runtime.pallets.system import System

OWNER, CLIENT = OWNERS[:2]
MODEL = blake2_256(b"an accepted model")
PRICE = UNIT // 100
DAY_MS = 86_400_000


class Harness(DpHarness):
    def __init__(self) -> None:
        super().__init__()
        self.runtime.models.register(self.ctx, MODEL, {
            "owner": OWNER.public_key, "trainer": OUTSIDER.public_key, "task_id": 0, "recipe": b"digits_mlp",
            "dataset_hash": bytes(32), "parent": None, "metrics": [], "artifact_uri": b"file:///m",
            "attestation_hash": bytes(32), "block": 1})

    def refused(self, error: str, who: Any, call: str, pallet: str = "PaymentChannels", **args: Any) -> None:
        before, events = self.snapshot(), len(self.ctx.events)
        assert self.dispatch(who, call, pallet, **args) == error
        assert self.snapshot() == before and len(self.ctx.events) == events

    def serve(self) -> None:
        self.ok(OWNER, "register", "ModelServices", service=MODEL, price_per_call=PRICE, endpoint=b"grpc://x:8001")

    def open(self, deposit: int = UNIT, expiry_ms: int | None = None) -> int:
        channel = PC.NextChannelId.get(self.ctx.state)
        self.ok(CLIENT, "open", "PaymentChannels", service=MODEL, signing_key=CLIENT.public_key, deposit=deposit,
                expiry_ms=expiry_ms or self.ctx.timestamp_ms + DAY_MS)
        return channel

    def signed(self, channel: int, amount: int, signer: Any = CLIENT, nonce: int | None = None) -> Any:
        nonce = PC.Channels.get(self.ctx.state, channel)["nonce"] if nonce is None else nonce
        return "Sr25519", signer.sign(channel_message(channel, nonce, amount))

    def account(self, who: Any) -> dict[str, int]:
        data = System.Account.get(self.ctx.state, who.public_key)["data"]
        return {"free": int(data["free"]), "reserved": int(data["reserved"])}

    def wait_ms(self, ms: int) -> None:
        self.ctx.timestamp_ms += ms
        from devnet.runtime.pallets.timestamp import Timestamp

        Timestamp.Now.set(self.ctx.state, self.ctx.timestamp_ms)


@pytest.fixture
def h() -> Harness:
    return Harness()


def test_only_an_accepted_models_owner_registers_its_service(h: Harness) -> None:
    args = {"service": MODEL, "price_per_call": PRICE, "endpoint": b"grpc://x:8001"}
    h.refused("ModelServices.ModelNotAccepted", OWNER, "register", "ModelServices",
              **{**args, "service": blake2_256(b"never accepted")})
    h.refused("ModelServices.NotModelOwner", CLIENT, "register", "ModelServices", **args)
    h.refused("ModelServices.InvalidPrice", OWNER, "register", "ModelServices", **{**args, "price_per_call": 0})
    h.refused("ModelServices.EndpointTooLong", OWNER, "register", "ModelServices", **{**args, "endpoint": b"x" * 257})
    h.serve()
    h.refused("ModelServices.AlreadyRegistered", OWNER, "register", "ModelServices", **args)
    h.refused("ModelServices.NotModelOwner", CLIENT, "update", "ModelServices", **args, active=False)


def test_a_channel_pays_the_latest_signed_amount_once_then_returns_the_rest(h: Harness) -> None:
    h.serve()
    client, owner = h.account(CLIENT), h.account(OWNER)
    channel = h.open(deposit=UNIT)
    assert h.account(CLIENT)["reserved"] - client["reserved"] == UNIT
    first = h.signed(channel, 30 * PRICE)
    h.refused("PaymentChannels.NotRecipient", CLIENT, "claim", channel=channel, amount=30 * PRICE, signature=first)
    h.refused("PaymentChannels.BadSignature", OWNER, "claim", channel=channel, amount=31 * PRICE, signature=first)
    h.refused("PaymentChannels.BadSignature", OWNER, "claim", channel=channel, amount=30 * PRICE,
              signature=h.signed(channel, 30 * PRICE, signer=OUTSIDER))
    h.refused("PaymentChannels.InvalidAmount", OWNER, "claim", channel=channel, amount=2 * UNIT,
              signature=h.signed(channel, 2 * UNIT))
    h.ok(OWNER, "claim", "PaymentChannels", channel=channel, amount=30 * PRICE, signature=first)
    h.refused("PaymentChannels.BadSignature", OWNER, "claim", channel=channel, amount=30 * PRICE,
              signature=first)                      # the nonce moved on: no replay
    h.ok(OWNER, "claim", "PaymentChannels", channel=channel, amount=10 * PRICE,
         signature=h.signed(channel, 10 * PRICE))
    assert h.account(OWNER)["free"] - owner["free"] == 40 * PRICE
    h.refused("PaymentChannels.NotExpired", CLIENT, "reclaim", channel=channel)
    h.refused("PaymentChannels.NotSender", OWNER, "extend", channel=channel, add=0,
              expiry_ms=h.ctx.timestamp_ms + 2 * DAY_MS)
    h.ok(CLIENT, "extend", "PaymentChannels", channel=channel, add=UNIT, expiry_ms=h.ctx.timestamp_ms + 2 * DAY_MS)
    h.refused("PaymentChannels.InvalidExpiry", CLIENT, "extend", channel=channel, add=0,
              expiry_ms=h.ctx.timestamp_ms + DAY_MS)
    h.wait_ms(2 * DAY_MS)
    h.refused("PaymentChannels.ChannelExpired", OWNER, "claim", channel=channel, amount=PRICE,
              signature=h.signed(channel, PRICE))
    h.ok(CLIENT, "reclaim", "PaymentChannels", channel=channel)
    after = h.account(CLIENT)
    assert after["reserved"] == client["reserved"] and after["free"] == client["free"] - 40 * PRICE
    h.refused("PaymentChannels.ChannelClosed", CLIENT, "reclaim", channel=channel)
    h.refused("PaymentChannels.ChannelClosed", OWNER, "claim", channel=channel, amount=PRICE,
              signature=h.signed(channel, PRICE))


def test_opening_refuses_what_cannot_be_paid_or_served(h: Harness) -> None:
    args = {"service": MODEL, "signing_key": CLIENT.public_key, "deposit": UNIT,
            "expiry_ms": h.ctx.timestamp_ms + DAY_MS}
    h.refused("PaymentChannels.ServiceUnavailable", CLIENT, "open", **args)
    h.serve()
    h.refused("PaymentChannels.InvalidDeposit", CLIENT, "open", **{**args, "deposit": 0})
    h.refused("PaymentChannels.InvalidExpiry", CLIENT, "open", **{**args, "expiry_ms": h.ctx.timestamp_ms})
    h.refused("PaymentChannels.InvalidExpiry", CLIENT, "open",
              **{**args, "expiry_ms": h.ctx.timestamp_ms + 400 * DAY_MS})
    h.refused("PaymentChannels.CannotPayDeposit", CLIENT, "open", **{**args, "deposit": 10**9 * UNIT})
    h.refused("PaymentChannels.ChannelNotFound", OWNER, "claim", channel=7, amount=1,
              signature=h.signed(7, 1, nonce=0))
    h.ok(OWNER, "update", "ModelServices", service=MODEL, price_per_call=PRICE, endpoint=b"", active=False)
    h.refused("PaymentChannels.ServiceUnavailable", CLIENT, "open", **args)


OPS = st.lists(st.one_of(
    st.tuples(st.just("sign"), st.integers(1, 40)),            # one more paid call of 1..40 prices
    st.tuples(st.just("claim"), st.booleans()),                 # claim the latest signature (True) or replay one
    st.tuples(st.just("extend"), st.integers(0, 3)),
    st.tuples(st.just("wait"), st.integers(0, 2)),              # days
    st.tuples(st.just("reclaim"), st.just(0)),
), max_size=30)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(OPS)
def test_nobody_gets_more_than_was_signed_nor_loses_more(ops: list[tuple[str, Any]]) -> None:
    h = Harness()
    h.serve()
    issuance = int(Balances.TotalIssuance.get(h.ctx.state))
    client, owner = h.account(CLIENT), h.account(OWNER)
    channel = h.open(deposit=UNIT // 4)
    signed_total, claimed_total, owed, latest, old = 0, 0, 0, None, []   # owed: signed under the current nonce
    for op, arg in ops:
        record = PC.Channels.get(h.ctx.state, channel)
        if op == "sign" and owed + arg * PRICE <= record["deposit"]:
            owed += arg * PRICE
            latest = (owed, h.signed(channel, owed))
        elif op == "claim" and (latest if arg else (old[-1] if old else None)):
            amount, signature = latest if arg else old[-1]
            if h.dispatch(OWNER, "claim", "PaymentChannels", channel=channel, amount=amount,
                          signature=signature) is None:
                assert arg, "a replayed signature was paid"
                claimed_total += amount
                signed_total += amount
                old.append(latest)
                owed, latest = 0, None
        elif op == "extend":
            h.dispatch(CLIENT, "extend", "PaymentChannels", channel=channel, add=arg * UNIT // 10,
                       expiry_ms=record["expiry_ms"] + arg * DAY_MS)
        elif op == "wait":
            h.wait_ms(arg * DAY_MS)
        elif op == "reclaim":
            h.dispatch(CLIENT, "reclaim", "PaymentChannels", channel=channel)
    gained = h.account(OWNER)["free"] - owner["free"]
    lost = (client["free"] + client["reserved"]) - (h.account(CLIENT)["free"] + h.account(CLIENT)["reserved"])
    assert gained == lost == claimed_total <= signed_total + owed
    assert int(Balances.TotalIssuance.get(h.ctx.state)) == issuance
    record = PC.Channels.get(h.ctx.state, channel)
    assert h.account(CLIENT)["reserved"] - client["reserved"] == (record["deposit"] if record["open"] else 0)
