"""Health of the worker and validator daemons: Prometheus metrics and the probes Kubernetes asks, on one port.

    health = ValidatorHealth(HealthLimits(liveness_timeout_s=600, readiness_timeout_s=120))
    # ^ its own CollectorRegistry: several daemons may share a process (the demo, the tests)
    daemon.subscribe(health.observe)        # the daemon's events (workers.observers) feed it
    port = health.serve(9617, "0.0.0.0")    # GET /metrics, /healthz, /readyz (port 0: any free port)
    ...
    health.stop()

- ``/healthz`` (liveness) answers 200 while the daemon's main loop has shown progress (any event) within
  ``liveness_timeout_s``, else 503: a wedged loop gets the pod restarted. The timeout must be long (the
  command line's default is 600 s) because a loop is legitimately silent while it fetches a large data set
  or verifies one heavy result. The defaults and ports live with the command line (paratrain.commands.daemons),
  which keeps prometheus_client out of `paratrain`'s start-up.
- ``/readyz`` (readiness) answers 200 once the daemon is connected (the worker: to the chain and the
  orchestrator, which answered its last poll), its last successful chain contact is at most
  ``readiness_timeout_s`` old and it is live; else 503. Both answer one line saying why.

Events the daemons send (what, detail):

| what | from | means |
|---|---|---|
| ``connected`` | both | set-up done: chain reached, account registered (worker: registered with the orchestrator) |
| ``chain`` | both | a successful chain read: worker ``best`` (and ``finalized`` from its main loop, not its lease guard); validator ``finalized`` and ``processed`` (the last block it took in) |
| ``orchestrator`` | worker | an assignment poll answered (``reachable=True``) or the orchestrator unavailable (``False``) |
| ``claiming`` ``submitting`` | worker | ``task_id``: just before the claim_task / submit_result extrinsic is signed and sent (benchmarks time claims and submissions from them to ``claimed`` / ``submitted``) |
| ``claimed`` ``train`` ``trained`` ``submitted`` ``refused`` ``released`` ``paid`` ``resume`` ``progress`` | worker | its task lifecycle (workers.task_run) and training progress |
| ``vote`` | validator | a vote recorded: ``accept``, and ``challenge=True`` for a challenge |
| ``abstained`` | validator | a result it did not vote on: ``task_id``, ``reason`` |
| ``round-vote`` ``round-abstained`` | validator | a federated round voted on (``accept``) or not (``reason``), by workers.fl.judge |
| ``market-scored`` ``market-abstained`` | validator | a prediction market's scores submitted (``market``, ``votes``, ``settled``) or not (``reason``), by workers.collab.market_judge |

The daemons keep no record of these: to read them back (tests, benchmarks), subscribe a bounded
``workers.observers.Recorder(maxlen=...)``.

Chain head lag (``paratrain_<role>_chain_head_lag_blocks``) means what each daemon works from: the worker acts
on the best block (claims, deadlines), so its lag is best - finalized (finality stalling); the validator
follows finalized blocks, so its lag is the finalized head - the last block it took in (its backlog).
"""
from __future__ import annotations

import logging
import math
from abc import ABC, abstractmethod
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, NamedTuple

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, generate_latest

log = logging.getLogger("paratrain.health")

WORKER_TASK_EVENTS = {  # worker event -> what its counter paratrain_worker_tasks_<event>_total counts
    "claimed": "Tasks claimed on chain.",
    "trained": "Tasks whose training finished with a result.",
    "submitted": "Results submitted on chain.",
    "refused": "Tasks refused (spec, data set or training not acceptable).",
    "released": "Claims released on chain (deadline near, or refused after claiming).",
    "paid": "Results whose payout this worker finalized.",
}


class Probe(NamedTuple):
    ok: bool
    reason: str


@dataclass(frozen=True)
class HealthLimits:
    liveness_timeout_s: float   # /healthz fails after this long without progress
    readiness_timeout_s: float  # /readyz fails when the last successful chain contact is older


class DaemonHealth(ABC):
    """What both daemons report; WorkerHealth and ValidatorHealth add their own events and counters."""

    role: ClassVar[str]          # the metric names' prefix: paratrain_<role>_
    _height_doc: ClassVar[str]   # what chain_height and chain_head_lag_blocks mean for the role
    _lag_doc: ClassVar[str]

    def __init__(self, limits: HealthLimits, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self._clock = clock
        self._lock = threading.Lock()
        self._progress = clock()  # start-up counts as progress: a slow start is the startupProbe's to judge
        self._contact: float | None = None
        self._connected = False
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.registry = CollectorRegistry()
        self._gauge("up", "1 while the main loop makes progress (/healthz).").set_function(
            lambda: float(self.liveness().ok))
        self._gauge("ready", "1 while connected with a recent chain contact (/readyz).").set_function(
            lambda: float(self.readiness().ok))
        self._gauge("seconds_since_chain_contact", "Seconds since the last successful chain read "
                    "(+Inf before the first).").set_function(self._since_contact)
        self._gauge("seconds_since_progress", "Seconds since the main loop last showed progress.").set_function(
            lambda: self._clock() - self._progress)
        self.chain_height = self._gauge("chain_height", self._height_doc)
        self.head_lag = self._gauge("chain_head_lag_blocks", self._lag_doc)

    def _gauge(self, name: str, documentation: str, labels: tuple[str, ...] = ()) -> Gauge:
        return Gauge(f"paratrain_{self.role}_{name}", documentation, labels, registry=self.registry)

    def _counter(self, name: str, documentation: str, labels: tuple[str, ...] = ()) -> Counter:
        return Counter(f"paratrain_{self.role}_{name}", documentation, labels, registry=self.registry)

    # The daemon's side ------------------------------------------------------------------------
    def observe(self, what: str, detail: Mapping[str, Any]) -> None:
        """The daemon's observer (Observable.subscribe). Every event is progress of its loop."""
        with self._lock:
            now = self._clock()
            self._progress = now
            if what == "connected":
                self._connected, self._contact = True, now
            elif what == "chain":
                self._contact = now
                self._chain(detail)
            self._count(what, detail)

    @abstractmethod
    def _chain(self, detail: Mapping[str, Any]) -> None:
        """A successful chain read's heights, as the role defines its lag."""

    @abstractmethod
    def _count(self, what: str, detail: Mapping[str, Any]) -> None:
        """The role's counters for one event."""

    # The probes' side -------------------------------------------------------------------------
    def liveness(self) -> Probe:
        idle = self._clock() - self._progress
        if idle > self.limits.liveness_timeout_s:
            return Probe(False, f"the main loop has shown no progress for {idle:.0f} s "
                                f"(limit {self.limits.liveness_timeout_s:g} s)")
        return Probe(True, f"progress {idle:.1f} s ago")

    def readiness(self) -> Probe:
        live = self.liveness()
        if not live.ok:
            return live
        if not self._connected:
            return Probe(False, "not connected yet")
        age = self._since_contact()
        if age > self.limits.readiness_timeout_s:
            return Probe(False, f"the last successful chain contact was {age:.0f} s ago "
                                f"(limit {self.limits.readiness_timeout_s:g} s)")
        return self._ready_also() or Probe(True, f"connected; chain contact {age:.1f} s ago")

    def _ready_also(self) -> Probe | None:
        """A role's own readiness condition: None when met, else the failing Probe."""
        return None

    def _since_contact(self) -> float:
        contact = self._contact
        return math.inf if contact is None else self._clock() - contact

    # HTTP -------------------------------------------------------------------------------------
    def serve(self, port: int, host: str = "127.0.0.1") -> int:
        """Serve /metrics, /healthz and /readyz on (host, port) in a daemon thread; the bound port (0: any).
        OSError when the port cannot be bound."""
        handler = type("HealthHandler", (_Handler,), {"health": self})
        server = ThreadingHTTPServer((host, port), handler)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name=f"paratrain-{self.role}-health",
                                        daemon=True)
        self._thread.start()
        return self.port

    @property
    def port(self) -> int:
        return self._server.server_address[1] if self._server is not None else 0

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None


class WorkerHealth(DaemonHealth):
    """The worker's: task counters; ready only while the orchestrator answered its last poll."""

    role = "worker"
    _height_doc = "The chain's best block, as last seen."
    _lag_doc = "Best block minus finalized block, as last seen by the main loop (finality falling behind)."

    def __init__(self, limits: HealthLimits, *, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(limits, clock=clock)
        self.tasks = {event: self._counter(f"tasks_{event}", doc) for event, doc in WORKER_TASK_EVENTS.items()}
        self._orchestrator: str | None = "not registered with the orchestrator yet"  # None: reachable

    def _chain(self, detail: Mapping[str, Any]) -> None:
        best = int(detail["best"])
        self.chain_height.set(best)
        if detail.get("finalized") is not None:
            self.head_lag.set(max(best - int(detail["finalized"]), 0))

    def _count(self, what: str, detail: Mapping[str, Any]) -> None:
        if what in self.tasks:
            self.tasks[what].inc()
        elif what == "connected":
            self._orchestrator = None
        elif what == "orchestrator":
            self._orchestrator = None if detail["reachable"] else \
                f"the orchestrator is unavailable: {detail.get('error', '')}".rstrip(": ")

    def _ready_also(self) -> Probe | None:
        reason = self._orchestrator
        return None if reason is None else Probe(False, reason)


class ValidatorHealth(DaemonHealth):
    """The validator's: verdicts by outcome, challenges, abstentions, and how far behind finality it is."""

    role = "validator"
    _height_doc = "The chain's finalized block, as last seen."
    _lag_doc = "Finalized head minus the last finalized block the validator took in (its backlog)."

    def __init__(self, limits: HealthLimits, *, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(limits, clock=clock)
        self.verdicts = self._counter("verdicts", "Verdicts cast on chain, by outcome.", ("outcome",))
        for outcome in ("accept", "reject"):
            self.verdicts.labels(outcome=outcome)  # both series exist from the start, at 0
        self.challenges = self._counter("challenges", "Approved results challenged on chain.")
        self.abstentions = self._counter("abstentions", "Results not voted on (not allowed, not judgeable, "
                                                        "given up after errors, or refused on chain).")
        self.round_verdicts = self._counter("round_verdicts", "Federated round verdicts cast on chain, by outcome.",
                                            ("outcome",))
        for outcome in ("accept", "reject"):
            self.round_verdicts.labels(outcome=outcome)
        self.round_abstentions = self._counter("round_abstentions", "Federated rounds not voted on (own work, not "
                                                                    "judgeable, given up, or refused on chain).")
        self.processed = self._gauge("processed_block", "The last finalized block the validator took in.")

    def _chain(self, detail: Mapping[str, Any]) -> None:
        finalized, processed = int(detail["finalized"]), int(detail["processed"])
        self.chain_height.set(finalized)
        self.processed.set(processed)
        self.head_lag.set(max(finalized - processed, 0))

    def _count(self, what: str, detail: Mapping[str, Any]) -> None:
        if what == "vote" and detail.get("challenge"):
            self.challenges.inc()
        elif what == "vote":
            self.verdicts.labels(outcome="accept" if detail["accept"] else "reject").inc()
        elif what == "abstained":
            self.abstentions.inc()
        elif what == "round-vote":
            self.round_verdicts.labels(outcome="accept" if detail["accept"] else "reject").inc()
        elif what == "round-abstained":
            self.round_abstentions.inc()


class _Handler(BaseHTTPRequestHandler):
    health: DaemonHealth
    timeout = 10  # a client that connects and says nothing does not keep a thread

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._answer(200, generate_latest(self.health.registry), CONTENT_TYPE_LATEST)
        elif path in ("/healthz", "/readyz"):
            probe = self.health.liveness() if path == "/healthz" else self.health.readiness()
            text = f"{'ok' if probe.ok else 'not ok'}: {probe.reason}\n"
            self._answer(200 if probe.ok else 503, text.encode(), "text/plain; charset=utf-8")
        else:
            self._answer(404, b"not found: try /metrics, /healthz or /readyz\n", "text/plain; charset=utf-8")

    def _answer(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
        log.debug("%s %s", self.address_string(), format % args)


__all__ = ["DaemonHealth", "HealthLimits", "Probe", "ValidatorHealth", "WorkerHealth"]
