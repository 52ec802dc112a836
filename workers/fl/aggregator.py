"""The worker's aggregator role: it claims federated tasks, runs their rounds on a Flower SuperLink it
supervises, keeps their leases, and resumes them after a restart (docs/federated.md, "The aggregator").

    Aggregator(chain, keypair, config).start()    # a thread beside the worker daemon's task loop

Each task is a workers.fl.aggregator_policy.FederatedRun (DISCOVERED -> CLAIMED -> LINK_UP -> RUNNING -> DONE,
or LOST); every decision is a pure function there, this module only does what they say:

- discovery: every poll it reads the tasks created since the last one and re-reads the ones that may still
  become claimable (Joining, Open, Running for someone else), at most one read per live task;
- claim: `claim_aggregator(task, endpoint)`, the endpoint being its SuperLink's host:port (chosen before the
  claim and kept for the daemon's life, so the chain's copy stays true across SuperLink restarts);
- link: one SuperLink child for all its tasks (workers.fl.flower_procs), started with the key in its
  environment for the ServerApp's committer (workers.fl.child_key: the loaded key, never its source), and one
  app directory per task (workers.fl.fab);
- run: `flwr run` with the task's run config; the ServerApp (workers.fl.server_app) commits every round from
  inside Flower, starting at the chain's last committed round, so a new run after a restart resumes there;
- guard: a heartbeat once a third of the lease ran, a release near the deadline (LeaseGuard); a run that
  ended while the task is still its own is started again (bounded), else the task is released, no slash;
- start: `AggregatorTasks(me)` says which tasks it holds from a previous life: each is resumed as CLAIMED.

The daemon never signs rounds itself; each run's state is written to ``<state-dir>/fl-<task>.json``.
"""
from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runtime_bindings import BindingsError, DispatchError
from workers.fl.aggregator_link import FlowerLink
from workers.fl.aggregator_policy import (
    ClaimPolicy,
    FederatedRun,
    FlRunState,
    GuardAction,
    LeaseGuard,
    Outcome,
    TaskView,
    claim_refusal,
    classify,
    may_relaunch,
)
from workers.retry import Decision, decide

log = logging.getLogger("paratrain.aggregator")
PALLET = "FederatedTasks"
Notify = Callable[..., None]


@dataclass
class AggregatorConfig:
    chain_url: str
    state_dir: str
    store: str | None = None
    trusted_stores: tuple[str, ...] = ()
    host: str = "127.0.0.1"                  # the SuperLink's address, published on chain in the claim
    port: int = 0                            # 0: a free port, chosen once
    poll_s: float = 1.0
    run_check_s: float = 30.0                # how often a run's status is asked (each ask starts a `flwr` process)
    max_relaunches: int = 3
    deadline_margin_blocks: int = 3
    min_blocks_to_claim: int = 6
    env: Mapping[str, str] = field(default_factory=dict)   # extra environment for the SuperLink (tests)


def available(chain: Any) -> str | None:
    """Why the aggregator role cannot run here (None: it can): the chain lacks the pallet, or Flower is not
    installed (the `fl` extra)."""
    import importlib.util

    if PALLET not in chain.metadata().pallets:
        return f"the chain has no {PALLET} pallet"
    if importlib.util.find_spec("flwr") is None:
        return "flwr is not installed (pip install 'paratrain[fl]')"
    return None


def task_view(task_id: int, task: Any) -> TaskView | None:
    """The chain's FlTask as the policy reads it."""
    if task is None:
        return None
    status = task.status
    name = str(getattr(status, "VARIANT", status))
    return TaskView(task_id=task_id, status=name, requester=str(task.requester), deadline=int(task.deadline),
                    join_deadline=int(task.join_deadline), clients=int(task.clients),
                    min_clients=int(task.spec.min_clients_per_round), rounds=int(task.spec.rounds),
                    last_committed=int(task.last_committed), last_accepted=int(task.last_accepted),
                    aggregator=str(status.aggregator) if name == "Running" else None,
                    lease_until=int(status.lease_until) if name == "Running" else None)


class Aggregator:
    """The role's loop, in a thread of its own with a chain connection of its own. `notify(what, **detail)`
    is the worker daemon's observer fan-out ("fl-claimed", "fl-running", "fl-heartbeat", "fl-released",
    "fl-done", "fl-lost")."""

    def __init__(self, chain: Any, keypair: Any, config: AggregatorConfig, *, notify: Notify | None = None,
                 link: Any = None) -> None:
        self.chain, self.keypair, self.config = chain, keypair, config
        self.account = str(keypair.ss58_address)
        self.notify: Notify = notify or (lambda what, **detail: None)
        self.runs: dict[int, FederatedRun] = {}
        self.finished: dict[int, FederatedRun] = {}
        self.watch: set[int] = set()         # tasks that may become claimable
        self._next_seen = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_run_check: dict[int, float] = {}
        self._guard = LeaseGuard(int(chain.constant(PALLET, "RoundLease")), config.deadline_margin_blocks)
        self._claims = ClaimPolicy(config.min_blocks_to_claim)
        self.state_dir = Path(config.state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        # the Flower side (workers.fl.aggregator_link.FlowerLink); tests of the chain side pass their own
        self.link = link if link is not None else FlowerLink(self.state_dir, host=config.host, port=config.port,
                                                             keypair=keypair, env=config.env, notify=self.notify)

    # Life -------------------------------------------------------------------------------------------
    def start(self) -> Aggregator:
        self._thread = threading.Thread(target=self.run, name="paratrain-aggregator", daemon=True)
        self._thread.start()
        return self

    def halt(self) -> None:
        """From any thread: the loop does nothing more after its current step (stop() then cleans up)."""
        self._stop.set()

    def stop(self, timeout: float = 30.0) -> None:
        """Leave: the runs' processes end, the claims stay on chain (a restart resumes them)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        self._stop_link()
        self.chain.close()

    def run(self) -> None:
        try:
            self._resume()
            while not self._stop.is_set():
                try:
                    self.step()
                except BindingsError as exc:
                    if decide(exc) is not Decision.RETRY_LATER:
                        raise
                    log.warning("aggregator: chain error (%s); retrying", exc)
                    self._reconnect()
                self._stop.wait(self.config.poll_s)
        except Exception:
            log.exception("the aggregator role stopped")
        finally:
            self._stop_link()

    def _reconnect(self) -> None:
        try:
            self.chain.reconnect()
        except BindingsError as exc:
            log.warning("aggregator: the chain is still unreachable: %s", exc)

    def _resume(self) -> None:
        """Every task this account aggregates on chain is resumed from the chain's last committed round."""
        held = [int(task) for task, _ in self.chain.federated_tasks.aggregator_tasks.entries(self.account)]
        for task_id in held:
            view = task_view(task_id, self.chain.federated_tasks.tasks(task_id))
            if view is None or classify(view, self.account)[0] is not Outcome.KEEP:
                continue
            log.info("federated task %d: resuming from round %d (held on chain)", task_id, view.last_committed + 1)
            self.runs[task_id] = FederatedRun.from_claim(task_id, endpoint=self._endpoint())
            self.notify("fl-resumed", task_id=task_id, from_round=view.last_committed + 1)

    # One pass ---------------------------------------------------------------------------------------
    def step(self) -> None:
        self._discover()
        for task_id in list(self.runs):
            run = self.runs[task_id]
            self._drive(run)
            if run.final:
                self._write(run)
                self.finished[task_id] = self.runs.pop(task_id)
                self._last_run_check.pop(task_id, None)

    def _discover(self) -> None:
        tasks = self.chain.federated_tasks
        upto = int(tasks.next_task_id())
        self.watch.update(range(self._next_seen, upto))
        self._next_seen = upto
        now = self.chain.best_number()
        for task_id in sorted(self.watch):
            if task_id in self.runs or task_id in self.finished:
                continue  # a task once lost (or refused) is not tried again: its refusal would cost a fee each poll
            view = task_view(task_id, tasks.tasks(task_id))
            if view is None or view.status in ("Completed", "Expired", "Cancelled"):
                self.watch.discard(task_id)
                continue
            if view.status == "Running":
                continue  # someone else's: it may come back Open
            is_client = tasks.clients(task_id, self.account) is not None
            if claim_refusal(view, me=self.account, now=now, is_client=is_client, policy=self._claims) is None:
                self.runs[task_id] = FederatedRun(task_id)

    def _drive(self, run: FederatedRun) -> None:
        task_id = run.task_id
        view = task_view(task_id, self.chain.federated_tasks.tasks(task_id))
        if run.state is FlRunState.DISCOVERED:
            self._claim(run, view)
            if run.state is not FlRunState.CLAIMED:
                return
            view = task_view(task_id, self.chain.federated_tasks.tasks(task_id))  # the claim's lease
        outcome, why = classify(view, self.account)
        if outcome is Outcome.DONE:
            self._end_run(run)
            run.advance(FlRunState.DONE)
            self.notify("fl-done", task_id=task_id)
            log.info("federated task %d completed", task_id)
            return
        if outcome is Outcome.LOST:
            self._lose(run, why or "not this aggregator's any more")
            return
        assert view is not None and view.lease_until is not None
        if self._guard_lease(run, view):
            return
        if run.state is FlRunState.CLAIMED:
            self._link_up(run)
        if run.state is FlRunState.LINK_UP:
            self._submit(run)
        elif run.state is FlRunState.RUNNING:
            self._check_run(run, view)

    # Claim ------------------------------------------------------------------------------------------
    def _claim(self, run: FederatedRun, view: TaskView | None) -> None:
        from runtime_bindings.generated.federated_tasks import AggregatorClaimedEvent, ClaimAggregatorCall

        task_id = run.task_id
        if view is None:
            run.advance(FlRunState.LOST, "the task is gone from the chain")
            return
        is_client = self.chain.federated_tasks.clients(task_id, self.account) is not None
        refusal = claim_refusal(view, me=self.account, now=self.chain.best_number(), is_client=is_client,
                                policy=self._claims)
        if refusal is not None:
            run.advance(FlRunState.LOST, refusal)
            return
        endpoint = self._endpoint()
        try:
            receipt = self._submit_call(ClaimAggregatorCall(task=task_id, endpoint=endpoint.encode()))
        except DispatchError as exc:
            run.advance(FlRunState.LOST, f"claim refused: {getattr(exc, 'error_name', exc)}")
            log.info("federated task %d: claim refused (%s)", task_id, getattr(exc, "error_name", exc))
            return
        run.endpoint = endpoint
        run.advance(FlRunState.CLAIMED)
        [claimed] = receipt.find(AggregatorClaimedEvent) or [None]
        self.notify("fl-claimed", task_id=task_id, endpoint=endpoint, block=receipt.block_number,
                    lease_until=getattr(claimed, "lease_until", None))
        log.info("federated task %d claimed in block %s; SuperLink at %s", task_id, receipt.block_number, endpoint)
        self._write(run)

    def _submit_call(self, call: Any) -> Any:
        """Sign and send, signing again when another of this account's extrinsics raced the nonce."""
        last: BaseException | None = None
        for _ in range(3):
            try:
                return self.chain.submit(call, self.keypair, wait="inclusion")
            except BindingsError as exc:
                if decide(exc) is not Decision.RESIGN:
                    raise
                last = exc
                time.sleep(0.2)
        assert last is not None
        raise last

    # The SuperLink and the run ----------------------------------------------------------------------
    def _endpoint(self) -> str:
        return str(self.link.endpoint)

    def _ensure_link(self) -> None:
        """The SuperLink is up; when it had to be started again, every run it held is gone and goes again."""
        if self.link.ensure():
            for run in self.runs.values():
                if run.state is FlRunState.RUNNING:
                    run.advance(FlRunState.CLAIMED, "the SuperLink was started again")

    def _stop_link(self) -> None:
        self.link.close()

    def _link_up(self, run: FederatedRun) -> None:
        self._ensure_link()
        self.link.prepare(run.task_id)
        run.advance(FlRunState.LINK_UP)

    def run_config(self, task_id: int) -> dict[str, Any]:
        """The ServerApp's run configuration (workers.fl.server_app.RunConfig reads these keys)."""
        return {"task-id": task_id, "chain-url": self.config.chain_url, "store": self.config.store or "",
                "trusted-stores": ",".join(self.config.trusted_stores),
                "journal": str(self.state_dir / f"journal-{task_id}.json")}

    def _submit(self, run: FederatedRun) -> None:
        from workers.fl.flower_procs import FlowerProcessError

        try:
            run.run_id = self.link.submit(run.task_id, self.run_config(run.task_id))
        except FlowerProcessError as exc:
            log.warning("federated task %d: `flwr run` failed: %s", run.task_id, exc)
            run.advance(FlRunState.CLAIMED, f"flwr run failed: {exc}")
            run.relaunches += 1
            self._release_if_exhausted(run)
            return
        run.advance(FlRunState.RUNNING)
        self._last_run_check[run.task_id] = time.monotonic()
        self.notify("fl-running", task_id=run.task_id, run_id=run.run_id, endpoint=self._endpoint())
        log.info("federated task %d: run %d submitted to the SuperLink at %s", run.task_id, run.run_id,
                 self._endpoint())
        self._write(run)

    def _check_run(self, run: FederatedRun, view: TaskView) -> None:
        if run.run_id is None:  # every round was committed when the run ended: the verdicts complete the task
            if view.last_committed < view.rounds:  # ... unless a round timed out: it is committed again
                run.advance(FlRunState.CLAIMED, f"round {view.last_committed + 1} is to be committed again")
                self._release_if_exhausted(run)
            return
        if time.monotonic() - self._last_run_check.get(run.task_id, 0.0) < self.config.run_check_s:
            return
        self._last_run_check[run.task_id] = time.monotonic()
        self._ensure_link()
        if run.state is not FlRunState.RUNNING or run.run_id is None:
            return  # the link was started again just now: the run goes again from CLAIMED
        status = self.link.finished(run.run_id)
        if status is None:
            return
        # read again: the view is from before the poll, and the run's last commit may have landed since
        view = task_view(run.task_id, self.chain.federated_tasks.tasks(run.task_id)) or view
        if view.last_committed >= view.rounds:
            log.info("federated task %d: run %s %s with every round committed; waiting for the verdicts",
                     run.task_id, run.run_id, status)
            run.run_id = None
            return
        # the ServerApp returned but the chain does not say Completed: rounds are left, run it again
        run.advance(FlRunState.CLAIMED, f"run {run.run_id} {status}")
        log.warning("federated task %d: run ended %s with rounds left", run.task_id, status)
        self._release_if_exhausted(run)

    def _release_if_exhausted(self, run: FederatedRun) -> None:
        if not may_relaunch(run, self.config.max_relaunches):
            self._release(run, f"{run.relaunches} runs ended before the task did")

    def _end_run(self, run: FederatedRun) -> None:
        if run.run_id is not None:
            self.link.stop_run(run.run_id)
        run.run_id = None

    # The lease --------------------------------------------------------------------------------------
    def _guard_lease(self, run: FederatedRun, view: TaskView) -> bool:
        """Heartbeat or release as LeaseGuard says; True when the task was given back."""
        from runtime_bindings.generated.federated_tasks import HeartbeatCall

        assert view.lease_until is not None
        action = self._guard.action(now=self.chain.best_number(), lease_until=view.lease_until,
                                    deadline=view.deadline)
        if action is GuardAction.RELEASE:
            self._release(run, "the deadline is near")
            return True
        if action is GuardAction.HEARTBEAT:
            try:
                receipt = self._submit_call(HeartbeatCall(task=run.task_id))
                self.notify("fl-heartbeat", task_id=run.task_id, block=receipt.block_number)
            except DispatchError as exc:
                log.warning("federated task %d: heartbeat refused: %s", run.task_id, exc)
        return False

    def _release(self, run: FederatedRun, why: str) -> None:
        from runtime_bindings.generated.federated_tasks import ReleaseCall

        self._end_run(run)
        try:
            self._submit_call(ReleaseCall(task=run.task_id))
        except DispatchError as exc:
            log.warning("federated task %d: release refused: %s", run.task_id, exc)
        self._lose(run, f"released: {why}")
        self.notify("fl-released", task_id=run.task_id, why=why)

    def _lose(self, run: FederatedRun, why: str) -> None:
        self._end_run(run)
        if not run.final:
            run.advance(FlRunState.LOST, why)
        self.notify("fl-lost", task_id=run.task_id, why=why)
        log.warning("federated task %d: %s", run.task_id, why)

    # State ------------------------------------------------------------------------------------------
    def _write(self, run: FederatedRun) -> None:
        path = self.state_dir / f"fl-{run.task_id}.json"
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            tmp.write_text(json.dumps(run.as_record(), indent=1))
            os.replace(tmp, path)
        except OSError as exc:
            log.debug("fl state not written: %s", exc)


def start_role(daemon: Any) -> Aggregator | None:
    """The aggregator role of a connected WorkerDaemon, started in its own thread on its own chain connection
    (None, with a log line saying why, when the chain or this machine cannot run it). Its events go to the
    daemon's observers."""
    reason = available(daemon.chain)
    if reason is not None:
        log.info("aggregator role off: %s", reason)
        return None
    cfg = daemon.config
    assert daemon.state_dir is not None
    config = AggregatorConfig(chain_url=cfg.chain_url, state_dir=str(daemon.state_dir / "federated"),
                              store=cfg.store, trusted_stores=tuple(cfg.trusted_stores), host=cfg.fl_host,
                              port=cfg.fl_port, deadline_margin_blocks=cfg.deadline_margin_blocks,
                              min_blocks_to_claim=cfg.min_blocks_to_claim)
    role = Aggregator(daemon.chain.clone(), daemon.keypair, config, notify=daemon._notify)
    log.info("aggregator role on: federated tasks are claimed with a SuperLink at %s", role._endpoint())
    return role.start()
