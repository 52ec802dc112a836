"""`paratrain serve|infer|service|channel`: accepted models sold for paid inference (docs/assets.md).

* `service register MODEL_HASH --price P --endpoint HOST:PORT` (the model's owner; only accepted models) and
  `service show MODEL_HASH`;
* `serve MODEL_HASH`: the Open Inference Protocol over gRPC on --host:--port (health and reflection too), every
  call paid through a channel, a channel's latest payment claimed once it pays for --claim-every calls and
  every channel's each --claim-interval and on the way out;
* `infer MODEL_HASH --input FILE`: the paying client (opens a channel with --deposit unless --channel names
  one); the rows of FILE (.npy, or .csv of numbers) are sent one call each. Its place in each channel (the
  nonce and what it signed) is kept in $PARATRAIN_HOME/channels, written after every call;
* `channel open|extend|reclaim|show`: the client's side of the escrow.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

from paratrain import argtypes
from paratrain.cli import CliError
from paratrain.commands.common import (
    Node,
    add_chain_argument,
    add_key_argument,
    add_store_argument,
    chain_errors,
    chain_url,
    err,
    load_key,
    out,
)

HOUR_MS = 3_600_000
MAX_ROWS = 10_000


def register(commands: argparse._SubParsersAction) -> None:
    service = commands.add_parser("service", help="inference services of accepted models: register, show")
    service.set_defaults(run=run_service)
    sub = service.add_subparsers(dest="service_command", required=True)
    reg = sub.add_parser("register", help="serve an accepted model you own, for a price per call")
    reg.add_argument("model_hash", type=argtypes.hash32)
    reg.add_argument("--price", type=argtypes.amount, required=True, help="per call, in the chain's token")
    reg.add_argument("--endpoint", required=True, help="where `paratrain serve` listens, e.g. 127.0.0.1:8001")
    add_key_argument(reg)
    add_chain_argument(reg)
    show = sub.add_parser("show", help="a model's service: owner, price, endpoint")
    show.add_argument("model_hash", type=argtypes.hash32)
    add_chain_argument(show)

    serve = commands.add_parser("serve", help="serve an accepted model for paid inference (Open Inference "
                                              "Protocol over gRPC)")
    serve.add_argument("model_hash", type=argtypes.hash32)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=argtypes.port_or_any, default=8001, help="default 8001 (0: any)")
    serve.add_argument("--claim-every", type=argtypes.positive, default=1000, metavar="N",
                       help="claim a channel's latest payment once it pays for N calls (default 1000)")
    serve.add_argument("--claim-interval", type=argtypes.seconds, default=60.0, metavar="S",
                       help="and at least every S seconds (default 60)")
    add_store_argument(serve)
    add_key_argument(serve)
    add_chain_argument(serve)
    serve.set_defaults(run=run_serve)

    infer = commands.add_parser("infer", help="paid inference: send each row of a file to a model's service")
    infer.add_argument("model_hash", type=argtypes.hash32)
    infer.add_argument("--input", type=Path, required=True, metavar="FILE", help=".npy or .csv, one row a call")
    infer.add_argument("--channel", type=argtypes.integer("CHANNEL", 0, 2**64 - 1), default=None,
                       help="an open channel of yours to this service (default: open one)")
    infer.add_argument("--deposit", type=argtypes.amount, default=None,
                       help="the deposit of the channel opened (default: 100 calls)")
    infer.add_argument("--endpoint", default=None, help="default: the service's registered endpoint")
    add_key_argument(infer)
    add_chain_argument(infer)
    infer.set_defaults(run=run_infer)

    channel = commands.add_parser("channel", help="payment channels to inference services: open, extend, "
                                                  "reclaim, show")
    channel.set_defaults(run=run_channel)
    csub = channel.add_subparsers(dest="channel_command", required=True)
    opened = csub.add_parser("open", help="escrow a deposit for a service")
    opened.add_argument("model_hash", type=argtypes.hash32)
    opened.add_argument("--deposit", type=argtypes.amount, required=True)
    opened.add_argument("--hours", type=argtypes.integer("--hours", 1, 8760), default=24, help="expiry (default 24)")
    extend = csub.add_parser("extend", help="add to the deposit and move the expiry later")
    extend.add_argument("channel", type=argtypes.integer("CHANNEL", 0, 2**64 - 1))
    extend.add_argument("--add", type=argtypes.amount, default=None)
    extend.add_argument("--hours", type=argtypes.integer("--hours", 1, 8760), default=24,
                        help="the new expiry, from now (default 24)")
    reclaim = csub.add_parser("reclaim", help="after the expiry, take back what is left")
    reclaim.add_argument("channel", type=argtypes.integer("CHANNEL", 0, 2**64 - 1))
    for parser in (opened, extend, reclaim):
        add_key_argument(parser)
        add_chain_argument(parser)
    cshow = csub.add_parser("show", help="a channel: parties, deposit, nonce, expiry")
    cshow.add_argument("channel", type=argtypes.integer("CHANNEL", 0, 2**64 - 1))
    add_chain_argument(cshow)


# service ------------------------------------------------------------------------------------------
def run_service(args: argparse.Namespace) -> int:
    from runtime_bindings.values import Bytes

    url = chain_url(args)
    if args.service_command == "show":
        with Node(url) as node, chain_errors(url):
            record = node.chain.model_services.services(args.model_hash)
            if record is None:
                raise CliError(f"model {args.model_hash} has no service (ModelServices.ServiceNotFound)")
            for key, value in (("model", args.model_hash), ("owner", str(record.owner)),
                               ("price per call", node.fmt(int(record.price_per_call))),
                               ("endpoint", record.endpoint.text), ("active", str(bool(record.active)))):
                out().print(f"{key:<15} {value}")
        return 0
    keypair = load_key(args)
    with Node(url) as node, chain_errors(url, who=keypair.ss58_address):
        price = node.planck(args.price, "--price")
        receipt = node.chain.model_services.register(keypair, args.model_hash, price, Bytes(args.endpoint.encode()))
        out().print(f"model {args.model_hash} served at {args.endpoint} for {node.fmt(price)} a call (block "
                    f"#{receipt.block_number})")
    return 0


# channel ------------------------------------------------------------------------------------------
def run_channel(args: argparse.Namespace) -> int:
    url = chain_url(args)
    if args.channel_command == "show":
        with Node(url) as node, chain_errors(url):
            record = node.chain.payment_channels.channels(args.channel)
            if record is None:
                raise CliError(f"no channel {args.channel} (PaymentChannels.ChannelNotFound)")
            for key, value in (("channel", str(args.channel)), ("sender", str(record.sender)),
                               ("service", str(record.service)), ("deposit left", node.fmt(int(record.deposit))),
                               ("claimed", node.fmt(int(record.claimed))), ("nonce", str(record.nonce)),
                               ("expiry", f"{int(record.expiry_ms)} ms"), ("open", str(bool(record.open)))):
                out().print(f"{key:<12} {value}")
        return 0
    keypair = load_key(args)
    with Node(url) as node, chain_errors(url, who=keypair.ss58_address):
        pc, now = node.chain.payment_channels, int(node.chain.timestamp.now() or 0)
        if args.channel_command == "open":
            channel = open_channel(node, keypair, args.model_hash, node.planck(args.deposit, "--deposit"),
                                   now + args.hours * HOUR_MS)
            out().print(str(channel))
        elif args.channel_command == "extend":
            add = node.planck(args.add, "--add") if args.add is not None else 0
            receipt = pc.extend(keypair, args.channel, add, now + args.hours * HOUR_MS)
            event = next(e for e in receipt.events if e.name == "ChannelExtended")
            out().print(f"channel {args.channel}: deposit {node.fmt(int(event.deposit))}, expiry {event.expiry_ms} ms")
        else:
            receipt = pc.reclaim(keypair, args.channel)
            event = next(e for e in receipt.events if e.name == "ChannelReclaimed")
            out().print(f"channel {args.channel} closed: {node.fmt(int(event.amount))} back")
    return 0


def open_channel(node: Node, keypair: Any, model_hash: str, deposit: int, expiry_ms: int) -> int:
    from runtime_bindings.values import H256

    receipt = node.chain.payment_channels.open(keypair, model_hash, H256(keypair.public_key), deposit, expiry_ms)
    channel = int(next(e.channel for e in receipt.events if e.name == "ChannelOpened"))
    err().print(f"channel {channel} opened to {model_hash[:18]}…: {node.fmt(deposit)} until {expiry_ms} ms")
    return channel


# serve --------------------------------------------------------------------------------------------
def run_serve(args: argparse.Namespace) -> int:
    from runtime_bindings import Chain
    from runtime_bindings.values import H256
    from workers.artifacts import ArtifactStore
    from workers.serving.model import ModelNotServable, load_accepted_model
    from workers.serving.payments import PaymentGate
    from workers.serving.server import ChainClock, Claimer, InferenceHandlers, build_server, channel_view

    keypair, url = load_key(args), chain_url(args)
    with Node(url) as node, chain_errors(url, who=keypair.ss58_address):
        record = node.chain.model_services.services(args.model_hash)
        if record is None or not record.active:
            raise CliError(f"model {args.model_hash} has no active service: `paratrain service register` it first")
        if str(record.owner) != keypair.ss58_address:
            raise CliError(f"the service of {args.model_hash} is {record.owner}'s, not this key's: its claims would "
                           "be refused (PaymentChannels.NotRecipient)")
        try:
            model = load_accepted_model(node.chain, ArtifactStore(args.store), args.model_hash)
        except ModelNotServable as exc:
            raise CliError(str(exc)) from None
        lock = threading.Lock()

        def read_channel(channel: int) -> Any:
            with lock:
                return channel_view(node.chain.payment_channels.channels(channel))

        with Chain.connect(url, timeout=20) as claims_chain:
            clock = ChainClock(lambda: int(claims_chain.timestamp.now() or 0))
            gate = PaymentGate(bytes(H256.from_value(args.model_hash)), int(record.price_per_call), read_channel,
                               clock.now_ms)
            claimer = Claimer(gate, claims_chain, keypair, claim_every=args.claim_every,
                              claim_interval_s=args.claim_interval, clock=clock)
            handlers = InferenceHandlers(model, gate, on_paid=claimer.paid)
            server, port = build_server(handlers, f"{args.host}:{args.port}")
            server.start()
            stop = threading.Event()
            for signum in (signal.SIGINT, signal.SIGTERM):
                signal.signal(signum, lambda *_: stop.set())
            worker = threading.Thread(target=claimer.run, name="claimer", daemon=True)
            worker.start()
            err().print(f"serving {args.model_hash} on {args.host}:{port} for {node.fmt(int(record.price_per_call))} "
                        "a call; Ctrl-C stops (the latest payments are claimed first)")
            out().print(f"{args.host}:{port}")
            stop.wait()
            server.stop(5).wait()
            claimer.stop()
            worker.join(30)
            with lock:
                claimer.run_once()
            err().print(f"stopped: {claimer.claims_made} claim(s) made")
    return 0


# infer --------------------------------------------------------------------------------------------
def run_infer(args: argparse.Namespace) -> int:
    from workers.serving.client import PaidClient, PaymentError

    rows = read_rows(args.input)
    keypair, url = load_key(args), chain_url(args)
    with Node(url) as node, chain_errors(url, who=keypair.ss58_address):
        record = node.chain.model_services.services(args.model_hash)
        if record is None or not record.active:
            raise CliError(f"model {args.model_hash} has no active service (ModelServices.ServiceNotFound)")
        price = int(record.price_per_call)
        channel = args.channel
        if channel is None:
            deposit = node.planck(args.deposit, "--deposit") if args.deposit is not None else 100 * price
            channel = open_channel(node, keypair, args.model_hash, deposit,
                                   int(node.chain.timestamp.now() or 0) + 24 * HOUR_MS)
        state_path = channels_dir() / f"{channel}.json"
        state = json.loads(state_path.read_text()) if state_path.exists() else {}
        client = PaidClient(args.endpoint or record.endpoint.text, args.model_hash, keypair, channel, price,
                            nonce=int(state.get("nonce", 0)), owed=int(state.get("owed", 0)),
                            spent_before=int(state.get("spent_before", 0)))
        try:
            for row in rows:
                outputs = client.infer(row)
                _save(state_path, client)
                out().print(" ".join(str(int(c)) for c in outputs["class"]))
        except PaymentError as exc:
            raise CliError(f"the service refused the payment: {exc}") from None
        finally:
            client.close()
        err().print(f"{len(rows)} call(s) on channel {channel}: {node.fmt(client.spent)} signed in all")
    return 0


def read_rows(path: Path) -> list[Any]:
    import numpy as np

    try:
        array = np.load(path, allow_pickle=False) if path.suffix == ".npy" else np.loadtxt(path, delimiter=",", ndmin=2)
    except (OSError, ValueError) as exc:
        raise CliError(f"cannot read {path}: {exc}") from None
    array = np.atleast_2d(np.asarray(array, dtype=np.float32))
    if array.ndim != 2 or not 1 <= len(array) <= MAX_ROWS:
        raise CliError(f"{path}: expected 1..{MAX_ROWS} rows of numbers, got shape {list(array.shape)}")
    return list(array)


def channels_dir() -> Path:
    home = os.environ.get("PARATRAIN_HOME")
    path = Path(home) / "channels" if home else Path.home() / ".cache" / "paratrain" / "channels"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _save(path: Path, client: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{time.monotonic_ns()}.tmp")
    tmp.write_text(json.dumps({"nonce": client.nonce, "owed": client.owed, "spent_before": client.spent_before}))
    os.replace(tmp, path)


__all__ = ["register"]
