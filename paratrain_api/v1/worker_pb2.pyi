from paratrain_api.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RegisterWorkerRequest(_message.Message):
    __slots__ = ("capabilities",)
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    capabilities: _common_pb2.Capabilities
    def __init__(self, capabilities: _Optional[_Union[_common_pb2.Capabilities, _Mapping]] = ...) -> None: ...

class RegisterWorkerResponse(_message.Message):
    __slots__ = ("worker",)
    WORKER_FIELD_NUMBER: _ClassVar[int]
    worker: _common_pb2.Worker
    def __init__(self, worker: _Optional[_Union[_common_pb2.Worker, _Mapping]] = ...) -> None: ...

class RequestAssignmentRequest(_message.Message):
    __slots__ = ("wait_ms", "declined_task_ids")
    WAIT_MS_FIELD_NUMBER: _ClassVar[int]
    DECLINED_TASK_IDS_FIELD_NUMBER: _ClassVar[int]
    wait_ms: int
    declined_task_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, wait_ms: _Optional[int] = ..., declined_task_ids: _Optional[_Iterable[int]] = ...) -> None: ...

class Assignment(_message.Message):
    __slots__ = ("task", "worker", "expires_in_ms")
    TASK_FIELD_NUMBER: _ClassVar[int]
    WORKER_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_IN_MS_FIELD_NUMBER: _ClassVar[int]
    task: _common_pb2.Task
    worker: str
    expires_in_ms: int
    def __init__(self, task: _Optional[_Union[_common_pb2.Task, _Mapping]] = ..., worker: _Optional[str] = ..., expires_in_ms: _Optional[int] = ...) -> None: ...

class RequestAssignmentResponse(_message.Message):
    __slots__ = ("assignment",)
    ASSIGNMENT_FIELD_NUMBER: _ClassVar[int]
    assignment: Assignment
    def __init__(self, assignment: _Optional[_Union[Assignment, _Mapping]] = ...) -> None: ...

class StreamProgressRequest(_message.Message):
    __slots__ = ("update", "heartbeat_extrinsic")
    UPDATE_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_EXTRINSIC_FIELD_NUMBER: _ClassVar[int]
    update: _common_pb2.ProgressUpdate
    heartbeat_extrinsic: bytes
    def __init__(self, update: _Optional[_Union[_common_pb2.ProgressUpdate, _Mapping]] = ..., heartbeat_extrinsic: _Optional[bytes] = ...) -> None: ...

class StreamProgressResponse(_message.Message):
    __slots__ = ("updates", "heartbeats")
    UPDATES_FIELD_NUMBER: _ClassVar[int]
    HEARTBEATS_FIELD_NUMBER: _ClassVar[int]
    updates: int
    heartbeats: int
    def __init__(self, updates: _Optional[int] = ..., heartbeats: _Optional[int] = ...) -> None: ...

class HeartbeatRequest(_message.Message):
    __slots__ = ("update", "heartbeat_extrinsic")
    UPDATE_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_EXTRINSIC_FIELD_NUMBER: _ClassVar[int]
    update: _common_pb2.ProgressUpdate
    heartbeat_extrinsic: bytes
    def __init__(self, update: _Optional[_Union[_common_pb2.ProgressUpdate, _Mapping]] = ..., heartbeat_extrinsic: _Optional[bytes] = ...) -> None: ...

class HeartbeatResponse(_message.Message):
    __slots__ = ("heartbeat_relayed",)
    HEARTBEAT_RELAYED_FIELD_NUMBER: _ClassVar[int]
    heartbeat_relayed: bool
    def __init__(self, heartbeat_relayed: _Optional[bool] = ...) -> None: ...

class HeartbeatStreamRequest(_message.Message):
    __slots__ = ("heartbeat", "sequence", "timestamp_ms", "nonce", "signature")
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_MS_FIELD_NUMBER: _ClassVar[int]
    NONCE_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    heartbeat: bytes
    sequence: int
    timestamp_ms: int
    nonce: bytes
    signature: bytes
    def __init__(self, heartbeat: _Optional[bytes] = ..., sequence: _Optional[int] = ..., timestamp_ms: _Optional[int] = ..., nonce: _Optional[bytes] = ..., signature: _Optional[bytes] = ...) -> None: ...

class HeartbeatStreamResponse(_message.Message):
    __slots__ = ("sequence", "heartbeat_relayed")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_RELAYED_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    heartbeat_relayed: bool
    def __init__(self, sequence: _Optional[int] = ..., heartbeat_relayed: _Optional[bool] = ...) -> None: ...

class GetTaskSpecRequest(_message.Message):
    __slots__ = ("task_id",)
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    task_id: int
    def __init__(self, task_id: _Optional[int] = ...) -> None: ...

class GetTaskSpecResponse(_message.Message):
    __slots__ = ("task",)
    TASK_FIELD_NUMBER: _ClassVar[int]
    task: _common_pb2.Task
    def __init__(self, task: _Optional[_Union[_common_pb2.Task, _Mapping]] = ...) -> None: ...

class RelayExtrinsicRequest(_message.Message):
    __slots__ = ("task_id", "extrinsic")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    EXTRINSIC_FIELD_NUMBER: _ClassVar[int]
    task_id: int
    extrinsic: bytes
    def __init__(self, task_id: _Optional[int] = ..., extrinsic: _Optional[bytes] = ...) -> None: ...

class RelayExtrinsicResponse(_message.Message):
    __slots__ = ("extrinsic_hash",)
    EXTRINSIC_HASH_FIELD_NUMBER: _ClassVar[int]
    extrinsic_hash: bytes
    def __init__(self, extrinsic_hash: _Optional[bytes] = ...) -> None: ...

class ReportResultRequest(_message.Message):
    __slots__ = ("task_id", "extrinsic_hash")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    EXTRINSIC_HASH_FIELD_NUMBER: _ClassVar[int]
    task_id: int
    extrinsic_hash: bytes
    def __init__(self, task_id: _Optional[int] = ..., extrinsic_hash: _Optional[bytes] = ...) -> None: ...

class ReportResultResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class OpenAuthSessionRequest(_message.Message):
    __slots__ = ("worker_key",)
    WORKER_KEY_FIELD_NUMBER: _ClassVar[int]
    worker_key: bytes
    def __init__(self, worker_key: _Optional[bytes] = ...) -> None: ...

class OpenAuthSessionResponse(_message.Message):
    __slots__ = ("session_id", "server_key", "expires_in_ms")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    SERVER_KEY_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_IN_MS_FIELD_NUMBER: _ClassVar[int]
    session_id: bytes
    server_key: bytes
    expires_in_ms: int
    def __init__(self, session_id: _Optional[bytes] = ..., server_key: _Optional[bytes] = ..., expires_in_ms: _Optional[int] = ...) -> None: ...
