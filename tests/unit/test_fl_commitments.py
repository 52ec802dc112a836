"""The signed update commitment, the identity reply and the update root: fixed bytes, the pallet's signature
rule, and the same tree as workers.trajectory."""
from __future__ import annotations

import hashlib

import pytest
from scalecodec.base import RuntimeConfigurationObject
from scalecodec.type_registry import load_type_registry_preset

from devnet.crypto import verify_signature
from devnet.runtime.pallets import federated_types as pallet
from runtime_bindings import Keypair, KeypairType, ModuleError
from runtime_bindings.fl import (
    IDENTITY_CONTEXT,
    UPDATE_CONTEXT,
    Signed,
    UpdateCommitment,
    account_public_key,
    identity_bytes,
    multi_signature,
    sign_identity,
    sign_update,
    signed_update,
    update_commitment_bytes,
    update_leaf,
    update_root,
    verify_identity,
    verify_update,
)
from runtime_bindings.generated import types as t
from runtime_bindings.generated.types import MultiSignatureEd25519, MultiSignatureSr25519
from workers.trajectory import merkle_root

BASE, UPDATE = bytes([0x11]) * 32, bytes([0x22]) * 32
FIELDS = {"task_id": 7, "round": 3, "base_model_hash": BASE, "update_hash": UPDATE, "num_examples": 1234}
# The design's bytes written out by hand: u64 LE, u32 LE, H256, H256, u64 LE.
COMMITMENT_HEX = "0700000000000000" + "03000000" + "11" * 32 + "22" * 32 + "d204000000000000"
CRYPTOS = [pytest.param(KeypairType.SR25519, "Sr25519", id="sr25519"),
           pytest.param(KeypairType.ED25519, "Ed25519", id="ed25519")]

# The pallet's declarations restated as a scalecodec registry: a second, independent encoder.
STAND_IN = {
    "FlCommitment": {"type": "struct", "type_mapping": [
        ["task_id", "u64"], ["round", "u32"], ["base_model_hash", "H256"], ["update_hash", "H256"],
        ["num_examples", "u64"]]},
    "FlLeaf": "(AccountId, FlCommitment)",
    "FlIdentity": "(u64, u64, u64)",
    "FlSignedUpdate": {"type": "struct", "type_mapping": [
        ["client", "AccountId"], ["update_hash", "H256"], ["num_examples", "u64"], ["signature", "MultiSignature"]]},
}


def scalecodec_encode(type_string: str, value: object) -> bytes:
    config = RuntimeConfigurationObject()
    config.update_type_registry(load_type_registry_preset("core"))
    config.update_type_registry({"types": STAND_IN})
    return bytes(config.create_scale_object(type_string).encode(value).data)


def keypair(crypto: int, seed: int = 1) -> Keypair:
    return Keypair.create_from_seed("0x" + f"{seed:02x}" * 32, crypto_type=crypto)


def test_commitment_bytes_are_the_fixed_vector() -> None:
    message = update_commitment_bytes(**FIELDS)
    assert message == b"paratrain/fl-update/v1" + bytes.fromhex(COMMITMENT_HEX)
    assert message == UPDATE_CONTEXT + UpdateCommitment(**FIELDS).scale()
    # hashes given as 0x-hex give the same bytes
    assert update_commitment_bytes(7, 3, "0x" + BASE.hex(), "0x" + UPDATE.hex(), 1234) == message


def test_commitment_matches_scalecodec() -> None:
    commitment = UpdateCommitment(task_id=2**64 - 1, round=2**32 - 1, base_model_hash=BASE, update_hash=UPDATE,
                                  num_examples=2**63 + 5)
    plain = {"task_id": commitment.task_id, "round": commitment.round, "base_model_hash": "0x" + BASE.hex(),
             "update_hash": "0x" + UPDATE.hex(), "num_examples": commitment.num_examples}
    assert commitment.scale() == scalecodec_encode("FlCommitment", plain)


@pytest.mark.parametrize(("crypto", "scheme"), CRYPTOS)
def test_sign_and_verify_round_trip(crypto: int, scheme: str) -> None:
    client = keypair(crypto)
    signed = sign_update(client, **FIELDS)
    assert isinstance(signed, Signed) and signed.scheme == scheme and len(signed.signature) == 64
    # the pallet's own check accepts exactly what the client signs
    assert verify_signature(scheme, signed.signature, update_commitment_bytes(**FIELDS), client.public_key)
    for signer in (client, client.public_key, client.ss58_address, "0x" + client.public_key.hex()):
        assert verify_update(signer, signed.scheme, signed.signature, **FIELDS)
    assert verify_update(client.ss58_address, scheme.lower(), "0x" + signed.signature.hex(), **FIELDS)


@pytest.mark.parametrize(("crypto", "scheme"), CRYPTOS)
@pytest.mark.parametrize(("field", "value"), [("task_id", 8), ("round", 4), ("base_model_hash", UPDATE),
                                              ("update_hash", BASE), ("num_examples", 1235)])
def test_any_other_field_fails_verification(crypto: int, scheme: str, field: str, value: object) -> None:
    client = keypair(crypto)
    signed = sign_update(client, **FIELDS)
    assert not verify_update(client, signed.scheme, signed.signature, **{**FIELDS, field: value})


@pytest.mark.parametrize(("crypto", "scheme"), CRYPTOS)
def test_wrong_signer_scheme_or_bytes_fail(crypto: int, scheme: str) -> None:
    client, other = keypair(crypto), keypair(crypto, seed=2)
    signed = sign_update(client, **FIELDS)
    other_scheme = "Ed25519" if scheme == "Sr25519" else "Sr25519"
    assert not verify_update(other, signed.scheme, signed.signature, **FIELDS)
    assert not verify_update(client, other_scheme, signed.signature, **FIELDS)
    assert not verify_update(client, "Ecdsa", signed.signature, **FIELDS)
    assert not verify_update(client, signed.scheme, signed.signature[:63], **FIELDS)
    assert not verify_update(client, signed.scheme, "0xnothex", **FIELDS)
    assert not verify_update("not-an-address", signed.scheme, signed.signature, **FIELDS)
    assert not verify_update(client, signed.scheme, signed.signature, **{**FIELDS, "base_model_hash": b"\x11" * 31})
    assert not verify_update(client, signed.scheme, signed.signature, **{**FIELDS, "round": -1})
    # the bare SCALE without the domain prefix is not a valid update signature
    raw = bytes(client.sign(UpdateCommitment(**FIELDS).scale()))
    assert not verify_update(client, signed.scheme, raw, **FIELDS)


def test_ecdsa_keys_cannot_sign() -> None:
    ecdsa = Keypair.create_from_private_key("0x" + "03" * 32, crypto_type=KeypairType.ECDSA)
    with pytest.raises(ValueError, match="sr25519 or ed25519"):
        sign_update(ecdsa, **FIELDS)
    with pytest.raises(ValueError, match="sr25519 or ed25519"):
        sign_identity(ecdsa, 1, 2, 3)


@pytest.mark.parametrize(("change", "message"), [
    ({"base_model_hash": b"\x11" * 31}, "base_model_hash must be 32 bytes"),
    ({"update_hash": "0x" + "zz" * 32}, "update_hash is not hex"),
    ({"round": 2**32}, "round must be an integer"),
    ({"task_id": -1}, "task_id must be an integer"),
    ({"num_examples": True}, "num_examples must be an integer"),
    ({"num_examples": 2**64}, "num_examples must be an integer"),
])
def test_malformed_commitment_is_a_clear_error(change: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        update_commitment_bytes(**{**FIELDS, **change})  # type: ignore[arg-type]


def test_identity_bytes_are_the_fixed_vector() -> None:
    expected = "0700000000000000" + "0100000000000080" + "ffffffffffffffff"
    assert identity_bytes(7, 2**63 + 1, 2**64 - 1) == b"paratrain/fl-identity/v1" + bytes.fromhex(expected)
    assert identity_bytes(7, 9, 10)[len(IDENTITY_CONTEXT):] == scalecodec_encode("FlIdentity", (7, 9, 10))
    with pytest.raises(ValueError, match="node_id"):
        identity_bytes(7, -1, 10)


@pytest.mark.parametrize(("crypto", "scheme"), CRYPTOS)
def test_identity_sign_and_verify(crypto: int, scheme: str) -> None:
    client, other = keypair(crypto), keypair(crypto, seed=2)
    signed = sign_identity(client, 7, 123456789, 42)
    assert signed.scheme == scheme
    assert verify_signature(scheme, signed.signature, identity_bytes(7, 123456789, 42), client.public_key)
    assert verify_identity(client.ss58_address, signed.scheme, signed.signature, 7, 123456789, 42)
    for task, node, run in ((8, 123456789, 42), (7, 123456780, 42), (7, 123456789, 43)):
        assert not verify_identity(client, signed.scheme, signed.signature, task, node, run)
    assert not verify_identity(other, signed.scheme, signed.signature, 7, 123456789, 42)
    assert not verify_identity(client, signed.scheme, signed.signature, 7, -5, 42)


def test_update_and_identity_signatures_are_not_interchangeable() -> None:
    client = keypair(KeypairType.ED25519)  # deterministic signatures: the same key, two domains
    update = sign_update(client, task_id=7, round=1, base_model_hash=BASE, update_hash=UPDATE, num_examples=1)
    identity = sign_identity(client, 7, 1, 1)
    assert update.signature != identity.signature
    assert not verify_identity(client, identity.scheme, update.signature, 7, 1, 1)


def test_leaf_is_blake2_of_account_and_commitment() -> None:
    client = keypair(KeypairType.SR25519)
    commitment = UpdateCommitment(**FIELDS)
    plain = (client.ss58_address, {"task_id": 7, "round": 3, "base_model_hash": "0x" + BASE.hex(),
                                   "update_hash": "0x" + UPDATE.hex(), "num_examples": 1234})
    expected = hashlib.blake2b(scalecodec_encode("FlLeaf", plain), digest_size=32).digest()
    assert update_leaf(client, commitment) == expected
    assert update_leaf(client.ss58_address, commitment) == update_leaf(client.public_key, commitment) == expected
    assert update_leaf(keypair(KeypairType.SR25519, seed=2), commitment) != expected


@pytest.mark.parametrize("n", [0, 1, 2, 3, 4, 5, 7, 8, 9, 17])
def test_root_is_the_trajectory_merkle_tree_hash(n: int) -> None:
    leaves = [hashlib.blake2b(bytes([i]), digest_size=32).digest() for i in range(n)]
    assert update_root(leaves) == merkle_root(leaves)


def test_root_depends_on_order_and_every_leaf() -> None:
    leaves = [hashlib.blake2b(bytes([i]), digest_size=32).digest() for i in range(5)]
    root = update_root(leaves)
    assert update_root(leaves[::-1]) != root
    assert update_root(leaves[:4]) != root
    assert update_root([*leaves[:4], bytes(32)]) != root
    with pytest.raises(ValueError, match="leaf must be 32 bytes"):
        update_root([b"short"])


@pytest.mark.parametrize(("crypto", "scheme"), CRYPTOS)
def test_signed_update_encodes_as_the_call_entry(crypto: int, scheme: str) -> None:
    client = keypair(crypto)
    signed = sign_update(client, **FIELDS)
    entry = signed_update(client.ss58_address, UPDATE, 1234, signed.scheme, signed.signature)
    variant = 0 if scheme == "Ed25519" else 1  # sp_runtime::MultiSignature: Ed25519, Sr25519, Ecdsa
    expected = client.public_key + UPDATE + (1234).to_bytes(8, "little") + bytes([variant]) + signed.signature
    assert scalecodec_encode("FlSignedUpdate", entry) == expected
    expected_class = MultiSignatureSr25519 if scheme == "Sr25519" else MultiSignatureEd25519
    assert isinstance(multi_signature(scheme.lower(), "0x" + signed.signature.hex()), expected_class)


@pytest.mark.parametrize(("scheme", "signature", "message"), [
    ("Ecdsa", b"\x00" * 64, "unknown signature scheme"),
    ("Sr25519", b"\x00" * 65, "a signature is 64 bytes"),
    ("Sr25519", "0xzz", "signature is not hex"),
])
def test_malformed_signature_values_are_refused(scheme: str, signature: bytes | str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        multi_signature(scheme, signature)


def test_account_public_key_forms_and_refusals() -> None:
    client = keypair(KeypairType.SR25519)
    assert account_public_key(client.ss58_address) == account_public_key(client) == client.public_key
    with pytest.raises(ValueError, match="32 bytes"):
        account_public_key(b"\x01" * 31)
    with pytest.raises(ValueError, match="not an SS58 address"):
        account_public_key("5notanaddress")


# The pallet's own encoder (devnet.runtime.pallets.federated_types) against the bindings' ------------------
def pallet_commitment(commitment: UpdateCommitment) -> dict[str, object]:
    return {"task_id": commitment.task_id, "round": commitment.round, "base_model_hash": commitment.base_model_hash,
            "update_hash": commitment.update_hash, "num_examples": commitment.num_examples}


@pytest.mark.parametrize("commitment", [
    UpdateCommitment(**FIELDS),
    UpdateCommitment(task_id=2**64 - 1, round=2**32 - 1, base_model_hash=bytes(range(32)),
                     update_hash=bytes(range(32, 64)), num_examples=2**64 - 1),
    UpdateCommitment(task_id=0, round=0, base_model_hash=bytes(32), update_hash=bytes(32), num_examples=0),
], ids=["typical", "maxima", "zeros"])
def test_pallet_encodes_message_and_leaf_alike(commitment: UpdateCommitment) -> None:
    client = keypair(KeypairType.SR25519)
    assert pallet.update_message(pallet_commitment(commitment)) == commitment.signing_payload()
    assert pallet.UPDATE_DOMAIN == UPDATE_CONTEXT
    assert pallet.update_leaf(client.public_key, pallet_commitment(commitment)) == update_leaf(client, commitment)


@pytest.mark.parametrize("n", [0, 1, 2, 3, 6, 11])
def test_pallet_root_equals_bindings_root(n: int) -> None:
    clients = sorted((keypair(KeypairType.SR25519, seed=i + 1) for i in range(n)), key=lambda k: k.public_key)
    leaves = [update_leaf(c, UpdateCommitment(**{**FIELDS, "num_examples": i + 1})) for i, c in enumerate(clients)]
    assert pallet.merkle_root(leaves) == update_root(leaves) == merkle_root(leaves)


def test_bindings_signatures_commit_on_the_pallet(chain) -> None:
    """Signatures from sign_update, entries from signed_update, through the generated commit_round: the pallet
    verifies every one (sr25519 and ed25519) and stores the root update_root computes; one entry signed for
    another round is the pallet's BadUpdateSignature."""
    unit = 10**12
    alice, bob = Keypair.create_from_uri("//Alice"), Keypair.create_from_uri("//Bob")
    clients = [Keypair.create_from_uri("//Charlie"), Keypair.create_from_uri("//Dave"), keypair(KeypairType.ED25519)]
    chain.balances.transfer_keep_alive(alice, clients[2].ss58_address, 50 * unit)
    chain.workers.register(bob, "Trainer", chain.constant("Workers", "MinTrainerStake"),
                           t.Capabilities(8, 0, "", 16_000))
    spec = {"recipe": b"digits_mlp", "spec_hash": "0x" + "11" * 32, "spec_uri": b"file:///spec.json",
            "initial_model_hash": "0x" + BASE.hex(), "eval_metric": b"accuracy", "eval_target": 800_000,
            "higher_is_better": True, "rounds": 2, "min_clients_per_round": 3, "fraction_per_round": 10**9,
            "max_clients": 4, "rule": "FedAvg", "client_share": 600_000_000, "min_client_stake": unit,
            "aggregate_tolerance": 0, "requirements": {"min_cpus": 1, "min_gpus": 0, "min_memory_mb": 1_000}}
    join_deadline = chain.best_number() + 6
    receipt = chain.federated_tasks.create_task(alice, spec, 10 * unit, join_deadline, join_deadline + 200, 1, None)
    task = next(e.task for e in receipt.events if e.name == "TaskCreated")
    for i, client in enumerate(clients):
        chain.federated_tasks.join(client, task, "0x" + f"{i + 1:02x}" * 32, 100 + i, unit)
    while chain.best_number() < join_deadline:
        chain.system.remark(alice, b"tick")
    chain.federated_tasks.claim_aggregator(bob, task, b"127.0.0.1:9092")

    ordered = sorted(clients, key=lambda k: k.public_key)
    entries, leaves = [], []
    for i, client in enumerate(ordered):
        update = bytes([0x30 + i]) * 32
        signed = sign_update(client, task, 1, BASE, update, 100)
        entries.append(signed_update(client, update, 100, *signed))
        leaves.append(update_leaf(client, UpdateCommitment(task, 1, BASE, update, 100)))
    assert {next(iter(e["signature"])) for e in entries} == {"Sr25519", "Ed25519"}
    forged = [*entries[:2], signed_update(ordered[2], bytes([0x32]) * 32, 100,
                                          *sign_update(ordered[2], task, 2, BASE, bytes([0x32]) * 32, 100))]
    args = (bob, task, 1, "0x" + BASE.hex(), "0x" + "9a" * 32, "0x" + "d0" * 32, b"file:///rounds/1")
    with pytest.raises(ModuleError, match="BadUpdateSignature"):
        chain.federated_tasks.commit_round(*args, forged)
    assert chain.federated_tasks.rounds(task, 1) is None
    receipt = chain.federated_tasks.commit_round(*args, entries)
    committed = next(e for e in receipt.events if e.name == "RoundCommitted")
    stored = chain.federated_tasks.rounds(task, 1)
    assert bytes(stored.update_root) == bytes(committed.update_root) == update_root(leaves)
    assert [account_public_key(a) for a, _ in stored.participants] == [k.public_key for k in ordered]
