"""The portable type registry of metadata V14, built from type declarations."""
from __future__ import annotations

from typing import Any

from devnet.scale.types import (
    Array,
    Compact,
    Composite,
    Field,
    Primitive,
    Sequence,
    Tuple,
    TypeSpec,
    VariantType,
)


class PortableRegistry:
    """Assigns each distinct declared type one id, in first-use order, as scale-info does."""

    def __init__(self) -> None:
        self._ids: dict[TypeSpec, int] = {}
        self._types: list[dict[str, Any]] = []

    def id_of(self, spec: TypeSpec) -> int:
        known = self._ids.get(spec)
        if known is not None:
            return known
        type_id = len(self._types)
        self._ids[spec] = type_id
        self._types.append({})  # reserve the slot so nested types come after their parent
        self._types[type_id] = {"id": type_id, "type": self._describe(spec)}
        return type_id

    @property
    def types(self) -> list[dict[str, Any]]:
        return list(self._types)

    def _fields(self, flds: tuple[Field, ...]) -> list[dict[str, Any]]:
        return [
            {"name": f.name, "type": self.id_of(f.ty), "typeName": f.type_name, "docs": list(f.docs)}
            for f in flds
        ]

    def _describe(self, spec: TypeSpec) -> dict[str, Any]:
        path: tuple[str, ...] = ()
        params: list[dict[str, Any]] = []
        docs: tuple[str, ...] = ()
        if isinstance(spec, Primitive):
            definition: dict[str, Any] = {"primitive": spec.name}
        elif isinstance(spec, Compact):
            definition = {"compact": {"type": self.id_of(spec.inner)}}
        elif isinstance(spec, Sequence):
            definition = {"sequence": {"type": self.id_of(spec.inner)}}
        elif isinstance(spec, Array):
            definition = {"array": {"len": spec.length, "type": self.id_of(spec.inner)}}
        elif isinstance(spec, Tuple):
            definition = {"tuple": [self.id_of(item) for item in spec.items]}
        elif isinstance(spec, (Composite, VariantType)):
            path, docs = spec.path, spec.docs
            params = [
                {"name": p.name, "type": None if p.ty is None else self.id_of(p.ty)} for p in spec.params
            ]
            if isinstance(spec, Composite):
                definition = {"composite": {"fields": self._fields(spec.fields)}}
            else:
                definition = {"variant": {"variants": [
                    {"name": v.name, "fields": self._fields(v.fields), "index": v.index, "docs": list(v.docs)}
                    for v in spec.variants
                ]}}
        else:
            raise TypeError(f"not a type spec: {spec!r}")
        return {"path": list(path), "params": params, "def": definition, "docs": list(docs)}
