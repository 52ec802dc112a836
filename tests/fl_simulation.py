"""Federated tasks run for real in Flower's simulation on Ray, for the client-side integration tests
(tests/integration/test_fl_attacks.py, test_fl_malformed.py): tasks posted and joined through the bindings as
the CLI would, data owners' state directories as the client daemon writes them, and one simulation in which
the aggregator's `serve` runs each task in turn on the one grid.

One simulation per test module: Flower's RayBackend ends every simulation with ``ray.shutdown()``, which
stops a cluster this process started (docs/design/federated.md section 6)."""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from paratrain.commands.task import holdout_commitment
from runtime_bindings import Chain, Keypair
from workers.artifacts import ArtifactStore
from workers.fl.arrays import model_bytes
from workers.fl.child_key import export_key
from workers.fl.client_tasks import JoinedTask, record_task
from workers.fl.spec import FlSpec
from workers.hashing import blake2_256_hex

UNIT, PERBILL = 10**12, 10**9
STAKE = 2 * UNIT
BUDGET_EPSILON, BUDGET_DELTA = 20_000_000, 10**11   # each data owner's privacy budget: epsilon 20, delta 1e-4
REQUESTER, AGGREGATOR, VALIDATOR = (Keypair.create_from_uri(f"//{n}") for n in ("Alice", "Bob", "Charlie"))
SALT = bytes.fromhex(blake2_256_hex(b"fl-simulation-salt"))
CAPS = {"cpus": 8, "gpus": 0, "gpu_model": "", "memory_mb": 16_000}
CHAIN_RULES: dict[str, Any] = {"fedavg": "FedAvg", "fedmedian": "FedMedian",
                               "fedtrimmedavg:0.35": {"FedTrimmedAvg": {"beta": 350_000_000}},
                               "krum:4": {"Krum": {"num_malicious": 4}},
                               "multikrum:4:7": {"MultiKrum": {"num_malicious": 4, "num_to_select": 7}}}


def register_parties(chain: Chain, clients: Sequence[Keypair]) -> None:
    """//Bob a Trainer, //Charlie a Validator, every client funded for its stakes."""
    chain.workers.register(AGGREGATOR, "Trainer", 1_000 * UNIT, CAPS)
    chain.balances.transfer_keep_alive(REQUESTER, VALIDATOR.ss58_address, 2_000 * UNIT)
    chain.workers.register(VALIDATOR, "Validator", 500 * UNIT, CAPS)
    for client in clients:
        chain.balances.transfer_keep_alive(REQUESTER, client.ss58_address, 50 * UNIT)


def post_task(chain: Chain, store: ArtifactStore, spec: FlSpec, clients: Sequence[Keypair], shards: Sequence[Any],
              holdout: bytes, central: Any = None) -> int:
    """//Alice posts `spec` (one validator, a committed holdout), the clients join with their shards, and the
    join deadline passes; the aggregator claims it when its turn comes (`run_tasks`). With `central` (the chain's
    CentralDp) the task is posted with create_central_dp_task."""
    from workers.fl.model import initial_model

    spec_digest = store.put(spec.canonical_bytes())
    holdout_uri = store.uri(store.put(holdout))
    commitment = holdout_commitment(SALT, bytes.fromhex(blake2_256_hex(holdout)), len(holdout), holdout_uri.encode())
    on_chain = {"recipe": spec.recipe.encode(), "spec_hash": "0x" + spec_digest,
                "spec_uri": store.uri(spec_digest).encode(),
                "initial_model_hash": "0x" + blake2_256_hex(model_bytes(initial_model(spec))),
                "eval_metric": spec.eval.metric.encode(), "eval_target": 0, "higher_is_better": True,
                "rounds": spec.rounds, "min_clients_per_round": spec.min_clients_per_round,
                "fraction_per_round": PERBILL, "max_clients": len(clients), "rule": CHAIN_RULES[spec.rule.text],
                "client_share": 600_000_000, "min_client_stake": UNIT, "aggregate_tolerance": 0,
                "requirements": {"min_cpus": 1, "min_gpus": 0, "min_memory_mb": 1_000}}
    if spec.dp is not None or central is not None:   # every client pays in epsilon from its own budget
        for client, shard in zip(clients, shards, strict=True):
            if chain.privacy_budgets.budgets("0x" + shard.hash) is None:
                chain.privacy_budgets.set_budget(client, "0x" + shard.hash, BUDGET_EPSILON, BUDGET_DELTA)
    join_deadline = chain.best_number() + 2 + len(clients)
    if central is not None:
        receipt = chain.federated_tasks.create_central_dp_task(REQUESTER, on_chain, central, 100 * UNIT,
                                                               join_deadline, join_deadline + 5_000, 1,
                                                               "0x" + commitment.hex())
    elif spec.dp is not None:
        from paratrain.fl_specs import chain_dp_spec, chain_secagg_spec

        secagg = chain_secagg_spec(spec.secagg) if spec.secagg is not None else None
        receipt = chain.federated_tasks.create_private_task(REQUESTER, on_chain, chain_dp_spec(spec.dp), secagg,
                                                            100 * UNIT, join_deadline, join_deadline + 5_000, 1,
                                                            "0x" + commitment.hex())
    elif spec.secagg is None:
        receipt = chain.federated_tasks.create_task(REQUESTER, on_chain, 100 * UNIT, join_deadline,
                                                    join_deadline + 5_000, 1, "0x" + commitment.hex())
    else:   # a SecAgg+ task: its settings on chain as `paratrain fl create --secagg` posts them
        from paratrain.fl_specs import chain_secagg_spec

        receipt = chain.federated_tasks.create_secagg_task(REQUESTER, on_chain, chain_secagg_spec(spec.secagg),
                                                           100 * UNIT, join_deadline, join_deadline + 5_000, 1,
                                                           "0x" + commitment.hex())
    task_id = int(next(e.task for e in receipt.events if e.name == "TaskCreated"))
    for client, shard in zip(clients, shards, strict=True):
        chain.federated_tasks.join(client, task_id, "0x" + shard.hash, shard.num_examples, STAKE)
    while chain.best_number() < join_deadline:
        chain.system.remark(REQUESTER, b"tick")
    return task_id


def reveal_holdout(chain: Chain, store: ArtifactStore, task_id: int, holdout: bytes) -> None:
    digest = blake2_256_hex(holdout)
    chain.federated_tasks.reveal_holdout(REQUESTER, task_id, "0x" + SALT.hex(), "0x" + digest, len(holdout),
                                         store.uri(digest))


def judging(chain_for: Callable[[], Chain], store: ArtifactStore, holdout: bytes,
            events: list[tuple[str, dict[str, Any]]]) -> Callable[[str, dict[str, Any]], None]:
    """An observer of the aggregator's strategy playing the other parties: on each committed round the requester
    reveals the holdout (once per task) and //Charlie's round judge (workers/fl/judge.py) votes on it."""
    from workers.fl.judge import JudgeSettings, RoundJudge
    from workers.validator import ValidatorState

    judge = RoundJudge(chain=chain_for(), keypair=VALIDATOR, store=store, state=ValidatorState(), save=lambda: None,
                       notify=lambda what, **detail: events.append((what, detail)),
                       settings=JudgeSettings(holdout_margin_ms=0))
    judge.ensure_seal_key()   # audited SecAgg clients seal their reveals to it
    requester = chain_for()
    revealed: set[int] = set()

    def observe(what: str, detail: dict[str, Any]) -> None:
        if what != "round-committed":
            return
        task_id = int(detail["task_id"])
        if task_id not in revealed:
            reveal_holdout(requester, store, task_id, holdout)
            revealed.add(task_id)
        assert judge.judge(task_id, int(detail["round"]))

    return observe


def client_node(state: Path, client: Keypair, shard: Any, tasks: Sequence[tuple[int, FlSpec]],
                attack: str | None = None) -> Any:
    """A data owner's state directory as the client daemon leaves it after joining `tasks`, and its node."""
    from workers.fl.client_app import ClientNode

    state.mkdir(parents=True, exist_ok=True)
    data = state / "shard.ptts"
    data.write_bytes(shard.data)
    for task_id, spec in tasks:
        spec_bytes = spec.canonical_bytes()
        record_task(state, JoinedTask(task_id, spec_bytes, blake2_256_hex(spec_bytes), data, shard.hash,
                                      shard.num_examples))
    return ClientNode(state, export_key(client), attack)


def run_tasks(chain_for: Callable[[], Chain], store: ArtifactStore, task_ids: Sequence[int], nodes: Sequence[Any],
              observers: Sequence[Callable[[str, dict[str, Any]], None]], lost: Sequence[int] = ()) -> None:
    """One simulation: the aggregator claims each task in turn (it may hold only MaxClaimsPerWorker at once, and
    a lease runs from the claim) and serves it to the end, the nodes answering with the real ClientApp. A task in
    `lost` is one whose round the validators are to reject: serving it ends when the task leaves the aggregator."""
    from flwr.serverapp import ServerApp
    from flwr.simulation import run_simulation

    from workers.fl.client_app import client_app, simulated_nodes
    from workers.fl.server_app import ServerAppError, ServerSetup, serve
    from workers.runner import ensure_ray

    os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
    os.environ.setdefault("FLWR_DISABLE_UPDATE_CHECK", "1")
    app = ServerApp()

    @app.main()
    def every_task(grid: Any, context: Any) -> None:
        for task_id in task_ids:
            chain = chain_for()
            chain.federated_tasks.claim_aggregator(AGGREGATOR, task_id, b"127.0.0.1:9092")
            try:
                serve(grid, ServerSetup(chain=chain, keypair=AGGREGATOR, store=store, task_id=task_id,
                                        observers=tuple(observers), poll_s=0.05, identity_timeout_s=120.0), context)
            except ServerAppError:
                if task_id not in lost:
                    raise

    # started here, not by Flower's RayBackend: ensure_ray runs the workers at nice 0 and starts a head that did not
    # come up in time once more (seen on a loaded machine); RayBackend then uses it and shuts it down at the end
    ensure_ray(num_cpus=2)
    run_simulation(app, client_app(simulated_nodes(list(nodes))), num_supernodes=len(nodes), backend_name="ray",
                   backend_config={"client_resources": {"num_cpus": 0.5, "num_gpus": 0.0},
                                   "init_args": {"num_cpus": 2}})
