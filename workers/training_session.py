"""One task's training on the worker daemon's warm Ray Train group, with its progress and its lease guard.

`TrainingSession(daemon, run, spec, task).train()` returns the TrainingResult or raises TaskCancelled (the
claim is gone, the deadline guard released it, or the daemon is stopping) or TaskRefused (training failed:
workers.retry.training_refusal). Meanwhile, at each checkpoint: a journal entry on disk, ProgressUpdate to the
orchestrator with a worker-signed `heartbeat` (at most one every `heartbeat_interval_s`), and the daemon's
status and "progress" event. A guard thread watches the claim on chain: fewer than `lease_margin_blocks`
left on the lease, it sends a heartbeat straight to the node; fewer than `deadline_margin_blocks` before the
deadline, it releases the claim (no slash) and cancels the run.

The session is the daemon's for one task (its chain, client, journal, keys and status); it lives apart so
that the daemon's module is its loop, and this one the training's moving parts.
"""
from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workers.errors import TaskCancelled
from workers.retry import training_refusal
from workers.task_run import RunState, TaskRun

if TYPE_CHECKING:
    from workers.daemon import WorkerDaemon
    from workers.worker_config import StepHook

log = logging.getLogger("paratrain.worker")


class CancelHook:
    """A Ray Train step hook: stop the run (raise) once the cancel file exists. Picklable."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __call__(self, step: int, rank: int) -> None:
        if os.path.exists(self.path):
            raise TaskCancelled(f"training cancelled by the worker daemon at step {step}")


class StepHooks:
    """Several step hooks as one, called in order (the first that raises ends the step). Picklable when they
    are: the training workers receive the whole chain."""

    def __init__(self, *hooks: StepHook) -> None:
        self.hooks = hooks

    def __call__(self, step: int, rank: int) -> None:
        for hook in self.hooks:
            hook(step, rank)


def heartbeat_extrinsic(daemon: WorkerDaemon, task_id: int, step: int, root_hex: str) -> bytes:
    """A heartbeat {step, checkpoint_root} signed by the worker (relayed by the orchestrator, or sent)."""
    from runtime_bindings.generated import types as t
    from runtime_bindings.generated.task_bounties import HeartbeatCall
    from runtime_bindings.values import H256

    call = HeartbeatCall(task_id=task_id, progress=t.Progress(step=step, checkpoint_root=H256("0x" + root_hex)))
    raw_hex = daemon.chain.sign(call, daemon.keypair)
    return bytes.fromhex(raw_hex[2:])


class TrainingSession:
    def __init__(self, daemon: WorkerDaemon, run: TaskRun, spec: Any, task: Any) -> None:
        self.daemon, self.run, self.spec, self.task = daemon, run, spec, task
        self.task_id = run.task_id
        self.spec_hash = spec.spec_hash_hex()
        self.resume: list[str] = (daemon.journal.checkpoints(self.task_id, self.spec_hash)  # type: ignore[union-attr]
                                  if run.resumed else [])
        self.trajectory = list(self.resume)
        self.cancelled = threading.Event()
        self.why: str | None = None
        self.latest: dict[str, Any] = {"step": 0, "root": ""}  # the newest consistent checkpoint
        if task.progress is not None:
            self.latest = {"step": int(task.progress.step), "root": task.progress.checkpoint_root.hex()}
        self.last_heartbeat = 0.0
        self.lock = threading.Lock()  # latest + heartbeat signing, between the progress callback and the guard
        self.guard_stop = threading.Event()
        self.cancel_file = str(Path(daemon.state_dir or ".") / f"cancel-{self.task_id}-{uuid.uuid4().hex[:8]}")
        self.heartbeats: Any = None

    def cancel(self, why: str) -> None:
        if self.why is None:
            self.why = why
        self.cancelled.set()
        Path(self.cancel_file).touch()

    def step_hook(self) -> StepHook:
        """The hook this task trains with: the config's training callbacks' hooks for it, then the daemon's
        CancelHook (alone when no callback gives one)."""
        cancel = CancelHook(self.cancel_file)
        extra = [hook for callback in self.daemon.config.training_callbacks
                 if (hook := callback.step_hook(self.task_id, self.spec)) is not None]
        return StepHooks(*extra, cancel) if extra else cancel

    def train(self) -> Any:
        from workers.engine import TrainingError
        from workers.runner import train

        daemon, config, task_id = self.daemon, self.daemon.config, self.task_id
        if self.resume:
            log.info("task %d: resuming from checkpoint %d (%s) of the journal", task_id, len(self.resume),
                     self.resume[-1][:16])
        elif self.run.resumed:
            log.info("task %d: no usable checkpoint in the journal: training again from the start "
                     "(deterministic: the same result)", task_id)
        self.run.advance(RunState.TRAINING)
        daemon._notify("train", task_id=task_id, resume_from=len(self.resume))
        self.heartbeats = daemon.client.heartbeats()  # one signed stream per task (unary when unavailable)
        guard = threading.Thread(target=self._guard, name=f"paratrain-guard-{task_id}", daemon=True)
        daemon._set(state="training")
        log.info("task %d: training %s on Ray with %d workers%s", task_id, self.spec.recipe, config.num_workers,
                 f" (from step {self.latest['step']})" if self.resume else "")
        step_hook = self.step_hook()
        guard.start()
        try:
            result = train(self.spec, daemon.store, num_workers=config.num_workers, use_gpu=config.use_gpu,
                           max_failures=config.max_failures, on_progress=self._on_progress, resume_from=self.resume,
                           allow_custom=config.allow_custom_code, step_hook=step_hook,
                           storage_path=str(Path(daemon.state_dir or ".") / "ray"), trainer=daemon._warm_trainer())
        except TrainingError as exc:
            if self.cancelled.is_set():
                raise TaskCancelled(f"training stopped: {self.why}") from None
            raise training_refusal(exc) from None
        finally:
            self.guard_stop.set()
            guard.join(timeout=10)
            self.heartbeats.close()
            try:
                os.unlink(self.cancel_file)
            except OSError:
                pass
        if self.cancelled.is_set():
            raise TaskCancelled(f"training stopped: {self.why}")
        return result

    def _on_progress(self, p: Any) -> None:
        from orchestrator.domain import ProgressUpdate
        from workers.trajectory import merkle_root_hex

        daemon, task_id = self.daemon, self.task_id
        if daemon.stopping and not self.cancelled.is_set():
            self.cancel("the daemon is stopping")
        if p.checkpoint_hash and p.checkpoints == len(self.trajectory) + 1:
            self.trajectory.append(p.checkpoint_hash)
        consistent = len(self.trajectory) == p.checkpoints and merkle_root_hex(self.trajectory) == p.checkpoint_root
        if consistent and not p.final:
            daemon.journal.record(task_id, self.spec_hash, self.trajectory, p.step)  # type: ignore[union-attr]
        daemon._set(step=p.step, total_steps=p.total_steps, epoch=p.epoch, loss=p.loss, metrics=dict(p.metrics),
                    checkpoints=p.checkpoints, checkpoint_root=p.checkpoint_root)
        daemon._notify("progress", task_id=task_id, step=p.step, final=p.final)
        log.info("task %d: step %d/%d epoch %d loss %.4f %s checkpoint %d root %s", task_id, p.step,
                 p.total_steps, p.epoch, p.loss, " ".join(f"{k}={v:.4f}" for k, v in sorted(p.metrics.items())),
                 p.checkpoints, p.checkpoint_root[:16])
        if self.cancelled.is_set():
            return
        heartbeat = None
        with self.lock:
            if consistent and p.step >= self.latest["step"]:
                self.latest.update(step=p.step, root=p.checkpoint_root)
                now = time.monotonic()
                if now - self.last_heartbeat >= daemon.config.heartbeat_interval_s and not p.final:
                    try:
                        heartbeat = heartbeat_extrinsic(daemon, task_id, p.step, p.checkpoint_root)
                        self.last_heartbeat = now
                    except Exception as exc:  # noqa: BLE001
                        log.debug("task %d: cannot sign a heartbeat: %s", task_id, exc)
        update = ProgressUpdate(task_id=task_id, worker=daemon.account, step=p.step, epoch=p.epoch,
                                loss=float(p.loss) if p.loss == p.loss else 0.0, metrics=dict(p.metrics),
                                checkpoint_root=bytes.fromhex(p.checkpoint_root) if p.checkpoint_root else b"")
        try:
            self.heartbeats.send(update, heartbeat)
        except Exception as exc:  # noqa: BLE001 - progress is best effort; the guard keeps the lease
            log.info("task %d: progress not delivered to the orchestrator: %s", task_id, exc)

    def _guard(self) -> None:
        """While training: keep the lease alive, release the claim before the deadline.

        The guard has its own connection (a SubstrateInterface is not thread-safe); it is opened
        lazily and reopened after a failure, so a node that is down only costs a tick.
        """
        from runtime_bindings import ConnectionLost

        daemon, config, task_id = self.daemon, self.daemon.config, self.task_id
        chain: Any = None
        try:
            while not self.guard_stop.wait(config.guard_interval_s) and not self.cancelled.is_set():
                try:
                    if chain is None:
                        chain = daemon.chain.clone()
                    best = chain.best_number()
                    daemon._notify("chain", best=best)
                    task = chain.task_bounties.tasks(task_id)
                    if not daemon._claimed_by_me(task.status):
                        self.cancel(f"the claim is gone on chain (task is {task.status.name})")
                        return
                    lease = task.status.lease_until
                    daemon._set(block=best, lease_until=lease)
                    if task.deadline - best <= config.deadline_margin_blocks:
                        log.warning("task %d: %d blocks before the deadline (block %d): releasing the claim",
                                    task_id, task.deadline - best, task.deadline)
                        self.cancel(f"the deadline (block {task.deadline}) is {task.deadline - best} blocks away")
                        daemon._release(task_id, f"deadline approaching: block {best} of {task.deadline}")
                        return
                    if lease - best <= config.lease_margin_blocks:
                        with self.lock:
                            on_chain = task.progress
                            step, root = self.latest["step"], self.latest["root"]
                            if on_chain is not None and int(on_chain.step) > step:
                                step, root = int(on_chain.step), on_chain.checkpoint_root.hex()
                            raw = heartbeat_extrinsic(daemon, task_id, step, root or "00" * 32)
                        chain.rpc("author_submitExtrinsic", ["0x" + raw.hex()], retry=False)
                        log.info("task %d: lease until block %d, now %d: heartbeat (step %d) sent to the node",
                                 task_id, lease, best, step)
                except ConnectionLost as exc:
                    log.debug("task %d: guard: %s", task_id, exc)
                    if chain is not None:
                        chain.close()
                    chain = None
                except Exception as exc:  # noqa: BLE001 - try again at the next tick
                    log.debug("task %d: guard: %s", task_id, exc)
        finally:
            if chain is not None:
                chain.close()
