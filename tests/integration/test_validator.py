"""The validator daemon end to end on a real devnet: two validators judge results and the pallet settles.

No Ray: the worker's side is `workers.runner.train_local` (world size 1, in this process) plus the
worker's own signed claim_task / submit_result through runtime_bindings; the spot checks replay
world-size-1 segments in-process. //Alice requests, //Bob trains, //Charlie and //Dave validate (two
ValidatorDaemon threads, validators_required = 2). One training run serves every case (the same spec):
an attestation with an inflated metric (rejected by both, WorkerSlashed), then the honest attestation
(accepted by both: TaskAccepted, bounty paid, model registered, validators rewarded), then a validator
restarted from its state file (resumes, votes on nothing twice).
"""
from __future__ import annotations

import json
import threading
import time

import pytest

pytest.importorskip("torch")

from devnet_process import DevnetProcess

from runtime_bindings import AttestationCodec, Chain, Keypair
from runtime_bindings.generated import types as t
from workers import ArtifactStore, DatasetRef, Evaluation, Limits, TaskSpec, add_dataset
from workers.hashing import blake2_256_hex
from workers.runner import train_local
from workers.validator import ValidatorConfig, ValidatorDaemon
from workers.verification import choose_segments

UNIT = 10**12
BOUNTY = 10 * UNIT
TARGET = 0.9
ALICE, BOB, CHARLIE, DAVE = (Keypair.create_from_uri(f"//{n}") for n in ("Alice", "Bob", "Charlie", "Dave"))


@pytest.fixture(scope="module")
def chain(devnet: DevnetProcess):
    with Chain.connect(devnet.ws_url, timeout=10) as c:
        c.workers.register(BOB, "Trainer", 1_000 * UNIT, t.Capabilities(2, 0, "", 8_000))
        for validator in (CHARLIE, DAVE):
            c.workers.register(validator, "Validator", 100 * UNIT, t.Capabilities(2, 0, "", 8_000))
        yield c


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The requester's spec and data set, and one honest training run in the worker's store."""
    requester = ArtifactStore(tmp_path_factory.mktemp("requester-store"))
    digest, uri = add_dataset("digits", requester)
    spec = TaskSpec(recipe="digits_mlp", dataset=DatasetRef(digest, uri),
                    evaluation=Evaluation("accuracy", TARGET), hyperparameters={"epochs": 6}, seed=11,
                    checkpoint_every=22, limits=Limits(timeout_s=300, memory_mb=1024))
    requester.put(spec.canonical_bytes())
    worker_store = ArtifactStore(tmp_path_factory.mktemp("worker-store"))
    started = time.monotonic()
    result = train_local(spec, worker_store)
    return {"spec": spec, "requester": requester, "worker_store": worker_store, "result": result,
            "train_s": time.monotonic() - started}


@pytest.fixture(scope="module")
def validators(devnet, chain, tmp_path_factory):
    start = chain.finalized_number()
    daemons, threads = {}, {}
    for name in ("Charlie", "Dave"):
        config = ValidatorConfig(chain_url=devnet.ws_url, key=f"//{name}",
                                 store=str(tmp_path_factory.mktemp(f"{name}-store")),
                                 state_dir=str(tmp_path_factory.mktemp(f"{name}-state")), spot_checks=2,
                                 from_block=start, poll_interval_s=0.2)
        daemons[name] = ValidatorDaemon(config)
        threads[name] = threading.Thread(target=daemons[name].run, name=f"validator-{name}", daemon=True)
        threads[name].start()
    yield {"daemons": daemons, "threads": threads}
    for name, daemon in daemons.items():
        daemon.stop()
        threads[name].join(60)


def post_task(chain: Chain, spec: TaskSpec, store: ArtifactStore) -> int:
    spec_hash = spec.spec_hash_hex()
    on_chain = t.TaskSpec(recipe=spec.recipe, spec_hash="0x" + spec_hash, spec_uri=store.uri(spec_hash),
                          dataset_hash="0x" + spec.dataset.hash, eval_metric="accuracy",
                          eval_target=int(TARGET * 1_000_000), higher_is_better=True,
                          requirements=t.Requirements(1, 0, 512), parent_model=None)
    receipt = chain.task_bounties.create_task(ALICE, on_chain, BOUNTY, 0, chain.best_number() + 500, 2, None)
    return next(e.task_id for e in receipt.events if e.name == "TaskCreated")


def claim_and_submit(chain: Chain, task_id: int, attestation: dict) -> object:
    """The worker's own extrinsics: claim, then the signed attestation."""
    chain.task_bounties.claim_task(BOB, task_id)
    signature = AttestationCodec.from_chain(chain).multi_signature(attestation, BOB)
    return chain.task_bounties.submit_result(BOB, task_id, attestation, signature)


def events_of(chain: Chain, name: str, task_id: int, since: int = 1) -> list:
    found = []
    for number in range(since, chain.best_number() + 1):
        for record in chain.events_at(chain.block_hash(number)):
            ev = record.event
            if ev.pallet == "TaskBounties" and ev.name == name and getattr(ev, "task_id", None) == task_id:
                found.append(ev)
    return found


def wait_for_event(chain: Chain, name: str, task_id: int, since: int, timeout: float = 120) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = events_of(chain, name, task_id, since)
        if found:
            return found[0]
        time.sleep(0.5)
    raise AssertionError(f"no {name} for task {task_id} within {timeout} s")


def votes_on(validators, task_id: int) -> dict[str, dict]:
    return {name: next((v for v in d.verdicts if v["task_id"] == task_id), None)
            for name, d in validators["daemons"].items()}


def test_inflated_metric_is_rejected_by_both_and_the_worker_slashed(chain, trained, validators):
    result, spec = trained["result"], trained["spec"]
    task_id = post_task(chain, spec, trained["requester"])
    attestation = result.to_attestation(task_id, BOB.ss58_address)
    real = dict(attestation["metrics"])["accuracy"]
    attestation["metrics"] = [(k, min(v + 30_000, 1_000_000) if k == "accuracy" else v)
                              for k, v in attestation["metrics"]]
    assert dict(attestation["metrics"])["accuracy"] > real + 100
    stake_before = chain.workers.workers(BOB.ss58_address).stake
    receipt = claim_and_submit(chain, task_id, attestation)
    started = time.monotonic()
    slashed = wait_for_event(chain, "WorkerSlashed", task_id, receipt.block_number)
    print(f"training {trained['train_s']:.1f} s; inflated result judged in {time.monotonic() - started:.1f} s")
    assert slashed.worker == BOB.ss58_address and slashed.amount > 0
    assert chain.workers.workers(BOB.ss58_address).stake == stake_before - slashed.amount
    verdicts = events_of(chain, "VerdictSubmitted", task_id, receipt.block_number)
    assert {v.validator for v in verdicts} == {CHARLIE.ss58_address, DAVE.ss58_address}
    assert not any(v.verdict.accept for v in verdicts)
    # the re-measured metric on chain is the real one, the claim was higher
    assert all(v.verdict.measured_metric == real for v in verdicts)
    votes = votes_on(validators, task_id)
    for name, vote in votes.items():
        assert vote is not None and not vote["accept"], name
        assert [r.split(":")[0] for r in vote["reasons"]] == ["metric"], vote["reasons"]  # only the metric failed
    assert events_of(chain, "TaskReopened", task_id, receipt.block_number)


def test_honest_result_is_accepted_paid_and_registered(chain, trained, validators):
    result, spec = trained["result"], trained["spec"]
    task_id = post_task(chain, spec, trained["requester"])
    attestation = result.to_attestation(task_id, BOB.ss58_address)
    receipt = claim_and_submit(chain, task_id, attestation)
    bob_before = chain.system.account(BOB.ss58_address).data.free
    val_before = {k.ss58_address: chain.system.account(k.ss58_address).data.free for k in (CHARLIE, DAVE)}
    alice_reserved = chain.system.account(ALICE.ss58_address).data.reserved
    accepted = wait_for_event(chain, "TaskAccepted", task_id, receipt.block_number)
    assert accepted.worker == BOB.ss58_address and accepted.model_hash == "0x" + result.model_hash
    # the bounty: 90% to the worker, 10% split between the two accepting validators
    assert accepted.validator_reward == BOUNTY // 10 // 2
    assert accepted.worker_reward == BOUNTY - 2 * accepted.validator_reward
    assert chain.system.account(BOB.ss58_address).data.free == bob_before + accepted.worker_reward
    assert chain.system.account(ALICE.ss58_address).data.reserved < alice_reserved
    verdicts = events_of(chain, "VerdictSubmitted", task_id, receipt.block_number)
    assert len(verdicts) == 2 and all(v.verdict.accept for v in verdicts)
    for v in verdicts:  # each validator: reward in, its verdict fee out
        assert v.verdict.measured_metric == dict(attestation["metrics"])["accuracy"]
    for address, before in val_before.items():
        assert chain.system.account(address).data.free > before  # the reward outweighs the verdict's fee
    # the model is on chain (Models pallet), with the attested metrics and lineage
    record = chain.models.models("0x" + result.model_hash)
    assert record is not None and record.trainer == BOB.ss58_address and record.owner == ALICE.ss58_address
    assert record.task_id == task_id
    # the evidence: stored, named by its hash, naming the segments chosen from the inclusion block's hash
    segments = choose_segments(receipt.block_hash, len(result.checkpoints), 2)
    for name, vote in votes_on(validators, task_id).items():
        assert vote["accept"] and vote["segments"] == segments, (name, vote)
        store = validators["daemons"][name].store
        doc = store.get(vote["evidence_hash"])
        assert blake2_256_hex(doc) == vote["evidence_hash"]
        evidence = json.loads(doc)
        names = {c["name"] for c in evidence["checks"]}
        assert {"model_hash", "checkpoints", "trajectory_root", "code_hash", "dataset_hash", "metric"} <= names
        assert {f"segment[{i}]" for i in segments} <= names
        assert evidence["randomness"] == receipt.block_hash.removeprefix("0x")
        assert all(c["ok"] for c in evidence["checks"])


def test_a_restarted_validator_resumes_and_never_votes_twice(devnet, chain, trained, validators):
    daemon = validators["daemons"]["Charlie"]
    daemon.stop()
    validators["threads"]["Charlie"].join(60)
    state = json.loads((daemon.state_path).read_text())
    assert state["last_block"] >= 1 and not state["pending"] and len(state["voted"]) == 2
    head = chain.finalized_number()
    restarted = ValidatorDaemon(daemon.config)
    thread = threading.Thread(target=restarted.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (restarted.state.last_block or 0) < head:
            time.sleep(0.2)
        assert restarted.state.last_block >= head
    finally:
        restarted.stop()
        thread.join(30)
    # it resumed from its state file: both earlier votes remembered, none cast again (on chain: one each)
    assert restarted.verdicts == [] and restarted.exit_code == 0
    assert restarted.state.voted == state["voted"]
    for key in state["voted"]:
        task_id = int(key.split(":")[0])
        assert chain.task_bounties.verdicts(task_id, CHARLIE.ss58_address) is None  # resolved, cleared on chain
        voters = [v.validator for v in events_of(chain, "VerdictSubmitted", task_id)]
        assert voters.count(CHARLIE.ss58_address) == 1
