"""A private task's result, from the worker's side, on an in-process devnet (no socket, no training): the
DpClaim built from a run's model card, the DP signature (the claim's bytes are devnet's own, and the pallet
verifies it), and the orchestrator's relay of submit_private_result under submit_result's checks."""
from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import replace

import pytest
from memory_chain import URL, forbid_sockets, memory_chain, route_connects

from devnet.rpc.inprocess import InProcessNode
from devnet.runtime.pallets.privacy_types import DP_CLAIM_CODEC
from orchestrator.errors import PermissionDenied
from orchestrator.handlers import ChainConstants, Handlers
from orchestrator.index import Index
from orchestrator.indexer import Indexer
from orchestrator.relay import Relay
from runtime_bindings import AttestationCodec, Chain, Keypair
from runtime_bindings.generated import task_bounties as tb
from runtime_bindings.generated import types as t
from runtime_bindings.generated.task_bounties import SubmitPrivateResultCall
from runtime_bindings.privacy import (
    DP_ATTESTATION_CONTEXT,
    dp_signing_payload,
    noise_key_hash,
    sign_dp_attestation,
    verify_dp_attestation,
)
from runtime_bindings.values import H256
from workers import ArtifactStore
from workers.daemon import dp_claim_of_card
from workers.errors import TaskRefused

UNIT = 10**12
ALICE, BOB, CHARLIE = (Keypair.create_from_uri(f"//{n}") for n in ("Alice", "Bob", "Charlie"))
DATA = "0x" + "22" * 32
CARD_PRIVACY = {"accountant": "prv", "noise_multiplier": 1.1, "sample_rate": 0.044537, "steps": 44,
                "max_grad_norm": 1.0, "delta": 1e-05, "epsilon": 2.2424431}
CLAIM = t.DpClaim(accountant=t.Accountant.Prv, noise_multiplier=1_100_000, sample_rate=44_537_230, steps=44,
                  max_grad_norm=1_000_000, delta=10_000_000_000, epsilon=2_242_444)
DP_SPEC = t.DpSpec(accountant=t.Accountant.Prv, epsilon_cap=8_000_000, delta=10_000_000_000,
                   max_grad_norm=1_000_000, noise_multiplier=1_100_000,
                   noise_key_hash=H256(noise_key_hash(bytes(32))))


@pytest.fixture
def node(monkeypatch: pytest.MonkeyPatch) -> Iterator[InProcessNode]:
    forbid_sockets(monkeypatch)
    with InProcessNode() as node:
        route_connects(monkeypatch, node)
        yield node


def private_task(chain: Chain) -> int:
    """Alice's budget on DATA and a private task on it, claimed by Bob."""
    chain.workers.register(BOB, "Trainer", 1_000 * UNIT, t.Capabilities(4, 0, "", 8_000))
    chain.workers.register(CHARLIE, "Trainer", 1_000 * UNIT, t.Capabilities(4, 0, "", 8_000))
    chain.privacy_budgets.set_budget(ALICE, DATA, 20_000_000, 10**12)
    spec = t.TaskSpec(recipe="digits_mlp", spec_hash="0x" + "11" * 32, spec_uri="file:///specs/x",
                      dataset_hash=DATA, eval_metric="accuracy", eval_target=800_000, higher_is_better=True,
                      requirements=t.Requirements(1, 0, 512), parent_model=None)
    receipt = chain.task_bounties.create_private_task(ALICE, spec, DP_SPEC, 10 * UNIT, 0, chain.best_number() + 500,
                                                      1, None)
    task_id = next(e.task_id for e in receipt.events if e.name == "TaskCreated")
    chain.task_bounties.claim_task(BOB, task_id)
    return task_id


def attestation(task_id: int) -> t.Attestation:
    checkpoint = "0x" + "33" * 32
    return t.Attestation.from_value({
        "task_id": task_id, "worker": BOB.ss58_address, "model_hash": "0x" + "44" * 32,
        "artifact_uri": "file:///models/m", "metrics": [("accuracy", 900_000)], "trajectory_root": checkpoint,
        "checkpoints": [checkpoint], "code_hash": "0x" + "55" * 32, "dataset_hash": DATA, "started_ms": 1,
        "finished_ms": 2})


def devnet_claim(claim: t.DpClaim) -> dict:
    """The claim as devnet's codec takes it (a unit variant by its name)."""
    return {**{k: getattr(claim, k) for k in ("noise_multiplier", "sample_rate", "steps", "max_grad_norm", "delta",
                                              "epsilon")}, "accountant": claim.accountant.name}


def test_the_claim_is_the_cards_privacy_values_in_chain_units(tmp_path) -> None:
    store = ArtifactStore(tmp_path)
    claim = dp_claim_of_card(store, store.put(json.dumps({"privacy": CARD_PRIVACY}).encode()))
    assert claim == t.DpClaim(accountant=t.Accountant.Prv, noise_multiplier=1_100_000, sample_rate=44_537_000,
                              steps=44, max_grad_norm=1_000_000, delta=10_000_000_000, epsilon=2_242_444)  # up
    for card in ({}, {"privacy": {**CARD_PRIVACY, "accountant": "gdp"}}, {"privacy": {"epsilon": 1.0}}):
        with pytest.raises(TaskRefused, match="privacy section"):
            dp_claim_of_card(store, store.put(json.dumps(card).encode()))


def test_the_dp_signature_is_over_devnets_message_and_the_pallet_takes_it(node: InProcessNode) -> None:
    with memory_chain(node) as chain:
        task_id = private_task(chain)
        plain = AttestationCodec.from_chain(chain)
        att = attestation(task_id)
        encoded = plain.encode(att)
        claim = CLAIM
        assert dp_signing_payload(encoded, claim) == (DP_ATTESTATION_CONTEXT + encoded
                                                      + DP_CLAIM_CODEC.encode(devnet_claim(claim)))  # devnet's bytes
        signature = sign_dp_attestation(encoded, claim, BOB)
        assert verify_dp_attestation(encoded, claim, signature, BOB.public_key)
        assert not verify_dp_attestation(encoded, replace(claim, epsilon=claim.epsilon - 1), signature, BOB.public_key)
        assert not plain.verify(att, signature, BOB.ss58_address)  # never a plain attestation's signature
        with pytest.raises(tb.BadAttestationSignature):  # the pallet verifies its own message: a claim moved is refused
            chain.task_bounties.submit_private_result(BOB, task_id, att, replace(claim, epsilon=claim.epsilon - 1),
                                                      signature)
        receipt = chain.task_bounties.submit_private_result(BOB, task_id, att, claim, signature)
        assert any(e.name == "ResultSubmitted" for e in receipt.events)
        assert chain.privacy_budgets.bounty_claims(task_id) == claim


async def test_the_orchestrator_relays_a_private_result_only_from_the_claimant(node: InProcessNode,
                                                                               tmp_path) -> None:
    with memory_chain(node) as chain:
        task_id = await asyncio.to_thread(private_task, chain)
        index = Index(tmp_path / "index.db")
        indexer = Indexer(URL, index)
        handlers = Handlers(index, relay=Relay(chain, height=lambda: indexer.height),
                            constants=ChainConstants.from_chain(chain))
        handlers.bind_loop()
        indexer.on_block(handlers.on_block)
        try:
            await asyncio.to_thread(indexer.sync)
            att = attestation(task_id)
            claim, encoded = CLAIM, AttestationCodec.from_chain(chain).encode(att)

            def signed(key: Keypair) -> bytes:
                call = SubmitPrivateResultCall(task_id=task_id, attestation=att, claim=claim,
                                               signature=sign_dp_attestation(encoded, claim, key))
                return bytes.fromhex(chain.sign(call, key)[2:])

            with pytest.raises(PermissionDenied, match="not claimed by"):
                await handlers.relay_extrinsic(CHARLIE.ss58_address, task_id, signed(CHARLIE))
            with pytest.raises(PermissionDenied, match="signed by"):
                await handlers.relay_extrinsic(CHARLIE.ss58_address, task_id, signed(BOB))
            xt_hash = await handlers.relay_extrinsic(BOB.ss58_address, task_id, signed(BOB))
            assert xt_hash.startswith("0x")
            await asyncio.to_thread(indexer.sync)
            status = (await asyncio.to_thread(chain.task_bounties.tasks, task_id)).status
            assert isinstance(status, t.TaskStatus.Submitted)
            assert await asyncio.to_thread(chain.privacy_budgets.bounty_claims, task_id) == claim
        finally:
            handlers.close()
            indexer.stop()
            index.close()
