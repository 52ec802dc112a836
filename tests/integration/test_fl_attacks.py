"""The 30 % Byzantine matrix: 13 data owners on non-IID digits, 4 of them poisoning, under four rules, on chain.

Everything is the real thing but the processes: Flower's simulation on Ray (one simulation for the module,
since Flower's RayBackend ends each with ``ray.shutdown()``), the aggregator's ServerApp (`serve`:
ChainStrategy around Flower's FedAvg, FedMedian, FedTrimmedAvg(0.35), MultiKrum(f=4, m=7)), the data owners'
ClientApp with the attack mod, the devnet runtime behind the in-process node through the bindings, and a
validator's round judge (workers/fl/judge.py) voting on every committed round with the revealed holdout.

Eight tasks on one chain and one SuperLink: each rule once over a clean population and once over a population
whose clients 0, 3, 6 and 9 run sign-flip, scale:1000, flip-labels and free-rider (4 of 13 = 30.8 %), on a
Dirichlet(2) split of the digits (non-IID; at alpha 1 losing the four Byzantine shards' data alone cost the
robust rules 3 to 5 points: FedTrimmedAvg 0.934 -> 0.889). Krum is MultiKrum(f=4, m=7): Flower's Krum keeps
one client's model, which on non-IID shards swings by up to 8 points with the client seeds alone (0.895 ->
0.812 in a pure re-run), so a 3-point bar would measure luck; MultiKrum averages the 7 best-scored updates.
Accuracy is the validator's measured metric of each task's last committed round. The issue's thresholds:
FedAvg attacked loses at least 20 points against FedAvg clean; each robust rule attacked stays within 3
points of the same rule clean. Money: no Byzantine client earns anything in any task, the sign-flip and
x1000 clients are rejected by the quorum and slashed, and no honest client is ever slashed.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from fl_simulation import (
    STAKE,
    VALIDATOR,
    client_node,
    judging,
    post_task,
    register_parties,
    run_tasks,
)
from memory_chain import memory_chain

from devnet.rpc.inprocess import InProcessNode
from runtime_bindings import Chain, Keypair
from workers.artifacts import ArtifactStore
from workers.fl.spec import FlSpec, build_spec
from workers.observers import Recorder

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]  # one simulation: 8 tasks x 5 rounds x 13 clients, judged

CLIENTS, ROUNDS, MIN_CLIENTS = 13, int(os.environ.get("FL_ATTACK_ROUNDS", "5")), 11  # MultiKrum(4) needs > 2f + 2
BYZANTINE = {0: "sign-flip", 3: "scale:1000", 6: "flip-labels", 9: "free-rider"}
HYPERPARAMETERS = {"local_epochs": 5, "batch_size": 32, "lr": 0.01, "hidden": 64}
ALPHA, SPLIT_SEED = 2.0, 2
RULES = ["fedavg", "fedmedian", "fedtrimmedavg:0.35", "multikrum:4:7"]


def population(attacked: bool) -> list[Keypair]:
    return [Keypair.create_from_uri(f"//FlMatrix{'Attacked' if attacked else 'Clean'}{i}") for i in range(CLIENTS)]


@dataclass
class Task:
    task_id: int
    rule: str
    attacked: bool
    clients: list[Keypair]


@dataclass
class Matrix:
    chain: Chain
    tasks: list[Task] = field(default_factory=list)
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


@pytest.fixture(scope="module")
def matrix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Matrix]:
    from workers.fl.partition import federated_split

    root = tmp_path_factory.mktemp("matrix")
    split = federated_split("digits", CLIENTS, alpha=ALPHA, seed=SPLIT_SEED, attacks=BYZANTINE)
    store = ArtifactStore(root / "store")  # one machine: the parties read each other's objects by hash
    with InProcessNode() as node, memory_chain(node) as chain:
        world = Matrix(chain)
        register_parties(chain, population(False) + population(True))
        nodes = []
        for attacked in (False, True):
            clients = population(attacked)
            posted: list[tuple[int, FlSpec]] = []
            for rule in RULES:
                spec = build_spec(recipe="digits_mlp", rule=rule, rounds=ROUNDS, min_clients_per_round=MIN_CLIENTS,
                                  hyperparameters=HYPERPARAMETERS, seed=7, round_timeout_s=600.0)
                task_id = post_task(chain, store, spec, clients, split.shards, split.holdout)
                posted.append((task_id, spec))
                world.tasks.append(Task(task_id, rule, attacked, clients))
            for i, (client, shard) in enumerate(zip(clients, split.shards, strict=True)):
                nodes.append(client_node(root / f"client-{int(attacked)}-{i}", client, shard, posted,
                                         BYZANTINE.get(i) if attacked else None))

        validate = judging(lambda: memory_chain(node), store, split.holdout, world.events)
        recorder = Recorder(only={"round-committed", "refused", "identity-refused"})
        run_tasks(lambda: memory_chain(node), store, [t.task_id for t in world.tasks], nodes, (recorder, validate))
        world.events.extend(recorder.events)
        for task in world.tasks:  # the matrix as measured, for the log of a failing run (pytest -s)
            infos = [chain.federated_tasks.clients(task.task_id, c.ss58_address) for c in task.clients]
            print(task.rule, "attacked" if task.attacked else "clean", f"{accuracy(world, task):.3f}",
                  [(int(c.paid) // 10**9, int(c.rounds_rejected)) for c in infos])
        yield world


def accuracy(world: Matrix, task: Task) -> float:
    """The validator's measured accuracy of the task's last committed round (micro-units on chain)."""
    last = int(world.chain.federated_tasks.tasks(task.task_id).last_committed)
    assert last >= 1, f"task {task.task_id} ({task.rule}) committed no round"
    verdict = world.chain.federated_tasks.round_verdicts(task.task_id, last, VALIDATOR.ss58_address)
    assert verdict is not None, f"task {task.task_id} round {last} was not judged"
    return int(verdict.measured_metric) / 1e6


def task_of(world: Matrix, rule: str, attacked: bool) -> Task:
    return next(t for t in world.tasks if t.rule == rule and t.attacked == attacked)


def client_info(world: Matrix, task: Task, i: int) -> Any:
    return world.chain.federated_tasks.clients(task.task_id, task.clients[i].ss58_address)


def test_fedavg_loses_at_least_20_points_under_attack(matrix: Matrix) -> None:
    clean, attacked = (accuracy(matrix, task_of(matrix, "fedavg", a)) for a in (False, True))
    assert clean - attacked >= 0.20, (clean, attacked)


@pytest.mark.parametrize("rule", RULES[1:])
def test_robust_rules_stay_within_3_points_of_their_clean_run(matrix: Matrix, rule: str) -> None:
    clean, attacked = (accuracy(matrix, task_of(matrix, rule, a)) for a in (False, True))
    assert attacked >= clean - 0.03, (rule, clean, attacked)
    assert clean >= 0.5, (rule, clean)        # the clean run learned something: the comparison means something


def test_every_task_committed_every_round_the_chain_accepted(matrix: Matrix) -> None:
    for task in matrix.tasks:
        on_chain = matrix.chain.federated_tasks.tasks(task.task_id)
        if task.rule != "fedavg" or not task.attacked:
            assert int(on_chain.last_accepted) == ROUNDS, (task.rule, task.attacked)


def test_poisoners_earn_nothing_and_are_slashed_the_free_rider_earns_nothing(matrix: Matrix) -> None:
    for task in (t for t in matrix.tasks if t.attacked):
        for i, attack in BYZANTINE.items():
            info = client_info(matrix, task, i)
            if attack in ("sign-flip", "scale:1000"):
                assert int(info.paid) == 0, (task.rule, attack)
                assert int(info.rounds_rejected) >= 1 and int(info.stake) < STAKE, (task.rule, attack)
            if attack == "free-rider":  # refused by the aggregator (an unchanged model): not a participant
                assert int(info.paid) == 0 and int(info.rounds_rejected) == 0 and int(info.stake) == STAKE, task.rule


def test_the_flip_labels_client_earns_nothing(matrix: Matrix) -> None:
    flipper = next(i for i, a in BYZANTINE.items() if a == "flip-labels")
    assert [int(client_info(matrix, t, flipper).paid) for t in matrix.tasks if t.attacked] == [0] * len(RULES)


def test_the_free_rider_is_refused_by_the_aggregator_and_nobody_else_is(matrix: Matrix) -> None:
    refused = [d for what, d in matrix.events if what == "refused"]
    for task in matrix.tasks:
        mine = [d for d in refused if int(d["task_id"]) == task.task_id]
        if not task.attacked:
            assert mine == [], task.rule
        elif task.rule != "fedavg":   # FedAvg's poisoned model makes later honest updates overflow
            rider = task.clients[next(i for i, a in BYZANTINE.items() if a == "free-rider")].ss58_address
            assert {d["client"] for d in mine} == {rider}, (task.rule, mine[:2])
            assert all("unchanged" in d["reason"] for d in mine)


def test_no_honest_client_is_ever_slashed_and_honest_clients_are_paid(matrix: Matrix) -> None:
    for task in matrix.tasks:
        honest = [i for i in range(CLIENTS) if not (task.attacked and i in BYZANTINE)]
        infos = [client_info(matrix, task, i) for i in honest]
        assert all(int(c.rounds_rejected) == 0 and int(c.stake) == STAKE for c in infos), (task.rule, task.attacked)
        if task.rule != "fedavg" or not task.attacked:
            assert sum(int(c.paid) > 0 for c in infos) >= len(honest) // 2, (task.rule, task.attacked)
