"""The recipe registry: an allow-list of trusted training programs.

Only registered recipes run by default. A custom recipe (``custom:package.module:ATTRIBUTE``
naming a `Recipe`) is imported only with an explicit opt-in: ``allow_custom=True`` or the
environment variable ``PARATRAIN_ALLOW_CUSTOM_RECIPES=1``; otherwise `RecipeNotAllowedError`.

``code_hash(recipe)`` = blake2-256 over the recipe module's source bytes followed by the source
of `workers/recipes/common.py` (the shared helpers it runs), each length-prefixed (u64 LE).
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import struct

from workers.hashing import blake2_256_hex
from workers.recipes import breast_cancer_logreg, char_lm, diabetes_regression, digits_cnn, digits_mlp
from workers.recipes.common import Prepared, Recipe

CUSTOM_PREFIX = "custom:"
ALLOW_CUSTOM_ENV = "PARATRAIN_ALLOW_CUSTOM_RECIPES"


class RecipeError(ValueError):
    """A recipe that cannot be used."""


class UnknownRecipeError(RecipeError, KeyError):
    """No registered recipe has that name."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown recipe"


class RecipeNotAllowedError(RecipeError):
    """Custom code was asked for without the opt-in."""


REGISTRY: dict[str, Recipe] = {}


def register(recipe: Recipe) -> Recipe:
    if recipe.name in REGISTRY:
        raise RecipeError(f"recipe {recipe.name!r} is already registered")
    REGISTRY[recipe.name] = recipe
    return recipe


for _module in (digits_mlp, digits_cnn, breast_cancer_logreg, diabetes_regression, char_lm):
    register(_module.RECIPE)


def custom_allowed(allow_custom: bool | None = None) -> bool:
    if allow_custom is not None:
        return allow_custom
    return os.environ.get(ALLOW_CUSTOM_ENV, "") in ("1", "true", "yes")


def get_recipe(name: str, *, allow_custom: bool | None = None) -> Recipe:
    if name in REGISTRY:
        return REGISTRY[name]
    if name.startswith(CUSTOM_PREFIX):
        if not custom_allowed(allow_custom):
            raise RecipeNotAllowedError(
                f"{name!r} is custom code: it runs only with allow_custom=True or {ALLOW_CUSTOM_ENV}=1")
        target = name[len(CUSTOM_PREFIX):]
        module_name, _, attribute = target.partition(":")
        try:
            recipe = getattr(importlib.import_module(module_name), attribute or "RECIPE")
        except (ImportError, AttributeError) as exc:
            raise UnknownRecipeError(f"cannot load custom recipe {target!r}: {exc}") from None
        if not isinstance(recipe, Recipe):
            raise RecipeError(f"{target!r} is not a Recipe")
        return recipe
    raise UnknownRecipeError(f"unknown recipe {name!r} (registered: {', '.join(sorted(REGISTRY))})")


def _source(module_name: str) -> bytes:
    spec = importlib.util.find_spec(module_name)
    if spec is None or spec.origin is None:
        raise RecipeError(f"no source for {module_name}")
    with open(spec.origin, "rb") as f:
        return f.read()


def code_hash(recipe: Recipe | str) -> str:
    """blake2-256 (hex) of the recipe's source and the shared helpers' source."""
    if isinstance(recipe, str):
        recipe = get_recipe(recipe, allow_custom=True)
    parts = [_source(recipe.module), _source(Recipe.__module__)]
    return blake2_256_hex(b"".join(struct.pack("<Q", len(p)) + p for p in parts))


__all__ = ["REGISTRY", "Prepared", "Recipe", "RecipeError", "RecipeNotAllowedError", "UnknownRecipeError",
           "code_hash", "custom_allowed", "get_recipe", "register"]
