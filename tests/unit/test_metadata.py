"""Metadata V14 as a client reads it: decoded by scalecodec and compared with the pallets' declarations.

Every check goes through the bytes a node serves (`encode_metadata`) decoded by
scalecodec, never through devnet's own intermediate value, so what is
verified is what py-substrate-interface and Polkadot.js actually see.
"""
from __future__ import annotations

import copy
import hashlib
from typing import Any

import pytest
from xt_builder import (
    default_reference,
    default_runtime,
    dev_keypair,
    signed_extrinsic,
    specs_from_registry,
    transfer,
    transfer_call,
)

from devnet.chain import Chain
from devnet.metadata import METADATA_MAGIC, encode_metadata, metadata_value
from devnet.runtime.apis import (
    PREDICT_INPUT,
    PREDICT_OUTPUT,
    SUPPORTED_METADATA_VERSIONS,
    FeeDetails,
    RuntimeApiError,
    RuntimeDispatchInfo,
    ValidTransactionType,
    call_runtime_api,
)
from devnet.runtime.framework import Pallet
from devnet.runtime.pallets.collab import CollaborativeModels
from devnet.runtime.primitives import Era, MultiAddress, MultiSignature, RuntimeVersion
from devnet.runtime.runtime import (
    API_VERSIONS,
    EXISTENTIAL_DEPOSIT,
    SIGNED_EXTENSIONS,
    SS58_PREFIX,
    Runtime,
)
from devnet.scale.codec import codec_for
from devnet.scale.types import (
    H256,
    U32,
    U128,
    Bytes,
    Compact,
    Composite,
    Option,
    Sequence,
    Tuple,
    TypeSpec,
)

RUNTIME = default_runtime()
REF = default_reference()
METADATA = REF.metadata_bytes
DECODED = REF.metadata.value[1]["V14"]
SPECS = specs_from_registry(DECODED["types"]["types"])
PALLETS = {p["name"]: p for p in DECODED["pallets"]}
PALLET_OBJECTS = {p.value["name"]: p for p in REF.metadata.pallets}

FRAME_EXTENSIONS = ("CheckNonZeroSender", "CheckSpecVersion", "CheckTxVersion", "CheckGenesis", "CheckMortality",
                    "CheckNonce", "CheckWeight", "ChargeTransactionPayment")


def spec(type_id: int) -> TypeSpec:
    return SPECS[type_id]


def raw(scale_obj: Any) -> bytes:
    """The raw bytes of a decoded `Bytes` field (scalecodec's value shows text where it can)."""
    return bytes(scale_obj.value_object)


def _pallet_ids() -> list[str]:
    return [p.name for p in RUNTIME.pallets]


# Decoding --------------------------------------------------------------------------------------------

def test_prefix_version_and_full_decode() -> None:
    assert METADATA[:4] == bytes.fromhex(METADATA_MAGIC[2:]) == b"meta"
    assert METADATA[4] == 14
    # load_reference decoded the bytes completely (scalecodec raises on leftovers), and scalecodec
    # re-encodes its decoding to the same bytes: nothing was lost or guessed
    assert REF.metadata.data.offset == len(METADATA)
    again = REF.config.create_scale_object("MetadataVersioned")
    assert bytes(again.encode(copy.deepcopy(REF.metadata.value)).data) == METADATA  # encode mutates its input


def test_registry_survives_encoding() -> None:
    assert DECODED["types"]["types"] == metadata_value(RUNTIME)[1]["V14"]["types"]["types"]


def test_encoding_is_deterministic() -> None:
    assert encode_metadata(Runtime()) == METADATA


def test_registry_ids_are_dense_and_every_reference_resolves() -> None:
    types = DECODED["types"]["types"]
    assert [t["id"] for t in types] == list(range(len(types)))

    def refs(definition: dict[str, Any]) -> list[int]:
        kind, body = next(iter(definition.items()))
        if kind == "composite":
            return [f["type"] for f in body["fields"]]
        if kind == "variant":
            return [f["type"] for v in body["variants"] for f in v["fields"]]
        if kind in ("sequence", "array", "compact"):
            return [body["type"]]
        if kind == "tuple":
            return list(body)
        return []

    for t in types:
        for ref in refs(t["type"]["def"]) + [p["type"] for p in t["type"]["params"] if p["type"] is not None]:
            assert 0 <= ref < len(types), (t["id"], ref)
        if "variant" in t["type"]["def"]:
            variants = t["type"]["def"]["variant"]["variants"]
            assert len({v["index"] for v in variants}) == len(variants), t["type"]["path"]
            assert len({v["name"] for v in variants}) == len(variants), t["type"]["path"]


# Pallets -------------------------------------------------------------------------------------------

def test_pallet_list() -> None:
    assert [(p["name"], p["index"]) for p in DECODED["pallets"]] == [(p.name, p.index) for p in RUNTIME.pallets]
    indices = [p.index for p in RUNTIME.pallets]
    assert indices == sorted(set(indices)), "pallet indices are unique and in ascending order"
    assert [p.name for p in RUNTIME.pallets][:1] == ["System"]


@pytest.mark.parametrize("name", _pallet_ids())
def test_storage_entries(name: str) -> None:
    pallet = next(p for p in RUNTIME.pallets if p.name == name)
    items = RUNTIME.storage_items(pallet)
    decoded = PALLETS[name]["storage"]
    if not items:
        assert decoded is None
        return
    assert decoded["prefix"] == name
    entries = PALLET_OBJECTS[name].value_object["storage"].value_object["entries"].elements
    assert [e.value["name"] for e in entries] == [i.name for i in items]
    for item, entry in zip(items, entries):
        value = entry.value
        assert value["modifier"] == ("Optional" if item.default is None else "Default"), item.name
        if item.keys:
            mapping = value["type"]["Map"]
            assert mapping["hashers"] == [hasher for hasher, _ in item.keys], item.name
            assert spec(mapping["key"]) == item.key_type, item.name
            assert spec(mapping["value"]) == item.value, item.name
        else:
            assert spec(value["type"]["Plain"]) == item.value, item.name
        default = raw(entry.value_object["default"])
        assert default == item.default_bytes, item.name
        if item.default is None:
            assert default == b"\x00"  # an OptionQuery's default is None
        else:
            assert codec_for(item.value).decode(default) == item.default, item.name
        assert value["documentation"] == ([item.docs] if item.docs else []), item.name


def test_system_storage_order_matches_frame() -> None:
    names = [e["name"] for e in PALLETS["System"]["storage"]["entries"]]
    assert names.index("Digest") + 1 == names.index("Events")
    assert {"Account", "BlockHash", "Number", "ParentHash", "Events", "EventCount", "EventTopics"} <= set(names)


def _variants(type_id: int) -> list[dict[str, Any]]:
    return DECODED["types"]["types"][type_id]["type"]["def"]["variant"]["variants"]


@pytest.mark.parametrize("name", _pallet_ids())
def test_calls(name: str) -> None:
    pallet: Pallet = next(p for p in RUNTIME.pallets if p.name == name)
    calls = PALLETS[name]["calls"]
    if not pallet.calls:
        assert calls is None
        return
    assert spec(calls["ty"]) == pallet.call_type()
    variants = _variants(calls["ty"])
    assert [(v["name"], v["index"]) for v in variants] == [(c.name, c.index) for c in pallet.calls]
    for variant, declared in zip(variants, pallet.calls):
        assert [(f["name"], f["typeName"]) for f in variant["fields"]] == [(a.name, a.type_name) for a in declared.args]
        assert [spec(f["type"]) for f in variant["fields"]] == [a.ty for a in declared.args]
        assert all(f["name"] for f in variant["fields"]), "call arguments are named, as FRAME's are"
    # scalecodec finds each call by (pallet index, call index), as GenericCall decoding does
    for declared in pallet.calls:
        found = REF.metadata.get_metadata_pallet(name)
        assert found["index"].value == pallet.index
        call_variant = REF.config.get_decoder_class(f"scale_info::{calls['ty']}").scale_info_type["def"][1]
        assert call_variant.get_variant_by_index(declared.index).value["name"] == declared.name


@pytest.mark.parametrize("name", _pallet_ids())
def test_events(name: str) -> None:
    pallet = next(p for p in RUNTIME.pallets if p.name == name)
    event = PALLETS[name]["event"]
    if not pallet.events:
        assert event is None
        return
    assert spec(event["ty"]) == pallet.event_type()
    variants = _variants(event["ty"])
    assert [(v["name"], v["index"]) for v in variants] == [(e.name, i) for i, e in enumerate(pallet.events)]
    for variant, declared in zip(variants, pallet.events):
        assert [f["name"] for f in variant["fields"]] == [f.name for f in declared.fields]
        assert [spec(f["type"]) for f in variant["fields"]] == [f.ty for f in declared.fields]
        assert variant["docs"] == ([declared.docs] if declared.docs else [])


@pytest.mark.parametrize("name", _pallet_ids())
def test_errors(name: str) -> None:
    pallet = next(p for p in RUNTIME.pallets if p.name == name)
    error = PALLETS[name]["error"]
    if not pallet.errors:
        assert error is None
        return
    assert spec(error["ty"]) == pallet.error_type()
    variants = _variants(error["ty"])
    assert [(v["name"], v["index"], v["fields"]) for v in variants] == [
        (e.name, i, []) for i, e in enumerate(pallet.errors)]
    for index, declared in enumerate(pallet.errors):
        # as ExtrinsicReceipt resolves a DispatchError::Module
        assert REF.metadata.get_module_error(pallet.index, index).value["name"] == declared.name
        assert pallet.error(declared.name).value == ("Module", {"index": pallet.index,
                                                                 "error": bytes((index, 0, 0, 0))})


@pytest.mark.parametrize("name", _pallet_ids())
def test_constants(name: str) -> None:
    pallet = next(p for p in RUNTIME.pallets if p.name == name)
    constants = PALLET_OBJECTS[name].value_object["constants"].elements
    assert [c.value["name"] for c in constants] == [c.name for c in pallet.constants]
    for constant, declared in zip(constants, pallet.constants):
        assert spec(constant.value["type"]) == declared.ty, declared.name
        value = raw(constant.value_object["value"])
        assert value == codec_for(declared.ty).encode(declared.value), declared.name
        assert codec_for(declared.ty).decode(value) == declared.value, declared.name
        # a client decodes the constant with the registry type it names
        REF.decode(f"scale_info::{constant.value['type']}", value)


def _constant(pallet: str, name: str) -> Any:
    """A constant as substrate-interface's get_constant decodes it."""
    constant = next(c for c in PALLET_OBJECTS[pallet].value_object["constants"].elements
                    if c.value["name"] == name)
    return REF.decode(f"scale_info::{constant.value['type']}", raw(constant.value_object["value"]))


def test_well_known_constant_values() -> None:
    assert _constant("System", "SS58Prefix") == SS58_PREFIX
    assert _constant("System", "BlockHashCount") == 4096
    assert _constant("Balances", "ExistentialDeposit") == EXISTENTIAL_DEPOSIT
    assert _constant("Timestamp", "MinimumPeriod") == 3000
    version = _constant("System", "Version")
    assert version["spec_name"] == RUNTIME.version["spec_name"]
    assert version["spec_version"] == RUNTIME.spec_version
    assert version["transaction_version"] == RUNTIME.transaction_version
    assert version["apis"] == [("0x" + h.hex(), v) for h, v in RUNTIME.version["apis"]]


def test_outer_enums_index_variants_by_pallet_index() -> None:
    for outer, kind in ((RUNTIME.call_type, "call_type"), (RUNTIME.event_type, "event_type"),
                        (RUNTIME.error_type, "error_type")):
        expected = [(p.name, p.index) for p in RUNTIME.pallets if getattr(p, kind)()]
        assert [(v.name, v.index) for v in outer.variants] == expected
        for variant in outer.variants:
            assert variant.fields[0].ty == getattr(RUNTIME.by_index[variant.index], kind)()
    assert spec(DECODED["runtime_type"]) == RUNTIME.runtime_type
    assert SPECS.count(RUNTIME.error_type) == 1, "RuntimeError is in the registry for clients to name errors"


def test_event_record_storage_type_names_the_runtime_event() -> None:
    events = next(e for e in PALLETS["System"]["storage"]["entries"] if e["name"] == "Events")
    record = spec(events["type"]["Plain"])
    assert isinstance(record, type(Sequence(U32)))
    record_type = record.inner  # type: ignore[union-attr]
    assert isinstance(record_type, Composite) and record_type.path == ("frame_system", "EventRecord")
    assert [p.name for p in record_type.params] == ["E", "T"]
    assert record_type.params[0].ty == RUNTIME.event_type


# The extrinsic -------------------------------------------------------------------------------------

def test_signed_extensions_are_frames_eight_in_order() -> None:
    extensions = DECODED["extrinsic"]["signed_extensions"]
    assert [e["identifier"] for e in extensions] == list(FRAME_EXTENSIONS)
    by_name = {e["identifier"]: e for e in extensions}
    explicit = {name: spec(e["ty"]) for name, e in by_name.items()}
    implicit = {name: spec(e["additional_signed"]) for name, e in by_name.items()}
    # what each extension adds to the extrinsic ...
    for name in ("CheckNonZeroSender", "CheckSpecVersion", "CheckTxVersion", "CheckGenesis", "CheckWeight"):
        assert explicit[name].fields == (), name  # type: ignore[union-attr]
    assert [f.ty for f in explicit["CheckMortality"].fields] == [Era]  # type: ignore[union-attr]
    assert [f.ty for f in explicit["CheckNonce"].fields] == [Compact(U32)]  # type: ignore[union-attr]
    assert [f.ty for f in explicit["ChargeTransactionPayment"].fields] == [Compact(U128)]  # type: ignore[union-attr]
    # ... and to the signed payload
    assert implicit == {"CheckNonZeroSender": Tuple(), "CheckSpecVersion": U32, "CheckTxVersion": U32,
                        "CheckGenesis": H256, "CheckMortality": H256, "CheckNonce": Tuple(), "CheckWeight": Tuple(),
                        "ChargeTransactionPayment": Tuple()}
    assert [e.identifier for e in SIGNED_EXTENSIONS] == list(FRAME_EXTENSIONS)
    # substrate-interface reads them the same way
    assert list(REF.metadata.get_signed_extensions()) == list(FRAME_EXTENSIONS)


def test_extrinsic_type_params() -> None:
    extrinsic = DECODED["extrinsic"]
    assert extrinsic["version"] == 4
    ty = DECODED["types"]["types"][extrinsic["ty"]]["type"]
    assert ty["path"] == ["sp_runtime", "generic", "unchecked_extrinsic", "UncheckedExtrinsic"]
    params = {p["name"]: spec(p["type"]) for p in ty["params"]}
    assert [p["name"] for p in ty["params"]] == ["Address", "Call", "Signature", "Extra"]
    assert params["Address"] == MultiAddress
    assert params["Call"] == RUNTIME.call_type
    assert params["Signature"] == MultiSignature
    assert params["Extra"] == Tuple(tuple(spec(e["ty"]) for e in extrinsic["signed_extensions"]))
    # add_portable_registry took Address and ExtrinsicSignature from these params, as for a real chain
    assert REF.config.get_decoder_class("Address") is REF.config.get_decoder_class(
        f"scale_info::{next(p['type'] for p in ty['params'] if p['name'] == 'Address')}")
    assert REF.config.get_decoder_class("ExtrinsicSignature") is REF.config.get_decoder_class(
        f"scale_info::{next(p['type'] for p in ty['params'] if p['name'] == 'Signature')}")


# Runtime version and runtime APIs ------------------------------------------------------------------

def blake2_64(name: str) -> bytes:
    return hashlib.blake2b(name.encode(), digest_size=8).digest()


def test_api_ids_are_blake2_64_of_the_names() -> None:
    for name, api_id, _ in API_VERSIONS:
        assert api_id == blake2_64(name), name
    assert RUNTIME.version["apis"] == [(blake2_64(name), version) for name, _, version in API_VERSIONS]
    assert len({name for name, _, _ in API_VERSIONS}) == len(API_VERSIONS)


@pytest.fixture(scope="module")
def chain() -> Chain:
    return Chain(Runtime())


def _sample_calls(chain: Chain) -> dict[str, list[tuple[str, bytes, Any]]]:
    """For each API devnet advertises: (method, input, check of the output)."""
    runtime = chain.runtime
    alice, bob = dev_keypair("Alice"), dev_keypair("Bob")
    xt = transfer(runtime, alice, bob.public_key, 10**12, nonce=0, genesis_hash=chain.genesis_hash)
    forged = signed_extrinsic(alice, transfer_call(runtime, bob.public_key, 1), nonce=0,
                              genesis_hash=chain.genesis_hash, signature=bytes(64))
    u32 = codec_for(U32)
    weight = chain.executive.total_weight(chain.executive.decode(xt))
    fee = chain.executive.fees.fee(weight, len(xt))

    def version(out: bytes) -> None:
        assert codec_for(RuntimeVersion).decode(out) == runtime.version
        _, return_type = REF.runtime_api("Core", "version")  # as substrate-interface's runtime_call decodes it
        assert REF.decode(return_type, out)["spec_version"] == runtime.spec_version

    def metadata(out: bytes) -> None:
        assert codec_for(Bytes).decode(out) == METADATA

    def validate_ok(out: bytes) -> None:
        assert out[0] == 0  # Ok(ValidTransaction)
        valid = codec_for(ValidTransactionType).decode(out[1:])
        assert valid["provides"] == [alice.public_key + u32.encode(0)] and valid["requires"] == []

    def validate_bad_proof(out: bytes) -> None:
        assert out == bytes((1, 0, 4))  # Err(Invalid(BadProof))

    def query_info(out: bytes) -> None:
        info = codec_for(RuntimeDispatchInfo).decode(out)
        assert info["partial_fee"] == fee and info["weight"]["ref_time"] == weight

    def fee_details(out: bytes) -> None:
        details = codec_for(FeeDetails).decode(out)
        assert sum(details["inclusion_fee"].values()) + details["tip"] == fee

    best = chain.best.hash
    return {
        "Core": [("Core_version", b"", version)],
        "Metadata": [
            ("Metadata_metadata", b"", metadata),
            ("Metadata_metadata_versions", b"",
             lambda out: codec_for(Sequence(U32)).decode(out) == SUPPORTED_METADATA_VERSIONS),
            ("Metadata_metadata_at_version", u32.encode(14),
             lambda out: codec_for(Option(Bytes)).decode(out) == METADATA),
            ("Metadata_metadata_at_version", u32.encode(15), lambda out: out == b"\x00"),
        ],
        "TaggedTransactionQueue": [
            ("TaggedTransactionQueue_validate_transaction", b"\x02" + xt + best, validate_ok),
            ("TaggedTransactionQueue_validate_transaction", b"\x02" + forged + best, validate_bad_proof),
        ],
        "AccountNonceApi": [("AccountNonceApi_account_nonce", alice.public_key,
                             lambda out: u32.decode(out) == 0)],
        "TransactionPaymentApi": [
            ("TransactionPaymentApi_query_info", xt + u32.encode(len(xt)), query_info),
            ("TransactionPaymentApi_query_fee_details", xt + u32.encode(len(xt)), fee_details),
        ],
        "CollaborativeModelsApi": [   # no model deployed: the pallet's ModelNotFound (its tests deploy some)
            ("CollaborativeModelsApi_predict", codec_for(PREDICT_INPUT).encode((0, ("Dense", [0]))),
             lambda out: codec_for(PREDICT_OUTPUT).decode(out) == (
                 "Err", ("Module", {"index": CollaborativeModels.index, "error": bytes(4)}))),
        ],
    }


def test_every_advertised_api_is_served(chain: Chain) -> None:
    samples = _sample_calls(chain)
    by_id = {blake2_64(name): name for name, _, _ in API_VERSIONS}
    for api_id, _ in chain.runtime.version["apis"]:
        name = by_id[api_id]
        assert name in samples, f"{name} is advertised but this test has no sample call for it"
        for method, data, check in samples[name]:
            assert method.startswith(name + "_")
            out = call_runtime_api(chain, METADATA, method, data, chain.best.hash)
            assert check(out) is not False, method


def test_unknown_method_and_bad_input(chain: Chain) -> None:
    with pytest.raises(RuntimeApiError, match="not found"):
        call_runtime_api(chain, METADATA, "Core_nonexistent", b"", chain.best.hash)
    with pytest.raises(RuntimeApiError):
        call_runtime_api(chain, METADATA, "NoSuchApi_version", b"", chain.best.hash)
    with pytest.raises(RuntimeApiError):
        call_runtime_api(chain, METADATA, "AccountNonceApi_account_nonce", b"\x01\x02", chain.best.hash)
    with pytest.raises(RuntimeApiError):
        call_runtime_api(chain, METADATA, "TransactionPaymentApi_query_info", b"\x10\x00", chain.best.hash)
    with pytest.raises(RuntimeApiError):
        call_runtime_api(chain, METADATA, "TaggedTransactionQueue_validate_transaction", b"\x02", chain.best.hash)
