"""What a validator verifies about one submitted result, apart from the daemon's event loop.

`ResultChecker.verify(task, attestation, randomness, holdout)` runs every check on the validator's own store
and returns (Verdict, the segments replayed, extra evidence); the validator daemon (workers.validator) only
decides when to call it and what to do with the verdict (vote, challenge, abstain). The checks read the
chain's copy of the task (its spec hash and URI, the metric's direction) and the attestation; nothing here
talks to a chain, so each check runs in a unit test on a local store.

The decisions themselves (a hash matches, a metric is within tolerance, a replay is bitwise equal, which
segments to replay) are the pure functions of workers.verification; this module fetches what they compare:

- the spec document (the requester's: unusable -> Abstain, the validator cannot judge);
- the model and checkpoints, copied from the store the artifact_uri names when this validator trusts it;
- hashes (`verify_hashes`), code and dataset hashes, the trajectory's schedule and its end;
- the claimed metric re-measured on the validation split (`measure`: unusable weights fail the check,
  ModelUnusable), the revealed holdout against the task's target;
- Q segments re-executed from their starting checkpoint (`replay`).
- for a private task (the chain's TaskBounties result carries a DpClaim; `PrivateResult`): the spec document's
  "privacy" section equals the chain's DpSpec in chain units (`privacy_mismatch`), and the claim is the one
  the spec and the data size imply (`dp_claim_check`: workers.privacy.check_claim, epsilon at most 1 % under
  its recomputation). That the run really clipped and noised is the replays' business: the engine reseeds
  the noise and the Poisson sample from the secret noise key at every step, so a segment trained without
  noise or without clipping is not reproduced.

Errors of this machine (disk, memory, a lost Ray node) propagate: the daemon retries, then abstains, and
never turns them into a reject.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from runtime_bindings.generated.types import Attestation
from workers.artifacts import ArtifactError, ArtifactStore, Kind, object_uri, store_root_of
from workers.errors import Abstain, ModelUnusable
from workers.verification import (
    HOLDOUT_TOLERANCE,
    METRIC_TOLERANCE,
    Check,
    Verdict,
    as_hex,
    check_final_model,
    check_trajectory_schedule,
    choose_segments,
    claimed_metrics,
    compare_metric,
    compare_replay,
    compare_target,
    decide,
    document_meta,
    segment_start,
    to_micro,
    verify_hashes,
)

log = logging.getLogger("paratrain.validator")

# torch's default generator and thread count are process-wide: replays and evaluations of validators that
# share a process (threads, tests, the demo) run one at a time, or one replay's seeding would disturb another's
TORCH_LOCK = threading.RLock()


@dataclass(frozen=True)
class PrivateResult:
    """What the chain holds about a private task's result under verification: its DpSpec (BountyPrivacy) and
    the worker's signed claim (BountyClaims; None if the chain has none)."""

    dp_spec: Any   # runtime_bindings.generated.types.DpSpec
    claim: Any     # runtime_bindings.generated.types.DpClaim | None


def chain_dp_spec_values(dp_spec: Any) -> dict[str, Any]:
    """The chain's DpSpec (types.DpSpec) as plain values: the mapping workers.privacy reads."""
    return {"accountant": dp_spec.accountant.name.lower(), "epsilon_cap": int(dp_spec.epsilon_cap),
            "delta": int(dp_spec.delta), "max_grad_norm": int(dp_spec.max_grad_norm),
            "noise_multiplier": int(dp_spec.noise_multiplier), "noise_key_hash": bytes(dp_spec.noise_key_hash).hex()}


def privacy_mismatch(privacy: Any, dp_spec: Any) -> list[str]:
    """Why a spec document's "privacy" section (workers.spec.Privacy, None when absent) and the chain's DpSpec
    (None: a plain task) disagree; empty when they agree (both absent included). The worker refuses such a
    task and a validator rejects its result: a run can follow only one of them, and the budget is spent on
    the chain's terms (workers.privacy.chain_spec_mismatches compares the two)."""
    from workers.privacy import chain_spec_mismatches

    if privacy is None and dp_spec is None:
        return []
    if privacy is None:
        return ["the task is private on chain but its spec document has no privacy section"]
    if dp_spec is None:
        return ["the spec document has a privacy section but the task is not private on chain"]
    return chain_spec_mismatches(privacy, chain_dp_spec_values(dp_spec))


def dp_claim_check(claim: Any, dp_spec: Any, *, train_examples: int, batch_size: int, epochs: int) -> Check:
    """The worker's claim (types.DpClaim, or None) against the chain's DpSpec and the run's shape: the
    mechanism the spec fixes, the q and steps the data size implies, epsilon at most 1 % under Opacus's
    recomputation (workers.privacy.check_claim). Over-claiming is allowed: it only spends more budget."""
    from workers.privacy import DpTerms, PrivacyError, check_claim

    if claim is None:
        return Check("dp_claim", False, {"reason": "the chain holds no DP claim for this private result"})
    values = {"accountant": claim.accountant.name.lower(), **{k: int(getattr(claim, k)) for k in (
        "noise_multiplier", "sample_rate", "steps", "max_grad_norm", "delta", "epsilon")}}
    terms = DpTerms.from_mapping(chain_dp_spec_values(dp_spec))
    try:
        reasons = check_claim(values, terms, train_examples=train_examples, batch_size=batch_size, epochs=epochs)
    except PrivacyError as exc:
        reasons = [f"the claim cannot be accounted for: {exc}"]
    detail: dict[str, Any] = {"claim": values, "train_examples": train_examples, "batch_size": batch_size,
                              "epochs": epochs}
    if reasons:
        detail["reason"] = "; ".join(reasons)
    return Check("dp_claim", not reasons, detail)


class ResultChecker:
    """The checks of one validator: its store (where every object is read and verified by hash) and its
    settings (Q spot checks, the tolerances, the Ray cluster for multi-worker replays)."""

    def __init__(self, store: ArtifactStore, *, spot_checks: int = 2, metric_tolerance: float = METRIC_TOLERANCE,
                 holdout_tolerance: float = HOLDOUT_TOLERANCE, ray_address: str | None = None) -> None:
        self.store = store
        self.spot_checks = spot_checks
        self.metric_tolerance = metric_tolerance
        self.holdout_tolerance = holdout_tolerance
        self.ray_address = ray_address

    def verify(self, task: Any, attestation: Attestation, randomness: str, holdout: Any = None,
               private: PrivateResult | None = None) -> tuple[Verdict, list[int], dict[str, Any]]:
        """All checks of one attestation: (Verdict, the segments replayed, extra evidence). `private`: the
        chain's DpSpec and claim when the task is private (None: a plain task)."""
        from workers.spec import SpecError, decode_spec

        spec_hash, spec_uri = as_hex(task.spec.spec_hash), task.spec.spec_uri.text
        try:
            spec = decode_spec(self.store.fetch(spec_uri, spec_hash, kind=Kind.SPEC), require_canonical=True)
        except (ArtifactError, OSError, ValueError, SpecError) as exc:
            raise Abstain(f"the spec document {spec_uri} is unusable: {exc}") from None
        try:  # the requester's data set, read by the checks below from this store: its fault if unusable
            self.store.fetch_into_store(spec.dataset.uri, spec.dataset.hash, kind=Kind.DATASET)
        except (ArtifactError, ValueError) as exc:
            raise Abstain(f"the data set {spec.dataset.uri} is unusable: {exc}") from None
        checkpoints = [as_hex(h) for h in attestation.checkpoints]
        model_hash = as_hex(attestation.model_hash)
        # the hash checks read every checkpoint and the model once: keep what the trajectory checks need (the
        # checkpoints' metadata, the model's and the last checkpoint's bytes) rather than read them again
        metas: dict[str, dict[str, Any] | None] = {}
        kept: dict[str, bytes] = {}

        def on_read(digest: str, data: bytes) -> None:
            metas[digest] = document_meta(data)
            if digest == model_hash or (checkpoints and digest == checkpoints[-1]):
                kept[digest] = data

        copied = self.fetch_artifacts(attestation, on_read)
        checks: list[Check] = verify_hashes(attestation, self.store, on_read, verified=copied)
        checks.append(self.code_check(spec, attestation))
        dataset = as_hex(attestation.dataset_hash)
        checks.append(Check("dataset_hash", dataset == spec.dataset.hash,
                            {"attested": dataset, "spec": spec.dataset.hash,
                             **({"reason": "the attested data set is not the task's"}
                                if dataset != spec.dataset.hash else {})}))
        # the trajectory's end (byte comparisons, nothing evaluated), once the documents are the named ones and
        # the recipe is one this validator runs (the schedule's total steps come from the recipe's data split)
        if all(c.ok for c in checks):
            checks.append(self.schedule_check(spec, spec_hash, [metas.get(h) for h in checkpoints]))
            checks.append(check_final_model(kept.get(model_hash), kept.get(checkpoints[-1]), spec_hash=spec_hash))
        artifacts_ok = all(c.ok for c in checks)
        metric_name = spec.evaluation.metric
        higher = bool(task.spec.higher_is_better)
        measured_micro, segments = 0, []
        extra: dict[str, Any] = {"spec_hash": spec_hash, "metric": metric_name}
        if artifacts_ok:
            try:
                measured = self.measure(spec, model_hash)
            except ModelUnusable as exc:
                measured = None
                checks.append(Check("metric", False, {"metric": metric_name,
                                                      "claimed": claimed_metrics(attestation).get(metric_name),
                                                      "error": str(exc),
                                                      "reason": f"the model weights cannot be evaluated: {exc}"}))
            if measured is not None:
                measured_micro = to_micro(measured[metric_name]) if metric_name in measured else 0
                extra["measured"] = {k: to_micro(v) for k, v in sorted(measured.items())}
                claimed = claimed_metrics(attestation).get(metric_name)
                checks.append(compare_metric(claimed, measured.get(metric_name, float("nan")),
                                             self.metric_tolerance, higher, name=metric_name)
                              if metric_name in measured else
                              Check("metric", False, {"reason": f"the recipe does not measure {metric_name!r}"}))
                if holdout is not None:
                    checks.append(self.holdout_check(spec, model_hash, holdout, int(task.spec.eval_target), higher))
            segments = choose_segments(randomness, len(checkpoints), self.spot_checks)
            for index in segments:
                checks.append(self.replay(spec, checkpoints, index))
        else:
            checks.append(Check("metric", False, {"reason": "not measured: the artifacts failed their checks"}))
        # last, so that the evidence of a wrong claim still says whether the run itself replays
        checks += self.privacy_checks(spec, private)
        return decide(checks, measured_micro), segments, extra

    def privacy_checks(self, spec: Any, private: PrivateResult | None) -> list[Check]:
        """The spec document's privacy section against the chain's DpSpec; for a private task, the claim
        against the run's shape (the data set read from this validator's store, as the engine reads it)."""
        if private is None:  # a plain task: a DP section in its document binds nobody on chain
            return []
        dp_spec = private.dp_spec
        mismatch = privacy_mismatch(spec.privacy, dp_spec)
        check = Check("privacy_spec", not mismatch, {"reason": "; ".join(mismatch)} if mismatch else {})
        if mismatch:
            return [check]
        from workers.engine import _run_shape  # (train examples, batch size, epochs), as run_loop counts them

        train_examples, batch_size, epochs = _run_shape(spec, self.store)
        return [check, dp_claim_check(private.claim, dp_spec, train_examples=train_examples, batch_size=batch_size,
                                      epochs=epochs)]

    def fetch_artifacts(self, attestation: Attestation, on_read: Callable[[str, bytes], None]) -> set[str]:
        """Copy the model and checkpoints from the store the artifact_uri names into ours, each verified by
        hash once, its bytes shown to `on_read`; returns the digests copied (verify_hashes reads only the
        others). Only a store this validator trusts is read (its URI policy): objects it cannot copy are
        missing, which fails the worker's hash checks."""
        root = store_root_of(attestation.artifact_uri.text)
        if root is None or root == self.store.root:
            return set()
        if not self.store.policy.allows_root(root):
            log.info("artifacts not fetched: the artifact_uri names a store this validator does not trust (%s)",
                     root[:160])
            return set()
        copied = set()
        for digest in dict.fromkeys(as_hex(d) for d in [attestation.model_hash, *attestation.checkpoints]):
            if self.store.exists(digest):
                continue
            try:
                on_read(digest, self.store.fetch(object_uri(root, digest), digest, kind=Kind.ARTIFACT, keep=True))
            except (ArtifactError, OSError, ValueError) as exc:
                log.info("artifact %s not fetched from %s: %s", digest[:16], root, exc)
                continue
            copied.add(digest)
        return copied

    def schedule_check(self, spec: Any, spec_hash: str, metas: list[dict[str, Any] | None]) -> Check:
        """The checkpoints are the spec's whole schedule; the total steps for their world size are the
        engine's own count (`workers.engine.total_steps`, the data set read from this validator's store)."""
        from workers.engine import total_steps

        return check_trajectory_schedule(metas, spec_hash=spec_hash, checkpoint_every=int(spec.checkpoint_every),
                                         total_steps=lambda world_size: total_steps(spec, self.store, world_size))

    @staticmethod
    def code_check(spec: Any, attestation: Attestation) -> Check:
        from workers.recipes import RecipeError, code_hash, get_recipe

        attested = as_hex(attestation.code_hash)
        try:
            expected = code_hash(get_recipe(spec.recipe))
        except RecipeError as exc:
            return Check("code_hash", False, {"attested": attested, "reason": f"recipe not runnable here: {exc}"})
        ok = attested == expected
        return Check("code_hash", ok, {"attested": attested, "expected": expected,
                                       **({} if ok else {"reason": "not the registered recipe's code"})})

    def measure(self, spec: Any, model_hash: str, holdout_data: bytes | None = None) -> dict[str, float]:
        """The recipe's metrics of the stored model: on the validation split, or on holdout data.
        ModelUnusable: the weights cannot be loaded into the task's model (another architecture, not a PTTS1
        document, ...) or evaluated; errors preparing the task's own data and model propagate as they are."""
        with TORCH_LOCK:
            return self._measure(spec, model_hash, holdout_data)

    def _measure(self, spec: Any, model_hash: str, holdout_data: bytes | None) -> dict[str, float]:
        import torch

        from workers import tensorio
        from workers.datasets import decode_dataset
        from workers.recipes import get_recipe
        from workers.recipes.common import Prepared

        recipe = get_recipe(spec.recipe)
        hp = recipe.hyperparameters(spec.hyperparameters)
        torch.set_num_threads(int(hp.get("threads", 1)))
        prepared = recipe.prepare(decode_dataset(self.store.fetch(spec.dataset.uri, spec.dataset.hash,
                                                                  kind=Kind.DATASET)), hp, spec.validation)
        if holdout_data is not None:
            # the holdout goes through the recipe's own preparation; all of its examples are evaluated
            held = recipe.prepare(decode_dataset(holdout_data), hp, spec.validation)
            prepared = Prepared(prepared.train_x, prepared.train_y, torch.cat([held.train_x, held.val_x]),
                                torch.cat([held.train_y, held.val_y]), prepared.info)
        torch.manual_seed(spec.seed)
        model = recipe.build_model(hp, prepared)
        data = self.store.get(model_hash)
        try:  # from here on, what fails is the worker's weights
            weights, _ = tensorio.loads(data)
            model.load_state_dict(weights)
            model.eval()
            with torch.no_grad():
                return {k: float(v) for k, v in recipe.evaluate(model, prepared, hp).items()}
        except MemoryError:
            raise
        except Exception as exc:  # any error of the weights is a failed check, never a crash
            raise ModelUnusable(f"{type(exc).__name__}: {exc}") from exc

    def holdout_check(self, spec: Any, model_hash: str, holdout: Any, target: int, higher: bool) -> Check:
        """The model on the requester's revealed holdout. The holdout is read like any other object (the URI
        policy, the data set limit), and only the bytes the commitment binds: its hash and size. An unusable
        holdout is the requester's fault, so the check is skipped with the reason, never failed."""
        uri = holdout.holdout_uri.text
        try:
            data = self.store.fetch(uri, holdout.holdout_hash, kind=Kind.HOLDOUT, size=int(holdout.holdout_size))
            measured = self.measure(spec, model_hash, holdout_data=data)[spec.evaluation.metric]
        except MemoryError:
            raise  # this machine's: retried, then abstained, never a verdict
        except Exception as exc:  # noqa: BLE001 - the requester's data: judge without it, say why
            # (ModelUnusable included: the same weights were measured on the validation split just before, so
            # an error here is the holdout's)
            log.warning("the revealed holdout %s is unusable: %s", uri, exc)
            return Check("holdout", True, {"uri": uri, "skipped": f"unusable holdout: {exc}"})
        check = compare_target(measured, target, self.holdout_tolerance, higher)
        return Check(check.name, check.ok, {"uri": uri, **check.detail})

    def replay(self, spec: Any, checkpoints: list[str], index: int) -> Check:
        from workers.runner import checkpoint_info, replay_segment

        start = segment_start(checkpoints, index)
        try:
            world_size = int(checkpoint_info(self.store, checkpoints[index])["world_size"])
        except Exception as exc:  # noqa: BLE001 - an unreadable checkpoint is the worker's fault
            return compare_replay(index, start, checkpoints[index], None, error=f"{type(exc).__name__}: {exc}")
        if world_size > 1:  # outside the try: no Ray here is this machine's problem, never the worker's
            from workers.runner import ensure_ray
            ensure_ray(self.ray_address, log_to_driver=False)
        try:
            with TORCH_LOCK:
                replayed = replay_segment(spec, self.store, start, world_size=world_size)
        except (OSError, MemoryError):
            raise  # the machine's (disk, memory, a lost Ray node): retried, then abstained, never a reject
        except Exception as exc:  # noqa: BLE001 - a checkpoint that cannot be replayed fails the check
            return compare_replay(index, start, checkpoints[index], None, error=f"{type(exc).__name__}: {exc}")
        return compare_replay(index, start, checkpoints[index], replayed)

