"""`paratrain worker`, `paratrain validator` and `paratrain orchestrator`: the daemons' options, and running
one in the foreground.

In the CLI layer, not in workers/: the daemons are libraries (workers, orchestrator) that this layer drives,
so they need neither the CLI's argument types nor its error. Light at import time (no torch, Ray or chain
client): `paratrain.cli` builds its parser from here, and the daemons' modules are imported only when one
runs. The worker and validator stop on the first SIGINT/SIGTERM and exit at once on a second; a bad key or
setting is a CliError (one line, exit status 2), never a traceback. Every one of them takes its chain from
--chain, else $PARATRAIN_CHAIN, as the people's commands do.
"""
from __future__ import annotations

import argparse
import logging
from typing import Any

from paratrain.argtypes import (
    add_key_arguments,
    block_count,
    block_number,
    integer,
    non_negative,
    port_or_any,
    port_or_off,
    positive,
    tolerance,
)
from paratrain.cli import CliError
from paratrain.commands.common import add_chain_argument, chain_url
from paratrain_api.endpoints import CHAIN_ENV, DEFAULT_CHAIN_URL
from workers.verification import HOLDOUT_MARGIN_MS, HOLDOUT_TOLERANCE, METRIC_TOLERANCE

worker_log = logging.getLogger("paratrain.worker")
validator_log = logging.getLogger("paratrain.validator")

EXIT_OK, EXIT_ERROR = 0, 1
STORE_HELP = "artifact store root: a directory or fsspec URL (default $PARATRAIN_ARTIFACTS or ~/.cache/paratrain/artifacts)"
WORKER_METRICS_PORT, VALIDATOR_METRICS_PORT = 9616, 9617  # the orchestrator's is 9615: all fit on one machine
LIVENESS_TIMEOUT_S, READINESS_TIMEOUT_S = 600, 120
_metrics_port = integer("a port (0: any free port)", 0, 65535)


def _key_argument(parser: argparse.ArgumentParser, whose: str) -> None:
    add_key_arguments(parser, f"the {whose}'s key (a keystore's password only from $PARATRAIN_KEY_PASSWORD: a "
                              "daemon does not prompt)")


def _store_arguments(parser: argparse.ArgumentParser) -> None:
    """The artifact store and the URI policy: which other stores' URIs the daemon opens (docs/security.md)."""
    parser.add_argument("--store", metavar="URI", help=STORE_HELP)
    parser.add_argument("--trust-store", action="append", default=[], metavar="URI",
                        help="another artifact store whose URIs this daemon opens (a requester's, a worker's); "
                             "repeat for more; also $PARATRAIN_TRUSTED_STORES (comma-separated). Nothing else "
                             "named on chain is opened")
    parser.add_argument("--allow-remote-uris", action="store_true",
                        help="also open http(s) URIs outside the trusted stores, on public addresses only")
    parser.add_argument("--allow-private-addresses", action="store_true",
                        help="with --allow-remote-uris: loopback, private and link-local addresses too")
    parser.add_argument("--max-dataset-mb", type=positive, default=1024, metavar="MB",
                        help="largest data set or holdout fetched (default 1024)")
    parser.add_argument("--max-artifact-mb", type=positive, default=1024, metavar="MB",
                        help="largest model or checkpoint fetched (default 1024)")


def _fetch_settings(args: argparse.Namespace) -> dict[str, Any]:
    from workers.artifacts import MIB, FetchLimits
    from workers.uri_policy import roots_from_env

    return {"store": args.store, "trusted_stores": (*args.trust_store, *roots_from_env()),
            "allow_remote_uris": args.allow_remote_uris, "allow_private_addresses": args.allow_private_addresses,
            "limits": FetchLimits(dataset_bytes=args.max_dataset_mb * MIB, artifact_bytes=args.max_artifact_mb * MIB)}


def _health_arguments(parser: argparse.ArgumentParser, default_port: int) -> None:
    """The metrics and probe endpoints (workers.health), under the orchestrator's flag names, so that one
    scrape and probe configuration fits every paratrain pod."""
    group = parser.add_argument_group("metrics and health probes: /metrics, /healthz, /readyz (docs/deployment.md)")
    group.add_argument("--metrics-port", type=_metrics_port, default=default_port, metavar="N",
                       help=f"HTTP port of /metrics, /healthz and /readyz (default {default_port}; 0: any free port, "
                            "printed)")
    group.add_argument("--metrics-host", default="127.0.0.1", metavar="HOST",
                       help="interface to serve them on (default 127.0.0.1; 0.0.0.0 in a pod, for the kubelet "
                            "and Prometheus)")
    group.add_argument("--no-metrics", action="store_true", help="serve neither metrics nor probes")
    group.add_argument("--liveness-timeout", type=positive, default=LIVENESS_TIMEOUT_S, metavar="SECONDS",
                       help="/healthz fails when the main loop shows no progress for this long; above the longest "
                            f"data set fetch or verification (default {LIVENESS_TIMEOUT_S})")
    group.add_argument("--readiness-timeout", type=positive, default=READINESS_TIMEOUT_S, metavar="SECONDS",
                       help="/readyz fails when the last successful chain contact is older than this "
                            f"(default {READINESS_TIMEOUT_S})")


def _start_health(args: argparse.Namespace, role: str, daemon: Any, log: logging.Logger) -> Any:
    """The daemon's WorkerHealth/ValidatorHealth, subscribed and served; None with --no-metrics. A port that
    cannot be bound is logged and raised (OSError): probes that could never answer would only restart the pod."""
    if args.no_metrics:
        return None
    from workers.health import HealthLimits, ValidatorHealth, WorkerHealth

    kind = WorkerHealth if role == "worker" else ValidatorHealth
    health = kind(HealthLimits(args.liveness_timeout, args.readiness_timeout))
    daemon.subscribe(health.observe)
    try:
        port = health.serve(args.metrics_port, args.metrics_host)
    except OSError as exc:
        log.error("cannot serve metrics and probes on %s:%d: %s", args.metrics_host, args.metrics_port, exc)
        raise
    # printed, as the orchestrator prints its port: `paratrain` logs warnings only, and port 0 must be found
    print(f"{role} metrics and probes on http://{args.metrics_host}:{port} (/metrics, /healthz, /readyz)", flush=True)
    return health


def register(commands: argparse._SubParsersAction) -> None:
    worker = commands.add_parser("worker", help="run the worker daemon: take tasks, train on Ray, submit results")
    add_worker_arguments(worker).set_defaults(run=run_worker)
    validator = commands.add_parser("validator", help="run a validator daemon: verify results and vote on chain")
    add_validator_arguments(validator).set_defaults(run=run_validator)
    orchestrator = commands.add_parser("orchestrator", help="index the chain and serve the gRPC worker API")
    add_orchestrator_arguments(orchestrator).set_defaults(run=run_orchestrator)


# The worker -------------------------------------------------------------------------------------
def add_worker_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--orchestrator", required=True, metavar="HOST:PORT", help="the orchestrator's gRPC address")
    add_chain_argument(parser)
    _key_argument(parser, "worker")
    _store_arguments(parser)
    parser.add_argument("--ray-address", metavar="ADDR",
                        help="join this Ray cluster (default $RAY_ADDRESS, else start a local one)")
    parser.add_argument("--num-workers", type=positive, default=1, metavar="N",
                        help="Ray Train workers per task (default 1; 2 or more train with DDP, which pays off "
                             "only when a step's compute outweighs its all-reduce, e.g. char_lm)")
    parser.add_argument("--gpu", action="store_true", help="train on GPUs (one per training worker, NCCL)")
    parser.add_argument("--allow-custom-code", action="store_true",
                        help="also run custom recipes (arbitrary code named by the task); off by default")
    parser.add_argument("--state-dir", metavar="DIR",
                        help="journal and status.json (default ~/.cache/paratrain/worker/<account>)")
    parser.add_argument("--deadline-margin", type=block_count, default=3, metavar="BLOCKS",
                        help="release the claim when fewer blocks than this are left before the deadline (default 3)")
    parser.add_argument("--max-tasks", type=positive, metavar="N", help="exit after N results (default: run on)")
    parser.add_argument("--no-federated", dest="federated", action="store_false",
                        help="never take the aggregator role for federated tasks (default: take it when the chain "
                             "has FederatedTasks and Flower is installed)")
    parser.add_argument("--fl-host", default="127.0.0.1", metavar="HOST",
                        help="the aggregator's SuperLink address, published on chain in its claims (default 127.0.0.1)")
    parser.add_argument("--fl-port", type=port_or_any, default=0, metavar="PORT",
                        help="the SuperLink's port (default 0: a free one)")
    _health_arguments(parser, WORKER_METRICS_PORT)
    return parser


def worker_config(args: argparse.Namespace, key: str) -> Any:
    from workers.daemon import DaemonConfig

    return DaemonConfig(orchestrator=args.orchestrator, chain_url=chain_url(args), key=key, **_fetch_settings(args),
                        ray_address=args.ray_address, num_workers=args.num_workers, use_gpu=args.gpu,
                        allow_custom_code=args.allow_custom_code, state_dir=args.state_dir,
                        deadline_margin_blocks=args.deadline_margin, max_tasks=args.max_tasks,
                        gpus=1 if args.gpu else 0, federated=args.federated, fl_host=args.fl_host,
                        fl_port=args.fl_port)


def run_worker(args: argparse.Namespace) -> int:
    """`paratrain worker`: the worker daemon until SIGINT/SIGTERM (or --max-tasks results)."""
    from workers.daemon import DaemonStopped, WorkerDaemon

    key, keypair = _load_key(args, worker_log)
    daemon = WorkerDaemon(worker_config(args, key), keypair=keypair)
    try:
        health = _start_health(args, "worker", daemon, worker_log)
    except OSError:
        return EXIT_ERROR
    daemon.stop_on_signals()  # out of training at once: the claim stays, a restart resumes it
    try:
        code = daemon.run()
    except DaemonStopped:
        code = EXIT_OK
    finally:
        daemon.close()
        if health is not None:
            health.stop()
    worker_log.info("worker stopped (%d submitted, %d refused, %d released)", daemon.status.tasks_submitted,
             daemon.status.tasks_refused, daemon.status.tasks_released)
    return code


# The validator ----------------------------------------------------------------------------------
def add_validator_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    add_chain_argument(parser)
    _key_argument(parser, "validator")
    _store_arguments(parser)
    parser.add_argument("--spot-checks", type=non_negative, default=2, metavar="Q",
                        help="checkpoint segments re-executed per result, chosen from on-chain randomness "
                             "(default 2)")
    parser.add_argument("--ray-address", metavar="ADDR",
                        help="Ray cluster for replays of multi-worker runs (default $RAY_ADDRESS, else local)")
    parser.add_argument("--state-dir", metavar="DIR",
                        help="state.json: resume point and votes (default ~/.cache/paratrain/validator/<account>)")
    parser.add_argument("--metric-tolerance", type=tolerance, default=METRIC_TOLERANCE, metavar="X",
                        help=f"claimed vs re-measured metric, absolute (default {METRIC_TOLERANCE})")
    parser.add_argument("--holdout-tolerance", type=tolerance, default=HOLDOUT_TOLERANCE, metavar="X",
                        help=f"holdout metric below the task's target, absolute (default {HOLDOUT_TOLERANCE})")
    parser.add_argument("--holdout-margin-ms", type=non_negative, default=HOLDOUT_MARGIN_MS, metavar="MS",
                        help="stop waiting for a committed holdout's reveal when the verification window has this "
                             f"many ms left, and judge without it (default {HOLDOUT_MARGIN_MS})")
    parser.add_argument("--from-block", type=block_number, metavar="N",
                        help="first block to read when there is no state file (default: the finalized head)")
    parser.add_argument("--max-verdicts", type=non_negative, metavar="N", help="exit after N verdicts")
    _health_arguments(parser, VALIDATOR_METRICS_PORT)
    return parser


def validator_config(args: argparse.Namespace, key: str) -> Any:
    from workers.validator import ValidatorConfig

    return ValidatorConfig(chain_url=chain_url(args), key=key, **_fetch_settings(args), spot_checks=args.spot_checks,
                           ray_address=args.ray_address, state_dir=args.state_dir,
                           metric_tolerance=args.metric_tolerance, holdout_tolerance=args.holdout_tolerance,
                           holdout_margin_ms=args.holdout_margin_ms, from_block=args.from_block,
                           max_verdicts=args.max_verdicts)


def run_validator(args: argparse.Namespace) -> int:
    """`paratrain validator`: the validator daemon until SIGINT/SIGTERM (or --max-verdicts verdicts)."""
    from workers.validator import ValidatorDaemon

    key, keypair = _load_key(args, validator_log)
    daemon = ValidatorDaemon(validator_config(args, key), keypair=keypair)
    try:
        health = _start_health(args, "validator", daemon, validator_log)
    except OSError:
        return EXIT_ERROR
    daemon.stop_on_signals()  # after the current step
    try:
        code = daemon.run()
    finally:
        if health is not None:
            health.stop()
    validator_log.info("validator stopped (%d verdicts)", daemon.votes_cast)
    return code


# The orchestrator -------------------------------------------------------------------------------
def add_orchestrator_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Unset flags stay None: orchestrator.config merges them over its environment and file settings."""
    parser.add_argument("--chain", metavar="URL",
                        help=f"node WebSocket URL (default $PARATRAIN_ORCHESTRATOR_CHAIN_URL, ${CHAIN_ENV}, the "
                             f"config file, else {DEFAULT_CHAIN_URL})")
    parser.add_argument("--listen", metavar="HOST:PORT", help="gRPC address (default 127.0.0.1:50051)")
    parser.add_argument("--db", metavar="PATH", help="SQLite index file (default orchestrator.db)")
    parser.add_argument("--config", metavar="FILE", help="TOML or JSON config file")
    parser.add_argument("--metrics-port", type=port_or_off, metavar="N",
                        help="Prometheus metrics port (0: off; default 9615)")
    return parser


def run_orchestrator(args: argparse.Namespace) -> int:
    """`paratrain orchestrator`: index and serve until SIGINT/SIGTERM."""
    import asyncio

    from orchestrator.config import ConfigError, load_config
    from orchestrator.service import run_orchestrator as serve

    try:
        config = load_config({"chain": args.chain, "listen": args.listen, "db": args.db,
                              "config": args.config, "metrics_port": args.metrics_port})
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    return asyncio.run(serve(config))


# Shared -----------------------------------------------------------------------------------------
def _load_key(args: argparse.Namespace, log: logging.Logger) -> tuple[str, Any]:
    """(what the daemon's config names as its key, the keypair) from --key-file, --key or $PARATRAIN_KEY; a
    secret in argv is logged as a warning first. A key that cannot be loaded is a CliError: the daemon has
    not started, so it is a user error like any other command's."""
    from workers.keys import COMMAND_LINE_WARNING, KeyLoadError, key_source, load_key_source

    try:
        source = key_source(args.key, args.key_file)
        if source.secret_in_argv:
            log.warning("%s", COMMAND_LINE_WARNING)
        return source.value, load_key_source(source)
    except KeyLoadError as exc:
        raise CliError(str(exc)) from None
