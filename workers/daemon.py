"""The worker daemon: `paratrain worker` takes task after task from the orchestrator and trains them on Ray.

One task, end to end (a workers.task_run.TaskRun: ASSIGNED -> CLAIMED -> TRAINING -> TRAINED -> SUBMITTED)::

    request_assignment (long poll): the assignment carries the task's TaskView (no GetTaskSpec)
      -> workers.task_checks: the chain's copy of the task read; the spec document (the view's spec_uri)
         fetched, verified against the on-chain spec_hash and decoded; recipe and dataset hash on chain ==
         in the spec, the recipe registered (custom code only with --allow-custom-code), the task Open with
         enough blocks before the deadline (or claimed by this worker); the data set fetched, verified
         against dataset_hash; the spec document's "privacy" section equal, in chain units, to the task's
         DpSpec on chain (PrivacyBudgets.BountyPrivacy; both absent for a plain task)
                                                                      (any failure: refused, never claimed)
      -> "claiming", then claim_task signed with the worker's own key, relayed by the orchestrator (or sent
         to the node directly when the orchestrator does not relay it), and waited for on chain
      -> train (workers.training_session on the daemon's WarmTrainer: one long-lived Ray Train run with
         --num-workers workers, DDP when 2+, started with the daemon, so a task starts on training workers
         that already run); at each checkpoint a journal entry, ProgressUpdate and a worker-signed
         `heartbeat` to the orchestrator; a guard thread keeps the lease alive and releases the claim
         (no slash) when the deadline comes too close
      -> "submitting", then the attestation from the TrainingResult, signed (runtime_bindings.AttestationCodec),
         submit_result signed by the worker, waited for on chain (ResultSubmitted), report_result. A private
         task's result is submit_private_result instead: the DpClaim is the final model card's "privacy"
         values (what the run used and the epsilon it spent) in chain units, signed with the attestation
         (runtime_bindings.privacy.sign_dp_attestation).

Payouts (workers.payout): on a chain with a challenge period a quorum of accepts makes the result Approved
until ``challenge_until``; the daemon watches the results it submitted between assignment polls (the long
poll is cut short when a look is due) and sends finalize_result once the period is over, so the bounty
reaches it even on an idle instant-seal chain. It goes on taking tasks meanwhile. ``--max-tasks`` still
exits after N results: a payout still due then is made at the next start, by on_initialize, or by anyone
(`paratrain task finalize`).

Restarts: the chain is the source of truth. On start the daemon reads TaskBounties.ClaimsByWorker for its
account; the results it still holds (Submitted, Approved, Challenged) are watched for their payout, and
every task still Claimed by it is resumed first, from the last checkpoint of the local journal
(``<state-dir>/task-<id>.json``; checkpoints are content-addressed in the artifact store and verified by
hash), or from the start when there is none: training is deterministic, so either way the result is the
one the interrupted run would have produced.

Stopping: SIGINT/SIGTERM stop the daemon at once, training included; the claim is KEPT on chain, so a
restart resumes it (the lease lapses after ClaimLease blocks if no restart comes; a second signal exits
immediately). A stopped worker that comes back finishes its work; to give a task back, let the deadline
guard do it or send release_claim yourself.

Errors a user can cause (a bad key, an unregistered account, an unreachable orchestrator or node, a bad
task) are log lines, never tracebacks. The current state is also written to ``<state-dir>/status.json``.

Structure: the set-up shared with the validator (key, store, state directory, chain connection and its
start-up checks, signals) is workers._daemon_base; each task is a workers.task_run.TaskRun (an Enum state
with explicit transitions); what follows an error is workers.retry.decide, a function of the error's type.
The task's description comes with its assignment (the orchestrator's TaskView: its spec_uri is used, and no
GetTaskSpec is asked); the chain's copy of the task is still read before claiming, because the claim and the
stake are on chain: the spec, dataset hash and recipe the work is bound to, the status (Open, or claimed by
this worker) and the blocks left before the deadline are the chain's, never an orchestrator's.
"""
from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import asdict
from typing import Any

from orchestrator import errors as api
from runtime_bindings import BindingsError
from runtime_bindings.generated.types import TaskStatus
from workers._daemon_base import EXIT_ERROR, EXIT_OK, DaemonBase
from workers.capabilities import detect_memory_mb
from workers.errors import DaemonError, DaemonStopped, TaskCancelled, TaskRefused
from workers.journal import Journal
from workers.result_checks import privacy_mismatch
from workers.retry import Decision, decide
from workers.task_checks import ClaimPolicy, check_task, claimed_by, fetch_dataset
from workers.task_run import RunState, TaskRun
from workers.training_session import CancelHook, TrainingSession
from workers.worker_config import DaemonConfig, Status, StepHook, TrainingCallback

log = logging.getLogger("paratrain.worker")

__all__ = ["EXIT_ERROR", "EXIT_OK", "CancelHook", "DaemonConfig", "DaemonError", "DaemonStopped", "Status",
           "StepHook", "TaskCancelled", "TaskRefused", "TrainingCallback", "WorkerDaemon", "dp_claim_of_card"]


class WorkerDaemon(DaemonBase):
    """Takes task after task. `run()` blocks; `stop()` (any thread) makes it return between tasks. Its events
    and health signals go to subscribers (workers.observers; the names are listed in workers.health)."""

    role, chain_role, error = "worker", "Trainer", DaemonError

    def __init__(self, config: DaemonConfig, *, keypair: Any = None, store: Any = None) -> None:
        super().__init__(config, keypair=keypair, store=store)
        self.config: DaemonConfig = config
        self.status = Status()
        self._status_lock = threading.Lock()
        self.client: Any = None
        self.payouts: Any = None                # workers.payout.Payouts, once connected
        self._codec: Any = None
        self._trainer: Any = None               # workers.runner.WarmTrainer, once Ray is up
        self.refused: dict[int, str] = {}     # task -> why (not offered again to this daemon's attention)
        self.journal: Journal | None = None
        self._aggregator: Any = None            # workers.fl.aggregator.Aggregator, when the role runs
        self._claim_policy = ClaimPolicy(config.allow_custom_code, config.min_blocks_to_claim,
                                         config.deadline_margin_blocks)

    # Set-up ---------------------------------------------------------------------------------
    def _startup_checks(self) -> Any:
        """The base's checks, then the capabilities: what the account declared on chain must not exceed this
        machine (workers.capabilities), or it would be offered, and claim, tasks it cannot run."""
        from workers.capabilities import detect, from_chain, shortfalls

        info = super()._startup_checks()
        missing = shortfalls(detect(), from_chain(info.capabilities))
        if missing:
            raise self.error(f"{self.account} declared more on chain than this machine has ({'; '.join(missing)}): "
                             "declare what it has with `paratrain stake update-capabilities`")
        return info

    def _connect(self) -> None:
        from orchestrator.client import SyncWorkerClient
        from orchestrator.domain import Capabilities
        from workers.payout import Payouts

        account = self.account
        self.status.account = account
        root = self._open_state_dir()
        self.journal = Journal(root, self.config.num_workers, lambda digest: self.store.exists(digest))
        self._connect_chain()
        self._startup_checks()
        if self.config.federated:  # the aggregator role, when the chain and this machine have what it needs
            from workers.fl.aggregator import start_role
            self._aggregator = start_role(self)
        self._start_ray()  # before the first gRPC channel: Ray forks its processes, which gRPC's threads can hang
        self.payouts = Payouts(self.chain, self.keypair)
        self.client = SyncWorkerClient(self.config.orchestrator, self.keypair, timeout_s=30.0)
        caps = Capabilities(self.config.cpus, self.config.gpus, self.config.gpu_model,
                            self.config.memory_mb or detect_memory_mb() or 4096)
        try:
            view = self.client.register_worker(caps)
        except api.Unavailable as exc:
            raise DaemonError(f"the orchestrator at {self.config.orchestrator} is unreachable: {exc}") from None
        except api.ApiError as exc:
            raise DaemonError(f"the orchestrator refused this worker: {exc}") from None
        log.info("worker %s registered with the orchestrator %s (stake %d, capabilities %s)", account,
                 self.config.orchestrator, view.stake, view.capabilities)
        self._notify("connected", chain=self.config.chain_url, orchestrator=self.config.orchestrator)

    def close(self) -> None:
        if self._aggregator is not None:  # its Flower processes end; its claims stay on chain for a restart
            self._aggregator.stop()
            self._aggregator = None
        if self.client is not None:
            try:
                self.client.close()
            except Exception as exc:  # noqa: BLE001
                log.debug("closing the orchestrator client: %s", exc)
            self.client = None
        super().close()
        if self._trainer is not None:
            self._trainer.close()  # the warm worker group gives its CPUs back (in the background)
            self._trainer = None

    def on_signal(self, name: str) -> None:
        """Stop at once, training included (DaemonStopped out of the daemon's thread): the claim stays on
        chain and a restart resumes it."""
        self.stop()
        status = self.status
        if status.task_id is not None and status.state in ("training", "claiming", "submitting"):
            log.warning("%s: stopping; the claim on task %s is kept on chain (lease until block %s): restart the "
                        "worker to resume from checkpoint %d (step %d)", name, status.task_id, status.lease_until,
                        status.checkpoints, status.step)
        else:
            log.warning("%s: stopping", name)
        raise DaemonStopped()

    # Status -----------------------------------------------------------------------------------
    def _set(self, **changes: Any) -> None:
        with self._status_lock:
            for key, value in changes.items():
                setattr(self.status, key, value)
            self.status.updated = time.time()
            snapshot = asdict(self.status)
        if self.state_dir is not None:
            tmp = self.state_dir / f".status.{os.getpid()}.tmp"
            try:
                tmp.write_text(json.dumps(snapshot, indent=1, default=str))
                os.replace(tmp, self.state_dir / "status.json")
            except OSError:
                pass

    def _observe_chain(self) -> None:
        """For subscribers only (health): the chain's best and finalized heads, read between polls, when the
        daemon would otherwise not touch the chain at all while idle. A failed read is only a missing signal."""
        if not self._observers:
            return
        try:
            best, finalized = self.chain.best_number(), self.chain.finalized_number()
        except BindingsError as exc:
            log.debug("chain heads not read: %s", exc)
            return
        self._notify("chain", best=best, finalized=finalized)

    def _start_ray(self) -> None:
        """Join the configured Ray cluster or start a local one (a one-line DaemonError if neither works)."""
        from workers.runner import ensure_ray

        if _ray_initialized():
            return
        address = self.config.ray_address or os.environ.get("RAY_ADDRESS")
        try:
            if address:  # the training workers' output stays in the cluster's logs
                ensure_ray(address, log_to_driver=False)
            else:
                ensure_ray()
        except (RuntimeError, ConnectionError) as exc:  # what ray.init raises when no cluster comes up
            where = f"the Ray cluster at {address}" if address else "a local Ray cluster"
            raise DaemonError(f"{where} could not be started or joined: {exc}") from None

    # Main loop --------------------------------------------------------------------------------
    def run(self) -> int:
        """Run until stopped (or max_tasks results); the exit status."""
        try:
            self._connect()
            self._warm_trainer()  # the Ray Train worker group starts now, not when the first task comes
            self._with_chain_retries(self._resume_claims)
            while not self.stopping and not self._done():
                self._settle_payouts()
                self._observe_chain()
                self._set(state="idle", task_id=None)
                try:
                    # the tasks it refused are declined: the orchestrator offers it others instead
                    assignment = self.client.request_assignment(self.payouts.wait_s(self.config.poll_wait_s),
                                                                declined=list(self.refused))
                except api.Unavailable as exc:
                    self._notify("orchestrator", reachable=False, error=str(exc))
                    log.warning("orchestrator unavailable (%s); retrying in 2 s", exc)
                    self._stop.wait(2.0)
                    continue
                except api.ApiError as exc:
                    raise DaemonError(f"the orchestrator refused the assignment request: {exc}") from None
                self._notify("orchestrator", reachable=True)
                if assignment is None:
                    continue
                task = assignment.task
                if task.task_id in self.refused:
                    log.debug("task %d: refused before (%s), skipping", task.task_id, self.refused[task.task_id])
                    self._stop.wait(0.5)
                    continue
                log.info("task %d assigned: recipe %s, bounty %d, deadline block %d", task.task_id, task.recipe,
                         task.bounty, task.deadline)
                self._with_chain_retries(lambda: self._work(TaskRun(task.task_id, view=task)),
                                         then=self._resume_claims)
            return EXIT_OK
        except DaemonError as exc:
            log.error("%s", exc)
            self._set(state="stopped", last_error=str(exc))
            return EXIT_ERROR
        except BindingsError as exc:
            log.error("the chain connection failed: %s", exc)
            self._set(state="stopped", last_error=str(exc))
            return EXIT_ERROR
        finally:
            if self.status.state != "stopped":
                self._set(state="stopped")
            self.close()

    def _done(self) -> bool:
        return self.config.max_tasks is not None and self.status.tasks_submitted >= self.config.max_tasks

    def _settle_payouts(self) -> None:
        """Between polls: finalize the Approved results whose challenge period is over (workers.payout)."""
        payouts = self.payouts
        paid = len(payouts.paid)
        payouts.settle()
        for record in payouts.paid[paid:]:
            self._notify("paid", **record)
        self._set(tasks_paid=len(payouts.paid), payouts_pending=len(payouts.held))

    def _resume_claims(self) -> None:
        """Tasks still claimed by this worker on chain (a previous run died or was stopped): finish them;
        its results still held on chain are watched for their payout."""
        from workers.payout import HELD

        mine = []
        for key, _ in self.chain.task_bounties.claims_by_worker.entries(self.account):
            task_id = key[-1] if isinstance(key, (tuple, list)) else key
            mine.append(int(task_id))
        for task_id in sorted(mine):
            task = self.chain.task_bounties.tasks(task_id)
            status = None if task is None else task.status
            if status is not None and status.name in HELD and getattr(status, "worker", None) == self.account:
                self.payouts.track(task_id)  # under verification, Approved or challenged: watch its payout
            if not self._claimed_by_me(status):
                continue
            log.info("task %d is still claimed by this worker on chain (lease until block %s): resuming it",
                     task_id, status.lease_until)
            self._notify("resume", task_id=task_id)
            self._work(TaskRun.from_claim(task_id))
            if self.stopping:
                return

    # One task ---------------------------------------------------------------------------------
    def _work(self, run: TaskRun) -> None:
        """One task, from its assignment (or its claim found on chain) to its end; never raises for the task's
        own failures (workers.retry decides what each error means)."""
        task_id = run.task_id
        self._set(state="verifying", task_id=task_id, step=0, total_steps=0, loss=None, metrics={},
                  checkpoints=0, checkpoint_root=None, last_error=None)
        try:
            spec, task = self._verify(run)
            if run.state is RunState.ASSIGNED:
                self._claim(task_id)
                run.advance(RunState.CLAIMED)
            self._train_and_submit(run, spec, task)
        except (TaskRefused, TaskCancelled, api.ApiError, BindingsError) as exc:
            self._ended(run, exc)

    def _ended(self, run: TaskRun, exc: Exception) -> None:
        """A task that did not end submitted: refused (and released when held), cancelled or failed."""
        task_id, decision = run.task_id, decide(exc)
        if run.final:  # e.g. submitted on chain, then a local step failed: the task's end stands
            log.error("task %d (%s): %s", task_id, run.state.name.lower(), exc)
        elif decision is Decision.REFUSE:
            run.advance(RunState.REFUSED, str(exc))
            self.refused[task_id] = str(exc)
            self.status.tasks_refused += 1
            self._set(last_error=f"task {task_id}: {exc}")
            self._notify("refused", task_id=task_id, reason=str(exc))
            log.error("task %d refused: %s", task_id, exc)
            if (run.was_claimed or self._holds(task_id)) and self._release(task_id, f"refused: {exc}"):
                run.advance(RunState.RELEASED)
        elif decision is Decision.CANCELLED:
            run.advance(RunState.CANCELLED, str(exc))
            log.warning("task %d: %s", task_id, exc)
        else:
            run.advance(RunState.FAILED, str(exc))
            self._set(last_error=f"task {task_id}: {exc}")
            log.error("task %d: %s", task_id, exc)

    def _chain_task(self, task_id: int) -> Any:
        task = self.chain.task_bounties.tasks(task_id)
        if task is None:
            raise TaskRefused(f"there is no task {task_id} on chain")
        return task

    def _holds(self, task_id: int) -> bool:
        try:
            return self._claimed_by_me(self._chain_task(task_id).status)
        except TaskRefused:
            return False

    def _claimed_by_me(self, status: TaskStatus | None) -> bool:
        return claimed_by(status, self.account)

    def _verify(self, run: TaskRun) -> tuple[Any, Any]:
        """(TaskSpec, the chain's task): the spec and the data set checked and fetched (workers.task_checks)."""
        task = self._chain_task(run.task_id)  # the chain's copy: what the claim and the stake are bound to
        spec = check_task(task, view=run.view, store=self.store, account=self.account,
                          best_number=self.chain.best_number, policy=self._claim_policy)
        why = privacy_mismatch(spec.privacy, self._bounty_privacy(run.task_id))
        if why:  # the run could follow only one of them, and the budget is spent on the chain's terms
            raise TaskRefused(f"the spec document's privacy terms are not the task's on chain: {'; '.join(why)}")
        self._set(recipe=spec.recipe, deadline=task.deadline)
        log.info("task %d: spec %s verified (recipe %s, dataset %s); fetching the data set from %s", run.task_id,
                 task.spec.spec_hash.hex()[:16], spec.recipe, spec.dataset.hash[:16], spec.dataset.uri)
        fetch_dataset(self.store, spec, self.keypair)
        return spec, task

    # Extrinsics -------------------------------------------------------------------------------
    def _send(self, task_id: int, call: Any, what: str, *, relay: bool = True) -> Any:
        """Sign `call` with the worker's key, relay it through the orchestrator (or send it to the node),
        wait until it is in a block; the Receipt (DispatchError subclasses when it failed on chain). A refusal
        is retried as workers.retry.decide says: signed again (RESIGN) or sent to the node (SEND_DIRECT)."""
        from runtime_bindings import extrinsic_hash

        via_relay = relay and self.client is not None
        last: Exception | None = None
        for _ in range(3):
            start = self.chain.best_number()  # a lower bound of the block that includes it
            raw_hex = self.chain.sign(call, self.keypair)
            raw = bytes.fromhex(raw_hex[2:])
            try:
                if via_relay:
                    self.client.relay_extrinsic(task_id, raw)
                else:
                    self.chain.rpc("author_submitExtrinsic", [raw_hex], retry=False)
            except (api.ApiError, BindingsError) as exc:
                last, decision = exc, decide(exc)
                if decision is Decision.SEND_DIRECT and via_relay:
                    log.warning("%s of task %d: the orchestrator did not relay it (%s); sending it to the node",
                                what, task_id, exc)
                    via_relay = False
                    continue
                if decision is not Decision.RESIGN:
                    raise
                time.sleep(0.2)  # a nonce raced with another of our extrinsics: sign again
                continue
            return self.chain.wait_for(extrinsic_hash(raw), after_block=start, wait="inclusion",
                                       timeout=self.config.submit_timeout_s, signer=self.account)
        assert last is not None
        raise last

    def _claim(self, task_id: int) -> None:
        from runtime_bindings.generated.task_bounties import (
            ClaimTaskCall,
            TaskClaimedEvent,
        )

        self._set(state="claiming")
        self._notify("claiming", task_id=task_id)
        started = time.monotonic()
        receipt = self._send(task_id, ClaimTaskCall(task_id=task_id), "claim_task")
        [claimed] = receipt.find(TaskClaimedEvent) or [None]
        lease = getattr(claimed, "lease_until", None)
        self._set(lease_until=lease, block=receipt.block_number)
        self._notify("claimed", task_id=task_id, block=receipt.block_number, seconds=time.monotonic() - started)
        log.info("task %d claimed on chain in block %d (lease until block %s)", task_id, receipt.block_number, lease)

    def _release(self, task_id: int, why: str) -> bool:
        from runtime_bindings.generated.task_bounties import ReleaseClaimCall

        self._set(state="releasing")
        try:
            receipt = self._send(task_id, ReleaseClaimCall(task_id=task_id), "release_claim", relay=False)
        except (BindingsError, api.ApiError) as exc:
            log.error("task %d: release_claim failed: %s", task_id, exc)
            return False
        self.status.tasks_released += 1
        self._notify("released", task_id=task_id, block=receipt.block_number, why=why)
        log.warning("task %d: claim released in block %d (%s)", task_id, receipt.block_number, why)
        self.journal.forget(task_id)
        return True

    # Training ---------------------------------------------------------------------------------
    def _train_and_submit(self, run: TaskRun, spec: Any, task: Any) -> None:
        result = TrainingSession(self, run, spec, task).train()
        run.advance(RunState.TRAINED)
        self._notify("trained", task_id=run.task_id, model_hash=result.model_hash)
        self._submit(run, spec, result)

    def _warm_trainer(self) -> Any:
        """The daemon's long-lived Ray Train worker group (workers.runner.WarmTrainer), started once: a task
        then starts on training workers that already run, and a dead group is started again."""
        from workers.runner import WarmTrainer

        if self._trainer is None:
            self._trainer = WarmTrainer(self.config.num_workers, use_gpu=self.config.use_gpu,
                                        storage_path=str(self.state_dir / "ray") if self.state_dir else None,
                                        name=f"paratrain-worker-{self.account[:8]}")
        return self._trainer.start()

    # Result -----------------------------------------------------------------------------------
    def _attestation_codec(self) -> Any:
        if self._codec is None:
            from runtime_bindings import AttestationCodec
            self._codec = AttestationCodec.from_chain(self.chain)
        return self._codec

    def _bounty_privacy(self, task_id: int) -> Any:
        """The task's DpSpec on chain (types.DpSpec), None for a plain task or a chain without PrivacyBudgets."""
        if "PrivacyBudgets" not in self.chain.metadata().pallets:
            return None
        return self.chain.privacy_budgets.bounty_privacy(task_id)

    def _result_call(self, task_id: int, attestation: Any, result: Any) -> tuple[Any, Any]:
        """(the call that submits `attestation`, its signature): submit_result, or for a private task
        submit_private_result with the run's DpClaim signed along."""
        from runtime_bindings.generated.task_bounties import SubmitPrivateResultCall, SubmitResultCall

        if self._bounty_privacy(task_id) is None:
            signature = self._attestation_codec().multi_signature(attestation, self.keypair)
            return SubmitResultCall(task_id=task_id, attestation=attestation, signature=signature), signature
        from runtime_bindings.privacy import sign_dp_attestation

        claim = dp_claim_of_card(self.store, result.card_hash)
        signature = sign_dp_attestation(self._attestation_codec().encode(attestation), claim, self.keypair)
        return SubmitPrivateResultCall(task_id=task_id, attestation=attestation, claim=claim,
                                       signature=signature), signature

    def _submit(self, run: TaskRun, spec: Any, result: Any) -> None:
        from runtime_bindings.generated.task_bounties import ResultSubmittedEvent

        task_id = run.task_id
        metric = result.metrics.get(spec.evaluation.metric)
        if not result.target_met:  # refused: the claim is released (TaskRun) rather than a failing result sent
            raise TaskRefused(f"the trained model's {spec.evaluation.metric} is {metric}, short of the target "
                              f"{spec.evaluation.target}: claim released rather than submitting a failing result")
        self._set(state="submitting")
        self._notify("submitting", task_id=task_id)
        attestation = result.to_attestation(task_id, self.account)
        call, signature = self._result_call(task_id, attestation, result)
        receipt = self._send(task_id, call, call.CALL)
        submitted = receipt.find(ResultSubmittedEvent)
        run.advance(RunState.SUBMITTED)
        try:
            self.client.report_result(task_id, receipt.extrinsic_hash)
        except Exception as exc:  # noqa: BLE001 - the orchestrator sees it on chain anyway
            log.info("task %d: report_result not delivered: %s", task_id, exc)
        self.journal.forget(task_id)
        self.payouts.track(task_id)
        summary = {"task_id": task_id, "model_hash": result.model_hash, "artifact_uri": result.artifact_uri,
                   "metrics": result.metrics, "trajectory_root": result.trajectory_root,
                   "block": receipt.block_number, "extrinsic": receipt.extrinsic_hash,
                   "verify_until": submitted[0].verify_until if submitted else None}
        self.status.tasks_submitted += 1
        self._set(last_result=summary, state="idle")
        self._notify("submitted", **summary, attestation=attestation, signature=signature)
        from workers.payout import moment_text

        log.info("task %d: result submitted in block %d: model %s, %s, trajectory %s (%d checkpoints); "
                 "verify by %s", task_id, receipt.block_number, result.model_hash[:16],
                 " ".join(f"{k}={v:.4f}" for k, v in sorted(result.metrics.items())), result.trajectory_root[:16],
                 len(result.checkpoints), moment_text(int(summary["verify_until"])) if submitted else "?")


def dp_claim_of_card(store: Any, card_hash: str) -> Any:
    """The DpClaim (types.DpClaim, chain units) of a finished DP run: its model card's "privacy" values, the
    mechanism the engine ran with (the chain's decoded values) and the epsilon Opacus's accountant gave for it,
    rounded up so that the claim is never smaller than what was spent. TaskRefused when the card has none: a
    private task's result without a claim cannot be submitted, and the claim is released rather than faked."""
    from runtime_bindings import privacy as units
    from runtime_bindings.generated import types as t

    try:
        card = json.loads(store.get(card_hash))
        dp = card["privacy"]
        return t.DpClaim(accountant=t.Accountant.from_value(str(dp["accountant"]).capitalize()),
                         noise_multiplier=units.norm_to_chain(dp["noise_multiplier"]),
                         sample_rate=units.rate_to_chain(dp["sample_rate"]), steps=int(dp["steps"]),
                         max_grad_norm=units.norm_to_chain(dp["max_grad_norm"]),
                         delta=units.delta_to_chain(dp["delta"]), epsilon=units.epsilon_to_chain(dp["epsilon"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise TaskRefused(f"the run's model card has no usable privacy section ({type(exc).__name__}: {exc}): "
                          "a private task's result needs the run's DP claim") from None


def _ray_initialized() -> bool:
    try:
        import ray
        return ray.is_initialized()
    except ImportError:
        return False
