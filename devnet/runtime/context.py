"""What a dispatchable and a hook see: the state overlay, the block, the event sink."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable


@dataclass
class DispatchContext:
    state: Any  # devnet.state.Overlay
    block_number: int
    timestamp_ms: int
    phase: Any = ("Initialization", None)
    events: list[dict[str, Any]] = field(default_factory=list)

    def deposit_event(self, pallet: Any, name: str, payload: Any = None, topics: Iterable[bytes] = ()) -> None:
        """Record an event of `pallet`; the runtime encodes them into System.Events at block end."""
        self.events.append({"phase": self.phase, "event": (pallet.name, (name, payload)), "topics": list(topics)})
