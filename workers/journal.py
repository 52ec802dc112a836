"""The worker's journal: per claimed task, the checkpoints its training has reached, on local disk.

The chain says which tasks the worker still holds; the journal says how far each got, so that a restarted
daemon resumes from the last checkpoint instead of the start. Entries are written atomically (a temporary
file, then a rename), and an entry of another spec or world size is ignored: its checkpoints would not be
this run's. Checkpoints are content-addressed in the artifact store, so a journal never needs to be trusted
for their contents, only for their order.
"""
from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("paratrain.worker")


class Journal:
    def __init__(self, directory: Path, world_size: int, stored: Callable[[str], bool]) -> None:
        """`stored(digest)`: whether the artifact store still holds a checkpoint."""
        self.directory, self.world_size, self.stored = directory, world_size, stored

    def path(self, task_id: int) -> Path:
        return self.directory / f"task-{task_id}.json"

    def checkpoints(self, task_id: int, spec_hash: str) -> list[str]:
        """The checkpoints to resume `task_id` from (empty: start from the beginning)."""
        try:
            doc = json.loads(self.path(task_id).read_text())
        except (OSError, ValueError):
            return []
        if doc.get("spec_hash") != spec_hash or doc.get("world_size") != self.world_size:
            log.info("task %d: the journal is of another spec or world size; starting from the beginning", task_id)
            return []
        checkpoints = [c for c in doc.get("checkpoints", []) if isinstance(c, str)]
        while checkpoints and not self.stored(checkpoints[-1]):
            checkpoints.pop()  # the store lost it: go back to one we still have
        return checkpoints

    def record(self, task_id: int, spec_hash: str, checkpoints: list[str], step: int) -> None:
        path = self.path(task_id)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"task_id": task_id, "spec_hash": spec_hash, "world_size": self.world_size,
                                   "checkpoints": checkpoints, "step": step}))
        os.replace(tmp, path)

    def forget(self, task_id: int) -> None:
        try:
            self.path(task_id).unlink()
        except OSError:
            pass
