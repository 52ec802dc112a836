"""The daemons' metrics and probes (workers.health) against a real devnet.

- A ValidatorDaemon thread: /readyz before and after it connects; a result it rejects (a placeholder
  attestation: nothing in any store) and one it abstains from (its spec document is unreachable) counted in
  /metrics; its head lag and heights; /healthz failing while its loop is wedged, and back after.
- `paratrain validator --metrics-port 0` as a subprocess: the command line's wiring, the printed port, the
  endpoints, and the port closed after SIGINT.
- The worker against a real orchestrator process, without Ray (a lighter test of its wiring): /readyz
  before and after its set-up (`WorkerDaemon._connect`: the chain, the account, the orchestrator's
  registration) and the chain heads it reads between polls (`_observe_chain`). The full worker loop needs
  Ray and is covered by tests/integration/test_worker_daemon.py, which does not serve metrics.
"""
from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("torch")

from forgeries import placeholder_attestation  # noqa: E402
from orchestrator_process import OrchestratorProcess  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from paratrain.local import DevnetProcess  # noqa: E402
from runtime_bindings import AttestationCodec, Chain, Keypair  # noqa: E402
from runtime_bindings.generated import types as t  # noqa: E402
from workers import ArtifactStore, DatasetRef, Evaluation, Limits, TaskSpec, add_dataset  # noqa: E402
from workers.daemon import DaemonConfig, WorkerDaemon  # noqa: E402
from workers.health import HealthLimits, ValidatorHealth, WorkerHealth  # noqa: E402
from workers.observers import Recorder  # noqa: E402
from workers.validator import ValidatorConfig, ValidatorDaemon  # noqa: E402

pytestmark = pytest.mark.slow  # runs the worker and validator daemons against a devnet

ROOT = Path(__file__).resolve().parents[2]
UNIT = 10**12
ALICE, BOB, CHARLIE, DAVE = (Keypair.create_from_uri(f"//{n}") for n in ("Alice", "Bob", "Charlie", "Dave"))
CAPS = t.Capabilities(2, 0, "", 8_000)
_SERVING = re.compile(r"validator metrics and probes on http://127\.0\.0\.1:(\d+)")


@pytest.fixture(scope="module")
def chain(devnet: DevnetProcess):
    with Chain.connect(devnet.ws_url, timeout=10) as c:
        c.workers.register(BOB, "Trainer", 1_000 * UNIT, CAPS)
        for validator in (CHARLIE, DAVE):
            c.workers.register(validator, "Validator", 100 * UNIT, CAPS)
        yield c


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def metrics(port: int) -> dict[str, float]:
    """Samples by name, labels folded in as name{key=value}."""
    status, text = get(port, "/metrics")
    assert status == 200
    return {s.name + "".join(f"{{{k}={v}}}" for k, v in sorted(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def wait_until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout} s: {what}")


def post_and_submit(chain: Chain, spec_hash: str, spec_uri: str, dataset_hash: str) -> int:
    """A task judged by one validator, claimed by //Bob, with an attestation of a training that never ran."""
    on_chain = t.TaskSpec(recipe="digits_mlp", spec_hash="0x" + spec_hash, spec_uri=spec_uri,
                          dataset_hash="0x" + dataset_hash, eval_metric="accuracy", eval_target=900_000,
                          higher_is_better=True, requirements=t.Requirements(1, 0, 512), parent_model=None)
    receipt = chain.task_bounties.create_task(ALICE, on_chain, 10 * UNIT, 0, chain.best_number() + 500, 1, None)
    task_id = next(e.task_id for e in receipt.events if e.name == "TaskCreated")
    chain.task_bounties.claim_task(BOB, task_id)
    attestation = placeholder_attestation(task_id, BOB.ss58_address, "0x" + dataset_hash)
    signature = AttestationCodec.from_chain(chain).multi_signature(attestation, BOB)
    chain.task_bounties.submit_result(BOB, task_id, attestation, signature)
    return task_id


def test_validator_daemon_metrics_and_probes(chain, tmp_path):
    requester = ArtifactStore(tmp_path / "requester")
    digest, uri = add_dataset("digits", requester)
    spec = TaskSpec(recipe="digits_mlp", dataset=DatasetRef(digest, uri), evaluation=Evaluation("accuracy", 0.9),
                    hyperparameters={"epochs": 1}, seed=1, checkpoint_every=22,
                    limits=Limits(timeout_s=300, memory_mb=1024))
    spec_hash = requester.put(spec.canonical_bytes())
    config = ValidatorConfig(chain_url=chain.url, key="//Charlie", store=str(tmp_path / "store"),
                             trusted_stores=(requester.root,), state_dir=str(tmp_path / "state"),
                             from_block=chain.finalized_number(), poll_interval_s=0.2)
    daemon = ValidatorDaemon(config)
    health = ValidatorHealth(HealthLimits(liveness_timeout_s=3, readiness_timeout_s=30))
    daemon.subscribe(health.observe)
    recorder = Recorder(maxlen=100, only={"vote", "abstained"})
    daemon.subscribe(recorder)
    port = health.serve(0)
    status, text = get(port, "/readyz")
    assert status == 503 and "not connected" in text
    assert get(port, "/healthz")[0] == 200
    thread = threading.Thread(target=daemon.run, name="validator-health", daemon=True)
    thread.start()
    try:
        wait_until(lambda: get(port, "/readyz")[0] == 200, 30, "the validator ready")
        rejected = post_and_submit(chain, spec_hash, requester.uri(spec_hash), digest)
        unjudgeable = post_and_submit(chain, "ab" * 32, "file:///nowhere/spec", digest)
        wait_until(lambda: metrics(port)["paratrain_validator_abstentions_total"] == 1
                   and metrics(port)["paratrain_validator_verdicts_total{outcome=reject}"] == 1, 90,
                   "a reject and an abstention counted")
        assert [(v["task_id"], v["accept"]) for v in recorder.of("vote")] == [(rejected, False)]
        assert [s["task_id"] for s in recorder.of("abstained")] == [unjudgeable]
        wait_until(lambda: get(port, "/readyz")[0] == 200, 10, "ready again after judging")
        seen = metrics(port)
        assert seen["paratrain_validator_verdicts_total{outcome=accept}"] == 0
        assert seen["paratrain_validator_challenges_total"] == 0
        assert seen["paratrain_validator_ready"] == 1 and seen["paratrain_validator_up"] == 1
        assert seen["paratrain_validator_seconds_since_chain_contact"] < 5
        head = chain.finalized_number()
        assert head - 2 <= seen["paratrain_validator_chain_height"] <= head
        assert seen["paratrain_validator_chain_head_lag_blocks"] == \
            seen["paratrain_validator_chain_height"] - seen["paratrain_validator_processed_block"]

        # a wedged loop: /healthz (and /readyz) fail until it moves again
        release, original = threading.Event(), daemon._judge_pending

        def wedged() -> None:
            release.wait(30)
            original()

        daemon._judge_pending = wedged
        wait_until(lambda: get(port, "/healthz")[0] == 503, 15, "/healthz failing on a wedged loop")
        assert "no progress" in get(port, "/healthz")[1]
        assert get(port, "/readyz")[0] == 503 and metrics(port)["paratrain_validator_up"] == 0
        daemon._judge_pending = original
        release.set()
        wait_until(lambda: get(port, "/healthz")[0] == 200, 10, "/healthz back once the loop moves")
    finally:
        daemon.stop()
        thread.join(30)
        health.stop()
    assert daemon.exit_code == 0


def test_validator_command_serves_its_endpoints_until_stopped(chain, tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "paratrain.cli", "validator", "--chain", chain.url, "--key", "//Dave",
         "--store", str(tmp_path / "store"), "--state-dir", str(tmp_path / "state"), "--metrics-port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
    try:
        assert proc.stdout is not None
        output: list[str] = []
        port = wait_until(lambda: _port_in(proc.stdout.readline(), output), 60, f"the port printed: {output}")
        threading.Thread(target=lambda: output.extend(proc.stdout), daemon=True).start()
        wait_until(lambda: get(port, "/readyz")[0] == 200, 60, "the validator process ready")
        assert get(port, "/healthz")[0] == 200
        seen = metrics(port)
        assert seen["paratrain_validator_ready"] == 1
        assert seen["paratrain_validator_chain_height"] >= 1
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0, output
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def _port_in(line: str, output: list[str]) -> int | None:
    output.append(line)
    match = _SERVING.search(line)
    return int(match.group(1)) if match else None


def test_worker_is_ready_once_connected_to_the_chain_and_the_orchestrator(devnet, chain, tmp_path):
    with OrchestratorProcess(devnet.ws_url, tmp_path / "index.db") as orchestrator:
        orchestrator.wait_for_height(chain.finalized_number())  # //Bob's registration indexed
        daemon = WorkerDaemon(DaemonConfig(orchestrator=orchestrator.target, chain_url=devnet.ws_url, key="//Bob",
                                           store=str(tmp_path / "store"), state_dir=str(tmp_path / "state")))
        health = WorkerHealth(HealthLimits(liveness_timeout_s=60, readiness_timeout_s=30))
        daemon.subscribe(health.observe)
        port = health.serve(0)
        try:
            status, text = get(port, "/readyz")
            assert status == 503 and "not connected" in text
            daemon._connect()
            status, text = get(port, "/readyz")
            assert status == 200 and text.startswith("ok: connected"), text
            daemon._observe_chain()
            seen = metrics(port)
            assert seen["paratrain_worker_chain_height"] == chain.best_number()
            assert seen["paratrain_worker_chain_head_lag_blocks"] == chain.best_number() - chain.finalized_number()
            assert seen["paratrain_worker_ready"] == 1 and seen["paratrain_worker_seconds_since_chain_contact"] < 5
            assert seen["paratrain_worker_tasks_claimed_total"] == 0
        finally:
            daemon.close()
            health.stop()
