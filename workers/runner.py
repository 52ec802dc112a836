"""Running a task: in-process, or on a Ray cluster with Ray Train's TorchTrainer (DDP).

`train(spec, store, num_workers=2)` trains a task on Ray: it joins the cluster that is already
initialised, or the one at ``RAY_ADDRESS`` (e.g. a KubeRay head), or starts a local one. Each
training worker runs `workers.engine.run_loop`; DDP over gloo on CPU, NCCL with ``use_gpu``.
Rank 0 writes each checkpoint into the artifact store and reports a Ray Train checkpoint that
holds only the trajectory so far (the list of hashes); when a worker process dies, Ray Train
(``FailureConfig(max_failures)``) restarts the worker group, which restores model and optimizer
from the last checkpoint in *our* store, verified by hash, and finishes with the same result.
`train_local` runs the same loop in this process (world size 1, no Ray).
`replay_segment` re-executes one segment from a checkpoint for a validator's spot check.
"""
from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from workers import tensorio
from workers.artifacts import ArtifactStore
from workers.engine import LoopPlan, Report, TrainingError, TrainingTimeoutError, run_loop
from workers.recipes import code_hash, get_recipe
from workers.spec import TaskSpec
from workers.trajectory import merkle_root_hex

METRIC_SCALE = 1_000_000  # the pallet's metrics are i64 micro-units
TRAJECTORY_FILE = "trajectory.json"


@dataclass(frozen=True)
class Progress:
    """One progress event (a checkpoint, or the end) for the daemon to stream."""

    epoch: int
    step: int
    total_steps: int
    loss: float
    metrics: dict[str, float]
    checkpoint_hash: str | None
    checkpoint_root: str          # trajectory root of the checkpoints so far (hex)
    checkpoints: int
    final: bool = False


@dataclass(frozen=True)
class TrainingResult:
    model_hash: str               # blake2-256 (hex) of the weights (PTTS1)
    artifact_uri: str             # where the weights are
    card_hash: str                # the model card JSON
    card_uri: str
    metrics: dict[str, float]     # measured on the validation split
    trajectory_root: str
    checkpoints: list[str]
    code_hash: str
    dataset_hash: str
    spec_hash: str
    started_ms: int
    finished_ms: int
    target_met: bool
    world_size: int = 1

    def metrics_micro(self) -> list[tuple[str, int]]:
        """Metrics as the pallet takes them: (name, round(value * 10^6)), sorted by name."""
        return [(k, int(round(v * METRIC_SCALE))) for k, v in sorted(self.metrics.items())]

    def to_attestation(self, task_id: int, worker: str) -> dict[str, Any]:
        """The `Attestation` value of submit_result (sign it with runtime_bindings.attestation)."""
        return {"task_id": task_id, "worker": worker, "model_hash": "0x" + self.model_hash,
                "artifact_uri": self.artifact_uri, "metrics": self.metrics_micro(),
                "trajectory_root": "0x" + self.trajectory_root,
                "checkpoints": ["0x" + h for h in self.checkpoints], "code_hash": "0x" + self.code_hash,
                "dataset_hash": "0x" + self.dataset_hash, "started_ms": self.started_ms,
                "finished_ms": self.finished_ms}


ProgressCallback = Callable[[Progress], None]


def _progress(r: Report) -> Progress:
    done = [h for h in r.checkpoints if h]
    return Progress(epoch=r.epoch, step=r.step, total_steps=r.total_steps, loss=r.loss, metrics=dict(r.metrics),
                    checkpoint_hash=done[-1] if done else None, checkpoint_root=merkle_root_hex(done),
                    checkpoints=len(done), final=r.final)


def _plan(spec: TaskSpec, store: ArtifactStore, started: float, **kw: Any) -> LoopPlan:
    return LoopPlan(spec_json=spec.canonical_bytes(), store=store, deadline=started + spec.limits.timeout_s, **kw)


def _finish(spec: TaskSpec, store: ArtifactStore, final: Report, started: float, world_size: int) -> TrainingResult:
    if final.model_hash is None or final.card is None:
        raise TrainingError("the run ended without a model")
    recipe_hash = code_hash(get_recipe(spec.recipe, allow_custom=True))
    checkpoints = list(final.checkpoints)
    root = merkle_root_hex(checkpoints)
    card = {**final.card, "code_hash": recipe_hash, "trajectory_root": root, "checkpoints": checkpoints}
    card_hash = store.put(json.dumps(card, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode())
    metric = final.metrics.get(spec.evaluation.metric)
    return TrainingResult(
        model_hash=final.model_hash, artifact_uri=store.uri(final.model_hash), card_hash=card_hash,
        card_uri=store.uri(card_hash), metrics=dict(final.metrics), trajectory_root=root, checkpoints=checkpoints,
        code_hash=recipe_hash, dataset_hash=spec.dataset.hash, spec_hash=spec.spec_hash_hex(),
        started_ms=int(started * 1000), finished_ms=int(time.time() * 1000),
        target_met=metric is not None and spec.evaluation.met(metric), world_size=world_size)


# In-process -------------------------------------------------------------------------------------
def train_local(spec: TaskSpec, store: ArtifactStore, *, on_progress: ProgressCallback | None = None,
                resume_from: list[str] | None = None, allow_custom: bool = False,
                step_hook: Callable[[int, int], None] | None = None) -> TrainingResult:
    """Train in this process (world size 1, no Ray): tests, validators, small tasks."""
    spec.validate()
    get_recipe(spec.recipe, allow_custom=allow_custom)
    started = time.time()
    plan = _plan(spec, store, started, allow_custom=allow_custom, resume_from=list(resume_from or []),
                 step_hook=step_hook)
    final = run_loop(plan, report=lambda r: on_progress(_progress(r)) if on_progress else None)
    return _finish(spec, store, final, started, 1)


# On Ray -----------------------------------------------------------------------------------------
def ensure_ray(address: str | None = None, **init_kwargs: Any) -> None:
    """Join the running Ray (or `address`, or RAY_ADDRESS), else start a local one."""
    import ray

    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, **init_kwargs)
    else:
        ray.init(include_dashboard=False, log_to_driver=False, **init_kwargs)


def _ray_worker_entry(config: dict[str, Any]) -> None:
    import ray.train
    import ray.train.torch

    plan: LoopPlan = config["plan"]
    queue = config.get("queue")
    context = ray.train.get_context()
    rank, world_size = context.get_world_rank(), context.get_world_size()
    pointer = None
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            with open(os.path.join(directory, TRAJECTORY_FILE)) as f:
                pointer = json.load(f)["checkpoints"]

    def report(r: Report) -> None:
        payload = dataclasses.asdict(r)
        if rank == 0 and queue is not None:
            queue.put(payload)
        metrics = {"step": r.step, "final": r.final, "report": json.dumps(payload)}
        if rank == 0 and not r.final and not plan.replay:
            with tempfile.TemporaryDirectory() as directory:
                with open(os.path.join(directory, TRAJECTORY_FILE), "w") as f:
                    json.dump({"checkpoints": r.checkpoints}, f)
                ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(directory))
        else:
            ray.train.report(metrics)

    run_loop(plan, rank=rank, world_size=world_size, device=ray.train.torch.get_device(), report=report,
             resume_pointer=pointer)


def _fit_on_ray(plan: LoopPlan, *, num_workers: int, use_gpu: bool, max_failures: int, memory_mb: int,
                on_progress: ProgressCallback | None, storage_path: str | None, name: str) -> Report:
    import ray
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer
    from ray.util.queue import Empty, Queue

    ensure_ray()
    queue = Queue(actor_options={"num_cpus": 0})  # rank 0's reports: progress, and the final one
    resources = {"CPU": 1, "memory": memory_mb * 2**20}
    if use_gpu:
        resources["GPU"] = 1
    trainer = TorchTrainer(
        _ray_worker_entry,
        train_loop_config={"plan": plan, "queue": queue},
        torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
        scaling_config=ScalingConfig(num_workers=num_workers, use_gpu=use_gpu, resources_per_worker=resources),
        run_config=RunConfig(
            name=name, storage_path=storage_path or os.path.join(tempfile.gettempdir(), "paratrain-ray"),
            failure_config=FailureConfig(max_failures=max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=2)),
    )
    outcome: dict[str, Any] = {}

    def fit() -> None:
        try:
            outcome["result"] = trainer.fit()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            outcome["error"] = exc

    thread = threading.Thread(target=fit, name=f"paratrain-fit-{name}", daemon=True)
    thread.start()
    hard_deadline = plan.deadline + 30.0
    final: Report | None = None
    try:
        while thread.is_alive() or not queue.empty():
            if time.time() > hard_deadline:
                raise TrainingTimeoutError("the task's time limit passed (the Ray run did not stop)")
            try:
                report = Report(**queue.get(timeout=0.5))
            except Empty:
                continue
            if report.final:
                final = report
            if on_progress is not None:
                on_progress(_progress(report))
    finally:
        queue.shutdown(force=True)
    if "error" in outcome:
        error = outcome["error"]
        if "TrainingTimeoutError" in repr(error) or "TrainingTimeoutError" in str(error):
            raise TrainingTimeoutError(str(error)) from error
        raise TrainingError(f"training failed: {error}") from error
    if final is None:
        raise TrainingError("the Ray run reported no result")
    return final


def train(spec: TaskSpec, store: ArtifactStore, *, num_workers: int = 2, use_gpu: bool = False,
          max_failures: int = 2, on_progress: ProgressCallback | None = None, resume_from: list[str] | None = None,
          allow_custom: bool = False, step_hook: Callable[[int, int], None] | None = None,
          storage_path: str | None = None) -> TrainingResult:
    """Train `spec` under Ray Train's TorchTrainer with `num_workers` DDP workers; the result, ready to attest."""
    spec.validate()
    get_recipe(spec.recipe, allow_custom=allow_custom)
    started = time.time()
    plan = _plan(spec, store, started, allow_custom=allow_custom, resume_from=list(resume_from or []),
                 step_hook=step_hook)
    name = f"paratrain-{spec.spec_hash_hex()[:16]}-{uuid.uuid4().hex[:8]}"
    final = _fit_on_ray(plan, num_workers=num_workers, use_gpu=use_gpu, max_failures=max_failures,
                        memory_mb=spec.limits.memory_mb, on_progress=on_progress, storage_path=storage_path,
                        name=name)
    return _finish(spec, store, final, started, num_workers)


# Validators -------------------------------------------------------------------------------------
def checkpoint_info(store: ArtifactStore, checkpoint_hash: str) -> dict[str, Any]:
    """The metadata of a checkpoint (spec_hash, step, epoch, world_size, recipe), verified by hash."""
    _, _, meta = tensorio.unpack_state(store.get(checkpoint_hash))
    return meta


def replay_segment(spec: TaskSpec, store: ArtifactStore, checkpoint_i: str | None, *, world_size: int | None = None,
                   use_gpu: bool = False, allow_custom: bool = False) -> str:
    """Re-execute the segment after checkpoint `checkpoint_i` (None: from initialisation) and return the hash
    of the next checkpoint, computed bitwise as the worker did (nothing is written to the store).
    The world size is the checkpoint's own; world size 1 runs in this process, more on Ray."""
    spec.validate()
    if world_size is None:
        world_size = int(checkpoint_info(store, checkpoint_i)["world_size"]) if checkpoint_i else 1
    started = time.time()
    plan = _plan(spec, store, started, allow_custom=allow_custom,
                 resume_from=[checkpoint_i] if checkpoint_i else [], replay=True, evaluate_checkpoints=False)
    if world_size == 1 and not use_gpu:
        final = run_loop(plan, report=lambda r: None)
    else:
        final = _fit_on_ray(plan, num_workers=world_size, use_gpu=use_gpu, max_failures=0,
                            memory_mb=spec.limits.memory_mb, on_progress=None, storage_path=None,
                            name=f"paratrain-replay-{uuid.uuid4().hex[:8]}")
    return final.checkpoints[-1]


def spot_check(spec: TaskSpec, store: ArtifactStore, checkpoints: list[str], index: int, **kw: Any) -> bool:
    """True if replaying from checkpoint `index - 1` (from initialisation for 0) reproduces checkpoint `index`."""
    previous = checkpoints[index - 1] if index > 0 else None
    return replay_segment(spec, store, previous, **kw) == checkpoints[index]


__all__ = ["Progress", "TrainingResult", "checkpoint_info", "ensure_ray", "replay_segment", "spot_check", "train",
           "train_local"]
