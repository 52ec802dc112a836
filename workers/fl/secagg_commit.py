"""The aggregator's side of a SecAgg+ round on chain: the round `SecAggStrategy` finished becomes
FederatedTasks.commit_round, as ChainStrategy's rounds do (workers/fl/committer.py).

`SecAggCommitter` is the strategy's `on_round` (and its guard's `on_refusal`). For one round it stores the base
and global models and a round document (workers/fl/spec.py) whose participants are the clients' signed
commitments: under SecAgg a participant's `update_hash` is its salted commitment to its clipped model
(workers/fl/secagg_client.py), the only thing of its update the aggregator holds. The document also lists the
guard's refusals (the node, the stage, the reason), so validators see who was dropped and why. Then the round
is committed with every participant's signature; the pallet checks each one. A refusal that carries the client's
own signed reply (workers/fl/secagg_evidence.py) is stored and reported with `report` (FederatedTasks.
report_refused), which lets validators re-check it and slash the sender.

A participant whose signature does not verify makes the round uncommittable (`SecAggCommitError`): its masked
update is already in the sum, which cannot be taken apart, so committing it would pay an unsigned stranger and
let nobody slash it. Checking the signature in the guard, before the masked vectors are summed, would drop such
a client instead (not built yet; the client would first have to sign in an earlier stage).
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import flwr

from runtime_bindings.fl import UpdateCommitment, account_public_key, verify_update
from runtime_bindings.fl_private import verify_private_update
from workers.artifacts import ArtifactStore
from workers.fl.arrays import model_bytes
from workers.fl.committer import (
    CommitReceipt,
    CommitRefused,
    RoundCommit,
    RoundCommitter,
    SignedEntry,
    sorted_entries,
)
from workers.fl.secagg_app import Participant as SecAggParticipant
from workers.fl.secagg_app import SecAggRefusal, SecAggRound
from workers.fl.spec import MAX_REASON_LEN, MAX_REFUSED, Participant, Refusal, round_document
from workers.observers import Observer

log = logging.getLogger(__name__)


class SecAggCommitError(Exception):
    """A finished SecAgg round that cannot go on chain as it is (a participant's signature does not verify)."""


class SecAggCommitter:
    """Commits each finished SecAgg round of task `task_id` through `committer`, its objects in `store`."""

    def __init__(self, *, task_id: int, rule: str, store: ArtifactStore, committer: RoundCommitter,
                 report: Callable[[int, int, Sequence[tuple[str, bytes]]], None] | None = None,
                 on_commit: Callable[[SecAggRound, CommitReceipt], None] | None = None,
                 observers: Sequence[Observer] = ()) -> None:
        self.task_id, self.rule, self.store, self.committer = task_id, rule, store, committer
        self.report, self.on_commit, self.observers = report, on_commit, tuple(observers)
        self._refusals: list[SecAggRefusal] = []
        self._masked: dict[tuple[int, int], tuple[str, bytes]] = {}   # (round, node) -> signer, reply digest

    def _signed(self, p: SecAggParticipant, round_: int, base_hash: str) -> bool:
        """The participant's signature covers its commitment (and, in a private task, its DP claim): all of a
        round's participants carry a claim, or none."""
        if p.claim is None:
            return verify_update(p.account, p.scheme, p.signature, self.task_id, round_, base_hash, p.commitment,
                                 p.num_examples)
        commitment = UpdateCommitment.of(self.task_id, round_, base_hash, p.commitment, p.num_examples)
        return verify_private_update(p.account, p.scheme, p.signature, commitment, p.claim)

    def refused(self, refusal: SecAggRefusal) -> None:
        """The guard's observer: remembered for the round document of its round."""
        self._refusals.append(refusal)

    def masked(self, round_: int, node_id: int, account: str, digest: bytes) -> None:
        """The guard's observer of each signed masked-vector reply: its digest goes into the round document."""
        self._masked[(round_, node_id)] = (account, digest)

    def _masked_vectors(self, done: SecAggRound) -> dict[str, str]:
        """Each participant's signed masked-vector digest, where the signer is the participant's own account."""
        out = {}
        for p in done.participants:
            signer, digest = self._masked.get((done.round, p.node_id), ("", b""))
            if signer and account_public_key(signer) == account_public_key(p.account):
                out[p.account] = digest.hex()
        return out

    def __call__(self, done: SecAggRound) -> None:
        nodes_of: dict[str, list[int]] = {}
        for p in done.participants:
            nodes_of.setdefault(p.account, []).append(p.node_id)
        shared = {account: nodes for account, nodes in nodes_of.items() if len(nodes) > 1}
        if shared:
            raise SecAggCommitError(f"round {done.round}: node(s) {sorted(n for ns in shared.values() for n in ns)} "
                                    "speak for one account; each one's masked update is in the sum")
        base_hash = self.store.put(model_bytes(done.base))
        global_hash = self.store.put(model_bytes(done.aggregate))
        unsigned = [p for p in done.participants if not p.account or not self._signed(p, done.round, base_hash)]
        if unsigned:
            raise SecAggCommitError(f"round {done.round}: node(s) {[p.node_id for p in unsigned]} sent no valid "
                                    "signature of their commitment; their masked updates are in the sum")
        if len({p.claim is None for p in done.participants}) > 1:
            raise SecAggCommitError(f"round {done.round}: some participants carry a DP claim and some do not")
        entries = sorted_entries([SignedEntry(p.account, p.commitment, p.num_examples, p.scheme, p.signature,
                                              p.claim) for p in done.participants])
        refusals = [r for r in self._refusals if r.round == done.round]
        document = round_document(
            task_id=self.task_id, round=done.round, rule=self.rule, base_model_hash=base_hash,
            global_model_hash=global_hash,
            participants=[Participant(e.account, e.update_hash.hex(), e.num_examples, e.scheme.lower(),
                                      e.signature.hex()) for e in entries],
            refused=[Refusal(r.node_id, r.account, _reason(r)) for r in refusals[:MAX_REFUSED]],
            train_metrics={"dropouts": float(done.dropouts), "round_s": done.round_s},
            flower_version=flwr.__version__, masked_vectors=self._masked_vectors(done))
        doc_hash = self.store.put(document.canonical_bytes())
        receipt = self.committer.commit(RoundCommit(
            task_id=self.task_id, round=done.round, base_model_hash=bytes.fromhex(base_hash),
            global_model_hash=bytes.fromhex(global_hash), round_doc_hash=bytes.fromhex(doc_hash),
            artifact_uri=self.store.uri(doc_hash), updates=entries))
        log.info("secagg round %d of task %d committed in block %s (%d participants, %d dropped)", done.round,
                 self.task_id, receipt.block_number, len(entries), done.dropouts)
        self._refusals = [r for r in self._refusals if r.round != done.round]
        self._masked = {k: v for k, v in self._masked.items() if k[0] != done.round}
        self._report(done.round, refusals, {p.account for p in done.participants})
        detail = {"task_id": self.task_id, "round": done.round, "global_model_hash": global_hash,
                  "round_doc_hash": doc_hash, "participants": [e.account for e in entries],
                  "refused": len(refusals), "dropouts": done.dropouts, "block_number": receipt.block_number,
                  "round_s": done.round_s}
        for observer in self.observers:   # as ChainStrategy's "round-committed" (the journal, the demo)
            observer("round-committed", detail)
        if self.on_commit is not None:
            self.on_commit(done, receipt)


    def _report(self, round_: int, refusals: Sequence[SecAggRefusal], participants: set[str]) -> None:
        """Store each signed malformed reply and name its sender on chain, so validators can re-check it and
        slash it; the round stands whatever becomes of the report."""
        proven: dict[bytes, tuple[str, bytes]] = {}
        for r in refusals:
            if r.account is not None and r.evidence is not None and r.account not in participants:
                proven.setdefault(account_public_key(r.account), (r.account, bytes.fromhex(self.store.put(r.evidence))))
        if not proven or self.report is None:
            return
        try:
            self.report(self.task_id, round_, [proven[key] for key in sorted(proven)])
        except CommitRefused as exc:
            log.warning("secagg round %d of task %d: refusals not reported: %s", round_, self.task_id, exc)
            return
        log.info("secagg round %d of task %d: %d refused client(s) reported with their signed replies", round_,
                 self.task_id, len(proven))


def _reason(refusal: SecAggRefusal) -> str:
    """The refusal as the round document holds it: named by its stage once, within the document's bound (a
    copied key names every node that sent it, which can be long)."""
    text = refusal.reason if refusal.reason.startswith(f"{refusal.stage}:") else f"{refusal.stage}: {refusal.reason}"
    return text if len(text) <= MAX_REASON_LEN else text[:MAX_REASON_LEN - 1] + "…"


__all__ = ["SecAggCommitError", "SecAggCommitter"]
