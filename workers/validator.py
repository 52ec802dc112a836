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
      -> a private task (PrivacyBudgets.BountyPrivacy holds its DpSpec): the spec document's privacy section
         equals that DpSpec, and the worker's claim (BountyClaims) is the one the spec and the data size
         imply, epsilon at most 1 % under Opacus's recomputation (workers.result_checks); the replays above
         re-run the clipping and the keyed noise, so a run that skipped either fails them
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

Federated rounds (a chain with the FederatedTasks pallet): the pallet's finalized events go to the round
judge, workers.fl.judge.RoundJudge, which the loop drives after the results: every committed round is judged
and voted on once (``state.json``'s ``rounds``, votes keyed ``fl:<task>:<round>``; "round-vote" and
"round-abstained" to subscribers). On a chain without the pallet there is no judge and nothing changes.
Prediction markets (the PredictionMarkets pallet): every finalized MarketEnded makes the market one to score
(``state.json``'s ``markets``); workers.collab.market_judge replays it off chain and submits the passes' scores
once ("market-scored", "market-abstained" to subscribers).

Structure: the set-up shared with the worker (key, store, state directory, chain connection and its start-up
checks, signals) is workers._daemon_base; what is verified about a result is workers.result_checks
(ResultChecker), apart from this event loop, and the decisions over the chain's state are the pure functions
of workers.verification. Votes and abstentions go to subscribers ("vote", "abstained"; workers.observers).
"""
from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from runtime_bindings.errors import BindingsError
from runtime_bindings.generated.types import Attestation, TaskStatus
from workers._daemon_base import EXIT_ERROR, EXIT_OK, DaemonBase
from workers.artifacts import FetchLimits
from workers.collab.market_judge import PALLET as MARKET_PALLET
from workers.collab.market_judge import MarketJudge
from workers.errors import Abstain, ModelUnusable, ValidatorError
from workers.fl.judge import PALLET as FL_PALLET
from workers.fl.judge import JudgeSettings, RoundJudge
from workers.payout import moment_text
from workers.result_checks import TORCH_LOCK as _TORCH_LOCK
from workers.result_checks import PrivateResult, ResultChecker
from workers.verification import (
    ABSTAIN,
    CHALLENGE,
    CHALLENGE_ROUND,
    FIRST_ROUND,
    HOLDOUT_MARGIN_MS,
    HOLDOUT_TOLERANCE,
    METRIC_TOLERANCE,
    VOTE,
    Verdict,
    as_hex,
    await_holdout,
    evidence_document,
    may_vote,
    next_step,
    round_of,
)

log = logging.getLogger("paratrain.validator")

STATE_FILE = "state.json"
PRIVACY_PALLET = "PrivacyBudgets"
__all__ = ["EXIT_ERROR", "EXIT_OK", "STATE_FILE", "_TORCH_LOCK", "Abstain", "ModelUnusable", "ValidatorConfig",
           "ValidatorDaemon", "ValidatorError", "ValidatorState"]


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
    rounds: dict[str, dict[str, Any]] = field(default_factory=dict)    # "task:round" -> a federated round to judge
    markets: dict[str, dict[str, Any]] = field(default_factory=dict)   # prediction market id -> {block it ended}

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
                   judged=dict(doc.get("judged", {})), rounds=dict(doc.get("rounds", {})),
                   markets=dict(doc.get("markets", {})))

    def save(self, path: Path) -> None:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps(asdict(self), indent=1, sort_keys=True))
        os.replace(tmp, path)


def _vote_key(task_id: int, attestation_hash: str, round_: str) -> str:
    return f"{task_id}:{as_hex(attestation_hash)}:{round_}"


class ValidatorDaemon(DaemonBase):
    """Judges every result submitted on chain. `run()` blocks; `stop()` (any thread) makes it return. Its votes,
    abstentions and health signals go to subscribers (workers.observers; the names are listed in workers.health)."""

    role, chain_role, error = "validator", "Validator", ValidatorError

    def __init__(self, config: ValidatorConfig, *, keypair: Any = None, store: Any = None) -> None:
        super().__init__(config, keypair=keypair, store=store)
        self.config: ValidatorConfig = config
        self.state = ValidatorState()
        self.state_path: Path | None = None
        self.votes_cast = 0                    # this run's votes and challenges (for max_verdicts)
        self.exit_code: int | None = None
        self._checks: ResultChecker | None = None
        self.round_judge: RoundJudge | None = None  # on a chain with the FederatedTasks pallet
        self.market_judge: MarketJudge | None = None  # on a chain with the PredictionMarkets pallet

    # Set-up ---------------------------------------------------------------------------------
    def _connect(self) -> None:
        self.state_path = self._open_state_dir() / STATE_FILE
        self.state = ValidatorState.load(self.state_path)
        self._connect_chain()
        info = self._startup_checks()
        if FL_PALLET in self.chain.metadata().pallets:
            self.round_judge = RoundJudge(chain=self.chain, keypair=self.keypair, store=self.store,
                                          state=self.state, save=self._save, notify=self._notify,
                                          settings=JudgeSettings(self.config.holdout_margin_ms,
                                                                 self.config.max_judge_attempts,
                                                                 self.config.retry_delay_s),
                                          on_vote=self._count_vote)
            try:
                self.round_judge.ensure_seal_key()   # audited SecAgg clients seal their reveals to it
            except BindingsError as exc:   # it still judges every other round; SecAgg reveals wait for a key
                log.warning("validator %s: the seal key was not registered: %s", self.account, exc)
        if MARKET_PALLET in self.chain.metadata().pallets:
            self.market_judge = MarketJudge(chain=self.chain, keypair=self.keypair, state=self.state,
                                            save=self._save, notify=self._notify)
        log.info("validator %s (stake %d) on %s, store %s, Q=%d", self.account, info.stake, self.config.chain_url,
                 self.store.root, self.config.spot_checks)
        self._notify("connected", chain=self.config.chain_url)

    def on_signal(self, name: str) -> None:
        log.warning("%s: stopping after the current step", name)
        self.stop()

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
                if self.round_judge is not None and not self._done():
                    self.round_judge.judge_pending(lambda: self.stopping or self._done())
                if self.market_judge is not None and not self.stopping:
                    self.market_judge.score_pending()
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
        return self.config.max_verdicts is not None and self.votes_cast >= self.config.max_verdicts

    def _take_in(self, block: Any) -> None:
        """Record one finalized block's events about results (submitted, revealed holdout, approved,
        challenged, settled), then the block itself."""
        for record in block.records:
            event = record.event
            if event.pallet == FL_PALLET and self.round_judge is not None:
                self.round_judge.take_in(event, block)
                continue
            if event.pallet == MARKET_PALLET and self.market_judge is not None:
                self.market_judge.take_in(event, block)
                continue
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

    @property
    def checks(self) -> ResultChecker:
        """What this validator verifies about a result (workers.result_checks), on its store and settings."""
        if self._checks is None:
            self._checks = ResultChecker(self.store, spot_checks=self.config.spot_checks,
                                         metric_tolerance=self.config.metric_tolerance,
                                         holdout_tolerance=self.config.holdout_tolerance,
                                         ray_address=self.config.ray_address)
        return self._checks

    def verify(self, task_id: int, task: Any, attestation: Attestation, randomness: str,
               holdout: Any = None) -> tuple[Verdict, list[int], dict[str, Any]]:
        """All checks of one attestation of task `task_id`: (Verdict, the segments replayed, extra evidence)."""
        return self.checks.verify(task, attestation, randomness, holdout, private=self.private_result(task_id))

    def private_result(self, task_id: int) -> PrivateResult | None:
        """The chain's DpSpec and the worker's claim when task `task_id` is private; None for a plain task (or
        a chain without the PrivacyBudgets pallet, or an offline check with no chain: a private task is known
        only from the chain)."""
        if self.chain is None or PRIVACY_PALLET not in self.chain.metadata().pallets:
            return None
        budgets = self.chain.privacy_budgets
        dp_spec = budgets.bounty_privacy(task_id)
        return None if dp_spec is None else PrivateResult(dp_spec, budgets.bounty_claims(task_id))

    def measure(self, spec: Any, model_hash: str, holdout_data: bytes | None = None) -> dict[str, float]:
        """The recipe's metrics of the stored model (ResultChecker.measure)."""
        return self.checks.measure(spec, model_hash, holdout_data)

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
        self._count_vote()
        self._notify("vote", **vote)

    def _count_vote(self) -> None:
        self.votes_cast += 1

