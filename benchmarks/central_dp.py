#!/usr/bin/env python3
"""What central DP costs a validator: its recomputation of a round's release against the plain FedAvg recomputation,
side by side in one run.

For a central-DP round the validator clips every update to the norm, averages with equal weights and draws the
noise from the recorded seed (`workers.fl.central_dp.released_model`); for a plain FedAvg round it recomputes the
weighted mean (`workers.fl.rules.weighted_average`). Both run here on the digits MLP (64-128-128-10, float32,
26 k parameters) at 8, 50 and 100 updates, alternating, and the medians and their ratio are printed. It also
times the aggregator's one extra step per round, the accountant's claim (`CentralTask.claim`, Opacus PRV, uncached
for each round count).

Usage (from the repository root)::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/central_dp.py [--repeat 7]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workers.fl import central_dp, rules  # noqa: E402
from workers.fl.central_noise import CentralNoise  # noqa: E402
from workers.fl.central_task import CentralTask  # noqa: E402
from workers.privacy.accounting import DpTerms  # noqa: E402

SHAPES = {"fc1.weight": (128, 64), "fc1.bias": (128,), "fc2.weight": (128, 128), "fc2.bias": (128,),
          "fc3.weight": (10, 128), "fc3.bias": (10,)}
NORM, SIGMA = 1.0, 1.0


def models(count: int, seed: int) -> tuple[dict[str, np.ndarray], list[dict[str, np.ndarray]]]:
    rng = np.random.default_rng(seed)
    base = {n: rng.normal(scale=0.1, size=s).astype(np.float32) for n, s in SHAPES.items()}
    return base, [{n: (a + rng.normal(scale=0.02, size=a.shape)).astype(np.float32) for n, a in base.items()}
                  for _ in range(count)]


def timed(fn: Callable[..., object], *args: object) -> float:
    started = time.perf_counter()
    fn(*args)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args(argv)
    print(f"{'updates':>8} {'plain FedAvg ms':>16} {'central DP ms':>14} {'ratio':>6}")
    for count in (8, 50, 100):
        base, updates = models(count, count)
        noise = CentralNoise("ab" * 32, central_dp.noise_std(SIGMA, NORM, count), "server", tuple(SHAPES))
        plain, private = [], []
        for _ in range(args.repeat):
            plain.append(timed(rules.weighted_average, updates, [100] * count))
            private.append(timed(central_dp.released_model, base, updates, noise, NORM))
        p, c = statistics.median(plain) * 1e3, statistics.median(private) * 1e3
        print(f"{count:>8} {p:>16.2f} {c:>14.2f} {c / p:>5.1f}x")
    task = CentralTask("server", DpTerms(accountant="prv", epsilon_cap=100_000_000, delta=10_000_000_000,
                                         max_grad_norm=1_000_000, noise_multiplier=1_000_000))
    print(f"importing Opacus's accountants once per process: {timed(__import__, 'opacus.accountants') * 1e3:.0f} ms")
    for rounds in (1, 10, 50):
        seconds = timed(task.claim, rounds)
        print(f"aggregator's claim after {rounds} rounds (PRV): {seconds * 1e3:.0f} ms, "
              f"epsilon {task.claim(rounds).epsilon / 1e6:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
