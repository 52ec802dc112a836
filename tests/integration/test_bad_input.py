"""Bad input to a running devnet: Substrate's JSON-RPC errors, the state unchanged, never a crash.

Transactions are built with unmodified substrateinterface (and then tampered with) and
submitted over a raw WebSocket, so the exact JSON-RPC error objects are visible.
"""
from __future__ import annotations

import hashlib
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack
from itertools import count
from typing import Any
from unittest.mock import patch

import pytest
import websocket
import xxhash
from substrateinterface import Keypair, SubstrateInterface

from paratrain.local import DevnetProcess

# The author error shapes (sc-rpc-api author errors). If the shape of a code changes,
# these constants and `tx_validity` are the only places to update.
INVALID_TX = 1010  # "Invalid Transaction", payload {"invalid": {<kind>: ...}}
UNKNOWN_TX = 1010  # unknown validity is carried as {"unknown": {<kind>: ...}}
BAD_FORMAT = 1001  # undecodable bytes
ALREADY_IMPORTED = 1013
TOO_LOW_PRIORITY = 1014
PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS = -32700, -32600, -32601, -32602
TOO_MANY_SUBSCRIPTIONS, OVERSIZED_REQUEST, TOO_BIG_BATCH = -32006, -32007, -32010

MIB = 1024 * 1024
MAX_NORMAL_LENGTH = 5 * MIB * 75 // 100  # 3.75 MiB: the normal-class share of the block length


# Node with a drained log --------------------------------------------------------------------------
class LoggedNode:
    """A DevnetProcess whose output (drained by DevnetProcess) is checked for errors."""

    def __init__(self, *args: str) -> None:
        self.process = DevnetProcess(*args)

    def start(self) -> LoggedNode:
        self.process.start()
        return self

    @property
    def lines(self) -> list[str]:
        return self.process.output

    @property
    def ws_url(self) -> str:
        return self.process.ws_url

    @property
    def http_url(self) -> str:
        return self.process.http_url

    def alive(self) -> bool:
        return self.process.proc is not None and self.process.proc.poll() is None

    def assert_healthy(self) -> None:
        assert self.alive(), "devnet exited:\n" + "".join(self.lines)
        log = "".join(self.lines)
        assert "Traceback" not in log and "ERROR" not in log, log[-4000:]


@pytest.fixture(scope="module")
def node() -> Iterator[LoggedNode]:
    node = LoggedNode().start()
    try:
        yield node
    finally:
        node.process.stop()


@pytest.fixture(scope="module")
def client(node: LoggedNode) -> Iterator[SubstrateInterface]:
    client = SubstrateInterface(url=node.ws_url)
    yield client
    client.close()


@pytest.fixture()
def rpc(node: LoggedNode) -> Iterator[Rpc]:
    conn = Rpc(node.ws_url)
    yield conn
    conn.close()
    node.assert_healthy()


ALICE, BOB = Keypair.create_from_uri("//Alice"), Keypair.create_from_uri("//Bob")


# Raw JSON-RPC -------------------------------------------------------------------------------------
class Rpc:
    """JSON-RPC over one WebSocket, with nothing between the test and the frames."""

    def __init__(self, url: str, timeout: float = 30) -> None:
        self.ws = websocket.create_connection(url, timeout=timeout)
        self.ids = count(1)
        self.notifications: list[dict[str, Any]] = []

    def close(self) -> None:
        self.ws.close()

    def send(self, frame: Any) -> None:
        self.ws.send(frame if isinstance(frame, str) else json.dumps(frame))

    def recv(self) -> Any:
        """The next response (object or batch array); notifications are set aside."""
        while True:
            msg = json.loads(self.ws.recv())
            if isinstance(msg, dict) and "method" in msg and "id" not in msg:
                self.notifications.append(msg)
                continue
            return msg

    def request(self, method: str, params: Any = None) -> dict[str, Any]:
        request_id = next(self.ids)
        self.send({"jsonrpc": "2.0", "id": request_id, "method": method, "params": [] if params is None else params})
        reply = self.recv()
        assert reply.get("id") == request_id, reply
        return reply

    def result(self, method: str, params: Any = None) -> Any:
        reply = self.request(method, params)
        assert "error" not in reply, reply
        return reply["result"]

    def error(self, method: str, params: Any = None) -> dict[str, Any]:
        reply = self.request(method, params)
        assert "error" in reply and "result" not in reply, reply
        return reply["error"]

    def submit_error(self, extrinsic: bytes | str) -> dict[str, Any]:
        raw = extrinsic if isinstance(extrinsic, str) else "0x" + extrinsic.hex()
        return self.error("author_submitExtrinsic", [raw])


def tx_validity(error: dict[str, Any]) -> tuple[str, str]:
    """("invalid", "badProof") from an author error, whether the payload is in `data` or a JSON `message`."""
    payload = error.get("data")
    if isinstance(payload, str):
        payload = json.loads(payload)
    if not isinstance(payload, dict):
        payload = json.loads(error["message"])
    ((category, detail),) = payload.items()
    kind = next(iter(detail)) if isinstance(detail, dict) else detail
    return category, kind


def assert_invalid(error: dict[str, Any], kind: str) -> None:
    assert error["code"] == INVALID_TX, error
    assert tx_validity(error) == ("invalid", kind), error


# Storage keys, computed here rather than with the node's code --------------------------------------
def twox128(data: bytes) -> bytes:
    return b"".join(xxhash.xxh64_intdigest(data, seed=s).to_bytes(8, "little") for s in (0, 1))


def account_key(public_key: bytes) -> str:
    blake = hashlib.blake2b(public_key, digest_size=16).digest()
    return "0x" + (twox128(b"System") + twox128(b"Account") + blake + public_key).hex()


NUMBER_KEY = "0x" + (twox128(b"System") + twox128(b"Number")).hex()


def free_balance(rpc: Rpc, public_key: bytes) -> int:
    raw = bytes.fromhex(rpc.result("state_getStorage", [account_key(public_key)])[2:])
    return int.from_bytes(raw[16:32], "little")  # AccountInfo: nonce, consumers, providers, sufficients, free


def nonce_of(rpc: Rpc, public_key: bytes) -> int:
    raw = rpc.result("state_getStorage", [account_key(public_key)])
    return 0 if raw is None else int.from_bytes(bytes.fromhex(raw[2:10]), "little")


def snapshot(rpc: Rpc, *accounts: bytes) -> dict[str, Any]:
    """Everything a refused transaction must leave as it was."""
    return {
        "best": rpc.result("chain_getHeader"),  # number, parent, state root, extrinsics root
        "finalized": rpc.result("chain_getFinalizedHead"),
        "pending": rpc.result("author_pendingExtrinsics"),
        "number": rpc.result("state_getStorage", [NUMBER_KEY]),
        "accounts": [rpc.result("state_getStorage", [account_key(a)]) for a in (ALICE.public_key, *accounts)],
        "next_index": rpc.result("system_accountNextIndex", [ALICE.ss58_address]),
    }


# Building transactions ----------------------------------------------------------------------------
def transfer(client: SubstrateInterface, value: int = 1_000_000, dest: Keypair = BOB) -> Any:
    return client.compose_call("Balances", "transfer_keep_alive", {"dest": dest.ss58_address, "value": value})


def signed(client: SubstrateInterface, call: Any, keypair: Keypair = ALICE, **kwargs: Any) -> bytes:
    return bytes(client.create_signed_extrinsic(call, keypair, **kwargs).data.data)


def signed_with_wrong_context(client: SubstrateInterface, call: Any, keypair: Keypair, nonce: int, *,
                              spec_version: int | None = None, transaction_version: int | None = None,
                              genesis_hash: str | None = None, birth_hash: str | None = None,
                              era: Any = None) -> bytes:
    """Sign with the client's own payload builder, but with some of its chain facts replaced."""
    client.init_runtime()
    real_block_hash = client.get_block_hash
    with ExitStack() as stack:
        if spec_version is not None:
            stack.enter_context(patch.object(client, "runtime_version", spec_version))
        if transaction_version is not None:
            stack.enter_context(patch.object(client, "transaction_version", transaction_version))
        if genesis_hash is not None or birth_hash is not None:
            def block_hash(block_id: int | None = None) -> str:
                if block_id == 0 and genesis_hash is not None:
                    return genesis_hash
                if block_id != 0 and birth_hash is not None:
                    return birth_hash
                return real_block_hash(block_id)

            stack.enter_context(patch.object(client, "get_block_hash", block_hash))
        payload = client.generate_signature_payload(call, era=era, nonce=nonce)
    extrinsic = client.create_signed_extrinsic(call, keypair, nonce=nonce, era=era, signature=keypair.sign(payload))
    return bytes(extrinsic.data.data)


def include(client: SubstrateInterface, call: Any, keypair: Keypair = ALICE) -> Any:
    receipt = client.submit_extrinsic(client.create_signed_extrinsic(call, keypair), wait_for_inclusion=True)
    assert receipt.is_success, receipt.error_message
    return receipt


# Invalid transactions -----------------------------------------------------------------------------
def test_a_valid_transfer_is_accepted(rpc: Rpc, client: SubstrateInterface) -> None:
    """The control: the same construction, untampered, enters the pool and lands in a block."""
    before = rpc.result("chain_getHeader")["number"]
    tx_hash = rpc.result("author_submitExtrinsic", ["0x" + signed(client, transfer(client)).hex()])
    assert tx_hash.startswith("0x") and len(tx_hash) == 66
    deadline = time.monotonic() + 10
    while rpc.result("chain_getHeader")["number"] == before:
        assert time.monotonic() < deadline, "the transfer was never included"
        time.sleep(0.02)


def test_bad_signature_is_bad_proof(rpc: Rpc, client: SubstrateInterface) -> None:
    raw = bytearray(signed(client, transfer(client)))
    start = raw.index(b"\x84\x00" + ALICE.public_key) + 2 + 32 + 1  # version, MultiAddress::Id, scheme byte
    before = snapshot(rpc)
    for position in (start, start + 31, start + 63):
        tampered = bytearray(raw)
        tampered[position] ^= 0x01
        assert_invalid(rpc.submit_error(bytes(tampered)), "badProof")
    assert snapshot(rpc) == before


def test_sender_must_be_an_account_id(rpc: Rpc, client: SubstrateInterface) -> None:
    """The signature does not cover the address encoding: only MultiAddress::Id names a signer (AccountIdLookup)."""
    raw = signed(client, transfer(client))
    at = raw.index(b"\x84\x00" + ALICE.public_key) + 1
    before = snapshot(rpc)
    address32 = raw[:at] + b"\x03" + raw[at + 1:]  # MultiAddress::Address32(Alice): same bytes, other variant
    error = rpc.submit_error(address32)
    assert error["code"] == UNKNOWN_TX and tx_validity(error) == ("unknown", "cannotLookup"), error
    for variant in (1, 2, 4, 5):  # Index, Raw, Address20 (these bytes misparse), then no such variant
        error = rpc.submit_error(raw[:at] + bytes((variant,)) + raw[at + 1:])
        assert error["code"] in (BAD_FORMAT, UNKNOWN_TX, INVALID_TX), (variant, error)
        assert error["code"] == BAD_FORMAT or tx_validity(error) in (("unknown", "cannotLookup"),
                                                                      ("invalid", "badProof")), (variant, error)
    assert snapshot(rpc) == before


def test_stale_nonce(rpc: Rpc, client: SubstrateInterface) -> None:
    include(client, transfer(client))
    nonce = nonce_of(rpc, ALICE.public_key)
    assert nonce >= 1
    before = snapshot(rpc)
    assert_invalid(rpc.submit_error(signed(client, transfer(client), nonce=nonce - 1)), "stale")
    assert_invalid(rpc.submit_error(signed(client, transfer(client), nonce=0)), "stale")
    assert snapshot(rpc) == before


def test_future_nonce(rpc: Rpc, client: SubstrateInterface) -> None:
    nonce = nonce_of(rpc, ALICE.public_key)
    before = snapshot(rpc)
    for gap in (2, 1000):
        assert_invalid(rpc.submit_error(signed(client, transfer(client), nonce=nonce + gap)), "future")
    assert snapshot(rpc) == before


def test_wrong_genesis_spec_or_transaction_version_is_bad_proof(rpc: Rpc, client: SubstrateInterface) -> None:
    nonce = nonce_of(rpc, ALICE.public_key)
    version = rpc.result("state_getRuntimeVersion")
    call = transfer(client)
    # The construction is sound: with nothing replaced, it is what the client itself would send
    # (sr25519 signatures are randomized, so compare the rest and verify the signature).
    control = signed_with_wrong_context(client, call, ALICE, nonce)
    reference = signed(client, call, nonce=nonce)
    sig = control.index(b"\x84\x00" + ALICE.public_key) + 2 + 32 + 1
    assert control[:sig] + control[sig + 64:] == reference[:sig] + reference[sig + 64:]
    assert ALICE.verify(client.generate_signature_payload(call, nonce=nonce), control[sig:sig + 64])
    before = snapshot(rpc)
    for wrong in ({"genesis_hash": "0x" + "11" * 32}, {"spec_version": version["specVersion"] + 1},
                  {"transaction_version": version["transactionVersion"] + 1}):
        raw = signed_with_wrong_context(client, call, ALICE, nonce, **wrong)
        assert_invalid(rpc.submit_error(raw), "badProof")
    assert snapshot(rpc) == before


def _advance(client: SubstrateInterface, blocks: int) -> None:
    """Author `blocks` blocks (instant seal: one per included transaction) with Bob's remarks."""
    for i in range(blocks):
        include(client, client.compose_call("System", "remark", {"remark": f"advance {i}"}), BOB)


def test_expired_mortal_era_is_bad_proof(rpc: Rpc, client: SubstrateInterface) -> None:
    """Period 4: once the chain moved on, the birth block the node derives is another one, as in Substrate."""
    include(client, transfer(client), ALICE)  # control: no era trouble right after signing
    receipt = client.submit_extrinsic(client.create_signed_extrinsic(transfer(client), ALICE, era={"period": 4}),
                                      wait_for_inclusion=True)
    assert receipt.is_success
    stale_era = signed(client, transfer(client), era={"period": 4})
    _advance(client, 9)
    before = snapshot(rpc, BOB.public_key)
    assert_invalid(rpc.submit_error(stale_era), "badProof")
    assert snapshot(rpc, BOB.public_key) == before


def test_unknown_birth_block_is_ancient_birth_block(rpc: Rpc, client: SubstrateInterface) -> None:
    """A mortal era whose birth block does not exist yet has no block hash: AncientBirthBlock."""
    best = int(rpc.result("chain_getHeader")["number"], 16)
    assert best < 1000
    nonce = nonce_of(rpc, ALICE.public_key)
    raw = signed_with_wrong_context(client, transfer(client), ALICE, nonce, era={"period": 1024, "current": 1023},
                                    birth_hash="0x" + "00" * 32)
    before = snapshot(rpc)
    assert_invalid(rpc.submit_error(raw), "ancientBirthBlock")
    assert snapshot(rpc) == before


def test_unfunded_sender_cannot_pay(rpc: Rpc, client: SubstrateInterface) -> None:
    pauper = Keypair.create_from_uri("//ParatrainBadInputNoFunds")
    assert rpc.result("state_getStorage", [account_key(pauper.public_key)]) is None
    before = snapshot(rpc, pauper.public_key)
    assert_invalid(rpc.submit_error(signed(client, transfer(client, dest=ALICE), pauper, nonce=0)), "payment")
    # A funded sender whose tip it cannot pay.
    free = free_balance(rpc, ALICE.public_key)
    assert_invalid(rpc.submit_error(signed(client, transfer(client), ALICE, tip=free)), "payment")
    assert snapshot(rpc, pauper.public_key) == before


def test_undecodable_bytes_are_bad_format(rpc: Rpc, client: SubstrateInterface) -> None:
    valid = signed(client, transfer(client))
    before = snapshot(rpc)
    for raw in ("0x1234", "0x", "0x00", "0xffffffff", "0x" + valid[:-1].hex(), "0x" + (valid + b"\x00").hex(),
                "0x" + (b"\x10\x85" + valid[2:5]).hex()):
        error = rpc.submit_error(raw)
        assert error["code"] == BAD_FORMAT, (raw[:40], error)
    # Not hex at all is refused before any decoding, with invalid params (jsonrpsee's Bytes type).
    for raw in ("0x123", "1234", "0xzz"):
        assert rpc.submit_error(raw)["code"] == INVALID_PARAMS
    assert rpc.error("author_submitExtrinsic", [1234])["code"] == INVALID_PARAMS
    assert rpc.error("author_submitExtrinsic", [])["code"] == INVALID_PARAMS
    assert snapshot(rpc) == before


def test_unsigned_transfer_has_no_validator(rpc: Rpc, client: SubstrateInterface) -> None:
    unsigned = bytes(client.create_unsigned_extrinsic(transfer(client)).data.data)
    before = snapshot(rpc)
    error = rpc.submit_error(unsigned)
    assert error["code"] == UNKNOWN_TX and tx_validity(error) == ("unknown", "noUnsignedValidator"), error
    assert snapshot(rpc) == before


def test_oversized_extrinsics(rpc: Rpc, client: SubstrateInterface, node: LoggedNode) -> None:
    before = snapshot(rpc)
    # Validly signed, longer than the normal-class block length (3.75 MiB) and than a block (5 MiB).
    for size in (MAX_NORMAL_LENGTH + 1024, 6 * MIB):
        remark = client.compose_call("System", "remark", {"remark": "0x" + "ab" * size})
        raw = signed(client, remark)
        assert len(raw) > size
        assert_invalid(rpc.submit_error(raw), "exhaustsResources")
    # Garbage of the same size does not decode.
    assert rpc.submit_error("0x" + "ff" * (4 * MIB))["code"] == BAD_FORMAT
    assert snapshot(rpc) == before
    # More than the 15 MiB request limit over HTTP: 413 with jsonrpsee's "Request is too big".
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "author_submitExtrinsic",
                       "params": ["0x" + "00" * (8 * MIB)]}).encode()
    request = urllib.request.Request(node.http_url, data=body, headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    assert refused.value.code == 413
    assert json.load(refused.value)["error"]["code"] == OVERSIZED_REQUEST
    assert snapshot(rpc) == before


def test_duplicate_and_replacement(rpc: Rpc, client: SubstrateInterface) -> None:
    nonce = nonce_of(rpc, ALICE.public_key)
    first = "0x" + signed(client, transfer(client, 111), nonce=nonce).hex()
    rival = "0x" + signed(client, transfer(client, 222), nonce=nonce).hex()
    # One batch: both calls run before the author loop can seal the first into a block.
    rpc.send([{"jsonrpc": "2.0", "id": 1, "method": "author_submitExtrinsic", "params": [first]},
              {"jsonrpc": "2.0", "id": 2, "method": "author_submitExtrinsic", "params": [first]},
              {"jsonrpc": "2.0", "id": 3, "method": "author_submitExtrinsic", "params": [rival]}])
    replies = {reply["id"]: reply for reply in rpc.recv()}
    assert replies[1]["result"].startswith("0x"), replies
    assert replies[2]["error"]["code"] == ALREADY_IMPORTED, replies
    assert replies[3]["error"]["code"] == TOO_LOW_PRIORITY, replies
    deadline = time.monotonic() + 10
    while nonce_of(rpc, ALICE.public_key) == nonce:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert rpc.result("author_pendingExtrinsics") == []
    # After inclusion the same bytes are stale, as in Substrate (the pool forgot them).
    before = snapshot(rpc)
    assert_invalid(rpc.submit_error(first), "stale")
    assert snapshot(rpc) == before


def test_failing_dispatch_is_included_and_charged(rpc: Rpc, client: SubstrateInterface) -> None:
    alice_before, bob_before = free_balance(rpc, ALICE.public_key), free_balance(rpc, BOB.public_key)
    nonce = nonce_of(rpc, ALICE.public_key)
    extrinsic = client.create_signed_extrinsic(transfer(client, alice_before * 2), ALICE)
    expected_fee = int(rpc.result("payment_queryInfo", [str(extrinsic.data)])["partialFee"])
    receipt = client.submit_extrinsic(extrinsic, wait_for_inclusion=True)
    assert not receipt.is_success
    assert receipt.error_message["type"] == "Module" and receipt.error_message["name"] == "InsufficientBalance"
    events = {(e.value["module_id"], e.value["event_id"]): e.value["attributes"] for e in receipt.triggered_events}
    failed = events[("System", "ExtrinsicFailed")]["dispatch_error"]["Module"]
    assert client.metadata.get_metadata_pallet("Balances").value["index"] == failed["index"]
    assert ("Balances", "Transfer") not in events
    fee = events[("TransactionPayment", "TransactionFeePaid")]
    assert fee["actual_fee"] == expected_fee > 0 and fee["tip"] == 0
    assert free_balance(rpc, ALICE.public_key) == alice_before - expected_fee
    assert free_balance(rpc, BOB.public_key) == bob_before
    assert nonce_of(rpc, ALICE.public_key) == nonce + 1


# Bad frames -----------------------------------------------------------------------------------------
def test_malformed_frames_get_json_rpc_errors(rpc: Rpc) -> None:
    before = snapshot(rpc)
    cases: list[tuple[str, Any]] = [
        ("{", PARSE_ERROR), ("not json", PARSE_ERROR), ("", PARSE_ERROR), ('{"jsonrpc":"2.0",', PARSE_ERROR),
        ("[" * 100_000 + "]" * 100_000, PARSE_ERROR),  # nesting deeper than any parser allows
        ('{"a":' * 50_000 + "1" + "}" * 50_000, PARSE_ERROR),
        ("[]", INVALID_REQUEST), ("1", INVALID_REQUEST), ('"x"', INVALID_REQUEST), ("null", INVALID_REQUEST),
        ('{"id":1,"method":"system_name"}', INVALID_REQUEST),  # no "jsonrpc"
        ('{"jsonrpc":"1.0","id":1,"method":"system_name"}', INVALID_REQUEST),
        ('{"jsonrpc":"2.0","id":1,"method":7}', INVALID_REQUEST),
        ('{"jsonrpc":"2.0","id":1,"method":"system_name","params":"x"}', {INVALID_REQUEST, INVALID_PARAMS}),
        ('{"jsonrpc":"2.0","id":{"a":1},"method":"system_name"}', INVALID_REQUEST),
        ('{"jsonrpc":"2.0","id":[1],"method":"system_name"}', INVALID_REQUEST),
        ('{"jsonrpc":"2.0","id":1,"method":"no_suchMethod"}', METHOD_NOT_FOUND),
        ('{"jsonrpc":"2.0","id":1,"method":""}', METHOD_NOT_FOUND),
        ('{"jsonrpc":"2.0","id":1,"method":"state_getStorage","params":[5]}', INVALID_PARAMS),
        ('{"jsonrpc":"2.0","id":1,"method":"chain_getBlockHash","params":[-1]}', INVALID_PARAMS),
        # Substrate's state API may answer its own code (InvalidCount) rather than -32602 here.
        ('{"jsonrpc":"2.0","id":1,"method":"state_getKeysPaged","params":["0x",100000]}', {INVALID_PARAMS, 4002}),
        ('{"jsonrpc":"2.0","id":1,"method":"system_accountNextIndex","params":[{}]}', INVALID_PARAMS),
    ]
    for frame, code in cases:
        rpc.send(frame)
        reply = rpc.recv()
        assert isinstance(reply, dict) and reply["error"]["code"] in (code if isinstance(code, set) else {code}), (
            frame[:60], reply)
        assert "result" not in reply
    # A batch of non-requests: one invalid-request error each; a too-large batch: one error.
    rpc.send("[1, 2, 3]")
    assert [r["error"]["code"] for r in rpc.recv()] == [INVALID_REQUEST] * 3
    rpc.send(json.dumps([{"jsonrpc": "2.0", "id": i, "method": "system_name"} for i in range(1001)]))
    assert rpc.recv()["error"]["code"] == TOO_BIG_BATCH
    # Invalid UTF-8 in a binary frame.
    rpc.ws.send_binary(b'{"jsonrpc":"2.0","id":1,"method":"\xff\xfe"}')
    assert rpc.recv()["error"]["code"] == PARSE_ERROR
    # A notification (no id) gets no reply: the next frame's reply is the next thing to arrive.
    rpc.send('{"jsonrpc":"2.0","method":"no_suchMethod"}')
    rpc.send('{"jsonrpc":"2.0","method":"system_name"}')
    assert rpc.request("system_name")["result"] == "paratrain-devnet"
    assert snapshot(rpc) == before


def test_sixteen_mib_frame_closes_only_that_connection(rpc: Rpc, node: LoggedNode) -> None:
    before = snapshot(rpc)
    victim = Rpc(node.ws_url)
    frame = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "author_submitExtrinsic",
                        "params": ["0x" + "00" * (8 * MIB + 1024)]})
    assert len(frame) > 16 * MIB
    try:
        victim.send(frame)
        outcome = victim.ws.recv_data_frame(True)
        opcode, data = outcome[0], outcome[1].data
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            assert int.from_bytes(data[:2], "big") == 1009  # message too big
        else:
            assert json.loads(data)["error"]["code"] == OVERSIZED_REQUEST
    except (websocket.WebSocketConnectionClosedException, ConnectionError):
        pass  # closed while the frame was still being written: equally a refusal
    finally:
        victim.close()
    assert rpc.result("system_name") == "paratrain-devnet"
    assert snapshot(rpc) == before
    fresh = Rpc(node.ws_url)
    assert fresh.result("system_health")["peers"] == 0
    fresh.close()


def test_thousands_of_idle_subscriptions(rpc: Rpc, node: LoggedNode, client: SubstrateInterface) -> None:
    """3,000 storage subscriptions on three connections; the node keeps answering and authoring."""
    idle_key = "0x" + hashlib.blake2b(b"nobody writes here", digest_size=32).hexdigest()
    connections = [Rpc(node.ws_url) for _ in range(3)]
    try:
        for conn in connections:
            for i in range(1000):
                conn.send({"jsonrpc": "2.0", "id": i, "method": "state_subscribeStorage", "params": [[idle_key]]})
        for conn in connections:
            ids = {}
            while len(ids) < 1000:
                reply = conn.recv()
                assert "result" in reply, reply
                ids[reply["id"]] = reply["result"]
            assert len(set(ids.values())) == 1000
        # Over the per-connection limit (1024, as Substrate's default): a JSON-RPC error, not a crash.
        extra = connections[0]
        for i in range(24):
            assert isinstance(extra.result("state_subscribeStorage", [[idle_key]]), str)
        assert extra.error("state_subscribeStorage", [[idle_key]])["code"] == TOO_MANY_SUBSCRIPTIONS
        # Everything else still works, including authoring a block every listener looks at.
        assert rpc.result("system_name") == "paratrain-devnet"
        include(client, transfer(client))
        assert rpc.result("state_getStorage", [idle_key]) is None
        for conn in connections:  # the initial value each, and nothing since: the key never changed
            assert conn.result("system_chain")
            assert len(conn.notifications) == len({n["params"]["subscription"] for n in conn.notifications})
    finally:
        for conn in connections:
            conn.close()
    assert rpc.result("chain_getFinalizedHead") == rpc.result("chain_getBlockHash")
