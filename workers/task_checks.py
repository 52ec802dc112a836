"""What the worker checks about a task before it claims it (or resumes it), apart from the daemon's loop.

The spec document and the data set are the requester's: whatever their URIs do (refused by the URI policy,
too large, unreachable, another hash), the task is refused (`TaskRefused`) and never claimed, or released
without a slash when it was. The task itself is the chain's copy (`TaskBounties.Tasks`), read just before:
the claim and the stake are on chain, so the spec hash, dataset hash and recipe the work is bound to, the
status (Open, or claimed by this worker) and the blocks left before the deadline are the chain's. The
orchestrator's TaskView from the assignment only says where the spec document lies (its ``spec_uri``); a
view whose hashes or recipe differ from the chain's is logged and not used for anything else.

Nothing here talks to a chain or an orchestrator: the checks run in unit tests on a local store.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from runtime_bindings.generated.types import TaskStatus
from workers.artifacts import ArtifactError, ArtifactIntegrityError, ArtifactStore, Kind
from workers.errors import TaskRefused

log = logging.getLogger("paratrain.worker")


@dataclass(frozen=True)
class ClaimPolicy:
    """The operator's settings the checks apply (from DaemonConfig)."""

    allow_custom_code: bool = False
    min_blocks_to_claim: int = 6      # do not claim a task with fewer blocks before its deadline
    deadline_margin_blocks: int = 3   # ... nor one the deadline guard would release at once


def claimed_by(status: TaskStatus | None, account: str) -> bool:
    """The chain's status says `account` holds the claim."""
    return isinstance(status, TaskStatus.Claimed) and status.worker == account


def check_task(task: Any, *, view: Any, store: ArtifactStore, account: str, best_number: Callable[[], int],
               policy: ClaimPolicy) -> Any:
    """The task's TaskSpec, its spec document fetched and checked against the chain's copy `task`; the
    status and the deadline allow this worker to (go on) work(ing) on it. TaskRefused says why not."""
    from workers.recipes import RecipeError, get_recipe
    from workers.spec import SpecError, decode_spec

    spec_meta = task.spec
    spec_hash, spec_uri = spec_meta.spec_hash.hex(), spec_meta.spec_uri.text
    dataset_hash, recipe = spec_meta.dataset_hash.hex(), spec_meta.recipe.text
    if view is not None:
        spec_uri = view.spec_uri or spec_uri
        if (bytes(view.spec_hash).hex(), bytes(view.dataset_hash).hex(), view.recipe) != \
                (spec_hash, dataset_hash, recipe):
            log.warning("task %s: the orchestrator's view of the task differs from the chain's: using the chain's "
                        "hashes and recipe", getattr(view, "task_id", "?"))
    try:
        raw = store.fetch(spec_uri, spec_hash, kind=Kind.SPEC)
    except ArtifactIntegrityError:
        raise TaskRefused(f"the spec document at {spec_uri} does not match the on-chain spec_hash "
                          f"{spec_hash}") from None
    except (ArtifactError, OSError, ValueError, MemoryError) as exc:
        raise TaskRefused(f"cannot fetch the spec document: {exc}") from None
    try:
        spec = decode_spec(raw, require_canonical=True)
    except SpecError as exc:
        raise TaskRefused(f"the spec document is invalid: {exc}") from None
    if spec.recipe != recipe:
        raise TaskRefused(f"the spec's recipe {spec.recipe!r} differs from the on-chain recipe {recipe!r}")
    if spec.dataset.hash != dataset_hash:
        raise TaskRefused(f"dataset hash mismatch: the spec names {spec.dataset.hash}, the chain {dataset_hash}")
    try:
        get_recipe(spec.recipe, allow_custom=policy.allow_custom_code)
    except RecipeError as exc:
        hint = "" if policy.allow_custom_code else " (custom code runs only with --allow-custom-code)"
        raise TaskRefused(f"{exc}{hint}") from None
    if task.status == TaskStatus.Open:
        left = task.deadline - best_number()
        if left < max(policy.min_blocks_to_claim, policy.deadline_margin_blocks + 1):
            raise TaskRefused(f"only {left} blocks are left before its deadline (block {task.deadline}): "
                              f"too few to train and submit")
    elif not claimed_by(task.status, account):
        raise TaskRefused(f"the task is {task.status.name} on chain")
    return spec


ASSET_SCHEME = "paratrain-asset://"
"""A data set served by its owner to signed requests (`paratrain dataset serve`, workers/asset_store.py):
``paratrain-asset://HOST:PORT/0x<hash>``, how a ComputeOnly data set reaches its designated workers."""


def fetch_dataset(store: ArtifactStore, spec: Any, signer: Any = None) -> None:
    """The task's data set into this store, where the engine reads it by hash (verified again there). A
    paratrain-asset:// data set is fetched with a request signed by `signer` (the worker's key), which the
    owner's server serves only to the accounts the chain's access rule admits."""
    if spec.dataset.uri.startswith(ASSET_SCHEME):
        _fetch_signed(store, spec, signer)
        return
    try:
        store.get(store.fetch_into_store(spec.dataset.uri, spec.dataset.hash, kind=Kind.DATASET))
    except ArtifactIntegrityError:
        raise TaskRefused(f"dataset hash mismatch: the data at {spec.dataset.uri} is not the {spec.dataset.hash} "
                          f"the task requires") from None
    except (ArtifactError, OSError, ValueError, MemoryError) as exc:
        raise TaskRefused(f"cannot fetch the data set: {exc}") from None


def _fetch_signed(store: ArtifactStore, spec: Any, signer: Any) -> None:
    import grpc

    from workers.asset_store import fetch_dataset as fetch_signed

    if store.exists(spec.dataset.hash):
        return
    target = spec.dataset.uri[len(ASSET_SCHEME):].split("/", 1)[0]
    if signer is None or not target:
        raise TaskRefused(f"the data set at {spec.dataset.uri} is fetched only with a signed request")
    try:
        data = fetch_signed(target, spec.dataset.hash, signer, max_bytes=store.limits.of(Kind.DATASET))
    except grpc.RpcError as exc:
        raise TaskRefused(f"the data owner's server at {target} refused this worker: {exc.code().name}: "
                          f"{exc.details()}") from None
    except ValueError as exc:
        raise TaskRefused(f"cannot fetch the data set from {target}: {exc}") from None
    store.put(data)
