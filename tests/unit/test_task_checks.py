"""What the worker checks about a task before claiming it (workers.task_checks), on a local store and a task
shaped like the chain's copy, without a chain or an orchestrator: the chain's hashes, recipe, status and
deadline decide; the assignment's TaskView only says where the spec document lies."""
from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from runtime_bindings.generated.types import TaskStatus
from runtime_bindings.values import Bytes
from workers import ArtifactStore, DatasetRef, Evaluation, Limits, TaskSpec, add_dataset
from workers.errors import TaskRefused
from workers.task_checks import ClaimPolicy, check_task, claimed_by, fetch_dataset

ME = "5Worker"


@pytest.fixture()
def requester(tmp_path) -> dict[str, Any]:
    store = ArtifactStore(tmp_path / "requester")
    digest, uri = add_dataset("digits", store)
    spec = TaskSpec(recipe="digits_mlp", dataset=DatasetRef(digest, uri), evaluation=Evaluation("accuracy", 0.8),
                    hyperparameters={"epochs": 1}, seed=1, checkpoint_every=22,
                    limits=Limits(timeout_s=60, memory_mb=512))
    spec_hash = store.put(spec.canonical_bytes())
    return {"store": store, "spec": spec, "spec_hash": spec_hash, "uri": store.uri(spec_hash),
            "worker": tmp_path / "worker"}


def chain_task(r: dict[str, Any], *, status: Any = TaskStatus.Open, deadline: int = 100, recipe: str = "digits_mlp",
               dataset_hash: str | None = None, spec_uri: str | None = None) -> Any:
    """The fields of TaskBounties.Tasks the checks read (H256 values answer .hex() as bytes do)."""
    spec = SimpleNamespace(spec_hash=bytes.fromhex(r["spec_hash"]), spec_uri=Bytes((spec_uri or r["uri"]).encode()),
                           dataset_hash=bytes.fromhex(dataset_hash or r["spec"].dataset.hash),
                           recipe=Bytes(recipe.encode()))
    return SimpleNamespace(spec=spec, status=status, deadline=deadline)


def check(r: dict[str, Any], task: Any, *, view: Any = None, best: int = 10, **policy: Any) -> Any:
    """check_task from a worker's own (empty) store that trusts the requester's."""
    from workers.uri_policy import UriPolicy

    store = ArtifactStore(r["worker"], policy=UriPolicy((r["store"].root,)))
    return check_task(task, view=view, store=store, account=ME, best_number=lambda: best,
                      policy=ClaimPolicy(**policy))


def test_an_open_task_whose_spec_matches_the_chain_passes(requester):
    spec = check(requester, chain_task(requester))
    assert spec == requester["spec"]


def test_the_spec_document_is_read_where_the_assignment_says(requester, tmp_path):
    """The chain's URI is unreachable here; the TaskView's names the same bytes (content-addressed)."""
    task = chain_task(requester, spec_uri="file:///nowhere/spec.json")
    with pytest.raises(TaskRefused, match="cannot fetch the spec document"):
        check(requester, task)
    view = SimpleNamespace(task_id=1, spec_uri=requester["uri"], spec_hash=bytes.fromhex(requester["spec_hash"]),
                           dataset_hash=bytes.fromhex(requester["spec"].dataset.hash), recipe="digits_mlp")
    assert check(requester, task, view=view) == requester["spec"]


def test_a_view_that_disagrees_with_the_chain_changes_nothing_the_chain_binds(requester, caplog):
    lying = SimpleNamespace(task_id=1, spec_uri="", spec_hash=b"\x00" * 32, dataset_hash=b"\x00" * 32,
                            recipe="other")
    assert check(requester, chain_task(requester), view=lying) == requester["spec"]
    assert "differs from the chain's" in caplog.text


@pytest.mark.parametrize("task_kw, message", [
    ({"recipe": "breast_cancer_logreg"}, "differs from the on-chain recipe"),
    ({"dataset_hash": "11" * 32}, "dataset hash mismatch"),
    ({"deadline": 15}, "only 5 blocks are left before its deadline"),
    ({"status": TaskStatus.Claimed("5Someone", 50)}, "the task is Claimed on chain"),
    ({"status": TaskStatus.Expired}, "the task is Expired on chain"),
])
def test_what_the_chain_says_refuses_the_task(requester, task_kw, message):
    with pytest.raises(TaskRefused, match=message):
        check(requester, chain_task(requester, **task_kw))


def test_a_task_this_worker_holds_is_resumed_even_close_to_its_deadline(requester):
    task = chain_task(requester, status=TaskStatus.Claimed(ME, 20), deadline=12)
    assert check(requester, task) == requester["spec"]
    assert claimed_by(task.status, ME) and not claimed_by(task.status, "5Other") and not claimed_by(None, ME)


def test_the_claim_margin_follows_the_deadline_guard(requester):
    task = chain_task(requester, deadline=18)  # 8 blocks left
    assert check(requester, task, min_blocks_to_claim=6, deadline_margin_blocks=3)
    with pytest.raises(TaskRefused, match="only 8 blocks"):
        check(requester, task, min_blocks_to_claim=6, deadline_margin_blocks=8)


def test_a_spec_document_that_is_not_the_on_chain_hash_is_refused(requester):
    other = requester["store"].put(b'{"not": "the spec"}')
    task = chain_task(requester, spec_uri=requester["store"].uri(other))
    with pytest.raises(TaskRefused, match="does not match the on-chain spec_hash"):
        check(requester, task)


def test_the_data_set_is_fetched_into_the_workers_store_by_its_hash(requester, tmp_path):
    from workers.uri_policy import UriPolicy

    mine = ArtifactStore(tmp_path / "worker", policy=UriPolicy((requester["store"].root,)))
    fetch_dataset(mine, requester["spec"])
    assert mine.exists(requester["spec"].dataset.hash)
    wrong = SimpleNamespace(dataset=DatasetRef("22" * 32, requester["spec"].dataset.uri))
    with pytest.raises(TaskRefused, match="dataset hash mismatch"):
        fetch_dataset(ArtifactStore(tmp_path / "other", policy=UriPolicy((requester["store"].root,))), wrong)
