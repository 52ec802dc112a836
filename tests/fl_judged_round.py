"""A FederatedTasks round committed the way ChainStrategy commits one, with real updates, for the round judge's
tests (tests/unit/test_fl_judge.py in process, tests/integration/test_fl_judge_devnet.py on a devnet process).

A requester (//Alice) posts a FedMedian task with a committed holdout over four clients' digits shards
(workers.fl.partition, a Dirichlet(100) split: near IID, so that honest updates agree and a leave-one-out on
the holdout is not noise at this size); the aggregator (//Bob, a Trainer) commits rounds with the clients'
signed updates (runtime_bindings.fl), its objects in its own store (base, updates, global model, the
canonical round document; artifact_uri the document's URI). The honest updates are real local training
runs of the task's recipe (workers.fl.local_training), built once per module; the attacks are what
workers.fl.attacks does to a reply (x1000, the received model returned).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from paratrain.commands.task import holdout_commitment
from runtime_bindings import Chain, Keypair
from runtime_bindings import fl as bfl
from runtime_bindings.generated import types as t
from workers.artifacts import ArtifactStore
from workers.fl import rules
from workers.fl.arrays import Arrays, model_bytes, update_bytes
from workers.fl.judge import JudgeSettings, RoundJudge
from workers.fl.local_training import train_round
from workers.fl.model import initial_model
from workers.fl.partition import FederatedSplit, federated_split
from workers.fl.spec import FlSpec, Participant, build_spec, round_document
from workers.hashing import blake2_256_hex
from workers.uri_policy import UriPolicy
from workers.validator import ValidatorState

UNIT = 10**12
PERBILL = 10**9
ALICE, BOB, CHARLIE, DAVE = (Keypair.create_from_uri(f"//{n}") for n in ("Alice", "Bob", "Charlie", "Dave"))
CLIENTS = sorted((Keypair.create_from_uri(f"//FlJudgeClient{i}") for i in range(4)), key=lambda k: k.public_key)
CAPS = t.Capabilities(8, 0, "", 16_000)
SALT = bytes.fromhex(blake2_256_hex(b"judge-test-salt"))  # an H256


@dataclass
class World:
    """What the clients, the requester and the aggregator hold before any chain: data, spec, models."""

    split: FederatedSplit
    spec: FlSpec
    base: Arrays
    honest: list[Arrays]        # one real local update per client (CLIENTS order)
    examples: list[int]


def build_world() -> World:
    split = federated_split("digits", len(CLIENTS), alpha=100.0, seed=5)
    spec = build_spec(recipe="digits_mlp", rule="fedmedian", rounds=2, min_clients_per_round=3, seed=1,
                      hyperparameters={"local_epochs": 5})
    base = initial_model(spec)
    honest, examples = [], []
    for shard in split.shards:
        result = train_round(spec, base, shard.data, task_id=0, round_=1)
        honest.append(result.arrays)
        examples.append(result.num_examples)
    return World(split, spec, base, honest, examples)


def scaled(base: Arrays, update: Arrays, factor: float) -> Arrays:
    """The scale attack: the update's change from the base, times `factor`."""
    return {k: (base[k] + factor * (update[k] - base[k])).astype(base[k].dtype) for k in base}


@dataclass
class Market:
    """A chain with a joined, claimed task of `world`'s spec, the three parties' stores, a judge for //Charlie."""

    chain: Chain
    world: World
    requester: ArtifactStore
    aggregator: ArtifactStore
    validator: ArtifactStore
    task: int = 0
    from_block: int = 0
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    state: ValidatorState = field(default_factory=ValidatorState)

    def judge(self, keypair: Keypair = CHARLIE, store: ArtifactStore | None = None, margin_ms: int = 0) -> RoundJudge:
        """A judge of `keypair` on this chain; its votes and abstentions land in `events`."""
        return RoundJudge(chain=self.chain, keypair=keypair, store=store or self.validator, state=self.state,
                          save=lambda: None, notify=lambda what, **detail: self.events.append((what, detail)),
                          settings=JudgeSettings(holdout_margin_ms=margin_ms))

    def take_in(self, judge: RoundJudge) -> None:
        """The finalized blocks since the last call, as the validator daemon hands them to its judge."""
        head = self.chain.finalized_number()
        for block in self.chain.events.finalized(from_block=self.from_block, to_block=head, own_connection=False):
            for record in block.records:
                if record.event.pallet == "FederatedTasks":
                    judge.take_in(record.event, block)
        self.from_block = head + 1

    def commit(self, updates: Sequence[Arrays], *, global_model: Arrays | None = None, round_: int = 1,
               base: Arrays | None = None, listed: Sequence[Arrays] | None = None) -> str:
        """Round `round_` committed by //Bob as ChainStrategy does it: objects in its store, then commit_round
        with every client's signature; the global model is the rule's aggregate unless given, the document
        lists `listed` (an aggregator swapping updates) instead of the signed updates when given. Its doc
        hash."""
        base = self.world.base if base is None else base
        base_hash = self.aggregator.put(model_bytes(base))
        weights = self.world.examples[:len(updates)]
        if global_model is None:
            global_model = rules.aggregate(self.world.spec.rule, list(updates), weights)
        global_hash = self.aggregator.put(model_bytes(global_model))
        entries, participants = [], []
        for client, update, shown, n in zip(CLIENTS, updates, listed or updates, weights, strict=False):
            update_hash = self.aggregator.put(update_bytes(update))
            signed = bfl.sign_update(client, self.task, round_, base_hash, update_hash, n)
            entries.append(bfl.signed_update(client, update_hash, n, *signed))
            participants.append(Participant(client.ss58_address, self.aggregator.put(update_bytes(shown)), n,
                                            signed.scheme.lower(), signed.signature.hex()))
        document = round_document(task_id=self.task, round=round_, rule=self.world.spec.rule,
                                  base_model_hash=base_hash, global_model_hash=global_hash,
                                  participants=participants)
        doc_hash = self.aggregator.put(document.canonical_bytes())
        self.chain.federated_tasks.commit_round(BOB, self.task, round_, "0x" + base_hash, "0x" + global_hash,
                                                "0x" + doc_hash, self.aggregator.uri(doc_hash), entries)
        return doc_hash

    def reveal(self) -> None:
        holdout = self.world.split.holdout
        digest = self.requester.put(holdout)
        self.chain.federated_tasks.reveal_holdout(ALICE, self.task, "0x" + SALT.hex(), "0x" + digest, len(holdout),
                                                  self.requester.uri(digest))

    def verdict(self, validator: Keypair = CHARLIE, round_: int = 1) -> Any:
        return self.chain.federated_tasks.round_verdicts(self.task, round_, validator.ss58_address)


def post_task(chain: Chain, world: World, requester: ArtifactStore, *, validators_required: int = 1) -> int:
    spec = world.spec
    spec_bytes = spec.canonical_bytes()
    spec_digest = requester.put(spec_bytes)
    holdout = world.split.holdout
    holdout_uri = requester.uri(blake2_256_hex(holdout))
    commitment = holdout_commitment(SALT, bytes.fromhex(blake2_256_hex(holdout)), len(holdout), holdout_uri.encode())
    on_chain = {"recipe": spec.recipe.encode(), "spec_hash": "0x" + spec_digest,
                "spec_uri": requester.uri(spec_digest).encode(),
                "initial_model_hash": "0x" + blake2_256_hex(model_bytes(world.base)),
                "eval_metric": spec.eval.metric.encode(), "eval_target": int(spec.eval.target * 1_000_000),
                "higher_is_better": True, "rounds": spec.rounds, "min_clients_per_round": spec.min_clients_per_round,
                "fraction_per_round": PERBILL, "max_clients": len(CLIENTS), "rule": "FedMedian",
                "client_share": 600_000_000, "min_client_stake": UNIT, "aggregate_tolerance": 0,
                "requirements": {"min_cpus": 1, "min_gpus": 0, "min_memory_mb": 1_000}}
    join_deadline = chain.best_number() + 2 + len(CLIENTS)
    receipt = chain.federated_tasks.create_task(ALICE, on_chain, 100 * UNIT, join_deadline, join_deadline + 500,
                                                validators_required, "0x" + commitment.hex())
    task = next(e.task for e in receipt.events if e.name == "TaskCreated")
    for i, (client, shard) in enumerate(zip(CLIENTS, world.split.shards, strict=True)):
        chain.federated_tasks.join(client, task, "0x" + shard.hash, world.examples[i], 2 * UNIT)
    while chain.best_number() < join_deadline:
        chain.system.remark(ALICE, b"tick")
    chain.federated_tasks.claim_aggregator(BOB, task, b"127.0.0.1:9092")
    return int(task)


def open_market(chain: Chain, world: World, root: Path, *, validators: Sequence[Keypair] = (CHARLIE,),
                validators_required: int = 1) -> Market:
    """Fund the clients, register //Bob as a Trainer and `validators` as Validators, give each party a store
    (the validators' //Charlie store trusts the requester's and the aggregator's) and post the task."""
    for client in CLIENTS:
        chain.balances.transfer_keep_alive(ALICE, client.ss58_address, 20 * UNIT)
    chain.workers.register(BOB, "Trainer", chain.constant("Workers", "MinTrainerStake"), CAPS)
    for validator in validators:
        chain.workers.register(validator, "Validator", chain.constant("Workers", "MinValidatorStake"), CAPS)
    requester, aggregator = ArtifactStore(root / "requester"), ArtifactStore(root / "aggregator")
    validator_store = ArtifactStore(root / "validator", policy=UriPolicy((requester.root, aggregator.root)))
    market = Market(chain, world, requester, aggregator, validator_store, from_block=chain.finalized_number() + 1)
    market.task = post_task(chain, world, requester, validators_required=validators_required)
    return market
