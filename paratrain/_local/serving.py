"""An accepted model to serve, made on a devnet the way the market makes one, without Ray: the requester posts
a digits_mlp task, a trainer claims it, trains the recipe's model here for a few hundred steps and submits the
signed attestation, and a validator accepts it, so TaskBounties writes the Models record that ModelServices and
`paratrain serve` require. For the paid-inference tests, benchmark and demo; the validator's checks are the
market's business (tested elsewhere), not re-run here."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

UNIT = 10**12


@dataclass(frozen=True)
class AcceptedModel:
    model_hash: str          # 0x-hex
    task_id: int
    module: Any              # the trained torch module, to compare served predictions with


def train_digits_mlp(store: Any, spec: Any, steps: int = 300) -> tuple[bytes, Any]:
    """(PTTS1 weights, the module) of the spec's recipe trained for `steps` Adam steps on its training split."""
    import torch

    from workers import tensorio
    from workers.datasets import decode_dataset
    from workers.recipes import get_recipe

    recipe = get_recipe(spec.recipe)
    hp = recipe.hyperparameters(spec.hyperparameters)
    prepared = recipe.prepare(decode_dataset(store.get(spec.dataset.hash)), hp, spec.validation)
    torch.manual_seed(spec.seed)
    module = recipe.build_model(hp, prepared)
    optimizer = torch.optim.Adam(module.parameters(), lr=0.003)
    examples = len(prepared.train_x)
    for step in range(steps):
        start = (step * 64) % max(examples - 64, 1)
        loss = torch.nn.functional.cross_entropy(module(prepared.train_x[start:start + 64]),
                                                 prepared.train_y[start:start + 64])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    module.eval()
    return tensorio.dumps(module.state_dict()), module


def accepted_model(chain: Any, store: Any, requester: Any, trainer: Any, validator: Any) -> AcceptedModel:
    """Register `trainer` and `validator`, post, train, attest and accept a digits_mlp whose data set, spec and
    weights are in `store` (the requester's, who owns the model)."""
    from paratrain._local.market import capabilities
    from paratrain.task_specs import post_task
    from runtime_bindings import AttestationCodec
    from runtime_bindings.generated import types as t
    from runtime_bindings.values import H256, Bytes
    from workers.datasets import add_dataset
    from workers.spec import DatasetRef, Evaluation, Limits, TaskSpec

    digest, uri = add_dataset("digits", store)
    spec = TaskSpec(recipe="digits_mlp", dataset=DatasetRef(digest, uri), evaluation=Evaluation("accuracy", 0.8),
                    hyperparameters={"epochs": 1}, seed=5, checkpoint_every=40,
                    limits=Limits(timeout_s=600, memory_mb=1024))
    spec_hash = store.put(spec.canonical_bytes())
    chain.workers.register(trainer, "Trainer", chain.constant("Workers", "MinTrainerStake"), capabilities(8))
    chain.workers.register(validator, "Validator", chain.constant("Workers", "MinValidatorStake"), capabilities(8))
    task_id, _ = post_task(chain, requester, spec, store.uri(spec_hash), bounty=10 * UNIT)
    chain.task_bounties.claim_task(trainer, task_id)
    weights, module = train_digits_mlp(store, spec)
    model_hash = store.put(weights)
    attestation = t.Attestation(
        task_id=task_id, worker=trainer.ss58_address, model_hash=H256.from_value("0x" + model_hash),
        artifact_uri=Bytes(store.uri(model_hash).encode()), metrics=[(Bytes(b"accuracy"), 900_000)],
        trajectory_root=H256(bytes(32)), checkpoints=[], code_hash=H256(bytes(32)),
        dataset_hash=H256.from_value("0x" + digest), started_ms=1, finished_ms=2)
    chain.task_bounties.submit_result(trainer, task_id, attestation,
                                      AttestationCodec.from_chain(chain).multi_signature(attestation, trainer))
    chain.task_bounties.submit_verdict(validator, task_id, t.Verdict(accept=True, measured_metric=900_000,
                                                                     evidence_hash=H256(bytes(32))))
    return AcceptedModel("0x" + model_hash, task_id, module)


__all__ = ["AcceptedModel", "accepted_model", "train_digits_mlp"]
