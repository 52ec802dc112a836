"""The keystore `paratrain account new` writes is the Polkadot.js format: Polkadot.js (@polkadot/keyring
14.0.3, unchanged; tests/js/keystore.mjs) decrypts it with the password to the same keypair (same address,
a signature paratrain verifies, and the address Polkadot.js itself derives from the mnemonic), and paratrain
reads a keystore Polkadot.js wrote."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from substrateinterface import Keypair, KeypairType

from workers.keys import load_keypair

ROOT = Path(__file__).resolve().parents[2]
JS_DIR = ROOT / "tests" / "js"
SCRIPT = JS_DIR / "keystore.mjs"
NODE = shutil.which("node")
PASSWORD = "paratrain keystore test"
MESSAGE = "signed by the key in the keystore"

# slow: runs Polkadot.js's keyring in Node.js (scrypt keystores)
pytestmark = [pytest.mark.slow, pytest.mark.compat, pytest.mark.skipif(
    NODE is None or not (JS_DIR / "node_modules" / "@polkadot" / "keyring").is_dir(),
    reason="needs node and tests/js/node_modules (run `npm ci` in tests/js, or `make setup`)")]


def node(*args: str, password: str = PASSWORD) -> subprocess.CompletedProcess[str]:
    return subprocess.run([NODE, str(SCRIPT), *args], capture_output=True, text=True, timeout=60, cwd=JS_DIR,
                          env={**os.environ, "KEYSTORE_PASSWORD": password}, check=False)


def report(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def account_new(out: Path, crypto: str) -> tuple[str, str]:
    """`paratrain account new` in a subprocess, the password in the environment: (address, mnemonic)."""
    done = subprocess.run([sys.executable, "-m", "paratrain.cli", "account", "new", "--out", str(out), "--type",
                           crypto, "--show-secret"], capture_output=True, text=True, timeout=60, cwd=ROOT,
                          env={**os.environ, "PARATRAIN_KEY_PASSWORD": PASSWORD}, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    fields = dict(line.split(None, 1) for line in done.stdout.splitlines() if line.strip())
    return fields["address"], fields["mnemonic"]


@pytest.mark.parametrize("crypto", ["sr25519", "ed25519"])
def test_polkadot_js_decrypts_what_paratrain_writes(tmp_path, monkeypatch, crypto: str) -> None:
    keystore = tmp_path / "key.json"
    address, mnemonic = account_new(keystore, crypto)
    doc = json.loads(keystore.read_text())
    assert doc["encoding"] == {"content": ["pkcs8", crypto], "type": ["scrypt", "xsalsa20-poly1305"], "version": "3"}
    words = mnemonic.split()
    assert not any(f"{a} {b}" in keystore.read_text() for a, b in zip(words, words[1:]))  # no phrase inside

    seen = report(node("decrypt", str(keystore), MESSAGE, mnemonic))
    assert seen["address"] == address == seen["fromMnemonic"] and seen["type"] == crypto and not seen["locked"]
    kind = KeypairType.SR25519 if crypto == "sr25519" else KeypairType.ED25519
    public = Keypair(ss58_address=address, crypto_type=kind)
    assert public.verify(MESSAGE.encode(), bytes.fromhex(seen["signature"][2:]))  # Polkadot.js holds the secret

    monkeypatch.setenv("PARATRAIN_KEY_PASSWORD", PASSWORD)
    mine = load_keypair(str(keystore))
    assert mine.ss58_address == address and mine.public_key.hex() == seen["publicKey"][2:]
    assert mine.public_key == Keypair.create_from_mnemonic(mnemonic, crypto_type=kind).public_key

    refused = node("decrypt", str(keystore), MESSAGE, password="not the password")
    assert refused.returncode == 1 and "supplied passphrase" in refused.stderr


@pytest.mark.parametrize("crypto", ["sr25519", "ed25519"])
def test_paratrain_reads_what_polkadot_js_writes(tmp_path, crypto: str) -> None:
    """Polkadot.js writes scrypt N = 2^17, which substrate-interface's own decoder refuses: paratrain reads it."""
    mnemonic = Keypair.generate_mnemonic()
    keystore = tmp_path / "from-js.json"
    keystore.write_text(json.dumps(report(node("encrypt", mnemonic, crypto))))
    kind = KeypairType.SR25519 if crypto == "sr25519" else KeypairType.ED25519
    done = subprocess.run([sys.executable, "-m", "paratrain.cli", "account", "show", "--key-file", str(keystore)],
                          capture_output=True, text=True, timeout=60, cwd=ROOT, stdin=subprocess.DEVNULL,
                          env={**os.environ, "PARATRAIN_KEY_PASSWORD": PASSWORD})
    assert done.returncode == 0, done.stderr
    assert Keypair.create_from_mnemonic(mnemonic, crypto_type=kind).ss58_address in done.stdout
    assert f"type        {crypto}" in done.stdout and done.stderr == ""
