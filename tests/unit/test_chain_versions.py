"""A --base-path chain is reopened only by the runtime version that wrote it: devnet has no storage
migrations, so another spec_version would misread the stored state."""
from __future__ import annotations

from pathlib import Path

import pytest

from devnet.blockstore import BlockStore
from devnet.chain import Chain, IncompatibleChainData
from devnet.runtime.runtime import Runtime
from paratrain.cli import main


class OlderRuntime(Runtime):
    spec_version = Runtime.spec_version - 1


def write_chain(path: Path, runtime: Runtime) -> bytes:
    store = BlockStore(path / "chain.sqlite")
    try:
        return Chain(runtime, store=store).genesis_hash
    finally:
        store.close()


def test_same_version_reopens_the_stored_chain(tmp_path: Path) -> None:
    genesis = write_chain(tmp_path, Runtime())
    store = BlockStore(tmp_path / "chain.sqlite")
    try:
        assert Chain(Runtime(), store=store).genesis_hash == genesis
    finally:
        store.close()


def test_another_version_is_refused(tmp_path: Path) -> None:
    write_chain(tmp_path, OlderRuntime())
    store = BlockStore(tmp_path / "chain.sqlite")
    try:
        with pytest.raises(IncompatibleChainData, match=f"spec_version {Runtime.spec_version - 1}.*no migration"):
            Chain(Runtime(), store=store)
    finally:
        store.close()


def test_devnet_command_says_why_without_a_traceback(tmp_path: Path, capsys) -> None:
    write_chain(tmp_path, OlderRuntime())
    before = (tmp_path / "chain.sqlite").read_bytes()
    assert main(["devnet", "--base-path", str(tmp_path), "--port", "0"]) == 2
    captured = capsys.readouterr()
    err = captured.out + captured.err
    assert "no migration" in err and "--tmp or a new --base-path" in err and "Traceback" not in err
    assert (tmp_path / "chain.sqlite").read_bytes() == before
