"""benchmarks/secagg_rounds.py runs end to end at its smoke size (3 clients, 2 kept rounds per side, in one Flower
simulation on Ray) and writes what it claims: both sides' round times and bytes per client, their ratios, SecAgg+'s
four stages, and aggregates that match FedAvg. The figures themselves are the benchmark run's
(docs/benchmarks.md), never asserted here, but for what the encoding fixes: a SecAgg+ client uploads its masked
vector as int64, twice a float32 model's bytes."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_secagg_rounds_benchmark_runs_tiny_and_writes_its_json(tmp_path: Path) -> None:
    out = tmp_path / "secagg_rounds.json"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run([sys.executable, "benchmarks/secagg_rounds.py", "--clients", "3", "--rounds", "2",
                           "--json", str(out)], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=100, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads(out.read_text())
    size = results["sizes"]["3"]
    assert size["all_rounds_ok"]
    assert [r["side"] for r in size["raw"]] == ["plain", "secagg", "plain", "secagg", "secagg", "plain"]
    for side in ("plain", "secagg"):
        assert size[side]["round_s"]["n"] == size[side]["sent_bytes_per_client"]["n"] == 2  # warm-up left out
        assert size[side]["max_abs_error"] <= size[side]["error_bound"]
    assert set(size["plain"]["stages_per_client"]) == {"fit"}
    assert set(size["secagg"]["stages_per_client"]) == {"setup", "share_keys", "collect_masked_vectors",
                                                               "unmask"}
    assert size["plain"]["sent_bytes_per_client"]["median"] > 4 * 10_016          # the float32 model
    # the masked vector goes as uint32 (workers/fl/secagg_pack.py): about a float32 model plus the keys and
    # signatures; Flower's int64 would be above 2
    assert 1 < size["sent_bytes_ratio"] < 1.5 and size["round_s_ratio"] > 0
    assert results["command"].startswith(".venv/bin/python") and "ratio" in done.stdout


def test_secagg_rounds_refuses_bad_arguments() -> None:
    done = subprocess.run([sys.executable, "benchmarks/secagg_rounds.py", "--clients", "2"], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert "at least 3" in done.stderr and "Traceback" not in done.stderr
