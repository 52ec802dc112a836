"""Signed SecAgg+ stage replies (workers/fl/secagg_evidence.py, secagg_sign.py, the guard in secagg_app.py, the
validator's ruling in secagg_refusals.py): a client that signs a malformed reply is convicted by it, an honest
client never signs one whatever it is asked, and an aggregator cannot turn a dropped client's reply into evidence
it did not sign."""
from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterable
from typing import Any

import pytest
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from flwr.app import ConfigRecord, Context, Message, RecordDict
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS, Key, Stage
from substrateinterface import Keypair

from workers.fl.secagg_app import SecAggGuardGrid, SecAggRefusal
from workers.fl.secagg_evidence import (
    SIGNATURE_RECORD,
    STAMP_RECORD,
    EvidenceError,
    StageReply,
    evidence_document,
    parse_evidence,
    proven_fault,
    signature_fields,
    typed,
    untyped,
)
from workers.fl.secagg_params import SecAggParams
from workers.fl.secagg_refusals import RefusalFindings, with_refusals
from workers.fl.secagg_sign import StageSigner, stage_sign_mod
from workers.fl.verify import RoundVerdictValue

TASK, ROUND = 7, 3
PARAMS, SHAPES = SecAggParams(), [(2,)]
KEYS = {11: Keypair.create_from_uri("//StageHonest"), 12: Keypair.create_from_uri("//StageBadShares"),
        13: Keypair.create_from_uri("//StageCareless")}
NODES = sorted(KEYS)


def public_key() -> bytes:
    return ec.generate_private_key(ec.SECP384R1()).public_key().public_bytes(Encoding.PEM,
                                                                            PublicFormat.SubjectPublicKeyInfo)


KEYS_ASKED = {str(n): [public_key(), public_key()] for n in NODES}
TOKEN = Fernet(Fernet.generate_key()).encrypt(b"s" * 40)


def share_keys_reply(node: int, *, ciphertexts: int | None = None) -> dict[str, Any]:
    others = [n for n in NODES if n != node]
    return {Key.DESTINATION_LIST: others, Key.CIPHERTEXT_LIST: [TOKEN] * (len(others) if ciphertexts is None
                                                                         else ciphertexts)}


def flower(node: int, malformed: bool) -> Callable[[Message, Context], Message]:
    """Flower's secaggplus_mod as the signer sees it: the stage taken out of the request, the share-keys reply (a
    careless client's one short)."""
    def answer(msg: Message, ctx: Context) -> Message:
        del msg.content.config_records[RECORD_KEY_CONFIGS][Key.STAGE]   # as Flower's mod does with what it was sent
        reply = share_keys_reply(node, ciphertexts=len(NODES) - 2 if malformed else None)
        return Message(RecordDict({RECORD_KEY_CONFIGS: ConfigRecord(reply)}), reply_to=msg)
    return answer


def client(node: int, msg: Message) -> Message:
    """Node 11 is honest, 12 runs ``bad-shares``, 13 is honest but its Flower reply came out malformed."""
    signer = StageSigner(KEYS[node], PARAMS, SHAPES, bad_shares=node == 12)
    return stage_sign_mod(lambda ctx, task: signer if task == TASK else None)(msg, None, flower(node, node == 13))  # type: ignore[arg-type]


class Network:
    """The nodes as a Grid's send_and_receive: each answers through its own signing mod."""

    def __init__(self) -> None:
        self.sent: list[Message] = []

    def send_and_receive(self, messages: Iterable[Message], *, timeout: float | None = None) -> list[Message]:
        self.sent = list(messages)
        return [client(m.metadata.dst_node_id, copy.deepcopy(m)) for m in self.sent]   # each node its own copy


def stage_messages() -> list[Message]:
    return [Message(RecordDict({RECORD_KEY_CONFIGS: ConfigRecord({Key.STAGE: Stage.SHARE_KEYS, **KEYS_ASKED})}),
                    dst_node_id=n, message_type="train") for n in NODES]


@pytest.fixture(scope="module")
def guarded() -> dict[str, Any]:
    from flwr.supercore.task_identity import TaskIdentity

    network = Network()
    guard = SecAggGuardGrid(network, PARAMS, SHAPES, round_of=lambda: ROUND, task_id=TASK)  # type: ignore[arg-type]
    with pytest.MonkeyPatch.context() as patch:   # what Flower's runtime sets in a ServerApp's process
        for name, value in (("_run_id", 5), ("_node_id", 0), ("_task_id", 1)):
            patch.setattr(TaskIdentity, name, value)
        replies = guard.send_and_receive(stage_messages())
    return {"network": network, "guard": guard, "replies": {int(r.metadata.src_node_id): r for r in replies}}


def test_the_guard_stamps_every_stage_message_with_task_and_round(guarded: dict[str, Any]) -> None:
    for msg in guarded["network"].sent:
        assert dict(msg.content.config_records[STAMP_RECORD]) == {"task-id": TASK, "round": ROUND}


def test_an_honest_well_formed_reply_is_signed_and_passes(guarded: dict[str, Any]) -> None:
    reply = guarded["replies"][11]
    assert not reply.has_error() and SIGNATURE_RECORD in reply.content.config_records


def test_the_malicious_client_is_dropped_with_its_own_signed_reply_as_evidence(guarded: dict[str, Any]) -> None:
    refusals: dict[int, SecAggRefusal] = {r.node_id: r for r in guarded["guard"].refusals}
    assert guarded["replies"][12].has_error()
    bad = refusals[12]
    assert bad.account == KEYS[12].ss58_address and bad.evidence is not None
    reply = parse_evidence(bad.evidence, max_bytes=1 << 20)
    fault = proven_fault(reply, task_id=TASK, round_=ROUND, account=KEYS[12].ss58_address, params=PARAMS,
                         shapes=SHAPES)
    assert fault == "share_keys: 2 destinations but 1 ciphertexts"


def test_an_honest_client_never_signs_its_malformed_reply_so_it_is_dropped_not_convictable(
        guarded: dict[str, Any]) -> None:
    refusals = {r.node_id: r for r in guarded["guard"].refusals}
    assert guarded["replies"][13].has_error()
    assert refusals[13].account is None and refusals[13].evidence is None
    assert set(refusals) == {12, 13}


def evidence_of(guarded: dict[str, Any]) -> StageReply:
    refusal = next(r for r in guarded["guard"].refusals if r.node_id == 12)
    return parse_evidence(refusal.evidence, max_bytes=1 << 20)   # type: ignore[arg-type]


@pytest.mark.parametrize("forge", [
    lambda r: StageReply(**{**r.__dict__, "answer": share_keys_reply(12, ciphertexts=0)}),  # another reply
    lambda r: StageReply(**{**r.__dict__, "round": ROUND + 1}),                            # another round
    lambda r: StageReply(**{**r.__dict__, "account": KEYS[11].ss58_address}),              # pinned on another
])
def test_evidence_the_client_did_not_sign_proves_nothing(guarded: dict[str, Any],
                                                         forge: Callable[[StageReply], StageReply]) -> None:
    forged = forge(evidence_of(guarded))
    assert proven_fault(forged, task_id=TASK, round_=forged.round, account=forged.account, params=PARAMS,
                        shapes=SHAPES) is None


def test_a_well_formed_reply_signed_by_its_sender_proves_nothing() -> None:
    answer, asked = share_keys_reply(11), {Key.STAGE: Stage.SHARE_KEYS, **KEYS_ASKED}
    fields = signature_fields(KEYS[11], TASK, ROUND, Stage.SHARE_KEYS, asked, answer, None)
    reply = StageReply(TASK, ROUND, Stage.SHARE_KEYS, 11, fields["account"], fields["scheme"], fields["signature"],
                       asked, answer, None)
    assert reply.signed()
    assert proven_fault(reply, task_id=TASK, round_=ROUND, account=KEYS[11].ss58_address, params=PARAMS,
                        shapes=SHAPES) is None


def test_a_config_record_round_trips_with_its_types() -> None:
    record = {"i": -3, "f": 0.1, "s": "x", "b": b"\x00\xff", "t": True, "li": [1, 2], "lb": [b"a"], "le": [],
              "lf": [1.5, -0.0]}
    assert untyped(json.loads(json.dumps(typed(record)))) == record
    assert typed({"one": 1}) != typed({"one": True}) and typed({"one": 1}) != typed({"one": 1.0})


@pytest.mark.parametrize("raw, why", [
    (b"x" * 65, "over 64 bytes"),
    (b"[1]", "not a paratrain/secagg-evidence/v1 document"),
    (b"\xff", "not JSON"),
])
def test_a_malformed_evidence_document_is_refused_by_name(raw: bytes, why: str) -> None:
    with pytest.raises(EvidenceError, match=why):
        parse_evidence(raw, max_bytes=64)


def test_a_document_round_trips(guarded: dict[str, Any]) -> None:
    reply = evidence_of(guarded)
    assert parse_evidence(evidence_document(reply), max_bytes=1 << 20) == reply


def verdict(accept: bool = True, rejected: list[str] | None = None) -> RoundVerdictValue:
    return RoundVerdictValue(accept, 900_000, rejected or [], [10**9] * 3, json.dumps({"accept": accept}).encode(),
                             [])


def test_proven_senders_join_the_rejected_clients_in_account_order() -> None:
    audited = KEYS[13].ss58_address
    out = with_refusals(verdict(rejected=[audited]), RefusalFindings({KEYS[12].ss58_address: "bad"}, {}))
    assert out.accept and sorted(out.rejected_clients) == sorted([audited, KEYS[12].ss58_address])
    assert out.rejected_clients == sorted(out.rejected_clients, key=lambda a: Keypair(ss58_address=a).public_key)
    assert json.loads(out.evidence)["refusals"]["proven"] == {KEYS[12].ss58_address: "bad"}


def test_an_unproven_report_rejects_the_round_and_slashes_no_client() -> None:
    out = with_refusals(verdict(), RefusalFindings({KEYS[12].ss58_address: "bad"}, {KEYS[11].ss58_address: "no"}))
    assert not out.accept and out.rejected_clients == []
    assert any("reported" in r and KEYS[11].ss58_address in r for r in out.reasons)


def test_a_rejected_round_is_left_as_it_is() -> None:
    before = verdict(accept=False)
    assert with_refusals(before, RefusalFindings({KEYS[12].ss58_address: "bad"}, {})) == before
