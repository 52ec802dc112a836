"""Runtime metadata V14 as plain dicts (scalecodec's decoded value), with the lookups the bindings need."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, TypedDict

from scalecodec.base import RuntimeConfigurationObject, ScaleBytes
from scalecodec.type_registry import load_type_registry_preset


def decode_metadata(raw: bytes) -> dict[str, Any]:
    """SCALE-encoded RuntimeMetadataPrefixed to the V14 dict ({"types", "pallets", "extrinsic", ...})."""
    config = RuntimeConfigurationObject()
    config.update_type_registry(load_type_registry_preset("core"))
    obj = config.create_scale_object("MetadataVersioned", data=ScaleBytes(raw))
    obj.decode()
    return v14_of(obj.value)


def v14_of(value: Any) -> dict[str, Any]:
    """The V14 part of a decoded MetadataVersioned value (a (magic, {"V14": ...}) pair)."""
    versioned = value[1] if isinstance(value, (list, tuple)) else value
    if "V14" not in versioned:
        raise ValueError(f"only metadata V14 is supported, got {list(versioned)}")
    v14 = versioned["V14"]
    if not isinstance(v14, dict):
        raise ValueError(f"metadata V14 is a {type(v14).__name__}, not a map")
    return v14


def snake_case(name: str) -> str:
    """TransactionPayment -> transaction_payment, ExistentialDeposit -> existential_deposit."""
    name = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()


def docs_of(item: dict[str, Any]) -> str:
    lines = item.get("docs", item.get("documentation")) or []
    return "\n".join(line.strip() for line in lines).strip()


class PalletItems(TypedDict):
    """What a pallet offers by name: its calls, and its storage items by snake_case attribute."""

    calls: set[str]
    storage: dict[str, str]


@dataclass
class MetadataIndex:
    """Lookups over one runtime's metadata: types by id, pallets by name, errors by index."""

    v14: dict[str, Any]
    types: dict[int, dict[str, Any]] = field(init=False)
    pallets: dict[str, dict[str, Any]] = field(init=False)
    errors: dict[tuple[int, int], tuple[str, str, str]] = field(init=False)

    def __post_init__(self) -> None:
        self.types = {t["id"]: t["type"] for t in self.v14["types"]["types"]}
        self.pallets = {p["name"]: p for p in self.v14["pallets"]}
        self.errors = {}
        for pallet in self.v14["pallets"]:
            if pallet.get("error"):
                for variant in self.variants(pallet["error"]["ty"]):
                    self.errors[(pallet["index"], variant["index"])] = (pallet["name"], variant["name"],
                                                                        docs_of(variant))

    def variants(self, type_id: int) -> list[dict[str, Any]]:
        definition = self.types[type_id]["def"]
        return list(definition["variant"]["variants"]) if "variant" in definition else []

    def calls(self, pallet: str) -> list[dict[str, Any]]:
        calls = self.pallets[pallet].get("calls")
        return self.variants(calls["ty"]) if calls else []

    def events(self, pallet: str) -> list[dict[str, Any]]:
        event = self.pallets[pallet].get("event")
        return self.variants(event["ty"]) if event else []

    def pallet_errors(self, pallet: str) -> list[dict[str, Any]]:
        error = self.pallets[pallet].get("error")
        return self.variants(error["ty"]) if error else []

    def storage(self, pallet: str) -> list[dict[str, Any]]:
        storage = self.pallets[pallet].get("storage")
        return list(storage["entries"]) if storage else []

    def constants(self, pallet: str) -> list[dict[str, Any]]:
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
