"""The worker daemon's settings (DaemonConfig, from `paratrain worker`'s flags), the training callbacks a
program embedding the daemon may add (TrainingCallback), and the state it reports (Status, also written to
``<state-dir>/status.json``); importable without the daemon (workers.daemon re-exports them)."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from workers.artifacts import FetchLimits
from workers.capabilities import detect_cpus

if TYPE_CHECKING:
    from workers.spec import TaskSpec

# Called in every Ray Train worker after each optimizer step with (the step just done, the worker's rank).
# It travels pickled to the training workers, so it must be picklable; raising fails the run.
StepHook = Callable[[int, int], None]


class TrainingCallback(Protocol):
    """What a program that embeds the worker daemon (a benchmark's probe, a profiler) may add to each task's
    training, as Ray Train's callbacks do, instead of replacing workers.runner.train.

    `step_hook` is asked once per task, just before its training starts; the hook it returns (None: none for
    this task) runs after every step in each training worker, before the daemon's own cancellation check
    (workers.training_session.CancelHook). A hook that raises fails the task's training as a cancellation
    does: the daemon refuses the task (TaskRefused), or reports it cancelled when it was stopping it anyway."""

    def step_hook(self, task_id: int, spec: TaskSpec) -> StepHook | None:
        """The step hook for task `task_id`'s training of `spec`, or None."""


@dataclass
class DaemonConfig:
    orchestrator: str
    chain_url: str
    key: str
    store: str | None = None                 # artifact store root (fsspec URL or directory)
    trusted_stores: tuple[str, ...] = ()      # the other stores whose URIs it opens: the requesters'
    allow_remote_uris: bool = False           # http(s) URIs outside those stores, public addresses only
    allow_private_addresses: bool = False     # ... and loopback or private ones too
    limits: FetchLimits = field(default_factory=FetchLimits)
    ray_address: str | None = None
    num_workers: int = 1                      # Ray Train workers (DDP when 2+; pays off only for heavy recipes)
    use_gpu: bool = False
    allow_custom_code: bool = False
    state_dir: str | None = None              # journal + status.json (default ~/.cache/paratrain/worker/<account>)
    deadline_margin_blocks: int = 3           # release the claim when fewer blocks are left before the deadline
    lease_margin_blocks: int = 3              # heartbeat straight to the node when the lease is this close
    min_blocks_to_claim: int = 6              # do not claim a task with fewer blocks before its deadline
    heartbeat_interval_s: float = 2.0         # at most one heartbeat extrinsic per this many seconds
    poll_wait_s: float = 10.0                 # long-poll duration of request_assignment
    guard_interval_s: float = 0.3
    max_tasks: int | None = None              # stop after this many results submitted (None: run forever)
    max_failures: int = 2                     # Ray Train restarts of the worker group
    cpus: int = field(default_factory=detect_cpus)  # what the machine or its cgroup allows
    gpus: int = 0
    gpu_model: str = ""
    memory_mb: int = 0                        # 0: the machine's memory
    chain_timeout_s: float = 30.0
    submit_timeout_s: float = 60.0
    federated: bool = True                    # take the aggregator role for federated tasks (--no-federated: off)
    fl_host: str = "127.0.0.1"                # the aggregator's SuperLink address, published in its claims
    fl_port: int = 0                          # 0: a free port, chosen once per daemon
    # not a flag: for programs that embed the daemon (benchmarks, profilers); see TrainingCallback
    training_callbacks: tuple[TrainingCallback, ...] = ()


@dataclass
class Status:
    account: str = ""
    state: str = "starting"   # starting | idle | verifying | claiming | training | submitting | releasing | stopped
    task_id: int | None = None
    recipe: str | None = None
    step: int = 0
    total_steps: int = 0
    epoch: int = 0
    loss: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    checkpoints: int = 0
    checkpoint_root: str | None = None
    lease_until: int | None = None
    deadline: int | None = None
    block: int | None = None
    tasks_submitted: int = 0
    tasks_refused: int = 0
    tasks_released: int = 0
    tasks_paid: int = 0
    payouts_pending: int = 0
    last_result: dict[str, Any] | None = None
    last_error: str | None = None
    updated: float = 0.0
