"""Event streams: finalized blocks' events, in order, surviving reconnects without gaps or duplicates.

The stream polls by block number rather than trusting a subscription: it remembers the
last block it yielded, and after any connection failure (node restarted, socket killed)
it reconnects and fetches every finalized block after that one by number
(``chain_getBlockHash``), decoding ``System.Events`` at each. A block is yielded once,
after it is finalized, and never skipped.
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from runtime_bindings.base import BlockEvents, EventRecord
from runtime_bindings.errors import ConnectionLost

if TYPE_CHECKING:
    from runtime_bindings.client import Chain


class EventStreams:
    def __init__(self, chain: Chain) -> None:
        self._chain = chain

    def finalized(self, from_block: int | None = None, *, to_block: int | None = None,
                  poll_interval: float = 0.2, reconnect_timeout: float = 60.0,
                  own_connection: bool = True) -> Iterator[BlockEvents]:
        """Yield BlockEvents for every finalized block from `from_block` (default: the current
        finalized head) on, up to `to_block` inclusive if given, else forever.

        On a lost connection it retries (doubling the pause up to 2 s) for up to
        `reconnect_timeout` seconds, then raises ConnectionLost; `stream.last_number`
        tells where a new stream should resume. With `own_connection` (the default) the
        stream uses a connection of its own, so it never holds up other users of `chain`.
        """
        return FinalizedEvents(self._chain, from_block, to_block, poll_interval, reconnect_timeout, own_connection)

    def finalized_events(self, from_block: int | None = None, **options: object) -> Iterator[tuple[int, EventRecord]]:
        """The same stream flattened: (block number, event record) pairs."""
        for block in self.finalized(from_block, **options):  # type: ignore[arg-type]
            for record in block.records:
                yield block.number, record


class FinalizedEvents(Iterator[BlockEvents]):
    """Iterator state of one finalized-event stream: `last_number` is the last block yielded."""

    def __init__(self, chain: Chain, from_block: int | None, to_block: int | None, poll_interval: float,
                 reconnect_timeout: float, own_connection: bool) -> None:
        self._parent, self._own = chain, own_connection
        self._chain: Chain | None = None
        self.to_block, self.poll_interval, self.reconnect_timeout = to_block, poll_interval, reconnect_timeout
        self._dropped = 0
        self._past_reconnects = 0
        if from_block is None:
            from_block = self._conn().finalized_number()
        self.last_number = from_block - 1
        self._finalized = -1

    def _conn(self) -> Chain:
        if self._chain is None:
            self._chain = self._parent.clone() if self._own else self._parent
        return self._chain

    @property
    def reconnects(self) -> int:
        """Connections lost and re-established so far (the stream's own and its Chain's retries)."""
        current = self._chain.reconnects if self._chain is not None else 0
        return self._dropped + self._past_reconnects + current

    def _drop(self) -> None:
        if self._chain is not None:
            self._past_reconnects += self._chain.reconnects if self._own else 0
            if self._own:
                self._chain.close()
        self._chain = None

    def close(self) -> None:
        self._drop()

    def __iter__(self) -> FinalizedEvents:
        return self

    def __next__(self) -> BlockEvents:
        if self.to_block is not None and self.last_number >= self.to_block:
            self._drop()
            raise StopIteration
        failing_since: float | None = None
        pause = self.poll_interval
        while True:
            try:
                chain = self._conn()
                number = self.last_number + 1
                if self._finalized < number:
                    self._finalized = chain.finalized_number()
                if self._finalized >= number:
                    block_hash = chain.block_hash(number)
                    if block_hash is None:
                        raise ConnectionLost(f"finalized block {number} has no hash")
                    block = BlockEvents(number, block_hash, chain.events_at(block_hash))
                    self.last_number = number
                    return block
                time.sleep(self.poll_interval)
                failing_since, pause = None, self.poll_interval
            except ConnectionLost:
                self._drop()
                now = time.monotonic()
                failing_since = failing_since or now
                if now - failing_since > self.reconnect_timeout:
                    raise
                self._dropped += 1
                time.sleep(pause)
                pause = min(pause * 2, 2.0)
