"""The `paratrain` command line."""
from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from paratrain.argtypes import non_negative, port_or_any, port_or_off, positive

if TYPE_CHECKING:
    from devnet.rpc import RpcLimits

console = Console(stderr=True, soft_wrap=True)  # soft_wrap: an error stays one line at any terminal width


class CliError(Exception):
    """A user error: printed as one line, exit status 2, no traceback."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="paratrain", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug output")
    commands = parser.add_subparsers(dest="command", required=True)

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

    from paratrain.demo import add_demo_arguments  # light: rich only

    demo = commands.add_parser("demo", help="run the whole market once: devnet, orchestrator, Ray, a worker and "
                                            "validators; one digits task posted, trained, verified and paid")
    add_demo_arguments(demo)

    dataset = commands.add_parser("dataset", help="manage data sets in the artifact store")
    dataset_commands = dataset.add_subparsers(dest="dataset_command", required=True)
    add = dataset_commands.add_parser("add", help="package a data set into the artifact store; print its hash and URI")
    add.add_argument("source", help="built-in name (digits, breast_cancer, diabetes, tiny_shakespeare) "
                                    "or a file (.txt, .md, .csv, .npz)")
    add.add_argument("--store", default=None, metavar="URL",
                     help="artifact store: a directory or fsspec URL (default $PARATRAIN_ARTIFACTS "
                          "or ~/.cache/paratrain/artifacts)")

    from workers.daemon_cli import add_validator_arguments, add_worker_arguments  # light: no torch or Ray

    worker = commands.add_parser("worker", help="run the worker daemon: take tasks, train on Ray, submit results")
    add_worker_arguments(worker)

    validator = commands.add_parser("validator", help="run a validator daemon: verify results and vote on chain")
    add_validator_arguments(validator)

    orch = commands.add_parser("orchestrator", help="index the chain and serve the gRPC worker API")
    orch.add_argument("--chain", metavar="URL", help="node WebSocket URL (default ws://127.0.0.1:9944)")
    orch.add_argument("--listen", metavar="HOST:PORT", help="gRPC address (default 127.0.0.1:50051)")
    orch.add_argument("--db", metavar="PATH", help="SQLite index file (default orchestrator.db)")
    orch.add_argument("--config", metavar="FILE", help="TOML or JSON config file")
    orch.add_argument("--metrics-port", type=port_or_off, metavar="N",
                      help="Prometheus metrics port (0: off; default 9615)")

    from paratrain.commands import register_people_commands  # task, account, model

    register_people_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "devnet":
            return asyncio.run(_run_devnet(args))
        if args.command == "demo":
            from paratrain.demo import options_from_args, run_demo

            return run_demo(options=options_from_args(args))
        if args.command == "orchestrator":
            return _run_orchestrator(args)
        if args.command == "worker":
            from workers.daemon_cli import run_worker

            return run_worker(args)
        if args.command == "validator":
            from workers.daemon_cli import run_validator

            return run_validator(args)
        if args.command == "dataset":
            return _add_dataset(args)
        from paratrain.commands import run_people_command

        status = run_people_command(args)
        if status is not None:
            return status
    except CliError as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 2
    except KeyboardInterrupt:
        return 130
    return 1


def _add_dataset(args: argparse.Namespace) -> int:
    from workers.artifacts import ArtifactStore
    from workers.datasets import DatasetError, add_dataset

    try:
        digest, uri = add_dataset(args.source, ArtifactStore(args.store))
    except DatasetError as exc:
        raise CliError(str(exc)) from None
    print(digest)
    print(uri)
    return 0


def _run_orchestrator(args: argparse.Namespace) -> int:
    from orchestrator.config import ConfigError, load_config
    from orchestrator.service import run_orchestrator

    try:
        config = load_config({"chain": args.chain, "listen": args.listen, "db": args.db,
                              "config": args.config, "metrics_port": args.metrics_port})
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    return asyncio.run(run_orchestrator(config))


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


async def _run_devnet(args: argparse.Namespace) -> int:
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


if __name__ == "__main__":
    sys.exit(main())
