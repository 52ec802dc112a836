"""A validator's checks of one committed federated round, as pure functions of arrays and documents.

No Flower, gRPC, chain or key here (the judge, `workers.fl.judge`, fetches the objects by hash and sends the
verdict): inputs are the FL spec, the chain's record of the round, the round document and the PTTS1 bytes of
the base model, the global model and each update (in the chain's participant order), and the revealed holdout
when there is one. The steps, each a function unit-tested alone:

1. the aggregator's work (`check_round_document`, `decode_round`): the round document says what the chain
   says (task, round, rule, base and global hashes, participants and their example counts, in order); every
   object is the one its hash names, decodes within the spec's bounds and has the base model's names, dtypes
   and shapes; a problem here is the aggregator's, a reject.
2. the aggregate (`compare_round`): the task's rule recomputed on the updates (`workers.fl.rules`) equals the
   committed global model bitwise, or within the spec's aggregate_tolerance; for Krum and MultiKrum a
   different selection is accepted only where scores tie within 1e-6 relative (a BLAS product may order its
   sums differently on another machine), else it is a mismatch. A central-DP round (`compare_release`) is
   held to the release instead: every update clipped, the equal-weight mean, the noise from the document's
   seed (workers/fl/central_dp.py), and the aggregator's claim as the judge recomputed it. A mismatch rejects
   the round.
3. the clients, on an accepted round (`split_holdout`, `reference_update`, `client_scores`, `leave_one_out`,
   `decide`): FLTrust's idea, a "root" update trained by the validator itself with the spec's hyperparameters
   on a seeded share (policy.root_fraction) of the revealed holdout; each client's change from the base is
   compared with the root's (cosine, norm ratio; a change of exactly zero is a free rider's copy) and each
   client the scores do not reject is left out once and the rest averaged (FedAvg, whatever the task's rule:
   a robust rule's output jumps when one update leaves) and measured on the rest of the holdout. Without a
   holdout the reference is the coordinate-wise median of the round's updates and there is no
   leave-one-out. Each client's own model (its update, as a model) is measured on the measuring share too:
   one far worse than the reference (`far_worse`, OWN_FLOOR) is worth nothing, whatever its direction (a
   label-flipped model points roughly where the root's does in the first rounds, and measures near or below
   chance). A round is valued at all only when the root update from the base gets at least half as far as
   from the recipe's initial model, and the committed global model at least half as far as that root
   update (`valued`). `decide` turns that into the rejected clients (slashed on chain) and the
   contribution factors (Perbill) with the spec's policy.
4. the verdict (`round_verdict`): accept iff 1 and 2 pass; the global model's metric on the measuring part
   of the holdout in micro-units; the evidence document (canonical JSON) with every figure it rests on.
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from workers.fl import central_dp, rules
from workers.fl import model as fl_model
from workers.fl.arrays import MODEL_META, UPDATE_META, ArrayFormatError, Arrays, check_update, loads
from workers.fl.central_dp import CentralRelease
from workers.fl.central_noise import CentralDpError
from workers.fl.model import Examples, ModelError
from workers.fl.spec import (
    PERBILL,
    FlSpec,
    Policy,
    RoundDocument,
    RuleSpec,
    SpecError,
    canonical_json,
    decode_round_document,
    parse_rule,
)
from workers.hashing import blake2_256_hex, normalize_hash

METRIC_SCALE = 1_000_000          # the chain's metrics are i64 micro-units
KRUM_TIE = 1e-6                   # relative difference under which two Krum scores are a tie
MAX_ALTERNATIVES = 256            # tied Krum selections tried at most
LOO_REJECT_COS = 0.0              # a leave-one-out gain rejects (slashes) only an update pointing away from the root's
OWN_FLOOR = 1 / 3                 # a client's own model measuring under this share of the reference's: factor 0
VALUE_FLOOR = 0.5                 # see `valued`: under this share of its yardstick, the round pays nobody
HEADER_ALLOWANCE = 1 << 20        # PTTS1 header bytes allowed above the spec's max_update_bytes
EVIDENCE_KIND = "fl-round-evidence"
I64_MIN, I64_MAX = -(1 << 63), (1 << 63) - 1
LARGEST = float(np.finfo(np.float64).max)   # a norm ratio past float range: rejected, and still valid JSON


def to_micro(value: float) -> int:
    return max(I64_MIN, min(I64_MAX, round(float(value) * METRIC_SCALE)))


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


# 1. The aggregator's work -----------------------------------------------------------------------------
@dataclass(frozen=True)
class ChainRound:
    """The chain's record of one round, as the checks need it (the judge reads it from Rounds and Tasks)."""

    task_id: int
    round: int
    rule: str                                   # the canonical text of the task's rule (the spec's)
    base_model_hash: str
    global_model_hash: str
    participants: tuple[tuple[str, int], ...]   # (account, signed example count), the chain's order


def check_round_document(doc: RoundDocument, chain: ChainRound) -> list[str]:
    """What in the round document differs from the chain's record of the round (empty: nothing)."""
    problems = []
    if (doc.task_id, doc.round) != (chain.task_id, chain.round):
        problems.append(f"the document is about task {doc.task_id} round {doc.round}, the chain's record about "
                        f"task {chain.task_id} round {chain.round}")
    if doc.rule != chain.rule:
        problems.append(f"the document's rule {doc.rule!r} is not the task's {chain.rule!r}")
    for name in ("base_model_hash", "global_model_hash"):
        if normalize_hash(getattr(doc, name)) != normalize_hash(getattr(chain, name)):
            problems.append(f"the document's {name} is not the committed one")
    listed = [(p.client, p.num_examples) for p in doc.participants]
    if [c for c, _ in listed] != [c for c, _ in chain.participants]:
        problems.append(f"the document lists {len(listed)} participants that are not the chain's "
                        f"{len(chain.participants)} in the chain's order")
    else:
        problems.extend(f"participant {client}: the document says {n} examples, the signed commitment {m}"
                        for (client, n), (_, m) in zip(listed, chain.participants, strict=True) if n != m)
    return problems


@dataclass(frozen=True)
class RoundArrays:
    base: Arrays
    global_model: Arrays
    updates: list[Arrays]


def _decode(data: bytes, expected_hash: str, what: str, meta: Mapping[str, Any], max_bytes: int) -> Arrays:
    if blake2_256_hex(data) != normalize_hash(expected_hash):
        raise ArrayFormatError(f"the {what} is not the object its hash names")
    arrays, found = loads(data, max_bytes=max_bytes)
    if found != dict(meta):
        raise ArrayFormatError(f"the {what} is not marked {dict(meta)} (found {found})")
    return arrays


def decode_models(doc: RoundDocument, spec: FlSpec, base: bytes,
                  global_model: bytes) -> tuple[tuple[Arrays, Arrays] | None, list[str]]:
    """The base and global models, each checked against its hash and bounds, the global one against the base's
    layout (finite, same names, dtypes and shapes); the problems where they are not usable. The problems are
    also returned alongside the models, so a caller may decode the updates before rejecting."""
    limit = spec.max_update_bytes + HEADER_ALLOWANCE
    try:
        base_arrays = _decode(base, doc.base_model_hash, "base model", MODEL_META, limit)
        global_arrays = _decode(global_model, doc.global_model_hash, "global model", MODEL_META, limit)
    except ArrayFormatError as exc:
        return None, [str(exc)]
    why = check_update(global_arrays, base_arrays, spec.max_update_bytes)
    return (base_arrays, global_arrays), ([] if why is None else [f"the global model: {why}"])


def decode_round(doc: RoundDocument, spec: FlSpec, base: bytes, global_model: bytes,
                 updates: Sequence[bytes]) -> tuple[RoundArrays | None, list[str]]:
    """The round's arrays, each checked against its hash and bounds and the base model's layout; or None and
    the problems (the aggregator's: it committed objects a validator cannot use)."""
    limit = spec.max_update_bytes + HEADER_ALLOWANCE
    models, problems = decode_models(doc, spec, base, global_model)
    if models is None:
        return None, problems
    base_arrays, global_arrays = models
    if len(updates) != len(doc.participants):
        return None, [*problems, f"{len(updates)} updates for {len(doc.participants)} participants"]
    decoded = []
    for participant, data in zip(doc.participants, updates, strict=True):
        try:
            arrays = _decode(data, participant.update_hash, f"update of {participant.client}", UPDATE_META, limit)
        except ArrayFormatError as exc:
            problems.append(str(exc))
            continue
        why = check_update(arrays, base_arrays, spec.max_update_bytes)
        if why is not None:
            problems.append(f"the update of {participant.client}: {why}")
        decoded.append(arrays)
    if problems:
        return None, problems
    return RoundArrays(base_arrays, global_arrays, decoded), []


# 2. The aggregate --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Comparison:
    ok: bool
    max_abs_diff: float | None                  # None where the layouts differ (nothing to subtract)
    reason: str = ""
    selection: list[int] | None = None          # Krum/MultiKrum: the updates (in order) the match rests on


def compare(aggregate: Mapping[str, np.ndarray], committed: Mapping[str, np.ndarray],
            tolerance_e9: int) -> Comparison:
    """The recomputed aggregate against the committed global model: bitwise for tolerance 0, else every
    entry within tolerance_e9 * 1e-9."""
    if list(sorted(aggregate)) != list(sorted(committed)):
        return Comparison(False, None, "the committed model's array names are not the aggregate's")
    worst, bitwise = 0.0, True
    for name in sorted(aggregate):
        ours, theirs = np.asarray(aggregate[name]), np.asarray(committed[name])
        if ours.dtype != theirs.dtype or ours.shape != theirs.shape:
            return Comparison(False, None, f"array {name!r}: {theirs.dtype}{list(theirs.shape)} committed, "
                                           f"{ours.dtype}{list(ours.shape)} recomputed")
        bitwise = bitwise and ours.tobytes() == theirs.tobytes()
        if ours.size:
            diff = float(np.max(np.abs(ours.astype(np.float64) - theirs.astype(np.float64))))
            worst = diff if math.isnan(diff) else max(worst, diff)
        if math.isnan(worst):
            break
    ok = bitwise if tolerance_e9 == 0 else (not math.isnan(worst) and worst <= tolerance_e9 / PERBILL)
    reason = "" if ok else (f"the committed model differs from the recomputed aggregate by up to {worst:.3g} "
                            f"(tolerance {tolerance_e9 / PERBILL:.3g}{', bitwise' if tolerance_e9 == 0 else ''})")
    return Comparison(ok, _finite(worst), reason)


def _tied(a: float, b: float) -> bool:
    return abs(a - b) <= KRUM_TIE * max(abs(a), abs(b))


def tied_selections(scores: Sequence[float], num_to_select: int) -> list[list[int]]:
    """Every selection (in aggregation order) that sorting these scores could give when scores within
    KRUM_TIE of each other may come in any order; at most MAX_ALTERNATIVES of them."""
    order = sorted(range(len(scores)), key=lambda i: (float(scores[i]), i))
    groups: list[list[int]] = []
    for i in order:
        if groups and _tied(float(scores[groups[-1][0]]), float(scores[i])):
            groups[-1].append(i)
        else:
            groups.append([i])
    parts, left = [], num_to_select
    for group in groups:
        if left <= 0:
            break
        take = min(left, len(group))
        parts.append(itertools.permutations(group, take))
        left -= take
    selections = []
    for combination in itertools.product(*parts):
        selections.append([i for part in combination for i in part])
        if len(selections) >= MAX_ALTERNATIVES:
            break
    return selections


def compare_round(rule: RuleSpec, updates: Sequence[Arrays], weights: Sequence[int],
                  committed: Mapping[str, np.ndarray], tolerance_e9: int) -> Comparison:
    """The rule recomputed on the updates (chain order, signed example counts) against the committed model."""
    reference = rules.aggregate(rule, updates, weights)
    result = compare(reference, committed, tolerance_e9)
    if result.ok or rule.name not in ("krum", "multikrum"):
        selection = rules.select_multikrum(updates, rule.num_malicious, rule.num_to_select) \
            if rule.name in ("krum", "multikrum") else None
        return Comparison(result.ok, result.max_abs_diff, result.reason, selection)
    scores = rules.krum_scores(updates, rule.num_malicious)
    for selection in tied_selections(scores, rule.num_to_select):
        other = rules.weighted_average([updates[i] for i in selection], [weights[i] for i in selection])
        alternative = compare(other, committed, tolerance_e9)
        if alternative.ok:
            return Comparison(True, alternative.max_abs_diff, "another selection among tied Krum scores", selection)
    return Comparison(False, result.max_abs_diff, f"{result.reason}; no selection among tied Krum scores matches")


def compare_release(doc: RoundDocument, arrays: RoundArrays, central: CentralRelease,
                    tolerance_e9: int) -> Comparison:
    """A central-DP round: the committed model against the validator's own release, every update clipped to
    the task's norm, averaged with equal weights and noised from the document's seed with the std the task's
    terms give for this many participants (whatever std the document says)."""
    if doc.central_dp is None:
        return Comparison(False, None, "the round document of a central-DP round records no noise seed")
    std = central_dp.noise_std(central.noise_multiplier, central.clipping_norm, len(arrays.updates))
    try:
        reference = central_dp.released_model(arrays.base, arrays.updates, replace(doc.central_dp, std=std),
                                              central.clipping_norm)
    except CentralDpError as exc:
        return Comparison(False, None, str(exc))
    result = compare(reference, arrays.global_model, tolerance_e9)
    if result.ok:
        return result
    return Comparison(False, result.max_abs_diff, "the committed model is not the clipped mean of the updates with "
                                                  f"the recorded seed's noise of std {std:.6g}: {result.reason}")


# 3. The clients ----------------------------------------------------------------------------------------
def measure(spec: FlSpec, arrays: Mapping[str, np.ndarray], examples: Examples) -> float:
    """The spec's metric of the model holding `arrays` on `examples` (ModelError when it cannot be measured)."""
    measured = fl_model.evaluate(spec, arrays, examples)
    if spec.eval.metric not in measured:
        raise ModelError(f"the recipe does not measure {spec.eval.metric!r}")
    return measured[spec.eval.metric]


def split_holdout(holdout: Examples, root_fraction: float, seed: int) -> tuple[Examples, Examples]:
    """(root, rest): a seeded share of the holdout for the reference update, the rest for measuring; both
    non-empty."""
    n = len(holdout)
    if n < 2:
        raise ModelError(f"a holdout of {n} examples cannot be split into a root share and a measuring share")
    order = np.random.default_rng(seed).permutation(n)
    k = min(n - 1, max(1, round(n * root_fraction)))
    return holdout.subset(np.sort(order[:k])), holdout.subset(np.sort(order[k:]))


def reference_update(spec: FlSpec, base: Mapping[str, np.ndarray], root: Examples, seed: int) -> Arrays:
    """FLTrust's root update: the base trained by the validator on the root share with the spec's
    hyperparameters (local epochs, batch size, learning rate), the batch order seeded."""
    return fl_model.train(spec, base, root, seed)


@dataclass(frozen=True)
class ClientScore:
    cos: float            # cosine of the client's change from the base with the reference's change
    norm_ratio: float     # |client's change| / |reference's change|
    is_copy: bool         # the client returned the base model unchanged (a free rider)


def _delta(update: Mapping[str, np.ndarray], base: Mapping[str, np.ndarray]) -> np.ndarray:
    if not base:
        return np.zeros(0)
    return np.concatenate([np.asarray(update[k], dtype=np.float64).ravel()
                           - np.asarray(base[k], dtype=np.float64).ravel() for k in sorted(base)])


def client_scores(base: Mapping[str, np.ndarray], updates: Sequence[Mapping[str, np.ndarray]],
                  reference: Mapping[str, np.ndarray]) -> list[ClientScore]:
    """Each update's change from the base, against the reference's change."""
    ref = _delta(reference, base)
    ref_norm = float(np.linalg.norm(ref))
    scores = []
    for update in updates:
        d = _delta(update, base)
        norm = float(np.linalg.norm(d))
        is_copy = not bool(np.any(d))
        if ref_norm > 0 and norm > 0 and math.isfinite(norm):
            cos = float(np.clip(float(np.dot(d, ref)) / (norm * ref_norm), -1.0, 1.0))
        else:
            cos = 0.0
        ratio = norm / ref_norm if ref_norm > 0 else 0.0
        scores.append(ClientScore(cos=cos, norm_ratio=ratio if math.isfinite(ratio) else LARGEST, is_copy=is_copy))
    return scores


def leave_one_out(rule: RuleSpec, updates: Sequence[Arrays], weights: Sequence[int],
                  evaluate: Callable[[Arrays], float]) -> tuple[float, list[float]]:
    """(the metric of the aggregate of all, [the metric of the aggregate without update i]); with a single
    update there is nothing to leave it out of, and its entry is the full metric."""
    full = evaluate(rules.aggregate(rule, updates, weights))
    without = []
    for i in range(len(updates)):
        rest = [u for j, u in enumerate(updates) if j != i]
        if not rest:
            without.append(full)
            continue
        without.append(evaluate(rules.aggregate(rule, rest, [w for j, w in enumerate(weights) if j != i])))
    return full, without


def far_worse(value: float, anchor: float, floor: float, *, higher_is_better: bool = True) -> bool:
    """Whether a model measuring `value` is far worse than one measuring `anchor`: under floor x anchor
    (higher is better) or over anchor / floor (lower is better). Never for an anchor that is not positive and
    finite (a ratio to it means nothing); always for a value that is not finite."""
    if not (math.isfinite(anchor) and anchor > 0):
        return False
    if not math.isfinite(value):
        return True
    return value < floor * anchor if higher_is_better else value > anchor / floor


def worthless(own_metrics: Sequence[float], reference_metric: float, *,
              higher_is_better: bool = True) -> list[bool]:
    """For each client's own model (its update, measured as a model on the measuring share), whether it is
    far worse than the validator's root update from the same base (OWN_FLOOR): a model taught flipped labels
    measures near or below chance (0.08 to 0.25 where the reference measures 0.5 to 0.85 on digits) while
    its change can still point roughly where the root's does. In the Byzantine matrix (alpha 2) the flipped
    model measured at most 0.29 of the reference and the weakest honest one (a skewed shard, first round) at
    least 0.40 (0.32 in one of five re-runs with other client seeds). Worth nothing, not slashed: a bad shard
    is not proof of malice."""
    return [far_worse(m, reference_metric, OWN_FLOOR, higher_is_better=higher_is_better) for m in own_metrics]


def valued(reference_metric: float, initial_reference_metric: float, global_metric: float, *,
           higher_is_better: bool = True) -> bool:
    """Whether a judged round's updates can be valued (paid) at all. Two yardsticks, both the validator's own
    root update (FLTrust's, on the root share): trained from this round's base it must measure at least
    VALUE_FLOOR of what it measures trained from the recipe's initial model (`initial_reference_metric`),
    and the committed global model at least VALUE_FLOOR of it. A base poisoned past use (FedAvg after x1000
    updates) stays a near-constant predictor under any training, the root's (0.09 to 0.20 of accuracy where
    the initial model trains to 0.51), and every update, honest or label-flipped, lines up with the root's:
    nothing tells them apart. A global model that lost most of what one root update gets (a poisoned FedAvg
    round: 0.11 to 0.20 against 0.45 to 0.53) bought nothing either. The round is still judged
    (`has_signal`): its poisoners are rejected."""
    return not (far_worse(reference_metric, initial_reference_metric, VALUE_FLOOR, higher_is_better=higher_is_better)
                or far_worse(global_metric, reference_metric, VALUE_FLOOR, higher_is_better=higher_is_better))


def decide(scores: Sequence[ClientScore], loo: tuple[float, Sequence[float]] | None, policy: Policy, *,
           higher_is_better: bool = True, learning: bool = True, paying: bool = True,
           unpaid: Sequence[bool] | None = None) -> tuple[list[int], list[int]]:
    """(the indices of rejected updates, each update's contribution factor in Perbill). Rejected: a change
    more than reject_norm_ratio times the reference's, or pointing away from it (cos < reject_cos), or one
    whose absence improves the metric by more than loo_reject while it points away from it at all (cos < 0:
    a skewed honest shard can hurt the average while still pointing the root's way). Factor 0: rejected, a
    copy of the base (a free rider: unpaid, not slashed), an absence that improves the metric by more than
    loo_tolerance, a client whose `unpaid` entry is true (its own model is `worthless`), a round
    that is not `paying` (see `valued`), or a round without a learning signal (`learning` False: see
    `has_signal`; then directions mean nothing and only the norm ratio rejects); else the cosine clipped to
    [0, 1]."""
    if unpaid is not None and len(unpaid) != len(scores):
        raise ValueError(f"{len(unpaid)} unpaid flags for {len(scores)} scores")
    gains = [0.0] * len(scores)
    if loo is not None:
        full, without = loo
        gains = [(w - full) if higher_is_better else (full - w) for w in without]
    rejected, factors = [], []
    for i, (score, gain) in enumerate(zip(scores, gains, strict=True)):
        aligned_badly = learning and (score.cos < policy.reject_cos
                                      or (gain > policy.loo_reject and score.cos < LOO_REJECT_COS))
        reject = score.norm_ratio > policy.reject_norm_ratio or aligned_badly
        if reject:
            rejected.append(i)
        zero = (reject or score.is_copy or gain > policy.loo_tolerance or not learning or not paying
                or (unpaid is not None and unpaid[i]))
        factors.append(0 if zero else round(min(1.0, max(0.0, score.cos)) * PERBILL))
    return rejected, factors


def has_signal(base_metric: float, reference_metric: float, global_metric: float) -> bool:
    """Whether the round could be valued at all: the global model or the validator's own root update measures
    differently from the base. A base poisoned past use (FedAvg after a x1000 update: every prediction the
    same class) does not move whatever it is trained on, and every update, honest or label-flipped, lines up
    with a root update that learns nothing: cosines say nothing, so nobody is paid for the round and only a
    norm far beyond the reference's still rejects. (Not "improves": a good base may measure no better after
    the root share's brief training, and its poisoners must still be rejected.)"""
    return reference_metric != base_metric or global_metric != base_metric


# 4. The verdict ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RoundVerdictValue:
    """The fields of submit_round_verdict (contributions aligned with the participants) and the evidence."""

    accept: bool
    measured_metric: int
    rejected_clients: list[str]
    contributions: list[int]
    evidence: bytes
    reasons: list[str] = field(default_factory=list)


def _reject(chain: ChainRound, reasons: list[str], evidence: dict[str, Any]) -> RoundVerdictValue:
    evidence.update(accept=False, reasons=reasons)
    return RoundVerdictValue(False, 0, [], [0] * len(chain.participants), canonical_json(evidence), reasons)


def round_verdict(spec: FlSpec, chain: ChainRound, document: bytes, base: bytes, global_model: bytes,
                  updates: Sequence[bytes], holdout: bytes | None = None,
                  central: CentralRelease | None = None) -> RoundVerdictValue:
    """This validator's verdict on one committed round. `updates` are the objects the document's update
    hashes name, in its (the chain's) order; `holdout` the revealed holdout's bytes, when there is one;
    `central` a central-DP task's mechanism, whose release replaces the rule in step 2."""
    evidence: dict[str, Any] = {"kind": EVIDENCE_KIND, "task_id": chain.task_id, "round": chain.round,
                                "rule": chain.rule, "global_model_hash": normalize_hash(chain.global_model_hash)}
    try:
        doc = decode_round_document(document)
    except SpecError as exc:
        return _reject(chain, [f"the round document is unusable: {exc}"], evidence)
    problems = check_round_document(doc, chain)
    if problems:
        return _reject(chain, problems, evidence)
    arrays, problems = decode_round(doc, spec, base, global_model, updates)
    if arrays is None:
        return _reject(chain, problems, evidence)
    weights = [n for _, n in chain.participants]
    if central is not None:
        if central.claim_problems:
            return _reject(chain, [f"central DP claim: {p}" for p in central.claim_problems], evidence)
        comparison = compare_release(doc, arrays, central, spec.aggregate_tolerance)
    else:
        comparison = compare_round(parse_rule(chain.rule), arrays.updates, weights, arrays.global_model,
                                   spec.aggregate_tolerance)
    evidence["aggregate"] = {"ok": comparison.ok, "max_abs_diff": comparison.max_abs_diff,
                             "tolerance_e9": spec.aggregate_tolerance, "selection": comparison.selection}
    if not comparison.ok:
        return _reject(chain, [comparison.reason], evidence)
    return _judge_clients(spec, chain, arrays, holdout, evidence)


def _marginal_gains(spec: FlSpec, arrays: RoundArrays, weights: list[int], reference: Arrays,
                    rest: Examples) -> tuple[float, list[float]]:
    """Leave-one-out over the updates the scores alone do not reject, aggregated by FedAvg: a poisoned update
    left in would make every other one look worthless, and a robust rule's own output moves in jumps when one
    update leaves (a median of 7 against one of 8), so the gains would be noise. Updates outside the set get
    the full metric (no gain)."""
    scores = client_scores(arrays.base, arrays.updates, reference)
    kept = [i for i in range(len(scores)) if i not in decide(scores, None, spec.policy)[0]]
    if not kept:
        return 0.0, [0.0] * len(scores)
    full, without = leave_one_out(parse_rule("fedavg"), [arrays.updates[i] for i in kept], [weights[i] for i in kept],
                                  lambda a: measure(spec, a, rest))
    gains = dict(zip(kept, without, strict=True))
    return full, [gains.get(i, full) for i in range(len(scores))]


def _judge_clients(spec: FlSpec, chain: ChainRound, arrays: RoundArrays, holdout: bytes | None,
                   evidence: dict[str, Any]) -> RoundVerdictValue:
    weights = [n for _, n in chain.participants]
    measured_micro, loo, notes, learning, paying = 0, None, [], True, True
    own: list[float] | None = None
    unpaid: list[bool] | None = None
    reference: Arrays | None = None
    if holdout is not None:
        try:
            root, rest = split_holdout(fl_model.read_examples(holdout), spec.policy.root_fraction,
                                       int(spec.hyperparameters["seed"]))
            measured = measure(spec, arrays.global_model, rest)
            reference = reference_update(spec, arrays.base, root, int(spec.hyperparameters["seed"]) + chain.round)
            loo = _marginal_gains(spec, arrays, weights, reference, rest)
            base_metric, reference_metric = measure(spec, arrays.base, rest), measure(spec, reference, rest)
            learning = has_signal(base_metric, reference_metric, measured)
            higher = spec.eval.higher_is_better
            # the root update round 1 trains: from the recipe's initial model, with round 1's seed
            initial_reference = reference_update(spec, fl_model.initial_model(spec), root,
                                                 int(spec.hyperparameters["seed"]) + 1)
            initial_reference_metric = measure(spec, initial_reference, rest)
            paying = valued(reference_metric, initial_reference_metric, measured, higher_is_better=higher)
            own = [measure(spec, u, rest) for u in arrays.updates]
            unpaid = worthless(own, reference_metric, higher_is_better=higher)
            measured_micro = to_micro(measured)
            evidence["measured"] = {spec.eval.metric: measured_micro, "examples": len(rest),
                                    "root_examples": len(root), "base": to_micro(base_metric),
                                    "reference": to_micro(reference_metric),
                                    "initial_reference": to_micro(initial_reference_metric), "learning": learning,
                                    "valued": paying}
            if not learning:
                notes.append("no learning signal: neither the global model nor the root update measures other "
                             "than the base, so no client is paid for this round")
            elif not paying:
                notes.append("the round is not valued: the root update from the base, or the global model, measures "
                             "under half of its yardstick (see verify.valued), so no client is paid for this round")
        except ModelError as exc:  # the requester's holdout (or recipe) cannot be used: judge without it
            notes.append(f"the holdout is unusable, clients judged against the median update: {exc}")
            reference, loo, learning, paying, own, unpaid = None, None, True, True, None, None
    if reference is None:
        reference = rules.median(arrays.updates)
    evidence["reference"] = "holdout-root" if loo is not None else "median"
    scores = client_scores(arrays.base, arrays.updates, reference)
    rejected, factors = decide(scores, loo, spec.policy, higher_is_better=spec.eval.higher_is_better,
                               learning=learning, paying=paying, unpaid=unpaid)
    full, without = loo if loo is not None else (None, [None] * len(scores))
    evidence["loo_full"] = None if full is None else _finite(full)
    evidence["clients"] = [{"client": client, "num_examples": n, "cos": _finite(s.cos),
                            "norm_ratio": _finite(s.norm_ratio), "is_copy": s.is_copy,
                            "without": None if w is None else _finite(w),
                            "own": None if own is None else _finite(own[i]), "factor": f, "rejected": i in rejected}
                           for i, ((client, n), s, w, f) in enumerate(zip(chain.participants, scores, without, factors,
                                                                           strict=True))]
    evidence.update(accept=True, reasons=notes)
    rejected_clients = [chain.participants[i][0] for i in rejected]
    return RoundVerdictValue(True, measured_micro, rejected_clients, factors, canonical_json(evidence), notes)
