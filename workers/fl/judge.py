"""The validator's round judge: every committed federated round gets this validator's verdict on chain.

One round, end to end (driven from the validator daemon's event loop, `workers.validator`)::

    finalized FederatedTasks.RoundCommitted{task, round, round_doc_hash, verify_until, ...}
      -> the round is still Pending with that commitment; this validator is not its aggregator, the
         requester or one of its participants (the pallet refuses CannotJudgeOwnWork anyway) and has not
         voted on it (on chain: RoundVerdicts; locally: ``fl:<task>:<round>`` in state.json)
      -> where the requester committed a holdout: wait for its reveal while more than the margin of the
         round's verification window is left (`workers.verification.await_holdout`), then judge without it
      -> the FL spec document (spec_uri, checked against spec_hash: unusable -> abstain, the requester's
         fault); the round document by round_doc_hash, then the base model, the global model and every
         update by hash, all from the store the round's artifact_uri names, through this validator's own
         store (its URI policy and FetchLimits: an untrusted store, a missing object or one that does not
         hash to its name is the aggregator's failure, a reject)
      -> the round document's update hashes bound to the chain: the update root recomputed from them
         (`runtime_bindings.fl.update_root`) must equal the committed one, so the document cannot name other
         updates than the ones the clients signed
      -> the pure checks of `workers.fl.verify` (aggregate recomputed with the task's rule and compared,
         the global model measured on the holdout, client scores and leave-one-out, the verdict)
      -> the evidence document stored; submit_round_verdict{accept, measured_metric, evidence_hash,
         rejected_clients, contributions}.

Why the judge keeps its own pending rounds next to the daemon's results: a federated round has no
attestation and no challenge round; one vote per committed round is the whole protocol. A round voided and
committed again under the same number is a new commitment (another committed_at block): the local vote names
the commitment it was about, so the new one is judged again.
"""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from workers.artifacts import ArtifactError, ArtifactStore, Kind, object_uri, store_root_of
from workers.errors import Abstain, ValidatorError
from workers.fl.spec import FlSpec, RoundDocument, SpecError, canonical_json, decode_round_document, decode_spec
from workers.uri_policy import normalize_root
from workers.verification import HOLDOUT_MARGIN_MS, as_hex, await_holdout

if TYPE_CHECKING:  # verify imports torch: loaded when a round is judged, not with the validator
    from workers.fl.verify import RoundVerdictValue

log = logging.getLogger("paratrain.validator")

PALLET = "FederatedTasks"


def vote_key(task_id: int, round_: int) -> str:
    """The key of this validator's vote on one round in state.json's ``voted``."""
    return f"fl:{int(task_id)}:{int(round_)}"


def pending_key(task_id: int, round_: int) -> str:
    return f"{int(task_id)}:{int(round_)}"


@dataclass(frozen=True)
class JudgeSettings:
    """The validator's settings the judge reads (ValidatorConfig's of the same name)."""

    holdout_margin_ms: int = HOLDOUT_MARGIN_MS
    max_judge_attempts: int = 3
    retry_delay_s: float = 2.0


class RoundFailed(Exception):
    """The aggregator's objects cannot be judged (missing, refused, not what their hashes name): a reject."""


@dataclass(frozen=True)
class RoundObjects:
    """What the aggregator stored for one round, read and verified by hash: the round document (decoded and
    its bytes) and the PTTS1 bytes of the base model, the global model and each participant's update
    (participant order); in a private round, the DP claims the chain kept (participant order, else None)."""

    document: RoundDocument
    document_bytes: bytes
    base: bytes
    global_model: bytes
    updates: list[bytes]
    claims: list[Any] | None = None


class RoundJudge:
    """Judges every committed round of the FederatedTasks pallet for one validator. The daemon hands it the
    pallet's finalized events (`take_in`) and calls `judge_pending` from its loop; the rounds to judge live in
    ``state.rounds`` and the votes in ``state.voted`` (keys ``fl:<task>:<round>``), both saved by `save`."""

    def __init__(self, *, chain: Any, keypair: Any, store: ArtifactStore, state: Any,
                 save: Callable[[], None], notify: Callable[..., None],
                 settings: JudgeSettings | None = None, on_vote: Callable[[], None] | None = None) -> None:
        self.chain, self.keypair, self.store, self.state = chain, keypair, store, state
        self._save, self._notify, self._on_vote = save, notify, on_vote
        self.settings = settings or JudgeSettings()

    @property
    def account(self) -> str:
        return str(self.keypair.ss58_address)

    # Events -----------------------------------------------------------------------------------
    def take_in(self, event: Any, block: Any) -> None:
        """One FederatedTasks event of a finalized block: a committed round becomes one to judge."""
        if event.name == "RoundCommitted":
            task_id, round_ = int(event.task), int(event.round)
            self.state.rounds[pending_key(task_id, round_)] = {
                "task": task_id, "round": round_, "block": int(block.number),
                "round_doc_hash": as_hex(event.round_doc_hash), "verify_until": int(event.verify_until)}
            log.info("task %d: round %d committed in block %d by %s (%d participants)", task_id, round_,
                     block.number, event.aggregator, int(event.participants))
        elif event.name in ("RoundAccepted", "RoundRejected", "RoundTimedOut"):
            log.info("task %d: round %d %s in block %d", int(event.task), int(event.round),
                     event.name.removeprefix("Round").lower(), block.number)

    # The loop -----------------------------------------------------------------------------------
    def judge_pending(self, stopping: Callable[[], bool]) -> None:
        """Judge (or wait on, or drop) every round taken in, until `stopping()`."""
        from runtime_bindings import BindingsError

        for key in sorted(self.state.rounds, key=lambda k: tuple(int(p) for p in k.split(":"))):
            if stopping():
                break
            entry = self.state.rounds[key]
            if float(entry.get("retry_at", 0)) > time.time():
                continue
            try:
                finished = self.judge(int(entry["task"]), int(entry["round"]))
            except Abstain as exc:
                self._abstain(int(entry["task"]), int(entry["round"]), str(exc))
                finished = True
            except (ValidatorError, BindingsError):
                raise  # the chain connection or the daemon's set-up: not this round's doing
            except Exception as exc:  # noqa: BLE001 - one round never stops the daemon
                finished = self._judging_failed(entry, exc)
            if finished:
                self.state.rounds.pop(key, None)
                self._save()

    def _judging_failed(self, entry: dict[str, Any], exc: Exception) -> bool:
        """An unexpected error judging one round: retried later, at most max_judge_attempts times in all (the
        count survives restarts), then abstained from. True when it is given up."""
        attempts = int(entry.get("errors", 0)) + 1
        error = f"{type(exc).__name__}: {exc}"
        task_id, round_ = int(entry["task"]), int(entry["round"])
        log.error("task %d round %d: judging failed (attempt %d of %d): %s", task_id, round_, attempts,
                  self.settings.max_judge_attempts, error, exc_info=exc)
        if attempts >= self.settings.max_judge_attempts:
            self._abstain(task_id, round_, f"judging failed {attempts} times, giving up: {error}")
            return True
        entry.update(errors=attempts, last_error=error,
                     retry_at=time.time() + self.settings.retry_delay_s * 2 ** (attempts - 1))
        self._save()
        return False

    def _abstain(self, task_id: int, round_: int, why: str) -> None:
        log.info("task %d round %d: not voting: %s", task_id, round_, why)
        self._notify("round-abstained", task_id=task_id, round=round_, reason=why)

    # One round ----------------------------------------------------------------------------------
    def judge(self, task_id: int, round_: int) -> bool:
        """Look at one round on chain and vote on it when this validator may; True when done with it, False to
        look again at the next poll (waiting for the holdout)."""
        fl = self.chain.federated_tasks
        task, record = fl.tasks(task_id), fl.rounds(task_id, round_)
        if task is None or record is None:
            raise Abstain("the round is not on chain")
        status = record.status.name if hasattr(record.status, "name") else str(record.status)
        if status != "Pending":
            log.info("task %d round %d: not voting: the round is %s", task_id, round_, status)
            return True
        allowed, why = may_judge(self.account, aggregator=str(record.aggregator), requester=str(task.requester),
                                 participants=[str(account) for account, _ in record.participants])
        if not allowed:
            raise Abstain(why)
        key = vote_key(task_id, round_)
        local = self.state.voted.get(key)
        if local is not None and int(local.get("committed_at", -1)) == int(record.committed_at):
            return True
        if fl.round_verdicts(task_id, round_, self.account) is not None:
            log.info("task %d round %d: already voted on chain", task_id, round_)
            return True
        holdout = fl.holdouts(task_id) if task.holdout_commitment is not None else None
        if task.holdout_commitment is not None and holdout is None:
            # the chain's time, or the local clock where it is ahead (an idle instant-seal chain's Now is its
            # last block's): waiting less only means judging without the holdout, never too late
            now_ms = max(int(self.chain.timestamp.now() or 0), int(time.time() * 1000))
            if await_holdout(int(record.verify_until), now_ms, self.settings.holdout_margin_ms):
                return False
            log.info("task %d round %d: the holdout was not revealed; judging without it", task_id, round_)
        secagg = fl.sec_agg_specs(task_id)
        outcome = self.verdict(task_id, round_, task, record, holdout) if secagg is None else \
            self.secagg_verdict(task_id, round_, task, record, holdout, secagg)
        if outcome is None:
            return False
        self._vote(task_id, round_, record, outcome)
        return True

    def _vote(self, task_id: int, round_: int, record: Any, outcome: RoundVerdictValue) -> None:
        from runtime_bindings import DispatchError

        evidence_hash = self.store.put(outcome.evidence)
        value = {"accept": outcome.accept, "measured_metric": outcome.measured_metric,
                 "evidence_hash": "0x" + evidence_hash, "rejected_clients": outcome.rejected_clients,
                 "contributions": outcome.contributions}
        try:
            receipt = self.chain.federated_tasks.submit_round_verdict(self.keypair, task_id, round_, value)
        except DispatchError as exc:
            self._abstain(task_id, round_, f"refused on chain: {exc}")
            return
        vote = {"task_id": task_id, "round": round_, "committed_at": int(record.committed_at),
                "accept": outcome.accept, "measured_metric": outcome.measured_metric,
                "evidence_hash": evidence_hash, "rejected_clients": outcome.rejected_clients,
                "contributions": outcome.contributions, "reasons": outcome.reasons,
                "block": receipt.block_number}
        self.state.voted[vote_key(task_id, round_)] = vote
        self._save()
        log.info("task %d round %d: %s (measured %d, %d client(s) rejected, evidence %s)%s", task_id, round_,
                 "ACCEPT" if outcome.accept else "REJECT", outcome.measured_metric, len(outcome.rejected_clients),
                 evidence_hash[:16], "" if outcome.accept else f": {'; '.join(outcome.reasons)}")
        if self._on_vote is not None:
            self._on_vote()
        self._notify("round-vote", **vote)

    def verdict(self, task_id: int, round_: int, task: Any, record: Any, holdout: Any) -> RoundVerdictValue:
        """The verdict of `workers.fl.verify` on the round's objects, or a reject when the aggregator's
        objects cannot be read (Abstain when the requester's spec document is unusable)."""
        from workers.fl.verify import HEADER_ALLOWANCE, round_verdict
        from workers.result_checks import TORCH_LOCK

        spec = self.fetch_spec(task)
        chain_round = _chain_round(task_id, round_, spec, record)
        try:
            objects = self.fetch_round(task_id, round_, record, spec.max_update_bytes + HEADER_ALLOWANCE)
        except RoundFailed as exc:
            return _unreadable(chain_round, exc)
        holdout_data = self.fetch_holdout(holdout) if holdout is not None else None
        central = self.central_release(task_id, round_)
        with TORCH_LOCK:  # validators sharing a process (threads, tests, the demo) evaluate one at a time
            outcome = round_verdict(spec, chain_round, objects.document_bytes, objects.base, objects.global_model,
                                    objects.updates, holdout_data, central)
        failures = self.claim_failures(task_id, round_, spec, record, objects.claims)
        return with_claim_failures(outcome, chain_round, failures)

    def secagg_verdict(self, task_id: int, round_: int, task: Any, record: Any, holdout: Any,
                       secagg: Any) -> RoundVerdictValue | None:
        """The verdict of `workers.fl.secagg_verify` once the round's audit is settled (None: not yet; this
        validator draws the audit itself when nobody has). Abstain when the spec document's SecAgg settings are
        not the chain's: the requester's fault, not the aggregator's."""
        from runtime_bindings import DispatchError
        from runtime_bindings.generated.federated_tasks import AuditAlreadyDrawn, AuditNotDue
        from workers.fl.secagg_refusals import with_refusals
        from workers.fl.secagg_verify import reveal_bound, secagg_round_verdict
        from workers.fl.verify import HEADER_ALLOWANCE
        from workers.result_checks import TORCH_LOCK

        fl = self.chain.federated_tasks
        audit = fl.audits(task_id, round_)
        if audit is None:
            try:
                fl.draw_audit(self.keypair, task_id, round_)
            except (AuditAlreadyDrawn, AuditNotDue):
                pass   # drawn by another party since, or its commit block has no successor yet
            except DispatchError as exc:
                raise Abstain(f"the audit cannot be drawn: {exc}") from None
            audit = fl.audits(task_id, round_)
            if audit is None:
                return None
        now_ms = max(int(self.chain.timestamp.now() or 0), int(time.time() * 1000))
        if int(audit.revealed) < len(audit.drawn) and now_ms < int(audit.reveal_until):
            return None
        spec = self.fetch_spec(task)
        if spec.secagg is None or _fields(secagg) != spec.secagg.chain_values():
            raise Abstain("the spec document's SecAgg settings are not the chain's SecAggSpec")
        chain_round = _chain_round(task_id, round_, spec, record)
        try:
            objects = self.fetch_round(task_id, round_, record, spec.max_update_bytes + HEADER_ALLOWANCE,
                                       with_updates=False)
        except RoundFailed as exc:
            return _unreadable(chain_round, exc)
        audited = [self.fetch_reveal(task_id, round_, str(account), reveal_bound(spec))
                   for account in audit.drawn]
        holdout_data = self.fetch_holdout(holdout) if holdout is not None else None
        with TORCH_LOCK:
            outcome = secagg_round_verdict(spec, chain_round, objects.document_bytes, objects.base,
                                           objects.global_model, audited, holdout_data)
        # under SecAgg the pallet lets a verdict reject only audited clients (RejectedNotAudited)
        drawn = {str(a) for a in audit.drawn}
        failures = {a: why for a, why in self.claim_failures(task_id, round_, spec, record, objects.claims).items()
                    if a in drawn}
        return with_refusals(with_claim_failures(outcome, chain_round, failures),
                             self.refusal_findings(task_id, round_, spec, record))

    def refusal_findings(self, task_id: int, round_: int, spec: FlSpec, record: Any) -> Any:
        """The ruling on the clients the aggregator reported refused (workers/fl/secagg_refusals.py)."""
        from workers.fl.secagg_refusals import rule_on_refusals

        reported = self.chain.federated_tasks.sec_agg_refused(task_id, round_) or []
        root = artifact_root(record.artifact_uri.text)
        return rule_on_refusals([(str(r.client), as_hex(r.evidence_hash)) for r in reported],
                                lambda digest: fetch_object(self.store, root, digest, "refusal evidence"),
                                task_id=task_id, round_=round_, spec=spec)

    def fetch_reveal(self, task_id: int, round_: int, account: str, max_bytes: int) -> Any:
        """A drawn client's reveal document, by the hash and place it recorded on chain (the client chose the
        store: a document that cannot be read there is its failure to reveal)."""
        from runtime_bindings.fl import account_public_key
        from workers.fl.secagg_verify import AuditedClient
        from workers.sealing import SEAL_OVERHEAD, NotAddressed, SealedError, open_sealed, seal_secret

        key = account_public_key(account)
        revealed = self.chain.federated_tasks.audit_reveals(task_id, round_, account)
        if revealed is None:
            return AuditedClient(account, key, None, "no reveal on chain")
        uri = revealed.reveal_uri.text
        try:
            data = self.store.fetch(uri, as_hex(revealed.reveal_hash), kind=Kind.ARTIFACT)
        except (ArtifactError, OSError, ValueError) as exc:
            return AuditedClient(account, key, None, f"its reveal document {uri} cannot be read: {exc}")
        if len(data) > max_bytes + SEAL_OVERHEAD:
            return AuditedClient(account, key, None, f"its reveal document is over {max_bytes} bytes")
        try:
            document = open_sealed(data, self.keypair.public_key, seal_secret(self.keypair))
        except NotAddressed as exc:   # sealed before this validator registered its key: not the client's fault
            raise Abstain(f"the reveal of {account} is not sealed to this validator: {exc}") from None
        except SealedError as exc:
            return AuditedClient(account, key, None, f"its reveal document cannot be opened: {exc}")
        return AuditedClient(account, key, document)

    def ensure_seal_key(self) -> None:
        """Register this validator's seal key (derived from its account key) unless the chain has it already, so
        that audited clients can seal their reveals to it."""
        from workers.sealing import seal_public

        key = seal_public(self.keypair)
        stored = self.chain.federated_tasks.seal_keys(self.account)
        if stored is None or bytes(stored) != key:
            self.chain.federated_tasks.register_seal_key(self.keypair, "0x" + key.hex())

    def central_release(self, task_id: int, round_: int) -> Any:
        """A central-DP task's mechanism and what is wrong with the aggregator's claim for the round, recomputed
        with the task's accountant (None: the task has no central DP)."""
        from workers.fl.central_task import central_task
        from workers.fl.dp_record import from_chain

        central = central_task(self.chain, task_id)
        if central is None:
            return None
        claim = self.chain.privacy_budgets.central_claims(task_id, round_)
        problems = ["the round has no DP claim on chain"] if claim is None else \
            central.claim_problems(from_chain(claim), round_)
        return central.release(problems)

    def round_claims(self, task_id: int, round_: int, participants: list[tuple[str, int]]) -> list[Any] | None:
        """A private round's claims as the chain kept them, in participant order (None: not a private task)."""
        privacy = self.chain.privacy_budgets
        if privacy.federated_privacy(task_id) is None:
            return None
        claims = [privacy.federated_claims(task_id, round_, account) for account, _ in participants]
        if any(c is None for c in claims):
            raise RoundFailed("a participant of a private round has no DP claim on chain")
        return claims

    def claim_failures(self, task_id: int, round_: int, spec: FlSpec, record: Any,
                       claims: list[Any] | None) -> dict[str, str]:
        """The participants of a private round whose claim (`claims`, as fetch_round read them) under-reports
        their privacy loss, with why: the claim's mechanism, rate and steps against the task, the signed example
        count and the rounds the chain shows them in (workers/fl/dp_claims.py)."""
        from workers.fl.dp_claims import claim_problems
        from workers.fl.dp_record import from_chain

        participants = [(str(a), int(n)) for a, n in record.participants]
        if claims is None or spec.dp is None:
            return {}
        fl = self.chain.federated_tasks
        earlier = [fl.rounds(task_id, r) for r in range(1, round_)]
        failures = {}
        for (account, examples), claim in zip(participants, claims, strict=True):
            rounds = 1 + sum(1 for r in earlier if r is not None and any(str(a) == account for a, _ in r.participants))
            problems = claim_problems(from_chain(claim), spec.dp, num_examples=examples,
                                      batch_size=int(spec.hyperparameters["batch_size"]),
                                      local_epochs=int(spec.hyperparameters["local_epochs"]), rounds_at_least=rounds)
            if problems:
                failures[account] = "DP claim: " + "; ".join(problems)
        return failures

    def fetch_spec(self, task: Any) -> FlSpec:
        """The requester's FL spec document, checked against the chain's spec_hash (Abstain when unusable:
        without it no round of the task can be judged, and that is not the aggregator's doing)."""
        uri = task.spec.spec_uri.text
        try:
            return decode_spec(self.store.fetch(uri, as_hex(task.spec.spec_hash), kind=Kind.SPEC),
                               require_canonical=True)
        except (ArtifactError, OSError, ValueError) as exc:  # SpecError is a ValueError
            raise Abstain(f"the spec document {uri} is unusable: {exc}") from None

    def fetch_holdout(self, holdout: Any) -> bytes | None:
        """The revealed holdout's committed bytes (its hash and size, through the URI policy), or None when
        they cannot be read: the requester's failure, so the round is judged without it."""
        uri = holdout.holdout_uri.text
        try:
            return self.store.fetch(uri, as_hex(holdout.holdout_hash), kind=Kind.HOLDOUT,
                                    size=int(holdout.holdout_size))
        except (ArtifactError, OSError, ValueError) as exc:
            log.warning("the revealed holdout %s is unusable, judging without it: %s", uri, exc)
            return None

    # Reading the round --------------------------------------------------------------------------
    def fetch_round(self, task_id: int, round_: int, record: Any, max_object_bytes: int | None = None, *,
                    with_updates: bool = True) -> RoundObjects:
        """The round's objects from the store its artifact_uri names (copied into this validator's store),
        each verified against its hash and read only up to the operator's artifact limit or
        `max_object_bytes` (what the spec allows an update), the document's update hashes bound to the
        committed update root. RoundFailed when any of that fails: the aggregator did not make its round
        checkable."""
        store = self.store
        if max_object_bytes is not None and max_object_bytes < store.limits.artifact_bytes:
            store = ArtifactStore(store.root, policy=store.policy,
                                  limits=replace(store.limits, artifact_bytes=max_object_bytes),
                                  **store.storage_options)
        root = artifact_root(record.artifact_uri.text)
        doc_hash = as_hex(record.round_doc_hash)
        raw = fetch_object(store, root, doc_hash, "round document", Kind.SPEC)
        try:
            document = decode_round_document(raw)
        except SpecError as exc:
            raise RoundFailed(f"the round document is not a valid fl-round document: {exc}") from None
        hashes = document.update_hashes
        participants = [(str(account), int(n)) for account, n in record.participants]
        if len(hashes) != len(participants):
            raise RoundFailed(f"the round document names {len(hashes)} updates, the chain {len(participants)} "
                              "participants")
        claims = self.round_claims(task_id, round_, participants)
        computed = committed_update_root(task_id, round_, as_hex(record.base_model_hash), participants, hashes,
                                         claims)
        if computed != as_hex(record.update_root):
            raise RoundFailed("the round document's updates are not the ones the clients signed: their update "
                              f"root is {computed[:16]}, the chain's {as_hex(record.update_root)[:16]}")
        return RoundObjects(
            document=document, document_bytes=raw,
            base=fetch_object(store, root, as_hex(record.base_model_hash), "base model"),
            global_model=fetch_object(store, root, as_hex(record.global_model_hash), "global model"),
            updates=[fetch_object(store, root, digest, f"update of {account}")
                     for digest, (account, _) in zip(hashes, participants, strict=True)] if with_updates else [],
            claims=claims)


def with_claim_failures(outcome: RoundVerdictValue, chain_round: Any, failures: dict[str, str]) -> RoundVerdictValue:
    """An accepting verdict with the clients whose DP claim fails rejected too (factor 0, slashed)."""
    if not outcome.accept or not failures:
        return outcome
    accounts = [a for a, _ in chain_round.participants]
    rejected = [a for a in accounts if a in failures or a in outcome.rejected_clients]
    factors = [0 if a in failures else f for a, f in zip(accounts, outcome.contributions, strict=True)]
    evidence = json.loads(outcome.evidence)
    evidence["dp_claims"] = failures
    return replace(outcome, rejected_clients=rejected, contributions=factors, evidence=canonical_json(evidence),
                   reasons=[*outcome.reasons, *failures.values()])


def _chain_round(task_id: int, round_: int, spec: FlSpec, record: Any) -> Any:
    from workers.fl.verify import ChainRound

    return ChainRound(task_id=task_id, round=round_, rule=spec.rule.text,
                      base_model_hash=as_hex(record.base_model_hash),
                      global_model_hash=as_hex(record.global_model_hash),
                      participants=tuple((str(a), int(n)) for a, n in record.participants))


def _unreadable(chain_round: Any, exc: RoundFailed) -> RoundVerdictValue:
    """The reject of a round whose objects the aggregator did not make readable."""
    from workers.fl.verify import EVIDENCE_KIND, RoundVerdictValue

    reasons = [str(exc)]
    evidence = {"kind": EVIDENCE_KIND, "task_id": chain_round.task_id, "round": chain_round.round,
                "rule": chain_round.rule, "global_model_hash": chain_round.global_model_hash, "accept": False,
                "reasons": reasons}
    return RoundVerdictValue(False, 0, [], [0] * len(chain_round.participants), canonical_json(evidence), reasons)


def _fields(value: Any) -> dict[str, int]:
    """A generated chain struct's fields (a SecAggSpec) as a plain mapping."""
    return {name: int(v) for name, v in vars(value).items()}


def fetch_object(store: ArtifactStore, root: str, digest: str, what: str, kind: Kind = Kind.ARTIFACT) -> bytes:
    """One object of the round, copied into `store` once verified (RoundFailed when it cannot be)."""
    try:
        return store.fetch(object_uri(root, digest), digest, kind=kind, keep=True)
    except (ArtifactError, OSError, ValueError) as exc:
        raise RoundFailed(f"the {what} {digest[:16]} cannot be read from {root}: {exc}") from None


def may_judge(me: str, *, aggregator: str, requester: str, participants: list[str]) -> tuple[bool, str]:
    """Whether a validator may vote on a round at all (the pallet's CannotJudgeOwnWork; the judge never tries)."""
    if me == aggregator:
        return False, "this validator is the round's aggregator: it never judges its own work"
    if me == requester:
        return False, "this validator is the task's requester"
    if me in participants:
        return False, "this validator is a participant of the round"
    return True, ""


def artifact_root(uri: str) -> str:
    """The store a round's artifact_uri names: the root of a content-addressed URI, or the URI as a root."""
    if not uri:
        raise RoundFailed("the round has no artifact_uri")
    return store_root_of(uri) or normalize_root(uri)


def committed_update_root(task_id: int, round_: int, base_model_hash: str, participants: list[tuple[str, int]],
                          update_hashes: list[str], claims: list[Any] | None = None) -> str:
    """The update root of these updates (the chain's participants, with the document's update hashes and, in a
    private round, the claims the chain kept), as the pallet computes it in commit_round."""
    from runtime_bindings import fl
    from runtime_bindings.fl_private import private_update_leaf

    commitments = [fl.UpdateCommitment.of(task_id, round_, base_model_hash, digest, examples)
                   for (_, examples), digest in zip(participants, update_hashes, strict=True)]
    if claims is None:
        leaves = [fl.update_leaf(account, c) for (account, _), c in zip(participants, commitments, strict=True)]
    else:
        leaves = [private_update_leaf(account, c, claim)
                  for (account, _), c, claim in zip(participants, commitments, claims, strict=True)]
    return fl.update_root(leaves).hex()
