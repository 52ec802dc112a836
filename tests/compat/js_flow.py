"""Running one of tests/js's Polkadot.js flow scripts against a devnet, for the compat tests that check its
report: the script as a real `node` process, its one JSON report, and no complaint from Polkadot.js on stderr."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

JS_DIR = Path(__file__).resolve().parents[1] / "js"
NODE = shutil.which("node")
NEEDS_NODE = pytest.mark.skipif(
    NODE is None or not (JS_DIR / "node_modules" / "@polkadot" / "api").is_dir(),
    reason="needs node and tests/js/node_modules (run `npm ci` in tests/js, or `make setup`)")
COMPLAINTS = ("not decorated", "FATAL", "Unable to", "Unknown signed extension", "error")
"""What Polkadot.js writes on stderr about metadata it cannot decorate or decode."""


def run_flow(script: str, ws_url: str, *args: str, timeout: float) -> dict[str, Any]:
    """The report of tests/js/`script` run once against `ws_url` and `args` (it must exit 0 and complain of
    nothing)."""
    proc = subprocess.run([NODE, str(JS_DIR / script), ws_url, *args], check=False, capture_output=True, text=True,
                          timeout=timeout, cwd=JS_DIR)
    assert proc.returncode == 0, f"{script} exited {proc.returncode}\n{proc.stderr}\n{proc.stdout[-2000:]}"
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert lines, f"no JSON report on stdout:\n{proc.stdout}\n{proc.stderr}"
    for complaint in COMPLAINTS:
        assert complaint not in proc.stderr, proc.stderr
    return json.loads(lines[-1])
