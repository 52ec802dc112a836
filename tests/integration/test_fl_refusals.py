"""The issue's three named refusals of FederatedTasks against a real devnet process, over its socket, through the
typed bindings: a second join is FederatedTasks.AlreadyJoined, round 3 before round 2 is RoundOutOfOrder, a
commit by anyone but the aggregator is NotAggregator. Each is a typed ModuleError with its doc line, the
extrinsic is included (and pays its fee), and the pallet's whole storage and the reserves are unchanged.

The set-up runs for real too: a task created, three clients (one ed25519) joined, the join deadline passed
with remarks (instant seal makes blocks only for transactions), a Trainer claimed it and committed round 1
with updates its clients signed with runtime_bindings.fl, which the pallet verified.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from devnet.crypto import blake2_256, twox_128
from runtime_bindings import Chain, Keypair, KeypairType, ModuleError, fl
from runtime_bindings.generated import federated_tasks as ft
from runtime_bindings.generated import types as t
from runtime_bindings.generated.federated_tasks import FederatedTasksError
from runtime_bindings.values import H256, Bytes

pytestmark = pytest.mark.slow  # a devnet process and some twenty blocks: ~10 s

UNIT = 10**12
ALICE = Keypair.create_from_uri("//Alice")
INITIAL_MODEL = H256(blake2_256(b"initial model"))
CAPS = {"cpus": 2, "gpus": 0, "gpu_model": b"", "memory_mb": 1024}


def _hash(label: str) -> H256:
    return H256(blake2_256(label.encode()))


@pytest.fixture(scope="module")
def chain(devnet: Any) -> Iterator[Chain]:
    with Chain.connect(devnet.ws_url, timeout=10) as c:
        yield c


@pytest.fixture(scope="module")
def people(chain: Chain) -> dict[str, Any]:
    ed = Keypair.create_from_seed(str(_hash("fl-refusals-ed")), crypto_type=KeypairType.ED25519)
    named = {"requester": Keypair.create_from_uri("//FlRefusalRequester"),
             "aggregator": Keypair.create_from_uri("//FlRefusalAggregator"),
             "intruder": Keypair.create_from_uri("//FlRefusalIntruder"),
             "clients": [Keypair.create_from_uri(f"//FlRefusalClient{i}") for i in range(2)] + [ed]}
    for who in [named["requester"], named["aggregator"], named["intruder"], *named["clients"]]:
        chain.balances.transfer_keep_alive(ALICE, who.ss58_address, 1_000 * UNIT)
    for trainer in (named["aggregator"], named["intruder"]):
        chain.workers.register(trainer, "Trainer", 200 * UNIT, CAPS)
    return named


def create(chain: Chain, people: dict[str, Any], join_blocks: int) -> ft.TaskCreatedEvent:
    now = chain.best_number()
    spec = t.FlTaskSpec(
        recipe=Bytes(b"digits_mlp"), spec_hash=_hash("spec"), spec_uri=Bytes(b"file:///store/spec.json"),
        initial_model_hash=INITIAL_MODEL, eval_metric=Bytes(b"accuracy"), eval_target=800_000,
        higher_is_better=True, rounds=3, min_clients_per_round=3, fraction_per_round=10**9, max_clients=8,
        rule=t.AggregationRule.FedMedian, client_share=700_000_000, min_client_stake=10 * UNIT,
        aggregate_tolerance=0, requirements=t.Requirements(min_cpus=1, min_gpus=0, min_memory_mb=0))
    receipt = chain.federated_tasks.create_task(people["requester"], spec, 300 * UNIT, now + join_blocks, now + 500,
                                                2, None)
    (created,) = receipt.find(ft.TaskCreatedEvent)
    return created


@pytest.fixture(scope="module")
def task(chain: Chain, people: dict[str, Any]) -> int:
    """A Running task whose round 1 is committed (nothing decided yet)."""
    created = create(chain, people, join_blocks=6)
    task_id = int(created.task)
    for i, client in enumerate(people["clients"]):
        chain.federated_tasks.join(client, task_id, _hash(f"data-{i}"), 100 + i, 10 * UNIT)
    while chain.best_number() < created.join_deadline:
        chain.system.remark(ALICE, b"advance")
    receipt = chain.federated_tasks.claim_aggregator(people["aggregator"], task_id, b"127.0.0.1:9092")
    assert receipt.find(ft.AggregatorClaimedEvent)  # the join deadline's hook had opened it
    receipt = commit(chain, people["aggregator"], task_id, 1, people["clients"], INITIAL_MODEL)
    (committed,) = receipt.find(ft.RoundCommittedEvent)
    assert committed.participants == 3
    return task_id


def updates(task: int, number: int, base: H256, clients: list[Keypair]) -> list[dict[str, object]]:
    out = []
    for client in sorted(clients, key=lambda k: k.public_key):
        update_hash = _hash(f"update-{task}-{number}-{client.ss58_address}")
        scheme, signature = fl.sign_update(client, task, number, base, update_hash, 100)
        out.append(fl.signed_update(client, update_hash, 100, scheme, signature))
    return out


def commit(chain: Chain, signer: Keypair, task: int, number: int, clients: list[Keypair], base: H256) -> Any:
    return chain.federated_tasks.commit_round(signer, task, number, base, _hash(f"global-{number}"),
                                              _hash(f"doc-{number}"), b"file:///store/round",
                                              updates(task, number, base, clients))


def pallet_storage(chain: Chain) -> dict[str, str]:
    """Every FederatedTasks storage entry at the best block, raw: keys under twox128("FederatedTasks")."""
    prefix = "0x" + twox_128(b"FederatedTasks").hex()
    keys = chain.rpc("state_getKeysPaged", [prefix, 1000, prefix])
    return {key: chain.rpc("state_getStorage", [key]) for key in keys}


def reserves(chain: Chain, people: dict[str, Any]) -> list[int]:
    accounts = [people["requester"], people["aggregator"], people["intruder"], *people["clients"]]
    return [chain.system.account(k.ss58_address).data.reserved for k in accounts]


def refused(chain: Chain, people: dict[str, Any], error: type[ModuleError], submit: Any) -> ModuleError:
    before, reserved, number = pallet_storage(chain), reserves(chain, people), chain.best_number()
    assert len(before) >= 5  # tasks, clients, queues (rounds): the comparison below is not of nothing
    with pytest.raises(error) as caught:
        submit()
    assert chain.best_number() == number + 1  # included in its block, and failed there
    assert pallet_storage(chain) == before
    assert reserves(chain, people) == reserved
    refusal = caught.value
    assert isinstance(refusal, FederatedTasksError) and refusal.pallet == "FederatedTasks"
    assert refusal.docs and refusal.receipt is not None and refusal.receipt.fee > 0
    return refusal


def test_a_second_join_is_already_joined(chain: Chain, people: dict[str, Any]) -> None:
    joining = int(create(chain, people, join_blocks=50).task)
    client = people["clients"][0]
    chain.federated_tasks.join(client, joining, _hash("data"), 100, 10 * UNIT)
    error = refused(chain, people, FederatedTasksError.AlreadyJoined,
                    lambda: chain.federated_tasks.join(client, joining, _hash("again"), 5, 10 * UNIT))
    assert error.name == "AlreadyJoined" and error.docs == "The account already joined this task."
    record = chain.federated_tasks.tasks(joining)
    assert record.clients == 1 and chain.federated_tasks.clients(joining, client.ss58_address).num_examples == 100


def test_round_three_before_round_two_is_round_out_of_order(chain: Chain, people: dict[str, Any], task: int) -> None:
    base = chain.federated_tasks.rounds(task, 1).global_model_hash
    refused(chain, people, FederatedTasksError.RoundOutOfOrder,
            lambda: commit(chain, people["aggregator"], task, 3, people["clients"], base))
    record = chain.federated_tasks.tasks(task)
    assert (record.last_committed, record.last_accepted) == (1, 0)
    assert chain.federated_tasks.rounds(task, 3) is None


def test_a_commit_by_another_trainer_is_not_aggregator(chain: Chain, people: dict[str, Any], task: int) -> None:
    base = chain.federated_tasks.rounds(task, 1).global_model_hash
    error = refused(chain, people, FederatedTasksError.NotAggregator,
                    lambda: commit(chain, people["intruder"], task, 2, people["clients"], base))
    assert isinstance(error, ft.NotAggregator)
    assert chain.federated_tasks.rounds(task, 2) is None
    # the aggregator's own commit of round 2 still goes through: nothing the refusals did stood in its way
    commit(chain, people["aggregator"], task, 2, people["clients"], base)
    assert chain.federated_tasks.tasks(task).last_committed == 2
