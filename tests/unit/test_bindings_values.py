"""runtime_bindings.values and the generated types built on them: what scalecodec decodes becomes one typed
value (bytes, accounts, tagged enums), and goes back into calls and signatures unchanged."""
from __future__ import annotations

import functools

import pytest

from devnet.metadata import encode_metadata
from devnet.runtime.runtime import Runtime
from runtime_bindings import AttestationCodec, Keypair
from runtime_bindings.base import to_scale_value
from runtime_bindings.generated import types as t
from runtime_bindings.values import H256, METRIC_SCALE, AccountId, Bytes

ALICE = Keypair.create_from_uri("//Alice")


@functools.cache
def devnet_codec() -> AttestationCodec:
    return AttestationCodec.from_metadata(encode_metadata(Runtime()))


def test_bytes_undo_scalecodecs_text_or_hex() -> None:
    assert Bytes.from_value("s3://bucket/model.pt") == b"s3://bucket/model.pt"
    assert Bytes.from_value("0xfffe") == b"\xff\xfe"        # hex only of bytes that are not UTF-8
    assert Bytes.from_value("0x41") == b"0x41"              # UTF-8 bytes come back as text: this is the text
    assert Bytes.from_value(b"\x00\xff") == b"\x00\xff" and Bytes.from_value([1, 2]) == b"\x01\x02"
    assert Bytes(b"accuracy").text == "accuracy" and Bytes(b"\xff\xfe").text == "0xfffe"
    assert Bytes(b"\xc3\xa9").text == "é" and Bytes(b"ab").hex() == "6162"


def test_hashes_are_32_bytes_printed_as_0x_hex() -> None:
    h = H256("0x" + "ab" * 32)
    assert h == b"\xab" * 32 and h.hex() == "ab" * 32 and str(h) == "0x" + "ab" * 32
    assert H256.from_value(str(h)) == h and H256(bytes(h)) == h
    with pytest.raises(ValueError, match="32 bytes"):
        H256(b"\x00" * 31)
    with pytest.raises(ValueError, match="0x-hex"):
        H256("ab" * 32)


def test_an_account_is_its_ss58_address() -> None:
    account = AccountId.from_value(ALICE.ss58_address)
    assert account == ALICE.ss58_address and hash(account) == hash(ALICE.ss58_address)
    assert account.ss58 == ALICE.ss58_address and type(account.ss58) is str
    assert account.public_key == ALICE.public_key


def test_enums_are_tagged_classes() -> None:
    claimed = t.TaskStatus.from_value({"Claimed": {"worker": ALICE.ss58_address, "lease_until": 42}})
    assert isinstance(claimed, t.TaskStatus.Claimed) and claimed.worker == ALICE.ss58_address
    assert claimed.name == "Claimed" and claimed != "Claimed"  # a variant with data is not its name
    match claimed:
        case t.TaskStatus.Claimed(worker=worker, lease_until=lease):
            assert (worker, lease) == (ALICE.ss58_address, 42)
        case _:
            pytest.fail("no match")
    assert t.TaskStatus.from_value("Open") is t.TaskStatus.Open
    assert t.TaskStatus.Open == "Open" and t.TaskStatus.Open != "Expired" and "Open" in ("Open",)
    assert t.TaskStatus.Open != t.TaskStatus.Expired and str(t.TaskStatus.Expired) == "Expired"
    unbonding = t.WorkerStatus.from_value({"Unbonding": {"unlock_at": 9}})
    assert unbonding.unlock_at == 9 and unbonding != t.WorkerStatus.Active
    with pytest.raises(ValueError, match="TaskStatus has no variant 'Paused'"):
        t.TaskStatus.from_value("Paused")


def test_enums_go_back_as_scalecodec_values() -> None:
    assert to_scale_value(t.TaskStatus.Open) == "Open"
    claimed = t.TaskStatus.Claimed(worker=AccountId(ALICE.ss58_address), lease_until=3)
    assert to_scale_value(claimed) == {"Claimed": {"worker": ALICE.ss58_address, "lease_until": 3}}
    assert t.TaskStatus.from_value(to_scale_value(claimed)) == claimed
    signature = t.MultiSignature.Sr25519(t.Signature(b"\x01" * 64))
    assert to_scale_value(signature) == {"Sr25519": "0x" + "01" * 64}


def test_a_typed_attestation_encodes_as_its_scalecodec_form() -> None:
    """The attestation the worker builds, the chain stores and the validator reads is one type: it signs to the
    same bytes as the plain form scalecodec decodes, so a signature survives the round trip through the chain."""
    plain = {"task_id": 7, "worker": ALICE.ss58_address, "model_hash": "0x" + "11" * 32,
             "artifact_uri": "s3://bucket/model.pt", "metrics": [("accuracy", 912_000), ("0xff", -5)],
             "trajectory_root": "0x" + "22" * 32, "checkpoints": ["0x" + "33" * 32],
             "code_hash": "0x" + "55" * 32, "dataset_hash": "0x" + "66" * 32, "started_ms": 1, "finished_ms": 2}
    typed = t.Attestation.from_value(plain)
    assert typed.metrics == [(b"accuracy", 912_000), (b"\xff", -5)] and isinstance(typed.model_hash, H256)
    codec = devnet_codec()
    assert codec.encode(typed) == codec.encode({**plain, "metrics": [(b"accuracy", 912_000), (b"\xff", -5)]})
    assert codec.verify(typed, codec.sign(typed, ALICE), ALICE.ss58_address)


def test_metrics_are_micro_units() -> None:
    assert round(0.97 * METRIC_SCALE) == 970_000


def test_a_stored_multisignature_verifies_as_its_dict_form() -> None:
    typed = t.Attestation.from_value({"task_id": 1, "worker": ALICE.ss58_address, "model_hash": "0x" + "11" * 32,
                                      "artifact_uri": "u", "metrics": [], "trajectory_root": "0x" + "22" * 32,
                                      "checkpoints": [], "code_hash": "0x" + "33" * 32,
                                      "dataset_hash": "0x" + "44" * 32, "started_ms": 1, "finished_ms": 2})
    codec = devnet_codec()
    signature = t.MultiSignature.from_value(codec.multi_signature(typed, ALICE))
    assert isinstance(signature, t.MultiSignature.Sr25519)
    assert codec.verify(typed, signature, ALICE.ss58_address)
    assert not codec.verify(typed, t.MultiSignature.Ed25519(signature.field_0), ALICE.ss58_address)
