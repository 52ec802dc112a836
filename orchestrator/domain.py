"""Plain data shared by the index, the scheduler, the handlers and serde.

Accounts are SS58 strings (the form every client shows), hashes are bytes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class TaskStatus(str, Enum):
    OPEN = "Open"
    CLAIMED = "Claimed"
    SUBMITTED = "Submitted"
    ACCEPTED = "Accepted"
    EXPIRED = "Expired"
    CANCELLED = "Cancelled"
    APPROVED = "Approved"  # a quorum accepted; paid when the challenge period ends (the worker still holds it)
    CHALLENGED = "Challenged"  # a validator challenged the approval; a larger quorum settles it


@dataclass(frozen=True)
class Capabilities:
    cpus: int
    gpus: int
    gpu_model: str
    memory_mb: int


@dataclass(frozen=True)
class Requirements:
    min_cpus: int
    min_gpus: int
    min_memory_mb: int

    def met_by(self, caps: Capabilities) -> bool:
        return caps.cpus >= self.min_cpus and caps.gpus >= self.min_gpus and caps.memory_mb >= self.min_memory_mb


@dataclass(frozen=True)
class TaskView:
    task_id: int
    requester: str
    recipe: str
    spec_hash: bytes
    spec_uri: str
    dataset_hash: bytes
    eval_metric: str
    eval_target: int  # micro-units, as on chain
    requirements: Requirements
    bounty: int
    min_stake: int
    deadline: int
    validators_required: int
    status: TaskStatus
    worker: str | None = None
    lease_until: int | None = None
    progress_step: int = 0
    checkpoint_root: bytes = b""
    created_at: int = 0


@dataclass(frozen=True)
class WorkerView:
    account: str
    role: str  # "Trainer" | "Validator"
    stake: int
    capabilities: Capabilities
    active: bool
    active_claims: int = 0


@dataclass(frozen=True)
class Assignment:
    """An off-chain reservation of a task for one worker, until `expires_at` (monotonic seconds)."""

    task: TaskView
    worker: str
    expires_at: float


@dataclass(frozen=True)
class ProgressUpdate:
    task_id: int
    worker: str
    step: int
    epoch: int
    loss: float
    metrics: dict[str, float] = field(default_factory=dict)
    checkpoint_root: bytes = b""


@dataclass(frozen=True)
class TaskEvent:
    """One change of a task, from the chain (block > 0) or from live progress (block 0)."""

    task_id: int
    kind: str  # the pallet event name, or "Progress"
    block: int
    detail: dict[str, object] = field(default_factory=dict)
