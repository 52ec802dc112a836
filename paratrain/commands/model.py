"""`paratrain model show|download`: the on-chain Models record and its verified artifact."""
from __future__ import annotations

import argparse
import os
import re
from pathlib import Path
from typing import Any

from paratrain.cli import CliError
from paratrain.commands.common import (
    Node,
    add_chain_argument,
    add_store_argument,
    chain_errors,
    chain_url,
    err,
    out,
)
from runtime_bindings.values import METRIC_SCALE


def register(commands: argparse._SubParsersAction) -> None:
    model = commands.add_parser("model", help="inspect and download registered models")
    model.set_defaults(run=run)
    sub = model.add_subparsers(dest="model_command", required=True)

    show = sub.add_parser("show", help="the on-chain model record")
    show.add_argument("model_hash", help="the model's content hash (64 hex digits, 0x optional)")
    add_chain_argument(show)

    download = sub.add_parser("download", help="fetch the model's weights by their URI, verified by the hash")
    download.add_argument("model_hash", help="the model's content hash (64 hex digits, 0x optional)")
    download.add_argument("--out", "-o", type=Path, required=True, metavar="FILE", help="where to write the weights")
    download.add_argument("--force", action="store_true", help="overwrite an existing file")
    add_store_argument(download)
    download.add_argument("--trust-store", action="append", default=[], metavar="URI",
                          help="a store the weights may be read from besides --store (the worker's, as the "
                               "model's artifact URI names it); repeat for more; also $PARATRAIN_TRUSTED_STORES")
    add_chain_argument(download)


def run(args: argparse.Namespace) -> int:
    return {"show": _show, "download": _download}[args.model_command](args)


def _hash(value: str) -> str:
    text = value.lower().removeprefix("0x")
    if not re.fullmatch(r"[0-9a-f]{64}", text):
        raise CliError(f"bad model hash {value!r}: expected 64 hex digits")
    return text


def get_model(node: Node, digest: str) -> Any:
    with chain_errors(node.url):
        record = node.chain.models.models("0x" + digest)
    if record is None:
        raise CliError(f"unknown model 0x{digest}: not registered on {node.url}")
    return record


def _show(args: argparse.Namespace) -> int:
    from rich.panel import Panel
    from rich.table import Table

    digest = _hash(args.model_hash)
    url = chain_url(args)
    with Node(url) as node:
        record = get_model(node, digest)
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    metrics = ", ".join(f"{k.text}={v / METRIC_SCALE:g}" for k, v in record.metrics)
    for key, value in (("hash", "0x" + digest), ("owner", record.owner), ("trainer", record.trainer),
                       ("task", str(record.task_id)), ("recipe", record.recipe.text),
                       ("dataset hash", str(record.dataset_hash)),
                       ("parent", str(record.parent) if record.parent else "-"),
                       ("metrics", metrics or "-"), ("artifact", record.artifact_uri.text),
                       ("attestation", str(record.attestation_hash)), ("registered", f"block #{record.block}")):
        grid.add_row(key, value)
    out().print(Panel(grid, title="model", title_align="left", expand=False))
    return 0


def _download(args: argparse.Namespace) -> int:
    from workers.artifacts import ArtifactError, ArtifactIntegrityError, ArtifactStore
    from workers.uri_policy import UriPolicy, roots_from_env

    digest = _hash(args.model_hash)
    path: Path = args.out.expanduser()
    if path.exists() and not args.force:
        raise CliError(f"{path} exists: pass --force to overwrite it")
    url = chain_url(args)
    with Node(url) as node:
        record = get_model(node, digest)
    uri = record.artifact_uri.text
    try:
        store = ArtifactStore(args.store, policy=UriPolicy((*args.trust_store, *roots_from_env())))
        data = store.fetch(uri, digest, keep=True)
    except ArtifactIntegrityError:
        raise CliError(f"the artifact at {uri} does not match the model hash (refused)") from None
    except (ArtifactError, OSError, ValueError) as exc:
        raise CliError(f"cannot fetch the model artifact: {exc}") from None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".part")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc.strerror or exc}") from None
    err().print(f"model 0x{digest[:16]}… ({len(data):,} bytes, hash verified) written to {path}")
    print(path)
    return 0
