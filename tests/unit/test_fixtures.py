"""The vendored fixtures are the originals named in tests/fixtures/README.md, byte for byte."""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
ROW = re.compile(r"^\| `(?P<file>[^`]+)` \|.*\| `(?P<sha>[0-9a-f]{64})` \|$", re.MULTILINE)


def test_every_vendored_fixture_matches_its_recorded_hash():
    rows = {m["file"]: m["sha"] for m in ROW.finditer((FIXTURES / "README.md").read_text())}
    assert set(rows) == {"chainspecs/kusama-local.json", "chainspecs/asset-hub-kusama-local.json",
                         "k8s/crds/ray.io_rayclusters.yaml", "k8s/crds/ray.io_rayjobs.yaml"}
    for name, sha in rows.items():
        assert hashlib.sha256((FIXTURES / name).read_bytes()).hexdigest() == sha, name
