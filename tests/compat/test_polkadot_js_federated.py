"""Polkadot.js (@polkadot/api 16.5.6), unchanged, makes every FederatedTasks call on a real devnet.

`tests/js/fl_flow.mjs` reads every constant of the pallet, creates two tasks (one cancelled while Joining),
joins three clients (two sr25519, one ed25519) and lets a fourth join and leave, claims the aggregator role,
sends a heartbeat, commits round 1 with update signatures made in Node.js over the SCALE bytes it builds
itself, reveals the holdout, accepts the round with a validator's verdict, releases the task, cancels it
and withdraws every stake, and tries six wrong calls on the way. These tests run it as a real `node` process
against the `devnet` fixture and check its report against the chain, read back through runtime_bindings:
the module errors Polkadot.js decodes, that a refused call changed nothing, that the bytes Node.js signed
are runtime_bindings.fl's, and that the round's update root on chain is the one the bindings compute.
"""
from __future__ import annotations

from typing import Any

import pytest
from js_flow import NEEDS_NODE, run_flow
from substrateinterface import Keypair

from devnet.runtime.pallets.task_bounties_types import holdout_commitment
from runtime_bindings import Chain
from runtime_bindings.fl import UpdateCommitment, account_public_key, update_commitment_bytes, update_leaf, update_root

UNIT = 10**12
BOUNTY, CLIENT_STAKE = 10 * UNIT, 2 * UNIT  # what the script offers and stakes
INITIAL_MODEL, GLOBAL_MODEL = "0x" + "a1" * 32, "0x" + "9a" * 32
ALICE, BOB, CHARLIE, DAVE, EVE, FERDIE = (Keypair.create_from_uri(f"//{name}").ss58_address
                                          for name in ("Alice", "Bob", "Charlie", "Dave", "Eve", "Ferdie"))
CONSTANTS = ("TaskDeposit", "MinBounty", "MinClientStake", "MaxRounds", "MaxClientsPerTask", "MaxClientsPerRound",
             "MaxRoundsAhead", "RoundLease", "VerificationGrace", "MaxValidatorsRequired", "ValidatorRewardShare",
             "SlashFraction", "AggregatorSlashFraction", "LeaseSlashFraction", "MaxExpiriesPerBlock",
             "MaxExpirySpill", "MaxDeadlineBlocks", "MaxRecipeLen", "MaxUriLen", "MaxMetricNameLen",
             "MaxEndpointLen", "AuditRevealShare")

# slow: runs Polkadot.js in Node.js through the federated pallet
pytestmark = [pytest.mark.slow, pytest.mark.compat, NEEDS_NODE]


def camel(name: str) -> str:
    return name[0].lower() + name[1:]


@pytest.fixture(scope="module")
def flow(devnet) -> dict[str, Any]:
    """The script's report, from one run against a fresh devnet (its stderr must carry no complaint)."""
    return run_flow("fl_flow.mjs", devnet.ws_url, timeout=150)


@pytest.fixture(scope="module")
def chain(devnet) -> Chain:
    with Chain.connect(devnet.ws_url, timeout=10) as connected:
        yield connected


def test_every_constant_is_read_as_the_bindings_read_it(flow, chain) -> None:
    consts = flow["consts"]
    assert sorted(consts) == sorted(camel(name) for name in CONSTANTS)
    for name in CONSTANTS:
        assert str(chain.constant("FederatedTasks", name)) == consts[camel(name)], name
    assert int(consts["minBounty"]) <= BOUNTY and int(consts["minClientStake"]) <= CLIENT_STAKE


@pytest.mark.parametrize(("label", "error"), [
    ("join twice", "AlreadyJoined"),
    ("commit by a client", "NotAggregator"),
    ("round 2 first", "RoundOutOfOrder"),
    ("signature over another task", "BadUpdateSignature"),
    ("withdraw while running", "StakeLocked"),
    ("verdict by the requester", "CannotJudgeOwnWork"),
    ("withdraw twice", "AlreadyWithdrawn"),
])
def test_wrong_calls_give_the_named_module_error_and_change_nothing(flow, label: str, error: str) -> None:
    refused = flow["refusals"][label]
    assert refused["error"]["kind"] == "Module"
    assert refused["error"]["full"] == f"federatedTasks.{error}"
    assert refused["error"]["docs"]  # the error's doc line from the metadata
    assert refused["events"][-1] == "system.ExtrinsicFailed"
    assert not any(name.startswith("federatedTasks.") for name in refused["events"])
    assert refused["unchanged"]   # the task is stored as it was


def test_tasks_created_joined_and_cancelled_while_joining(flow) -> None:
    create, joins = flow["create"], flow["joins"]
    assert create["event"]["data"] == {"task": str(create["taskId"]), "requester": ALICE, "bounty": str(BOUNTY),
                                       "joinDeadline": str(create["joinDeadline"]),
                                       "deadline": str(create["deadline"])}
    assert create["cancelled"]["data"]["task"] == str(create["otherId"]) and create["otherStatus"] == "Cancelled"
    assert create["holdoutCommitment"] == "0x" + holdout_commitment(
        bytes([0x5A]) * 32, bytes([0xB0]) * 32, 360, b"file:///holdout.ptts").hex()
    addresses = flow["addresses"]
    assert [j["data"]["client"] for j in joins] == [CHARLIE, DAVE, addresses["edClient"]]
    assert [j["data"]["numExamples"] for j in joins] == ["400", "300", "200"]
    assert all(j["data"]["stake"] == str(CLIENT_STAKE) for j in joins)
    assert flow["client"] == {"dataHash": "0x" + "c1" * 32, "numExamples": 400, "stake": str(CLIENT_STAKE),
                              "reserved": str(CLIENT_STAKE)}
    leave = flow["leave"]
    assert leave["joined"]["data"]["client"] == leave["left"]["data"]["client"] == EVE
    assert leave["entry"] is False and leave["reserved"] == "0"


def test_claim_and_heartbeat(flow) -> None:
    claim = flow["claim"]
    assert claim["statusBeforeClaim"] == "Open"
    assert claim["opened"]["data"] == {"task": "0", "clients": "3"}  # by the join deadline's hook
    assert claim["event"]["data"]["aggregator"] == BOB
    assert claim["event"]["data"]["endpoint"] == "0x" + b"127.0.0.1:9092".hex()  # Bytes print as hex
    assert claim["running"] == {"aggregator": BOB, "leaseUntil": int(claim["event"]["data"]["leaseUntil"]),
                                "endpoint": "127.0.0.1:9092"}
    assert int(claim["heartbeat"]["data"]["leaseUntil"]) >= int(claim["event"]["data"]["leaseUntil"])
    assert claim["events"][-1] == "system.ExtrinsicSuccess"


def test_node_signs_the_bindings_bytes_and_the_chain_root_is_the_bindings_root(flow, chain) -> None:
    task, commit = flow["create"]["taskId"], flow["commit"]
    signed = commit["signed"]
    assert [s["scheme"] for s in signed].count("Ed25519") == 1
    assert [account_public_key(s["client"]) for s in signed] == sorted(account_public_key(s["client"])
                                                                       for s in signed)
    leaves = []
    for s in signed:
        assert s["valid"]
        assert s["message"] == "0x" + update_commitment_bytes(task, 1, INITIAL_MODEL, s["updateHash"],
                                                              s["numExamples"]).hex()
        leaves.append(update_leaf(s["client"], UpdateCommitment.of(task, 1, INITIAL_MODEL, s["updateHash"],
                                                                   s["numExamples"])))
    record = commit["record"]
    assert record["updateRoot"] == commit["event"]["data"]["updateRoot"] == "0x" + update_root(leaves).hex()
    assert commit["leafCheck"] == "0x" + leaves[[s["scheme"] for s in signed].index("Ed25519")].hex()
    assert record["participants"] == [[s["client"], s["numExamples"]] for s in signed]
    assert record["aggregator"] == BOB and record["baseModelHash"] == INITIAL_MODEL
    assert record["globalModelHash"] == GLOBAL_MODEL and record["artifactUri"] == "file:///rounds/1"
    stored = chain.query("FederatedTasks", "Rounds", [task, 1])
    assert isinstance(stored, dict) and stored["update_root"] == record["updateRoot"]


def test_holdout_verdict_and_payout(flow) -> None:
    verdict = flow["verdict"]
    assert verdict["holdout"]["data"]["holdoutHash"] == "0x" + "b0" * 32
    stored = verdict["holdoutStored"]
    assert (stored["salt"], stored["holdoutHash"], stored["holdoutSize"]) == ("0x" + "5a" * 32, "0x" + "b0" * 32, 360)
    assert verdict["status"] == "Accepted" and verdict["stored"]
    assert "federatedTasks.RoundVerdictSubmitted" in verdict["events"]
    accepted = verdict["accepted"]["data"]
    assert accepted["round"] == "1" and accepted["clientsPaid"] == "3"
    paid = {p["client"]: int(p["amount"]) for p in verdict["paid"]}
    assert set(paid) == {s["client"] for s in flow["commit"]["signed"]}
    # pro rata by examples (factors all 100 %): 400 : 300 : 200
    assert paid[CHARLIE] * 3 == paid[DAVE] * 4 and paid[DAVE] * 2 == paid[flow["addresses"]["edClient"]] * 3
    assert flow["end"]["paid"] == str(sum(paid.values()) + int(accepted["aggregatorReward"])
                                      + int(accepted["validatorReward"]))


def test_release_cancel_and_withdraw(flow) -> None:
    end = flow["end"]
    assert end["released"]["data"]["aggregator"] == BOB and end["statusAfterRelease"] == "Open"
    assert end["status"] == "Cancelled"
    assert end["lastCommitted"] == end["lastAccepted"] == 1 and end["acceptedModelHash"] == GLOBAL_MODEL
    assert int(end["cancelled"]["data"]["refund"]) == BOUNTY - int(end["paid"]) + int(flow["consts"]["taskDeposit"])
    # both tasks' bounties and deposits are back or paid: what stays reserved is her Validator stake
    assert end["reservedAlice"] == flow["validatorStake"]
    assert end["nextTaskId"] == 2
    for withdrawal in flow["withdrawals"]:
        assert withdrawal["event"]["data"]["amount"] == str(CLIENT_STAKE) and withdrawal["reserved"] == "0"


def test_events_with_field_names(flow) -> None:
    seen = flow["eventsSeen"]
    expected = {
        "TaskCreated": ["task", "requester", "bounty", "joinDeadline", "deadline"],
        "TaskCancelled": ["task", "refund"],
        "ClientJoined": ["task", "client", "dataHash", "numExamples", "stake"],
        "ClientLeft": ["task", "client"],
        "TaskOpened": ["task", "clients"],
        "AggregatorClaimed": ["task", "aggregator", "leaseUntil", "endpoint"],
        "Heartbeat": ["task", "aggregator", "leaseUntil"],
        "RoundCommitted": ["task", "round", "aggregator", "globalModelHash", "updateRoot", "roundDocHash",
                           "participants", "verifyUntil"],
        "HoldoutRevealed": ["task", "holdoutHash", "holdoutSize", "holdoutUri"],
        "RoundVerdictSubmitted": ["task", "round", "validator", "accept"],
        "RoundAccepted": ["task", "round", "clientsPaid", "aggregatorReward", "validatorReward"],
        "ClientPaid": ["task", "round", "client", "amount", "factor"],
        "AggregatorReleased": ["task", "aggregator"],
        "TaskReopened": ["task", "fromRound"],
        "StakeWithdrawn": ["task", "client", "amount"],
    }
    for name, names in expected.items():
        assert seen[f"federatedTasks.{name}"] == names, name
