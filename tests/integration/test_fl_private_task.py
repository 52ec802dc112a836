"""A private federated task run by the aggregator's own ServerApp and the data owners' own ClientApp, in Flower's
simulation on Ray over the in-process devnet: local DP-SGD on every client, each paid from its own budget.

Four data owners set a privacy budget for their shard and join a task posted with create_private_task (Opacus PRV,
epsilon cap 10 per client, delta 1e-5, clipping 1.0, noise 1.1). Each round, each client trains with DP-SGD
(workers/fl/dp_local.py) and signs its update with its cumulative claim; the aggregator commits the round with
commit_private_round; the validator's round judge recomputes every claim. Client 3 halves the epsilon of its claim
before signing it (``dp-underreport``): the pallet cannot tell (the claim is within the cap and of the task's
mechanism), the validator can.

What it shows: both rounds committed and accepted; the under-reporter rejected and slashed in each round, no
honest client ever; each client's budget spent exactly its last claimed (cumulative) epsilon, the rest of the cap
still reserved until it takes its stake back; and the model learning under DP (well above chance).
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from fl_simulation import VALIDATOR, client_node, judging, post_task, register_parties, run_tasks
from memory_chain import memory_chain

from devnet.rpc.inprocess import InProcessNode
from runtime_bindings import Chain, Keypair
from workers.artifacts import ArtifactStore
from workers.fl.dp_task import FlDp
from workers.fl.spec import build_spec

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

CLIENTS, ROUNDS, CHEAT = 4, 2, 3
CLIENT_KEYS = [Keypair.create_from_uri(f"//FlPrivateClient{i}") for i in range(CLIENTS)]
DP = FlDp(accountant="prv", epsilon=10.0, delta=1e-5, max_grad_norm=1.0, noise_multiplier=1.1)


@dataclass
class Run:
    chain: Chain
    task_id: int = 0
    hashes: list[str] = field(default_factory=list)
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    from workers.fl.partition import federated_split

    root = tmp_path_factory.mktemp("private-task")
    split = federated_split("digits", CLIENTS, alpha=5.0, seed=4)
    store = ArtifactStore(root / "store")
    spec = build_spec(recipe="digits_mlp", rule="fedavg", rounds=ROUNDS, min_clients_per_round=CLIENTS, seed=2,
                      hyperparameters={"local_epochs": 2, "lr": 0.1, "batch_size": 32}, round_timeout_s=600.0, dp=DP)
    with InProcessNode() as node, memory_chain(node) as chain:
        world = Run(chain, hashes=[s.hash for s in split.shards])
        register_parties(chain, CLIENT_KEYS)
        world.task_id = post_task(chain, store, spec, CLIENT_KEYS, split.shards, split.holdout)
        nodes = [client_node(root / f"client-{i}", key, shard, [(world.task_id, spec)],
                             "dp-underreport" if i == CHEAT else None)
                 for i, (key, shard) in enumerate(zip(CLIENT_KEYS, split.shards, strict=True))]
        validate = judging(lambda: memory_chain(node), store, split.holdout, world.events)
        run_tasks(lambda: memory_chain(node), store, [world.task_id], nodes, (validate,))
        yield world


def test_every_round_is_committed_with_claims_and_accepted(run: Run) -> None:
    privacy = run.chain.privacy_budgets
    task = run.chain.federated_tasks.tasks(run.task_id)
    assert (int(task.last_committed), int(task.last_accepted)) == (ROUNDS, ROUNDS)
    for round_ in range(1, ROUNDS + 1):
        claims = [privacy.federated_claims(run.task_id, round_, k.ss58_address) for k in CLIENT_KEYS]
        assert all(c is not None and int(c.steps) > 0 for c in claims)
        honest = [int(c.epsilon) for i, c in enumerate(claims) if i != CHEAT]
        assert min(honest) > 0 and int(claims[CHEAT].epsilon) < min(honest)   # it halved its own
    first, second = (privacy.federated_claims(run.task_id, r, CLIENT_KEYS[0].ss58_address) for r in (1, 2))
    assert int(second.steps) == 2 * int(first.steps) and int(second.epsilon) > int(first.epsilon)  # cumulative


def test_the_under_reporter_alone_is_rejected_and_slashed(run: Run) -> None:
    fl = run.chain.federated_tasks
    cheat = CLIENT_KEYS[CHEAT].ss58_address
    for round_ in range(1, ROUNDS + 1):
        verdict = fl.round_verdicts(run.task_id, round_, VALIDATOR.ss58_address)
        assert verdict.accept and [str(c) for c in verdict.rejected_clients] == [cheat]
    votes = [d for what, d in run.events if what == "round-vote"]
    assert votes and all(any("DP claim: epsilon" in r for r in v["reasons"]) for v in votes)
    for i, key in enumerate(CLIENT_KEYS):
        info = fl.clients(run.task_id, key.ss58_address)
        if i == CHEAT:
            assert int(info.rounds_rejected) == ROUNDS and int(info.paid) == 0
        else:
            assert int(info.rounds_rejected) == 0 and int(info.paid) > 0


def test_each_budget_spent_its_last_cumulative_claim_and_holds_the_rest(run: Run) -> None:
    privacy = run.chain.privacy_budgets
    cap = int(privacy.federated_privacy(run.task_id).epsilon_cap)
    for key, digest in zip(CLIENT_KEYS, run.hashes, strict=True):
        budget = privacy.budgets("0x" + digest)
        last = int(privacy.federated_claims(run.task_id, ROUNDS, key.ss58_address).epsilon)
        assert int(budget.spent_epsilon) == last and int(budget.reserved_epsilon) == cap - last
        assert int(budget.spent_epsilon) + int(budget.reserved_epsilon) <= int(budget.epsilon)


def test_the_model_learns_under_dp(run: Run) -> None:
    verdict = run.chain.federated_tasks.round_verdicts(run.task_id, ROUNDS, VALIDATOR.ss58_address)
    # chance is 0.10; DP-SGD on four shards of ~360 examples learns slowly (0.38 measured after 2 rounds)
    assert int(verdict.measured_metric) / 1e6 >= 0.25
