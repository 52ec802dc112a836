"""The validator's checks apart from its event loop (workers.result_checks.ResultChecker), on local stores and
without a chain: what is copied from a worker's store, the code hash, an unusable spec document; and the
daemon's own pieces that need no chain either (the shared base's set-up checks and state directory, the
bounded Recorder the tests subscribe instead of reading lists the daemons used to keep)."""
from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from runtime_bindings.values import Bytes
from workers import ArtifactStore
from workers.errors import Abstain, DaemonError, ValidatorError
from workers.hashing import blake2_256_hex
from workers.observers import Recorder
from workers.result_checks import ResultChecker
from workers.uri_policy import UriPolicy


def attestation_of(store: ArtifactStore, *objects: bytes, code_hash: str = "00" * 32) -> Any:
    """What the checks read of an attestation: the model (the first object), its checkpoints, where they lie."""
    digests = [blake2_256_hex(o) for o in objects]
    return SimpleNamespace(model_hash="0x" + digests[0], checkpoints=["0x" + d for d in digests[1:]],
                           artifact_uri=Bytes(store.uri(digests[0]).encode()), code_hash="0x" + code_hash)


# What is copied from the worker's store ---------------------------------------------------------------------
def test_artifacts_are_copied_from_a_trusted_store_each_verified_and_shown_once(tmp_path):
    worker = ArtifactStore(tmp_path / "worker")
    model, checkpoint = b"model weights", b"a checkpoint"
    for blob in (model, checkpoint):
        worker.put(blob)
    mine = ArtifactStore(tmp_path / "validator", policy=UriPolicy((worker.root,)))
    seen: dict[str, bytes] = {}
    copied = ResultChecker(mine).fetch_artifacts(attestation_of(worker, model, checkpoint, model),
                                                 lambda digest, data: seen.setdefault(digest, data))
    assert copied == {blake2_256_hex(model), blake2_256_hex(checkpoint)} == set(seen)
    assert mine.get(blake2_256_hex(checkpoint)) == checkpoint
    # a second look finds them in its own store: nothing is copied (or read) again
    assert ResultChecker(mine).fetch_artifacts(attestation_of(worker, model, checkpoint),
                                               lambda d, data: pytest.fail("read again")) == set()


def test_artifacts_in_a_store_it_does_not_trust_are_never_read(tmp_path):
    worker = ArtifactStore(tmp_path / "worker")
    worker.put(b"model weights")
    mine = ArtifactStore(tmp_path / "validator")  # trusts only itself
    copied = ResultChecker(mine).fetch_artifacts(attestation_of(worker, b"model weights"),
                                                 lambda d, data: pytest.fail("an untrusted store was read"))
    assert copied == set() and not mine.exists(blake2_256_hex(b"model weights"))


def test_an_artifact_whose_bytes_are_not_its_hash_is_not_copied(tmp_path):
    worker = ArtifactStore(tmp_path / "worker")
    digest = worker.put(b"the real model")
    path = next((tmp_path / "worker").rglob(digest))
    path.write_bytes(b"something else")  # the worker's store serves other bytes under that name
    mine = ArtifactStore(tmp_path / "validator", policy=UriPolicy((worker.root,)))
    attestation = SimpleNamespace(model_hash="0x" + digest, checkpoints=[],
                                  artifact_uri=Bytes(worker.uri(digest).encode()))
    assert ResultChecker(mine).fetch_artifacts(attestation, lambda d, data: None) == set()
    assert not mine.exists(digest)


# Code hash and spec --------------------------------------------------------------------------------------
def test_the_code_hash_is_the_registered_recipes():
    from workers.recipes import code_hash, get_recipe

    expected = code_hash(get_recipe("digits_mlp"))
    spec = SimpleNamespace(recipe="digits_mlp")
    assert ResultChecker.code_check(spec, SimpleNamespace(code_hash="0x" + expected)).ok
    wrong = ResultChecker.code_check(spec, SimpleNamespace(code_hash="0x" + "11" * 32))
    assert not wrong.ok and wrong.detail["reason"] == "not the registered recipe's code"
    unknown = ResultChecker.code_check(SimpleNamespace(recipe="no-such-recipe"),
                                       SimpleNamespace(code_hash="0x" + expected))
    assert not unknown.ok and "recipe not runnable here" in unknown.detail["reason"]


def test_an_unusable_spec_document_is_an_abstention_never_a_verdict(tmp_path):
    store = ArtifactStore(tmp_path / "validator")
    task = SimpleNamespace(spec=SimpleNamespace(spec_hash="0x" + "ab" * 32, spec_uri=Bytes(b"file:///nowhere/spec"),
                                                higher_is_better=True, eval_target=900_000))
    with pytest.raises(Abstain, match="the spec document file:///nowhere/spec is unusable"):
        ResultChecker(store).verify(task, attestation_of(store, b"model"), "00" * 32)
    not_canonical = store.put(b'{"recipe": "digits_mlp"}')  # stored, by hash, but no spec
    task.spec.spec_hash, task.spec.spec_uri = "0x" + not_canonical, Bytes(store.uri(not_canonical).encode())
    with pytest.raises(Abstain, match="is unusable"):
        ResultChecker(store).verify(task, attestation_of(store, b"model"), "00" * 32)


def test_the_validator_daemon_checks_with_its_own_store_and_settings(tmp_path):
    from workers.validator import ValidatorConfig, ValidatorDaemon

    store = ArtifactStore(tmp_path)
    daemon = ValidatorDaemon(ValidatorConfig(chain_url="ws://unused", key="//Charlie", spot_checks=5,
                                             metric_tolerance=0.01, holdout_tolerance=0.2, ray_address="ray://x"),
                             store=store)
    checks = daemon.checks
    assert checks is daemon.checks and checks.store is store
    assert (checks.spot_checks, checks.metric_tolerance, checks.holdout_tolerance, checks.ray_address) == \
        (5, 0.01, 0.2, "ray://x")


# The shared daemon base ---------------------------------------------------------------------------------
class Registry:
    """Workers.workers(account) of a chain, and nothing else."""

    def __init__(self, entry: Any) -> None:
        self.workers = SimpleNamespace(workers=lambda account: entry)


@pytest.mark.parametrize("entry, message", [
    (None, "is not registered on chain: register it as a Trainer first"),
    (SimpleNamespace(role="Validator", stake=1), "is registered as a Validator, not a Trainer"),
])
def test_the_worker_start_up_checks_refuse_an_account_the_chain_does_not_know_as_a_trainer(entry, message):
    from workers.daemon import DaemonConfig, WorkerDaemon

    daemon = WorkerDaemon(DaemonConfig(orchestrator="127.0.0.1:1", chain_url="ws://unused", key="//Bob"))
    daemon.chain = Registry(entry)
    with pytest.raises(DaemonError, match=message):
        daemon._startup_checks()


def test_the_validator_start_up_checks_return_its_registration(tmp_path):
    from workers.validator import ValidatorConfig, ValidatorDaemon

    daemon = ValidatorDaemon(ValidatorConfig(chain_url="ws://unused", key="//Charlie"))
    daemon.chain = Registry(SimpleNamespace(role="Validator", stake=7))
    assert daemon._startup_checks().stake == 7
    daemon.chain = Registry(SimpleNamespace(role="Trainer", stake=7))
    with pytest.raises(ValidatorError, match="not a Validator"):
        daemon._startup_checks()


def test_each_daemon_has_its_own_state_directory_by_role_and_account(tmp_path, monkeypatch):
    from workers.daemon import DaemonConfig, WorkerDaemon
    from workers.validator import ValidatorConfig, ValidatorDaemon

    monkeypatch.setenv("HOME", str(tmp_path))
    worker = WorkerDaemon(DaemonConfig(orchestrator="127.0.0.1:1", chain_url="ws://unused", key="//Bob"))
    validator = ValidatorDaemon(ValidatorConfig(chain_url="ws://unused", key="//Bob"))
    assert worker._open_state_dir() == tmp_path / ".cache" / "paratrain" / "worker" / worker.account
    assert validator._open_state_dir() == tmp_path / ".cache" / "paratrain" / "validator" / worker.account
    chosen = WorkerDaemon(DaemonConfig(orchestrator="127.0.0.1:1", chain_url="ws://unused", key="//Bob",
                                       state_dir=str(tmp_path / "mine")))
    assert chosen._open_state_dir().is_dir() and chosen.state_dir == tmp_path / "mine"


def test_a_lost_connection_is_retried_on_a_reconnected_chain_and_other_failures_are_not():
    from runtime_bindings import ConnectionLost, DispatchError
    from workers.daemon import DaemonConfig, WorkerDaemon

    daemon = WorkerDaemon(DaemonConfig(orchestrator="127.0.0.1:1", chain_url="ws://unused", key="//Bob"))
    reconnects: list[int] = []
    daemon.chain = SimpleNamespace(reconnect=lambda: reconnects.append(1))
    calls: list[str] = []

    def flaky() -> None:
        calls.append("action")
        if len(calls) == 1:
            raise ConnectionLost("the node went away")

    daemon._with_chain_retries(flaky, then=lambda: calls.append("then"), pause_s=0)
    assert calls == ["action", "then"] and reconnects == [1]

    def failed_in_a_block() -> None:
        calls.append("dispatch")
        raise DispatchError("Other")

    with pytest.raises(DispatchError):
        daemon._with_chain_retries(failed_in_a_block, pause_s=0)
    assert calls.count("dispatch") == 1


# The bounded Recorder -----------------------------------------------------------------------------------
def test_a_recorder_keeps_the_last_events_it_is_asked_for_and_no_more():
    recorder = Recorder(maxlen=3, only={"vote", "claimed"})
    for i in range(5):
        recorder("vote", {"task_id": i})
        recorder("chain", {"best": i})  # not kept: the window is not crowded out by frequent signals
    assert len(recorder) == 3 and [d["task_id"] for d in recorder.of("vote")] == [2, 3, 4]
    recorder("claimed", {"task_id": 9})
    assert recorder.events == [("vote", {"task_id": 3}), ("vote", {"task_id": 4}), ("claimed", {"task_id": 9})]
    detail = {"task_id": 1}
    everything = Recorder(maxlen=10)
    everything("chain", detail)
    detail["task_id"] = 2  # a copy is kept: the daemon's dict may change after the call
    assert everything.events == [("chain", {"task_id": 1})]
    with pytest.raises(ValueError, match="maxlen"):
        Recorder(maxlen=0)
