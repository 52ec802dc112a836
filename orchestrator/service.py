"""Process wiring of `paratrain orchestrator`: index + indexer + relay + handlers + gRPC server + metrics.

    config = load_config(args)            # orchestrator.config
    asyncio.run(run_orchestrator(config)) # until SIGINT/SIGTERM (or `stop` is set)
"""
from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from orchestrator.config import OrchestratorConfig
from orchestrator.handlers import ChainConstants, Handlers
from orchestrator.index import Change, Index
from orchestrator.indexer import ChainFactory, Indexer, PubSub
from orchestrator.metrics import Metrics
from orchestrator.relay import Relay
from orchestrator.scheduler import FairnessPolicy

if TYPE_CHECKING:
    import grpc

    from runtime_bindings import Chain

log = logging.getLogger(__name__)


@dataclass
class Orchestrator:
    """The running pieces (for tests and embedding)."""

    config: OrchestratorConfig
    index: Index
    indexer: Indexer
    handlers: Handlers
    relay: Relay
    metrics: Metrics
    chain: Chain
    server: grpc.aio.Server | None = None
    port: int = 0
    metrics_port: int = 0


async def start_orchestrator(config: OrchestratorConfig, *, metrics: Metrics | None = None,
                             connect: ChainFactory | None = None) -> Orchestrator:
    """Open the index, connect to the chain, start the indexer, the gRPC server and the metrics endpoint.

    `connect` opens each connection (the relay's, then the indexer's at start and after a loss) on a
    transport of the caller's choice; by default ``Chain.connect(config.chain_url)``."""
    from runtime_bindings import Chain

    config.validate()

    def open_chain() -> Chain:
        return Chain.connect(config.chain_url, timeout=config.chain_timeout_s)

    opener = connect or open_chain
    chain = await asyncio.to_thread(opener)
    constants = await asyncio.to_thread(ChainConstants.from_chain, chain)
    index = Index(config.db_path)
    pubsub = PubSub()
    metrics = metrics or Metrics()
    indexer = Indexer(config.chain_url, index, pubsub, timeout=config.chain_timeout_s, connect=opener)
    interval = config.heartbeat_interval_blocks or max(1, constants.claim_lease // 4)
    relay = Relay(chain, heartbeat_interval_blocks=interval, height=lambda: indexer.height, metrics=metrics)
    handlers = Handlers(index, FairnessPolicy(), relay, pubsub, constants=constants,
                        reservation_ttl=config.reservation_ttl_s, max_wait_s=config.max_wait_s, metrics=metrics)
    handlers.bind_loop(asyncio.get_running_loop())

    def on_block(number: int, block_hash: str, changes: Sequence[Change]) -> None:
        metrics.update_index(indexer.height, indexer.chain_height, len(index.open_tasks))
        handlers.on_block(number, block_hash, changes)

    indexer.on_block(on_block)
    indexer.start()
    running = Orchestrator(config, index, indexer, handlers, relay, metrics, chain)
    if config.metrics_port:
        running.metrics_port = metrics.serve(config.metrics_port, config.metrics_host)
    from orchestrator import server as transport  # lazily: the gRPC layer is only needed here

    tls = None
    if config.tls_cert and config.tls_key:  # validate() refused one without the other
        tls = transport.TlsConfig.from_files(config.tls_cert, config.tls_key, config.tls_client_ca)

    def registered(account: str) -> bool:
        worker = index.worker(account)
        return worker is not None and worker.active and worker.role == "Trainer"

    limits = transport.ServerLimits(max_wait_s=config.max_wait_s)
    server, port = transport.build_server(
        handlers, handlers, listen=config.listen, tls=tls, limits=limits, registered=registered,
        on_rpc=lambda method, code, seconds: metrics.observe_rpc(method, seconds, code))
    await server.start()
    running.server, running.port = server, port
    log.info("orchestrator: gRPC on %s (port %d), chain %s, index %s at block %d", config.listen, port,
             config.chain_url, config.db_path, indexer.height)
    return running


async def stop_orchestrator(running: Orchestrator, grace: float = 5.0) -> None:
    if running.server is not None:
        await running.server.stop(grace)
    running.handlers.close()
    await asyncio.to_thread(running.indexer.stop)
    running.metrics.stop()
    running.index.close()
    running.chain.close()


async def run_orchestrator(config: OrchestratorConfig, stop: asyncio.Event | None = None) -> int:
    """Run until SIGINT/SIGTERM (or `stop` is set); returns the exit status."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # not the main thread
            pass
    running = await start_orchestrator(config)
    print(f"orchestrator listening on {config.listen.rpartition(':')[0]}:{running.port}", flush=True)
    try:
        while not stop.is_set():
            running.metrics.update_index(running.indexer.height, running.indexer.chain_height,
                                         len(running.index.open_tasks))
            try:
                await asyncio.wait_for(stop.wait(), 1.0)
            except TimeoutError:
                pass
    finally:
        await stop_orchestrator(running)
    return 0


__all__ = ["Orchestrator", "run_orchestrator", "start_orchestrator", "stop_orchestrator"]
