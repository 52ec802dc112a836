"""SecAgg+ and local DP-SGD in one federated task (`paratrain fl create --secagg --dp-epsilon E`), run by the
aggregator's own ServerApp and the data owners' own ClientApp in Flower's simulation over the in-process devnet.

Each client trains with DP-SGD, clips, commits, signs its commitment together with its cumulative DP claim, and
masks; the aggregator learns only the sum and commits the round with commit_private_round; the chain draws the
audit; drawn clients reveal; the validator's judge checks the audit and every drawn client's claim.

What it shows: both rounds committed and accepted, nobody rejected or slashed, every client paid, and each
client's budget spent exactly its last cumulative claim.
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
from workers.fl.client_tasks import kept_reveals
from workers.fl.dp_task import FlDp
from workers.fl.secagg_params import SecAggParams
from workers.fl.secagg_reveal import settle_reveal
from workers.fl.secagg_task import SecAggTask
from workers.fl.spec import build_spec

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

CLIENTS, ROUNDS = 4, 2
CLIENT_KEYS = [Keypair.create_from_uri(f"//SecAggDpClient{i}") for i in range(CLIENTS)]


@dataclass
class Run:
    chain: Chain
    task_id: int = 0
    hashes: list[str] = field(default_factory=list)
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    from workers.fl.partition import federated_split

    root = tmp_path_factory.mktemp("secagg-dp")
    split = federated_split("digits", CLIENTS, alpha=5.0, seed=4)
    store = ArtifactStore(root / "store")
    spec = build_spec(recipe="digits_mlp", rule="fedavg", rounds=ROUNDS, min_clients_per_round=CLIENTS, seed=2,
                      hyperparameters={"local_epochs": 2, "lr": 0.1, "batch_size": 32}, round_timeout_s=600.0,
                      secagg=SecAggTask(SecAggParams(), update_norm_bound=30.0, audit_rate=500_000_000),
                      dp=FlDp(accountant="prv", epsilon=10.0, delta=1e-5, max_grad_norm=1.0, noise_multiplier=1.1))
    with InProcessNode() as node, memory_chain(node) as chain:
        world = Run(chain, hashes=[s.hash for s in split.shards])
        register_parties(chain, CLIENT_KEYS)
        world.task_id = post_task(chain, store, spec, CLIENT_KEYS, split.shards, split.holdout)
        nodes = [client_node(root / f"client-{i}", key, shard, [(world.task_id, spec)])
                 for i, (key, shard) in enumerate(zip(CLIENT_KEYS, split.shards, strict=True))]
        validate = judging(lambda: memory_chain(node), store, split.holdout, world.events)
        owners = memory_chain(node)

        def data_owners_then_validator(what: str, detail: dict[str, Any]) -> None:
            if what == "round-committed":
                for key, state in zip(CLIENT_KEYS, nodes, strict=True):
                    for task_id, round_, path in kept_reveals(state.state_dir):
                        assert settle_reveal(owners, key, store, task_id, round_, path.read_bytes()).final
                        path.unlink()
            validate(what, detail)

        run_tasks(lambda: memory_chain(node), store, [world.task_id], nodes, (data_owners_then_validator,))
        yield world


def test_every_round_is_committed_with_claims_audited_and_accepted(run: Run) -> None:
    fl, privacy = run.chain.federated_tasks, run.chain.privacy_budgets
    task = fl.tasks(run.task_id)
    assert (int(task.last_committed), int(task.last_accepted)) == (ROUNDS, ROUNDS)
    for round_ in range(1, ROUNDS + 1):
        audit = fl.audits(run.task_id, round_)
        assert len(audit.drawn) == CLIENTS // 2 and int(audit.revealed) == len(audit.drawn)
        assert all(privacy.federated_claims(run.task_id, round_, k.ss58_address) is not None for k in CLIENT_KEYS)
        verdict = fl.round_verdicts(run.task_id, round_, VALIDATOR.ss58_address)
        assert verdict.accept and list(verdict.rejected_clients) == []


def test_nobody_is_slashed_and_each_budget_spent_its_last_claim(run: Run) -> None:
    fl, privacy = run.chain.federated_tasks, run.chain.privacy_budgets
    for key, digest in zip(CLIENT_KEYS, run.hashes, strict=True):
        info = fl.clients(run.task_id, key.ss58_address)
        assert int(info.rounds_rejected) == 0 and int(info.paid) > 0
        last = int(privacy.federated_claims(run.task_id, ROUNDS, key.ss58_address).epsilon)
        assert int(privacy.budgets("0x" + digest).spent_epsilon) == last > 0
