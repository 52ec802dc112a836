"""Reference tooling for the unit tests, built without a node.

* `load_reference(metadata)` / `default_reference()`: scalecodec 1.2.12 (the
  engine of py-substrate-interface) loaded with devnet's own metadata as
  `SubstrateInterface.init_runtime` loads a node's, so a test can decode and
  encode any `scale_info::<id>` type the way a real client does.
* `specs_from_registry(types)` / `value_strategy(spec)`: a portable registry
  back to devnet's type declarations, and hypothesis strategies producing
  values of a declared type in the codec's value conventions.
* `signed_extrinsic(...)` / `transfer(...)`: signed V4 extrinsics built from
  first principles (the layout FRAME defines) and signed with
  substrate-interface's `Keypair`, so the pool and the executive are tested
  against bytes they did not produce themselves; `reference_signed_extrinsic`
  builds the same with substrate-interface's own recipe, to compare.
"""
from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st
from scalecodec.base import RuntimeConfigurationObject, ScaleBytes
from scalecodec.type_registry import load_type_registry_preset
from substrateinterface import Keypair

from devnet.metadata import encode_metadata
from devnet.runtime.primitives import Era
from devnet.runtime.runtime import Runtime
from devnet.scale.codec import encode_compact
from devnet.scale.types import (
    U8,
    Array,
    Compact,
    Composite,
    Field,
    Param,
    Primitive,
    Sequence,
    Tuple,
    TypeSpec,
    Variant,
    VariantType,
)

SIGNED_V4 = 0x84
MULTIADDRESS_ID = 0x00
MULTISIG_SR25519 = 0x01
IMMORTAL = b"\x00"


# scalecodec with devnet's metadata -------------------------------------------------------------

@dataclass(frozen=True)
class Reference:
    """A scalecodec runtime configuration holding devnet's portable registry."""

    config: RuntimeConfigurationObject
    metadata: Any  # the decoded MetadataVersioned object
    metadata_bytes: bytes

    def decode(self, type_string: str, data: bytes) -> Any:
        """Decode `data` completely (scalecodec raises if bytes remain) and return the value."""
        obj = self.config.create_scale_object(type_string, data=ScaleBytes(bytes(data)), metadata=self.metadata)
        obj.decode(check_remaining=True)
        return obj.value

    def encode(self, type_string: str, value: Any) -> bytes:
        obj = self.config.create_scale_object(type_string, metadata=self.metadata)
        return bytes(obj.encode(value).data)

    def runtime_api(self, api: str, method: str) -> tuple[list[dict[str, str]], str]:
        """(params, return type) of a runtime API method, its types registered as `runtime_call` does."""
        definition = self.config.type_registry["runtime_api"][api]
        self.config.update_type_registry_types(definition.get("types", {}))
        method_def = definition["methods"][method]
        return method_def["params"], method_def["type"]

    def type_id(self, path: str) -> int:
        """The portable id of the type registered under a Rust path (e.g. 'frame_system::AccountInfo')."""
        for entry in self.metadata.portable_registry["types"]:
            if "::".join(entry["type"]["path"].value) == path:
                return entry["id"].value
        raise KeyError(path)


def load_reference(metadata_bytes: bytes, ss58_format: int | None = None) -> Reference:
    """What `SubstrateInterface.init_runtime` does with a node's metadata, minus the node."""
    config = RuntimeConfigurationObject(ss58_format=ss58_format)
    config.clear_type_registry()
    config.implements_scale_info = True
    config.update_type_registry(load_type_registry_preset(name="core"))
    metadata = config.create_scale_object("MetadataVersioned", data=ScaleBytes(metadata_bytes))
    metadata.decode()
    config.add_portable_registry(metadata)
    config.set_active_spec_version_id(Runtime.spec_version)
    config.update_type_registry_types({"Weight": "sp_weights::weight_v2::Weight"})
    return Reference(config, metadata, metadata_bytes)


@functools.cache
def default_runtime() -> Runtime:
    """One shared default `Runtime()`; tests that mutate chain state build their own `Chain`."""
    return Runtime()


@functools.cache
def default_reference() -> Reference:
    """The reference for `default_runtime()` (cached: building it costs ~0.5 s)."""
    return load_reference(encode_metadata(default_runtime()))


# Signed extrinsics --------------------------------------------------------------------------------

def blake2_256(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=32).digest()


def extra_bytes(nonce: int, tip: int = 0, era: bytes = IMMORTAL) -> bytes:
    """The signed extensions' explicit data: CheckMortality (era), CheckNonce, ChargeTransactionPayment."""
    return era + encode_compact(nonce) + encode_compact(tip)


def additional_bytes(genesis_hash: bytes, spec_version: int = Runtime.spec_version,
                     tx_version: int = Runtime.transaction_version, birth_hash: bytes | None = None) -> bytes:
    """The implicit data: spec_version, transaction_version, genesis hash, era birth hash."""
    return (spec_version.to_bytes(4, "little") + tx_version.to_bytes(4, "little") + genesis_hash
            + (genesis_hash if birth_hash is None else birth_hash))


def signing_payload(call: bytes, extra: bytes, additional: bytes) -> bytes:
    payload = call + extra + additional
    return blake2_256(payload) if len(payload) > 256 else payload


def signed_extrinsic(keypair: Keypair, call: bytes, *, nonce: int, genesis_hash: bytes, tip: int = 0,
                     era: bytes = IMMORTAL, birth_hash: bytes | None = None,
                     spec_version: int = Runtime.spec_version, tx_version: int = Runtime.transaction_version,
                     signature: bytes | None = None) -> bytes:
    """compact(len) ++ 0x84 ++ MultiAddress::Id ++ MultiSignature::Sr25519 ++ extra ++ call."""
    extra = extra_bytes(nonce, tip, era)
    if signature is None:
        payload = signing_payload(call, extra, additional_bytes(genesis_hash, spec_version, tx_version, birth_hash))
        signature = keypair.sign(payload)
    assert len(signature) == 64
    body = (bytes((SIGNED_V4, MULTIADDRESS_ID)) + keypair.public_key + bytes((MULTISIG_SR25519,)) + signature
            + extra + call)
    return encode_compact(len(body)) + body


def transfer_call(runtime: Runtime, dest: bytes, value: int, *, keep_alive: bool = False) -> bytes:
    name = "transfer_keep_alive" if keep_alive else "transfer_allow_death"
    return runtime.call_codec.encode(("Balances", (name, {"dest": ("Id", dest), "value": value})))


def remark_call(runtime: Runtime, remark: bytes) -> bytes:
    return runtime.call_codec.encode(("System", ("remark_with_event", {"remark": remark})))


def transfer(runtime: Runtime, keypair: Keypair, dest: bytes, value: int, *, nonce: int, genesis_hash: bytes,
             tip: int = 0, keep_alive: bool = False) -> bytes:
    return signed_extrinsic(keypair, transfer_call(runtime, dest, value, keep_alive=keep_alive),
                            nonce=nonce, genesis_hash=genesis_hash, tip=tip)


def reference_signed_extrinsic(ref: Reference, keypair: Keypair, call: dict[str, Any], *, nonce: int,
                               genesis_hash: bytes, tip: int = 0, era: Any = "00", birth_hash: bytes | None = None,
                               spec_version: int = Runtime.spec_version,
                               tx_version: int = Runtime.transaction_version,
                               signature: bytes | None = None) -> tuple[bytes, bytes]:
    """(signing payload, extrinsic) exactly as substrate-interface 1.8.1 builds them.

    A replay of `generate_signature_payload` and `create_signed_extrinsic`
    with the node round trips taken out: `call` is a scalecodec call value
    ({'call_module', 'call_function', 'call_args'}), `era` '00' or a
    scalecodec era value, `birth_hash` the hash of the era's birth block.
    """
    extensions = ref.metadata.get_signed_extensions()
    payload_obj = ref.config.create_scale_object("ExtrinsicPayloadValue")
    payload_obj.type_mapping = [["call", "CallBytes"]]
    for field, name, part in (("era", "CheckMortality", "extrinsic"), ("nonce", "CheckNonce", "extrinsic"),
                              ("tip", "ChargeTransactionPayment", "extrinsic"),
                              ("spec_version", "CheckSpecVersion", "additional_signed"),
                              ("transaction_version", "CheckTxVersion", "additional_signed"),
                              ("genesis_hash", "CheckGenesis", "additional_signed"),
                              ("block_hash", "CheckMortality", "additional_signed")):
        if name in extensions:
            payload_obj.type_mapping.append([field, extensions[name][part]])
    call_obj = ref.config.create_scale_object("Call", metadata=ref.metadata)
    call_bytes = bytes(call_obj.encode(call).data)
    payload_obj.encode({
        "call": "0x" + call_bytes.hex(), "era": era, "nonce": nonce, "tip": tip, "spec_version": spec_version,
        "genesis_hash": "0x" + genesis_hash.hex(),
        "block_hash": "0x" + (genesis_hash if birth_hash is None else birth_hash).hex(),
        "transaction_version": tx_version,
    })
    payload = bytes(payload_obj.data.data)
    if len(payload) > 256:
        payload = blake2_256(payload)
    if signature is None:
        signature = keypair.sign(payload)
    extrinsic = ref.config.create_scale_object("Extrinsic", metadata=ref.metadata)
    extrinsic.encode({
        "account_id": "0x" + keypair.public_key.hex(), "signature": "0x" + signature.hex(),
        "signature_version": keypair.crypto_type, "call_function": call["call_function"],
        "call_module": call["call_module"], "call_args": call["call_args"], "nonce": nonce, "era": era, "tip": tip,
    })
    return payload, bytes(extrinsic.data.data)


@functools.cache
def dev_keypair(name: str) -> Keypair:
    """//Alice, //Bob, ... (sr25519), as every Substrate tool derives them."""
    return Keypair.create_from_uri(f"//{name}")


# Declared types from a registry, and values of them -----------------------------------------------

def specs_from_registry(types: list[dict[str, Any]]) -> list[TypeSpec]:
    """The portable registry back to type declarations (types here are never recursive)."""
    cache: dict[int, TypeSpec] = {}

    def spec(type_id: int) -> TypeSpec:
        if type_id in cache:
            return cache[type_id]
        ty = types[type_id]["type"]
        definition = ty["def"]
        path = tuple(ty["path"])
        params = tuple(Param(p["name"], None if p["type"] is None else spec(p["type"])) for p in ty["params"])

        def flds(items: list[dict[str, Any]]) -> tuple[Field, ...]:
            return tuple(Field(f["name"], spec(f["type"]), f["typeName"], tuple(f["docs"])) for f in items)

        if "primitive" in definition:
            out: TypeSpec = Primitive(definition["primitive"])
        elif "compact" in definition:
            out = Compact(spec(definition["compact"]["type"]))
        elif "sequence" in definition:
            out = Sequence(spec(definition["sequence"]["type"]))
        elif "array" in definition:
            out = Array(spec(definition["array"]["type"]), definition["array"]["len"])
        elif "tuple" in definition:
            out = Tuple(tuple(spec(item) for item in definition["tuple"]))
        elif "composite" in definition:
            out = Composite(path, flds(definition["composite"]["fields"]), params, tuple(ty["docs"]))
        elif "variant" in definition:
            out = VariantType(path, tuple(
                Variant(v["name"], flds(v["fields"]), v["index"], tuple(v["docs"]))
                for v in definition["variant"]["variants"]), params, tuple(ty["docs"]))
        else:
            raise AssertionError(f"unexpected type definition {definition}")
        cache[type_id] = out
        return out

    return [spec(entry["id"]) for entry in types]



_INT_BOUNDS = {"u8": 8, "u16": 16, "u32": 32, "u64": 64, "u128": 128, "u256": 256}
COMPACT_BOUNDARIES = (0, 1, 63, 64, 16383, 16384, 2**30 - 1, 2**30, 2**32 - 1, 2**32, 2**64 - 1, 2**64, 2**128 - 1)


def _int_strategy(name: str) -> st.SearchStrategy[int]:
    bits = int(name[1:])
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if name.startswith("i") else (0, (1 << bits) - 1)
    return st.one_of(st.integers(lo, hi), st.sampled_from(sorted({lo, hi, 0, 1, max(lo, -1)})))


def _compact_max(inner: TypeSpec) -> int:
    while isinstance(inner, Composite):  # Compact<SomeNewtype(u32)> encodes the inner integer
        inner = inner.fields[0].ty
    assert isinstance(inner, Primitive), inner
    return (1 << _INT_BOUNDS[inner.name]) - 1


def _era_strategy() -> st.SearchStrategy[Any]:
    """Valid eras: immortal, or a mortal (period, phase) in the two-byte encoding FRAME uses."""

    @st.composite
    def mortal(draw: Any) -> tuple[str, int]:
        exponent = draw(st.integers(2, 16))
        period = 1 << exponent
        quantize = max(period >> 12, 1)
        phase = draw(st.integers(0, period // quantize - 1)) * quantize
        encoded = (exponent - 1) | ((phase // quantize) << 4)
        return (f"Mortal{encoded & 0xFF}", encoded >> 8)

    return st.one_of(st.just(("Immortal", None)), mortal())


_STRATEGIES: dict[TypeSpec, st.SearchStrategy[Any]] = {}


def value_strategy(spec: TypeSpec) -> st.SearchStrategy[Any]:
    cached = _STRATEGIES.get(spec)
    if cached is None:
        cached = _STRATEGIES[spec] = _strategy(spec)
    return cached


def _fields_strategy(flds: tuple[Field, ...]) -> st.SearchStrategy[Any]:
    if not flds:
        return st.none()
    if len(flds) == 1 and flds[0].name is None:
        return value_strategy(flds[0].ty)
    if all(f.name is not None for f in flds):
        return st.fixed_dictionaries({f.name: value_strategy(f.ty) for f in flds})
    return st.tuples(*(value_strategy(f.ty) for f in flds))


def _strategy(spec: TypeSpec) -> st.SearchStrategy[Any]:
    if isinstance(spec, Primitive):
        if spec.name == "bool":
            return st.booleans()
        if spec.name == "str":
            return st.text(max_size=12)
        return _int_strategy(spec.name)
    if isinstance(spec, Compact):
        top = _compact_max(spec.inner)
        return st.one_of(st.integers(0, top), st.sampled_from([b for b in COMPACT_BOUNDARIES if b <= top]))
    if isinstance(spec, Sequence):
        if spec.inner == U8:
            return st.binary(max_size=40)
        return st.lists(value_strategy(spec.inner), max_size=3)
    if isinstance(spec, Array):
        if spec.inner == U8:
            return st.binary(min_size=spec.length, max_size=spec.length)
        return st.lists(value_strategy(spec.inner), min_size=spec.length, max_size=spec.length)
    if isinstance(spec, Tuple):
        return st.tuples(*(value_strategy(item) for item in spec.items)) if spec.items else st.none()
    if isinstance(spec, Composite):
        return _fields_strategy(spec.fields)
    if isinstance(spec, VariantType):
        if spec.path == ("Option",):
            return st.one_of(st.none(), value_strategy(spec.variants[1].fields[0].ty))
        if spec == Era:
            return _era_strategy()
        return st.one_of(*(st.tuples(st.just(v.name), _fields_strategy(v.fields)) for v in spec.variants))
    raise AssertionError(spec)
