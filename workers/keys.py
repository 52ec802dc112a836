"""The worker's own key: a secret URI (``//Alice``, a mnemonic, ``0x<seed>``) or a keystore JSON file.

Keystore files: Polkadot.js / subkey exports (``{"encoded": ..., "encoding": {...}, "address": ...}``),
decrypted with the password in ``$PARATRAIN_KEY_PASSWORD`` (or the ``password`` argument), or a plain
JSON object ``{"suri" | "secretPhrase" | "secretSeed": "...", "type": "sr25519" | "ed25519"}``.
Every failure is a `KeyLoadError` with a message a user can act on; the secret never appears in it.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from substrateinterface import Keypair, KeypairType

PASSWORD_ENV = "PARATRAIN_KEY_PASSWORD"
_TYPES = {"sr25519": KeypairType.SR25519, "ed25519": KeypairType.ED25519}


class KeyLoadError(ValueError):
    """The worker key could not be loaded."""


def _crypto(name: str | None) -> int:
    if not name:
        return KeypairType.SR25519
    try:
        return _TYPES[name.lower()]
    except KeyError:
        raise KeyLoadError(f"unsupported key type {name!r} (use sr25519 or ed25519)") from None


def load_keypair(key: str, *, password: str | None = None, crypto_type: str | None = None) -> Keypair:
    """A Keypair from a secret URI or a keystore JSON path (see the module doc)."""
    if not key:
        raise KeyLoadError("no key given: pass --key //Name, a mnemonic, 0x<seed> or a keystore JSON file")
    path = Path(key).expanduser()
    looks_like_path = key.endswith(".json") or os.sep in key.lstrip("/") and not key.startswith("//")
    if path.is_file():
        return _from_file(path, password, crypto_type)
    if looks_like_path and not key.startswith("//"):
        raise KeyLoadError(f"key file {key} does not exist")
    try:
        if key.startswith("0x") and len(key) == 66:
            return Keypair.create_from_seed(key, crypto_type=_crypto(crypto_type))
        return Keypair.create_from_uri(key, crypto_type=_crypto(crypto_type))
    except Exception as exc:  # noqa: BLE001 - substrate-interface raises several kinds
        raise KeyLoadError(f"not a valid secret URI or mnemonic ({type(exc).__name__})") from None


def _from_file(path: Path, password: str | None, crypto_type: str | None) -> Keypair:
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise KeyLoadError(f"cannot read key file {path}: {exc}") from None
    if not isinstance(doc, dict):
        raise KeyLoadError(f"key file {path} is not a JSON object")
    if "encoded" in doc:
        secret = password if password is not None else os.environ.get(PASSWORD_ENV)
        if secret is None:
            raise KeyLoadError(f"key file {path} is encrypted: set {PASSWORD_ENV} to its password")
        try:
            return Keypair.create_from_encrypted_json(doc, secret)
        except Exception as exc:  # noqa: BLE001
            raise KeyLoadError(f"cannot decrypt key file {path}: wrong password or unsupported format "
                               f"({type(exc).__name__})") from None
    kind = crypto_type or doc.get("type") or doc.get("keyType") or doc.get("crypto_type")
    for field in ("suri", "secretPhrase", "secretSeed", "seed", "mnemonic"):
        value = doc.get(field)
        if isinstance(value, str) and value:
            return load_keypair(value, crypto_type=kind)
    raise KeyLoadError(f"key file {path} has no 'encoded', 'suri', 'secretPhrase' or 'secretSeed' field")


__all__ = ["PASSWORD_ENV", "KeyLoadError", "load_keypair"]
