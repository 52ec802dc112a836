"""A validator's checks as pure functions: no chain, no Ray, no torch at import time; unit-tested alone.

A validator judges one submitted result (an attestation) with these checks; each returns `Check`
records (name, ok, detail) and the verdict is ``accept = all(check.ok)``:

* hashes (`verify_hashes`): the model weights named by ``model_hash`` exist in the artifact store and hash
  to it, at ``artifact_uri`` too; every checkpoint named in the attestation exists and hashes to its name;
  the ``trajectory_root`` equals the Merkle root recomputed from the checkpoint list (`recompute_root`,
  RFC 9162 tree over blake2-256, `workers.trajectory`).
* the claimed metric (`compare_metric`): the attested value (i64 micro-units, as the pallet stores it) is
  compared with the validator's own measurement on the validation split: an honest claim is at most
  ``tolerance`` better than the measurement (a lower claim is not fraud). Evaluation is deterministic on
  CPU, so the default tolerance is small (``METRIC_TOLERANCE`` = 1e-4, i.e. 100 micro-units: room for
  float summation order across BLAS builds and thread counts, far below one example of any split here).
* the revealed holdout (`compare_target`): where the requester committed a hidden holdout and revealed it,
  the model must reach the task's target on it within ``HOLDOUT_TOLERANCE`` (default 0.05 absolute: a
  holdout is a different sample, so a small generalisation gap is no fraud).
* the spot check (`choose_segments`, `compare_replay`): Q of the n training segments (segment i runs from
  checkpoint i-1, or the initialisation for i = 0, to checkpoint i) are re-executed from their starting
  checkpoint; the checkpoint produced must equal the attested one bitwise (PTTS1 bytes, blake2-256). On
  CPU the engine is bitwise deterministic for a given world size (`workers.engine`), so no tolerance is
  needed there; where determinism cannot hold (GPU kernels) a replay compares the decoded tensors with
  ``rtol``/``atol`` instead (`tensors_close`, not used by the CPU path).

Segment choice (documented protocol, deterministic for everyone with the chain): the randomness is the
32-byte hash of the finalized block in which ``ResultSubmitted`` was included, which did not exist when
the worker signed its attestation. With n segments and q = min(Q, n) draws, [0, n) is cut into q strata
of (near) equal width, ``[floor(j*n/q), floor((j+1)*n/q))``; stratum j contributes the index
``lo + (u64_le(blake2_256(b"paratrain/spot-check/v1" || randomness || u32_le(j))[:8]) mod (hi - lo))``.
The indices are therefore distinct, spread over the whole run, and any other validator (or the worker,
afterwards) can recompute them from the block hash.

Evidence: `evidence_document` builds a canonical JSON document (sorted keys, no whitespace, UTF-8) of the
checks done, the measured metric, the chosen segments and the hashes compared; it is stored in the
artifact store, whose name for it, blake2-256 of the bytes, is the verdict's ``evidence_hash``.
"""
from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from workers.hashing import blake2_256_hex, normalize_hash
from workers.trajectory import merkle_root_hex

METRIC_SCALE = 1_000_000          # the pallet's metrics and measured_metric: i64 micro-units
METRIC_TOLERANCE = 1e-4           # claimed vs re-measured metric on the validation split (absolute)
HOLDOUT_TOLERANCE = 0.05          # revealed holdout vs the task's target (absolute)
SEGMENT_DOMAIN = b"paratrain/spot-check/v1"
EVIDENCE_VERSION = 1
I64_MIN, I64_MAX = -(2**63), 2**63 - 1


@dataclass(frozen=True)
class Check:
    """One check a validator made: its name, whether it passed, and what was compared."""

    name: str
    ok: bool
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Verdict:
    """The outcome: accept only when every check passed; `reasons` lists the failed checks."""

    accept: bool
    measured_metric: int            # micro-units (0 when the metric could not be measured)
    checks: tuple[Check, ...]

    @property
    def reasons(self) -> list[str]:
        return [f"{c.name}: {c.detail.get('reason', c.detail)}" for c in self.checks if not c.ok]


def decide(checks: Iterable[Check], measured_metric: int = 0) -> Verdict:
    checks = tuple(checks)
    return Verdict(accept=bool(checks) and all(c.ok for c in checks), measured_metric=int(measured_metric),
                   checks=checks)


# Attestation access (a dict as TrainingResult.to_attestation gives, or the chain's dataclass) ---------------
def field_of(attestation: Any, name: str) -> Any:
    if isinstance(attestation, dict):
        return attestation[name]
    return getattr(attestation, name)


def as_hex(value: Any) -> str:
    """64 lower-case hex characters of an H256 given as 0x-hex, bare hex or 32 bytes."""
    return normalize_hash(value)


def as_text(value: Any) -> str:
    """A BoundedVec<u8> as text: bytes, a 0x-hex string of UTF-8 bytes (as scalecodec returns) or str."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", errors="replace")
    value = str(value or "")
    if value.startswith("0x"):
        try:
            return bytes.fromhex(value[2:]).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return value
    return value


def claimed_metrics(attestation: Any) -> dict[str, int]:
    """The attested metrics as {name: micro-units}."""
    return {as_text(name): int(value) for name, value in field_of(attestation, "metrics")}


def to_micro(value: float) -> int:
    micro = round(float(value) * METRIC_SCALE)
    return max(I64_MIN, min(I64_MAX, micro))


# Hashes -------------------------------------------------------------------------------------------------
def recompute_root(checkpoints: Sequence[str | bytes]) -> str:
    """The trajectory root (hex) of the checkpoint hashes, in training order."""
    return merkle_root_hex([as_hex(h) for h in checkpoints])


def check_trajectory_root(attestation: Any) -> Check:
    checkpoints = [as_hex(h) for h in field_of(attestation, "checkpoints")]
    claimed = as_hex(field_of(attestation, "trajectory_root"))
    recomputed = recompute_root(checkpoints)
    ok = bool(checkpoints) and recomputed == claimed
    detail: dict[str, Any] = {"claimed": claimed, "recomputed": recomputed, "checkpoints": len(checkpoints)}
    if not checkpoints:
        detail["reason"] = "the attestation names no checkpoint"
    elif not ok:
        detail["reason"] = "the trajectory root does not match the checkpoint list"
    return Check("trajectory_root", ok, detail)


def _read(store: Any, digest: str) -> tuple[bool, str]:
    """(ok, reason) of reading `digest` from the store, verified by hash."""
    from workers.artifacts import ArtifactIntegrityError, ArtifactNotFoundError

    try:
        store.get(digest)
        return True, ""
    except ArtifactNotFoundError:
        return False, "not in the artifact store"
    except ArtifactIntegrityError as exc:
        return False, f"tampered: the stored bytes hash to {exc.actual}"
    except (OSError, ValueError) as exc:
        return False, f"unreadable: {exc}"


def verify_hashes(attestation: Any, store: Any) -> list[Check]:
    """Model weights (in the store and at artifact_uri), every checkpoint, and the trajectory root."""
    from workers.artifacts import ArtifactError

    checks: list[Check] = []
    model = as_hex(field_of(attestation, "model_hash"))
    ok, reason = _read(store, model)
    checks.append(Check("model_hash", ok, {"model_hash": model, **({"reason": reason} if not ok else {})}))
    uri = as_text(field_of(attestation, "artifact_uri"))
    if ok and uri != store.uri(model):
        try:
            store.fetch(uri, model)
            checks.append(Check("artifact_uri", True, {"uri": uri}))
        except (ArtifactError, OSError, ValueError) as exc:
            checks.append(Check("artifact_uri", False, {"uri": uri, "reason": f"the weights at the URI: {exc}"}))
    missing: dict[str, str] = {}
    for digest in (as_hex(h) for h in field_of(attestation, "checkpoints")):
        ok, reason = _read(store, digest)
        if not ok:
            missing[digest] = reason
    checks.append(Check("checkpoints", not missing,
                        {"count": len(field_of(attestation, "checkpoints")),
                         **({"reason": "checkpoints missing or tampered", "bad": missing} if missing else {})}))
    checks.append(check_trajectory_root(attestation))
    return checks


def store_root_of(uri: str) -> str | None:
    """The store root of a content-addressed URI ``<root>/blake2b256/<hh>/<hash>`` (None for other URIs)."""
    from workers.artifacts import HASH_DIR

    parts = uri.rstrip("/").rsplit("/", 3)
    if len(parts) == 4 and parts[1] == HASH_DIR and len(parts[3]) == 64 and parts[2] == parts[3][:2]:
        return parts[0]
    return None


# Metrics ------------------------------------------------------------------------------------------------
def compare_metric(claimed: int | None, measured: float, tolerance: float = METRIC_TOLERANCE,
                   higher_is_better: bool = True, *, name: str = "metric") -> Check:
    """The attested value (micro-units) against the re-measured one: fraud when the claim is better than the
    measurement by more than `tolerance` (absolute, in the metric's units)."""
    measured_micro = to_micro(measured)
    detail: dict[str, Any] = {"metric": name, "claimed": claimed, "measured": measured_micro,
                              "tolerance": to_micro(tolerance), "higher_is_better": higher_is_better}
    if claimed is None:
        return Check("metric", False, {**detail, "reason": f"the attestation claims no {name!r}"})
    slack = to_micro(tolerance)
    ok = claimed <= measured_micro + slack if higher_is_better else claimed >= measured_micro - slack
    if not ok:
        detail["reason"] = (f"claimed {name} {claimed / METRIC_SCALE:.6f}, measured {measured_micro / METRIC_SCALE:.6f}"
                            f" (tolerance {tolerance})")
    return Check("metric", ok, detail)


def compare_target(measured: float, target_micro: int, tolerance: float = HOLDOUT_TOLERANCE,
                   higher_is_better: bool = True, *, name: str = "holdout") -> Check:
    """A measurement (e.g. on the revealed holdout) against the task's target (micro-units)."""
    measured_micro, slack = to_micro(measured), to_micro(tolerance)
    ok = measured_micro >= target_micro - slack if higher_is_better else measured_micro <= target_micro + slack
    detail: dict[str, Any] = {"measured": measured_micro, "target": target_micro, "tolerance": slack,
                              "higher_is_better": higher_is_better}
    if not ok:
        detail["reason"] = f"measured {measured_micro / METRIC_SCALE:.6f} misses the target {target_micro / METRIC_SCALE}"
    return Check(name, ok, detail)


# Spot checks --------------------------------------------------------------------------------------------
def _draw(randomness: bytes, stratum: int) -> int:
    digest = hashlib.blake2b(SEGMENT_DOMAIN + randomness + struct.pack("<I", stratum), digest_size=32).digest()
    return int.from_bytes(digest[:8], "little")


def choose_segments(randomness: str | bytes, n_checkpoints: int, q: int) -> list[int]:
    """Q distinct segment indices in [0, n_checkpoints), one per stratum, from the block-hash randomness."""
    if n_checkpoints <= 0 or q <= 0:
        return []
    seed = bytes.fromhex(as_hex(randomness))
    q = min(q, n_checkpoints)
    chosen = []
    for j in range(q):
        lo, hi = j * n_checkpoints // q, (j + 1) * n_checkpoints // q
        chosen.append(lo + _draw(seed, j) % (hi - lo))
    return chosen


def segment_start(checkpoints: Sequence[str | bytes], index: int) -> str | None:
    """The checkpoint a segment starts from (None: the initialisation)."""
    return as_hex(checkpoints[index - 1]) if index > 0 else None


def compare_replay(index: int, start: str | None, expected: str, replayed: str | None, *,
                   error: str | None = None) -> Check:
    """Segment `index` re-executed from `start`: the replayed checkpoint hash must equal the attested one."""
    detail: dict[str, Any] = {"segment": index, "from": start, "expected": expected, "replayed": replayed}
    ok = error is None and replayed is not None and as_hex(replayed) == as_hex(expected)
    if error is not None:
        detail["reason"] = f"the segment could not be replayed: {error}"
    elif not ok:
        detail["reason"] = "the replayed checkpoint differs from the attested one"
    return Check(f"segment[{index}]", ok, detail)


def tensors_close(a: dict[str, Any], b: dict[str, Any], *, rtol: float = 1e-5, atol: float = 1e-6) -> bool:
    """For replays where bitwise determinism cannot hold (GPU): same tensors, values within rtol/atol."""
    import torch

    return a.keys() == b.keys() and all(
        a[k].shape == b[k].shape and a[k].dtype == b[k].dtype
        and (torch.equal(a[k], b[k]) if not a[k].is_floating_point()
             else torch.allclose(a[k], b[k], rtol=rtol, atol=atol)) for k in a)


# Voting rules -------------------------------------------------------------------------------------------
def may_vote(me: str, worker: str, requester: str, already_voted: bool) -> tuple[bool, str]:
    """Whether a validator may vote on a result (the pallet refuses the same; the daemon never tries)."""
    if me == worker:
        return False, "this validator is the worker: it never judges its own work"
    if me == requester:
        return False, "this validator is the requester"
    if already_voted:
        return False, "already voted on this result"
    return True, ""


# Evidence -----------------------------------------------------------------------------------------------
def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False, default=str).encode("utf-8")


def evidence_document(*, task_id: int, attestation_hash: str, validator: str, randomness: str | None,
                      verdict: Verdict, segments: Sequence[int] = (), extra: dict[str, Any] | None = None) -> bytes:
    """The canonical evidence bytes; their blake2-256 is the verdict's evidence_hash."""
    doc = {"version": EVIDENCE_VERSION, "task_id": task_id, "attestation_hash": as_hex(attestation_hash),
           "validator": validator, "randomness": as_hex(randomness) if randomness else None,
           "accept": verdict.accept, "measured_metric": verdict.measured_metric, "segments": list(segments),
           "checks": [asdict(c) for c in verdict.checks], "reasons": verdict.reasons, **(extra or {})}
    return canonical_json(doc)


def evidence_hash(document: bytes) -> str:
    return blake2_256_hex(document)


__all__ = [
    "HOLDOUT_TOLERANCE",
    "METRIC_SCALE",
    "METRIC_TOLERANCE",
    "Check",
    "Verdict",
    "as_hex",
    "as_text",
    "check_trajectory_root",
    "choose_segments",
    "claimed_metrics",
    "compare_metric",
    "compare_replay",
    "compare_target",
    "decide",
    "evidence_document",
    "evidence_hash",
    "may_vote",
    "recompute_root",
    "segment_start",
    "store_root_of",
    "tensors_close",
    "to_micro",
    "verify_hashes",
]
