"""The aggregator's run of a SecAgg+ task: `serve` (workers/fl/server_app.py) hands over here when the task's
spec document has a ``secagg`` object.

Each round is one `run_round` of Flower's SecAgg+ workflow behind paratrain's guard (workers/fl/secagg_app.py)
on the run's grid narrowed to identified, joined clients (`JoinedGrid`, as ChainStrategy samples), and is
committed by `SecAggCommitter` before the next starts; the chain gates every round (`wait_for_round`: at most
MaxRoundsAhead rounds wait for verdicts). The model a round starts from is the chain's (`resume_model`), its
arrays in name order on both sides of the wire: the clients' clip/commit mod names Flower's unnamed arrays by
the same sorted names (workers/fl/client_app.py).

Observers get "round-committed" (the journal the worker daemon reads, the demo) and "round-halted" (a round
that lost too many clients to SecAgg's threshold, or had too few: it has no result and none is pretended).
"""
from __future__ import annotations

import logging
import time
from typing import Any

from flwr.app import Context
from flwr.serverapp import Grid

from workers.fl.arrays import Arrays
from workers.fl.committer import ChainCommitter
from workers.fl.secagg_app import SecAggStrategy, run_round
from workers.fl.secagg_commit import SecAggCommitter
from workers.fl.spec import FlSpec
from workers.fl.strategy import FlTaskView, IdentityBook, JoinedGrid

log = logging.getLogger("paratrain.fl.secagg")


def named_in_order(arrays: Arrays) -> Arrays:
    """The model with its arrays in name order: the order Flower carries them in a SecAgg round."""
    return {name: arrays[name] for name in sorted(arrays)}


def serve_secagg(grid: Grid, context: Context, setup: Any, spec: FlSpec, view: FlTaskView,
                 identities: IdentityBook, *, max_idle_passes: int) -> int:
    """Run the task's remaining rounds under SecAgg+; the chain's last committed round when it stops."""
    from workers.fl.server_app import _running_task, _task, resume_model, wait_for_round

    assert spec.secagg is not None
    chain, me, task_id = setup.chain, setup.keypair.ss58_address, setup.task_id

    on_chain = ChainCommitter(chain, setup.keypair)
    committer = SecAggCommitter(task_id=task_id, rule=spec.rule.text, store=setup.store,
                                committer=setup.committer or on_chain, report=on_chain.report_refused,
                                observers=setup.observers)
    idle = 0
    while idle < max_idle_passes:
        if int(_task(chain, task_id).last_committed) >= view.rounds:
            break   # every round committed (the task may be Completed already)
        task = _running_task(chain, task_id, me)
        done_rounds = int(task.last_committed)
        wait_for_round(chain, task_id, done_rounds + 1, me, poll_s=setup.poll_s)
        base = named_in_order(resume_model(chain, setup.store, task_id, task, spec))
        strategy = SecAggStrategy(base, spec.secagg.params, min_clients=view.min_clients, fraction=spec.fraction,
                                  first_round=done_rounds + 1, task_id=task_id, on_round=committer)
        joined = JoinedGrid(grid, identities, min_nodes=view.min_clients,
                            give_up_at=time.monotonic() + spec.round_timeout_s)
        finished = run_round(joined, context, strategy, timeout=spec.round_timeout_s, require_signed=True,
                             on_refusal=committer.refused, on_masked=committer.masked)
        if finished is None:
            idle += 1
            for observer in setup.observers:
                observer("round-halted", {"task_id": task_id, "round": done_rounds + 1})
            log.warning("task %d: secagg round %d halted", task_id, done_rounds + 1)
        else:
            idle = 0
    return int(_task(chain, task_id).last_committed)


__all__ = ["named_in_order", "serve_secagg"]
