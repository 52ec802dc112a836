#!/usr/bin/env python3
"""Training overhead of paratrain's Ray path against a plain single-process PyTorch script (issue 5).

One run measures, on the same cores, the same recipe, epochs, hyperparameters and data:

1. **plain**: a plain PyTorch script, written inline below without paratrain's engine (its own data
   loading from scikit-learn or the corpus file, its own model definition, a plain ``randperm`` loop,
   one evaluation and ``torch.save`` at the end). It runs in a child process (``--plain-child``) so
   that it is a script of its own. Its time counts from after its imports to the saved model; the
   time with interpreter start and imports is reported as well. Before it runs, the benchmark checks
   that its training split and its model are the recipe's: the same bytes, the same parameter shapes;
2. **engine, in process** (``--local``: ``workers.runner.train_local``): paratrain's training loop
   without Ray (deterministic data order, per-step reseeding, checkpoints into the artifact store with
   an evaluation each); this separates the engine's cost from Ray's;
3. **Ray** (``workers.runner.train``): Ray Train's TorchTrainer on a local Ray cluster, on a warm worker
   group (``workers.runner.WarmTrainer``, as the worker daemon keeps one: started, then one untimed
   small task) with ``--workers`` (default 1) training workers; ``--one-off`` also times a group started
   for the task alone (the path without a warm group);
4. **end to end** (``--skip-e2e`` leaves it out): devnet and the orchestrator as processes of their own
   (``paratrain.local.LocalMarket``) and the worker daemon in this process (``workers.daemon.WorkerDaemon``,
   joined to the Ray cluster, followed through its observer events). A requester posts a task; the
   fixed overhead is measured from the claim (the timestamp of the block holding TaskClaimed) to the
   first training step (a step hook in the training worker), and from the last training step to the
   block holding ResultSubmitted. The daemon takes ``--e2e-tasks`` tasks (default 3): the first one
   warms the daemon itself (its worker group, chain metadata, codecs), the others are the warm figures
   the goal is about.

Each timed run is paired with a plain run just before it (``--repeat N`` pairs per worker count), and
the ratio goal is judged on the median of the pairs' ratios: the machine is shared, so the baseline is
always measured side by side.

Goals (issue 5): at most 1.15x the plain wall time for a job of two minutes or more; at most 10 s of
fixed overhead (claim to first step plus last step to attestation on chain) on a warm cluster.

The job size: ``--epochs N``, or by default the epochs that make the plain run take about
``--target-seconds`` (130) on this machine, calibrated by timing the plain loop for a few seconds.
``--quick`` is a smoke run (a plain run of about 12 s, a short end-to-end task).

Timestamps across processes are ``time.time()`` on the same machine; block timestamps are devnet's
``Timestamp.Now``, the wall clock at which it authored the block (instant seal: when the transaction
arrived).

Usage (from the repository root)::

    .venv/bin/python benchmarks/training_overhead.py --repeat 3     # full run: 3 pairs, about 20 minutes
    .venv/bin/python benchmarks/training_overhead.py --quick         # smoke run, about 3 minutes
    .venv/bin/python benchmarks/training_overhead.py --workers 1,2 --one-off --local --skip-e2e --json out.json
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
RATIO_GOAL = 1.15
FIXED_GOAL_S = 10.0
MIN_JOB_S = 120.0
PLAIN_RECIPES = ("digits_mlp", "digits_cnn", "char_lm")


# ================================================================================================
# 1. The plain PyTorch script (runs in a child process; imports nothing from paratrain)
# ================================================================================================
def plain_split(n: int, fraction: float, seed: int):
    import numpy as np

    order = np.random.RandomState(seed % (2**32)).permutation(n)
    n_val = max(1, int(round(n * fraction)))
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def plain_data(recipe: str, hp: dict[str, Any], validation: dict[str, Any], corpus_path: str | None):
    """(train_x, train_y, val_x, val_y, info) read the plain way: scikit-learn, or a text file."""
    import numpy as np
    import torch

    if recipe in ("digits_mlp", "digits_cnn"):
        from sklearn.datasets import load_digits

        d = load_digits()
        x = torch.from_numpy((d.data / 16.0).astype(np.float32))
        y = torch.from_numpy(d.target.astype(np.int64))
        if recipe == "digits_cnn":
            x = x.reshape(-1, 1, 8, 8)
        info = {"features": 64, "classes": 10}
    elif recipe == "char_lm":
        text = Path(corpus_path).read_text(encoding="utf-8")
        vocab = sorted(set(text))
        index = {ch: i for i, ch in enumerate(vocab)}
        ids = torch.tensor([index[ch] for ch in text], dtype=torch.long)
        window = int(hp["context"]) + 1
        seqs = ids[: (len(ids) // window) * window].reshape(-1, window)
        x, y = seqs[:, :-1], seqs[:, 1:]
        info = {"vocab": len(vocab)}
    else:
        raise SystemExit(f"no plain script for recipe {recipe!r} (have: {', '.join(PLAIN_RECIPES)})")
    train, val = plain_split(len(x), float(validation["fraction"]), int(validation["seed"]))
    train_t, val_t = torch.from_numpy(train), torch.from_numpy(val)
    return x[train_t], y[train_t], x[val_t], y[val_t], info


def plain_model(recipe: str, hp: dict[str, Any], info: dict[str, Any]):
    import torch
    from torch import nn

    if recipe == "digits_mlp":
        h = int(hp["hidden"])
        return nn.Sequential(nn.Linear(info["features"], h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(),
                             nn.Linear(h, info["classes"]))
    if recipe == "digits_cnn":
        c = int(hp["channels"])
        return nn.Sequential(nn.Conv2d(1, c, 3, padding=1), nn.ReLU(), nn.Conv2d(c, 2 * c, 3, padding=1), nn.ReLU(),
                             nn.MaxPool2d(2), nn.Flatten(), nn.Linear(2 * c * 16, info["classes"]))

    class CharModel(nn.Module):
        def __init__(self, vocab: int, embed: int, hidden: int) -> None:
            super().__init__()
            self.embed = nn.Embedding(vocab, embed)
            self.rnn = nn.GRU(embed, hidden, batch_first=True)
            self.head = nn.Linear(hidden, vocab)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out, _ = self.rnn(self.embed(x))
            return self.head(out).transpose(1, 2)

    return CharModel(info["vocab"], int(hp["embed"]), int(hp["hidden"]))


def plain_train(cfg: dict[str, Any], *, max_steps: int | None = None) -> dict[str, Any]:
    """The plain training loop. With `max_steps` it only times steps (the calibration)."""
    import torch
    from torch import nn

    t_start = time.time()
    recipe, hp = cfg["recipe"], cfg["hp"]
    torch.set_num_threads(int(hp.get("threads", 1)))  # the recipe's thread count, as the engine sets it
    train_x, train_y, val_x, val_y, info = plain_data(recipe, hp, cfg["validation"], cfg.get("corpus"))
    torch.manual_seed(int(cfg["seed"]))
    model = plain_model(recipe, hp, info)
    optimizer = torch.optim.Adam(model.parameters(), lr=float(hp["lr"]), weight_decay=float(hp.get("weight_decay", 0)))
    loss_fn = nn.functional.cross_entropy
    batch, n = int(hp["batch_size"]), len(train_x)
    steps_per_epoch = n // batch
    epochs = int(hp["epochs"])
    generator = torch.Generator().manual_seed(int(cfg["seed"]))
    t_first = t_last = None
    steps = 0
    calib_from = None
    model.train()
    for _epoch in range(epochs if max_steps is None else 10**9):
        perm = torch.randperm(n, generator=generator)
        for i in range(steps_per_epoch):
            idx = perm[i * batch:(i + 1) * batch]
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(train_x[idx]), train_y[idx])
            loss.backward()
            optimizer.step()
            steps += 1
            if steps == 1:
                t_first = time.time()
            if max_steps is not None:
                if steps == 20:
                    calib_from = time.perf_counter()
                if steps == max_steps:
                    return {"s_per_step": (time.perf_counter() - calib_from) / (max_steps - 20),
                            "steps_per_epoch": steps_per_epoch}
    t_last = time.time()
    model.eval()
    with torch.no_grad():
        logits = torch.cat([model(val_x[i:i + 512]) for i in range(0, len(val_x), 512)])
        accuracy = (logits.argmax(dim=1) == val_y).float().mean().item()
    torch.save(model.state_dict(), cfg["out"])
    t_end = time.time()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"t_start": t_start, "t_first_step": t_first, "t_last_step": t_last, "t_end": t_end, "steps": steps,
            "steps_per_epoch": steps_per_epoch, "accuracy": accuracy, "cpu_s": usage.ru_utime + usage.ru_stime,
            "last_loss": loss.item()}


def plain_fingerprint(cfg: dict[str, Any]) -> dict[str, Any]:
    """What the parent compares with the recipe: the training split's bytes and the parameter shapes."""
    train_x, train_y, _, _, info = plain_data(cfg["recipe"], cfg["hp"], cfg["validation"], cfg.get("corpus"))
    model = plain_model(cfg["recipe"], cfg["hp"], info)
    return {"data": tensors_digest(train_x, train_y),
            "shapes": {k: list(v.shape) for k, v in model.state_dict().items()}}


def tensors_digest(*tensors) -> str:
    h = hashlib.blake2b(digest_size=16)
    for t in tensors:
        h.update(str(t.dtype).encode() + str(tuple(t.shape)).encode())
        h.update(t.contiguous().numpy().tobytes())
    return h.hexdigest()


def plain_child_main(cfg_json: str) -> int:
    cfg = json.loads(cfg_json)
    import sklearn.datasets  # noqa: F401 - a plain script imports at the top: not in its timed part
    import torch  # noqa: F401
    result = plain_train(cfg)
    print("PLAIN-RESULT " + json.dumps(result), flush=True)
    return 0


# ================================================================================================
# Step timing inside the training workers (pickled by value into the Ray workers)
# ================================================================================================
class StepTimer:
    """A step hook: records when step 1 and the last step finished, per rank, into `directory`.

    It also records when this object was unpickled in the worker process (the training function's
    configuration arrived: the function is about to start) and when that process was created. In the
    worker daemon it runs before the daemon's own CancelHook (DaemonConfig.training_callbacks)."""

    def __init__(self, directory: str, total_steps: int) -> None:
        self.directory, self.total_steps = directory, total_steps
        self.loaded_at: float | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"directory": self.directory, "total_steps": self.total_steps}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.loaded_at = time.time()

    def __call__(self, step: int, rank: int) -> None:
        if step == 1 or step == self.total_steps:
            now = time.time()
            try:
                import psutil
                created = psutil.Process().create_time()
            except Exception:  # noqa: BLE001
                created = None
            kind = "first" if step == 1 else "last"
            path = os.path.join(self.directory, f"{kind}-rank{rank}.json")
            with open(path + ".tmp", "w") as f:
                json.dump({"t": now, "step": step, "rank": rank, "pid": os.getpid(), "loaded_at": self.loaded_at,
                           "process_created": created}, f)
            os.replace(path + ".tmp", path)


def read_step_times(directory: str) -> dict[str, dict[str, Any]]:
    out = {}
    for p in Path(directory).glob("*.json"):
        out[p.stem] = json.loads(p.read_text())
    return out


# ================================================================================================
# Measurements
# ================================================================================================
@dataclass
class Run:
    """One timed training job."""

    name: str
    wall_s: float                     # the job's wall time (see `what`)
    first_step_s: float | None        # start -> first step done
    tail_s: float | None              # last step done -> end (result ready)
    steps: int
    metric: float | None
    load: tuple[float, float, float]  # load average right after the run
    what: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def fixed_s(self) -> float | None:
        if self.first_step_s is None or self.tail_s is None:
            return None
        return self.first_step_s + self.tail_s

    @property
    def steady_s(self) -> float | None:
        return None if self.fixed_s is None else self.wall_s - self.fixed_s


def load_avg() -> tuple[float, float, float]:
    return tuple(round(x, 2) for x in os.getloadavg())  # type: ignore[return-value]


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')} load {os.getloadavg()[0]:.2f}] {msg}", flush=True)


def make_spec(recipe_name: str, dataset_ref, epochs: int, *, checkpoints: int, n_train: int, hp_extra: dict,
              seed: int, timeout_s: float, target: float):
    from workers.engine import steps_of
    from workers.recipes import get_recipe
    from workers.spec import Evaluation, Limits, TaskSpec, Validation

    recipe = get_recipe(recipe_name)
    hp = recipe.hyperparameters({"epochs": epochs, **hp_extra})
    total = steps_of(n_train, int(hp["batch_size"]), epochs, 1)
    every = max(1, math.ceil(total / checkpoints))
    return TaskSpec(recipe=recipe_name, dataset=dataset_ref,
                    evaluation=Evaluation(recipe.metric, target, recipe.mode),
                    hyperparameters={"epochs": epochs, **hp_extra}, seed=seed, validation=Validation(0.2, 0),
                    checkpoint_every=every, limits=Limits(timeout_s=timeout_s, memory_mb=2048))


def recipe_facts(spec, store) -> tuple[Any, dict[str, Any], Any]:
    from workers.datasets import decode_dataset
    from workers.recipes import get_recipe

    recipe = get_recipe(spec.recipe)
    hp = recipe.hyperparameters(spec.hyperparameters)
    prepared = recipe.prepare(decode_dataset(store.fetch(spec.dataset.uri, spec.dataset.hash)), hp, spec.validation)
    return recipe, hp, prepared


def plain_config(spec, hp: dict[str, Any], corpus: str | None, out: str) -> dict[str, Any]:
    return {"recipe": spec.recipe, "hp": hp, "seed": spec.seed,
            "validation": {"fraction": spec.validation.fraction, "seed": spec.validation.seed},
            "corpus": corpus, "out": out}


def check_plain_matches_recipe(cfg: dict[str, Any], recipe, hp, prepared) -> None:
    import torch

    fp = plain_fingerprint(cfg)
    ours = tensors_digest(prepared.train_x, prepared.train_y)
    if fp["data"] != ours:
        raise SystemExit("the plain script's training split differs from the recipe's: not the same data")
    torch.manual_seed(0)
    shapes = {k: list(v.shape) for k, v in recipe.build_model(hp, prepared).state_dict().items()}
    if shapes != fp["shapes"]:
        raise SystemExit(f"the plain script's model differs from the recipe's:\n{shapes}\n{fp['shapes']}")


def run_plain(cfg: dict[str, Any]) -> Run:
    started = time.time()
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--plain-child", json.dumps(cfg)],
                          cwd=REPO_ROOT, capture_output=True, text=True)
    ended = time.time()
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("PLAIN-RESULT ")), None)
    if proc.returncode != 0 or line is None:
        raise SystemExit(f"the plain script failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    r = json.loads(line[len("PLAIN-RESULT "):])
    return Run("plain PyTorch script (1 process)", wall_s=r["t_end"] - r["t_start"],
               first_step_s=r["t_first_step"] - r["t_start"], tail_s=r["t_end"] - r["t_last_step"],
               steps=r["steps"], metric=r["accuracy"], load=load_avg(), what="data load -> model saved",
               extra={"process_s": ended - started, "cpu_s": r["cpu_s"]})


def run_local(spec, store, total_steps: int, tmp: Path) -> Run:
    from workers.runner import train_local

    steps_dir = tmp / f"steps-local-{time.time_ns()}"
    steps_dir.mkdir()
    hook = StepTimer(str(steps_dir), total_steps)
    hook.loaded_at = time.time()
    t0 = time.time()
    result = train_local(spec, store, step_hook=hook)
    t1 = time.time()
    times = read_step_times(str(steps_dir))
    return Run("paratrain engine in process (no Ray)", wall_s=t1 - t0,
               first_step_s=times["first-rank0"]["t"] - t0, tail_s=t1 - times["last-rank0"]["t"],
               steps=total_steps, metric=result.metrics.get(spec.evaluation.metric), load=load_avg(),
               what="train_local() call -> return", extra={"checkpoints": len(result.checkpoints)})


def run_ray(spec, store, num_workers: int, total_steps: int, tmp: Path, name: str | None = None,
            trainer=None) -> Run:
    from workers.runner import train

    steps_dir = tmp / f"steps-ray{num_workers}-{time.time_ns()}"
    steps_dir.mkdir()
    final_at: list[float] = []
    first_progress: list[float] = []

    def on_progress(p) -> None:
        if not first_progress:
            first_progress.append(time.time())
        if p.final:
            final_at.append(time.time())

    t0 = time.time()
    result = train(spec, store, num_workers=num_workers, on_progress=on_progress,
                   step_hook=StepTimer(str(steps_dir), total_steps), storage_path=str(tmp / "ray-results"),
                   trainer=trainer)
    t1 = time.time()
    times = read_step_times(str(steps_dir))
    first = times["first-rank0"]
    last = times["last-rank0"]
    firsts = [v["t"] for k, v in times.items() if k.startswith("first")]
    lasts = [v["t"] for k, v in times.items() if k.startswith("last")]
    extra = {
        "ray": True,
        "checkpoints": len(result.checkpoints),
        # where the start goes (rank 0): the task reached the training worker (its plan unpickled there), step 1
        "start.task_in_training_worker": (first["loaded_at"] - t0) if first.get("loaded_at") else None,
        "start.first_step_all_ranks": max(firsts) - t0,
        # where the end goes: last step on all ranks, final report in the driver, fit() returned
        "end.last_step_all_ranks": max(lasts) - last["t"],
        "end.final_report_in_driver": (final_at[0] - last["t"]) if final_at else None,
        "end.train_returned": t1 - last["t"],
        "first_progress": (first_progress[0] - t0) if first_progress else None,
    }
    kind = "warm group" if trainer is not None else "group per task"
    return Run(name or f"paratrain Ray Train, {num_workers} worker{'s' if num_workers > 1 else ''} ({kind})",
               wall_s=t1 - t0, first_step_s=first["t"] - t0, tail_s=t1 - last["t"], steps=total_steps,
               metric=result.metrics.get(spec.evaluation.metric), load=load_avg(),
               what="train() call -> TrainingResult", extra=extra)


def micro_costs(spec, store, recipe, hp, prepared, repeat: int = 5) -> dict[str, float]:
    """Per-checkpoint costs of the engine, timed in this process: pack + put of a checkpoint, one evaluation."""
    import torch

    from workers import tensorio
    from workers.engine import _evaluate

    torch.manual_seed(spec.seed)
    model = recipe.build_model(hp, prepared)
    optimizer = recipe.optimizer(model.parameters(), hp)
    x, y = prepared.train_x[:int(hp["batch_size"])], prepared.train_y[:int(hp["batch_size"])]
    optimizer.zero_grad()
    recipe.loss(model(x), y).backward()
    optimizer.step()
    t0 = time.perf_counter()
    for i in range(repeat):
        blob = tensorio.pack_state(model.state_dict(), optimizer.state_dict(),
                                   {"kind": "checkpoint", "spec_hash": "x", "step": i, "epoch": 0, "world_size": 1,
                                    "recipe": recipe.name})
        store.put(blob)
    pack_put = (time.perf_counter() - t0) / repeat
    t0 = time.perf_counter()
    for _ in range(repeat):
        _evaluate(recipe, model, prepared, hp)
    evaluate = (time.perf_counter() - t0) / repeat
    return {"checkpoint_pack_put_s": pack_put, "evaluate_s": evaluate, "checkpoint_bytes": len(blob)}


# ================================================================================================
# End to end on devnet
# ================================================================================================
def run_e2e(recipe_name: str, store_root: Path, epochs: int, num_workers: int, args, tmp: Path) -> list[dict[str, Any]]:
    from paratrain.local import LocalMarket
    from workers.artifacts import ArtifactStore
    from workers.daemon import DaemonConfig, WorkerDaemon
    from workers.datasets import add_dataset
    from workers.engine import steps_of
    from workers.recipes import get_recipe
    from workers.spec import DatasetRef

    log_path = tmp / "e2e.log"
    handler = logging.FileHandler(log_path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root_logger = logging.getLogger()
    root_logger.addHandler(handler)
    root_logger.setLevel(logging.INFO)
    for noisy in ("websocket", "substrateinterface", "grpc", "urllib3", "fsspec"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    requester = ArtifactStore(store_root / "requester")
    digest, uri = add_dataset(get_recipe(recipe_name).dataset, requester)
    ref = DatasetRef(digest, uri)
    spec_probe = make_spec(recipe_name, ref, epochs, checkpoints=5, n_train=1, hp_extra={}, seed=3,
                           timeout_s=1800, target=0.0)
    _, hp, prepared = recipe_facts(spec_probe, requester)
    n_train = len(prepared.train_x)
    # a target every run reaches: the daemon releases a claim whose model misses its target
    low_target = 0.1 if spec_probe.evaluation.mode == "max" else 1e9

    timings: dict[int, dict[str, Any]] = {}

    class Timers:
        """The daemon's training callback (workers.daemon.TrainingCallback): a StepTimer in each task's
        training workers, and the time the daemon handed the task to training."""

        def step_hook(self, task_id: int, spec: Any) -> StepTimer:
            steps_dir = tmp / f"steps-e2e-{task_id}"
            steps_dir.mkdir(exist_ok=True)
            total = steps_of(n_train, int(hp["batch_size"]), epochs, num_workers)
            timings[task_id] = {"train_called": time.time(), "dir": steps_dir, "total_steps": total}
            return StepTimer(str(steps_dir), total)

    # the daemon's events (workers.observers) per task: (wall time it was seen, its detail)
    seen: dict[tuple[str, int], tuple[float, dict[str, Any]]] = {}

    def observe(what: str, detail: Any) -> None:
        if "task_id" not in detail:
            return
        task_id = int(detail["task_id"])
        now = time.time()
        rec = timings.get(task_id)
        if what == "progress" and detail.get("final") and rec is not None:  # the final report reached the driver
            rec["final_report"] = now
        if what == "trained" and rec is not None:  # sent as training returns (the result card stored)
            rec["train_returned"] = now
            rec["steps"] = read_step_times(str(rec["dir"]))
        seen[(what, task_id)] = (now, dict(detail))

    try:
        log("e2e: starting devnet and the orchestrator")
        with LocalMarket(tmp / "e2e-market") as market:
            chain = market.chain
            market.register("Bob", "Trainer")
            daemon = WorkerDaemon(DaemonConfig(
                orchestrator=market.target, chain_url=market.chain_url, key="//Bob", store=str(store_root / "worker"),
                trusted_stores=(requester.root,), num_workers=num_workers, state_dir=str(tmp / "worker-state"),
                poll_wait_s=2.0, max_tasks=args.e2e_tasks, training_callbacks=(Timers(),)))
            daemon.subscribe(observe)
            worker = market.daemon_thread(daemon, "worker")
            results = []
            for i in range(args.e2e_tasks):
                spec = make_spec(recipe_name, ref, epochs, checkpoints=5, n_train=n_train, hp_extra={}, seed=3 + i,
                                 timeout_s=1800, target=low_target)
                task_id, receipt = market.post(spec, requester, deadline_in=5_000)
                created_ms = chain.timestamp.now(at=receipt.block_hash)
                log(f"e2e: task {task_id} posted ({epochs} epochs, {num_workers} Ray workers); waiting for the result")
                deadline = time.monotonic() + args.e2e_timeout
                while ("submitted", task_id) not in seen:
                    if not worker.alive:
                        raise SystemExit(f"the worker daemon stopped ({worker.error!r}); see {log_path}")
                    if ("refused", task_id) in seen:
                        raise SystemExit(f"the daemon refused task {task_id}; see {log_path}")
                    if time.monotonic() > deadline:
                        raise SystemExit(f"task {task_id} was not submitted in {args.e2e_timeout} s; see {log_path}")
                    time.sleep(0.1)
                claim_seen, claimed = seen[("claimed", task_id)]
                submit_entered, _ = seen[("trained", task_id)]  # the daemon goes straight on to submit_result
                submit_returned, submitted = seen[("submitted", task_id)]
                claim_ms = chain.timestamp.now(at=chain.block_hash(claimed["block"]))
                result_ms = chain.timestamp.now(at=chain.block_hash(submitted["block"]))
                rec = timings[task_id]
                first, last = rec["steps"]["first-rank0"], rec["steps"]["last-rank0"]
                claim_block = claim_ms / 1000
                result_block = result_ms / 1000
                row = {
                    "task_id": task_id, "epochs": epochs, "steps": rec["total_steps"], "num_workers": num_workers,
                    "metric": submitted["metrics"].get(spec.evaluation.metric),
                    "posted_to_claim_block_s": (claim_ms - created_ms) / 1000,
                    "claim_to_first_step_s": first["t"] - claim_block,
                    "last_step_to_result_block_s": result_block - last["t"],
                    "training_s": last["t"] - first["t"],
                    "claim_to_result_block_s": result_block - claim_block,
                    "breakdown": {
                        "claim block -> daemon sees the claim": claim_seen - claim_block,
                        "-> train() called": rec["train_called"] - claim_seen,
                        "-> task in the training worker": (first["loaded_at"] - rec["train_called"])
                        if first.get("loaded_at") else None,
                        "-> first step done": first["t"] - (first.get("loaded_at") or rec["train_called"]),
                        "last step -> final report in the driver": rec.get("final_report", float("nan")) - last["t"],
                        "-> train() returned (result card stored)": rec["train_returned"] - rec.get("final_report",
                                                                                                  last["t"]),
                        "-> submit_result in a block": result_block - submit_entered,
                        "(daemon sees ResultSubmitted)": submit_returned - result_block,
                    },
                    "load": load_avg(),
                }
                results.append(row)
                log(f"e2e: task {task_id}: claim -> first step {row['claim_to_first_step_s']:.2f} s, "
                    f"last step -> ResultSubmitted {row['last_step_to_result_block_s']:.2f} s")
            worker.join(60)
            return results
    finally:
        root_logger.removeHandler(handler)


# ================================================================================================
# Report
# ================================================================================================
def fmt(v: float | None, unit: str = " s", digits: int = 2) -> str:
    return "-" if v is None or v != v else f"{v:.{digits}f}{unit}"


def report(runs: list[Run], e2e: list[dict[str, Any]], info: dict[str, Any], console) -> dict[str, Any]:
    """Every run, each Ray run against the plain run just before it (a pair), then medians over the pairs."""
    import statistics

    from rich.table import Table

    plains = [r for r in runs if not r.extra.get("ray") and r.extra.get("plain")]
    steps = plains[0].steps if plains else 0
    table = Table(title=f"{info['recipe']}, {info['epochs']} epochs, {steps} steps "
                        f"(same data, hyperparameters, threads={info['threads']}) on {os.cpu_count()} cores")
    for col in ("run", "wall", "vs plain", "start -> 1st step", "last step -> end", "fixed", "steady",
                "steady vs plain", info["metric"], "load 1/5/15 after"):
        table.add_column(col, justify="left" if col == "run" else "right")
    out_runs = []
    for r in runs:
        pair = r.extra.get("pair")
        ratio = r.wall_s / pair.wall_s if pair is not None else None
        steady_ratio = (r.steady_s / pair.steady_s) if pair is not None and r.steady_s and pair.steady_s else None
        r.extra["ratio"], r.extra["steady_ratio"] = ratio, steady_ratio
        table.add_row(r.name, fmt(r.wall_s, " s", 1), "1.00x" if pair is None else f"{ratio:.3f}x",
                      fmt(r.first_step_s), fmt(r.tail_s), fmt(r.fixed_s), fmt(r.steady_s, " s", 1),
                      "-" if steady_ratio is None else f"{steady_ratio:.3f}x",
                      fmt(r.metric, "", 4), " / ".join(f"{x:.2f}" for x in r.load))
        out_runs.append({"name": r.name, "wall_s": r.wall_s, "ratio": ratio, "first_step_s": r.first_step_s,
                         "tail_s": r.tail_s, "fixed_s": r.fixed_s, "steady_s": r.steady_s,
                         "steady_ratio": steady_ratio, "metric": r.metric, "steps": r.steps, "load": r.load,
                         "what": r.what, "extra": {k: v for k, v in r.extra.items() if k != "pair"}})
    console.print(table)
    for r in plains[:1]:
        console.print(f"plain script: {r.extra['process_s']:.1f} s with interpreter start and imports, "
                      f"{r.extra['cpu_s']:.1f} s CPU; 'wall' counts from after its imports (the stricter baseline).")
    for r in runs:
        if any(k.startswith(("start.", "end.")) for k in r.extra):
            parts = ", ".join(f"{k} {fmt(v)}" for k, v in r.extra.items() if k.startswith(("start.", "end.")))
            console.print(f"[dim]{r.name}: {parts}[/dim]")
    if info.get("micro"):
        m = info["micro"]
        console.print(f"[dim]engine per checkpoint (in this process): pack+put {m['checkpoint_pack_put_s'] * 1000:.1f} ms "
                      f"({m['checkpoint_bytes']} bytes), evaluation {m['evaluate_s'] * 1000:.1f} ms[/dim]")

    goals = Table(title="goals (issue 5): medians over the pairs (each run / the plain run just before it)")
    for col in ("goal", "measured", "met"):
        goals.add_column(col)
    verdicts = []
    kinds: dict[str, list[Run]] = {}
    for r in runs:
        if r.extra.get("pair") is not None:
            kinds.setdefault(r.name, []).append(r)
    summary = {}
    for name, group in kinds.items():
        ratios = [r.extra["ratio"] for r in group]
        plain_walls = [r.extra["pair"].wall_s for r in group]
        median = statistics.median(ratios)
        long_enough = statistics.median(plain_walls) >= MIN_JOB_S
        summary[name] = {"median_ratio": median, "ratios": ratios,
                         "median_steady_ratio": statistics.median([r.extra["steady_ratio"] for r in group
                                                                   if r.extra["steady_ratio"]] or [float("nan")]),
                         "median_plain_s": statistics.median(plain_walls)}
        if not group[0].extra.get("ray"):
            console.print(f"[dim]{name}: median {median:.3f}x plain ({', '.join(f'{x:.3f}' for x in ratios)})[/dim]")
            continue
        met = median <= RATIO_GOAL
        note = "" if long_enough else f" (plain job {statistics.median(plain_walls):.0f} s < {MIN_JOB_S:.0f} s: n/a)"
        goals.add_row(f"wall time <= {RATIO_GOAL}x plain, {name}",
                      f"median {median:.3f}x of {len(ratios)} ({', '.join(f'{x:.3f}' for x in ratios)}){note}",
                      ("yes" if met else "NO") if long_enough else "n/a")
        verdicts.append({"goal": "ratio", "run": name, "value": median, "values": ratios,
                         "met": met if long_enough else None})
    warm_fixed = []
    for row in e2e:
        fixed = row["claim_to_first_step_s"] + row["last_step_to_result_block_s"]
        met = fixed <= FIXED_GOAL_S
        first = row is e2e[0]
        if not first:
            warm_fixed.append(fixed)
        goals.add_row(f"fixed overhead <= {FIXED_GOAL_S:.0f} s, e2e task {row['task_id']}"
                      f"{' (first task of the daemon: not a warm figure)' if first else ' (warm)'}",
                      f"{row['claim_to_first_step_s']:.2f} + {row['last_step_to_result_block_s']:.2f} = {fixed:.2f} s",
                      "yes" if met else "NO")
        verdicts.append({"goal": "fixed", "task": row["task_id"], "value": fixed, "met": met, "warm": not first})
    if warm_fixed:
        median = statistics.median(warm_fixed)
        goals.add_row(f"fixed overhead <= {FIXED_GOAL_S:.0f} s, median of the warm tasks", f"{median:.2f} s",
                      "yes" if median <= FIXED_GOAL_S else "NO")
    if e2e:
        e2e_table = Table(title=f"end to end on devnet: {e2e[0]['epochs']} epochs ({e2e[0]['steps']} steps), "
                                f"{e2e[0]['num_workers']} Ray workers")
        e2e_table.add_column("interval")
        for row in e2e:
            e2e_table.add_column(f"task {row['task_id']}", justify="right")
        keys = [("posted -> TaskClaimed block", "posted_to_claim_block_s"),
                ("TaskClaimed block -> first step", "claim_to_first_step_s"),
                ("training (first -> last step)", "training_s"),
                ("last step -> ResultSubmitted block", "last_step_to_result_block_s"),
                ("TaskClaimed -> ResultSubmitted blocks", "claim_to_result_block_s")]
        for label, key in keys:
            e2e_table.add_row(label, *[fmt(row[key]) for row in e2e])
        for label in e2e[0]["breakdown"]:
            e2e_table.add_row(f"[dim]  {label}[/dim]", *[fmt(row["breakdown"][label]) for row in e2e])
        e2e_table.add_row("load 1/5/15 after", *[" / ".join(f"{x:.2f}" for x in row["load"]) for row in e2e])
        console.print(e2e_table)
    console.print(goals)
    return {"runs": out_runs, "summary": summary, "e2e": e2e, "goals": verdicts, **info}


# ================================================================================================
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", default="digits_mlp", choices=PLAIN_RECIPES)
    parser.add_argument("--epochs", type=int, help="epochs of the job (default: calibrated to --target-seconds)")
    parser.add_argument("--target-seconds", type=float, default=130.0,
                        help="plain run time the default epochs aim at (default 130; the goal needs >= 120)")
    parser.add_argument("--quick", action="store_true", help="smoke run: a ~12 s plain job, a short e2e task")
    parser.add_argument("--workers", default="1", help="Ray Train worker counts to time (default 1; e.g. 1,2)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="pairs (plain run, then the Ray run) per worker count; the goal is on the median")
    parser.add_argument("--one-off", action="store_true",
                        help="also time train() on a group started for the task alone (the path without a warm "
                             "group, e.g. a validator's replay of a multi-worker segment)")
    parser.add_argument("--checkpoints", type=int, default=20, help="checkpoints per job (default 20)")
    parser.add_argument("--threads", type=int, help="torch threads per process (hyperparameter; recipe default 1)")
    parser.add_argument("--local", action="store_true", help="also time the engine in process (no Ray)")
    parser.add_argument("--skip-local", action="store_true", help=argparse.SUPPRESS)  # the default now
    parser.add_argument("--skip-e2e", action="store_true", help="do not run the end-to-end devnet measurement")
    parser.add_argument("--e2e-epochs", type=int, help="epochs of the e2e tasks (default 30, --quick 10)")
    parser.add_argument("--e2e-workers", type=int, default=1, help="Ray Train workers of the daemon (default 1)")
    parser.add_argument("--e2e-tasks", type=int, default=3, help="e2e tasks; the first warms the daemon (default 3)")
    parser.add_argument("--e2e-timeout", type=float, default=300.0)
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    parser.add_argument("--plain-child", metavar="CONFIG", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.plain_child:
        return plain_child_main(args.plain_child)

    sys.path.insert(0, str(REPO_ROOT))
    os.environ.setdefault("RAY_TRAIN_ENABLE_PRINT_PATCH", "0")
    from rich.console import Console

    console = Console(width=None if sys.stdout.isatty() else 160)
    if __name__ != "__main__":  # the step hook must reach the Ray workers by value
        import cloudpickle
        cloudpickle.register_pickle_by_value(sys.modules[__name__])

    from workers.artifacts import ArtifactStore
    from workers.datasets import add_dataset
    from workers.engine import steps_of
    from workers.recipes import get_recipe
    from workers.spec import DatasetRef

    worker_counts = [int(x) for x in args.workers.split(",") if x.strip()]
    target_s = 12.0 if args.quick and args.epochs is None else args.target_seconds
    e2e_epochs = args.e2e_epochs or (10 if args.quick else 30)
    load_start = load_avg()
    with tempfile.TemporaryDirectory(prefix="paratrain-overhead-") as tmpdir:
        tmp = Path(tmpdir)
        store = ArtifactStore(tmp / "store")
        recipe = get_recipe(args.recipe)
        digest, uri = add_dataset(recipe.dataset, store)
        ref = DatasetRef(digest, uri)
        hp_extra = {} if args.threads is None else {"threads": args.threads}
        probe = make_spec(args.recipe, ref, 1, checkpoints=1, n_train=1, hp_extra=hp_extra, seed=0, timeout_s=60,
                          target=0.0)
        recipe, hp, prepared = recipe_facts(probe, store)
        n_train = len(prepared.train_x)
        corpus = None
        if recipe.dataset == "tiny_shakespeare":
            corpus = str(tmp / "corpus.txt")
            Path(corpus).write_bytes(store.get(digest))
        cfg = plain_config(probe, hp, corpus, str(tmp / "plain-model.pt"))
        check_plain_matches_recipe(cfg, recipe, hp, prepared)
        log(f"{args.recipe}: the plain script's data ({n_train} training examples) and model match the recipe's")

        epochs = args.epochs
        if epochs is None:
            calib = plain_train({**cfg, "hp": {**hp, "epochs": 1}}, max_steps=1500 if args.recipe != "char_lm" else 100)
            per_epoch = calib["s_per_step"] * calib["steps_per_epoch"]
            epochs = max(1, math.ceil(target_s / per_epoch))  # in-loop timing: the real run adds a little
            log(f"calibration: {calib['s_per_step'] * 1000:.2f} ms/step, {calib['steps_per_epoch']} steps/epoch "
                f"-> {epochs} epochs for ~{target_s:.0f} s")
        timeout = max(900.0, target_s * 20)
        spec = make_spec(args.recipe, ref, epochs, checkpoints=args.checkpoints, n_train=n_train, hp_extra=hp_extra,
                         seed=1, timeout_s=timeout, target=0.0)
        hp = recipe.hyperparameters(spec.hyperparameters)
        cfg = plain_config(spec, hp, corpus, str(tmp / "plain-model.pt"))
        steps1 = steps_of(n_train, int(hp["batch_size"]), epochs, 1)
        for w in worker_counts:
            if steps_of(n_train, int(hp["batch_size"]), epochs, w) != steps1:
                log(f"note: {w} workers take {steps_of(n_train, int(hp['batch_size']), epochs, w)} steps, "
                    f"not {steps1} (drop_last per rank)")
        runs: list[Run] = []

        def paired(run_fn, label: str) -> Run:
            """The plain script, then the run: a pair measured back to back under the same load."""
            log(f"plain script: {epochs} epochs, {steps1} steps")
            plain = run_plain(cfg)
            plain.extra["plain"] = True
            runs.append(plain)
            log(f"plain: {plain.wall_s:.1f} s ({plain.steps} steps, accuracy {plain.metric:.4f})")
            if plain.steps != steps1:
                log(f"warning: the plain script took {plain.steps} steps, the engine {steps1}")
            log(label)
            r = run_fn()
            r.extra["pair"] = plain
            runs.append(r)
            log(f"{r.name}: {r.wall_s:.1f} s = {r.wall_s / plain.wall_s:.3f}x plain (first step after "
                f"{r.first_step_s:.2f} s, end {r.tail_s:.2f} s after the last step)")
            return r

        if args.local:
            for _ in range(args.repeat):
                paired(lambda: run_local(spec, store, steps1, tmp), "engine in process (train_local)")

        import ray

        from workers.runner import WarmTrainer, ensure_ray, train

        log("starting the local Ray cluster")
        t0 = time.time()
        ensure_ray(num_cpus=os.cpu_count())  # no dashboard, no worker logs in the driver; worker niceness 0
        ray_start_s = time.time() - t0
        warm = make_spec(args.recipe, ref, 1, checkpoints=2, n_train=n_train, hp_extra=hp_extra, seed=2,
                         timeout_s=600, target=0.0)
        warmups = {}
        for w in worker_counts:
            total_w = steps_of(n_train, int(hp["batch_size"]), epochs, w)
            trainer = WarmTrainer(w, storage_path=str(tmp / "ray-results"))
            t0 = time.time()
            train(warm, store, num_workers=w, trainer=trainer)  # starts the group, one small task: untimed
            warmups[w] = time.time() - t0
            log(f"warm group of {w} worker(s) started, first task done: {warmups[w]:.1f} s (not counted)")
            for _ in range(args.repeat):
                paired(lambda w=w, trainer=trainer, total_w=total_w: run_ray(spec, store, w, total_w, tmp,
                                                                               trainer=trainer),
                       f"Ray Train, {w} worker(s) on the warm group: {epochs} epochs")
            trainer.close(wait_s=60)  # its CPUs back before the next group starts
            if args.one_off:
                train(warm, store, num_workers=w, storage_path=str(tmp / "ray-results"))  # untimed warm-up
                for _ in range(args.repeat):
                    paired(lambda w=w, total_w=total_w: run_ray(spec, store, w, total_w, tmp),
                           f"Ray Train, {w} worker(s), a group for the task alone: {epochs} epochs")
                time.sleep(10)  # the last group's background tear-down
        micro = micro_costs(spec, store, recipe, hp, prepared)

        e2e: list[dict[str, Any]] = []
        if not args.skip_e2e:
            e2e = run_e2e(args.recipe, tmp / "e2e-stores", e2e_epochs, args.e2e_workers, args, tmp)
        ray.shutdown()

        info = {"recipe": args.recipe, "epochs": epochs, "threads": int(hp.get("threads", 1)),
                "metric": recipe.metric, "checkpoints": args.checkpoints, "checkpoint_every": spec.checkpoint_every,
                "ray_start_s": ray_start_s, "warmups_s": warmups, "micro": micro, "load_start": load_start,
                "load_end": load_avg(), "cores": os.cpu_count(), "argv": sys.argv[1:], "repeat": args.repeat,
                "revision": _revision()}
        console.print(f"Ray cluster start {ray_start_s:.1f} s; warm group start + first task "
                      + ", ".join(f"{w} worker(s) {s:.1f} s" for w, s in warmups.items())
                      + f"; load average at start {load_start}, at end {info['load_end']}")
        out = report(runs, e2e, info, console)
        if args.json:
            Path(args.json).write_text(json.dumps(out, indent=1, default=str))
    return 0


def _revision() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                              text=True).stdout.strip()
    except OSError:
        return ""


if __name__ == "__main__":
    raise SystemExit(main())
