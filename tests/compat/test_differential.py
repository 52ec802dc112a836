"""Differential test: the same operations against chopsticks (Kusama local) and devnet give the same shapes.

Both nodes run for real: chopsticks 1.5.1 on ``tests/fixtures/chainspecs/kusama-local.json``
(one per module, see ``chopsticks_node.py``) and ``paratrain devnet``. Every
transaction is built by py-substrate-interface on each chain with that chain's
own metadata, genesis hash and runtime version, and submitted raw with
``author_submitExtrinsic`` so the error objects are compared verbatim.

What is compared (structure, not values such as balances, hashes or fees):

* a transaction the pool refuses: the same code (1010) and the same
  TransactionValidityError. devnet answers as Substrate does, message
  ``"Invalid Transaction"`` with the error as JSON in ``data``; chopsticks puts
  that JSON in ``message`` and has no ``data``; so devnet's ``data`` must equal
  ``json.loads(chopsticks' message)``. Cases: bad signature, stale nonce, wrong
  genesis hash, wrong spec version, unknown (future) birth block, expired mortal
  era, no funds, oversized but well-formed;
* a successful ``Balances.transfer_allow_death`` //Alice -> //Bob: the events
  both emit have the same names and field shapes (names, nested names, JSON
  types), in the same relative order; events only one side emits must be the
  documented ones;
* the ``System.Account`` layout and the ``get_payment_info`` fields.

Documented divergences (docs/rpc-compat.md section 6), where devnet follows
Substrate: devnet's answer is asserted, chopsticks' is recorded (printed and
stored as a user property of the test) without failing on it: undecodable bytes,
a duplicate submission, a future nonce.

chopsticks must never be asked for an unknown block *hash* (it would then report
that hash as its genesis hash and refuse every later signature); nothing here does.
"""
from __future__ import annotations

import contextlib
import difflib
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import websocket
from chopsticks_node import ChopsticksNode, chopsticks  # noqa: F401  (chopsticks: the module fixture)
from substrateinterface import Keypair, SubstrateInterface

pytestmark = [pytest.mark.slow, pytest.mark.compat]  # slow: chopsticks (Kusama runtime) beside a devnet

ALICE = Keypair.create_from_uri("//Alice")
BOB = Keypair.create_from_uri("//Bob")
DAVE = Keypair.create_from_uri("//Dave")  # authors filler transactions that advance devnet
NO_FUNDS = Keypair.create_from_uri("//ParatrainDifferentialNoFunds")
TRANSFER_AMOUNT = 10**12
# Larger than either chain's whole block length (5 MiB; the Normal class may use 75 %),
# and, hex-encoded in a JSON-RPC request (~10.3 MiB), within devnet's 15 MiB frame limit.
OVERSIZED_REMARK_BYTES = 5 * 1024 * 1024 + 64 * 1024
RPC_TIMEOUT_S = 180

# Events of the transfer that only one side emits, and why (anything else fails the test).
ONLY_CHOPSTICKS_EVENTS = {
    "Balances.Deposit": "Kusama's fee handler credits the treasury account with its share of the fee "
                        "(80 %; the author's share is dropped on chopsticks, which has no author); "
                        "devnet burns fees",
    "Treasury.Deposit": "Kusama's treasury pallet reports the fee it received; devnet has no treasury",
}
ONLY_DEVNET_EVENTS: dict[str, str] = {}
SHARED_EVENTS = ("Balances.Withdraw", "Balances.Transfer", "TransactionPayment.TransactionFeePaid",
                 "System.ExtrinsicSuccess")


# ------------------------------------------------------------------------------------------------
# comparison helpers
# ------------------------------------------------------------------------------------------------

def shape(value: Any) -> Any:
    """The structure of a decoded value: field names kept, leaves replaced by their JSON type."""
    if isinstance(value, dict):
        return {str(k): shape(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [shape(v) for v in value]
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, (bytes, bytearray)):
        return "bytes"
    return type(value).__name__


def _pretty(value: Any) -> list[str]:
    return json.dumps(value, indent=2, sort_keys=True, default=str).splitlines()


def assert_same(what: str, chopsticks_value: Any, devnet_value: Any) -> None:
    """Equal, or fail with a unified diff of the two (chopsticks = expected, devnet = actual)."""
    if chopsticks_value == devnet_value:
        return
    diff = "\n".join(difflib.unified_diff(_pretty(chopsticks_value), _pretty(devnet_value),
                                          "chopsticks (Kusama local)", "devnet", lineterm=""))
    pytest.fail(f"{what}: devnet differs from chopsticks\n{diff}", pytrace=False)


def record(request: pytest.FixtureRequest, key: str, value: Any) -> None:
    """Keep an observation in the test report (junit user property) and print it (-rP, -s)."""
    text = json.dumps(value, sort_keys=True, default=str)
    request.node.user_properties.append((key, text))
    print(f"{key}: {text}")


# ------------------------------------------------------------------------------------------------
# one chain, driven by py-substrate-interface and raw JSON-RPC
# ------------------------------------------------------------------------------------------------

class RawRpc:
    """Plain JSON-RPC over one websocket: verbatim `result`/`error` objects, batches too."""

    def __init__(self, url: str) -> None:
        self.ws = websocket.create_connection(url, timeout=RPC_TIMEOUT_S, max_size=2**32)
        self.next_id = 0
        self.lock = threading.Lock()

    def _request(self, method: str, params: list) -> dict:
        self.next_id += 1
        return {"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params}

    def _exchange(self, payload: Any, ids: set[int]) -> dict[int, dict]:
        with self.lock:
            self.ws.send(json.dumps(payload))
            replies: dict[int, dict] = {}
            while ids - replies.keys():
                message = json.loads(self.ws.recv())
                for item in message if isinstance(message, list) else [message]:
                    if isinstance(item, dict) and item.get("id") in ids:
                        replies[item["id"]] = {k: v for k, v in item.items() if k in ("result", "error")}
            return replies

    def call(self, method: str, params: list | None = None) -> dict:
        request = self._request(method, params or [])
        return self._exchange(request, {request["id"]})[request["id"]]

    def result(self, method: str, params: list | None = None) -> Any:
        reply = self.call(method, params)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply["result"]

    def batch(self, calls: list[tuple[str, list]]) -> list[dict]:
        """One JSON-RPC batch: the node sees all of it before it authors the next block."""
        requests = [self._request(m, p) for m, p in calls]
        replies = self._exchange(requests, {r["id"] for r in requests})
        return [replies[r["id"]] for r in requests]

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.ws.close()


@dataclass
class Side:
    name: str
    url: str
    sub: SubstrateInterface
    rpc: RawRpc
    advance_block: Callable[[Side], None]
    transfer_events: list[dict] = field(default_factory=list)

    # building ------------------------------------------------------------------------------------
    def address(self, keypair: Keypair) -> str:
        return self.sub.ss58_encode(keypair.public_key)

    def transfer_call(self, amount: int = TRANSFER_AMOUNT):
        return self.sub.compose_call("Balances", "transfer_allow_death",
                                     {"dest": self.address(BOB), "value": amount})

    def nonce(self, keypair: Keypair) -> int:
        return self.sub.get_account_nonce(self.address(keypair))

    def signed_hex(self, call: Any, keypair: Keypair, **kwargs: Any) -> str:
        return str(self.sub.create_signed_extrinsic(call=call, keypair=keypair, **kwargs).data)

    def head_number(self) -> int:
        return self.sub.get_block_number(self.sub.get_chain_head())

    # submitting ----------------------------------------------------------------------------------
    def submit_raw(self, extrinsic_hex: str) -> dict:
        return self.rpc.call("author_submitExtrinsic", [extrinsic_hex])

    def wait_pool_empty(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while self.rpc.result("author_pendingExtrinsics", []) and time.monotonic() < deadline:
            time.sleep(0.2)

    def advance(self, blocks: int) -> None:
        target = self.head_number() + blocks
        while self.head_number() < target:
            self.advance_block(self)


def _chopsticks_new_block(side: Side) -> None:
    side.rpc.result("dev_newBlock", [])


def _devnet_new_block(side: Side) -> None:
    """devnet seals a block per arriving transaction: include a remark from //Dave."""
    call = side.sub.compose_call("System", "remark", {"remark": "0x00"})
    xt = side.sub.create_signed_extrinsic(call=call, keypair=DAVE)
    assert side.sub.submit_extrinsic(xt, wait_for_inclusion=True).is_success


def _connect(name: str, url: str, advance: Callable[[Side], None]) -> Side:
    sub = SubstrateInterface(url=url, auto_reconnect=False, ws_options={"timeout": RPC_TIMEOUT_S})
    sub.init_runtime()
    return Side(name, url, sub, RawRpc(url), advance)


@dataclass
class Both:
    chopsticks: Side
    devnet: Side

    def __iter__(self) -> Iterator[Side]:
        return iter((self.chopsticks, self.devnet))


@pytest.fixture(scope="module")
def both(chopsticks: ChopsticksNode, devnet) -> Iterator[Both]:  # noqa: F811 - chopsticks is the fixture
    pair = Both(_connect("chopsticks", chopsticks.ws_url, _chopsticks_new_block),
                _connect("devnet", devnet.ws_url, _devnet_new_block))
    try:
        yield pair
    finally:
        for side in pair:
            side.rpc.close()
            with contextlib.suppress(Exception):
                side.sub.close()


@pytest.fixture(scope="module")
def transferred(both: Both) -> Both:
    """A successful transfer_allow_death //Alice -> //Bob on each chain; its events are kept on the sides."""
    for side in both:
        side.wait_pool_empty()
        xt = side.sub.create_signed_extrinsic(call=side.transfer_call(), keypair=ALICE)
        receipt = side.sub.submit_extrinsic(xt, wait_for_inclusion=True)
        assert receipt.is_success, f"{side.name}: transfer failed: {receipt.error_message}"
        side.transfer_events = [
            {"name": f"{e.value['module_id']}.{e.value['event_id']}", "attributes": e.value["attributes"]}
            for e in receipt.triggered_events]
    return both


# ------------------------------------------------------------------------------------------------
# structure of successful operations
# ------------------------------------------------------------------------------------------------

def test_account_info_layout(both: Both) -> None:
    layouts = {side.name: shape(side.sub.query("System", "Account", [side.address(ALICE)]).value)
               for side in both}
    assert_same("System.Account value layout", layouts["chopsticks"], layouts["devnet"])
    assert list(layouts["devnet"]) == ["nonce", "consumers", "providers", "sufficients", "data"]
    assert list(layouts["devnet"]["data"]) == ["free", "reserved", "frozen", "flags"]


def test_payment_info_fields(both: Both) -> None:
    infos = {side.name: side.sub.get_payment_info(side.transfer_call(), ALICE) for side in both}
    assert_same("get_payment_info layout", shape(infos["chopsticks"]), shape(infos["devnet"]))
    assert_same("get_payment_info dispatch class", infos["chopsticks"]["class"], infos["devnet"]["class"])
    assert list(infos["devnet"]) == ["weight", "class", "partialFee"]
    assert list(infos["devnet"]["weight"]) == ["ref_time", "proof_size"]
    assert all(info["partialFee"] > 0 for info in infos.values()), infos


def test_transfer_events(transferred: Both, request: pytest.FixtureRequest) -> None:
    events = {side.name: side.transfer_events for side in transferred}
    names = {name: [e["name"] for e in evs] for name, evs in events.items()}
    record(request, "transfer event names", names)

    # every shared event, and only documented one-sided ones
    for required in SHARED_EVENTS:
        for side, side_names in names.items():
            assert required in side_names, f"{side} did not emit {required}: {side_names}"
    only_chopsticks = [n for n in names["chopsticks"] if n not in names["devnet"]]
    only_devnet = [n for n in names["devnet"] if n not in names["chopsticks"]]
    record(request, "documented difference: events only chopsticks (Kusama) emits",
           {n: ONLY_CHOPSTICKS_EVENTS.get(n, "UNDOCUMENTED") for n in only_chopsticks})
    undocumented = ([f"chopsticks only: {n}" for n in only_chopsticks if n not in ONLY_CHOPSTICKS_EVENTS]
                    + [f"devnet only: {n}" for n in only_devnet if n not in ONLY_DEVNET_EVENTS])
    assert not undocumented, f"undocumented one-sided events: {undocumented}; all: {names}"

    # the events both emit: same relative order, same field names and nested shapes
    shared = [n for n in names["chopsticks"] if n in names["devnet"]]
    assert_same("order of the shared events", shared, [n for n in names["devnet"] if n in shared])
    layouts = {side: {e["name"]: shape(e["attributes"]) for e in evs if e["name"] in shared}
               for side, evs in events.items()}
    assert_same("field names and shapes of the shared events", layouts["chopsticks"], layouts["devnet"])
    assert layouts["devnet"]["System.ExtrinsicSuccess"] == {"dispatch_info": {
        "weight": {"ref_time": "int", "proof_size": "int"}, "class": "str", "pays_fee": "str"}}

    # enum values that clients branch on
    def dispatch_info(side: str) -> dict:
        [info] = [e["attributes"]["dispatch_info"] for e in events[side] if e["name"] == "System.ExtrinsicSuccess"]
        return {"class": info["class"], "pays_fee": info["pays_fee"]}
    assert_same("ExtrinsicSuccess dispatch class / pays_fee", dispatch_info("chopsticks"), dispatch_info("devnet"))


def test_account_info_layout_after_transfer(transferred: Both) -> None:
    layouts = {side.name: shape(side.sub.query("System", "Account", [side.address(BOB)]).value)
               for side in transferred}
    assert_same("System.Account value layout (//Bob, after the transfer)",
                layouts["chopsticks"], layouts["devnet"])


# ------------------------------------------------------------------------------------------------
# transactions the pool refuses
# ------------------------------------------------------------------------------------------------

@contextlib.contextmanager
def patched(obj: Any, name: str, replacement: Callable[..., Any]) -> Iterator[None]:
    """Shadow one method of one SubstrateInterface instance."""
    setattr(obj, name, replacement)
    try:
        yield
    finally:
        delattr(obj, name)


def bad_signature(side: Side) -> str:
    call, nonce = side.transfer_call(), side.nonce(ALICE)
    signature = bytearray(ALICE.sign(side.sub.generate_signature_payload(call, nonce=nonce)))
    signature[0] ^= 0x01  # one flipped bit
    return side.signed_hex(call, ALICE, nonce=nonce, signature="0x" + signature.hex())


def stale_nonce(side: Side) -> str:
    assert side.nonce(ALICE) > 0, "needs an included transaction from //Alice first"
    return side.signed_hex(side.transfer_call(), ALICE, nonce=0)


def wrong_genesis(side: Side) -> str:
    original = side.sub.get_block_hash

    def fake(block_id: Any = None) -> Any:
        return "0x" + "11" * 32 if block_id == 0 else original(block_id)

    nonce = side.nonce(ALICE)
    with patched(side.sub, "get_block_hash", fake):  # immortal: the checkpoint is the genesis hash too
        return side.signed_hex(side.transfer_call(), ALICE, nonce=nonce)


def wrong_spec_version(side: Side) -> str:
    sub = side.sub
    original = sub.generate_signature_payload

    def payload(*args: Any, **kwargs: Any) -> Any:
        saved = sub.runtime_version
        sub.runtime_version = saved + 1
        try:
            return original(*args, **kwargs)
        finally:
            sub.runtime_version = saved

    nonce = side.nonce(ALICE)
    with patched(sub, "generate_signature_payload", payload):
        return side.signed_hex(side.transfer_call(), ALICE, nonce=nonce)


def birth_block_not_produced(side: Side) -> str:
    """Mortal era whose birth block (phase = period - 1) lies beyond the head: no hash for it yet."""
    head = side.head_number()
    period = 64
    while period <= head + 1:
        period *= 2
    original = side.sub.get_block_hash

    def fake(block_id: Any = None) -> Any:  # the client cannot learn a hash for a future block
        found = original(block_id)
        return found if found is not None else "0x" + "22" * 32

    nonce = side.nonce(ALICE)
    with patched(side.sub, "get_block_hash", fake):
        return side.signed_hex(side.transfer_call(), ALICE, nonce=nonce,
                               era={"period": period, "current": period - 1})


def expired_era(side: Side) -> str:
    """Period 4, born at the head, submitted 6 blocks later: the re-derived checkpoint differs."""
    head, nonce = side.head_number(), side.nonce(ALICE)
    xt = side.signed_hex(side.transfer_call(), ALICE, nonce=nonce, era={"period": 4, "current": head})
    side.advance(6)
    return xt


def no_funds(side: Side) -> str:
    return side.signed_hex(side.transfer_call(), NO_FUNDS, nonce=0)


def oversized(side: Side) -> str:
    call = side.sub.compose_call("System", "remark", {"remark": "0x" + "00" * OVERSIZED_REMARK_BYTES})
    return side.signed_hex(call, ALICE, nonce=side.nonce(ALICE))


REFUSED = {
    "bad_signature": (bad_signature, {"invalid": {"badProof": None}}),
    "stale_nonce": (stale_nonce, {"invalid": {"stale": None}}),
    "wrong_genesis_hash": (wrong_genesis, {"invalid": {"badProof": None}}),
    "wrong_spec_version": (wrong_spec_version, {"invalid": {"badProof": None}}),
    "birth_block_not_produced": (birth_block_not_produced, {"invalid": {"ancientBirthBlock": None}}),
    "expired_mortal_era": (expired_era, {"invalid": {"badProof": None}}),
    "account_without_funds": (no_funds, {"invalid": {"payment": None}}),
    "oversized_remark": (oversized, {"invalid": {"exhaustsResources": None}}),
}


def normalised(side: str, reply: dict) -> dict:
    """{code, validity}: devnet's `data`, or the JSON chopsticks puts in its message."""
    error = reply.get("error")
    if error is None:
        return {"accepted": reply.get("result")}
    if side == "devnet":
        return {"code": error.get("code"), "message": error.get("message"), "validity": error.get("data")}
    try:
        validity = json.loads(error.get("message", ""))
    except ValueError:
        validity = {"unparsed message": error.get("message")}
    # chopsticks has no `data`; the message a Substrate node (and devnet) gives for 1010
    return {"code": error.get("code"), "message": "Invalid Transaction" if error.get("code") == 1010
            else error.get("message"), "validity": validity, **({"data": error["data"]} if "data" in error else {})}


@pytest.mark.parametrize("case", list(REFUSED))
def test_refused_transaction(case: str, transferred: Both) -> None:
    build, expected = REFUSED[case]
    replies = {}
    for side in transferred:
        side.wait_pool_empty()
        replies[side.name] = side.submit_raw(build(side))
    answers = {name: normalised(name, reply) for name, reply in replies.items()}
    assert_same(f"{case}: pool error (code, validity)", answers["chopsticks"], answers["devnet"])
    assert answers["devnet"] == {"code": 1010, "message": "Invalid Transaction", "validity": expected}, replies


# ------------------------------------------------------------------------------------------------
# documented divergences: devnet follows Substrate; chopsticks' answer is recorded, not asserted
# ------------------------------------------------------------------------------------------------

def test_divergence_undecodable_bytes(both: Both, request: pytest.FixtureRequest) -> None:
    devnet = both.devnet.submit_raw("0x1234")
    record(request, "documented difference: undecodable 0x1234, chopsticks answers",
           both.chopsticks.submit_raw("0x1234"))
    error = devnet.get("error") or {}
    assert error.get("code") == 1001, devnet
    assert error.get("message", "").startswith("Extrinsic has invalid format"), devnet


def test_divergence_duplicate_submission(transferred: Both, request: pytest.FixtureRequest) -> None:
    replies = {}
    for side in transferred:
        side.wait_pool_empty()
        xt = side.signed_hex(side.transfer_call(), ALICE, nonce=side.nonce(ALICE))
        # one batch: both copies reach the pool before the node authors a block
        replies[side.name] = side.rpc.batch([("author_submitExtrinsic", [xt])] * 2)
        side.wait_pool_empty()
    record(request, "documented difference: the same extrinsic twice, chopsticks answers", replies["chopsticks"])
    first, second = replies["devnet"]
    assert "result" in first, first
    assert second.get("error", {}).get("code") == 1013, second
    assert second["error"].get("message") == "Transaction Already Imported", second


def test_divergence_future_nonce(transferred: Both, request: pytest.FixtureRequest) -> None:
    """Last on purpose: chopsticks keeps the future transaction in its pool for good."""
    replies = {}
    for side in transferred:
        side.wait_pool_empty()
        replies[side.name] = side.submit_raw(
            side.signed_hex(side.transfer_call(), ALICE, nonce=side.nonce(ALICE) + 1000))
    record(request, "documented difference: nonce + 1000, chopsticks answers", replies["chopsticks"])
    assert replies["devnet"].get("error") == {
        "code": 1010, "message": "Invalid Transaction", "data": {"invalid": {"future": None}}}, replies["devnet"]
