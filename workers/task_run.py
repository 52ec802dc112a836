"""One task as the worker daemon works on it: a small state machine with explicit transitions.

    ASSIGNED --claim--> CLAIMED --train--> TRAINING --> TRAINED --submit--> SUBMITTED
        (a resumed claim starts at CLAIMED)        \\--> CANCELLED (deadline guard or a stop: see below)
    any live state --> REFUSED (spec, data set, training or target not acceptable) --> RELEASED (if it was held)
    CLAIMED/TRAINING/TRAINED --> RELEASED (deadline near, target missed)
    any live state --> FAILED (a chain or orchestrator error: logged, the daemon goes on)

SUBMITTED, RELEASED, CANCELLED and FAILED are final, and so is REFUSED when no claim was held. A transition
not in `TRANSITIONS` is a bug in the daemon, raised as `InvalidTransition` rather than carried on silently.
What the daemon does after an error is decided apart from this (workers.retry); this object only says where
the task stands, so that both stay testable without Ray or a chain.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class RunState(Enum):
    ASSIGNED = "assigned"      # offered by the orchestrator (or found claimed on chain: then CLAIMED)
    CLAIMED = "claimed"        # claim_task in a block: the lease runs
    TRAINING = "training"      # the Ray Train run is going
    TRAINED = "trained"        # a TrainingResult exists
    SUBMITTED = "submitted"    # submit_result in a block
    RELEASED = "released"      # release_claim in a block: the task is given back, no slash
    REFUSED = "refused"        # this worker will not work on it (declined from then on)
    CANCELLED = "cancelled"    # training stopped (claim gone, deadline guard, daemon stopping)
    FAILED = "failed"          # a chain or orchestrator error ended this attempt


_LIVE = (RunState.ASSIGNED, RunState.CLAIMED, RunState.TRAINING, RunState.TRAINED)
TRANSITIONS: dict[RunState, frozenset[RunState]] = {
    RunState.ASSIGNED: frozenset({RunState.CLAIMED, RunState.REFUSED, RunState.FAILED}),
    RunState.CLAIMED: frozenset({RunState.TRAINING, RunState.REFUSED, RunState.RELEASED, RunState.FAILED}),
    RunState.TRAINING: frozenset({RunState.TRAINED, RunState.CANCELLED, RunState.REFUSED, RunState.RELEASED,
                                  RunState.FAILED}),
    RunState.TRAINED: frozenset({RunState.SUBMITTED, RunState.REFUSED, RunState.RELEASED, RunState.FAILED}),
    RunState.REFUSED: frozenset({RunState.RELEASED}),
    RunState.SUBMITTED: frozenset(),
    RunState.RELEASED: frozenset(),
    RunState.CANCELLED: frozenset(),
    RunState.FAILED: frozenset(),
}
FINAL = frozenset(state for state, onward in TRANSITIONS.items() if not onward)


class InvalidTransition(RuntimeError):
    """A move the state machine does not have: a bug in the daemon, never a condition of the task."""


@dataclass
class TaskRun:
    """Where one task stands. `view` is the orchestrator's TaskView from the assignment (None for a claim
    resumed from the chain); `reason` says why it ended when it did not end SUBMITTED."""

    task_id: int
    state: RunState = RunState.ASSIGNED
    view: Any = None
    resumed: bool = False      # a claim this worker still held on chain from a previous run
    reason: str | None = None
    _seen: list[RunState] = field(default_factory=list, repr=False)  # at most one per state: bounded

    @classmethod
    def from_claim(cls, task_id: int) -> TaskRun:
        """A task this worker still holds on chain from a previous run: it resumes from its journal."""
        return cls(task_id, RunState.CLAIMED, resumed=True)

    def advance(self, to: RunState, reason: str | None = None) -> None:
        if to not in TRANSITIONS[self.state]:
            raise InvalidTransition(f"task {self.task_id}: {self.state.name} -> {to.name} is not a transition")
        self._seen.append(self.state)
        self.state = to
        if reason is not None:
            self.reason = reason

    @property
    def was_claimed(self) -> bool:
        """The run went through CLAIMED: a claim of this worker was on chain at some point."""
        return self.state is RunState.CLAIMED or RunState.CLAIMED in self._seen

    @property
    def live(self) -> bool:
        return self.state in _LIVE

    @property
    def final(self) -> bool:
        return self.state in FINAL
