"""A hostile market (issue 10): a requester and a worker point every URI they control at a loopback listener,
at local files (``/etc/passwd``, a traversal), at ``/dev/zero`` and at a 2 GB sparse file, against live daemons.

Every party but the attackers is a process of its own: devnet, the orchestrator, ``paratrain worker`` (//Bob,
honest) and two ``paratrain validator`` (//Charlie, //Dave). The stores: //Alice's (an honest requester), //Bob's,
a shared "market" store anyone may write to (the hostile requester //Ferdie puts his documents there, and a
2 GB sparse file under a content-addressed name), and an "evil" store nobody trusts. The worker trusts Alice's
and the market store; the validators trust those and Bob's.

* //Ferdie's tasks any Trainer may take name hostile spec and data set URIs: the worker refuses each, never
  claims, and is never slashed.
* //Ferdie's tasks that only attacking Trainers (//Mallory//i, with a GPU on record) may take: they claim and
  submit; the validators find the spec or data set unusable, which is the requester's fault: they abstain.
* //Alice's tasks that only the attackers may take: they attest artifact URIs of the same kinds; the
  validators read none of them, reject, and the attackers are slashed.

Then: the listener received nothing, every daemon is alive, each daemon's resident memory stayed within
300 MB of what it used after the honest task it served first, the honest parties lost nothing, and no
validator's store or evidence holds anything of the local files.
"""
from __future__ import annotations

import json
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("ray")

from forgeries import placeholder_attestation  # noqa: E402

from paratrain.local import DaemonProcess, DevnetProcess, OrchestratorProcess, fund, post_task  # noqa: E402
from runtime_bindings import AttestationCodec, Chain, Keypair  # noqa: E402
from runtime_bindings.generated import types as t  # noqa: E402
from workers import ArtifactStore, DatasetRef, Evaluation, Limits, TaskSpec, add_dataset  # noqa: E402
from workers.artifacts import object_uri  # noqa: E402
from workers.hashing import blake2_256_hex  # noqa: E402

pytestmark = pytest.mark.slow  # runs devnet, an orchestrator, a worker and validators as processes

UNIT = 10**12
ALICE, BOB, CHARLIE, DAVE, FERDIE = (Keypair.create_from_uri(f"//{n}")
                                     for n in ("Alice", "Bob", "Charlie", "Dave", "Ferdie"))
# attacking Trainers with a GPU on record (so only they match the tasks that ask for one): one per attack, as
# a worker holds at most MaxClaimsPerWorker claims at once
ATTACKERS = [Keypair.create_from_uri(f"//Mallory//{i}") for i in range(10)]
TARGET = 0.8
RSS_BOUND_MB = 300
LIMIT_MB = 64  # the daemons' --max-dataset-mb and --max-artifact-mb here


class Listener:
    """A loopback TCP listener that records every connection made to it (it should get none)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections: list[tuple[str, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, peer = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections.append(peer)
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class RssSampler:
    """The highest resident memory of each process, sampled every 0.2 s from `start()` on."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids, self.peak = pids, {name: 0.0 for name in pids}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> RssSampler:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            for name, pid in self.pids.items():
                try:
                    self.peak[name] = max(self.peak[name], rss_mb(pid))
                except OSError:
                    pass

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, log: Callable[[], str] = str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{log()[-4000:]}")


def events_named(chain: Chain, name: str, task_id: int, since: int) -> list[Any]:
    found = []
    for number in range(since, chain.best_number() + 1):
        for record in chain.events_at(chain.block_hash(number)):
            event = record.event
            if event.pallet == "TaskBounties" and event.name == name and getattr(event, "task_id", None) == task_id:
                found.append(event)
    return found


class Market:
    """The processes, stores and keys of the hostile market; `post` and `attack` are the parties' acts."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.alice = ArtifactStore(tmp / "alice-store")
        self.bob_root = tmp / "bob-store"
        self.market = ArtifactStore(tmp / "market-store")
        self.evil = ArtifactStore(tmp / "evil-store")
        self.outside = tmp / "outside"
        self.outside.mkdir()
        self.sparse = self.outside / "sparse.bin"
        with open(self.sparse, "wb") as f:
            f.truncate(2 << 30)
        self.sparse_name = "5a" * 32  # a content-addressed name in the market store, 2 GB behind it
        market_sparse = Path(self.market.uri(self.sparse_name).removeprefix("file://"))
        market_sparse.parent.mkdir(parents=True, exist_ok=True)
        with open(market_sparse, "wb") as f:
            f.truncate(2 << 30)
        digest, uri = add_dataset("digits", self.alice)
        self.dataset = DatasetRef(digest, uri)
        self.listener = Listener()
        self.procs: dict[str, DaemonProcess] = {}

    def spec(self, dataset: DatasetRef | None = None, epochs: int = 3) -> TaskSpec:
        return TaskSpec(recipe="digits_mlp", dataset=dataset or self.dataset, evaluation=Evaluation("accuracy", TARGET),
                        hyperparameters={"epochs": epochs}, seed=5, checkpoint_every=16,
                        limits=Limits(timeout_s=300, memory_mb=1024))

    def start(self, devnet: DevnetProcess, orchestrator: OrchestratorProcess, from_block: int) -> None:
        limits = ["--max-dataset-mb", str(LIMIT_MB), "--max-artifact-mb", str(LIMIT_MB), "--metrics-port", "0"]
        self._spawn("worker", ["worker", "--orchestrator", orchestrator.target, "--chain", devnet.ws_url,
                               "--key", "//Bob", "--store", str(self.bob_root), "--state-dir", str(self.tmp / "bob"),
                               "--trust-store", self.alice.root, "--trust-store", self.market.root, *limits])
        for name in ("Charlie", "Dave"):
            self._spawn(name, ["validator", "--chain", devnet.ws_url, "--key", f"//{name}",
                               "--store", str(self.tmp / f"{name}-store"), "--state-dir", str(self.tmp / name),
                               "--from-block", str(from_block), "--trust-store", self.alice.root,
                               "--trust-store", str(self.bob_root), "--trust-store", self.market.root, *limits])

    def _spawn(self, name: str, args: list[str]) -> None:
        kind, *rest = args
        self.procs[name] = DaemonProcess(kind, rest, self.tmp / f"{name}.log").start()

    def log(self, name: str) -> str:
        return self.procs[name].log_path.read_text(errors="replace")

    def alive(self) -> dict[str, bool]:
        return {name: proc.returncode is None for name, proc in self.procs.items()}

    def stop(self) -> None:
        for proc in self.procs.values():
            proc.stop(signal.SIGINT, timeout=30)
        self.listener.close()


def post(chain: Chain, requester: Keypair, spec: TaskSpec, spec_uri: str, *, gpus: int = 0) -> int:
    """create_task with the spec's hash and `spec_uri` (whatever the requester chooses to write there)."""
    task_id, _ = post_task(chain, requester, spec, spec_uri, bounty=10 * UNIT, deadline_in=2_000,
                           validators_required=2, requirements=(1, gpus, 512))
    return task_id


def attack(chain: Chain, attacker: Keypair, task_id: int, dataset_hash: str, **fields: Any) -> int:
    """The attacker claims the task and submits a signed attestation with `fields` (its URIs and hashes)."""
    chain.task_bounties.claim_task(attacker, task_id)
    attestation = {**placeholder_attestation(task_id, attacker.ss58_address, "0x" + dataset_hash), **fields}
    signature = AttestationCodec.from_chain(chain).multi_signature(attestation, attacker)
    return chain.task_bounties.submit_result(attacker, task_id, attestation, signature).block_number


def chain_dataset_hash(chain: Chain, task_id: int) -> str:
    return str(chain.task_bounties.tasks(task_id).spec.dataset_hash).removeprefix("0x")


@pytest.fixture(scope="module")
def market(tmp_path_factory) -> Iterator[tuple[Market, Chain, DevnetProcess]]:
    tmp = tmp_path_factory.mktemp("hostile")
    m = Market(tmp)
    with DevnetProcess() as devnet, Chain.connect(devnet.ws_url, timeout=10) as chain:
        chain.workers.register(BOB, "Trainer", 1_000 * UNIT, t.Capabilities(2, 0, "", 8_000))
        fund(chain, FERDIE, ATTACKERS, 1_000 * UNIT)
        for attacker in ATTACKERS:
            chain.workers.register(attacker, "Trainer", 500 * UNIT, t.Capabilities(2, 1, "A100", 8_000))
        for validator in (CHARLIE, DAVE):
            chain.workers.register(validator, "Validator", 100 * UNIT, t.Capabilities(2, 0, "", 8_000))
        orchestrator = OrchestratorProcess(devnet.ws_url, tmp / "index.db").start()
        try:
            m.start(devnet, orchestrator, chain.finalized_number())
            yield m, chain, devnet
        finally:
            m.stop()
            orchestrator.stop()


def test_hostile_uris_reach_nothing_and_only_the_attacker_pays(market):
    m, chain, _ = market
    passwd = Path("/etc/passwd").read_bytes()
    local_hashes = {blake2_256_hex(passwd)}
    parties = (BOB, CHARLIE, DAVE, *ATTACKERS)
    stakes = {k.ss58_address: chain.workers.workers(k.ss58_address).stake for k in parties}
    attackers = iter(ATTACKERS)

    # 1. An honest task first: each daemon has then loaded what it needs (torch, Ray), which is the baseline
    honest = m.spec()
    m.alice.put(honest.canonical_bytes())
    since = chain.best_number()
    honest_id = post(chain, ALICE, honest, m.alice.uri(honest.spec_hash_hex()))
    wait_until(lambda: events_named(chain, "TaskAccepted", honest_id, since) or not all(m.alive().values()), 240,
               "the honest task's payout")
    assert all(m.alive().values()), {n: m.log(n)[-3000:] for n, ok in m.alive().items() if not ok}
    baseline = {name: rss_mb(proc.pid) for name, proc in m.procs.items()}
    sampler = RssSampler({name: proc.pid for name, proc in m.procs.items()}).start()

    # 2. A hostile requester's tasks that the honest worker may take: every spec or data set URI is refused
    traversal = f"file://{m.market.root.removeprefix('file://')}/../outside/sparse.bin"
    hostile_uris = [m.listener.url("spec.json"), "file:///etc/passwd", traversal, "file:///dev/zero",
                    f"file://{m.sparse}"]
    posted_from = chain.best_number()
    worker_tasks = [post(chain, FERDIE, honest, uri) for uri in hostile_uris]
    # (data sets nobody holds yet: one held locally would be served by its hash, whatever the URI says)
    for n, dataset_uri in enumerate((m.listener.url("digits.ptts"), m.market.uri(m.sparse_name), "file:///dev/zero")):
        spec = m.spec(DatasetRef(m.sparse_name if n == 1 else f"{n:02x}" * 32, dataset_uri), epochs=4)
        m.market.put(spec.canonical_bytes())
        worker_tasks.append(post(chain, FERDIE, spec, m.market.uri(spec.spec_hash_hex())))

    # 3. The same, on tasks only the attackers may take: they submit, the validators cannot use the spec or data
    start = chain.best_number()
    abstained = [post(chain, FERDIE, honest, uri, gpus=1) for uri in (m.listener.url("v.json"), "file:///etc/passwd")]
    bad_data = m.spec(DatasetRef("ee" * 32, m.listener.url("v.ptts")), epochs=5)
    m.market.put(bad_data.canonical_bytes())
    abstained.append(post(chain, FERDIE, bad_data, m.market.uri(bad_data.spec_hash_hex()), gpus=1))
    for task_id in abstained:
        attack(chain, next(attackers), task_id, chain_dataset_hash(chain, task_id))

    # 4. //Alice's tasks that only the attackers may take: their artifact URIs point anywhere but at real work
    evil_model, evil_checkpoint = m.evil.put(b"weights from nowhere"), m.evil.put(b"a checkpoint from nowhere")
    artifact_attacks = {
        "listener": {"artifact_uri": m.listener.url("model.ptts")},
        "passwd with its hash": {"artifact_uri": "file:///etc/passwd", "model_hash": "0x" + blake2_256_hex(passwd)},
        "passwd as an oracle": {"artifact_uri": "file:///etc/passwd"},
        "dev zero": {"artifact_uri": "file:///dev/zero"},
        "sparse outside": {"artifact_uri": f"file://{m.sparse}"},
        "sparse in a trusted store": {"artifact_uri": m.market.uri(m.sparse_name),
                                      "model_hash": "0x" + m.sparse_name},
        "an untrusted store": {"artifact_uri": object_uri(m.evil.root, evil_model), "model_hash": "0x" + evil_model,
                               "checkpoints": ["0x" + evil_checkpoint], "trajectory_root": "0x" + evil_checkpoint},
    }
    slashed_tasks, slashed_attackers = {}, {}
    for name, fields in artifact_attacks.items():
        task_id = post(chain, ALICE, honest, m.alice.uri(honest.spec_hash_hex()), gpus=1)
        slashed_attackers[task_id] = next(attackers)
        attack(chain, slashed_attackers[task_id], task_id, m.dataset.hash, **fields)
        slashed_tasks[name] = task_id

    # the validators reject every artifact attack (its attacker slashed), abstain on the requester's unusable tasks,
    # and the worker refuses every hostile task
    for name, task_id in slashed_tasks.items():
        event = wait_until(lambda task_id=task_id: events_named(chain, "WorkerSlashed", task_id, start)
                           or not all(m.alive().values()), 180, f"the slash of {name}")
        assert all(m.alive().values()), {n: m.log(n)[-3000:] for n, ok in m.alive().items() if not ok}
        assert event[0].worker == slashed_attackers[task_id].ss58_address, name
    for validator in ("Charlie", "Dave"):
        wait_until(lambda v=validator: all(f"task {i}: abstaining" in m.log(v) for i in abstained), 60,
                   f"{validator}'s abstentions on {abstained}", lambda v=validator: m.log(v))
    wait_until(lambda: all(f"task {i} refused" in m.log("worker") for i in worker_tasks), 90,
               f"the worker's refusals of {worker_tasks}", lambda: m.log("worker"))
    time.sleep(1.0)  # a last look: nothing else arrives
    sampler.stop()

    # nothing reached the listener; every daemon lives; memory stayed bounded
    assert m.listener.connections == []
    assert all(m.alive().values()), m.alive()
    grown = {name: sampler.peak[name] - baseline[name] for name in baseline}
    assert all(delta < RSS_BOUND_MB for delta in grown.values()), (baseline, sampler.peak)
    print(f"resident memory after the honest task (MB): {baseline}; peak growth under attack: {grown}")

    # the worker refused the hostile tasks without claiming them; the validators never voted on the unusable ones
    for task_id in worker_tasks:
        assert chain.task_bounties.tasks(task_id).status == "Open", task_id
        assert not events_named(chain, "TaskClaimed", task_id, posted_from)
    for task_id in abstained:
        assert not events_named(chain, "VerdictSubmitted", task_id, start)
    worker_log = m.log("worker")
    assert "refused" in worker_log and "Traceback" not in worker_log

    # honest parties lost nothing; the attacker lost stake
    after = {k.ss58_address: chain.workers.workers(k.ss58_address).stake for k in parties}
    for honest_party in (BOB, CHARLIE, DAVE):
        assert after[honest_party.ss58_address] >= stakes[honest_party.ss58_address]
    for attacker in slashed_attackers.values():
        assert after[attacker.ss58_address] < stakes[attacker.ss58_address]
    assert events_named(chain, "TaskAccepted", honest_id, since)[0].worker == BOB.ss58_address

    # no validator holds anything of the local files or of the untrusted store, nor names a local file's hash
    for validator in ("Charlie", "Dave"):
        store = ArtifactStore(m.tmp / f"{validator}-store")
        assert not store.exists(blake2_256_hex(passwd)) and not store.exists(evil_model)
        assert not store.exists(evil_checkpoint)
        state = json.loads((m.tmp / validator / "state.json").read_text())
        oracle = slashed_tasks["passwd as an oracle"]
        [vote] = [v for v in state["voted"].values() if v["task_id"] == oracle]
        evidence = store.get(vote["evidence_hash"]).decode()
        assert not any(h in evidence for h in local_hashes), evidence
        assert passwd.decode(errors="replace").splitlines()[0] not in evidence  # nothing of the file's content
