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


# Differentially private tasks ------------------------------------------------------------------------------
class PrivacyTermsError(ValueError):
    """DP terms no run can meet (no noise multiplier reaches the epsilon, or a given one spends more)."""


def dp_privacy(spec: TaskSpec, store: Any, *, epsilon: float, delta: float, max_grad_norm: float,
               noise_multiplier: float | None = None, accountant: str = "prv") -> tuple[Any, float, int, int]:
    """The "privacy" section for `spec` (workers.spec.Privacy) and (sigma, q as a Perbill, steps).

    q = batch_size / training examples and steps are the engine's (workers.privacy.sample_rate_of, steps_for,
    from the data set in `store`); without `noise_multiplier` sigma is the smallest one on the chain's grid
    that keeps the run at or below `epsilon` (workers.privacy.noise_multiplier_for); a given one is taken as
    the chain will hold it and must not spend more than `epsilon`. Every number is put on the chain's grid
    (runtime_bindings.privacy), so the document says exactly what the chain will hold. A fresh 32-byte secret
    noise key is stored in `store`, next to the data set (same store, same readers); the document holds its
    hash and URI. PrivacyTermsError / workers.privacy.PrivacyError / ValueError for terms no run can meet."""
    import secrets

    from runtime_bindings import privacy as units
    from workers.engine import _run_shape  # (train examples, batch size, epochs), as run_loop counts them
    from workers.privacy import epsilon_spent, noise_multiplier_for, sample_rate_of, steps_for
    from workers.spec import NoiseKeyRef, Privacy

    epsilon = units.epsilon_from_chain(units.epsilon_to_chain(epsilon))
    delta = units.delta_from_chain(units.delta_to_chain(delta))
    max_grad_norm = units.norm_from_chain(units.norm_to_chain(max_grad_norm))
    train_examples, batch_size, epochs = _run_shape(spec, store)
    rate, steps = sample_rate_of(train_examples, batch_size), steps_for(train_examples, batch_size, epochs)
    if noise_multiplier is None:
        sigma = noise_multiplier_for(epsilon, delta, units.rate_from_chain(rate), steps, accountant)
    else:
        sigma = units.norm_from_chain(units.norm_to_chain(noise_multiplier))
        spent = epsilon_spent(accountant, sigma, units.rate_from_chain(rate), steps, delta)
        if spent > epsilon:
            raise PrivacyTermsError(f"noise multiplier {sigma:g} spends epsilon {spent:.4f} over the run's {steps} "
                                    f"steps at q = {units.rate_from_chain(rate):.6f}, above the cap {epsilon:g}")
    key = secrets.token_bytes(32)
    key_digest = store.put(key)
    privacy = Privacy(accountant=accountant, delta=delta, epsilon=epsilon, max_grad_norm=max_grad_norm,
                      noise_multiplier=sigma,
                      noise_key=NoiseKeyRef(hash=units.noise_key_hash(key).hex(), uri=store.uri(key_digest)))
    return privacy, sigma, rate, steps


def chain_dp_spec(privacy: Any) -> t.DpSpec:
    """The on-chain DpSpec of a spec document's "privacy" section (create_private_task's `privacy`)."""
    from runtime_bindings.generated import types as t
    from runtime_bindings.values import H256
    from workers.privacy import DpTerms

    terms = DpTerms.from_privacy(privacy)
    return t.DpSpec(accountant=t.Accountant.from_value(terms.accountant.capitalize()), epsilon_cap=terms.epsilon_cap,
                    delta=terms.delta, max_grad_norm=terms.max_grad_norm, noise_multiplier=terms.noise_multiplier,
                    noise_key_hash=H256(bytes.fromhex(privacy.noise_key.hash)))


def budget_shortfall(chain: Chain, dataset_hash: str, epsilon: float, delta: float) -> str | None:
    """Why the data set's PrivacyBudgets budget cannot reserve a task's (epsilon cap, delta), or None when it
    can: checked before a private task is stored and posted, so a refusal is one line and leaves nothing behind
    (the pallet refuses the same with NoBudget / BudgetExceeded / DeltaExceeded)."""
    from runtime_bindings import privacy as units

    budget = chain.privacy_budgets.budgets("0x" + dataset_hash)
    if budget is None:
        return f"data set {dataset_hash} has no privacy budget: its owner sets one with PrivacyBudgets.set_budget"
    left_epsilon = budget.epsilon - budget.reserved_epsilon - budget.spent_epsilon
    left_delta = budget.delta - budget.reserved_delta - budget.spent_delta
    name = f"the privacy budget of data set {dataset_hash[:16]}…"
    if units.epsilon_to_chain(epsilon) > left_epsilon:
        return (f"{name} has epsilon {units.epsilon_from_chain(left_epsilon):g} left (of "
                f"{units.epsilon_from_chain(budget.epsilon):g}): too small for the {epsilon:g} asked")
    if units.delta_to_chain(delta) > left_delta:
        return (f"{name} has delta {units.delta_from_chain(left_delta):g} left (of "
                f"{units.delta_from_chain(budget.delta):g}): too small for the {delta:g} asked")
    return None


def post_private_task(chain: Chain, requester: Keypair, spec: TaskSpec, spec_uri: str, *, bounty: int,
                      deadline_in: int = 500, validators_required: int = 1, min_stake: int = 0,
                      holdout_commitment: str | None = None, **mapping: Any) -> tuple[int, Any]:
    """create_private_task for `spec`, whose "privacy" section becomes the on-chain DpSpec (see
    chain_task_spec for `mapping`); (the new task's id, the receipt)."""
    from runtime_bindings.generated.task_bounties import TaskCreatedEvent

    if spec.privacy is None:
        raise ValueError("a private task's spec needs a privacy section")
    receipt = chain.task_bounties.create_private_task(requester, chain_task_spec(spec, spec_uri, **mapping),
                                                      chain_dp_spec(spec.privacy), bounty, min_stake,
                                                      chain.best_number() + deadline_in, validators_required,
                                                      holdout_commitment)
    [created] = receipt.find(TaskCreatedEvent)
    return int(created.task_id), receipt
