"""The training engine on a real local Ray cluster (one per module), two DDP training workers on CPU.

Most tasks run on one `WarmTrainer` (a long-lived Ray Train run that takes task after task, as the worker
daemon keeps one); the last test trains on a group started for the task alone and must give the same bytes."""
from __future__ import annotations

import time

import pytest

pytest.importorskip("torch")
ray = pytest.importorskip("ray")

from workers import (  # noqa: E402
    ArtifactStore,
    CrashOnce,
    DatasetRef,
    Evaluation,
    TaskSpec,
    add_dataset,
    inclusion_proof,
    merkle_root_hex,
    replay_segment,
    train,
    verify_inclusion,
)
from workers.runner import WarmTrainer  # noqa: E402

pytestmark = pytest.mark.slow  # starts a local Ray cluster and trains


@pytest.fixture(scope="module")
def cluster():
    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def warm(cluster, tmp_path_factory):
    trainer = WarmTrainer(2, storage_path=str(tmp_path_factory.mktemp("ray-warm")))
    yield trainer
    trainer.close(wait_s=30)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return ArtifactStore(tmp_path_factory.mktemp("artifacts"))


@pytest.fixture(scope="module")
def spec(store):
    digest, uri = add_dataset("digits", store)
    # 8 epochs x 22 steps per worker (batch 64 = 2 x 32): checkpoints every 40 steps -> 5 checkpoints.
    return TaskSpec(recipe="digits_mlp", dataset=DatasetRef(digest, uri), evaluation=Evaluation("accuracy", 0.9),
                    hyperparameters={"epochs": 8}, seed=7, checkpoint_every=40)


@pytest.fixture(scope="module")
def baseline(warm, store, spec):
    events = []
    started = time.monotonic()
    result = train(spec, store, num_workers=2, on_progress=events.append, trainer=warm)
    return result, events, time.monotonic() - started


def test_digits_trained_on_two_ray_workers(baseline, store, spec):
    result, events, _ = baseline
    assert result.world_size == 2
    assert result.metrics["accuracy"] >= 0.9 and result.target_met
    assert len(result.checkpoints) == 5
    assert result.trajectory_root == merkle_root_hex(result.checkpoints)
    for i, h in enumerate(result.checkpoints):
        assert store.exists(h)
        assert verify_inclusion(h, i, len(result.checkpoints), inclusion_proof(result.checkpoints, i),
                                result.trajectory_root)
    assert store.get(result.model_hash) and store.get(result.card_hash)
    assert result.dataset_hash == spec.dataset.hash and result.spec_hash == spec.spec_hash_hex()
    # progress streamed from rank 0: one event per checkpoint, the roots of the trajectory so far
    assert [e.step for e in events] == [40, 80, 120, 160, 176]
    assert events[-1].final and events[-1].checkpoint_root == result.trajectory_root
    assert events[1].checkpoint_root == merkle_root_hex(result.checkpoints[:2])
    assert result.finished_ms >= result.started_ms
    att = result.to_attestation(task_id=1, worker="5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY")
    assert [h.hex() for h in att.checkpoints] == result.checkpoints


def test_replay_segment_reproduces_the_next_checkpoint_bitwise(baseline, store, spec):
    result, _, _ = baseline
    assert replay_segment(spec, store, result.checkpoints[1]) == result.checkpoints[2]


def test_worker_killed_mid_training_resumes_with_the_same_result(baseline, warm, store, spec, tmp_path):
    result, _, _ = baseline
    marker = tmp_path / "crashed"
    events = []
    # rank 1's process dies right after step 100: Ray Train restarts the worker group, which goes back to
    # the checkpoint at step 80 and finishes the same task.
    again = train(spec, store, num_workers=2, max_failures=2, on_progress=events.append,
                  step_hook=CrashOnce(step=100, marker=str(marker), rank=1), trainer=warm)
    assert marker.exists(), "the fault was not injected"
    assert again.model_hash == result.model_hash
    assert again.checkpoints == result.checkpoints
    assert again.trajectory_root == result.trajectory_root
    assert again.metrics == result.metrics
    # the restarted group lives on and takes the next task at once
    started = time.monotonic()
    third = train(spec, store, num_workers=2, trainer=warm)
    assert third.model_hash == result.model_hash and third.checkpoints == result.checkpoints
    print(f"next task on the restarted warm group: {time.monotonic() - started:.2f} s")


def test_a_task_that_fails_leaves_the_warm_group_usable(baseline, warm, store, spec):
    from workers.engine import TrainingError

    def boom(step: int, rank: int) -> None:
        if step == 50:
            raise RuntimeError("cancelled by the test")

    with pytest.raises(TrainingError, match="cancelled by the test"):
        train(spec, store, num_workers=2, step_hook=boom, trainer=warm)
    assert train(spec, store, num_workers=2, trainer=warm).model_hash == baseline[0].model_hash


def test_a_group_of_its_own_gives_the_same_result(baseline, warm, store, spec, tmp_path):
    warm.close(wait_s=60)  # its two CPUs are the cluster's two
    result, _, _ = baseline
    alone = train(spec, store, num_workers=2, storage_path=str(tmp_path / "ray"))
    assert alone.model_hash == result.model_hash and alone.checkpoints == result.checkpoints
