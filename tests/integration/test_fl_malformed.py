"""Malformed updates are refused by the aggregator with a reason in the round document and never aggregated.

Eight data owners on non-IID digits, four honest and four whose ClientApp sends, signed, an update with a NaN,
an infinity, an array of the wrong shape, or more bytes than the spec allows (workers/fl/attacks.py). Two
FedAvg rounds in Flower's simulation on Ray with the aggregator's ChainStrategy, on devnet's runtime behind
the in-process node, judged by a validator's round judge. Simulation rather than SuperNode processes: what is
tested is the aggregator's refusal of what arrives, which is the same code in both runtimes
(tests/integration/test_fl_deployment.py runs the processes).
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from fl_simulation import STAKE, client_node, judging, post_task, register_parties, run_tasks
from memory_chain import memory_chain

from devnet.rpc.inprocess import InProcessNode
from runtime_bindings import Chain, Keypair
from workers.artifacts import ArtifactStore
from workers.fl import rules
from workers.fl.arrays import loads
from workers.fl.spec import RoundDocument, build_spec, decode_round_document, parse_rule

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]  # one simulation on Ray, 2 rounds judged

ROUNDS, MAX_UPDATE_BYTES = 2, 1 << 20
MALFORMED = {4: "nan", 5: "inf", 6: "wrong-shape", 7: "oversize"}
REASONS = {"nan": "NaN or infinite", "inf": "NaN or infinite", "wrong-shape": "has shape",
           "oversize": f"larger than the {MAX_UPDATE_BYTES} bytes allowed"}
CLIENTS = [Keypair.create_from_uri(f"//FlMalformed{i}") for i in range(8)]


@dataclass
class Run:
    chain: Chain
    store: ArtifactStore
    task_id: int
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def document(self, round_: int) -> tuple[Any, RoundDocument]:
        record = self.chain.federated_tasks.rounds(self.task_id, round_)
        return record, decode_round_document(self.store.get(bytes(record.round_doc_hash).hex()))


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    from workers.fl.partition import federated_split

    root = tmp_path_factory.mktemp("malformed")
    split = federated_split("digits", len(CLIENTS), alpha=1.0, seed=4)
    spec = build_spec(recipe="digits_mlp", rule="fedavg", rounds=ROUNDS, min_clients_per_round=3,
                      hyperparameters={"local_epochs": 2, "hidden": 32}, max_update_bytes=MAX_UPDATE_BYTES,
                      round_timeout_s=600.0)
    store = ArtifactStore(root / "store")
    with InProcessNode() as node, memory_chain(node) as chain:
        register_parties(chain, CLIENTS)
        task_id = post_task(chain, store, spec, CLIENTS, split.shards, split.holdout)
        nodes = [client_node(root / f"client-{i}", client, shard, [(task_id, spec)], MALFORMED.get(i))
                 for i, (client, shard) in enumerate(zip(CLIENTS, split.shards, strict=True))]
        world = Run(chain, store, task_id)
        run_tasks(lambda: memory_chain(node), store, [task_id], nodes,
                  (lambda what, detail: world.events.append((what, detail)),
                   judging(lambda: memory_chain(node), store, split.holdout, world.events)))
        yield world


def test_every_round_is_committed_with_the_honest_clients_only(run: Run) -> None:
    honest = sorted((c for i, c in enumerate(CLIENTS) if i not in MALFORMED), key=lambda k: k.public_key)
    assert int(run.chain.federated_tasks.tasks(run.task_id).last_accepted) == ROUNDS
    for round_ in range(1, ROUNDS + 1):
        record, document = run.document(round_)
        assert [str(a) for a, _ in record.participants] == [k.ss58_address for k in honest]
        assert [p.client for p in document.participants] == [k.ss58_address for k in honest]


def test_each_malformed_update_is_refused_with_its_reason_in_the_round_document(run: Run) -> None:
    for round_ in range(1, ROUNDS + 1):
        _, document = run.document(round_)
        reasons = {r.client: r.reason for r in document.refused}
        assert set(reasons) == {CLIENTS[i].ss58_address for i in MALFORMED}, document.refused
        for i, attack in MALFORMED.items():
            assert REASONS[attack] in reasons[CLIENTS[i].ss58_address], (attack, reasons[CLIENTS[i].ss58_address])
    refused = [d for what, d in run.events if what == "refused"]
    assert len(refused) == ROUNDS * len(MALFORMED)


def test_the_committed_model_is_the_honest_updates_aggregate_bitwise(run: Run) -> None:
    for round_ in range(1, ROUNDS + 1):
        record, document = run.document(round_)
        updates = [loads(run.store.get(p.update_hash))[0] for p in document.participants]
        expected = rules.aggregate(parse_rule(document.rule), updates, [p.num_examples for p in document.participants])
        committed, _ = loads(run.store.get(bytes(record.global_model_hash).hex()))
        assert committed.keys() == expected.keys()
        assert all(np.array_equal(committed[k], expected[k]) for k in committed), round_
        assert all(np.isfinite(v).all() for v in committed.values())


def test_malformed_senders_are_neither_paid_nor_slashed(run: Run) -> None:
    for i, client in enumerate(CLIENTS):
        info = run.chain.federated_tasks.clients(run.task_id, client.ss58_address)
        assert int(info.stake) == STAKE and int(info.rounds_rejected) == 0
        if i in MALFORMED:
            assert int(info.paid) == 0, MALFORMED[i]
