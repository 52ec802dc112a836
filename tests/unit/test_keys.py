"""workers.keys: where a key comes from, the files it is read from, and the encrypted keystore it is written to."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from substrateinterface import Keypair, KeypairType

from workers.keys import (
    KEY_ENV,
    PASSWORD_ENV,
    KeyLoadError,
    KeySource,
    crypto_name,
    encrypt_keystore,
    key_source,
    load_key_source,
    load_keypair,
)

ALICE = Keypair.create_from_uri("//Alice").ss58_address


@pytest.fixture(autouse=True)
def _no_env(monkeypatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    monkeypatch.delenv(PASSWORD_ENV, raising=False)


def test_the_options_win_over_the_environment() -> None:
    env = {KEY_ENV: "//Bob"}
    assert key_source(None, "k.txt", env) == KeySource("k.txt", "--key-file")
    assert key_source("//Alice", None, env) == KeySource("//Alice", "--key")
    assert key_source(None, None, env) == KeySource("//Bob", "$PARATRAIN_KEY")
    with pytest.raises(KeyLoadError, match="no key given: pass --key-file PATH .* or set \\$PARATRAIN_KEY"):
        key_source(None, None, {})


def test_only_a_secret_written_in_argv_is_flagged(tmp_path) -> None:
    keyfile = tmp_path / "k.json"
    keyfile.write_text("{}")
    phrase = Keypair.generate_mnemonic()
    for secret in ("//Alice", phrase, phrase + "//0", "0x" + "11" * 32, "notakey"):
        assert KeySource(secret, "--key").secret_in_argv, secret
        assert not KeySource(secret, "$PARATRAIN_KEY").secret_in_argv
    for name in (str(keyfile), "missing/key.json", "~/keys/k.json"):
        assert not KeySource(name, "--key").secret_in_argv, name
    assert not KeySource(str(keyfile), "--key-file").secret_in_argv


def test_a_text_key_file_holds_a_secret_uri(tmp_path) -> None:
    text = tmp_path / "alice.key"
    text.write_text("//Alice\n")
    assert load_key_source(KeySource(str(text), "--key-file")).ss58_address == ALICE
    assert load_keypair(str(text)).ss58_address == ALICE  # --key with a file name: as before
    pointer = tmp_path / "pointer.key"
    pointer.write_text(str(text))  # not followed, nor taken for a /derivation of the public dev phrase
    with pytest.raises(KeyLoadError, match="holds a file name, not a secret URI"):
        load_key_source(KeySource(str(pointer), "--key-file"))


@pytest.mark.parametrize("content, reason", [
    (b"", "is empty"), (b"  \n", "is empty"), (b"\xff\xfe", "not UTF-8"), (b"x" * 70_000, "larger than"),
    (b"{not json", "cannot read key file"), (b"[1]", "not a valid secret URI"), (b"{}", "has no 'encoded'"),
])
def test_bad_key_files_are_one_reason(tmp_path, content: bytes, reason: str) -> None:
    path = tmp_path / "bad.key"
    path.write_bytes(content)
    with pytest.raises(KeyLoadError, match=reason):
        load_key_source(KeySource(str(path), "--key-file"))


def test_a_key_file_must_exist() -> None:
    with pytest.raises(KeyLoadError, match="cannot read key file /nonexistent/k"):
        load_key_source(KeySource("/nonexistent/k", "--key-file"))


def test_a_secret_never_appears_in_an_error(tmp_path) -> None:
    phrase = "bottom drive obey lake curtain smoke basket hold race lonely fit nonsense"
    for secret in (phrase, phrase + "//hard/soft", "0x" + "zz" * 32):
        with pytest.raises(KeyLoadError) as refused:
            load_keypair(secret)
        assert "bottom" not in str(refused.value) and "zz" not in str(refused.value)
        path = tmp_path / "k.json"
        path.write_text(json.dumps({"suri": secret}))
        with pytest.raises(KeyLoadError) as refused:
            load_keypair(str(path))
        assert "bottom" not in str(refused.value) and "zz" not in str(refused.value)


@pytest.mark.parametrize("crypto", [KeypairType.SR25519, KeypairType.ED25519])
def test_an_encrypted_keystore_decrypts_to_the_same_keypair(tmp_path, monkeypatch, crypto: int) -> None:
    phrase = Keypair.generate_mnemonic()
    keypair = Keypair.create_from_mnemonic(phrase, crypto_type=crypto)
    doc = encrypt_keystore(keypair, "correct horse")
    assert doc["encoding"] == {"content": ["pkcs8", crypto_name(keypair)], "type": ["scrypt", "xsalsa20-poly1305"],
                               "version": "3"}
    assert doc["address"] == keypair.ss58_address
    path = tmp_path / "k.json"
    path.write_text(json.dumps(doc))
    text = path.read_text()
    words = phrase.split()
    assert not any(f"{a} {b}" in text for a, b in zip(words, words[1:]))
    assert keypair.private_key.hex() not in text

    asked: list[Path] = []
    loaded = load_keypair(str(path), ask_password=lambda p: asked.append(p) or "correct horse")
    assert asked == [path] and loaded.public_key == keypair.public_key
    assert keypair.verify(b"paratrain", loaded.sign(b"paratrain"))  # the same secret, not only the same address

    monkeypatch.setenv(PASSWORD_ENV, "correct horse")
    assert load_keypair(str(path), ask_password=lambda p: pytest.fail("asked despite the env")).ss58_address \
        == keypair.ss58_address
    monkeypatch.setenv(PASSWORD_ENV, "wrong")
    with pytest.raises(KeyLoadError, match="wrong password") as refused:
        load_keypair(str(path))
    assert "wrong" not in str(refused.value).replace("wrong password", "")


def test_an_encrypted_keystore_without_a_password_says_how_to_give_one(tmp_path) -> None:
    path = tmp_path / "k.json"
    path.write_text(json.dumps(encrypt_keystore(Keypair.create_from_uri("//Alice"), "pw")))
    with pytest.raises(KeyLoadError, match=f"is encrypted: set {PASSWORD_ENV}"):
        load_keypair(str(path))
    with pytest.raises(KeyLoadError, match="empty password"):
        encrypt_keystore(Keypair.create_from_uri("//Alice"), "")


def test_a_crafted_keystore_is_refused_before_any_costly_work(tmp_path) -> None:
    """scrypt costs outside Polkadot.js's list (a 2^24 N asks for gigabytes), a swapped public key."""
    import base64

    from workers.keys import decrypt_keystore

    doc = encrypt_keystore(Keypair.create_from_uri("//Alice"), "pw")
    raw = bytearray(base64.b64decode(doc["encoded"]))
    raw[32:36] = (1 << 24).to_bytes(4, "little")
    with pytest.raises(KeyLoadError, match="unsupported scrypt parameters"):
        decrypt_keystore({**doc, "encoded": base64.b64encode(bytes(raw)).decode()}, "pw")
    with pytest.raises(KeyLoadError, match="unsupported format"):
        decrypt_keystore({**doc, "encoding": {**doc["encoding"], "type": ["none"]}}, "pw")
    with pytest.raises(KeyLoadError, match="wrong password"):
        decrypt_keystore(doc, "not pw")
