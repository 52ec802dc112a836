"""DP-SGD inside `workers.engine.run_loop`: Opacus's per-sample gradients, clipping and noise, with the
Poisson batches and the noise drawn from generators reseeded per step from the secret noise key.

Everything that touches privacy is Opacus's own code, in its ghost-clipping mode (Li et al. 2022; Opacus's
"ghost" grad_sample_mode): `GradSampleModuleFastGradientClipping` computes each example's gradient norm without
materialising the per-sample gradients, `DPLossFastGradientClipping` turns the loss into the per-example losses
reweighted by min(1, max_grad_norm / norm), whose second backward gives the sum of the clipped gradients ("flat"
clipping), `DPOptimizerFastGradientClipping` adds N(0, (noise_multiplier * max_grad_norm)^2) noise from its
`generator` and divides by the expected batch size, and `UniformWithReplacementSampler` draws each step's
Poisson batch (every training example in with probability q). It is the same mechanism as the per-sample hooks,
3 to 4 times cheaper on the recipes' linear layers (benchmarks/dp_training.py).

secure_mode stays off: its CSPRNG cannot be replayed, and the floating-point attack it defends against needs the
seed, which is secret (docs/design/private.md 2.4). The engine reseeds both generators before every step, so no
state is carried across steps and a replay from any checkpoint draws the same batches and the same noise.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from opacus.grad_sample.grad_sample_module_fast_gradient_clipping import GradSampleModuleFastGradientClipping
from opacus.optimizers.optimizer_fast_gradient_clipping import DPOptimizerFastGradientClipping
from opacus.utils.fast_gradient_clipping_utils import DPLossFastGradientClipping
from opacus.utils.uniform_sampler import UniformWithReplacementSampler
from torch import nn

from runtime_bindings.privacy import norm_from_chain, rate_from_chain
from workers.artifacts import ArtifactError, ArtifactStore, Kind
from workers.engine import TrainingError
from workers.privacy.accounting import DpClaim, DpTerms, honest_claim, recompute_epsilon, sample_rate_of, steps_for
from workers.privacy.per_example import PerExampleLoss
from workers.privacy.seeds import KEY_BYTES, noise_key_hash, noise_seed, sample_seed
from workers.spec import NoiseKeyRef, TaskSpec


class NoiseKeyError(TrainingError):
    """The noise key cannot be fetched, or is not the key whose hash the spec (and the chain) holds."""


class EpsilonAboveCapError(TrainingError):
    """The spec's mechanism, run for its steps on this data, spends more than its epsilon cap."""


def fetch_noise_key(store: ArtifactStore, ref: NoiseKeyRef) -> bytes:
    """The 32-byte key at `ref.uri` (a content-addressed URI: the store verifies the bytes against its name),
    checked against the spec's noise_key_hash."""
    digest = ref.uri.rstrip("/").rsplit("/", 1)[-1]
    try:
        key = store.fetch(ref.uri, digest, kind=Kind.ARTIFACT, size=KEY_BYTES)
    except (ArtifactError, ValueError) as exc:
        raise NoiseKeyError(f"cannot fetch the noise key {ref.uri}: {exc}") from None
    if noise_key_hash(key).hex() != ref.hash:
        raise NoiseKeyError(f"the noise key at {ref.uri} does not hash to the spec's noise_key_hash {ref.hash}")
    return key


# the classes the session builds (tests/dp_forgeries.py swaps them for cheating ones)
GradSampleModule = GradSampleModuleFastGradientClipping
DPOptimizer = DPOptimizerFastGradientClipping


@dataclass
class DpSession:
    """The Opacus objects of one DP run and the keyed generators they draw from."""

    module: GradSampleModuleFastGradientClipping
    optimizer: DPOptimizerFastGradientClipping
    loss: DPLossFastGradientClipping   # the recipe's loss, per example, clipped by reweighting
    claim: DpClaim | None              # None in a replay: a segment needs no accounting
    _sampler: UniformWithReplacementSampler
    _sample_generator: torch.Generator
    _noise_generator: torch.Generator
    _key: bytes
    _spec_hash: bytes

    @classmethod
    def start(cls, spec: TaskSpec, store: ArtifactStore, model: nn.Module, optimizer: torch.optim.Optimizer,
              loss: Callable[..., torch.Tensor], *, train_examples: int, batch_size: int, epochs: int,
              device: torch.device, replay: bool) -> DpSession:
        """Wrap `model` and `optimizer` (already restored from a checkpoint) for the spec's mechanism, used
        exactly as decoded from its chain values. Outside a replay the run's claim is computed first, and a
        run that would spend more than the cap is refused before it trains."""
        assert spec.privacy is not None
        terms = DpTerms.from_privacy(spec.privacy)
        claim = None
        if not replay:
            rate_units = sample_rate_of(train_examples, batch_size)
            steps = steps_for(train_examples, batch_size, epochs)
            epsilon = recompute_epsilon(terms, rate_units, steps)
            if epsilon > spec.privacy.epsilon:
                raise EpsilonAboveCapError(
                    f"noise multiplier {spec.privacy.noise_multiplier} for {steps} steps at sample rate "
                    f"{rate_units / 1e9:.6f} spends epsilon {epsilon:.6g} ({terms.accountant}, delta "
                    f"{spec.privacy.delta}), above the cap {spec.privacy.epsilon}")
            claim = honest_claim(terms, train_examples=train_examples, batch_size=batch_size, epochs=epochs)
            if claim.epsilon > terms.epsilon_cap:  # the float was within the cap, its micro-units round above it
                raise EpsilonAboveCapError(f"epsilon {claim.epsilon / 1e6} rounds above the cap {spec.privacy.epsilon}")
        key = fetch_noise_key(store, spec.privacy.noise_key)
        rate = rate_from_chain(sample_rate_of(train_examples, batch_size))
        noise_generator = torch.Generator(device=device)
        max_grad_norm = norm_from_chain(terms.max_grad_norm)
        module = GradSampleModule(model, batch_first=True, loss_reduction="mean", max_grad_norm=max_grad_norm,
                                  use_ghost_clipping=True)
        dp_optimizer = DPOptimizer(optimizer, noise_multiplier=norm_from_chain(terms.noise_multiplier),
                                   max_grad_norm=max_grad_norm,
                                   # Opacus's own expected batch (int(n * q)), rounded: q is a Perbill
                                   expected_batch_size=max(1, round(train_examples * rate)),
                                   loss_reduction="mean", generator=noise_generator, secure_mode=False)
        dp_loss = DPLossFastGradientClipping(module, dp_optimizer, PerExampleLoss(loss), "mean")
        sample_generator = torch.Generator()
        sampler = UniformWithReplacementSampler(num_samples=train_examples, sample_rate=rate,
                                                generator=sample_generator, steps=1)
        return cls(module=module, optimizer=dp_optimizer, loss=dp_loss, claim=claim, _sampler=sampler,
                   _sample_generator=sample_generator, _noise_generator=noise_generator, _key=key,
                   _spec_hash=spec.spec_hash())

    def batch(self, step: int) -> torch.Tensor:
        """Step `step`'s Poisson batch (indices into the training split; it may be empty, a valid step), with
        the noise generator reseeded for the same step."""
        self._noise_generator.manual_seed(noise_seed(self._key, self._spec_hash, step))
        self._sample_generator.manual_seed(sample_seed(self._key, self._spec_hash, step))
        (indices,) = iter(self._sampler)
        return torch.tensor(indices, dtype=torch.long)
