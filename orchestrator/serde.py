"""protobuf <-> domain conversion: the only module that touches both.

`*_to_proto` build messages from orchestrator.domain values (server answers,
client requests); `*_from_proto` read messages into domain values and validate
them, raising `orchestrator.errors.InvalidArgument` for anything out of bounds
(ids, sizes, lengths, non-finite numbers, malformed hashes or amounts).

Encodings (see proto/paratrain/v1/common.proto): accounts SS58 strings, hashes
bytes, u128 balances base-10 strings, Assignment expiry as milliseconds left
(the domain keeps a monotonic deadline, which means nothing in another process).
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from typing import Literal, TypeAlias, overload

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

# Request bounds (the server refuses anything beyond them with INVALID_ARGUMENT).
MAX_WAIT_MS = 3_600_000
MAX_DECLINED = 1_024  # declined_task_ids per RequestAssignment
MAX_CPUS = 1 << 16
MAX_GPUS = 1 << 12
MAX_MEMORY_MB = 1 << 40
MAX_GPU_MODEL_LEN = 128
MAX_METRICS = 64
MAX_METRIC_NAME_LEN = 64
MAX_EXTRINSIC_BYTES = 64 * 1024
MAX_PAGE_TOKEN_LEN = 512
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
HASH_LEN = 32
U128_MAX = (1 << 128) - 1
MAX_VALUE_DEPTH = 16

_STATUS_TO_PROTO: dict[TaskStatus, common_pb2.TaskStatus] = {
    TaskStatus.OPEN: common_pb2.TASK_STATUS_OPEN,
    TaskStatus.CLAIMED: common_pb2.TASK_STATUS_CLAIMED,
    TaskStatus.SUBMITTED: common_pb2.TASK_STATUS_SUBMITTED,
    TaskStatus.ACCEPTED: common_pb2.TASK_STATUS_ACCEPTED,
    TaskStatus.EXPIRED: common_pb2.TASK_STATUS_EXPIRED,
    TaskStatus.CANCELLED: common_pb2.TASK_STATUS_CANCELLED,
    TaskStatus.APPROVED: common_pb2.TASK_STATUS_APPROVED,
    TaskStatus.CHALLENGED: common_pb2.TASK_STATUS_CHALLENGED,
}
_STATUS_FROM_PROTO: dict[int, TaskStatus] = {v: k for k, v in _STATUS_TO_PROTO.items()}
_ROLE_TO_PROTO: dict[str, common_pb2.WorkerRole] = {"Trainer": common_pb2.WORKER_ROLE_TRAINER,
                                                    "Validator": common_pb2.WORKER_ROLE_VALIDATOR}
_ROLE_FROM_PROTO: dict[int, str] = {v: k for k, v in _ROLE_TO_PROTO.items()}

DetailValue: TypeAlias = "bool | int | float | str | bytes | list[DetailValue] | dict[str, DetailValue] | None"
"""What a `common_pb2.Value` reads back as (`value_from_proto`): JSON's kinds plus bytes and big ints."""


# ---------------------------------------------------------------- scalars


def _check(cond: bool, message: str) -> None:
    if not cond:
        raise InvalidArgument(message)


def amount_to_str(value: int) -> str:
    return str(int(value))


def amount_from_str(text: str, what: str = "amount") -> int:
    _check(0 < len(text) <= 39 and text.isascii() and text.isdigit(), f"{what} must be a base-10 u128 string")
    _check(text == "0" or not text.startswith("0"), f"{what} must not have leading zeros")
    value = int(text)
    _check(value <= U128_MAX, f"{what} exceeds u128")
    return value


def hash_from_bytes(data: bytes, what: str, *, allow_empty: bool = False) -> bytes:
    if allow_empty and not data:
        return b""
    _check(len(data) == HASH_LEN, f"{what} must be {HASH_LEN} bytes (got {len(data)})")
    return bytes(data)


def hash_to_hex(data: bytes) -> str:
    return "0x" + bytes(data).hex()


def hash_from_hex(text: str, what: str = "hash") -> bytes:
    body = text[2:] if text[:2] in ("0x", "0X") else text
    try:
        data = bytes.fromhex(body)
    except ValueError:
        raise InvalidArgument(f"{what} is not hex") from None
    return hash_from_bytes(data, what)


def _finite(value: float, what: str) -> float:
    _check(math.isfinite(value), f"{what} must be finite")
    return float(value)


def _text(value: str, what: str, max_len: int, *, allow_empty: bool = True) -> str:
    _check(allow_empty or bool(value), f"{what} must not be empty")
    _check(len(value.encode("utf-8", "surrogatepass")) <= max_len, f"{what} longer than {max_len} bytes")
    _check(value.isprintable(), f"{what} must be printable text")
    return value


# ---------------------------------------------------------------- capabilities / requirements


def capabilities_to_proto(caps: Capabilities) -> common_pb2.Capabilities:
    return common_pb2.Capabilities(cpus=caps.cpus, gpus=caps.gpus, gpu_model=caps.gpu_model, memory_mb=caps.memory_mb)


def capabilities_from_proto(msg: common_pb2.Capabilities) -> Capabilities:
    _check(0 < msg.cpus <= MAX_CPUS, f"capabilities.cpus must be in 1..{MAX_CPUS}")
    _check(msg.gpus <= MAX_GPUS, f"capabilities.gpus must be at most {MAX_GPUS}")
    _check(0 < msg.memory_mb <= MAX_MEMORY_MB, f"capabilities.memory_mb must be in 1..{MAX_MEMORY_MB}")
    model = _text(msg.gpu_model, "capabilities.gpu_model", MAX_GPU_MODEL_LEN)
    return Capabilities(cpus=msg.cpus, gpus=msg.gpus, gpu_model=model, memory_mb=msg.memory_mb)


def requirements_to_proto(req: Requirements) -> common_pb2.Requirements:
    return common_pb2.Requirements(min_cpus=req.min_cpus, min_gpus=req.min_gpus, min_memory_mb=req.min_memory_mb)


def requirements_from_proto(msg: common_pb2.Requirements) -> Requirements:
    return Requirements(min_cpus=msg.min_cpus, min_gpus=msg.min_gpus, min_memory_mb=msg.min_memory_mb)


# ---------------------------------------------------------------- tasks, workers, assignments


def status_to_proto(status: TaskStatus | None) -> common_pb2.TaskStatus:
    return common_pb2.TASK_STATUS_UNSPECIFIED if status is None else _STATUS_TO_PROTO[TaskStatus(status)]


@overload
def status_from_proto(value: int, *, allow_unspecified: Literal[False] = False) -> TaskStatus: ...
@overload
def status_from_proto(value: int, *, allow_unspecified: bool) -> TaskStatus | None: ...
def status_from_proto(value: int, *, allow_unspecified: bool = False) -> TaskStatus | None:
    """The status a message names; None for UNSPECIFIED only when `allow_unspecified` (a filter's "any")."""
    if value == common_pb2.TASK_STATUS_UNSPECIFIED and allow_unspecified:
        return None
    status = _STATUS_FROM_PROTO.get(value)
    if status is None:
        raise InvalidArgument(f"unknown task status {value}")
    return status


def task_to_proto(task: TaskView) -> common_pb2.Task:
    msg = common_pb2.Task(
        task_id=task.task_id,
        requester=task.requester,
        recipe=task.recipe,
        spec_hash=task.spec_hash,
        spec_uri=task.spec_uri,
        dataset_hash=task.dataset_hash,
        eval_metric=task.eval_metric,
        eval_target=task.eval_target,
        requirements=requirements_to_proto(task.requirements),
        bounty=amount_to_str(task.bounty),
        min_stake=amount_to_str(task.min_stake),
        deadline=task.deadline,
        validators_required=task.validators_required,
        status=status_to_proto(task.status),
        progress_step=task.progress_step,
        checkpoint_root=task.checkpoint_root,
        created_at=task.created_at,
    )
    if task.worker is not None:
        msg.worker = task.worker
    if task.lease_until is not None:
        msg.lease_until = task.lease_until
    return msg


def task_from_proto(msg: common_pb2.Task) -> TaskView:
    return TaskView(
        task_id=msg.task_id,
        requester=msg.requester,
        recipe=msg.recipe,
        spec_hash=bytes(msg.spec_hash),
        spec_uri=msg.spec_uri,
        dataset_hash=bytes(msg.dataset_hash),
        eval_metric=msg.eval_metric,
        eval_target=msg.eval_target,
        requirements=requirements_from_proto(msg.requirements),
        bounty=amount_from_str(msg.bounty, "bounty"),
        min_stake=amount_from_str(msg.min_stake, "min_stake"),
        deadline=msg.deadline,
        validators_required=msg.validators_required,
        status=status_from_proto(msg.status),
        worker=msg.worker if msg.HasField("worker") else None,
        lease_until=msg.lease_until if msg.HasField("lease_until") else None,
        progress_step=msg.progress_step,
        checkpoint_root=bytes(msg.checkpoint_root),
        created_at=msg.created_at,
    )


def worker_to_proto(worker: WorkerView) -> common_pb2.Worker:
    return common_pb2.Worker(
        account=worker.account,
        role=_ROLE_TO_PROTO.get(worker.role, common_pb2.WORKER_ROLE_UNSPECIFIED),
        stake=amount_to_str(worker.stake),
        capabilities=capabilities_to_proto(worker.capabilities),
        active=worker.active,
        active_claims=worker.active_claims,
    )


def worker_from_proto(msg: common_pb2.Worker) -> WorkerView:
    role = _ROLE_FROM_PROTO.get(msg.role)
    if role is None:
        raise InvalidArgument(f"unknown worker role {msg.role}")
    caps = msg.capabilities
    return WorkerView(
        account=msg.account,
        role=role,
        stake=amount_from_str(msg.stake, "stake"),
        capabilities=Capabilities(cpus=caps.cpus, gpus=caps.gpus, gpu_model=caps.gpu_model, memory_mb=caps.memory_mb),
        active=msg.active,
        active_claims=msg.active_claims,
    )


def assignment_to_proto(assignment: Assignment, *, now: Callable[[], float] = time.monotonic) -> worker_pb2.Assignment:
    left_ms = max(0, int((assignment.expires_at - now()) * 1000))
    return worker_pb2.Assignment(task=task_to_proto(assignment.task), worker=assignment.worker, expires_in_ms=left_ms)


def assignment_from_proto(msg: worker_pb2.Assignment, *, now: Callable[[], float] = time.monotonic) -> Assignment:
    return Assignment(task=task_from_proto(msg.task), worker=msg.worker, expires_at=now() + msg.expires_in_ms / 1000)


# ---------------------------------------------------------------- progress


def progress_to_proto(update: ProgressUpdate) -> common_pb2.ProgressUpdate:
    return common_pb2.ProgressUpdate(
        task_id=update.task_id,
        worker=update.worker,
        step=update.step,
        epoch=update.epoch,
        loss=update.loss,
        metrics=dict(update.metrics),
        checkpoint_root=update.checkpoint_root,
    )


def progress_from_proto(msg: common_pb2.ProgressUpdate, account: str) -> ProgressUpdate:
    """A progress update from `account` (the authenticated caller)."""
    _check(msg.worker in ("", account), "progress.worker must be empty or the caller's own account")
    _check(len(msg.metrics) <= MAX_METRICS, f"at most {MAX_METRICS} metrics")
    metrics: dict[str, float] = {}
    for name in sorted(msg.metrics):
        _text(name, "metric name", MAX_METRIC_NAME_LEN, allow_empty=False)
        metrics[name] = _finite(msg.metrics[name], f"metric {name!r}")
    return ProgressUpdate(
        task_id=msg.task_id,
        worker=account,
        step=msg.step,
        epoch=msg.epoch,
        loss=_finite(msg.loss, "loss"),
        metrics=metrics,
        checkpoint_root=hash_from_bytes(msg.checkpoint_root, "checkpoint_root", allow_empty=True),
    )


def stream_progress_request(update: ProgressUpdate,
                            heartbeat_extrinsic: bytes | None = None) -> worker_pb2.StreamProgressRequest:
    msg = worker_pb2.StreamProgressRequest(update=progress_to_proto(update))
    if heartbeat_extrinsic is not None:
        msg.heartbeat_extrinsic = heartbeat_extrinsic
    return msg


def heartbeat_request(update: ProgressUpdate, heartbeat_extrinsic: bytes | None = None) -> worker_pb2.HeartbeatRequest:
    msg = worker_pb2.HeartbeatRequest(update=progress_to_proto(update))
    if heartbeat_extrinsic is not None:
        msg.heartbeat_extrinsic = heartbeat_extrinsic
    return msg


def stream_progress_from_proto(msg: worker_pb2.StreamProgressRequest | worker_pb2.HeartbeatRequest,
                               account: str) -> tuple[ProgressUpdate, bytes | None]:
    """(update, heartbeat extrinsic | None) of a StreamProgressRequest or a HeartbeatRequest (same fields)."""
    _check(msg.HasField("update"), "update is required")
    update = progress_from_proto(msg.update, account)
    extrinsic = None
    if msg.HasField("heartbeat_extrinsic"):
        extrinsic = extrinsic_from_bytes(msg.heartbeat_extrinsic, "heartbeat_extrinsic")
    return update, extrinsic


# ---------------------------------------------------------------- event detail values


def value_to_proto(value: object, _depth: int = 0) -> common_pb2.Value:
    """A JSON-like Python value (plus bytes and big ints) as a `Value`."""
    if _depth > MAX_VALUE_DEPTH:
        raise ValueError("value nested too deeply")
    if value is None:
        return common_pb2.Value()
    if isinstance(value, bool):
        return common_pb2.Value(bool_value=value)
    if isinstance(value, int):
        if -(1 << 63) <= value < (1 << 63):
            return common_pb2.Value(int_value=value)
        return common_pb2.Value(big_int_value=str(value))
    if isinstance(value, float):
        return common_pb2.Value(double_value=value)
    if isinstance(value, str):
        return common_pb2.Value(string_value=value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return common_pb2.Value(bytes_value=bytes(value))
    if isinstance(value, Mapping):
        out = common_pb2.Value(map_value=common_pb2.ValueMap())
        for k, v in value.items():
            out.map_value.fields[str(k)].CopyFrom(value_to_proto(v, _depth + 1))
        return out
    if isinstance(value, (list, tuple)):
        return common_pb2.Value(list_value=common_pb2.ValueList(values=[value_to_proto(v, _depth + 1) for v in value]))
    if hasattr(value, "value") and isinstance(value.value, (str, int)):  # Enums
        return value_to_proto(value.value, _depth)
    return common_pb2.Value(string_value=str(value))


def value_from_proto(msg: common_pb2.Value) -> DetailValue:
    kind = msg.WhichOneof("kind")
    if kind is None:
        return None
    if kind == "big_int_value":
        try:
            return int(msg.big_int_value)
        except ValueError:
            raise InvalidArgument("big_int_value is not an integer") from None
    if kind == "list_value":
        return [value_from_proto(v) for v in msg.list_value.values]
    if kind == "map_value":
        return {k: value_from_proto(v) for k, v in sorted(msg.map_value.fields.items())}
    if kind == "bytes_value":
        return bytes(msg.bytes_value)
    if kind == "bool_value":
        return msg.bool_value
    if kind == "int_value":
        return msg.int_value
    if kind == "double_value":
        return msg.double_value
    return msg.string_value


def task_event_to_proto(event: TaskEvent) -> common_pb2.TaskEvent:
    msg = common_pb2.TaskEvent(task_id=event.task_id, kind=event.kind, block=event.block)
    for key, value in event.detail.items():
        msg.detail[str(key)].CopyFrom(value_to_proto(value))
    if event.kind == "Progress":
        d = event.detail
        progress = msg.progress
        progress.task_id = event.task_id
        worker = d.get("worker")
        if isinstance(worker, str):
            progress.worker = worker
        for name in ("step", "epoch"):
            v = d.get(name)
            if isinstance(v, int) and not isinstance(v, bool) and 0 <= v < (1 << 64):
                setattr(progress, name, v)
        loss = d.get("loss")
        if isinstance(loss, (int, float)) and not isinstance(loss, bool):
            progress.loss = float(loss)
        metrics = d.get("metrics")
        if isinstance(metrics, Mapping):
            for k, v in metrics.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    progress.metrics[str(k)] = float(v)
        root = d.get("checkpoint_root")
        if isinstance(root, (bytes, bytearray)):
            progress.checkpoint_root = bytes(root)
        elif isinstance(root, str) and root:
            try:
                progress.checkpoint_root = bytes.fromhex(root[2:] if root.startswith("0x") else root)
            except ValueError:
                pass
    return msg


def task_event_from_proto(msg: common_pb2.TaskEvent) -> TaskEvent:
    detail: dict[str, object] = {k: value_from_proto(v) for k, v in sorted(msg.detail.items())}
    return TaskEvent(task_id=msg.task_id, kind=msg.kind, block=msg.block, detail=detail)


# ---------------------------------------------------------------- requests (validated)


def declined_from_request(msg: worker_pb2.RequestAssignmentRequest) -> frozenset[int]:
    """The tasks a worker declines: bounded, since every id costs the server a set entry per call."""
    _check(len(msg.declined_task_ids) <= MAX_DECLINED, f"at most {MAX_DECLINED} declined_task_ids")
    return frozenset(msg.declined_task_ids)


def wait_s_from_request(msg: worker_pb2.RequestAssignmentRequest) -> float:
    _check(msg.wait_ms <= MAX_WAIT_MS, f"wait_ms must be at most {MAX_WAIT_MS}")
    return msg.wait_ms / 1000


def extrinsic_from_bytes(data: bytes, what: str = "extrinsic") -> bytes:
    _check(0 < len(data) <= MAX_EXTRINSIC_BYTES, f"{what} must be 1..{MAX_EXTRINSIC_BYTES} bytes")
    return bytes(data)


def relay_from_request(msg: worker_pb2.RelayExtrinsicRequest) -> tuple[int, bytes]:
    return msg.task_id, extrinsic_from_bytes(msg.extrinsic)


def report_result_from_request(msg: worker_pb2.ReportResultRequest) -> tuple[int, str]:
    """(task_id, extrinsic hash as 0x-hex, the form the api and the chain use)."""
    return msg.task_id, hash_to_hex(hash_from_bytes(msg.extrinsic_hash, "extrinsic_hash"))


def list_tasks_from_request(msg: task_pb2.ListTasksRequest) -> tuple[TaskStatus | None, int, str]:
    status = status_from_proto(msg.status, allow_unspecified=True)
    limit = DEFAULT_PAGE_SIZE if msg.page_size == 0 else min(msg.page_size, MAX_PAGE_SIZE)
    token = msg.page_token
    _check(len(token) <= MAX_PAGE_TOKEN_LEN and token.isascii() and token.isprintable(), "page_token is malformed")
    return status, limit, token
