"""The worker's journal: what a restarted daemon resumes from."""
from __future__ import annotations

from pathlib import Path

from workers.journal import Journal

SPEC = "ab" * 32


def test_resumes_from_the_recorded_checkpoints(tmp_path: Path) -> None:
    journal = Journal(tmp_path, world_size=2, stored=lambda digest: True)
    journal.record(7, SPEC, ["c1", "c2", "c3"], step=60)
    assert journal.checkpoints(7, SPEC) == ["c1", "c2", "c3"]
    assert not list(tmp_path.glob("*.tmp"))  # written by rename: a crash leaves the old entry or the new one


def test_another_spec_or_world_size_starts_over(tmp_path: Path) -> None:
    Journal(tmp_path, world_size=2, stored=lambda digest: True).record(7, SPEC, ["c1"], step=20)
    assert Journal(tmp_path, world_size=2, stored=lambda digest: True).checkpoints(7, "cd" * 32) == []
    assert Journal(tmp_path, world_size=1, stored=lambda digest: True).checkpoints(7, SPEC) == []


def test_checkpoints_the_store_lost_are_dropped_from_the_end(tmp_path: Path) -> None:
    journal = Journal(tmp_path, world_size=1, stored=lambda digest: digest != "c3")
    journal.record(7, SPEC, ["c1", "c2", "c3"], step=60)
    assert journal.checkpoints(7, SPEC) == ["c1", "c2"]


def test_missing_unreadable_and_forgotten_entries_start_over(tmp_path: Path) -> None:
    journal = Journal(tmp_path, world_size=1, stored=lambda digest: True)
    assert journal.checkpoints(7, SPEC) == []
    journal.path(8).write_text("{not json")
    assert journal.checkpoints(8, SPEC) == []
    journal.record(9, SPEC, ["c1"], step=20)
    journal.forget(9)
    journal.forget(9)  # twice: no error
    assert journal.checkpoints(9, SPEC) == []
