"""On-chain TaskSpecs that name no document, for load (the document mapping is public: paratrain.task_specs)."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from runtime_bindings.generated import types as t


def synthetic_task_spec(i: int) -> t.TaskSpec:
    """An on-chain TaskSpec whose hashes name no document (the `i`th: a distinct spec hash each): load for
    the index, the scheduler and the orchestrator's claim tests, where no worker ever fetches the spec."""
    from runtime_bindings.generated import types as t
    from runtime_bindings.values import H256, Bytes

    return t.TaskSpec(recipe=Bytes(b"mnist-mlp"), spec_hash=H256(i.to_bytes(32, "big")),
                      spec_uri=Bytes(f"s3://specs/{i}.yaml".encode()), dataset_hash=H256(b"\x22" * 32),
                      eval_metric=Bytes(b"accuracy"), eval_target=900_000, higher_is_better=True,
                      requirements=t.Requirements(2, 1, 8_000), parent_model=None)
