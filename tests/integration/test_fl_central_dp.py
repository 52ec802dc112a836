"""Central DP for federated tasks, run by the aggregator's own ServerApp with Flower's fixed-clipping wrappers and
the data owners' own ClientApp, in Flower's simulation on Ray over the in-process devnet.

Four data owners set a privacy budget for their shard and join three tasks posted with create_central_dp_task
(PRV, each client's epsilon cap 6.6 for the task, delta 1e-5, clipping 0.5, noise 1.0, two rounds):

* "server": Flower's DifferentialPrivacyServerSideFixedClipping clips every update and noises the mean;
* "client": DifferentialPrivacyClientSideFixedClipping sends the norm, each client clips with fixedclipping_mod;
* "skipped": the server-side wrapper, but the aggregator leaves the noise out (Flower's noise function made a
  no-op for this task) while claiming it, as a cheat would to hand out a more accurate model.

What it shows: the honest tasks' rounds committed with the aggregator's cumulative claim and accepted, the
validator's recomputation of clip + mean + seeded noise matching the committed model bit for bit; each client's
budget spent exactly the last round's claim; the client-clipped updates within the norm; the skipped-noise round
rejected and the aggregator slashed, no client rejected in any task.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from fl_simulation import AGGREGATOR, client_node, judging, post_task, register_parties, run_tasks
from memory_chain import memory_chain

from devnet.rpc.inprocess import InProcessNode
from paratrain.fl_specs import chain_central_dp
from runtime_bindings import Chain, Keypair
from workers.artifacts import ArtifactStore
from workers.fl.arrays import loads
from workers.fl.central_dp import update_norm
from workers.fl.dp_task import FlDp
from workers.fl.spec import build_spec, decode_round_document
from workers.hashing import normalize_hash

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

CLIENTS, ROUNDS = 4, 2
CLIENT_KEYS = [Keypair.create_from_uri(f"//FlCentralClient{i}") for i in range(CLIENTS)]
TERMS = FlDp(accountant="prv", epsilon=6.6, delta=1e-5, max_grad_norm=0.5, noise_multiplier=1.0)
KINDS = ("server", "client", "skipped")


@dataclass
class Run:
    chain: Chain
    store: ArtifactStore
    tasks: dict[str, int] = field(default_factory=dict)
    hashes: list[str] = field(default_factory=list)
    stake_before: int = 0
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


class NoiseSkipper:
    """Flower's add_gaussian_noise_inplace, a no-op while the aggregator serves the cheating task (the strategy's
    "round-started" event says which task a round belongs to)."""

    def __init__(self, real: Any) -> None:
        self.real, self.task, self.current = real, -1, -1

    def observe(self, what: str, detail: dict[str, Any]) -> None:
        if what == "round-started":
            self.current = int(detail["task_id"])

    def __call__(self, arrays: Any, std: float) -> None:
        if self.current != self.task:
            self.real(arrays, std)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    from flwr.serverapp.strategy import dp_fixed_clipping

    from workers.fl.partition import federated_split

    root = tmp_path_factory.mktemp("central-dp")
    split = federated_split("digits", CLIENTS, alpha=5.0, seed=4)
    store = ArtifactStore(root / "store")
    spec = build_spec(recipe="digits_mlp", rule="fedavg", rounds=ROUNDS, min_clients_per_round=CLIENTS, seed=2,
                      hyperparameters={"local_epochs": 2, "lr": 0.1, "batch_size": 32}, round_timeout_s=600.0)
    skipper = NoiseSkipper(dp_fixed_clipping.add_gaussian_noise_inplace)
    with InProcessNode() as node, memory_chain(node) as chain, pytest.MonkeyPatch.context() as patch:
        world = Run(chain, store, hashes=[s.hash for s in split.shards])
        register_parties(chain, CLIENT_KEYS)
        for kind in KINDS:
            clipped_by = "client" if kind == "client" else "server"
            world.tasks[kind] = post_task(chain, store, spec, CLIENT_KEYS, split.shards, split.holdout,
                                          central=chain_central_dp(TERMS, clipped_by))
        skipper.task = world.tasks["skipped"]
        patch.setattr(dp_fixed_clipping, "add_gaussian_noise_inplace", skipper)
        world.stake_before = int(chain.workers.workers(AGGREGATOR.ss58_address).stake)
        nodes = [client_node(root / f"client-{i}", key, shard, [(t, spec) for t in world.tasks.values()])
                 for i, (key, shard) in enumerate(zip(CLIENT_KEYS, split.shards, strict=True))]
        validate = judging(lambda: memory_chain(node), store, split.holdout, world.events)
        run_tasks(lambda: memory_chain(node), store, list(world.tasks.values()), nodes, (skipper.observe, validate),
                  lost=[world.tasks["skipped"]])
        yield world


def votes(run: Run, task: str) -> list[dict[str, Any]]:
    return [d for what, d in run.events if what == "round-vote" and d["task_id"] == run.tasks[task]]


@pytest.mark.parametrize("kind", ["server", "client"])
def test_every_round_is_released_with_its_claim_and_accepted(run: Run, kind: str) -> None:
    fl, privacy, task_id = run.chain.federated_tasks, run.chain.privacy_budgets, run.tasks[kind]
    task = fl.tasks(task_id)
    assert (int(task.last_committed), int(task.last_accepted)) == (ROUNDS, ROUNDS)
    claims = [privacy.central_claims(task_id, r) for r in range(1, ROUNDS + 1)]
    assert [int(c.steps) for c in claims] == [1, 2] and all(int(c.sample_rate) == 10**9 for c in claims)
    assert 0 < int(claims[0].epsilon) < int(claims[1].epsilon) <= int(privacy.federated_central_dp(task_id).epsilon_cap)
    for vote in votes(run, kind):
        assert vote["accept"] and vote["rejected_clients"] == []
    assert len(votes(run, kind)) == ROUNDS


@pytest.mark.parametrize("kind", ["server", "client"])
def test_the_released_model_carries_the_recorded_noise(run: Run, kind: str) -> None:
    """The round document's seed and std: the validator's bitwise recomputation passed (the vote above); here,
    the noise is really there: the committed model is far from the plain mean of the clipped updates."""
    from workers.fl import rules
    from workers.fl.central_dp import clip_model

    record = run.chain.federated_tasks.rounds(run.tasks[kind], 1)
    doc = decode_round_document(run.store.get(normalize_hash(record.round_doc_hash)))
    assert doc.central_dp is not None and doc.central_dp.clipped_by == kind
    assert doc.central_dp.std == pytest.approx(TERMS.noise_multiplier * TERMS.max_grad_norm / CLIENTS)
    base, _ = loads(run.store.get(doc.base_model_hash))
    updates = [loads(run.store.get(h))[0] for h in doc.update_hashes]
    if kind == "client":   # the clients clipped: every signed update is within the norm
        assert max(update_norm(base, u, sorted(base)) for u in updates) <= TERMS.max_grad_norm * (1 + 1e-5)
    committed, _ = loads(run.store.get(doc.global_model_hash))
    mean = rules.weighted_average([clip_model(base, u, TERMS.max_grad_norm, sorted(base)) for u in updates],
                                  [1] * len(updates))
    residual = np.concatenate([(committed[n] - mean[n]).ravel() for n in sorted(base)])
    assert float(np.std(residual)) == pytest.approx(doc.central_dp.std, rel=0.05)


def test_each_budget_spent_the_last_claim_of_each_task(run: Run) -> None:
    privacy = run.chain.privacy_budgets
    honest = [run.tasks["server"], run.tasks["client"]]
    last = sum(int(privacy.central_claims(t, ROUNDS).epsilon) for t in honest)
    for key, digest in zip(CLIENT_KEYS, run.hashes, strict=True):
        budget = privacy.budgets("0x" + digest)
        spent = {t: int(privacy.federated_reservations(t, key.ss58_address).spent_epsilon) for t in honest}
        assert spent == {t: int(privacy.central_claims(t, ROUNDS).epsilon) for t in honest}
        assert int(budget.spent_epsilon) == last   # the skipped-noise round spent nothing
        assert int(budget.spent_epsilon) + int(budget.reserved_epsilon) <= int(budget.epsilon)


def test_the_aggregator_that_skipped_the_noise_is_rejected_and_slashed(run: Run) -> None:
    fl, task_id = run.chain.federated_tasks, run.tasks["skipped"]
    [vote] = votes(run, "skipped")
    assert not vote["accept"] and vote["rejected_clients"] == []
    assert any("recorded seed's noise" in r for r in vote["reasons"]), vote["reasons"]
    assert int(fl.tasks(task_id).last_accepted) == 0
    assert int(run.chain.workers.workers(AGGREGATOR.ss58_address).stake) < run.stake_before
    for key in CLIENT_KEYS:
        assert int(fl.clients(task_id, key.ss58_address).rounds_rejected) == 0
