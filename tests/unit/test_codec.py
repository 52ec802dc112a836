"""devnet's compiled SCALE codecs against the reference, scalecodec 1.2.12.

For every type of the runtime's metadata (its portable registry), random
values encoded by devnet decode in scalecodec to the value a client sees, and
scalecodec's encoding of that value is byte-identical and decodes back with
devnet's codec. The type declarations are rebuilt from the registry itself,
so the codecs tested are the ones the runtime compiles from its pallets.
"""
from __future__ import annotations

import tracemalloc
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scalecodec.types import H256 as ScH256
from scalecodec.types import Era as ScEra
from scalecodec.types import (
    GenericAccountId,
    GenericCall,
    GenericEventRecord,
    GenericMultiAddress,
    GenericScaleInfoEvent,
)
from scalecodec.types import Option as ScOption
from scalecodec.types import Tuple as ScTuple
from xt_builder import (
    default_reference,
    default_runtime,
    specs_from_registry,
    value_strategy,
)

from devnet.runtime.apis import FeeDetails, RuntimeDispatchInfo
from devnet.runtime.pallets.system import EMPTY_ACCOUNT, System, event_record_type
from devnet.runtime.primitives import (
    AccountInfo,
    DispatchError,
    DispatchInfo,
    Era,
    Header,
    MultiAddress,
    RuntimeVersion,
    Weight,
)
from devnet.scale.codec import (
    Codec,
    CodecError,
    codec_for,
    decode_compact,
    encode_compact,
)
from devnet.scale.registry import PortableRegistry
from devnet.scale.types import (
    U8,
    U16,
    U32,
    U64,
    U128,
    Array,
    Bool,
    Bytes,
    Compact,
    Composite,
    Field,
    Option,
    Primitive,
    Sequence,
    Str,
    Tuple,
    TypeSpec,
    Variant,
    VariantType,
)

# The runtime, its metadata in scalecodec, and the registry's types as declarations ----------------

RUNTIME = default_runtime()
REF = default_reference()
METADATA = REF.metadata_bytes
# the registry as a client sees it: decoded by scalecodec from the metadata bytes devnet serves
REGISTRY_TYPES: list[dict[str, Any]] = REF.metadata.value[1]["V14"]["types"]["types"]

SPECS = specs_from_registry(REGISTRY_TYPES)
ID_OF = {spec: type_id for type_id, spec in enumerate(SPECS)}
TYPE_IDS = list(range(len(SPECS)))


def _type_label(type_id: int) -> str:
    path = REGISTRY_TYPES[type_id]["type"]["path"]
    return f"{type_id}:{'::'.join(path) or next(iter(REGISTRY_TYPES[type_id]['type']['def']))}"


_CLASS_BY_OBJECT: dict[int, tuple[TypeSpec, type | None]] = {}


def _sc_class(spec: TypeSpec) -> type | None:
    """scalecodec's class for a declared type (by identity first: hashing a deep frozen spec is slow)."""
    cached = _CLASS_BY_OBJECT.get(id(spec))
    if cached is not None and cached[0] is spec:
        return cached[1]
    type_id = ID_OF.get(spec)
    found = None if type_id is None else REF.config.get_decoder_class(f"scale_info::{type_id}")
    _CLASS_BY_OBJECT[id(spec)] = (spec, found)
    return found


def _is(spec: TypeSpec, cls: type) -> bool:
    found = _sc_class(spec)
    return found is not None and issubclass(found, cls)


def test_registry_rebuilds_exactly() -> None:
    """The declarations rebuilt from the registry describe it again byte for byte, in the same id order."""
    registry = PortableRegistry()
    for spec in SPECS:
        registry.id_of(spec)
    assert registry.types == REGISTRY_TYPES
    assert [entry["id"] for entry in REGISTRY_TYPES] == TYPE_IDS


def test_registry_is_complete_and_in_scalecodec() -> None:
    """Every type id that the registry references exists; scalecodec builds a decoder for each."""
    n = len(REGISTRY_TYPES)
    for type_id in TYPE_IDS:
        assert REF.config.get_decoder_class(f"scale_info::{type_id}") is not None, type_id
    # spot-check: the well-known Substrate types carry the paths clients look for
    paths = {"::".join(t["type"]["path"]) for t in REGISTRY_TYPES}
    for path in ("sp_core::crypto::AccountId32", "frame_system::AccountInfo", "frame_system::EventRecord",
                 "sp_runtime::multiaddress::MultiAddress", "sp_runtime::DispatchError",
                 "sp_runtime::generic::era::Era", "sp_weights::weight_v2::Weight"):
        assert path in paths
    assert n == len(set(map(repr, SPECS)))


# What scalecodec makes of a value ----------------------------------------------------------------

def _hex(data: bytes) -> str:
    return "0x" + bytes(data).hex()


def _sc_bytes(data: bytes) -> str:
    """scalecodec's Bytes: UTF-8 text when it decodes as such, hex otherwise."""
    try:
        return data.decode()
    except UnicodeDecodeError:
        return _hex(data)


def _fields_value(flds: tuple[Field, ...], value: Any, mode: str) -> Any:
    if not flds:
        return None
    if len(flds) == 1 and flds[0].name is None:
        return sc_value(flds[0].ty, value, mode)
    if all(f.name is not None for f in flds):
        return {f.name: sc_value(f.ty, value[f.name], mode) for f in flds}
    return tuple(sc_value(f.ty, item, mode) for f, item in zip(flds, value))


def _variant(spec: VariantType, name: str) -> Variant:
    return next(v for v in spec.variants if v.name == name)


def _enum_value(spec: VariantType, value: Any, mode: str) -> Any:
    name, payload = value
    variant = _variant(spec, name)
    if not variant.fields:
        return name
    return {name: _fields_value(variant.fields, payload, mode)}


def sc_value(spec: TypeSpec, value: Any, mode: str) -> Any:
    """Our codec value as scalecodec shows it (mode 'decode') or takes it to encode (mode 'encode')."""
    assert mode in ("decode", "encode")
    if _is(spec, GenericAccountId) or _is(spec, ScH256):
        return _hex(value)
    if _is(spec, ScEra):
        name, payload = value
        if name == "Immortal":
            return "00"
        encoded = _variant(spec, name).index | payload << 8  # type: ignore[arg-type]
        period = 2 << (encoded % 16)
        return (period, (encoded >> 4) * max(period >> 12, 1))
    if _is(spec, ScOption):
        return None if value is None else sc_value(spec.variants[1].fields[0].ty, value, mode)  # type: ignore[union-attr]
    if _is(spec, GenericCall):
        pallet, (call_name, args) = value
        call_spec = _variant(spec, pallet).fields[0].ty  # type: ignore[arg-type]
        fields = _variant(call_spec, call_name).fields  # type: ignore[arg-type]
        mapped = {f.name: sc_value(f.ty, args[f.name], mode) for f in fields}
        if mode == "encode":
            return {"call_module": pallet, "call_function": call_name, "call_args": mapped}
        return {"call_module": pallet, "call_function": call_name, "call_args": mapped,
                "call_index": _hex(bytes((_variant(spec, pallet).index, _variant(call_spec, call_name).index)))}
    if mode == "decode" and _is(spec, GenericScaleInfoEvent):
        pallet, (event_name, payload) = value
        event_spec = _variant(spec, pallet).fields[0].ty  # type: ignore[arg-type]
        variant = _variant(event_spec, event_name)  # type: ignore[arg-type]
        return {"event_index": bytes((_variant(spec, pallet).index, variant.index)).hex(),  # type: ignore[arg-type]
                "module_id": pallet, "event_id": event_name,
                "attributes": _fields_value(variant.fields, payload, mode) if variant.fields else None}
    if mode == "decode" and _is(spec, GenericEventRecord):
        flds = {f.name: f.ty for f in spec.fields}  # type: ignore[union-attr]
        event = sc_value(flds["event"], value["event"], mode)
        phase_name, phase_payload = value["phase"]
        return {"phase": phase_name, "extrinsic_idx": phase_payload if phase_name == "ApplyExtrinsic" else None,
                "event": event, "event_index": _variant(flds["event"], value["event"][0]).index,  # type: ignore[arg-type]
                "module_id": event["module_id"], "event_id": event["event_id"], "attributes": event["attributes"],
                "topics": [sc_value(flds["topics"].inner, t, mode) for t in value["topics"]]}  # type: ignore[union-attr]
    if mode == "decode" and _is(spec, GenericMultiAddress):
        name, payload = value
        if name == "Id":
            return _hex(payload)
        if name == "Index":
            return payload
    if isinstance(spec, Primitive):
        return value.encode() if spec.name == "str" and mode == "encode" else value
    if isinstance(spec, Compact):
        return value
    if isinstance(spec, Sequence):
        if spec.inner == U8:
            return bytes(value) if mode == "encode" else _sc_bytes(value)
        return [sc_value(spec.inner, item, mode) for item in value]
    if isinstance(spec, Array):
        if spec.inner == U8:
            return _hex(value)
        return [sc_value(spec.inner, item, mode) for item in value]
    if isinstance(spec, Tuple):
        if len(spec.items) == 1:
            return sc_value(spec.items[0], value[0], mode)
        return tuple(sc_value(item, v, mode) for item, v in zip(spec.items, value)) if spec.items else ()
    if isinstance(spec, Composite):
        if not spec.fields:
            return {}
        if mode == "encode" and len(spec.fields) == 1 and spec.fields[0].name is None and _is(spec, ScTuple):
            return [sc_value(spec.fields[0].ty, value, mode)]  # a bare tuple value would be taken as the fields
        return _fields_value(spec.fields, value, mode)
    if isinstance(spec, VariantType):
        return _enum_value(spec, value, mode)
    raise AssertionError(spec)


def _normalise_decoded(spec: TypeSpec, decoded: Any) -> Any:
    """Drop what scalecodec derives from the bytes (call hash, arg type names) before comparing."""
    if _is(spec, GenericCall):
        return {"call_module": decoded["call_module"], "call_function": decoded["call_function"],
                "call_index": decoded["call_index"],
                "call_args": {arg["name"]: arg["value"] for arg in decoded["call_args"]}}
    return decoded


def check_against_reference(type_id: int, value: Any) -> bytes:
    """Both directions for one value; returns our encoding."""
    spec = SPECS[type_id]
    codec = codec_for(spec)
    ours = codec.encode(value)
    type_string = f"scale_info::{type_id}"
    decoded = REF.decode(type_string, ours)
    assert _normalise_decoded(spec, decoded) == sc_value(spec, value, "decode")
    theirs = REF.encode(type_string, sc_value(spec, value, "encode"))
    assert theirs == ours
    assert codec.decode(theirs) == value
    return ours


# 1. Every type of the metadata, both directions --------------------------------------------------

@pytest.mark.parametrize("type_id", TYPE_IDS, ids=_type_label)
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_every_registry_type_matches_scalecodec(type_id: int, data: st.DataObject) -> None:
    codec = codec_for(SPECS[type_id])
    value = data.draw(value_strategy(SPECS[type_id]), label="value")
    ours = check_against_reference(type_id, value)
    # every strict prefix is an error, never a different value and never another exception type
    cut = data.draw(st.integers(0, max(len(ours) - 1, 0)), label="cut")
    if cut < len(ours):
        with pytest.raises(CodecError):
            codec.decode(ours[:cut])
    # fuzz: garbage (and mutated encodings) either decode to a value that re-encodes to the same
    # bytes (one encoding per value) or raise CodecError, never IndexError, struct.error, ...
    garbage = data.draw(st.one_of(st.binary(max_size=48), st.builds(
        lambda at, byte: ours[:at] + bytes((byte,)) + ours[at + 1:], st.integers(0, len(ours)),
        st.integers(0, 255))), label="garbage")
    try:
        decoded = codec.decode(garbage)
    except CodecError:
        return
    assert codec.encode(decoded) == garbage


# 2. The representative set, named --------------------------------------------------------------

ALICE = bytes.fromhex("d43593c715fdd31c61141abd04a99fd6822c8558854ccde39a5684e7a56da27d")
BOB = bytes.fromhex("8eaf04151687736326c9fea17e25fc5287613693c912909cb226aa4794f26a48")


def _id(spec: TypeSpec) -> int:
    return ID_OF[spec]


def test_account_info() -> None:
    value = {"nonce": 7, "consumers": 1, "providers": 2, "sufficients": 0,
             "data": {"free": 10**18 + 5, "reserved": 3, "frozen": 0, "flags": 1 << 127}}
    ours = check_against_reference(_id(AccountInfo), value)
    assert len(ours) == 4 * 4 + 16 * 4
    assert REF.decode(f"scale_info::{_id(AccountInfo)}", codec_for(AccountInfo).encode(EMPTY_ACCOUNT))["nonce"] == 0
    # System.Account's storage value type is this very type in the metadata
    assert codec_for(System.Account.value) is codec_for(AccountInfo)


def test_event_record_transfer() -> None:
    record_type = event_record_type(RUNTIME.event_type)
    value = {"phase": ("ApplyExtrinsic", 1),
             "event": ("Balances", ("Transfer", {"from": ALICE, "to": BOB, "amount": 12345})),
             "topics": [bytes(range(32))]}
    ours = check_against_reference(_id(record_type), value)
    decoded = REF.decode(f"scale_info::{_id(record_type)}", ours)
    assert (decoded["module_id"], decoded["event_id"], decoded["extrinsic_idx"]) == ("Balances", "Transfer", 1)
    assert decoded["attributes"] == {"from": _hex(ALICE), "to": _hex(BOB), "amount": 12345}
    # the whole System.Events value (a Vec of records) decodes in scalecodec too
    events_id = _id(RUNTIME.events_item.value)
    records = [value, {"phase": ("Finalization", None), "event": ("System", ("CodeUpdated", None)), "topics": []}]
    assert len(REF.decode(f"scale_info::{events_id}", codec_for(RUNTIME.events_item.value).encode(records))) == 2


def test_runtime_call_balances_transfer() -> None:
    call = ("Balances", ("transfer_allow_death", {"dest": ("Id", BOB), "value": 10**12}))
    ours = check_against_reference(_id(RUNTIME.call_type), call)
    assert ours == bytes((4, 0, 0)) + BOB + encode_compact(10**12)  # pallet 4, call 0, MultiAddress::Id
    theirs = REF.encode(f"scale_info::{_id(RUNTIME.call_type)}", {
        "call_module": "Balances", "call_function": "transfer_allow_death",
        "call_args": {"dest": {"Id": _hex(BOB)}, "value": 10**12}})
    assert theirs == ours
    assert RUNTIME.call_codec.decode(theirs) == call


@pytest.mark.parametrize("address", [("Id", ALICE), ("Index", 2**32 - 1), ("Raw", b"\x00\xff"),
                                     ("Address32", bytes(range(32))), ("Address20", bytes(20))])
def test_multiaddress(address: Any) -> None:
    ours = check_against_reference(_id(MultiAddress), address)
    assert ours[0] == [v.name for v in MultiAddress.variants].index(address[0])


def test_weight_and_dispatch_info() -> None:
    weight = {"ref_time": 2**64 - 1, "proof_size": 0}
    assert check_against_reference(_id(Weight), weight) == encode_compact(2**64 - 1) + b"\x00"
    info = {"weight": {"ref_time": 125_000_000, "proof_size": 3593}, "class": ("Operational", None),
            "pays_fee": ("No", None)}
    check_against_reference(_id(DispatchInfo), info)
    decoded = REF.decode(f"scale_info::{_id(DispatchInfo)}", codec_for(DispatchInfo).encode(info))
    assert decoded == {"weight": {"ref_time": 125_000_000, "proof_size": 3593}, "class": "Operational",
                       "pays_fee": "No"}


def test_dispatch_error_module() -> None:
    error = ("Module", {"index": 4, "error": bytes((2, 0, 0, 0))})
    ours = check_against_reference(_id(DispatchError), error)
    assert ours == bytes((3, 4, 2, 0, 0, 0))
    assert REF.decode(f"scale_info::{_id(DispatchError)}", ours) == {"Module": {"index": 4, "error": "0x02000000"}}
    # clients name it from the metadata, as ExtrinsicReceipt does: Balances' InsufficientBalance
    assert REF.metadata.get_module_error(4, 2).value["name"] == "InsufficientBalance"


def test_runtime_version() -> None:
    ours = check_against_reference(_id(RuntimeVersion), RUNTIME.version)
    decoded = REF.decode(f"scale_info::{_id(RuntimeVersion)}", ours)
    assert decoded["spec_name"] == "paratrain-devnet"
    assert decoded["apis"][0] == ("0xdf6acb689907609b", 4)
    # Core_version's answer, decoded as substrate-interface's runtime_call decodes it
    _, return_type = REF.runtime_api("Core", "version")
    decoded = REF.decode(return_type, ours)
    assert decoded["spec_version"] == RUNTIME.spec_version
    assert decoded["apis"] == [("0x" + h.hex(), v) for h, v in RUNTIME.version["apis"]]


def test_header_against_scalecodec_core_type() -> None:
    """Header is not in the metadata (as in FRAME); clients use the Core API's 'Header' type for it."""
    REF.runtime_api("Core", "initialise_block")
    header = {"parent_hash": bytes(range(32)), "number": 2**30, "state_root": bytes(32),
              "extrinsics_root": b"\x11" * 32,
              "digest": {"logs": [("PreRuntime", (b"aura", b"\x01\x02")), ("Seal", (b"BABE", b"")),
                                  ("Other", b"x"), ("RuntimeEnvironmentUpdated", None)]}}
    ours = codec_for(Header).encode(header)
    decoded = REF.decode("Header", ours)
    assert decoded["parent_hash"] == _hex(header["parent_hash"])
    assert decoded["number"] == 2**30
    assert decoded["extrinsics_root"] == _hex(header["extrinsics_root"])
    assert len(decoded["digest"]["logs"]) == 4
    assert REF.encode("Header", decoded) == ours
    assert codec_for(Header).decode(ours) == header


def test_api_only_types_against_scalecodec_core() -> None:
    """Runtime API outputs that are not in the metadata decode with the types clients use for them."""
    info = {"weight": {"ref_time": 10, "proof_size": 7}, "class": ("Normal", None), "partial_fee": 2**100}
    _, return_type = REF.runtime_api("TransactionPaymentApi", "query_info")
    assert REF.decode(return_type, codec_for(RuntimeDispatchInfo).encode(info)) == {
        "weight": {"ref_time": 10, "proof_size": 7}, "class": "Normal", "partialFee": 2**100}
    details = {"inclusion_fee": {"base_fee": 1, "len_fee": 2, "adjusted_weight_fee": 3}, "tip": 4}
    _, return_type = REF.runtime_api("TransactionPaymentApi", "query_fee_details")
    assert REF.decode(return_type, codec_for(FeeDetails).encode(details)) == details
    assert REF.decode(return_type, codec_for(FeeDetails).encode({"inclusion_fee": None, "tip": 0})) == {
        "inclusion_fee": None, "tip": 0}


# 3. Edge cases -------------------------------------------------------------------------------------

COMPACT = Codec(encode_compact, decode_compact)


@pytest.mark.parametrize("value, length", [
    (0, 1), (63, 1), (64, 2), (16383, 2), (16384, 4), (2**30 - 1, 4), (2**30, 5), (2**32 - 1, 5), (2**32, 6),
    (2**64 - 1, 9), (2**64, 10), (2**128 - 1, 17)])
def test_compact_boundaries(value: int, length: int) -> None:
    encoded = encode_compact(value)
    assert len(encoded) == length
    assert encoded == REF.encode("Compact<u128>", value)
    assert REF.decode("Compact<u128>", encoded) == value
    assert COMPACT.decode(encoded) == value


def test_compact_largest_and_negative() -> None:
    top = 2**536 - 1  # 67 bytes: the largest a compact can carry
    assert COMPACT.decode(encode_compact(top)) == top
    with pytest.raises(CodecError):
        encode_compact(top + 1)
    with pytest.raises(CodecError):
        encode_compact(-1)


@given(st.integers(0, 2**128 - 1))
@settings(max_examples=100)
def test_compact_matches_scalecodec(value: int) -> None:
    encoded = encode_compact(value)
    assert encoded == REF.encode("Compact<u128>", value)
    assert COMPACT.decode(encoded) == value


@pytest.mark.parametrize("inner", [U8, U16, U32, U64, U128, Composite(("sp_arithmetic", "per_things", "Perbill"),
                                                                   (Field(None, U32, "u32"),))], ids=repr)
def test_compact_values_must_fit_their_integer(inner: TypeSpec) -> None:
    """Compact<u32> of 2^32 is an error both ways, as in parity-scale-codec (scalecodec is lenient here)."""
    codec = codec_for(Compact(inner))
    bits = int((inner.fields[0].ty if isinstance(inner, Composite) else inner).name[1:])  # type: ignore[union-attr]
    top = 2**bits - 1
    assert codec.decode(codec.encode(top)) == top
    with pytest.raises(CodecError, match="out of range"):
        codec.decode(encode_compact(top + 1))
    with pytest.raises(CodecError, match="out of range"):
        codec.encode(top + 1)


@pytest.mark.parametrize("raw", [
    "0100",  # 0 in the two-byte mode
    "fd00",  # 63 in the two-byte mode
    "02000000",  # 0 in the four-byte mode
    "feff0000",  # 16383 in the four-byte mode
    "03ffffff3f",  # 2^30-1 in the big-integer mode
    "070000004000",  # 2^30 in five bytes: a zero top byte where four suffice
    "0b000000000100",  # 2^32 in six bytes: a zero top byte where five suffice
])
def test_non_canonical_compacts_rejected(raw: str) -> None:
    with pytest.raises(CodecError):
        COMPACT.decode(bytes.fromhex(raw))


@pytest.mark.parametrize("raw, value", [("fc", 63), ("0101", 64), ("02000100", 16384), ("0300000040", 2**30),
                                        ("0b000000000001", 2**40), ("0700000000ff", 0xFF << 32)])
def test_canonical_neighbours_accepted(raw: str, value: int) -> None:
    assert COMPACT.decode(bytes.fromhex(raw)) == value
    assert encode_compact(value).hex() == raw


@pytest.mark.parametrize("raw", ["", "01", "02", "0200", "020000", "03", "03000000", "13" + "00" * 7])
def test_truncated_compacts(raw: str) -> None:
    with pytest.raises(CodecError):
        COMPACT.decode(bytes.fromhex(raw))


@pytest.mark.parametrize("spec", [U8, U32, U64, U128, Bool, Str, Bytes, Array(U8, 32), Sequence(U32),
                                  Option(U32), AccountInfo, MultiAddress, Header], ids=repr)
def test_truncated_inputs_raise_codec_error(spec: TypeSpec) -> None:
    samples = {U8: 255, U32: 2**32 - 1, U64: 2**64 - 1, U128: 2**128 - 1, Bool: True, Str: "héllo",
               Bytes: b"abcdef" * 20, Array(U8, 32): bytes(range(32)), Sequence(U32): [1, 2, 3],
               Option(U32): 5, AccountInfo: EMPTY_ACCOUNT, MultiAddress: ("Raw", b"abc"),
               Header: {"parent_hash": bytes(32), "number": 70000, "state_root": bytes(32),
                        "extrinsics_root": bytes(32), "digest": {"logs": [("Other", b"zz")]}}}
    codec = codec_for(spec)
    full = codec.encode(samples[spec])
    for cut in range(len(full)):
        with pytest.raises(CodecError):
            codec.decode(full[:cut])


@pytest.mark.parametrize("spec", [Bytes, Sequence(U32), Sequence(AccountInfo), Sequence(Bytes), Str],
                         ids=repr)
def test_sequence_longer_than_input_rejected_without_allocating(spec: TypeSpec) -> None:
    codec = codec_for(spec)
    for count in (2**30 - 1, 2**62, 2**128 - 1):
        data = encode_compact(count) + b"\x00" * 16
        tracemalloc.start()
        try:
            with pytest.raises(CodecError):
                codec.decode(data)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < 64 * 1024, f"decoding a {count}-element header allocated {peak} bytes"


def test_sequence_count_just_over_input() -> None:
    codec = codec_for(Sequence(U32))
    assert codec.decode(encode_compact(2) + bytes(8)) == [0, 0]
    with pytest.raises(CodecError):
        codec.decode(encode_compact(3) + bytes(8))  # passes the byte bound, runs out inside an element


@pytest.mark.parametrize("tag", [2, 3, 0xFF])
def test_invalid_option_tag(tag: int) -> None:
    with pytest.raises(CodecError):
        codec_for(Option(U32)).decode(bytes((tag,)) + bytes(4))
    with pytest.raises(CodecError):
        codec_for(Option(Bytes)).decode(bytes((tag,)) + b"\x00")


@pytest.mark.parametrize("byte", [2, 0x80, 0xFF])
def test_invalid_bool(byte: int) -> None:
    with pytest.raises(CodecError):
        codec_for(Bool).decode(bytes((byte,)))
    assert codec_for(Bool).decode(b"\x01") is True and codec_for(Bool).decode(b"\x00") is False


def test_invalid_variant_index_and_utf8() -> None:
    with pytest.raises(CodecError):
        codec_for(MultiAddress).decode(bytes((5,)) + bytes(32))
    with pytest.raises(CodecError):
        RUNTIME.call_codec.decode(bytes((0xEE, 0)))  # no pallet 238
    with pytest.raises(CodecError):
        codec_for(Str).decode(encode_compact(2) + b"\xc3\x28")


@pytest.mark.parametrize("spec, value", [(U32, 5), (Bytes, b"ab"), (AccountInfo, EMPTY_ACCOUNT), (Bool, True),
                                         (Option(U32), None), (Compact(U128), 2**64)], ids=repr)
def test_trailing_bytes_rejected(spec: TypeSpec, value: Any) -> None:
    codec = codec_for(spec)
    encoded = codec.encode(value)
    assert codec.decode(encoded) == value
    with pytest.raises(CodecError, match="trailing"):
        codec.decode(encoded + b"\x00")
    # decode_from, used for streams, reports where the value ends instead
    assert codec.decode_from(encoded + b"\x00", 0) == (value, len(encoded))


@pytest.mark.parametrize("spec, value", [
    (U8, 256), (U8, -1), (U32, 2**32), (U128, 2**128), (Array(U8, 32), bytes(31)), (Tuple((U8, U8)), (1,)),
    (MultiAddress, ("Nope", None)), (AccountInfo, {"nonce": 0}), (Compact(U128), -1)], ids=repr)
def test_out_of_range_values_raise_codec_error(spec: TypeSpec, value: Any) -> None:
    with pytest.raises(CodecError):
        codec_for(spec).encode(value)


def test_era_raw_forms_round_trip() -> None:
    """Every two-byte era the codec accepts is a plain variant: low byte as index, high byte as payload."""
    codec = codec_for(Era)
    assert codec.encode(("Immortal", None)) == b"\x00"
    assert codec.encode(("Mortal5", 7)) == b"\x05\x07"
    assert codec.decode(b"\xe5\x03") == ("Mortal229", 3)
