"""Flower's deployment runtime as real processes on loopback: a SuperLink and three SuperNodes (paratrain.local's
FlowerFederation), a run submitted with `flwr run`, its rounds carried over Flower's own transport (HTTP/protobuf in
flwr 1.42, not gRPC: docs/design/federated.md, fact 1); afterwards no process of the federation is left.

First a plain Flower app (the plumbing alone), then paratrain's own: the FAB of workers/fl/fab.py naming the
installed ServerApp and ClientApp, a FederatedTasks task on a devnet process joined by three data owners whose
ClientApps sign their updates with the keys their SuperNodes carry, and two rounds committed on chain by the
ServerApp process the SuperLink started, with the aggregator's key from its environment."""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from paratrain._local.fl_market import post_federated_task
from paratrain.local import TRAINER_STAKE, DevnetProcess, FlowerFederation, dev_keypair, fund, register_account
from runtime_bindings import Chain, Keypair
from workers.artifacts import ArtifactStore
from workers.fl.arrays import loads, model_hash
from workers.fl.child_key import KEY_ENV, export_key
from workers.fl.fab import write_app_dir
from workers.fl.flower_procs import FlowerProcessError, processes_marked
from workers.fl.partition import federated_split
from workers.fl.spec import build_spec

pytestmark = pytest.mark.slow

PLAIN_PYPROJECT = """
[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "plain-fl"
version = "1.0.0"
description = "FedAvg of counters: each client adds its node-config step"
license = "Apache-2.0"
dependencies = []

[tool.flwr.app]
publisher = "paratrain-tests"

[tool.flwr.app.components]
serverapp = "plain_app:server"
clientapp = "plain_app:client"

[tool.flwr.app.config]
num-rounds = 2
out = ""
"""

PLAIN_APP = """
import json

import numpy as np
from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg

server = ServerApp()
client = ClientApp()


@server.main()
def main(grid: Grid, context: Context) -> None:
    strategy = FedAvg(fraction_train=1.0, fraction_evaluate=0.0, min_train_nodes=3, min_available_nodes=3)
    result = strategy.start(grid=grid, initial_arrays=ArrayRecord([np.zeros(2)]),
                            num_rounds=int(context.run_config["num-rounds"]), timeout=120)
    with open(context.run_config["out"], "w") as f:
        json.dump({"global": result.arrays.to_numpy_ndarrays()[0].tolist(), "nodes": sorted(grid.get_node_ids())}, f)


@client.train()
def train(msg: Message, context: Context) -> Message:
    step = float(context.node_config["step"])
    arrays = ArrayRecord([msg.content["arrays"].to_numpy_ndarrays()[0] + step])
    weight = int(context.node_config["examples"])
    return Message(RecordDict({"arrays": arrays, "metrics": MetricRecord({"num-examples": weight})}), reply_to=msg)
"""


def _plain_app(directory: Path) -> Path:
    directory.mkdir()
    (directory / "pyproject.toml").write_text(textwrap.dedent(PLAIN_PYPROJECT))
    (directory / "plain_app.py").write_text(textwrap.dedent(PLAIN_APP))
    return directory


def test_plain_flower_app_runs_two_rounds_over_three_supernode_processes(tmp_path: Path) -> None:
    """The plumbing with a Flower app and nothing of paratrain's: if this fails, Flower's processes, their
    environment or `flwr run` are at fault, not the chain side."""
    app = _plain_app(tmp_path / "app")
    configs = [{"step": 1.0, "examples": 1}, {"step": 2.0, "examples": 1}, {"step": 6.0, "examples": 2}]
    fed = FlowerFederation(3, tmp_path / "fed", node_configs=configs)
    with fed:
        assert all(isinstance(i, int) for i in fed.node_ids)
        markers = [fed.link.marker] + [n.marker for n in fed.nodes]
        out = tmp_path / "out.json"
        run_id = fed.submit_run(app, {"out": str(out), "num-rounds": 2})
        assert fed.wait_run(run_id, timeout=180) == "finished:completed"
        result = json.loads(out.read_text())
        # each round adds the example-weighted mean step, (1 + 2 + 2 * 6) / 4 = 3.75, to both entries
        assert result["global"] == [7.5, 7.5]
        assert result["nodes"] == sorted(fed.node_ids)
        with pytest.raises(FlowerProcessError, match="flwr run"):
            fed.submit_run(app, {"undeclared-key": 1})  # only keys the app declares may be overridden
    assert [processes_marked(m) for m in markers] == [[] for _ in markers]
    assert not fed.link.alive and not any(n.alive for n in fed.nodes)


def test_paratrain_apps_commit_two_rounds_from_supernode_processes(tmp_path: Path) -> None:
    split = federated_split("digits", 3, 1.0, seed=3)
    spec = build_spec(recipe="digits_mlp", rule="fedavg", rounds=2, min_clients_per_round=3, seed=3,
                      round_timeout_s=120.0)
    aggregator = Keypair.create_from_uri("//FlDeployAggregator")
    clients = [Keypair.create_from_uri(f"//FlDeployClient{i}") for i in range(3)]
    store = ArtifactStore(tmp_path / "store")
    with DevnetProcess() as devnet, Chain.connect(devnet.ws_url) as chain:
        alice = dev_keypair("Alice")
        fund(chain, alice, [aggregator], 2 * TRAINER_STAKE)
        fund(chain, alice, clients, 10 * 10**12)
        register_account(chain, aggregator, "Trainer", TRAINER_STAKE)
        fed = FlowerFederation(0, tmp_path / "fed", link_env={KEY_ENV: export_key(aggregator)})
        with fed:
            posted = post_federated_task(chain, spec, split, root=tmp_path / "owners", store=store, requester=alice,
                                         aggregator=aggregator, clients=clients, endpoint=fed.address)
            for client in posted.clients:
                fed.add_node({"paratrain-state": str(client.state_dir)}, {KEY_ENV: export_key(client.keypair)})
            markers = [fed.link.marker] + [n.marker for n in fed.nodes]
            app = write_app_dir(tmp_path / "app")
            run_id = fed.submit_run(app, {"task-id": posted.task_id, "chain-url": devnet.ws_url,
                                          "store": str(tmp_path / "store")})
            status = fed.wait_run(run_id, timeout=400)
            assert status == "finished:completed", fed.link.tail(60)
            task = chain.federated_tasks.tasks(posted.task_id)
            assert int(task.last_committed) == 2
            base = posted.initial_hash
            accounts = sorted(c.keypair.public_key for c in posted.clients)
            for number in (1, 2):
                record = chain.federated_tasks.rounds(posted.task_id, number)
                assert bytes(record.base_model_hash) == base  # each round builds on the last one committed
                participants = [p[0].public_key for p in record.participants]
                assert participants == accounts  # every SuperNode identified as its joined account
                global_bytes = store.fetch(store.uri(bytes(record.global_model_hash).hex()),
                                           bytes(record.global_model_hash).hex())
                arrays, _ = loads(global_bytes)
                assert model_hash(arrays) == bytes(record.global_model_hash)
                assert set(arrays) == set(posted.initial_arrays)
                base = bytes(record.global_model_hash)
            assert base != posted.initial_hash
    assert [processes_marked(m) for m in markers] == [[] for _ in markers]
