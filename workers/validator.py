"""The validator daemon: `paratrain validator` judges every submitted result and votes on chain with evidence.

One result, end to end::

    finalized ResultSubmitted{task_id, attestation_hash} in block B (hash H)
      -> the task is still Submitted with that attestation; this validator is neither the worker nor the
         requester and has not voted on it (on chain: TaskBounties.Verdicts; locally: the state file)
      -> where the requester committed a hidden holdout: wait for HoldoutRevealed (at most until
         `holdout_margin_ms` before verify_until, a Timestamp.Now moment in ms; then judge without it)
      -> the spec document (spec_uri, verified against the on-chain spec_hash), the model weights and every
         checkpoint copied into this validator's store from the store the artifact_uri names, verified by hash
      -> checks (workers.verification): model_hash, checkpoints, trajectory root recomputed; dataset and code
         hash; the trajectory's end: the checkpoints are the spec's whole schedule (its spec hash, one world
         size, the steps up to the spec's total steps, `workers.engine.total_steps`) and the model is,
         bitwise, the last checkpoint's; the claimed metric re-measured on the validation split (weights
         that cannot be loaded or evaluated fail it); the revealed holdout against the task's target; Q
         segments chosen from H (choose_segments) re-executed from their starting checkpoint
         (workers.runner.replay_segment: in this process for world size 1, on Ray otherwise) and compared
         bitwise with the attested next checkpoint
      -> the evidence document (canonical JSON) put in the artifact store; submit_verdict{accept,
         measured_metric (micro-units), evidence_hash = blake2-256 of the document}.

Challenge period (a chain whose ChallengePeriod is above 0): a quorum of accepts makes the task Approved
until ``challenge_until`` (a Timestamp.Now moment, ms) instead of paying at once. A validator whose own
check rejects an Approved result (it voted reject and was outvoted, or it finished verifying after the
quorum) calls challenge_result with the evidence hash of its evidence document while the chain's time is
before challenge_until; it never challenges a result it accepted (one of ``approved_by``). On
ResultChallenged every validator but the challenger votes in the challenge round (quorum
2 * validators_required + 1), with its cached verdict on that attestation when it has one, else after
verifying it. The decision is `workers.verification.next_step`.

Restarts: the daemon follows `chain.events.finalized` and keeps ``<state-dir>/state.json``: the last
finalized block whose events it took in, the results it still has to judge, its verdicts by attestation
hash, and the votes it cast, by round (``task:attestation:first`` / ``task:attestation:challenge``; a
challenge is the challenger's vote in the challenge round). The file is written atomically after each
block and after each vote, so a restarted validator resumes at the next block (nothing missed) and never
votes twice in a round (the state file, and TaskBounties.Verdicts on chain, are both consulted first).

Errors a user can cause (a bad key, an unregistered account, an unreachable node) are log lines, never
tracebacks; SIGINT/SIGTERM stop the daemon between steps. Nothing a worker submits stops the daemon: an
unexpected error while judging one result is logged with its traceback, that result is tried again later
(``max_judge_attempts`` times in all, counted in the state file across restarts) and then abstained from,
and the other results are judged meanwhile.
"""
from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from runtime_bindings.generated.types import Attestation, TaskStatus
from workers.artifacts import (
    ArtifactError,
    ArtifactStore,
    FetchLimits,
    Kind,
    object_uri,
    open_store,
    store_root_of,
)
from workers.observers import Observable
from workers.payout import moment_text
from workers.verification import (
    ABSTAIN,
    CHALLENGE,
    CHALLENGE_ROUND,
    FIRST_ROUND,
    HOLDOUT_MARGIN_MS,
    HOLDOUT_TOLERANCE,
    METRIC_TOLERANCE,
    VOTE,
    Check,
    as_hex,
    await_holdout,
    check_final_model,
    check_trajectory_schedule,
    choose_segments,
    claimed_metrics,
    compare_metric,
    compare_replay,
    compare_target,
    decide,
    document_meta,
    evidence_document,
    may_vote,
    next_step,
    round_of,
    segment_start,
    to_micro,
    verify_hashes,
)

log = logging.getLogger("paratrain.validator")

EXIT_OK, EXIT_ERROR = 0, 1
STATE_FILE = "state.json"
# torch's default generator and thread count are process-wide: replays and evaluations of validators that
# share a process (threads, tests, the demo) run one at a time, or one replay's seeding would disturb another's
_TORCH_LOCK = threading.RLock()


class ValidatorError(RuntimeError):
    """A condition that stops the daemon with a clear message (no traceback)."""


class Abstain(Exception):
    """This validator cannot judge the result (e.g. the requester's spec document is unreachable)."""


class ModelUnusable(Exception):
    """The attested model weights cannot be loaded into the task's model or evaluated: the worker's fault
    (another architecture, a document that is not PTTS1, ...), a failed check, never a crash."""


@dataclass
class ValidatorConfig:
    chain_url: str
    key: str
    store: str | None = None                  # artifact store root (fsspec URL or directory)
    trusted_stores: tuple[str, ...] = ()      # the other stores whose URIs it opens: requesters' and workers'
    allow_remote_uris: bool = False           # http(s) URIs outside those stores, public addresses only
    allow_private_addresses: bool = False     # ... and loopback or private ones too
    limits: FetchLimits = field(default_factory=FetchLimits)
    spot_checks: int = 2                      # Q: segments re-executed per result
    ray_address: str | None = None            # for replays of world size > 1
    state_dir: str | None = None              # state.json (default ~/.cache/paratrain/validator/<account>)
    metric_tolerance: float = METRIC_TOLERANCE
    holdout_tolerance: float = HOLDOUT_TOLERANCE
    holdout_margin_ms: int = HOLDOUT_MARGIN_MS  # judge without the holdout when verify_until is this close (ms)
    max_judge_attempts: int = 3               # a result whose judging fails unexpectedly: tries before abstaining
    retry_delay_s: float = 2.0                # first wait before trying again (doubling)
    from_block: int | None = None             # first block to read when there is no state (default: finalized head)
    max_verdicts: int | None = None           # exit after this many verdicts (None: run forever)
    poll_interval_s: float = 0.3
    chain_timeout_s: float = 30.0
    submit_timeout_s: float = 60.0


@dataclass
class ValidatorState:
    """What survives a restart (state.json)."""

    last_block: int | None = None
    pending: dict[str, dict[str, Any]] = field(default_factory=dict)   # task id -> {attestation_hash, ...}
    voted: dict[str, dict[str, Any]] = field(default_factory=dict)     # "task:attestation_hash:round" -> vote
    judged: dict[str, dict[str, Any]] = field(default_factory=dict)    # attestation_hash -> own verdict

    @classmethod
    def load(cls, path: Path) -> ValidatorState:
        try:
            doc = json.loads(path.read_text())
        except FileNotFoundError:
            return cls()
        except (OSError, ValueError) as exc:
            raise ValidatorError(f"the state file {path} is unreadable: {exc}") from None
        # a state file written before rounds existed keys its votes "task:attestation": first-round votes
        voted = {key if key.count(":") == 2 else f"{key}:{FIRST_ROUND}": vote
                 for key, vote in dict(doc.get("voted", {})).items()}
        return cls(last_block=doc.get("last_block"), pending=dict(doc.get("pending", {})), voted=voted,
                   judged=dict(doc.get("judged", {})))

    def save(self, path: Path) -> None:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps(asdict(self), indent=1, sort_keys=True))
        os.replace(tmp, path)


def _vote_key(task_id: int, attestation_hash: str, round_: str) -> str:
    return f"{task_id}:{as_hex(attestation_hash)}:{round_}"


class ValidatorDaemon(Observable):
    """Judges every result submitted on chain. `run()` blocks; `stop()` (any thread) makes it return. Its votes,
    abstentions and health signals go to subscribers (workers.observers; the names are listed in workers.health)."""

    def __init__(self, config: ValidatorConfig, *, keypair: Any = None, store: Any = None) -> None:
        self.config = config
        self._keypair, self._store = keypair, store
        self._stop = threading.Event()
        self.chain: Any = None
        self.state = ValidatorState()
        self.state_path: Path | None = None
        self.verdicts: list[dict[str, Any]] = []      # this run's votes: for tests and logs
        self.skipped: list[dict[str, Any]] = []       # results it did not vote on, and why
        self.exit_code: int | None = None

    # Set-up ---------------------------------------------------------------------------------
    @property
    def keypair(self) -> Any:
        if self._keypair is None:
            from workers.keys import load_keypair
            self._keypair = load_keypair(self.config.key)
        return self._keypair

    @property
    def account(self) -> str:
        return self.keypair.ss58_address

    @property
    def store(self) -> ArtifactStore:
        if self._store is None:
            self._store = open_store(self.config)
        return self._store

    def _connect(self) -> None:
        from runtime_bindings import BindingsError, Chain

        account = self.account
        root = Path(self.config.state_dir or Path.home() / ".cache" / "paratrain" / "validator" / account)
        root.mkdir(parents=True, exist_ok=True)
        self.state_path = root / STATE_FILE
        self.state = ValidatorState.load(self.state_path)
        try:
            self.chain = Chain.connect(self.config.chain_url, timeout=self.config.chain_timeout_s,
                                       submit_timeout=self.config.submit_timeout_s)
        except BindingsError as exc:
            raise ValidatorError(f"cannot reach the chain at {self.config.chain_url}: {exc}") from None
        info = self.chain.workers.workers(account)
        if info is None:
            raise ValidatorError(f"{account} is not registered on chain: register it as a Validator first "
                                 f"(Workers.register with a stake)")
        if info.role != "Validator":
            raise ValidatorError(f"{account} is registered as a {info.role}, not a Validator")
        log.info("validator %s (stake %d) on %s, store %s, Q=%d", account, info.stake, self.config.chain_url,
                 self.store.root, self.config.spot_checks)
        self._notify("connected", chain=self.config.chain_url)

    def close(self) -> None:
        if self.chain is not None:
            self.chain.close()
            self.chain = None

    def stop(self) -> None:
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def _save(self) -> None:
        if self.state_path is not None:
            self.state.save(self.state_path)

    # Main loop --------------------------------------------------------------------------------
    def run(self) -> int:
        from runtime_bindings import BindingsError

        try:
            self._connect()
            if self.state.last_block is not None:
                next_block = self.state.last_block + 1
                log.info("resuming at block %d (%d results pending)", next_block, len(self.state.pending))
            else:
                next_block = self.config.from_block if self.config.from_block is not None \
                    else self.chain.finalized_number()
            while not self.stopping and not self._done():
                head = self.chain.finalized_number()
                self._notify("chain", finalized=head, processed=next_block - 1)
                if head >= next_block:
                    stream = self.chain.events.finalized(from_block=next_block, to_block=head,
                                                         poll_interval=self.config.poll_interval_s,
                                                         own_connection=False)
                    for block in stream:
                        self._take_in(block)
                        next_block = block.number + 1
                        if self.stopping:
                            break
                self._judge_pending()
                self._stop.wait(self.config.poll_interval_s)
            self.exit_code = EXIT_OK
        except ValidatorError as exc:
            log.error("%s", exc)
            self.exit_code = EXIT_ERROR
        except BindingsError as exc:
            log.error("the chain connection failed: %s", exc)
            self.exit_code = EXIT_ERROR
        finally:
            self.close()
        return self.exit_code

    def _done(self) -> bool:
        return self.config.max_verdicts is not None and len(self.verdicts) >= self.config.max_verdicts

    def _take_in(self, block: Any) -> None:
        """Record one finalized block's events about results (submitted, revealed holdout, approved,
        challenged, settled), then the block itself."""
        for record in block.records:
            event = record.event
            if event.pallet != "TaskBounties" or not hasattr(event, "task_id"):
                continue
            key = str(int(event.task_id))
            if event.name == "ResultSubmitted":
                self.state.pending[key] = {"attestation_hash": as_hex(event.attestation_hash),
                                           "worker": event.worker, "block": block.number,
                                           "block_hash": as_hex(block.hash), "verify_until": int(event.verify_until)}
                log.info("task %s: result submitted in block %d (model %s)", key, block.number,
                         as_hex(event.model_hash)[:16])
            elif event.name == "HoldoutRevealed" and key in self.state.pending:
                self.state.pending[key]["holdout_revealed"] = True
            elif event.name in ("ResultApproved", "ResultChallenged"):
                self._take_in_round(key, event, block)
            elif event.name in ("ChallengeUpheld", "ChallengeDismissed", "ChallengeTimedOut"):
                log.info("task %s: %s in block %d (challenger %s)", key, event.name, block.number, event.challenger)
            elif event.name == "ApproverSlashed" and event.validator == self.account:
                log.warning("task %s: this validator's approval was overturned by a challenge: %s of its stake "
                            "slashed in block %d", key, event.amount, block.number)
        self.state.last_block = block.number
        self._save()

    def _take_in_round(self, key: str, event: Any, block: Any) -> None:
        """ResultApproved (a challenge may be due) or ResultChallenged (a vote in the challenge round is)."""
        result = self.chain.task_bounties.results(int(key), at="0x" + as_hex(block.hash))
        if result is None:
            return
        attestation_hash = as_hex(result.attestation_hash)
        entry = self.state.pending.get(key)
        if entry is None or entry.get("attestation_hash") != attestation_hash:  # else: keep its randomness
            self.state.pending[key] = {"attestation_hash": attestation_hash, "block": block.number}
        if event.name == "ResultApproved":
            log.info("task %s: result approved by %d validator(s) in block %d; challenge period until %s", key,
                     len(result.approved_by), block.number, moment_text(int(event.challenge_until)))
        else:
            log.info("task %s: result challenged by %s in block %d (deposit %d, settle by %s): "
                     "a challenge round is open", key, event.challenger, block.number, int(event.deposit),
                     moment_text(int(event.settle_until)))

    def _judge_pending(self) -> None:
        from runtime_bindings import BindingsError

        for key in sorted(self.state.pending, key=int):
            if self.stopping or self._done():
                return
            entry = self.state.pending[key]
            if float(entry.get("retry_at", 0)) > time.time():
                continue
            try:
                finished = self._judge(int(key), entry)
            except Abstain as exc:
                log.warning("task %s: abstaining: %s", key, exc)
                self._skip(int(key), str(exc))
                finished = True
            except (ValidatorError, BindingsError):
                raise  # the chain connection (or the daemon's own set-up): not this result's doing
            except Exception as exc:  # noqa: BLE001 - one result never stops the daemon
                finished = self._judging_failed(key, entry, exc)
            if finished:
                self.state.pending.pop(key, None)
                self._save()

    def _judging_failed(self, key: str, entry: dict[str, Any], exc: Exception) -> bool:
        """An unexpected error judging one result: logged; tried again later, at most max_judge_attempts
        times in all (the count survives restarts), then abstained from. True when it is given up."""
        attempts = int(entry.get("errors", 0)) + 1
        error = f"{type(exc).__name__}: {exc}"
        log.error("task %s: judging failed (attempt %d of %d): %s", key, attempts,
                  self.config.max_judge_attempts, error, exc_info=exc)
        if attempts >= self.config.max_judge_attempts:
            reason = f"judging failed {attempts} times, giving up: {error}"
            log.warning("task %s: abstaining: %s", key, reason)
            self._skip(int(key), reason)
            return True
        entry.update(errors=attempts, last_error=error,
                     retry_at=time.time() + self.config.retry_delay_s * 2 ** (attempts - 1))
        self._save()
        return False

    # One result -------------------------------------------------------------------------------
    def _judge(self, task_id: int, entry: dict[str, Any]) -> bool:
        """Verify, then vote, challenge or abstain as the task's status asks (`next_step`); True when the
        entry is done with, False to look again at the next poll."""
        chain, attestation_hash = self.chain, entry["attestation_hash"]
        verdict = self.state.judged.get(attestation_hash)
        while True:  # at most twice: a verification, then the step on the status read after it
            task = chain.task_bounties.tasks(task_id)
            result = chain.task_bounties.results(task_id)
            status = None if task is None else task.status
            state = "Missing" if status is None else status.name
            if result is None or as_hex(result.attestation_hash) != attestation_hash:
                return self._abstain(task_id, f"no longer under verification ({state})")
            allowed, why = may_vote(self.account, getattr(status, "worker", ""), task.requester)
            if not allowed:
                return self._abstain(task_id, why)
            round_ = round_of(state)
            key = _vote_key(task_id, attestation_hash, round_)
            on_chain = state != "Approved" and chain.task_bounties.verdicts(task_id, self.account) is not None
            step = next_step(state, accept=None if verdict is None else bool(verdict["accept"]),
                             voted_this_round=on_chain or key in self.state.voted,
                             approved_me=self.account in (result.approved_by or []),
                             challenger_me=(isinstance(status, TaskStatus.Challenged)
                                            and status.challenger == self.account),
                             now_ms=int(chain.timestamp.now() or 0) if state == "Approved" else None,
                             challenge_until=(status.challenge_until if isinstance(status, TaskStatus.Approved)
                                              else None))
            if step.action == ABSTAIN:
                return self._abstain(task_id, step.reason)
            if step.action == VOTE:
                return self._vote(task_id, key, round_, verdict)
            if step.action == CHALLENGE:
                return self._challenge(task_id, key, verdict)
            holdout = chain.task_bounties.holdouts(task_id) if task.holdout_commitment is not None else None
            if task.holdout_commitment is not None and holdout is None:
                # the chain's time, or the local clock where it is ahead (an idle instant-seal chain's Now is
                # its last block's): waiting less only means judging without the holdout, never too late
                now_ms = max(int(chain.timestamp.now() or 0), int(time.time() * 1000))
                if isinstance(status, TaskStatus.Submitted) and await_holdout(status.verify_until, now_ms,
                                                                             self.config.holdout_margin_ms):
                    return False  # wait for the requester's reveal
                log.info("task %d: the holdout was not revealed; judging on the validation split only", task_id)
            randomness = entry.get("block_hash") or as_hex(chain.block_hash(int(result.submitted_at)))
            verdict = self._verdict(task_id, task, result, randomness, holdout)

    def _abstain(self, task_id: int, why: str) -> bool:
        log.info("task %d: not voting: %s", task_id, why)
        self._skip(task_id, why)
        return True

    def _skip(self, task_id: int, reason: str) -> None:
        self.skipped.append({"task_id": task_id, "reason": reason})
        self._notify("abstained", task_id=task_id, reason=reason)

    def _verdict(self, task_id: int, task: Any, result: Any, randomness: str, holdout: Any) -> dict[str, Any]:
        """Verify the attestation, store the evidence document; the verdict, cached by attestation hash (a
        challenge round re-uses it: same attestation, same randomness, same checks)."""
        attestation_hash = as_hex(result.attestation_hash)
        started = time.process_time()
        verdict, segments, extra = self.verify(task_id, task, result.attestation, randomness, holdout)
        extra["cpu_s"] = round(time.process_time() - started, 3)
        document = evidence_document(task_id=task_id, attestation_hash=attestation_hash, validator=self.account,
                                     randomness=randomness, verdict=verdict, segments=segments, extra=extra)
        record = {"accept": verdict.accept, "measured_metric": verdict.measured_metric,
                  "evidence_hash": self.store.put(document), "segments": segments, "reasons": verdict.reasons}
        self.state.judged[attestation_hash] = record
        self._save()
        return record

    def verify(self, task_id: int, task: Any, attestation: Attestation, randomness: str,
               holdout: Any = None) -> tuple[Any, list[int], dict[str, Any]]:
        """All checks of one attestation: (Verdict, the segments replayed, extra evidence)."""
        from workers.spec import SpecError, decode_spec

        spec_hash, spec_uri = as_hex(task.spec.spec_hash), task.spec.spec_uri.text
        try:
            spec = decode_spec(self.store.fetch(spec_uri, spec_hash, kind=Kind.SPEC), require_canonical=True)
        except (ArtifactError, OSError, ValueError, SpecError) as exc:
            raise Abstain(f"the spec document {spec_uri} is unusable: {exc}") from None
        try:  # the requester's data set, read by the checks below from this store: its fault if unusable
            self.store.fetch_into_store(spec.dataset.uri, spec.dataset.hash, kind=Kind.DATASET)
        except (ArtifactError, ValueError) as exc:
            raise Abstain(f"the data set {spec.dataset.uri} is unusable: {exc}") from None
        checkpoints = [as_hex(h) for h in attestation.checkpoints]
        model_hash = as_hex(attestation.model_hash)
        # the hash checks read every checkpoint and the model once: keep what the trajectory checks need (the
        # checkpoints' metadata, the model's and the last checkpoint's bytes) rather than read them again
        metas: dict[str, dict[str, Any] | None] = {}
        kept: dict[str, bytes] = {}

        def on_read(digest: str, data: bytes) -> None:
            metas[digest] = document_meta(data)
            if digest == model_hash or (checkpoints and digest == checkpoints[-1]):
                kept[digest] = data

        copied = self._fetch_artifacts(attestation, on_read)
        checks: list[Check] = verify_hashes(attestation, self.store, on_read, verified=copied)
        checks.append(self._code_check(spec, attestation))
        dataset = as_hex(attestation.dataset_hash)
        checks.append(Check("dataset_hash", dataset == spec.dataset.hash,
                            {"attested": dataset, "spec": spec.dataset.hash,
                             **({"reason": "the attested data set is not the task's"}
                                if dataset != spec.dataset.hash else {})}))
        # the trajectory's end (byte comparisons, nothing evaluated), once the documents are the named ones and
        # the recipe is one this validator runs (the schedule's total steps come from the recipe's data split)
        if all(c.ok for c in checks):
            checks.append(self._schedule_check(spec, spec_hash, [metas.get(h) for h in checkpoints]))
            checks.append(check_final_model(kept.get(model_hash), kept.get(checkpoints[-1]), spec_hash=spec_hash))
        artifacts_ok = all(c.ok for c in checks)
        metric_name = spec.evaluation.metric
        higher = bool(task.spec.higher_is_better)
        measured_micro, segments, extra = 0, [], {"spec_hash": spec_hash, "metric": metric_name}
        if artifacts_ok:
            try:
                measured = self.measure(spec, model_hash)
            except ModelUnusable as exc:
                measured = None
                checks.append(Check("metric", False, {"metric": metric_name,
                                                      "claimed": claimed_metrics(attestation).get(metric_name),
                                                      "error": str(exc),
                                                      "reason": f"the model weights cannot be evaluated: {exc}"}))
            if measured is not None:
                measured_micro = to_micro(measured[metric_name]) if metric_name in measured else 0
                extra["measured"] = {k: to_micro(v) for k, v in sorted(measured.items())}
                claimed = claimed_metrics(attestation).get(metric_name)
                checks.append(compare_metric(claimed, measured.get(metric_name, float("nan")),
                                             self.config.metric_tolerance, higher, name=metric_name)
                              if metric_name in measured else
                              Check("metric", False, {"reason": f"the recipe does not measure {metric_name!r}"}))
                if holdout is not None:
                    checks.append(self._holdout_check(spec, model_hash, holdout, int(task.spec.eval_target), higher))
            segments = choose_segments(randomness, len(checkpoints), self.config.spot_checks)
            for index in segments:
                checks.append(self._replay(spec, checkpoints, index))
        else:
            checks.append(Check("metric", False, {"reason": "not measured: the artifacts failed their checks"}))
        return decide(checks, measured_micro), segments, extra

    def _fetch_artifacts(self, attestation: Attestation, on_read: Callable[[str, bytes], None]) -> set[str]:
        """Copy the model and checkpoints from the store the artifact_uri names into ours, each verified by
        hash once, its bytes shown to `on_read`; returns the digests copied (verify_hashes reads only the
        others). Only a store this validator trusts is read (its URI policy): objects it cannot copy are
        missing, which fails the worker's hash checks."""
        root = store_root_of(attestation.artifact_uri.text)
        if root is None or root == self.store.root:
            return set()
        if not self.store.policy.allows_root(root):
            log.info("artifacts not fetched: the artifact_uri names a store this validator does not trust (%s)",
                     root[:160])
            return set()
        copied = set()
        for digest in dict.fromkeys(as_hex(d) for d in [attestation.model_hash, *attestation.checkpoints]):
            if self.store.exists(digest):
                continue
            try:
                on_read(digest, self.store.fetch(object_uri(root, digest), digest, kind=Kind.ARTIFACT, keep=True))
            except (ArtifactError, OSError, ValueError) as exc:
                log.info("artifact %s not fetched from %s: %s", digest[:16], root, exc)
                continue
            copied.add(digest)
        return copied

    def _schedule_check(self, spec: Any, spec_hash: str, metas: list[dict[str, Any] | None]) -> Check:
        """The checkpoints are the spec's whole schedule; the total steps for their world size are the
        engine's own count (`workers.engine.total_steps`, the data set read from this validator's store)."""
        from workers.engine import total_steps

        return check_trajectory_schedule(metas, spec_hash=spec_hash, checkpoint_every=int(spec.checkpoint_every),
                                         total_steps=lambda world_size: total_steps(spec, self.store, world_size))

    @staticmethod
    def _code_check(spec: Any, attestation: Attestation) -> Check:
        from workers.recipes import RecipeError, code_hash, get_recipe

        attested = as_hex(attestation.code_hash)
        try:
            expected = code_hash(get_recipe(spec.recipe))
        except RecipeError as exc:
            return Check("code_hash", False, {"attested": attested, "reason": f"recipe not runnable here: {exc}"})
        ok = attested == expected
        return Check("code_hash", ok, {"attested": attested, "expected": expected,
                                       **({} if ok else {"reason": "not the registered recipe's code"})})

    def measure(self, spec: Any, model_hash: str, holdout_data: bytes | None = None) -> dict[str, float]:
        """The recipe's metrics of the stored model: on the validation split, or on holdout data.
        ModelUnusable: the weights cannot be loaded into the task's model (another architecture, not a PTTS1
        document, ...) or evaluated; errors preparing the task's own data and model propagate as they are."""
        with _TORCH_LOCK:
            return self._measure(spec, model_hash, holdout_data)

    def _measure(self, spec: Any, model_hash: str, holdout_data: bytes | None) -> dict[str, float]:
        import torch

        from workers import tensorio
        from workers.datasets import decode_dataset
        from workers.recipes import get_recipe
        from workers.recipes.common import Prepared

        recipe = get_recipe(spec.recipe)
        hp = recipe.hyperparameters(spec.hyperparameters)
        torch.set_num_threads(int(hp.get("threads", 1)))
        prepared = recipe.prepare(decode_dataset(self.store.fetch(spec.dataset.uri, spec.dataset.hash,
                                                                  kind=Kind.DATASET)), hp, spec.validation)
        if holdout_data is not None:
            # the holdout goes through the recipe's own preparation; all of its examples are evaluated
            held = recipe.prepare(decode_dataset(holdout_data), hp, spec.validation)
            prepared = Prepared(prepared.train_x, prepared.train_y, torch.cat([held.train_x, held.val_x]),
                                torch.cat([held.train_y, held.val_y]), prepared.info)
        torch.manual_seed(spec.seed)
        model = recipe.build_model(hp, prepared)
        data = self.store.get(model_hash)
        try:  # from here on, what fails is the worker's weights
            weights, _ = tensorio.loads(data)
            model.load_state_dict(weights)
            model.eval()
            with torch.no_grad():
                return {k: float(v) for k, v in recipe.evaluate(model, prepared, hp).items()}
        except MemoryError:
            raise
        except Exception as exc:  # any error of the weights is a failed check, never a crash
            raise ModelUnusable(f"{type(exc).__name__}: {exc}") from exc

    def _holdout_check(self, spec: Any, model_hash: str, holdout: Any, target: int, higher: bool) -> Check:
        """The model on the requester's revealed holdout. The holdout is read like any other object (the URI
        policy, the data set limit), and only the bytes the commitment binds: its hash and size. An unusable
        holdout is the requester's fault, so the check is skipped with the reason, never failed."""
        uri = holdout.holdout_uri.text
        try:
            data = self.store.fetch(uri, holdout.holdout_hash, kind=Kind.HOLDOUT, size=int(holdout.holdout_size))
            measured = self.measure(spec, model_hash, holdout_data=data)[spec.evaluation.metric]
        except MemoryError:
            raise  # this machine's: retried, then abstained, never a verdict
        except Exception as exc:  # noqa: BLE001 - the requester's data: judge without it, say why
            # (ModelUnusable included: the same weights were measured on the validation split just before, so
            # an error here is the holdout's)
            log.warning("the revealed holdout %s is unusable: %s", uri, exc)
            return Check("holdout", True, {"uri": uri, "skipped": f"unusable holdout: {exc}"})
        check = compare_target(measured, target, self.config.holdout_tolerance, higher)
        return Check(check.name, check.ok, {"uri": uri, **check.detail})

    def _replay(self, spec: Any, checkpoints: list[str], index: int) -> Check:
        from workers.runner import checkpoint_info, replay_segment

        start = segment_start(checkpoints, index)
        try:
            world_size = int(checkpoint_info(self.store, checkpoints[index])["world_size"])
        except Exception as exc:  # noqa: BLE001 - an unreadable checkpoint is the worker's fault
            return compare_replay(index, start, checkpoints[index], None, error=f"{type(exc).__name__}: {exc}")
        if world_size > 1:  # outside the try: no Ray here is this machine's problem, never the worker's
            from workers.runner import ensure_ray
            ensure_ray(self.config.ray_address, log_to_driver=False)
        try:
            with _TORCH_LOCK:
                replayed = replay_segment(spec, self.store, start, world_size=world_size)
        except (OSError, MemoryError):
            raise  # the machine's (disk, memory, a lost Ray node): retried, then abstained, never a reject
        except Exception as exc:  # noqa: BLE001 - a checkpoint that cannot be replayed fails the check
            return compare_replay(index, start, checkpoints[index], None, error=f"{type(exc).__name__}: {exc}")
        return compare_replay(index, start, checkpoints[index], replayed)

    def _vote(self, task_id: int, key: str, round_: str, verdict: dict[str, Any]) -> bool:
        from runtime_bindings import DispatchError
        from runtime_bindings.generated import types as t

        value = t.Verdict(accept=verdict["accept"], measured_metric=verdict["measured_metric"],
                          evidence_hash="0x" + verdict["evidence_hash"])
        try:
            receipt = self.chain.task_bounties.submit_verdict(self.keypair, task_id, value)
        except DispatchError as exc:
            log.warning("task %d: the verdict was refused on chain: %s", task_id, exc)
            self._skip(task_id, f"refused on chain: {exc}")
            return True
        self._record(key, {"task_id": task_id, "round": round_, **verdict, "block": receipt.block_number})
        log.info("task %d: %s%s (measured %d, segments %s, evidence %s)%s", task_id,
                 "ACCEPT" if verdict["accept"] else "REJECT",
                 " in the challenge round" if round_ != FIRST_ROUND else "", verdict["measured_metric"],
                 verdict["segments"], verdict["evidence_hash"][:16],
                 "" if verdict["accept"] else f": {'; '.join(verdict['reasons'])}")
        return True

    def _challenge(self, task_id: int, key: str, verdict: dict[str, Any]) -> bool:
        """challenge_result with the evidence of its rejecting verdict (the deposit is reserved on chain)."""
        from runtime_bindings import DispatchError, ModuleError

        try:
            receipt = self.chain.task_bounties.challenge_result(self.keypair, task_id,
                                                                "0x" + verdict["evidence_hash"])
        except DispatchError as exc:
            if isinstance(exc, ModuleError) and exc.name == "NotApproved":
                log.info("task %d: not challenged: the result is no longer Approved (challenged by another "
                         "validator first, or paid out); looking again", task_id)
                return False
            log.warning("task %d: the challenge was refused on chain: %s", task_id, exc)
            self._skip(task_id, f"challenge refused on chain: {exc}")
            return True
        opened = next((e for e in receipt.events if e.name == "ResultChallenged"), None)
        self._record(key, {"task_id": task_id, "round": CHALLENGE_ROUND, "challenge": True, **verdict,
                           "block": receipt.block_number})
        settle = getattr(opened, "settle_until", None)
        log.info("task %d: CHALLENGED the approved result in block %d (deposit %s reserved, settle by %s, "
                 "evidence %s): %s", task_id, receipt.block_number, getattr(opened, "deposit", "?"),
                 moment_text(int(settle)) if settle is not None else "?", verdict["evidence_hash"][:16],
                 "; ".join(verdict["reasons"]))
        return True

    def _record(self, key: str, vote: dict[str, Any]) -> None:
        self.state.voted[key] = vote
        self._save()
        self.verdicts.append(vote)
        self._notify("vote", **vote)

