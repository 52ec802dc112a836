"""Substrate's JSON-RPC methods over the devnet chain: plain async handlers, no transport."""
from __future__ import annotations

import asyncio
from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable

from scalecodec.utils.ss58 import ss58_decode

from devnet.chain import AlreadyImported, Block, PriorityTooLow
from devnet.crypto import blake2_256
from devnet.rpc.errors import RpcError, invalid_params
from devnet.rpc.server import Handler, Sink, Subscription
from devnet.runtime.apis import RuntimeApiError, call_runtime_api
from devnet.runtime.primitives import DigestItem
from devnet.runtime.validity import BadFormat, TransactionValidityError
from devnet.scale.codec import codec_for
from devnet.state import StateDiscarded

if TYPE_CHECKING:
    from devnet.node import Node

MAX_PAGED_KEYS = 1000  # Substrate's STORAGE_KEYS_PAGED_MAX_COUNT
MAX_QUERY_RANGE = 1000  # blocks one state_queryStorage call may scan
_DIGEST_ITEM = codec_for(DigestItem)

# Author error codes (sc-rpc-api author errors).
BAD_FORMAT, POOL_INVALID_TX, POOL_UNKNOWN_VALIDITY, POOL_ALREADY_IMPORTED, POOL_TOO_LOW_PRIORITY = (
    1001, 1010, 1011, 1013, 1014)
STATE_UNAVAILABLE = 4003  # state of a block no longer kept (sc-rpc-api state errors)
CLIENT_ERROR = 4003
# Least time between a watched transaction's {inBlock} and {finalized} notifications
# (chopsticks waits 100 ms for the same reason; see _watch_extrinsic). Polkadot.js
# needs 30-60 ms here to fetch the events, up to ~330 ms on a saturated 2-core machine.
FINALIZED_AFTER_IN_BLOCK_S = 0.25


def hexs(data: bytes) -> str:
    return "0x" + data.hex()


def parse_hex(value: Any, what: str) -> bytes:
    if not isinstance(value, str) or not value.startswith("0x"):
        raise invalid_params(f"{what} must be a 0x-prefixed hex string")
    try:
        return bytes.fromhex(value[2:])
    except ValueError:
        raise invalid_params(f"{what} is not valid hex") from None


def param(params: Any, index: int, name: str, default: Any = None) -> Any:
    """Positional or named parameter, as jsonrpsee accepts both."""
    if isinstance(params, dict):
        return params.get(name, default)
    return params[index] if len(params) > index and params[index] is not None else default


def header_json(block: Block) -> dict[str, Any]:
    header = block.header
    return {
        "parentHash": hexs(header["parent_hash"]),
        "number": hex(header["number"]),
        "stateRoot": hexs(header["state_root"]),
        "extrinsicsRoot": hexs(header["extrinsics_root"]),
        "digest": {"logs": [hexs(_DIGEST_ITEM.encode(item)) for item in header["digest"]["logs"]]},
    }


def version_json(version: dict[str, Any]) -> dict[str, Any]:
    return {
        "specName": version["spec_name"], "implName": version["impl_name"],
        "authoringVersion": version["authoring_version"], "specVersion": version["spec_version"],
        "implVersion": version["impl_version"], "apis": [[hexs(h), v] for h, v in version["apis"]],
        "transactionVersion": version["transaction_version"], "stateVersion": version["state_version"],
    }


def author_error(exc: Exception) -> RpcError:
    """The error object a Substrate node answers for a transaction the pool refuses."""
    if isinstance(exc, BadFormat):
        return RpcError(BAD_FORMAT, f"Extrinsic has invalid format: {exc}")
    if isinstance(exc, AlreadyImported):
        return RpcError(POOL_ALREADY_IMPORTED, "Transaction Already Imported", "0x" + str(exc))
    if isinstance(exc, PriorityTooLow):
        return RpcError(POOL_TOO_LOW_PRIORITY, "Priority is too low: (0 vs 0)",
                        "The transaction has too low priority to replace another transaction already in the pool.")
    assert isinstance(exc, TransactionValidityError)
    kind = exc.kind[0].lower() + exc.kind[1:]
    payload = {exc.category.lower(): {kind: exc.custom if exc.kind == "Custom" else None}}
    return RpcError(POOL_INVALID_TX, "Invalid Transaction", payload)


class Methods:
    """Handlers bound to one node; `table()` and `subscriptions()` feed the transport."""

    def __init__(self, node: "Node") -> None:
        self.node = node
        self.chain = node.chain

    # Helpers ------------------------------------------------------------------------------------
    def _block(self, value: Any) -> Block | None:
        if value is None:
            return self.chain.best
        return self.chain.by_hash.get(parse_hex(value, "block hash"))

    def _block_or_error(self, value: Any) -> Block:
        block = self._block(value)
        if block is None:
            raise RpcError(CLIENT_ERROR, "Client error: UnknownBlock: header not found",
                           f"Header was not found in the database: {value}")
        return block

    def _state(self, value: Any):  # noqa: ANN202 - a StateView
        block = self._block_or_error(value)
        try:
            return self.chain.state_at(block.hash)
        except StateDiscarded:
            raise RpcError(STATE_UNAVAILABLE, f"State already discarded for {value}") from None

    # chain_* ------------------------------------------------------------------------------------
    async def chain_getBlockHash(self, params: Any) -> Any:  # noqa: N802 - the RPC's name
        number = param(params, 0, "n")
        if isinstance(number, list):
            return [self._hash_of(n) for n in number[:MAX_PAGED_KEYS]]
        return self._hash_of(number)

    def _hash_of(self, number: Any) -> str | None:
        if number is None:
            return hexs(self.chain.best.hash)
        if isinstance(number, str):
            try:
                number = int(number, 16) if number.startswith("0x") else int(number)
            except ValueError:
                raise invalid_params("block number must be an integer or hex string") from None
        if not isinstance(number, int) or isinstance(number, bool) or number < 0:
            raise invalid_params("block number must be a non-negative integer")
        block = self.chain.block(number)
        return hexs(block.hash) if block else None

    async def chain_getHeader(self, params: Any) -> Any:  # noqa: N802
        block = self._block(param(params, 0, "hash"))
        return header_json(block) if block else None

    async def chain_getBlock(self, params: Any) -> Any:  # noqa: N802
        block = self._block(param(params, 0, "hash"))
        if block is None:
            return None
        return {"block": {"header": header_json(block), "extrinsics": [hexs(x) for x in block.extrinsics]},
                "justifications": None}

    async def chain_getFinalizedHead(self, params: Any) -> str:  # noqa: N802
        return hexs(self.chain.finalized.hash)

    # state_* ------------------------------------------------------------------------------------
    async def state_getStorage(self, params: Any) -> str | None:  # noqa: N802
        key = parse_hex(param(params, 0, "key"), "storage key")
        value = self._state(param(params, 1, "hash")).get(key)
        return None if value is None else hexs(value)

    async def state_getStorageHash(self, params: Any) -> str | None:  # noqa: N802
        value = await self.state_getStorage(params)
        return None if value is None else hexs(blake2_256(bytes.fromhex(value[2:])))

    async def state_getStorageSize(self, params: Any) -> int | None:  # noqa: N802
        value = await self.state_getStorage(params)
        return None if value is None else (len(value) - 2) // 2

    async def state_getKeysPaged(self, params: Any) -> list[str]:  # noqa: N802
        prefix = parse_hex(param(params, 0, "prefix", "0x"), "prefix")
        count = param(params, 1, "count")
        if not isinstance(count, int) or count < 0:
            raise invalid_params("count must be a non-negative integer")
        if count > MAX_PAGED_KEYS:
            raise invalid_params(f"count exceeds maximum value. value: {count}, max: {MAX_PAGED_KEYS}")
        start = param(params, 2, "start_key")
        start_key = parse_hex(start, "start key") if start else b""
        keys: list[str] = []
        for key, _ in self._state(param(params, 3, "hash")).iter_prefix(prefix, start_key):
            if key == start_key:
                continue
            keys.append(hexs(key))
            if len(keys) >= count:
                break
        return keys

    async def state_getKeys(self, params: Any) -> list[str]:  # noqa: N802
        prefix = parse_hex(param(params, 0, "prefix", "0x"), "prefix")
        return [hexs(k) for k, _ in self._state(param(params, 1, "hash")).iter_prefix(prefix)]

    async def state_getPairs(self, params: Any) -> list[list[str]]:  # noqa: N802
        prefix = parse_hex(param(params, 0, "prefix", "0x"), "prefix")
        return [[hexs(k), hexs(v)] for k, v in self._state(param(params, 1, "hash")).iter_prefix(prefix)]

    async def state_queryStorageAt(self, params: Any) -> list[dict[str, Any]]:  # noqa: N802
        keys = self._keys(param(params, 0, "keys", []))
        block = self._block_or_error(param(params, 1, "at"))
        state = self._state(hexs(block.hash))
        changes = [[hexs(k), None if (v := state.get(k)) is None else hexs(v)] for k in keys]
        return [{"block": hexs(block.hash), "changes": changes}]

    async def state_queryStorage(self, params: Any) -> list[dict[str, Any]]:  # noqa: N802
        keys = self._keys(param(params, 0, "keys", []))
        first = self._block_or_error(param(params, 1, "from_block"))
        last = self._block_or_error(param(params, 2, "to_block"))
        if last.number < first.number or last.number - first.number > MAX_QUERY_RANGE:
            raise RpcError(4001, "Invalid block range",
                           f"Cannot query {first.number}..{last.number}: at most {MAX_QUERY_RANGE} blocks, in order")
        # one forward walk over the range's writes of these keys, not a state rebuilt at every block
        try:
            found = self.chain.query_storage(keys, first, last)
        except StateDiscarded:
            raise RpcError(STATE_UNAVAILABLE, f"State already discarded for {hexs(first.hash)}") from None
        return [{"block": hexs(block_hash), "changes": [[hexs(k), None if v is None else hexs(v)] for k, v in changes]}
                for block_hash, changes in found]

    @staticmethod
    def _keys(raw: Any) -> list[bytes]:
        if not isinstance(raw, list) or len(raw) > MAX_PAGED_KEYS:
            raise invalid_params(f"keys must be a list of at most {MAX_PAGED_KEYS} hex keys")
        return [parse_hex(k, "storage key") for k in raw]

    async def state_getMetadata(self, params: Any) -> str:  # noqa: N802
        self._block_or_error(param(params, 0, "hash"))
        return hexs(self.node.metadata)

    async def state_getRuntimeVersion(self, params: Any) -> dict[str, Any]:  # noqa: N802
        self._block_or_error(param(params, 0, "hash"))
        return version_json(self.chain.runtime.version)

    async def state_call(self, params: Any) -> str:
        method = param(params, 0, "name")
        if not isinstance(method, str):
            raise invalid_params("method name must be a string")
        data = parse_hex(param(params, 1, "bytes", "0x"), "call data")
        block = self._block_or_error(param(params, 2, "hash"))
        try:
            return hexs(call_runtime_api(self.chain, self.node.metadata, method, data, block.hash))
        except RuntimeApiError as exc:
            raise RpcError(4003, "Client error: Execution failed: " + str(exc)) from None

    # author_* / payment_* -----------------------------------------------------------------------
    async def author_submitExtrinsic(self, params: Any) -> str:  # noqa: N802
        raw = parse_hex(param(params, 0, "extrinsic"), "extrinsic")
        try:
            tx_hash = self.chain.submit(raw)
        except (BadFormat, TransactionValidityError, AlreadyImported, PriorityTooLow) as exc:
            raise author_error(exc) from None
        self.node.transactions_arrived()
        return hexs(tx_hash)

    async def author_pendingExtrinsics(self, params: Any) -> list[str]:  # noqa: N802
        return [hexs(ext.raw) for ext, _ in self.chain.pool.entries.values()]

    async def payment_queryInfo(self, params: Any) -> dict[str, Any]:  # noqa: N802
        raw = parse_hex(param(params, 0, "extrinsic"), "extrinsic")
        self._block_or_error(param(params, 1, "hash"))
        try:
            info = self.chain.executive.query_info(raw, len(raw))
        except BadFormat as exc:
            raise RpcError(1001, f"Extrinsic has invalid format: {exc}") from None  # payment's decode error
        return {"weight": {"ref_time": info["weight"]["ref_time"], "proof_size": 0}, "class": "normal",
                "partialFee": str(info["partial_fee"])}

    async def payment_queryFeeDetails(self, params: Any) -> dict[str, Any]:  # noqa: N802
        raw = parse_hex(param(params, 0, "extrinsic"), "extrinsic")
        try:
            details = self.chain.executive.fee_details(raw, len(raw))
        except BadFormat as exc:
            raise RpcError(1001, f"Extrinsic has invalid format: {exc}") from None
        fee = details["inclusion_fee"]
        return {"inclusionFee": None if fee is None else {
            "baseFee": hex(fee["base_fee"]), "lenFee": hex(fee["len_fee"]),
            "adjustedWeightFee": hex(fee["adjusted_weight_fee"])}, "tip": hex(details["tip"])}

    # system_* -----------------------------------------------------------------------------------
    async def system_accountNextIndex(self, params: Any) -> int:  # noqa: N802
        account = param(params, 0, "account")
        try:
            who = bytes.fromhex(account[2:]) if account.startswith("0x") else bytes.fromhex(ss58_decode(account))
        except (ValueError, AttributeError, TypeError, IndexError):  # ss58_decode: IndexError on 2-3 chars
            raise invalid_params("account must be an SS58 address or 0x-prefixed public key") from None
        if len(who) != 32:
            raise invalid_params("account must be 32 bytes")
        return self.chain.account_next_index(who)

    # dev_* (as chopsticks has them) ------------------------------------------------------------------
    async def dev_timeTravel(self, params: Any) -> int:  # noqa: N802
        """Move the chain's clock: the next blocks carry this moment (ms since the epoch, or an ISO 8601 date)
        and time runs on from it. A devnet is a development chain; a production node has no such call."""
        value = param(params, 0, "date")
        if isinstance(value, str):
            try:
                value = int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000)
            except ValueError:
                raise invalid_params("date must be milliseconds since the epoch or an ISO 8601 date") from None
        if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 2**63:
            raise invalid_params("date must be milliseconds since the epoch or an ISO 8601 date")
        try:
            return self.chain.time_travel(value)
        except ValueError as exc:
            raise invalid_params(str(exc)) from None

    def _static(self) -> dict[str, Callable[[], Any]]:
        node = self.node
        return {
            "system_name": lambda: "paratrain-devnet",
            "system_version": lambda: node.version,
            "system_chain": lambda: node.chain_name,
            "system_chainType": lambda: "Development",
            "system_properties": lambda: node.properties,
            "system_health": lambda: {"peers": 0, "isSyncing": False, "shouldHavePeers": False},
            "system_peers": lambda: [],
            "system_localPeerId": lambda: node.peer_id,
            "system_localListenAddresses": lambda: node.listen_addresses,
            "system_nodeRoles": lambda: ["Authority"],
            "system_syncState": lambda: {"startingBlock": 0, "currentBlock": self.chain.best.number,
                                         "highestBlock": self.chain.best.number},
            "rpc_methods": lambda: {"methods": node.rpc_method_names()},
        }

    # Subscriptions -------------------------------------------------------------------------------
    async def _heads(self, params: Any, sink: Sink) -> Callable[[], None]:
        listener = lambda block: sink(header_json(block))  # noqa: E731
        sink(header_json(self.chain.best))
        self.chain.import_listeners.append(listener)
        return lambda: self.chain.import_listeners.remove(listener)

    async def _finalized_heads(self, params: Any, sink: Sink) -> Callable[[], None]:
        listener = lambda block: sink(header_json(block))  # noqa: E731
        sink(header_json(self.chain.finalized))
        self.chain.finality_listeners.append(listener)
        return lambda: self.chain.finality_listeners.remove(listener)

    async def _runtime_version(self, params: Any, sink: Sink) -> Callable[[], None]:
        sink(version_json(self.chain.runtime.version))
        return lambda: None  # the runtime never upgrades on devnet

    async def _storage(self, params: Any, sink: Sink) -> Callable[[], None]:
        keys = self._keys(param(params, 0, "keys", []) or [])
        state = self.chain.state_at()
        last = {k: state.get(k) for k in keys}
        sink({"block": hexs(self.chain.best.hash),
              "changes": [[hexs(k), None if v is None else hexs(v)] for k, v in last.items()]})

        def listener(block: Block) -> None:
            head = self.chain.state_at(block.hash)
            changes = []
            for key in keys:
                value = head.get(key)
                if value != last[key]:
                    last[key] = value
                    changes.append([hexs(key), None if value is None else hexs(value)])
            if changes:
                sink({"block": hexs(block.hash), "changes": changes})

        self.chain.import_listeners.append(listener)
        return lambda: self.chain.import_listeners.remove(listener)

    async def _watch_extrinsic(self, params: Any, sink: Sink) -> Callable[[], None]:
        raw = parse_hex(param(params, 0, "bytes"), "extrinsic")
        loop = asyncio.get_running_loop()
        in_block_at: list[float] = []
        delayed: list[asyncio.TimerHandle] = []

        def send_final(status: Any) -> None:
            sink(status)
            sink.close()

        def listener(status: Any) -> None:
            if isinstance(status, dict) and "inBlock" in status:
                in_block_at.append(loop.time())
            if isinstance(status, dict) and "finalized" in status and in_block_at:
                # With immediate finality {finalized} would follow {inBlock} at once, and
                # Polkadot.js (switchMap in signAndSend) drops the InBlock result while it
                # still fetches that block's events: hold {finalized} back, as chopsticks does.
                wait = in_block_at[-1] + FINALIZED_AFTER_IN_BLOCK_S - loop.time()
                if wait > 0:
                    delayed.append(loop.call_later(wait, send_final, status))
                    return
            if isinstance(status, str) or "finalized" in status:
                send_final(status)
            else:
                sink(status)

        def cancel() -> None:
            self.chain.unwatch(tx_hash, listener)
            for handle in delayed:
                handle.cancel()

        try:
            tx_hash = self.chain.submit(raw, listener)
        except (BadFormat, TransactionValidityError, AlreadyImported, PriorityTooLow) as exc:
            raise author_error(exc) from None
        sink("ready")
        self.node.transactions_arrived()
        return cancel

    def table(self) -> dict[str, Handler]:
        handlers: dict[str, Handler] = {}
        for name in dir(self):
            if "_" in name and name.split("_")[0] in ("chain", "state", "author", "payment", "system", "dev"):
                handlers[name] = getattr(self, name)
        aliases = {
            "chain_getHead": "chain_getBlockHash", "chain_getFinalisedHead": "chain_getFinalizedHead",
            "chain_getRuntimeVersion": "state_getRuntimeVersion", "state_getStorageAt": "state_getStorage",
            "state_getStorageHashAt": "state_getStorageHash", "state_getStorageSizeAt": "state_getStorageSize",
            "state_getKeysPagedAt": "state_getKeysPaged", "state_callAt": "state_call",
            "account_nextIndex": "system_accountNextIndex",
        }
        for alias, target in aliases.items():
            handlers[alias] = handlers[target]
        for name, fn in self._static().items():
            handlers[name] = _constant_handler(fn)
        return handlers

    def subscriptions(self) -> list[Subscription]:
        return [
            Subscription("chain_subscribeNewHeads", "chain_newHead", "chain_unsubscribeNewHeads", self._heads),
            Subscription("chain_subscribeNewHead", "chain_newHead", "chain_unsubscribeNewHead", self._heads),
            Subscription("subscribe_newHead", "chain_newHead", "unsubscribe_newHead", self._heads),
            Subscription("chain_subscribeAllHeads", "chain_allHead", "chain_unsubscribeAllHeads", self._heads),
            Subscription("chain_subscribeFinalizedHeads", "chain_finalizedHead",
                         "chain_unsubscribeFinalizedHeads", self._finalized_heads),
            Subscription("chain_subscribeFinalisedHeads", "chain_finalizedHead",
                         "chain_unsubscribeFinalisedHeads", self._finalized_heads),
            Subscription("state_subscribeRuntimeVersion", "state_runtimeVersion",
                         "state_unsubscribeRuntimeVersion", self._runtime_version),
            Subscription("chain_subscribeRuntimeVersion", "chain_runtimeVersion",
                         "chain_unsubscribeRuntimeVersion", self._runtime_version),
            Subscription("state_subscribeStorage", "state_storage", "state_unsubscribeStorage", self._storage),
            Subscription("author_submitAndWatchExtrinsic", "author_extrinsicUpdate", "author_unwatchExtrinsic",
                         self._watch_extrinsic),
        ]


def _constant_handler(fn: Callable[[], Any]) -> Handler:
    async def handler(params: Any) -> Any:
        return fn()

    return handler
