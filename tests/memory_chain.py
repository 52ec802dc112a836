"""Chains with no node process and no socket: runtime_bindings' MemoryTransport over devnet's in-process
JSON-RPC (devnet.rpc.inprocess), for unit tests of the bindings, the orchestrator's indexer and its handlers.

`forbid_sockets` makes any socket connection fail the test, so a test using it proves that nothing it
drives opened one."""
from __future__ import annotations

import socket
from collections.abc import Callable

import pytest

from devnet.rpc.inprocess import InProcessNode
from runtime_bindings import Chain, Keypair
from runtime_bindings.generated import types as t
from runtime_bindings.transport import MemoryTransport

URL = "memory://devnet"


class SocketUsed(AssertionError):
    """A test that must run without sockets tried to connect one."""


def forbid_sockets(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail (SocketUsed) on every `socket.connect`/`connect_ex` for the rest of the test."""
    def refuse(sock: socket.socket, address: object) -> None:
        raise SocketUsed(f"a socket connection to {address!r} was opened")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)


def memory_chain(node: InProcessNode, *, timeout: float = 10.0) -> Chain:
    """A Chain on a new in-process connection to `node`."""
    return Chain(transport=MemoryTransport(node.connection(), url=URL), timeout=timeout)


def chain_factory(node: InProcessNode, *, timeout: float = 10.0) -> Callable[[], Chain]:
    """What `Indexer(connect=...)` and `start_orchestrator(connect=...)` take: a new memory chain on `node`
    per call (the indexer opens another after a lost connection)."""
    return lambda: memory_chain(node, timeout=timeout)


def route_connects(monkeypatch: pytest.MonkeyPatch, node: InProcessNode) -> None:
    """Every `Chain.connect(url, ...)` of the test (the indexer's, the daemons') gets a memory chain on `node`."""
    def connect(cls: type[Chain], url: str, *, timeout: float = 30.0, **options: object) -> Chain:
        return memory_chain(node, timeout=timeout)

    monkeypatch.setattr(Chain, "connect", classmethod(connect))


def create_task(chain: Chain, requester: Keypair, bounty: int = 10 * 10**12) -> int:
    """Post a small task (the id it got) as `requester`: what the indexer and handler tests follow."""
    spec = t.TaskSpec(recipe="mnist-mlp", spec_hash="0x" + "11" * 32, spec_uri="s3://specs/mnist.yaml",
                      dataset_hash="0x" + "22" * 32, eval_metric="accuracy", eval_target=900_000,
                      higher_is_better=True, requirements=t.Requirements(2, 1, 8_000), parent_model=None)
    receipt = chain.task_bounties.create_task(requester, spec, bounty, 0, chain.best_number() + 500, 1, None)
    return next(e.task_id for e in receipt.events if e.name == "TaskCreated")
