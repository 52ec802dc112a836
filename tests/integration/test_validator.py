"""The validator daemon end to end on a real devnet: two validators judge results and the pallet settles.

No Ray: the worker's side is `workers.runner.train_local` (world size 1, in this process) plus the
worker's own signed claim_task / submit_result through runtime_bindings; the spot checks replay
world-size-1 segments in-process. //Alice requests, //Bob trains, //Charlie and //Dave validate (two
ValidatorDaemon threads, validators_required = 2). One training run serves every case (the same spec):
an attestation with an inflated metric (rejected by both, WorkerSlashed), the same for a task with a
committed holdout (awaited while more than `holdout_margin_ms` of the verification window, ms of
Timestamp.Now, are left; judged with it once revealed), then the honest attestation (accepted by both:
TaskAccepted, bounty paid, model registered, validators rewarded), then a validator restarted from its
state file (resumes, votes on nothing twice).

Challenge period (a devnet of its own per case, DevnetProcess("--challenge-period-ms", ...)): an honest
result is Approved by //Charlie and //Dave (neither challenges what it accepted) and, the chain idle, the
worker side (workers.payout.Payouts, as the worker daemon runs it) finalizes the payout itself once the 3 s
period is over; and a lazy validator (//Eve, a registered Validator that submits an accept verdict without
checking anything) approves an inflated result alone (validators_required = 1): one of three honest daemons
(//Charlie, //Dave, //Ferdie) challenges it with its evidence, the two others vote in the challenge round,
three rejects uphold it (WorkerSlashed, the challenger's deposit returned). That case's period is long
(60 s): the honest validators must verify inside it, and a loaded machine is slow.
"""
from __future__ import annotations

import contextlib
import json
import threading
import time
from dataclasses import replace
from types import SimpleNamespace

import pytest

pytest.importorskip("torch")

from paratrain.local import DevnetProcess
from paratrain.local import post_task as post_spec
from runtime_bindings import AttestationCodec, Chain, Keypair
from runtime_bindings.generated import types as t
from runtime_bindings.values import METRIC_SCALE
from workers import ArtifactStore, DatasetRef, Evaluation, Limits, TaskSpec, add_dataset
from workers.hashing import blake2_256_hex
from workers.observers import Recorder
from workers.payout import Payouts
from workers.runner import train_local
from workers.uri_policy import UriPolicy
from workers.validator import ValidatorConfig, ValidatorDaemon
from workers.verification import as_hex, choose_segments

pytestmark = pytest.mark.slow  # trains and runs validator daemons against a devnet

UNIT = 10**12
BOUNTY = 10 * UNIT
TARGET = 0.9
ALICE, BOB, CHARLIE, DAVE, EVE, FERDIE = (Keypair.create_from_uri(f"//{n}")
                                          for n in ("Alice", "Bob", "Charlie", "Dave", "Eve", "Ferdie"))
CAPS = t.Capabilities(2, 0, "", 8_000)


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
    worker_store = ArtifactStore(tmp_path_factory.mktemp("worker-store"), policy=UriPolicy((requester.root,)))
    started = time.monotonic()
    result = train_local(spec, worker_store)
    return {"spec": spec, "requester": requester, "worker_store": worker_store, "result": result,
            "train_s": time.monotonic() - started}


def stores_of(trained: dict) -> tuple[str, ...]:
    """The stores a validator must trust to judge the trained run: the requester's and the worker's."""
    return trained["requester"].root, trained["worker_store"].root


@contextlib.contextmanager
def running_validators(chain: Chain, names: tuple[str, ...], tmp_path_factory, trusted: tuple[str, ...]):
    """ValidatorDaemon threads (one per name) following `chain` from its finalized head, trusting the stores
    `trusted` (the requester's and the worker's)."""
    start = chain.finalized_number()
    daemons, threads, recorders = {}, {}, {}
    for name in names:
        config = ValidatorConfig(chain_url=chain.url, key=f"//{name}",
                                 store=str(tmp_path_factory.mktemp(f"{name}-store")), trusted_stores=trusted,
                                 state_dir=str(tmp_path_factory.mktemp(f"{name}-state")), spot_checks=2,
                                 from_block=start, poll_interval_s=0.2)
        daemons[name] = ValidatorDaemon(config)
        recorders[name] = Recorder(maxlen=1_000, only={"vote", "abstained"})  # what the tests read back
        daemons[name].subscribe(recorders[name])
        threads[name] = threading.Thread(target=daemons[name].run, name=f"validator-{name}", daemon=True)
        threads[name].start()
    try:
        yield {"daemons": daemons, "threads": threads, "recorders": recorders}
    finally:
        for name, daemon in daemons.items():
            daemon.stop()
            threads[name].join(60)


@pytest.fixture(scope="module")
def validators(chain, trained, tmp_path_factory):
    with running_validators(chain, ("Charlie", "Dave"), tmp_path_factory, stores_of(trained)) as running:
        yield running


def post_task(chain: Chain, spec: TaskSpec, store: ArtifactStore, validators_required: int = 2,
              holdout_commitment: str | None = None) -> int:
    task_id, _ = post_spec(chain, ALICE, spec, store.uri(spec.spec_hash_hex()), bounty=BOUNTY,
                           validators_required=validators_required, holdout_commitment=holdout_commitment)
    return task_id


def claim_and_submit(chain: Chain, task_id: int, attestation: t.Attestation) -> object:
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
    return {name: next((v for v in r.of("vote") if v["task_id"] == task_id), None)
            for name, r in validators["recorders"].items()}


def inflated(attestation: t.Attestation) -> t.Attestation:
    """The attestation with its accuracy claimed 0.03 higher than measured."""
    real = dict(attestation.metrics)[b"accuracy"]
    attestation = replace(attestation, metrics=[(k, min(v + 30_000, METRIC_SCALE) if k == b"accuracy" else v)
                                                for k, v in attestation.metrics])
    assert dict(attestation.metrics)[b"accuracy"] > real + 100
    return attestation


def test_inflated_metric_is_rejected_by_both_and_the_worker_slashed(chain, trained, validators):
    result, spec = trained["result"], trained["spec"]
    task_id = post_task(chain, spec, trained["requester"])
    real = dict(result.to_attestation(task_id, BOB.ss58_address).metrics)[b"accuracy"]
    attestation = inflated(result.to_attestation(task_id, BOB.ss58_address))
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


def test_a_committed_holdout_is_awaited_then_the_result_judged_with_it(chain, trained, validators):
    """The requester committed a hidden holdout: the validators take the result in and wait (the verification
    window, 60 s of Timestamp.Now on this devnet, is far from its last holdout_margin_ms) without voting; once
    the requester reveals it they measure the model on it as well, and vote."""
    from paratrain.commands.task import holdout_commitment

    result, spec = trained["result"], trained["spec"]
    # the requester's data set stands for the holdout: the commitment binds its hash, size and URI
    salt, uri = bytes([7]) * 32, spec.dataset.uri.encode()
    digest, size = bytes.fromhex(spec.dataset.hash), len(trained["requester"].get(spec.dataset.hash))
    task_id = post_task(chain, spec, trained["requester"],
                        holdout_commitment="0x" + holdout_commitment(salt, digest, size, uri).hex())
    attestation = inflated(result.to_attestation(task_id, BOB.ss58_address))
    receipt = claim_and_submit(chain, task_id, attestation)
    daemons = validators["daemons"].values()
    verify_until = events_of(chain, "ResultSubmitted", task_id, receipt.block_number)[0].verify_until
    margin = next(iter(daemons)).config.holdout_margin_ms
    assert verify_until - chain.timestamp.now(at=receipt.block_hash) > margin + 10_000
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not all(str(task_id) in d.state.pending for d in daemons):
        time.sleep(0.2)
    time.sleep(1.0)  # several polls: each looks at the result and waits for the reveal
    assert all(str(task_id) in d.state.pending for d in daemons)
    assert not events_of(chain, "VerdictSubmitted", task_id, receipt.block_number)
    revealed = chain.task_bounties.reveal_holdout(ALICE, task_id, "0x" + salt.hex(), "0x" + digest.hex(), size, uri)
    slashed = wait_for_event(chain, "WorkerSlashed", task_id, revealed.block_number)
    assert slashed.worker == BOB.ss58_address
    for name, vote in votes_on(validators, task_id).items():
        assert vote is not None and [r.split(":")[0] for r in vote["reasons"]] == ["metric"], (name, vote)
        evidence = json.loads(validators["daemons"][name].store.get(vote["evidence_hash"]))
        [holdout] = [c for c in evidence["checks"] if c["name"] == "holdout"]
        assert holdout["ok"] and "skipped" not in holdout["detail"] and holdout["detail"]["uri"] == uri.decode()


def test_honest_result_is_accepted_paid_and_registered(chain, trained, validators):
    result, spec = trained["result"], trained["spec"]
    task_id = post_task(chain, spec, trained["requester"])
    attestation = result.to_attestation(task_id, BOB.ss58_address)
    receipt = claim_and_submit(chain, task_id, attestation)
    bob_before = chain.system.account(BOB.ss58_address).data.free
    val_before = {k.ss58_address: chain.system.account(k.ss58_address).data.free for k in (CHARLIE, DAVE)}
    alice_reserved = chain.system.account(ALICE.ss58_address).data.reserved
    accepted = wait_for_event(chain, "TaskAccepted", task_id, receipt.block_number)
    assert accepted.worker == BOB.ss58_address and accepted.model_hash.hex() == result.model_hash
    # the bounty: 90% to the worker, 10% split between the two accepting validators
    assert accepted.validator_reward == BOUNTY // 10 // 2
    assert accepted.worker_reward == BOUNTY - 2 * accepted.validator_reward
    assert chain.system.account(BOB.ss58_address).data.free == bob_before + accepted.worker_reward
    assert chain.system.account(ALICE.ss58_address).data.reserved < alice_reserved
    verdicts = events_of(chain, "VerdictSubmitted", task_id, receipt.block_number)
    assert len(verdicts) == 2 and all(v.verdict.accept for v in verdicts)
    for v in verdicts:  # each validator: reward in, its verdict fee out
        assert v.verdict.measured_metric == dict(attestation.metrics)[b"accuracy"]
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
    assert state["last_block"] >= 1 and not state["pending"] and len(state["voted"]) == 3
    head = chain.finalized_number()
    restarted = ValidatorDaemon(daemon.config)
    votes = Recorder(maxlen=100, only={"vote"})
    restarted.subscribe(votes)
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
    assert votes.of("vote") == [] and restarted.votes_cast == 0 and restarted.exit_code == 0
    assert restarted.state.voted == state["voted"]
    for key in state["voted"]:
        task_id = int(key.split(":")[0])
        assert chain.task_bounties.verdicts(task_id, CHARLIE.ss58_address) is None  # resolved, cleared on chain
        voters = [v.validator for v in events_of(chain, "VerdictSubmitted", task_id)]
        assert voters.count(CHARLIE.ss58_address) == 1


# Challenge period -------------------------------------------------------------------------------------------
HONEST = ("Charlie", "Dave", "Ferdie")


@contextlib.contextmanager
def market(period_ms: int, honest: tuple[str, ...], tmp_path_factory, trusted: tuple[str, ...]):
    """A devnet with a challenge period: //Bob a Trainer; //Eve, //Charlie, //Dave, //Ferdie Validators, a
    ValidatorDaemon for each of `honest`."""
    with DevnetProcess("--challenge-period-ms", str(period_ms)) as node, \
            Chain.connect(node.ws_url, timeout=10) as chain:
        chain.workers.register(BOB, "Trainer", 1_000 * UNIT, CAPS)
        for validator in (CHARLIE, DAVE, FERDIE, EVE):
            chain.workers.register(validator, "Validator", 100 * UNIT, CAPS)
        with running_validators(chain, honest, tmp_path_factory, trusted) as running:
            yield SimpleNamespace(chain=chain, daemons=running["daemons"], recorders=running["recorders"])


@pytest.fixture(scope="module")
def short_period(trained, tmp_path_factory):
    with market(3_000, ("Charlie", "Dave"), tmp_path_factory, stores_of(trained)) as m:
        yield m


@pytest.fixture(scope="module")
def long_period(trained, tmp_path_factory):
    with market(60_000, HONEST, tmp_path_factory, stores_of(trained)) as m:
        yield m


def fee_paid(chain: Chain, block: int, who: str) -> int:
    return sum(int(r.event.actual_fee) for r in chain.events_at(chain.block_hash(block))
               if r.event.name == "TransactionFeePaid" and r.event.who == who)


def test_challenge_period_honest_result_approved_then_finalized_by_the_worker(short_period, trained):
    chain, daemons, recorders = short_period.chain, short_period.daemons, short_period.recorders
    result = trained["result"]
    task_id = post_task(chain, trained["spec"], trained["requester"])
    receipt = claim_and_submit(chain, task_id, result.to_attestation(task_id, BOB.ss58_address))
    approved = wait_for_event(chain, "ResultApproved", task_id, receipt.block_number)
    assert approved.worker == BOB.ss58_address
    assert sorted(chain.task_bounties.results(task_id).approved_by) == sorted([CHARLIE.ss58_address,
                                                                               DAVE.ss58_address])
    assert not events_of(chain, "TaskAccepted", task_id)  # escrowed until the period is over

    # the worker's side, as its daemon runs it between assignment polls
    payouts = Payouts(chain, BOB)
    payouts.track(task_id)
    bob_before = chain.system.account(BOB.ss58_address).data.free
    deadline = time.monotonic() + 60
    while not payouts.paid and time.monotonic() < deadline:
        payouts.settle()
        time.sleep(0.2)
    [paid] = payouts.paid
    assert paid["task_id"] == task_id and paid["finalized"], paid  # an idle chain: the worker paid itself
    [accepted] = events_of(chain, "TaskAccepted", task_id)
    paid_at = chain.timestamp.now(at=chain.block_hash(paid["block"]))
    assert paid_at >= approved.challenge_until
    assert accepted.worker_reward == paid["worker_reward"] == BOUNTY - 2 * (BOUNTY // 10 // 2)
    fee = fee_paid(chain, paid["block"], BOB.ss58_address)
    assert chain.system.account(BOB.ss58_address).data.free == bob_before + accepted.worker_reward - fee
    assert chain.models.models("0x" + result.model_hash).task_id == task_id
    # nobody challenged: each approver, told of the approval, declined to challenge what it accepted
    assert not events_of(chain, "ResultChallenged", task_id)
    for name in daemons:
        assert [v["round"] for v in recorders[name].of("vote") if v["task_id"] == task_id] == ["first"], name
        assert any("never challenges a result it accepted" in s["reason"]
                   for s in recorders[name].of("abstained") if s["task_id"] == task_id), \
            (name, recorders[name].of("abstained"))


def test_a_lazy_approval_is_challenged_and_the_challenge_upheld(long_period, trained):
    chain, daemons, recorders = long_period.chain, long_period.daemons, long_period.recorders
    result = trained["result"]
    task_id = post_task(chain, trained["spec"], trained["requester"], validators_required=1)
    attestation = inflated(result.to_attestation(task_id, BOB.ss58_address))
    claimed = dict(attestation.metrics)[b"accuracy"]
    accounts = {name: Keypair.create_from_uri(f"//{name}").ss58_address for name in HONEST}
    before = {name: chain.system.account(a).data for name, a in accounts.items()}
    stake_before = chain.workers.workers(BOB.ss58_address).stake
    receipt = claim_and_submit(chain, task_id, attestation)
    # //Eve approves at once, without any check: the quorum of one is reached
    chain.task_bounties.submit_verdict(EVE, task_id, t.Verdict(True, claimed, "0x" + "00" * 32))
    approved = wait_for_event(chain, "ResultApproved", task_id, receipt.block_number)
    assert chain.task_bounties.results(task_id).approved_by == [EVE.ss58_address]
    started = time.monotonic()
    challenged = wait_for_event(chain, "ResultChallenged", task_id, receipt.block_number, timeout=180)
    upheld = wait_for_event(chain, "ChallengeUpheld", task_id, receipt.block_number, timeout=180)
    print(f"approved -> challenged -> upheld in {time.monotonic() - started:.1f} s")
    challenger = next(name for name, a in accounts.items() if a == challenged.challenger)
    assert upheld.challenger == challenged.challenger
    [slashed] = events_of(chain, "WorkerSlashed", task_id, receipt.block_number)
    assert slashed.worker == BOB.ss58_address and slashed.amount > 0
    assert chain.workers.workers(BOB.ss58_address).stake == stake_before - slashed.amount
    assert events_of(chain, "TaskReopened", task_id, receipt.block_number)
    assert not events_of(chain, "TaskAccepted", task_id)
    # the challenge round: the challenger's reject (its challenge) and the two others' rejects (quorum 3)
    round_votes = [v for v in events_of(chain, "VerdictSubmitted", task_id, receipt.block_number)
                   if v.validator != EVE.ss58_address]
    assert sorted(v.validator for v in round_votes) == sorted(a for n, a in accounts.items() if n != challenger)
    assert not any(v.verdict.accept for v in round_votes)
    # the challenger's deposit came back, and it had its share of the slash
    after = chain.system.account(challenged.challenger).data
    assert after.reserved == before[challenger].reserved
    assert after.free > before[challenger].free + 30 * UNIT  # a third of half the 200 PARA slash, less fees
    [submitted] = events_of(chain, "ResultSubmitted", task_id, receipt.block_number)
    key = f"{task_id}:{as_hex(submitted.attestation_hash)}:challenge"  # never twice in this round
    for name, daemon in daemons.items():
        votes = [v for v in recorders[name].of("vote") if v["task_id"] == task_id]
        assert [v["round"] for v in votes] == ["challenge"] and not votes[0]["accept"], (name, votes)
        assert bool(votes[0].get("challenge")) == (name == challenger)
        assert [r.split(":")[0] for r in votes[0]["reasons"]] == ["metric"]
        assert daemon.state.voted[key]["evidence_hash"] == votes[0]["evidence_hash"], name
        evidence = json.loads(daemon.store.get(votes[0]["evidence_hash"]))
        assert not evidence["accept"] and evidence["measured_metric"] < claimed
    assert chain.task_bounties.results(task_id) is None and approved.worker == BOB.ss58_address
