"""benchmarks/fl_rounds.py runs end to end at a tiny size and writes the figures it claims: both sides' round times,
the paratrain/bare ratio and the chain's share, from a real devnet process, Ray and Flower's simulation runtime.
The figures themselves are the benchmark run's (docs/benchmarks.md), never asserted here."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_fl_rounds_benchmark_runs_tiny_and_writes_its_json(tmp_path: Path) -> None:
    out = tmp_path / "fl_rounds.json"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run([sys.executable, "benchmarks/fl_rounds.py", "--clients", "3", "--rounds", "3", "--warmup",
                           "1", "--json", str(out)], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=900, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads(out.read_text())
    size = results["sizes"]["3"]
    assert [len(r) for r in size["raw"]["bare"]] == [3]          # every round of each side timed
    assert [len(r) for r in size["raw"]["paratrain"]] == [3]
    assert [len(c) for c in size["raw_commit_s"]] == [3]         # and every paratrain round committed on chain
    assert size["bare_round_s"]["n"] == size["paratrain_round_s"]["n"] == 2  # the warm-up round left out
    assert size["ratio"] > 0 and 0 < size["chain_share"]["median"] < 1
    assert all(0 < c < r for c, r in zip(size["raw_commit_s"][0], size["raw"]["paratrain"][0], strict=True))
    assert len(results["load_average_start"]) == 3 and results["command"].startswith(".venv/bin/python")
    assert "ratio" in done.stdout and "chain share" in done.stdout


def test_fl_rounds_refuses_bad_arguments() -> None:
    done = subprocess.run([sys.executable, "benchmarks/fl_rounds.py", "--clients", "ten"], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2
    assert "--clients must be comma-separated integers" in done.stderr and "Traceback" not in done.stderr
