"""The devnet node: chain, block authoring and the JSON-RPC server in one asyncio process."""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path

from devnet.blockstore import BlockStore
from devnet.chain import Chain
from devnet.metadata import encode_metadata
from devnet.rpc.methods import Methods
from devnet.rpc.server import RpcLimits, RpcServer
from devnet.runtime.pallets.task_bounties import DEFAULT_CHALLENGE_PERIOD_MS, DEFAULT_VERIFICATION_GRACE_MS
from devnet.runtime.runtime import CHAIN_NAME, SS58_PREFIX, TOKEN_DECIMALS, TOKEN_SYMBOL, Runtime

log = logging.getLogger(__name__)
FINALITY_BLOCK_INTERVAL_S = 0.05  # with instant seal and a finality lag, empty blocks bring finality


@dataclass(frozen=True)
class NodeConfig:
    base_path: Path | None = None  # None: state lives in memory only (--tmp)
    block_time_ms: int | None = None  # None: instant seal
    finality_lag: int = 0
    rpc_limits: RpcLimits = RpcLimits()
    challenge_period_ms: int = DEFAULT_CHALLENGE_PERIOD_MS  # TaskBounties.ChallengePeriod; 0 pays at once
    verification_grace_ms: int = DEFAULT_VERIFICATION_GRACE_MS  # TaskBounties.VerificationGrace (ms)


class Node:
    version = "0.1.0"
    chain_name = CHAIN_NAME
    peer_id = "12D3KooWParatrainDevnetNode1111111111111111111111111"
    properties = {"ss58Format": SS58_PREFIX, "tokenDecimals": TOKEN_DECIMALS, "tokenSymbol": TOKEN_SYMBOL}

    def __init__(self, config: NodeConfig = NodeConfig(), runtime: Runtime | None = None) -> None:
        self.config = config
        self.runtime = runtime or Runtime(challenge_period_ms=config.challenge_period_ms,
                                          verification_grace_ms=config.verification_grace_ms)
        self.metadata = encode_metadata(self.runtime)
        store = BlockStore(config.base_path / "chain.sqlite") if config.base_path else None
        try:
            self.chain = Chain(self.runtime, store=store, finality_lag=config.finality_lag)
        except BaseException:
            if store is not None:
                store.close()
            raise
        methods = Methods(self)
        self.server = RpcServer(methods.table(), methods.subscriptions(), limits=config.rpc_limits)
        self.listen_addresses: list[str] = []
        self._wake = asyncio.Event()
        self._author: asyncio.Task[None] | None = None

    def rpc_method_names(self) -> list[str]:
        """What rpc_methods advertises: every method but the dev_ ones (callable all the same). Polkadot.js warns
        about each advertised method it has no definition of, and a client unchanged should see a quiet node."""
        return [name for name in self.server.method_names() if not name.startswith("dev_")]

    async def start(self, host: str = "127.0.0.1", port: int = 9944) -> tuple[str, int]:
        bound = await self.server.start(host, port)
        self.listen_addresses = [f"/ip4/{bound[0]}/tcp/{bound[1]}/ws"]
        self._author = asyncio.create_task(self._author_loop(), name="devnet-author")
        return bound

    async def stop(self) -> None:
        if self._author:
            self._author.cancel()
            await asyncio.gather(self._author, return_exceptions=True)
        await self.server.stop()
        self.chain.close()

    def transactions_arrived(self) -> None:
        """Called after a transaction entered the pool: instant seal authors a block next."""
        self._wake.set()

    async def _author_loop(self) -> None:
        interval = self.config.block_time_ms
        while True:
            if interval is not None:
                await asyncio.sleep(interval / 1000)
            elif self.chain.needs_finality_blocks and not self.chain.pool.entries:
                try:
                    await asyncio.wait_for(self._wake.wait(), FINALITY_BLOCK_INTERVAL_S)
                except asyncio.TimeoutError:
                    pass
            else:
                await self._wake.wait()
                await asyncio.sleep(0)  # let requests already received join the same block
            self._wake.clear()
            try:
                self._produce()
            except Exception:
                log.exception("block production failed")
                await asyncio.sleep(1)

    def _produce(self) -> None:
        block = self.chain.produce_block()
        log.debug("authored #%d with %d extrinsics", block.number, len(block.extrinsics))
        if self.chain.pool.entries:
            self._wake.set()  # more than one block's worth waits
