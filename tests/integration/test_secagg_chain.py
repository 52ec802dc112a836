"""A SecAgg+ federated task settled by the chain, end to end on a devnet process: the task posted with
create_secagg_task, five clients joined, one SecAgg+ round run for real in Flower's simulation (the aggregator's
ServerApp behind its guard, Flower's secaggplus_mod with paratrain's clip/commit mod and each client's signature),
committed by the aggregator with the clients' signed commitments, the audit drawn from chain randomness, every
drawn client's reveal stored and recorded, two validators' round judges voting, the pallet paying and slashing.

Partition 3 commits to and reveals its clipped model but masks its negation: the audit's mask recomputation
(workers/fl/secagg_masks.py) against the masked vector the round document recorded catches it.

A sixth client runs ``bad-shares``: it cuts a ciphertext off its share-keys reply and signs it. The guard drops it
with that signed reply as evidence, the aggregator reports it (report_refused), both validators re-check the
evidence, and the pallet slashes it although it is not a participant.

One client skips the clipping (it commits to and masks its unclipped update, of L2 norm 5 against the task's
4.5): under SecAgg nobody can see that from the sum, and the audit is what catches it. The audit rate is 100 %
here, so the cheat is drawn whatever the block hash; tests/unit/test_secagg_pallet.py covers a partial draw
and the pallet refusing to let validators reject an undrawn client. No honest party is slashed.
"""
from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flwr.app import Context, Message
from flwr.client import Client, NumPyClient
from flwr.client.mod import secaggplus_mod
from flwr.clientapp import ClientApp
from flwr.common import ndarrays_to_parameters, parameters_to_ndarrays
from flwr.compat.common import recorddict_compat as compat
from ray import cloudpickle as ray_cloudpickle

import tests.secagg_simulation as sim
from paratrain.fl_specs import FlTaskTerms, chain_fl_task_spec, chain_secagg_spec
from runtime_bindings import Chain, Keypair
from runtime_bindings import fl as bfl
from runtime_bindings.generated import types as t
from workers.artifacts import ArtifactStore
from workers.fl.arrays import model_hash
from workers.fl.committer import ChainCommitter
from workers.fl.judge import JudgeSettings, RoundJudge
from workers.fl.secagg_app import run_round
from workers.fl.secagg_audit import RevealError, parse_reveal, unbundle
from workers.fl.secagg_client import Reveal, SecAggClientSettings, clip_commit_mod
from workers.fl.secagg_commit import SecAggCommitter
from workers.fl.secagg_masks import parse_masking
from workers.fl.secagg_pack import pack_mod
from workers.fl.secagg_params import SecAggParams
from workers.fl.secagg_reveal import RevealState, reveal_if_drawn
from workers.fl.secagg_sign import StageSigner, stage_sign_mod
from workers.fl.secagg_task import SecAggTask
from workers.fl.spec import build_spec
from workers.hashing import normalize_hash
from workers.sealing import NotAddressed, open_sealed, seal_secret
from workers.uri_policy import UriPolicy
from workers.validator import ValidatorState

pytestmark = pytest.mark.slow
ray_cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the mods below travel to Ray by value

N, CHEAT = 5, 4          # partition 4's update has norm 5 > NORM_BOUND: clipping would scale it down
BAD = N                  # partition 5 sends malformed shares, signed: dropped, so the round has N participants
SWAP = 3                 # partition 3 commits to its clipped model and masks its negation instead
UNIT, PERBILL = 10**12, 10**9
PARAMS = SecAggParams()
ALICE, BOB, CHARLIE, DAVE = (Keypair.create_from_uri(f"//{n}") for n in ("Alice", "Bob", "Charlie", "Dave"))
CAPS = t.Capabilities(8, 0, "", 16_000)
SHAPES = [sim.base_model()[name].shape for name in sim.NAMES]


def client_key(partition: int) -> Keypair:
    return Keypair.create_from_uri(f"//SecAggChainClient{partition}")


def sign(ctx: Context, task_id: int, round_: int, base_hash: bytes, commitment: bytes,
         examples: int) -> tuple[str, str, bytes]:
    key = client_key(sim.partition_of(ctx))
    signed = bfl.sign_update(key, task_id, round_, base_hash, commitment, examples)
    return key.ss58_address, signed.scheme, signed.signature


class _Trainer(NumPyClient):
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def fit(self, parameters: list[np.ndarray], config: dict[str, Any]) -> tuple[list[np.ndarray], int, dict]:
        model = sim.trained(dict(zip(sim.NAMES, parameters, strict=True)), sim.partition_of(self.ctx))
        return [model[name] for name in sim.NAMES], sim.examples_of(sim.partition_of(self.ctx)), {}


def client_app(out: Path) -> ClientApp:
    """Honest clients clip to the task's bound; the cheat's mod is built with a bound it never reaches."""
    keep = sim.keeper(out)
    honest = clip_commit_mod(SecAggClientSettings(PARAMS, sim.NORM_BOUND, sim.NAMES), keep, sign)
    cheat = clip_commit_mod(SecAggClientSettings(PARAMS, 1e9, sim.NAMES), keep, sign)

    def chosen(msg: Message, ctx: Context, call_next: Callable[[Message, Context], Message]) -> Message:
        return (cheat if sim.partition_of(ctx) == CHEAT else honest)(msg, ctx, call_next)

    def client_fn(ctx: Context) -> Client:
        return _Trainer(ctx).to_client()

    def signer_of(ctx: Context, task_id: int) -> StageSigner:
        partition = sim.partition_of(ctx)

        def keep_masking(task: int, round_: int, record: bytes) -> None:
            (out / f"masking-{partition}-{round_}.json").write_bytes(record)

        return StageSigner(client_key(partition), PARAMS, SHAPES, bad_shares=partition == BAD,
                           keep_masking=keep_masking)

    def swap(msg: Message, ctx: Context, call_next: Callable[[Message, Context], Message]) -> Message:
        """Between Flower's mod and the clip/commit mod: the swapper hands Flower another model to mask."""
        reply = call_next(msg, ctx)
        if sim.partition_of(ctx) != SWAP or reply.has_error():
            return reply
        fitres = compat.recorddict_to_fitres(reply.content, keep_input=True)
        fitres.parameters = ndarrays_to_parameters([-a for a in parameters_to_ndarrays(fitres.parameters)])
        return Message(compat.fitres_to_recorddict(fitres, keep_input=False), reply_to=msg)

    return ClientApp(client_fn=client_fn, mods=[pack_mod, stage_sign_mod(signer_of), secaggplus_mod, swap, chosen])


def post_task(chain: Chain, store: ArtifactStore, secagg: SecAggTask) -> int:
    spec = build_spec(recipe="digits_mlp", rule="fedavg", rounds=1, min_clients_per_round=N, secagg=secagg)
    digest = store.put(spec.canonical_bytes())
    on_chain = chain_fl_task_spec(spec, store.uri(digest), spec_hash=digest,
                                  initial_model_hash=model_hash(sim.base_model()).hex(),
                                  terms=FlTaskTerms(max_clients=N + 1, client_share=600_000_000, min_client_stake=UNIT))
    join_deadline = chain.best_number() + 3 + N
    receipt = chain.federated_tasks.create_secagg_task(ALICE, on_chain, chain_secagg_spec(secagg), 100 * UNIT,
                                                       join_deadline, join_deadline + 500, 2, None)
    task_id = int(next(e.task for e in receipt.events if e.name == "TaskCreated"))
    for partition in range(N + 1):
        chain.federated_tasks.join(client_key(partition), task_id, "0x" + "11" * 32, sim.examples_of(partition),
                                   2 * UNIT)
    while chain.best_number() < join_deadline:
        chain.system.remark(ALICE, b"tick")
    chain.federated_tasks.claim_aggregator(BOB, task_id, b"127.0.0.1:9092")
    return task_id


@pytest.fixture(scope="module")
def settled(devnet, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("secagg-chain")
    stores = {name: ArtifactStore(root / name) for name in ("requester", "aggregator", "clients")}
    with Chain.connect(devnet.ws_url, timeout=10) as chain:
        for partition in range(N + 1):
            chain.balances.transfer_keep_alive(ALICE, client_key(partition).ss58_address, 20 * UNIT)
        chain.workers.register(BOB, "Trainer", chain.constant("Workers", "MinTrainerStake"), CAPS)
        for validator in (CHARLIE, DAVE):
            chain.workers.register(validator, "Validator", chain.constant("Workers", "MinValidatorStake"), CAPS)
        secagg = SecAggTask(PARAMS, sim.NORM_BOUND, audit_rate=PERBILL)
        task_id = post_task(chain, stores["requester"], secagg)
        stakes = {p: chain.federated_tasks.clients(task_id, client_key(p).ss58_address).stake for p in range(N + 1)}

        out = root / "clients-out"
        out.mkdir()
        done: dict[str, Any] = {"task": task_id, "stakes": stakes, "errors": []}

        def main(grid: Any, context: Context) -> None:
            with Chain.connect(devnet.ws_url, timeout=10) as own:   # the ServerApp's thread: its own connection
                on_chain = ChainCommitter(own, BOB, timeout=30)
                committer = SecAggCommitter(task_id=task_id, rule="fedavg", store=stores["aggregator"],
                                            committer=on_chain, report=on_chain.report_refused)
                strategy = sim.strategy(PARAMS, N, task_id=task_id, on_round=committer)
                try:
                    done["round"] = run_round(grid, context, strategy, timeout=120.0, require_signed=True,
                                              on_refusal=committer.refused, on_masked=committer.masked)
                except Exception as exc:  # noqa: BLE001 - reported by the test, not lost in Flower's thread
                    done["errors"].append(exc)

        sim.run(main, client_app(out), N + 1)
        done["record"] = chain.federated_tasks.rounds(task_id, 1)
        done["refused"] = chain.federated_tasks.sec_agg_refused(task_id, 1)
        done["document"] = stores["aggregator"].get(normalize_hash(done["record"].round_doc_hash))

        # the validators, as their daemons do at start: each registers the key reveals are sealed to
        policy = UriPolicy(tuple(store.root for store in stores.values()))
        done["events"] = []
        judges = [RoundJudge(chain=chain, keypair=validator, store=ArtifactStore(root / validator.ss58_address[:8],
                                                                                 policy=policy),
                             state=ValidatorState(), save=lambda: None,
                             notify=lambda what, **detail: done["events"].append((what, detail)),
                             settings=JudgeSettings(holdout_margin_ms=0)) for validator in (CHARLIE, DAVE)]
        for judge in judges:
            judge.ensure_seal_key()

        # the data owners: each drawn client reveals what it kept, sealed to the validators
        done["revealed"] = {}
        for partition, kept in sim.reveals(out, 1).items():
            arrays = {name: kept[f"model.{name}"] for name in sim.NAMES}
            reveal = Reveal(task_id, 1, arrays, bytes(kept["salt"]), bytes(kept["commitment"]),
                            int(kept["num_examples"]), [])
            masking = (out / f"masking-{partition}-1.json").read_bytes()
            done["revealed"][partition] = reveal_if_drawn(chain, client_key(partition), stores["clients"], reveal,
                                                          masking)
        done["audit"] = chain.federated_tasks.audits(task_id, 1)
        done["reveal_objects"] = {p: stores["clients"].get(normalize_hash(chain.federated_tasks.audit_reveals(
            task_id, 1, client_key(p).ss58_address).reveal_hash)) for p in range(N)}

        # the validators: each one's round judge, as the validator daemon runs it
        for judge in judges:
            done.setdefault("judged", []).append(judge.judge(task_id, 1))
        done["verdicts"] = [chain.federated_tasks.round_verdicts(task_id, 1, v.ss58_address) for v in (CHARLIE, DAVE)]
        done["after"] = {p: chain.federated_tasks.clients(task_id, client_key(p).ss58_address)
                         for p in range(N + 1)}
        done["final"] = chain.federated_tasks.rounds(task_id, 1)
    return done


def test_the_round_is_committed_with_every_clients_signed_commitment(settled: Mapping[str, Any]) -> None:
    assert settled["errors"] == []
    record = settled["record"]
    assert record is not None and len(record.participants) == N
    assert {str(a) for a, _ in record.participants} == {client_key(p).ss58_address for p in range(N)}
    assert {int(n) for _, n in record.participants} == {sim.examples_of(p) for p in range(N)}


def test_the_audit_draws_every_participant_and_each_reveals(settled: Mapping[str, Any]) -> None:
    audit = settled["audit"]
    assert {str(a) for a in audit.drawn} == {client_key(p).ss58_address for p in range(N)}
    assert int(audit.revealed) == N
    assert set(settled["revealed"].values()) == {RevealState.REVEALED}


def test_each_reveal_is_sealed_to_both_validators_and_readable_by_them_alone(settled: Mapping[str, Any]) -> None:
    """The store holds envelopes, not reveal documents: neither a reader of the store nor a non-validator can
    parse one, and each validator opens each."""
    outsider = Keypair.create_from_uri("//SecAggChainOutsider")
    base = sim.base_model()
    layout = {"max_bytes": 1 << 20, "names": sorted(base), "shapes": [base[n].shape for n in sorted(base)]}
    for envelope in settled["reveal_objects"].values():
        with pytest.raises(RevealError):
            parse_reveal(envelope, **layout)
        for validator in (CHARLIE, DAVE):
            reveal, masking = unbundle(open_sealed(envelope, validator.public_key, seal_secret(validator)))
            parse_reveal(reveal, **layout)
            assert masking is not None and parse_masking(masking, max_bytes=1 << 22).reply.stage == \
                "collect_masked_vectors"
        with pytest.raises(NotAddressed):
            open_sealed(envelope, outsider.public_key, seal_secret(outsider))


def test_the_malformed_shares_are_dropped_and_reported_with_their_signed_evidence(
        settled: Mapping[str, Any]) -> None:
    (reported,) = settled["refused"]
    assert str(reported.client) == client_key(BAD).ss58_address


def test_the_round_document_records_every_participants_signed_masked_vector(settled: Mapping[str, Any]) -> None:
    from workers.fl.spec import decode_round_document

    doc = decode_round_document(settled["document"])
    assert set(doc.masked_vectors) == {client_key(p).ss58_address for p in range(N)}


def test_the_validators_accept_the_round_and_reject_only_the_cheats(settled: Mapping[str, Any]) -> None:
    assert settled["judged"] == [True, True]
    cheats = sorted((client_key(CHEAT), client_key(BAD), client_key(SWAP)), key=lambda k: k.public_key)
    for verdict in settled["verdicts"]:
        assert verdict is not None and verdict.accept
        assert [str(c) for c in verdict.rejected_clients] == [k.ss58_address for k in cheats]
    votes = [detail for what, detail in settled["events"] if what == "round-vote"]
    assert len(votes) == 2
    for vote in votes:
        reasons = " ".join(vote["reasons"])
        assert "above the bound 4.5" in reasons and "destinations but" in reasons
        assert "the masked vector it sent is not its committed model" in reasons
    assert settled["final"].status.VARIANT == "Accepted"


def test_the_cheats_are_slashed_and_every_honest_client_paid(settled: Mapping[str, Any]) -> None:
    before, after = settled["stakes"], settled["after"]
    for cheat in (CHEAT, BAD, SWAP):
        assert after[cheat].stake < before[cheat] and after[cheat].rounds_rejected == 1 and after[cheat].paid == 0
    for partition in range(N):
        if partition not in (CHEAT, SWAP):
            assert after[partition].stake == before[partition] and after[partition].rounds_rejected == 0
            assert after[partition].paid > 0


def test_fl_status_shows_the_audit_and_the_signed_refusal(settled: Mapping[str, Any], devnet, capsys,
                                                          monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from paratrain.cli import main

    monkeypatch.setenv("PARATRAIN_CHAIN", devnet.ws_url)
    monkeypatch.setenv("PARATRAIN_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COLUMNS", "220")
    assert main(["fl", "status", str(settled["task"])]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.strip().startswith("│ 1 "))
    cells = [cell.strip() for cell in row.strip("│ ").split("│")]
    assert cells[0] == "1" and cells[1] == "Accepted" and cells[2] == str(N)
    assert cells[-2:] == [f"{N} ({N})", "1"]   # audited (revealed), refused (signed)
