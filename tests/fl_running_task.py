"""A FederatedTasks task in the Running state, set up through the bindings as the CLI would (no pallet
internals): //Alice requests, //Bob registers as a Trainer and claims it, the other dev accounts join as
clients. Used by the server-side tests (committer and strategy), unit and integration alike."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from runtime_bindings import Chain, Keypair
from runtime_bindings.generated import types as t
from runtime_bindings.values import H256
from workers.hashing import blake2_256

UNIT = 10**12
PERBILL = 1_000_000_000
REQUESTER = Keypair.create_from_uri("//Alice")
AGGREGATOR = Keypair.create_from_uri("//Bob")
CLIENTS = [Keypair.create_from_uri(f"//{name}") for name in ("Charlie", "Dave", "Eve", "Ferdie")]
VALIDATOR = Keypair.create_from_uri("//FlServerSideValidator")


@dataclass(frozen=True)
class RunningTask:
    task_id: int
    clients: tuple[Keypair, ...]
    examples: dict[bytes, int]  # public key -> committed num_examples


def fl_spec(*, initial_model_hash: bytes, rounds: int, min_clients: int, rule: t.AggregationRule,
            spec_hash: bytes = b"\x11" * 32, spec_uri: bytes = b"file:///spec.json") -> t.FlTaskSpec:
    return t.FlTaskSpec(
        recipe=b"digits_mlp", spec_hash=H256(spec_hash), spec_uri=spec_uri,
        initial_model_hash=H256(initial_model_hash), eval_metric=b"accuracy", eval_target=0, higher_is_better=True,
        rounds=rounds, min_clients_per_round=min_clients, fraction_per_round=PERBILL, max_clients=8, rule=rule,
        client_share=700_000_000, min_client_stake=UNIT, aggregate_tolerance=0,
        requirements=t.Requirements(1, 0, 0))


def running_task(chain: Chain, *, initial_model_hash: bytes, examples: Sequence[int], rounds: int = 3,
                 min_clients: int = 2, rule: t.AggregationRule | None = None, spec_hash: bytes = b"\x11" * 32,
                 spec_uri: bytes = b"file:///spec.json", data_hashes: Sequence[bytes] | None = None) -> RunningTask:
    """Create, join (one client per entry of `examples`, committing to `data_hashes` when given), pass the
    join deadline and claim."""
    clients = tuple(CLIENTS[:len(examples)])
    chain.workers.register(AGGREGATOR, "Trainer", 1_000 * UNIT, t.Capabilities(2, 0, "", 8_000))
    join_deadline = chain.best_number() + len(clients) + 3
    receipt = chain.federated_tasks.create_task(
        REQUESTER, fl_spec(initial_model_hash=initial_model_hash, rounds=rounds, min_clients=min_clients,
                           rule=rule or t.AggregationRule.FedAvg, spec_hash=spec_hash, spec_uri=spec_uri),
        100 * UNIT, join_deadline, chain.best_number() + 10_000, 1, None)
    task_id = next(int(e.task) for e in receipt.events if e.name == "TaskCreated")
    hashes = data_hashes or [blake2_256(f"data-{i}".encode()) for i in range(len(clients))]
    for client, n, data_hash in zip(clients, examples, hashes, strict=True):
        chain.federated_tasks.join(client, task_id, H256(data_hash), n, 2 * UNIT)
    while chain.best_number() <= join_deadline:  # instant seal: every extrinsic is a block
        chain.balances.transfer_keep_alive(REQUESTER, AGGREGATOR.ss58_address, 1)
    chain.federated_tasks.claim_aggregator(AGGREGATOR, task_id, b"127.0.0.1:9092")
    return RunningTask(task_id, clients, {c.public_key: n for c, n in zip(clients, examples, strict=True)})


def register_validator(chain: Chain, validator: Keypair = VALIDATOR) -> Keypair:
    """A funded, registered Validator that is none of the task's parties."""
    chain.balances.transfer_keep_alive(REQUESTER, validator.ss58_address, 2_000 * UNIT)
    chain.workers.register(validator, "Validator", 500 * UNIT, t.Capabilities(2, 0, "", 8_000))
    return validator


def accept_round(chain: Chain, validator: Keypair, task_id: int, round_: int, participants: int) -> None:
    """The validator's accepting verdict, every participant at the full contribution factor."""
    chain.federated_tasks.submit_round_verdict(validator, task_id, round_, t.RoundVerdict(
        accept=True, measured_metric=0, evidence_hash=H256(b"\x01" * 32), rejected_clients=[],
        contributions=[PERBILL] * participants))
