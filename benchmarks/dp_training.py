#!/usr/bin/env python3
"""DP-SGD against non-private training on the same recipe (digits_mlp on scikit-learn's digits), side by side.

Two questions (issue 14), both answered in one run on the same cores:

1. **Cost.** Time per epoch of paratrain's engine (``workers.runner.train_local``: the loop a worker runs, with
   per-step reseeding and the checkpoints) with and without a "privacy" section, at the same hyperparameters,
   in alternating pairs; the goal is a DP/plain ratio of at most 1.6x. The engine uses Opacus's ghost clipping
   (`GradSampleModuleFastGradientClipping`); Opacus's per-sample gradient modes are timed beside it in a bare loop
   (``PrivacyEngine.make_private(grad_sample_mode=...)`` against the same bare loop without DP), so that the
   choice is measured rather than assumed.
2. **Utility.** Validation accuracy (360 held-out digits) of the engine at epsilon 1, 3, 8 and infinity with
   delta 1e-5 and the PRV accountant: sigma from ``workers.privacy.noise_multiplier_for`` for the run's q and
   steps, epsilon as the run's card claims it. The goal is at least 90 % at epsilon <= 3.

It prints a table, writes ``benchmarks/results/dp_training.json`` and a PNG of accuracy by epsilon.
``--quick`` is a smoke run (two epochs, one pair, two modes, one noise key) for the tests.

Usage (from the repository root)::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/dp_training.py            # full run, a few minutes
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/dp_training.py --quick    # smoke run, ~20 s
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import statistics
import sys
import tempfile
import time
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import torch  # noqa: E402
from torch import nn  # noqa: E402

from workers import ArtifactStore, DatasetRef, Evaluation, TaskSpec, add_dataset  # noqa: E402
from workers.datasets import decode_dataset  # noqa: E402
from workers.privacy import noise_key_hash, noise_multiplier_for, sample_rate_of, steps_for  # noqa: E402
from workers.recipes import get_recipe  # noqa: E402
from workers.runner import train_local  # noqa: E402
from workers.spec import NoiseKeyRef, Privacy, Validation  # noqa: E402

RECIPE = "digits_mlp"
DELTA = 1e-5
ACCOUNTANT = "prv"
RATIO_GOAL = 1.6
ACCURACY_GOAL = 0.90
# The benchmark's recipe hyperparameters for utility, tuned on the validation split at epsilon 3 (lr 0.003 to
# 0.03, batch 64/128/256, epochs 15/30/40, C 1/3; mean of 3 noise keys: lr 0.005 B 64 91.7 %, lr 0.01 B 128
# 92.3 %, lr 0.01 B 256 92.1 %, lr 0.02 B 256 89.7 %): a large batch (q = 0.18) at Adam's lr 0.01, the cheapest.
UTILITY_HP: dict[str, Any] = {"epochs": 30, "batch_size": 256, "lr": 0.01}
MAX_GRAD_NORM = 1.0
MODES = ("hooks", "functorch", "ew", "ghost")
ENGINE_MODE = "ghost"   # what workers/privacy/training.py runs
KEYS = 3  # noise keys the utility figures are averaged over


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Bench:
    """A store holding digits and a noise key, and the specs the benchmark trains."""

    def __init__(self, root: Path) -> None:
        self.store = ArtifactStore(root)
        digest, uri = add_dataset("digits", self.store)
        # a fixed URI (the store serves the data by its hash): the spec hash, and with it every seed, is the
        # same in every run of the benchmark
        self.dataset = DatasetRef(digest, "file:///datasets/digits")
        # fixed keys (a benchmark's noise need not be secret) so that the figures reproduce; utility is
        # averaged over several, as the noise of one key moves accuracy by a point or two
        keys = [hashlib.blake2b(f"dp-bench/{i}".encode(), digest_size=32).digest() for i in range(KEYS)]
        self.key_refs = [NoiseKeyRef(hash=noise_key_hash(k).hex(), uri=self.store.uri(self.store.put(k)))
                         for k in keys]
        recipe = get_recipe(RECIPE)
        data = self.store.fetch(uri, digest)
        self.prepared = recipe.prepare(decode_dataset(data), recipe.hyperparameters({}), Validation())
        self.n_train = len(self.prepared.train_x)

    def spec(self, hp: dict[str, Any], epsilon: float | None, key: int = 0) -> tuple[TaskSpec, float | None]:
        """The plain spec (epsilon None) or the DP one with sigma for epsilon at this run's q and steps."""
        steps = steps_for(self.n_train, int(hp["batch_size"]), int(hp["epochs"]))
        spec = TaskSpec(recipe=RECIPE, dataset=self.dataset, evaluation=Evaluation("accuracy", 0.5),
                        hyperparameters=dict(hp), seed=0, checkpoint_every=steps)  # one checkpoint: the end
        if epsilon is None:
            return spec, None
        rate = sample_rate_of(self.n_train, int(hp["batch_size"])) / 1e9
        sigma = noise_multiplier_for(epsilon, DELTA, rate, steps, ACCOUNTANT)
        privacy = Privacy(accountant=ACCOUNTANT, delta=DELTA, epsilon=float(epsilon), max_grad_norm=MAX_GRAD_NORM,
                          noise_multiplier=sigma, noise_key=self.key_refs[key])
        return replace(spec, privacy=privacy), sigma

    def train(self, spec: TaskSpec) -> tuple[float, dict[str, Any]]:
        started = time.perf_counter()
        result = train_local(spec, self.store)
        wall = time.perf_counter() - started
        return wall, json.loads(self.store.get(result.card_hash))


def engine_cost(bench: Bench, batches: list[int], epochs: int, repeat: int) -> list[dict[str, Any]]:
    """Alternating plain/DP engine runs at each batch size: seconds per epoch and the median pair ratio."""
    rows = []
    for batch in batches:
        hp = {**UTILITY_HP, "epochs": epochs, "batch_size": batch}
        plain, _ = bench.spec(hp, None)
        private, sigma = bench.spec(hp, 3.0)
        bench.train(plain), bench.train(private)  # untimed: imports, the accountant's cache, page cache
        pairs = []
        for _ in range(repeat):
            plain_s = bench.train(plain)[0] / epochs
            dp_s = bench.train(private)[0] / epochs
            pairs.append((plain_s, dp_s))
        rows.append({"where": "engine", "mode": ENGINE_MODE, "batch_size": batch, "epochs": epochs, "sigma": sigma,
                     "plain_s_per_epoch": statistics.median(p for p, _ in pairs),
                     "dp_s_per_epoch": statistics.median(d for _, d in pairs),
                     "ratio": statistics.median(d / p for p, d in pairs), "pairs": pairs})
        log(f"engine batch {batch}: ratio {rows[-1]['ratio']:.2f}x")
    return rows


def _bare_epochs(bench: Bench, batch: int, epochs: int, mode: str | None) -> list[float]:
    """Seconds per epoch of a bare PyTorch loop on the recipe's model and data, plain (mode None: shuffled
    batches) or through Opacus's make_private in `mode` (Poisson batches, sigma 1, C 1)."""
    from opacus import PrivacyEngine
    from torch.utils.data import DataLoader, TensorDataset

    recipe = get_recipe(RECIPE)
    hp = recipe.hyperparameters({**UTILITY_HP, "batch_size": batch})
    torch.manual_seed(0)
    model = recipe.build_model(hp, bench.prepared)
    optimizer = recipe.optimizer(model.parameters(), hp)
    loader = DataLoader(TensorDataset(bench.prepared.train_x, bench.prepared.train_y), batch_size=batch,
                        shuffle=True, generator=torch.Generator().manual_seed(0))
    criterion = nn.CrossEntropyLoss()
    if mode is not None:
        made = PrivacyEngine(accountant=ACCOUNTANT).make_private(
            module=model, optimizer=optimizer, data_loader=loader, noise_multiplier=1.0, max_grad_norm=1.0,
            criterion=criterion, grad_sample_mode=mode, noise_generator=torch.Generator().manual_seed(1))
        if mode == "ghost":
            model, optimizer, criterion, loader = made
        else:
            model, optimizer, loader = made
    times = []
    for _ in range(epochs):
        started = time.perf_counter()
        for x, y in loader:
            optimizer.zero_grad(set_to_none=True)
            loss = criterion(model(x), y)
            loss.backward()
            optimizer.step()
        times.append(time.perf_counter() - started)
    return times


def mode_cost(bench: Bench, batches: list[int], epochs: int, modes: list[str]) -> list[dict[str, Any]]:
    rows = []
    for batch in batches:
        for mode in modes:
            try:
                plain = _bare_epochs(bench, batch, epochs, None)[1:]  # the first epoch warms up
                dp = _bare_epochs(bench, batch, epochs, mode)[1:]
            except Exception as exc:  # noqa: BLE001 - a mode this torch/model cannot run is a result too
                rows.append({"where": "bare", "mode": mode, "batch_size": batch, "error": f"{type(exc).__name__}: "
                                                                                           f"{str(exc)[:120]}"})
                log(f"bare {mode} batch {batch}: {rows[-1]['error']}")
                continue
            p, d = statistics.median(plain), statistics.median(dp)
            rows.append({"where": "bare", "mode": mode, "batch_size": batch, "epochs": epochs - 1,
                         "plain_s_per_epoch": p, "dp_s_per_epoch": d, "ratio": d / p})
            log(f"bare {mode} batch {batch}: ratio {d / p:.2f}x")
    return rows


def utility(bench: Bench, epsilons: list[float], epochs: int, keys: int) -> list[dict[str, Any]]:
    """Accuracy at each epsilon: the mean over `keys` noise keys (the plain run has no noise: one run)."""
    rows = []
    hp = {**UTILITY_HP, "epochs": epochs}
    for epsilon in [*epsilons, math.inf]:
        runs = []
        for key in range(1 if math.isinf(epsilon) else keys):
            spec, sigma = bench.spec(hp, None if math.isinf(epsilon) else epsilon, key)
            wall, card = bench.train(spec)
            runs.append((card["metrics"]["accuracy"], wall, card))
        accuracies = [a for a, _, _ in runs]
        card = runs[0][2]
        rows.append({"epsilon_target": epsilon, "epsilon_claimed": card.get("privacy", {}).get("epsilon", math.inf),
                     "sigma": sigma, "accuracy": statistics.mean(accuracies), "accuracy_min": min(accuracies),
                     "accuracy_max": max(accuracies), "accuracies": accuracies,
                     "wall_s": statistics.median(w for _, w, _ in runs), "steps": card["steps"],
                     "sample_rate": card.get("privacy", {}).get("sample_rate")})
        log(f"epsilon {epsilon}: accuracy {rows[-1]['accuracy']:.4f} (min {min(accuracies):.4f})")
    return rows


def _finite(value: Any) -> Any:
    """JSON has no infinity: write it as the string "inf"."""
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    finite = [r for r in rows if not math.isinf(r["epsilon_target"])]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot([r["epsilon_target"] for r in finite], [100 * r["accuracy"] for r in finite], "o-", label="DP-SGD (PRV)")
    plain = next(r for r in rows if math.isinf(r["epsilon_target"]))
    ax.axhline(100 * plain["accuracy"], color="grey", linestyle="--", label="non-private")
    ax.axhline(100 * ACCURACY_GOAL, color="red", linestyle=":", label="goal at epsilon <= 3")
    ax.set_xscale("log")
    ax.set_xlabel("epsilon (delta 1e-5)")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_title(f"{RECIPE}: accuracy by epsilon")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def print_table(results: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    cost = Table(title=f"DP-SGD cost, seconds per epoch (goal <= {RATIO_GOAL}x)")
    for column in ("where", "mode", "batch", "plain s/epoch", "DP s/epoch", "ratio"):
        cost.add_column(column)
    for r in results["cost"]:
        if "error" in r:
            cost.add_row(r["where"], r["mode"], str(r["batch_size"]), "-", "-", r["error"])
        else:
            cost.add_row(r["where"], r["mode"], str(r["batch_size"]), f"{r['plain_s_per_epoch'] * 1e3:.1f} ms",
                         f"{r['dp_s_per_epoch'] * 1e3:.1f} ms", f"{r['ratio']:.2f}x")
    console.print(cost)
    util = Table(title=f"Accuracy by epsilon (delta {DELTA}, {ACCOUNTANT}, goal >= {ACCURACY_GOAL:.0%} at <= 3)")
    for column in ("epsilon target", "epsilon claimed", "sigma", "accuracy (mean)", "min-max", "keys"):
        util.add_column(column)
    for r in results["utility"]:
        util.add_row(str(r["epsilon_target"]), str(r["epsilon_claimed"]),
                     "-" if r["sigma"] is None else f"{r['sigma']:.3f}", f"{100 * r['accuracy']:.1f} %",
                     f"{100 * r['accuracy_min']:.1f}-{100 * r['accuracy_max']:.1f} %", str(len(r["accuracies"])))
    console.print(util)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smoke run: 2 epochs, one pair, hooks and ghost only")
    p.add_argument("--repeat", type=int, default=3, help="plain/DP engine pairs per batch size (default 3)")
    p.add_argument("--json", type=Path, default=REPO_ROOT / "benchmarks/results/dp_training.json")
    p.add_argument("--png", type=Path, default=None, help="default: the JSON's path with .png")
    args = p.parse_args(argv)
    if args.repeat < 1:
        p.error("--repeat must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    warnings.filterwarnings("ignore", category=UserWarning)  # Opacus's and torch's hook notices, once per step
    torch.set_num_threads(1)
    started = time.time()
    load_start = os.getloadavg()
    if args.quick:
        batches, epochs, repeat, modes, epsilons, utility_epochs, keys = [256], 2, 1, ["hooks", "ghost"], [3.0], 2, 1
    else:
        batches, epochs, repeat, modes, epsilons, utility_epochs, keys = [64, 256], 10, args.repeat, list(MODES), \
            [1.0, 3.0, 8.0], int(UTILITY_HP["epochs"]), KEYS
    with tempfile.TemporaryDirectory(prefix="dp-bench-") as tmp:
        bench = Bench(Path(tmp))
        cost = engine_cost(bench, batches, epochs, repeat) + mode_cost(bench, batches, epochs + 1, modes)
        util = utility(bench, epsilons, utility_epochs, keys)
    results = {
        "benchmark": "dp_training", "recipe": RECIPE, "train_examples": bench.n_train, "delta": DELTA,
        "accountant": ACCOUNTANT, "max_grad_norm": MAX_GRAD_NORM, "utility_hyperparameters": {
            **UTILITY_HP, "epochs": utility_epochs}, "quick": args.quick, "cost": cost, "utility": util,
        "goals": {"ratio": RATIO_GOAL, "accuracy_at_epsilon_3": ACCURACY_GOAL},
        "cpus": os.cpu_count(), "threads": 1, "load_average_start": load_start, "load_average_end": os.getloadavg(),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)), "wall_s": time.time() - started,
        "command": " ".join([".venv/bin/python", "benchmarks/dp_training.py",
                             *(argv if argv is not None else sys.argv[1:])]),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(_finite(results), indent=2) + "\n")
    png = args.png or args.json.with_suffix(".png")
    plot(util, png)
    print_table(results)
    log(f"results in {args.json} and {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
