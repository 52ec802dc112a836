"""The signing key of a worker, validator or person: where it comes from, and how it is read and written.

Sources (`key_source`): ``--key-file PATH``, ``--key KEY`` or ``$PARATRAIN_KEY``. A file is a keystore JSON
or a text file holding a secret URI (``//Alice``, a mnemonic, ``0x<seed>``). A secret written on the command
line works, but every local user can read a process's arguments (ps, /proc/<pid>/cmdline), so the commands
warn about it (`KeySource.secret_in_argv`, `COMMAND_LINE_WARNING`); files and the environment are private to
the user.

Keystore files: the Polkadot.js format (``{"encoded", "encoding": {"content": ["pkcs8", "sr25519"|"ed25519"],
"type": ["scrypt", "xsalsa20-poly1305"], "version": "3"}, "address", "meta"}``), written by `encrypt_keystore`
and decrypted with the password in ``$PARATRAIN_KEY_PASSWORD``, the ``password`` argument or ``ask_password``;
or a plain JSON object ``{"suri" | "secretPhrase" | "secretSeed": "...", "type": "sr25519" | "ed25519"}``.
Every failure is a `KeyLoadError` with a message a user can act on; the secret never appears in it.
"""
from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from substrateinterface import Keypair, KeypairType

PASSWORD_ENV = "PARATRAIN_KEY_PASSWORD"
KEY_ENV = "PARATRAIN_KEY"
COMMAND_LINE_WARNING = (f"a secret given with --key is visible to other local users (ps, /proc): use --key-file "
                        f"PATH or ${KEY_ENV}")
MAX_KEY_FILE_BYTES = 64 * 1024  # a keystore is under 1 KiB; anything far larger is the wrong file
_TYPES = {"sr25519": KeypairType.SR25519, "ed25519": KeypairType.ED25519}
_NAMES = {code: name for name, code in _TYPES.items()}
SCRYPT_COST = (1 << 17, 1, 8)  # N, p, r: what Polkadot.js (util-crypto 14) writes
_SCRYPT_ALLOWED = {(1 << 13, 10, 8), (1 << 14, 5, 8), (1 << 15, 3, 8), (1 << 15, 1, 8), (1 << 16, 2, 8),
                   (1 << 17, 1, 8)}  # what Polkadot.js reads: util-crypto's scrypt ALLOWED_PARAMS

PasswordPrompt = Callable[[Path], str]


class KeyLoadError(ValueError):
    """The key could not be loaded."""


@dataclass(frozen=True)
class KeySource:
    """Where a command's key comes from, resolved before it is loaded so that the command can warn first."""

    value: str  # a file path, or a secret URI
    origin: str  # "--key-file", "--key" or "$PARATRAIN_KEY"

    @property
    def secret_in_argv(self) -> bool:
        """A secret (not a file name) written on the command line, where other users can read it."""
        return self.origin == "--key" and not Path(self.value).expanduser().is_file() \
            and not _looks_like_path(self.value)


def key_source(key: str | None, key_file: str | None, environ: Mapping[str, str] = os.environ) -> KeySource:
    """The source the options name, else the environment's; none at all is a KeyLoadError."""
    if key_file:
        return KeySource(key_file, "--key-file")
    if key:
        return KeySource(key, "--key")
    if environ.get(KEY_ENV):
        return KeySource(environ[KEY_ENV], f"${KEY_ENV}")
    raise KeyLoadError(f"no key given: pass --key-file PATH (a keystore or a file holding a secret URI), "
                       f"or set ${KEY_ENV}")


def load_key_source(source: KeySource, *, ask_password: PasswordPrompt | None = None) -> Keypair:
    """The keypair a source names: --key-file must be a file; the others may also be a secret URI."""
    if source.origin == "--key-file":
        return load_key_file(Path(source.value).expanduser(), ask_password=ask_password)
    return load_keypair(source.value, ask_password=ask_password)


def _crypto(name: str | None) -> int:
    if not name:
        return KeypairType.SR25519
    try:
        return _TYPES[name.lower()]
    except KeyError:
        raise KeyLoadError(f"unsupported key type {name!r} (use sr25519 or ed25519)") from None


def _looks_like_path(key: str) -> bool:
    """A file name rather than a secret URI: secret URIs start with // or 0x, and mnemonics hold blanks (a
    mnemonic with a //derivation must not be taken for a path, or the error would quote the secret)."""
    if key.startswith(("//", "0x")) or any(c.isspace() for c in key):
        return False
    return key.endswith(".json") or key.startswith("~") or os.sep in key.lstrip("/")


def load_keypair(key: str, *, password: str | None = None, crypto_type: str | None = None,
                 ask_password: PasswordPrompt | None = None) -> Keypair:
    """A Keypair from a secret URI or a key file's path (see the module doc)."""
    if not key:
        raise KeyLoadError("no key given: pass --key-file PATH, set $PARATRAIN_KEY, or a secret URI such as //Alice")
    path = Path(key).expanduser()
    if path.is_file():
        return load_key_file(path, password=password, crypto_type=crypto_type, ask_password=ask_password)
    if _looks_like_path(key):
        raise KeyLoadError(f"key file {key} does not exist")
    return _from_secret(key, crypto_type)


def _from_secret(secret: str, crypto_type: str | None) -> Keypair:
    """A secret URI or 0x seed, never a file name: what a key file holds is not followed to another file."""
    try:
        if secret.startswith("0x") and len(secret) == 66:
            return Keypair.create_from_seed(secret, crypto_type=_crypto(crypto_type))
        return Keypair.create_from_uri(secret, crypto_type=_crypto(crypto_type))
    except KeyLoadError:
        raise
    except Exception as exc:  # noqa: BLE001 - substrate-interface raises several kinds
        raise KeyLoadError(f"not a valid secret URI or mnemonic ({type(exc).__name__})") from None


def load_key_file(path: Path, *, password: str | None = None, crypto_type: str | None = None,
                  ask_password: PasswordPrompt | None = None) -> Keypair:
    """A keystore JSON file, or a text file whose content is a secret URI."""
    text = _read_key_file(path)
    if not text.lstrip().startswith("{"):
        secret = text.strip()
        if not secret:
            raise KeyLoadError(f"key file {path} is empty")
        if _looks_like_path(secret):  # "/a/b" would otherwise derive a key from the public dev phrase
            raise KeyLoadError(f"key file {path} holds a file name, not a secret URI")
        return _from_secret(secret, crypto_type)
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise KeyLoadError(f"cannot read key file {path}: {exc}") from None
    if not isinstance(doc, dict):
        raise KeyLoadError(f"key file {path} is not a JSON object")
    if "encoded" in doc:
        return _decrypt(path, doc, password, ask_password)
    kind = crypto_type or doc.get("type") or doc.get("keyType") or doc.get("crypto_type")
    for field in ("suri", "secretPhrase", "secretSeed", "seed", "mnemonic"):
        value = doc.get(field)
        if isinstance(value, str) and value:
            return _from_secret(value, kind)
    raise KeyLoadError(f"key file {path} has no 'encoded', 'suri', 'secretPhrase' or 'secretSeed' field")


def _read_key_file(path: Path) -> str:
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_KEY_FILE_BYTES + 1)
    except OSError as exc:
        raise KeyLoadError(f"cannot read key file {path}: {exc.strerror or exc}") from None
    if len(raw) > MAX_KEY_FILE_BYTES:
        raise KeyLoadError(f"key file {path} is larger than {MAX_KEY_FILE_BYTES} bytes: not a key")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise KeyLoadError(f"key file {path} is not UTF-8 text") from None


def _decrypt(path: Path, doc: dict[str, Any], password: str | None, ask_password: PasswordPrompt | None) -> Keypair:
    secret = password if password is not None else os.environ.get(PASSWORD_ENV)
    if secret is None and ask_password is not None:
        secret = ask_password(path)
    if secret is None:
        raise KeyLoadError(f"key file {path} is encrypted: set {PASSWORD_ENV} to its password")
    try:
        return decrypt_keystore(doc, secret)
    except KeyLoadError as exc:
        raise KeyLoadError(f"cannot decrypt key file {path}: {exc}") from None


def decrypt_keystore(doc: dict[str, Any], password: str) -> Keypair:
    """The keypair in a Polkadot.js keystore. Done here rather than by substrate-interface, whose decoder
    refuses the scrypt cost Polkadot.js writes today (N = 2^17 needs more than its 64 MiB cap); the costs
    accepted are Polkadot.js's own list, so a crafted file cannot make scrypt take gigabytes."""
    from nacl.exceptions import CryptoError
    from nacl.hashlib import scrypt
    from nacl.secret import SecretBox

    encoding = doc.get("encoding") if isinstance(doc.get("encoding"), dict) else {}
    content, kinds = list(encoding.get("content") or []), list(encoding.get("type") or [])
    name = next((c for c in content if c in _TYPES), None)
    if encoding.get("version") != "3" or kinds != ["scrypt", "xsalsa20-poly1305"] or name is None:
        raise KeyLoadError("unsupported format (expected version 3, scrypt and xsalsa20-poly1305, an sr25519 or "
                           "ed25519 key)")
    try:
        raw = base64.b64decode(str(doc.get("encoded")), validate=True)
    except ValueError:
        raise KeyLoadError("its 'encoded' field is not base64") from None
    salt, params, nonce, sealed = raw[:32], raw[32:44], raw[44:68], raw[68:]
    cost = tuple(int.from_bytes(params[i:i + 4], "little") for i in (0, 4, 8))  # N, p, r
    if len(raw) < 68 + 16 or cost not in _SCRYPT_ALLOWED:
        raise KeyLoadError(f"unsupported scrypt parameters {cost}")
    n, p, r = cost
    key = scrypt(password.encode(), salt, n=n, r=r, p=p, dklen=32, maxmem=_scrypt_memory(n, p, r))
    try:
        pkcs8 = SecretBox(key).decrypt(sealed, nonce)
    except CryptoError:
        raise KeyLoadError("wrong password (or a damaged file)") from None
    return _from_pkcs8(pkcs8, _TYPES[name], doc.get("address"))


def _from_pkcs8(pkcs8: bytes, crypto: int, address: Any) -> Keypair:
    """The keypair from the decrypted PKCS#8 body, its public key checked against the secret's own."""
    import ed25519_zebra
    import sr25519
    from substrateinterface.utils.encrypted_json import decode_pkcs8

    from runtime_bindings.primitives import get_ss58_format

    try:
        secret, public = decode_pkcs8(pkcs8)
        if crypto == KeypairType.SR25519:
            derived, private = sr25519.pair_from_ed25519_secret_key(secret)
        else:
            private, derived = secret[:32], ed25519_zebra.ed_from_seed(secret[:32])[1]
        ss58_format = get_ss58_format(address) if isinstance(address, str) else 42
    except Exception as exc:  # noqa: BLE001 - the bindings raise several kinds on a malformed body
        raise KeyLoadError(f"malformed key ({type(exc).__name__})") from None
    if bytes(derived) != public:
        raise KeyLoadError("its public key does not belong to its secret key")
    return Keypair.create_from_private_key(bytes(private), public, ss58_format=ss58_format, crypto_type=crypto)


def _scrypt_memory(n: int, p: int, r: int) -> int:
    return 128 * r * (n + p + 2) + (1 << 20)


def crypto_name(keypair: Keypair) -> str:
    """'sr25519' or 'ed25519' (the names the keystore format and `--type` use)."""
    return _NAMES.get(keypair.crypto_type, "ecdsa")


def encrypt_keystore(keypair: Keypair, password: str) -> dict[str, Any]:
    """The Polkadot.js keystore JSON of `keypair`, encrypted with `password`: PKCS#8 of the key, sealed with
    xsalsa20-poly1305 under scrypt(password) at Polkadot.js's default cost (N = 2^17, p = 1, r = 8).

    The PKCS#8 secret is what Polkadot.js stores: for sr25519 the ed25519-expanded form of the schnorrkel
    secret, for ed25519 the 32-byte seed followed by the public key."""
    import sr25519
    from nacl.hashlib import scrypt
    from nacl.secret import SecretBox
    from nacl.utils import random
    from substrateinterface.utils.encrypted_json import encode_pkcs8

    if not password:
        raise KeyLoadError("an empty password would encrypt nothing")
    if keypair.crypto_type == KeypairType.SR25519:
        secret = bytes(sr25519.convert_secret_key_to_ed25519(keypair.private_key))
    elif keypair.crypto_type == KeypairType.ED25519:
        secret = keypair.private_key + keypair.public_key
    else:
        raise KeyLoadError(f"cannot write a keystore for a {crypto_name(keypair)} key")
    n, p, r = SCRYPT_COST
    salt = random(32)
    key = scrypt(password.encode(), salt, n=n, r=r, p=p, dklen=32, maxmem=_scrypt_memory(n, p, r))
    sealed = SecretBox(key).encrypt(encode_pkcs8(keypair.public_key, secret))
    params = b"".join(v.to_bytes(4, "little") for v in SCRYPT_COST)
    return {"encoded": base64.b64encode(salt + params + sealed.nonce + sealed.ciphertext).decode(),
            "encoding": {"content": ["pkcs8", crypto_name(keypair)], "type": ["scrypt", "xsalsa20-poly1305"],
                         "version": "3"},
            "address": keypair.ss58_address,
            "meta": {"name": keypair.ss58_address, "tags": [], "whenCreated": int(time.time() * 1000)}}


__all__ = ["COMMAND_LINE_WARNING", "KEY_ENV", "PASSWORD_ENV", "KeyLoadError", "KeySource", "crypto_name",
           "decrypt_keystore", "encrypt_keystore", "key_source", "load_key_file", "load_keypair", "load_key_source"]
