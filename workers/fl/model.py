"""The task's model as numpy arrays: built from the spec, evaluated on examples, trained briefly on them.

What a federated round moves is arrays (Flower's, named like the recipe model's state dict); what a
requester commits and a validator measures is the recipe's model holding them. This module is the bridge for
the parties that are not clients: the initial model whose hash the task commits (`initial_model`), the
validator's measurement on the revealed holdout (`evaluate`) and the validator's reference update, FLTrust's
"root" update (`train`). Pure torch and numpy, no global RNG reads (the batch order has its own generator;
initial weights are built under a forked RNG), so validators in threads of one process do not disturb each
other.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from workers.datasets import Dataset, DatasetError, decode_dataset, package
from workers.fl.arrays import Arrays
from workers.fl.spec import FlSpec
from workers.recipes import RecipeError, get_recipe
from workers.recipes.common import Prepared, Recipe
from workers.spec import Validation


class ModelError(ValueError):
    """Arrays that are not the task's model, or examples the recipe cannot read."""


@dataclass(frozen=True)
class Examples:
    """Arrays data (X, y) and the model width it implies (`classes`: the whole set's, from the split's meta)."""

    x: np.ndarray
    y: np.ndarray
    classes: int | None = None

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def subset(self, rows: np.ndarray) -> Examples:
        return Examples(self.x[rows], self.y[rows], self.classes)


def read_examples(data: bytes) -> Examples:
    """The X and y of a packaged arrays data set (a client shard or the holdout, PTTS1)."""
    try:
        dataset = decode_dataset(data)
    except (DatasetError, ValueError, KeyError) as exc:
        raise ModelError(f"not an arrays data set: {exc}") from None
    if "X" not in dataset.arrays or "y" not in dataset.arrays or len(dataset.arrays["X"]) != len(dataset.arrays["y"]):
        raise ModelError("the data set has no X and y of the same length")
    classes = dataset.meta.get("classes")
    return Examples(dataset.arrays["X"].numpy(), dataset.arrays["y"].numpy(),
                    int(classes) if isinstance(classes, int) and classes > 0 else None)


def _recipe(spec: FlSpec) -> tuple[Recipe, dict[str, Any]]:
    try:
        recipe = get_recipe(spec.recipe)
    except RecipeError as exc:
        raise ModelError(str(exc)) from None
    hp = recipe.hyperparameters(spec.recipe_hyperparameters)
    # one thread unless the spec says otherwise, as workers.engine: small models on a shared machine run many
    # times faster, and the results do not depend on the machine's core count
    torch.set_num_threads(int(hp.get("threads", 1)))
    return recipe, hp


def _prepare(recipe: Recipe, hp: dict[str, Any], examples: Examples) -> tuple[Prepared, torch.Tensor, torch.Tensor]:
    dataset = Dataset(arrays={"X": torch.from_numpy(np.array(examples.x)), "y": torch.from_numpy(np.array(examples.y))})
    prepared = recipe.prepare(dataset, hp, Validation(fraction=0.0, seed=0))
    if examples.classes is not None and "classes" in prepared.info:
        prepared.info["classes"] = examples.classes  # a shard may lack the top class: the model's width is the set's
    return prepared, torch.cat([prepared.train_x, prepared.val_x]), torch.cat([prepared.train_y, prepared.val_y])


def to_arrays(model: torch.nn.Module) -> Arrays:
    return {name: value.detach().cpu().numpy().copy() for name, value in model.state_dict().items()}


def _model(recipe: Recipe, hp: dict[str, Any], prepared: Prepared, arrays: Mapping[str, np.ndarray]) -> torch.nn.Module:
    with torch.random.fork_rng(devices=[]):
        model = recipe.build_model(hp, prepared)
    expected = model.state_dict()
    if set(expected) != set(arrays):
        raise ModelError(f"the arrays {sorted(arrays)[:4]} are not the recipe model's {sorted(expected)[:4]}")
    for name, value in expected.items():
        if tuple(arrays[name].shape) != tuple(value.shape):
            raise ModelError(f"array {name!r} has shape {list(arrays[name].shape)}, the model's is {list(value.shape)}")
    model.load_state_dict({name: torch.from_numpy(np.array(arrays[name])).to(expected[name].dtype)
                           for name in expected}, strict=True)
    return model


def initial_model(spec: FlSpec) -> Arrays:
    """The model a task starts from: the recipe's model built after torch.manual_seed(initial_model_seed), sized
    by the recipe's built-in data set (sklearn's bundled copy: no download, no client data)."""
    recipe, hp = _recipe(spec)
    try:
        examples = read_examples(package(recipe.dataset))
    except DatasetError as exc:
        raise ModelError(f"the recipe's data set {recipe.dataset!r}: {exc}") from None
    prepared, _, _ = _prepare(recipe, hp, examples)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.initial_model_seed)
        model = recipe.build_model(hp, prepared)
    return to_arrays(model)


def evaluate(spec: FlSpec, arrays: Mapping[str, np.ndarray], examples: Examples) -> dict[str, float]:
    """The recipe's metrics of the model holding `arrays`, on all of `examples`."""
    recipe, hp = _recipe(spec)
    prepared, x, y = _prepare(recipe, hp, examples)
    model = _model(recipe, hp, prepared, arrays)
    model.eval()
    measured = Prepared(prepared.train_x, prepared.train_y, x, y, prepared.info)
    with torch.no_grad():
        return {k: float(v) for k, v in recipe.evaluate(model, measured, hp).items()}


def train(spec: FlSpec, base: Mapping[str, np.ndarray], examples: Examples, seed: int) -> Arrays:
    """`base` trained on `examples` as the spec asks of a client (local_epochs of the recipe's optimizer over
    shuffled batches of batch_size), the batch order drawn from `seed`; arrays in the base's dtypes."""
    recipe, hp = _recipe(spec)
    prepared, x, y = _prepare(recipe, hp, examples)
    model = _model(recipe, hp, prepared, base)
    optimizer = recipe.optimizer(model.parameters(), hp)
    generator = torch.Generator().manual_seed(seed)
    batch = int(spec.hyperparameters["batch_size"])
    model.train()
    for _ in range(int(spec.hyperparameters["local_epochs"])):
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), batch):
            idx = order[start:start + batch]
            optimizer.zero_grad()
            recipe.loss(model(x[idx]), y[idx]).backward()
            optimizer.step()
    trained = to_arrays(model)
    return {name: trained[name].astype(np.asarray(base[name]).dtype, copy=False) for name in base}


def train_private(spec: FlSpec, base: Mapping[str, np.ndarray], examples: Examples, *, sample_seed: int,
                  noise_seed: int, sample_rate: float, steps: int) -> Arrays:
    """`base` trained with DP-SGD on `examples` under the spec's ``dp`` terms (Opacus's ghost clipping: per-example
    gradients clipped to max_grad_norm, Gaussian noise of std noise_multiplier * max_grad_norm, `steps` Poisson batches
    of rate `sample_rate`), the batches drawn from `sample_seed` and the noise from `noise_seed`. The caller
    chooses the rate and the steps, as its DP claim states them, so the accounting is of exactly this run. An
    empty Poisson batch is skipped: it would release nothing but noise."""
    from opacus.grad_sample.grad_sample_module_fast_gradient_clipping import GradSampleModuleFastGradientClipping
    from opacus.optimizers.optimizer_fast_gradient_clipping import DPOptimizerFastGradientClipping
    from opacus.utils.fast_gradient_clipping_utils import DPLossFastGradientClipping
    from opacus.utils.uniform_sampler import UniformWithReplacementSampler

    from workers.privacy.per_example import PerExampleLoss

    if spec.dp is None:
        raise ModelError("the task has no dp terms")
    recipe, hp = _recipe(spec)
    prepared, x, y = _prepare(recipe, hp, examples)
    model = _model(recipe, hp, prepared, base)
    module = GradSampleModuleFastGradientClipping(model, batch_first=True, loss_reduction="mean",
                                                  max_grad_norm=spec.dp.max_grad_norm, use_ghost_clipping=True)
    optimizer = DPOptimizerFastGradientClipping(
        recipe.optimizer(module.parameters(), hp), noise_multiplier=spec.dp.noise_multiplier,
        max_grad_norm=spec.dp.max_grad_norm, expected_batch_size=max(1, round(len(x) * sample_rate)),
        loss_reduction="mean", generator=torch.Generator().manual_seed(noise_seed), secure_mode=False)
    loss = DPLossFastGradientClipping(module, optimizer, PerExampleLoss(recipe.loss), "mean")
    sampler = UniformWithReplacementSampler(num_samples=len(x), sample_rate=sample_rate,
                                            generator=torch.Generator().manual_seed(sample_seed), steps=steps)
    module.train()
    for indices in sampler:
        if len(indices) == 0:
            continue
        idx = torch.as_tensor(indices, dtype=torch.long)
        optimizer.zero_grad(set_to_none=True)
        loss(module(x[idx]), y[idx]).backward()
        optimizer.step()
    trained = to_arrays(model)
    return {name: trained[name].astype(np.asarray(base[name]).dtype, copy=False) for name in base}
