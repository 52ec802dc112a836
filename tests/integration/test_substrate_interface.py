"""py-substrate-interface 1.8.1, unchanged, against a running devnet.

The issue's proof for the Python client: connect, read constants and storage
(paged maps too), transfer with wait_for_inclusion and wait_for_finalization,
read the events, query fees, subscribe to heads and to storage, call a runtime
API, sign with ed25519, decode a failed dispatch, and check that `rpc_methods`
is truthful. Every test talks to a real node over a real WebSocket.
"""
from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import websocket  # websocket-client, substrate-interface's own transport
from substrateinterface import Keypair, KeypairType, SubstrateInterface
from substrateinterface.exceptions import SubstrateRequestException

DEV_NAMES = ("Alice", "Bob", "Charlie", "Dave", "Eve", "Ferdie")
SUBSCRIPTION_TIMEOUT_S = 20


CALLED: set[str] = set()  # every JSON-RPC method the module's client issued


@pytest.fixture(scope="module")
def client(devnet) -> Iterator[SubstrateInterface]:
    substrate = SubstrateInterface(url=devnet.ws_url)
    issue = substrate.rpc_request

    def observed(method: str, params: Any, result_handler: Any = None) -> Any:
        CALLED.add(method)  # observe only: the call goes on unchanged
        return issue(method, params, result_handler)

    substrate.rpc_request = observed  # type: ignore[method-assign]
    yield substrate
    substrate.close()


@pytest.fixture(scope="module")
def alice() -> Keypair:
    return Keypair.create_from_uri("//Alice")


@pytest.fixture(scope="module")
def bob() -> Keypair:
    return Keypair.create_from_uri("//Bob")


def free_of(client: SubstrateInterface, address: str) -> int:
    return client.query("System", "Account", [address]).value["data"]["free"]


def transfer(client: SubstrateInterface, sender: Keypair, dest: str, value: int, *,
             call_name: str = "transfer_keep_alive", **wait: bool):
    call = client.compose_call("Balances", call_name, {"dest": dest, "value": value})
    return client.submit_extrinsic(client.create_signed_extrinsic(call, sender), **wait)


def rpc(url: str, method: str, params: Any = None) -> dict[str, Any]:
    body = {"jsonrpc": "2.0", "id": 1, "method": method}
    if params is not None:
        body["params"] = params
    request = urllib.request.Request(url, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(request, timeout=10))


class Background:
    """Keeps transferring to a destination from its own client until told to stop.

    A subscription only sees a change made after it was registered; repeating the
    transfer until the subscriber has what it waits for removes that race.
    """

    def __init__(self, url: str, dest: str, value: int, gate: threading.Event | None = None) -> None:
        self.url, self.dest, self.value, self.gate = url, dest, value, gate
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self.sent = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        if self.gate is not None and not self.gate.wait(SUBSCRIPTION_TIMEOUT_S):
            return
        try:
            charlie = Keypair.create_from_uri("//Charlie")
            time.sleep(0.3)
            while not self.stop.is_set() and self.sent < 20:
                receipt = transfer(self.other, charlie, self.dest, self.value, wait_for_inclusion=True)
                assert receipt.is_success, receipt.error_message
                self.sent += 1
                self.stop.wait(0.5)
        except BaseException as exc:  # reported by the test thread
            self.errors.append(exc)

    def __enter__(self) -> "Background":
        # The connection loads its runtime on the test's thread, before any subscription decodes: scalecodec
        # keeps the configuration being loaded on shared decoder classes, so a load beside decoding breaks it.
        self.other = SubstrateInterface(url=self.url)
        self.other.init_runtime()
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(SUBSCRIPTION_TIMEOUT_S)
        self.other.close()
        assert not self.thread.is_alive(), "background transfer thread hung"
        assert not self.errors, self.errors


def with_deadline(fn, *args, **kwargs):
    """Run a blocking subscription call, failing instead of hanging forever."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = fn(*args, **kwargs)
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(SUBSCRIPTION_TIMEOUT_S)
    assert not thread.is_alive(), f"{fn.__name__} got no result within {SUBSCRIPTION_TIMEOUT_S} s"
    if "error" in box:
        raise box["error"]
    return box["result"]


# Connect, constants, storage -------------------------------------------------------------------

def test_connect_reads_chain_identity(client: SubstrateInterface) -> None:
    assert client.chain == "Paratrain Devnet"
    assert client.name == "paratrain-devnet"
    assert client.ss58_format == 42
    assert client.token_symbol == "PARA" and client.token_decimals == 12
    client.init_runtime()
    assert client.implements_scaleinfo()
    head = client.get_chain_head()
    assert client.get_block_number(head) >= 0
    assert client.get_block_hash(0).startswith("0x")


def test_constants(client: SubstrateInterface) -> None:
    assert client.get_constant("Balances", "ExistentialDeposit").value == 10**9
    assert client.get_constant("System", "SS58Prefix").value == 42
    assert client.get_constant("System", "BlockHashCount").value == 4096
    assert client.get_constant("Timestamp", "MinimumPeriod").value == 3000


def test_storage_account_and_total_issuance(client: SubstrateInterface, alice: Keypair) -> None:
    account = client.query("System", "Account", [alice.ss58_address]).value
    assert set(account) >= {"nonce", "consumers", "providers", "sufficients", "data"}
    assert set(account["data"]) >= {"free", "reserved", "frozen"}
    assert account["data"]["free"] > 0 and account["providers"] >= 1
    issuance = client.query("Balances", "TotalIssuance").value
    assert issuance >= len(DEV_NAMES) * (1 << 59)  # every dev account is endowed with 2**60


def test_query_map_pages_through_every_account(client: SubstrateInterface) -> None:
    result = client.query_map("System", "Account", page_size=2)
    entries = {key.value: value.value for key, value in result}
    expected = {Keypair.create_from_uri(f"//{name}").ss58_address for name in DEV_NAMES}
    assert expected <= set(entries), expected - set(entries)
    assert all(entry["data"]["free"] > 0 for entry in entries.values())
    # Page size is honoured: one page holds two keys.
    first = client.query_map("System", "Account", page_size=2, max_results=2)
    assert len(list(first)) == 2


# Transfers, events, fees -----------------------------------------------------------------------

def test_transfer_wait_for_inclusion_events_and_fee(client: SubstrateInterface, alice: Keypair,
                                                    bob: Keypair) -> None:
    amount = 3 * 10**12
    call = client.compose_call("Balances", "transfer_keep_alive", {"dest": bob.ss58_address, "value": amount})
    # get_payment_info signs with the current nonce and an immortal era, like the
    # create_signed_extrinsic below, so both extrinsics have the same length.
    info = client.get_payment_info(call, alice)
    bob_before = free_of(client, bob.ss58_address)
    extrinsic = client.create_signed_extrinsic(call, alice)
    receipt = client.submit_extrinsic(extrinsic, wait_for_inclusion=True)

    assert receipt.is_success, receipt.error_message
    assert receipt.block_hash and receipt.extrinsic_hash
    assert receipt.extrinsic_idx >= 1  # 0 is the timestamp inherent
    names = [(e.value["module_id"], e.value["event_id"]) for e in receipt.triggered_events]
    assert ("Balances", "Transfer") in names
    assert ("TransactionPayment", "TransactionFeePaid") in names
    assert ("System", "ExtrinsicSuccess") in names
    transfer_event = next(e for e in receipt.triggered_events
                          if e.value["module_id"] == "Balances" and e.value["event_id"] == "Transfer")
    attrs = transfer_event.value["attributes"]
    assert attrs["from"] == alice.ss58_address
    assert attrs["to"] == bob.ss58_address
    assert attrs["amount"] == amount
    fee_paid = next(e for e in receipt.triggered_events if e.value["event_id"] == "TransactionFeePaid")
    assert fee_paid.value["attributes"]["who"] == alice.ss58_address

    assert info["partialFee"] > 0 and info["weight"]["ref_time"] > 0
    assert receipt.total_fee_amount == info["partialFee"]
    assert free_of(client, bob.ss58_address) == bob_before + amount

    # The same extrinsic priced by the deprecated payment_queryInfo RPC agrees.
    queried = client.rpc_request("payment_queryInfo", [str(extrinsic.data), receipt.block_hash])["result"]
    assert int(queried["partialFee"]) == info["partialFee"]


def test_transfer_wait_for_finalization(client: SubstrateInterface, alice: Keypair, bob: Keypair) -> None:
    receipt = transfer(client, alice, bob.ss58_address, 10**12, wait_for_finalization=True)
    assert receipt.finalized is True
    assert receipt.is_success
    finalized = client.get_chain_finalised_head()
    assert client.get_block_number(finalized) >= client.get_block_number(receipt.block_hash)


def test_events_and_block_with_decoded_extrinsics(client: SubstrateInterface, alice: Keypair,
                                                  bob: Keypair) -> None:
    receipt = transfer(client, alice, bob.ss58_address, 7 * 10**9, wait_for_inclusion=True)
    events = client.get_events(receipt.block_hash)
    names = [(e.value["module_id"], e.value["event_id"]) for e in events]
    assert ("Balances", "Transfer") in names and ("System", "ExtrinsicSuccess") in names
    mine = [e.value["event_id"] for e in events
            if e.value["phase"] == "ApplyExtrinsic" and e.value["extrinsic_idx"] == receipt.extrinsic_idx]
    assert mine[-1] == "ExtrinsicSuccess" and "Transfer" in mine
    assert [e.value["event_id"] for e in receipt.triggered_events] == mine

    block = client.get_block(receipt.block_hash)
    assert block["header"]["hash"] == receipt.block_hash
    calls = [(x.value["call"]["call_module"], x.value["call"]["call_function"]) for x in block["extrinsics"]]
    assert calls[0] == ("Timestamp", "set")
    assert ("Balances", "transfer_keep_alive") in calls
    signed = block["extrinsics"][receipt.extrinsic_idx].value
    assert signed["address"] == alice.ss58_address
    args = {a["name"]: a["value"] for a in signed["call"]["call_args"]}
    assert args["value"] == 7 * 10**9
    assert signed["extrinsic_hash"] == receipt.extrinsic_hash

    same = client.get_block(block_number=block["header"]["number"])
    assert same["header"]["hash"] == receipt.block_hash


# Subscriptions ---------------------------------------------------------------------------------

def test_subscribe_block_headers(devnet, client: SubstrateInterface) -> None:
    start = client.get_block_number(client.get_chain_head())
    headers: list[int] = []

    def handler(obj: dict[str, Any], update_nr: int, subscription_id: str) -> Any:
        headers.append(obj["header"]["number"])
        if len(headers) >= 2:
            return headers

    dest = Keypair.create_from_uri("//Dave").ss58_address
    with Background(devnet.ws_url, dest, 10**10):
        result = with_deadline(client.subscribe_block_headers, handler)
    assert len(result) == 2
    assert result[0] >= start and result[1] > result[0]


def test_subscribe_finalized_block_headers(devnet, client: SubstrateInterface) -> None:
    headers: list[int] = []

    def handler(obj: dict[str, Any], update_nr: int, subscription_id: str) -> Any:
        headers.append(obj["header"]["number"])
        if len(headers) >= 2:
            return headers

    dest = Keypair.create_from_uri("//Dave").ss58_address
    with Background(devnet.ws_url, dest, 10**10):
        result = with_deadline(client.subscribe_block_headers, handler, finalized_only=True)
    assert result[1] > result[0]


def test_storage_subscription_sends_current_value_then_update(devnet, client: SubstrateInterface,
                                                              bob: Keypair) -> None:
    current = free_of(client, bob.ss58_address)
    seen: list[int] = []

    def handler(obj: Any, update_nr: int, subscription_id: str) -> Any:
        seen.append(obj.value["data"]["free"])
        if update_nr >= 1:
            return seen

    # The first callback must come from the subscription itself: nothing is
    # transferred until it arrived.
    first = threading.Event()

    def handler_with_signal(obj: Any, update_nr: int, subscription_id: str) -> Any:
        result = handler(obj, update_nr, subscription_id)
        first.set()
        return result

    with Background(devnet.ws_url, bob.ss58_address, 5 * 10**9, gate=first):
        result = with_deadline(client.query, "System", "Account", [bob.ss58_address],
                               subscription_handler=handler_with_signal)
    assert result[0] == current
    assert result[1] > current
    assert (result[1] - current) % (5 * 10**9) == 0


# Runtime API, other key types, failures --------------------------------------------------------

def test_runtime_call_account_nonce(client: SubstrateInterface, alice: Keypair) -> None:
    nonce = client.runtime_call("AccountNonceApi", "account_nonce", [alice.ss58_address]).value
    assert nonce == client.query("System", "Account", [alice.ss58_address]).value["nonce"]
    assert nonce == client.get_account_nonce(alice.ss58_address)
    assert nonce >= 3  # the transfers above


def test_ed25519_account_is_funded_and_sends_back(client: SubstrateInterface, alice: Keypair) -> None:
    # substrate-interface 1.8.1 derives no paths for ed25519: a bare mnemonic is the URI.
    edward = Keypair.create_from_uri(Keypair.generate_mnemonic(), crypto_type=KeypairType.ED25519)
    assert edward.crypto_type == KeypairType.ED25519
    funded = transfer(client, alice, edward.ss58_address, 10**12, call_name="transfer_allow_death",
                      wait_for_inclusion=True)
    assert funded.is_success, funded.error_message
    assert free_of(client, edward.ss58_address) == 10**12

    alice_before = free_of(client, alice.ss58_address)
    back = transfer(client, edward, alice.ss58_address, 10**11, wait_for_inclusion=True)
    assert back.is_success, back.error_message
    transfer_event = next(e for e in back.triggered_events if e.value["event_id"] == "Transfer")
    assert transfer_event.value["attributes"]["from"] == edward.ss58_address
    assert free_of(client, alice.ss58_address) == alice_before + 10**11
    assert free_of(client, edward.ss58_address) == 10**12 - 10**11 - back.total_fee_amount


def test_failed_dispatch_reports_module_error(client: SubstrateInterface, bob: Keypair) -> None:
    poor = Keypair.create_from_uri("//Ferdie")
    balance = free_of(client, poor.ss58_address)
    receipt = transfer(client, poor, bob.ss58_address, balance * 2, call_name="transfer_allow_death",
                       wait_for_inclusion=True)
    assert receipt.is_success is False
    assert receipt.error_message["type"] == "Module"
    assert receipt.error_message["name"] in ("InsufficientBalance", "FundsUnavailable")
    names = [(e.value["module_id"], e.value["event_id"]) for e in receipt.triggered_events]
    assert ("System", "ExtrinsicFailed") in names
    assert ("TransactionPayment", "TransactionFeePaid") in names  # the fee is still paid
    assert free_of(client, poor.ss58_address) == balance - receipt.total_fee_amount


def test_invalid_transaction_is_refused_with_substrate_error(client: SubstrateInterface) -> None:
    nobody = Keypair.create_from_uri("//NobodyHasFunds")
    call = client.compose_call("Balances", "transfer_keep_alive", {"dest": nobody.ss58_address, "value": 1})
    with pytest.raises(SubstrateRequestException) as err:
        client.submit_extrinsic(client.create_signed_extrinsic(call, nobody), wait_for_inclusion=True)
    assert "1010" in str(err.value) or "Invalid Transaction" in str(err.value)


# rpc_methods -----------------------------------------------------------------------------------

# Methods the client issues in this module (and in the calls it makes on our behalf).
CLIENT_METHODS = {
    "rpc_methods", "system_name", "system_chain", "system_version", "system_properties",
    "chain_getHead", "chain_getBlockHash", "chain_getHeader", "chain_getBlock", "chain_getFinalizedHead",
    "chain_getRuntimeVersion", "state_getRuntimeVersion", "state_getMetadata", "state_getStorageAt",
    "state_getStorage", "state_getKeysPaged", "state_queryStorageAt", "state_call",
    "state_subscribeStorage", "state_unsubscribeStorage", "chain_subscribeNewHeads",
    "chain_unsubscribeNewHeads", "chain_subscribeFinalizedHeads", "chain_unsubscribeFinalizedHeads",
    "author_submitExtrinsic", "author_submitAndWatchExtrinsic", "author_unwatchExtrinsic",
    "author_pendingExtrinsics", "system_accountNextIndex", "payment_queryInfo",
}


def test_rpc_methods_is_truthful(devnet, client: SubstrateInterface) -> None:
    listed = client.rpc_request("rpc_methods", [])["result"]["methods"]
    assert len(listed) == len(set(listed))
    assert CLIENT_METHODS <= set(listed), CLIENT_METHODS - set(listed)
    for method in ("chain_subscribeNewHead", "chain_subscribeNewHeads", "chain_subscribeFinalizedHeads"):
        assert method in listed
    not_found = []
    for method in listed:
        # Over HTTP, a subscription answers an error of its own (it needs a WebSocket), but never -32601.
        reply = rpc(devnet.http_url, method, [])
        if reply.get("error", {}).get("code") == -32601:
            not_found.append(method)
    assert not not_found, f"listed but 'Method not found': {not_found}"
    assert rpc(devnet.http_url, "no_suchMethod")["error"]["code"] == -32601


def test_rpc_methods_answer_over_websocket(devnet, client: SubstrateInterface) -> None:
    """The same check over a WebSocket of its own, where subscriptions are real."""
    listed = client.rpc_request("rpc_methods", [])["result"]["methods"]
    with RawSocket(devnet.ws_url) as ws:
        replies = {method: ws.call(method, []) for method in listed}
    not_found = [m for m, reply in replies.items() if reply.get("error", {}).get("code") == -32601]
    assert not not_found, not_found
    # Subscriptions without params answer a subscription id (or invalid params where one is required).
    assert isinstance(replies["chain_subscribeNewHeads"]["result"], str)
    assert replies["author_submitAndWatchExtrinsic"]["error"]["code"] == -32602


# The wire protocol under both clients ------------------------------------------------------------

class RawSocket:
    """A bare JSON-RPC WebSocket, to see notifications exactly as the node sends them."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.next_id = 0
        self.notifications: list[dict[str, Any]] = []

    def __enter__(self) -> "RawSocket":
        self.ws = websocket.create_connection(self.url, timeout=SUBSCRIPTION_TIMEOUT_S)
        return self

    def __exit__(self, *exc: object) -> None:
        self.ws.close()

    def call(self, method: str, params: Any) -> dict[str, Any]:
        self.next_id += 1
        self.ws.send(json.dumps({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self.next_id:
                return message
            self.notifications.append(message)

    def notification(self) -> dict[str, Any]:
        if self.notifications:
            return self.notifications.pop(0)
        return json.loads(self.ws.recv())


def test_submit_and_watch_notifications(devnet, client: SubstrateInterface, alice: Keypair,
                                        bob: Keypair) -> None:
    call = client.compose_call("Balances", "transfer_keep_alive", {"dest": bob.ss58_address, "value": 10**9})
    extrinsic = client.create_signed_extrinsic(call, alice)
    with RawSocket(devnet.ws_url) as ws:
        sub_id = ws.call("author_submitAndWatchExtrinsic", [str(extrinsic.data)])["result"]
        updates = []
        while not updates or not (isinstance(updates[-1], dict) and "finalized" in updates[-1]):
            note = ws.notification()
            assert note["method"] == "author_extrinsicUpdate"  # what Polkadot.js routes on
            assert note["params"]["subscription"] == sub_id
            updates.append(note["params"]["result"])
    assert updates[0] == "ready"
    assert [next(iter(u)) for u in updates[1:]] == ["inBlock", "finalized"]
    assert updates[1]["inBlock"] == updates[2]["finalized"]


def test_subscriptions_send_current_value_at_once(devnet, client: SubstrateInterface, bob: Keypair) -> None:
    key = client.create_storage_key("System", "Account", [bob.ss58_address]).to_hex()
    head = client.get_chain_head()
    finalized = client.get_chain_finalised_head()
    with RawSocket(devnet.ws_url) as ws:
        expected = {
            "chain_subscribeNewHead": "chain_newHead",
            "chain_subscribeNewHeads": "chain_newHead",
            "chain_subscribeFinalizedHeads": "chain_finalizedHead",
            "state_subscribeStorage": "state_storage",
        }
        ids = {}
        for method in expected:
            params = [[key]] if method == "state_subscribeStorage" else []
            ids[ws.call(method, params)["result"]] = method
        # Nothing happens on chain meanwhile: each notification is the current value.
        seen = {}
        for _ in expected:
            note = ws.notification()
            seen[ids[note["params"]["subscription"]]] = note
    for method, notification in expected.items():
        assert seen[method]["method"] == notification
    current = client.rpc_request("state_getStorage", [key])["result"]
    storage = seen["state_subscribeStorage"]["params"]["result"]
    assert storage == {"block": head, "changes": [[key, current]]}
    assert seen["chain_subscribeNewHeads"]["params"]["result"]["number"] == hex(client.get_block_number(head))
    assert seen["chain_subscribeFinalizedHeads"]["params"]["result"]["number"] == hex(
        client.get_block_number(finalized))


def test_every_method_the_client_called_is_listed(client: SubstrateInterface) -> None:
    """Runs last: by now the client has issued everything the tests above made it issue."""
    listed = set(client.rpc_request("rpc_methods", [])["result"]["methods"])
    assert len(CALLED) > 10, CALLED
    assert CALLED <= listed, CALLED - listed
