"""The worker daemon end to end: devnet + a real orchestrator process + a real local Ray cluster (one per module).

A requester (//Alice) posts digits tasks whose spec document and data set live in her artifact store; the
worker (//Bob, a registered Trainer) runs `workers.daemon.WorkerDaemon` with its own store; results are
checked on chain (ResultSubmitted, attestation signature) and by re-evaluating the stored model.
Fault cases: a data set that does not match its hash (refused, never claimed, task stays Open), the daemon
process killed mid-training (a restart resumes its claim from the journal and reproduces the result
bitwise), the deadline approaching (release_claim on chain, no slash). Challenge period (a devnet and an
orchestrator of their own): a (re)started daemon finds its Approved result among its claims on chain and
finalizes the payout once the period is over, polling for assignments meanwhile.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("torch")
ray = pytest.importorskip("ray")

from forgeries import placeholder_attestation

from paratrain.local import DevnetProcess, OrchestratorProcess, RayCluster
from paratrain.local import post_task as post_spec
from runtime_bindings import AttestationCodec, Chain, Keypair
from runtime_bindings.generated import types as t
from runtime_bindings.values import METRIC_SCALE
from workers import ArtifactStore, DatasetRef, Evaluation, Limits, TaskSpec, add_dataset
from workers.daemon import DaemonConfig, WorkerDaemon
from workers.observers import Recorder

pytestmark = pytest.mark.slow  # starts Ray and an orchestrator, and the worker daemon trains

ROOT = Path(__file__).resolve().parents[2]
UNIT = 10**12
ALICE, BOB, CHARLIE, FERDIE = (Keypair.create_from_uri(f"//{n}") for n in ("Alice", "Bob", "Charlie", "Ferdie"))
EXPECTED = 0.95  # digits_mlp's RECIPE.expected
@pytest.fixture(scope="module")
def cluster():
    if ray.is_initialized():
        ray.shutdown()
    with RayCluster(cpus=2) as running:
        yield running.address


@pytest.fixture(scope="module")
def chain(devnet: DevnetProcess):
    with Chain.connect(devnet.ws_url, timeout=10) as c:
        c.workers.register(BOB, "Trainer", 1_000 * UNIT, t.Capabilities(2, 0, "", 8_000))
        yield c


@pytest.fixture(scope="module")
def orchestrator(devnet: DevnetProcess, chain, tmp_path_factory):
    proc = OrchestratorProcess(devnet.ws_url, tmp_path_factory.mktemp("orch") / "index.db").start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def requester_store(tmp_path_factory):
    return ArtifactStore(tmp_path_factory.mktemp("requester-store"))


@pytest.fixture(scope="module")
def digits(requester_store):
    return add_dataset("digits", requester_store)


def make_spec(dataset: DatasetRef, **hp) -> TaskSpec:
    return TaskSpec(recipe="digits_mlp", dataset=dataset, evaluation=Evaluation("accuracy", EXPECTED),
                    hyperparameters={"epochs": 16, **hp}, seed=11, checkpoint_every=40,
                    limits=Limits(timeout_s=600, memory_mb=1024))


def post_task(chain: Chain, store: ArtifactStore, spec: TaskSpec, *, blocks: int = 500,
              dataset_hash: str | None = None) -> int:
    """The requester's side: store the spec document, create_task with its hash, URI and the dataset hash."""
    spec_hash = store.put(spec.canonical_bytes())
    assert spec_hash == spec.spec_hash_hex()
    task_id, _ = post_spec(chain, ALICE, spec, store.uri(spec_hash), bounty=10 * UNIT, deadline_in=blocks,
                           dataset_hash=dataset_hash)
    return task_id


def daemon_config(devnet, orchestrator, state_dir: Path, worker_store: Path, **kw) -> DaemonConfig:
    return DaemonConfig(orchestrator=orchestrator.target, chain_url=devnet.ws_url, key="//Bob",
                        store=str(worker_store), num_workers=2, state_dir=str(state_dir), poll_wait_s=2.0, **kw)


def recorder_of(daemon: WorkerDaemon) -> Recorder:
    """The daemon's events as the tests read them: a bounded observer, subscribed before run()."""
    recorder = Recorder(maxlen=10_000)
    daemon.subscribe(recorder)
    return recorder


def start_thread(daemon: WorkerDaemon) -> threading.Thread:
    thread = threading.Thread(target=lambda: setattr(daemon, "exit_code", daemon.run()), daemon=True)
    thread.start()
    return thread


def events_of(chain: Chain, name: str, task_id: int, since: int = 1) -> list:
    found = []
    for number in range(since, chain.best_number() + 1):
        for record in chain.events_at(chain.block_hash(number)):
            ev = record.event
            if ev.pallet == "TaskBounties" and ev.name == name and getattr(ev, "task_id", None) == task_id:
                found.append(ev)
    return found


def wait_until(predicate, timeout: float, what: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


def status_of(chain: Chain, task_id: int) -> str:
    return chain.task_bounties.tasks(task_id).status.name


def reevaluate(store: ArtifactStore, spec: TaskSpec, model_hash: str) -> float:
    import torch

    from workers import tensorio
    from workers.datasets import decode_dataset
    from workers.recipes import get_recipe

    recipe = get_recipe(spec.recipe)
    hp = recipe.hyperparameters(spec.hyperparameters)
    prepared = recipe.prepare(decode_dataset(store.fetch(spec.dataset.uri, spec.dataset.hash)), hp, spec.validation)
    model = recipe.build_model(hp, prepared)
    weights, _ = tensorio.loads(store.get(model_hash))
    model.load_state_dict(weights)
    model.eval()
    with torch.no_grad():
        return float(recipe.evaluate(model, prepared, hp)["accuracy"])


# The main job, with a tampered data set refused on the way -------------------------------------------------
@pytest.fixture(scope="module")
def first_run(devnet, chain, orchestrator, cluster, requester_store, digits, tmp_path_factory):
    digest, uri = digits
    # a task whose data set URI serves other bytes than the hash it names: must be refused, never claimed
    tampered = tmp_path_factory.mktemp("tampered") / "digits.ptts"
    tampered.write_bytes(requester_store.get(add_dataset("breast_cancer", requester_store)[0]))
    bad_spec = make_spec(DatasetRef(digest, "file://" + str(tampered)))
    bad = post_task(chain, requester_store, bad_spec)
    spec = make_spec(DatasetRef(digest, uri))
    good = post_task(chain, requester_store, spec)
    worker_store = tmp_path_factory.mktemp("worker-store")
    # the worker trusts the requester's store, and the folder of the tampered copy: what it gets from there is
    # refused for its hash (a URI outside both would be refused by the URI policy before anything is read)
    daemon = WorkerDaemon(daemon_config(devnet, orchestrator, tmp_path_factory.mktemp("state"), worker_store,
                                        max_tasks=1, trusted_stores=(requester_store.root, str(tampered.parent))))
    events = recorder_of(daemon)
    started = time.monotonic()
    thread = start_thread(daemon)
    thread.join(240)
    assert not thread.is_alive(), "the daemon did not finish the task"
    return {"daemon": daemon, "events": events, "bad": bad, "good": good, "spec": spec, "seconds": time.monotonic() - started,
            "worker_store": ArtifactStore(worker_store)}


def test_task_assigned_trained_on_ray_attested_and_submitted(first_run, chain, requester_store):
    daemon, task_id, spec = first_run["daemon"], first_run["good"], first_run["spec"]
    assert daemon.exit_code == 0 and daemon.status.tasks_submitted == 1
    [submitted] = first_run["events"].of("submitted")
    assert submitted["task_id"] == task_id
    # the claim and the submission are each announced just before their extrinsic (benchmarks time them)
    lifecycle = [what for what, d in first_run["events"].events
                 if d.get("task_id") == task_id and what in ("claiming", "claimed", "submitting", "submitted")]
    assert lifecycle == ["claiming", "claimed", "submitting", "submitted"]
    # on chain: ResultSubmitted by the worker, the task Submitted, the stored attestation as signed
    [event] = events_of(chain, "ResultSubmitted", task_id)
    assert event.worker == BOB.ss58_address and event.model_hash.hex() == submitted["model_hash"]
    assert status_of(chain, task_id) == "Submitted"
    stored = chain.task_bounties.results(task_id)
    codec = AttestationCodec.from_chain(chain)
    attestation = submitted["attestation"]
    assert codec.verify(attestation, submitted["signature"], BOB.ss58_address)
    assert not codec.verify(attestation, submitted["signature"], ALICE.ss58_address)
    assert codec.verify(stored.attestation, submitted["signature"], BOB.ss58_address)  # what the chain holds
    assert stored.attestation == attestation  # one type from the worker through the chain
    assert attestation.dataset_hash.hex() == spec.dataset.hash
    # the model reaches the recipe's expected accuracy: by the attested metric and by re-evaluation
    accuracy = dict(attestation.metrics)[b"accuracy"] / METRIC_SCALE
    assert accuracy >= EXPECTED, accuracy
    worker_store = first_run["worker_store"]
    assert abs(reevaluate(worker_store, spec, submitted["model_hash"]) - accuracy) < 1e-6
    # two training workers; checkpoints committed by heartbeats; progress reached the orchestrator's relay
    assert len(attestation.checkpoints) == 9  # 16 epochs x 22 steps, every 40 steps
    assert events_of(chain, "Heartbeat", task_id), "no heartbeat reached the chain"
    assert json.loads((daemon.state_dir / "status.json").read_text())["tasks_submitted"] == 1
    print(f"first run (refusal + one task): {first_run['seconds']:.1f} s")


def test_dataset_hash_mismatch_is_refused_and_never_claimed(first_run, chain):
    daemon, bad = first_run["daemon"], first_run["bad"]
    assert "dataset hash mismatch" in daemon.refused[bad]
    assert any(d["task_id"] == bad for d in first_run["events"].of("refused"))
    assert not any(d["task_id"] == bad for d in first_run["events"].of("claiming"))
    assert not events_of(chain, "TaskClaimed", bad)
    assert status_of(chain, bad) == "Open"


# Faults -----------------------------------------------------------------------------------------------
def test_daemon_killed_mid_training_resumes_its_claim(first_run, devnet, chain, orchestrator, cluster,
                                                     requester_store, digits, tmp_path):
    spec = first_run["spec"]  # the same spec: a resumed run must reproduce the first result bitwise
    reference = first_run["events"].of("submitted")[0]
    task_id = post_task(chain, requester_store, spec)
    state, store = tmp_path / "state", tmp_path / "worker-store"
    log = open(tmp_path / "daemon.log", "w")  # noqa: SIM115 - closed after the kill
    proc = subprocess.Popen(
        [sys.executable, "-m", "paratrain.cli", "worker", "--orchestrator", orchestrator.target, "--chain", devnet.ws_url,
         "--key", "//Bob", "--store", str(store), "--trust-store", requester_store.root, "--ray-address", cluster, "--num-workers", "2",
         "--state-dir", str(state)], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    journal = state / f"task-{task_id}.json"
    try:
        def two_checkpoints():
            if proc.poll() is not None:
                raise AssertionError(f"the daemon exited: {(tmp_path / 'daemon.log').read_text()[-3000:]}")
            try:
                return len(json.loads(journal.read_text())["checkpoints"]) >= 2
            except (OSError, ValueError):
                return False
        wait_until(two_checkpoints, 150, "two checkpoints in the journal")
    finally:
        proc.kill()  # SIGKILL: no clean-up at all
        proc.wait()
        log.close()
    assert status_of(chain, task_id) == "Claimed"
    killed_at = json.loads(journal.read_text())["checkpoints"]
    # restart: the daemon finds its live claim on chain and resumes it
    daemon = WorkerDaemon(daemon_config(devnet, orchestrator, state, store, max_tasks=1,
                                        trusted_stores=(requester_store.root,)))
    events = recorder_of(daemon)
    thread = start_thread(daemon)
    thread.join(200)
    assert not thread.is_alive()
    assert ("resume", {"task_id": task_id}) in events.events
    [train] = events.of("train")
    assert train["resume_from"] >= 2
    [submitted] = events.of("submitted")
    assert submitted["task_id"] == task_id and status_of(chain, task_id) == "Submitted"
    assert not events_of(chain, "TaskClaimed", task_id)[1:], "claimed twice"
    assert submitted["model_hash"] == reference["model_hash"]
    assert [h.hex() for h in submitted["attestation"].checkpoints[:len(killed_at)]] == killed_at
    assert submitted["trajectory_root"] == reference["trajectory_root"]
    assert AttestationCodec.from_chain(chain).verify(submitted["attestation"], submitted["signature"],
                                                     BOB.ss58_address)
    assert not journal.exists()


def test_deadline_approaching_releases_the_claim(first_run, devnet, chain, orchestrator, cluster,
                                                 requester_store, digits, tmp_path):
    spec = make_spec(DatasetRef(*digits), epochs=20)
    stake_before = chain.workers.workers(BOB.ss58_address).stake
    task_id = post_task(chain, requester_store, spec, blocks=14)
    deadline = chain.task_bounties.tasks(task_id).deadline
    # max_failures=0: a cancelled run ends at its first failure instead of restarting its worker group
    daemon = WorkerDaemon(daemon_config(devnet, orchestrator, tmp_path / "state", tmp_path / "store",
                                        max_failures=0, trusted_stores=(requester_store.root,)))
    events = recorder_of(daemon)
    thread = start_thread(daemon)
    try:
        wait_until(lambda: status_of(chain, task_id) == "Claimed", 60, "the claim")
        # a busy chain: other accounts' transactions move the block number towards the deadline
        def released():
            if status_of(chain, task_id) == "Claimed" and chain.best_number() < deadline:
                chain.balances.transfer_keep_alive(FERDIE, ALICE.ss58_address, UNIT)
                return False
            return status_of(chain, task_id) != "Claimed"
        wait_until(released, 60, "the release", interval=0.3)
        [event] = events_of(chain, "ClaimReleased", task_id)
        assert event.worker == BOB.ss58_address
        assert not events_of(chain, "LeaseExpired", task_id)
        assert chain.workers.workers(BOB.ss58_address).stake == stake_before  # released, not slashed
        assert status_of(chain, task_id) in ("Open", "Expired")
        assert any(d["task_id"] == task_id for d in events.of("released"))
        # past the deadline the task expires and the requester gets bounty and deposit back in full
        while chain.best_number() < deadline + 1:
            chain.balances.transfer_keep_alive(FERDIE, ALICE.ss58_address, UNIT)
        assert status_of(chain, task_id) == "Expired"
        assert events_of(chain, "TaskExpired", task_id)[0].refund == 11 * UNIT
    finally:
        daemon.stop()
        thread.join(120)
    assert not thread.is_alive()
    assert daemon.status.tasks_submitted == 0 and daemon.status.tasks_released == 1


# Challenge period ---------------------------------------------------------------------------------------
def approved_result(chain: Chain, store: ArtifactStore, spec: TaskSpec) -> int:
    """A task claimed by //Bob with a signed (untrained) result, approved by //Charlie alone."""

    task_id = post_task(chain, store, spec)
    chain.task_bounties.claim_task(BOB, task_id)
    attestation = placeholder_attestation(task_id, BOB.ss58_address, "0x" + spec.dataset.hash)
    signature = AttestationCodec.from_chain(chain).multi_signature(attestation, BOB)
    chain.task_bounties.submit_result(BOB, task_id, attestation, signature)
    chain.task_bounties.submit_verdict(CHARLIE, task_id, t.Verdict(True, 960_000, "0x" + "22" * 32))
    return task_id


def test_restarted_daemon_finalizes_its_approved_result(cluster, requester_store, digits, tmp_path):
    with DevnetProcess("--challenge-period-ms", "4000") as node, Chain.connect(node.ws_url, timeout=10) as chain:
        chain.workers.register(BOB, "Trainer", 1_000 * UNIT, t.Capabilities(2, 0, "", 8_000))
        chain.workers.register(CHARLIE, "Validator", 100 * UNIT, t.Capabilities(2, 0, "", 8_000))
        orchestrator = OrchestratorProcess(node.ws_url, tmp_path / "index.db").start()
        try:
            task_id = approved_result(chain, requester_store, make_spec(DatasetRef(*digits)))
            until = chain.task_bounties.tasks(task_id).status.challenge_until
            config = DaemonConfig(orchestrator=orchestrator.target, chain_url=node.ws_url, key="//Bob",
                                  store=str(tmp_path / "store"), trusted_stores=(requester_store.root,),
                                  state_dir=str(tmp_path / "state"), poll_wait_s=10.0)
            daemon = WorkerDaemon(config)
            events = recorder_of(daemon)
            thread = start_thread(daemon)
            try:
                wait_until(lambda: status_of(chain, task_id) == "Accepted", 60, "the payout")
                wait_until(lambda: bool(events.of("paid")), 10, "the daemon's record")
            finally:
                daemon.stop()
                thread.join(30)
        finally:
            orchestrator.stop()
        [paid] = events.of("paid")
        assert paid["task_id"] == task_id and paid["finalized"] and paid["worker_reward"] == 9 * UNIT
        # paid once the period was over, and soon: the 10 s long poll was cut short for it
        paid_at = chain.timestamp.now(at=chain.block_hash(paid["block"]))
        assert until <= paid_at < until + 8_000, (paid_at - until)
        assert daemon.exit_code == 0 and daemon.status.tasks_paid == 1 and daemon.status.payouts_pending == 0
        assert list(chain.task_bounties.claims_by_worker.entries(BOB.ss58_address)) == []  # the claim ended
