"""The training loop: one function that runs in-process (world size 1) or on each Ray Train worker.

Determinism (bitwise on CPU for a given world size):
* ``torch.use_deterministic_algorithms(True)``, a fixed thread count (hyperparameter
  ``threads``, default 1) and the model initialised after ``torch.manual_seed(spec.seed)``;
* a fixed data order: a `DistributedSampler` seeded with the spec's seed, ``set_epoch(epoch)``
  each epoch, ``drop_last`` so that every rank takes the same number of steps;
* before step s the torch RNG (the CPU generator, and the CUDA one on a GPU) is reseeded from
  (seed, s), so no RNG state is carried across steps and a run restored from the checkpoint at step s
  continues exactly as the original;
* checkpoints (model + optimizer state + step) are written in the byte-stable PTTS1 format.

A checkpoint is taken every ``spec.checkpoint_every`` optimizer steps and after the last step.

A spec with a "privacy" section trains with DP-SGD (`workers.privacy.training`, world size 1): the same loop
and checkpoints, but each step's batch is Poisson-sampled and its gradient clipped per sample and noised by
Opacus, from generators reseeded per step with the secret noise key; the final card carries the claim.
"""
from __future__ import annotations

import hashlib
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils.data.distributed import DistributedSampler

from workers import tensorio
from workers.artifacts import ArtifactStore, Kind
from workers.datasets import decode_dataset
from workers.hashing import blake2_256_hex
from workers.recipes import get_recipe
from workers.spec import MAX_CHECKPOINTS, TaskSpec, checkpoint_every_for


class TrainingError(RuntimeError):
    """A training run that could not finish."""


class TrainingTimeoutError(TrainingError, TimeoutError):
    """The task's time limit (limits.timeout_s) passed."""


class MemoryLimitError(TrainingError, MemoryError):
    """A training worker's resident memory passed limits.memory_mb."""


class CheckpointMismatchError(TrainingError):
    """A checkpoint that does not belong to this task (another spec, world size or step)."""


@dataclass
class LoopPlan:
    """Everything a training worker needs: picklable, shipped to Ray workers."""

    spec_json: bytes
    store: ArtifactStore
    deadline: float                       # time.time() after which the run is abandoned
    allow_custom: bool = False
    resume_from: list[str] = field(default_factory=list)   # trajectory so far (checkpoint hashes)
    replay: bool = False                  # stop after the next checkpoint, write nothing
    step_hook: Callable[[int, int], None] | None = None    # (step just done, rank): fault injection
    evaluate_checkpoints: bool = True


@dataclass
class Report:
    """What a worker reports at each checkpoint (and at the end, final=True)."""

    epoch: int
    step: int
    total_steps: int
    loss: float
    metrics: dict[str, float]
    checkpoints: list[str]
    final: bool = False
    model_hash: str | None = None
    card: dict[str, Any] | None = None


def step_seed(seed: int, step: int) -> int:
    digest = hashlib.blake2b(f"paratrain/step/{seed}/{step}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


_PROCESS: Any = None  # psutil.Process of this process (building one costs ~0.1 ms; a Ray worker lives long)


def _rss_mb() -> float:
    global _PROCESS
    try:
        if _PROCESS is None or _PROCESS.pid != os.getpid():
            import psutil

            _PROCESS = psutil.Process()
        return _PROCESS.memory_info().rss / 2**20
    except ImportError:  # pragma: no cover - psutil comes with Ray
        return 0.0


def _reseed(seed: int, device: torch.device) -> None:
    """Reseed the generators a step can draw from. ``torch.manual_seed`` would do it too, but it also
    seeds every accelerator backend lazily and captures a stack trace for each (~0.3 ms on a ~1 ms step);
    the CPU generator (and the device's own) are the ones a step uses."""
    torch.default_generator.manual_seed(seed)
    if device.type == "cuda":
        torch.cuda.manual_seed(seed)


def steps_of(train_examples: int, batch_size: int, epochs: int, world_size: int = 1) -> int:
    """The optimizer steps of a run: each rank takes its share of the training split (DistributedSampler
    with drop_last) in batches of ``batch_size // world_size``. `run_loop`, validators, the demo and the
    benchmarks all count with this, so that checkpoint schedules agree everywhere."""
    per_rank = int(train_examples) // world_size
    return per_rank // max(1, int(batch_size) // world_size) * int(epochs)


def total_steps(spec: TaskSpec, store: ArtifactStore, world_size: int = 1) -> int:
    """The optimizer steps `run_loop` takes for `spec` with `world_size` ranks (reads the data set)."""
    return steps_of(*_run_shape(spec, store), world_size)


def checkpoint_every_auto(spec: TaskSpec, store: ArtifactStore, max_world_size: int = 16) -> int:
    """K for a spec whose requester did not choose one: about DEFAULT_CHECKPOINTS checkpoints, and at most
    MAX_CHECKPOINTS at every world size up to `max_world_size`. The worker's world size is unknown when a
    task is posted, and the step count moves a little with it (each rank's share is rounded down)."""
    shape = _run_shape(spec, store)
    return checkpoint_every_for(max(steps_of(*shape, w) for w in range(1, max_world_size + 1)))


def _run_shape(spec: TaskSpec, store: ArtifactStore) -> tuple[int, int, int]:
    """(training examples, batch size, epochs) of `spec`: the data set fetched and split as `run_loop` does."""
    recipe = get_recipe(spec.recipe, allow_custom=True)
    hp = recipe.hyperparameters(spec.hyperparameters)
    data = store.fetch(spec.dataset.uri, spec.dataset.hash, kind=Kind.DATASET)
    prepared = recipe.prepare(decode_dataset(data), hp, spec.validation)
    return len(prepared.train_x), int(hp["batch_size"]), int(hp["epochs"])


def _unwrap(model: nn.Module) -> nn.Module:
    """The recipe's model inside DDP (``module``) or Opacus's GradSampleModule (``_module``)."""
    for attr in ("module", "_module"):
        if hasattr(model, attr):
            return getattr(model, attr)
    return model


def run_loop(plan: LoopPlan, *, rank: int = 0, world_size: int = 1, device: torch.device | None = None,
             report: Callable[[Report], None], resume_pointer: list[str] | None = None) -> Report:
    """Train (or replay one segment); calls `report` at every checkpoint on every rank (metrics on rank 0)."""
    from workers.spec import decode_spec

    device = device or torch.device("cpu")
    spec: TaskSpec = decode_spec(plan.spec_json)
    spec_hash = spec.spec_hash_hex()
    recipe = get_recipe(spec.recipe, allow_custom=plan.allow_custom)
    hp = recipe.hyperparameters(spec.hyperparameters)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(int(hp.get("threads", 1)))
    # The limit bounds what the task adds: an in-process run (tests, validators) shares a process
    # that already holds other memory, while a Ray worker starts near this baseline anyway.
    baseline_mb = _rss_mb()

    data = plan.store.fetch(spec.dataset.uri, spec.dataset.hash, kind=Kind.DATASET)
    prepared = recipe.prepare(decode_dataset(data), hp, spec.validation)

    torch.manual_seed(spec.seed)
    model = recipe.build_model(hp, prepared).to(device)
    optimizer = recipe.optimizer(model.parameters(), hp)

    batch = max(1, int(hp["batch_size"]) // world_size)
    sampler = DistributedSampler(range(len(prepared.train_x)), num_replicas=world_size, rank=rank, shuffle=True,
                                 seed=spec.seed, drop_last=True)
    steps_per_epoch = len(sampler) // batch
    if steps_per_epoch < 1:
        raise TrainingError(f"batch_size {hp['batch_size']} is larger than the training split per worker")
    total_steps = steps_of(len(prepared.train_x), hp["batch_size"], hp["epochs"], world_size)
    n_checkpoints = math.ceil(total_steps / spec.checkpoint_every)
    if n_checkpoints > MAX_CHECKPOINTS:
        raise TrainingError(f"{n_checkpoints} checkpoints (total {total_steps} steps, every "
                            f"{spec.checkpoint_every}); at most {MAX_CHECKPOINTS}: raise checkpoint_every")

    checkpoints = list(resume_pointer if resume_pointer is not None else plan.resume_from)
    start_step = 0
    if checkpoints:
        model_state, optim_state, meta = tensorio.unpack_state(plan.store.get(checkpoints[-1]))
        if meta.get("spec_hash") != spec_hash or meta.get("world_size") != world_size:
            raise CheckpointMismatchError(
                f"checkpoint {checkpoints[-1]} is of spec {meta.get('spec_hash')} with world size "
                f"{meta.get('world_size')}, not {spec_hash} with {world_size}")
        model.load_state_dict(model_state)
        optimizer.load_state_dict(optim_state)
        start_step = int(meta["step"])
    dp = None
    if spec.privacy is not None:
        if world_size != 1:
            raise TrainingError(f"a DP task trains with world size 1 (Opacus's Poisson sampler is per rank), "
                                f"not {world_size}")
        from workers.privacy.training import DpSession  # Opacus loads only for a DP task

        dp = DpSession.start(spec, plan.store, model, optimizer, recipe.loss, train_examples=len(prepared.train_x),
                             batch_size=int(hp["batch_size"]), epochs=int(hp["epochs"]), device=device,
                             replay=plan.replay)
        model, optimizer = dp.module, dp.optimizer
    if world_size > 1:
        model = nn.parallel.DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)

    train_x, train_y = prepared.train_x, prepared.train_y
    order = torch.empty(0, dtype=torch.long)
    order_epoch = -1
    last_loss = float("nan")
    loss_t: torch.Tensor | None = None
    done = start_step
    if plan.replay and start_step >= total_steps:
        raise TrainingError(f"checkpoint {checkpoints[-1]} is the last one: there is no segment after it")
    model.train()
    for step in range(start_step, total_steps):
        if time.time() > plan.deadline:
            raise TrainingTimeoutError(f"the task's time limit passed at step {step} of {total_steps}")
        if step % 10 == 0 and _rss_mb() - baseline_mb > spec.limits.memory_mb:
            raise MemoryLimitError(f"resident memory grew {_rss_mb() - baseline_mb:.0f} MiB during the task, "
                                   f"over its limit of {spec.limits.memory_mb} MiB")
        epoch, in_epoch = divmod(step, steps_per_epoch)
        if dp is not None:
            idx = dp.batch(step)  # a Poisson batch drawn with the step's keyed seed
        else:
            if epoch != order_epoch:
                sampler.set_epoch(epoch)
                order, order_epoch = torch.tensor(list(sampler), dtype=torch.long), epoch
            idx = order[in_epoch * batch:(in_epoch + 1) * batch]
        x, y = train_x[idx].to(device), train_y[idx].to(device)
        _reseed(step_seed(spec.seed, step), device)
        optimizer.zero_grad(set_to_none=True)
        loss = (dp.loss if dp is not None else recipe.loss)(model(x), y)
        loss.backward()
        optimizer.step()
        loss_t = loss.detach()
        done = step + 1
        if plan.step_hook is not None:
            plan.step_hook(done, rank)
        if done % spec.checkpoint_every and done != total_steps:
            continue
        last_loss = loss_t.item()

        # A checkpoint: rank 0 writes it (or, replaying, only hashes it); every rank reports.
        metrics: dict[str, float] = {}
        if rank == 0:
            inner = _unwrap(model)
            blob = tensorio.pack_state(inner.state_dict(), optimizer.state_dict(),
                                       {"kind": "checkpoint", "spec_hash": spec_hash, "step": done, "epoch": epoch,
                                        "world_size": world_size, "recipe": recipe.name})
            digest = blake2_256_hex(blob) if plan.replay else plan.store.put(blob)
            checkpoints.append(digest)
            if plan.evaluate_checkpoints or done == total_steps:
                metrics = _evaluate(recipe, inner, prepared, hp)
        else:
            checkpoints.append("")  # only rank 0's list is authoritative
        is_last = plan.replay or done == total_steps
        if is_last:
            break
        report(Report(epoch=epoch, step=done, total_steps=total_steps, loss=last_loss, metrics=metrics,
                      checkpoints=list(checkpoints)))

    if loss_t is not None:
        last_loss = loss_t.item()
    # The end: rank 0 stores the model weights and its card (a replay stores nothing).
    final = Report(epoch=max(0, done - 1) // steps_per_epoch, step=done, total_steps=total_steps, loss=last_loss,
                   metrics={}, checkpoints=list(checkpoints), final=True)
    if rank == 0 and not plan.replay:
        inner = _unwrap(model)
        final.metrics = _evaluate(recipe, inner, prepared, hp)
        weights = tensorio.dumps(inner.state_dict(), {"kind": "model", "recipe": recipe.name, "spec_hash": spec_hash})
        final.model_hash = plan.store.put(weights)
        final.card = {"recipe": recipe.name, "description": recipe.description, "spec_hash": spec_hash,
                      "dataset_hash": spec.dataset.hash, "hyperparameters": hp, "seed": spec.seed,
                      "world_size": world_size, "steps": total_steps, "metrics": final.metrics,
                      "evaluation": {"metric": spec.evaluation.metric, "target": spec.evaluation.target,
                                     "mode": spec.evaluation.mode},
                      "weights": {"hash": final.model_hash, "format": "PTTS1"}}
        if "vocab" in prepared.info:
            final.card["vocab"] = "".join(prepared.info["vocab"])
        if dp is not None and dp.claim is not None:
            final.card["privacy"] = dp.claim.decoded()
    report(final)
    return final


def _evaluate(recipe, model: nn.Module, prepared, hp) -> dict[str, float]:
    was_training = model.training
    model.eval()
    with torch.no_grad():
        metrics = {k: float(v) for k, v in recipe.evaluate(model, prepared, hp).items()}
    model.train(was_training)
    return metrics


def worker_pid() -> int:
    return os.getpid()
