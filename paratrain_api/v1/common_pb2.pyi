from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TaskStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TASK_STATUS_UNSPECIFIED: _ClassVar[TaskStatus]
    TASK_STATUS_OPEN: _ClassVar[TaskStatus]
    TASK_STATUS_CLAIMED: _ClassVar[TaskStatus]
    TASK_STATUS_SUBMITTED: _ClassVar[TaskStatus]
    TASK_STATUS_ACCEPTED: _ClassVar[TaskStatus]
    TASK_STATUS_EXPIRED: _ClassVar[TaskStatus]
    TASK_STATUS_CANCELLED: _ClassVar[TaskStatus]
    TASK_STATUS_APPROVED: _ClassVar[TaskStatus]
    TASK_STATUS_CHALLENGED: _ClassVar[TaskStatus]

class WorkerRole(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WORKER_ROLE_UNSPECIFIED: _ClassVar[WorkerRole]
    WORKER_ROLE_TRAINER: _ClassVar[WorkerRole]
    WORKER_ROLE_VALIDATOR: _ClassVar[WorkerRole]
TASK_STATUS_UNSPECIFIED: TaskStatus
TASK_STATUS_OPEN: TaskStatus
TASK_STATUS_CLAIMED: TaskStatus
TASK_STATUS_SUBMITTED: TaskStatus
TASK_STATUS_ACCEPTED: TaskStatus
TASK_STATUS_EXPIRED: TaskStatus
TASK_STATUS_CANCELLED: TaskStatus
TASK_STATUS_APPROVED: TaskStatus
TASK_STATUS_CHALLENGED: TaskStatus
WORKER_ROLE_UNSPECIFIED: WorkerRole
WORKER_ROLE_TRAINER: WorkerRole
WORKER_ROLE_VALIDATOR: WorkerRole

class Capabilities(_message.Message):
    __slots__ = ("cpus", "gpus", "gpu_model", "memory_mb")
    CPUS_FIELD_NUMBER: _ClassVar[int]
    GPUS_FIELD_NUMBER: _ClassVar[int]
    GPU_MODEL_FIELD_NUMBER: _ClassVar[int]
    MEMORY_MB_FIELD_NUMBER: _ClassVar[int]
    cpus: int
    gpus: int
    gpu_model: str
    memory_mb: int
    def __init__(self, cpus: _Optional[int] = ..., gpus: _Optional[int] = ..., gpu_model: _Optional[str] = ..., memory_mb: _Optional[int] = ...) -> None: ...

class Requirements(_message.Message):
    __slots__ = ("min_cpus", "min_gpus", "min_memory_mb")
    MIN_CPUS_FIELD_NUMBER: _ClassVar[int]
    MIN_GPUS_FIELD_NUMBER: _ClassVar[int]
    MIN_MEMORY_MB_FIELD_NUMBER: _ClassVar[int]
    min_cpus: int
    min_gpus: int
    min_memory_mb: int
    def __init__(self, min_cpus: _Optional[int] = ..., min_gpus: _Optional[int] = ..., min_memory_mb: _Optional[int] = ...) -> None: ...

class Task(_message.Message):
    __slots__ = ("task_id", "requester", "recipe", "spec_hash", "spec_uri", "dataset_hash", "eval_metric", "eval_target", "requirements", "bounty", "min_stake", "deadline", "validators_required", "status", "worker", "lease_until", "progress_step", "checkpoint_root", "created_at")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    REQUESTER_FIELD_NUMBER: _ClassVar[int]
    RECIPE_FIELD_NUMBER: _ClassVar[int]
    SPEC_HASH_FIELD_NUMBER: _ClassVar[int]
    SPEC_URI_FIELD_NUMBER: _ClassVar[int]
    DATASET_HASH_FIELD_NUMBER: _ClassVar[int]
    EVAL_METRIC_FIELD_NUMBER: _ClassVar[int]
    EVAL_TARGET_FIELD_NUMBER: _ClassVar[int]
    REQUIREMENTS_FIELD_NUMBER: _ClassVar[int]
    BOUNTY_FIELD_NUMBER: _ClassVar[int]
    MIN_STAKE_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_FIELD_NUMBER: _ClassVar[int]
    VALIDATORS_REQUIRED_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    WORKER_FIELD_NUMBER: _ClassVar[int]
    LEASE_UNTIL_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_STEP_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_ROOT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    task_id: int
    requester: str
    recipe: str
    spec_hash: bytes
    spec_uri: str
    dataset_hash: bytes
    eval_metric: str
    eval_target: int
    requirements: Requirements
    bounty: str
    min_stake: str
    deadline: int
    validators_required: int
    status: TaskStatus
    worker: str
    lease_until: int
    progress_step: int
    checkpoint_root: bytes
    created_at: int
    def __init__(self, task_id: _Optional[int] = ..., requester: _Optional[str] = ..., recipe: _Optional[str] = ..., spec_hash: _Optional[bytes] = ..., spec_uri: _Optional[str] = ..., dataset_hash: _Optional[bytes] = ..., eval_metric: _Optional[str] = ..., eval_target: _Optional[int] = ..., requirements: _Optional[_Union[Requirements, _Mapping]] = ..., bounty: _Optional[str] = ..., min_stake: _Optional[str] = ..., deadline: _Optional[int] = ..., validators_required: _Optional[int] = ..., status: _Optional[_Union[TaskStatus, str]] = ..., worker: _Optional[str] = ..., lease_until: _Optional[int] = ..., progress_step: _Optional[int] = ..., checkpoint_root: _Optional[bytes] = ..., created_at: _Optional[int] = ...) -> None: ...

class Worker(_message.Message):
    __slots__ = ("account", "role", "stake", "capabilities", "active", "active_claims")
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    STAKE_FIELD_NUMBER: _ClassVar[int]
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_CLAIMS_FIELD_NUMBER: _ClassVar[int]
    account: str
    role: WorkerRole
    stake: str
    capabilities: Capabilities
    active: bool
    active_claims: int
    def __init__(self, account: _Optional[str] = ..., role: _Optional[_Union[WorkerRole, str]] = ..., stake: _Optional[str] = ..., capabilities: _Optional[_Union[Capabilities, _Mapping]] = ..., active: _Optional[bool] = ..., active_claims: _Optional[int] = ...) -> None: ...

class ProgressUpdate(_message.Message):
    __slots__ = ("task_id", "worker", "step", "epoch", "loss", "metrics", "checkpoint_root")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    WORKER_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    LOSS_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_ROOT_FIELD_NUMBER: _ClassVar[int]
    task_id: int
    worker: str
    step: int
    epoch: int
    loss: float
    metrics: _containers.ScalarMap[str, float]
    checkpoint_root: bytes
    def __init__(self, task_id: _Optional[int] = ..., worker: _Optional[str] = ..., step: _Optional[int] = ..., epoch: _Optional[int] = ..., loss: _Optional[float] = ..., metrics: _Optional[_Mapping[str, float]] = ..., checkpoint_root: _Optional[bytes] = ...) -> None: ...

class Value(_message.Message):
    __slots__ = ("bool_value", "int_value", "big_int_value", "double_value", "string_value", "bytes_value", "list_value", "map_value")
    BOOL_VALUE_FIELD_NUMBER: _ClassVar[int]
    INT_VALUE_FIELD_NUMBER: _ClassVar[int]
    BIG_INT_VALUE_FIELD_NUMBER: _ClassVar[int]
    DOUBLE_VALUE_FIELD_NUMBER: _ClassVar[int]
    STRING_VALUE_FIELD_NUMBER: _ClassVar[int]
    BYTES_VALUE_FIELD_NUMBER: _ClassVar[int]
    LIST_VALUE_FIELD_NUMBER: _ClassVar[int]
    MAP_VALUE_FIELD_NUMBER: _ClassVar[int]
    bool_value: bool
    int_value: int
    big_int_value: str
    double_value: float
    string_value: str
    bytes_value: bytes
    list_value: ValueList
    map_value: ValueMap
    def __init__(self, bool_value: _Optional[bool] = ..., int_value: _Optional[int] = ..., big_int_value: _Optional[str] = ..., double_value: _Optional[float] = ..., string_value: _Optional[str] = ..., bytes_value: _Optional[bytes] = ..., list_value: _Optional[_Union[ValueList, _Mapping]] = ..., map_value: _Optional[_Union[ValueMap, _Mapping]] = ...) -> None: ...

class ValueList(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedCompositeFieldContainer[Value]
    def __init__(self, values: _Optional[_Iterable[_Union[Value, _Mapping]]] = ...) -> None: ...

class ValueMap(_message.Message):
    __slots__ = ("fields",)
    class FieldsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Value
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Value, _Mapping]] = ...) -> None: ...
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    fields: _containers.MessageMap[str, Value]
    def __init__(self, fields: _Optional[_Mapping[str, Value]] = ...) -> None: ...

class TaskEvent(_message.Message):
    __slots__ = ("task_id", "kind", "block", "detail", "progress")
    class DetailEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Value
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Value, _Mapping]] = ...) -> None: ...
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    BLOCK_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    task_id: int
    kind: str
    block: int
    detail: _containers.MessageMap[str, Value]
    progress: ProgressUpdate
    def __init__(self, task_id: _Optional[int] = ..., kind: _Optional[str] = ..., block: _Optional[int] = ..., detail: _Optional[_Mapping[str, Value]] = ..., progress: _Optional[_Union[ProgressUpdate, _Mapping]] = ...) -> None: ...
