"""`paratrain dataset add`: package a data set into the artifact store, for a task to name by hash and URI."""
from __future__ import annotations

import argparse

from paratrain.cli import CliError


def register(commands: argparse._SubParsersAction) -> None:
    dataset = commands.add_parser("dataset", help="manage data sets in the artifact store")
    dataset_commands = dataset.add_subparsers(dest="dataset_command", required=True)
    add = dataset_commands.add_parser("add", help="package a data set into the artifact store; print its hash and URI")
    add.add_argument("source", help="built-in name (digits, breast_cancer, diabetes, tiny_shakespeare) "
                                    "or a file (.txt, .md, .csv, .npz)")
    add.add_argument("--store", default=None, metavar="URL",
                     help="artifact store: a directory or fsspec URL (default $PARATRAIN_ARTIFACTS "
                          "or ~/.cache/paratrain/artifacts)")
    add.set_defaults(run=run_add)


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
