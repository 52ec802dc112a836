"""The aggregator's Flower strategy: Flower's own rule inside, the chain's rules around it.

`ChainStrategy` wraps one of Flower's Message-API strategies (FedAvg, FedMedian, FedTrimmedAvg, Krum,
MultiKrum: `make_rule`), the way Flower's own differential-privacy wrappers hold `self.strategy`. Around
the rule it adds what only the chain can say:

* who may take part: a Flower node id is handed out by the SuperLink and trusted by nobody, so a node
  counts only once it has answered a ``query.identity`` message with a signature of (task, node id, run id)
  by a joined client's key (`IdentityBook`); `JoinedGrid` shows Flower's sampling only those nodes;
* which replies are aggregated: every reply is checked before the rule sees it, and a refused one is kept
  in the round document with its reason (error replies, unknown nodes, unjoined accounts, commitments that
  do not match the reply, hash mismatches, bad signatures, wrong names/dtypes/shapes, NaN/Inf, oversize,
  more examples than the client committed, one account twice). The pallet checks the signatures again in
  commit_round; checking them here means a bad reply is refused, not committed;
* a central-DP task's release: `inner` is then Flower's fixed-clipping wrapper around FedAvg, and just before it
  aggregates, the replies get equal weights and numpy's generator a fresh seed that the round document records
  (workers/fl/central_task.py); the commit carries the aggregator's claim;
* what becomes a fact: each accepted update's PTTS1 bytes go to the store before the rule runs (FedMedian
  and FedTrimmedAvg pop the arrays out of the replies), then the global model and the round document, and
  the round is committed on chain (`workers.fl.committer`) before the next one starts.

Lifecycle events go to observers (workers.observers): "round-started", "refused", "round-skipped",
"round-committed", "commit-refused", "identity-refused", so tests, the benchmark and the demo subscribe
instead of reading lists the strategy keeps.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import flwr
import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg, FedMedian, FedTrimmedAvg, Krum, MultiKrum, Strategy
from flwr.supercore.run import Run

from runtime_bindings import fl
from runtime_bindings.fl_private import verify_private_update
from workers.artifacts import ArtifactStore
from workers.fl.arrays import check_update, model_bytes, update_bytes, update_hash
from workers.fl.central_dp import over_the_norm
from workers.fl.central_noise import CentralDpError, CentralNoise
from workers.fl.central_task import CentralTask, begin_release
from workers.fl.committer import CommitRefused, RoundCommit, RoundCommitter, SignedEntry, sorted_entries
from workers.fl.dp_record import claim_of
from workers.fl.spec import MAX_REASON_LEN, Participant, Refusal, RoundDocument, RuleSpec, round_document
from workers.observers import Observable
from workers.privacy.accounting import above_cap

log = logging.getLogger("paratrain.fl.strategy")

TASK_ID, ROUND, BASE_HASH = "paratrain.task-id", "paratrain.round", "paratrain.base-hash"
ARRAYS, METRICS, CONFIG, PARATRAIN = "arrays", "metrics", "config", "paratrain"
NUM_EXAMPLES = "num-examples"
IDENTITY_QUERY = "query.identity"
COMMITMENT_KEYS = ("account", "update-hash", "num-examples", "signature", "scheme")
ARRAY_OVERHEAD_BYTES = 4096
"""Flower's Array carries np.save bytes (a header per array): the slack `count_bytes` gets over the data bound
before the arrays are decoded at all."""


class DeadlineNear(RuntimeError):
    """Too few joined clients are connected and identified to run a round before the run must end."""


class RoundsVoided(RuntimeError):
    """The chain no longer has the round this pass was about to train (it timed out or was voided): the pass
    ends and the run starts again from the chain's last committed round."""


@dataclass(frozen=True)
class FlTaskView:
    """What the strategy needs to know of its task: from the chain (clients: joined and not slashed, by public
    key, with the examples they committed) and from the spec document (the rule, the update size bound)."""

    task_id: int
    rounds: int
    min_clients: int
    max_update_bytes: int
    rule: str
    clients: Mapping[bytes, int]
    private: bool = False   # its clients train with local DP-SGD: each update carries a signed DP claim
    central: CentralTask | None = None   # the aggregator releases each round under central DP


@dataclass
class _Accepted:
    reply: Message
    entry: SignedEntry
    arrays: dict[str, np.ndarray] = field(repr=False)


class IdentityBook(Observable):
    """Which Flower node speaks for which joined account in this run, by signed identity replies only.

    Queries are pushed and their replies pulled whenever the book is refreshed (Flower's sampling polls
    every second), so a node whose first answer is slow (a cold ClientApp) is identified when it does
    answer. A query lives `retry_s` (its Flower TTL) and a node is asked again only after that, so stale
    queries never queue up in front of a SuperNode's training messages (it runs one message at a time, each
    in a fresh process); a node that proves an account the task has no client for, or signs badly, is not
    mapped. When a second node proves an account (its client restarted its
    SuperNode), the account moves to the new node."""

    def __init__(self, task: FlTaskView, *, query_timeout: float = 30.0, retry_s: float = 120.0,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        self.task, self.query_timeout, self.retry_s = task, query_timeout, retry_s
        self.clock, self.sleep = clock, sleep
        self._account_of: dict[int, str] = {}
        self._node_of: dict[bytes, int] = {}
        self._next_try: dict[int, float] = {}
        self._pending: dict[str, int] = {}  # query message id -> node

    def account_of(self, node_id: int) -> str | None:
        return self._account_of.get(node_id)

    def joined_nodes(self, connected: Iterable[int]) -> list[int]:
        """The connected nodes that speak for a joined account, in the order given."""
        return [n for n in connected if n in self._account_of]

    def refresh(self, grid: Grid, *, wait: bool = True) -> None:
        """Take the identity replies that arrived, and ask the connected nodes not yet identified (nor asked
        within retry_s) who they are; with `wait`, wait up to query_timeout for the answers to these new
        questions (older unanswered ones never hold it up)."""
        fresh = self._pull_and_ask(grid)
        deadline = self.clock() + self.query_timeout
        while wait and fresh & self._pending.keys() and self.clock() < deadline:
            self.sleep(0.1)
            self._pull_and_ask(grid, ask=False)

    def _pull_and_ask(self, grid: Grid, *, ask: bool = True) -> set[str]:
        run_id = int(grid.run.run_id)
        if self._pending:
            for reply in grid.pull_messages(list(self._pending)):
                if self._pending.pop(reply.metadata.reply_to_message_id, None) is not None:
                    self.accept(reply, run_id)
        now = self.clock()
        due = [n for n in grid.get_node_ids() if n not in self._account_of and self._next_try.get(n, 0.0) <= now] \
            if ask else []
        if not due:
            return set()
        messages = [Message(RecordDict({CONFIG: ConfigRecord({TASK_ID: self.task.task_id})}), node, IDENTITY_QUERY,
                            group_id="identity", ttl=self.retry_s) for node in due]
        fresh = set()
        for message_id, node in zip(grid.push_messages(messages), due, strict=False):
            self._pending[message_id] = node
            self._next_try[node] = now + self.retry_s
            fresh.add(message_id)
        return fresh

    def accept(self, reply: Message, run_id: int) -> str | None:
        """Map the reply's node to the account it proves; the account, or None (and an observer event)."""
        node = int(reply.metadata.src_node_id)
        reason = None
        if reply.has_error():
            reason = f"error reply: {reply.error.reason}"
        else:
            record = reply.content.config_records.get(PARATRAIN)
            account, scheme, signature = (record.get(k) for k in ("account", "scheme", "signature")) \
                if record is not None else (None, None, None)
            if not (isinstance(account, str) and isinstance(scheme, str) and isinstance(signature, bytes)):
                reason = "no signed identity (account, scheme, signature)"
            elif (key := _public_key(account)) is None or key not in self.task.clients:
                reason = f"{account[:64]!r} is not a joined client of task {self.task.task_id}"
            elif not fl.verify_identity(account, scheme, signature, self.task.task_id, node, run_id):
                reason = "the identity signature is not the account's over (task, node, run)"
            else:
                old = self._node_of.get(key)
                if old is not None and old != node:
                    self._account_of.pop(old, None)
                self._node_of[key], self._account_of[node] = node, account
                return account
        log.info("task %d: node %d not identified: %s", self.task.task_id, node, reason)
        self._notify("identity-refused", task_id=self.task.task_id, node_id=node, reason=reason)
        return None


def _public_key(account: str) -> bytes | None:
    try:
        return fl.account_public_key(account)
    except ValueError:
        return None


class ForwardingGrid(Grid):
    """A Grid that hands every call to the grid it wraps: the wrappers below (and SecAggGuardGrid) override
    only the calls they change."""

    grid: Grid

    def get_node_ids(self) -> Iterable[int]:
        return self.grid.get_node_ids()

    def set_run(self, run: Run) -> None:
        self.grid.set_run(run)

    @property
    def run(self) -> Run:
        return self.grid.run

    def create_message(self, content: RecordDict, message_type: str, dst_node_id: int, group_id: str,
                       ttl: float | None = None) -> Message:
        return self.grid.create_message(content, message_type, dst_node_id, group_id, ttl)

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        return self.grid.push_messages(messages)

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        return self.grid.pull_messages(message_ids)

    def send_and_receive(self, messages: Iterable[Message], *, timeout: float | None = None) -> Iterable[Message]:
        return self.grid.send_and_receive(messages, timeout=timeout)


class JoinedGrid(ForwardingGrid):
    """The run's grid as Flower's sampling should see it: only nodes identified as joined clients.

    Flower's `sample_nodes` waits (polling `get_node_ids` every second) for as long as too few nodes are
    connected; past `give_up_at` (monotonic seconds) this grid raises DeadlineNear instead, so a round that
    cannot gather its minimum ends the run rather than blocking it forever."""

    def __init__(self, grid: Grid, identities: IdentityBook, *, min_nodes: int = 0,
                 give_up_at: float | None = None) -> None:
        self.grid, self.identities, self.min_nodes, self.give_up_at = grid, identities, min_nodes, give_up_at

    def get_node_ids(self) -> list[int]:
        self.identities.refresh(self.grid)
        nodes = self.identities.joined_nodes(self.grid.get_node_ids())
        if len(nodes) < self.min_nodes and self.give_up_at is not None \
                and self.identities.clock() >= self.give_up_at:
            raise DeadlineNear(f"{len(nodes)} joined clients identified, the round needs {self.min_nodes}")
        return nodes



def make_rule(rule: RuleSpec, *, min_clients: int, fraction: float) -> FedAvg:
    """Flower's strategy for a rule: sampling `fraction` of the identified nodes, never fewer than
    `min_clients`; no federated evaluation (validators measure on the holdout)."""
    common: dict[str, Any] = {"fraction_train": fraction, "fraction_evaluate": 0.0, "min_train_nodes": min_clients,
                              "min_evaluate_nodes": 0, "min_available_nodes": min_clients}
    if rule.name == "fedavg":
        return FedAvg(**common)
    if rule.name == "fedmedian":
        return FedMedian(**common)
    if rule.name == "fedtrimmedavg":
        return FedTrimmedAvg(beta=rule.beta_fraction, **common)
    if rule.name == "krum":
        return Krum(num_malicious_nodes=rule.num_malicious, **common)
    if rule.name == "multikrum":
        return MultiKrum(num_malicious_nodes=rule.num_malicious, num_nodes_to_select=rule.num_to_select, **common)
    raise ValueError(f"no Flower strategy for rule {rule.text!r}")


def _finite_metrics(metrics: MetricRecord | None) -> dict[str, float]:
    """The round's scalar training metrics that are finite numbers (what a round document may hold)."""
    out: dict[str, float] = {}
    for key, value in (metrics or {}).items():
        if isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value) \
                and 0 < len(key) <= 64 and len(out) < 64:
            out[key] = float(value)
    return out


class ChainStrategy(Strategy, Observable):
    """Flower's rule `inner`, with the chain's checks before it and a committed round after it."""

    def __init__(self, inner: Strategy, *, task: FlTaskView, committer: RoundCommitter, store: ArtifactStore,
                 identities: IdentityBook, first_round: int, node_wait_s: float = 600.0,
                 gate: Callable[[int], None] | None = None) -> None:
        """`gate(round)` runs before a round is trained: it returns once the chain can take that round, or
        raises (RoundsVoided ends the pass), so no round is trained that could not be committed."""
        self.inner, self.task, self.committer, self.store = inner, task, committer, store
        self.identities, self.next_round, self.node_wait_s, self.gate = identities, first_round, node_wait_s, gate
        self._base: dict[str, np.ndarray] = {}
        self._base_hash = b""
        self._started = 0.0
        self._run_id: int | None = None

    # Flower's Strategy -------------------------------------------------------------------------
    def summary(self) -> None:
        log.info("ChainStrategy for task %d (rule %s), next chain round %d of %d", self.task.task_id,
                 self.task.rule, self.next_round, self.task.rounds)
        self.inner.summary()

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                        grid: Grid) -> Iterable[Message]:
        if self.next_round > self.task.rounds:
            return []
        if self.gate is not None:
            self.gate(self.next_round)
        self._started = time.monotonic()
        self._base = {name: array.numpy() for name, array in arrays.items()}
        base_bytes = model_bytes(self._base)
        self._base_hash = bytes.fromhex(self.store.put(base_bytes))  # the judge fetches the base from the store
        round_config = ConfigRecord(dict(config))
        round_config[TASK_ID] = self.task.task_id
        round_config[ROUND] = self.next_round
        round_config[BASE_HASH] = self._base_hash
        joined = JoinedGrid(grid, self.identities, min_nodes=self.task.min_clients,
                            give_up_at=self.identities.clock() + self.node_wait_s)
        messages = list(self.inner.configure_train(server_round, arrays, round_config, joined))
        self._notify("round-started", task_id=self.task.task_id, round=self.next_round,
                     nodes=[m.metadata.dst_node_id for m in messages])
        return messages

    def aggregate_train(self, server_round: int,
                        replies: Iterable[Message]) -> tuple[ArrayRecord | None, MetricRecord | None]:
        round_ = self.next_round
        if round_ > self.task.rounds:
            return None, None
        accepted, refused = self._screen(list(replies))
        for refusal in refused:
            log.warning("task %d round %d: refused node %d (%s): %s", self.task.task_id, round_, refusal.node_id,
                        refusal.client, refusal.reason)
            self._notify("refused", task_id=self.task.task_id, round=round_, node_id=refusal.node_id,
                         client=refusal.client, reason=refusal.reason)
        accepted.sort(key=lambda a: a.entry.public_key)
        if len(accepted) < self.task.min_clients:
            self._notify("round-skipped", task_id=self.task.task_id, round=round_, accepted=len(accepted),
                         refused=len(refused))
            return None, None
        stored_at = time.monotonic()
        for a in accepted:  # before the rule runs: FedMedian and FedTrimmedAvg pop the arrays from the replies
            self.store.put(update_bytes(a.arrays))
        _keep_common_metrics([a.reply for a in accepted])
        central = self.task.central
        claim = central.claim(round_) if central is not None else None   # before the release: it may be refused
        over = above_cap(claim, central.terms) if claim is not None else None
        if over is not None:
            raise CentralDpError(f"task {self.task.task_id}: releasing round {round_} would go above each "
                                 f"client's cap ({over}); nothing is released")
        release = begin_release(central, self.inner, [a.reply.content.metric_records[METRICS] for a in accepted],
                                NUM_EXAMPLES) if central is not None else None
        arrays, metrics = self.inner.aggregate_train(server_round, [a.reply for a in accepted])
        if arrays is None:
            self._notify("round-skipped", task_id=self.task.task_id, round=round_, accepted=len(accepted),
                         refused=len(refused))
            return None, None
        global_hash = bytes.fromhex(self.store.put(model_bytes({k: v.numpy() for k, v in arrays.items()})))
        entries = sorted_entries([a.entry for a in accepted])
        noise = release.record(list(arrays.keys())) if release is not None else None
        document = self.round_document(round_, global_hash, entries, refused, metrics, noise)
        doc_digest = self.store.put(document.canonical_bytes())
        commit = RoundCommit(self.task.task_id, round_, self._base_hash, global_hash, bytes.fromhex(doc_digest),
                             self.store.uri(doc_digest), entries, central_claim=claim)
        committing = time.monotonic()
        try:
            receipt = self.committer.commit(commit)
        except CommitRefused as exc:
            self._notify("commit-refused", task_id=self.task.task_id, round=round_, error=exc.error,
                         detail=exc.detail)
            raise
        done = time.monotonic()
        self.next_round += 1
        self._notify("round-committed", task_id=self.task.task_id, round=round_,
                     global_model_hash=global_hash.hex(), round_doc_hash=doc_digest,
                     participants=[e.account for e in entries], refused=len(refused),
                     block_number=receipt.block_number, round_s=done - self._started,
                     store_s=committing - stored_at, commit_s=done - committing, metrics=_finite_metrics(metrics))
        return arrays, metrics

    def configure_evaluate(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                           grid: Grid) -> Iterable[Message]:
        return self.inner.configure_evaluate(server_round, arrays, config, grid)

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]) -> MetricRecord | None:
        return self.inner.aggregate_evaluate(server_round, replies)

    # The round document --------------------------------------------------------------------------
    def round_document(self, round_: int, global_hash: bytes, entries: Iterable[SignedEntry],
                       refused: Iterable[Refusal], metrics: MetricRecord | None,
                       noise: CentralNoise | None = None) -> RoundDocument:
        """The fl-round document (workers.fl.spec), named by its hash on chain (with a central-DP round's noise
        record: the seed validators recompute the noise from)."""
        return round_document(
            task_id=self.task.task_id, round=round_, rule=self.task.rule, base_model_hash=self._base_hash,
            global_model_hash=global_hash,
            participants=[Participant(e.account, e.update_hash.hex(), e.num_examples, e.scheme.lower(),
                                      e.signature.hex()) for e in entries],
            refused=list(refused), train_metrics=_finite_metrics(metrics), flower_version=flwr.__version__,
            run_id=self._run_id or 0, central_dp=noise)

    # Screening ------------------------------------------------------------------------------------
    def _screen(self, replies: list[Message]) -> tuple[list[_Accepted], list[Refusal]]:
        accepted: list[_Accepted] = []
        refused: list[Refusal] = []
        seen: set[bytes] = set()
        for reply in replies:
            node = int(reply.metadata.src_node_id)
            self._run_id = int(reply.metadata.run_id)
            account = self.identities.account_of(node)
            try:
                result = self._check(reply, node, account, seen)
            except _Refused as exc:
                client = exc.client if exc.client is not None else account
                refused.append(Refusal(node, client if client and _public_key(client) else None,
                                       exc.reason[:MAX_REASON_LEN]))
                continue
            seen.add(result.entry.public_key)
            accepted.append(result)
        return accepted, refused

    def _check(self, reply: Message, node: int, identity: str | None, seen: set[bytes]) -> _Accepted:
        if reply.has_error():
            raise _Refused(f"error reply: {reply.error.reason}")
        if identity is None:
            raise _Refused(f"node {node} has not proven a joined client's identity")
        content = reply.content
        record = content.config_records.get(PARATRAIN)
        if record is None or any(k not in record for k in COMMITMENT_KEYS):
            raise _Refused(f"no signed update commitment ({', '.join(COMMITMENT_KEYS)})")
        account, digest, examples = record["account"], record["update-hash"], record["num-examples"]
        scheme, signature = record["scheme"], record["signature"]
        if not (isinstance(account, str) and isinstance(digest, bytes) and len(digest) == 32
                and isinstance(scheme, str) and isinstance(signature, bytes)
                and isinstance(examples, int) and not isinstance(examples, bool)):
            raise _Refused("the update commitment's fields have the wrong types")
        key = _public_key(account)
        if key is None or key not in self.task.clients:
            raise _Refused(f"{account[:64]!r} is not a joined client of task {self.task.task_id}", account)
        if account != identity:
            raise _Refused(f"the commitment names {account}, the node proved {identity}")
        if key in seen:
            raise _Refused("a second update of the same account in this round")
        if set(content.array_records) != {ARRAYS} or set(content.metric_records) != {METRICS}:
            raise _Refused(f"the reply must carry exactly the records {ARRAYS!r} and {METRICS!r}")
        metric_examples = content.metric_records[METRICS].get(NUM_EXAMPLES)
        if metric_examples != examples or isinstance(metric_examples, bool):
            raise _Refused(f"the commitment's num-examples ({examples}) is not the reply's ({metric_examples!r})")
        if not 0 < examples <= self.task.clients[key]:
            raise _Refused(f"{examples} examples, the client committed {self.task.clients[key]} when it joined")
        record_arrays = content.array_records[ARRAYS]
        limit = self.task.max_update_bytes
        if record_arrays.count_bytes() > limit + ARRAY_OVERHEAD_BYTES * max(len(record_arrays), 1):
            raise _Refused(f"the update is larger than the {limit} bytes allowed")
        try:
            arrays = {name: array.numpy() for name, array in record_arrays.items()}
        except Exception as exc:  # noqa: BLE001 - anything np.load refuses is a malformed update
            raise _Refused(f"the update's arrays cannot be decoded: {type(exc).__name__}") from None
        problem = check_update(arrays, self._base, limit)
        if problem is not None:
            raise _Refused(problem)
        if all(np.array_equal(arrays[name], self._base[name]) for name in arrays):
            # a free rider: nothing to aggregate, and a distance-based rule (Krum) would pick it every round
            raise _Refused("the update is the global model it was sent, unchanged (no local training)")
        if update_hash(arrays) != digest:
            raise _Refused("the update hash is not the hash of the arrays sent")
        if self.task.central is not None and self.task.central.clipped_by == "client":
            unclipped = over_the_norm(self._base, arrays, self.task.central.clipping_norm)
            if unclipped is not None:   # Flower's client-side wrapper trusts the clients: this check does not
                raise _Refused(f"{unclipped} (central DP, clipped by the client)", account)
        claim = None
        if self.task.private:
            claim = claim_of(record)
            if claim is None:
                raise _Refused("a private task's update carries no DP claim")
            commitment = fl.UpdateCommitment.of(self.task.task_id, self.next_round, self._base_hash, digest, examples)
            if not verify_private_update(account, scheme, signature, commitment, claim):
                raise _Refused("the signature is not the account's over this task, round, base model, update and "
                               "DP claim")
        elif not fl.verify_update(account, scheme, signature, self.task.task_id, self.next_round, self._base_hash,
                                  digest, examples):
            raise _Refused("the signature is not the account's over this task, round, base model and update")
        return _Accepted(reply, SignedEntry(account, digest, examples, scheme, signature, claim), arrays)


def _keep_common_metrics(replies: list[Message]) -> None:
    """Flower's rules refuse replies whose MetricRecords differ in keys: keep the numeric keys all share."""
    records = [r.content.metric_records[METRICS] for r in replies]
    common = set.intersection(*(set(m) for m in records)) if records else set()
    for m in records:
        for key in list(m):
            if key not in common or isinstance(m[key], list):
                del m[key]


class _Refused(Exception):
    def __init__(self, reason: str, client: str | None = None) -> None:
        super().__init__(reason)
        self.reason, self.client = reason, client


__all__ = ["ChainStrategy", "DeadlineNear", "FlTaskView", "IdentityBook", "JoinedGrid", "RoundsVoided", "make_rule"]
