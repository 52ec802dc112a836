"""The generic part of runtime_bindings against devnet and real runtimes run by chopsticks.

Same test body for: devnet (Python), Kusama local (a relay chain) and Asset Hub
Kusama local (a parachain whose fee extension is ChargeAssetTxPayment). Connect,
read an account, transfer and wait for inclusion, decode the events, query the fee,
and see a failing transfer raise the typed dispatch error with its name.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import websocket

from paratrain.local import DevnetProcess
from runtime_bindings import (
    Chain,
    DispatchError,
    Keypair,
    ModuleError,
    balances,
    system,
    types,
)
from runtime_bindings.generated.balances import BalancesError, TransferKeepAliveCall

pytestmark = [pytest.mark.slow, pytest.mark.compat]  # slow: runs chopsticks on real runtimes (Node.js)

ROOT = Path(__file__).resolve().parents[2]
CHOPSTICKS = ROOT / "tests" / "js" / "node_modules" / ".bin" / "chopsticks"
SPECS = ROOT / "tests" / "fixtures" / "chainspecs"
STARTUP_S = 240

# What a transfer beyond the free balance fails with: devnet's pallet is the classic
# Currency one (a module error); the real runtimes use fungible-based pallet_balances.
EXPECTED_FAILURE = {
    "devnet": "Balances.InsufficientBalance",
    "kusama-local": "Token.FundsUnavailable",
    "asset-hub-kusama-local": "Token.FundsUnavailable",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _chopsticks(spec: Path) -> Iterator[str]:
    if shutil.which("node") is None or not CHOPSTICKS.exists():
        pytest.skip("node or tests/js/node_modules (npm install in tests/js) missing")
    if not spec.exists():
        pytest.skip(f"{spec} missing")
    port = _free_port()
    proc = subprocess.Popen(
        [str(CHOPSTICKS), "--genesis", str(spec), "--build-block-mode", "Instant",
         "--host", "127.0.0.1", "--port", str(port)],
        cwd=CHOPSTICKS.parents[2], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + STARTUP_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"chopsticks exited with {proc.returncode}")
            try:
                websocket.create_connection(f"ws://127.0.0.1:{port}", timeout=5).close()
                break
            except (OSError, websocket.WebSocketException):
                if time.monotonic() > deadline:
                    pytest.fail("chopsticks did not listen in time")
                time.sleep(0.5)
        yield f"ws://127.0.0.1:{port}"
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
                proc.wait(10)
                break
            except ProcessLookupError:
                break
            except subprocess.TimeoutExpired:
                continue


@pytest.fixture(scope="module", params=list(EXPECTED_FAILURE))
def node(request) -> Iterator[tuple[str, str]]:
    if request.param == "devnet":
        with DevnetProcess() as devnet:
            yield request.param, devnet.ws_url
    else:
        for url in _chopsticks(SPECS / f"{request.param}.json"):
            yield request.param, url


def test_generic_client(node: tuple[str, str]) -> None:
    name, url = node
    alice, bob = Keypair.create_from_uri("//Alice"), Keypair.create_from_uri("//Bob")
    with Chain.connect(url, timeout=60, submit_timeout=120) as chain:
        # connect, read an account
        info = chain.system.account(alice.ss58_address)
        assert isinstance(info, types.AccountInfo) and info.data.free > 0
        existential = chain.constant("Balances", "ExistentialDeposit")
        amount = 10 * existential

        # fee quoted, transfer included, events decoded to the generated classes
        fee = chain.estimate_fee(TransferKeepAliveCall(dest=bob.ss58_address, value=amount), alice)
        assert fee > 0
        receipt = chain.balances.transfer_keep_alive(alice, bob.ss58_address, amount, wait="inclusion")
        assert receipt.included
        [transfer] = receipt.find(balances.TransferEvent)
        assert (transfer.to, transfer.amount) == (chain.substrate.ss58_encode(bob.public_key), amount)
        assert receipt.find(system.ExtrinsicSuccessEvent)
        assert receipt.fee and receipt.fee > 0
        assert chain.system.account(alice.ss58_address).nonce == info.nonce + 1

        # a transfer beyond the balance: included, paid for, raised as a typed dispatch error
        poor = Keypair.create_from_uri("//BindingsCompatPoor")
        chain.balances.transfer_keep_alive(alice, poor.ss58_address, existential + 20 * fee)
        with pytest.raises(DispatchError) as caught:
            chain.balances.transfer_keep_alive(poor, bob.ss58_address, 100 * (existential + 20 * fee))
        error = caught.value
        assert error.error_name == EXPECTED_FAILURE[name]
        assert error.receipt is not None and error.receipt.fee > 0
        if name == "devnet":
            assert isinstance(error, BalancesError.InsufficientBalance) and isinstance(error, ModuleError)
