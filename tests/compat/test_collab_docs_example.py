"""docs/collab.md's Polkadot.js example, run as written: the page's one ```js block, as a real `node` process
against a devnet. It deploys a model, adds one example and predicts through state_call."""
from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from js_flow import JS_DIR, NEEDS_NODE, NODE

pytestmark = [pytest.mark.slow, pytest.mark.compat, NEEDS_NODE]
DOC = Path(__file__).resolve().parents[2] / "docs" / "collab.md"


def test_the_docs_example_deploys_adds_and_predicts(devnet) -> None:
    (block,) = re.findall(r"```js\n(.*?)```", DOC.read_text(), flags=re.S)
    script = JS_DIR / "_docs_collab_example.mjs"   # beside node_modules, so its imports resolve
    script.write_text(block)
    try:
        proc = subprocess.run([NODE, str(script), devnet.ws_url], capture_output=True, text=True, timeout=90,
                              cwd=JS_DIR, check=False)
    finally:
        script.unlink()
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["predicted"] == 1 and int(report["deposit"]) > 0 and report["model"] >= 0
