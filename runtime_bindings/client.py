"""`Chain`: a thread-safe, typed connection to any Substrate node, over py-substrate-interface.

One `SubstrateInterface` sits behind a re-entrant lock: every RPC round trip holds the
lock, waits between polls do not, so many threads can share one `Chain` (their
requests are serialised on the one connection). For parallel throughput open one
`Chain` per thread (`chain.clone()`).

The connection is a `runtime_bindings.transport.Transport`: a WebSocket by default
(``Chain(url)``), or an in-process one (``Chain(transport=MemoryTransport(app))``) that needs
no socket; the transport alone opens the wire and maps its failures to `ConnectionLost`.
"""
from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Self, TypeVar

from substrateinterface import Keypair, SubstrateInterface
from scalecodec.base import ScaleBytes, ScaleType
from scalecodec.types import GenericMetadataVersioned
from substrateinterface.exceptions import SubstrateRequestException

from runtime_bindings.base import (
    AssetId,
    CallArgs,
    DecodedExtrinsic,
    DynamicCall,
    Era,
    EventRecord,
    PalletApi,
    Phase,
    Receipt,
    Wait,
    typed_event,
)
from runtime_bindings.errors import (
    BindingsError,
    ConnectionLost,
    RpcError,
    SubmitTimeout,
    dispatch_error_from,
    rpc_error_from,
)
from runtime_bindings.generated import GeneratedPallets
from runtime_bindings.metadata import MetadataIndex, PalletItems, v14_of
from runtime_bindings.metadata_cache import MetadataRegion
from runtime_bindings.primitives import STORAGE_HASHERS, decode_scale
from runtime_bindings.transport import Json, Transport, WebSocketTransport, json_list, json_object, json_str
from runtime_bindings.values import AccountId, ScaleValue

if TYPE_CHECKING:
    from runtime_bindings.events import EventStreams

T = TypeVar("T")
FEE_EVENTS = (("TransactionPayment", "TransactionFeePaid"), ("AssetTxPayment", "AssetTxFeePaid"),
              ("AssetConversionTxPayment", "AssetTxFeePaid"))


def extrinsic_hash(raw: bytes | str) -> str:
    """blake2_256 of an encoded extrinsic, as the node reports it (0x-hex)."""
    if isinstance(raw, str):
        raw = bytes.fromhex(raw.removeprefix("0x"))
    return "0x" + hashlib.blake2b(raw, digest_size=32).hexdigest()


class Chain(GeneratedPallets):
    """A connection to a node. Pallets are attributes (``chain.balances``), generated or dynamic."""

    def __init__(self, url: str | None = None, *, transport: Transport | None = None, timeout: float = 30.0,
                 submit_timeout: float = 60.0, poll_interval: float = 0.05, ss58_format: int | None = None,
                 asset_id: AssetId = None) -> None:
        """A node at `url` over a WebSocket, or over `transport` (exactly one of the two). `timeout`
        bounds every RPC round trip (and connecting); `submit_timeout` is the default wait for
        inclusion/finality; `asset_id` is passed to ChargeAssetTxPayment on chains that have it."""
        if (url is None) == (transport is None):
            raise ValueError("Chain needs a url or a transport, not both")
        self._transport: Transport = transport if transport is not None else WebSocketTransport(url or "",
                                                                                              timeout=timeout)
        self.url, self.timeout, self.submit_timeout = self._transport.url, timeout, submit_timeout
        self.poll_interval, self.ss58_format, self.asset_id = poll_interval, ss58_format, asset_id
        self._lock = threading.RLock()
        self._index_cache: dict[tuple[object, object, object], MetadataIndex] = {}
        self._pallet_cache: dict[str, PalletApi] = {}
        self.reconnects = 0  # how often the connection was re-opened after a failure
        self._si: SubstrateInterface = self._open()

    @classmethod
    def connect(cls, url: str, *, timeout: float = 30.0, submit_timeout: float = 60.0, poll_interval: float = 0.05,
                ss58_format: int | None = None, asset_id: AssetId = None) -> Chain:
        return cls(url, timeout=timeout, submit_timeout=submit_timeout, poll_interval=poll_interval,
                   ss58_format=ss58_format, asset_id=asset_id)

    def clone(self) -> Chain:
        """A new, independent connection with the same settings (e.g. one per thread)."""
        return Chain(transport=self._transport.clone(), timeout=self.timeout, submit_timeout=self.submit_timeout,
                     poll_interval=self.poll_interval, ss58_format=self.ss58_format, asset_id=self.asset_id)

    def close(self) -> None:
        with self._lock:
            self._transport.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # Connection -----------------------------------------------------------------------------
    def _open(self) -> SubstrateInterface:
        """substrate-interface on the transport (connected now), its runtime loaded."""
        self._transport.settimeout(self.timeout)
        self._transport.connect()
        try:
            with _REGISTRY_GATE.writing():  # loads a type registry and metadata: no decoding meanwhile
                si = _Substrate(websocket=self._transport, ss58_format=self.ss58_format,
                                config={"auto_reconnect": False})
                si.cache_region, si.prefetched_metadata = self._metadata_region(si)
                si.init_runtime()
                si.prefetched_metadata = None  # a shared decoded copy was found: not needed
        except BaseException:
            self._transport.close()
            raise
        return si

    @staticmethod
    def _metadata_region(si: SubstrateInterface) -> tuple[MetadataRegion | None, str | None]:
        """The process-wide decoded metadata for this node's chain and runtime, and the metadata it was keyed
        by (None: the node would not say, and this connection decodes its own)."""
        try:
            genesis = si.rpc_request("chain_getBlockHash", [0]).get("result")
            metadata = si.rpc_request("state_getMetadata", []).get("result")
        except SubstrateRequestException:
            return None, None
        if not isinstance(genesis, str) or not isinstance(metadata, str):
            return None, None
        try:
            return MetadataRegion(genesis, metadata), metadata
        except ValueError:  # not hex
            return None, None

    def reconnect(self) -> None:
        """Drop the connection and open a new one (metadata is kept unless the runtime changed)."""
        with self._lock:
            self.reconnects += 1
            self._transport.connect()

    def _run(self, fn: Callable[[SubstrateInterface], T], *, retry: bool = True,
             deadline: float | None = None) -> T:
        """Run `fn` with the lock held; typed RPC errors; one reconnect-and-retry for idempotent reads."""
        with self._lock, _REGISTRY_GATE.reading():
            for attempt in (0, 1):
                try:
                    limit = self.timeout if deadline is None else max(0.05, min(self.timeout,
                                                                                 deadline - time.monotonic()))
                    self._transport.settimeout(limit)
                    return fn(self._si)
                except SubstrateRequestException as exc:
                    raise rpc_error_from(exc.args[0] if exc.args else str(exc)) from None
                except ConnectionLost:
                    if attempt or not retry:
                        # the wire's state is unknown after a timeout: start afresh next time
                        try:
                            self.reconnect()
                        except ConnectionLost:
                            pass
                        raise
                    self.reconnect()
        raise AssertionError("unreachable")

    def rpc(self, method: str, params: Sequence[object] | None = None, *, retry: bool = True,
            deadline: float | None = None) -> Json:
        """A raw JSON-RPC call; returns `result`, raises typed errors."""
        response = self._run(lambda si: si.rpc_request(method, list(params or [])), retry=retry, deadline=deadline)
        if "error" in response:
            raise rpc_error_from(response["error"])
        result: Json = response.get("result")
        return result

    # Extrinsics -----------------------------------------------------------------------------
    def decode_extrinsic(self, raw: bytes) -> DecodedExtrinsic:
        """`raw` decoded with the runtime this connection loaded (ValueError when it is not an extrinsic of
        it): what a relay checks before it submits someone's signed transaction."""
        def decode(si: SubstrateInterface) -> Any:
            try:
                return decode_scale(si.runtime_config, "Extrinsic", raw, si.metadata)
            except Exception as exc:  # noqa: BLE001 - scalecodec raises many kinds
                raise ValueError(f"not an extrinsic of this chain: {type(exc).__name__}: {exc}") from None
        value = self._run(decode)
        call = value.get("call") or {}
        address = value.get("address")
        if isinstance(address, dict):  # MultiAddress
            address = address.get("Id") or next(iter(address.values()), None)
        return DecodedExtrinsic(None if address is None else AccountId(address), call.get("call_module", ""),
                                call.get("call_function", ""),
                                {a["name"]: a["value"] for a in call.get("call_args", [])})

    # Metadata -------------------------------------------------------------------------------
    def decoded_metadata(self) -> GenericMetadataVersioned:
        """scalecodec's decoded metadata of the current runtime (shared by the process's connections to it),
        for codecs built on the same registry (AttestationCodec) instead of downloading it again."""
        def load(si: SubstrateInterface) -> GenericMetadataVersioned:
            si.init_runtime()
            return si.metadata
        return self._run(load)

    def metadata(self, at: str | None = None) -> MetadataIndex:
        def load(si: SubstrateInterface) -> MetadataIndex:
            si.init_runtime(block_hash=at)
            key = (si.runtime_version, si.transaction_version, si.chain)
            index = self._index_cache.get(key)
            if index is None:
                index = self._index_cache[key] = MetadataIndex(v14_of(si.metadata.value))
            return index
        return self._run(load)

    @property
    def transport(self) -> Transport:
        """The wire this connection runs on."""
        return self._transport

    @property
    def substrate(self) -> SubstrateInterface:
        """The underlying SubstrateInterface; hold `chain.lock` while using it from several threads."""
        return self._si

    @property
    def lock(self) -> threading.RLock:
        return self._lock

    def pallet(self, name: str) -> PalletApi:
        """The API of one pallet by its metadata name: the generated class if there is one."""
        api = self._pallet_cache.get(name)
        if api is None:
            cls = PalletApi._registry.get(name, PalletApi)
            api = self._pallet_cache[name] = cls(self, name)
        return api

    def __getattr__(self, attr: str) -> PalletApi:
        if attr.startswith("_"):
            raise AttributeError(attr)
        name = self.metadata().pallet_names_by_attr().get(attr)
        if name is None:
            raise AttributeError(f"the runtime at {self.url} has no pallet {attr!r}")
        return self.pallet(name)

    def pallet_items(self, pallet: str) -> PalletItems:
        return self.metadata().items_by_attr(pallet)

    def storage_key_count(self, pallet: str, name: str) -> int:
        return self.metadata().storage_key_count(pallet, name)

    def constant(self, pallet: str, name: str) -> ScaleValue:
        """A constant as decoded; ``chain.<pallet>.<constant>`` (the generated properties) gives it typed."""
        obj = self._run(lambda si: si.get_constant(pallet, name))
        if obj is None:
            raise KeyError(f"{pallet}.{name}")
        value: ScaleValue = obj.value
        return value

    # Chain state ----------------------------------------------------------------------------
    def best_hash(self) -> str:
        return json_str(self.rpc("chain_getBlockHash", []), "chain_getBlockHash")

    def best_number(self) -> int:
        return _header_number(self.rpc("chain_getHeader", []))

    def finalized_hash(self) -> str:
        return json_str(self.rpc("chain_getFinalizedHead", []), "chain_getFinalizedHead")

    def finalized_number(self) -> int:
        return self.block_number(self.finalized_hash())

    def block_hash(self, number: int) -> str | None:
        result = self.rpc("chain_getBlockHash", [number])
        return None if result is None else json_str(result, "chain_getBlockHash")

    def block_number(self, block_hash: str) -> int:
        header = self.rpc("chain_getHeader", [block_hash])
        if header is None:
            raise BindingsError(f"unknown block {block_hash}")
        return _header_number(header)

    def query(self, pallet: str, name: str, params: Sequence[object], *, at: str | None = None) -> ScaleValue:
        """One storage entry as scalecodec decodes it (None when an optional entry is absent); the generated
        storage properties (``chain.task_bounties.tasks(id)``) give it as its class."""
        value: ScaleValue = self._run(lambda si: si.query(pallet, name, list(params), block_hash=at)).value
        return value

    def storage_changes(self, pallet: str, name: str, keys: Sequence[int], first: str, last: str,
                        ) -> dict[int, list[tuple[str, str | None]]]:
        """Every change of a one-key map's entries at `keys` (integers, as task ids are) over the blocks
        `first`..`last`, by one `state_queryStorage` per thousand keys instead of a read per key and block:
        {key: [(block hash, the SCALE value as 0x-hex, None once removed)]} in block order. The node may
        refuse the (unsafe) range query: RpcError."""
        storage_keys = self._run(lambda si: _int_map_keys(si, pallet, name, keys))
        by_storage_key = {hex_key: key for key, hex_key in storage_keys.items()}
        changes: dict[int, list[tuple[str, str | None]]] = {key: [] for key in storage_keys}
        ordered = sorted(by_storage_key)
        for i in range(0, len(ordered), 1000):
            for entry in json_list(self.rpc("state_queryStorage", [ordered[i:i + 1000], first, last]),
                                    "state_queryStorage"):
                change_set = json_object(entry, "state_queryStorage")
                block = json_str(change_set["block"], "state_queryStorage block")
                for pair in json_list(change_set.get("changes") or [], "state_queryStorage changes"):
                    hex_key, value = json_list(pair, "state_queryStorage change")
                    changes[by_storage_key[json_str(hex_key, "storage key")]].append(
                        (block, None if value is None else json_str(value, "storage value")))
        return changes

    def decode_storage(self, pallet: str, name: str, value: str) -> ScaleValue:
        """scalecodec's value of a storage entry's SCALE bytes (0x-hex), in the runtime this connection
        loaded; every byte must be used. Raises what scalecodec raises."""
        def decode(si: SubstrateInterface) -> ScaleValue:
            value_type = si.metadata.get_metadata_pallet(pallet).get_storage_function(name).get_value_type_string()
            return decode_scale(si.runtime_config, value_type, value, si.metadata)
        return self._run(decode)

    def query_page(self, pallet: str, name: str, prefix: Sequence[object], *, page_size: int = 100,
                   start_key: str | None = None, at: str | None = None,
                   ) -> tuple[list[tuple[ScaleValue, ScaleValue]], str | None]:
        """One page of a map: ([(key, value)], last raw key of the page)."""
        def page(si: SubstrateInterface) -> tuple[list[tuple[ScaleValue, ScaleValue]], str | None]:
            result = si.query_map(pallet, name, list(prefix) or None, block_hash=at or si.get_chain_head(),
                                  max_results=page_size, page_size=page_size, start_key=start_key)
            pairs = [(_key_value(k), v.value) for k, v in result.records]
            return pairs, result.last_key
        return self._run(page)

    def events_at(self, block_hash: str) -> list[EventRecord]:
        """System.Events of a block, decoded to generated event classes."""
        def load(si: SubstrateInterface) -> list[Any]:
            obj = si.query("System", "Events", block_hash=block_hash)
            return [] if obj is None or obj.value is None else list(obj.value)
        return [self._record(raw) for raw in self._run(load)]

    @staticmethod
    def _record(raw: dict[str, ScaleValue]) -> EventRecord:
        """A System.Events record as scalecodec (or fastscale) decodes it, with its generated event class."""
        index = raw.get("extrinsic_idx")
        phase: Phase = ({"ApplyExtrinsic": index} if isinstance(index, int)
                        else "Finalization" if raw.get("phase") == "Finalization" else "Initialization")
        event = typed_event(str(raw["module_id"]), str(raw["event_id"]), raw.get("attributes"))
        topics = raw.get("topics")
        return EventRecord(phase, event, [str(t) for t in topics] if isinstance(topics, list) else [])

    # Fees -----------------------------------------------------------------------------------
    def estimate_fee(self, call: CallArgs | DynamicCall, signer: Keypair | str) -> int:
        """The partial fee the node quotes for `call` signed by `signer` (payment_queryInfo)."""
        keypair = signer if isinstance(signer, Keypair) else Keypair(ss58_address=signer)
        def query(si: SubstrateInterface) -> Any:
            composed = si.compose_call(call.PALLET, call.CALL, call.to_value())
            return si.get_payment_info(composed, keypair)
        return int(self._run(query)["partialFee"])

    # Submitting -----------------------------------------------------------------------------
    def sign(self, call: CallArgs | DynamicCall, signer: Keypair, *, nonce: int | None = None, tip: int = 0,
             asset_id: AssetId = None, era: Era = None) -> str:
        """The signed extrinsic for `call`, 0x-hex (the nonce from the node, pool included, if not given)."""
        def build(si: SubstrateInterface) -> str:
            composed = si.compose_call(call.PALLET, call.CALL, call.to_value())
            asset = asset_id if asset_id is not None else self.asset_id
            # system_accountNextIndex counts the sender's pooled transactions; substrate-interface's own
            # default (AccountNonceApi) does not, so two quick submissions would share a nonce
            use = nonce if nonce is not None else int(
                si.rpc_request("system_accountNextIndex", [signer.ss58_address])["result"])
            xt = si.create_signed_extrinsic(composed, signer, era=era, nonce=use, tip=tip, tip_asset_id=asset)
            return str(xt.data)
        return self._run(build)

    def submit(self, call: CallArgs | DynamicCall, signer: Keypair, *, wait: Wait = "inclusion",
               timeout: float | None = None, nonce: int | None = None, tip: int = 0, asset_id: AssetId = None,
               era: Era = None) -> Receipt:
        """Sign and submit `call`; wait for nothing, inclusion or finality, never longer than `timeout`.

        Raises a TransactionRejected subclass if the pool refuses it, a DispatchError subclass
        (e.g. ``BalancesError.InsufficientBalance``) if it was included but failed, and
        SubmitTimeout if the wait ran out.
        """
        if wait not in ("none", "inclusion", "finality"):
            raise ValueError(f"wait must be 'none', 'inclusion' or 'finality', not {wait!r}")
        timeout = self.submit_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        with self._lock:  # one signer's nonce, signature and submission stay together
            raw = self.sign(call, signer, nonce=nonce, tip=tip, asset_id=asset_id, era=era)
            start = self.best_number() if wait != "none" else 0
            xt_hash = extrinsic_hash(raw)
            self.rpc("author_submitExtrinsic", [raw], retry=False, deadline=deadline)
        if wait == "none":
            return Receipt(xt_hash)
        return self.wait_for(xt_hash, after_block=start, wait=wait, deadline=deadline, timeout=timeout,
                             signer=signer.ss58_address)

    def wait_for(self, xt_hash: str, *, after_block: int, wait: Wait = "inclusion", deadline: float | None = None,
                 timeout: float | None = None, signer: str | None = None) -> Receipt:
        """Poll blocks after `after_block` until the extrinsic is included (and finalized), or time runs out."""
        timeout = self.submit_timeout if timeout is None else timeout
        deadline = deadline if deadline is not None else time.monotonic() + timeout
        scanned = after_block
        delay = self.poll_interval
        found: tuple[int, str, int] | None = None
        while True:
            if found is None:
                best = self.best_number()
                while scanned < best and found is None:
                    number = scanned + 1
                    block_hash = self.block_hash(number)
                    block = self.rpc("chain_getBlock", [block_hash]) if block_hash else None
                    if block is None or block_hash is None:
                        break
                    for index, raw in enumerate(json_list(json_object(json_object(block, "chain_getBlock")["block"],
                                                                      "block")["extrinsics"], "extrinsics")):
                        if extrinsic_hash(json_str(raw, "extrinsic")) == xt_hash:
                            found = (number, block_hash, index)
                            break
                    scanned = number
            if found is not None:
                number, block_hash, index = found
                if wait == "inclusion":
                    return self._receipt(xt_hash, number, block_hash, index, signer, finalized=False)
                if self.finalized_number() >= number:
                    if self.block_hash(number) == block_hash:
                        return self._receipt(xt_hash, number, block_hash, index, signer, finalized=True)
                    found, scanned = None, number - 1  # that block lost a fork: look again
                    continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise SubmitTimeout(xt_hash, wait, timeout, found[1] if found else None)
            time.sleep(min(delay, remaining))
            delay = min(delay * 1.5, 0.5)

    def _receipt(self, xt_hash: str, number: int, block_hash: str, index: int, signer: str | None,
                 *, finalized: bool) -> Receipt:
        records = [r for r in self.events_at(block_hash) if r.extrinsic_index == index]
        events = [r.event for r in records]
        fee = None
        for event in events:
            if (event.pallet, event.name) in FEE_EVENTS:
                fee = int(_attr(event, "actual_fee"))
                break
        if fee is None and signer is not None:
            withdrawn = [int(_attr(e, "amount")) for e in events
                         if (e.pallet, e.name) == ("Balances", "Withdraw") and _attr(e, "who") == signer]
            fee = sum(withdrawn) if withdrawn else None
        receipt = Receipt(xt_hash, block_hash, number, index, events, fee, finalized)
        for event in events:
            if (event.pallet, event.name) == ("System", "ExtrinsicFailed"):
                error = _attr(event, "dispatch_error")
                raise dispatch_error_from(error, self.metadata(block_hash).errors, receipt)
        return receipt

    # Streams --------------------------------------------------------------------------------
    @property
    def events(self) -> EventStreams:
        from runtime_bindings.events import EventStreams
        return EventStreams(self)

    def __repr__(self) -> str:
        return f"<Chain {self.url}>"


def _int_map_keys(si: SubstrateInterface, pallet: str, name: str, keys: Sequence[int]) -> dict[int, str]:
    """Storage keys of a one-key map's entries: the prefix and hasher taken from the first key substrate-interface
    builds, the others computed directly (the key's SCALE bytes, little-endian of the first's width), checked
    against it; substrate-interface builds them all where that does not hold (a key of another type)."""
    def make(key: int) -> str:
        return "0x" + str(si.create_storage_key(pallet, name, [key]).to_hex()).removeprefix("0x")

    ids = list(dict.fromkeys(keys))
    if not ids:
        return {}
    first = make(ids[0])
    hashers = si.metadata.get_metadata_pallet(pallet).get_storage_function(name).get_param_hashers()
    hasher = STORAGE_HASHERS.get(hashers[0]) if hashers and len(hashers) == 1 else None
    if hasher is None:
        return {key: make(key) for key in ids}
    prefix = bytes.fromhex(first[2:])[:32]
    width = next((w for w in (1, 2, 4, 8, 16) if "0x" + (prefix + hasher(ids[0].to_bytes(w, "little"))).hex() == first),
                 None)
    if width is None:
        return {key: make(key) for key in ids}
    return {key: "0x" + (prefix + hasher(key.to_bytes(width, "little"))).hex() for key in ids}


class _Substrate(SubstrateInterface):  # type: ignore[misc]  # substrate-interface ships no types
    """substrate-interface, given the metadata the client downloaded to key the shared cache: on a cache
    miss its runtime is decoded from that copy, so a process's first connection downloads it once."""

    prefetched_metadata: str | None = None

    def get_block_metadata(self, block_hash: str | None = None,
                           decode: bool = True) -> GenericMetadataVersioned | dict[str, Json]:
        """The decoded metadata (from the prefetched copy once), or the raw JSON-RPC response when not `decode`."""
        raw, self.prefetched_metadata = self.prefetched_metadata, None
        if raw is None or not decode:
            return super().get_block_metadata(block_hash=block_hash, decode=decode)
        decoder = self.runtime_config.create_scale_object("MetadataVersioned", data=ScaleBytes(raw))
        decoder.decode()
        return decoder


def _header_number(header: Json) -> int:
    """A header's block number (0x-hex in JSON)."""
    number = json_str(json_object(header, "chain_getHeader")["number"], "header number")
    try:
        return int(number, 16)
    except ValueError:
        raise BindingsError(f"chain_getHeader: block number {number!r} is not hex") from None


def _attr(event: Any, name: str) -> Any:
    """A payload field of a generated or generic event."""
    if hasattr(event, name):
        return getattr(event, name)
    attributes = getattr(event, "attributes", None)
    if isinstance(attributes, dict):
        return attributes.get(name)
    raise AttributeError(name)


__all__ = ["Chain", "Keypair", "RpcError", "extrinsic_hash"]


def _key_value(key: ScaleType | tuple[ScaleType, ...]) -> ScaleValue:
    """A map key as a plain value: substrate-interface returns the keys a query left open as a tuple of
    SCALE objects (several keys) or as one SCALE object (one key)."""
    if isinstance(key, tuple):
        return tuple(_key_value(part) for part in key)
    value: ScaleValue = key.value
    return value


class _RegistryGate:
    """Shared decoding, exclusive registry loading, across every Chain of the process.

    scalecodec attaches the configuration in use to its shared decoder classes (`Compact`, `Struct`, ...)
    on every lookup, so a SubstrateInterface that is loading its type registry and metadata in one thread
    makes another thread's decoding look types up in a half-filled registry ("Decoder class for
    Compact<u32> not found"). Loading is rare (a new connection); decoding runs concurrently as before.
    Re-entrant per thread for readers; a waiting writer holds new readers back so that it cannot starve.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writing = False
        self._writers_waiting = 0
        self._local = threading.local()

    @contextmanager
    def reading(self) -> Iterator[None]:
        depth = getattr(self._local, "depth", 0)
        if depth:
            self._local.depth = depth + 1
            try:
                yield
            finally:
                self._local.depth = depth
            return
        with self._cond:
            while self._writing or self._writers_waiting:
                self._cond.wait()
            self._readers += 1
        self._local.depth = 1
        try:
            yield
        finally:
            self._local.depth = 0
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextmanager
    def writing(self) -> Iterator[None]:
        if getattr(self._local, "depth", 0):  # opened from inside this thread's read: it cannot wait for itself
            yield
            return
        with self._cond:
            self._writers_waiting += 1
            while self._writing or self._readers:
                self._cond.wait()
            self._writers_waiting -= 1
            self._writing = True
        try:
            yield
        finally:
            with self._cond:
                self._writing = False
                self._cond.notify_all()


_REGISTRY_GATE = _RegistryGate()
