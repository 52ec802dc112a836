"""workers.health over a real HTTP socket: metrics after events, /healthz when the loop stalls, /readyz before
and after chain contact; the daemons' observer hooks and the command line's flags (no chain needed)."""
from __future__ import annotations

import socket
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from paratrain.cli import build_parser, main
from workers.daemon import DaemonConfig, WorkerDaemon
from workers.health import DaemonHealth, HealthLimits, ValidatorHealth, WorkerHealth
from workers.observers import Observable, Recorder
from workers.validator import ValidatorConfig, ValidatorDaemon

LIMITS = HealthLimits(liveness_timeout_s=30, readiness_timeout_s=10)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def get(health: DaemonHealth, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{health.port}{path}", timeout=5) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def scrape(health: DaemonHealth) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    status, text = get(health, "/metrics")
    assert status == 200
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(health: DaemonHealth, name: str, **labels: str) -> float:
    return scrape(health)[(name, tuple(sorted(labels.items())))]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def worker(clock: Clock) -> Iterator[WorkerHealth]:
    health = WorkerHealth(LIMITS, clock=clock)
    health.serve(0)
    yield health
    health.stop()


@pytest.fixture
def validator(clock: Clock) -> Iterator[ValidatorHealth]:
    health = ValidatorHealth(LIMITS, clock=clock)
    health.serve(0)
    yield health
    health.stop()


def test_worker_counters_follow_its_task_events(worker):
    for what in ("claimed", "train", "trained", "submitted", "claimed", "refused", "released", "paid", "resume"):
        worker.observe(what, {"task_id": 1})
    counts = {event: value(worker, f"paratrain_worker_tasks_{event}_total")
              for event in ("claimed", "trained", "submitted", "refused", "released", "paid")}
    assert counts == {"claimed": 2, "trained": 1, "submitted": 1, "refused": 1, "released": 1, "paid": 1}


def test_worker_head_lag_is_best_minus_finalized_and_kept_by_guard_reads(worker):
    worker.observe("chain", {"best": 40, "finalized": 37})
    assert value(worker, "paratrain_worker_chain_height") == 40
    assert value(worker, "paratrain_worker_chain_head_lag_blocks") == 3
    worker.observe("chain", {"best": 41})  # the lease guard knows only the best block
    assert value(worker, "paratrain_worker_chain_height") == 41
    assert value(worker, "paratrain_worker_chain_head_lag_blocks") == 3


def test_validator_counts_verdicts_by_outcome_challenges_and_abstentions(validator):
    assert value(validator, "paratrain_validator_verdicts_total", outcome="accept") == 0  # exists before any
    for vote in ({"accept": True}, {"accept": False}, {"accept": False}, {"accept": False, "challenge": True}):
        validator.observe("vote", vote)
    validator.observe("abstained", {"task_id": 3, "reason": "not allowed"})
    assert value(validator, "paratrain_validator_verdicts_total", outcome="accept") == 1
    assert value(validator, "paratrain_validator_verdicts_total", outcome="reject") == 2
    assert value(validator, "paratrain_validator_challenges_total") == 1
    assert value(validator, "paratrain_validator_abstentions_total") == 1


def test_validator_counts_federated_round_verdicts_apart_from_results(validator):
    for vote in ({"accept": True}, {"accept": False}):
        validator.observe("round-vote", {"task_id": 1, "round": 1, **vote})
    validator.observe("round-abstained", {"task_id": 1, "round": 2, "reason": "own work"})
    assert value(validator, "paratrain_validator_round_verdicts_total", outcome="accept") == 1
    assert value(validator, "paratrain_validator_round_verdicts_total", outcome="reject") == 1
    assert value(validator, "paratrain_validator_round_abstentions_total") == 1
    assert value(validator, "paratrain_validator_verdicts_total", outcome="accept") == 0
    assert value(validator, "paratrain_validator_abstentions_total") == 0


def test_validator_head_lag_is_finalized_minus_processed(validator):
    validator.observe("chain", {"finalized": 120, "processed": 100})
    assert value(validator, "paratrain_validator_chain_height") == 120
    assert value(validator, "paratrain_validator_processed_block") == 100
    assert value(validator, "paratrain_validator_chain_head_lag_blocks") == 20


def test_healthz_fails_when_the_loop_stalls_and_recovers_with_progress(worker, clock):
    assert get(worker, "/healthz")[0] == 200  # start-up counts as progress
    clock.now += 29
    assert get(worker, "/healthz")[0] == 200
    clock.now += 2
    status, text = get(worker, "/healthz")
    assert status == 503 and "no progress for 31 s" in text
    assert value(worker, "paratrain_worker_up") == 0
    assert value(worker, "paratrain_worker_seconds_since_progress") == 31
    worker.observe("progress", {"task_id": 1, "step": 5})
    assert get(worker, "/healthz")[0] == 200
    assert value(worker, "paratrain_worker_up") == 1


def test_readyz_needs_connection_and_a_recent_chain_contact(validator, clock):
    status, text = get(validator, "/readyz")
    assert status == 503 and "not connected" in text
    assert value(validator, "paratrain_validator_ready") == 0
    assert value(validator, "paratrain_validator_seconds_since_chain_contact") == float("inf")
    validator.observe("connected", {"chain": "ws://node"})
    assert get(validator, "/readyz")[0] == 200
    clock.now += 8
    validator.observe("chain", {"finalized": 5, "processed": 5})
    clock.now += 9
    assert get(validator, "/readyz")[0] == 200 and value(validator, "paratrain_validator_ready") == 1
    assert value(validator, "paratrain_validator_seconds_since_chain_contact") == 9
    clock.now += 2  # 11 s since the last contact, past readiness_timeout_s
    status, text = get(validator, "/readyz")
    assert status == 503 and "chain contact was 11 s ago" in text
    assert get(validator, "/healthz")[0] == 200  # still live: a lost chain is not a wedged loop


def test_worker_readyz_follows_the_orchestrator(worker):
    worker.observe("chain", {"best": 3, "finalized": 3})
    assert "not connected" in get(worker, "/readyz")[1]
    worker.observe("connected", {})
    assert get(worker, "/readyz")[0] == 200
    worker.observe("orchestrator", {"reachable": False, "error": "connection refused"})
    status, text = get(worker, "/readyz")
    assert status == 503 and "orchestrator is unavailable: connection refused" in text
    worker.observe("orchestrator", {"reachable": True})
    assert get(worker, "/readyz")[0] == 200


def test_a_wedged_loop_is_not_ready_either(worker, clock):
    worker.observe("connected", {})
    clock.now += 31
    assert get(worker, "/readyz")[0] == 503


def test_unknown_paths_are_404_and_two_daemons_share_a_process(worker, validator):
    assert get(worker, "/")[0] == 404
    assert worker.port != validator.port
    worker.observe("claimed", {})
    assert value(worker, "paratrain_worker_tasks_claimed_total") == 1
    assert not any(name.startswith("paratrain_worker") for name, _ in scrape(validator))


def test_stop_closes_the_port(clock):
    health = ValidatorHealth(LIMITS, clock=clock)
    port = health.serve(0)
    health.stop()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


# The daemons' hooks -------------------------------------------------------------------------------
def test_a_failing_observer_neither_stops_the_others_nor_the_daemon():
    seen = []

    def broken(what, detail):
        raise RuntimeError("metrics bug")

    source = Observable()
    source.subscribe(broken)
    source.subscribe(lambda what, detail: seen.append((what, dict(detail))))
    source._notify("claimed", task_id=7)
    assert seen == [("claimed", {"task_id": 7})]


def test_worker_daemon_events_reach_its_subscribers_and_a_recorder(worker):
    daemon = WorkerDaemon(DaemonConfig(orchestrator="127.0.0.1:1", chain_url="ws://127.0.0.1:1", key="//Bob"))
    daemon.subscribe(worker.observe)
    recorder = Recorder(maxlen=10)
    daemon.subscribe(recorder)
    daemon._notify("claimed", task_id=4, block=9)
    daemon._notify("trained", task_id=4, model_hash="00")
    assert recorder.events == [("claimed", {"task_id": 4, "block": 9}), ("trained", {"task_id": 4, "model_hash": "00"})]
    assert value(worker, "paratrain_worker_tasks_claimed_total") == 1
    assert value(worker, "paratrain_worker_tasks_trained_total") == 1


def test_worker_reads_chain_heads_between_polls_only_for_subscribers(worker):
    class Heads:
        calls = 0

        def best_number(self):
            Heads.calls += 1
            return 12

        def finalized_number(self):
            return 10

    daemon = WorkerDaemon(DaemonConfig(orchestrator="127.0.0.1:1", chain_url="ws://127.0.0.1:1", key="//Bob"))
    daemon.chain = Heads()
    daemon._observe_chain()
    assert Heads.calls == 0  # nobody listens: the daemon does what it did before
    daemon.subscribe(worker.observe)
    daemon._observe_chain()
    assert value(worker, "paratrain_worker_chain_head_lag_blocks") == 2


def test_validator_daemon_votes_and_abstentions_reach_its_subscribers(validator):
    daemon = ValidatorDaemon(ValidatorConfig(chain_url="ws://127.0.0.1:1", key="//Charlie"))
    daemon.subscribe(validator.observe)
    recorder = Recorder(maxlen=10)
    daemon.subscribe(recorder)
    daemon._record("1:aa:first", {"task_id": 1, "round": "first", "accept": False})
    daemon._record("2:bb:challenge", {"task_id": 2, "round": "challenge", "challenge": True, "accept": False})
    assert daemon._abstain(3, "the worker is this validator") is True
    assert recorder.of("abstained") == [{"task_id": 3, "reason": "the worker is this validator"}]
    assert len(recorder.of("vote")) == 2 and daemon.votes_cast == 2
    assert value(validator, "paratrain_validator_verdicts_total", outcome="reject") == 1
    assert value(validator, "paratrain_validator_challenges_total") == 1
    assert value(validator, "paratrain_validator_abstentions_total") == 1


# The command line ----------------------------------------------------------------------------------
@pytest.mark.parametrize("role, port", [("worker", 9616), ("validator", 9617)])
def test_health_flags_and_defaults(role, port):
    required = ["--orchestrator", "127.0.0.1:50051"] if role == "worker" else []
    args = build_parser().parse_args([role, *required, "--key", "//Bob"])
    assert (args.metrics_port, args.metrics_host, args.no_metrics) == (port, "127.0.0.1", False)
    assert (args.liveness_timeout, args.readiness_timeout) == (600, 120)
    args = build_parser().parse_args([role, *required, "--key", "//Bob", "--metrics-port", "0", "--no-metrics"])
    assert args.metrics_port == 0 and args.no_metrics
    with pytest.raises(SystemExit):
        build_parser().parse_args([role, *required, "--key", "//Bob", "--metrics-port", "65536"])


def test_a_busy_metrics_port_is_one_error_line_before_anything_connects(capsys, caplog):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        # the chain URL is unreachable: the exit status shows the port was refused first
        assert main(["validator", "--chain", "ws://127.0.0.1:1", "--key", "//Charlie",
                     "--metrics-port", str(port)]) == 1
    assert f"cannot serve metrics and probes on 127.0.0.1:{port}" in caplog.text
