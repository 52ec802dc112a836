"""The `paratrain` command line."""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

from rich.console import Console
from rich.markup import escape

# The one routing table: each module's `register(subparsers)` adds its commands, each with
# `set_defaults(run=...)`, and `main` calls that. The modules are light at import (their heavy imports sit
# in the run functions), so `paratrain --help` does not load devnet, torch or Ray.
COMMAND_MODULES = (
    "paratrain.devnet_command",      # devnet
    "paratrain.demo",                # demo
    "paratrain.commands.dataset",    # dataset add|register|buy|serve|fetch|show
    "paratrain.commands.daemons",    # worker, validator, orchestrator
    "paratrain.commands.task",       # task create|list|show|watch|cancel|finalize|challenge
    "paratrain.commands.account",    # account new|show|balance|transfer
    "paratrain.commands.model",      # model show|download
    "paratrain.commands.stake",      # stake register|bond-extra|update-capabilities|unregister|withdraw|show
    "paratrain.commands.fl",         # fl create|join|status|partition|reveal|withdraw, client
    "paratrain.commands.budget",     # budget set|lower|show
    "paratrain.commands.collab",     # collab deploy|add|refund|report|predict|show
    "paratrain.commands.serving",    # serve, infer, service register|show, channel open|extend|reclaim|show
)
EXIT_USAGE, EXIT_INTERRUPTED = 2, 130


class CliError(Exception):
    """A user error: printed as one line, exit status 2, no traceback. Every command raises this one."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="paratrain", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug output")
    commands = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return args.run(args)
    except CliError as exc:
        _stderr().print(f"[red]error:[/red] {escape(str(exc))}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        _stderr().print("interrupted")
        return EXIT_INTERRUPTED


def _stderr() -> Console:
    """Resolved at call time (captured stderr in tests works); soft_wrap: an error stays one line at any
    terminal width."""
    return Console(stderr=True, highlight=False, soft_wrap=True)


if __name__ == "__main__":
    # `python -m paratrain.cli`: run the module under its own name, so that the CliError the commands import
    # (paratrain.cli.CliError) is the one main() catches, not a second copy defined in __main__
    from paratrain import cli

    sys.exit(cli.main())
