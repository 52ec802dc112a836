"""Prometheus metrics of the orchestrator (prometheus-client), served on an HTTP port.

    metrics = Metrics()                      # its own registry (tests may make several)
    metrics.serve(9615)                      # GET http://host:9615/metrics
    metrics.observe_rpc("RequestAssignment", 0.003, "OK")   # what the gRPC server calls per RPC

Module-level `observe_rpc(...)` records on the process-wide default `METRICS`.
"""
from __future__ import annotations

from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.exposition import generate_latest

RPC_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.index_height = Gauge("paratrain_orchestrator_index_height", "Last finalized block in the index.",
                                  registry=r)
        self.chain_height = Gauge("paratrain_orchestrator_chain_height", "The chain's finalized height, as last seen.",
                                  registry=r)
        self.index_lag = Gauge("paratrain_orchestrator_index_lag_blocks",
                               "Finalized blocks the index is behind the chain.", registry=r)
        self.open_tasks = Gauge("paratrain_orchestrator_open_tasks", "Open tasks in the index.", registry=r)
        self.reservations = Gauge("paratrain_orchestrator_reservations", "Live off-chain reservations.", registry=r)
        self.waiting_workers = Gauge("paratrain_orchestrator_waiting_workers", "Workers in a long poll.", registry=r)
        self.assignments = Counter("paratrain_orchestrator_assignments", "Assignments handed out (reservations made).",
                                   registry=r)
        self.assignment_timeouts = Counter("paratrain_orchestrator_assignment_timeouts",
                                           "Long polls that ended without a task.", registry=r)
        self.reservations_expired = Counter("paratrain_orchestrator_reservations_expired",
                                            "Reservations that expired unclaimed.", registry=r)
        self.relayed_total = Counter("paratrain_orchestrator_relayed_extrinsics",
                                     "Extrinsics relayed, by call and result.", ["call", "result"], registry=r)
        self.rpc_latency = Histogram("paratrain_orchestrator_rpc_latency_seconds", "Worker/task API latency.",
                                     ["method", "code"], buckets=RPC_BUCKETS, registry=r)
        self._server: WSGIServer | None = None
        # (method, code) -> its histogram child; labels() validates and locks on every lookup, and this runs once
        # per RPC. Bounded: the server observes only its own paratrain.v1 methods, and there are 17 codes.
        self._rpc_children: dict[tuple[str, str], Histogram] = {}

    def observe_rpc(self, method: str, seconds: float, code: str) -> None:
        child = self._rpc_children.get((method, code))
        if child is None:
            child = self._rpc_children[(method, code)] = self.rpc_latency.labels(method=method, code=code)
        child.observe(seconds)

    def relayed(self, call: str, result: str) -> None:
        self.relayed_total.labels(call=call, result=result).inc()

    def update_index(self, height: int, chain_height: int, open_tasks: int) -> None:
        self.index_height.set(height)
        self.chain_height.set(max(chain_height, height))
        self.index_lag.set(max(chain_height - height, 0))
        self.open_tasks.set(open_tasks)

    def serve(self, port: int, addr: str = "127.0.0.1") -> int:
        """Serve /metrics over HTTP on (addr, port) in a daemon thread; returns the bound port (port 0: any)."""
        server, _thread = start_http_server(port, addr=addr, registry=self.registry)
        self._server = server
        return server.server_port

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def render(self) -> bytes:
        return generate_latest(self.registry)


METRICS = Metrics()


def observe_rpc(method: str, seconds: float, code: str) -> None:
    METRICS.observe_rpc(method, seconds, code)


__all__ = ["METRICS", "Metrics", "observe_rpc"]
