"""How a daemon tells others what happens to it: `subscribe(observer)`, then `observer(what, detail)` per event.

The worker and validator daemons are Observable. Their lifecycle events (a task claimed, a verdict cast ...)
and health signals (a successful chain read, progress of the main loop) go to every subscriber, so that
metrics (workers.health) and anything else can follow a daemon without the daemon keeping more records or
knowing who listens. The event names and their details are listed in workers.health. `Recorder` is the
bounded observer that tests and benchmarks subscribe to read a daemon's events back.
"""
from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Collection, Mapping
from typing import Any

Observer = Callable[[str, Mapping[str, Any]], None]

log = logging.getLogger("paratrain.observers")


class Observable:
    """A mixin: `subscribe` observers; `_notify(what, **detail)` calls each of them in the daemon's thread."""

    # a tuple replaced on subscribe, so notifying from several threads never sees one half-updated
    _observers: tuple[Observer, ...] = ()

    def subscribe(self, observer: Observer) -> None:
        """Subscribe before run(): the observer is called synchronously and must return quickly."""
        self._observers = (*self._observers, observer)

    def _notify(self, what: str, **detail: Any) -> None:
        for observer in self._observers:
            try:
                observer(what, detail)
            except Exception:  # noqa: BLE001 - a broken subscriber must never stop or change the daemon
                log.exception("observer %r failed on %r", observer, what)


class Recorder:
    """A bounded observer that keeps the last `maxlen` events: what tests and benchmarks subscribe to read what
    a daemon did, so that the daemon itself keeps no list that grows for as long as it runs.

        recorder = Recorder(maxlen=1000)
        daemon.subscribe(recorder)
        ...
        [submitted] = recorder.of("submitted")
    """

    def __init__(self, maxlen: int = 10_000, *, only: Collection[str] | None = None) -> None:
        """`only`: the event names kept (None: all); a daemon's `chain` and `progress` signals are frequent,
        so a recorder that waits for a rare event keeps just that one and its window is not crowded out."""
        if maxlen < 1:
            raise ValueError(f"maxlen must be at least 1, not {maxlen}")
        self._events: deque[tuple[str, dict[str, Any]]] = deque(maxlen=maxlen)
        self._only = None if only is None else frozenset(only)

    def __call__(self, what: str, detail: Mapping[str, Any]) -> None:
        if self._only is None or what in self._only:
            self._events.append((what, dict(detail)))  # deque.append is atomic: safe from several threads

    @property
    def events(self) -> list[tuple[str, dict[str, Any]]]:
        """A copy of the kept events, oldest first: (what, detail)."""
        return list(self._events)

    def of(self, what: str) -> list[dict[str, Any]]:
        """The details of the kept events named `what`, oldest first."""
        return [detail for name, detail in list(self._events) if name == what]

    def __len__(self) -> int:
        return len(self._events)
