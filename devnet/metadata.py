"""Metadata V14 of a runtime, derived from its pallets and encoded with scalecodec."""
from __future__ import annotations

from typing import Any

from scalecodec.base import RuntimeConfigurationObject
from scalecodec.type_registry import load_type_registry_preset

from devnet.runtime.framework import StorageItem
from devnet.runtime.runtime import SIGNED_EXTENSIONS, Runtime
from devnet.scale.codec import codec_for
from devnet.scale.registry import PortableRegistry

METADATA_MAGIC = "0x6d657461"  # "meta"


def _storage_entry(item: StorageItem, registry: PortableRegistry) -> dict[str, Any]:
    if item.keys:
        entry_type: dict[str, Any] = {"Map": {
            "hashers": [hasher for hasher, _ in item.keys],
            "key": registry.id_of(item.key_type),
            "value": registry.id_of(item.value),
        }}
    else:
        entry_type = {"Plain": registry.id_of(item.value)}
    return {
        "name": item.name,
        "modifier": "Optional" if item.default is None else "Default",
        "type": entry_type,
        "default": "0x" + item.default_bytes.hex(),
        "documentation": [item.docs] if item.docs else [],
    }


def metadata_value(runtime: Runtime) -> tuple[str, dict[str, Any]]:
    """The RuntimeMetadataPrefixed value, in scalecodec's value format."""
    registry = PortableRegistry()
    pallets = []
    for pallet in runtime.pallets:
        items = runtime.storage_items(pallet)
        call_type, event_type, error_type = pallet.call_type(), pallet.event_type(), pallet.error_type()
        pallets.append({
            "name": pallet.name,
            "storage": {"prefix": pallet.name, "entries": [_storage_entry(i, registry) for i in items]} if items else None,
            "calls": {"ty": registry.id_of(call_type)} if call_type else None,
            "event": {"ty": registry.id_of(event_type)} if event_type else None,
            "constants": [
                {"name": c.name, "type": registry.id_of(c.ty), "value": "0x" + codec_for(c.ty).encode(c.value).hex(),
                 "documentation": [c.docs] if c.docs else []}
                for c in pallet.constants
            ],
            "error": {"ty": registry.id_of(error_type)} if error_type else None,
            "index": pallet.index,
        })
    extrinsic = {
        "ty": registry.id_of(runtime.extrinsic_type),
        "version": 4,
        "signed_extensions": [
            {"identifier": ext.identifier, "ty": registry.id_of(ext.ty),
             "additional_signed": registry.id_of(ext.additional_signed)}
            for ext in SIGNED_EXTENSIONS
        ],
    }
    registry.id_of(runtime.error_type)  # present in FRAME metadata, used by clients to name errors
    runtime_type = registry.id_of(runtime.runtime_type)
    return METADATA_MAGIC, {"V14": {
        "types": {"types": registry.types},
        "pallets": pallets,
        "extrinsic": extrinsic,
        "runtime_type": runtime_type,
    }}


def encode_metadata(runtime: Runtime) -> bytes:
    config = RuntimeConfigurationObject()
    config.update_type_registry(load_type_registry_preset("core"))
    obj = config.create_scale_object("MetadataVersioned")
    return bytes(obj.encode(metadata_value(runtime)).data)


def main(argv: list[str] | None = None) -> int:
    """`python -m devnet.metadata`: the runtime's metadata as SCALE bytes, for runtime_bindings.codegen,
    which takes devnet's metadata only as data (the two packages are siblings in the layers)."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m devnet.metadata", description="write devnet's metadata V14")
    parser.add_argument("--out", metavar="FILE", help="write it here (default: standard output)")
    args = parser.parse_args(argv)
    raw = encode_metadata(Runtime())
    if args.out:
        with open(args.out, "wb") as f:
            f.write(raw)
    else:
        sys.stdout.buffer.write(raw)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
