"""A SecAgg+ federated task run by the aggregator's own ServerApp and the data owners' own ClientApp: the code
`paratrain worker` and `paratrain client` run, in Flower's simulation on Ray, over the in-process devnet.

Four data owners on Dirichlet(2) digits shards join a task posted as `paratrain fl create --secagg` posts it
(create_secagg_task, the spec document's secagg object, half of each round audited). The aggregator's `serve`
sees the secagg object and runs each round through Flower's SecAgg+ workflow (workers/fl/secagg_serve.py); each
client's deployed ClientApp routes the stages into Flower's secaggplus_mod, trains on its shard, clips, commits,
signs and keeps its reveal document (workers/fl/secagg_node.py). On every committed round the other parties act
as their daemons do: each client settles its kept reveal (published only if the chain drew it,
workers/fl/secagg_reveal.py), then the validator's round judge votes once the audit is settled.

What it shows: every round committed and accepted, every audited client revealed and passed, every undrawn
client's reveal document deleted without leaving its machine, nobody slashed, every client paid, and the model
learning (the validator's measured accuracy of the last round at least 0.9).
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from fl_simulation import REQUESTER, client_node, judging, post_task, register_parties, run_tasks
from memory_chain import memory_chain

from devnet.rpc.inprocess import InProcessNode
from runtime_bindings import Chain, Keypair
from workers.artifacts import ArtifactStore
from workers.fl.client_tasks import kept_reveals
from workers.fl.secagg_params import SecAggParams
from workers.fl.secagg_reveal import RevealState, settle_reveal
from workers.fl.secagg_task import SecAggTask
from workers.fl.spec import build_spec

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

CLIENTS, ROUNDS = 4, 2
CLIENT_KEYS = [Keypair.create_from_uri(f"//SecAggTaskClient{i}") for i in range(CLIENTS)]


@dataclass
class Run:
    chain: Chain
    task_id: int = 0
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    reveals: list[tuple[int, str, RevealState]] = field(default_factory=list)   # (round, account, outcome)
    left_behind: list[int] = field(default_factory=list)                       # kept documents after each round


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    from workers.fl.partition import federated_split

    root = tmp_path_factory.mktemp("secagg-task")
    split = federated_split("digits", CLIENTS, alpha=2.0, seed=3)
    store = ArtifactStore(root / "store")   # one machine: the parties read each other's objects by hash
    secagg = SecAggTask(SecAggParams(), update_norm_bound=30.0, audit_rate=500_000_000)
    spec = build_spec(recipe="digits_mlp", rule="fedavg", rounds=ROUNDS, min_clients_per_round=CLIENTS, seed=5,
                      hyperparameters={"local_epochs": 10, "lr": 0.02}, round_timeout_s=600.0, secagg=secagg)
    with InProcessNode() as node, memory_chain(node) as chain:
        world = Run(chain)
        register_parties(chain, CLIENT_KEYS)
        world.task_id = post_task(chain, store, spec, CLIENT_KEYS, split.shards, split.holdout)
        nodes = [client_node(root / f"client-{i}", key, shard, [(world.task_id, spec)])
                 for i, (key, shard) in enumerate(zip(CLIENT_KEYS, split.shards, strict=True))]
        validate = judging(lambda: memory_chain(node), store, split.holdout, world.events)
        owners = memory_chain(node)

        def data_owners_then_validator(what: str, detail: dict[str, Any]) -> None:
            if what != "round-committed":
                return
            for key, state in zip(CLIENT_KEYS, nodes, strict=True):   # what each client daemon does every poll
                for task_id, round_, path in kept_reveals(state.state_dir):
                    outcome = settle_reveal(owners, key, store, task_id, round_, path.read_bytes())
                    assert outcome.final, outcome
                    world.reveals.append((round_, key.ss58_address, outcome))
                    path.unlink()
            world.left_behind.append(sum(len(kept_reveals(n.state_dir)) for n in nodes))
            validate(what, detail)

        run_tasks(lambda: memory_chain(node), store, [world.task_id], nodes, (data_owners_then_validator,))
        yield world


def test_every_round_is_committed_and_accepted(run: Run) -> None:
    task = run.chain.federated_tasks.tasks(run.task_id)
    assert (int(task.last_committed), int(task.last_accepted)) == (ROUNDS, ROUNDS)
    assert task.status.VARIANT == "Completed"
    for round_ in range(1, ROUNDS + 1):
        record = run.chain.federated_tasks.rounds(run.task_id, round_)
        assert len(record.participants) == CLIENTS


def test_half_of_each_round_is_audited_and_passes_and_the_rest_stays_private(run: Run) -> None:
    for round_ in range(1, ROUNDS + 1):
        audit = run.chain.federated_tasks.audits(run.task_id, round_)
        drawn = {str(a) for a in audit.drawn}
        assert len(drawn) == CLIENTS // 2 and int(audit.revealed) == len(drawn)
        outcomes = {account: outcome for r, account, outcome in run.reveals if r == round_}
        assert outcomes == {k.ss58_address: RevealState.REVEALED if k.ss58_address in drawn
                            else RevealState.NOT_DRAWN for k in CLIENT_KEYS}
    assert run.left_behind == [0] * ROUNDS


def test_nobody_is_slashed_every_client_is_paid_and_the_model_learns(run: Run) -> None:
    fl = run.chain.federated_tasks
    for key in CLIENT_KEYS:
        info = fl.clients(run.task_id, key.ss58_address)
        assert int(info.rounds_rejected) == 0 and int(info.paid) > 0 and int(info.rounds_paid) == ROUNDS
    verdict = fl.round_verdicts(run.task_id, ROUNDS, Keypair.create_from_uri("//Charlie").ss58_address)
    assert verdict.accept and list(verdict.rejected_clients) == []
    assert int(verdict.measured_metric) / 1e6 >= 0.9   # plain FedAvg of the same clipped updates: 0.955
    assert fl.tasks(run.task_id).requester == REQUESTER.ss58_address
