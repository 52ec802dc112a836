"""Crashes in a federated task, with every party a real process: a data owner and the aggregator SIGKILLed
mid-round, on a devnet process.

One FedAvg task of four rounds over five data owners (at least three a round). Each owner is a `paratrain
client` daemon process (it joins, runs its SuperNode to the aggregator's published endpoint, restarts it when
it exits); the aggregator is the worker's aggregator role in a process of its own (tests/fl_aggregator_process.py:
its SuperLink on a fixed port, a Flower run whose ServerApp commits the rounds); a validator daemon judges
every round once //Alice has revealed the holdout, and the pallet pays at its verdicts.

- Once round 1 is committed and owner 4's SuperNode has pulled round 2's train message, owner 4's machine
  dies: its daemon and every Flower process it started are SIGKILLed before it can reply. Round 2 completes
  with the other four, and owner 4 is in no later round, is paid for round 1 only and is never slashed.
- Once round 2 is committed, the aggregator dies the same way, mid-round 3. Started again on the same state
  directory and port, it resumes the task it holds on chain from round 3; the owners' daemons bring their
  SuperNodes back to the new SuperLink; rounds 3 and 4 are committed and the task completes.
- Across both crashes every round is committed once, and no client or aggregator is paid twice for a round.
"""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from paratrain.commands.task import holdout_commitment
from paratrain.fl_specs import FlTaskTerms, chain_fl_task_spec
from paratrain.local import (
    TRAINER_STAKE,
    VALIDATOR_STAKE,
    DaemonThread,
    DevnetProcess,
    capabilities,
    dev_keypair,
    fund,
    register_account,
)
from runtime_bindings import Chain, Keypair
from workers.artifacts import ArtifactStore
from workers.fl.arrays import model_bytes
from workers.fl.child_key import KEY_ENV, export_key
from workers.fl.client_daemon import TERMINAL
from workers.fl.flower_procs import free_port, processes_started_by
from workers.fl.model import initial_model
from workers.fl.partition import federated_split
from workers.fl.spec import build_spec
from workers.validator import ValidatorConfig, ValidatorDaemon

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]

ROOT = Path(__file__).resolve().parents[2]
UNIT = 10**12
CLIENTS, ROUNDS, MIN_CLIENTS = 5, 4, 3
CLIENT_STAKE = 10 * UNIT
VICTIM = 4                                          # the data owner whose machine dies
CLIENT_KILL_AFTER, AGGREGATOR_KILL_AFTER = 1, 2     # committed rounds when each crash happens


def _kill9(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def crash(proc: subprocess.Popen[bytes]) -> None:
    """A machine's death: SIGKILL the process and every Flower process it started, in one sweep."""
    _kill9([proc.pid, *processes_started_by(proc.pid)])
    proc.wait(30)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            crash(proc)
    _kill9(processes_started_by(proc.pid))  # what a clean exit left behind


@dataclass
class Run:
    task_id: int
    clients: list[Keypair]
    aggregator: Keypair
    chain: Chain
    first_block: int
    root: Path
    killed: dict[str, int] = field(default_factory=dict)   # what -> last committed round when it was killed
    pids: list[int] = field(default_factory=list)          # every daemon process started
    leftovers: list[int] = field(default_factory=list)     # Flower processes still alive after the teardown

    def events(self) -> list[Any]:
        head = self.chain.finalized_number()
        return [r.event for b in self.chain.events.finalized(from_block=self.first_block, to_block=head,
                                                             own_connection=False)
                for r in b.records if r.event.pallet == "FederatedTasks"]

    def participants(self, round_: int) -> set[str]:
        record = self.chain.federated_tasks.rounds(self.task_id, round_)
        return {str(p[0]) for p in record.participants}

    def trains_received(self, client: int) -> int:
        """How many train messages the client's SuperNode has pulled, from its log: each is handed to a fresh
        ClientApp process, so the reply comes seconds later and a kill at the count is a kill mid-round."""
        path = self.root / f"client-{client}" / "supernode.log"
        return path.read_text(errors="replace").count("Receiving: train message") if path.exists() else 0

    def log(self, name: str) -> str:
        path = self.root / "logs" / f"{name}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""


def _spawn(argv: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    out = log.open("ab")
    try:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    finally:
        out.close()


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("PARATRAIN_KEY", None)
    return {**env, **(extra or {})}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    root = tmp_path_factory.mktemp("faults")
    logs = root / "logs"
    logs.mkdir()
    store_dir = str(root / "store")
    store = ArtifactStore(store_dir)
    split = federated_split("digits", CLIENTS, alpha=1.0, seed=4)
    spec = build_spec(recipe="digits_mlp", rule="fedavg", rounds=ROUNDS, min_clients_per_round=MIN_CLIENTS, seed=4,
                      round_timeout_s=120.0, hyperparameters={"local_epochs": 2})
    alice, validator = dev_keypair("Alice"), Keypair.create_from_uri("//FlFaultValidator")
    aggregator = Keypair.create_from_uri("//FlFaultAggregator")
    clients = [Keypair.create_from_uri(f"//FlFaultClient{i}") for i in range(CLIENTS)]
    procs: dict[str, subprocess.Popen[bytes]] = {}
    with DevnetProcess() as devnet, Chain.connect(devnet.ws_url, timeout=30) as chain:
        fund(chain, alice, [aggregator], 2 * TRAINER_STAKE)
        fund(chain, alice, [validator], 2 * VALIDATOR_STAKE)
        fund(chain, alice, clients, 100 * UNIT)
        register_account(chain, aggregator, "Trainer", TRAINER_STAKE, capabilities(2, memory_mb=4_096))
        register_account(chain, validator, "Validator", VALIDATOR_STAKE, capabilities(2, memory_mb=4_096))

        # //Alice posts the task; the holdout is committed now and revealed once round 1 is committed
        holdout_hash = store.put(split.holdout)
        holdout_uri, salt = store.uri(holdout_hash), b"\x5a" * 32
        commitment = holdout_commitment(salt, bytes.fromhex(holdout_hash), split.holdout_size, holdout_uri.encode())
        spec_hash = store.put(spec.canonical_bytes())
        terms = FlTaskTerms(max_clients=CLIENTS, client_share=700_000_000, min_client_stake=CLIENT_STAKE)
        on_chain = chain_fl_task_spec(spec, store.uri(spec_hash), spec_hash=spec_hash,
                                      initial_model_hash=store.put(model_bytes(initial_model(spec))), terms=terms)
        first_block = chain.best_number()
        receipt = chain.federated_tasks.create_task(alice, on_chain, 100 * UNIT, first_block + CLIENTS + 4,
                                                    first_block + 5_000, 1, "0x" + commitment.hex())
        task_id = int(next(e.task for e in receipt.events if e.name == "TaskCreated"))
        world = Run(task_id, clients, aggregator, chain, first_block, root)

        def client(i: int) -> subprocess.Popen[bytes]:
            data = root / f"client-{i}.ptts"
            data.write_bytes(split.shards[i].data)
            return _spawn([sys.executable, "-m", "paratrain.cli", "client", "--task", str(task_id), "--data",
                           str(data), "--state-dir", str(root / f"client-{i}"), "--store", store_dir,
                           "--chain", devnet.ws_url, "--key", f"//FlFaultClient{i}"],
                          logs / f"client-{i}.log", _env())

        port = free_port()

        def aggregator_process() -> subprocess.Popen[bytes]:
            return _spawn([sys.executable, str(ROOT / "tests" / "fl_aggregator_process.py"), devnet.ws_url,
                           str(root / "aggregator"), store_dir, str(port)],
                          logs / "aggregator.log", _env({KEY_ENV: export_key(aggregator)}))

        validator_config = ValidatorConfig(chain_url=devnet.ws_url, key="", store=store_dir,
                                           trusted_stores=(store_dir,), state_dir=str(root / "validator"),
                                           from_block=chain.finalized_number(), poll_interval_s=0.5)
        try:
            for i in range(CLIENTS):
                procs[f"client-{i}"] = client(i)
            world.pids.extend(p.pid for p in procs.values())
            wait_for(lambda: all(chain.federated_tasks.clients(task_id, c.ss58_address) for c in clients), 240,
                     "every data owner's daemon to join", world)
            join_deadline = int(chain.federated_tasks.tasks(task_id).join_deadline)
            while chain.best_number() <= join_deadline:  # instant seal: a block per extrinsic
                chain.system.remark(alice, b"paratrain fault test: join deadline")
            procs["aggregator"] = aggregator_process()
            world.pids.append(procs["aggregator"].pid)
            with DaemonThread(ValidatorDaemon(validator_config, keypair=validator), "fl-fault-validator"):
                drive(world, procs, aggregator_process, alice, (salt, holdout_hash, split.holdout_size, holdout_uri))
        finally:
            for proc in procs.values():
                stop(proc)
            world.leftovers = [pid for parent in world.pids for pid in processes_started_by(parent)]
        yield world


def wait_for(predicate: Any, timeout: float, what: str, world: Run | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            detail = "" if world is None else f"\naggregator log:\n{world.log('aggregator')}"
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}{detail}")
        time.sleep(0.2)


def drive(world: Run, procs: dict[str, subprocess.Popen[bytes]], restart: Any, alice: Keypair,
          holdout: tuple[bytes, str, int, str]) -> None:
    """Follow the task to its end: reveal the holdout after round 1, crash owner 4 once round 1 is committed and
    the aggregator once round 2 is, start the aggregator again."""
    fl = world.chain.federated_tasks
    revealed = False
    deadline = time.monotonic() + 1200
    while time.monotonic() < deadline:
        task = fl.tasks(world.task_id)
        committed = int(task.last_committed)
        if "client" not in world.killed and committed >= CLIENT_KILL_AFTER \
                and world.trains_received(VICTIM) > CLIENT_KILL_AFTER:
            crash(procs[f"client-{VICTIM}"])
            world.killed["client"] = committed
        if "aggregator" not in world.killed and committed >= AGGREGATOR_KILL_AFTER:
            crash(procs["aggregator"])
            world.killed["aggregator"] = committed
            procs["aggregator"] = restart()
            world.pids.append(procs["aggregator"].pid)
        if not revealed and committed >= 1:
            salt, digest, size, uri = holdout
            fl.reveal_holdout(alice, world.task_id, "0x" + salt.hex(), "0x" + digest, size, uri.encode())
            revealed = True
        if str(task.status.VARIANT) in TERMINAL:
            return
        if procs["aggregator"].poll() is not None:
            code = procs["aggregator"].returncode
            raise AssertionError(f"the aggregator exited ({code}):\n{world.log('aggregator')}")
        time.sleep(0.2)
    raise AssertionError(f"the task did not end in 1200 s (status {fl.tasks(world.task_id).status}):\n"
                         f"{world.log('aggregator')}")


def test_the_task_completes_with_every_round_committed(run: Run) -> None:
    task = run.chain.federated_tasks.tasks(run.task_id)
    assert str(task.status.VARIANT) == "Completed", task.status
    assert int(task.last_committed) == ROUNDS and int(task.last_accepted) == ROUNDS
    assert run.killed == {"client": CLIENT_KILL_AFTER, "aggregator": AGGREGATOR_KILL_AFTER}


def test_the_round_in_flight_completes_with_the_rest_when_a_client_dies(run: Run) -> None:
    victim = run.clients[VICTIM].ss58_address
    everyone = {c.ss58_address for c in run.clients}
    assert run.participants(1) == everyone
    for round_ in range(CLIENT_KILL_AFTER + 1, ROUNDS + 1):
        others = run.participants(round_)
        assert victim not in others, round_
        assert len(others) >= MIN_CLIENTS and others <= everyone - {victim}, (round_, others)
    assert run.participants(CLIENT_KILL_AFTER + 1) == everyone - {victim}  # nobody else was dropped


def test_the_dead_client_is_paid_for_its_rounds_only_and_never_slashed(run: Run) -> None:
    victim = run.clients[VICTIM].ss58_address
    events = run.events()
    paid_rounds = [int(e.round) for e in events if e.name == "ClientPaid" and str(e.client) == victim]
    assert paid_rounds == [1]
    assert not [e for e in events if e.name == "ClientSlashed"]
    info = run.chain.federated_tasks.clients(run.task_id, victim)
    assert int(info.rounds_rejected) == 0 and int(info.stake) == CLIENT_STAKE


def test_the_restarted_aggregator_resumed_from_its_last_committed_round(run: Run) -> None:
    log = run.log("aggregator")
    assert f"federated task {run.task_id}: resuming from round {AGGREGATOR_KILL_AFTER + 1}" in log, log
    committed = [int(e.round) for e in run.events() if e.name == "RoundCommitted"]
    assert committed == list(range(1, ROUNDS + 1))   # each round once, in order, across the crash
    fl = run.chain.federated_tasks
    for round_ in range(2, ROUNDS + 1):  # the resumed run builds on the last round the chain holds
        assert bytes(fl.rounds(run.task_id, round_).base_model_hash) \
            == bytes(fl.rounds(run.task_id, round_ - 1).global_model_hash), round_
    assert {str(e.aggregator) for e in run.events() if e.name == "RoundCommitted"} == {run.aggregator.ss58_address}


def test_nothing_is_paid_twice(run: Run) -> None:
    events = run.events()
    client_pay = Counter((str(e.client), int(e.round)) for e in events if e.name == "ClientPaid")
    assert client_pay and max(client_pay.values()) == 1
    accepted = Counter(int(e.round) for e in events if e.name == "RoundAccepted")
    assert accepted == Counter(range(1, ROUNDS + 1))
    for round_ in range(1, ROUNDS + 1):  # only a round's participants are paid for it
        assert {c for c, r in client_pay if r == round_} <= run.participants(round_)


def test_no_flower_process_outlives_the_test(run: Run) -> None:
    assert run.leftovers == []
