"""The local market harness (paratrain.local): the one spec -> on-chain TaskSpec mapping, and a market in this
process that posts through it."""
from __future__ import annotations

from pathlib import Path

import pytest

from paratrain.local import DaemonProcess, HarnessError, LocalMarket, chain_task_spec, dev_keypair
from runtime_bindings.generated import types as t
from runtime_bindings.values import H256, METRIC_SCALE, Bytes
from workers import ArtifactStore, DatasetRef, Evaluation, Limits, TaskSpec

DATASET = "cd" * 32


def spec(evaluation: Evaluation) -> TaskSpec:
    return TaskSpec(recipe="digits_mlp", dataset=DatasetRef(DATASET, "file:///data/digits"), evaluation=evaluation,
                    hyperparameters={"epochs": 2}, seed=3, checkpoint_every=5,
                    limits=Limits(timeout_s=60, memory_mb=512))


def test_the_on_chain_spec_carries_the_documents_hash_and_evaluation() -> None:
    document = spec(Evaluation("accuracy", 0.95))
    on_chain = chain_task_spec(document, "file:///store/spec")
    assert (on_chain.recipe, on_chain.spec_hash, on_chain.spec_uri, on_chain.dataset_hash) == (
        Bytes(b"digits_mlp"), H256("0x" + document.spec_hash_hex()), Bytes(b"file:///store/spec"), H256("0x" + DATASET))
    assert (on_chain.eval_metric, on_chain.eval_target, on_chain.higher_is_better) == (Bytes(b"accuracy"), 950_000,
                                                                                      True)
    assert on_chain.requirements == t.Requirements(1, 0, 512) and on_chain.parent_model is None


def test_a_lower_is_better_metric_and_the_callers_choices_reach_the_chain() -> None:
    document = spec(Evaluation("loss", 1.25, mode="min"))
    parent = "0x" + "ab" * 32
    on_chain = chain_task_spec(document, "s3://specs/x", requirements=(4, 1, 8_000), parent_model=parent,
                               dataset_hash="ef" * 32)
    assert (on_chain.eval_target, on_chain.higher_is_better) == (round(1.25 * METRIC_SCALE), False)
    assert on_chain.requirements == t.Requirements(4, 1, 8_000)
    assert (on_chain.parent_model, on_chain.dataset_hash) == (H256(parent), H256("0x" + "ef" * 32))


def test_a_daemon_is_a_worker_or_a_validator(tmp_path: Path) -> None:
    with pytest.raises(HarnessError, match="not 'orchestrator'"):
        DaemonProcess("orchestrator", [], tmp_path / "log")


def test_an_in_process_market_registers_and_posts_through_the_mapping(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "alice-store")
    document = spec(Evaluation("accuracy", 0.9))
    with LocalMarket(tmp_path, subprocesses=False) as market:
        bob = market.register("Bob", "Trainer")
        assert market.chain.workers.workers(bob.ss58_address).role == "Trainer"
        task_id, _ = market.post(document, store, validators_required=2)
        task = market.chain.task_bounties.tasks(task_id)
        stored = task.spec
        assert (stored.recipe.text, str(stored.spec_hash), stored.spec_uri.text, str(stored.dataset_hash)) == (
            "digits_mlp", "0x" + document.spec_hash_hex(), store.uri(document.spec_hash_hex()), "0x" + DATASET)
        assert (stored.eval_metric.text, stored.eval_target, stored.higher_is_better) == ("accuracy", 900_000, True)
        assert str(task.requester) == dev_keypair("Alice").ss58_address and task.validators_required == 2
        assert store.get(document.spec_hash_hex()) == document.canonical_bytes()
        assert market.target.startswith("127.0.0.1:")
