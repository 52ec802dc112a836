"""The validator's verdict on a SecAgg+ round: what can still be checked when nobody sees an individual update.

`workers.fl.verify.round_verdict` recomputes the aggregate from the updates and scores every client; under
SecAgg the aggregator holds only the masked sum, so neither is possible (docs/secagg.md, "What validators
check"). This verdict checks instead:

* the round document against the chain's record (task, round, rule, base and global model, the participants in
  the chain's order with their signed example counts; the judge has already bound its commitments to the
  committed update root);
* the base and global models: the objects their hashes name, the global one finite and of the base's layout;
* the global model measured on the revealed holdout, when there is one (reported as measured_metric);
* every audited client (the chain drew it): its reveal document must open the commitment it signed and keep its
  update within the spec's L2 bound (workers/fl/secagg_audit.py); a drawn client with no usable reveal fails too.

A round whose document or models fail is rejected (the aggregator's fault); otherwise it is accepted, the
audited clients that failed are rejected (slashed by the pallet, factor 0) and every other participant gets the
full factor: without individual updates there is no per-client score to pay by, and the pallet lets a verdict
reject only drawn clients (RejectedNotAudited).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from workers.fl import model as fl_model
from workers.fl.model import ModelError
from workers.fl.secagg_audit import RevealError, audit_document, parse_reveal, unbundle
from workers.fl.secagg_evidence import evidence_bound
from workers.fl.secagg_masks import MaskingError, masking_problem, parse_masking
from workers.fl.spec import FlSpec, SpecError, canonical_json, decode_round_document
from workers.fl.verify import (
    EVIDENCE_KIND,
    HEADER_ALLOWANCE,
    ChainRound,
    RoundVerdictValue,
    check_round_document,
    decode_models,
    measure,
    split_holdout,
    to_micro,
)
from workers.hashing import normalize_hash

PERBILL = 1_000_000_000


@dataclass(frozen=True)
class AuditedClient:
    """A participant the chain drew for this round's audit, and what the validator could read of its reveal."""

    account: str            # as the chain's participant list writes it
    public_key: bytes       # its 32 bytes, as the reveal document names it
    document: bytes | None  # the reveal document (None: no reveal on chain, or it could not be read)
    missing: str = ""       # why there is no document


def secagg_round_verdict(spec: FlSpec, chain: ChainRound, document: bytes, base: bytes, global_model: bytes,
                         audited: Sequence[AuditedClient], holdout: bytes | None = None) -> RoundVerdictValue:
    """This validator's verdict on a committed SecAgg round (module docstring)."""
    if spec.secagg is None:
        raise ValueError("secagg_round_verdict judges SecAgg rounds only")
    evidence: dict[str, Any] = {"kind": EVIDENCE_KIND, "task_id": chain.task_id, "round": chain.round,
                                "rule": chain.rule, "global_model_hash": normalize_hash(chain.global_model_hash),
                                "secagg": True}
    try:
        doc = decode_round_document(document)
    except SpecError as exc:
        return _reject(chain, [f"the round document is unusable: {exc}"], evidence)
    problems = check_round_document(doc, chain)
    models, decoded = decode_models(doc, spec, base, global_model) if not problems else (None, [])
    problems += decoded
    if problems or models is None:
        return _reject(chain, problems, evidence)
    base_arrays, global_arrays = models
    measured_micro, notes = 0, []
    if holdout is not None:
        try:
            _, rest = split_holdout(fl_model.read_examples(holdout), spec.policy.root_fraction,
                                    int(spec.hyperparameters["seed"]))
            measured_micro = to_micro(measure(spec, global_arrays, rest))
            evidence["measured"] = {spec.eval.metric: measured_micro, "examples": len(rest)}
        except ModelError as exc:
            notes.append(f"the holdout is unusable, the global model is not measured: {exc}")
    commitments = {p.client: (bytes.fromhex(p.update_hash), p.num_examples) for p in doc.participants}
    failed: dict[str, str] = {}
    audited = list({c.account: c for c in audited if c.account in commitments}.values())  # the pallet draws
    for client in audited:                                         # participants, each once
        signed, examples = commitments[client.account]
        if client.document is None:
            failed[client.account] = f"audit: no reveal ({client.missing or 'nothing on chain'})"
            continue
        try:
            reveal, masking = unbundle(client.document)
        except RevealError as exc:
            failed[client.account] = f"audit: {exc}"
            continue
        reason = audit_document(reveal, max_bytes=spec.max_update_bytes + HEADER_ALLOWANCE,
                                signed_commitment=signed, base=base_arrays,
                                norm_bound=spec.secagg.update_norm_bound, task_id=chain.task_id, round=chain.round,
                                client=client.public_key, num_examples=examples)
        digest = doc.masked_vectors.get(client.account)
        if reason is None and digest is not None:   # the aggregator recorded what it summed: hold the client to it
            reason = _masking_reason(spec, chain, client.account, reveal, masking, bytes.fromhex(digest), examples,
                                     base_arrays)
        if reason is not None:
            failed[client.account] = reason
    evidence["audit"] = [{"client": c.account, "passed": c.account not in failed,
                          **({"reason": failed[c.account]} if c.account in failed else {})} for c in audited]
    rejected = [account for account, _ in chain.participants if account in failed]
    factors = [0 if account in failed else PERBILL for account, _ in chain.participants]
    evidence.update(accept=True, reasons=notes)
    return RoundVerdictValue(True, measured_micro, rejected, factors, canonical_json(evidence),
                             [*notes, *failed.values()])


def reveal_bound(spec: FlSpec) -> int:
    """The most bytes a reveal bundle may have: the reveal document and the masking record."""
    return spec.max_update_bytes + HEADER_ALLOWANCE + evidence_bound(spec)


def _masking_reason(spec: FlSpec, chain: ChainRound, account: str, reveal: bytes, masking: bytes | None,
                    digest: bytes, examples: int, base: Mapping[str, Any]) -> str | None:
    """Why the masked vector the audited client sent is not its revealed model (workers/fl/secagg_masks.py)."""
    assert spec.secagg is not None
    if masking is None:
        return "audit: the reveal does not show how it masked (no masking record)"
    try:
        record = parse_masking(masking, max_bytes=evidence_bound(spec))
    except MaskingError as exc:
        return f"audit: its masking record: {exc}"
    names = sorted(base)
    model = parse_reveal(reveal, max_bytes=spec.max_update_bytes + HEADER_ALLOWANCE, names=names,
                         shapes=[np.shape(base[n]) for n in names]).arrays
    return masking_problem(record, model=[model[n] for n in names], params=spec.secagg.params,
                           shapes=[tuple(np.shape(base[n])) for n in names], task_id=chain.task_id,
                           round_=chain.round, account=account, num_examples=examples, recorded_digest=digest)


def _reject(chain: ChainRound, reasons: list[str], evidence: dict[str, Any]) -> RoundVerdictValue:
    evidence.update(accept=False, reasons=reasons)
    return RoundVerdictValue(False, 0, [], [0] * len(chain.participants), canonical_json(evidence), reasons)


__all__ = ["AuditedClient", "reveal_bound", "secagg_round_verdict"]
