"""The FL spec document (what a requester asks to be trained federatedly) and the round document (what an
aggregator says one round did), both canonical JSON, both named by blake2-256 of their bytes.

The spec document is hashed into the on-chain ``FlTaskSpec.spec_hash``; clients train with its
hyperparameters (never the aggregator's) and validators judge with its rule, tolerance and policy. It names
no data set: the data stays with its owners. Layout::

    {"aggregate_tolerance": 0,                    # max |a-b| of a recomputed aggregate, units of 1e-9; 0 bitwise
     "eval": {"higher_is_better": true, "metric": "accuracy", "target": 0.9},
     "fraction_per_round": 1000000000,            # share of the joined clients asked each round, Perbill
     "hyperparameters": {"batch_size": 32, "local_epochs": 1, "lr": 0.003, "seed": 0, ...recipe's},
     "initial_model_seed": 0,                     # torch.manual_seed before the recipe builds the model
     "kind": "fl-task-spec",
     "max_update_bytes": 16777216,
     "min_clients_per_round": 3,
     "policy": {"loo_reject": 0.05, "loo_tolerance": 0.02, "reject_cos": -0.2, "reject_norm_ratio": 50.0,
                "root_fraction": 0.2},
     "recipe": "digits_mlp", "round_timeout_s": 120.0, "rounds": 5, "rule": "fedtrimmedavg:0.35"}

Fractions the chain also holds (``fraction_per_round``, a trimmed mean's beta) are exact Perbill values, so the
document, the pallet's ``FlTaskSpec`` and Flower's float arguments (``perbill / 1e9``) cannot disagree. The
rule strings are ``fedavg``, ``fedmedian``, ``fedtrimmedavg:BETA``, ``krum:F`` and ``multikrum:F:M``; a
document carries their canonical text (`RuleSpec.text`), and a rule the pallet would refuse for the task's
``min_clients_per_round`` (its ``InvalidRule``) is refused here too.

The round document (``kind: "fl-round"``) lists the participants in the chain's order (ascending account
bytes) with their signed update hashes, the replies the aggregator refused and why, the round's training
metrics and the Flower run it came from. Both documents decode only from their canonical bytes when asked
(``require_canonical``), so that a hash names one document.
"""
from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from workers.fl.central_noise import CentralDpError, CentralNoise
from workers.fl.dp_task import DpTaskError, FlDp
from workers.fl.secagg_params import SecAggParamsError
from workers.fl.secagg_task import SecAggTask
from workers.hashing import blake2_256, blake2_256_hex, normalize_hash

SPEC_KIND = "fl-task-spec"
ROUND_KIND = "fl-round"
PERBILL = 1_000_000_000
RULES = ("fedavg", "fedmedian", "fedtrimmedavg", "krum", "multikrum")
MAX_RECIPE_LEN, MAX_METRIC_LEN = 64, 32            # the pallet's MaxRecipeLen, MaxMetricNameLen
MAX_ROUND_TIMEOUT_S = 24 * 3600.0
MAX_PARTICIPANTS = 1024                            # far above the pallet's MaxClientsPerRound (128)
MAX_REFUSED = 4096
MAX_REASON_LEN = 512
MAX_ACCOUNT_LEN = 66                               # an SS58 address (48) or 0x-hex of 32 bytes
U64_MAX = (1 << 64) - 1
FEDERATED_HYPERPARAMETERS = ("batch_size", "local_epochs", "lr", "seed")
DEFAULT_MAX_UPDATE_BYTES = 16 << 20

Scalar = int | float | str | bool


class SpecError(ValueError):
    """An FL spec document, round document or rule string that cannot be used."""


class SpecDecodeError(SpecError):
    """The bytes are not a JSON object, or not its canonical form where that is required."""


class SpecValidationError(SpecError):
    """A field is missing, unknown, of the wrong type or out of range; `field` names it."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name


def _check(condition: bool, field_name: str, message: str) -> None:
    if not condition:
        raise SpecValidationError(field_name, message)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8, no NaN/Infinity (the project's canonical JSON)."""
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                          allow_nan=False).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise SpecValidationError("document", f"not canonical JSON: {exc}") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def _json_object(data: bytes | str) -> tuple[dict[str, Any], bytes]:
    raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    try:
        doc = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        raise SpecDecodeError(f"not a JSON document: {exc}") from None
    if not isinstance(doc, dict):
        raise SpecDecodeError("not a JSON object")
    return doc, raw


def _fields(doc: Any, where: str, known: set[str], required: set[str]) -> dict[str, Any]:
    _check(isinstance(doc, dict), where, "an object")
    unknown = sorted(set(doc) - known)
    _check(not unknown, f"{where}.{unknown[0]}" if unknown else where, "unknown field")
    missing = sorted(required - set(doc))
    _check(not missing, f"{where}.{missing[0]}" if missing else where, "missing")
    return dict(doc)


# Perbill as text ---------------------------------------------------------------------------------------
_DECIMAL = re.compile(r"(?P<whole>[01])(?:\.(?P<frac>[0-9]{1,9}))?")


def perbill_text(parts: int) -> str:
    """A Perbill as its shortest decimal (350000000 -> "0.35", 0 -> "0", 10**9 -> "1")."""
    whole, frac = divmod(parts, PERBILL)
    digits = f"{frac:09d}".rstrip("0")
    return f"{whole}.{digits}" if digits else str(whole)


def parse_perbill(text: str, what: str) -> int:
    match = _DECIMAL.fullmatch(text)
    _check(match is not None, what, f"{text!r} is not a decimal fraction of at most 9 places (e.g. 0.35)")
    assert match is not None
    parts = int(match["whole"]) * PERBILL + int((match["frac"] or "").ljust(9, "0"))
    _check(parts <= PERBILL, what, f"{text!r} is more than 1")
    return parts


# Rules -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RuleSpec:
    """An aggregation rule with its parameters: the pallet's AggregationRule, Flower's strategy."""

    name: str
    beta: int = 0              # fedtrimmedavg: the share cut at each end, Perbill (< 50 %)
    num_malicious: int = 0     # krum, multikrum: f
    num_to_select: int = 1     # multikrum: m (krum selects one)

    @property
    def text(self) -> str:
        """The canonical rule string of the spec document."""
        if self.name == "fedtrimmedavg":
            return f"fedtrimmedavg:{perbill_text(self.beta)}"
        if self.name == "krum":
            return f"krum:{self.num_malicious}"
        if self.name == "multikrum":
            return f"multikrum:{self.num_malicious}:{self.num_to_select}"
        return self.name

    @property
    def beta_fraction(self) -> float:
        """beta as Flower's FedTrimmedAvg takes it."""
        return self.beta / PERBILL

    def validate(self) -> RuleSpec:
        _check(self.name in RULES, "rule", f"{self.name!r} is not one of {', '.join(RULES)}")
        _check(_is_int(self.beta) and 0 <= self.beta < PERBILL // 2, "rule", "beta must be at least 0, below 0.5")
        _check(self.name == "fedtrimmedavg" or self.beta == 0, "rule", "only fedtrimmedavg has a beta")
        _check(_is_int(self.num_malicious) and 0 <= self.num_malicious < 1 << 32, "rule",
               "the number of malicious clients is a u32")
        _check(self.name in ("krum", "multikrum") or self.num_malicious == 0, "rule",
               "only krum and multikrum take a number of malicious clients")
        _check(_is_int(self.num_to_select) and 1 <= self.num_to_select < 1 << 32, "rule",
               "the number of updates to select is at least 1")
        _check(self.name == "multikrum" or self.num_to_select == 1, "rule", "only multikrum selects more than one")
        return self

    def validate_for(self, min_clients: int) -> RuleSpec:
        """The pallet's InvalidRule for a task of `min_clients` per round: Krum needs n > 2f + 2 to have a
        majority of honest neighbours, MultiKrum cannot select more updates than a round may have."""
        self.validate()
        if self.name in ("krum", "multikrum"):
            _check(min_clients > 2 * self.num_malicious + 2, "rule",
                   f"{self.name} with f={self.num_malicious} needs more than {2 * self.num_malicious + 2} "
                   f"clients per round, the task asks at least {min_clients}")
        if self.name == "multikrum":
            _check(self.num_to_select <= min_clients, "rule",
                   f"multikrum selects {self.num_to_select}, more than the {min_clients} clients per round")
        return self


def parse_rule(text: str) -> RuleSpec:
    """A rule string: fedavg, fedmedian, fedtrimmedavg[:BETA] (default 0.2), krum[:F] (default 0),
    multikrum[:F:M] (default 0:1). SpecValidationError(field "rule") for anything else."""
    _check(isinstance(text, str) and 0 < len(text) <= 64, "rule", "a rule string such as fedavg or krum:4")
    name, *args = text.strip().lower().split(":")

    def count(value: str) -> int:
        _check(value.isdigit() and len(value) <= 10, "rule", f"{value!r} is not a count")
        return int(value)

    if name in ("fedavg", "fedmedian") and not args:
        return RuleSpec(name).validate()
    if name == "fedtrimmedavg" and len(args) <= 1:
        beta = parse_perbill(args[0], "rule") if args else PERBILL // 5
        return RuleSpec(name, beta=beta).validate()
    if name == "krum" and len(args) <= 1:
        return RuleSpec(name, num_malicious=count(args[0]) if args else 0).validate()
    if name == "multikrum" and len(args) in (0, 2):
        return RuleSpec(name, num_malicious=count(args[0]) if args else 0,
                        num_to_select=count(args[1]) if args else 1).validate()
    raise SpecValidationError("rule", f"{text!r} is not fedavg, fedmedian, fedtrimmedavg[:BETA], krum[:F] or "
                                      "multikrum[:F:M]")


# The spec document -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EvalSpec:
    metric: str               # what the recipe's evaluate() returns, measured on the revealed holdout
    target: float
    higher_is_better: bool = True


@dataclass(frozen=True)
class Policy:
    """The validators' thresholds for client scores (workers.fl.verify.decide); the requester's to set."""

    reject_norm_ratio: float = 50.0   # an update's change this many times the reference's: rejected
    reject_cos: float = -0.2          # cosine with the reference's change below this: rejected
    loo_reject: float = 0.05          # leaving it out improves the metric by more (and cos < 0.1): rejected
    loo_tolerance: float = 0.02       # leaving it out improves the metric by more: factor 0
    root_fraction: float = 0.2        # share of the holdout the reference (FLTrust root) update trains on

    def validate(self) -> Policy:
        _check(_is_number(self.reject_norm_ratio) and self.reject_norm_ratio > 0, "policy.reject_norm_ratio",
               "a positive number")
        _check(_is_number(self.reject_cos) and -1.0 <= self.reject_cos <= 1.0, "policy.reject_cos",
               "a number from -1 to 1")
        _check(_is_number(self.loo_reject) and self.loo_reject >= 0, "policy.loo_reject", "a number >= 0")
        _check(_is_number(self.loo_tolerance) and self.loo_tolerance >= 0, "policy.loo_tolerance",
               "a number >= 0")
        _check(_is_number(self.root_fraction) and 0 < self.root_fraction < 1, "policy.root_fraction",
               "a number strictly between 0 and 1")
        return self


@dataclass(frozen=True)
class FlSpec:
    recipe: str
    rule: RuleSpec
    rounds: int
    min_clients_per_round: int
    eval: EvalSpec
    hyperparameters: dict[str, Scalar] = field(default_factory=dict)
    initial_model_seed: int = 0
    fraction_per_round: int = PERBILL
    round_timeout_s: float = 120.0
    max_update_bytes: int = DEFAULT_MAX_UPDATE_BYTES
    aggregate_tolerance: int = 0
    policy: Policy = field(default_factory=Policy)
    secagg: SecAggTask | None = None   # rounds under SecAgg+ (docs/secagg.md); if None, absent from the document
    dp: FlDp | None = None             # local DP-SGD on every client (workers/fl/dp_task.py); absent if None

    @property
    def fraction(self) -> float:
        """fraction_per_round as Flower's fraction_train takes it."""
        return self.fraction_per_round / PERBILL

    @property
    def tolerance(self) -> float:
        """aggregate_tolerance as an absolute difference."""
        return self.aggregate_tolerance / PERBILL

    @property
    def recipe_hyperparameters(self) -> dict[str, Scalar]:
        """The hyperparameters the recipe sees (the federated loop's local_epochs and seed left out)."""
        return {k: v for k, v in self.hyperparameters.items() if k not in ("local_epochs", "seed")}

    def to_dict(self) -> dict[str, Any]:
        return {"aggregate_tolerance": self.aggregate_tolerance,
                "eval": {"higher_is_better": self.eval.higher_is_better, "metric": self.eval.metric,
                         "target": self.eval.target},
                "fraction_per_round": self.fraction_per_round, "hyperparameters": dict(self.hyperparameters),
                "initial_model_seed": self.initial_model_seed, "kind": SPEC_KIND,
                "max_update_bytes": self.max_update_bytes, "min_clients_per_round": self.min_clients_per_round,
                "policy": {"loo_reject": self.policy.loo_reject, "loo_tolerance": self.policy.loo_tolerance,
                           "reject_cos": self.policy.reject_cos, "reject_norm_ratio": self.policy.reject_norm_ratio,
                           "root_fraction": self.policy.root_fraction},
                "recipe": self.recipe, "round_timeout_s": self.round_timeout_s, "rounds": self.rounds,
                "rule": self.rule.text, **({"secagg": self.secagg.document()} if self.secagg is not None else {}),
                **({"dp": self.dp.document()} if self.dp is not None else {})}

    def canonical_bytes(self) -> bytes:
        self.validate()
        return canonical_json(self.to_dict())

    def spec_hash(self) -> bytes:
        """blake2-256 of the canonical bytes: the on-chain spec_hash (32 bytes)."""
        return blake2_256(self.canonical_bytes())

    def spec_hash_hex(self) -> str:
        return blake2_256_hex(self.canonical_bytes())

    def validate(self) -> FlSpec:
        _check(isinstance(self.recipe, str) and 0 < len(self.recipe.encode()) <= MAX_RECIPE_LEN, "recipe",
               f"a non-empty name of at most {MAX_RECIPE_LEN} bytes")
        _check(_is_int(self.rounds) and 1 <= self.rounds < 1 << 32, "rounds", "a positive u32")
        _check(_is_int(self.min_clients_per_round) and 1 <= self.min_clients_per_round < 1 << 32,
               "min_clients_per_round", "a positive u32")
        _check(isinstance(self.rule, RuleSpec), "rule", "a rule")
        self.rule.validate_for(self.min_clients_per_round)
        _check(_is_int(self.fraction_per_round) and 0 < self.fraction_per_round <= PERBILL, "fraction_per_round",
               f"a Perbill above 0, at most {PERBILL}")
        _check(_is_int(self.initial_model_seed) and 0 <= self.initial_model_seed < 1 << 63, "initial_model_seed",
               "an integer in [0, 2^63)")
        _check(_is_number(self.round_timeout_s) and 0 < self.round_timeout_s <= MAX_ROUND_TIMEOUT_S,
               "round_timeout_s", "positive seconds, at most a day")
        _check(_is_int(self.max_update_bytes) and 0 < self.max_update_bytes <= 1 << 40, "max_update_bytes",
               "a positive number of bytes")
        _check(_is_int(self.aggregate_tolerance) and 0 <= self.aggregate_tolerance <= U64_MAX,
               "aggregate_tolerance", "a u64 in units of 1e-9")
        ev = self.eval
        _check(isinstance(ev, EvalSpec), "eval", "a {metric, target, higher_is_better} object")
        _check(isinstance(ev.metric, str) and 0 < len(ev.metric.encode()) <= MAX_METRIC_LEN, "eval.metric",
               f"a non-empty name of at most {MAX_METRIC_LEN} bytes")
        _check(_is_number(ev.target), "eval.target", "a finite number")
        _check(isinstance(ev.higher_is_better, bool), "eval.higher_is_better", "true or false")
        _check(isinstance(self.policy, Policy), "policy", "an object")
        self.policy.validate()
        self._validate_hyperparameters()
        _check(self.dp is None or isinstance(self.dp, FlDp), "dp", "a DP-SGD terms object")
        if self.secagg is not None:
            _check(isinstance(self.secagg, SecAggTask), "secagg", "a SecAgg+ settings object")
            _check(self.rule.name == "fedavg", "secagg", "the aggregator sees only the sum: the rule must be fedavg")
            _check(self.min_clients_per_round >= 3, "secagg",
                   "a SecAgg round needs at least 3 clients (with two, each learns the other's update)")
        return self

    def _validate_hyperparameters(self) -> None:
        hp = self.hyperparameters
        _check(isinstance(hp, dict), "hyperparameters", "an object")
        for key, value in hp.items():
            _check(isinstance(key, str) and key != "", "hyperparameters", "keys are non-empty strings")
            _check(isinstance(value, (int, float, str, bool)), f"hyperparameters.{key}", "a number, string or boolean")
            _check(not isinstance(value, float) or math.isfinite(value), f"hyperparameters.{key}", "must be finite")
        for key in FEDERATED_HYPERPARAMETERS:
            _check(key in hp, f"hyperparameters.{key}", "missing")
        epochs, batch, lr, seed = hp["local_epochs"], hp["batch_size"], hp["lr"], hp["seed"]
        _check(isinstance(epochs, int) and _is_int(epochs) and 1 <= epochs <= 1000, "hyperparameters.local_epochs",
               "an integer from 1 to 1000")
        _check(isinstance(batch, int) and _is_int(batch) and batch >= 1, "hyperparameters.batch_size",
               "a positive integer")
        _check(isinstance(lr, (int, float)) and _is_number(lr) and lr > 0, "hyperparameters.lr", "a positive number")
        _check(isinstance(seed, int) and _is_int(seed) and 0 <= seed < 1 << 63, "hyperparameters.seed",
               "an integer in [0, 2^63)")

    @classmethod
    def from_dict(cls, doc: Any) -> FlSpec:
        known = {"aggregate_tolerance", "eval", "fraction_per_round", "hyperparameters", "initial_model_seed", "kind",
                 "max_update_bytes", "min_clients_per_round", "policy", "recipe", "round_timeout_s", "rounds", "rule"}
        doc = _fields(doc, "spec", known | {"secagg", "dp"}, known)
        _check(doc["kind"] == SPEC_KIND, "kind", f"not {SPEC_KIND!r}")
        ev = _fields(doc["eval"], "eval", {"metric", "target", "higher_is_better"},
                     {"metric", "target", "higher_is_better"})
        policy_keys = {"reject_norm_ratio", "reject_cos", "loo_reject", "loo_tolerance", "root_fraction"}
        policy = _fields(doc["policy"], "policy", policy_keys, policy_keys)
        secagg, dp = None, None
        if "dp" in doc:
            try:
                dp = FlDp.from_document(doc["dp"])
            except DpTaskError as exc:
                raise SpecValidationError("dp", str(exc)) from None
        if "secagg" in doc:
            try:
                secagg = SecAggTask.from_document(doc["secagg"])
            except SecAggParamsError as exc:
                raise SpecValidationError("secagg", str(exc)) from None
        _check(isinstance(doc["rule"], str), "rule", "a rule string")
        rule = parse_rule(doc["rule"])
        _check(rule.text == doc["rule"], "rule", f"{doc['rule']!r} is not canonical ({rule.text!r})")
        return cls(recipe=doc["recipe"], rule=rule, rounds=doc["rounds"],
                   min_clients_per_round=doc["min_clients_per_round"],
                   eval=EvalSpec(metric=ev["metric"], target=ev["target"], higher_is_better=ev["higher_is_better"]),
                   hyperparameters=doc["hyperparameters"], initial_model_seed=doc["initial_model_seed"],
                   fraction_per_round=doc["fraction_per_round"], round_timeout_s=doc["round_timeout_s"],
                   max_update_bytes=doc["max_update_bytes"], aggregate_tolerance=doc["aggregate_tolerance"],
                   policy=Policy(**policy), secagg=secagg, dp=dp).validate()


def decode_spec(data: bytes | str, *, require_canonical: bool = False) -> FlSpec:
    """Parse and validate an FL spec document; with `require_canonical` the bytes must be its canonical form
    (so that their hash is the spec_hash)."""
    doc, raw = _json_object(data)
    spec = FlSpec.from_dict(doc)
    if require_canonical and spec.canonical_bytes() != raw:
        raise SpecDecodeError("the document is not in canonical form (sorted keys, no whitespace, UTF-8)")
    return spec


def spec_hash(spec_or_bytes: FlSpec | bytes) -> bytes:
    if isinstance(spec_or_bytes, FlSpec):
        return spec_or_bytes.spec_hash()
    return blake2_256(bytes(spec_or_bytes))


def build_spec(*, recipe: str, rule: str | RuleSpec, rounds: int, min_clients_per_round: int,
               fraction_per_round: int = PERBILL, hyperparameters: Mapping[str, Scalar] | None = None,
               seed: int = 0, round_timeout_s: float = 120.0, aggregate_tolerance: int = 0,
               max_update_bytes: int = DEFAULT_MAX_UPDATE_BYTES, metric: str | None = None,
               target: float | None = None, higher_is_better: bool | None = None,
               policy: Policy | None = None, secagg: SecAggTask | None = None, dp: FlDp | None = None) -> FlSpec:
    """A validated spec for a registered recipe: the evaluation defaults to the recipe's headline metric and
    expected value, the hyperparameters to one local epoch with the recipe's batch size and learning rate;
    `seed` seeds the initial model and, unless given, the local training."""
    from workers.recipes import RecipeError, get_recipe

    try:
        known = get_recipe(recipe)
    except RecipeError as exc:
        raise SpecValidationError("recipe", str(exc)) from None
    hp: dict[str, Scalar] = {"batch_size": int(known.defaults.get("batch_size", 32)), "local_epochs": 1,
                             "lr": float(known.defaults.get("lr", 0.01)), "seed": seed}
    hp.update(hyperparameters or {})
    return FlSpec(recipe=recipe, rule=parse_rule(rule) if isinstance(rule, str) else rule, rounds=rounds,
                  min_clients_per_round=min_clients_per_round,
                  eval=EvalSpec(metric=metric or known.metric,
                                target=float(known.expected if target is None else target),
                                higher_is_better=(known.mode == "max") if higher_is_better is None
                                else higher_is_better),
                  hyperparameters=hp, initial_model_seed=seed, fraction_per_round=fraction_per_round,
                  round_timeout_s=float(round_timeout_s), max_update_bytes=max_update_bytes,
                  aggregate_tolerance=aggregate_tolerance, policy=policy or Policy(), secagg=secagg,
                  dp=dp).validate()


# The round document -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Participant:
    """One accepted, signed update of the round, as the chain's participant list orders them."""

    client: str            # the account (SS58, as the chain's AccountId prints)
    update_hash: str       # 64 lower-case hex
    num_examples: int
    scheme: str            # "sr25519" or "ed25519"
    signature: str         # hex of the MultiSignature's 64 bytes


@dataclass(frozen=True)
class Refusal:
    """A reply the aggregator did not aggregate, and why (client None: the node never proved an identity)."""

    node_id: int
    client: str | None
    reason: str


@dataclass(frozen=True)
class RoundDocument:
    task_id: int
    round: int
    rule: str
    base_model_hash: str
    global_model_hash: str
    participants: tuple[Participant, ...]
    refused: tuple[Refusal, ...] = ()
    train_metrics: dict[str, float] = field(default_factory=dict)
    flower_version: str = ""
    run_id: int = 0
    central_dp: CentralNoise | None = None   # a central-DP task's noise record (workers/fl/central_dp.py)
    masked_vectors: dict[str, str] = field(default_factory=dict)   # SecAgg: account -> digest of its signed
    #                                            masked-vector reply (workers/fl/secagg_evidence.py), for the audit

    @property
    def update_hashes(self) -> list[str]:
        return [p.update_hash for p in self.participants]

    def to_dict(self) -> dict[str, Any]:
        return {"base_model_hash": self.base_model_hash, "flower": {"run_id": self.run_id,
                                                                    "version": self.flower_version},
                "global_model_hash": self.global_model_hash, "kind": ROUND_KIND,
                "participants": [{"client": p.client, "num_examples": p.num_examples,
                                  "signature": {"hex": p.signature, "scheme": p.scheme},
                                  "update_hash": p.update_hash} for p in self.participants],
                "refused": [{"client": r.client, "node_id": r.node_id, "reason": r.reason} for r in self.refused],
                "round": self.round, "rule": self.rule, "task_id": self.task_id,
                "train_metrics": dict(self.train_metrics),
                **({"central_dp": self.central_dp.to_dict()} if self.central_dp is not None else {}),
                **({"masked_vectors": dict(self.masked_vectors)} if self.masked_vectors else {})}

    def canonical_bytes(self) -> bytes:
        self.validate()
        return canonical_json(self.to_dict())

    def doc_hash(self) -> bytes:
        """The round_doc_hash the aggregator commits: blake2-256 of the canonical bytes."""
        return blake2_256(self.canonical_bytes())

    def validate(self) -> RoundDocument:
        _check(_is_int(self.task_id) and 0 <= self.task_id <= U64_MAX, "task_id", "a u64")
        _check(_is_int(self.round) and 1 <= self.round < 1 << 32, "round", "a positive u32")
        _check(isinstance(self.rule, str), "rule", "a rule string")
        _check(parse_rule(self.rule).text == self.rule, "rule", "not a canonical rule string")
        for name in ("base_model_hash", "global_model_hash"):
            _check(_is_hash(getattr(self, name)), name, "64 lower-case hex characters")
        _check(len(self.participants) <= MAX_PARTICIPANTS, "participants", f"at most {MAX_PARTICIPANTS}")
        for i, p in enumerate(self.participants):
            where = f"participants[{i}]"
            _check(isinstance(p, Participant), where, "a participant")
            _check(_is_account(p.client), f"{where}.client", "an account")
            _check(_is_hash(p.update_hash), f"{where}.update_hash", "64 lower-case hex characters")
            _check(_is_int(p.num_examples) and 1 <= p.num_examples <= U64_MAX, f"{where}.num_examples",
                   "a positive u64")
            _check(p.scheme in ("sr25519", "ed25519"), f"{where}.signature.scheme", "sr25519 or ed25519")
            _check(isinstance(p.signature, str) and re.fullmatch(r"[0-9a-f]{128}", p.signature) is not None,
                   f"{where}.signature.hex", "128 lower-case hex characters")
        clients = [p.client for p in self.participants]
        _check(len(set(clients)) == len(clients), "participants", "a client appears twice")
        _check(len(self.refused) <= MAX_REFUSED, "refused", f"at most {MAX_REFUSED}")
        for i, r in enumerate(self.refused):
            where = f"refused[{i}]"
            _check(isinstance(r, Refusal), where, "a refusal")
            _check(_is_int(r.node_id) and 0 <= r.node_id <= U64_MAX, f"{where}.node_id", "a u64")
            _check(r.client is None or _is_account(r.client), f"{where}.client", "an account or null")
            _check(isinstance(r.reason, str) and 0 < len(r.reason) <= MAX_REASON_LEN, f"{where}.reason",
                   f"a non-empty text of at most {MAX_REASON_LEN} characters")
        _check(isinstance(self.train_metrics, dict) and len(self.train_metrics) <= 64, "train_metrics",
               "an object of at most 64 numbers")
        for key, value in self.train_metrics.items():
            _check(isinstance(key, str) and 0 < len(key) <= 64 and _is_number(value), f"train_metrics.{key}",
                   "a finite number under a name of at most 64 characters")
        _check(isinstance(self.flower_version, str) and len(self.flower_version) <= 64, "flower.version",
               "a version string")
        _check(_is_int(self.run_id) and 0 <= self.run_id <= U64_MAX, "flower.run_id", "a u64")
        _check(isinstance(self.masked_vectors, dict) and len(self.masked_vectors) <= MAX_PARTICIPANTS
               and all(_is_account(k) and _is_hash(v) for k, v in self.masked_vectors.items()), "masked_vectors",
               f"an object of at most {MAX_PARTICIPANTS} accounts, each to 64 lower-case hex characters")
        if self.central_dp is not None:
            _check(isinstance(self.central_dp, CentralNoise), "central_dp", "a central-DP noise record")
            try:
                self.central_dp.validate()
            except CentralDpError as exc:
                raise SpecValidationError("central_dp", str(exc)) from None
        return self

    @classmethod
    def from_dict(cls, doc: Any) -> RoundDocument:
        known = {"base_model_hash", "flower", "global_model_hash", "kind", "participants", "refused", "round", "rule",
                 "task_id", "train_metrics"}
        doc = _fields(doc, "round", known | {"central_dp", "masked_vectors"}, known)
        _check(doc["kind"] == ROUND_KIND, "kind", f"not {ROUND_KIND!r}")
        central = None
        if "central_dp" in doc:
            try:
                central = CentralNoise.from_dict(doc["central_dp"])
            except CentralDpError as exc:
                raise SpecValidationError("central_dp", str(exc)) from None
        flower = _fields(doc["flower"], "flower", {"run_id", "version"}, {"run_id", "version"})
        _check(isinstance(doc["participants"], list), "participants", "a list")
        _check(isinstance(doc["refused"], list), "refused", "a list")
        _check(len(doc["participants"]) <= MAX_PARTICIPANTS, "participants", f"at most {MAX_PARTICIPANTS}")
        _check(len(doc["refused"]) <= MAX_REFUSED, "refused", f"at most {MAX_REFUSED}")
        participants = []
        for i, entry in enumerate(doc["participants"]):
            p = _fields(entry, f"participants[{i}]", {"client", "num_examples", "signature", "update_hash"},
                        {"client", "num_examples", "signature", "update_hash"})
            sig = _fields(p["signature"], f"participants[{i}].signature", {"hex", "scheme"}, {"hex", "scheme"})
            participants.append(Participant(client=p["client"], update_hash=p["update_hash"],
                                            num_examples=p["num_examples"], scheme=sig["scheme"], signature=sig["hex"]))
        refused = []
        for i, entry in enumerate(doc["refused"]):
            r = _fields(entry, f"refused[{i}]", {"client", "node_id", "reason"}, {"client", "node_id", "reason"})
            refused.append(Refusal(node_id=r["node_id"], client=r["client"], reason=r["reason"]))
        return cls(task_id=doc["task_id"], round=doc["round"], rule=doc["rule"],
                   base_model_hash=doc["base_model_hash"], global_model_hash=doc["global_model_hash"],
                   participants=tuple(participants), refused=tuple(refused), train_metrics=doc["train_metrics"],
                   flower_version=flower["version"], run_id=flower["run_id"], central_dp=central,
                   masked_vectors=doc.get("masked_vectors", {})).validate()


def _is_hash(value: Any) -> bool:
    return isinstance(value, str) and re.fullmatch(r"[0-9a-f]{64}", value) is not None


def _is_account(value: Any) -> bool:
    """An SS58 address (base58: ASCII letters and digits) or 0x-hex of the 32 bytes."""
    if not isinstance(value, str) or not 0 < len(value) <= MAX_ACCOUNT_LEN:
        return False
    return (value.isascii() and value.isalnum()) or re.fullmatch(r"0x[0-9a-f]{64}", value) is not None


def round_document(*, task_id: int, round: int, rule: str | RuleSpec, base_model_hash: str | bytes,
                   global_model_hash: str | bytes, participants: Sequence[Participant],
                   refused: Sequence[Refusal] = (), train_metrics: Mapping[str, float] | None = None,
                   flower_version: str = "", run_id: int = 0, central_dp: CentralNoise | None = None,
                   masked_vectors: Mapping[str, str] | None = None) -> RoundDocument:
    """A validated round document; hashes may be given as 32 bytes or any hex form, signatures as 0x-hex."""
    rows = [replace(p, update_hash=normalize_hash(p.update_hash), signature=p.signature.removeprefix("0x").lower())
            for p in participants]
    return RoundDocument(task_id=task_id, round=round, rule=rule.text if isinstance(rule, RuleSpec) else rule,
                         base_model_hash=normalize_hash(base_model_hash),
                         global_model_hash=normalize_hash(global_model_hash), participants=tuple(rows),
                         refused=tuple(refused), train_metrics={k: float(v) for k, v in (train_metrics or {}).items()},
                         flower_version=flower_version, run_id=run_id, central_dp=central_dp,
                         masked_vectors=dict(masked_vectors or {})).validate()


def decode_round_document(data: bytes | str, *, require_canonical: bool = True) -> RoundDocument:
    """Parse and validate a round document; by default the bytes must be its canonical form (their hash is the
    committed round_doc_hash)."""
    doc, raw = _json_object(data)
    document = RoundDocument.from_dict(doc)
    if require_canonical and document.canonical_bytes() != raw:
        raise SpecDecodeError("the round document is not in canonical form (sorted keys, no whitespace, UTF-8)")
    return document
