"""Pallet declarations: the single source of metadata, dispatch and storage keys.

A pallet class declares its storage items, calls, events, errors and
constants once; the runtime derives the metadata V14 types, the call
dispatch table, the event codec and every storage key from those
declarations.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterator

from devnet.crypto import CONCAT_PREFIX_LEN, HASHERS, twox_128
from devnet.scale.codec import Codec, codec_for
from devnet.scale.types import Field, Tuple, TypeSpec, Variant, VariantType

if TYPE_CHECKING:
    from devnet.runtime.context import DispatchContext
    from devnet.state import Overlay


_KEY_CACHE_SIZE = 65_536  # per storage item; cleared when full, so memory stays bounded


class DispatchError(Exception):
    """A dispatch failed; `value` is the sp_runtime::DispatchError as a codec value."""

    def __init__(self, value: Any, description: str = "") -> None:
        super().__init__(description or str(value))
        self.value = value


class ModuleError(DispatchError):
    def __init__(self, pallet_index: int, error_index: int, pallet: str, name: str) -> None:
        super().__init__(("Module", {"index": pallet_index, "error": bytes((error_index, 0, 0, 0))}),
                         f"{pallet}.{name}")
        self.pallet, self.name = pallet, name


BAD_ORIGIN = DispatchError(("BadOrigin", None), "BadOrigin")


@dataclass
class StorageItem:
    """A storage value (no keys) or map (one or more (hasher, key type) pairs)."""

    value: TypeSpec
    keys: tuple[tuple[str, TypeSpec], ...] = ()
    default: Any = None  # None: an OptionQuery (absent reads as None); otherwise a ValueQuery default
    docs: str = ""
    name: str = ""
    prefix: bytes = b""
    pallet: str = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def bind(self, pallet_name: str) -> None:
        self.pallet = pallet_name
        self.prefix = twox_128(pallet_name.encode()) + twox_128(self.name.encode())
        self._codec: Codec = codec_for(self.value)
        self._key_codecs = [(HASHERS[hasher], codec_for(ty)) for hasher, ty in self.keys]
        self._default_bytes = b"\x00" if self.default is None else self._codec.encode(self.default)
        self._key_cache: dict[tuple[Any, ...], bytes] = {}

    @property
    def default_bytes(self) -> bytes:
        return self._default_bytes

    @property
    def key_type(self) -> TypeSpec:
        return self.keys[0][1] if len(self.keys) == 1 else Tuple(tuple(ty for _, ty in self.keys))

    def key(self, *keys: Any) -> bytes:
        """The storage key; memoised, since a transfer derives System.Account's key a dozen times."""
        cached = self._key_cache.get(keys)
        if cached is not None:
            return cached
        if len(keys) != len(self._key_codecs):
            raise TypeError(f"{self.pallet}.{self.name} takes {len(self._key_codecs)} keys")
        key = self.prefix + b"".join(h(c.encode(k)) for (h, c), k in zip(self._key_codecs, keys))
        if len(self._key_cache) >= _KEY_CACHE_SIZE:
            self._key_cache.clear()
        self._key_cache[keys] = key
        return key

    def partial_key(self, *keys: Any) -> bytes:
        """The prefix under which every entry sharing these leading keys lives."""
        return self.prefix + b"".join(h(c.encode(k)) for (h, c), k in zip(self._key_codecs, keys))

    def get(self, state: "Overlay", *keys: Any) -> Any:
        raw = state.get(self.key(*keys))
        if raw is None:
            # decoded afresh: callers mutate what they read, so a shared default would leak writes
            return None if self.default is None else self._codec.decode(self._default_bytes)
        return self._codec.decode(raw)

    def contains(self, state: "Overlay", *keys: Any) -> bool:
        return state.get(self.key(*keys)) is not None

    def set(self, state: "Overlay", *keys_and_value: Any) -> None:
        *keys, value = keys_and_value
        state.set(self.key(*keys), self._codec.encode(value))

    def remove(self, state: "Overlay", *keys: Any) -> None:
        state.remove(self.key(*keys))

    def take(self, state: "Overlay", *keys: Any) -> Any:
        value = self.get(state, *keys)
        self.remove(state, *keys)
        return value

    def iter(self, state: "Overlay", *leading: Any) -> Iterator[tuple[tuple[Any, ...], Any]]:
        """(keys, value) of every entry under the leading keys; only for hashers that keep the key."""
        start = len(self.partial_key(*leading))
        rest = self.keys[len(leading):]
        for raw_key, raw_value in state.iter_prefix(self.partial_key(*leading)):
            offset, decoded = start, list(leading)
            for hasher, ty in rest:
                offset += CONCAT_PREFIX_LEN[hasher]
                key, offset = codec_for(ty).decode_from(raw_key, offset)
                decoded.append(key)
            yield tuple(decoded), self._codec.decode(raw_value)


@dataclass(frozen=True)
class CallDef:
    name: str
    index: int
    args: tuple[Field, ...]
    weight: int
    handler: Callable[..., None]
    docs: str


def call(index: int, *args: tuple, weight: int) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Declare a dispatchable: args are (name, type[, type_name]); weight is its ref_time."""

    def decorate(fn: Callable[..., None]) -> Callable[..., None]:
        fn.__call_decl__ = (index, tuple(Field(a[0], a[1], a[2] if len(a) > 2 else None) for a in args), weight)  # type: ignore[attr-defined]
        return fn

    return decorate


@dataclass(frozen=True)
class EventDef:
    name: str
    fields: tuple[Field, ...]
    docs: str = ""


@dataclass(frozen=True)
class ErrorDef:
    name: str
    docs: str = ""


@dataclass(frozen=True)
class Constant:
    name: str
    ty: TypeSpec
    value: Any
    docs: str = ""


class Pallet:
    """Base of every pallet. Subclasses set the ClassVars and declare storage as attributes."""

    name: ClassVar[str]
    index: ClassVar[int]
    module: ClassVar[str]  # Rust crate path, e.g. "pallet_balances": the prefix of the type paths
    events: ClassVar[tuple[EventDef, ...]] = ()
    errors: ClassVar[tuple[ErrorDef, ...]] = ()
    # Per instance: a pallet sets its constants in __init__ from its parameters, so two runtimes with
    # different settings in one process (a test's devnet beside another's) each keep their own. The class
    # default serves pallets whose constants take no parameters.
    constants: tuple[Constant, ...] = ()

    storage_items: ClassVar[tuple[StorageItem, ...]]
    calls: ClassVar[tuple[CallDef, ...]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" not in cls.__dict__:
            return
        # the class's own declarations first, then a mixin's (federated_secagg.py): metadata order stays stable
        members = dict(cls.__dict__)
        for base in cls.__mro__[1:]:
            if base is not Pallet and base is not object:
                members.update({k: v for k, v in vars(base).items() if k not in members})
        cls.storage_items = tuple(v for v in members.values() if isinstance(v, StorageItem))
        for item in cls.storage_items:
            item.bind(cls.name)
        calls = []
        for attr, fn in members.items():
            decl = getattr(fn, "__call_decl__", None)
            if decl is not None:
                index, args, weight = decl
                calls.append(CallDef(attr, index, args, weight, fn, (fn.__doc__ or "").strip()))
        cls.calls = tuple(sorted(calls, key=lambda c: c.index))
        cls._error_index = {e.name: i for i, e in enumerate(cls.errors)}

    # Types of this pallet, as the metadata and the codecs see them.
    @classmethod
    def call_type(cls) -> VariantType | None:
        if not cls.calls:
            return None
        return VariantType(
            (cls.module, "pallet", "Call"),
            tuple(Variant(c.name, c.args, c.index, (c.docs,) if c.docs else ()) for c in cls.calls),
            (),
        )

    @classmethod
    def event_type(cls) -> VariantType | None:
        if not cls.events:
            return None
        return VariantType(
            (cls.module, "pallet", "Event"),
            tuple(Variant(e.name, e.fields, i, (e.docs,) if e.docs else ()) for i, e in enumerate(cls.events)),
        )

    @classmethod
    def error_type(cls) -> VariantType | None:
        if not cls.errors:
            return None
        return VariantType(
            (cls.module, "pallet", "Error"),
            tuple(Variant(e.name, (), i, (e.docs,) if e.docs else ()) for i, e in enumerate(cls.errors)),
        )

    @classmethod
    def error(cls, name: str) -> ModuleError:
        return ModuleError(cls.index, cls._error_index[name], cls.name, name)

    def constant(self, name: str) -> Any:
        for c in self.constants:
            if c.name == name:
                return c.value
        raise KeyError(name)

    # Hooks: overridden by pallets that do per-block work.
    def on_initialize(self, ctx: "DispatchContext") -> None:
        """Runs before the block's extrinsics."""

    def on_finalize(self, ctx: "DispatchContext") -> None:
        """Runs after the block's extrinsics."""


@dataclass
class PalletSet:
    """The pallets of a runtime in index order, with lookups by name."""

    pallets: list[Pallet] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.by_name = {p.name: p for p in self.pallets}
        self.by_index = {p.index: p for p in self.pallets}
