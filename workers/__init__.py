"""paratrain workers: the training engine (task specs, recipes, artifact store, trajectories, Ray Train).

Public API::

    from workers import (TaskSpec, DatasetRef, Evaluation, Validation, Limits, encode_spec, decode_spec,
                         ArtifactStore, add_dataset, get_recipe, REGISTRY, code_hash,
                         merkle_root, inclusion_proof, verify_inclusion,
                         train, train_local, replay_segment, spot_check, TrainingResult, Progress)

Heavy imports (torch, Ray) happen on first use of the training functions.
"""
from __future__ import annotations

from typing import Any

from workers.artifacts import (ArtifactError, ArtifactIntegrityError, ArtifactNotFoundError, ArtifactStore)
from workers.spec import (DatasetRef, Evaluation, Limits, SpecDecodeError, SpecError, SpecValidationError, TaskSpec,
                          Validation, canonical_json, decode_spec, encode_spec, spec_hash)
from workers.trajectory import inclusion_proof, merkle_root, merkle_root_hex, verify_inclusion

_LAZY = {
    "add_dataset": "workers.datasets", "decode_dataset": "workers.datasets", "DatasetError": "workers.datasets",
    "BUILTIN_DATASETS": "workers.datasets",
    "get_recipe": "workers.recipes", "REGISTRY": "workers.recipes", "code_hash": "workers.recipes",
    "Recipe": "workers.recipes", "RecipeError": "workers.recipes", "UnknownRecipeError": "workers.recipes",
    "RecipeNotAllowedError": "workers.recipes",
    "train": "workers.runner", "train_local": "workers.runner", "replay_segment": "workers.runner",
    "spot_check": "workers.runner", "checkpoint_info": "workers.runner", "ensure_ray": "workers.runner",
    "TrainingResult": "workers.runner", "Progress": "workers.runner",
    "TrainingError": "workers.engine", "TrainingTimeoutError": "workers.engine", "MemoryLimitError": "workers.engine",
    "CheckpointMismatchError": "workers.engine",
    "CrashOnce": "workers.faults",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'workers' has no attribute {name!r}")


__all__ = sorted(["ArtifactError", "ArtifactIntegrityError", "ArtifactNotFoundError", "ArtifactStore", "DatasetRef",
                  "Evaluation", "Limits", "SpecDecodeError", "SpecError", "SpecValidationError", "TaskSpec",
                  "Validation", "canonical_json", "decode_spec", "encode_spec", "spec_hash", "inclusion_proof",
                  "merkle_root", "merkle_root_hex", "verify_inclusion", *_LAZY])
