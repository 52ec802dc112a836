"""Signed SecAgg+ stage replies: what lets the chain slash a client for a malformed reply without trusting the
aggregator's word.

The guard (workers/fl/secagg_app.py) drops a reply that `secagg_checks.reply_problem` refuses, but a dropped
client cannot be slashed on the aggregator's say-so: the aggregator could name anyone. So every stage message
the guard sends carries the task and round (`STAMP_RECORD`), and the client's outermost mod signs, with its
account key, a digest of what it was asked and what it answered (`SIGNATURE_RECORD`). An honest client runs the
same `reply_problem` over its own reply first and signs only a reply that passes, so no request, however
crafted, makes it sign evidence against itself; a client that signs a reply the rule refuses has signed its own
conviction. The guard keeps such a reply as an evidence document; the aggregator stores it and reports the
client and the document's hash on chain (`report_refused`); each validator re-verifies the signature and re-runs
the rule (`proven_fault`) before its verdict names the client, which slashes it when the round is accepted.

Attribution covers only what one reply shows. A Fernet token under the wrong key, a share that does not
reconstruct, or a public key that another node also sent are dropped but never slashed: the first two only a
recipient can see, the last cannot say who copied whom.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from runtime_bindings.fl import account_public_key, sign_stage_reply, verify_stage_reply
from workers.fl.model import initial_model
from workers.fl.secagg_checks import reply_problem
from workers.fl.secagg_params import SecAggParams
from workers.fl.spec import FlSpec, canonical_json
from workers.hashing import blake2_256

STAMP_RECORD = "paratrain.secagg-stage"
SIGNATURE_RECORD = "paratrain.stage-signature"
EVIDENCE_VERSION = "paratrain/secagg-evidence/v1"
_SCALARS = {bool: "?", int: "i", float: "f", str: "s", bytes: "b"}
_KINDS = {tag: kind for kind, tag in _SCALARS.items()}


class EvidenceError(ValueError):
    """An evidence document that does not parse as one signed stage reply."""


def _scalar(value: Any) -> tuple[str, Any]:
    tag = _SCALARS.get(type(value))
    if tag is None:
        raise EvidenceError(f"a config value of type {type(value).__name__}")
    return tag, value.hex() if tag in "bf" else value


def typed(record: Mapping[str, Any]) -> dict[str, list[Any]]:
    """A config record as JSON that keeps every value's type (bytes and floats exactly, as hex), so that the
    digest the client signs is the digest a validator recomputes from the document."""
    out: dict[str, list[Any]] = {}
    for key, value in record.items():
        if isinstance(value, list):
            tags = {_scalar(v)[0] for v in value}
            if len(tags) > 1:
                raise EvidenceError(f"{key}: a list of mixed types")
            out[str(key)] = ["l" + (tags.pop() if tags else ""), [_scalar(v)[1] for v in value]]
        else:
            out[str(key)] = list(_scalar(value))
    return out


def _value(tag: str, raw: Any) -> Any:
    if tag == "b":
        return bytes.fromhex(raw)
    if tag == "f":
        return float.fromhex(raw)
    kind = _KINDS[tag]
    if not isinstance(raw, kind) or (kind is int and isinstance(raw, bool)):
        raise EvidenceError(f"a value tagged {tag} is a {type(raw).__name__}")
    return raw


def untyped(document: Any) -> dict[str, Any]:
    """The config record `typed` wrote (EvidenceError for anything else)."""
    if not isinstance(document, dict):
        raise EvidenceError("a record must be an object")
    out: dict[str, Any] = {}
    try:
        for key, (tag, raw) in document.items():
            if tag.startswith("l"):
                if not isinstance(raw, list) or (len(tag) == 1 and raw):
                    raise EvidenceError(f"{key}: not a list")
                out[key] = [_value(tag[1:], v) for v in raw]
            elif tag in _SCALARS.values():
                out[key] = _value(tag, raw)
            else:
                raise EvidenceError(f"{key}: unknown tag {tag!r}")
    except (TypeError, ValueError, AttributeError) as exc:
        raise EvidenceError(f"a malformed record ({exc})") from None
    return out


def model_shapes(spec: FlSpec) -> list[tuple[int, ...]]:
    """The model's array shapes in name order, as a SecAgg round carries them (workers/fl/secagg_serve.py)."""
    model = initial_model(spec)
    return [tuple(model[name].shape) for name in sorted(model)]


def evidence_bound(spec: FlSpec) -> int:
    """The most bytes an evidence document of this task may have: a masked vector is int64 (twice a float32
    model), hex doubles it, and the asked record (keys, ciphertexts) and JSON add up to a MiB."""
    return 4 * spec.max_update_bytes + (1 << 20)


def reply_digest(asked: Mapping[str, Any], answer: Mapping[str, Any], num_examples: int | None) -> bytes:
    """blake2-256 of what one node was asked in a stage, what it answered and the example count it gave."""
    return blake2_256(canonical_json({"asked": typed(asked), "answer": typed(answer), "num_examples": num_examples}))


@dataclass(frozen=True)
class StageReply:
    """One node's signed reply in one stage of one round, with what it was asked."""

    task_id: int
    round: int
    stage: str
    node_id: int
    account: str
    scheme: str
    signature: bytes
    asked: Mapping[str, Any]
    answer: Mapping[str, Any]
    num_examples: int | None

    def digest(self) -> bytes:
        return reply_digest(self.asked, self.answer, self.num_examples)

    def is_from(self, account: str) -> bool:
        """Whether the reply names `account` (in any of its spellings) as its signer."""
        try:
            return account_public_key(self.account) == account_public_key(account)
        except (ValueError, TypeError):
            return False

    def signed(self) -> bool:
        return verify_stage_reply(self.account, self.scheme, self.signature, self.task_id, self.round, self.stage,
                                  self.digest())


def signature_fields(keypair: Any, task_id: int, round_: int, stage: str, asked: Mapping[str, Any],
                     answer: Mapping[str, Any], num_examples: int | None) -> dict[str, Any]:
    """The `SIGNATURE_RECORD` a client adds to its reply: its account, the scheme and the signature."""
    signed = sign_stage_reply(keypair, task_id, round_, stage, reply_digest(asked, answer, num_examples))
    return {"account": keypair.ss58_address, "scheme": signed.scheme, "signature": signed.signature}


def evidence_document(reply: StageReply) -> bytes:
    return canonical_json({
        "version": EVIDENCE_VERSION, "task_id": reply.task_id, "round": reply.round, "stage": reply.stage,
        "node_id": reply.node_id, "account": reply.account, "scheme": reply.scheme,
        "signature": reply.signature.hex(), "asked": typed(reply.asked), "answer": typed(reply.answer),
        "num_examples": reply.num_examples})


def parse_evidence(raw: bytes, *, max_bytes: int) -> StageReply:
    """An evidence document, bounded before it is parsed (EvidenceError for anything else)."""
    if len(raw) > max_bytes:
        raise EvidenceError(f"over {max_bytes} bytes")
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise EvidenceError(f"not JSON ({exc})") from None
    fields = {"version", "task_id", "round", "stage", "node_id", "account", "scheme", "signature", "asked",
              "answer", "num_examples"}
    if not isinstance(doc, dict) or set(doc) != fields or doc["version"] != EVIDENCE_VERSION:
        raise EvidenceError(f"not a {EVIDENCE_VERSION} document")
    ints = ("task_id", "round", "node_id")
    if any(not isinstance(doc[k], int) or isinstance(doc[k], bool) for k in ints) \
            or not all(isinstance(doc[k], str) for k in ("stage", "account", "scheme", "signature")) \
            or not (doc["num_examples"] is None or isinstance(doc["num_examples"], int)):
        raise EvidenceError("a field of the wrong type")
    try:
        signature = bytes.fromhex(doc["signature"])
    except ValueError:
        raise EvidenceError("the signature is not hex") from None
    return StageReply(doc["task_id"], doc["round"], doc["stage"], doc["node_id"], doc["account"], doc["scheme"],
                      signature, untyped(doc["asked"]), untyped(doc["answer"]), doc["num_examples"])


def proven_fault(reply: StageReply, *, task_id: int, round_: int, account: str, params: SecAggParams,
                 shapes: Sequence[tuple[int, ...]]) -> str | None:
    """What the signed reply proves against `account` in this round (None: nothing, so it must not be slashed):
    it is this task's and round's, signed by that account, and the rule refuses it."""
    if (reply.task_id, reply.round) != (task_id, round_) or not reply.is_from(account) or not reply.signed():
        return None
    return reply_problem(reply.stage, reply.node_id, reply.asked, reply.answer, reply.num_examples, params, shapes)


__all__ = ["EVIDENCE_VERSION", "SIGNATURE_RECORD", "STAMP_RECORD", "EvidenceError", "StageReply",
           "evidence_bound", "evidence_document", "model_shapes", "parse_evidence", "proven_fault", "reply_digest",
           "signature_fields", "typed", "untyped"]
