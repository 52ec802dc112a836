"""The app directory an aggregator hands to `flwr run`: one pyproject.toml, no code.

Flower's SuperNodes execute whatever the FAB's components name (docs/design/federated.md, fact 5), so the
paratrain FAB names only modules of the installed paratrain package (`workers.fl.server_app:app`,
`workers.fl.client_app:app`) and carries no Python file: an honest aggregator ships its clients no code,
and a client runs the ClientApp of the paratrain it installed. The run-config keys the ServerApp reads are
declared with defaults because `flwr run --run-config` may only override declared keys.
"""
from __future__ import annotations

import importlib.metadata
import os
from pathlib import Path

TEMPLATE = Path(__file__).with_name("fab_template") / "pyproject.toml.in"
RUN_CONFIG_KEYS = ("task-id", "chain-url", "store", "trusted-stores", "journal")


def paratrain_version() -> str:
    """The installed paratrain's version (the app runs the installed package's modules, so it must be one)."""
    return importlib.metadata.version("paratrain")


def app_pyproject() -> str:
    """The app's pyproject.toml text."""
    return TEMPLATE.read_text(encoding="utf-8").replace("{version}", paratrain_version())


def write_app_dir(app_dir: str | os.PathLike[str]) -> Path:
    """Write (or rewrite) the app directory; its path. Anything else in it is removed, so a FAB built from
    it holds nothing but the pyproject.toml."""
    path = Path(app_dir)
    path.mkdir(parents=True, exist_ok=True)
    for entry in path.iterdir():
        if entry.name != "pyproject.toml" and (entry.is_file() or entry.is_symlink()):
            entry.unlink()
    target = path / "pyproject.toml"
    tmp = path / f".pyproject.toml.{os.getpid()}.tmp"
    tmp.write_text(app_pyproject(), encoding="utf-8")
    os.replace(tmp, target)
    return path


__all__ = ["RUN_CONFIG_KEYS", "app_pyproject", "paratrain_version", "write_app_dir"]
