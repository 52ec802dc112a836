"""Fault injection for tests and drills: step hooks that the training loop calls after each step."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class CrashOnce:
    """Kill the training worker process of `rank` (os._exit, no clean-up) right after step `step`,
    once: the marker file records that it happened, so the restarted run goes through."""

    step: int
    marker: str
    rank: int = 0
    exit_code: int = 1

    def __call__(self, step: int, rank: int) -> None:
        if step == self.step and rank == self.rank and not Path(self.marker).exists():
            Path(self.marker).write_text(f"crashed pid {os.getpid()} at step {step}\n")
            os._exit(self.exit_code)
