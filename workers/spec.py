"""The task spec document: what a requester asks to be trained, hashed into the on-chain spec_hash.

Canonical form: JSON with sorted keys, no insignificant whitespace (``separators=(",", ":")``),
UTF-8 (non-ASCII characters written as themselves, not ``\\u`` escapes), no NaN or infinity.
``spec_hash = blake2_256(canonical bytes)``. Layout (version 1)::

    {"checkpoint_every": 20,                      # K: a checkpoint every K optimizer steps
     "dataset": {"hash": "<64 hex>", "uri": "file:///.../ab/abcd..."},
     "evaluation": {"metric": "accuracy", "mode": "max", "target": 0.9},
     "hyperparameters": {"batch_size": 64, "epochs": 10, "lr": 0.001},
     "limits": {"memory_mb": 4096, "timeout_s": 900},
     "recipe": "digits_mlp",
     "seed": 0,
     "validation": {"fraction": 0.2, "seed": 0},
     "version": 1}

A differentially private task adds an optional "privacy" object (absent otherwise, so the canonical form and
the hash of every other spec are unchanged); the on-chain DpSpec must equal it in chain units::

     "privacy": {"accountant": "prv", "delta": 1e-05, "epsilon": 3.0, "max_grad_norm": 1.0,
                 "noise_multiplier": 1.792, "noise_key": {"hash": "<64 hex>", "uri": "<store uri>"}}

Every field is checked by `TaskSpec.validate` (called by the constructor's helpers and by
`decode_spec`); a bad document raises a `SpecError` subclass naming the field.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from workers.hashing import blake2_256, blake2_256_hex, normalize_hash

SPEC_VERSION = 1
MAX_CHECKPOINTS = 64  # the pallet's MaxCheckpoints: an attestation carries at most this many
# How many checkpoints a task should aim at (`checkpoint_every_for`). A validator replays Q of the n
# segments between checkpoints and hashes every checkpoint: its CPU is about Q/n of the training plus a
# cost per checkpoint (the worker pays one too: an evaluation and a store write). The deterrent does not
# depend on n: forging a share f of the segments saves f of the work and is caught with probability
# 1-(1-f)^Q >= f (about Q*f for small f), so it never pays while the slashable stake exceeds the cost of
# the whole training; Q = 2 doubles the margin for small forgeries.
# n = 64 (the pallet's maximum) keeps the replays at ~3% of the training with Q = 2: verification
# <= 10% of the training from about 2,000 digits-sized steps on. For large models, where 64 checkpoints
# weigh on storage and on the validators' downloads, aim lower. See docs/benchmarks.md (issue 6).
DEFAULT_CHECKPOINTS = 64


class SpecError(ValueError):
    """A task spec that cannot be used."""


class SpecDecodeError(SpecError):
    """The bytes are not a JSON object (or not canonical where canonical form is required)."""


class SpecValidationError(SpecError):
    """A field is missing, of the wrong type or out of range."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name


Scalar = int | float | str | bool


@dataclass(frozen=True)
class DatasetRef:
    hash: str  # 64 hex characters: blake2-256 of the data set's bytes in the artifact store
    uri: str   # where to fetch it (an fsspec URL); every fetch is verified against `hash`


@dataclass(frozen=True)
class Evaluation:
    metric: str           # e.g. "accuracy", "r2", "char_accuracy"
    target: float         # the value the result must reach
    mode: str = "max"     # "max": higher is better (value >= target); "min": lower is better

    def met(self, value: float) -> bool:
        return value >= self.target if self.mode == "max" else value <= self.target


@dataclass(frozen=True)
class Validation:
    fraction: float = 0.2  # share of the examples held out, split deterministically with `seed`
    seed: int = 0


@dataclass(frozen=True)
class Limits:
    timeout_s: float = 900.0   # wall-clock bound of the whole training run
    memory_mb: int = 4096      # per training worker: Ray memory resource and an RSS watchdog


DP_ACCOUNTANTS = ("prv", "rdp")  # Opacus's names; "gdp" can underestimate epsilon
MAX_EPSILON = 100.0              # the pallet's MaxEpsilon
MAX_DELTA = 1e-3                 # the pallet's MaxDelta
MAX_NOISE = 1e6                  # Opacus's MAX_SIGMA
DP_GRID = (("delta", MAX_DELTA, 15), ("epsilon", MAX_EPSILON, 6), ("max_grad_norm", MAX_NOISE, 6),
           ("noise_multiplier", MAX_NOISE, 6))
"""Each DP term's upper bound and the decimal places the chain holds it to (a bounty's privacy section and a
federated task's dp object alike)."""


def dp_value_problem(value: Any, top: float, places: int) -> str | None:
    """Why `value` is not a DP term the chain holds exactly (None: it is). runtime_bindings.privacy converts
    through the float's shortest repr: on this grid the decoded chain value is the document's own (the check is
    here, not a conversion: this module stays pure)."""
    if not (_is_number(value) and math.isfinite(value) and 0 < value <= top):
        return f"a number in (0, {top:g}]"
    scaled = Decimal(repr(value)) * 10**places
    if scaled != scaled.to_integral_value():
        return f"a multiple of 1e-{places}, as the chain holds it"
    return None


@dataclass(frozen=True)
class NoiseKeyRef:
    hash: str  # 64 hex: blake2_256(b"paratrain/dp-key/v1" ++ key), the DpSpec's noise_key_hash
    uri: str   # the 32-byte key's content-addressed store URI, next to the data set (same readers)


@dataclass(frozen=True)
class Privacy:
    """DP-SGD terms. Each number must be exactly a chain value (so the run uses what the chain holds)."""

    accountant: str           # "prv" or "rdp"
    delta: float              # in (0, 1e-3], a multiple of 1e-15
    epsilon: float            # the cap: in (0, 100], a multiple of 1e-6
    max_grad_norm: float      # per-sample clipping norm C > 0, a multiple of 1e-6
    noise_multiplier: float   # sigma > 0 (noise std sigma*C), a multiple of 1e-6
    noise_key: NoiseKeyRef

    def to_dict(self) -> dict[str, Any]:
        return {"accountant": self.accountant, "delta": self.delta, "epsilon": self.epsilon,
                "max_grad_norm": self.max_grad_norm, "noise_multiplier": self.noise_multiplier,
                "noise_key": {"hash": self.noise_key.hash, "uri": self.noise_key.uri}}

    def validate(self) -> None:
        from workers.artifacts import store_root_of  # lazy: most specs have no privacy section

        _check(self.accountant in DP_ACCOUNTANTS, "privacy.accountant",
               "'prv' or 'rdp' (Opacus's 'gdp' can underestimate epsilon)")
        for name, top, places in DP_GRID:
            problem = dp_value_problem(getattr(self, name), top, places)
            _check(problem is None, f"privacy.{name}", problem or "")
        key = self.noise_key
        _check(isinstance(key, NoiseKeyRef), "privacy.noise_key", "a {hash, uri} object")
        _check(isinstance(key.hash, str) and len(key.hash) == 64 and all(c in "0123456789abcdef" for c in key.hash),
               "privacy.noise_key.hash", "64 lower-case hex characters")
        _check(isinstance(key.uri, str) and 0 < len(key.uri.encode()) <= 256 and store_root_of(key.uri) is not None,
               "privacy.noise_key.uri", "a content-addressed store URI <root>/blake2b256/<hh>/<hash>, at most "
                                        "256 bytes")

    @classmethod
    def from_dict(cls, doc: Any) -> Privacy:
        fields = {"accountant", "delta", "epsilon", "max_grad_norm", "noise_multiplier", "noise_key"}
        doc = _obj(doc, "privacy", fields, fields)
        key = _obj(doc["noise_key"], "privacy.noise_key", {"hash", "uri"}, {"hash", "uri"})
        return cls(accountant=doc["accountant"], delta=doc["delta"], epsilon=doc["epsilon"],
                   max_grad_norm=doc["max_grad_norm"], noise_multiplier=doc["noise_multiplier"],
                   noise_key=NoiseKeyRef(hash=key["hash"], uri=key["uri"]))


@dataclass(frozen=True)
class TaskSpec:
    recipe: str
    dataset: DatasetRef
    evaluation: Evaluation
    hyperparameters: dict[str, Scalar] = field(default_factory=dict)
    seed: int = 0
    validation: Validation = field(default_factory=Validation)
    checkpoint_every: int = 20
    limits: Limits = field(default_factory=Limits)
    version: int = SPEC_VERSION
    privacy: Privacy | None = None   # a DP-SGD task (docs/dp-sgd.md); None for every other task

    # Encoding ----------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        doc = {
            "checkpoint_every": self.checkpoint_every,
            "dataset": {"hash": self.dataset.hash, "uri": self.dataset.uri},
            "evaluation": {"metric": self.evaluation.metric, "mode": self.evaluation.mode,
                           "target": self.evaluation.target},
            "hyperparameters": dict(self.hyperparameters),
            "limits": {"memory_mb": self.limits.memory_mb, "timeout_s": self.limits.timeout_s},
            "recipe": self.recipe,
            "seed": self.seed,
            "validation": {"fraction": self.validation.fraction, "seed": self.validation.seed},
            "version": self.version,
        }
        if self.privacy is not None:
            doc["privacy"] = self.privacy.to_dict()
        return doc

    def canonical_bytes(self) -> bytes:
        self.validate()
        return canonical_json(self.to_dict())

    def spec_hash(self) -> bytes:
        """blake2-256 of the canonical bytes: the on-chain spec_hash (32 bytes)."""
        return blake2_256(self.canonical_bytes())

    def spec_hash_hex(self) -> str:
        return blake2_256_hex(self.canonical_bytes())

    def with_hyperparameters(self, **overrides: Scalar) -> TaskSpec:
        return replace(self, hyperparameters={**self.hyperparameters, **overrides})

    # Validation --------------------------------------------------------------------------------
    def validate(self) -> TaskSpec:
        _check(self.version == SPEC_VERSION, "version", f"unsupported version {self.version!r}")
        _check(isinstance(self.recipe, str) and 0 < len(self.recipe.encode()) <= 64, "recipe",
               "a non-empty name of at most 64 bytes")
        _check(isinstance(self.dataset, DatasetRef), "dataset", "a {hash, uri} object")
        try:
            _check(normalize_hash(self.dataset.hash) == self.dataset.hash, "dataset.hash",
                   "64 lower-case hex characters")
        except (ValueError, TypeError, AttributeError) as exc:
            if isinstance(exc, SpecError):
                raise
            raise SpecValidationError("dataset.hash", "64 lower-case hex characters") from None
        _check(isinstance(self.dataset.uri, str) and 0 < len(self.dataset.uri.encode()) <= 256, "dataset.uri",
               "a non-empty URI of at most 256 bytes")
        _check(isinstance(self.hyperparameters, dict), "hyperparameters", "an object")
        for key, value in self.hyperparameters.items():
            _check(isinstance(key, str) and key != "", "hyperparameters", "keys are non-empty strings")
            _check(isinstance(value, (int, float, str, bool)), f"hyperparameters.{key}",
                   "a number, string or boolean")
            if isinstance(value, float):
                _check(math.isfinite(value), f"hyperparameters.{key}", "must be finite")
        _check(_is_int(self.seed) and 0 <= self.seed < 2**63, "seed", "an integer in [0, 2^63)")
        ev = self.evaluation
        _check(isinstance(ev, Evaluation), "evaluation", "a {metric, target, mode} object")
        _check(isinstance(ev.metric, str) and 0 < len(ev.metric.encode()) <= 32, "evaluation.metric",
               "a non-empty name of at most 32 bytes")
        _check(_is_number(ev.target) and math.isfinite(ev.target), "evaluation.target", "a finite number")
        _check(ev.mode in ("max", "min"), "evaluation.mode", "'max' or 'min'")
        val = self.validation
        _check(isinstance(val, Validation), "validation", "a {fraction, seed} object")
        _check(_is_number(val.fraction) and 0.0 < val.fraction < 1.0, "validation.fraction",
               "a number strictly between 0 and 1")
        _check(_is_int(val.seed) and 0 <= val.seed < 2**63, "validation.seed", "an integer in [0, 2^63)")
        _check(_is_int(self.checkpoint_every) and self.checkpoint_every >= 1, "checkpoint_every",
               "a positive integer")
        lim = self.limits
        _check(isinstance(lim, Limits), "limits", "a {timeout_s, memory_mb} object")
        _check(_is_number(lim.timeout_s) and 0 < lim.timeout_s <= 7 * 24 * 3600, "limits.timeout_s",
               "positive seconds, at most a week")
        _check(_is_int(lim.memory_mb) and 64 <= lim.memory_mb <= 1 << 20, "limits.memory_mb",
               "an integer number of MiB, 64 or more")
        if self.privacy is not None:
            _check(isinstance(self.privacy, Privacy), "privacy", "a privacy object")
            self.privacy.validate()
        return self

    # Construction -------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, doc: Any) -> TaskSpec:
        _check(isinstance(doc, dict), "spec", "a JSON object")
        known = {"checkpoint_every", "dataset", "evaluation", "hyperparameters", "limits", "privacy", "recipe",
                 "seed", "validation", "version"}
        unknown = sorted(set(doc) - known)
        _check(not unknown, unknown[0] if unknown else "spec", "unknown field")
        for required in ("recipe", "dataset", "evaluation"):
            _check(required in doc, required, "missing")
        ds = _obj(doc["dataset"], "dataset", {"hash", "uri"}, {"hash", "uri"})
        ev = _obj(doc["evaluation"], "evaluation", {"metric", "target", "mode"}, {"metric", "target"})
        val = _obj(doc.get("validation", {}), "validation", {"fraction", "seed"}, set())
        lim = _obj(doc.get("limits", {}), "limits", {"timeout_s", "memory_mb"}, set())
        spec = cls(
            version=doc.get("version", SPEC_VERSION),
            recipe=doc["recipe"],
            dataset=DatasetRef(hash=ds["hash"], uri=ds["uri"]),
            evaluation=Evaluation(metric=ev["metric"], target=ev["target"], mode=ev.get("mode", "max")),
            hyperparameters=doc.get("hyperparameters", {}),
            seed=doc.get("seed", 0),
            validation=Validation(**val),
            checkpoint_every=doc.get("checkpoint_every", 20),
            limits=Limits(**lim),
            privacy=Privacy.from_dict(doc["privacy"]) if "privacy" in doc else None,
        )
        return spec.validate()


def checkpoint_every_for(total_steps: int, checkpoints: int = DEFAULT_CHECKPOINTS) -> int:
    """K (``checkpoint_every``) that gives about `checkpoints` checkpoints over `total_steps` optimizer steps,
    never more than MAX_CHECKPOINTS. The fixed default K (20) suits runs of at most 1,280 steps only: a
    requester who knows the run's length should use this (`workers.engine.total_steps` counts them)."""
    checkpoints = max(1, min(int(checkpoints), MAX_CHECKPOINTS))
    return max(1, math.ceil(int(total_steps) / checkpoints))


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8, no NaN/Infinity."""
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                          allow_nan=False).encode("utf-8")
    except ValueError as exc:
        raise SpecValidationError("spec", f"not canonical JSON: {exc}") from None


def encode_spec(spec: TaskSpec) -> bytes:
    return spec.canonical_bytes()


def decode_spec(data: bytes | str, *, require_canonical: bool = False) -> TaskSpec:
    """Parse and validate a spec document; with `require_canonical`, the bytes must be its canonical form
    (so that their hash is the spec_hash)."""
    raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    try:
        doc = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, json.JSONDecodeError, ValueError) as exc:
        raise SpecDecodeError(f"not a JSON document: {exc}") from None
    spec = TaskSpec.from_dict(doc)
    if require_canonical and spec.canonical_bytes() != raw:
        raise SpecDecodeError("the document is not in canonical form (sorted keys, no whitespace, UTF-8)")
    return spec


def spec_hash(spec_or_bytes: TaskSpec | bytes) -> bytes:
    if isinstance(spec_or_bytes, TaskSpec):
        return spec_or_bytes.spec_hash()
    return blake2_256(bytes(spec_or_bytes))


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def _check(condition: bool, field_name: str, message: str) -> None:
    if not condition:
        raise SpecValidationError(field_name, message)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _obj(value: Any, name: str, allowed: set[str], required: set[str]) -> dict[str, Any]:
    _check(isinstance(value, dict), name, "an object")
    for key in value:
        _check(key in allowed, f"{name}.{key}", "unknown field")
    for key in required:
        _check(key in value, f"{name}.{key}", "missing")
    return value
