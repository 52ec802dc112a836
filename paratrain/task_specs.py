"""The one mapping from a task's spec document (workers.spec.TaskSpec) to the on-chain TaskSpec.

The requester's CLI (`paratrain task create`), the demo, the tests and the benchmarks all post tasks through
this mapping, so that the chain's copy of the evaluation (metric, target as a METRIC_SCALE fixed-point
integer, direction) never drifts from the document the worker and validators read. It is public and imports
no devnet because both `paratrain.commands` and the local market harness (`paratrain.local`) use it: a
command must not reach into the harness's private parts.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runtime_bindings import Chain, Keypair
    from runtime_bindings.generated import types as t
    from workers.spec import TaskSpec

# what a digits or char_lm task asks of a worker: one CPU, no GPU, 512 MB
DEFAULT_REQUIREMENTS = (1, 0, 512)


def chain_task_spec(spec: TaskSpec, spec_uri: str, *, spec_hash: str | None = None,
                    requirements: tuple[int, int, int] = DEFAULT_REQUIREMENTS, parent_model: str | None = None,
                    dataset_hash: str | None = None) -> t.TaskSpec:
    """The on-chain TaskSpec of `spec`, whose document is stored at `spec_uri`.

    `spec_hash` (hex, no 0x) defaults to the document's own hash; `dataset_hash` to the spec's data set (tests
    pass another one to post a lie). `requirements` is (min CPUs, min GPUs, min memory MB)."""
    from runtime_bindings.generated import types as t
    from runtime_bindings.values import METRIC_SCALE

    return t.TaskSpec(recipe=spec.recipe, spec_hash="0x" + (spec_hash or spec.spec_hash_hex()), spec_uri=spec_uri,
                      dataset_hash="0x" + (dataset_hash or spec.dataset.hash), eval_metric=spec.evaluation.metric,
                      eval_target=round(spec.evaluation.target * METRIC_SCALE),
                      higher_is_better=spec.evaluation.mode == "max", requirements=t.Requirements(*requirements),
                      parent_model=parent_model)


def post_task(chain: Chain, requester: Keypair, spec: TaskSpec, spec_uri: str, *, bounty: int,
              deadline_in: int = 500, validators_required: int = 1, min_stake: int = 0,
              holdout_commitment: str | None = None, **mapping: Any) -> tuple[int, Any]:
    """create_task for `spec` (see chain_task_spec for `mapping`); (the new task's id, the receipt)."""
    from runtime_bindings.generated.task_bounties import TaskCreatedEvent

    receipt = chain.task_bounties.create_task(requester, chain_task_spec(spec, spec_uri, **mapping), bounty,
                                              min_stake, chain.best_number() + deadline_in, validators_required,
                                              holdout_commitment)
    [created] = receipt.find(TaskCreatedEvent)
    return int(created.task_id), receipt
