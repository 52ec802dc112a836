"""orchestrator.serde: domain <-> protobuf round trips and request validation."""
from __future__ import annotations

import math

import pytest

from orchestrator import serde
from orchestrator.domain import (
    Assignment,
    Capabilities,
    ProgressUpdate,
    Requirements,
    TaskEvent,
    TaskStatus,
    TaskView,
    WorkerView,
)
from orchestrator.errors import InvalidArgument
from paratrain_api.v1 import common_pb2, task_pb2, worker_pb2

ALICE = "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"
BOB = "5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty"


def task(**kw) -> TaskView:
    base = dict(task_id=7, requester=ALICE, recipe="resnet18-cifar10", spec_hash=b"\x01" * 32, spec_uri="s3://x/spec",
                dataset_hash=b"\x02" * 32, eval_metric="accuracy", eval_target=-900_000,
                requirements=Requirements(2, 1, 4096), bounty=(1 << 128) - 1, min_stake=10**15, deadline=1000,
                validators_required=3, status=TaskStatus.CLAIMED, worker=BOB, lease_until=500, progress_step=42,
                checkpoint_root=b"\x03" * 32, created_at=12)
    base.update(kw)
    return TaskView(**base)


def test_task_round_trip_including_u128_and_optionals() -> None:
    for t in (task(), task(worker=None, lease_until=None, status=TaskStatus.OPEN, checkpoint_root=b"", bounty=0)):
        msg = serde.task_to_proto(t)
        assert serde.task_from_proto(common_pb2.Task.FromString(msg.SerializeToString())) == t
    assert serde.task_to_proto(task()).bounty == str((1 << 128) - 1)


def test_worker_and_assignment_round_trip() -> None:
    w = WorkerView(ALICE, "Trainer", 10**20, Capabilities(8, 2, "H100", 65536), True, 1)
    assert serde.worker_from_proto(serde.worker_to_proto(w)) == w
    a = Assignment(task(), BOB, expires_at=100.0)
    msg = serde.assignment_to_proto(a, now=lambda: 90.0)
    assert msg.expires_in_ms == 10_000
    back = serde.assignment_from_proto(msg, now=lambda: 5.0)
    assert back.task == a.task and back.worker == BOB and back.expires_at == 15.0
    assert serde.assignment_to_proto(a, now=lambda: 200.0).expires_in_ms == 0


def test_progress_validation() -> None:
    u = ProgressUpdate(7, ALICE, 10, 1, 0.5, {"acc": 0.9}, b"\x04" * 32)
    assert serde.progress_from_proto(serde.progress_to_proto(u), ALICE) == u
    anon = serde.progress_to_proto(u)
    anon.worker = ""
    assert serde.progress_from_proto(anon, ALICE) == u
    bad = [
        dict(worker=BOB), dict(loss=math.nan), dict(loss=math.inf), dict(metrics={"": 1.0}),
        dict(metrics={"x": math.nan}), dict(metrics={f"m{i}": 1.0 for i in range(65)}),
        dict(metrics={"x" * 65: 1.0}), dict(checkpoint_root=b"\x01" * 31),
    ]
    for change in bad:
        msg = serde.progress_to_proto(u)
        if "metrics" in change:
            msg.ClearField("metrics")
            msg.metrics.update(change.pop("metrics"))
        for k, v in change.items():
            setattr(msg, k, v)
        with pytest.raises(InvalidArgument):
            serde.progress_from_proto(msg, ALICE)


def test_capabilities_bounds() -> None:
    ok = common_pb2.Capabilities(cpus=4, gpus=0, gpu_model="", memory_mb=1024)
    assert serde.capabilities_from_proto(ok) == Capabilities(4, 0, "", 1024)
    for bad in (dict(cpus=0), dict(cpus=1 << 20), dict(memory_mb=0), dict(memory_mb=1 << 50), dict(gpus=1 << 20),
                dict(gpu_model="x" * 200), dict(gpu_model="a\nb")):
        msg = common_pb2.Capabilities(cpus=4, gpus=0, gpu_model="", memory_mb=1024)
        for k, v in bad.items():
            setattr(msg, k, v)
        with pytest.raises(InvalidArgument):
            serde.capabilities_from_proto(msg)


def test_request_validation() -> None:
    assert serde.wait_s_from_request(worker_pb2.RequestAssignmentRequest(wait_ms=1500)) == 1.5
    with pytest.raises(InvalidArgument):
        serde.wait_s_from_request(worker_pb2.RequestAssignmentRequest(wait_ms=serde.MAX_WAIT_MS + 1))
    declined = worker_pb2.RequestAssignmentRequest(declined_task_ids=[0, 7, 2**64 - 1, 7])
    assert serde.declined_from_request(declined) == {0, 7, 2**64 - 1}
    with pytest.raises(InvalidArgument):  # bounded: each id costs the server a set entry per call
        serde.declined_from_request(worker_pb2.RequestAssignmentRequest(
            declined_task_ids=range(serde.MAX_DECLINED + 1)))
    with pytest.raises(InvalidArgument):
        serde.relay_from_request(worker_pb2.RelayExtrinsicRequest(task_id=1, extrinsic=b""))
    with pytest.raises(InvalidArgument):
        serde.relay_from_request(worker_pb2.RelayExtrinsicRequest(task_id=1, extrinsic=b"x" * (64 * 1024 + 1)))
    assert serde.report_result_from_request(worker_pb2.ReportResultRequest(task_id=3, extrinsic_hash=b"\xab" * 32)) \
        == (3, "0x" + "ab" * 32)
    with pytest.raises(InvalidArgument):
        serde.report_result_from_request(worker_pb2.ReportResultRequest(task_id=3, extrinsic_hash=b"\xab" * 31))
    assert serde.list_tasks_from_request(task_pb2.ListTasksRequest()) == (None, 50, "")
    assert serde.list_tasks_from_request(task_pb2.ListTasksRequest(status=1, page_size=10**6)) \
        == (TaskStatus.OPEN, 1000, "")
    with pytest.raises(InvalidArgument):
        serde.list_tasks_from_request(task_pb2.ListTasksRequest(status=99))
    with pytest.raises(InvalidArgument):
        serde.list_tasks_from_request(task_pb2.ListTasksRequest(page_token="x" * 1000))


@pytest.mark.parametrize("text", ["", "-1", "01", "1.5", "1e3", str(1 << 128), " 1", "١"])
def test_amount_strings_are_strict(text: str) -> None:
    with pytest.raises(InvalidArgument):
        serde.amount_from_str(text)


def test_task_event_values_and_progress() -> None:
    detail = {"worker": BOB, "bounty": 1 << 100, "n": -3, "ok": True, "hash": b"\x05" * 32, "none": None,
              "list": [1, "a", 2.5], "nested": {"k": {"deep": 1}}}
    ev = TaskEvent(7, "TaskClaimed", 12, detail)
    assert serde.task_event_from_proto(common_pb2.TaskEvent.FromString(serde.task_event_to_proto(ev).SerializeToString())) == ev
    prog = TaskEvent(7, "Progress", 0, {"worker": BOB, "step": 5, "epoch": 1, "loss": 0.25, "metrics": {"acc": 0.5},
                                        "checkpoint_root": b"\x06" * 32})
    msg = serde.task_event_to_proto(prog)
    assert (msg.progress.step, msg.progress.epoch, msg.progress.loss, dict(msg.progress.metrics)) == (5, 1, 0.25, {"acc": 0.5})
    assert msg.progress.checkpoint_root == b"\x06" * 32 and msg.progress.worker == BOB
    assert serde.task_event_from_proto(msg) == prog
