"""The command line for people: `paratrain task|account|model ...` (see docs in each module).

`register_people_commands(subparsers)` adds the commands to the CLI's parser;
`run_people_command(args)` runs one and returns its exit status, or None when `args` is not one
of them. User errors are printed as one line on stderr and give exit status 2, never a traceback.
"""
from __future__ import annotations

import argparse

PEOPLE_COMMANDS = ("task", "account", "model")


def register_people_commands(commands: argparse._SubParsersAction) -> None:
    from paratrain.commands import account, model, task

    task.register(commands)
    account.register(commands)
    model.register(commands)


def run_people_command(args: argparse.Namespace) -> int | None:
    if getattr(args, "command", None) not in PEOPLE_COMMANDS:
        return None
    from rich.markup import escape

    from paratrain.cli import CliError
    from paratrain.commands.common import err

    try:
        if args.command == "task":
            from paratrain.commands import task as module
        elif args.command == "account":
            from paratrain.commands import account as module  # type: ignore[no-redef]
        else:
            from paratrain.commands import model as module  # type: ignore[no-redef]
        return module.run(args)
    except CliError as exc:
        err().print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        err().print("interrupted")
        return 130


__all__ = ["PEOPLE_COMMANDS", "register_people_commands", "run_people_command"]
