"""SecAgg+ rounds run for real in Flower's simulation on the project's Ray, for tests/integration/test_secagg_*.py:
clients with fixed, known updates (client k's trained model is the base plus (k + 1) times a known direction,
on (20 + 7 k) examples), Flower's secaggplus_mod with paratrain's clipping and commitment, the aggregator's
SecAgg workflow behind its guard grid.

One simulation per test module: Flower's RayBackend ends every simulation with ``ray.shutdown()``
(docs/design/federated.md section 6). Each ClientApp runs in a Ray worker process, so clients report what
they masked through files under `out` (one per partition and round), never through memory.
"""
from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import Context

from workers.fl.secagg_app import SecAggStrategy, fedavg
from workers.fl.secagg_client import Mod, Reveal, SecAggClientSettings, clip_commit_mod, secagg_client_app
from workers.fl.secagg_params import SecAggParams

NAMES = ("b", "w")
SHAPES = {"b": (16,), "w": (100, 100)}   # 10 016 parameters: enough for a correlation test at |r| < 0.05
NORM_BOUND = 4.5                          # clients 4.. (k + 1 >= 5) are clipped
PARTITION_ID = "partition-id"


def base_model() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(11)
    return {name: (rng.standard_normal(SHAPES[name]) * 0.05).astype(np.float32) for name in NAMES}


def direction() -> dict[str, np.ndarray]:
    """The known update direction, of L2 norm 1 over the whole model."""
    rng = np.random.default_rng(12)
    raw = {name: rng.standard_normal(SHAPES[name]) for name in NAMES}
    norm = float(np.sqrt(sum(float(np.sum(v * v)) for v in raw.values())))
    return {name: v / norm for name, v in raw.items()}


def examples_of(partition: int) -> int:
    return 20 + 7 * partition


def trained(base: Mapping[str, np.ndarray], partition: int) -> dict[str, np.ndarray]:
    """Client `partition`'s model after local training, as its ClientApp returns it (float32)."""
    d = direction()
    return {name: (np.asarray(base[name], dtype=np.float64) + (partition + 1) * d[name]).astype(np.float32)
            for name in NAMES}


def clipped(base: Mapping[str, np.ndarray], partition: int, bound: float = NORM_BOUND) -> dict[str, np.ndarray]:
    """What the client masks: its update scaled to the norm bound (the test's own arithmetic)."""
    scale = min(1.0, bound / (partition + 1))
    d = direction()
    return {name: (np.asarray(base[name], dtype=np.float64) + (partition + 1) * scale * d[name]).astype(np.float32)
            for name in NAMES}


def expected_aggregate(base: Mapping[str, np.ndarray], partitions: Sequence[int]) -> dict[str, np.ndarray]:
    """Plain FedAvg of the clipped models of `partitions`."""
    return fedavg({p: clipped(base, p) for p in partitions}, {p: examples_of(p) for p in partitions})


def partition_of(ctx: Context) -> int:
    return int(ctx.node_config[PARTITION_ID])


def _train(ctx: Context, parameters: list[np.ndarray], config: Mapping[str, Any]) -> tuple[list[np.ndarray], int]:
    partition = partition_of(ctx)
    model = trained(dict(zip(NAMES, parameters, strict=True)), partition)
    return [model[name] for name in NAMES], examples_of(partition)


def keeper(out: Path) -> Callable[[Context, Reveal], None]:
    """The clients' record of what they masked: the clipped model, salt, commitment and the weighted values
    Flower quantizes, one file per (partition, round), plus the node id of each partition."""
    def keep(ctx: Context, reveal: Reveal) -> None:
        np.savez(out / f"reveal-{partition_of(ctx)}-{reveal.round}.npz", salt=np.frombuffer(reveal.salt, np.uint8),
                 commitment=np.frombuffer(reveal.commitment, np.uint8), num_examples=reveal.num_examples,
                 **{f"model.{k}": v for k, v in reveal.arrays.items()},
                 **{f"weighted.{i}": v for i, v in enumerate(reveal.weighted)})
    return keep


def node_recorder(out: Path) -> Mod:
    """An outer mod that writes each partition's Flower node id (refusals name nodes, tests think in partitions)."""
    def mod(msg: Any, ctx: Context, call_next: Callable[[Any, Context], Any]) -> Any:
        path = out / f"node-{partition_of(ctx)}.json"
        if not path.exists():
            path.write_text(json.dumps(int(ctx.node_id)))
        return call_next(msg, ctx)
    return mod


def nodes_by_partition(out: Path) -> dict[int, int]:
    return {int(p.stem.split("-")[1]): json.loads(p.read_text()) for p in out.glob("node-*.json")}


def reveals(out: Path, round_: int) -> dict[int, dict[str, Any]]:
    found = {}
    for path in out.glob(f"reveal-*-{round_}.npz"):
        with np.load(path) as data:
            found[int(path.stem.split("-")[1])] = {k: data[k] for k in data.files}
    return found


def client_app(params: SecAggParams, out: Path, *, outer: Sequence[Mod] = (), inner: Sequence[Mod] = ()) -> Any:
    settings = SecAggClientSettings(params=params, norm_bound=NORM_BOUND, names=NAMES)
    return secagg_client_app(_train, settings, keep=keeper(out), outer=[node_recorder(out), *outer], inner=inner)


def strategy(params: SecAggParams, num_clients: int, **kwargs: Any) -> SecAggStrategy:
    return SecAggStrategy(base_model(), params, min_clients=num_clients, **kwargs)


def run(server_main: Callable[[Any, Context], None], client: Any, num_clients: int) -> None:
    """One simulation of `num_clients` nodes; `server_main(grid, context)` is the ServerApp's main."""
    from flwr.serverapp import ServerApp
    from flwr.simulation import run_simulation

    from workers.runner import ensure_ray

    os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
    os.environ.setdefault("FLWR_DISABLE_UPDATE_CHECK", "1")
    app = ServerApp()
    app.main()(server_main)
    ensure_ray(num_cpus=2)
    run_simulation(app, client, num_supernodes=num_clients, backend_name="ray",
                   backend_config={"client_resources": {"num_cpus": 0.5, "num_gpus": 0.0},
                                   "init_args": {"num_cpus": 2}})


__all__ = ["NAMES", "NORM_BOUND", "base_model", "client_app", "clip_commit_mod", "clipped", "direction",
           "examples_of", "expected_aggregate", "nodes_by_partition", "partition_of", "reveals", "run", "strategy",
           "trained"]
