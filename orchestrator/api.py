"""The worker and task APIs as plain Python: what every transport calls.

`orchestrator.handlers.Handlers` implements this protocol; `orchestrator.server`
translates gRPC requests into these calls (after authenticating the caller, whose
SS58 account is `account`) and their results or `orchestrator.errors.ApiError`s
back into responses and status codes. Another transport could call the same.
"""
from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from orchestrator.domain import Assignment, Capabilities, ProgressUpdate, TaskEvent, TaskStatus, TaskView, WorkerView


class WorkerApi(Protocol):
    def register_worker(self, account: str, capabilities: Capabilities) -> WorkerView:
        """Open a worker session; the account must be an active Trainer on chain (else PermissionDenied)."""

    async def request_assignment(self, account: str, wait_s: float,
                                 declined: frozenset[int] = frozenset()) -> Assignment | None:
        """Long poll: a task reserved for this worker off-chain until the assignment expires, or None. The
        worker's reservations of the `declined` tasks end, and none of them is offered to it."""

    async def report_progress(self, account: str, update: ProgressUpdate, heartbeat_extrinsic: bytes | None) -> None:
        """Live progress of the caller's claimed task; an optional worker-signed `heartbeat` extrinsic is
        relayed to the chain at a bounded rate. NotFound for an unknown task, PermissionDenied for another's."""

    def task_spec(self, account: str, task_id: int) -> TaskView:
        """The full spec of a task the caller holds or is assigned (PermissionDenied otherwise)."""

    async def relay_extrinsic(self, account: str, task_id: int, extrinsic: bytes) -> str:
        """Relay a TaskBounties extrinsic signed by `account` itself about `task_id` (claim_task,
        heartbeat, release_claim, submit_result, submit_private_result); returns its hash. The orchestrator
        never signs."""

    async def report_result(self, account: str, task_id: int, extrinsic_hash: str) -> None:
        """Tell the orchestrator a result was submitted on chain (it confirms from finalized events)."""


class TaskApi(Protocol):
    def list_tasks(self, status: TaskStatus | None, limit: int, page_token: str) -> tuple[list[TaskView], str]:
        """A page of tasks in id order and the token of the next page ("" at the end)."""

    def get_task(self, task_id: int) -> TaskView:
        """NotFound for an unknown task."""

    def watch_task(self, task_id: int) -> AsyncIterator[TaskEvent]:
        """The task's chain events and live progress as they happen, from its current state on."""
