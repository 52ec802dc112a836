"""The transaction pool and block building of an in-process Chain, fed signed extrinsics.

The extrinsics are built by tests/unit/xt_builder.py from FRAME's layout and
signed with substrate-interface's Keypair; the first tests prove that builder
byte-identical to what substrate-interface itself produces.
"""
from __future__ import annotations

from typing import Any

import pytest
from xt_builder import (
    additional_bytes,
    default_reference,
    dev_keypair,
    extra_bytes,
    reference_signed_extrinsic,
    signed_extrinsic,
    signing_payload,
    transfer,
    transfer_call,
)

from devnet.chain import AlreadyImported, Chain, PriorityTooLow
from devnet.crypto import blake2_256
from devnet.runtime.context import DispatchContext
from devnet.runtime.extrinsic import encode_unsigned
from devnet.runtime.framework import ErrorDef, EventDef, Pallet, StorageItem, call
from devnet.runtime.pallets.balances import Balances
from devnet.runtime.pallets.system import System
from devnet.runtime.runtime import EXISTENTIAL_DEPOSIT, Runtime
from devnet.runtime.validity import BadFormat, InvalidTransaction, UnknownTransaction
from devnet.scale.types import U32, fields

UNIT = 10**12
ALICE, BOB, CHARLIE, DAVE = (dev_keypair(n) for n in ("Alice", "Bob", "Charlie", "Dave"))


class Faulty(Pallet):
    """A test pallet whose calls write storage and deposit an event before failing."""

    name = "Faulty"
    index = 99
    module = "pallet_faulty"

    Marker = StorageItem(U32, default=0, docs="Written by every call.")
    events = (EventDef("Wrote", fields(("value", U32, "u32")), "A call wrote Marker."),)
    errors = (ErrorDef("Boom", "An odd value was written."),)

    @call(0, ("value", U32, "u32"), weight=1_000_000)
    def write_then_fail(self, ctx: DispatchContext, origin: bytes | None, value: int) -> None:
        """Write `value`; fail with Boom when it is odd."""
        Faulty.Marker.set(ctx.state, value)
        ctx.deposit_event(Faulty, "Wrote", {"value": value})
        if value % 2:
            raise Faulty.error("Boom")

    @call(1, weight=1_000_000)
    def write_then_crash(self, ctx: DispatchContext, origin: bytes | None) -> None:
        """Write, then hit a bug in the runtime (an exception that is no DispatchError)."""
        Faulty.Marker.set(ctx.state, 12345)
        ctx.deposit_event(Faulty, "Wrote", {"value": 12345})
        raise RuntimeError("a bug in a pallet")


@pytest.fixture
def chain() -> Chain:
    return Chain(Runtime(extra_pallets=(Faulty(),)))


def xfer(chain: Chain, signer: Any, dest: Any, value: int, nonce: int, tip: int = 0, **kwargs: Any) -> bytes:
    return transfer(chain.runtime, signer, dest.public_key, value, nonce=nonce, genesis_hash=chain.genesis_hash,
                    tip=tip, **kwargs)


def account(chain: Chain, who: Any) -> dict[str, Any]:
    return System.Account.get(chain.state.head, who.public_key)


def issuance(chain: Chain) -> int:
    return Balances.TotalIssuance.get(chain.state.head)


def events(chain: Chain) -> list[tuple[Any, str, str, Any]]:
    """(phase, pallet, event, payload) of the best block's System.Events."""
    return [(r["phase"], r["event"][0], r["event"][1][0], r["event"][1][1])
            for r in chain.runtime.events_item.get(chain.state.head)]


def expected_fee(chain: Chain, raw: bytes) -> int:
    """What TransactionPaymentApi_query_info predicts, plus the tip."""
    ext = chain.executive.decode(raw)
    return chain.executive.query_info(raw, len(raw))["partial_fee"] + ext.tip


class Statuses:
    """A transaction listener recording the TransactionStatus values it receives."""

    def __init__(self) -> None:
        self.seen: list[Any] = []

    def __call__(self, status: Any) -> None:
        self.seen.append(status)


# The builder is what substrate-interface builds -----------------------------------------------------

@pytest.mark.parametrize("nonce, tip, value", [(0, 0, UNIT), (63, 64, 2**100), (70_000, 2**70, 1)])
def test_builder_matches_substrate_interface(chain: Chain, nonce: int, tip: int, value: int) -> None:
    call_value = {"call_module": "Balances", "call_function": "transfer_allow_death",
                  "call_args": {"dest": {"Id": "0x" + BOB.public_key.hex()}, "value": value}}
    ref = default_reference()
    payload, reference_xt = reference_signed_extrinsic(ref, ALICE, call_value, nonce=nonce, tip=tip,
                                                       genesis_hash=chain.genesis_hash)
    call_bytes = transfer_call(chain.runtime, BOB.public_key, value)
    assert payload == signing_payload(call_bytes, extra_bytes(nonce, tip), additional_bytes(chain.genesis_hash))
    signature = reference_xt[-(len(call_bytes) + len(extra_bytes(nonce, tip)) + 64):][:64]
    assert ALICE.verify(payload, signature)
    ours = signed_extrinsic(ALICE, call_bytes, nonce=nonce, tip=tip, genesis_hash=chain.genesis_hash,
                            signature=signature)
    assert ours == reference_xt
    decoded = ref.decode("Extrinsic", ours)
    assert (decoded["nonce"], decoded["tip"], decoded["era"]) == (nonce, tip, "00")
    assert decoded["address"] == "0x" + ALICE.public_key.hex()
    assert decoded["call"]["call_function"] == "transfer_allow_death"


def test_long_payloads_are_signed_hashed(chain: Chain) -> None:
    """Payloads over 256 bytes are signed as their blake2_256, in the builder as in the runtime."""
    remark = chain.runtime.call_codec.encode(("System", ("remark", {"remark": b"x" * 300})))
    payload = signing_payload(remark, extra_bytes(0), additional_bytes(chain.genesis_hash))
    assert payload == blake2_256(remark + extra_bytes(0) + additional_bytes(chain.genesis_hash))
    raw = signed_extrinsic(ALICE, remark, nonce=0, genesis_hash=chain.genesis_hash)
    chain.submit(raw)
    chain.produce_block(1_000)
    assert account(chain, ALICE)["nonce"] == 1


def test_reference_built_mortal_extrinsic_is_accepted(chain: Chain) -> None:
    """A mortal era signed over its birth block's hash, built the substrate-interface way."""
    for n in range(3):
        chain.produce_block(1_000 * (n + 1))
    current = chain.best.number
    era = {"period": 64, "current": current}
    era_obj = default_reference().config.create_scale_object("Era")
    era_obj.encode(era)
    birth = chain.block(era_obj.birth(current))
    assert birth is not None
    call_value = {"call_module": "Balances", "call_function": "transfer_keep_alive",
                  "call_args": {"dest": {"Id": "0x" + BOB.public_key.hex()}, "value": UNIT}}
    _, raw = reference_signed_extrinsic(default_reference(), ALICE, call_value, nonce=0, era=era,
                                        birth_hash=birth.hash, genesis_hash=chain.genesis_hash)
    chain.submit(raw)
    chain.produce_block(10_000)
    assert account(chain, ALICE)["nonce"] == 1
    # signed over the wrong birth hash, the same transaction is a bad proof
    _, forged = reference_signed_extrinsic(default_reference(), ALICE, call_value, nonce=1, era=era,
                                           birth_hash=chain.genesis_hash, genesis_hash=chain.genesis_hash)
    with pytest.raises(InvalidTransaction, match="BadProof"):
        chain.submit(forged)


# Pool admission --------------------------------------------------------------------------------------

def test_nonce_sequencing(chain: Chain) -> None:
    first = xfer(chain, ALICE, BOB, UNIT, nonce=0)
    second = xfer(chain, ALICE, BOB, UNIT, nonce=1)
    chain.submit(first)
    chain.submit(second)  # n+1 is ready behind n, before any block
    assert chain.account_next_index(ALICE.public_key) == 2
    with pytest.raises(InvalidTransaction) as gap:
        chain.submit(xfer(chain, ALICE, BOB, UNIT, nonce=3))  # 2 is missing
    assert gap.value.kind == "Future"
    with pytest.raises(InvalidTransaction) as fresh_gap:
        chain.submit(xfer(chain, BOB, ALICE, UNIT, nonce=1))  # nothing pooled for Bob: 0 is missing
    assert fresh_gap.value.kind == "Future"
    assert len(chain.pool) == 2

    chain.produce_block(1_000)
    assert account(chain, ALICE)["nonce"] == 2
    assert len(chain.pool) == 0
    assert chain.account_next_index(ALICE.public_key) == 2
    for stale in (first, xfer(chain, ALICE, BOB, 5 * UNIT, nonce=1)):  # the same tx again, or another at n+1
        with pytest.raises(InvalidTransaction) as exc:
            chain.submit(stale)
        assert exc.value.kind == "Stale"
    chain.submit(xfer(chain, ALICE, BOB, UNIT, nonce=2))  # the next nonce is welcome


def test_duplicate_is_already_imported(chain: Chain) -> None:
    raw = xfer(chain, ALICE, BOB, UNIT, nonce=0)
    tx_hash = chain.submit(raw)
    assert tx_hash == blake2_256(raw)
    with pytest.raises(AlreadyImported):
        chain.submit(raw)
    assert len(chain.pool) == 1


def test_same_nonce_other_tx_is_priority_too_low(chain: Chain) -> None:
    chain.submit(xfer(chain, ALICE, BOB, UNIT, nonce=0))
    with pytest.raises(PriorityTooLow):
        chain.submit(xfer(chain, ALICE, CHARLIE, UNIT, nonce=0))
    assert len(chain.pool) == 1
    chain.produce_block(1_000)
    assert account(chain, CHARLIE)["data"]["free"] == account(chain, DAVE)["data"]["free"]  # untouched


def test_invalid_transactions_are_refused(chain: Chain) -> None:
    call_bytes = transfer_call(chain.runtime, BOB.public_key, UNIT)
    bad_proofs = [
        signed_extrinsic(ALICE, call_bytes, nonce=0, genesis_hash=chain.genesis_hash, signature=bytes(64)),
        signed_extrinsic(ALICE, call_bytes, nonce=0, genesis_hash=b"\x01" * 32),  # signed for another chain
        signed_extrinsic(ALICE, call_bytes, nonce=0, genesis_hash=chain.genesis_hash,
                        spec_version=chain.runtime.spec_version + 1),
        signed_extrinsic(ALICE, call_bytes, nonce=0, genesis_hash=chain.genesis_hash, tx_version=9),
    ]
    for raw in bad_proofs:
        with pytest.raises(InvalidTransaction) as exc:
            chain.submit(raw)
        assert exc.value.kind == "BadProof"
    poor = dev_keypair("NoFunds")
    with pytest.raises(InvalidTransaction) as exc:
        chain.submit(signed_extrinsic(poor, call_bytes, nonce=0, genesis_hash=chain.genesis_hash))
    assert exc.value.kind == "Payment"
    with pytest.raises(UnknownTransaction) as unknown:
        chain.submit(encode_unsigned(call_bytes))
    assert unknown.value.kind == "NoUnsignedValidator"
    with pytest.raises(BadFormat):  # CheckNonce is a Compact<u32>: 2^32 does not decode
        chain.submit(signed_extrinsic(ALICE, call_bytes, nonce=2**32, genesis_hash=chain.genesis_hash))
    good = xfer(chain, ALICE, BOB, UNIT, nonce=0)
    for garbage in (b"", b"\x00", good[:-1], good + b"\x00", b"\x10\x04\x99\x00\x00"):
        with pytest.raises(BadFormat):
            chain.submit(garbage)
    assert len(chain.pool) == 0


# Blocks ----------------------------------------------------------------------------------------------

def test_block_includes_pool_in_order_and_removes_it(chain: Chain) -> None:
    raws = [xfer(chain, ALICE, BOB, UNIT, nonce=0), xfer(chain, BOB, CHARLIE, 2 * UNIT, nonce=0),
            xfer(chain, ALICE, DAVE, 3 * UNIT, nonce=1), xfer(chain, CHARLIE, ALICE, 4 * UNIT, nonce=0)]
    listeners = [Statuses() for _ in raws]
    hashes = [chain.submit(raw, listener) for raw, listener in zip(raws, listeners)]
    block = chain.produce_block(6_000)
    assert block.extrinsics[1:] == raws  # the timestamp inherent first, then arrival order
    assert len(chain.pool) == 0 and not any(h in chain.pool.entries for h in hashes)
    for listener in listeners:  # finality_lag 0: in the block and final at once
        assert listener.seen == [{"inBlock": "0x" + block.hash.hex()}, {"finalized": "0x" + block.hash.hex()}]
    successes = [phase for phase, pallet, name, _ in events(chain) if (pallet, name) == ("System", "ExtrinsicSuccess")]
    assert successes == [("ApplyExtrinsic", i) for i in range(5)]
    transfers = [(p[1], payload["amount"]) for p, pallet, name, payload in events(chain)
                 if (pallet, name) == ("Balances", "Transfer")]
    assert transfers == [(1, UNIT), (2, 2 * UNIT), (3, 3 * UNIT), (4, 4 * UNIT)]
    assert System.ExtrinsicCount.get(chain.state.head) == 5
    assert chain.produce_block(12_000).extrinsics[1:] == []  # nothing left to include


def test_tx_invalidated_by_an_earlier_one_is_dropped(chain: Chain) -> None:
    drain = signed_extrinsic(CHARLIE, chain.runtime.call_codec.encode(
        ("Balances", ("transfer_all", {"dest": ("Id", BOB.public_key), "keep_alive": True}))),
        nonce=0, genesis_hash=chain.genesis_hash)
    starved = xfer(chain, CHARLIE, DAVE, UNIT, nonce=1)
    drained, dropped = Statuses(), Statuses()
    chain.submit(drain, drained)
    chain.submit(starved, dropped)  # valid on the best state: Charlie is still rich
    issuance_before = issuance(chain)
    block = chain.produce_block(6_000)
    assert block.extrinsics[1:] == [drain]
    assert dropped.seen == ["invalid"]
    assert drained.seen[0] == {"inBlock": "0x" + block.hash.hex()}
    assert len(chain.pool) == 0
    charlie = account(chain, CHARLIE)
    assert charlie["data"]["free"] == EXISTENTIAL_DEPOSIT and charlie["nonce"] == 1
    assert issuance(chain) == issuance_before - expected_fee(chain, drain)  # the dropped one paid nothing
    with pytest.raises(InvalidTransaction) as exc:
        chain.submit(starved)  # its nonce is next now, but Charlie cannot pay its fee
    assert exc.value.kind == "Payment"


def test_fees_are_burned(chain: Chain) -> None:
    raws = [xfer(chain, ALICE, BOB, UNIT, nonce=0, tip=7), xfer(chain, BOB, CHARLIE, 5 * UNIT, nonce=0),
            signed_extrinsic(DAVE, chain.runtime.call_codec.encode(("System", ("remark", {"remark": b"hi"}))),
                             nonce=0, genesis_hash=chain.genesis_hash, tip=10**9)]
    fees = [expected_fee(chain, raw) for raw in raws]
    assert all(fee > 0 for fee in fees)
    before = {who: account(chain, who)["data"]["free"] for who in (ALICE, BOB, CHARLIE, DAVE)}
    issuance_before = issuance(chain)
    for raw in raws:
        chain.submit(raw)
    chain.produce_block(6_000)
    assert issuance(chain) == issuance_before - sum(fees)
    paid = [payload for _, pallet, name, payload in events(chain) if (pallet, name) == (
        "TransactionPayment", "TransactionFeePaid")]
    assert [(p["who"], p["actual_fee"], p["tip"]) for p in paid] == [
        (ALICE.public_key, fees[0], 7), (BOB.public_key, fees[1], 0), (DAVE.public_key, fees[2], 10**9)]
    withdrawn = [payload["amount"] for _, pallet, name, payload in events(chain)
                 if (pallet, name) == ("Balances", "Withdraw")]
    assert withdrawn == fees
    after = {who: account(chain, who)["data"]["free"] for who in (ALICE, BOB, CHARLIE, DAVE)}
    assert after[ALICE] == before[ALICE] - UNIT - fees[0]
    assert after[BOB] == before[BOB] + UNIT - 5 * UNIT - fees[1]
    assert after[CHARLIE] == before[CHARLIE] + 5 * UNIT
    assert after[DAVE] == before[DAVE] - fees[2]
    # nobody received the fees: the sum of balances fell by exactly what issuance fell by
    assert sum(before.values()) - sum(after.values()) == sum(fees)


def _faulty_xt(chain: Chain, signer: Any, nonce: int, name: str, args: dict[str, Any] | None) -> bytes:
    call_bytes = chain.runtime.call_codec.encode(("Faulty", (name, args)))
    return signed_extrinsic(signer, call_bytes, nonce=nonce, genesis_hash=chain.genesis_hash)


def test_failed_dispatch_keeps_fee_bumps_nonce_reverts_call(chain: Chain) -> None:
    ok = _faulty_xt(chain, ALICE, 0, "write_then_fail", {"value": 4})
    failing = _faulty_xt(chain, ALICE, 1, "write_then_fail", {"value": 7})
    crashing = _faulty_xt(chain, BOB, 0, "write_then_crash", None)
    too_much = xfer(chain, CHARLIE, DAVE, 2**62, nonce=0)  # more than Charlie has
    raws = [ok, failing, crashing, too_much]
    fees = [expected_fee(chain, raw) for raw in raws]
    issuance_before = issuance(chain)
    free_before = {who: account(chain, who)["data"]["free"] for who in (ALICE, BOB, CHARLIE, DAVE)}
    listeners = [Statuses() for _ in raws]
    for raw, listener in zip(raws, listeners):
        chain.submit(raw, listener)
    block = chain.produce_block(6_000)

    assert block.extrinsics[1:] == raws  # failed dispatches are still included
    assert all(listener.seen[0] == {"inBlock": "0x" + block.hash.hex()} for listener in listeners)
    assert Faulty.Marker.get(chain.state.head) == 4  # the successful write stays, the failed ones are reverted
    assert account(chain, ALICE)["nonce"] == 2 and account(chain, BOB)["nonce"] == 1
    assert account(chain, CHARLIE)["nonce"] == 1
    assert account(chain, ALICE)["data"]["free"] == free_before[ALICE] - fees[0] - fees[1]
    assert account(chain, BOB)["data"]["free"] == free_before[BOB] - fees[2]
    assert account(chain, CHARLIE)["data"]["free"] == free_before[CHARLIE] - fees[3]
    assert account(chain, DAVE)["data"]["free"] == free_before[DAVE]
    assert issuance(chain) == issuance_before - sum(fees)

    by_extrinsic: dict[int, list[tuple[str, str]]] = {}
    for phase, pallet, name, _ in events(chain):
        if phase[0] == "ApplyExtrinsic":
            by_extrinsic.setdefault(phase[1], []).append((pallet, name))
    fee_events = [("Balances", "Withdraw"), ("TransactionPayment", "TransactionFeePaid")]
    assert by_extrinsic[1] == [fee_events[0], ("Faulty", "Wrote"), fee_events[1], ("System", "ExtrinsicSuccess")]
    for index in (2, 3, 4):  # the call's own events are gone, the fee's stay
        assert by_extrinsic[index] == fee_events + [("System", "ExtrinsicFailed")], index
    failures = [payload["dispatch_error"] for _, pallet, name, payload in events(chain)
                if (pallet, name) == ("System", "ExtrinsicFailed")]
    assert failures == [
        ("Module", {"index": Faulty.index, "error": bytes(4)}),  # Boom, Faulty's error 0
        ("Other", None),  # a crash inside the runtime
        ("Module", {"index": Balances.index, "error": bytes((2, 0, 0, 0))}),  # InsufficientBalance
    ]


def test_block_state_is_visible_at_its_hash_only(chain: Chain) -> None:
    genesis = chain.best
    raw = xfer(chain, ALICE, BOB, UNIT, nonce=0)
    chain.submit(raw)
    block = chain.produce_block(6_000)
    assert System.Account.get(chain.state_at(genesis.hash), ALICE.public_key)["nonce"] == 0
    assert System.Account.get(chain.state_at(block.hash), ALICE.public_key)["nonce"] == 1
    assert System.Number.get(chain.state_at(block.hash)) == 1
    assert System.BlockHash.get(chain.state_at(block.hash), 0) == genesis.hash
