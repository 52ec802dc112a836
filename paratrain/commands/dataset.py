"""`paratrain dataset add|register|buy|serve|fetch|show`: data sets in the artifact store and as on-chain assets.

`add` packages a data set into the artifact store (its hash and URI, for a task to name). `register` makes it
an asset of pallet Datasets with its license, price and access rule: public, paid (`buy` pays the owner and
grants access) or compute-only (the data never leaves the owner's designated --worker accounts, and tasks on it
must use an allowed --recipe code hash); `show` prints the record and whether an account holds a grant.
`serve` serves the owner's store to signed requests the chain's rule admits (workers/asset_store.py) and
`fetch` is the signed client.
"""
from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path

from paratrain import argtypes
from paratrain.cli import CliError
from paratrain.commands.common import (
    Node,
    add_chain_argument,
    add_key_argument,
    chain_errors,
    chain_url,
    check_address,
    load_key,
    out,
)

ACCESS = ("public", "paid", "compute-only")


def register(commands: argparse._SubParsersAction) -> None:
    dataset = commands.add_parser("dataset", help="data sets: in the artifact store, and as on-chain assets")
    dataset_commands = dataset.add_subparsers(dest="dataset_command", required=True)
    add = dataset_commands.add_parser("add", help="package a data set into the artifact store; print its hash and URI")
    add.add_argument("source", help="built-in name (digits, breast_cancer, diabetes, tiny_shakespeare) "
                                    "or a file (.txt, .md, .csv, .npz)")
    add.add_argument("--store", default=None, metavar="URL",
                     help="artifact store: a directory or fsspec URL (default $PARATRAIN_ARTIFACTS "
                          "or ~/.cache/paratrain/artifacts)")
    add.set_defaults(run=run_add)
    reg = dataset_commands.add_parser("register", help="register a data set's hash as an asset with its access rule")
    reg.add_argument("dataset_hash", type=argtypes.hash32)
    reg.add_argument("--size", type=argtypes.positive, required=True, help="bytes")
    reg.add_argument("--format", default="npz")
    reg.add_argument("--license", required=True)
    reg.add_argument("--access", choices=ACCESS, required=True)
    reg.add_argument("--price", type=argtypes.amount, default=None, help="paid and compute-only: the grant's price")
    reg.add_argument("--recipe", type=argtypes.hash32, action="append", default=[], metavar="CODE_HASH",
                     help="compute-only: an allowed recipe's code hash (repeat)")
    reg.add_argument("--worker", action="append", default=[], metavar="ADDRESS",
                     help="compute-only: a designated worker (repeat)")
    buy = dataset_commands.add_parser("buy", help="pay a paid or compute-only data set's price for a grant")
    buy.add_argument("dataset_hash", type=argtypes.hash32)
    for parser in (reg, buy):
        add_key_argument(parser)
        add_chain_argument(parser)
        parser.set_defaults(run=run_chain)
    serve = dataset_commands.add_parser("serve", help="serve your store's registered data sets to signed requests "
                                                      "the chain's access rules admit")
    serve.add_argument("--store", default=None, metavar="URL", help="the artifact store (default as for add)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=argtypes.port_or_any, default=8002, help="default 8002 (0: any)")
    add_chain_argument(serve)
    serve.set_defaults(run=run_serve)
    fetch = dataset_commands.add_parser("fetch", help="fetch a data set from its owner's server, signed by your key")
    fetch.add_argument("dataset_hash", type=argtypes.hash32)
    fetch.add_argument("--from", dest="source", required=True, metavar="HOST:PORT")
    fetch.add_argument("--out", "-o", type=Path, required=True, metavar="FILE")
    add_key_argument(fetch)
    fetch.set_defaults(run=run_fetch)
    show = dataset_commands.add_parser("show", help="a registered data set; --account: does it hold a grant")
    show.add_argument("dataset_hash", type=argtypes.hash32)
    show.add_argument("--account", default=None, metavar="ADDRESS")
    add_chain_argument(show)
    show.set_defaults(run=run_chain)


def run_add(args: argparse.Namespace) -> int:
    """Prints the hash, then the URI: two lines a script can read."""
    from workers.artifacts import ArtifactStore
    from workers.datasets import DatasetError, add_dataset

    try:
        digest, uri = add_dataset(args.source, ArtifactStore(args.store))
    except DatasetError as exc:
        raise CliError(str(exc)) from None
    print(digest)
    print(uri)
    return 0


def run_serve(args: argparse.Namespace) -> int:
    from concurrent import futures

    import grpc

    from paratrain_api.v1 import asset_pb2_grpc
    from workers.artifacts import ArtifactStore
    from workers.asset_store import AssetServicer, dataset_view

    url = chain_url(args)
    with Node(url) as node, chain_errors(url):
        lock = threading.Lock()

        def read(dataset: str) -> object:
            with lock:
                return dataset_view(node.chain.datasets.datasets(dataset))

        def granted(dataset: str, account: str) -> bool:
            with lock:
                return node.chain.datasets.grants(dataset, account) is not None

        server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        asset_pb2_grpc.add_AssetServiceServicer_to_server(AssetServicer(ArtifactStore(args.store), read, granted),
                                                          server)
        port = server.add_insecure_port(f"{args.host}:{args.port}")
        if port == 0:
            raise CliError(f"cannot listen on {args.host}:{args.port}")
        server.start()
        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        out().print(f"{args.host}:{port}")
        stop.wait()
        server.stop(5).wait()
    return 0


def run_fetch(args: argparse.Namespace) -> int:
    import grpc

    from workers.asset_store import fetch_dataset

    keypair = load_key(args)
    try:
        data = fetch_dataset(args.source, args.dataset_hash, keypair)
    except grpc.RpcError as exc:
        raise CliError(f"{args.source} refused the fetch: {exc.code().name}: {exc.details()}") from None
    except ValueError as exc:
        raise CliError(str(exc)) from None
    args.out.write_bytes(data)
    out().print(f"{len(data)} bytes of {args.dataset_hash} written to {args.out}")
    return 0


def access_rule(args: argparse.Namespace) -> object:
    from runtime_bindings.generated import types as t
    from runtime_bindings.values import H256

    if args.access != "compute-only" and (args.recipe or args.worker):
        raise CliError("--recipe and --worker are for --access compute-only")
    if args.access == "public":
        return t.Access.Public
    if args.access == "paid":
        return t.Access.Paid
    if not args.recipe or not args.worker:
        raise CliError("--access compute-only needs at least one --recipe and one --worker (Datasets.InvalidTerms)")
    return t.Access.ComputeOnly(recipes=[H256.from_value(r) for r in args.recipe],
                                workers=[check_address(w) for w in args.worker])


def run_chain(args: argparse.Namespace) -> int:
    url = chain_url(args)
    if args.dataset_command == "show":
        return _show(args, url)
    keypair = load_key(args)
    with Node(url) as node, chain_errors(url, who=keypair.ss58_address):
        datasets = node.chain.datasets
        if args.dataset_command == "buy":
            receipt = datasets.buy_access(keypair, args.dataset_hash)
            event = next(e for e in receipt.events if e.name == "AccessBought")
            out().print(f"access to {args.dataset_hash} bought for {node.fmt(int(event.price))} in block "
                        f"#{receipt.block_number}")
            return 0
        from runtime_bindings.values import Bytes

        access = access_rule(args)
        if args.access == "public" and args.price is not None:
            raise CliError("a public data set has no price: drop --price")
        if args.access != "public" and args.price is None:
            raise CliError(f"--access {args.access} needs --price")
        price = node.planck(args.price, "--price") if args.price is not None else 0
        receipt = datasets.register(keypair, args.dataset_hash, args.size, Bytes(args.format.encode()),
                                    Bytes(args.license.encode()), price, access)
        out().print(f"data set {args.dataset_hash} registered ({args.access}"
                    + (f", {node.fmt(price)}" if price else "") + f") in block #{receipt.block_number}")
    return 0


def _show(args: argparse.Namespace, url: str) -> int:
    with Node(url) as node, chain_errors(url):
        record = node.chain.datasets.datasets(args.dataset_hash)
        if record is None:
            raise CliError(f"data set {args.dataset_hash} is not registered (Datasets.DatasetNotFound)")
        access = record.access
        rows = [("data set", args.dataset_hash), ("owner", str(record.owner)), ("size", f"{record.size} bytes"),
                ("format", record.format.text), ("license", record.license.text), ("access", access.VARIANT),
                ("price", node.fmt(int(record.price))), ("grants", str(record.grants)),
                ("retired", str(bool(record.retired)))]
        if access.VARIANT == "ComputeOnly":
            rows += [("recipes", ", ".join(str(r) for r in access.recipes)),
                     ("workers", ", ".join(str(w) for w in access.workers))]
        if args.account:
            account = check_address(args.account)
            granted = node.chain.datasets.grants(args.dataset_hash, account)
            rows.append(("grant", f"{account}: " + (f"since block #{granted}" if granted is not None else "none")))
    for key, value in rows:
        out().print(f"{key:<9} {value}")
    return 0
