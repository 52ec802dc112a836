"""Shared fixtures: a real devnet process per test module."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterator

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from devnet_process import DevnetProcess  # noqa: E402


@pytest.fixture(scope="module")
def devnet() -> Iterator[DevnetProcess]:
    """A devnet node (instant seal, immediate finality, in memory) shared by one test module."""
    with DevnetProcess() as node:
        yield node
