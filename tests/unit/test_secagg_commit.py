"""workers.fl.secagg_commit: SecAggCommitter turns a finished SecAgg+ round into one RoundCommit (its models and
round document in the store, every participant's signed commitment in the pallet's order, the guard's refusals of
that round), and refuses a round with a participant whose signature does not verify. A recording committer
stands in for the chain."""
from __future__ import annotations

import os

import numpy as np
import pytest
from substrateinterface import Keypair

from runtime_bindings import fl as bfl
from workers.artifacts import ArtifactStore
from workers.fl.arrays import model_bytes, model_hash
from workers.fl.committer import CommitReceipt, RoundCommit
from workers.fl.secagg_app import Participant, SecAggRefusal, SecAggRound
from workers.fl.secagg_commit import SecAggCommitError, SecAggCommitter
from workers.fl.spec import Refusal, decode_round_document
from workers.hashing import blake2_256_hex

TASK, ROUND = 9, 2
KEYS = [Keypair.create_from_uri(f"//CommitClient{i}") for i in range(4)]
EXAMPLES = [25, 31, 47, 12]
NODES = [1001, 77, 4242, 5]


class RecordingCommitter:
    """A RoundCommitter that keeps what it is handed."""

    def __init__(self) -> None:
        self.commits: list[RoundCommit] = []

    def commit(self, commit: RoundCommit) -> CommitReceipt:
        self.commits.append(commit)
        return CommitReceipt("0x" + "ab" * 32, 123, "0x" + "cd" * 32)


def _models() -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    rng = np.random.default_rng(4)
    base = {"b": rng.standard_normal(8).astype(np.float32), "w": rng.standard_normal((8, 4)).astype(np.float32)}
    aggregate = {k: (v + 0.01).astype(np.float32) for k, v in base.items()}
    return base, aggregate


def _participant(i: int, base: dict[str, np.ndarray], *, signed_examples: int | None = None,
                 account: str | None = None) -> Participant:
    digest = os.urandom(32)   # a salted commitment is 32 opaque bytes to the aggregator
    signed = bfl.sign_update(KEYS[i], TASK, ROUND, model_hash(base), digest,
                             EXAMPLES[i] if signed_examples is None else signed_examples)
    return Participant(NODES[i], EXAMPLES[i], digest, 1.5, KEYS[i].ss58_address if account is None else account,
                       signed.scheme, signed.signature)


def _round(participants: list[Participant], base: dict[str, np.ndarray],
           aggregate: dict[str, np.ndarray]) -> SecAggRound:
    return SecAggRound(ROUND, base, aggregate, tuple(sorted(participants, key=lambda p: p.node_id)), 1, 2.5)


@pytest.fixture()
def setup(tmp_path):
    store, recorder, seen = ArtifactStore(tmp_path), RecordingCommitter(), []
    committer = SecAggCommitter(task_id=TASK, rule="fedavg", store=store, committer=recorder,
                                on_commit=lambda done, receipt: seen.append((done, receipt)))
    return store, recorder, seen, committer


def test_the_round_is_committed_in_the_pallets_order_with_its_objects_stored(setup) -> None:
    store, recorder, seen, committer = setup
    base, aggregate = _models()
    participants = [_participant(i, base) for i in range(4)]
    done = _round(participants, base, aggregate)
    committer.refused(SecAggRefusal(ROUND, 31, "share_keys", "a bad ciphertext"))
    committer.refused(SecAggRefusal(ROUND + 1, 32, "setup", "not this round's"))
    committer.refused(SecAggRefusal(ROUND - 1, 33, "setup", "nor this one"))
    committer.refused(SecAggRefusal(ROUND, 34, "unmask", "a share too many"))
    committer(done)

    assert len(recorder.commits) == 1
    commit = recorder.commits[0]
    assert (commit.task_id, commit.round) == (TASK, ROUND)
    by_key = sorted(participants, key=lambda p: bytes(KEYS[NODES.index(p.node_id)].public_key))
    assert [u.account for u in commit.updates] == [p.account for p in by_key]
    assert [u.public_key for u in commit.updates] == sorted(u.public_key for u in commit.updates)
    for update, p in zip(commit.updates, by_key, strict=True):
        assert (update.update_hash, update.num_examples, update.signature) == (p.commitment, p.num_examples,
                                                                                p.signature)
        assert update.scheme == p.scheme
        assert bfl.verify_update(update.account, update.scheme, update.signature, TASK, ROUND,
                                 commit.base_model_hash, update.update_hash, update.num_examples)

    assert commit.base_model_hash == model_hash(base)
    assert commit.global_model_hash == model_hash(aggregate)
    assert store.get(commit.base_model_hash.hex()) == model_bytes(base)
    assert store.get(commit.global_model_hash.hex()) == model_bytes(aggregate)
    raw = store.get(commit.round_doc_hash.hex())
    assert blake2_256_hex(raw) == commit.round_doc_hash.hex()
    assert commit.artifact_uri == store.uri(commit.round_doc_hash.hex())

    doc = decode_round_document(raw)
    assert (doc.task_id, doc.round, doc.rule) == (TASK, ROUND, "fedavg")
    assert (doc.base_model_hash, doc.global_model_hash) == (model_hash(base).hex(), model_hash(aggregate).hex())
    assert [(p.client, p.update_hash, p.num_examples, p.scheme, p.signature) for p in doc.participants] == [
        (u.account, u.update_hash.hex(), u.num_examples, u.scheme.lower(), u.signature.hex()) for u in commit.updates]
    assert doc.refused == (Refusal(31, None, "share_keys: a bad ciphertext"),
                           Refusal(34, None, "unmask: a share too many"))
    assert doc.train_metrics == {"dropouts": 1.0, "round_s": 2.5}

    assert len(seen) == 1 and seen[0][0] is done and seen[0][1].block_number == 123


def test_the_refusals_of_a_committed_round_are_not_carried_to_the_next(setup) -> None:
    store, recorder, _, committer = setup
    base, aggregate = _models()
    committer.refused(SecAggRefusal(ROUND, 31, "setup", "first"))
    committer.refused(SecAggRefusal(ROUND + 1, 32, "setup", "second"))
    committer(_round([_participant(i, base) for i in range(3)], base, aggregate))
    first = decode_round_document(store.get(recorder.commits[0].round_doc_hash.hex()))
    assert [r.node_id for r in first.refused] == [31]
    committer(_round([_participant(i, base) for i in range(3)], base, aggregate))   # the same round again
    again = decode_round_document(store.get(recorder.commits[1].round_doc_hash.hex()))
    assert again.refused == ()   # its refusals were spent on the first commit


@pytest.mark.parametrize("fault", ["another count", "empty account", "another account", "another base",
                                   "no signature"])
def test_a_participant_without_a_valid_signature_makes_the_round_uncommittable(setup, tmp_path, fault: str) -> None:
    _, recorder, seen, committer = setup
    base, aggregate = _models()
    participants = [_participant(i, base) for i in range(3)]
    if fault == "another count":
        bad = _participant(3, base, signed_examples=EXAMPLES[3] + 1)
    elif fault == "empty account":
        bad = _participant(3, base, account="")
    elif fault == "another account":
        bad = _participant(3, base, account=KEYS[0].ss58_address)
    elif fault == "another base":
        bad = _participant(3, aggregate)
    else:
        good = _participant(3, base)
        bad = Participant(good.node_id, good.num_examples, good.commitment, good.update_norm, good.account, "", b"")
    with pytest.raises(SecAggCommitError, match=str(NODES[3])):
        committer(_round([*participants, bad], base, aggregate))
    assert recorder.commits == [] and seen == []
    stored = {p.name for p in tmp_path.rglob("*") if p.is_file()}
    # at most the models (a shared account is refused before anything is stored), never a round document
    assert stored <= {model_hash(base).hex(), model_hash(aggregate).hex()}


def test_only_signed_refusals_of_non_participants_are_stored_and_reported_once_per_account(tmp_path) -> None:
    store, recorder, reports = ArtifactStore(tmp_path), RecordingCommitter(), []
    committer = SecAggCommitter(task_id=TASK, rule="fedavg", store=store, committer=recorder,
                                report=lambda task, round_, refused: reports.append((task, round_, list(refused))))
    base, aggregate = _models()
    stranger, other = (Keypair.create_from_uri(f"//CommitRefused{i}") for i in range(2))
    committer.refused(SecAggRefusal(ROUND, 40, "share_keys", "cut", stranger.ss58_address, b"evidence one"))
    committer.refused(SecAggRefusal(ROUND, 40, "unmask", "again", stranger.ss58_address, b"evidence two"))
    committer.refused(SecAggRefusal(ROUND, 41, "setup", "unsigned"))
    committer.refused(SecAggRefusal(ROUND, 42, "share_keys", "cut", other.ss58_address, b"evidence three"))
    committer.refused(SecAggRefusal(ROUND, NODES[0], "unmask", "a participant", KEYS[0].ss58_address, b"no"))
    committer(_round([_participant(i, base) for i in range(3)], base, aggregate))

    ((task, round_, refused),) = reports
    assert (task, round_) == (TASK, ROUND)
    expected = sorted([(stranger.ss58_address, b"evidence one"), (other.ss58_address, b"evidence three")],
                      key=lambda e: Keypair(ss58_address=e[0]).public_key)
    assert [(a, store.get(d.hex())) for a, d in refused] == expected
    doc = decode_round_document(store.get(recorder.commits[0].round_doc_hash.hex()))
    assert [r.client for r in doc.refused] == [stranger.ss58_address, stranger.ss58_address, None,
                                               other.ss58_address, KEYS[0].ss58_address]


def test_a_round_with_no_signed_refusal_reports_nothing(tmp_path) -> None:
    reports: list = []
    committer = SecAggCommitter(task_id=TASK, rule="fedavg", store=ArtifactStore(tmp_path),
                                committer=RecordingCommitter(), report=lambda *a: reports.append(a))
    base, aggregate = _models()
    committer.refused(SecAggRefusal(ROUND, 41, "setup", "unsigned"))
    committer(_round([_participant(i, base) for i in range(3)], base, aggregate))
    assert reports == []
