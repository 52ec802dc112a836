"""How a daemon hands its signing key to the Flower processes it starts (same user, same machine).

A data owner's ClientApp runs in a fresh ``flwr-clientapp`` process per message, started by Flower's
``flower-superexec`` under the SuperNode the client daemon supervises; it must sign with the daemon's key.
The daemon has already loaded that key (a keystore it decrypted, a key file, a secret URI), so it passes the
loaded key itself, not its source: ``$PARATRAIN_FL_KEY`` = ``<sr25519|ed25519>:<secret hex>:<public hex>`` in
the environment of its own child only. Flower starts its children without ``env=``, so the variable reaches
every ClientApp process; it never appears on a command line (``ps``), in Flower's node config (which is
argv) or on disk, and the keystore password is never passed at all.
"""
from __future__ import annotations

import os
from collections.abc import Mapping

from substrateinterface import Keypair, KeypairType

KEY_ENV = "PARATRAIN_FL_KEY"
_TYPES = {"sr25519": KeypairType.SR25519, "ed25519": KeypairType.ED25519}
_NAMES = {code: name for name, code in _TYPES.items()}
_SECRET_BYTES = {"sr25519": 64, "ed25519": 32}


class ChildKeyError(ValueError):
    """No key, or not one this module wrote (the message never quotes the secret)."""


def export_key(keypair: Keypair) -> str:
    """The environment value that carries `keypair` to a child process."""
    name = _NAMES.get(keypair.crypto_type)
    if name is None or keypair.private_key is None:
        raise ChildKeyError("only sr25519 and ed25519 keys with their secret can be passed to a child")
    return f"{name}:{bytes(keypair.private_key).hex()}:{bytes(keypair.public_key).hex()}"


def import_key(value: str, *, ss58_format: int = 42) -> Keypair:
    """The keypair `export_key` wrote; the public key must belong to the secret."""
    name, _, rest = value.partition(":")
    secret_hex, _, public_hex = rest.partition(":")
    try:
        secret, public = bytes.fromhex(secret_hex), bytes.fromhex(public_hex)
    except ValueError:
        raise ChildKeyError(f"${KEY_ENV} is not <type>:<secret hex>:<public hex>") from None
    if name not in _TYPES or len(secret) != _SECRET_BYTES[name] or len(public) != 32:
        raise ChildKeyError(f"${KEY_ENV} is not an sr25519 or ed25519 key this daemon wrote")
    keypair = Keypair.create_from_private_key(secret, public, ss58_format=ss58_format, crypto_type=_TYPES[name])
    probe = b"paratrain/fl-child-key/check"
    if not keypair.verify(probe, keypair.sign(probe)):
        raise ChildKeyError(f"${KEY_ENV}: its public key does not belong to its secret")
    return keypair


def key_from_env(environ: Mapping[str, str] = os.environ) -> Keypair:
    value = environ.get(KEY_ENV)
    if not value:
        raise ChildKeyError(f"${KEY_ENV} is not set: a ClientApp signs with the key its client daemon passes")
    return import_key(value)


def child_env(keypair: Keypair, environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """`environ` plus the key, for the one child the daemon starts."""
    return {**environ, KEY_ENV: export_key(keypair)}


__all__ = ["KEY_ENV", "ChildKeyError", "child_env", "export_key", "import_key", "key_from_env"]
