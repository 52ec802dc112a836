"""How a daemon tells others what happens to it: `subscribe(observer)`, then `observer(what, detail)` per event.

The worker and validator daemons are Observable. Their lifecycle events (a task claimed, a verdict cast ...)
and health signals (a successful chain read, progress of the main loop) go to every subscriber, so that
metrics (workers.health) and anything else can follow a daemon without the daemon keeping more records or
knowing who listens. The event names and their details are listed in workers.health.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
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
