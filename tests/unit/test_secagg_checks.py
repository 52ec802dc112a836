"""The guard's pure checks of SecAgg+ replies (workers/fl/secagg_checks.py), on real inputs: EC keys made as
Flower makes them (`generate_key_pairs`, `public_key_to_bytes`), Fernet tokens under an ECDH-derived key
(`generate_shared_key`, `encrypt`), masked int64 vectors in Flower's wire form (`ndarray_to_bytes`) and
Shamir shares from Flower's `create_shares`. Every accepted case, and every refusal with its reason text."""
from __future__ import annotations

import base64
import os

import numpy as np
import pytest
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from flwr.app import ConfigRecord, RecordDict
from flwr.common import ndarray_to_bytes
from flwr.common.secure_aggregation.crypto.shamir import combine_shares, create_shares
from flwr.common.secure_aggregation.crypto.symmetric_encryption import encrypt, generate_shared_key
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS, Key, Stage
from flwr.supercore.primitives.asymmetric import generate_key_pairs, public_key_to_bytes

from workers.fl.secagg_checks import (
    MAX_CIPHERTEXT_BYTES,
    MAX_KEY_BYTES,
    check_masked_vector,
    check_setup,
    check_share_keys,
    check_unmask,
    configs_of,
    duplicate_keys,
    fernet_problem,
    public_key_problem,
    stage_of,
)

MODULUS = 2**32
SHAPES = [(3, 4), (4,)]


def ec_key() -> bytes:
    return public_key_to_bytes(generate_key_pairs()[1])


def _pem(public_key: object) -> bytes:
    return public_key.public_bytes(serialization.Encoding.PEM,  # type: ignore[attr-defined]
                                   serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.fixture(scope="module")
def keys() -> list[bytes]:
    return [ec_key() for _ in range(6)]


@pytest.fixture(scope="module")
def token() -> bytes:
    """A share ciphertext as a client makes it: Fernet under the HKDF of an ECDH agreement."""
    sk_a, pk_a = generate_key_pairs()
    sk_b, pk_b = generate_key_pairs()
    shared = generate_shared_key(sk_a, pk_b)
    assert shared == generate_shared_key(sk_b, pk_a)
    return encrypt(shared, b"share of the seed and of sk1" * 4)


# stage_of, configs_of -----------------------------------------------------------------------------------
def test_stage_of_names_only_secagg_stages() -> None:
    for stage in Stage.all():
        assert stage_of({Key.STAGE: stage}) == stage
    assert stage_of({Key.STAGE: "train"}) is None
    assert stage_of({}) is None
    assert stage_of(None) is None


def test_configs_of_reads_the_secaggplus_record() -> None:
    content = RecordDict({RECORD_KEY_CONFIGS: ConfigRecord({Key.STAGE: Stage.SETUP})})
    configs = configs_of(content)
    assert configs is not None and stage_of(configs) == Stage.SETUP
    assert configs_of(RecordDict({"other": ConfigRecord({Key.STAGE: Stage.SETUP})})) is None
    assert configs_of(RecordDict()) is None


# public keys, setup ------------------------------------------------------------------------------------
def test_flower_ec_key_is_accepted(keys: list[bytes]) -> None:
    assert keys[0].startswith(b"-----BEGIN PUBLIC KEY-----")
    assert public_key_problem(keys[0]) is None


@pytest.mark.parametrize("value, words", [
    ("-----BEGIN PUBLIC KEY-----", f"not bytes of at most {MAX_KEY_BYTES}"),
    (None, "not bytes"),
    (b"", "not bytes"),
    (b"-" * (MAX_KEY_BYTES + 1), f"at most {MAX_KEY_BYTES}"),
    (b"not a pem key at all", "does not parse as a PEM public key"),
    (b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "does not parse as a PEM public key"),
])
def test_public_key_refusals(value: object, words: str) -> None:
    problem = public_key_problem(value)
    assert problem is not None and words in problem


def test_rsa_and_ed25519_keys_are_not_ec_points() -> None:
    rsa_key = _pem(rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key())
    problem = public_key_problem(rsa_key)
    assert problem is not None and problem.startswith("is a ") and "RSAPublicKey, not an EC point" in problem
    problem = public_key_problem(_pem(ed25519.Ed25519PrivateKey.generate().public_key()))
    assert problem is not None and "Ed25519PublicKey, not an EC point" in problem


def test_setup_two_distinct_ec_keys_pass(keys: list[bytes]) -> None:
    assert check_setup({Key.PUBLIC_KEY_1: keys[0], Key.PUBLIC_KEY_2: keys[1]}) is None


def test_setup_refusals(keys: list[bytes]) -> None:
    rsa_key = _pem(rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key())
    assert check_setup({Key.PUBLIC_KEY_1: keys[0], Key.PUBLIC_KEY_2: keys[0]}) == \
        "setup: its two public keys are the same"
    problem = check_setup({Key.PUBLIC_KEY_1: keys[0], Key.PUBLIC_KEY_2: rsa_key})
    assert problem is not None and problem.startswith(f"setup: public key {Key.PUBLIC_KEY_2} is a ")
    assert problem.endswith("RSAPublicKey, not an EC point")
    assert check_setup({Key.PUBLIC_KEY_2: keys[1]}) == \
        f"setup: public key {Key.PUBLIC_KEY_1} not bytes of at most {MAX_KEY_BYTES}"
    problem = check_setup({Key.PUBLIC_KEY_1: b"garbage", Key.PUBLIC_KEY_2: keys[1]})
    assert problem == f"setup: public key {Key.PUBLIC_KEY_1} does not parse as a PEM public key"


def test_duplicate_keys_name_every_holder(keys: list[bytes]) -> None:
    assert duplicate_keys({1: (keys[0], keys[1]), 2: (keys[2], keys[3])}) == {}
    # node 3 copies node 1's second key; node 4 sends one key twice (check_setup refuses that, not this)
    found = duplicate_keys({1: (keys[0], keys[1]), 2: (keys[2], keys[3]), 3: (keys[4], keys[1]),
                            4: (keys[5], keys[5])})
    assert found == {1: "setup: a public key that node(s) 3 also sent",
                     3: "setup: a public key that node(s) 1 also sent"}
    three = duplicate_keys({7: (keys[0], keys[1]), 8: (keys[0], keys[2]), 9: (keys[0], keys[3])})
    assert three == {7: "setup: a public key that node(s) 8, 9 also sent",
                     8: "setup: a public key that node(s) 7, 9 also sent",
                     9: "setup: a public key that node(s) 7, 8 also sent"}


# Fernet tokens, share_keys ------------------------------------------------------------------------------
def test_real_fernet_tokens_are_accepted(token: bytes) -> None:
    assert fernet_problem(token) is None
    assert fernet_problem(Fernet(Fernet.generate_key()).encrypt(b"")) is None   # one padding block


def _with_first_byte(token: bytes, value: int) -> bytes:
    raw = bytearray(base64.urlsafe_b64decode(token))
    raw[0] = value
    return base64.urlsafe_b64encode(bytes(raw))


@pytest.mark.parametrize("make, words", [
    (lambda t: t.decode(), f"not bytes of at most {MAX_CIPHERTEXT_BYTES}"),
    (lambda t: b"", "not bytes of at most"),
    (lambda t: b"A" * (MAX_CIPHERTEXT_BYTES + 1), f"at most {MAX_CIPHERTEXT_BYTES}"),
    (lambda t: t[:-1], "not base64url"),                                     # broken padding
    (lambda t: _with_first_byte(t, 0), "not a Fernet token (version, length)"),
    (lambda t: base64.urlsafe_b64encode(base64.urlsafe_b64decode(t)[:-1]), "not a Fernet token"),
    (lambda t: base64.urlsafe_b64encode(b"\x80" + os.urandom(60)), "not a Fernet token"),   # no AES block
])
def test_fernet_refusals(token: bytes, make, words: str) -> None:   # type: ignore[no-untyped-def]
    problem = fernet_problem(make(token))
    assert problem is not None and words in problem


def _share_reply(dsts: list, ctxts: list) -> dict:
    return {Key.DESTINATION_LIST: dsts, Key.CIPHERTEXT_LIST: ctxts}


def test_share_keys_reply_to_neighbours_passes(token: bytes) -> None:
    assert check_share_keys(1, [1, 2, 3, 4], _share_reply([2, 3, 4], [token] * 3)) is None
    assert check_share_keys(1, [1, 2, 3, 4], _share_reply([3], [token])) is None   # a subset is allowed
    assert check_share_keys(1, [1, 2], _share_reply([], [])) is None


@pytest.mark.parametrize("dsts, count, words", [
    ([2, 3], 3, "share_keys: 2 destinations but 3 ciphertexts"),
    ([2, 3, 4], 2, "share_keys: 3 destinations but 2 ciphertexts"),
    ([2, 2, 3], 3, "share_keys: a destination twice"),
    ([2, 9, 8], 3, "share_keys: destinations [8, 9] are not its neighbours"),
    ([1, 2, 3], 3, "share_keys: destinations [1] are not its neighbours"),        # itself
    ("2,3", 2, "share_keys: destinations must be a list of node ids, ciphertexts a list"),
    ([2, True], 2, "share_keys: destinations must be a list of node ids, ciphertexts a list"),
    ([2.0, 3], 2, "share_keys: destinations must be a list of node ids, ciphertexts a list"),
])
def test_share_keys_list_refusals(token: bytes, dsts: object, count: int, words: str) -> None:
    assert check_share_keys(1, [1, 2, 3, 4], _share_reply(dsts, [token] * count)) == words


def test_share_keys_ciphertext_refusals(token: bytes) -> None:
    assert check_share_keys(1, [1, 2, 3], {Key.DESTINATION_LIST: [2, 3], Key.CIPHERTEXT_LIST: (token, token)}) == \
        "share_keys: destinations must be a list of node ids, ciphertexts a list"
    assert check_share_keys(1, [1, 2, 3], {Key.DESTINATION_LIST: [2]}) == \
        "share_keys: destinations must be a list of node ids, ciphertexts a list"
    problem = check_share_keys(1, [1, 2, 3], _share_reply([2, 3], [token, _with_first_byte(token, 0x81)]))
    assert problem == "share_keys: the ciphertext for node 3 is not a Fernet token (version, length)"
    problem = check_share_keys(1, [1, 2, 3], _share_reply([2, 3], [b"plain share bytes", token]))
    assert problem is not None and problem.startswith("share_keys: the ciphertext for node 2 is not")


# masked vectors ------------------------------------------------------------------------------------------
def masked(rng: np.random.Generator, shapes=SHAPES, modulus: int = MODULUS) -> list[bytes]:  # type: ignore[no-untyped-def]
    """A masked vector as secaggplus_mod sends it: the weight factor then each array, int64 in [0, modulus)."""
    return [ndarray_to_bytes(rng.integers(0, modulus, size=shape, dtype=np.int64)) for shape in [(1,), *shapes]]


def test_masked_vector_in_range_passes() -> None:
    rng = np.random.default_rng(0)
    assert check_masked_vector({Key.MASKED_PARAMETERS: masked(rng)}, SHAPES, MODULUS) is None
    edges = [np.array([0]), np.zeros((3, 4)), np.full((4,), MODULUS - 1)]
    vector = [ndarray_to_bytes(a.astype(np.int64)) for a in edges]
    assert check_masked_vector({Key.MASKED_PARAMETERS: vector}, SHAPES, MODULUS) is None
    empty = [ndarray_to_bytes(np.array([5], dtype=np.int64)), ndarray_to_bytes(np.zeros((0,), dtype=np.int64))]
    assert check_masked_vector({Key.MASKED_PARAMETERS: empty}, [(0,)], MODULUS) is None


def test_masked_vector_refusals() -> None:
    rng = np.random.default_rng(1)
    good = masked(rng)

    def problem(vector: object, shapes=SHAPES, modulus: int = MODULUS) -> str | None:  # type: ignore[no-untyped-def]
        return check_masked_vector({Key.MASKED_PARAMETERS: vector}, shapes, modulus)

    assert problem(None) == "collect_masked_vectors: the masked vector is not a list of arrays"
    assert problem([*good[:2], "text"]) == "collect_masked_vectors: the masked vector is not a list of arrays"
    assert problem(good[:2]) == "collect_masked_vectors: 2 arrays, the model implies 3"
    assert problem([*good, good[1]]) == "collect_masked_vectors: 4 arrays, the model implies 3"
    assert problem([good[0], b"not a npy file", good[2]]) == "collect_masked_vectors: array 1 does not decode"
    as_float = [good[0], ndarray_to_bytes(rng.random((3, 4))), good[2]]
    assert problem(as_float) == "collect_masked_vectors: array 1 is float64[3, 4], expected int64[3, 4]"
    as_int32 = [good[0], good[1], ndarray_to_bytes(np.zeros((4,), dtype=np.int32))]
    assert problem(as_int32) == "collect_masked_vectors: array 2 is int32[4], expected int64[4]"
    transposed = [good[0], ndarray_to_bytes(np.zeros((4, 3), dtype=np.int64)), good[2]]
    assert problem(transposed) == "collect_masked_vectors: array 1 is int64[4, 3], expected int64[3, 4]"
    no_factor = [ndarray_to_bytes(np.zeros((2,), dtype=np.int64)), good[1], good[2]]
    assert problem(no_factor) == "collect_masked_vectors: array 0 is int64[2], expected int64[1]"
    at_modulus = np.zeros((4,), dtype=np.int64)
    at_modulus[3] = MODULUS
    assert problem([good[0], good[1], ndarray_to_bytes(at_modulus)]) == \
        f"collect_masked_vectors: array 2 has values outside [0, {MODULUS})"
    negative = np.zeros((3, 4), dtype=np.int64)
    negative[1, 2] = -1
    assert problem([good[0], ndarray_to_bytes(negative), good[2]]) == \
        f"collect_masked_vectors: array 1 has values outside [0, {MODULUS})"
    # a vector fine under 2**32 is refused under a smaller modulus
    assert problem(good, modulus=2**8) == "collect_masked_vectors: array 0 has values outside [0, 256)"


# unmask ----------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def shares() -> list[bytes]:
    """Flower's Shamir shares of a 32-byte seed (4-byte index, then 16 bytes per padded chunk)."""
    secret = os.urandom(32)
    made = create_shares(secret, 3, 5)
    assert combine_shares(made[:3]) == secret
    return made


def test_unmask_reply_passes(shares: list[bytes]) -> None:
    assert all(len(s) == 4 + 48 for s in shares)
    assert check_unmask([5, 6, 7], {Key.NODE_ID_LIST: [7, 5], Key.SHARE_LIST: shares[:2]}) is None
    assert check_unmask([5], {Key.NODE_ID_LIST: [], Key.SHARE_LIST: []}) is None


def test_unmask_refusals(shares: list[bytes]) -> None:
    def problem(nids: object, values: object, asked=(5, 6, 7)) -> str | None:  # type: ignore[no-untyped-def]
        return check_unmask(asked, {Key.NODE_ID_LIST: nids, Key.SHARE_LIST: values})

    assert problem([5, 6], [shares[0], "text"]) == "unmask: node ids must be a list of ids, shares a list of bytes"
    assert problem((5, 6), shares[:2]) == "unmask: node ids must be a list of ids, shares a list of bytes"
    assert problem([5, 6], tuple(shares[:2])) == "unmask: node ids must be a list of ids, shares a list of bytes"
    assert problem([5, 6], shares[:3]) == "unmask: 2 node ids but 3 shares"
    assert problem([5, 5], shares[:2]) == "unmask: a node id twice"
    assert problem([5, 9, 8], shares[:3]) == "unmask: shares for nodes [8, 9] it was not asked about"
    assert problem([5, 6], [shares[0], shares[1][:-1]]) == \
        "unmask: the share for node 6 is not an index and 16-byte chunks"
    assert problem([6], [shares[0][:4 + 8]]) == "unmask: the share for node 6 is not an index and 16-byte chunks"
    assert problem([7], [shares[0][:4]]) == "unmask: the share for node 7 is not an index and 16-byte chunks"
