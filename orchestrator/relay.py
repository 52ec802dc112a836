"""Relays worker-signed extrinsics to the chain; the orchestrator never signs anything itself.

`Relay.submit` sends the bytes as they are (`author_submitExtrinsic`) and maps a pool refusal to
`FailedPrecondition` naming the validity kind (Stale, Future, BadProof, Payment ...), a malformed
extrinsic to `InvalidArgument` and an unreachable node to `Unavailable`.

Heartbeats are rate-limited per task: at most one every `heartbeat_interval_blocks` finalized blocks.
A heartbeat arriving inside the window replaces the one waiting (the latest progress wins; the
excess is dropped) and the waiting one is sent when the window opens (`on_block`).
"""
from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from orchestrator.errors import FailedPrecondition, InvalidArgument, Unavailable
from runtime_bindings import BadFormat, Chain, ConnectionLost, RpcError, TransactionRejected, extrinsic_hash

log = logging.getLogger(__name__)


class RelayMetrics(Protocol):
    """What the relay counts on (`orchestrator.metrics.Metrics` is one): each submission by call and result."""

    def relayed(self, call: str, result: str) -> None: ...


@dataclass
class _Pending:
    raw: bytes
    step: int


class Relay:
    def __init__(self, chain: Chain, *, heartbeat_interval_blocks: int = 2,
                 height: Callable[[], int] | None = None, metrics: RelayMetrics | None = None) -> None:
        """`height()` is the current finalized height (the indexer's)."""
        self.chain = chain
        self.heartbeat_interval_blocks = max(1, heartbeat_interval_blocks)
        self._height = height or (lambda: 0)
        self.metrics = metrics
        self._lock = threading.Lock()
        self._last_sent: dict[int, int] = {}  # task -> height at which its last heartbeat went out
        self._pending: dict[int, _Pending] = {}
        self.dropped = 0

    # Any extrinsic --------------------------------------------------------------------------
    def submit_sync(self, raw: bytes, call: str = "extrinsic") -> str:
        try:
            self.chain.rpc("author_submitExtrinsic", ["0x" + raw.hex()], retry=False)
        except BadFormat as exc:
            self._count(call, "bad_format")
            raise InvalidArgument(f"the chain cannot decode the extrinsic: {exc}") from None
        except TransactionRejected as exc:
            kind = getattr(exc, "kind", None) or type(exc).__name__
            self._count(call, f"rejected:{kind}")
            raise FailedPrecondition(f"the transaction pool refused the extrinsic ({kind}): {exc}") from None
        except ConnectionLost as exc:
            self._count(call, "unavailable")
            raise Unavailable(f"the chain is unreachable: {exc}") from None
        except RpcError as exc:
            self._count(call, "error")
            raise FailedPrecondition(f"the node refused the extrinsic: {exc}") from None
        self._count(call, "ok")
        return extrinsic_hash(raw)

    async def submit(self, raw: bytes, call: str = "extrinsic") -> str:
        """Submit worker-signed bytes; returns the extrinsic hash (0x-hex)."""
        return await asyncio.to_thread(self.submit_sync, raw, call)

    # Heartbeats -----------------------------------------------------------------------------
    async def heartbeat(self, task_id: int, raw: bytes, step: int) -> str | None:
        """Send now if the task's window is open (returns the hash), else keep it as the waiting one (None)."""
        now = self._height()
        with self._lock:
            last = self._last_sent.get(task_id)
            if last is not None and now < last + self.heartbeat_interval_blocks:
                waiting = self._pending.get(task_id)
                if waiting is not None and waiting.step > step:
                    self.dropped += 1  # an older progress than the one waiting
                    return None
                if waiting is not None:
                    self.dropped += 1
                self._pending[task_id] = _Pending(raw, step)
                return None
            self._last_sent[task_id] = now
            self._pending.pop(task_id, None)
        return await self.submit(raw, "heartbeat")

    def on_block(self, number: int) -> list[tuple[int, bytes]]:
        """Take the waiting heartbeats whose window opened at `number` (the caller submits them)."""
        due: list[tuple[int, bytes]] = []
        with self._lock:
            for task_id, pending in list(self._pending.items()):
                if number >= self._last_sent.get(task_id, 0) + self.heartbeat_interval_blocks:
                    due.append((task_id, pending.raw))
                    self._last_sent[task_id] = number
                    del self._pending[task_id]
        return due

    async def flush(self, number: int) -> None:
        for task_id, raw in self.on_block(number):
            try:
                await self.submit(raw, "heartbeat")
            except Exception as exc:  # noqa: BLE001 - a stale waiting heartbeat is simply lost
                log.info("relay: waiting heartbeat of task %d not sent: %s", task_id, exc)

    def forget(self, task_id: int) -> None:
        """The task is no longer claimed: drop its rate-limit state."""
        with self._lock:
            self._last_sent.pop(task_id, None)
            self._pending.pop(task_id, None)

    def _count(self, call: str, result: str) -> None:
        if self.metrics is not None:
            self.metrics.relayed(call, result)


__all__ = ["Relay", "RelayMetrics"]
