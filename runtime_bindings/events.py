"""Event streams: finalized blocks' events, in order, surviving reconnects without gaps or duplicates.

The stream polls by block number rather than trusting a subscription: it remembers the
last block it yielded, and after any connection failure (node restarted, socket killed)
it reconnects and fetches every finalized block after that one by number
(``chain_getBlockHash``), decoding ``System.Events`` at each. A block is yielded once,
after it is finalized, and never skipped.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from runtime_bindings.base import BlockEvents, EventRecord
from runtime_bindings.errors import ConnectionLost
from runtime_bindings.scale import decode_compact_at, encode_compact
from runtime_bindings.transport import json_int, json_list, json_object, json_str

if TYPE_CHECKING:
    from scalecodec.base import RuntimeConfigurationObject
    from scalecodec.types import GenericMetadataVersioned

    from runtime_bindings.client import Chain
    from runtime_bindings.fastscale import Decoder
    from runtime_bindings.metadata import MetadataIndex, TypeJson
    from runtime_bindings.values import ScaleValue


class EventStreams:
    def __init__(self, chain: Chain) -> None:
        self._chain = chain

    def finalized(self, from_block: int | None = None, *, to_block: int | None = None,
                  poll_interval: float = 0.2, reconnect_timeout: float = 60.0,
                  own_connection: bool = True) -> Iterator[BlockEvents]:
        """Yield BlockEvents for every finalized block from `from_block` (default: the current
        finalized head) on, up to `to_block` inclusive if given, else forever.

        On a lost connection it retries (doubling the pause up to 2 s) for up to
        `reconnect_timeout` seconds, then raises ConnectionLost; `stream.last_number`
        tells where a new stream should resume. With `own_connection` (the default) the
        stream uses a connection of its own, so it never holds up other users of `chain`.
        """
        return FinalizedEvents(self._chain, from_block, to_block, poll_interval, reconnect_timeout, own_connection)

    def catch_up(self, from_block: int, to_block: int, *, pallets: Iterable[str] | None = None, batch: int = 256,
                 reconnect_timeout: float = 60.0) -> CatchUp:
        """Finalized blocks `from_block`..`to_block` (all must be finalized) fetched in batches, with only
        the events of `pallets` (None: all) decoded: the fast way through a long range (see CatchUp)."""
        return CatchUp(self._chain, from_block, to_block, pallets=pallets, batch=batch,
                       reconnect_timeout=reconnect_timeout)

    def finalized_events(self, from_block: int | None = None, **options: object) -> Iterator[tuple[int, EventRecord]]:
        """The same stream flattened: (block number, event record) pairs."""
        for block in self.finalized(from_block, **options):  # type: ignore[arg-type]
            for record in block.records:
                yield block.number, record


class FinalizedEvents(Iterator[BlockEvents]):
    """Iterator state of one finalized-event stream: `last_number` is the last block yielded."""

    def __init__(self, chain: Chain, from_block: int | None, to_block: int | None, poll_interval: float,
                 reconnect_timeout: float, own_connection: bool) -> None:
        self._parent, self._own = chain, own_connection
        self._chain: Chain | None = None
        self.to_block, self.poll_interval, self.reconnect_timeout = to_block, poll_interval, reconnect_timeout
        self._dropped = 0
        self._past_reconnects = 0
        if from_block is None:
            from_block = self._conn().finalized_number()
        self.last_number = from_block - 1
        self._finalized = -1

    def _conn(self) -> Chain:
        if self._chain is None:
            self._chain = self._parent.clone() if self._own else self._parent
        return self._chain

    @property
    def reconnects(self) -> int:
        """Connections lost and re-established so far (the stream's own and its Chain's retries)."""
        current = self._chain.reconnects if self._chain is not None else 0
        return self._dropped + self._past_reconnects + current

    def _drop(self) -> None:
        if self._chain is not None:
            self._past_reconnects += self._chain.reconnects if self._own else 0
            if self._own:
                self._chain.close()
        self._chain = None

    def close(self) -> None:
        self._drop()

    def __iter__(self) -> FinalizedEvents:
        return self

    def __next__(self) -> BlockEvents:
        if self.to_block is not None and self.last_number >= self.to_block:
            self._drop()
            raise StopIteration
        failing_since: float | None = None
        pause = self.poll_interval
        while True:
            try:
                chain = self._conn()
                number = self.last_number + 1
                if self._finalized < number:
                    self._finalized = chain.finalized_number()
                if self._finalized >= number:
                    block_hash = chain.block_hash(number)
                    if block_hash is None:
                        raise ConnectionLost(f"finalized block {number} has no hash")
                    block = BlockEvents(number, block_hash, chain.events_at(block_hash))
                    self.last_number = number
                    return block
                time.sleep(self.poll_interval)
                failing_since, pause = None, self.poll_interval
            except ConnectionLost:
                self._drop()
                now = time.monotonic()
                failing_since = failing_since or now
                if now - failing_since > self.reconnect_timeout:
                    raise
                self._dropped += 1
                time.sleep(pause)
                pause = min(pause * 2, 2.0)


# Batched catch-up ---------------------------------------------------------------------------------

_PRIMITIVE_SIZES = {"bool": 1, "char": 4, "u8": 1, "u16": 2, "u32": 4, "u64": 8, "u128": 16, "u256": 32,
                    "i8": 1, "i16": 2, "i32": 4, "i64": 8, "i128": 16, "i256": 32}


class _Skippers:
    """Compiles metadata V14 types into functions (data, offset) -> offset after the value: enough to split
    System.Events into records without decoding them (scalecodec then decodes only the records wanted)."""

    def __init__(self, types: dict[int, TypeJson]) -> None:
        self.types = types
        self._skip: dict[int, Callable[[bytes, int], int]] = {}
        self._size: dict[int, int | None] = {}

    def size(self, tid: int, _seen: frozenset[int] = frozenset()) -> int | None:
        """The fixed encoded size of a type, None if it varies."""
        if tid in self._size:
            return self._size[tid]
        if tid in _seen:
            return None
        seen = _seen | {tid}
        d = self.types[tid]["def"]
        size: int | None = None
        if "primitive" in d:
            size = _PRIMITIVE_SIZES.get(d["primitive"])
        elif "array" in d:
            inner = self.size(d["array"]["type"], seen)
            size = None if inner is None else inner * int(d["array"]["len"])
        elif "composite" in d or "tuple" in d:
            ids = [f["type"] for f in d["composite"]["fields"]] if "composite" in d else list(d["tuple"])
            sizes = [self.size(i, seen) for i in ids]
            known = [s for s in sizes if s is not None]
            size = sum(known) if len(known) == len(sizes) else None
        self._size[tid] = size
        return size

    def skip(self, tid: int) -> Callable[[bytes, int], int]:
        fn = self._skip.get(tid)
        if fn is not None:
            return fn
        cell: list[Callable[[bytes, int], int]] = []
        self._skip[tid] = lambda data, off: cell[0](data, off)  # recursive types
        fn = self._compile(tid)
        cell.append(fn)
        self._skip[tid] = fn
        return fn

    def _compile(self, tid: int) -> Callable[[bytes, int], int]:
        fixed = self.size(tid)
        if fixed is not None:
            return lambda data, off: off + fixed
        d = self.types[tid]["def"]
        if "primitive" in d:  # str (the others are fixed)
            def skip_str(data: bytes, off: int) -> int:
                n, off = decode_compact_at(data, off)
                return off + n
            return skip_str
        if "compact" in d:
            return lambda data, off: decode_compact_at(data, off)[1]
        if "sequence" in d or "array" in d:
            inner_id = d["sequence"]["type"] if "sequence" in d else d["array"]["type"]
            length = None if "sequence" in d else int(d["array"]["len"])
            inner_size = self.size(inner_id)
            inner = self.skip(inner_id)

            def skip_seq(data: bytes, off: int) -> int:
                if length is None:
                    n, off = decode_compact_at(data, off)
                else:
                    n = length
                if inner_size is not None:
                    return off + n * inner_size
                for _ in range(n):
                    off = inner(data, off)
                return off
            return skip_seq
        if "composite" in d or "tuple" in d:
            ids = [f["type"] for f in d["composite"]["fields"]] if "composite" in d else list(d["tuple"])
            parts = [self.skip(i) for i in ids]

            def skip_fields(data: bytes, off: int) -> int:
                for part in parts:
                    off = part(data, off)
                return off
            return skip_fields
        if "variant" in d:
            variants = {int(v["index"]): [self.skip(f["type"]) for f in v.get("fields") or []]
                        for v in d["variant"]["variants"]}

            def skip_variant(data: bytes, off: int) -> int:
                try:
                    parts = variants[data[off]]
                except KeyError:
                    raise ValueError(f"unknown variant index {data[off]} of type {tid}") from None
                off += 1
                for part in parts:
                    off = part(data, off)
                return off
            return skip_variant
        if "bitsequence" in d:
            store = self.size(d["bitsequence"]["bit_store_type"]) or 1

            def skip_bits(data: bytes, off: int) -> int:
                bits, off = decode_compact_at(data, off)
                return off + -(-bits // (8 * store)) * store
            return skip_bits
        raise ValueError(f"cannot skip type {tid}: {d}")


class EventSplitter:
    """Splits raw System.Events bytes into records by pallet, using one runtime's metadata (`MetadataIndex`)."""

    def __init__(self, metadata: MetadataIndex) -> None:
        types = metadata.types
        entry = next(e for e in metadata.storage("System") if e["name"] == "Events")
        vec_id = entry["type"]["Plain"]
        record_id = types[vec_id]["def"]["sequence"]["type"]
        fields = {str(f["name"]): f["type"] for f in types[record_id]["def"]["composite"]["fields"]}
        sk = _Skippers(types)
        self._phase, self._event, self._topics = sk.skip(fields["phase"]), sk.skip(fields["event"]), sk.skip(fields["topics"])
        self.pallets = {int(p["index"]): p["name"] for p in metadata.v14["pallets"]}
        self.fields = fields


    def split(self, raw: bytes) -> list[tuple[str, int, int]]:
        """(pallet name, start, end) of every record."""
        count, off = decode_compact_at(raw, 0)
        out = []
        for _ in range(count):
            start = off
            off = self._phase(raw, off)
            pallet = self.pallets.get(raw[off], f"#{raw[off]}")
            off = self._event(raw, off)
            off = self._topics(raw, off)
            out.append((pallet, start, off))
        if off != len(raw):
            raise ValueError(f"System.Events: {len(raw) - off} bytes left over")
        return out


class RecordDecoder:
    """Decodes System.Events records with compiled decoders (runtime_bindings.fastscale) to the dicts
    scalecodec gives (`Chain._record` takes them). `decode` answers None for a record it cannot do."""

    def __init__(self, metadata: MetadataIndex, fields: dict[str, int], config: RuntimeConfigurationObject) -> None:
        from runtime_bindings.fastscale import Codecs

        types = metadata.types
        self.codecs = Codecs(types, config)
        self._phases = {int(v["index"]): (v["name"], bool(v.get("fields")))
                        for v in types[fields["phase"]]["def"]["variant"]["variants"]}
        self._events: dict[int, tuple[str, dict[int, tuple[str, Decoder | None]]]] = {}
        for v in types[fields["event"]]["def"]["variant"]["variants"]:
            payload = v.get("fields") or []
            if len(payload) != 1 or "variant" not in types[payload[0]["type"]]["def"]:
                continue
            inner = payload[0]["type"]
            self._events[int(v["index"])] = (v["name"], self.codecs.variant_payloads(inner))

    def decode(self, raw: bytes, start: int, end: int) -> dict[str, ScaleValue] | None:
        """The record at raw[start:end] in scalecodec's form, or None when this decoder cannot do it."""
        try:
            name, has_index = self._phases[raw[start]]
            off = start + 1
            extrinsic_idx = None
            if has_index:
                if name != "ApplyExtrinsic":
                    return None
                extrinsic_idx = int.from_bytes(raw[off:off + 4], "little")
                off += 4
            module, events = self._events[raw[off]]
            event_id, payload = events[raw[off + 1]]
            off += 2
            attributes: ScaleValue = None
            if payload is not None:
                attributes, off = payload(raw, off)
            if raw[off] != 0 or off + 1 != end:  # topics: only an empty list is done here
                return None
        except (KeyError, IndexError, ValueError):
            return None
        return {"phase": name, "extrinsic_idx": extrinsic_idx, "module_id": module, "event_id": event_id,
                "attributes": attributes, "topics": []}


_EventsCodec = tuple["RuntimeConfigurationObject", "GenericMetadataVersioned", str]
"""What scalecodec decodes a runtime's System.Events with: its configuration, metadata and the value type."""


class CatchUp:
    """Finalized blocks `from_block`..`to_block` fetched in batches, for catching up fast.

    Per batch of up to `batch` blocks: one `chain_getBlockHash` call with all the numbers, one
    `state_queryStorage` over System.Events for the range (a node refusing either gets one call per
    block), the records split with the metadata and only those of `pallets` (None: all) decoded. Blocks
    come out strictly in order. A runtime upgrade inside a batch sends that batch down the per-block path
    (`Chain.events_at`). Lost connections are retried for `reconnect_timeout` seconds, resuming after the
    last block yielded (`last_number`)."""

    def __init__(self, chain: Chain, from_block: int, to_block: int, *, pallets: Iterable[str] | None = None, batch: int = 256,
                 reconnect_timeout: float = 60.0) -> None:
        self._chain, self.to_block, self.batch = chain, to_block, max(1, min(batch, 1000))
        self.pallets = None if pallets is None else frozenset(pallets)
        self.reconnect_timeout = reconnect_timeout
        self.last_number = from_block - 1
        self._splitters: dict[int, tuple[EventSplitter, str, _EventsCodec]] = {}
        self._records: dict[int, RecordDecoder] = {}
        self._storage_decoders: dict[tuple[int, str, str], Decoder | None] = {}
        self._meta: dict[int, tuple[MetadataIndex, RuntimeConfigurationObject]] = {}
        self._current_spec: int | None = None  # the runtime of the whole last batch (None: mixed)
        self._batch_rpc = True
        self._range_rpc = True

    def __iter__(self) -> Iterator[BlockEvents]:
        for blocks in self.batches():
            yield from blocks

    def batches(self) -> Iterator[list[BlockEvents]]:
        """The same blocks, a fetched batch at a time (`last_number` moves when a batch is handed out)."""
        failing_since: float | None = None
        pause = 0.1
        while self.last_number < self.to_block:
            try:
                blocks = self._fetch(self.last_number + 1, min(self.last_number + self.batch, self.to_block))
            except ConnectionLost:
                now = time.monotonic()
                failing_since = failing_since or now
                if now - failing_since > self.reconnect_timeout:
                    raise
                time.sleep(pause)
                pause = min(pause * 2, 2.0)
                continue
            failing_since, pause = None, 0.1
            self.last_number = blocks[-1].number
            yield blocks

    # Fetching ------------------------------------------------------------------------------------
    def _hashes(self, first: int, last: int) -> list[str]:
        chain = self._chain
        hashes: Any = None
        if self._batch_rpc:
            try:
                hashes = chain.rpc("chain_getBlockHash", [list(range(first, last + 1))])
            except ConnectionLost:
                raise
            except Exception:  # noqa: BLE001 - a node without the batch form
                self._batch_rpc = False
            if not isinstance(hashes, list) or len(hashes) != last - first + 1:
                self._batch_rpc, hashes = isinstance(hashes, list), None
        if hashes is None:
            hashes = [chain.block_hash(n) for n in range(first, last + 1)]
        for n, h in zip(range(first, last + 1), hashes):
            if not isinstance(h, str):
                raise ConnectionLost(f"finalized block {n} has no hash")
        return [str(h) for h in hashes]

    def _runtime(self, block_hash: str) -> int:
        version = json_object(self._chain.rpc("state_getRuntimeVersion", [block_hash]), "state_getRuntimeVersion")
        return json_int(version["specVersion"], "specVersion")

    def _splitter(self, block_hash: str, spec: int) -> tuple[EventSplitter, str, _EventsCodec]:
        found = self._splitters.get(spec)
        if found is None:
            chain = self._chain
            metadata = chain.metadata(block_hash)  # init_runtime at that block
            with chain.lock:
                si = chain.substrate
                key = "0x" + si.create_storage_key("System", "Events").to_hex().removeprefix("0x")
                value_type = si.metadata.get_metadata_pallet("System").get_storage_function("Events") \
                    .get_value_type_string()
                splitter = EventSplitter(metadata)
                found = self._splitters[spec] = (splitter, key, (si.runtime_config, si.metadata, value_type))
                self._records[id(splitter)] = RecordDecoder(metadata, splitter.fields, si.runtime_config)
                self._meta[spec] = (metadata, si.runtime_config)
        return found

    def storage_decoder(self, pallet: str, name: str) -> Decoder | None:
        """A compiled decoder (runtime_bindings.fastscale) of a storage entry's value for the runtime of the
        last batch fetched, or None (unsupported: decode it with scalecodec)."""
        from runtime_bindings.fastscale import Codecs, Unsupported

        spec = self._current_spec
        if spec is None or spec not in self._meta:
            return None
        metadata, config = self._meta[spec]
        key = (spec, pallet, name)
        if key not in self._storage_decoders:
            decoder: Decoder | None = None
            try:
                entry = next(e for e in metadata.storage(pallet) if e["name"] == name)
                ty = entry["type"]
                tid = ty["Plain"] if "Plain" in ty else ty["Map"]["value"]
                decoder = Codecs(metadata.types, config).decoder(tid)
            except (StopIteration, KeyError, Unsupported):
                decoder = None
            self._storage_decoders[key] = decoder
        return self._storage_decoders[key]

    def _raw_events(self, key: str, hashes: list[str]) -> list[bytes]:
        chain = self._chain
        if self._range_rpc and len(hashes) > 1:
            try:
                changes = chain.rpc("state_queryStorage", [[key], hashes[0], hashes[-1]])
            except ConnectionLost:
                raise
            except Exception:  # noqa: BLE001 - an unsafe method the node does not serve
                self._range_rpc, changes = False, None
            if changes is not None:
                by_hash: dict[str, str | None] = {}
                for entry in json_list(changes, "state_queryStorage"):
                    change_set = json_object(entry, "state_queryStorage")
                    for pair in json_list(change_set.get("changes") or [], "state_queryStorage changes"):
                        k, v = json_list(pair, "state_queryStorage change")
                        if k == key:
                            by_hash[json_str(change_set["block"], "state_queryStorage block")] = (
                                None if v is None else json_str(v, "storage value"))
                if hashes[0] in by_hash:
                    out, current = [], None
                    for h in hashes:
                        current = by_hash.get(h, current)  # absent: unchanged since the block before
                        out.append(b"" if current is None else bytes.fromhex(current[2:]))
                    return out
                self._range_rpc = False
        out = []
        for h in hashes:
            value = chain.rpc("state_getStorage", [key, h])
            out.append(b"" if value is None else bytes.fromhex(json_str(value, "state_getStorage")[2:]))
        return out

    def _fetch(self, first: int, last: int) -> list[BlockEvents]:
        from runtime_bindings.client import Chain as _Chain

        chain = self._chain
        hashes = self._hashes(first, last)
        spec = self._runtime(hashes[0])
        self._current_spec = None
        if self._runtime(hashes[-1]) != spec:  # an upgrade inside the batch: block by block
            return [BlockEvents(n, h, chain.events_at(h)) for n, h in zip(range(first, last + 1), hashes)]
        splitter, key, (config, metadata, value_type) = self._splitter(hashes[0], spec)
        self._current_spec = spec
        blocks = []
        decoded: dict[bytes, list[EventRecord]] = {}
        for number, block_hash, raw in zip(range(first, last + 1), hashes, self._raw_events(key, hashes)):
            records = decoded.get(raw)
            if records is None:
                records = decoded[raw] = self._decode(raw, splitter, config, metadata, value_type, _Chain)
            blocks.append(BlockEvents(number, block_hash, list(records)))
        return blocks

    def _decode(self, raw: bytes, splitter: EventSplitter, config: RuntimeConfigurationObject,
                metadata: GenericMetadataVersioned, value_type: str, chain_cls: type[Chain]) -> list[EventRecord]:
        from scalecodec.base import ScaleBytes

        if not raw:
            return []
        parts = splitter.split(raw)
        wanted = [(s, e) for pallet, s, e in parts if self.pallets is None or pallet in self.pallets]
        if not wanted:
            return []
        fast = self._records.get(id(splitter))
        if fast is not None:
            values = [fast.decode(raw, s, e) for s, e in wanted]
            done = [v for v in values if v is not None]
            if len(done) == len(values):
                return [chain_cls._record(v) for v in done]
        data = encode_compact(len(wanted)) + b"".join(raw[s:e] for s, e in wanted)
        with self._chain.lock:
            obj = config.create_scale_object(value_type, data=ScaleBytes(data), metadata=metadata)
            obj.decode(check_remaining=True)
        return [chain_cls._record(r) for r in obj.value or []]
