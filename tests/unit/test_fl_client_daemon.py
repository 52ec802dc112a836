"""The data owner's daemon against devnet's runtime in process (no Flower process: the tasks here never run):
it joins with the shard's commitment after checking the spec document, records what its ClientApps read, refuses
what it must not do, and withdraws its stake once a task is over."""
from __future__ import annotations

from pathlib import Path

import pytest

from runtime_bindings import Chain, Keypair
from workers.artifacts import ArtifactStore
from workers.fl.arrays import model_hash
from workers.fl.client_daemon import ClientConfig, ClientDaemon, ClientDaemonError
from workers.fl.client_tasks import load_tasks
from workers.fl.model import initial_model
from workers.fl.partition import federated_split
from workers.fl.spec import build_spec
from workers.observers import Recorder

UNIT, PERBILL = 10**12, 10**9
REQUESTER = Keypair.create_from_uri("//Alice")
CLIENT = Keypair.create_from_uri("//FlDaemonClient")


@pytest.fixture(scope="module")
def split():
    return federated_split("digits", 2, 1.0, 2)


def post(chain: Chain, store: ArtifactStore, *, spec_hash: str | None = None) -> int:
    spec = build_spec(recipe="digits_mlp", rule="fedavg", rounds=2, min_clients_per_round=1)
    digest = store.put(spec.canonical_bytes())
    on_chain = {"recipe": b"digits_mlp", "spec_hash": "0x" + (spec_hash or digest),
                "spec_uri": store.uri(digest).encode(),
                "initial_model_hash": "0x" + model_hash(initial_model(spec)).hex(),
                "eval_metric": b"accuracy", "eval_target": 0, "higher_is_better": True, "rounds": 2,
                "min_clients_per_round": 1, "fraction_per_round": PERBILL, "max_clients": 4, "rule": "FedAvg",
                "client_share": 600_000_000, "min_client_stake": UNIT, "aggregate_tolerance": 0,
                "requirements": {"min_cpus": 1, "min_gpus": 0, "min_memory_mb": 1_000}}
    now = chain.best_number()
    receipt = chain.federated_tasks.create_task(REQUESTER, on_chain, 10 * UNIT, now + 50, now + 500, 1, None)
    return int(next(e.task for e in receipt.events if e.name == "TaskCreated"))


def daemon(chain: Chain, store: ArtifactStore, tmp_path: Path, shard,
           tasks: list[int]) -> tuple[ClientDaemon, Recorder]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    data = tmp_path / "shard.ptts"
    data.write_bytes(shard.data)
    d = ClientDaemon(ClientConfig(tasks=tasks, data=data, state_dir=tmp_path / "state", stake=2 * UNIT, poll_s=0.01),
                     chain=chain, keypair=CLIENT, store=store)
    recorder = Recorder()
    d.subscribe(recorder)
    return d, recorder


@pytest.fixture
def funded(chain: Chain) -> Chain:
    chain.balances.transfer_keep_alive(REQUESTER, CLIENT.ss58_address, 100 * UNIT)
    return chain


def test_joins_with_the_shards_commitment_and_records_the_task(funded, tmp_path, split):
    store = ArtifactStore(tmp_path / "store")
    task_id = post(funded, store)
    d, recorder = daemon(funded, store, tmp_path, split.shards[0], [task_id])
    data_hash, examples = d.read_shard()
    assert (data_hash, examples) == (split.shards[0].hash, split.shards[0].num_examples)
    d.join(task_id, data_hash, examples)
    info = funded.federated_tasks.clients(task_id, CLIENT.ss58_address)
    assert bytes(info.data_hash).hex() == data_hash and int(info.num_examples) == examples
    assert int(info.stake) == 2 * UNIT
    entry = load_tasks(tmp_path / "state")[task_id]
    assert entry.data_hash == data_hash and entry.read_shard() == split.shards[0].data
    d.join(task_id, data_hash, examples)                           # a restart: no second join on chain
    assert [e["already"] for e in recorder.of("joined")] == [False, True]


def test_withdraws_its_stake_once_the_task_is_over(funded, tmp_path, split):
    store = ArtifactStore(tmp_path / "store")
    task_id = post(funded, store)
    d, recorder = daemon(funded, store, tmp_path, split.shards[0], [task_id])
    d.join(task_id, *d.read_shard())
    free_before = funded.system.account(CLIENT.ss58_address).data.free
    funded.federated_tasks.cancel_task(REQUESTER, task_id)
    assert d.run() == 0
    info = funded.federated_tasks.clients(task_id, CLIENT.ss58_address)
    assert bool(info.withdrawn)
    assert funded.system.account(CLIENT.ss58_address).data.free > free_before
    assert [e["task_id"] for e in recorder.of("withdrawn")] == [task_id] and recorder.of("finished")
    assert recorder.of("supernode-started") == []


def test_a_spec_that_is_not_the_chains_is_refused_before_joining(funded, tmp_path, split):
    store = ArtifactStore(tmp_path / "store")
    task_id = post(funded, store, spec_hash="ab" * 32)
    d, _ = daemon(funded, store, tmp_path, split.shards[0], [task_id])
    with pytest.raises(ClientDaemonError, match="spec document cannot be used"):
        d.run()
    assert funded.federated_tasks.clients(task_id, CLIENT.ss58_address) is None
    assert load_tasks(tmp_path / "state") == {}


def test_other_data_than_the_joined_commitment_is_refused(funded, tmp_path, split):
    store = ArtifactStore(tmp_path / "store")
    task_id = post(funded, store)
    first, _ = daemon(funded, store, tmp_path / "a", split.shards[0], [task_id])
    first.join(task_id, *first.read_shard())
    second, _ = daemon(funded, store, tmp_path / "b", split.shards[1], [task_id])
    with pytest.raises(ClientDaemonError, match="joined with other data"):
        second.run()
    assert load_tasks(tmp_path / "b" / "state") == {}


def test_an_unknown_task_and_an_unreadable_shard_are_one_line_errors(funded, tmp_path, split):
    store = ArtifactStore(tmp_path / "store")
    d, _ = daemon(funded, store, tmp_path, split.shards[0], [999])
    with pytest.raises(ClientDaemonError, match="task 999 does not exist"):
        d.run()
    (tmp_path / "shard.ptts").write_bytes(b"not a data set")
    with pytest.raises(ClientDaemonError, match=r"shard\.ptts"):
        d.read_shard()
