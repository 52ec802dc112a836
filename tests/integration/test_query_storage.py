"""state_queryStorage over a range against the per-block answers, on a real devnet.

devnet answers a range by walking forward over the writes of the keys within it
(devnet/state.py StateStore.query); every block's answer must still be what
state_getStorage says at that block, and unchanged blocks must be left out.
"""
from __future__ import annotations

import json
import urllib.request
from typing import Any

from substrateinterface import Keypair, SubstrateInterface


def rpc(url: str, method: str, params: Any) -> Any:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    reply = json.load(urllib.request.urlopen(request, timeout=30))
    assert "error" not in reply, reply
    return reply["result"]


def test_query_storage_matches_get_storage_at_every_block(devnet) -> None:
    alice, bob, charlie = (Keypair.create_from_uri(f"//{n}") for n in ("Alice", "Bob", "Charlie"))
    with SubstrateInterface(url=devnet.ws_url) as si:
        start = si.get_block_number(si.get_chain_head())
        for i in range(6):  # a block each (instant seal): Alice's and Bob's balances change, Charlie's never
            sender = alice if i % 2 else bob
            call = si.compose_call("Balances", "transfer_keep_alive", {"dest": charlie.ss58_address if i == 3
                                                                       else (bob if i % 2 else alice).ss58_address,
                                                                       "value": 10**12 + i})
            si.submit_extrinsic(si.create_signed_extrinsic(call, sender), wait_for_inclusion=True)
        keys = [si.create_storage_key("System", "Account", [k.ss58_address]).to_hex() for k in (alice, bob, charlie)]
        keys += [si.create_storage_key("System", "Number").to_hex(), si.create_storage_key("System", "Events").to_hex(),
                 "0x" + "ab" * 32]  # a key that never exists
        keys.append(keys[0])  # a duplicate
    head = rpc(devnet.http_url, "chain_getHeader", [])["number"]
    first, last = max(0, start - 2), int(head, 16)
    hashes = [rpc(devnet.http_url, "chain_getBlockHash", [n]) for n in range(first, last + 1)]
    for lo, hi in ((0, len(hashes) - 1), (2, 4), (3, 3), (len(hashes) - 1, len(hashes) - 1)):
        got = rpc(devnet.http_url, "state_queryStorage", [keys, hashes[lo], hashes[hi]])
        expected, previous = [], {}
        for offset, block in enumerate(hashes[lo:hi + 1]):
            changes = []
            for key in keys:
                value = rpc(devnet.http_url, "state_getStorage", [key, block])
                if offset == 0 or previous.get(key) != value:
                    changes.append([key, value])
                previous[key] = value
            if changes:
                expected.append({"block": block, "changes": changes})
        assert got == expected, (lo, hi)
    full = rpc(devnet.http_url, "state_queryStorage", [keys, hashes[0], hashes[-1]])
    assert len(full) == len(hashes)  # System.Number changes in every block
    changed = {k for entry in full[1:] for k, _ in entry["changes"]}
    assert keys[2] in changed and keys[5] not in changed  # Charlie got one transfer; the absent key never changes
