#!/usr/bin/env python3
"""Federated round time: paratrain against bare Flower on the same job, in the same run (issue 13).

The job: digits split among N clients by a Dirichlet(alpha) draw (workers.fl.partition), the digits_mlp recipe,
one local epoch per round (workers.fl.local_training, the same code on both sides), FedAvg, every client in every
round. Two sides, run alternately (bare, paratrain, paratrain, bare, ...) so the shared machine's load drift hits
both alike:

* **bare Flower**: a plain ServerApp running Flower's `FedAvg.start` and a plain ClientApp that trains on its shard
  and replies; no mods, no checks, no chain;
* **paratrain**: the aggregator's own ServerApp (`workers.fl.server_app.serve`), the same FedAvg inside
  `workers.fl.strategy.ChainStrategy` (identity queries, every reply
  checked, updates, model and round document stored, `commit_round` signed and waited for in a block of a devnet
  **process**) with the data owners' ClientApp (`workers.fl.client_app`: its shard read from disk and checked
  against its committed hash, the update signed). The task is a real FederatedTasks task: created, joined by
  every client, claimed by the aggregator.

Both run in Flower's simulation runtime (`flwr.simulation.run_simulation`) on the project's Ray (2.60, a local
cluster started for each simulation; client actors of 0.5 CPU), because N of 50 or 100 deployment SuperNodes (two
long-lived processes each plus one interpreter per message) do not fit a 2-core machine.

What is measured, per round: from `configure_train` to the return of `aggregate_train` (a wrapper around the
outermost strategy of each side, the same on both); the first `--warmup` rounds (actor start, first identity
queries) are left out. The chain's share is the time `ChainStrategy` spends in `committer.commit` (signing,
submitting, waiting for the block) over the round time: the strategy reads nothing from the chain during a
round. Medians and p90s over the kept rounds; the ratio is paratrain's median over bare Flower's.

Rounds must be accepted for the next ones to be committed (FederatedTasks.MaxRoundsAhead is 2), so a validator
accepts each committed round from a process of its own (`--voter-child`), off the aggregator's critical path. It
**does not check** the rounds: the validators' checks (tests/integration/test_fl_judge_devnet.py) are not what this
benchmark times.

Usage (from the repository root)::

    .venv/bin/python benchmarks/fl_rounds.py --clients 10,50,100 --rounds 12       # the figures in docs/benchmarks.md
    .venv/bin/python benchmarks/fl_rounds.py --clients 3 --rounds 2 --warmup 1      # smoke run (tests/unit)

Output: a JSON document (`--json`, default benchmarks/results/fl_rounds.json) and a table on stdout.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script: the repository's packages
    sys.path.insert(0, str(REPO_ROOT))

RATIO_GOAL = 1.15
CHAIN_SHARE_GOAL = 0.05
RECIPE = "digits_mlp"
DEFAULT_JSON = REPO_ROOT / "benchmarks" / "results" / "fl_rounds.json"
FUNDS = 1_000 * 10**12


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')} load {os.getloadavg()[0]:.2f}] {msg}", flush=True)


def load_average() -> tuple[float, float, float]:
    one, five, fifteen = os.getloadavg()
    return round(one, 2), round(five, 2), round(fifteen, 2)


def summarize(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
    return {"n": len(values), "median": statistics.median(values), "p90": p90, "min": ordered[0],
            "max": ordered[-1]}


# ================================================================================================
# The validator that accepts every round (a child process: off the aggregator's critical path)
# ================================================================================================
def voter_child(url: str, seed_uri: str) -> int:
    """Follow finalized blocks; accept every RoundCommitted with full contribution factors, until stdin closes."""
    import threading

    from runtime_bindings import Chain, Keypair
    from runtime_bindings.generated import types as t
    from runtime_bindings.values import H256

    validator = Keypair.create_from_uri(seed_uri)
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    with Chain.connect(url) as chain:
        print("voter ready", flush=True)
        for block in chain.events.finalized(poll_interval=0.02):
            if stop.is_set():
                return 0
            for event in block.events:
                if (event.pallet, event.name) != ("FederatedTasks", "RoundCommitted"):
                    continue
                verdict = t.RoundVerdict(accept=True, measured_metric=0, evidence_hash=H256(bytes(32)),
                                         rejected_clients=[], contributions=[10**9] * int(event.participants))
                chain.federated_tasks.submit_round_verdict(validator, int(event.task), int(event.round), verdict)
    return 0


# ================================================================================================
# Timing around the outermost strategy, the same on both sides
# ================================================================================================
@dataclass
class RoundTimes:
    rounds: list[float] = field(default_factory=list)
    commits: list[float] = field(default_factory=list)


def timed(inner: Any, times: RoundTimes) -> Any:
    """`inner` (a Flower Strategy) wrapped so each round's configure_train..aggregate_train span is recorded."""
    from flwr.serverapp.strategy import Strategy

    class Timed(Strategy):
        def __init__(self) -> None:
            self._start = 0.0

        def summary(self) -> None:
            inner.summary()

        def configure_train(self, server_round: int, arrays: Any, config: Any, grid: Any) -> Iterable[Any]:
            self._start = time.perf_counter()
            return inner.configure_train(server_round, arrays, config, grid)

        def aggregate_train(self, server_round: int, replies: Iterable[Any]) -> tuple[Any, Any]:
            out = inner.aggregate_train(server_round, replies)
            times.rounds.append(time.perf_counter() - self._start)
            return out

        def configure_evaluate(self, server_round: int, arrays: Any, config: Any, grid: Any) -> Iterable[Any]:
            return inner.configure_evaluate(server_round, arrays, config, grid)

        def aggregate_evaluate(self, server_round: int, replies: Iterable[Any]) -> Any:
            return inner.aggregate_evaluate(server_round, replies)

    return Timed()


def reported(main: Any) -> Any:
    """A ServerApp main whose exception is printed here: run_simulation only queues it, and its runtime may then
    wait for actors that never start."""
    def run(grid: Any, context: Any) -> None:
        try:
            main(grid, context)
        except BaseException:
            traceback.print_exc()
            raise
    return run


def simulate(server_app: Any, client_app: Any, num_clients: int, cpus: int) -> None:
    """One simulation on a Ray started for it. Not one cluster for the whole run: Flower's RayBackend ends
    every simulation with ray.shutdown(), which stops a cluster this process started, and the next simulation
    then waits for nodes that never come (every identity query expired). Round times exclude Ray's start."""
    from flwr.simulation import run_simulation

    from workers.runner import ensure_ray

    ensure_ray(num_cpus=cpus)  # nice-0 workers, and one more try when a loaded machine is slow to start the head
    run_simulation(server_app=server_app, client_app=client_app, num_supernodes=num_clients, backend_name="ray",
                   backend_config={"init_args": {"num_cpus": cpus},
                                   "client_resources": {"num_cpus": 0.5, "num_gpus": 0.0}})


# ================================================================================================
# Bare Flower
# ================================================================================================
def run_bare(job: Job, cpus: int) -> RoundTimes:
    from flwr.app import Message, MetricRecord, RecordDict
    from flwr.clientapp import ClientApp
    from flwr.serverapp import ServerApp
    from flwr.serverapp.strategy import FedAvg

    from workers.fl.attacks import record_arrays, to_record
    from workers.fl.local_training import train_round

    times = RoundTimes()
    shards = [s.data for s in job.split.shards]
    spec, n, initial = job.spec, job.num_clients, job.initial

    server = ServerApp()

    @server.main()
    @reported
    def main(grid: Any, context: Any) -> None:
        strategy = FedAvg(fraction_train=1.0, fraction_evaluate=0.0, min_train_nodes=n, min_available_nodes=n)
        timed(strategy, times).start(grid=grid, initial_arrays=to_record(initial), num_rounds=spec.rounds,
                                     timeout=spec.round_timeout_s)

    client = ClientApp()

    @client.train()
    def train(msg: Message, context: Any) -> Message:
        shard = shards[int(context.node_config["partition-id"])]
        server_round = int(msg.content["config"]["server-round"])
        result = train_round(spec, record_arrays(msg.content["arrays"]), shard,
                             task_id=0, round_=server_round)
        return Message(RecordDict({"arrays": to_record(result.arrays),
                                   "metrics": MetricRecord({"num-examples": result.num_examples,
                                                            "train-loss": result.train_loss})}), reply_to=msg)

    simulate(server, client, n, cpus)
    return times


# ================================================================================================
# paratrain: ChainStrategy, the data owners' ClientApp, a task on devnet
# ================================================================================================
@dataclass
class Job:
    num_clients: int
    spec: Any
    split: Any
    initial: dict[str, Any]


@dataclass
class Market:
    chain: Any
    store: Any
    requester: Any
    aggregator: Any
    clients: list[Any]
    root: Path


def run_paratrain(job: Job, market: Market, cpus: int, run_dir: Path) -> RoundTimes:
    """The aggregator's own ServerApp (`workers.fl.server_app.serve`: the task read from the chain, its spec
    fetched by hash, ChainStrategy with the chain's gate on MaxRoundsAhead) and the data owners' ClientApp."""
    from paratrain._local.fl_market import post_federated_task
    from workers.fl.child_key import export_key
    from workers.fl.client_app import ClientNode, client_app, simulated_nodes
    from workers.fl.server_app import ServerSetup, server_app

    n, spec = job.num_clients, job.spec
    posted = post_federated_task(market.chain, spec, job.split, root=run_dir, store=market.store,
                                 requester=market.requester, aggregator=market.aggregator,
                                 clients=market.clients[:n])
    times = RoundTimes()

    def on_event(what: str, detail: Any) -> None:
        if what == "round-committed":  # configure_train (after the gate) to the round in a block
            times.rounds.append(float(detail["round_s"]))
            times.commits.append(float(detail["commit_s"]))

    commit_chain = market.chain.clone()
    setup = ServerSetup(chain=commit_chain, keypair=market.aggregator, store=market.store, task_id=posted.task_id,
                        observers=(on_event,), poll_s=0.05, identity_timeout_s=300.0)
    nodes = [ClientNode(c.state_dir, export_key(c.keypair)) for c in posted.clients]
    try:
        simulate(server_app(lambda context: setup), client_app(simulated_nodes(nodes)), n, cpus)
    finally:
        commit_chain.close()
    committed = int(market.chain.federated_tasks.tasks(posted.task_id).last_committed)
    if committed != spec.rounds or len(times.rounds) != spec.rounds:
        raise RuntimeError(f"task {posted.task_id}: {committed} of {spec.rounds} rounds committed")
    return times


# ================================================================================================
# The run
# ================================================================================================
def make_job(num_clients: int, rounds: int, alpha: float, seed: int) -> Job:
    from workers.fl.model import initial_model
    from workers.fl.partition import federated_split
    from workers.fl.spec import build_spec

    split = federated_split("digits", num_clients, alpha, seed, min_size=5)
    spec = build_spec(recipe=RECIPE, rule="fedavg", rounds=rounds, min_clients_per_round=num_clients, seed=seed,
                      round_timeout_s=600.0)
    return Job(num_clients, spec, split, initial_model(spec))


def setup_market(chain: Any, root: Path, max_clients: int) -> Market:
    from paratrain.local import TRAINER_STAKE, VALIDATOR_STAKE, dev_keypair, fund, register_account
    from runtime_bindings import Keypair
    from workers.artifacts import ArtifactStore

    requester = dev_keypair("Alice")
    aggregator = Keypair.create_from_uri("//FlBenchAggregator")
    validator = Keypair.create_from_uri("//FlBenchValidator")
    clients = [Keypair.create_from_uri(f"//FlBenchClient{i}") for i in range(max_clients)]
    fund(chain, requester, [aggregator, validator], TRAINER_STAKE + FUNDS)
    fund(chain, requester, clients, FUNDS // 100)
    register_account(chain, aggregator, "Trainer", TRAINER_STAKE)
    register_account(chain, validator, "Validator", VALIDATOR_STAKE)
    return Market(chain, ArtifactStore(root / "store"), requester, aggregator, clients, root)


def measure(sizes: list[int], rounds: int, warmup: int, repeats: int, alpha: float, seed: int,
            root: Path) -> dict[str, Any]:
    from paratrain.local import DevnetProcess
    from runtime_bindings import Chain

    results: dict[str, Any] = {"sizes": {}}
    cpus = os.cpu_count() or 2
    with DevnetProcess("--verification-grace-ms", str(3_600_000)) as devnet, \
            Chain.connect(devnet.ws_url) as chain:
        market = setup_market(chain, root, max(sizes))
        voter = subprocess.Popen([sys.executable, __file__, "--voter-child", devnet.ws_url, "//FlBenchValidator"],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO_ROOT)
        try:
            assert voter.stdout is not None
            if "voter ready" not in voter.stdout.readline():
                raise RuntimeError("the voting validator did not start")
            for n in sizes:
                job = make_job(n, rounds, alpha, seed)
                runs: dict[str, list[RoundTimes]] = {"bare": [], "paratrain": []}
                for rep in range(repeats):
                    order = ["bare", "paratrain"] if rep % 2 == 0 else ["paratrain", "bare"]
                    for side in order:
                        log(f"{n} clients, {side} (pair {rep + 1} of {repeats})")
                        started = time.perf_counter()
                        if side == "bare":
                            times = run_bare(job, cpus)
                        else:
                            times = run_paratrain(job, market, cpus, root / f"run-{n}-{rep}")
                        log(f"  {len(times.rounds)} rounds in {time.perf_counter() - started:.1f} s: "
                            f"{', '.join(f'{r:.3f}' for r in times.rounds)}")
                        runs[side].append(times)
                results["sizes"][str(n)] = summarize_size(runs, warmup)
                results["sizes"][str(n)]["load_average_after"] = load_average()
        finally:
            if voter.stdin is not None:
                voter.stdin.close()
            try:
                voter.wait(10)
            except subprocess.TimeoutExpired:
                voter.kill()
                voter.wait()
    return results


def summarize_size(runs: dict[str, list[RoundTimes]], warmup: int) -> dict[str, Any]:
    bare = [r for t in runs["bare"] for r in t.rounds[warmup:]]
    para = [r for t in runs["paratrain"] for r in t.rounds[warmup:]]
    shares = [c / r for t in runs["paratrain"] for r, c in list(zip(t.rounds, t.commits, strict=False))[warmup:]]
    commits = [c for t in runs["paratrain"] for c in t.commits[warmup:]]
    out: dict[str, Any] = {"bare_round_s": summarize(bare), "paratrain_round_s": summarize(para),
                           "commit_s": summarize(commits), "chain_share": summarize(shares),
                           "raw": {side: [t.rounds for t in ts] for side, ts in runs.items()},
                           "raw_commit_s": [t.commits for t in runs["paratrain"]]}
    if bare and para:
        out["ratio"] = statistics.median(para) / statistics.median(bare)
    return out


def print_table(results: dict[str, Any]) -> None:
    print(f"{'clients':>7} | {'bare median s':>13} | {'paratrain median s':>18} | {'ratio':>5} | "
          f"{'commit median s':>15} | {'chain share':>11}")
    for n, r in results["sizes"].items():
        print(f"{n:>7} | {r['bare_round_s'].get('median', float('nan')):>13.3f} | "
              f"{r['paratrain_round_s'].get('median', float('nan')):>18.3f} | {r.get('ratio', float('nan')):>5.2f} | "
              f"{r['commit_s'].get('median', float('nan')):>15.3f} | "
              f"{100 * r['chain_share'].get('median', float('nan')):>10.1f}%")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", default="10,50,100", help="comma-separated client counts (default 10,50,100)")
    p.add_argument("--rounds", type=int, default=12, help="rounds per run (default 12)")
    p.add_argument("--warmup", type=int, default=2, help="first rounds of each run left out (default 2)")
    p.add_argument("--repeats", type=int, default=1, help="bare/paratrain pairs per size (default 1)")
    p.add_argument("--alpha", type=float, default=0.5, help="Dirichlet alpha of the split (default 0.5)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", type=Path, default=DEFAULT_JSON, help=f"where to write the results ({DEFAULT_JSON})")
    p.add_argument("--voter-child", nargs=2, metavar=("URL", "SEED"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.voter_child is None:
        try:
            args.sizes = [int(x) for x in args.clients.split(",") if x.strip()]
        except ValueError:
            p.error(f"--clients must be comma-separated integers, not {args.clients!r}")
        if not args.sizes or min(args.sizes) < 2:
            p.error("--clients needs counts of at least 2")
        if args.rounds < 1 or not 0 <= args.warmup < args.rounds or args.repeats < 1:
            p.error("need --rounds >= 1, 0 <= --warmup < --rounds and --repeats >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for name in ("FLWR_TELEMETRY_ENABLED", "FLWR_DISABLE_UPDATE_CHECK"):
        os.environ[name] = "0" if name == "FLWR_TELEMETRY_ENABLED" else "1"
    if args.voter_child is not None:
        return voter_child(*args.voter_child)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("flwr").setLevel(logging.WARNING)
    logging.getLogger("paratrain").setLevel(logging.INFO)  # refusals and identity failures, with their reasons
    load_start = load_average()
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="fl-bench-", dir="/tmp") as tmp:
        results = measure(args.sizes, args.rounds, args.warmup, args.repeats, args.alpha, args.seed, Path(tmp))
    results.update({
        "benchmark": "fl_rounds", "recipe": RECIPE, "rule": "fedavg", "engine": "simulation (Ray)",
        "rounds": args.rounds, "warmup": args.warmup, "repeats": args.repeats, "alpha": args.alpha, "seed": args.seed,
        "cpus": os.cpu_count(), "load_average_start": load_start, "load_average_end": load_average(),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)), "wall_s": time.time() - started,
        "goals": {"ratio_at_50": RATIO_GOAL, "chain_share": CHAIN_SHARE_GOAL},
        "command": " ".join([".venv/bin/python", "benchmarks/fl_rounds.py",
                             *(argv if argv is not None else sys.argv[1:])]),
    })
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    print_table(results)
    log(f"results in {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
