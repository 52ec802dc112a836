#!/usr/bin/env python3
"""End-to-end latency of a task on devnet, and verification's CPU against training's (issue 6 benchmark).

What runs, all real and on this machine, started by the local market harness (``paratrain.local``):
devnet with instant seal (``paratrain devnet --challenge-period-ms``), the orchestrator (``paratrain
orchestrator``), a local Ray cluster, the worker daemon (``workers.daemon.WorkerDaemon`` in this process,
joined to that cluster, with its warm Ray Train worker group; followed through its observer events) and the
validators as processes of their own (``paratrain validator``). //Alice posts
digits tasks with a bounty and ``--validators`` required verdicts; //Bob trains; //Charlie, //Dave, ...
verify and vote; after the challenge period the worker's daemon sends finalize_result and the bounty is
paid (TaskAccepted).

A warm cluster: Ray, the worker daemon (and its worker group) and the validators are up, and one task has
gone all the way to its payout before anything is measured. Then ``--tasks`` tasks are posted one after
another, each after the previous one was paid.

Figures per task (times are wall-clock; the chain's moments are devnet's ``Timestamp.Now``, the wall clock
of this machine when it authored the block; with instant seal a block is authored when a transaction
arrives):

* **creation -> first step**: from the block that includes create_task to the end of training step 1
  (a step hook in the Ray training worker stamps it). Goal: at most 3 s on a warm cluster.
* **creation -> payout**: to the block with TaskAccepted (the bounty paid). It includes the challenge
  period (``--challenge-period-ms``, reported alongside, and the payout latency without it).
* the intervals in between: TaskClaimed, training, ResultSubmitted, each validator's verdict,
  ResultApproved, TaskAccepted.
* **worker training CPU**: CPU time of the Ray training worker process(es) from the task's arrival there
  to its last step (summed over ranks; ``time.process_time`` read by the step hook).
* **validator CPU**: for each validator process, the CPU time (user + system, psutil, sampled every
  50 ms) from just before submit_result until its verdict's block; that covers reading the result,
  fetching and hashing artifacts, re-measuring the metric, the spot-check replays and voting. The CPU of
  ``verify()`` alone, as the validator writes it into its evidence document, is shown too.
  Goal: at most 10% of the worker's training CPU.

With ``--workers`` 2 or more the validators replay multi-worker segments on Ray (in other processes):
their CPU is then not in the validator process and the ratio is not measured.

Usage (from the repository root)::

    .venv/bin/python benchmarks/e2e_latency.py                          # defaults: 3 measured tasks
    .venv/bin/python benchmarks/e2e_latency.py --challenge-period-ms 0  # pay at once after the quorum
    .venv/bin/python benchmarks/e2e_latency.py --epochs 300 --checkpoints 32 --spot-checks 2 --json out.json
"""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
FIRST_STEP_GOAL_S = 3.0
VERIFY_SHARE_GOAL = 0.10
UNIT = 10**12
VALIDATOR_NAMES = ("Charlie", "Dave", "Eve", "Ferdie")
DEFAULT_CHECKPOINTS = 64  # as workers.spec.DEFAULT_CHECKPOINTS (not imported: --help stays light)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')} load {os.getloadavg()[0]:.2f}] {msg}", flush=True)


def load_avg() -> tuple[float, float, float]:
    return tuple(round(x, 2) for x in os.getloadavg())  # type: ignore[return-value]


# ================================================================================================
# In the Ray training worker: stamps of the first and the last step, with the process's CPU time
# ================================================================================================
class TaskProbe:
    """A step hook (pickled into the training worker): writes ``first-rank<r>.json`` after step 1 and
    ``last-rank<r>.json`` after the last step, with the wall time, the process's CPU time, and the time
    and CPU time at which the task reached the process (when this object was unpickled there). The worker
    daemon runs it before its own CancelHook (DaemonConfig.training_callbacks)."""

    def __init__(self, directory: str, total_steps: int) -> None:
        self.directory, self.total_steps = directory, total_steps
        self.loaded_at: float | None = None
        self.cpu_at_load: float | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"directory": self.directory, "total_steps": self.total_steps}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.loaded_at, self.cpu_at_load = time.time(), time.process_time()

    def __call__(self, step: int, rank: int) -> None:
        if step == 1 or step == self.total_steps:
            now, cpu = time.time(), time.process_time()
            path = os.path.join(self.directory, f"{'first' if step == 1 else 'last'}-rank{rank}.json")
            with open(path + ".tmp", "w") as f:
                json.dump({"t": now, "cpu": cpu, "loaded_at": self.loaded_at, "cpu_at_load": self.cpu_at_load,
                           "pid": os.getpid(), "step": step}, f)
            os.replace(path + ".tmp", path)


def read_probe(directory: Path) -> dict[str, dict[str, Any]]:
    return {p.stem: json.loads(p.read_text()) for p in directory.glob("*.json")}


# ================================================================================================
# CPU of the validator processes, sampled
# ================================================================================================
class CpuSampler:
    """Samples the CPU time (user + system, children included) of some processes every `interval` s."""

    def __init__(self, pids: dict[str, int], interval: float = 0.05) -> None:
        import psutil

        self.procs = {name: psutil.Process(pid) for name, pid in pids.items()}
        self.samples: dict[str, list[tuple[float, float]]] = {name: [] for name in pids}
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cpu-sampler", daemon=True)

    def _cpu(self, proc) -> float:
        c = proc.cpu_times()
        return c.user + c.system + c.children_user + c.children_system

    def sample(self) -> None:
        now = time.time()
        for name, proc in self.procs.items():
            with contextlib.suppress(Exception):  # the process is gone: no more samples
                self.samples[name].append((now, self._cpu(proc)))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def start(self) -> CpuSampler:
        self.sample()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)

    def at(self, name: str, t: float) -> float:
        """The CPU time of `name` at wall time `t`: the first sample at or after it (conservative)."""
        for when, cpu in self.samples[name]:
            if when >= t:
                return cpu
        return self.samples[name][-1][1]

    def before(self, name: str, t: float) -> float:
        """The last sample at or before `t`."""
        best = self.samples[name][0][1]
        for when, cpu in self.samples[name]:
            if when > t:
                break
            best = cpu
        return best


# ================================================================================================
def block_events(chain, first: int, last: int, task_id: int) -> list[dict[str, Any]]:
    """The TaskBounties events of `task_id` in blocks first..last, each with its block and moment (ms)."""
    out = []
    for number in range(first, last + 1):
        block_hash = chain.block_hash(number)
        records = [r for r in chain.events_at(block_hash)
                   if r.event.pallet == "TaskBounties" and getattr(r.event, "task_id", None) == task_id]
        if not records:
            continue
        moment = chain.timestamp.now(at=block_hash)
        for r in records:
            out.append({"name": r.event.name, "block": number, "ms": moment, "event": r.event})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", default="digits_mlp", help="a registered recipe (default digits_mlp)")
    parser.add_argument("--epochs", type=int, default=100, help="epochs of each task (default 100)")
    parser.add_argument("--checkpoints", type=int, default=DEFAULT_CHECKPOINTS,
                        help="checkpoints per task: checkpoint_every = ceil(steps / this) (default "
                             f"{DEFAULT_CHECKPOINTS}, workers.spec.DEFAULT_CHECKPOINTS)")
    parser.add_argument("--tasks", type=int, default=3, help="measured tasks, after one warm-up task (default 3)")
    parser.add_argument("--workers", type=int, default=1, help="Ray Train workers of the worker daemon (default 1)")
    parser.add_argument("--validators", type=int, default=2, help="validators required per task (default 2)")
    parser.add_argument("--spot-checks", type=int, help="Q of each validator (default: the validator's own default)")
    parser.add_argument("--challenge-period-ms", type=int, default=5000,
                        help="devnet's challenge period in ms (default 5000, devnet's default; 0: pay at once)")
    parser.add_argument("--task-timeout", type=float, default=600.0, help="seconds per task before giving up")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, stores)")
    args = parser.parse_args(argv)
    if not 1 <= args.validators <= len(VALIDATOR_NAMES):
        parser.error(f"--validators: 1 to {len(VALIDATOR_NAMES)}")

    sys.path.insert(0, str(REPO_ROOT))
    os.environ.setdefault("RAY_TRAIN_ENABLE_PRINT_PATCH", "0")
    tmp = Path(tempfile.mkdtemp(prefix="paratrain-e2e-"))
    try:
        out = run(args, tmp)
    finally:
        if not args.keep:
            import shutil
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            log(f"kept {tmp}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1, default=str))
    return 0


def run(args, tmp: Path) -> dict[str, Any]:
    from paratrain.local import LocalMarket
    from workers.artifacts import ArtifactStore
    from workers.daemon import DaemonConfig, WorkerDaemon
    from workers.datasets import add_dataset, decode_dataset
    from workers.engine import steps_of
    from workers.recipes import get_recipe
    from workers.spec import DatasetRef, Evaluation, Limits, TaskSpec

    handler = logging.FileHandler(tmp / "worker.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root_logger = logging.getLogger()
    root_logger.addHandler(handler)
    root_logger.setLevel(logging.INFO)
    for noisy in ("websocket", "substrateinterface", "grpc", "urllib3", "fsspec", "ray", "ray.train"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    recipe = get_recipe(args.recipe)
    requester = ArtifactStore(tmp / "alice-store")
    digest, uri = add_dataset(recipe.dataset, requester)
    ref = DatasetRef(digest, uri)
    hp = recipe.hyperparameters({"epochs": args.epochs})
    probe_spec = TaskSpec(recipe=recipe.name, dataset=ref, evaluation=Evaluation(recipe.metric, 0.0, recipe.mode))
    n_train = len(recipe.prepare(decode_dataset(requester.get(digest)), hp, probe_spec.validation).train_x)
    total = steps_of(n_train, int(hp["batch_size"]), args.epochs, args.workers)
    every = max(1, math.ceil(total / args.checkpoints))
    low_target = 0.1 if recipe.mode == "max" else 1e9  # every run reaches it: the worker never withholds
    log(f"{recipe.name}: {args.epochs} epochs = {total} steps with {args.workers} worker(s), a checkpoint every "
        f"{every} steps ({math.ceil(total / every)} checkpoints); {args.validators} validators, challenge period "
        f"{args.challenge_period_ms} ms")

    probes: dict[int, dict[str, Any]] = {}
    submits: dict[int, float] = {}

    class Probes:
        """The daemon's training callback (workers.daemon.TrainingCallback): a TaskProbe in each task's training
        workers, and the time the daemon handed the task to training."""

        def step_hook(self, task_id: int, spec: Any) -> TaskProbe:
            steps_dir = tmp / f"probe-{task_id}"
            steps_dir.mkdir(exist_ok=True)
            probes[task_id] = {"train_called": time.time(), "dir": steps_dir}
            return TaskProbe(str(steps_dir), total)

    def observe(what: str, detail: Any) -> None:
        """The worker daemon's events (workers.observers): when a task's training returned and it starts
        submitting."""
        if what == "trained":  # sent as training returns, just before the daemon signs and sends submit_result
            submits[detail["task_id"]] = time.time()
            rec = probes.get(detail["task_id"])
            if rec is not None:
                rec["train_returned"] = submits[detail["task_id"]]
                rec["probe"] = read_probe(rec["dir"])

    num_cpus = os.cpu_count() or 2
    if args.workers > 1:  # the warm group holds its CPUs; each validator replays on a group of its own
        num_cpus = max(num_cpus, args.workers * (1 + args.validators))
    names = VALIDATOR_NAMES[:args.validators]
    sampler = None
    log("starting the local Ray cluster, devnet (instant seal) and the orchestrator")
    try:
        with LocalMarket(tmp, challenge_period_ms=args.challenge_period_ms, ray_cpus=num_cpus) as market:
            chain = market.chain
            market.register("Bob", "Trainer")  # with this machine's CPUs and 8 GB (paratrain.local.capabilities)
            for name in names:
                market.register(name, "Validator")

            from_block = chain.finalized_number()
            validators = {}
            for name in names:
                cmd = ["--key", f"//{name}", "--store", str(tmp / f"{name.lower()}-store"),
                       "--state-dir", str(tmp / f"{name.lower()}-state"), "--trust-store", str(tmp / "alice-store"),
                       "--trust-store", str(tmp / "bob-store"), "--from-block", str(from_block)]
                if args.spot_checks is not None:
                    cmd += ["--spot-checks", str(args.spot_checks)]
                if args.workers > 1:
                    cmd += ["--ray-address", market.ray.address]
                validators[name] = market.daemon_process("validator", cmd, tmp / f"{name.lower()}.log")
            sampler = CpuSampler({name: p.pid for name, p in validators.items()}).start()

            daemon = WorkerDaemon(DaemonConfig(
                orchestrator=market.target, chain_url=market.chain_url, key="//Bob", store=str(tmp / "bob-store"),
                trusted_stores=(str(tmp / "alice-store"),), num_workers=args.workers,
                state_dir=str(tmp / "bob-state"), training_callbacks=(Probes(),)))
            daemon.subscribe(observe)
            worker = market.daemon_thread(daemon, "worker")

            def post(seed: int) -> tuple[int, Any]:
                spec = TaskSpec(recipe=recipe.name, dataset=ref,
                                evaluation=Evaluation(recipe.metric, low_target, recipe.mode),
                                hyperparameters={"epochs": args.epochs}, seed=seed, checkpoint_every=every,
                                limits=Limits(timeout_s=max(600.0, args.task_timeout), memory_mb=2048))
                return market.post(spec, requester, deadline_in=10_000, validators_required=args.validators)

            def until_paid(task_id: int) -> None:
                deadline = time.monotonic() + args.task_timeout
                while True:
                    name = chain.task_bounties.tasks(task_id).status.name
                    if name == "Accepted":
                        return
                    if name in ("Expired", "Cancelled") or not worker.alive:
                        raise SystemExit(f"task {task_id} is {name} (daemon alive: {worker.alive}); "
                                         f"logs in {tmp} (--keep)")
                    for vname, proc in validators.items():
                        if proc.returncode is not None:
                            raise SystemExit(f"validator {vname} exited with {proc.returncode}; see {tmp} (--keep)")
                    if time.monotonic() > deadline:
                        raise SystemExit(f"task {task_id} not paid in {args.task_timeout} s (status {name}); "
                                         f"see {tmp} (--keep)")
                    time.sleep(0.05)

            log("warm-up task: Ray Train worker group, daemon, validators and chain paths all used once")
            t0 = time.time()
            warm_id, _ = post(seed=100)
            until_paid(warm_id)
            log(f"warm-up task {warm_id} paid after {time.time() - t0:.1f} s (not counted)")

            rows = []
            for i in range(args.tasks):
                time.sleep(1.0)  # the previous task's tail (validators' state files, the worker's poll) settles
                task_id, receipt = post(seed=i + 1)
                created_block = receipt.block_number
                until_paid(task_id)
                sampler.sample()
                rows.append(measure(chain, task_id, created_block, probes.get(task_id, {}), submits.get(task_id),
                                    sampler, names, tmp, args))
                r = rows[-1]
                log(f"task {task_id}: creation -> first step {r['create_to_first_step_s']:.2f} s, -> payout "
                    f"{r['create_to_payout_s']:.2f} s; verification CPU {r['verify_share_max']:.1%} of training")
            return report(rows, args, {"steps": total, "checkpoint_every": every,
                                       "n_checkpoints": math.ceil(total / every), "load_end": load_avg()})
    finally:
        if sampler is not None:
            sampler.stop()
        root_logger.removeHandler(handler)


def measure(chain, task_id: int, created_block: int, probe: dict[str, Any], submit_at: float | None,
            sampler: CpuSampler, names, tmp: Path, args) -> dict[str, Any]:
    from workers.artifacts import ArtifactStore

    events = block_events(chain, created_block, chain.best_number(), task_id)
    first_of = {}
    for e in events:
        first_of.setdefault(e["name"], e)
    created = first_of["TaskCreated"]["ms"] / 1000
    steps = probe.get("probe", {})
    first, last = steps["first-rank0"], steps["last-rank0"]
    ranks = sorted({k.split("rank")[1] for k in steps})
    train_cpu = sum(steps[f"last-rank{r}"]["cpu"] - steps[f"last-rank{r}"]["cpu_at_load"] for r in ranks
                    if f"last-rank{r}" in steps)
    verdicts = {}
    for e in events:
        if e["name"] == "VerdictSubmitted":
            verdicts[str(e["event"].validator)] = e
    from runtime_bindings import Keypair
    row: dict[str, Any] = {"task_id": task_id, "load": load_avg(), "challenge_period_ms": args.challenge_period_ms}

    def at(name: str) -> float | None:
        return first_of[name]["ms"] / 1000 if name in first_of else None
    row.update({
        "create_to_claim_s": at("TaskClaimed") - created,
        "create_to_first_step_s": first["t"] - created,
        "claim_to_first_step_s": first["t"] - at("TaskClaimed"),
        "first_step_breakdown": {
            "creation -> TaskClaimed block": at("TaskClaimed") - created,
            "TaskClaimed block -> train() called": probe["train_called"] - at("TaskClaimed"),
            "-> task in the training worker": first["loaded_at"] - probe["train_called"],
            "-> step 1 done": first["t"] - first["loaded_at"],
        },
        "training_s": last["t"] - first["t"],
        "last_step_to_result_s": at("ResultSubmitted") - last["t"],
        "result_to_approved_s": (at("ResultApproved") or at("TaskAccepted")) - at("ResultSubmitted"),
        "approved_to_payout_s": at("TaskAccepted") - (at("ResultApproved") or at("TaskAccepted")),
        "create_to_payout_s": at("TaskAccepted") - created,
        "train_cpu_s": train_cpu,
    })
    row["create_to_payout_less_period_s"] = row["create_to_payout_s"] - args.challenge_period_ms / 1000
    per_validator = {}
    for name in names:
        address = Keypair.create_from_uri(f"//{name}").ss58_address
        verdict = verdicts.get(address)
        if verdict is None:
            per_validator[name] = {"verdict": None}
            continue
        start = submit_at if submit_at is not None else at("ResultSubmitted")
        cpu = sampler.at(name, verdict["ms"] / 1000 + 0.05) - sampler.before(name, start)
        evidence = {}
        with contextlib.suppress(Exception):  # the evidence's cpu_s is extra information
            doc = ArtifactStore(tmp / f"{name.lower()}-store").get(
                str(verdict["event"].verdict.evidence_hash).removeprefix("0x"))
            evidence = json.loads(doc)
        extra = evidence if isinstance(evidence, dict) else {}  # the evidence's extra fields are top level
        per_validator[name] = {
            "accept": bool(verdict["event"].verdict.accept),
            "result_to_verdict_s": verdict["ms"] / 1000 - at("ResultSubmitted"),
            "cpu_s": cpu,
            "verify_cpu_s": extra.get("cpu_s"),
            "segments": evidence.get("segments") if isinstance(evidence, dict) else None,
        }
    row["validators"] = per_validator
    shares = [v["cpu_s"] / train_cpu for v in per_validator.values() if v.get("cpu_s") is not None and train_cpu]
    row["verify_share_max"] = max(shares) if shares else float("nan")
    row["verify_share_median"] = statistics.median(shares) if shares else float("nan")
    verify_only = [v["verify_cpu_s"] / train_cpu for v in per_validator.values()
                   if v.get("verify_cpu_s") is not None and train_cpu]
    row["verify_only_share_max"] = max(verify_only) if verify_only else float("nan")
    if args.workers > 1:
        row["verify_share_max"] = row["verify_share_median"] = float("nan")  # replays ran on Ray, elsewhere
    return row


def fmt(v: Any, unit: str = " s", digits: int = 2) -> str:
    if v is None or (isinstance(v, float) and v != v):
        return "-"
    return f"{v:.{digits}f}{unit}"


def report(rows: list[dict[str, Any]], args, info: dict[str, Any]) -> dict[str, Any]:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 160)
    table = Table(title=f"end to end on devnet (instant seal): {args.recipe}, {args.epochs} epochs = {info['steps']} "
                        f"steps, {info['n_checkpoints']} checkpoints, {args.workers} Ray worker(s), "
                        f"{args.validators} validators, challenge period {args.challenge_period_ms} ms")
    table.add_column("interval")
    for r in rows:
        table.add_column(f"task {r['task_id']}", justify="right")
    table.add_column("median", justify="right")

    def line(label: str, values: list[Any], unit: str = " s", digits: int = 2, bold: bool = False) -> None:
        nums = [v for v in values if isinstance(v, (int, float)) and v == v]
        med = statistics.median(nums) if nums else None
        cells = [fmt(v, unit, digits) for v in values] + [fmt(med, unit, digits)]
        table.add_row(f"[bold]{label}[/bold]" if bold else label, *cells)

    line("creation -> first step", [r["create_to_first_step_s"] for r in rows], bold=True)
    for label in rows[0]["first_step_breakdown"]:
        line(f"[dim]  {label}[/dim]", [r["first_step_breakdown"][label] for r in rows])
    line("training (step 1 -> last step)", [r["training_s"] for r in rows])
    line("last step -> ResultSubmitted block", [r["last_step_to_result_s"] for r in rows])
    line("ResultSubmitted -> quorum (ResultApproved)", [r["result_to_approved_s"] for r in rows])
    line("ResultApproved -> payout (period + finalize)", [r["approved_to_payout_s"] for r in rows])
    line("creation -> payout (TaskAccepted block)", [r["create_to_payout_s"] for r in rows], bold=True)
    line("creation -> payout, less the challenge period", [r["create_to_payout_less_period_s"] for r in rows])
    line("worker training CPU", [r["train_cpu_s"] for r in rows])
    for name in rows[0]["validators"]:
        line(f"{name}: ResultSubmitted -> verdict block", [r["validators"][name].get("result_to_verdict_s")
                                                           for r in rows])
        line(f"{name}: CPU, submit -> verdict", [r["validators"][name].get("cpu_s") for r in rows])
        line(f"[dim]{name}: CPU of verify() (evidence)[/dim]", [r["validators"][name].get("verify_cpu_s")
                                                                 for r in rows])
    line("validator CPU / training CPU (the larger)", [100 * r["verify_share_max"] for r in rows], unit=" %",
         digits=1, bold=True)
    line("load average (1 min) after", [r["load"][0] for r in rows], unit="")
    console.print(table)

    first = statistics.median(r["create_to_first_step_s"] for r in rows)
    shares = [r["verify_share_max"] for r in rows if r["verify_share_max"] == r["verify_share_max"]]
    share = statistics.median(shares) if shares else None
    goals = Table(title="goals (issue 6), medians over the measured tasks")
    for col in ("goal", "measured", "met"):
        goals.add_column(col)
    goals.add_row(f"first step within {FIRST_STEP_GOAL_S:.0f} s of creation (warm cluster)", f"{first:.2f} s",
                  "yes" if first <= FIRST_STEP_GOAL_S else "NO")
    goals.add_row(f"verification <= {VERIFY_SHARE_GOAL:.0%} of training CPU (per validator, the larger)",
                  "-" if share is None else f"{share:.1%}",
                  "n/a" if share is None else ("yes" if share <= VERIFY_SHARE_GOAL else "NO"))
    goals.add_row("creation -> payout (information)",
                  f"{statistics.median(r['create_to_payout_s'] for r in rows):.2f} s, of which the challenge "
                  f"period {args.challenge_period_ms / 1000:.1f} s", "")
    console.print(goals)
    return {"rows": rows, "info": info, "args": vars(args),
            "goals": {"first_step_median_s": first, "first_step_met": first <= FIRST_STEP_GOAL_S,
                      "verify_share_median": share,
                      "verify_share_met": None if share is None else share <= VERIFY_SHARE_GOAL}}


if __name__ == "__main__":
    raise SystemExit(main())
