"""The aggregator's decisions, apart from its processes and its chain connection, so that each is a plain
function of what the chain says (tested without Flower or a node, as workers.retry and workers.task_run).

One federated task as the worker daemon aggregates it (a FederatedRun)::

    DISCOVERED --claim_aggregator in a block--> CLAIMED --SuperLink up, app dir written--> LINK_UP
        --`flwr run` accepted (run id)--> RUNNING --TaskCompleted--> DONE
    a task of its own found Running on chain at start: CLAIMED (resumed), from the chain's last_committed
    RUNNING --the run or the SuperLink ended, the task still its own--> CLAIMED (link up again, a new run)
    any live state --the chain says the task is not its own any more--> LOST

DONE and LOST are final. LOST covers a claim refused or taken by another Trainer, a lapsed lease, a rejected
round (the task reopens for someone else), a release near the deadline, an expired or cancelled task. What
the daemon does about the chain's answer is `classify`; when it renews its lease or gives the task back is
`LeaseGuard.action`; whether it tries a task at all is `claim_refusal`; whether an ended run starts again is
`may_relaunch`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class FlRunState(Enum):
    DISCOVERED = "discovered"  # Open (or Joining past its join deadline) on chain: a candidate
    CLAIMED = "claimed"        # claim_aggregator in a block, or a Running task of its own found at start
    LINK_UP = "link-up"        # the SuperLink child answers, the app directory and FLWR_HOME are written
    RUNNING = "running"        # the ServerApp run is submitted (`flwr run`): rounds are being committed
    DONE = "done"              # TaskCompleted: every round accepted
    LOST = "lost"              # the task is not (or no longer) this aggregator's


TRANSITIONS: dict[FlRunState, frozenset[FlRunState]] = {
    FlRunState.DISCOVERED: frozenset({FlRunState.CLAIMED, FlRunState.LOST}),
    FlRunState.CLAIMED: frozenset({FlRunState.LINK_UP, FlRunState.DONE, FlRunState.LOST}),
    FlRunState.LINK_UP: frozenset({FlRunState.RUNNING, FlRunState.CLAIMED, FlRunState.DONE, FlRunState.LOST}),
    FlRunState.RUNNING: frozenset({FlRunState.CLAIMED, FlRunState.DONE, FlRunState.LOST}),
    FlRunState.DONE: frozenset(),
    FlRunState.LOST: frozenset(),
}
FINAL = frozenset(state for state, onward in TRANSITIONS.items() if not onward)


class InvalidTransition(RuntimeError):
    """A move the state machine does not have: a bug in the aggregator, never a condition of the task."""


@dataclass
class FederatedRun:
    """Where one federated task stands for this aggregator. `relaunches` counts the runs started again after
    a run or its SuperLink ended (bounded by the daemon); `reason` says why it ended LOST."""

    task_id: int
    state: FlRunState = FlRunState.DISCOVERED
    resumed: bool = False
    run_id: int | None = None
    endpoint: str | None = None
    relaunches: int = 0
    reason: str | None = None
    history: list[FlRunState] = field(default_factory=list, repr=False)  # bounded by max_relaunches

    @classmethod
    def from_claim(cls, task_id: int, endpoint: str | None = None) -> FederatedRun:
        """A task this account still aggregates on chain from a previous run of the daemon."""
        return cls(task_id, FlRunState.CLAIMED, resumed=True, endpoint=endpoint)

    def advance(self, to: FlRunState, reason: str | None = None) -> None:
        if to not in TRANSITIONS[self.state]:
            raise InvalidTransition(f"federated task {self.task_id}: {self.state.name} -> {to.name} "
                                    "is not a transition")
        if self.state is FlRunState.RUNNING and to is FlRunState.CLAIMED:
            self.relaunches += 1
            self.run_id = None
        self.history.append(self.state)
        self.state = to
        if reason is not None:
            self.reason = reason

    @property
    def final(self) -> bool:
        return self.state in FINAL

    def as_record(self) -> dict[str, object]:
        """What `<state-dir>/fl-<task>.json` keeps: enough to say on restart what was running."""
        return {"task_id": self.task_id, "state": self.state.value, "run_id": self.run_id,
                "endpoint": self.endpoint, "relaunches": self.relaunches, "reason": self.reason}


@dataclass(frozen=True)
class TaskView:
    """The chain's FlTask as the decisions need it: `status` is the FlTaskStatus variant's name and
    `aggregator`/`lease_until` are set only when it is Running."""

    task_id: int
    status: str
    requester: str
    deadline: int
    join_deadline: int
    clients: int
    min_clients: int
    rounds: int
    last_committed: int
    last_accepted: int
    aggregator: str | None = None
    lease_until: int | None = None


class Outcome(Enum):
    KEEP = "keep"    # Running with this aggregator: go on
    DONE = "done"    # Completed
    LOST = "lost"    # anything else


def classify(view: TaskView | None, me: str) -> tuple[Outcome, str | None]:
    """What the chain's status means for a task this aggregator holds (or held); the reason when LOST."""
    if view is None:
        return Outcome.LOST, "the task is gone from the chain"
    if view.status == "Completed":
        return Outcome.DONE, None
    if view.status == "Running":
        if view.aggregator == me:
            return Outcome.KEEP, None
        return Outcome.LOST, f"aggregated by {view.aggregator} now"
    reasons = {"Open": "the task was reopened (lease lapsed, round rejected or released)",
               "Joining": "the task is back to joining", "Expired": "the task expired",
               "Cancelled": "the task was cancelled"}
    return Outcome.LOST, reasons.get(view.status, f"the task is {view.status}")


@dataclass(frozen=True)
class ClaimPolicy:
    """When an aggregator tries a task: `min_blocks` before the deadline at least (a claim that could not
    finish one round only pays a lease slash)."""

    min_blocks: int = 6


def claim_refusal(view: TaskView, *, me: str, now: int, is_client: bool, policy: ClaimPolicy) -> str | None:
    """Why this aggregator will not claim the task (None: it may). The pallet refuses the same cases by name;
    checking first saves an extrinsic and a fee for each task every worker sees."""
    if view.status == "Joining":
        if now < view.join_deadline:
            return f"clients may join until block {view.join_deadline}"
        if view.clients < view.min_clients:
            return f"{view.clients} clients joined, fewer than the {view.min_clients} a round needs"
    elif view.status != "Open":
        return f"the task is {view.status}"
    if view.requester == me:
        return "this account posted the task"
    if is_client:
        return "this account joined the task as a client"
    if view.deadline - now < policy.min_blocks:
        return f"{view.deadline - now} blocks left before the deadline, fewer than {policy.min_blocks}"
    return None


class GuardAction(Enum):
    NONE = "none"
    HEARTBEAT = "heartbeat"  # renew the lease (rounds longer than RoundLease/3 blocks)
    RELEASE = "release"      # give the task back before the deadline takes it (no slash)


@dataclass(frozen=True)
class LeaseGuard:
    """The guard thread's rule: a heartbeat once a third of the lease has run (so two missed heartbeats
    still leave a margin), a release once fewer than `deadline_margin` blocks are left before the deadline."""

    round_lease: int
    deadline_margin: int = 3

    def action(self, *, now: int, lease_until: int, deadline: int) -> GuardAction:
        if deadline - now <= self.deadline_margin:
            return GuardAction.RELEASE
        if lease_until - now <= self.round_lease - max(1, self.round_lease // 3):
            return GuardAction.HEARTBEAT
        return GuardAction.NONE


def may_relaunch(run: FederatedRun, max_relaunches: int) -> bool:
    """Whether a run that ended while the task is still this aggregator's is started again (a new SuperLink
    and a new `flwr run`, from the chain's last committed round), or the task is released instead.
    `run.relaunches` already counts the relaunch in question (FederatedRun.advance)."""
    return run.relaunches <= max_relaunches
