"""workers.fl.secagg_verify: a validator's verdict on a SecAgg+ round, from the objects alone (no Flower, no
chain): honest clipped updates with their salted commitments, real reveal documents (workers/fl/secagg_audit.py)
and a round document signed as clip_commit_mod signs; every audited cheat rejected alone, an aggregator's fault
rejecting the round."""
from __future__ import annotations

import json
import os
from dataclasses import replace

import numpy as np
import pytest
from substrateinterface import Keypair

from runtime_bindings import fl as bfl
from workers.fl import model as fl_model
from workers.fl.arrays import model_bytes, model_hash
from workers.fl.partition import federated_split
from workers.fl.secagg_app import fedavg
from workers.fl.secagg_audit import reveal_document
from workers.fl.secagg_client import Reveal, clip_update, commitment, weighted
from workers.fl.secagg_params import SecAggParams
from workers.fl.secagg_task import SecAggTask
from workers.fl.secagg_verify import PERBILL, AuditedClient, secagg_round_verdict
from workers.fl.spec import Participant, build_spec, canonical_json, round_document
from workers.fl.verify import EVIDENCE_KIND, ChainRound

TASK, ROUND = 5, 1
BOUND = 4.5
CLIENTS = 4
EXAMPLES = [30, 41, 52, 63]
KEYS = [Keypair.create_from_uri(f"//VerifyClient{i}") for i in range(CLIENTS)]


@pytest.fixture(scope="module")
def spec():
    return build_spec(recipe="digits_mlp", rule="fedavg", rounds=1, min_clients_per_round=3,
                      secagg=SecAggTask(SecAggParams(), BOUND, audit_rate=10**9))


@pytest.fixture(scope="module")
def base(spec):
    """The recipe's real initial model (so the global model can be measured on the digits holdout)."""
    return fl_model.initial_model(spec)


def _trained(base: dict[str, np.ndarray], seed: int, norm: float) -> dict[str, np.ndarray]:
    """`base` moved by a random direction of L2 norm `norm` (float64 arithmetic, stored as the base's dtypes)."""
    rng = np.random.default_rng(seed)
    raw = {k: rng.standard_normal(v.shape) for k, v in base.items()}
    scale = norm / float(np.sqrt(sum(float(np.sum(d * d)) for d in raw.values())))
    return {k: (np.asarray(v, np.float64) + raw[k] * scale).astype(v.dtype) for k, v in base.items()}


def _clipped(base: dict[str, np.ndarray], model: dict[str, np.ndarray], bound: float = BOUND) -> dict[str, np.ndarray]:
    names = list(base)
    arrays, _ = clip_update([base[k] for k in names], [model[k] for k in names], bound)
    return dict(zip(names, arrays, strict=True))


class Client:
    """One data owner: what it committed to (and masked), its reveal document and its signed participant row."""

    def __init__(self, index: int, base: dict[str, np.ndarray], arrays: dict[str, np.ndarray]) -> None:
        self.key = KEYS[index]
        self.account = self.key.ss58_address
        self.examples = EXAMPLES[index]
        self.arrays = arrays
        self.salt = os.urandom(32)
        self.commitment = commitment(self.salt, arrays)
        signed = bfl.sign_update(self.key, TASK, ROUND, model_hash(base), self.commitment, self.examples)
        self.participant = Participant(self.account, self.commitment.hex(), self.examples, signed.scheme.lower(),
                                       signed.signature.hex())

    def reveal(self, arrays: dict[str, np.ndarray] | None = None) -> bytes:
        arrays = self.arrays if arrays is None else arrays
        names = list(arrays)
        return reveal_document(Reveal(TASK, ROUND, arrays, self.salt, self.commitment, self.examples,
                                      weighted(SecAggParams(), [arrays[k] for k in names], self.examples)),
                               self.key.public_key)

    def audited(self, document: bytes | None = None) -> AuditedClient:
        """Drawn, with `document` (by default its honest reveal)."""
        return AuditedClient(self.account, self.key.public_key, self.reveal() if document is None else document)

    def unrevealed(self, missing: str = "") -> AuditedClient:
        """Drawn, with no usable reveal."""
        return AuditedClient(self.account, self.key.public_key, None, missing)


def _clients(base: dict[str, np.ndarray], cheats: dict[int, dict[str, np.ndarray]] | None = None) -> list[Client]:
    """Honest clients (updates of norm 6 clipped to 4.5, and of norm 1 under the bound) unless `cheats` says
    what client i committed to; sorted by account bytes, the pallet's order."""
    cheats = cheats or {}
    clients = [Client(i, base, cheats[i] if i in cheats else _clipped(base, _trained(base, 100 + i, 6.0 if i % 2
                                                                                        else 1.0)))
               for i in range(CLIENTS)]
    return sorted(clients, key=lambda c: bytes(c.key.public_key))


def _round(base: dict[str, np.ndarray], clients: list[Client], *, global_model: dict[str, np.ndarray] | None = None,
           participants: list[Participant] | None = None) -> tuple[ChainRound, bytes, bytes, bytes]:
    """(the chain's record, the round document, the base and global model bytes) of a round of `clients`."""
    aggregate = fedavg({i: c.arrays for i, c in enumerate(clients)}, {i: c.examples for i, c in enumerate(clients)})
    aggregate = {k: np.asarray(v).astype(base[k].dtype) for k, v in aggregate.items()}
    committed = aggregate if global_model is None else global_model
    doc = round_document(task_id=TASK, round=ROUND, rule="fedavg", base_model_hash=model_hash(base),
                         global_model_hash=model_hash(committed),
                         participants=participants if participants is not None else [c.participant for c in clients],
                         flower_version="1.42.0")
    chain = ChainRound(task_id=TASK, round=ROUND, rule="fedavg", base_model_hash=model_hash(base).hex(),
                       global_model_hash=model_hash(committed).hex(),
                       participants=tuple((c.account, c.examples) for c in clients))
    return chain, doc.canonical_bytes(), model_bytes(base), model_bytes(committed)


def _evidence(value) -> dict:  # type: ignore[no-untyped-def]
    return json.loads(value.evidence)


def test_an_honest_round_is_accepted_and_everyone_paid(spec, base) -> None:
    clients = _clients(base)
    chain, doc, base_b, global_b = _round(base, clients)
    value = secagg_round_verdict(spec, chain, doc, base_b, global_b, [c.audited() for c in clients])
    assert value.accept, value.reasons
    assert value.rejected_clients == [] and value.reasons == []
    assert value.contributions == [PERBILL] * CLIENTS == [10**9] * CLIENTS
    assert value.measured_metric == 0   # no holdout: nothing measured
    evidence = _evidence(value)
    assert value.evidence == canonical_json(evidence)
    assert evidence["kind"] == EVIDENCE_KIND and evidence["secagg"] is True and evidence["accept"] is True
    assert evidence["task_id"] == TASK and evidence["round"] == ROUND and evidence["rule"] == "fedavg"
    assert evidence["global_model_hash"] == chain.global_model_hash
    assert evidence["audit"] == [{"client": c.account, "passed": True} for c in clients]


def test_a_reveal_of_another_model_than_committed_rejects_that_client_alone(spec, base) -> None:
    clients = _clients(base)
    chain, doc, base_b, global_b = _round(base, clients)
    liar = clients[1]
    other = _clipped(base, _trained(base, 999, 2.0))   # within the bound, but not what it committed to
    audited = [c.audited(c.reveal(other) if c is liar else None) for c in clients]
    value = secagg_round_verdict(spec, chain, doc, base_b, global_b, audited)
    assert value.accept, value.reasons
    assert value.rejected_clients == [liar.account]
    assert value.contributions == [0 if c is liar else PERBILL for c in clients]
    assert len(value.reasons) == 1 and "commitment" in value.reasons[0]
    entries = {e["client"]: e for e in _evidence(value)["audit"]}
    assert entries[liar.account]["passed"] is False and "commitment" in entries[liar.account]["reason"]
    assert all(entries[c.account] == {"client": c.account, "passed": True} for c in clients if c is not liar)


def test_an_update_above_the_norm_bound_rejects_that_client_alone(spec, base) -> None:
    unclipped = _trained(base, 7, 5.0)   # committed and revealed as it is: its commitment opens, its norm is 5
    clients = _clients(base, {2: unclipped})
    cheat = next(c for c in clients if c.arrays is unclipped)
    chain, doc, base_b, global_b = _round(base, clients)
    value = secagg_round_verdict(spec, chain, doc, base_b, global_b, [c.audited() for c in clients])
    assert value.accept, value.reasons
    assert value.rejected_clients == [cheat.account]
    assert value.contributions == [0 if c is cheat else PERBILL for c in clients]
    assert len(value.reasons) == 1 and "above the bound 4.5" in value.reasons[0]


def test_a_drawn_client_without_a_reveal_is_rejected(spec, base) -> None:
    clients = _clients(base)
    chain, doc, base_b, global_b = _round(base, clients)
    silent, unreadable = clients[0], clients[3]
    audited = [silent.unrevealed(), clients[1].audited(), clients[2].audited(),
               unreadable.unrevealed("the store refused the object")]
    value = secagg_round_verdict(spec, chain, doc, base_b, global_b, audited)
    assert value.accept, value.reasons
    assert value.rejected_clients == [silent.account, unreadable.account]
    assert value.contributions == [0, PERBILL, PERBILL, 0]
    assert "audit: no reveal (nothing on chain)" in value.reasons
    assert "audit: no reveal (the store refused the object)" in value.reasons


def test_an_undrawn_client_is_never_rejected(spec, base) -> None:
    unclipped = _trained(base, 7, 50.0)   # would fail the audit, but the chain did not draw it
    clients = _clients(base, {1: unclipped})
    cheat = next(c for c in clients if c.arrays is unclipped)
    chain, doc, base_b, global_b = _round(base, clients)
    value = secagg_round_verdict(spec, chain, doc, base_b, global_b, [c.audited() for c in clients if c is not cheat])
    assert value.accept, value.reasons
    assert value.rejected_clients == [] and value.contributions == [PERBILL] * CLIENTS
    assert [e["client"] for e in _evidence(value)["audit"]] == [c.account for c in clients if c is not cheat]
    # and a stranger (not a participant) in the audit list changes nothing either
    stranger = Keypair.create_from_uri("//VerifyStranger")
    value = secagg_round_verdict(spec, chain, doc, base_b, global_b,
                                 [AuditedClient(stranger.ss58_address, stranger.public_key, None)])
    assert value.accept and value.rejected_clients == [] and value.contributions == [PERBILL] * CLIENTS


def test_a_document_whose_participants_are_not_the_chains_rejects_the_round(spec, base) -> None:
    clients = _clients(base)
    chain, doc, base_b, global_b = _round(base, clients[:3])   # the document lists three
    chain = replace(chain, participants=tuple((c.account, c.examples) for c in clients))   # the chain four
    value = secagg_round_verdict(spec, chain, doc, base_b, global_b, [c.audited() for c in clients])
    assert not value.accept
    assert value.rejected_clients == [] and value.contributions == [0] * CLIENTS
    assert any("participants" in r for r in value.reasons)
    evidence = _evidence(value)
    assert evidence["accept"] is False and "audit" not in evidence and evidence["secagg"] is True


def test_a_participant_with_another_example_count_rejects_the_round(spec, base) -> None:
    clients = _clients(base)
    rows = [replace(c.participant, num_examples=c.examples + 1) if i == 0 else c.participant
            for i, c in enumerate(clients)]
    chain, doc, base_b, global_b = _round(base, clients, participants=rows)
    value = secagg_round_verdict(spec, chain, doc, base_b, global_b, [c.audited() for c in clients])
    assert not value.accept and value.rejected_clients == []
    assert any("examples" in r for r in value.reasons)


def test_a_global_model_of_another_shape_rejects_the_round(spec, base) -> None:
    clients = _clients(base)
    name = next(iter(base))
    wrong = {**base, name: np.zeros((3,), base[name].dtype)}
    chain, doc, base_b, global_b = _round(base, clients, global_model=wrong)
    value = secagg_round_verdict(spec, chain, doc, base_b, global_b, [c.audited() for c in clients])
    assert not value.accept and value.rejected_clients == [] and value.contributions == [0] * CLIENTS
    assert any("global model" in r for r in value.reasons)
    assert "audit" not in _evidence(value)


def test_a_non_finite_global_model_rejects_the_round(spec, base) -> None:
    clients = _clients(base)
    name = next(iter(base))
    bad = {**base, name: np.full_like(base[name], np.nan)}
    chain, doc, base_b, global_b = _round(base, clients, global_model=bad)
    value = secagg_round_verdict(spec, chain, doc, base_b, global_b, [c.audited() for c in clients])
    assert not value.accept and value.rejected_clients == []


def test_global_model_bytes_that_are_not_the_hashed_object_reject_the_round(spec, base) -> None:
    clients = _clients(base)
    chain, doc, base_b, _ = _round(base, clients)
    value = secagg_round_verdict(spec, chain, doc, base_b, model_bytes(base), [c.audited() for c in clients])
    assert not value.accept and value.rejected_clients == [] and value.contributions == [0] * CLIENTS
    assert any("hash" in r for r in value.reasons)
    # so do base model bytes that are not the base
    chain, doc, _, global_b = _round(base, clients)
    value = secagg_round_verdict(spec, chain, doc, global_b, global_b, [c.audited() for c in clients])
    assert not value.accept and value.rejected_clients == []


def test_an_unusable_round_document_rejects_the_round(spec, base) -> None:
    clients = _clients(base)
    chain, doc, base_b, global_b = _round(base, clients)
    value = secagg_round_verdict(spec, chain, doc + b" ", base_b, global_b, [c.audited() for c in clients])
    assert not value.accept and value.rejected_clients == []
    assert "round document is unusable" in value.reasons[0]


def test_a_document_for_another_round_rejects_the_round(spec, base) -> None:
    clients = _clients(base)
    chain, doc, base_b, global_b = _round(base, clients)
    value = secagg_round_verdict(spec, replace(chain, round=ROUND + 1), doc, base_b, global_b,
                                 [c.audited() for c in clients])
    assert not value.accept and value.rejected_clients == []


def test_a_spec_without_secagg_is_refused(spec, base) -> None:
    clients = _clients(base)
    chain, doc, base_b, global_b = _round(base, clients)
    with pytest.raises(ValueError, match="SecAgg rounds only"):
        secagg_round_verdict(replace(spec, secagg=None), chain, doc, base_b, global_b, [])


def test_the_global_model_is_measured_on_the_holdout(spec, base) -> None:
    holdout = federated_split("digits", 3, alpha=1.0, seed=3).holdout
    clients = _clients(base)
    chain, doc, base_b, global_b = _round(base, clients)
    value = secagg_round_verdict(spec, chain, doc, base_b, global_b, [c.audited() for c in clients], holdout)
    assert value.accept, value.reasons
    assert value.measured_metric > 0
    measured = _evidence(value)["measured"]
    assert measured[spec.eval.metric] == value.measured_metric and measured["examples"] > 0
    # an unusable holdout is a note, not a reject
    value = secagg_round_verdict(spec, chain, doc, base_b, global_b, [c.audited() for c in clients], b"not data")
    assert value.accept and value.measured_metric == 0 and value.rejected_clients == []
    assert any("holdout is unusable" in r for r in value.reasons)
