"""What the worker daemon does after an error: a pure function of the error's type, never of its text.

    decide(error) -> Decision

- ``DaemonStopped``: STOP. Leave at once; a claim stays on chain (a restart resumes it).
- ``TaskRefused``: REFUSE. Record the refusal, decline the task, release the claim when one is held.
- ``TaskCancelled``: CANCELLED. Leave the task as the canceller left it (released, or kept for a restart).
- ``InvalidTransaction``/``UnknownTransaction`` of kind Stale or Future, ``TransactionAlreadyImported``,
  ``TransactionPriorityTooLow``: RESIGN. Sign the call again (a fresh nonce) and send it again: another of
  the worker's extrinsics raced it.
- orchestrator ``FailedPrecondition`` or ``Unavailable`` (relaying): SEND_DIRECT. Send the signed extrinsic
  to the node itself, whose refusal (if any) is typed.
- ``DispatchError`` (failed in a block), any other ``TransactionRejected``: FAIL. This attempt at the task
  failed: logged, the daemon goes on.
- any other ``BindingsError`` (connection lost, submit timeout, RPC error): RETRY_LATER. Pause, then resume
  from the chain's state (the chain holds the claim).
- any other orchestrator ``ApiError``, anything else: FAIL.

Why SEND_DIRECT for a relay's FailedPrecondition: the relay reports a pool refusal as a gRPC status whose
only detail is text, so the worker does not guess from it; the node's own answer to the same bytes is typed
(`runtime_bindings.errors`), and `decide` applies to that one.

Training failures are refusals with a reason: `training_refusal`.
"""
from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING

from orchestrator import errors as api
from runtime_bindings import (
    BindingsError,
    DispatchError,
    InvalidTransaction,
    TransactionAlreadyImported,
    TransactionPriorityTooLow,
    TransactionRejected,
    UnknownTransaction,
)
from workers.errors import DaemonStopped, TaskCancelled, TaskRefused

if TYPE_CHECKING:
    from workers.engine import TrainingError


class Decision(Enum):
    STOP = "stop"
    REFUSE = "refuse"
    CANCELLED = "cancelled"
    RESIGN = "resign"
    SEND_DIRECT = "send_direct"
    RETRY_LATER = "retry_later"
    FAIL = "fail"


RESIGN_KINDS = frozenset({"Stale", "Future"})  # sp_runtime validity kinds a nonce race produces


def decide(error: BaseException) -> Decision:
    """The policy table above (module docstring); the first matching row wins."""
    if isinstance(error, DaemonStopped):
        return Decision.STOP
    if isinstance(error, TaskRefused):
        return Decision.REFUSE
    if isinstance(error, TaskCancelled):
        return Decision.CANCELLED
    if isinstance(error, (TransactionAlreadyImported, TransactionPriorityTooLow)):
        return Decision.RESIGN
    if isinstance(error, (InvalidTransaction, UnknownTransaction)) and error.kind in RESIGN_KINDS:
        return Decision.RESIGN
    if isinstance(error, (api.FailedPrecondition, api.Unavailable)):
        return Decision.SEND_DIRECT
    if isinstance(error, (DispatchError, TransactionRejected)):
        return Decision.FAIL
    if isinstance(error, BindingsError):
        return Decision.RETRY_LATER
    return Decision.FAIL


def training_refusal(error: TrainingError) -> TaskRefused:
    """A training run that failed: the task is refused, saying whether the task's own limits stopped it."""
    from workers.engine import MemoryLimitError, TrainingTimeoutError

    if isinstance(error, (TrainingTimeoutError, MemoryLimitError)):
        return TaskRefused(f"training failed within the task's limits: {error}")
    return TaskRefused(f"training failed: {error}")
