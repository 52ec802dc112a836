"""A data owner's local facts about the federated tasks it joined, and its guard against signing twice.

The client daemon writes ``<state>/tasks.json`` when it joins a task (the spec document it fetched and checked
against the chain's spec_hash, the shard it committed to); every ClientApp process reads it, because Flower
starts a fresh process per message and the aggregator's messages must never choose the spec, the
hyperparameters or the data. This module imports no Flower, so the daemon (which only spawns Flower
processes) does not load it.

The signing guard: before a client signs an update for (task, round) it creates ``<state>/signed/<task>-<round>``
with O_EXCL holding the base and update hashes. A second, different update for the same round is refused;
the same one again (a retried message: local training is deterministic) may be signed again, since it
commits to nothing new.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workers.hashing import blake2_256_hex, normalize_hash

TASKS_FILE = "tasks.json"
SIGNED_DIR = "signed"
REVEALS_DIR = "secagg-reveals"   # <task>-<round>.ptts: a SecAgg round's reveal document, until the audit is over
MAX_TASKS_FILE_BYTES = 16 << 20
MAX_SHARD_BYTES = 1 << 30


class ClientStateError(ValueError):
    """The client's state directory does not say what this message needs (not joined, damaged, changed data)."""


class NotJoinedError(ClientStateError):
    """A message for a task this client did not join."""


class AlreadySignedError(ClientStateError):
    """A second, different update for a (task, round) this client already signed."""


@dataclass(frozen=True)
class JoinedTask:
    """One joined task: the spec document (canonical bytes, as hashed on chain) and the committed shard."""

    task_id: int
    spec: bytes
    spec_hash: str
    data: Path
    data_hash: str
    num_examples: int

    def to_json(self) -> dict[str, Any]:
        return {"spec": self.spec.decode("utf-8"), "spec_hash": self.spec_hash, "data": str(self.data),
                "data_hash": self.data_hash, "num_examples": self.num_examples}

    @classmethod
    def from_json(cls, task_id: int, doc: Any) -> JoinedTask:
        if not isinstance(doc, dict):
            raise ClientStateError(f"task {task_id}: entry is not an object")
        try:
            entry = cls(task_id=task_id, spec=str(doc["spec"]).encode("utf-8"),
                        spec_hash=normalize_hash(str(doc["spec_hash"])), data=Path(str(doc["data"])),
                        data_hash=normalize_hash(str(doc["data_hash"])), num_examples=int(doc["num_examples"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ClientStateError(f"task {task_id}: bad entry in {TASKS_FILE} ({exc})") from None
        if blake2_256_hex(entry.spec) != entry.spec_hash:
            raise ClientStateError(f"task {task_id}: the stored spec document does not match its hash")
        return entry

    def read_shard(self) -> bytes:
        """The shard's bytes, refused unless they are the data this client committed to on chain."""
        try:
            size = self.data.stat().st_size
            if size > MAX_SHARD_BYTES:
                raise ClientStateError(f"task {self.task_id}: shard {self.data} is over {MAX_SHARD_BYTES} bytes")
            raw = self.data.read_bytes()
        except OSError as exc:
            raise ClientStateError(f"task {self.task_id}: cannot read shard {self.data}: {exc.strerror}") from None
        if blake2_256_hex(raw) != self.data_hash:
            raise ClientStateError(f"task {self.task_id}: shard {self.data} changed since the client joined "
                                   f"(its hash is not the committed data_hash)")
        return raw


def _tasks_path(state_dir: Path) -> Path:
    return Path(state_dir) / TASKS_FILE


def load_tasks(state_dir: Path) -> dict[int, JoinedTask]:
    """Every joined task recorded in the state directory (none when the file does not exist yet)."""
    path = _tasks_path(state_dir)
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_TASKS_FILE_BYTES + 1)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ClientStateError(f"cannot read {path}: {exc.strerror}") from None
    if len(raw) > MAX_TASKS_FILE_BYTES:
        raise ClientStateError(f"{path} is over {MAX_TASKS_FILE_BYTES} bytes")
    try:
        doc = json.loads(raw)
        tasks = doc["tasks"]
        return {int(k): JoinedTask.from_json(int(k), v) for k, v in tasks.items()}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ClientStateError(f"{path} is damaged ({exc})") from None


def joined_task(state_dir: Path, task_id: int) -> JoinedTask:
    entry = load_tasks(state_dir).get(task_id)
    if entry is None:
        raise NotJoinedError(f"task {task_id} was not joined by this client")
    return entry


def record_task(state_dir: Path, entry: JoinedTask) -> None:
    """Add or replace one task's entry; written whole under a temporary name, so a ClientApp process
    never reads half a file."""
    state_dir = Path(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    tasks = load_tasks(state_dir)
    tasks[entry.task_id] = entry
    doc = {"tasks": {str(k): v.to_json() for k, v in sorted(tasks.items())}}
    path = _tasks_path(state_dir)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def claim_signature(state_dir: Path, task_id: int, round_: int, base_hash: bytes, update_hash: bytes) -> None:
    """Take the (task, round) signing slot for this update, or AlreadySignedError when another update holds it."""
    directory = Path(state_dir) / SIGNED_DIR
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{int(task_id)}-{int(round_)}"
    record = f"{bytes(base_hash).hex()} {bytes(update_hash).hex()}\n".encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        try:
            held = path.read_bytes()
        except OSError:
            held = b""
        if held == record:
            return
        raise AlreadySignedError(f"task {task_id} round {round_}: this client already signed another update "
                                 f"for this round") from None
    try:
        os.write(fd, record)
        os.fsync(fd)
    finally:
        os.close(fd)


def rounds_signed(state_dir: Path, task_id: int, before_round: int) -> int:
    """How many rounds before `before_round` this client signed an update for (a private task's claim counts
    each: a signed round's privacy is spent whether or not it was committed)."""
    count = 0
    for path in (Path(state_dir) / SIGNED_DIR).glob(f"{int(task_id)}-*"):
        _, _, round_ = path.name.partition("-")
        count += round_.isdigit() and int(round_) < before_round
    return count


def keep_reveal(state_dir: Path, task_id: int, round_: int, document: bytes) -> Path:
    """Keep a SecAgg round's reveal document (workers/fl/secagg_audit.py) for the daemon, written whole under a
    temporary name; it leaves this machine only if the chain draws this client for the round's audit."""
    directory = Path(state_dir) / REVEALS_DIR
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{int(task_id)}-{int(round_)}.ptts"
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(document)
    os.replace(tmp, path)
    return path


def keep_masking(state_dir: Path, task_id: int, round_: int, masking: bytes) -> None:
    """Attach a round's masking record to its kept reveal document (one bundle, workers/fl/secagg_audit.py), so
    the audit can check the masked vector this client sent; nothing to attach to without a kept reveal."""
    from workers.fl.secagg_audit import bundle

    path = Path(state_dir) / REVEALS_DIR / f"{int(task_id)}-{int(round_)}.ptts"
    if path.exists():
        keep_reveal(state_dir, task_id, round_, bundle(path.read_bytes(), masking))


def kept_reveals(state_dir: Path) -> list[tuple[int, int, Path]]:
    """The reveal documents kept and not yet settled: (task, round, path), in task and round order."""
    found = []
    for path in (Path(state_dir) / REVEALS_DIR).glob("*.ptts"):
        task, _, round_ = path.stem.partition("-")
        if task.isdigit() and round_.isdigit():
            found.append((int(task), int(round_), path))
    return sorted(found)


__all__ = ["REVEALS_DIR", "SIGNED_DIR", "TASKS_FILE", "AlreadySignedError", "ClientStateError", "JoinedTask",
           "NotJoinedError", "claim_signature", "joined_task", "keep_masking", "keep_reveal", "kept_reveals",
           "load_tasks",
           "record_task", "rounds_signed"]
