"""`paratrain dataset register|buy|show`, `service register|show`, `channel`, `serve` and `infer` against a
devnet process: the people's commands for data and model assets, every refusal one line naming the cause.
`paratrain serve` runs as a process (it handles SIGINT, and claims on the way out); `paratrain infer` in this
one, paying per row and keeping its place in the channel between invocations."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cli_helpers import isolate, one_line_error, run

from paratrain._local.serving import accepted_model
from paratrain.cli import main
from paratrain.local import free_port
from runtime_bindings import Chain, Keypair
from workers.artifacts import ArtifactStore

pytestmark = pytest.mark.slow  # a devnet process, a server process

ALICE, BOB, DAVE = (Keypair.create_from_uri(f"//{n}") for n in ("Alice", "Bob", "Dave"))
DATASET = "0x" + "ab" * 32
CODE = "0x" + "cd" * 32


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch, devnet):
    isolate(monkeypatch, tmp_path, devnet.ws_url)




def test_dataset_register_buy_and_show(capsys) -> None:
    code, out, err = run(capsys, "dataset", "register", DATASET, "--size", "1000", "--license", "CC-BY-4.0",
                         "--access", "paid", "--price", "2", "--key", "//Alice")
    assert code == 0 and "registered (paid" in out, err
    assert "AlreadyRegistered" in one_line_error(capsys, "dataset", "register", DATASET, "--size", "1", "--license",
                                                 "MIT", "--access", "paid", "--price", "2", "--key", "//Alice")
    code, out, _ = run(capsys, "dataset", "buy", DATASET, "--key", "//Bob")
    assert code == 0 and "bought for 2" in out
    assert "AlreadyGranted" in one_line_error(capsys, "dataset", "buy", DATASET, "--key", "//Bob")
    code, out, _ = run(capsys, "dataset", "show", DATASET, "--account", BOB.ss58_address)
    assert code == 0 and "Paid" in out and "since block" in out and "grants    1" in out
    assert "needs at least one --recipe" in one_line_error(
        capsys, "dataset", "register", "0x" + "ef" * 32, "--size", "1", "--license", "MIT", "--access",
        "compute-only", "--price", "1", "--key", "//Alice")
    code, out, _ = run(capsys, "dataset", "register", "0x" + "ef" * 32, "--size", "1", "--license", "MIT",
                       "--access", "compute-only", "--price", "1", "--recipe", CODE, "--worker", BOB.ss58_address,
                       "--key", "//Alice")
    assert code == 0
    assert "AlreadyGranted" in one_line_error(capsys, "dataset", "buy", "0x" + "ef" * 32, "--key", "//Alice")
    assert "DatasetNotFound" in one_line_error(capsys, "dataset", "show", "0x" + "00" * 32)


@pytest.fixture(scope="module")
def model(devnet, tmp_path_factory) -> dict[str, Any]:
    store = ArtifactStore(tmp_path_factory.mktemp("owner-store"))
    with Chain.connect(devnet.ws_url, timeout=20) as chain:
        made = accepted_model(chain, store, ALICE, BOB, DAVE)
    return {"hash": made.model_hash, "store": str(store.root), "module": made.module}


@pytest.fixture
def serving(capsys, devnet, model) -> Iterator[dict[str, Any]]:
    port = free_port()
    code, _, err = run(capsys, "service", "register", model["hash"], "--price", "0.001", "--endpoint",
                         f"127.0.0.1:{port}", "--key", "//Alice")
    assert code == 0, err
    env = {**os.environ, "PARATRAIN_CHAIN": devnet.ws_url}
    proc = subprocess.Popen([sys.executable, "-m", "paratrain.cli", "serve", model["hash"], "--port", str(port),
                             "--store", model["store"], "--key", "//Alice", "--claim-every", "3"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline().strip()
        assert line == f"127.0.0.1:{port}", proc.stderr.read() if proc.poll() is not None else line
        yield {"port": port, "proc": proc}
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            proc.wait(60)


def test_service_serve_infer_and_channel(capsys, model, serving, tmp_path: Path) -> None:
    assert "NotModelOwner" in one_line_error(capsys, "service", "register", model["hash"], "--price", "1",
                                             "--endpoint", "x", "--key", "//Bob")
    code, out, _ = run(capsys, "service", "show", model["hash"])
    assert code == 0 and "0.001" in out and str(serving["port"]) in out
    rows = np.random.default_rng(1).uniform(0, 16, size=(4, 64)).astype(np.float32)
    np.save(tmp_path / "rows.npy", rows)
    code, out, err = run(capsys, "infer", model["hash"], "--input", str(tmp_path / "rows.npy"), "--deposit", "1",
                         "--key", "//Dave")
    assert code == 0, err
    import torch

    expected = model["module"](torch.from_numpy(rows)).argmax(1).tolist()
    assert [int(line) for line in out.split()] == expected
    channel = int(err.split("channel ")[1].split()[0])
    code, out, err = run(capsys, "infer", model["hash"], "--input", str(tmp_path / "rows.npy"), "--channel",
                         str(channel), "--key", "//Dave")
    assert code == 0 and "0.008" in err, err                     # 8 calls signed on this channel, in all
    code, out, _ = run(capsys, "channel", "show", str(channel))
    assert code == 0 and "nonce" in out
    assert "NotExpired" in one_line_error(capsys, "channel", "reclaim", str(channel), "--key", "//Dave")
    assert "NotSender" in one_line_error(capsys, "channel", "reclaim", str(channel), "--key", "//Bob")
    serving["proc"].send_signal(signal.SIGINT)
    assert serving["proc"].wait(60) == 0
    code, out, _ = run(capsys, "channel", "show", str(channel))
    assert "claimed      0.008" in out                            # the server claimed everything on its way out
    with pytest.raises(SystemExit):
        main(["infer", "0x12", "--input", "x", "--key", "//Dave"])
    assert "not a 32-byte hash" in capsys.readouterr().err
