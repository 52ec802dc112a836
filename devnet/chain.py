"""The chain: genesis, the transaction pool, block production and finality.

There are no forks: devnet is the only author, so the chain is a list of
blocks whose tail of `finality_lag` blocks is not yet final.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Callable

from sortedcontainers import SortedDict

from devnet.blockstore import BlockStore, StoredBlock
from devnet.crypto import blake2_256
from devnet.runtime.context import DispatchContext
from devnet.runtime.executive import HEADER_CODEC, Executive, genesis_header
from devnet.runtime.extrinsic import Extrinsic
from devnet.runtime.pallets.system import System
from devnet.runtime.runtime import Runtime
from devnet.runtime.validity import InvalidTransaction, ValidTransaction
from devnet.scale.codec import codec_for
from devnet.scale.types import Bytes, Sequence
from devnet.state import Changes, Overlay, SortedView, StateStore, StateView, StorageChanges

log = logging.getLogger(__name__)
_BODY_CODEC = codec_for(Sequence(Bytes))
DEV_ACCOUNT_NAMES = ("Alice", "Bob", "Charlie", "Dave", "Eve", "Ferdie")
DEV_BALANCE = 1 << 60


class IncompatibleChainData(Exception):
    """A --base-path chain written by another runtime (spec name or spec_version): this runtime has no
    migration for it, and would misread its storage."""


class AlreadyImported(Exception):
    """The same transaction is already in the pool (JSON-RPC 1013)."""


class PriorityTooLow(Exception):
    """Another transaction with the same sender and nonce is in the pool (JSON-RPC 1014)."""


@dataclass(frozen=True)
class Block:
    number: int
    hash: bytes
    header: dict[str, Any]
    header_bytes: bytes
    extrinsics: list[bytes]


def dev_accounts() -> dict[str, bytes]:
    """Public keys of //Alice ... //Ferdie (sr25519), derived as every Substrate tool derives them."""
    from substrateinterface import Keypair  # the same derivation the clients use

    return {name: Keypair.create_from_uri(f"//{name}").public_key for name in DEV_ACCOUNT_NAMES}


def genesis_state(runtime: Runtime, endowed: list[bytes], balance: int = DEV_BALANCE) -> Changes:
    state = Overlay(SortedView(SortedDict()))
    ctx = DispatchContext(state, 0, 0)
    for who in endowed:
        runtime.balances.deposit_creating(ctx, who, balance)
    System.LastRuntimeUpgrade.set(state, {"spec_version": runtime.spec_version,
                                          "spec_name": runtime.version["spec_name"]})
    return state.changes


class TxPool:
    """Ready transactions in arrival order, one per (sender, nonce)."""

    def __init__(self) -> None:
        self.entries: dict[bytes, tuple[Extrinsic, ValidTransaction]] = {}
        self._slots: dict[tuple[bytes, int], bytes] = {}
        self._next_nonce: dict[bytes, int] = {}
        self._per_sender: dict[bytes, int] = {}

    def __len__(self) -> int:
        return len(self.entries)

    def next_nonce(self, sender: bytes, account_nonce: int) -> int:
        return max(account_nonce, self._next_nonce.get(sender, 0))

    def add(self, tx_hash: bytes, ext: Extrinsic, valid: ValidTransaction) -> None:
        if tx_hash in self.entries:
            raise AlreadyImported(tx_hash.hex())
        if (valid.sender, valid.nonce) in self._slots:
            raise PriorityTooLow(tx_hash.hex())
        if valid.nonce > self.next_nonce(valid.sender, valid.account_nonce):
            raise InvalidTransaction("Future")
        self.entries[tx_hash] = (ext, valid)
        self._slots[(valid.sender, valid.nonce)] = tx_hash
        self._next_nonce[valid.sender] = max(self._next_nonce.get(valid.sender, 0), valid.nonce + 1)
        self._per_sender[valid.sender] = self._per_sender.get(valid.sender, 0) + 1

    def remove(self, tx_hash: bytes) -> None:
        ext, valid = self.entries.pop(tx_hash)
        del self._slots[(valid.sender, valid.nonce)]
        self._per_sender[valid.sender] -= 1
        if not self._per_sender[valid.sender]:
            del self._per_sender[valid.sender]
            self._next_nonce.pop(valid.sender, None)

    def ready(self) -> list[tuple[bytes, Extrinsic, ValidTransaction]]:
        return [(h, ext, valid) for h, (ext, valid) in self.entries.items()]


TxListener = Callable[[Any], None]  # receives Substrate's TransactionStatus values


class Chain:
    def __init__(self, runtime: Runtime, *, store: BlockStore | None = None, finality_lag: int = 0,
                 endowed: list[bytes] | None = None) -> None:
        self.runtime = runtime
        self.store = store
        self.finality_lag = finality_lag
        self.pool = TxPool()
        self.blocks: list[Block] = []
        self.by_hash: dict[bytes, Block] = {}
        self._tx_block: dict[bytes, bytes] = {}  # extrinsic hash -> block hash, for tx status
        self._unfinalized: dict[int, Changes] = {}
        self.tx_listeners: dict[bytes, list[TxListener]] = {}
        self.import_listeners: list[Callable[[Block], None]] = []
        self.finality_listeners: list[Callable[[Block], None]] = []
        self.finalized_number = 0
        self.clock_offset_ms = 0   # dev_timeTravel: added to the wall clock for every block authored from now on
        stored = store.load_blocks() if store else []
        if stored:
            self._restore(stored)
        else:
            self._genesis(list(dev_accounts().values()) if endowed is None else endowed)
        self.executive = Executive(runtime, self.blocks[0].hash)

    # Start-up ------------------------------------------------------------------------------------
    def _genesis(self, endowed: list[bytes]) -> None:
        changes = genesis_state(self.runtime, endowed)
        state_root = blake2_256(b"".join(k + v for k, v in sorted(changes.items()) if v is not None))
        header, header_bytes, block_hash = genesis_header(state_root)
        genesis = Block(0, block_hash, header, header_bytes, [])
        self._append(genesis)
        self.state = StateStore({k: v for k, v in changes.items() if v is not None}, block_hash)
        if self.store:
            self.store.persist([self._stored(genesis)], [changes], genesis=block_hash)

    def _restore(self, stored: list[StoredBlock]) -> None:
        for row in stored:
            self._append(Block(row.number, row.hash, HEADER_CODEC.decode(row.header), row.header,
                               _BODY_CODEC.decode(row.body)))
        self.state = StateStore(self.store.load_state(), self.blocks[-1].hash)  # type: ignore[union-attr]
        written_by = System.LastRuntimeUpgrade.get(self.state.head)
        mine = {"spec_name": self.runtime.version["spec_name"], "spec_version": self.runtime.spec_version}
        if written_by is None or (written_by["spec_name"], written_by["spec_version"]) != tuple(mine.values()):
            found = f"{written_by['spec_name']} spec_version {written_by['spec_version']}" if written_by else "no version"
            raise IncompatibleChainData(f"the stored chain was written by runtime {found}; this node runs "
                                        f"{mine['spec_name']} spec_version {mine['spec_version']} and has no "
                                        f"migration for it: start with --tmp or a new --base-path")
        self.finalized_number = self.blocks[-1].number
        log.info("restored %d finalized blocks, best #%d", len(stored), self.best.number)

    def _append(self, block: Block) -> None:
        self.blocks.append(block)
        self.by_hash[block.hash] = block
        for raw in block.extrinsics:
            self._tx_block[blake2_256(raw)] = block.hash

    @staticmethod
    def _stored(block: Block) -> StoredBlock:
        return StoredBlock(block.number, block.hash, block.header_bytes, _BODY_CODEC.encode(block.extrinsics))

    # Queries -------------------------------------------------------------------------------------
    @property
    def best(self) -> Block:
        return self.blocks[-1]

    @property
    def genesis_hash(self) -> bytes:
        return self.blocks[0].hash

    @property
    def finalized(self) -> Block:
        return self.blocks[self.finalized_number]

    def block(self, number: int) -> Block | None:
        return self.blocks[number] if 0 <= number < len(self.blocks) else None

    def state_at(self, block_hash: bytes | None = None) -> StateView:
        return self.state.at(block_hash or self.best.hash)

    def query_storage(self, keys: list[bytes], first: Block, last: Block) -> StorageChanges:
        """The changes of `keys` over the blocks first..last (state_queryStorage; see StateStore.query).
        Raises StateDiscarded when `first` is older than the kept history."""
        return self.state.query(keys, first.hash, last.hash)

    def account_next_index(self, who: bytes) -> int:
        nonce = System.Account.get(self.state.head, who)["nonce"]
        return self.pool.next_nonce(who, nonce)

    # Transactions --------------------------------------------------------------------------------
    def submit(self, raw: bytes, listener: TxListener | None = None) -> bytes:
        """Validate and pool a transaction; raises BadFormat, TransactionValidityError, AlreadyImported."""
        tx_hash = blake2_256(raw)
        if tx_hash in self.pool.entries:
            raise AlreadyImported(tx_hash.hex())
        ext, valid = self.executive.validate(self.state.head, raw, self.best.number, self.best.hash)
        self.pool.add(tx_hash, ext, valid)
        if listener is not None:
            self.tx_listeners.setdefault(tx_hash, []).append(listener)
        return tx_hash

    def unwatch(self, tx_hash: bytes, listener: TxListener) -> None:
        listeners = self.tx_listeners.get(tx_hash, [])
        if listener in listeners:
            listeners.remove(listener)
        if not listeners:
            self.tx_listeners.pop(tx_hash, None)

    # Blocks --------------------------------------------------------------------------------------
    def time_travel(self, target_ms: int) -> int:
        """Author the next blocks as if the wall clock read `target_ms` now (chopsticks' dev_timeTravel): a test
        or an experiment drives the chain through simulated days. Only forward: the timestamp must increment."""
        from devnet.runtime.pallets.timestamp import Timestamp

        if target_ms <= Timestamp.Now.get(self.state_at(self.best.hash)):
            raise ValueError("the chain's time only moves forward: give a moment after the best block's")
        self.clock_offset_ms = target_ms - int(time.time() * 1000)
        return target_ms

    def produce_block(self, now_ms: int | None = None) -> Block:
        parent = self.best
        now = int(time.time() * 1000) + self.clock_offset_ms if now_ms is None else now_ms
        built = self.executive.build_block(parent.hash, parent.number, parent.header["state_root"],
                                           self.state.head, self.pool.ready(), now)
        block = Block(parent.number + 1, built.hash, built.header, built.header_bytes, built.extrinsics)
        self.state.apply_block(block.hash, built.changes)
        self._unfinalized[block.number] = built.changes
        self._append(block)
        for tx_hash in built.included:
            self.pool.remove(tx_hash)
            self._notify_tx(tx_hash, {"inBlock": "0x" + block.hash.hex()})
        for tx_hash in built.dropped:
            self.pool.remove(tx_hash)
            self._notify_tx(tx_hash, "invalid", final=True)
        for listener in list(self.import_listeners):
            listener(block)
        self._finalize_up_to(block.number - self.finality_lag)
        return block

    @property
    def needs_finality_blocks(self) -> bool:
        """Whether blocks with transactions wait for finality that only later blocks can bring."""
        return self.finalized_number < self.best.number and any(
            len(self.blocks[n].extrinsics) > 1 for n in range(self.finalized_number + 1, self.best.number + 1))

    def _finalize_up_to(self, number: int) -> None:
        if number <= self.finalized_number:
            return
        newly = self.blocks[self.finalized_number + 1:number + 1]
        if self.store:
            self.store.persist([self._stored(b) for b in newly], [self._unfinalized[b.number] for b in newly])
        for block in newly:
            self._unfinalized.pop(block.number, None)
        self.finalized_number = number
        for block in newly:
            for raw in block.extrinsics[1:]:
                self._notify_tx(blake2_256(raw), {"finalized": "0x" + block.hash.hex()}, final=True)
        for listener in list(self.finality_listeners):
            listener(self.finalized)

    def _notify_tx(self, tx_hash: bytes, status: Any, final: bool = False) -> None:
        listeners = self.tx_listeners.pop(tx_hash, []) if final else self.tx_listeners.get(tx_hash, [])
        for listener in list(listeners):
            listener(status)

    def close(self) -> None:
        if self.store:
            self.store.close()
