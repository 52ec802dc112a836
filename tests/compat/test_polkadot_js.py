"""Polkadot.js (@polkadot/api 16.5.6 from tests/js/package-lock.json), unchanged, against a running devnet.

`tests/js/devnet_client.mjs` drives the API as a dapp would and prints a JSON
report; these tests run it as a real `node` process against a real devnet and
check the report: chain identity, constants, storage and a paged map, the fee,
a transfer's status sequence and events, head and storage subscriptions, and
that every JSON-RPC method Polkadot.js called is listed by `rpc_methods`.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from substrateinterface import Keypair

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from paratrain.local import DevnetProcess  # noqa: E402

JS_DIR = Path(__file__).resolve().parents[1] / "js"
SCRIPT = JS_DIR / "devnet_client.mjs"
NODE = shutil.which("node")
TRANSFER = 2 * 10**12  # what the script sends from //Alice to //Bob
DEV_NAMES = ("Alice", "Bob", "Charlie", "Dave", "Eve", "Ferdie")

# slow: runs Polkadot.js in Node.js against a devnet
pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    NODE is None or not (JS_DIR / "node_modules" / "@polkadot" / "api").is_dir(),
    reason="needs node and tests/js/node_modules (run `npm ci` in tests/js, or `make setup`)",
)]


def run_client(ws_url: str) -> tuple[dict[str, Any], str]:
    """Run the script; returns its report and its stderr (Polkadot.js logs warnings there)."""
    proc = subprocess.run([NODE, str(SCRIPT), ws_url], check=False, capture_output=True, text=True, timeout=90,
                          cwd=JS_DIR)
    assert proc.returncode == 0, f"devnet_client.mjs exited {proc.returncode}\n{proc.stderr}\n{proc.stdout[-2000:]}"
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert lines, f"no JSON report on stdout:\n{proc.stdout}\n{proc.stderr}"
    return json.loads(lines[-1]), proc.stderr


def rpc(url: str, method: str, params: list[Any] | None = None) -> Any:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(request, timeout=10))["result"]


@pytest.fixture(scope="module")
def instant(devnet) -> tuple[DevnetProcess, dict[str, Any], str]:
    """The script against the default devnet: instant seal, immediate finality."""
    report, stderr = run_client(devnet.ws_url)
    return devnet, report, stderr


def event(report: dict[str, Any], name: str) -> dict[str, Any]:
    matches = [e for e in report["transfer"]["events"] if e["name"] == name]
    assert matches, (name, [e["name"] for e in report["transfer"]["events"]])
    return matches[0]


def test_connects_and_reads_identity_and_constants(instant) -> None:
    devnet, report, stderr = instant
    assert report["chain"] == "Paratrain Devnet" == rpc(devnet.http_url, "system_chain")
    assert report["genesisHash"] == rpc(devnet.http_url, "chain_getBlockHash", [0])
    assert report["runtime"]["metadataVersion"] == 14
    assert report["consts"]["existentialDeposit"] == str(10**9)
    assert report["consts"]["ss58Prefix"] == 42
    assert report["properties"]["ss58Format"] == 42
    # Polkadot.js warns on stderr about metadata or RPC methods it cannot use.
    for complaint in ("not decorated", "FATAL", "Unable to", "Unknown signed extension", "error"):
        assert complaint not in stderr, stderr


def test_storage_and_paged_map(instant) -> None:
    _, report, _ = instant
    alice = report["aliceAccount"]
    assert int(alice["free"]) > 0 and alice["providers"] >= 1 and alice["nonce"] == 0
    assert int(report["totalIssuance"]) >= 6 * int(alice["free"])
    paged = report["paged"]
    assert paged["count"] >= 6
    assert all(size <= 2 for size in paged["pages"]) and len(paged["pages"]) >= 3
    addresses = {entry["address"] for entry in paged["entries"]}
    assert len(addresses) == paged["count"]  # no key twice across pages
    assert {Keypair.create_from_uri(f"//{name}").ss58_address for name in DEV_NAMES} <= addresses


def test_transfer_status_sequence(instant) -> None:
    _, report, _ = instant
    transfer = report["transfer"]
    statuses = transfer["statuses"]
    assert transfer["isReady"] and transfer["isInBlock"] and transfer["isFinalized"], statuses
    assert statuses.index("Ready") < statuses.index("InBlock") < statuses.index("Finalized")
    assert statuses[-1] == "Finalized"
    assert transfer["inBlockHash"] == transfer["finalizedHash"]
    assert transfer["dispatchError"] is None
    assert transfer["extrinsicInBlock"] == {
        "section": "balances", "method": "transferKeepAlive", "signer": report["addresses"]["alice"],
        "encodedLength": transfer["submittedLength"]}
    # The notifications as the node sent them, with the names Polkadot.js routes on.
    raw = report["rawWatchStatuses"]
    assert [next(iter(s)) for s in raw] == ["ready", "inBlock", "finalized"], raw
    assert raw[1]["inBlock"] == raw[2]["finalized"]


def test_transfer_events_and_fee(instant) -> None:
    _, report, _ = instant
    transfer = event(report, "balances.Transfer")
    assert transfer["fields"] == ["from", "to", "amount"]
    assert transfer["data"] == {"from": report["addresses"]["alice"], "to": report["addresses"]["bob"],
                                "amount": str(TRANSFER)}
    fee_paid = event(report, "transactionPayment.TransactionFeePaid")
    assert fee_paid["fields"] == ["who", "actualFee", "tip"]
    success = event(report, "system.ExtrinsicSuccess")
    assert success["fields"] == ["dispatchInfo"]
    assert report["transfer"]["events"][-1]["name"] == "system.ExtrinsicSuccess"

    info = report["paymentInfo"]
    assert int(info["partialFee"]) > 0
    assert info["weight"]["refTime"] > 0 and info["class"] == "Normal"
    # paymentInfo signs a fake extrinsic with the same nonce and era as signAndSend: same length, same fee.
    assert int(fee_paid["data"]["actualFee"]) == int(info["partialFee"])

    # api.at(block).query.system.events() decodes the same records, the inherent's first.
    names = [e["name"] for e in report["blockEvents"]]
    assert names[0] == "system.ExtrinsicSuccess" and report["blockEvents"][0]["phase"] == {"applyExtrinsic": 0}
    mine = [e for e in report["blockEvents"] if e["phase"] == report["transfer"]["events"][0]["phase"]]
    assert mine == report["transfer"]["events"]


def test_head_subscriptions(instant) -> None:
    _, report, _ = instant
    block = report["transfer"]["blockNumber"]
    for heads in (report["heads"], report["finalizedHeads"]):
        assert len(heads) >= 2, heads
        assert heads == sorted(heads) and block in heads
        assert heads[0] < block  # the current head came at once, before the transfer's block


def test_storage_subscription_initial_then_updated(instant) -> None:
    _, report, _ = instant
    values = [int(v) for v in report["storageSubscription"]["values"]]
    assert len(values) >= 2
    assert values[1] == values[0] + TRANSFER
    assert report["storageSubscription"]["initialAfterMs"] < 5000


def test_rpc_methods_lists_what_polkadot_js_calls(instant) -> None:
    devnet, report, _ = instant
    listed = set(report["rpcMethods"])
    assert listed == set(rpc(devnet.http_url, "rpc_methods")["methods"])
    called = set(report["calledMethods"])
    assert {"chain_subscribeNewHead", "chain_subscribeFinalizedHeads", "state_subscribeStorage",
            "author_submitAndWatchExtrinsic", "author_submitExtrinsic", "state_call"} <= called
    assert called <= listed, called - listed
    assert {"chain_subscribeNewHead", "chain_subscribeNewHeads", "chain_subscribeFinalizedHeads"} <= listed
    assert report["nextNonce"] == 2  # after signAndSend and a plain send from //Alice (pool-aware)


def test_against_block_time_and_finality_lag() -> None:
    """A node more like a real one: blocks on a timer, finality two blocks behind."""
    with DevnetProcess("--block-time", "300", "--finality-lag", "2") as node:
        report, _ = run_client(node.ws_url)
        finalized_number = int(rpc(node.http_url, "chain_getHeader",
                                   [rpc(node.http_url, "chain_getFinalizedHead")])["number"], 16)
    transfer = report["transfer"]
    statuses = transfer["statuses"]
    assert statuses.index("Ready") < statuses.index("InBlock") < statuses.index("Finalized"), statuses
    assert transfer["inBlockHash"] == transfer["finalizedHash"]
    assert [next(iter(s)) for s in report["rawWatchStatuses"]] == ["ready", "inBlock", "finalized"]
    assert event(report, "balances.Transfer")["data"]["amount"] == str(TRANSFER)
    assert transfer["blockNumber"] in report["finalizedHeads"]
    assert finalized_number >= transfer["blockNumber"]
    values = [int(v) for v in report["storageSubscription"]["values"]]
    assert values[1] == values[0] + TRANSFER
