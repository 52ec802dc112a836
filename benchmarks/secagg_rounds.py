#!/usr/bin/env python3
"""SecAgg+ against plain federated rounds, side by side in one run (issue 14): round time and bytes per client.

The job, the same on both sides: N clients with fixed, known updates on a 10,016-parameter model (a float32 bias
of 16 and a 100 x 100 float32 weight, the model of tests/secagg_simulation.py); client k's trained model is the
round's base plus (1 + k mod 4) times a fixed unit direction, on 20 + 7 (k mod 100) examples. No client exceeds
the norm bound (4.5), so both sides average the same models and the aggregates are checked against FedAvg
computed here (within the SecAgg quantization bound `SecAggParams.error_bound` on the SecAgg side).

* **plain**: Flower's legacy path, `DefaultWorkflow()` with its default fit workflow and a legacy FedAvg: every
  client receives the model in a FitIns and returns its trained model in a FitRes;
* **SecAgg+**: the project's path, the same legacy path with `fit_workflow=PrunedSecAggPlusWorkflow`
  (`workers.fl.secagg_app.run_round`: `SecAggStrategy` behind `SecAggGuardGrid`, every reply checked) and the
  data owners' `secagg_client_app` (Flower's `secaggplus_mod` with paratrain's `clip_commit_mod`, inside the
  deployed client's `pack_mod` and `stage_sign_mod`: uint32 masked vectors, every stage reply signed), with the
  `SecAggParams` defaults: all-to-all shares (num_shares 1.0), reconstruction threshold 0.6, clipping range 8,
  quantization 2**22, modulus 2**32, max_weight 1000.

Both sides run in ONE Flower simulation per client count (`flwr.simulation.run_simulation` on the project's Ray,
client actors of 0.5 CPU), the same nodes answering both: one ClientApp whose outermost mod counts bytes and whose
next mod hands a SecAgg+ message (it carries a ``secaggplus_configs`` record) to `secagg_client_app` and any
other to the plain client. One DefaultWorkflow call per round on both sides (as `run_round` does), rounds
alternating (plain, secagg, then secagg, plain, ...) after one warm-up round of each side, left out, so load
drift and Ray's actor start hit both alike.

Measured per round:

* round time: the wall time of the server's DefaultWorkflow call (sampling, every stage's send and receive,
  aggregation; for SecAgg+ the four stages setup, share_keys, collect_masked_vectors, unmask);
* bytes per client: the outermost client mod serializes every message a client receives and every reply it sends
  with Flower's own serde (`flwr.common.serde.message_to_proto(...).ByteSize()`: metadata and content, the
  protobuf a deployment's Fleet API carries) and appends the sizes to a file per client under a temporary folder
  (client apps run in Ray worker processes); the server sums each client's lines after the round. Sent bytes
  are the upload (the goal's figure), received bytes the download; both per stage in the JSON.

Medians over the kept rounds; the ratios are SecAgg+'s medians over plain's. Goals: at most 2x in round time
and in bytes sent per client (Bonawitz et al. 2017 report 1.73x to 1.98x communication expansion).

Usage (from the repository root)::

    .venv/bin/python benchmarks/secagg_rounds.py                                   # --clients 20,50,100 --rounds 3
    .venv/bin/python benchmarks/secagg_rounds.py --clients 3 --rounds 2            # smoke run (tests/unit)

Output: a JSON document (`--json`, default benchmarks/results/secagg_rounds.json) and a table on stdout.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script: the repository's packages
    sys.path.insert(0, str(REPO_ROOT))

import numpy as np  # noqa: E402

TIME_GOAL = BYTES_GOAL = 2.0
DEFAULT_JSON = REPO_ROOT / "benchmarks" / "results" / "secagg_rounds.json"
NAMES = ("b", "w")
SHAPES = {"b": (16,), "w": (100, 100)}   # 10,016 float32 parameters
NORM_BOUND = 4.5                          # above every update's norm (at most 4): nobody is clipped
TIMEOUT_S = 900.0                         # per stage; a round that takes longer is reported as failed
SIDES = ("plain", "secagg")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')} load {os.getloadavg()[0]:.2f}] {msg}", flush=True)


def load_average() -> tuple[float, float, float]:
    one, five, fifteen = os.getloadavg()
    return round(one, 2), round(five, 2), round(fifteen, 2)


def summarize(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    ordered = sorted(values)
    return {"n": len(values), "median": statistics.median(values), "min": ordered[0], "max": ordered[-1]}


# ================================================================================================
# The clients' known updates
# ================================================================================================
def base_model() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(11)
    return {name: (rng.standard_normal(SHAPES[name]) * 0.05).astype(np.float32) for name in NAMES}


def direction() -> dict[str, np.ndarray]:
    """A fixed direction of L2 norm 1 over the whole model."""
    rng = np.random.default_rng(12)
    raw = {name: rng.standard_normal(SHAPES[name]) for name in NAMES}
    norm = float(np.sqrt(sum(float(np.sum(v * v)) for v in raw.values())))
    return {name: v / norm for name, v in raw.items()}


def step_of(partition: int) -> float:
    return 1.0 + partition % 4


def examples_of(partition: int) -> int:
    return 20 + 7 * (partition % 100)      # at most 713, under max_weight 1000


def train(ctx: Any, parameters: list[np.ndarray], config: Mapping[str, Any]) -> tuple[list[np.ndarray], int]:
    """Client `partition`'s "local training": the base plus its known step along the direction."""
    partition, d = int(ctx.node_config["partition-id"]), direction()
    return [(np.asarray(p, dtype=np.float64) + step_of(partition) * d[name]).astype(np.float32)
            for name, p in zip(NAMES, parameters, strict=True)], examples_of(partition)


def expected(base: Mapping[str, np.ndarray], num_clients: int) -> dict[str, np.ndarray]:
    """FedAvg of the clients' models, computed here (float64)."""
    weights = [examples_of(k) for k in range(num_clients)]
    mean_step = sum(w * step_of(k) for k, w in enumerate(weights)) / sum(weights)
    d = direction()
    return {name: np.asarray(base[name], dtype=np.float64) + mean_step * d[name] for name in NAMES}


# ================================================================================================
# The client side: one ClientApp, the byte counter outermost, SecAgg+ messages to secagg_client_app
# ================================================================================================
def client_app(out: Path) -> Any:
    from flwr.client import NumPyClient
    from flwr.clientapp import ClientApp

    from workers.fl.secagg_client import SecAggClientSettings, secagg_client_app
    from workers.fl.secagg_pack import pack_mod
    from workers.fl.secagg_params import SecAggParams
    from workers.fl.secagg_sign import StageSigner, stage_sign_mod

    settings = SecAggClientSettings(params=SecAggParams(), norm_bound=NORM_BOUND, names=NAMES)
    signers: dict[int, Any] = {}

    def signer_of(ctx: Any, task_id: int) -> Any:   # the deployed client's: every stage reply signed
        from runtime_bindings import Keypair

        pid = int(ctx.node_config["partition-id"])
        if pid not in signers:
            signers[pid] = StageSigner(Keypair.create_from_uri(f"//SecAggBench{pid}"), settings.params,
                                       [tuple(np.shape(v)) for v in base_model().values()])
        return signers[pid]

    # as the deployed ClientApp routes a SecAgg round (workers/fl/secagg_node.py): the masked vector packed to
    # uint32 outermost, every stage reply signed inside it, then Flower's mod
    secagg = secagg_client_app(train, settings, outer=[pack_mod, stage_sign_mod(signer_of)])

    class Plain(NumPyClient):
        def __init__(self, ctx: Any) -> None:
            self.ctx = ctx

        def fit(self, parameters: list[np.ndarray], config: dict[str, Any]) -> tuple[list[np.ndarray], int, dict]:
            arrays, num_examples = train(self.ctx, parameters, config)
            return arrays, num_examples, {}

    def count_bytes(msg: Any, ctx: Any, call_next: Callable[[Any, Any], Any]) -> Any:
        from flwr.common.serde import message_to_proto

        from workers.fl.secagg_checks import configs_of, stage_of

        stage, received = stage_of(configs_of(msg.content)) or "fit", message_to_proto(msg).ByteSize()
        started = time.perf_counter()
        reply = call_next(msg, ctx)   # (secaggplus_mod consumes the message's records: read them first)
        line = {"stage": stage, "received": received, "sent": message_to_proto(reply).ByteSize(),
                "client_s": time.perf_counter() - started, "error": reply.has_error()}
        with open(out / f"bytes-{int(ctx.node_config['partition-id'])}.jsonl", "a") as f:
            f.write(json.dumps(line) + "\n")
        return reply

    def dispatch(msg: Any, ctx: Any, call_next: Callable[[Any, Any], Any]) -> Any:
        from workers.fl.secagg_checks import configs_of

        return secagg(msg, ctx) if configs_of(msg.content) is not None else call_next(msg, ctx)

    return ClientApp(client_fn=lambda ctx: Plain(ctx).to_client(), mods=[count_bytes, dispatch])


def collect_bytes(out: Path) -> dict[int, list[dict[str, Any]]]:
    """Every client's lines of the round just done; the files are removed (the next round starts empty)."""
    found: dict[int, list[dict[str, Any]]] = {}
    for path in out.glob("bytes-*.jsonl"):
        found[int(path.stem.split("-")[1])] = [json.loads(x) for x in path.read_text().splitlines() if x]
        path.unlink()
    return found


# ================================================================================================
# The server side: one DefaultWorkflow per round, the sides alternating
# ================================================================================================
def stage_clock(grid: Any) -> Any:
    """`grid` with the time of each send_and_receive kept by the stage its messages name ("fit" for plain's),
    the same wrapper on both sides: a round's time less its stages' is the server's own work."""
    from workers.fl.secagg_checks import configs_of, stage_of
    from workers.fl.strategy import ForwardingGrid

    class Clock(ForwardingGrid):
        def __init__(self) -> None:
            self.grid, self.stages = grid, {}

        def send_and_receive(self, messages: Any, *, timeout: float | None = None) -> Any:
            sent = list(messages)
            stage = (stage_of(configs_of(sent[0].content)) if sent else None) or "fit"
            started = time.perf_counter()
            replies = list(self.grid.send_and_receive(sent, timeout=timeout))
            self.stages[stage] = self.stages.get(stage, 0.0) + time.perf_counter() - started
            return replies

    return Clock()


@dataclass
class Round:
    side: str
    index: int
    warmup: bool
    round_s: float
    ok: bool
    sent: dict[int, int] = field(default_factory=dict)       # per client: bytes of its replies
    received: dict[int, int] = field(default_factory=dict)   # per client: bytes of the server's messages
    stages: dict[str, dict[str, float]] = field(default_factory=dict)  # per stage: bytes, client s per client
    stage_s: dict[str, float] = field(default_factory=dict)           # per stage: the server's send_and_receive
    max_error: float = float("nan")
    error_bound: float = 0.0


def schedule(rounds: int, warmup: int) -> list[tuple[str, bool]]:
    """Warm-up rounds of each side first, then pairs alternating: (plain, secagg), (secagg, plain), ..."""
    order = [(side, True) for _ in range(warmup) for side in SIDES]
    for r in range(rounds):
        order += [(side, False) for side in (SIDES if r % 2 == 0 else SIDES[::-1])]
    return order


def plain_strategy(base: dict[str, np.ndarray], num_clients: int) -> Any:
    from flwr.common import ndarrays_to_parameters, parameters_to_ndarrays
    from flwr.server.strategy import FedAvg

    class Plain(FedAvg):
        """Legacy FedAvg that starts every DefaultWorkflow call from the last aggregate (FedAvg forgets its
        initial parameters after the first call) and keeps (base, aggregate) of each round."""

        def __init__(self) -> None:
            super().__init__(fraction_fit=1.0, fraction_evaluate=0.0, min_fit_clients=num_clients,
                             min_evaluate_clients=0, min_available_clients=num_clients, accept_failures=False)
            self.base, self.done = dict(base), []

        def initialize_parameters(self, client_manager: Any) -> Any:
            return ndarrays_to_parameters(list(self.base.values()))

        def aggregate_fit(self, server_round: int, results: Any, failures: Any) -> Any:
            parameters, metrics = super().aggregate_fit(server_round, results, failures)
            if parameters is not None and not failures:
                aggregate = dict(zip(NAMES, parameters_to_ndarrays(parameters), strict=True))
                self.done.append((self.base, aggregate))
                self.base = aggregate
            return parameters, metrics

    return Plain()


def server_main(num_clients: int, rounds: int, warmup: int, out: Path, results: list[Round],
                on_round: Callable[[Round], None]) -> Callable[[Any, Any], None]:
    def main(grid: Any, context: Any) -> None:
        try:
            _server_main(grid, context)
        except BaseException:   # run_simulation only queues it, and its runtime may then wait for ever
            traceback.print_exc()
            raise

    def _server_main(grid: Any, context: Any) -> None:
        from flwr.server import ServerConfig
        from flwr.server.compat import LegacyContext
        from flwr.server.workflow import DefaultWorkflow

        from workers.fl.secagg_app import SecAggStrategy, run_round
        from workers.fl.secagg_params import SecAggParams

        params = SecAggParams()
        secagg = SecAggStrategy(base_model(), params, min_clients=num_clients)
        plain = plain_strategy(base_model(), num_clients)
        collect_bytes(out)
        for index, (side, warm) in enumerate(schedule(rounds, warmup)):
            clock = stage_clock(grid)
            started = time.perf_counter()
            if side == "secagg":
                done = run_round(clock, context, secagg, timeout=TIMEOUT_S)
                ok = done is not None and done.dropouts == 0 and len(done.participants) == num_clients
                pair = (done.base, done.aggregate) if done is not None else None
            else:
                before = len(plain.done)
                legacy = LegacyContext(context, config=ServerConfig(num_rounds=1, round_timeout=TIMEOUT_S),
                                       strategy=plain)
                DefaultWorkflow()(clock, legacy)
                ok = len(plain.done) > before
                pair = plain.done[-1] if ok else None
            elapsed = time.perf_counter() - started
            lines = collect_bytes(out)
            r = Round(side, index, warm, elapsed, ok and len(lines) == num_clients,
                      sent={k: sum(x["sent"] for x in v) for k, v in lines.items()},
                      received={k: sum(x["received"] for x in v) for k, v in lines.items()},
                      stage_s=dict(clock.stages))
            for stage in sorted({x["stage"] for v in lines.values() for x in v}):
                of_stage = [[x for x in v if x["stage"] == stage] for v in lines.values()]
                r.stages[stage] = {what: sum(x[what] for xs in of_stage for x in xs) / max(len(lines), 1)
                                   for what in ("sent", "received", "client_s")}
            if pair is not None:
                want = expected(pair[0], num_clients)
                r.max_error = max(float(np.max(np.abs(pair[1][n].astype(np.float64) - want[n]))) for n in NAMES)
                total = sum(examples_of(k) for k in range(num_clients))
                r.error_bound = params.error_bound(num_clients, total) if side == "secagg" else 1e-5
                r.ok = r.ok and r.max_error <= r.error_bound
            results.append(r)
            on_round(r)

    return main


def simulate(num_clients: int, rounds: int, warmup: int, on_round: Callable[[Round], None]) -> list[Round]:
    """One simulation on a Ray started for it (Flower's RayBackend ends every simulation with ray.shutdown())."""
    from flwr.serverapp import ServerApp
    from flwr.simulation import run_simulation

    from workers.runner import ensure_ray

    cpus = os.cpu_count() or 2
    results: list[Round] = []
    with tempfile.TemporaryDirectory(prefix="secagg-bench-", dir="/tmp") as tmp:
        out = Path(tmp)
        server = ServerApp()
        server.main()(server_main(num_clients, rounds, warmup, out, results, on_round))
        ensure_ray(num_cpus=cpus)
        run_simulation(server_app=server, client_app=client_app(out), num_supernodes=num_clients,
                       backend_name="ray", backend_config={"init_args": {"num_cpus": cpus},
                                                           "client_resources": {"num_cpus": 0.5, "num_gpus": 0.0}})
    return results


# ================================================================================================
# The run
# ================================================================================================
def summarize_size(num_clients: int, rounds: list[Round]) -> dict[str, Any]:
    out: dict[str, Any] = {"clients": num_clients, "all_rounds_ok": all(r.ok for r in rounds)}
    for side in SIDES:
        kept = [r for r in rounds if r.side == side and not r.warmup and r.ok]
        out[side] = {
            "round_s": summarize([r.round_s for r in kept]),
            "sent_bytes_per_client": summarize([statistics.mean(r.sent.values()) for r in kept if r.sent]),
            "received_bytes_per_client": summarize([statistics.mean(r.received.values()) for r in kept
                                                    if r.received]),
            "stages_per_client": kept[-1].stages if kept else {},   # bytes sent/received, s in the client app
            "stage_s": {stage: statistics.median(r.stage_s.get(stage, 0.0) for r in kept)
                        for stage in (kept[-1].stage_s if kept else {})},  # the server's send_and_receive
            "max_abs_error": max((r.max_error for r in kept), default=float("nan")),
            "error_bound": kept[-1].error_bound if kept else None,
        }
    for what in ("round_s", "sent_bytes_per_client", "received_bytes_per_client"):
        plain, secagg = out["plain"][what].get("median"), out["secagg"][what].get("median")
        out[f"{what.removesuffix('_per_client')}_ratio"] = secagg / plain if plain and secagg else None
    out["raw"] = [{"side": r.side, "index": r.index, "warmup": r.warmup, "ok": r.ok, "round_s": r.round_s,
                   "sent_mean": statistics.mean(r.sent.values()) if r.sent else None,
                   "sent_min": min(r.sent.values(), default=None), "sent_max": max(r.sent.values(), default=None),
                   "received_mean": statistics.mean(r.received.values()) if r.received else None,
                   "stage_s": r.stage_s,
                   "max_abs_error": r.max_error} for r in rounds]
    return out


def print_table(results: dict[str, Any]) -> None:
    def f(x: Any, spec: str) -> str:
        return format(x, spec) if isinstance(x, (int, float)) else "n/a"

    print(f"{'clients':>7} | {'plain round s':>13} | {'secagg round s':>14} | {'ratio':>6} | "
          f"{'plain B sent/client':>19} | {'secagg B sent/client':>20} | {'ratio':>6} | {'recv ratio':>10}")
    for n, r in results["sizes"].items():
        print(f"{n:>7} | {f(r['plain']['round_s'].get('median'), '13.3f')} | "
              f"{f(r['secagg']['round_s'].get('median'), '14.3f')} | {f(r['round_s_ratio'], '6.2f')} | "
              f"{f(r['plain']['sent_bytes_per_client'].get('median'), '19,.0f')} | "
              f"{f(r['secagg']['sent_bytes_per_client'].get('median'), '20,.0f')} | "
              f"{f(r['sent_bytes_ratio'], '6.2f')} | {f(r['received_bytes_ratio'], '10.2f')}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", default="20,50,100", help="comma-separated client counts (default 20,50,100)")
    p.add_argument("--rounds", type=int, default=3, help="kept rounds per side and size (default 3)")
    p.add_argument("--warmup", type=int, default=1, help="warm-up rounds per side, left out (default 1)")
    p.add_argument("--json", type=Path, default=DEFAULT_JSON, help=f"where to write the results ({DEFAULT_JSON})")
    args = p.parse_args(argv)
    try:
        args.sizes = [int(x) for x in args.clients.split(",") if x.strip()]
    except ValueError:
        p.error(f"--clients must be comma-separated integers, not {args.clients!r}")
    if not args.sizes or min(args.sizes) < 3:
        p.error("--clients needs counts of at least 3 (a SecAgg round needs 3 clients)")
    if args.rounds < 1 or args.warmup < 0:
        p.error("need --rounds >= 1 and --warmup >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ["FLWR_TELEMETRY_ENABLED"], os.environ["FLWR_DISABLE_UPDATE_CHECK"] = "0", "1"
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    # Flower's simulation sets its logger to INFO/DEBUG when it starts: a filter keeps warnings and errors
    # (less the legacy FedAvg's note about metrics aggregation, once per plain round)
    logging.getLogger("flwr").addFilter(lambda rec: rec.levelno >= logging.WARNING
                                        and "fit_metrics_aggregation_fn" not in rec.getMessage())
    from rich.progress import Progress

    load_start, started = load_average(), time.time()
    results: dict[str, Any] = {"sizes": {}}
    total = len(args.sizes) * 2 * (args.rounds + args.warmup)
    with Progress(disable=not sys.stdout.isatty(), transient=True) as progress:
        bar = progress.add_task("rounds", total=total)

        def on_round(r: Round) -> None:
            progress.advance(bar)
            sent = statistics.mean(r.sent.values()) if r.sent else float("nan")
            log(f"  {r.side:>6} round {r.index}{' (warm-up)' if r.warmup else ''}: {r.round_s:.3f} s, "
                f"{sent:,.0f} B sent per client, max error {r.max_error:.2e}{'' if r.ok else '  FAILED'}")

        for n in args.sizes:
            log(f"{n} clients: {args.warmup} warm-up and {args.rounds} kept rounds per side")
            size_started = time.perf_counter()
            rounds = simulate(n, args.rounds, args.warmup, on_round)
            results["sizes"][str(n)] = summarize_size(n, rounds)
            results["sizes"][str(n)].update(wall_s=time.perf_counter() - size_started,
                                            load_average_after=load_average())
            log(f"{n} clients done in {time.perf_counter() - size_started:.1f} s")
    from workers.fl.secagg_params import SecAggParams

    results.update({
        "benchmark": "secagg_rounds", "model": {"shapes": SHAPES, "parameters": 16 + 100 * 100, "dtype": "float32"},
        "secagg_params": SecAggParams().document(), "engine": "flwr simulation (Ray), legacy DefaultWorkflow",
        "rounds": args.rounds, "warmup": args.warmup, "cpus": os.cpu_count(),
        "bytes": "flwr.common.serde.message_to_proto(message).ByteSize(), every message a client receives/sends",
        "load_average_start": load_start, "load_average_end": load_average(),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)), "wall_s": time.time() - started,
        "goals": {"round_s_ratio": TIME_GOAL, "sent_bytes_ratio": BYTES_GOAL},
        "command": " ".join([".venv/bin/python", "benchmarks/secagg_rounds.py",
                             *(argv if argv is not None else sys.argv[1:])]),
    })
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    print_table(results)
    log(f"results in {args.json} ({time.time() - started:.0f} s)")
    return 0 if all(r["all_rounds_ok"] for r in results["sizes"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
