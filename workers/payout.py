"""A worker's payouts under a challenge period: finalize_result once an Approved result's period is over.

On a chain with a ChallengePeriod, a quorum of accepts makes a task Approved{worker, challenge_until}: the
bounty stays escrowed and the worker keeps its claim (TaskBounties.ClaimsByWorker) until the period ends
unchallenged. Then on_initialize pays it in the next block, or anyone pays it at once with finalize_result.
With instant seal an idle chain makes no blocks, so the worker does not wait for one: `Payouts` watches
the results this worker holds (the daemon calls `settle()` between assignment polls, never blocking the
assignment loop for a whole period) and sends finalize_result as soon as the period is over.

"Over" is judged by the later of the chain's Timestamp.Now and the local clock (`period_left_ms`): the
chain's moments are the block author's wall-clock milliseconds, and on an idle chain Now stays at the last
block's time. A clock ahead of the chain's costs one refused call: ChallengePeriodNotOver, retried after
`retry_s`. A NotApproved answer means the status changed under it: re-read at once (Accepted: on_initialize
or someone else paid it; Challenged: watched until the challenge round settles).
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from runtime_bindings.generated.types import TaskStatus

log = logging.getLogger("paratrain.worker")

HELD = ("Submitted", "Approved", "Challenged")   # the result may still pay its worker


def moment_text(ms: int) -> str:
    """A Timestamp moment (unix ms) as local wall-clock time, to the millisecond."""
    at = datetime.fromtimestamp(ms / 1000).astimezone()
    return f"{at:%H:%M:%S}.{at.microsecond // 1000:03d} {at:%Z}"


def period_left_ms(challenge_until: int, chain_now_ms: int, local_now_ms: int) -> int:
    """Milliseconds left in a challenge period, by the later of the chain's time and the local clock."""
    return max(0, int(challenge_until) - max(int(chain_now_ms), int(local_now_ms)))


class Payouts:
    """The results this worker holds on chain, watched until they pay it (or no longer can)."""

    def __init__(self, chain: Any, keypair: Any, *, watch_s: float = 2.0, retry_s: float = 2.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.chain, self.keypair = chain, keypair
        self.watch_s, self.retry_s, self.clock = watch_s, retry_s, clock
        self.held: dict[int, float] = {}            # task id -> when (time.monotonic) to look at it next
        self._announced: set[int] = set()           # Approved tasks whose period was logged
        self.paid: list[dict[str, Any]] = []        # {task_id, block, worker_reward, finalized}: tests, status
        self.lost: list[dict[str, Any]] = []        # {task_id, status}

    @property
    def account(self) -> str:
        return self.keypair.ss58_address

    def track(self, task_id: int) -> None:
        """Watch a result this worker submitted (or found held on chain after a restart)."""
        self.held.setdefault(int(task_id), 0.0)

    def wait_s(self, longest: float) -> float:
        """How long the daemon may wait (a long poll) before the next look is due: at most `longest`."""
        if not self.held:
            return longest
        return max(0.2, min(longest, min(self.held.values()) - time.monotonic()))

    def settle(self) -> None:
        """Look at every held result that is due: finalize the Approved ones whose period is over."""
        from runtime_bindings import BindingsError

        for task_id in sorted(self.held):
            if self.held.get(task_id, 0.0) > time.monotonic():
                continue
            try:
                self._look(task_id)
            except BindingsError as exc:  # the node is away: look again later
                log.warning("task %d: payout check failed (%s); retrying in %.0f s", task_id, exc, self.retry_s)
                self._later(task_id, self.retry_s)

    def _later(self, task_id: int, seconds: float) -> None:
        self.held[task_id] = time.monotonic() + seconds

    def _look(self, task_id: int) -> None:
        task = self.chain.task_bounties.tasks(task_id)
        status = None if task is None else task.status
        state = "Missing" if status is None else status.name
        mine = getattr(status, "worker", None) == self.account  # every status that holds a result names its worker
        if isinstance(status, TaskStatus.Accepted) and mine:
            self._done(task_id)
            self.paid.append({"task_id": task_id, "finalized": False})
            log.info("task %d: paid out (Accepted; finalized by the chain or another account)", task_id)
        elif state not in HELD or not mine:
            self._done(task_id)
            self.lost.append({"task_id": task_id, "status": state})
            log.warning("task %d: the result no longer pays this worker (the task is %s)", task_id, state)
        elif not isinstance(status, TaskStatus.Approved):
            self._later(task_id, self.watch_s)  # under verification or in a challenge round
        else:
            until = status.challenge_until
            left = period_left_ms(until, int(self.chain.timestamp.now() or 0), int(self.clock() * 1000))
            if task_id not in self._announced:
                self._announced.add(task_id)
                log.info("task %d: result approved; challenge period until %s (%.1f s left): the payout follows",
                         task_id, moment_text(until), left / 1000)
            if left > 0:
                self._later(task_id, left / 1000)
            else:
                self._finalize(task_id)

    def _finalize(self, task_id: int) -> None:
        from runtime_bindings import BindingsError, ModuleError

        try:
            receipt = self.chain.task_bounties.finalize_result(self.keypair, task_id)
        except ModuleError as exc:
            if exc.name == "NotApproved":  # paid by on_initialize meanwhile, or challenged: read it again
                self.held[task_id] = 0.0
            else:  # ChallengePeriodNotOver: the chain's clock is behind ours
                log.info("task %d: finalize_result refused (%s); retrying in %.0f s", task_id, exc.name, self.retry_s)
                self._later(task_id, self.retry_s)
            return
        except BindingsError as exc:
            log.warning("task %d: finalize_result failed (%s); retrying in %.0f s", task_id, exc, self.retry_s)
            self._later(task_id, self.retry_s)
            return
        accepted = next((e for e in receipt.events if e.name == "TaskAccepted"), None)
        reward = int(getattr(accepted, "worker_reward", 0))
        self._done(task_id)
        self.paid.append({"task_id": task_id, "finalized": True, "block": receipt.block_number,
                          "worker_reward": reward})
        log.info("task %d: challenge period over: finalize_result paid the bounty in block %d (worker reward %d)",
                 task_id, receipt.block_number, reward)

    def _done(self, task_id: int) -> None:
        self.held.pop(task_id, None)
        self._announced.discard(task_id)


__all__ = ["HELD", "Payouts", "moment_text", "period_left_ms"]
