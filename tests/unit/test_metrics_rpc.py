"""The per-RPC latency histogram: each (method, code) pair counted apart, also when its child is reused."""
from __future__ import annotations

import pytest

from orchestrator.metrics import Metrics


def count(metrics: Metrics, method: str, code: str) -> float:
    value = metrics.registry.get_sample_value("paratrain_orchestrator_rpc_latency_seconds_count",
                                              {"method": method, "code": code})
    return 0.0 if value is None else value


def test_rpc_latency_counts_each_method_and_code() -> None:
    metrics = Metrics()
    hb = "/paratrain.v1.WorkerService/Heartbeat"
    for _ in range(3):
        metrics.observe_rpc(hb, 0.001, "OK")
    metrics.observe_rpc(hb, 0.002, "UNAUTHENTICATED")
    metrics.observe_rpc("/paratrain.v1.WorkerService/GetTaskSpec", 0.003, "OK")
    assert count(metrics, hb, "OK") == 3
    assert count(metrics, hb, "UNAUTHENTICATED") == 1
    assert count(metrics, "/paratrain.v1.WorkerService/GetTaskSpec", "OK") == 1
    assert metrics.registry.get_sample_value("paratrain_orchestrator_rpc_latency_seconds_sum",
                                             {"method": hb, "code": "OK"}) == pytest.approx(0.003)
    assert b'code="UNAUTHENTICATED"' in metrics.render()
