"""The layers are contracts: `lint-imports` (import-linter, [tool.importlinter] in pyproject.toml) passes on
the tree, and fails when a package imports upward or past runtime_bindings into devnet or scalecodec."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("paratrain", "workers", "orchestrator", "runtime_bindings", "devnet", "paratrain_api")


def lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    """lint-imports on the packages under `cwd` (its first sys.path entry); no cache written there."""
    exe = Path(sysconfig.get_path("scripts")) / "lint-imports"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "importlinter.cli"]
    return subprocess.run([*cmd, "--no-cache"], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_the_tree_keeps_every_contract() -> None:
    done = lint_imports(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    contracts = (ROOT / "pyproject.toml").read_text().count("[[tool.importlinter.contracts]]")
    assert f"{contracts} kept, 0 broken" in done.stdout


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the packages and pyproject.toml, to break on purpose."""
    root = tmp_path_factory.mktemp("tree")
    for package in PACKAGES:
        shutil.copytree(ROOT / package, root / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
    return root


@pytest.mark.parametrize(("module", "line", "contract"), [
    ("orchestrator/relay.py", "import workers.keys", "Layers point down only"),
    ("paratrain_api/endpoints.py", "import orchestrator.errors", "Layers point down only"),
    ("runtime_bindings/scale.py", "import devnet.crypto", "Layers point down only"),
    ("workers/payout.py", "from devnet.crypto import blake2_256", "Only `paratrain devnet` and the local market harness start devnet"),
    ("paratrain/commands/model.py", "import devnet.node", "Only `paratrain devnet` and the local market harness start devnet"),
    ("orchestrator/scheduler.py", "from scalecodec.base import ScaleBytes", "SCALE and SS58 only through runtime_bindings"),
    ("runtime_bindings/client.py", "import flwr", "Flower only in workers.fl and the harness"),
    ("paratrain/commands/task.py", "from flwr.serverapp import ServerApp", "Flower only in workers.fl and the harness"),
    ("workers/fl/verify.py", "import grpc", "The validator's federated checks are pure"),
    ("workers/fl/rules.py", "from runtime_bindings import fl", "The validator's federated checks are pure"),
])
def test_a_violating_import_breaks_its_contract(tree: Path, module: str, line: str, contract: str) -> None:
    path = tree / module
    original = path.read_text()
    path.write_text(original + f"\n{line}  # noqa: the violation under test\n")
    try:
        done = lint_imports(tree)
    finally:
        path.write_text(original)
    assert done.returncode == 1, done.stdout + done.stderr
    importer = module.removesuffix(".py").replace("/", ".")
    assert f"{contract} BROKEN" in done.stdout, done.stdout
    assert re.search(rf"^-\s+{re.escape(importer)} -> ", done.stdout, re.MULTILINE), done.stdout
