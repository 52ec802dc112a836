"""Shared fixtures: a real devnet process per test module (the harness's, paratrain.local); a tighter
timeout for the unit tests. tests/ is on sys.path so that test modules import the test-only helpers
(forgeries, orchestrator_process's scenario) by name."""
from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from paratrain.local import DevnetProcess

sys.path.insert(0, str(Path(__file__).resolve().parent))

UNIT_DIR = Path(__file__).resolve().parent / "unit"
# The slowest unit test takes about 20 s on a loaded 2-core machine (an optimizer round trip through
# torch); the 600 s default in pyproject.toml is sized for the integration tests' module set-ups. A hung
# unit test fails after this instead, so `make test-fast` never sits for ten minutes on one.
UNIT_TIMEOUT_S = 120


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Give every unit test UNIT_TIMEOUT_S unless it carries its own @pytest.mark.timeout."""
    for item in items:
        if UNIT_DIR in Path(item.path).parents and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(UNIT_TIMEOUT_S))


@pytest.fixture(scope="module")
def devnet() -> Iterator[DevnetProcess]:
    """A devnet node (instant seal, immediate finality, in memory) shared by one test module."""
    with DevnetProcess() as node:
        yield node
