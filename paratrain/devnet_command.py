"""`paratrain devnet`: the embedded Substrate-compatible development node in the foreground.

Outside paratrain.commands on purpose: with the demo, this is the only part of the CLI that starts devnet,
and the layers contract (pyproject.toml, [tool.importlinter]) keeps devnet out of every other command.
devnet itself is imported only when the command runs: it is not light.
"""
from __future__ import annotations

import argparse
import asyncio
import signal
from pathlib import Path
from typing import TYPE_CHECKING

from paratrain.argtypes import non_negative, port_or_any, positive
from paratrain.cli import CliError

if TYPE_CHECKING:
    from devnet.rpc import RpcLimits


def register(commands: argparse._SubParsersAction) -> None:
    devnet = commands.add_parser("devnet", help="run the embedded Substrate-compatible development node")
    devnet.add_argument("--port", type=port_or_any, default=9944,
                        help="JSON-RPC port, WebSocket and HTTP (default 9944; 0: any free port)")
    devnet.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    storage = devnet.add_mutually_exclusive_group()
    storage.add_argument("--tmp", action="store_true", help="keep the chain in memory only (the default)")
    storage.add_argument("--base-path", type=Path, help="directory where finalized blocks and state persist")
    devnet.add_argument("--block-time", type=positive, metavar="MS",
                        help="author a block every MS milliseconds (default: instant seal)")
    devnet.add_argument("--finality-lag", type=non_negative, default=0, metavar="N",
                        help="finalize blocks N behind the best block (default 0: immediately)")
    devnet.add_argument("--challenge-period-ms", type=non_negative, metavar="MS",
                        help="milliseconds in which an approved result may be challenged before it pays out "
                             "(TaskBounties.ChallengePeriod; default 5000; 0: pay at once)")
    devnet.add_argument("--verification-grace-ms", type=positive, metavar="MS",
                        help="milliseconds validators have to reach a quorum on a submitted result, and on a "
                             "challenged one (TaskBounties.VerificationGrace; default 60000)")
    _rpc_arguments(devnet)
    devnet.set_defaults(run=run)


def _rpc_arguments(devnet: argparse.ArgumentParser) -> None:
    rpc = devnet.add_argument_group("RPC connection limits (docs/devnet.md)")
    rpc.add_argument("--rpc-max-connections", type=positive, metavar="N",
                     help="live WebSockets plus HTTP requests being answered (default 100)")
    rpc.add_argument("--rpc-max-connections-per-ip", type=positive, metavar="N",
                     help="sockets one client address may hold open, live or not (default 50)")
    rpc.add_argument("--rpc-max-pending-handshakes", type=positive, metavar="N",
                     help="sockets that have not sent their request in full yet (default 256)")
    rpc.add_argument("--rpc-handshake-timeout-ms", type=positive, metavar="MS",
                     help="a socket's time to send its request headers (and HTTP body) (default 10000)")
    rpc.add_argument("--rpc-idle-timeout-ms", type=positive, metavar="MS",
                     help="a WebSocket without subscriptions or requests is closed after MS quiet ms "
                          "(default 300000)")


def run(args: argparse.Namespace) -> int:
    return asyncio.run(_serve(args))


def _rpc_limits(args: argparse.Namespace) -> RpcLimits:
    """devnet's RpcLimits with the flags given; the others keep the defaults, which live with the server."""
    from dataclasses import replace

    from devnet.rpc import RpcLimits

    given = {"max_connections": args.rpc_max_connections,
             "max_connections_per_address": args.rpc_max_connections_per_ip,
             "max_pending_handshakes": args.rpc_max_pending_handshakes,
             "handshake_timeout_s": args.rpc_handshake_timeout_ms and args.rpc_handshake_timeout_ms / 1000,
             "idle_timeout_s": args.rpc_idle_timeout_ms and args.rpc_idle_timeout_ms / 1000}
    return replace(RpcLimits(), **{name: value for name, value in given.items() if value is not None})


async def _serve(args: argparse.Namespace) -> int:
    from devnet.chain import IncompatibleChainData
    from devnet.node import DEFAULT_CHALLENGE_PERIOD_MS, DEFAULT_VERIFICATION_GRACE_MS, Node, NodeConfig

    # the default lives with the pallet; the parser stays free of devnet imports (they are not light)
    period = DEFAULT_CHALLENGE_PERIOD_MS if args.challenge_period_ms is None else args.challenge_period_ms
    grace = DEFAULT_VERIFICATION_GRACE_MS if args.verification_grace_ms is None else args.verification_grace_ms
    config = NodeConfig(base_path=args.base_path, block_time_ms=args.block_time, finality_lag=args.finality_lag,
                        challenge_period_ms=period, verification_grace_ms=grace, rpc_limits=_rpc_limits(args))
    try:
        node = Node(config)
    except IncompatibleChainData as exc:
        raise CliError(f"{args.base_path}: {exc}") from None
    try:
        host, port = await node.start(args.host, args.port)
    except OSError as exc:
        raise CliError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from None
    mode = f"a block every {args.block_time} ms" if args.block_time else "instant seal"
    where = f"persisting to {args.base_path}" if args.base_path else "in memory (--tmp)"
    print(f"devnet {node.chain_name} listening on ws://{host}:{port} and http://{host}:{port}", flush=True)
    print(f"  {mode}, finality lag {args.finality_lag}, challenge period {period} ms, "
          f"verification grace {grace} ms, {where}; "
          f"best block #{node.chain.best.number}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await node.stop()
    print("devnet stopped", flush=True)
    return 0
