"""Workers, TaskBounties and Models end to end, through unmodified substrate-interface against devnet.

Roles (one devnet per module): Alice requests, Bob and Charlie train, Dave, Eve and Ferdie validate.
Block-count paths (lease, deadline) advance the chain with System.remark. The verification window is time
(VerificationGrace, ms of Timestamp.Now; 60 s by default, long enough for every other test here): its
timeout is tested on a devnet of its own started with a short `--verification-grace-ms`.
"""
from __future__ import annotations

import os
from typing import Any

from substrateinterface import Keypair, SubstrateInterface

from devnet.runtime.pallets.task_bounties import attestation_message

UNIT = 10**12
DATASET = bytes([0x22]) * 32


class Chain:
    def __init__(self, url: str) -> None:
        self.client = SubstrateInterface(url=url)

    def close(self) -> None:
        self.client.close()

    def submit(self, signer: Keypair, pallet: str, call: str, params: dict[str, Any] | None = None) -> Any:
        composed = self.client.compose_call(pallet, call, params or {})
        extrinsic = self.client.create_signed_extrinsic(composed, signer)
        return self.client.submit_extrinsic(extrinsic, wait_for_inclusion=True)

    def ok(self, signer: Keypair, pallet: str, call: str, params: dict[str, Any] | None = None) -> Any:
        receipt = self.submit(signer, pallet, call, params)
        assert receipt.is_success, receipt.error_message
        return receipt

    def fails(self, error: str, signer: Keypair, pallet: str, call: str, params: dict[str, Any] | None = None) -> Any:
        receipt = self.submit(signer, pallet, call, params)
        assert not receipt.is_success, f"{pallet}.{call} succeeded, expected {error}"
        assert receipt.error_message["name"] == error, receipt.error_message
        return receipt

    def block_number(self) -> int:
        return self.client.get_block_header()["header"]["number"]

    def advance(self, blocks: int, signer: Keypair) -> None:
        for _ in range(blocks):
            self.ok(signer, "System", "remark", {"remark": "0x00"})

    def advance_to(self, number: int, signer: Keypair) -> None:
        self.advance(max(number - self.block_number(), 0), signer)

    def account(self, who: Keypair) -> dict[str, int]:
        return self.client.query("System", "Account", [who.ss58_address]).value["data"]

    def task(self, task_id: int) -> dict[str, Any]:
        return self.client.query("TaskBounties", "Tasks", [task_id]).value

    def worker(self, who: Keypair) -> dict[str, Any] | None:
        return self.client.query("Workers", "Workers", [who.ss58_address]).value

    def constant(self, pallet: str, name: str) -> Any:
        return self.client.get_constant(pallet, name).value


def events(receipt: Any, pallet: str, name: str) -> list[dict[str, Any]]:
    return [e.value["attributes"] for e in receipt.triggered_events
            if e.value["module_id"] == pallet and e.value["event_id"] == name]


def fee(receipt: Any) -> int:
    return sum(e["actual_fee"] for e in events(receipt, "TransactionPayment", "TransactionFeePaid"))


def spec(**overrides: Any) -> dict[str, Any]:
    value = {"recipe": "mnist-mlp", "spec_hash": "0x" + "11" * 32, "spec_uri": "s3://specs/mnist.yaml",
             "dataset_hash": "0x" + DATASET.hex(), "eval_metric": "accuracy", "eval_target": 900_000,
             "higher_is_better": True, "requirements": {"min_cpus": 2, "min_gpus": 1, "min_memory_mb": 8000},
             "parent_model": None}
    value.update(overrides)
    return value


def caps(**overrides: Any) -> dict[str, Any]:
    value = {"cpus": 16, "gpus": 2, "gpu_model": "H100", "memory_mb": 128_000}
    value.update(overrides)
    return value


def attestation(task_id: int, worker: Keypair, model_hash: bytes | None = None, **overrides: Any) -> dict[str, Any]:
    """An attestation in our codec's value format (bytes for hashes and byte strings)."""
    value = {"task_id": task_id, "worker": worker.public_key, "model_hash": model_hash or os.urandom(32),
             "artifact_uri": b"s3://artifacts/model.pt", "metrics": [(b"accuracy", 953_000), (b"loss", -120_000)],
             "trajectory_root": bytes([3]) * 32, "checkpoints": [bytes([4]) * 32, bytes([5]) * 32],
             "code_hash": bytes([6]) * 32, "dataset_hash": DATASET, "started_ms": 1_000, "finished_ms": 61_000}
    value.update(overrides)
    return value


def sign(attestation_value: dict[str, Any], signer: Keypair) -> dict[str, str]:
    """The MultiSignature of `signer` over the domain-separated SCALE attestation."""
    scheme = "Sr25519" if signer.crypto_type == 1 else "Ed25519"
    return {scheme: "0x" + signer.sign(attestation_message(attestation_value)).hex()}


def to_client(attestation_value: dict[str, Any]) -> dict[str, Any]:
    """The same attestation in scalecodec's value format, for compose_call."""
    def hx(b: bytes) -> str:
        return "0x" + b.hex()
    a = attestation_value
    return {"task_id": a["task_id"], "worker": hx(a["worker"]), "model_hash": hx(a["model_hash"]),
            "artifact_uri": hx(a["artifact_uri"]), "metrics": [(hx(n), v) for n, v in a["metrics"]],
            "trajectory_root": hx(a["trajectory_root"]), "checkpoints": [hx(c) for c in a["checkpoints"]],
            "code_hash": hx(a["code_hash"]), "dataset_hash": hx(a["dataset_hash"]),
            "started_ms": a["started_ms"], "finished_ms": a["finished_ms"]}


# Fixtures -------------------------------------------------------------------------------------
import threading  # noqa: E402
import time  # noqa: E402

import pytest  # noqa: E402

from devnet.runtime.pallets.task_bounties import holdout_commitment  # noqa: E402
from paratrain.local import DevnetProcess  # noqa: E402

pytestmark = pytest.mark.slow  # advances a devnet block by block through leases, deadlines and windows

HOLDOUT = {"holdout_hash": "0x" + "00" * 32, "holdout_size": 10, "holdout_uri": "s3://h"}  # as committed below

ALICE, BOB, CHARLIE = (Keypair.create_from_uri(f"//{n}") for n in ("Alice", "Bob", "Charlie"))
DAVE, EVE, FERDIE = (Keypair.create_from_uri(f"//{n}") for n in ("Dave", "Eve", "Ferdie"))
TRAINER_STAKE, VALIDATOR_STAKE = 1_000 * UNIT, 500 * UNIT


def register_roles(c: Chain) -> None:
    """Bob and Charlie as Trainers, Dave, Eve and Ferdie as Validators (the roles of these tests)."""
    for trainer in (BOB, CHARLIE):
        c.ok(trainer, "Workers", "register", {"role": "Trainer", "stake": TRAINER_STAKE, "capabilities": caps()})
    for validator in (DAVE, EVE, FERDIE):
        c.ok(validator, "Workers", "register",
             {"role": "Validator", "stake": VALIDATOR_STAKE, "capabilities": caps(gpus=0)})


@pytest.fixture(scope="module")
def chain(devnet) -> Any:
    c = Chain(devnet.ws_url)
    register_roles(c)
    yield c
    c.close()


def create(c: Chain, requester: Keypair = ALICE, bounty: int = 10 * UNIT, deadline_in: int = 200,
           validators_required: int = 2, commitment: bytes | None = None, **spec_overrides: Any) -> int:
    receipt = c.ok(requester, "TaskBounties", "create_task", {
        "spec": spec(**spec_overrides), "bounty": bounty, "min_stake": 0,
        "deadline": c.block_number() + deadline_in, "validators_required": validators_required,
        "holdout_commitment": None if commitment is None else "0x" + commitment.hex()})
    return events(receipt, "TaskBounties", "TaskCreated")[0]["task_id"]


def submit_result(c: Chain, task: int, worker: Keypair, relayer: Keypair | None = None,
                  signer: Keypair | None = None, **overrides: Any) -> tuple[Any, dict[str, Any]]:
    att = {**attestation(task, worker), **overrides}
    receipt = c.submit(relayer or worker, "TaskBounties", "submit_result",
                       {"task_id": task, "attestation": to_client(att), "signature": sign(att, signer or worker)})
    return receipt, att


def verdict(accept: bool) -> dict[str, Any]:
    return {"accept": accept, "measured_metric": 951_000, "evidence_hash": "0x" + "77" * 32}


# Happy path -----------------------------------------------------------------------------------
def test_metadata_declares_pallets_and_constants(chain: Chain) -> None:
    assert chain.constant("Workers", "MinTrainerStake") == 100 * UNIT
    assert chain.constant("TaskBounties", "ClaimLease") == 10
    assert chain.constant("TaskBounties", "ValidatorRewardShare") == 100_000_000
    for name in ("TaskDeposit", "VerificationGrace", "MaxClaimsPerWorker", "SlashFraction", "LeaseSlashFraction",
                 "MaxExpiriesPerBlock", "MaxUriLen", "ChallengeDeposit"):
        assert chain.constant("TaskBounties", name) is not None
    # DevnetProcess starts devnet with --challenge-period-ms 0: a quorum pays at once, as these tests expect
    assert chain.constant("TaskBounties", "ChallengePeriod") == 0
    assert chain.constant("TaskBounties", "VerificationGrace") == 60_000  # ms: devnet's default
    assert chain.worker(BOB)["role"] == "Trainer" and chain.worker(DAVE)["role"] == "Validator"


def test_happy_path_pays_bounty_and_registers_model(chain: Chain) -> None:
    bounty, deposit = 10 * UNIT, chain.constant("TaskBounties", "TaskDeposit")
    salt, holdout_uri = bytes([9]) * 32, b"s3://holdout/secret.parquet"
    holdout_hash, holdout_size = bytes([7]) * 32, 123_456
    a0, b0, d0, e0 = (chain.account(k) for k in (ALICE, BOB, DAVE, EVE))
    receipt = chain.ok(ALICE, "TaskBounties", "create_task", {
        "spec": spec(), "bounty": bounty, "min_stake": 200 * UNIT, "deadline": chain.block_number() + 200,
        "validators_required": 2, "holdout_commitment": "0x" + holdout_commitment(salt, holdout_hash, holdout_size, holdout_uri).hex()})
    fees_alice = fee(receipt)
    task_id = events(receipt, "TaskBounties", "TaskCreated")[0]["task_id"]
    assert chain.account(ALICE)["reserved"] == a0["reserved"] + bounty + deposit
    assert chain.task(task_id)["status"] == "Open"

    fees_bob = fee(chain.ok(BOB, "TaskBounties", "claim_task", {"task_id": task_id}))
    status = chain.task(task_id)["status"]
    assert status["Claimed"]["worker"] == BOB.ss58_address
    r = chain.ok(BOB, "TaskBounties", "heartbeat",
                 {"task_id": task_id, "progress": {"step": 100, "checkpoint_root": "0x" + "aa" * 32}})
    fees_bob += fee(r)
    assert events(r, "TaskBounties", "Heartbeat")[0]["progress"]["step"] == 100
    assert chain.task(task_id)["progress"]["step"] == 100

    # Charlie relays Bob's signed attestation: the pallet checks Bob's signature, not the sender.
    receipt, att = submit_result(chain, task_id, BOB, relayer=CHARLIE)
    assert receipt.is_success, receipt.error_message
    submitted = events(receipt, "TaskBounties", "ResultSubmitted")[0]
    assert submitted["worker"] == BOB.ss58_address and submitted["model_hash"] == "0x" + att["model_hash"].hex()
    fees_alice += fee(chain.ok(ALICE, "TaskBounties", "reveal_holdout",
                               {"task_id": task_id, "salt": "0x" + salt.hex(), "holdout_hash": "0x" + holdout_hash.hex(),
                                "holdout_size": holdout_size, "holdout_uri": "0x" + holdout_uri.hex()}))

    fees_dave = fee(chain.ok(DAVE, "TaskBounties", "submit_verdict", {"task_id": task_id, "verdict": verdict(True)}))
    assert chain.task(task_id)["status"]["Submitted"]["worker"] == BOB.ss58_address
    assert chain.worker(DAVE)["pending_verdicts"] == 1
    r = chain.ok(EVE, "TaskBounties", "submit_verdict", {"task_id": task_id, "verdict": verdict(True)})
    fees_eve = fee(r)
    accepted = events(r, "TaskBounties", "TaskAccepted")[0]
    assert not events(r, "TaskBounties", "ResultApproved")  # period 0: never Approved, paid in the same call
    assert chain.client.query("TaskBounties", "PendingPayouts").value == []
    share = bounty * chain.constant("TaskBounties", "ValidatorRewardShare") // 10**9
    assert accepted["validator_reward"] == share // 2 and accepted["worker_reward"] == bounty - share
    assert events(r, "Models", "ModelRegistered")[0]["owner"] == ALICE.ss58_address

    assert chain.task(task_id)["status"]["Accepted"]["worker"] == BOB.ss58_address
    a1, b1, d1, e1 = (chain.account(k) for k in (ALICE, BOB, DAVE, EVE))
    assert a1["reserved"] == a0["reserved"] and a1["free"] == a0["free"] - bounty - fees_alice
    assert b1["free"] == b0["free"] + bounty - share - fees_bob and b1["reserved"] == b0["reserved"]
    assert d1["free"] == d0["free"] + share // 2 - fees_dave
    assert e1["free"] == e0["free"] + share // 2 - fees_eve
    assert chain.worker(DAVE)["pending_verdicts"] == 0 and chain.worker(BOB)["active_claims"] == 0
    rep = chain.client.query("Workers", "Reputation", [BOB.ss58_address]).value
    assert rep["tasks_completed"] >= 1

    model = chain.client.query("Models", "Models", ["0x" + att["model_hash"].hex()]).value
    assert model["owner"] == ALICE.ss58_address and model["trainer"] == BOB.ss58_address
    assert model["task_id"] == task_id and model["recipe"] == "mnist-mlp"
    assert model["metrics"][0][1] == 953_000 and model["artifact_uri"] == "s3://artifacts/model.pt"
    owned = [k.value for k, _ in chain.client.query_map("Models", "ModelsByOwner", [ALICE.ss58_address])]
    assert "0x" + att["model_hash"].hex() in owned
    holdout = chain.client.query("TaskBounties", "Holdouts", [task_id]).value
    assert holdout["holdout_uri"] == holdout_uri.decode() and holdout["holdout_size"] == holdout_size
    assert holdout["holdout_hash"] == "0x" + holdout_hash.hex()

    # Paid once: a third verdict finds nothing to vote on.
    chain.fails("NotSubmitted", FERDIE, "TaskBounties", "submit_verdict", {"task_id": task_id, "verdict": verdict(True)})
    # The model hash cannot be registered again by a later task.
    second = create(chain)
    chain.ok(BOB, "TaskBounties", "claim_task", {"task_id": second})
    receipt, _ = submit_result(chain, second, BOB, model_hash=att["model_hash"])
    assert receipt.error_message["name"] == "ModelAlreadyRegistered"
    chain.ok(BOB, "TaskBounties", "release_claim", {"task_id": second})
    chain.ok(ALICE, "TaskBounties", "cancel_task", {"task_id": second})


def test_forged_and_tampered_attestations_are_rejected(chain: Chain) -> None:
    task_id = create(chain)
    chain.ok(BOB, "TaskBounties", "claim_task", {"task_id": task_id})
    receipt, _ = submit_result(chain, task_id, BOB, signer=CHARLIE)  # Charlie signs in Bob's name
    assert receipt.error_message["name"] == "BadAttestationSignature"
    att = attestation(task_id, BOB)
    signature = sign(att, BOB)
    tampered = dict(att, metrics=[(b"accuracy", 999_999)])
    receipt = chain.submit(BOB, "TaskBounties", "submit_result",
                           {"task_id": task_id, "attestation": to_client(tampered), "signature": signature})
    assert receipt.error_message["name"] == "BadAttestationSignature"
    receipt, _ = submit_result(chain, task_id, CHARLIE)  # validly signed, but Charlie holds no claim
    assert receipt.error_message["name"] == "NotClaimant"
    ed_worker = Keypair.create_from_seed("0x" + "42" * 32, crypto_type=0)  # an ed25519 key that is not Bob's
    receipt, _ = submit_result(chain, task_id, BOB, signer=ed_worker)
    assert receipt.error_message["name"] == "BadAttestationSignature"
    assert chain.task(task_id)["status"]["Claimed"]["worker"] == BOB.ss58_address
    chain.ok(BOB, "TaskBounties", "release_claim", {"task_id": task_id})
    assert chain.task(task_id)["status"] == "Open"
    chain.ok(ALICE, "TaskBounties", "cancel_task", {"task_id": task_id})


def test_claim_race_has_exactly_one_winner(chain: Chain, devnet) -> None:
    task_id = create(chain)
    results: dict[str, Any] = {}
    # Each racer's connection loads its runtime here, one at a time: scalecodec keeps the configuration being
    # loaded on shared decoder classes, so a load beside another thread's decoding breaks that decoding.
    racers = {name: Chain(devnet.ws_url) for name in ("bob", "charlie")}
    for racer in racers.values():
        racer.client.init_runtime()

    def claim(name: str, who: Keypair) -> None:
        client = racers[name]
        try:
            results[name] = client.submit(who, "TaskBounties", "claim_task", {"task_id": task_id})
        finally:
            client.close()

    threads = [threading.Thread(target=claim, args=(n, k)) for n, k in (("bob", BOB), ("charlie", CHARLIE))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    status = chain.task(task_id)["status"]
    if isinstance(status, dict):  # release first, so that a failure here cannot spill into later tests
        holder = BOB if status["Claimed"]["worker"] == BOB.ss58_address else CHARLIE
        chain.ok(holder, "TaskBounties", "release_claim", {"task_id": task_id})
    chain.ok(ALICE, "TaskBounties", "cancel_task", {"task_id": task_id})
    outcome = {n: (r.is_success, r.error_message) for n, r in results.items()}
    winners = [n for n, (ok, _) in outcome.items() if ok]
    losers = [err["name"] for ok, err in outcome.values() if not ok]
    assert len(winners) == 1 and losers == ["TaskNotOpen"], outcome
    assert status["Claimed"]["worker"] == (BOB if winners == ["bob"] else CHARLIE).ss58_address


def test_reject_quorum_slashes_and_reopens(chain: Chain) -> None:
    task_id = create(chain)
    chain.ok(CHARLIE, "TaskBounties", "claim_task", {"task_id": task_id})
    receipt, _ = submit_result(chain, task_id, CHARLIE)
    assert receipt.is_success
    stake = chain.worker(CHARLIE)["stake"]
    a0, c0, e0, f0 = (chain.account(k) for k in (ALICE, CHARLIE, EVE, FERDIE))
    fees_e = fee(chain.ok(EVE, "TaskBounties", "submit_verdict", {"task_id": task_id, "verdict": verdict(False)}))
    fees_d = fee(chain.ok(DAVE, "TaskBounties", "submit_verdict", {"task_id": task_id, "verdict": verdict(True)}))
    r = chain.ok(FERDIE, "TaskBounties", "submit_verdict", {"task_id": task_id, "verdict": verdict(False)})
    fees_f = fee(r)
    amount = stake * chain.constant("TaskBounties", "SlashFraction") // 10**9
    slashed = events(r, "TaskBounties", "WorkerSlashed")[0]
    assert slashed["amount"] == amount and events(r, "TaskBounties", "TaskReopened")
    to_requester, each = amount // 2, (amount - amount // 2) // 2
    assert chain.worker(CHARLIE)["stake"] == stake - amount
    assert chain.account(CHARLIE)["reserved"] == c0["reserved"] - amount
    assert chain.account(ALICE)["free"] == a0["free"] + to_requester
    assert chain.account(EVE)["free"] == e0["free"] + each - fees_e
    assert chain.account(FERDIE)["free"] == f0["free"] + each - fees_f
    assert fees_d > 0 and chain.worker(DAVE)["pending_verdicts"] == 0
    task = chain.task(task_id)
    assert task["status"] == "Open" and task["attempts"] == 1
    assert chain.client.query("Workers", "Reputation", [CHARLIE.ss58_address]).value["tasks_rejected"] == 1
    assert chain.client.query("TaskBounties", "Results", [task_id]).value is None
    chain.ok(ALICE, "TaskBounties", "cancel_task", {"task_id": task_id})


def test_lease_expiry_slashes_and_reopens(chain: Chain) -> None:
    task_id = create(chain)
    r = chain.ok(BOB, "TaskBounties", "claim_task", {"task_id": task_id})
    lease_until = events(r, "TaskBounties", "TaskClaimed")[0]["lease_until"]
    assert lease_until == chain.block_number() + chain.constant("TaskBounties", "ClaimLease")
    stake, a0 = chain.worker(BOB)["stake"], chain.account(ALICE)
    expired = chain.client.query("Workers", "Reputation", [BOB.ss58_address]).value["tasks_expired"]
    chain.advance_to(lease_until - 1, FERDIE)
    assert chain.task(task_id)["status"]["Claimed"]["worker"] == BOB.ss58_address
    chain.advance(1, FERDIE)
    assert chain.task(task_id)["status"] == "Open"
    amount = stake * chain.constant("TaskBounties", "LeaseSlashFraction") // 10**9
    assert chain.worker(BOB)["stake"] == stake - amount and chain.worker(BOB)["active_claims"] == 0
    assert chain.account(ALICE)["free"] == a0["free"] + amount
    assert chain.client.query("Workers", "Reputation", [BOB.ss58_address]).value["tasks_expired"] == expired + 1
    chain.ok(ALICE, "TaskBounties", "cancel_task", {"task_id": task_id})


def test_heartbeat_extends_the_lease(chain: Chain) -> None:
    task_id = create(chain)
    chain.ok(BOB, "TaskBounties", "claim_task", {"task_id": task_id})
    chain.advance(5, FERDIE)
    r = chain.ok(BOB, "TaskBounties", "heartbeat",
                 {"task_id": task_id, "progress": {"step": 1, "checkpoint_root": "0x" + "01" * 32}})
    lease_until = events(r, "TaskBounties", "Heartbeat")[0]["lease_until"]
    assert lease_until == chain.block_number() + 10
    chain.fails("ProgressRegressed", BOB, "TaskBounties", "heartbeat",
                {"task_id": task_id, "progress": {"step": 0, "checkpoint_root": "0x" + "01" * 32}})
    chain.advance(7, FERDIE)  # past the first lease: still claimed
    assert chain.task(task_id)["status"]["Claimed"]["lease_until"] == lease_until
    chain.ok(BOB, "TaskBounties", "release_claim", {"task_id": task_id})
    chain.ok(ALICE, "TaskBounties", "cancel_task", {"task_id": task_id})


def test_deadline_expiry_refunds_open_task(chain: Chain) -> None:
    a0 = chain.account(ALICE)
    receipt = chain.ok(ALICE, "TaskBounties", "create_task", {
        "spec": spec(), "bounty": 5 * UNIT, "min_stake": 0, "deadline": chain.block_number() + 3,
        "validators_required": 1, "holdout_commitment": None})
    task_id, fees = events(receipt, "TaskBounties", "TaskCreated")[0]["task_id"], fee(receipt)
    assert events(receipt, "TaskBounties", "TaskCreated")[0]["deadline"] == chain.block_number() + 2
    chain.advance(1, FERDIE)
    assert chain.task(task_id)["status"] == "Open"
    chain.advance(1, FERDIE)
    assert chain.task(task_id)["status"] == "Expired"
    a1 = chain.account(ALICE)
    assert a1["reserved"] == a0["reserved"] and a1["free"] == a0["free"] - fees
    chain.fails("TaskNotOpen", BOB, "TaskBounties", "claim_task", {"task_id": task_id})


SHORT_GRACE_MS = 3_000


@pytest.fixture()
def short_grace() -> Any:
    """A devnet of its own whose verification window is SHORT_GRACE_MS: Bob trains, Dave and Eve validate."""
    with DevnetProcess("--verification-grace-ms", str(SHORT_GRACE_MS)) as node:
        c = Chain(node.ws_url)
        try:
            assert c.constant("TaskBounties", "VerificationGrace") == SHORT_GRACE_MS
            c.ok(BOB, "Workers", "register", {"role": "Trainer", "stake": TRAINER_STAKE, "capabilities": caps()})
            for validator in (DAVE, EVE):
                c.ok(validator, "Workers", "register",
                     {"role": "Validator", "stake": VALIDATOR_STAKE, "capabilities": caps(gpus=0)})
            yield c
        finally:
            c.close()


def block_time(c: Chain, block_hash: str) -> int:
    """Timestamp.Now of a block (the pallet's clock for verify_until)."""
    return c.client.query("Timestamp", "Now", block_hash=block_hash).value


def parent_time(c: Chain, block_hash: str) -> int:
    """Timestamp.Now of a block's parent: what the block's on_initialize compares moments with."""
    return block_time(c, c.client.get_block_header(block_hash)["header"]["parentHash"])


def test_verification_timeout_is_time_and_refunds_without_slash(short_grace: Chain) -> None:
    chain = short_grace
    task_id = create(chain, validators_required=2)
    chain.ok(BOB, "TaskBounties", "claim_task", {"task_id": task_id})
    receipt, _ = submit_result(chain, task_id, BOB)
    verify_until = events(receipt, "TaskBounties", "ResultSubmitted")[0]["verify_until"]
    assert verify_until == block_time(chain, receipt.block_hash) + SHORT_GRACE_MS
    assert chain.task(task_id)["status"]["Submitted"]["verify_until"] == verify_until
    assert [tuple(e) for e in chain.client.query("TaskBounties", "VerificationDeadlines").value] == [
        (verify_until, task_id)]
    chain.ok(DAVE, "TaskBounties", "submit_verdict", {"task_id": task_id, "verdict": verdict(True)})
    stake, a0 = chain.worker(BOB)["stake"], chain.account(ALICE)
    task = chain.task(task_id)
    # More blocks than the old block-counted grace (10): the window is time, still open.
    # The worker's own remarks: more blocks than the old block-counted grace (10), and the window is still open.
    spam = [chain.ok(BOB, "System", "remark", {"remark": "0x00"}) for _ in range(12)]
    assert block_time(chain, spam[-1].block_hash) < verify_until, "the window closed first: machine too slow?"
    assert "Submitted" in chain.task(task_id)["status"]

    time.sleep(max(verify_until / 1000 - time.time(), 0) + 0.05)
    for _ in range(3):  # the first block whose parent's Now is past verify_until times it out
        r = chain.ok(FERDIE, "System", "remark", {"remark": "0x00"})
        if chain.task(task_id)["status"] == "Expired":
            break
    assert chain.task(task_id)["status"] == "Expired"
    assert parent_time(chain, r.block_hash) >= verify_until
    timed_out = [e.value for e in chain.client.get_events(r.block_hash) if e.value["module_id"] == "TaskBounties"
                 and e.value["event_id"] == "VerificationTimedOut"]
    assert len(timed_out) == 1 and timed_out[0]["phase"] == "Initialization"
    assert timed_out[0]["attributes"] == {"task_id": task_id, "worker": BOB.ss58_address}
    assert chain.worker(BOB)["stake"] == stake and chain.worker(BOB)["active_claims"] == 0
    assert chain.worker(DAVE)["pending_verdicts"] == 0
    assert chain.client.query("TaskBounties", "VerificationDeadlines").value == []
    a1 = chain.account(ALICE)
    assert a1["reserved"] == a0["reserved"] - task["bounty"] - task["deposit"]
    assert a1["free"] == a0["free"] + task["bounty"] + task["deposit"]
    chain.fails("NotSubmitted", EVE, "TaskBounties", "submit_verdict", {"task_id": task_id, "verdict": verdict(True)})


def test_reject_after_deadline_expires_with_refund(chain: Chain) -> None:
    task_id = create(chain, deadline_in=4, validators_required=1)
    chain.ok(BOB, "TaskBounties", "claim_task", {"task_id": task_id})
    assert submit_result(chain, task_id, BOB)[0].is_success
    chain.advance(3, FERDIE)  # past the deadline while under verification
    r = chain.ok(DAVE, "TaskBounties", "submit_verdict", {"task_id": task_id, "verdict": verdict(False)})
    assert events(r, "TaskBounties", "WorkerSlashed") and events(r, "TaskBounties", "TaskExpired")
    assert chain.task(task_id)["status"] == "Expired"


# Error paths ----------------------------------------------------------------------------------
def test_worker_errors_and_unbonding(chain: Chain) -> None:
    newbie = Keypair.create_from_uri("//PalletNewbie")
    chain.ok(ALICE, "Balances", "transfer_keep_alive", {"dest": newbie.ss58_address, "value": 2_000 * UNIT})
    chain.fails("AlreadyRegistered", BOB, "Workers", "register",
                {"role": "Trainer", "stake": TRAINER_STAKE, "capabilities": caps()})
    chain.fails("InsufficientStake", newbie, "Workers", "register",
                {"role": "Trainer", "stake": 99 * UNIT, "capabilities": caps()})
    chain.fails("GpuModelTooLong", newbie, "Workers", "register",
                {"role": "Validator", "stake": 60 * UNIT, "capabilities": caps(gpu_model="x" * 65)})
    chain.fails("NotRegistered", newbie, "Workers", "bond_extra", {"amount": UNIT})
    chain.fails("NotRegistered", newbie, "Workers", "unregister")
    assert chain.worker(newbie) is None and chain.account(newbie)["reserved"] == 0

    chain.ok(newbie, "Workers", "register", {"role": "Trainer", "stake": 100 * UNIT, "capabilities": caps()})
    chain.fails("ZeroAmount", newbie, "Workers", "bond_extra", {"amount": 0})
    chain.ok(newbie, "Workers", "bond_extra", {"amount": 50 * UNIT})
    chain.ok(newbie, "Workers", "update_capabilities", {"capabilities": caps(gpus=8)})
    assert chain.worker(newbie)["stake"] == 150 * UNIT and chain.worker(newbie)["capabilities"]["gpus"] == 8
    assert chain.account(newbie)["reserved"] == 150 * UNIT
    chain.fails("NotUnbonding", newbie, "Workers", "withdraw")

    task_id = create(chain)
    chain.ok(newbie, "TaskBounties", "claim_task", {"task_id": task_id})
    chain.fails("HasActiveClaims", newbie, "Workers", "unregister")
    chain.ok(newbie, "TaskBounties", "release_claim", {"task_id": task_id})
    chain.ok(ALICE, "TaskBounties", "cancel_task", {"task_id": task_id})

    r = chain.ok(newbie, "Workers", "unregister")
    unlock_at = events(r, "Workers", "UnbondingStarted")[0]["unlock_at"]
    chain.fails("AlreadyUnbonding", newbie, "Workers", "unregister")
    chain.fails("NotActive", newbie, "Workers", "bond_extra", {"amount": UNIT})
    chain.fails("StillUnbonding", newbie, "Workers", "withdraw")
    other = create(chain)
    chain.fails("NotTrainer", newbie, "TaskBounties", "claim_task", {"task_id": other})
    chain.advance_to(unlock_at - 1, FERDIE)
    chain.ok(newbie, "Workers", "withdraw")
    assert chain.worker(newbie) is None and chain.account(newbie)["reserved"] == 0
    chain.ok(ALICE, "TaskBounties", "cancel_task", {"task_id": other})


def test_validator_with_pending_verdict_cannot_unregister(chain: Chain) -> None:
    task_id = create(chain, validators_required=2)
    chain.ok(BOB, "TaskBounties", "claim_task", {"task_id": task_id})
    assert submit_result(chain, task_id, BOB)[0].is_success
    chain.ok(DAVE, "TaskBounties", "submit_verdict", {"task_id": task_id, "verdict": verdict(True)})
    chain.fails("HasPendingVerdicts", DAVE, "Workers", "unregister")
    chain.fails("HasActiveClaims", BOB, "Workers", "unregister")
    chain.fails("AlreadyVoted", DAVE, "TaskBounties", "submit_verdict", {"task_id": task_id, "verdict": verdict(False)})
    chain.fails("NotValidator", CHARLIE, "TaskBounties", "submit_verdict",
                {"task_id": task_id, "verdict": verdict(True)})
    chain.fails("NotValidator", ALICE, "TaskBounties", "submit_verdict", {"task_id": task_id, "verdict": verdict(True)})
    chain.ok(EVE, "TaskBounties", "submit_verdict", {"task_id": task_id, "verdict": verdict(True)})
    assert chain.task(task_id)["status"]["Accepted"]["worker"] == BOB.ss58_address


def test_task_errors_change_nothing(chain: Chain) -> None:
    a0 = chain.account(ALICE)
    now = chain.block_number()
    base = {"spec": spec(), "bounty": 10 * UNIT, "min_stake": 0, "deadline": now + 50, "validators_required": 2,
            "holdout_commitment": None}
    next_id = chain.client.query("TaskBounties", "NextTaskId").value
    fees = 0
    for error, change in (("BountyTooLow", {"bounty": UNIT - 1}), ("DeadlineInPast", {"deadline": now}),
                          ("InvalidValidatorsRequired", {"validators_required": 0}),
                          ("InvalidValidatorsRequired", {"validators_required": 9}),
                          ("RecipeTooLong", {"spec": spec(recipe="r" * 65)}),
                          ("UriTooLong", {"spec": spec(spec_uri="u" * 257)}),
                          ("MetricNameTooLong", {"spec": spec(eval_metric="m" * 33)}),
                          ("UnknownParentModel", {"spec": spec(parent_model="0x" + "ee" * 32)})):
        fees += fee(chain.fails(error, ALICE, "TaskBounties", "create_task", {**base, **change}))
    assert chain.client.query("TaskBounties", "NextTaskId").value == next_id
    assert chain.account(ALICE) == {**a0, "free": a0["free"] - fees}

    chain.fails("TaskNotFound", BOB, "TaskBounties", "claim_task", {"task_id": 10_000})
    task_id = create(chain, commitment=holdout_commitment(bytes(32), bytes(32), 10, b"s3://h"))
    big = create(chain, requirements={"min_cpus": 1, "min_gpus": 64, "min_memory_mb": 0})
    chain.fails("RequirementsNotMet", BOB, "TaskBounties", "claim_task", {"task_id": big})
    chain.ok(ALICE, "TaskBounties", "cancel_task", {"task_id": big})
    rich = chain.ok(ALICE, "TaskBounties", "create_task", {**base, "min_stake": 10**6 * UNIT})
    rich_id = events(rich, "TaskBounties", "TaskCreated")[0]["task_id"]
    chain.fails("InsufficientStake", BOB, "TaskBounties", "claim_task", {"task_id": rich_id})
    chain.ok(ALICE, "TaskBounties", "cancel_task", {"task_id": rich_id})
    chain.fails("NotTrainer", DAVE, "TaskBounties", "claim_task", {"task_id": task_id})
    chain.fails("NotRequester", BOB, "TaskBounties", "cancel_task", {"task_id": task_id})
    chain.fails("NotClaimed", BOB, "TaskBounties", "heartbeat",
                {"task_id": task_id, "progress": {"step": 1, "checkpoint_root": "0x" + "00" * 32}})
    chain.fails("NotSubmitted", DAVE, "TaskBounties", "submit_verdict", {"task_id": task_id, "verdict": verdict(True)})
    chain.fails("HoldoutNotRevealable", ALICE, "TaskBounties", "reveal_holdout",
                {"task_id": task_id, "salt": "0x" + "00" * 32, **HOLDOUT})

    chain.ok(BOB, "TaskBounties", "claim_task", {"task_id": task_id})
    chain.fails("TaskNotOpen", CHARLIE, "TaskBounties", "claim_task", {"task_id": task_id})
    chain.fails("TaskNotOpen", ALICE, "TaskBounties", "cancel_task", {"task_id": task_id})
    chain.fails("NotClaimant", CHARLIE, "TaskBounties", "heartbeat",
                {"task_id": task_id, "progress": {"step": 1, "checkpoint_root": "0x" + "00" * 32}})
    chain.fails("NotClaimant", CHARLIE, "TaskBounties", "release_claim", {"task_id": task_id})
    for error, overrides in (("DatasetMismatch", {"dataset_hash": bytes(32)}),
                             ("AttestationMismatch", {"task_id": task_id + 1000}),
                             ("InvalidTimestamps", {"started_ms": 5, "finished_ms": 4}),
                             ("UriTooLong", {"artifact_uri": b"u" * 257}),
                             ("TooManyMetrics", {"metrics": [(b"m", i) for i in range(17)]}),
                             ("TooManyCheckpoints", {"checkpoints": [bytes(32)] * 65})):
        chain.ok(BOB, "TaskBounties", "heartbeat",  # each failed call is a block: keep the lease alive
                 {"task_id": task_id, "progress": {"step": 1, "checkpoint_root": "0x" + "00" * 32}})
        receipt, _ = submit_result(chain, task_id, BOB, **overrides)
        assert receipt.error_message["name"] == error
    assert submit_result(chain, task_id, BOB)[0].is_success
    chain.fails("NotRequester", BOB, "TaskBounties", "reveal_holdout",
                {"task_id": task_id, "salt": "0x" + "00" * 32, **HOLDOUT})
    chain.fails("HoldoutMismatch", ALICE, "TaskBounties", "reveal_holdout",
                {"task_id": task_id, "salt": "0x" + "01" * 32, **HOLDOUT})
    chain.ok(ALICE, "TaskBounties", "reveal_holdout",
             {"task_id": task_id, "salt": "0x" + "00" * 32, **HOLDOUT})
    chain.fails("HoldoutAlreadyRevealed", ALICE, "TaskBounties", "reveal_holdout",
                {"task_id": task_id, "salt": "0x" + "00" * 32, **HOLDOUT})
    no_commit = create(chain)
    chain.fails("NoHoldoutCommitment", ALICE, "TaskBounties", "reveal_holdout",
                {"task_id": no_commit, "salt": "0x" + "00" * 32, **HOLDOUT})
    chain.ok(ALICE, "TaskBounties", "cancel_task", {"task_id": no_commit})
    for v in (DAVE, EVE):
        chain.ok(v, "TaskBounties", "submit_verdict", {"task_id": task_id, "verdict": verdict(True)})


def test_claims_per_worker_are_bounded(chain: Chain) -> None:
    limit = chain.constant("TaskBounties", "MaxClaimsPerWorker")
    held = chain.worker(CHARLIE)["active_claims"]
    tasks = [create(chain) for _ in range(limit - held + 1)]
    for task_id in tasks[:-1]:
        chain.ok(CHARLIE, "TaskBounties", "claim_task", {"task_id": task_id})
    chain.fails("TooManyClaims", CHARLIE, "TaskBounties", "claim_task", {"task_id": tasks[-1]})
    claims = [k.value for k, _ in chain.client.query_map("TaskBounties", "ClaimsByWorker", [CHARLIE.ss58_address])]
    assert sorted(claims) == sorted(tasks[:-1])
    for task_id in tasks[:-1]:
        chain.ok(CHARLIE, "TaskBounties", "release_claim", {"task_id": task_id})
    for task_id in tasks:
        chain.ok(ALICE, "TaskBounties", "cancel_task", {"task_id": task_id})
