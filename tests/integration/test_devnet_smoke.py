"""The node starts, answers over both transports, and moves balances for an unmodified client."""
from __future__ import annotations

import json
import urllib.request

from substrateinterface import Keypair, SubstrateInterface


def test_transfer_with_substrate_interface(devnet) -> None:
    client = SubstrateInterface(url=devnet.ws_url)
    alice, bob = Keypair.create_from_uri("//Alice"), Keypair.create_from_uri("//Bob")
    before = client.query("System", "Account", [bob.ss58_address]).value["data"]["free"]
    call = client.compose_call("Balances", "transfer_keep_alive", {"dest": bob.ss58_address, "value": 12345678})
    receipt = client.submit_extrinsic(client.create_signed_extrinsic(call, alice), wait_for_finalization=True)
    assert receipt.is_success
    assert client.query("System", "Account", [bob.ss58_address]).value["data"]["free"] == before + 12345678
    client.close()


def test_http_post_answers_rpc_methods(devnet) -> None:
    request = urllib.request.Request(devnet.http_url, data=json.dumps(
        {"jsonrpc": "2.0", "id": 1, "method": "rpc_methods", "params": []}).encode(),
        headers={"Content-Type": "application/json"})
    methods = json.load(urllib.request.urlopen(request, timeout=10))["result"]["methods"]
    assert "author_submitAndWatchExtrinsic" in methods and "state_call" in methods
