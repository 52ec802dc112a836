"""The validator's ruling on the clients an aggregator reported refused in a SecAgg round (report_refused).

Each report names a joined client and the hash of its signed stage reply in the round's store. A validator
reads the evidence within the spec's bounds, checks the signature and re-runs the guard's rule
(workers/fl/secagg_evidence.py `proven_fault`):

* proven: the client signed a reply the rule refuses; the verdict rejects it, and the pallet slashes it when the
  round is accepted;
* not proven (missing, unreadable, someone else's signature, another round's, or a well-formed reply): the
  aggregator accused a client it cannot convict, which is the aggregator's fault, so the verdict rejects the
  round (its stake is slashed, nobody else's).
"""
from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from runtime_bindings.fl import account_public_key
from workers.fl.secagg_evidence import EvidenceError, evidence_bound, model_shapes, parse_evidence, proven_fault
from workers.fl.spec import FlSpec, canonical_json
from workers.fl.verify import RoundVerdictValue


@dataclass(frozen=True)
class RefusalFindings:
    proven: dict[str, str]      # account -> what its signed reply shows
    unproven: dict[str, str]    # account -> why the report cannot be upheld


def rule_on_refusals(reported: Sequence[tuple[str, str]], fetch: Callable[[str], bytes], *, task_id: int,
                     round_: int, spec: FlSpec) -> RefusalFindings:
    """`reported` is [(account, evidence hash)]; `fetch(hash)` the verified object (any exception: unreadable)."""
    assert spec.secagg is not None
    proven: dict[str, str] = {}
    unproven: dict[str, str] = {}
    shapes = model_shapes(spec)
    for account, digest in reported:
        try:
            reply = parse_evidence(fetch(digest), max_bytes=evidence_bound(spec))
        except EvidenceError as exc:
            unproven[account] = f"its evidence {digest[:16]} is not a signed stage reply: {exc}"
            continue
        except Exception as exc:  # noqa: BLE001 - whatever the store raises, the evidence is not there
            unproven[account] = f"its evidence {digest[:16]} cannot be read: {exc}"
            continue
        fault = proven_fault(reply, task_id=task_id, round_=round_, account=account, params=spec.secagg.params,
                             shapes=shapes)
        if fault is None:
            unproven[account] = (f"its evidence {digest[:16]} proves nothing: not its signed reply of task {task_id} "
                                 f"round {round_}, or one the guard's rule accepts")
        else:
            proven[account] = fault
    return RefusalFindings(proven, unproven)


def with_refusals(outcome: RoundVerdictValue, findings: RefusalFindings) -> RoundVerdictValue:
    """An accepting verdict with the proven senders rejected as well, or a reject when a report is unproven."""
    if not outcome.accept or not (findings.proven or findings.unproven):
        return outcome
    evidence: dict[str, Any] = json.loads(outcome.evidence)
    evidence["refusals"] = {"proven": findings.proven, "unproven": findings.unproven}
    if findings.unproven:
        evidence["accept"] = False
        reasons = [f"the aggregator reported {a} refused, but {why}" for a, why in findings.unproven.items()]
        return replace(outcome, accept=False, rejected_clients=[], evidence=canonical_json(evidence),
                       reasons=[*outcome.reasons, *reasons])
    rejected = sorted({*outcome.rejected_clients, *findings.proven}, key=account_public_key)
    return replace(outcome, rejected_clients=rejected, evidence=canonical_json(evidence),
                   reasons=[*outcome.reasons, *(f"{a} signed a malformed reply: {why}"
                                                for a, why in findings.proven.items())])


__all__ = ["RefusalFindings", "rule_on_refusals", "with_refusals"]
