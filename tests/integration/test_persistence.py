"""With --base-path, finalized blocks and state survive a restart: a clean one, and kill -9.

Unfinalized blocks (with --finality-lag) may be lost to kill -9, as on any Substrate
node; finalized ones never are, and the state after a restart is exactly the state
of the finalized block the node resumes from.
"""
from __future__ import annotations

import hashlib
import json
import signal
import time
from pathlib import Path
from typing import Any

import pytest
import websocket
import xxhash
from substrateinterface import Keypair, SubstrateInterface

from paratrain.local import DevnetProcess

pytestmark = pytest.mark.slow  # restarts devnet processes, kill -9 included

ALICE, BOB = Keypair.create_from_uri("//Alice"), Keypair.create_from_uri("//Bob")


def twox128(data: bytes) -> bytes:
    return b"".join(xxhash.xxh64_intdigest(data, seed=s).to_bytes(8, "little") for s in (0, 1))


def account_key(public_key: bytes) -> str:
    return "0x" + (twox128(b"System") + twox128(b"Account") + hashlib.blake2b(public_key, digest_size=16).digest()
                   + public_key).hex()


class Node:
    """A devnet subprocess on one base path that can be stopped and started again; its output is drained."""

    def __init__(self, base_path: Path, *args: str) -> None:
        self.process = DevnetProcess("--base-path", str(base_path), *args)
        self.log: list[str] = []

    def start(self) -> Node:
        self.process.start()
        self.log = self.process.output
        return self

    def client(self) -> SubstrateInterface:
        return SubstrateInterface(url=self.process.ws_url)

    def kill9(self) -> None:
        self.process.kill9()
        assert self.process.proc is not None and self.process.proc.returncode == -signal.SIGKILL

    def stop(self) -> int:
        return self.process.stop()

    def assert_no_errors(self) -> None:
        text = "".join(self.log)
        assert "Traceback" not in text and "ERROR" not in text, text[-4000:]


def rpc(client: SubstrateInterface, method: str, *params: Any) -> Any:
    reply = client.rpc_request(method, list(params))
    assert "error" not in reply, reply
    return reply["result"]


def send(client: SubstrateInterface, value: int, *, finalized: bool = True) -> Any:
    call = client.compose_call("Balances", "transfer_keep_alive", {"dest": BOB.ss58_address, "value": value})
    extrinsic = client.create_signed_extrinsic(call, ALICE)
    receipt = client.submit_extrinsic(extrinsic, wait_for_inclusion=not finalized, wait_for_finalization=finalized)
    assert receipt.is_success, receipt.error_message
    return receipt


def record(client: SubstrateInterface) -> dict[str, Any]:
    """What a restart must keep: the finalized chain and the state at its head, as clients see them."""
    finalized = rpc(client, "chain_getFinalizedHead")
    header = rpc(client, "chain_getHeader", finalized)
    number = int(header["number"], 16)
    return {
        "genesis": rpc(client, "chain_getBlockHash", 0),
        "finalized": finalized,
        "number": number,
        "header": header,
        "block": rpc(client, "chain_getBlock", finalized),
        "hashes": [rpc(client, "chain_getBlockHash", n) for n in range(number + 1)],
        "raw_accounts": [rpc(client, "state_getStorage", account_key(k.public_key), finalized) for k in (ALICE, BOB)],
        "accounts": [client.query("System", "Account", [k.ss58_address], block_hash=finalized).value
                     for k in (ALICE, BOB)],
        "next_index": rpc(client, "system_accountNextIndex", ALICE.ss58_address),
        "version": rpc(client, "state_getRuntimeVersion"),
    }


def test_finalized_blocks_and_state_survive_kill_9(tmp_path: Path) -> None:
    node = Node(tmp_path).start()
    try:
        client = node.client()
        for value in (1_000_000, 2_000_000):
            send(client, value)
        before = record(client)
        assert before["number"] >= 2 and before["next_index"] >= 2
        assert rpc(client, "chain_getHeader")["number"] == before["header"]["number"]  # no finality lag
        client.close()
        node.kill9()

        node.start()
        client = node.client()
        assert record(client) == before
        # New transfers continue the chain and the nonce sequence.
        bob_free = before["accounts"][1]["data"]["free"]
        receipt = send(client, 4_000_000)
        header = rpc(client, "chain_getHeader", receipt.block_hash)
        assert header["parentHash"] == before["finalized"]
        assert int(header["number"], 16) == before["number"] + 1
        assert rpc(client, "system_accountNextIndex", ALICE.ss58_address) == before["next_index"] + 1
        assert client.query("System", "Account", [BOB.ss58_address]).value["data"]["free"] == bob_free + 4_000_000
        client.close()
        node.assert_no_errors()
    finally:
        node.stop()


def test_clean_sigint_restart(tmp_path: Path) -> None:
    node = Node(tmp_path).start()
    try:
        client = node.client()
        send(client, 5_000_000)
        before = record(client)
        client.close()
        assert node.stop() == 0
        node.start()
        client = node.client()
        assert record(client) == before
        send(client, 6_000_000)
        assert rpc(client, "system_accountNextIndex", ALICE.ss58_address) == before["next_index"] + 1
        client.close()
        node.assert_no_errors()
    finally:
        assert node.stop() == 0
    assert "".join(node.log).count("devnet stopped") == 2


def test_with_finality_lag_kill_9_loses_only_unfinalized_blocks(tmp_path: Path) -> None:
    """A block every 500 ms, final two blocks later: kill -9 right after inclusion loses that block only."""
    node = Node(tmp_path, "--finality-lag", "2", "--block-time", "500").start()
    try:
        client = node.client()
        first = send(client, 7_000_000)  # waits for finality
        first_number = int(rpc(client, "chain_getHeader", first.block_hash)["number"], 16)
        nonce_after_first = rpc(client, "system_accountNextIndex", ALICE.ss58_address)
        call = client.compose_call("Balances", "transfer_keep_alive", {"dest": BOB.ss58_address, "value": 8_000_000})
        second = client.create_signed_extrinsic(call, ALICE)
        receipt = client.submit_extrinsic(second, wait_for_inclusion=True)
        second_number = int(rpc(client, "chain_getHeader", receipt.block_hash)["number"], 16)
        # The state of Alice at every block there is now, to compare with whatever the node resumes from.
        best = int(rpc(client, "chain_getHeader")["number"], 16)
        seen = {}
        for n in range(best + 1):
            block_hash = rpc(client, "chain_getBlockHash", n)
            seen[block_hash] = (n, rpc(client, "state_getStorage", account_key(ALICE.public_key), block_hash))
        finalized_before = int(rpc(client, "chain_getHeader", rpc(client, "chain_getFinalizedHead"))["number"], 16)
        assert first_number <= finalized_before and second_number <= best
        client.close()
        node.kill9()

        node.start()
        client = node.client()
        finalized = rpc(client, "chain_getFinalizedHead")
        # The node resumes from a block it had, at least as recent as the last one known finalized ...
        assert finalized in seen, "resumed from a block that never existed"
        number, alice_then = seen[finalized]
        assert number >= finalized_before
        # ... with that block's state, and the finalized chain below it unchanged.
        assert rpc(client, "state_getStorage", account_key(ALICE.public_key), finalized) == alice_then
        for block_hash, (n, _) in seen.items():
            if n <= number:
                assert rpc(client, "chain_getBlockHash", n) == block_hash
        assert rpc(client, "chain_getHeader", first.block_hash) is not None  # finalized: never lost
        if number < second_number:  # the expected case: kill -9 came well within the one-second window
            assert rpc(client, "chain_getHeader", receipt.block_hash) is None  # that block is gone
            assert rpc(client, "system_accountNextIndex", ALICE.ss58_address) == nonce_after_first
            # Nothing of it remains: the very same transaction is valid again and goes through.
            again = client.submit_extrinsic(second, wait_for_finalization=True)
            assert again.is_success
            assert rpc(client, "system_accountNextIndex", ALICE.ss58_address) == nonce_after_first + 1
        else:
            assert rpc(client, "system_accountNextIndex", ALICE.ss58_address) == nonce_after_first + 1
        client.close()
        node.assert_no_errors()
    finally:
        node.stop()


def test_kill_9_while_authoring_keeps_blocks_and_state_consistent(tmp_path: Path) -> None:
    """kill -9 at an arbitrary point of a stream of blocks: the restored blocks and state agree exactly."""
    node = Node(tmp_path).start()
    try:
        client = node.client()
        start_nonce = rpc(client, "system_accountNextIndex", ALICE.ss58_address)
        bob_before = client.query("System", "Account", [BOB.ss58_address]).value["data"]["free"]
        values = {}
        extrinsics = []
        for i in range(30):
            call = client.compose_call("Balances", "transfer_keep_alive", {"dest": BOB.ss58_address,
                                                                          "value": 1_000_000 + i})
            raw = str(client.create_signed_extrinsic(call, ALICE, nonce=start_nonce + i).data)
            values[raw] = 1_000_000 + i
            extrinsics.append(raw)
        genesis = rpc(client, "chain_getBlockHash", 0)
        client.close()
        ws = websocket.create_connection(node.process.ws_url, timeout=10)
        for i, raw in enumerate(extrinsics):  # one at a time, so instant seal authors block after block
            ws.send(json.dumps({"jsonrpc": "2.0", "id": i, "method": "author_submitExtrinsic", "params": [raw]}))
            assert "result" in json.loads(ws.recv())
            if i == 20:
                node.kill9()  # blocks are being authored and written as this lands
                break
        ws.close()

        node.start()
        client = node.client()
        assert rpc(client, "chain_getBlockHash", 0) == genesis
        best = int(rpc(client, "chain_getHeader")["number"], 16)
        assert rpc(client, "chain_getFinalizedHead") == rpc(client, "chain_getBlockHash", best)
        included = [x for n in range(1, best + 1)
                    for x in rpc(client, "chain_getBlock", rpc(client, "chain_getBlockHash", n))["block"]["extrinsics"]
                    if x in values]
        assert included == extrinsics[:len(included)]  # in order, none twice, no gaps
        assert len(included) >= 1
        assert rpc(client, "system_accountNextIndex", ALICE.ss58_address) == start_nonce + len(included)
        bob_after = client.query("System", "Account", [BOB.ss58_address]).value["data"]["free"]
        assert bob_after == bob_before + sum(values[x] for x in included)
        # The stream continues from there: the first transaction not included is valid now, and the next.
        for raw in extrinsics[len(included):len(included) + 2]:
            assert rpc(client, "author_submitExtrinsic", raw).startswith("0x")
        deadline = time.monotonic() + 10
        while rpc(client, "system_accountNextIndex", ALICE.ss58_address) != start_nonce + len(included) + 2:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert rpc(client, "author_pendingExtrinsics") == []
        client.close()
        node.assert_no_errors()
    finally:
        node.stop()
