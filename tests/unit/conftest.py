"""Fixtures of the unit tests that drive a chain with no node process and no socket (tests/memory_chain.py):
`node`, devnet's runtime in this process with every socket connection forbidden, and `chain`, a Chain on it
over MemoryTransport. A module's own fixture of the same name takes precedence."""
from __future__ import annotations

from collections.abc import Iterator

import pytest
from memory_chain import forbid_sockets, memory_chain

from devnet.rpc.inprocess import InProcessNode
from runtime_bindings import Chain


@pytest.fixture
def node(monkeypatch: pytest.MonkeyPatch) -> Iterator[InProcessNode]:
    forbid_sockets(monkeypatch)
    with InProcessNode() as in_process:
        yield in_process


@pytest.fixture
def chain(node: InProcessNode) -> Iterator[Chain]:
    with memory_chain(node) as c:
        yield c
