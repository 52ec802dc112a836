"""What the worker and validator daemons share: key, store, state directory, chain connection, signals, observers.

Both daemons are built the same way, so they are built here once::

    daemon = WorkerDaemon(config)          # config: key, store settings, chain_url, state_dir, timeouts
    daemon.subscribe(observer)             # workers.observers: lifecycle events and health signals
    daemon.stop_on_signals()               # the command line: SIGINT/SIGTERM -> on_signal(); a second exits
    daemon.run()                           # set-up (state directory, chain, start-up checks), then its loop

Set-up, in this order, from the subclass's `_connect`: `_open_state_dir()` (``--state-dir``, by default
``~/.cache/paratrain/<role>/<account>``), `_connect_chain()` (the node at ``chain_url``; unreachable: the
daemon's error class, one log line), `_startup_checks()` — THE place for checks of this account against the
chain before the daemon takes any work (registered, with the role it needs; a subclass extends it, e.g. the
worker's capability check, by calling ``super()._startup_checks(info)`` first).

Reconnection: `Chain` re-opens a dropped WebSocket itself once per read; `_with_chain_retries` is the daemon's
outer policy: a chain error (workers.retry decides which) is retried after a pause, reconnecting first when
the connection itself was lost, and only the last failure ends the daemon.

Signals: the first SIGINT/SIGTERM calls `on_signal(name)` (the subclass's policy: the worker stops at once and
keeps its claim, the validator after the current step); a second one exits at once with status 130.
"""
from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Protocol

from workers.artifacts import ArtifactStore, open_store
from workers.errors import DaemonSetupError
from workers.observers import Observable
from workers.retry import Decision, decide

log = logging.getLogger("paratrain.daemon")

EXIT_OK, EXIT_ERROR, EXIT_SECOND_SIGNAL = 0, 1, 130


class BaseConfig(Protocol):
    """The settings the shared set-up reads (both DaemonConfig and ValidatorConfig have them)."""

    key: str
    chain_url: str
    state_dir: str | None
    chain_timeout_s: float
    submit_timeout_s: float


def stop_on_signals(on_stop: Callable[[str], None]) -> None:
    """SIGINT/SIGTERM call `on_stop(signal name)`; a second one exits at once (status 130). Main thread only."""
    count = 0

    def handler(signum: int, _frame: Any) -> None:
        nonlocal count
        count += 1
        if count > 1:
            os._exit(EXIT_SECOND_SIGNAL)
        on_stop(signal.Signals(signum).name)

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


class DaemonBase(Observable):
    """The shared half of a daemon. Subclasses set `role` (the state directory's folder), `chain_role` (the
    Workers role their account must be registered with) and `error` (their DaemonSetupError subclass)."""

    role: ClassVar[str]
    chain_role: ClassVar[str]
    error: ClassVar[type[DaemonSetupError]] = DaemonSetupError

    def __init__(self, config: Any, *, keypair: Any = None, store: Any = None) -> None:
        self.config = config
        self._keypair, self._store = keypair, store
        self._stop = threading.Event()
        self.chain: Any = None
        self.state_dir: Path | None = None

    # Identity and storage ---------------------------------------------------------------------
    @property
    def keypair(self) -> Any:
        """Loaded on first use, so that a daemon built with an explicit keypair never parses `config.key`."""
        if self._keypair is None:
            from workers.keys import load_keypair
            self._keypair = load_keypair(self.config.key)
        return self._keypair

    @property
    def account(self) -> str:
        return str(self.keypair.ss58_address)

    @property
    def store(self) -> ArtifactStore:
        if self._store is None:
            self._store = open_store(self.config)
        return self._store

    def _open_state_dir(self) -> Path:
        """The daemon's own directory (journal, status, state file), created when missing."""
        root = Path(self.config.state_dir or Path.home() / ".cache" / "paratrain" / self.role / self.account)
        root.mkdir(parents=True, exist_ok=True)
        self.state_dir = root
        return root

    # The chain --------------------------------------------------------------------------------
    def _connect_chain(self) -> None:
        from runtime_bindings import BindingsError, Chain

        try:
            self.chain = Chain.connect(self.config.chain_url, timeout=self.config.chain_timeout_s,
                                       submit_timeout=self.config.submit_timeout_s)
        except BindingsError as exc:
            raise self.error(f"cannot reach the chain at {self.config.chain_url}: {exc}") from None

    def _startup_checks(self) -> Any:
        """Checks of this account against the chain before the daemon takes any work; the account's
        Workers entry. Subclasses add theirs after calling this one."""
        account = self.account
        info = self.chain.workers.workers(account)
        if info is None:
            raise self.error(f"{account} is not registered on chain: register it as a {self.chain_role} first "
                             f"(paratrain stake register --role {self.chain_role.lower()} --stake AMOUNT)")
        if info.role != self.chain_role:
            raise self.error(f"{account} is registered as a {info.role}, not a {self.chain_role}")
        return info

    def _with_chain_retries(self, action: Callable[[], None], then: Callable[[], None] | None = None,
                            attempts: int = 3, pause_s: float = 2.0) -> None:
        """Run `action`; an error `workers.retry.decide` calls RETRY_LATER (the chain, not the work) is retried
        after `pause_s`, on a reconnected chain when the connection was lost, with `then` instead of `action`
        when given (the chain holds what was done: work resumes from it); the last failure propagates."""
        from runtime_bindings import BindingsError, ConnectionLost

        for attempt in range(1, attempts + 1):
            try:
                action()
                return
            except BindingsError as exc:
                if decide(exc) is not Decision.RETRY_LATER or attempt == attempts or self.stopping:
                    raise
                log.warning("chain error (%s); retrying from the chain's state in %g s", exc, pause_s)
                self._stop.wait(pause_s)
                if isinstance(exc, ConnectionLost):
                    try:
                        self.chain.reconnect()
                    except ConnectionLost as again:
                        log.warning("the chain is still unreachable: %s", again)
                if then is not None:
                    action = then

    def close(self) -> None:
        if self.chain is not None:
            self.chain.close()
            self.chain = None

    # Stopping ---------------------------------------------------------------------------------
    def stop(self) -> None:
        """From any thread: the daemon's loop returns at its next check."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def on_signal(self, name: str) -> None:
        """The first SIGINT/SIGTERM: stop (a subclass may log what it keeps, or leave its work at once)."""
        log.warning("%s: stopping", name)
        self.stop()

    def stop_on_signals(self) -> None:
        """Install the signal policy (from the main thread, before `run()`)."""
        stop_on_signals(self.on_signal)
