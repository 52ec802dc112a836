"""Private bounty tasks under attack, end to end on one devnet process: the requester's privacy budget, real
DP-SGD runs (Opacus in workers.engine), the worker's submission path (workers.daemon.dp_claim_of_card, the DP
signature, submit_private_result) and two real ValidatorDaemon threads (Q = 2 segment replays, which re-run the
clipping and the keyed noise, and the claim recomputed with Opacus's accountant).

The cast (dev keys): //Alice owns the digits data set's budget and requests; //Bob trains honestly; //Eve cheats;
//Charlie and //Dave validate (both must vote: validators_required 2). Every task is one DP run of digits_mlp
(2 epochs, 44 Poisson-sampled steps, 4 checkpoints) with its own seed and its own secret noise key.

* (a) an honest run, submitted by the worker daemon's own code (workers.daemon.WorkerDaemon._result_call and
  _send), is accepted: the budget's spent epsilon is exactly the claim and the rest of the cap's reservation
  goes back (PrivacyBudgets.BudgetSpent);
* (b) noise skipped (noise multiplier 0 in the engine) and (c) clipping skipped (a huge clipping norm, the
  spec's noise): their claims are the honest claims of the spec, but the replayed segments differ -> rejected
  by both validators, Eve slashed, the task reopened with its reservation kept;
* (d) epsilon claimed 2 % under the recomputation -> rejected on the claim alone (the run itself is honest),
  slashed; (e) 0.5 % under -> accepted, and the smaller claim is what is spent;
* the worker daemon refuses, before claiming, a task whose spec document's terms are not the chain's DpSpec;
* no honest party (Bob, Charlie, Dave, Alice) is slashed anywhere; after every step spent + reserved stays
  within the budget, and a task whose cap exceeds what remains is refused with BudgetExceeded.
"""
from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

pytest.importorskip("opacus")

from dp_forgeries import NoClipping, NoNoise, cheating_engine

from paratrain.task_specs import dp_privacy, post_private_task
from runtime_bindings import AttestationCodec, Chain, Keypair
from runtime_bindings.generated import privacy_budgets as pb
from runtime_bindings.generated import types as t
from runtime_bindings.privacy import epsilon_from_chain, epsilon_to_chain, sign_dp_attestation
from workers import ArtifactStore, DatasetRef, Evaluation, Limits, TaskSpec, add_dataset
from workers.daemon import DaemonConfig, WorkerDaemon, dp_claim_of_card
from workers.errors import TaskRefused
from workers.observers import Recorder
from workers.runner import TrainingResult, train_local
from workers.task_run import TaskRun
from workers.uri_policy import UriPolicy

pytestmark = pytest.mark.slow  # DP training runs and validator daemons on a devnet

UNIT = 10**12
BOUNTY = 10 * UNIT
TRAINER_STAKE, VALIDATOR_STAKE = 1_000 * UNIT, 100 * UNIT
PERBILL = 10**9
CAP, DELTA = 3.0, 1e-5
BUDGET = 16.0  # five caps of 3 and one more than what is left at the end
ALICE, BOB, CHARLIE, DAVE, EVE = (Keypair.create_from_uri(f"//{n}") for n in ("Alice", "Bob", "Charlie", "Dave", "Eve"))
HONEST = (ALICE, BOB, CHARLIE, DAVE)


@dataclass
class Market:
    """The devnet, the stores, the data set and its budget, the validator daemons (one per module)."""

    chain: Chain
    requester: ArtifactStore
    worker: ArtifactStore
    dataset: DatasetRef
    sigma: float | None = None
    stakes: dict[str, int] = field(default_factory=dict)
    threads: dict[str, threading.Thread] = field(default_factory=dict)
    crashes: dict[str, str] = field(default_factory=dict)
    votes: dict[str, Recorder] = field(default_factory=dict)

    @property
    def data_hash(self) -> str:
        return "0x" + self.dataset.hash

    def spec(self, seed: int) -> TaskSpec:
        """A private digits spec of its own seed and noise key, its document in the requester's store."""
        spec = TaskSpec(recipe="digits_mlp", dataset=self.dataset, evaluation=Evaluation("accuracy", 0.5),
                        hyperparameters={"epochs": 2, "lr": 0.05}, seed=seed, checkpoint_every=11,
                        limits=Limits(timeout_s=300, memory_mb=1024))
        privacy, self.sigma, _, _ = dp_privacy(spec, self.requester, epsilon=CAP, delta=DELTA, max_grad_norm=1.0,
                                               noise_multiplier=self.sigma, accountant="prv")
        spec = replace(spec, privacy=privacy)
        self.requester.put(spec.canonical_bytes())
        return spec

    def budget(self) -> t.Budget:
        """The budget, checked to be within its promise: spent + reserved never above it."""
        budget = self.chain.privacy_budgets.budgets(self.data_hash)
        assert budget.spent_epsilon + budget.reserved_epsilon <= budget.epsilon == epsilon_to_chain(BUDGET)
        assert budget.spent_delta + budget.reserved_delta <= budget.delta
        return budget

    def votes_on(self, task_id: int) -> dict[str, dict[str, Any]]:
        """Each validator's vote on the task, as its daemon cast it."""
        return {name: next(v for v in reversed(recorder.of("vote")) if v["task_id"] == task_id)
                for name, recorder in self.votes.items()}

    def reasons(self, task_id: int) -> dict[str, list[str]]:
        """Each validator's failed checks in its vote on the task."""
        return {name: list(vote["reasons"]) for name, vote in self.votes_on(task_id).items()}


@pytest.fixture(scope="module")
def market(devnet, tmp_path_factory) -> Iterator[Market]:
    from workers.validator import ValidatorConfig, ValidatorDaemon

    requester = ArtifactStore(tmp_path_factory.mktemp("requester-store"))
    worker = ArtifactStore(tmp_path_factory.mktemp("worker-store"), policy=UriPolicy((requester.root,)))
    with Chain.connect(devnet.ws_url, timeout=10) as chain:
        for who in (BOB, EVE):
            chain.workers.register(who, "Trainer", TRAINER_STAKE, t.Capabilities(2, 0, "", 8_000))
        for who in (CHARLIE, DAVE):
            chain.workers.register(who, "Validator", VALIDATOR_STAKE, t.Capabilities(2, 0, "", 8_000))
        m = Market(chain, requester, worker, DatasetRef(*add_dataset("digits", requester)))
        chain.privacy_budgets.set_budget(ALICE, m.data_hash, epsilon_to_chain(BUDGET), 10**12)  # delta 1e-3
        m.stakes = {k.ss58_address: chain.workers.workers(k.ss58_address).stake for k in (BOB, CHARLIE, DAVE, EVE)}
        daemons = {}
        for name in ("Charlie", "Dave"):
            config = ValidatorConfig(chain_url=devnet.ws_url, key=f"//{name}",
                                     store=str(tmp_path_factory.mktemp(f"{name}-store")),
                                     trusted_stores=(requester.root, worker.root),
                                     state_dir=str(tmp_path_factory.mktemp(f"{name}-state")), spot_checks=2,
                                     from_block=chain.finalized_number(), poll_interval_s=0.2)
            daemons[name] = ValidatorDaemon(config)
            m.votes[name] = Recorder(maxlen=1_000, only={"vote"})
            daemons[name].subscribe(m.votes[name])

            def run(daemon: Any = daemons[name], name: str = name) -> None:
                try:
                    daemon.run()
                except BaseException:  # noqa: BLE001 - a crash is a finding: recorded for the test to report
                    m.crashes[name] = traceback.format_exc()
            m.threads[name] = threading.Thread(target=run, name=f"validator-{name}", daemon=True)
            m.threads[name].start()
        try:
            yield m
        finally:
            for name, daemon in daemons.items():
                daemon.stop()
                m.threads[name].join(60)


def events_of(chain: Chain, since: int, pallet: str, task_id: int) -> list[Any]:
    found = []
    for number in range(since, chain.best_number() + 1):
        for record in chain.events_at(chain.block_hash(number)):
            ev = record.event
            if ev.pallet == pallet and task_id in (getattr(ev, "task_id", None), getattr(ev, "task", None)):
                found.append(ev)
    return found


def outcome(m: Market, task_id: int, since: int, timeout: float = 120) -> Any:
    """TaskAccepted or WorkerSlashed for the task; fails at once if a validator daemon died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [e for e in events_of(m.chain, since, "TaskBounties", task_id)
                 if e.name in ("TaskAccepted", "WorkerSlashed")]
        if found:
            return found[0]
        if m.crashes:
            raise AssertionError("validator daemons died: "
                                 + "".join(f"\n--- {n}:\n{tb}" for n, tb in m.crashes.items()))
        time.sleep(0.3)
    raise AssertionError(f"task {task_id}: no verdict within {timeout} s")


def worker_daemon(m: Market) -> WorkerDaemon:
    """Bob's worker daemon on the test's chain connection and store (no orchestrator: it sends to the node)."""
    daemon = WorkerDaemon(DaemonConfig(orchestrator="127.0.0.1:1", chain_url="ws://unused", key="//Bob"),
                          keypair=BOB, store=m.worker)
    daemon.chain = m.chain
    return daemon


def attempt(m: Market, seed: int, worker: Keypair, *, cheat: type | None = None,
            under: float = 0.0) -> tuple[int, int, Any, t.DpClaim]:
    """Post a private task, train it (with a cheating optimizer when `cheat`), claim, submit the claim
    (epsilon `under` the run's own when given) signed with the attestation: (task, block posted, outcome,
    claim)."""
    spec = m.spec(seed)
    before = m.budget()
    since = m.chain.best_number()
    task_id, _ = post_private_task(m.chain, ALICE, spec, m.requester.uri(spec.spec_hash_hex()), bounty=BOUNTY,
                                   validators_required=2)
    assert m.budget().reserved_epsilon == before.reserved_epsilon + epsilon_to_chain(CAP)
    if cheat is None:
        result: TrainingResult = train_local(spec, m.worker)
    else:
        with cheating_engine(cheat):
            result = train_local(spec, m.worker)
    claim = dp_claim_of_card(m.worker, result.card_hash)
    if under:
        claim = replace(claim, epsilon=epsilon_to_chain(epsilon_from_chain(claim.epsilon) * (1 - under)))
    attestation = result.to_attestation(task_id, worker.ss58_address)
    m.chain.task_bounties.claim_task(worker, task_id)
    if worker is BOB and not under:  # the daemon's own submission: its choice of call, claim and signature
        daemon = worker_daemon(m)
        call, _ = daemon._result_call(task_id, attestation, result)
        assert call.CALL == "submit_private_result" and call.claim == claim
        daemon._send(task_id, call, call.CALL, relay=False)
    else:
        signature = sign_dp_attestation(AttestationCodec.from_chain(m.chain).encode(attestation), claim, worker)
        m.chain.task_bounties.submit_private_result(worker, task_id, attestation, claim, signature)
    assert m.chain.privacy_budgets.bounty_claims(task_id) == claim
    return task_id, since, outcome(m, task_id, since), claim


def assert_accepted(m: Market, task_id: int, since: int, verdict: Any, claim: t.DpClaim, spent_before: int) -> None:
    """Accepted and paid; exactly the claim spent, the rest of the cap released."""
    assert verdict.name == "TaskAccepted" and verdict.worker == BOB.ss58_address
    [spent] = [e for e in events_of(m.chain, since, "PrivacyBudgets", task_id) if e.name == "BudgetSpent"]
    assert (spent.epsilon, spent.released_epsilon) == (claim.epsilon, epsilon_to_chain(CAP) - claim.epsilon)
    budget = m.budget()
    assert budget.spent_epsilon == spent_before + claim.epsilon and spent.remaining_epsilon == (
        budget.epsilon - budget.spent_epsilon - budget.reserved_epsilon)
    assert isinstance(m.chain.task_bounties.tasks(task_id).status, t.TaskStatus.Accepted)


def assert_slashed(m: Market, task_id: int, since: int, verdict: Any, reserved_before: int, why: str) -> None:
    """Both validators rejected, naming `why`; Eve slashed; the task reopened with its reservation kept."""
    assert verdict.name == "WorkerSlashed" and verdict.worker == EVE.ss58_address and verdict.amount > 0
    reasons = m.reasons(task_id)
    assert all(any(why in r for r in rs) for rs in reasons.values()), reasons
    events = events_of(m.chain, since, "TaskBounties", task_id)
    assert {e.validator for e in events if e.name == "VerdictSubmitted" and not e.verdict.accept} == {
        CHARLIE.ss58_address, DAVE.ss58_address}
    assert any(e.name == "TaskReopened" for e in events) and not any(e.name == "TaskAccepted" for e in events)
    assert m.budget().reserved_epsilon == reserved_before  # the next attempt needs the reservation
    assert m.chain.privacy_budgets.bounty_claims(task_id) is None  # the wrong claim is dropped


def test_a_worker_refuses_a_task_whose_document_is_not_the_chains_terms(market: Market) -> None:
    """The daemon's check before claiming: a document whose sigma is not the on-chain DpSpec's is refused."""
    from paratrain.task_specs import chain_dp_spec, chain_task_spec

    spec = market.spec(37)
    lie = replace(chain_dp_spec(spec.privacy), noise_multiplier=chain_dp_spec(spec.privacy).noise_multiplier + 1)
    receipt = market.chain.task_bounties.create_private_task(
        ALICE, chain_task_spec(spec, market.requester.uri(spec.spec_hash_hex())), lie, BOUNTY, 0,
        market.chain.best_number() + 500, 2, None)
    task_id = next(int(e.task_id) for e in receipt.events if e.name == "TaskCreated")
    with pytest.raises(TaskRefused, match="privacy terms are not the task's on chain: noise_multiplier"):
        worker_daemon(market)._verify(TaskRun(task_id))
    market.chain.task_bounties.cancel_task(ALICE, task_id)  # its reservation goes back


def test_a_honest_dp_run_is_accepted_and_spends_its_claim(market: Market) -> None:
    spent = market.budget().spent_epsilon
    task_id, since, verdict, claim = attempt(market, 31, BOB)
    assert 0.99 * CAP < epsilon_from_chain(claim.epsilon) <= CAP  # sigma derived for the cap
    assert_accepted(market, task_id, since, verdict, claim, spent)


@pytest.mark.parametrize("cheat", [NoNoise, NoClipping], ids=["noise-skipped", "clipping-skipped"])
def test_b_c_a_run_without_noise_or_clipping_fails_the_replay(market: Market, cheat: type) -> None:
    reserved = market.budget().reserved_epsilon
    task_id, since, verdict, claim = attempt(market, 32 if cheat is NoNoise else 33, EVE, cheat=cheat)
    assert 0.99 * CAP < epsilon_from_chain(claim.epsilon) <= CAP  # the claim looks right
    assert_slashed(market, task_id, since, verdict, reserved + epsilon_to_chain(CAP),
                   "the replayed checkpoint differs")


def test_d_epsilon_two_percent_under_is_rejected(market: Market) -> None:
    reserved = market.budget().reserved_epsilon
    task_id, since, verdict, _ = attempt(market, 34, EVE, under=0.02)
    assert_slashed(market, task_id, since, verdict, reserved + epsilon_to_chain(CAP), "dp_claim: epsilon:")
    # the run itself is honest: its segments were replayed and reproduced, only the claim is wrong
    assert all(len(rs) == 1 for rs in market.reasons(task_id).values()), market.reasons(task_id)
    assert all(v["segments"] for v in market.votes_on(task_id).values())


def test_e_epsilon_half_a_percent_under_is_accepted(market: Market) -> None:
    spent = market.budget().spent_epsilon
    task_id, since, verdict, claim = attempt(market, 35, BOB, under=0.005)
    assert_accepted(market, task_id, since, verdict, claim, spent)  # what is spent is the (smaller) claim


def test_no_honest_party_is_slashed_and_the_budget_holds(market: Market) -> None:
    chain = market.chain
    for who in (BOB, CHARLIE, DAVE):
        assert chain.workers.workers(who.ss58_address).stake == market.stakes[who.ss58_address]
    assert chain.workers.workers(EVE.ss58_address).stake < market.stakes[EVE.ss58_address]
    for number in range(chain.best_number() + 1):
        for record in chain.events_at(chain.block_hash(number)):
            ev = record.event
            if ev.name in ("WorkerSlashed", "ApproverSlashed"):
                assert getattr(ev, "worker", getattr(ev, "validator", None)) not in {k.ss58_address for k in HONEST}
    budget = market.budget()
    left = budget.epsilon - budget.spent_epsilon - budget.reserved_epsilon
    assert 0 <= left < epsilon_to_chain(CAP)
    spec = market.spec(36)
    with pytest.raises(pb.BudgetExceeded):
        post_private_task(chain, ALICE, spec, market.requester.uri(spec.spec_hash_hex()), bounty=BOUNTY)
    assert market.budget() == budget
