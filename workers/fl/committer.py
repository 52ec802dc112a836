"""How a finished round becomes a chain fact: `FederatedTasks.commit_round`, submitted and waited for.

The strategy hands a `RoundCommit` to a `RoundCommitter` and goes on only once the round is in a block, so
the next round's base hash is the one the pallet will check (`BaseModelMismatch`) and an aggregator that is
refused (`NotAggregator` after its lease lapsed, `RoundOutOfOrder`...) stops instead of training rounds
nobody will pay for. `ChainCommitter` is the one implementation; it is used in-process by simulation runs
and inside the `flwr-serverapp` process in deployment (the key reaches it through the environment the worker
daemon sets, workers/fl/child_key.py).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from substrateinterface import Keypair

from runtime_bindings import Chain, fl
from runtime_bindings.errors import BindingsError, DispatchError
from runtime_bindings.fl_private import private_update_leaf, signed_private_update
from runtime_bindings.generated.federated_tasks import CommitCentralRoundCall, CommitPrivateRoundCall, CommitRoundCall
from runtime_bindings.values import H256
from workers.fl.dp_record import to_chain
from workers.privacy.accounting import DpClaim


@dataclass(frozen=True)
class SignedEntry:
    """One participant as commit_round takes it: the client's account and what it signed for the round."""

    account: str
    update_hash: bytes
    num_examples: int
    scheme: str
    signature: bytes
    claim: Any = None      # a private task's cumulative DP claim (runtime_bindings' DpClaim), signed with it

    @property
    def public_key(self) -> bytes:
        return fl.account_public_key(self.account)


@dataclass(frozen=True)
class RoundCommit:
    """Everything commit_round needs; `updates` in the pallet's order (ascending account bytes)."""

    task_id: int
    round: int
    base_model_hash: bytes
    global_model_hash: bytes
    round_doc_hash: bytes
    artifact_uri: str
    updates: tuple[SignedEntry, ...]
    central_claim: DpClaim | None = None   # a central-DP task's cumulative claim for rounds 1..round

    def __post_init__(self) -> None:
        keys = [u.public_key for u in self.updates]
        if keys != sorted(set(keys)):
            raise ValueError("a round's updates must be sorted by account with no account twice")

    @property
    def private(self) -> bool:
        return any(u.claim is not None for u in self.updates)

    def update_root(self) -> bytes:
        """The root the pallet computes from these updates (what RoundCommitted reports)."""
        commitments = [(u, fl.UpdateCommitment(self.task_id, self.round, self.base_model_hash, u.update_hash,
                                               u.num_examples)) for u in self.updates]
        if self.private:
            return fl.update_root([private_update_leaf(u.account, c, u.claim) for u, c in commitments])
        return fl.update_root([fl.update_leaf(u.account, c) for u, c in commitments])


@dataclass(frozen=True)
class CommitReceipt:
    """Where the round landed."""

    extrinsic_hash: str
    block_number: int | None
    block_hash: str | None


class CommitRefused(Exception):
    """The chain did not take the round: `error` is the module error (``FederatedTasks.NotAggregator``) or
    why the submission failed. The run must stop; nothing of the round is on chain."""

    def __init__(self, round_: int, error: str, detail: str = "") -> None:
        super().__init__(f"round {round_} not committed: {error}" + (f" ({detail})" if detail else ""))
        self.round, self.error, self.detail = round_, error, detail


class RoundCommitter(Protocol):
    def commit(self, commit: RoundCommit) -> CommitReceipt:
        """Return once the round is in a block; CommitRefused otherwise."""


def commit_call(commit: RoundCommit) -> Any:
    """The commit_round call of a round (commit_private_round when its updates carry DP claims,
    commit_central_round with the aggregator's claim for a central-DP round)."""
    if commit.central_claim is not None:
        return CommitCentralRoundCall(
            task=commit.task_id, round=commit.round, base_model_hash=H256(commit.base_model_hash),
            global_model_hash=H256(commit.global_model_hash), round_doc_hash=H256(commit.round_doc_hash),
            artifact_uri=commit.artifact_uri.encode("utf-8"),
            updates=[fl.signed_update(u.account, u.update_hash, u.num_examples, u.scheme, u.signature)
                     for u in commit.updates], claim=to_chain(commit.central_claim))
    if commit.private:
        return CommitPrivateRoundCall(
            task=commit.task_id, round=commit.round, base_model_hash=H256(commit.base_model_hash),
            global_model_hash=H256(commit.global_model_hash), round_doc_hash=H256(commit.round_doc_hash),
            artifact_uri=commit.artifact_uri.encode("utf-8"),
            updates=[signed_private_update(u.account, u.update_hash, u.num_examples, u.claim, u.scheme, u.signature)
                     for u in commit.updates])
    return CommitRoundCall(
        task=commit.task_id, round=commit.round, base_model_hash=H256(commit.base_model_hash),
        global_model_hash=H256(commit.global_model_hash), round_doc_hash=H256(commit.round_doc_hash),
        artifact_uri=commit.artifact_uri.encode("utf-8"),
        updates=[fl.signed_update(u.account, u.update_hash, u.num_examples, u.scheme, u.signature)
                 for u in commit.updates])


class ChainCommitter:
    """Commits rounds as `keypair` (the task's aggregator) through `chain`, waiting for inclusion."""

    def __init__(self, chain: Chain, keypair: Keypair, *, timeout: float | None = None) -> None:
        self.chain, self.keypair, self.timeout = chain, keypair, timeout

    def commit(self, commit: RoundCommit) -> CommitReceipt:
        try:
            receipt = self.chain.submit(commit_call(commit), self.keypair, wait="inclusion", timeout=self.timeout)
        except DispatchError as exc:
            raise CommitRefused(commit.round, exc.error_name, str(exc)) from exc
        except BindingsError as exc:
            raise CommitRefused(commit.round, type(exc).__name__, str(exc)) from exc
        return CommitReceipt(receipt.extrinsic_hash, receipt.block_number, receipt.block_hash)


    def report_refused(self, task_id: int, round_: int, refused: Sequence[tuple[str, bytes]]) -> None:
        """Name on chain the clients a SecAgg round's guard dropped for a malformed reply they signed, each with
        the hash of that evidence (CommitRefused when the chain does not take the report)."""
        entries = [{"client": "0x" + fl.account_public_key(account).hex(), "evidence_hash": "0x" + digest.hex()}
                   for account, digest in refused]
        try:
            self.chain.federated_tasks.report_refused(self.keypair, task_id, round_, entries, timeout=self.timeout)
        except DispatchError as exc:
            raise CommitRefused(round_, exc.error_name, str(exc)) from exc
        except BindingsError as exc:
            raise CommitRefused(round_, type(exc).__name__, str(exc)) from exc


def sorted_entries(entries: Sequence[SignedEntry]) -> tuple[SignedEntry, ...]:
    """The pallet's participant order: ascending account bytes."""
    return tuple(sorted(entries, key=lambda e: e.public_key))


__all__ = ["ChainCommitter", "CommitReceipt", "CommitRefused", "RoundCommit", "RoundCommitter", "SignedEntry",
           "commit_call", "sorted_entries"]
