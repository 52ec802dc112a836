"""The worker's task run (workers.task_run) and its retry/failure policy (workers.retry), without Ray or a chain:
the state machine's transitions, the policy table row by row (typed errors only; the text of an error never
changes the decision), and the worker daemon's send loop and task ending driven by that policy."""
from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from orchestrator import errors as api
from runtime_bindings import (
    BadOrigin,
    ConnectionLost,
    DispatchError,
    InvalidTransaction,
    RpcError,
    SubmitTimeout,
    TransactionAlreadyImported,
    TransactionBanned,
    TransactionPriorityTooLow,
    UnknownTransaction,
)
from workers.daemon import DaemonConfig, WorkerDaemon
from workers.errors import DaemonStopped, TaskCancelled, TaskRefused
from workers.observers import Recorder
from workers.retry import Decision, decide, training_refusal
from workers.task_run import FINAL, TRANSITIONS, InvalidTransition, RunState, TaskRun


# The state machine ----------------------------------------------------------------------------------------
def test_a_task_goes_from_assignment_to_submission():
    run = TaskRun(7, view=SimpleNamespace(task_id=7))
    for state in (RunState.CLAIMED, RunState.TRAINING, RunState.TRAINED, RunState.SUBMITTED):
        run.advance(state)
    assert run.state is RunState.SUBMITTED and run.final and not run.live and run.was_claimed and not run.resumed


def test_a_resumed_claim_starts_claimed_and_trains_without_claiming_again():
    run = TaskRun.from_claim(3)
    assert run.state is RunState.CLAIMED and run.resumed and run.was_claimed and run.live
    with pytest.raises(InvalidTransition):
        run.advance(RunState.CLAIMED)
    run.advance(RunState.TRAINING)


def test_a_refusal_before_the_claim_holds_nothing_and_after_it_is_released():
    early = TaskRun(1)
    early.advance(RunState.REFUSED, "the spec document is invalid")
    assert early.reason == "the spec document is invalid" and not early.was_claimed and not early.final
    late = TaskRun(2)
    late.advance(RunState.CLAIMED)
    late.advance(RunState.TRAINING)
    late.advance(RunState.REFUSED, "training failed")
    assert late.was_claimed
    late.advance(RunState.RELEASED)
    assert late.final and late.reason == "training failed"


@pytest.mark.parametrize("start, to", [
    (RunState.ASSIGNED, RunState.TRAINING),     # never trains unclaimed
    (RunState.ASSIGNED, RunState.SUBMITTED),
    (RunState.CLAIMED, RunState.SUBMITTED),     # never submits untrained
    (RunState.TRAINING, RunState.SUBMITTED),
    (RunState.SUBMITTED, RunState.RELEASED),    # final states stay final
    (RunState.FAILED, RunState.CLAIMED),
    (RunState.REFUSED, RunState.CLAIMED),
])
def test_moves_the_machine_does_not_have_are_errors(start, to):
    run = TaskRun(5, start)
    with pytest.raises(InvalidTransition, match=f"{start.name} -> {to.name}"):
        run.advance(to)
    assert run.state is start


def test_every_state_is_in_the_table_and_the_final_ones_lead_nowhere():
    assert set(TRANSITIONS) == set(RunState)
    assert {RunState.SUBMITTED, RunState.RELEASED, RunState.CANCELLED, RunState.FAILED} == FINAL
    assert all(onward <= set(RunState) for onward in TRANSITIONS.values())


# The policy table -----------------------------------------------------------------------------------------
def invalid(kind: str) -> InvalidTransaction:
    return InvalidTransaction(1010, "Invalid Transaction", None, kind)


@pytest.mark.parametrize("error, decision", [
    (DaemonStopped(), Decision.STOP),
    (TaskRefused("no"), Decision.REFUSE),
    (TaskCancelled("deadline"), Decision.CANCELLED),
    (invalid("Stale"), Decision.RESIGN),
    (invalid("Future"), Decision.RESIGN),
    (UnknownTransaction(1011, "Unknown Transaction", None, "Future"), Decision.RESIGN),
    (TransactionAlreadyImported(1013, "Transaction Already Imported"), Decision.RESIGN),
    (TransactionPriorityTooLow(1014, "Priority is too low: (0 vs 0)"), Decision.RESIGN),
    (invalid("BadProof"), Decision.FAIL),
    (invalid("Payment"), Decision.FAIL),
    (TransactionBanned(1012, "Transaction is temporarily banned"), Decision.FAIL),
    (api.FailedPrecondition("the transaction pool refused the extrinsic (Stale): ..."), Decision.SEND_DIRECT),
    (api.Unavailable("the chain is unreachable"), Decision.SEND_DIRECT),
    (api.PermissionDenied("task 3 is reserved for another worker"), Decision.FAIL),
    (DispatchError("Other"), Decision.FAIL),
    (BadOrigin("BadOrigin"), Decision.FAIL),
    (ConnectionLost("the node went away"), Decision.RETRY_LATER),
    (SubmitTimeout("0x00", "inclusion", 60.0), Decision.RETRY_LATER),
    (RpcError(-32000, "internal"), Decision.RETRY_LATER),
    (RuntimeError("anything else"), Decision.FAIL),
])
def test_the_policy_table(error: BaseException, decision: Decision):
    assert decide(error) is decision


def test_the_text_of_an_error_never_changes_the_decision():
    """The old worker matched "Stale", "Future", "already", "time limit" and "memory" in messages."""
    lying = InvalidTransaction(1010, "Stale Future AlreadyImported already", None, "BadProof")
    assert decide(lying) is Decision.FAIL
    assert decide(api.PermissionDenied("Stale Future AlreadyImported")) is Decision.FAIL
    assert decide(RuntimeError("Stale")) is Decision.FAIL


def test_training_failures_are_refusals_saying_whether_the_task_limits_stopped_them():
    engine = pytest.importorskip("workers.engine")
    assert "within the task's limits" in str(training_refusal(engine.TrainingTimeoutError("timeout_s passed")))
    assert "within the task's limits" in str(training_refusal(engine.MemoryLimitError("rss 2000 MiB")))
    plain = training_refusal(engine.TrainingError("the time limit and the memory were fine"))
    assert isinstance(plain, TaskRefused) and "within the task's limits" not in str(plain)


# The daemon driven by the policy --------------------------------------------------------------------------
class FakeChain:
    """What WorkerDaemon._send and _ended touch: signing, submitting to the node, the wait for inclusion."""

    def __init__(self, node_errors: list[BaseException]) -> None:
        self.node_errors, self.submitted, self.signed = list(node_errors), 0, 0

    def best_number(self) -> int:
        return 10

    def sign(self, call: Any, keypair: Any) -> str:
        self.signed += 1
        return "0x" + bytes([self.signed]).hex()

    def rpc(self, method: str, params: list[Any], retry: bool = True) -> None:
        assert method == "author_submitExtrinsic"
        self.submitted += 1
        if self.node_errors:
            raise self.node_errors.pop(0)

    def wait_for(self, xt_hash: str, **_: Any) -> Any:
        return SimpleNamespace(extrinsic_hash=xt_hash, block_number=11)

    def close(self) -> None:
        pass


class FakeClient:
    def __init__(self, errors: list[BaseException]) -> None:
        self.errors, self.relayed = list(errors), 0

    def relay_extrinsic(self, task_id: int, raw: bytes) -> None:
        self.relayed += 1
        if self.errors:
            raise self.errors.pop(0)


def daemon_with(chain: FakeChain, client: FakeClient | None) -> WorkerDaemon:
    daemon = WorkerDaemon(DaemonConfig(orchestrator="127.0.0.1:1", chain_url="ws://unused", key="//Bob"),
                          keypair=SimpleNamespace(ss58_address="5Bob"))
    daemon.chain, daemon.client = chain, client
    return daemon


def test_a_relay_refusal_is_sent_to_the_node_whose_typed_answer_decides(monkeypatch):
    monkeypatch.setattr("workers.daemon.time.sleep", lambda s: None)
    chain = FakeChain([invalid("Stale")])  # the node: a nonce race, then accepted
    client = FakeClient([api.FailedPrecondition("the transaction pool refused the extrinsic (Stale)")])
    receipt = daemon_with(chain, client)._send(1, object(), "claim_task")
    assert receipt.block_number == 11 and client.relayed == 1 and chain.submitted == 2 and chain.signed == 3


def test_a_refusal_the_policy_does_not_retry_is_raised_at_once():
    chain = FakeChain([invalid("BadProof")])
    with pytest.raises(InvalidTransaction):
        daemon_with(chain, None)._send(1, object(), "release_claim", relay=False)
    assert chain.submitted == 1


def test_three_races_in_a_row_give_up_with_the_last_error(monkeypatch):
    monkeypatch.setattr("workers.daemon.time.sleep", lambda s: None)
    chain = FakeChain([invalid("Stale"), invalid("Future"), TransactionAlreadyImported(1013, "again")])
    with pytest.raises(TransactionAlreadyImported):
        daemon_with(chain, None)._send(1, object(), "heartbeat", relay=False)
    assert chain.submitted == 3


def test_a_refused_claimed_task_is_released_and_its_run_ends_released(monkeypatch):
    daemon = daemon_with(FakeChain([]), None)
    recorder = Recorder(maxlen=10)
    daemon.subscribe(recorder)
    released: list[int] = []
    monkeypatch.setattr(daemon, "_release", lambda task_id, why: released.append(task_id) or True)
    run = TaskRun(4)
    run.advance(RunState.CLAIMED)
    daemon._ended(run, TaskRefused("the data set is unusable"))
    assert run.state is RunState.RELEASED and released == [4] and daemon.refused == {4: "the data set is unusable"}
    assert recorder.of("refused") == [{"task_id": 4, "reason": "the data set is unusable"}]
    failed = TaskRun(5)
    daemon._ended(failed, ConnectionLost("gone"))
    assert failed.state is RunState.FAILED and 5 not in daemon.refused and "gone" in daemon.status.last_error


def test_an_error_after_the_submission_leaves_the_run_submitted():
    daemon = daemon_with(FakeChain([]), None)
    run = TaskRun(6, RunState.SUBMITTED)
    daemon._ended(run, ConnectionLost("the node went away after the result was in a block"))
    assert run.state is RunState.SUBMITTED and daemon.status.tasks_refused == 0
