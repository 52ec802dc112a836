"""Running a task: in-process, or on a Ray cluster with Ray Train's TorchTrainer (DDP).

`train(spec, store, num_workers=1)` trains a task on Ray: it joins the cluster that is already
initialised, or the one at ``RAY_ADDRESS`` (e.g. a KubeRay head), or starts a local one. Each
training worker runs `workers.engine.run_loop`; DDP over gloo on CPU, NCCL with ``use_gpu``.

`WarmTrainer` is a long-lived Ray Train run (one ``TorchTrainer.fit()``) whose training function takes
task after task from a `TaskBoard` actor: the worker daemon keeps one, so that a task starts on training
workers that already exist instead of paying Ray Train's start-up (actors, processes, imports, process
group) each time. `train(..., trainer=warm)` runs a task on it; without one, `train` starts a group for
the task alone. Either way `train` returns as soon as rank 0's final report (model in the store) is in,
and a group of its own is torn down in the background.

Rank 0 writes each checkpoint into the artifact store and posts the trajectory so far to the board;
when a worker process dies, Ray Train restarts the worker group (``FailureConfig``), which resumes the
task from the last checkpoint in *our* store, verified by hash, and finishes with the same result; a
task fails after more than ``max_failures`` such restarts.
`train_local` runs the same loop in this process (world size 1, no Ray).
`replay_segment` re-executes one segment from a checkpoint for a validator's spot check.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import tempfile
import threading
import time
import uuid
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from runtime_bindings.generated.types import Attestation
from runtime_bindings.values import H256, METRIC_SCALE, AccountId, Bytes
from workers import tensorio
from workers.artifacts import ArtifactStore
from workers.engine import (
    CheckpointMismatchError,
    LoopPlan,
    MemoryLimitError,
    Report,
    TrainingError,
    TrainingTimeoutError,
    run_loop,
)
from workers.recipes import code_hash, get_recipe
from workers.spec import TaskSpec
from workers.trajectory import merkle_root_hex

log = logging.getLogger("paratrain.runner")


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

    def to_attestation(self, task_id: int, worker: str) -> Attestation:
        """The `Attestation` of submit_result, in the type the chain gives back, so that the worker, the call
        and the validator handle one type (sign it with runtime_bindings.attestation)."""
        return Attestation(task_id=task_id, worker=AccountId(worker), model_hash=H256(bytes.fromhex(self.model_hash)),
                           artifact_uri=Bytes(self.artifact_uri.encode()),
                           metrics=[(Bytes(k.encode()), v) for k, v in self.metrics_micro()],
                           trajectory_root=H256(bytes.fromhex(self.trajectory_root)),
                           checkpoints=[H256(bytes.fromhex(h)) for h in self.checkpoints],
                           code_hash=H256(bytes.fromhex(self.code_hash)),
                           dataset_hash=H256(bytes.fromhex(self.dataset_hash)), started_ms=self.started_ms,
                           finished_ms=self.finished_ms)


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
    """Join the running Ray (or `address`, or RAY_ADDRESS), else start a local one.

    A local cluster runs its worker processes at normal priority (``worker_niceness`` 0; Ray's default
    is nice 15, at which training loses every core to any other process of the host). Set
    ``RAY_worker_niceness`` to keep Ray's default; on a cluster started elsewhere (``ray start``, KubeRay)
    set it there."""
    import ray

    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, **init_kwargs)
    else:
        if "RAY_worker_niceness" not in os.environ:
            init_kwargs.setdefault("_system_config", {}).setdefault("worker_niceness", 0)
        try:
            ray.init(include_dashboard=False, log_to_driver=False, **init_kwargs)
        except (RuntimeError, ConnectionError) as exc:
            # A local head that did not come up in time (seen on a loaded 2-core machine: "Timed out waiting
            # for file .../gcs_server_port_...") is started once more from scratch before giving up.
            log.warning("the local Ray cluster did not start (%s); starting it once more", exc)
            ray.shutdown()
            ray.init(include_dashboard=False, log_to_driver=False, **init_kwargs)


class TaskBoard:
    """The coordinator of a `WarmTrainer` (an asyncio Ray actor that takes no CPU).

    The driver submits tasks; rank 0 of the worker group takes them one after another (`next`) and posts
    its reports; the driver follows a task's reports (`wait`). The board also holds each running task's
    trajectory so far, so that a worker group that Ray Train restarts after a worker process died resumes
    the task from its last checkpoint, and counts those restarts against the task's ``max_failures``."""

    def __init__(self) -> None:
        import asyncio

        self._jobs: dict[str, dict[str, Any]] = {}
        self._pending: list[str] = []
        self._current: str | None = None
        self._closed = False
        self._cond = asyncio.Condition()
        self._workers: dict[int, Any] = {}     # rank -> the Ray Train worker actor (for abort)

    async def _notify(self) -> None:
        async with self._cond:
            self._cond.notify_all()

    async def _wait(self, predicate: Callable[[], bool], timeout: float) -> bool:
        import asyncio

        async with self._cond:
            try:
                await asyncio.wait_for(self._cond.wait_for(predicate), timeout)
            except TimeoutError:
                return predicate()
        return True

    def _finish(self, job_id: str, state: str, error: dict[str, str] | None = None) -> None:
        job = self._jobs[job_id]
        if job["state"] in ("done", "failed"):
            return
        job["state"], job["error"] = state, error
        if job_id in self._pending:
            self._pending.remove(job_id)

    def _handout(self, job_id: str) -> dict[str, Any]:
        job = self._jobs[job_id]
        self._current = job_id
        job["state"] = "running"
        return {"op": "task", "id": job_id, "pointer": list(job["pointer"]), "attempt": job["attempts"]}

    # the driver
    async def submit(self, job_id: str, plan: LoopPlan, max_failures: int) -> None:
        self._jobs[job_id] = {"plan": plan, "pointer": list(plan.resume_from), "max_failures": max_failures,
                              "attempts": 0, "state": "pending", "error": None, "events": []}
        self._pending.append(job_id)
        await self._notify()

    async def wait(self, job_id: str, since: int, timeout: float) -> tuple[list[dict[str, Any]], str, Any]:
        """The task's reports from index `since`, its state and error; returns early on news."""
        job = self._jobs[job_id]
        await self._wait(lambda: len(job["events"]) > since or job["state"] in ("done", "failed"), timeout)
        return job["events"][since:], job["state"], job["error"]

    async def cancel(self, job_id: str, error: dict[str, str]) -> list[Any]:
        """Give up a task (it is not resumed after a restart); the worker actors, for the caller to kill."""
        self._finish(job_id, "failed", error)
        await self._notify()
        return list(self._workers.values())

    async def forget(self, job_id: str) -> None:
        """Drop a finished task's record (the driver has read it)."""
        job = self._jobs.get(job_id)
        if job is not None and job["state"] in ("done", "failed"):
            del self._jobs[job_id]

    async def close(self) -> None:
        self._closed = True
        await self._notify()

    # the worker group
    async def next(self, fresh: bool, timeout: float) -> dict[str, Any]:
        """Rank 0 asks for work: the task to (re)start, or {"op": "idle"} after `timeout`, or "stop".
        `fresh`: a new worker group (Ray Train started or restarted it)."""
        job = self._jobs.get(self._current) if self._current is not None else None
        if job is not None and fresh and job["state"] == "running":  # the group died under it: resume it
            job["attempts"] += 1
            if job["attempts"] > job["max_failures"]:
                self._finish(self._current, "failed", {  # type: ignore[arg-type]
                    "type": "TrainingError",
                    "message": f"the Ray Train worker group failed {job['attempts']} times during the task "
                               f"(max_failures {job['max_failures']})"})
                await self._notify()
            else:
                job["events"].append({"kind": "restart", "attempt": job["attempts"]})
                await self._notify()
                return self._handout(self._current)  # type: ignore[arg-type]
        self._current = None
        if not await self._wait(lambda: bool(self._pending) or self._closed, timeout):
            return {"op": "idle"}
        if not self._pending:
            return {"op": "stop"}
        return self._handout(self._pending.pop(0))

    async def plan(self, job_id: str) -> LoopPlan | None:
        job = self._jobs.get(job_id)
        return job["plan"] if job is not None else None

    async def register(self, rank: int, actor: Any) -> None:
        self._workers[rank] = actor

    async def report(self, job_id: str, payload: dict[str, Any]) -> None:
        job = self._jobs.get(job_id)
        if job is None or job["state"] != "running":
            return
        job["events"].append({"kind": "report", "report": payload})
        if payload["final"]:
            self._finish(job_id, "done")
        elif not job["plan"].replay:
            job["pointer"] = list(payload["checkpoints"])
        await self._notify()

    async def fail(self, job_id: str, error: dict[str, str]) -> None:
        if job_id in self._jobs:
            self._finish(job_id, "failed", error)
        await self._notify()


_IDLE_POLL_S = 30.0  # rank 0's long poll; every rank meets in a broadcast at least this often (gloo timeout)


def _warm_entry(config: dict[str, Any]) -> None:
    """The training function of a `WarmTrainer`: task after task until the board closes."""
    import ray
    import ray.train
    import ray.train.torch

    board = config["board"]
    context = ray.train.get_context()
    rank, world_size = context.get_world_rank(), context.get_world_size()
    device = ray.train.torch.get_device()
    with contextlib.suppress(Exception):  # only used to abort a hung task
        ray.get(board.register.remote(rank, ray.get_runtime_context().current_actor))
    fresh = True
    while True:
        order = ray.get(board.next.remote(fresh, _IDLE_POLL_S)) if rank == 0 else None
        if world_size > 1:
            import torch.distributed as dist

            box = [order]
            dist.broadcast_object_list(box, src=0)
            order = box[0]
        fresh = False
        if order["op"] == "stop":
            return
        if order["op"] != "task":
            continue
        job_id = order["id"]
        plan: LoopPlan | None = ray.get(board.plan.remote(job_id))
        if plan is None:  # given up by the driver meanwhile
            continue
        hook = _TaggingHook(plan.step_hook) if plan.step_hook is not None else None
        if hook is not None:
            plan = dataclasses.replace(plan, step_hook=hook)

        def report(r: Report, job_id: str = job_id) -> None:
            if rank == 0:
                board.report.remote(job_id, dataclasses.asdict(r))  # no wait: training goes on

        try:
            run_loop(plan, rank=rank, world_size=world_size, device=device, report=report,
                     resume_pointer=order["pointer"])
        except Exception as exc:
            # The task's own failure (a limit, a bad checkpoint, the step hook's cancellation; anything
            # with one worker) fails the task. With several workers, any other error may come from a
            # peer that died (a collective broke): Ray Train restarts the group, which resumes the task.
            if world_size == 1 or isinstance(exc, TrainingError) or (hook is not None and hook.raised):
                ray.get(board.fail.remote(job_id, {"type": type(exc).__name__, "message": str(exc)}))
            if world_size > 1:
                raise  # the ranks' collectives may be out of step: Ray Train restarts the worker group


class _TaggingHook:
    """Wraps a step hook and remembers that it raised (a cancellation, not a broken collective)."""

    def __init__(self, inner: Callable[[int, int], None]) -> None:
        self.inner, self.raised = inner, False

    def __call__(self, step: int, rank: int) -> None:
        try:
            self.inner(step, rank)
        except Exception:
            self.raised = True
            raise


_WARM: weakref.WeakSet[WarmTrainer] = weakref.WeakSet()  # live ones in this process (replays may share them)


class WarmTrainer:
    """A long-lived Ray Train run: one ``TorchTrainer.fit()`` whose training function takes task after
    task, so that a task starts on training workers that already exist (torch imported, process group up).

    `run(plan)` trains one task and returns its final report as soon as rank 0 has posted it (the model
    is in the store by then). A training worker process that dies makes Ray Train restart the worker
    group (``FailureConfig(max_failures=-1)``); the new group resumes the task from its last checkpoint,
    and the task fails once it has seen more than its own ``max_failures`` restarts. A task that raises
    (time or memory limit, cancellation) fails alone: with one worker the group takes the next task at
    once; with several, Ray Train restarts the group first (their collectives may be out of step).

    The group holds its CPUs (and GPUs) while it lives: `close()` gives them back. Ray memory is not
    reserved (``memory_mb=0``, the default): each task's ``limits.memory_mb`` is enforced by the
    engine's RSS watchdog."""

    def __init__(self, num_workers: int = 1, *, use_gpu: bool = False, memory_mb: int = 0,
                 storage_path: str | None = None, name: str | None = None) -> None:
        self.num_workers, self.use_gpu, self.memory_mb = num_workers, use_gpu, memory_mb
        self.storage_path = storage_path or os.path.join(tempfile.gettempdir(), "paratrain-ray")
        self.name = name or f"paratrain-warm-{uuid.uuid4().hex[:8]}"
        self._lock = threading.Lock()
        self._run_lock = threading.Lock()
        self._board: Any = None
        self._thread: threading.Thread | None = None
        self._outcome: dict[str, Any] = {}
        self._job: str | None = None
        self._ray_job: str | None = None
        _WARM.add(self)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and _ray_job() == self._ray_job

    @property
    def busy(self) -> bool:
        return self._run_lock.locked()

    def start(self) -> WarmTrainer:
        """Start the worker group in the background (idempotent); the first task waits for it."""
        with self._lock:
            if self.alive:
                return self
            self._abandon()
            import ray
            from ray.train import FailureConfig, RunConfig, ScalingConfig
            from ray.train.torch import TorchConfig, TorchTrainer

            ensure_ray()
            self._ray_job = _ray_job()
            board = ray.remote(num_cpus=0)(TaskBoard).remote()
            resources: dict[str, float] = {"CPU": 1}
            if self.memory_mb:
                resources["memory"] = self.memory_mb * 2**20
            if self.use_gpu:
                resources["GPU"] = 1
            trainer = TorchTrainer(
                _warm_entry, train_loop_config={"board": board},
                torch_config=TorchConfig(backend="nccl" if self.use_gpu else "gloo"),
                scaling_config=ScalingConfig(num_workers=self.num_workers, use_gpu=self.use_gpu,
                                             resources_per_worker=resources),
                run_config=RunConfig(name=f"{self.name}-{uuid.uuid4().hex[:6]}", storage_path=self.storage_path,
                                     failure_config=FailureConfig(max_failures=-1)))
            outcome: dict[str, Any] = {}

            def fit() -> None:
                try:
                    outcome["result"] = trainer.fit()
                except BaseException as exc:  # noqa: BLE001 - reported by run()
                    outcome["error"] = exc

            self._board, self._outcome = board, outcome
            self._thread = threading.Thread(target=fit, name=f"paratrain-fit-{self.name}", daemon=True)
            self._thread.start()
            return self

    def run(self, plan: LoopPlan, *, max_failures: int = 2,
            on_progress: Callable[[Report], None] | None = None) -> Report:
        """Train one task (`plan`) on the group; its final report. Tasks run one at a time."""
        import ray

        with self._run_lock:
            self.start()
            board, thread, outcome = self._board, self._thread, self._outcome
            job_id = uuid.uuid4().hex
            ray.get(board.submit.remote(job_id, plan, max_failures))
            self._job = job_id
            hard_deadline = plan.deadline + 30.0
            since = 0
            try:
                while True:
                    if time.time() > hard_deadline:
                        _abort(board, job_id, "the task's time limit passed (the Ray run did not stop)")
                        raise TrainingTimeoutError("the task's time limit passed (the Ray run did not stop)")
                    events, state, error = ray.get(board.wait.remote(job_id, since, 1.0))
                    since += len(events)
                    final = None
                    for event in events:
                        if event["kind"] != "report":
                            continue
                        report = Report(**event["report"])
                        if report.final:
                            final = report
                        if on_progress is not None:
                            on_progress(report)
                    if state == "done" and final is not None:
                        return final
                    if state == "failed":
                        raise _training_error(error)
                    if not thread.is_alive():  # type: ignore[union-attr]
                        error = outcome.get("error")
                        raise TrainingError(f"training failed: {error or 'the Ray Train run ended'}") from error
            finally:
                self._job = None
                with contextlib.suppress(Exception):
                    board.forget.remote(job_id)

    def close(self, wait_s: float = 0.0) -> None:
        """Stop the group: the loop ends, fit() returns and the CPUs are given back; waits at most `wait_s`
        for that. The board actor goes with its last handle. Nothing here runs after `close` returns, so
        that no thread of ours touches Ray after the caller's ``ray.shutdown()`` (any Ray call there would
        start a new local cluster)."""
        with self._lock:
            board, thread = self._board, self._thread
            self._board = self._thread = None
        if board is None:
            return
        with contextlib.suppress(Exception):  # Ray is gone already: so is the group
            board.close.remote()
        if wait_s > 0 and thread is not None:
            thread.join(wait_s)

    def _abandon(self) -> None:
        """Forget a dead (or other-cluster) group."""
        if self._board is not None and _ray_job() == self._ray_job:
            self.close()
        self._board = self._thread = None


def _abort(board: Any, job_id: str, why: str) -> None:
    """Give up a hung task: the board forgets it, and its worker actors are killed (Ray Train sees them die
    and starts a new group, which takes the next task)."""
    import ray

    with contextlib.suppress(Exception):
        workers = ray.get(board.cancel.remote(job_id, {"type": "TrainingTimeoutError", "message": why}), timeout=10)
        for actor in workers:
            ray.kill(actor)


def _ray_job() -> str | None:
    import ray

    if not ray.is_initialized():
        return None
    return ray.get_runtime_context().get_job_id()


def _training_error(error: dict[str, str] | None) -> TrainingError:
    error = error or {"type": "TrainingError", "message": "unknown error"}
    kind, message = error.get("type", ""), error.get("message", "")
    if kind == "TrainingTimeoutError":
        return TrainingTimeoutError(message)
    if kind == "MemoryLimitError":
        return MemoryLimitError(message)
    if kind == "CheckpointMismatchError":
        return CheckpointMismatchError(message)
    return TrainingError(f"training failed: {kind}: {message}")


def _fit_on_ray(plan: LoopPlan, *, num_workers: int, use_gpu: bool, max_failures: int, memory_mb: int,
                on_progress: ProgressCallback | None, storage_path: str | None, name: str,
                trainer: WarmTrainer | None = None) -> Report:
    """Run `plan` on `trainer`, or on a one-off `WarmTrainer` that is torn down in the background after the
    final report (the result does not wait for Ray Train's shutdown)."""
    own = trainer is None
    if trainer is None:
        trainer = WarmTrainer(num_workers, use_gpu=use_gpu, memory_mb=memory_mb, storage_path=storage_path,
                              name=name)
    elif trainer.num_workers != num_workers or trainer.use_gpu != use_gpu:
        raise ValueError(f"the warm trainer has {trainer.num_workers} workers (gpu {trainer.use_gpu}), "
                         f"not {num_workers} (gpu {use_gpu})")
    try:
        return trainer.run(plan, max_failures=max_failures,
                           on_progress=(lambda r: on_progress(_progress(r))) if on_progress else None)
    finally:
        if own:
            trainer.close()


def train(spec: TaskSpec, store: ArtifactStore, *, num_workers: int = 1, use_gpu: bool = False,
          max_failures: int = 2, on_progress: ProgressCallback | None = None, resume_from: list[str] | None = None,
          allow_custom: bool = False, step_hook: Callable[[int, int], None] | None = None,
          storage_path: str | None = None, trainer: WarmTrainer | None = None) -> TrainingResult:
    """Train `spec` under Ray Train's TorchTrainer with `num_workers` DDP workers; the result, ready to attest.

    With `trainer` (a `WarmTrainer` of `num_workers` workers) the task runs on its long-lived worker group;
    without, on a group started for this task alone."""
    spec.validate()
    get_recipe(spec.recipe, allow_custom=allow_custom)
    if trainer is not None:
        num_workers, use_gpu = trainer.num_workers, trainer.use_gpu
    started = time.time()
    plan = _plan(spec, store, started, allow_custom=allow_custom, resume_from=list(resume_from or []),
                 step_hook=step_hook)
    name = f"paratrain-{spec.spec_hash_hex()[:16]}-{uuid.uuid4().hex[:8]}"
    final = _fit_on_ray(plan, num_workers=num_workers, use_gpu=use_gpu, max_failures=max_failures,
                        memory_mb=spec.limits.memory_mb, on_progress=on_progress, storage_path=storage_path,
                        name=name, trainer=trainer)
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
        shared = next((w for w in list(_WARM) if w.alive and not w.busy and w.num_workers == world_size
                       and w.use_gpu == use_gpu), None)  # a warm group of this process holds the CPUs anyway
        final = _fit_on_ray(plan, num_workers=world_size, use_gpu=use_gpu, max_failures=0,
                            memory_mb=spec.limits.memory_mb, on_progress=None, storage_path=None,
                            name=f"paratrain-replay-{uuid.uuid4().hex[:8]}", trainer=shared)
    return final.checkpoints[-1]


def spot_check(spec: TaskSpec, store: ArtifactStore, checkpoints: list[str], index: int, **kw: Any) -> bool:
    """True if replaying from checkpoint `index - 1` (from initialisation for 0) reproduces checkpoint `index`."""
    previous = checkpoints[index - 1] if index > 0 else None
    return replay_segment(spec, store, previous, **kw) == checkpoints[index]


__all__ = ["Progress", "TrainingResult", "WarmTrainer", "checkpoint_info", "ensure_ray", "replay_segment", "spot_check", "train",
           "train_local"]
