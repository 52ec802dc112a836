"""Flower's deployment runtime as real processes on loopback: a SuperLink and three SuperNodes (paratrain.local's
FlowerFederation), a run submitted with `flwr run`, its rounds carried over Flower's own transport; afterwards no
process of the federation is left."""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from paratrain.local import FlowerFederation
from workers.fl.flower_procs import FlowerProcessError, processes_marked

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
