"""A validator's checks as pure functions: no chain, no Ray, no torch at import time; unit-tested alone.

A validator judges one submitted result (an attestation) with these checks; each returns `Check`
records (name, ok, detail) and the verdict is ``accept = all(check.ok)``:

* hashes (`verify_hashes`): the model weights named by ``model_hash`` exist in the artifact store and hash
  to it, at ``artifact_uri`` too; every checkpoint named in the attestation exists and hashes to its name;
  the ``trajectory_root`` equals the Merkle root recomputed from the checkpoint list (`recompute_root`,
  RFC 9162 tree over blake2-256, `workers.trajectory`).
* the trajectory's end (`check_trajectory_schedule`, `check_final_model`): every checkpoint is a PTTS1
  checkpoint document of the task's spec (its ``spec_hash``), all of one world size, at the steps the engine
  checkpoints a whole run at (`checkpoint_schedule`: every ``checkpoint_every`` optimizer steps and after the
  last, ``min((i+1)*every, total)``, with ``total`` the spec's total steps for that world size,
  `workers.engine.total_steps`), so a run stopped early is rejected; and the model is the trajectory's end:
  a model document of the task's spec whose tensors equal the model part of the last checkpoint bitwise
  (same names, dtypes, shapes and bytes: both are written from the same state by the same run, on any
  device), so weights from elsewhere are rejected however good they are. Both read only the PTTS1 headers
  and raw bytes (`read_ptts1`, no torch): hash and byte comparisons, no evaluation.
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

Rounds (`next_step`): on a chain with a challenge period a result is voted on in a first round (status
Submitted) and, if a validator challenges its approval (status Approved -> Challenged), in a challenge
round; `next_step` decides from the status and what the validator knows whether it verifies, votes,
challenges or abstains (docs/validators.md has the table).

Evidence: `evidence_document` builds a canonical JSON document (sorted keys, no whitespace, UTF-8) of the
checks done, the measured metric, the chosen segments and the hashes compared; it is stored in the
artifact store, whose name for it, blake2-256 of the bytes, is the verdict's ``evidence_hash``.
"""
from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from runtime_bindings.generated.types import Attestation
from runtime_bindings.values import METRIC_SCALE
from workers.artifacts import (
    ArtifactError,
    ArtifactIntegrityError,
    ArtifactNotFoundError,
    store_root_of,
)
from workers.hashing import blake2_256_hex, normalize_hash
from workers.trajectory import merkle_root_hex

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


# Attestations (runtime_bindings' types.Attestation: what the worker signs and the chain stores) -----------
def as_hex(value: Any) -> str:
    """64 lower-case hex characters of an H256 given as 0x-hex, bare hex or 32 bytes."""
    return normalize_hash(value)


def claimed_metrics(attestation: Attestation) -> dict[str, int]:
    """The attested metrics as {name: micro-units}."""
    return {name.text: int(value) for name, value in attestation.metrics}


def to_micro(value: float) -> int:
    micro = round(float(value) * METRIC_SCALE)
    return max(I64_MIN, min(I64_MAX, micro))


# Hashes -------------------------------------------------------------------------------------------------
def recompute_root(checkpoints: Sequence[str | bytes]) -> str:
    """The trajectory root (hex) of the checkpoint hashes, in training order."""
    return merkle_root_hex([as_hex(h) for h in checkpoints])


def check_trajectory_root(attestation: Attestation) -> Check:
    checkpoints = [as_hex(h) for h in attestation.checkpoints]
    claimed = as_hex(attestation.trajectory_root)
    recomputed = recompute_root(checkpoints)
    ok = bool(checkpoints) and recomputed == claimed
    detail: dict[str, Any] = {"claimed": claimed, "recomputed": recomputed, "checkpoints": len(checkpoints)}
    if not checkpoints:
        detail["reason"] = "the attestation names no checkpoint"
    elif not ok:
        detail["reason"] = "the trajectory root does not match the checkpoint list"
    return Check("trajectory_root", ok, detail)


OnRead = Callable[[str, bytes], None]


def _read(store: Any, digest: str, on_read: OnRead | None = None) -> tuple[bool, str]:
    """(ok, reason) of reading `digest` from the store, verified by hash; `on_read(digest, data)` sees the
    verified bytes (so that a caller looks into them without reading them twice)."""
    try:
        data = store.get(digest)
    except ArtifactNotFoundError:
        return False, "not in the artifact store"
    except ArtifactIntegrityError:
        return False, "tampered: the stored bytes do not hash to their name"
    except (OSError, ValueError) as exc:
        return False, f"unreadable: {exc}"
    if on_read is not None:
        on_read(digest, data)
    return True, ""


def verify_hashes(attestation: Attestation, store: Any, on_read: OnRead | None = None,
                  verified: Collection[str] = ()) -> list[Check]:
    """Model weights (in the store and at artifact_uri), every checkpoint, and the trajectory root.
    `on_read(digest, data)` is called with the verified bytes of the model and of every checkpoint read;
    the objects named in `verified` were just copied into the store by hash (and shown to `on_read` then),
    so they are not read again. The artifact_uri is read from where it points (it must pass the store's
    URI policy): the worker attested that the weights are there."""
    def read(digest: str) -> tuple[bool, str]:
        return (True, "") if digest in verified else _read(store, digest, on_read)

    checks: list[Check] = []
    model = as_hex(attestation.model_hash)
    ok, reason = read(model)
    checks.append(Check("model_hash", ok, {"model_hash": model, **({"reason": reason} if not ok else {})}))
    uri = attestation.artifact_uri.text
    if ok and uri != store.uri(model):
        try:
            store.fetch(uri, model, prefer_local=False)
            checks.append(Check("artifact_uri", True, {"uri": uri}))
        except (ArtifactError, OSError, ValueError) as exc:
            checks.append(Check("artifact_uri", False, {"uri": uri, "reason": f"the weights at the URI: {exc}"}))
    missing: dict[str, str] = {}
    for digest in (as_hex(h) for h in attestation.checkpoints):
        ok, reason = read(digest)
        if not ok:
            missing[digest] = reason
    checks.append(Check("checkpoints", not missing,
                        {"count": len(attestation.checkpoints),
                         **({"reason": "checkpoints missing or tampered", "bad": missing} if missing else {})}))
    checks.append(check_trajectory_root(attestation))
    return checks


# The trajectory's end ------------------------------------------------------------------------------------
PTTS1_MAGIC = b"PTTS1\n"  # workers.tensorio's format, read here without torch


@dataclass(frozen=True)
class TensorDocument:
    """A PTTS1 document (`workers.tensorio`) read without torch: its metadata and, per tensor name, the
    header entry (dtype, shape, offset, nbytes); `raw(name)` is the tensor's bytes."""

    meta: dict[str, Any]
    entries: dict[str, dict[str, Any]]
    body: memoryview

    def raw(self, name: str) -> bytes:
        entry = self.entries[name]
        return self.body[entry["offset"]:entry["offset"] + entry["nbytes"]].tobytes()


def read_ptts1(data: bytes) -> TensorDocument:
    """The header of a PTTS1 document, checked for consistency (every tensor inside the body); ValueError
    for anything else. Reads no tensor: the bytes stay where they are."""
    data = bytes(data)
    start = len(PTTS1_MAGIC) + 8
    if not data.startswith(PTTS1_MAGIC) or len(data) < start:
        raise ValueError("not a PTTS1 tensor document")
    (length,) = struct.unpack_from("<Q", data, len(PTTS1_MAGIC))
    if start + length > len(data):
        raise ValueError("truncated PTTS1 header")
    try:
        header = json.loads(data[start:start + length].decode("utf-8"))
        meta, listed = header["meta"], header["tensors"]
        if not isinstance(meta, dict) or not isinstance(listed, list):
            raise TypeError("meta and tensors must be an object and a list")
        body = memoryview(data)[start + length:]
        entries: dict[str, dict[str, Any]] = {}
        for entry in listed:
            name, offset, nbytes = str(entry["name"]), entry["offset"], entry["nbytes"]
            shape = entry["shape"]
            if not (isinstance(offset, int) and isinstance(nbytes, int) and 0 <= offset
                    and 0 <= nbytes and offset + nbytes <= len(body)):
                raise ValueError(f"tensor {name!r} lies outside the document")
            if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
                raise ValueError(f"tensor {name!r} has a bad shape {shape!r}")
            if name in entries:
                raise ValueError(f"tensor {name!r} is listed twice")
            entries[name] = {"dtype": str(entry["dtype"]), "shape": list(shape), "offset": offset, "nbytes": nbytes}
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"bad PTTS1 header: {exc}") from None
    return TensorDocument(meta=meta, entries=entries, body=body)


def document_meta(data: bytes) -> dict[str, Any] | None:
    """The metadata of a PTTS1 document (None: not one)."""
    try:
        return read_ptts1(data).meta
    except ValueError:
        return None


def checkpoint_schedule(total_steps: int, checkpoint_every: int) -> list[int]:
    """The steps at which the engine checkpoints a whole run (`workers.engine.run_loop`): every
    `checkpoint_every` optimizer steps, and after the last step."""
    if total_steps <= 0 or checkpoint_every <= 0:
        return []
    count = -(-total_steps // checkpoint_every)
    return [min((i + 1) * checkpoint_every, total_steps) for i in range(count)]


def _abridged(values: Sequence[Any], limit: int = 12) -> list[Any]:
    values = list(values)
    return values if len(values) <= limit else [*values[:limit // 2], "...", *values[-(limit // 2):]]


def check_trajectory_schedule(metas: Sequence[Mapping[str, Any] | None], *, spec_hash: str, checkpoint_every: int,
                              total_steps: Callable[[int], int]) -> Check:
    """The checkpoints (their PTTS1 metadata, in attested order; None for a document that is not PTTS1) are
    those of the whole run of the task's spec: each a checkpoint of `spec_hash`, all of one world size w, at
    exactly the steps `checkpoint_schedule(total_steps(w), checkpoint_every)`. A trajectory stopped early,
    thinned out, reordered, padded, or taken from another spec fails."""
    spec_hash = as_hex(spec_hash)
    detail: dict[str, Any] = {"checkpoints": len(metas), "spec_hash": spec_hash, "checkpoint_every": checkpoint_every}
    problems: list[str] = []
    unreadable = [i for i, m in enumerate(metas) if not isinstance(m, Mapping)]
    if not metas:
        problems.append("the attestation names no checkpoint")
    if unreadable:
        problems.append(f"checkpoints {_abridged(unreadable)} are not PTTS1 documents")
    readable = [m for m in metas if isinstance(m, Mapping)]
    not_checkpoints = [i for i, m in enumerate(metas) if isinstance(m, Mapping) and m.get("kind") != "checkpoint"]
    if not_checkpoints:
        problems.append(f"documents {_abridged(not_checkpoints)} are not checkpoints")
    other_spec = sorted({str(m.get("spec_hash")) for m in readable if m.get("spec_hash") != spec_hash})
    if other_spec:
        problems.append(f"checkpoints of another spec ({', '.join(h[:16] for h in other_spec[:3])}), not the task's")
    sizes = {m.get("world_size") for m in readable}
    world = next(iter(sizes)) if len(sizes) == 1 else None
    if readable and not (isinstance(world, int) and not isinstance(world, bool) and world >= 1):
        problems.append(f"the checkpoints' world sizes {sorted(map(str, sizes))} are not one positive number")
        world = None
    steps = [m.get("step") for m in readable]
    detail.update(world_size=world, steps=_abridged(steps))
    if world is not None and not unreadable:
        total = int(total_steps(world))
        expected = checkpoint_schedule(total, checkpoint_every)
        detail.update(total_steps=total, expected_steps=_abridged(expected))
        if steps != expected:
            if steps and steps == expected[:len(steps)]:
                problems.append(f"the trajectory stops at step {steps[-1]} of {total}: the last "
                                f"{len(expected) - len(steps)} of {len(expected)} checkpoints are missing")
            else:
                problems.append(f"the checkpoint steps are not the spec's schedule ({len(expected)} checkpoints, "
                                f"every {checkpoint_every} of {total} steps at world size {world})")
    if problems:
        detail["reason"] = "; ".join(problems)
    return Check("trajectory_schedule", not problems, detail)


def check_final_model(model: bytes | None, last_checkpoint: bytes | None, *, spec_hash: str) -> Check:
    """The model is the end of the trajectory: a PTTS1 model document of the task's spec whose tensors are,
    bitwise, the model part (``model/<name>``) of the last checkpoint: same names, dtypes, shapes and bytes."""
    spec_hash = as_hex(spec_hash)
    detail: dict[str, Any] = {"spec_hash": spec_hash}
    if model is None or last_checkpoint is None:
        return Check("final_model", False, {**detail, "reason": "the model or the last checkpoint was not read"})
    try:
        weights = read_ptts1(model)
    except ValueError as exc:
        return Check("final_model", False, {**detail, "reason": f"the model weights are unreadable: {exc}"})
    try:
        last = read_ptts1(last_checkpoint)
    except ValueError as exc:
        return Check("final_model", False, {**detail, "reason": f"the last checkpoint is unreadable: {exc}"})
    problems: list[str] = []
    if weights.meta.get("kind") != "model":
        problems.append(f"the model document is a {weights.meta.get('kind')!r}, not a model")
    if weights.meta.get("spec_hash") != spec_hash:
        problems.append(f"the model is of spec {str(weights.meta.get('spec_hash'))[:16]}, not the task's")
    prefix = "model/"
    state = {name[len(prefix):]: name for name in last.entries if name.startswith(prefix)}
    missing, extra = sorted(set(state) - set(weights.entries)), sorted(set(weights.entries) - set(state))
    differ = [name for name in sorted(set(state) & set(weights.entries))
              if (weights.entries[name]["dtype"], weights.entries[name]["shape"])
              != (last.entries[state[name]]["dtype"], last.entries[state[name]]["shape"])
              or weights.raw(name) != last.raw(state[name])]
    detail.update(tensors=len(weights.entries), checkpoint_tensors=len(state))
    if missing or extra:
        problems.append(f"the model's tensors are not the last checkpoint's (missing {_abridged(missing, 6)}, "
                        f"extra {_abridged(extra, 6)})")
    if differ:
        detail["differ"] = _abridged(differ, 8)
        problems.append(f"{len(differ)} of the model's tensors differ from the last checkpoint's")
    if problems:
        detail["reason"] = "; ".join(problems) + ": the model is not the end of the attested trajectory"
    return Check("final_model", not problems, detail)


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


# The revealed holdout ----------------------------------------------------------------------------------
HOLDOUT_MARGIN_MS = 15_000    # stop waiting for the holdout's reveal this long before the verification window ends


def await_holdout(verify_until_ms: int, now_ms: int, margin_ms: int = HOLDOUT_MARGIN_MS) -> bool:
    """Whether a validator still waits for the requester's holdout reveal on a Submitted result: while more
    than `margin_ms` of the verification window (``verify_until``, a Timestamp.Now moment, ms) are left at
    `now_ms`; after that it judges on the validation split alone, so that its vote lands in the window."""
    return int(verify_until_ms) - int(now_ms) > int(margin_ms)


# Voting rules -------------------------------------------------------------------------------------------
def may_vote(me: str, worker: str, requester: str) -> tuple[bool, str]:
    """Whether a validator may vote on a result at all (the pallet refuses the same; the daemon never tries).
    Having voted already is a matter of the round: `next_step` decides that."""
    if me == worker:
        return False, "this validator is the worker: it never judges its own work"
    if me == requester:
        return False, "this validator is the requester"
    return True, ""


# Rounds and challenges ----------------------------------------------------------------------------------
FIRST_ROUND, CHALLENGE_ROUND = "first", "challenge"
VERIFY, VOTE, CHALLENGE, ABSTAIN = "verify", "vote", "challenge", "abstain"


@dataclass(frozen=True)
class Step:
    """What a validator does next about a result: `verify` (its verdict is needed and not known yet),
    `vote` (submit_verdict in the current round), `challenge` (challenge_result) or `abstain` (why)."""

    action: str
    reason: str = ""


def round_of(status: str) -> str:
    """The voting round a task status belongs to: an Approved result can only be voted on by challenging it,
    so Approved and Challenged are both the challenge round (one key in the never-vote-twice record)."""
    return CHALLENGE_ROUND if status in ("Approved", "Challenged") else FIRST_ROUND


def next_step(status: str, *, accept: bool | None, voted_this_round: bool, approved_me: bool = False,
              challenger_me: bool = False, now_ms: int | None = None, challenge_until: int | None = None) -> Step:
    """The validator's next step on a result, from the task's status and what it knows.

    `accept`: its own verdict on this attestation (None: not verified yet); `voted_this_round`: it voted in
    the status's round already (a challenge counts as its vote in the challenge round); `approved_me`: it is
    one of the result's `approved_by`; `now_ms` / `challenge_until`: the chain's Timestamp.Now and the
    Approved status's end of the challenge period (the chain's clock decides, not the validator's).
    It never challenges a result it accepted, nor once the period is over (the pallet would refuse it).
    """
    if status == "Submitted":
        if voted_this_round:
            return Step(ABSTAIN, "already voted on this result")
        return Step(VERIFY if accept is None else VOTE)
    if status == "Challenged":
        if challenger_me:
            return Step(ABSTAIN, "its challenge is its vote in the challenge round")
        if voted_this_round:
            return Step(ABSTAIN, "already voted in the challenge round")
        return Step(VERIFY if accept is None else VOTE)
    if status == "Approved":
        if approved_me:
            return Step(ABSTAIN, "it is one of the approving validators: it never challenges a result it accepted")
        if voted_this_round:
            return Step(ABSTAIN, "already challenged this result")
        if now_ms is None or challenge_until is None or now_ms >= challenge_until:
            return Step(ABSTAIN, f"the challenge period is over (chain time {now_ms} ms, until {challenge_until} ms)")
        if accept is None:
            return Step(VERIFY)
        if accept:
            return Step(ABSTAIN, "its own check accepts the approved result: nothing to challenge")
        return Step(CHALLENGE)
    return Step(ABSTAIN, f"no longer under verification ({status})")


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
    "ABSTAIN",
    "CHALLENGE",
    "CHALLENGE_ROUND",
    "FIRST_ROUND",
    "HOLDOUT_MARGIN_MS",
    "HOLDOUT_TOLERANCE",
    "METRIC_TOLERANCE",
    "VERIFY",
    "VOTE",
    "Check",
    "Step",
    "TensorDocument",
    "Verdict",
    "as_hex",
    "await_holdout",
    "check_final_model",
    "check_trajectory_root",
    "check_trajectory_schedule",
    "checkpoint_schedule",
    "choose_segments",
    "claimed_metrics",
    "compare_metric",
    "compare_replay",
    "compare_target",
    "decide",
    "document_meta",
    "evidence_document",
    "evidence_hash",
    "may_vote",
    "next_step",
    "read_ptts1",
    "recompute_root",
    "round_of",
    "segment_start",
    "store_root_of",
    "tensors_close",
    "to_micro",
    "verify_hashes",
]
