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
    pass another one to post a lie); `parent_model` is 0x-hex. `requirements` is (min CPUs, min GPUs, min memory
    MB). The text fields are the UTF-8 of the document's strings; a hash that is not 32 bytes of hex is a
    ValueError here, before anything is signed."""
    from runtime_bindings.generated import types as t
    from runtime_bindings.values import H256, METRIC_SCALE, Bytes

    return t.TaskSpec(recipe=Bytes(spec.recipe.encode()), spec_hash=H256("0x" + (spec_hash or spec.spec_hash_hex())),
                      spec_uri=Bytes(spec_uri.encode()), dataset_hash=H256("0x" + (dataset_hash or spec.dataset.hash)),
                      eval_metric=Bytes(spec.evaluation.metric.encode()),
                      eval_target=round(spec.evaluation.target * METRIC_SCALE),
                      higher_is_better=spec.evaluation.mode == "max", requirements=t.Requirements(*requirements),
                      parent_model=None if parent_model is None else H256(parent_model))


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
