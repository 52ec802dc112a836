"""TaskBounties' per-block expiry queues refuse with named errors, in process (issue 10).

A task's deadline and a claim's lease are scheduled in per-block slots of MaxExpiriesPerBlock entries that
spill to at most MaxExpirySpill later blocks. Before the fix the 33rd task at deadline u32::MAX spilled to
block 2^32, whose storage key does not encode: a codec traceback and `DispatchError::Other`. Now a full
queue is ExpiryQueueFull, a deadline more than MaxDeadlineBlocks ahead is DeadlineTooFar, and a failed
call leaves the state as it was.
"""
from __future__ import annotations

from test_pallet_invariants import ACCOUNTS, SPEC, UNIT, Harness

from devnet.runtime.framework import ModuleError
from devnet.runtime.pallets.task_bounties import BLOCK_NUMBER_MAX, TaskBounties

REQUESTER = ACCOUNTS[0]


def constant(name: str) -> int:
    """The runtime's value, as the metadata declares it (each pallet instance sets its constants when built)."""
    return Harness().runtime.task_bounties.constant(name)


PER_BLOCK, SPILL, MAX_AHEAD = (constant(n) for n in ("MaxExpiriesPerBlock", "MaxExpirySpill", "MaxDeadlineBlocks"))


def create_task(h: Harness, deadline: int) -> str | None:
    """Dispatch create_task as the executive would; the pallet error's name, or None when it succeeded."""
    instance, call_def = h.runtime.calls[("TaskBounties", "create_task")]
    outer = h.ctx.state
    h.ctx.state = outer.child()
    try:
        call_def.handler(instance, h.ctx, REQUESTER, spec=SPEC, bounty=UNIT, min_stake=0, deadline=deadline,
                         validators_required=1, holdout_commitment=None)
        h.ctx.state.commit()
        return None
    except ModuleError as error:
        assert error.pallet == "TaskBounties"
        return error.name
    finally:
        h.ctx.state = outer


def fill(h: Harness, deadline: int, count: int) -> None:
    for _ in range(count):
        assert create_task(h, deadline) is None


def test_a_full_queue_is_expiry_queue_full_and_changes_nothing() -> None:
    h = Harness()
    deadline = h.ctx.block_number + 10
    fill(h, deadline, PER_BLOCK * (SPILL + 1))  # the slot and every block it may spill to
    slots = [TaskBounties.DeadlineExpiries.get(h.state, deadline + i) for i in range(SPILL + 2)]
    assert [len(s) for s in slots] == [PER_BLOCK] * (SPILL + 1) + [0]
    before = h.snapshot()
    assert create_task(h, deadline) == "ExpiryQueueFull"
    assert h.snapshot() == before
    assert create_task(h, deadline + SPILL + 1) is None  # the block after the spill window still has room


def test_a_deadline_at_u32_max_is_deadline_too_far() -> None:
    h = Harness()
    before = h.snapshot()
    for _ in range(PER_BLOCK + 8):  # the case: 40 tasks at u32::MAX, refused from the first
        assert create_task(h, BLOCK_NUMBER_MAX) == "DeadlineTooFar"
    assert h.snapshot() == before
    assert create_task(h, h.ctx.block_number + MAX_AHEAD + 1) == "DeadlineTooFar"
    assert create_task(h, h.ctx.block_number + MAX_AHEAD) is None


def test_the_spill_stops_at_u32_max() -> None:
    """Near the end of the block numbers a slot cannot spill past u32::MAX: a named error, not a codec one."""
    h = Harness()
    h.ctx.block_number = BLOCK_NUMBER_MAX - 2
    fill(h, BLOCK_NUMBER_MAX - 1, PER_BLOCK * 2)  # its own slot and the last one
    before = h.snapshot()
    assert create_task(h, BLOCK_NUMBER_MAX - 1) == "ExpiryQueueFull"
    assert create_task(h, BLOCK_NUMBER_MAX) == "ExpiryQueueFull"
    assert h.snapshot() == before
