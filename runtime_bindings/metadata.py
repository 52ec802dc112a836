"""Runtime metadata V14 as plain dicts (scalecodec's decoded value), with the lookups the bindings need.

The TypedDicts below name the parts of that JSON the bindings read (scalecodec's key names, ``typeName``
included); they describe, they do not convert: a value is the dict scalecodec decoded."""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NotRequired, TypedDict, cast

from scalecodec.base import RuntimeConfigurationObject, ScaleBytes
from scalecodec.type_registry import load_type_registry_preset


class FieldJson(TypedDict):
    """A struct field or variant field: `name` is None in a tuple-like one; `type` is a type id."""

    name: str | None
    type: int
    typeName: str | None
    docs: list[str]


class VariantJson(TypedDict):
    """An enum variant (also a call, an event or an error of a pallet)."""

    name: str
    fields: list[FieldJson]
    index: int
    docs: list[str]


class CompositeDefJson(TypedDict):
    fields: list[FieldJson]


class VariantDefJson(TypedDict):
    variants: list[VariantJson]


class TypeRefJson(TypedDict):
    """A sequence's or a compact's inner type id."""

    type: int


class ArrayDefJson(TypedDict):
    len: int
    type: int


class BitSequenceDefJson(TypedDict):
    bit_store_type: int
    bit_order_type: int


class TypeDefJson(TypedDict, total=False):
    """A type's definition: exactly one of these keys."""

    composite: CompositeDefJson
    variant: VariantDefJson
    sequence: TypeRefJson
    array: ArrayDefJson
    tuple: list[int]
    primitive: str
    compact: TypeRefJson
    bitsequence: BitSequenceDefJson  # scalecodec's name


class TypeParamJson(TypedDict):
    name: str
    type: int | None


TypeJson = TypedDict("TypeJson", {"path": list[str], "params": list[TypeParamJson], "def": TypeDefJson,
                                  "docs": list[str]})
"""One type of the portable registry (``def`` is a keyword, hence the functional form)."""


class PortableTypeJson(TypedDict):
    id: int
    type: TypeJson


class RegistryJson(TypedDict):
    types: list[PortableTypeJson]


class StorageMapJson(TypedDict):
    hashers: list[str]
    key: int
    value: int


class StorageTypeJson(TypedDict, total=False):
    """A plain item's value type id, or a map's hashers, key and value types."""

    Plain: int
    Map: StorageMapJson


class StorageEntryJson(TypedDict):
    name: str
    modifier: str  # "Optional" or "Default"
    type: StorageTypeJson
    default: str
    documentation: NotRequired[list[str]]
    docs: NotRequired[list[str]]


class StorageJson(TypedDict):
    prefix: str
    entries: list[StorageEntryJson]


class TypeIdJson(TypedDict):
    """A pallet's calls, event or error: the id of its enum type."""

    ty: int


class ConstantJson(TypedDict):
    name: str
    type: int
    value: str  # 0x-hex SCALE
    documentation: NotRequired[list[str]]
    docs: NotRequired[list[str]]


class PalletJson(TypedDict):
    name: str
    index: int
    storage: StorageJson | None
    calls: TypeIdJson | None
    event: TypeIdJson | None
    constants: list[ConstantJson] | None
    error: TypeIdJson | None


class MetadataJson(TypedDict):
    """Metadata V14: the type registry, the pallets, and the extrinsic format (not read here)."""

    types: RegistryJson
    pallets: list[PalletJson]
    extrinsic: dict[str, object]
    runtime_type: NotRequired[int]


def decode_metadata(raw: bytes) -> MetadataJson:
    """SCALE-encoded RuntimeMetadataPrefixed to the V14 dict ({"types", "pallets", "extrinsic", ...})."""
    config = RuntimeConfigurationObject()
    config.update_type_registry(load_type_registry_preset("core"))
    obj = config.create_scale_object("MetadataVersioned", data=ScaleBytes(raw))
    obj.decode()
    return v14_of(obj.value)


def v14_of(value: object) -> MetadataJson:
    """The V14 part of a decoded MetadataVersioned value (a (magic, {"V14": ...}) pair)."""
    versioned = value[1] if isinstance(value, (list, tuple)) else value
    if not isinstance(versioned, dict) or "V14" not in versioned:
        got = list(versioned) if isinstance(versioned, dict) else type(versioned).__name__
        raise ValueError(f"only metadata V14 is supported, got {got}")
    v14 = versioned["V14"]
    if not isinstance(v14, dict):
        raise ValueError(f"metadata V14 is a {type(v14).__name__}, not a map")
    missing = {"types", "pallets"} - v14.keys()
    if missing:
        raise ValueError(f"metadata V14 lacks {sorted(missing)}")
    return cast(MetadataJson, v14)  # scalecodec's decoding of the V14 layout the TypedDicts describe


def snake_case(name: str) -> str:
    """TransactionPayment -> transaction_payment, ExistentialDeposit -> existential_deposit."""
    name = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()


def docs_of(item: Mapping[str, object]) -> str:
    """An item's doc comment (scalecodec names the list ``docs`` in types and ``documentation`` in pallets)."""
    lines = item.get("docs", item.get("documentation")) or []
    return "\n".join(str(line).strip() for line in lines).strip() if isinstance(lines, list) else ""


class PalletItems(TypedDict):
    """What a pallet offers by name: its calls, and its storage items by snake_case attribute."""

    calls: set[str]
    storage: dict[str, str]


@dataclass
class MetadataIndex:
    """Lookups over one runtime's metadata: types by id, pallets by name, errors by index."""

    v14: MetadataJson
    types: dict[int, TypeJson] = field(init=False)
    pallets: dict[str, PalletJson] = field(init=False)
    errors: dict[tuple[int, int], tuple[str, str, str]] = field(init=False)

    def __post_init__(self) -> None:
        self.types = {t["id"]: t["type"] for t in self.v14["types"]["types"]}
        self.pallets = {p["name"]: p for p in self.v14["pallets"]}
        self.errors = {}
        for pallet in self.v14["pallets"]:
            error = pallet.get("error")
            if error:
                for variant in self.variants(error["ty"]):
                    self.errors[(pallet["index"], variant["index"])] = (pallet["name"], variant["name"],
                                                                        docs_of(variant))

    def variants(self, type_id: int) -> list[VariantJson]:
        definition = self.types[type_id]["def"]
        return list(definition["variant"]["variants"]) if "variant" in definition else []

    def calls(self, pallet: str) -> list[VariantJson]:
        calls = self.pallets[pallet].get("calls")
        return self.variants(calls["ty"]) if calls else []

    def events(self, pallet: str) -> list[VariantJson]:
        event = self.pallets[pallet].get("event")
        return self.variants(event["ty"]) if event else []

    def pallet_errors(self, pallet: str) -> list[VariantJson]:
        error = self.pallets[pallet].get("error")
        return self.variants(error["ty"]) if error else []

    def storage(self, pallet: str) -> list[StorageEntryJson]:
        storage = self.pallets[pallet].get("storage")
        return list(storage["entries"]) if storage else []

    def constants(self, pallet: str) -> list[ConstantJson]:
        return list(self.pallets[pallet].get("constants") or [])

    def storage_key_count(self, pallet: str, name: str) -> int:
        for entry in self.storage(pallet):
            if entry["name"] == name:
                kind = entry["type"]
                if "Plain" in kind:
                    return 0
                return len(kind["Map"]["hashers"])
        raise KeyError(f"{pallet}.{name}")

    def call_arg_type(self, pallet: str, call: str, arg: str) -> int:
        """The type id of one call argument (e.g. TaskBounties.submit_result's `attestation`)."""
        if pallet not in self.pallets:
            raise KeyError(f"pallet {pallet} is not in this runtime")
        for variant in self.calls(pallet):
            if variant["name"] == call:
                for fld in variant["fields"]:
                    if fld["name"] == arg:
                        return int(fld["type"])
                raise KeyError(f"{pallet}.{call} has no argument {arg}")
        raise KeyError(f"{pallet} has no call {call}")

    def pallet_names_by_attr(self) -> dict[str, str]:
        return {snake_case(name): name for name in self.pallets}

    def items_by_attr(self, pallet: str) -> PalletItems:
        return {
            "calls": {v["name"] for v in self.calls(pallet)},
            "storage": {snake_case(e["name"]): e["name"] for e in self.storage(pallet)},
        }
