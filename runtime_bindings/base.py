"""Building blocks the generated pallet modules are made of (and the dynamic fallbacks).

Generated code (``runtime_bindings/generated``) subclasses these: one ``CallArgs``
dataclass per call, one ``TypedEvent`` dataclass per event, one ``ModuleError``
subclass per error, and one ``PalletApi`` subclass per pallet whose methods submit
calls and whose properties are ``StorageValue`` / ``StorageMap`` handles.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import (
    TYPE_CHECKING,
    Any,
    ClassVar,
    Generic,
    Literal,
    TypedDict,
    TypeVar,
    Unpack,
)

from runtime_bindings.values import AccountId, ChainEnum, FixedBytes, ScaleValue

if TYPE_CHECKING:
    from substrateinterface import Keypair

    from runtime_bindings.client import Chain

Wait = Literal["none", "inclusion", "finality"]
AssetId = int | Mapping[str, object] | None
"""ChargeAssetTxPayment's asset (an asset id, or a MultiLocation as scalecodec takes it); None: the native token."""
Era = Mapping[str, int] | str | None
"""A mortal era as substrate-interface takes it ({"period": 64}, {"period": 64, "current": n}); None: immortal."""


class SubmitOptions(TypedDict, total=False):
    """What `Chain.submit` takes besides the call, signer, wait and timeout, for the pallet APIs to pass on."""

    nonce: int | None
    tip: int
    asset_id: AssetId
    era: Era

K = TypeVar("K")
V = TypeVar("V")
E = TypeVar("E", bound="TypedEvent")


def to_scale_value(value: object) -> object:
    """Generated values (structs, enums, bytes, accounts) to the plain values scalecodec encodes; what
    callers have always passed (SS58 strings, 0x-hex, dicts, a Keypair for an account) goes through."""
    if isinstance(value, ChainEnum):
        return value.to_value()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return struct_value(value)
    if isinstance(value, FixedBytes):
        return str(value)  # scalecodec's arrays take 0x-hex
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)  # scalecodec's Bytes checks `type(value) is bytes`
    if isinstance(value, str):
        return str.__str__(value)  # an AccountId as the exact str scalecodec expects
    if isinstance(value, (list, tuple)):
        return type(value)(to_scale_value(v) for v in value)
    if isinstance(value, dict):
        return {k: to_scale_value(v) for k, v in value.items()}
    ss58 = getattr(value, "ss58_address", None)  # a Keypair where an account is expected
    if isinstance(ss58, str):
        return ss58
    return value


def struct_value(value: object) -> dict[str, object]:
    """A dataclass's fields by their SCALE names (``class_`` is ``class``), each as scalecodec encodes it."""
    if not dataclasses.is_dataclass(value):
        raise TypeError(f"not a generated struct: {value!r}")
    names = getattr(type(value), "_SCALE_NAMES", {})
    return {names.get(f.name, f.name): to_scale_value(getattr(value, f.name)) for f in dataclasses.fields(value)}


# Calls ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CallArgs:
    """The arguments of one runtime call; subclasses name the pallet and call."""

    PALLET: ClassVar[str] = ""
    CALL: ClassVar[str] = ""
    _SCALE_NAMES: ClassVar[dict[str, str]] = {}

    def to_value(self) -> dict[str, object]:
        return struct_value(self)


@dataclass(frozen=True)
class DynamicCall:
    """A call of a pallet the generated layer does not know: pallet, call name and raw args."""

    pallet: str
    call: str
    args: dict[str, object]

    @property
    def PALLET(self) -> str:
        return self.pallet

    @property
    def CALL(self) -> str:
        return self.call

    def to_value(self) -> dict[str, object]:
        return {name: to_scale_value(value) for name, value in self.args.items()}


# Events -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TypedEvent:
    """An event payload; subclasses are generated per (pallet, event)."""

    PALLET: ClassVar[str] = ""
    NAME: ClassVar[str] = ""
    _SCALE_NAMES: ClassVar[dict[str, str]] = {}
    _registry: ClassVar[dict[tuple[str, str], type[TypedEvent]]] = {}

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("NAME"):
            TypedEvent._registry[(cls.PALLET, cls.NAME)] = cls

    @property
    def pallet(self) -> str:
        return self.PALLET

    @property
    def name(self) -> str:
        return self.NAME

    @classmethod
    def from_value(cls, value: ScaleValue) -> TypedEvent:
        """The event from its decoded attributes; generated subclasses read their fields from `value`."""
        return cls()


@dataclass(frozen=True)
class GenericEvent(TypedEvent):
    """An event of a pallet the generated layer does not know: attributes as decoded."""

    event_pallet: str = ""
    event_name: str = ""
    attributes: ScaleValue = None

    @property
    def pallet(self) -> str:
        return self.event_pallet

    @property
    def name(self) -> str:
        return self.event_name


def typed_event(pallet: str, name: str, attributes: ScaleValue) -> TypedEvent:
    """The generated event class for (pallet, name) built from decoded attributes, or a GenericEvent."""
    cls = TypedEvent._registry.get((pallet, name))
    if cls is not None:
        try:
            return cls.from_value(attributes)
        except (KeyError, TypeError, IndexError, ValueError):
            pass  # another chain's pallet of the same name with a different layout
    return GenericEvent(pallet, name, attributes)


def runtime_event(value: dict[str, ScaleValue]) -> TypedEvent:
    """A ``RuntimeEvent`` as scalecodec decodes it inside ``System.Events`` (``module_id``, ``event_id``,
    ``attributes``) or as ``{pallet: {event: attributes}}``, as its generated event class."""
    if "module_id" in value:
        return typed_event(str(value["module_id"]), str(value["event_id"]), value.get("attributes"))
    [(pallet, inner)] = value.items()
    [(name, attributes)] = inner.items() if isinstance(inner, dict) else [(str(inner), None)]
    return typed_event(pallet, name, attributes)


Phase = Literal["Initialization", "Finalization"] | dict[str, int]
"""`frame_system::Phase` in its JSON form: "Initialization", "Finalization" or {"ApplyExtrinsic": index}."""


@dataclass(frozen=True)
class EventRecord:
    """One entry of System.Events: the event and where in the block it happened."""

    phase: Phase
    event: TypedEvent
    topics: list[str] = field(default_factory=list)

    @property
    def extrinsic_index(self) -> int | None:
        if isinstance(self.phase, dict) and "ApplyExtrinsic" in self.phase:
            return int(self.phase["ApplyExtrinsic"])
        return None


@dataclass(frozen=True)
class BlockEvents:
    """The events of one (finalized) block, in order."""

    number: int
    hash: str
    records: list[EventRecord]

    @property
    def events(self) -> list[TypedEvent]:
        return [r.event for r in self.records]


@dataclass(frozen=True)
class DecodedExtrinsic:
    """An extrinsic's signer (None when unsigned), its call, and the call's arguments as decoded."""

    signer: AccountId | None
    pallet: str
    call: str
    args: dict[str, ScaleValue]


@dataclass(frozen=True)
class Receipt:
    """What a submission returned: always the extrinsic hash; block, events and fee once included."""

    extrinsic_hash: str
    block_hash: str | None = None
    block_number: int | None = None
    extrinsic_index: int | None = None
    events: list[TypedEvent] = field(default_factory=list)
    fee: int | None = None
    finalized: bool = False

    @property
    def included(self) -> bool:
        return self.block_hash is not None

    def find(self, event_type: type[E]) -> list[E]:
        """The events of this extrinsic of a generated type (e.g. ``balances.TransferEvent``)."""
        return [e for e in self.events if isinstance(e, event_type)]

    def find_named(self, pallet: str, name: str) -> list[TypedEvent]:
        return [e for e in self.events if e.pallet == pallet and e.name == name]


# Storage ----------------------------------------------------------------------------------------

def _identity(value: Any) -> Any:
    """The default decoder: an item the generated layer has no class for (an integer, a list of ids) is
    returned as decoded, trusted to be the `V` its metadata type names (hence Any, here only)."""
    return value


class StorageValue(Generic[V]):
    """A storage item without keys: call it to read (at the best block or `at` a block hash)."""

    def __init__(self, chain: Chain, pallet: str, name: str, decode: Callable[[ScaleValue], V] = _identity) -> None:
        self._chain, self.pallet, self.name, self._decode = chain, pallet, name, decode

    def __call__(self, *, at: str | None = None) -> V:
        raw = self._chain.query(self.pallet, self.name, [], at=at)
        return None if raw is None else self._decode(raw)  # type: ignore[return-value]

    def __repr__(self) -> str:
        return f"<StorageValue {self.pallet}.{self.name}>"


@dataclass(frozen=True)
class StoragePage(Generic[K, V]):
    """One page of a map: its (key, value) pairs and the key to continue from (None when done)."""

    items: list[tuple[K, V]]
    next_key: str | None


class StorageMap(Generic[K, V]):
    """A storage map: ``m(key)`` reads one entry; ``m.entries()`` iterates all, fetched in pages."""

    def __init__(self, chain: Chain, pallet: str, name: str, key_count: int = 1,
                 decode: Callable[[ScaleValue], V] = _identity,
                 decode_keys: tuple[Callable[[ScaleValue], object] | None, ...] = ()) -> None:
        self._chain, self.pallet, self.name, self.key_count = chain, pallet, name, key_count
        self._decode, self._decode_keys = decode, decode_keys

    def __call__(self, *keys: object, at: str | None = None) -> V:
        if len(keys) != self.key_count:
            raise TypeError(f"{self.pallet}.{self.name} takes {self.key_count} key(s), got {len(keys)}")
        raw = self._chain.query(self.pallet, self.name, [to_scale_value(k) for k in keys], at=at)
        return None if raw is None else self._decode(raw)  # type: ignore[return-value]

    def entries(self, *prefix: object, page_size: int = 100, max_results: int | None = None,
                at: str | None = None) -> Iterator[tuple[K, V]]:
        """Every (key, value) under the leading `prefix` keys, fetched `page_size` keys at a time."""
        start: str | None = None
        seen = 0
        at = at or self._chain.best_hash()  # one snapshot for all pages
        while True:
            page = self.page(*prefix, page_size=page_size, start_key=start, at=at)
            for item in page.items:
                yield item
                seen += 1
                if max_results is not None and seen >= max_results:
                    return
            if page.next_key is None:
                return
            start = page.next_key

    def page(self, *prefix: object, page_size: int = 100, start_key: str | None = None,
             at: str | None = None) -> StoragePage[K, V]:
        """One page of entries after `start_key` (a raw storage key, from a previous page's `next_key`)."""
        pairs, last_key = self._chain.query_page(self.pallet, self.name, [to_scale_value(k) for k in prefix],
                                                 page_size=page_size, start_key=start_key, at=at)
        items = [(self._decode_key(k, len(prefix)), None if v is None else self._decode(v)) for k, v in pairs]
        return StoragePage(items, last_key if len(pairs) >= page_size else None)  # type: ignore[arg-type]

    def _decode_key(self, raw: ScaleValue, given: int) -> object:
        """The keys a read left open (after the `given` prefix keys): one value, or a tuple of several."""
        decoders = self._decode_keys[given:] or (None,) * (self.key_count - given)
        if len(decoders) == 1:
            return raw if decoders[0] is None else decoders[0](raw)
        if not isinstance(raw, (list, tuple)):
            raise TypeError(f"{self.pallet}.{self.name}: {len(decoders)} keys expected, got {raw!r}")
        return tuple(part if d is None else d(part) for d, part in zip(decoders, raw, strict=True))

    def __repr__(self) -> str:
        return f"<StorageMap {self.pallet}.{self.name}>"


# Pallets ----------------------------------------------------------------------------------------

DynamicItem = Callable[..., Receipt] | StorageValue[ScaleValue] | StorageMap[ScaleValue, ScaleValue]
"""What a pallet's dynamic attribute is: a call's submitter (signer, then the call's arguments by name), or
a storage item whose values are as decoded."""


class PalletApi:
    """The calls and storage of one pallet, bound to a Chain."""

    PALLET: ClassVar[str] = ""
    _registry: ClassVar[dict[str, type[PalletApi]]] = {}

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("PALLET"):
            PalletApi._registry[cls.PALLET] = cls

    def __init__(self, chain: Chain, pallet: str | None = None) -> None:
        self._chain = chain
        self._pallet = pallet or self.PALLET

    @property
    def pallet_name(self) -> str:
        return self._pallet

    def submit(self, call: CallArgs | DynamicCall, signer: Keypair, *, wait: Wait = "inclusion",
               timeout: float | None = None, **options: Unpack[SubmitOptions]) -> Receipt:
        return self._chain.submit(call, signer, wait=wait, timeout=timeout, **options)

    # Dynamic access for pallets (or items) the generated layer lacks -------------------------
    def call(self, name: str, signer: Keypair, *, wait: Wait = "inclusion", timeout: float | None = None,
             **args: object) -> Receipt:
        return self.submit(DynamicCall(self._pallet, name, args), signer, wait=wait, timeout=timeout)

    def storage(self, name: str) -> StorageValue[ScaleValue] | StorageMap[ScaleValue, ScaleValue]:
        """An item by its metadata name, its values as decoded (the generated properties give classes)."""
        key_count = self._chain.storage_key_count(self._pallet, name)
        if key_count == 0:
            return StorageValue(self._chain, self._pallet, name)
        return StorageMap(self._chain, self._pallet, name, key_count)

    def constant(self, name: str) -> ScaleValue:
        """A constant by its metadata name, as decoded (the generated properties give it typed)."""
        return self._chain.constant(self._pallet, name)

    def __getattr__(self, attr: str) -> DynamicItem:
        """A call (a function of the signer and keyword arguments) or storage item by snake_case name."""
        if attr.startswith("_"):
            raise AttributeError(attr)
        chain = self.__dict__["_chain"]
        pallet = self.__dict__["_pallet"]
        names = chain.pallet_items(pallet)
        if attr in names["calls"]:
            def submit_call(signer: Keypair, *, wait: Wait = "inclusion", timeout: float | None = None,
                            **args: object) -> Receipt:
                return self.call(attr, signer, wait=wait, timeout=timeout, **args)
            return submit_call
        storage_name = names["storage"].get(attr)
        if storage_name is not None:
            return self.storage(storage_name)
        raise AttributeError(f"pallet {pallet} has no call or storage item {attr!r}")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._pallet}>"
