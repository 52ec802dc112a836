"""benchmarks/dp_training.py runs end to end at its --quick size and writes what it claims: plain and DP time per
epoch side by side (the engine and Opacus's modes), accuracy by epsilon with the run's claimed epsilon, and the
PNG. The figures themselves are the benchmark run's (docs/dp-sgd.md), never asserted here."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_dp_benchmark_quick_writes_its_json_and_png(tmp_path: Path) -> None:
    out = tmp_path / "dp.json"
    done = subprocess.run([sys.executable, "benchmarks/dp_training.py", "--quick", "--json", str(out)],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=600, check=False,
                          env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads(out.read_text())
    engine = [r for r in results["cost"] if r["where"] == "engine"]
    assert engine and all(r["plain_s_per_epoch"] > 0 and r["dp_s_per_epoch"] > 0 and r["ratio"] > 0 for r in engine)
    assert {r["mode"] for r in results["cost"] if r["where"] == "bare"} == {"hooks", "ghost"}
    util = {str(r["epsilon_target"]): r for r in results["utility"]}
    assert set(util) == {"3.0", "inf"}
    assert 0 < util["3.0"]["epsilon_claimed"] <= 3.0 and util["3.0"]["sigma"] > 0
    assert util["inf"]["epsilon_claimed"] == "inf" and 0 <= util["inf"]["accuracy"] <= 1
    assert (tmp_path / "dp.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "ratio" in done.stdout and "Accuracy by epsilon" in done.stdout


def test_dp_benchmark_refuses_bad_arguments() -> None:
    done = subprocess.run([sys.executable, "benchmarks/dp_training.py", "--repeat", "0"], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2 and "--repeat must be at least 1" in done.stderr and "Traceback" not in done.stderr
