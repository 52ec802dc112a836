"""Polkadot.js (@polkadot/api 16.5.6), unchanged, drives the paratrain pallets on a real devnet.

`tests/js/task_flow.mjs` registers //Bob as a Trainer with `api.tx.workers.register`,
creates a task from //Alice with `api.tx.taskBounties.createTask(...)` (the id from
TaskCreated), lets //Charlie (no worker) try to claim it, claims it from //Bob with
`api.tx.taskBounties.claimTask(id)` and reads it back with
`api.query.taskBounties.tasks(id)`; it prints a JSON report. These tests run it as a
real `node` process against the `devnet` fixture and check the report: what was
stored, the money reserved, the events with their field names as Polkadot.js decodes
them from the metadata, and the module error Polkadot.js decodes for //Charlie.
"""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from substrateinterface import Keypair

JS_DIR = Path(__file__).resolve().parents[1] / "js"
SCRIPT = JS_DIR / "task_flow.mjs"
NODE = shutil.which("node")
BOUNTY = 10 * 10**12  # what the script offers (10 PARA, 12 decimals)
ALICE, BOB, CHARLIE = (Keypair.create_from_uri(f"//{name}").ss58_address for name in ("Alice", "Bob", "Charlie"))

# slow: runs Polkadot.js in Node.js through the paratrain pallets
pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    NODE is None or not (JS_DIR / "node_modules" / "@polkadot" / "api").is_dir(),
    reason="needs node and tests/js/node_modules (run `npm ci` in tests/js, or `make setup`)",
)]


@pytest.fixture(scope="module")
def flow(devnet) -> tuple[dict[str, Any], str]:
    """The script's report and its stderr, from one run against a fresh devnet."""
    proc = subprocess.run([NODE, str(SCRIPT), devnet.ws_url], check=False, capture_output=True, text=True,
                          timeout=90, cwd=JS_DIR)
    assert proc.returncode == 0, f"task_flow.mjs exited {proc.returncode}\n{proc.stderr}\n{proc.stdout[-2000:]}"
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert lines, f"no JSON report on stdout:\n{proc.stdout}\n{proc.stderr}"
    return json.loads(lines[-1]), proc.stderr


def test_task_created_claimed_and_read_back(flow) -> None:
    report, stderr = flow
    assert report["addresses"] == {"alice": ALICE, "bob": BOB, "charlie": CHARLIE}
    task = report["task"]
    assert task["id"] == report["create"]["taskId"] == 0
    assert report["nextTaskId"] == 1
    assert task["requester"] == ALICE
    assert task["bounty"] == report["create"]["bounty"] == str(BOUNTY)
    assert task["deposit"] == report["consts"]["taskDeposit"]
    assert task["status"] == "Claimed"
    assert task["claimant"] == BOB
    assert task["minStake"] == report["consts"]["minTrainerStake"]
    assert task["deadline"] == report["create"]["deadline"] > report["create"]["currentBlock"]
    assert task["validatorsRequired"] == 1 and task["holdoutCommitment"] is None
    # The lease runs ClaimLease blocks from the claim's block.
    assert task["leaseUntil"] == report["claim"]["blockNumber"] + report["consts"]["claimLease"]
    # The spec as sent, decoded back from SCALE through the metadata's types.
    assert task["spec"] == {
        "recipe": "resnet18-cifar10", "specUri": "ipfs://bafy-task-flow-spec", "evalMetric": "accuracy",
        "evalTarget": "900000", "higherIsBetter": True,
        "requirements": {"minCpus": 4, "minGpus": 1, "minMemoryMb": 16384}, "parentModel": None}
    # Polkadot.js warns on stderr about metadata it cannot decorate or decode.
    for complaint in ("not decorated", "FATAL", "Unable to", "Unknown signed extension", "error"):
        assert complaint not in stderr, stderr


def test_consts_and_worker_registration(flow) -> None:
    report, _ = flow
    consts = report["consts"]
    assert int(consts["minTrainerStake"]) == 100 * 10**12
    assert int(consts["taskDeposit"]) > 0 and int(consts["minBounty"]) <= BOUNTY
    assert consts["claimLease"] > 0 and consts["maxValidatorsRequired"] >= 1
    worker = report["register"]["worker"]
    assert worker == {"role": "Trainer", "stake": consts["minTrainerStake"], "status": "Active",
                      "capabilities": {"cpus": 8, "gpus": 1, "gpuModel": "A100-80GB", "memoryMb": 65536}}
    assert "workers.WorkerRegistered" in report["register"]["events"]


def test_reserved_balances(flow) -> None:
    report, _ = flow
    assert report["reservedBefore"] == {"alice": "0", "bob": "0", "charlie": "0"}  # a fresh devnet
    after = report["reservedAfter"]
    assert int(after["alice"]) == BOUNTY + int(report["consts"]["taskDeposit"])
    assert int(after["bob"]) == int(report["register"]["worker"]["stake"]) == int(report["consts"]["minTrainerStake"])
    assert after["charlie"] == "0"  # the refused claim changed nothing


def test_events_with_field_names(flow) -> None:
    report, _ = flow
    seen = report["eventsSeen"]
    assert seen["taskBounties.TaskCreated"] == ["taskId", "requester", "bounty", "deadline"]
    assert seen["taskBounties.TaskClaimed"] == ["taskId", "worker", "leaseUntil"]
    assert seen["workers.WorkerRegistered"] == ["who", "role", "stake"]
    assert seen["system.ExtrinsicFailed"] == ["dispatchError", "dispatchInfo"]

    created = report["create"]["event"]
    assert created["data"] == {"taskId": "0", "requester": ALICE, "bounty": str(BOUNTY),
                               "deadline": str(report["create"]["deadline"])}
    assert report["create"]["events"][-1] == "system.ExtrinsicSuccess"
    claimed = report["claim"]["event"]
    assert claimed["data"] == {"taskId": "0", "worker": BOB, "leaseUntil": str(report["task"]["leaseUntil"])}
    assert report["claim"]["events"][-1] == "system.ExtrinsicSuccess"
    assert report["claim"]["nonce"] == report["register"]["nonce"] + 1  # explicit, pool-aware nonces


def test_claim_by_non_worker_decodes_not_trainer(flow) -> None:
    report, _ = flow
    refused = report["charlieClaim"]
    assert refused["error"]["kind"] == "Module"
    assert refused["error"]["full"] == "taskBounties.NotTrainer"
    assert (refused["error"]["section"], refused["error"]["name"]) == ("taskBounties", "NotTrainer")
    assert refused["error"]["docs"]  # the error's docs from the metadata
    assert refused["events"][-1] == "system.ExtrinsicFailed"
    assert not any(name.startswith("taskBounties.") for name in refused["events"])
    assert refused["taskStatusAfter"] == "Open"  # the failed dispatch changed nothing
