"""`paratrain account new|show|balance|transfer`."""
from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from pathlib import Path
from typing import Any

from paratrain import argtypes
from paratrain.cli import CliError
from paratrain.commands.common import (
    address_or_own,
    Node,
    add_chain_argument,
    add_key_argument,
    chain_errors,
    chain_url,
    check_address,
    err,
    load_key,
    out,
)

KEYSTORE_ENV = "PARATRAIN_KEYSTORE"
PLAIN_WARNING = "the keystore is not encrypted: anyone who can read the file holds the key"


def default_keystore_dir() -> Path:
    return Path(os.environ.get(KEYSTORE_ENV) or Path.home() / ".config" / "paratrain" / "keys")


def register(commands: argparse._SubParsersAction) -> None:
    account = commands.add_parser("account", help="create keys, show balances, transfer tokens")
    account.set_defaults(run=run)
    sub = account.add_subparsers(dest="account_command", required=True)

    new = sub.add_parser("new", help="generate a key (from a new mnemonic) and write it to a keystore file (0600), "
                                     "encrypted with a password ($PARATRAIN_KEY_PASSWORD or a prompt)")
    new.add_argument("--out", type=Path, metavar="FILE",
                     help=f"keystore file to write (default ${KEYSTORE_ENV} or ~/.config/paratrain/keys, "
                          "named by the address)")
    new.add_argument("--type", choices=("sr25519", "ed25519"), default="sr25519", help="key type (default sr25519)")
    new.add_argument("--words", type=int, choices=(12, 15, 18, 21, 24), default=12, help="mnemonic length")
    new.add_argument("--show-secret", action="store_true",
                     help="also print the mnemonic (keep it private); an encrypted keystore does not hold it")
    new.add_argument("--no-password", action="store_true",
                     help="write the mnemonic in plain text instead of encrypting the key (development only)")
    new.add_argument("--force", action="store_true", help="overwrite an existing file")
    new.add_argument("--ss58-format", type=argtypes.ss58_format, default=42, metavar="N",
                     help="address format (default 42)")

    show = sub.add_parser("show", help="the address and public key of a key")
    add_key_argument(show)
    show.add_argument("--ss58-format", type=argtypes.ss58_format, default=42, metavar="N",
                      help="address format (default 42)")

    balance = sub.add_parser("balance", help="free and reserved balance of an account")
    balance.add_argument("address", nargs="?", help="SS58 address (default: the --key's account)")
    add_key_argument(balance, required=False)
    add_chain_argument(balance)

    transfer = sub.add_parser("transfer", help="send tokens (transfer_keep_alive unless --allow-death)")
    transfer.add_argument("dest", help="recipient SS58 address")
    transfer.add_argument("amount", type=argtypes.amount, help="amount in the chain's token, e.g. 10 or 0.25")
    add_key_argument(transfer)
    add_chain_argument(transfer)
    transfer.add_argument("--allow-death", action="store_true",
                          help="allow the sender's balance to fall below the existential deposit")


def run(args: argparse.Namespace) -> int:
    return {"new": _new, "show": _show, "balance": _balance, "transfer": _transfer}[args.account_command](args)


def _new(args: argparse.Namespace) -> int:
    from substrateinterface import Keypair, KeypairType

    from workers.keys import encrypt_keystore

    if args.out is not None:  # before the password prompt: typing it twice for nothing would be rude
        _refuse_existing(args.out.expanduser(), args.force)
    password = None if args.no_password else _new_password()
    crypto = KeypairType.SR25519 if args.type == "sr25519" else KeypairType.ED25519
    mnemonic = Keypair.generate_mnemonic(args.words)
    keypair = Keypair.create_from_mnemonic(mnemonic, ss58_format=args.ss58_format, crypto_type=crypto)
    path: Path = (args.out or default_keystore_dir() / f"{keypair.ss58_address}.json").expanduser()
    _refuse_existing(path, args.force)
    if password is None:
        doc: dict[str, Any] = {"address": keypair.ss58_address, "type": args.type,
                               "publicKey": "0x" + keypair.public_key.hex(), "secretPhrase": mnemonic}
    else:
        doc = encrypt_keystore(keypair, password)
    _write_private(path, doc)
    console = out()
    console.print(f"address     {keypair.ss58_address}")
    console.print(f"public key  0x{keypair.public_key.hex()}")
    console.print(f"keystore    {path}  (0600, " + ("not encrypted)" if password is None else "encrypted)"))
    if password is None:
        err().print(f"[yellow]warning:[/yellow] {PLAIN_WARNING}")
    if args.show_secret:
        console.print(f"mnemonic    {mnemonic}")
    elif password is None:
        err().print("the mnemonic is in the keystore file only; pass --show-secret to print it")
    else:
        err().print("the keystore holds the encrypted key, not the mnemonic: keep the file and its password "
                    "(or run with --show-secret to write the mnemonic down)")
    return 0


def _refuse_existing(path: Path, force: bool) -> None:
    if path.exists() and not force:
        raise CliError(f"{path} exists: pass --force to overwrite it")


def _new_password() -> str:
    """The keystore password: $PARATRAIN_KEY_PASSWORD, else asked twice on the terminal. Without a terminal
    there is no one to ask: say how to give one rather than block or write the key unencrypted."""
    from workers.keys import PASSWORD_ENV

    password = os.environ.get(PASSWORD_ENV)
    if password:
        return password
    if not sys.stdin.isatty():
        raise CliError(f"no password to encrypt the keystore with: set ${PASSWORD_ENV}, run it in a terminal "
                       "to be asked, or pass --no-password to write it unencrypted")
    password = getpass.getpass("password for the new keystore: ")
    if not password:
        raise CliError("an empty password encrypts nothing: choose one, or pass --no-password")
    if getpass.getpass("the same password again: ") != password:
        raise CliError("the two passwords differ: nothing was written")
    return password


def _write_private(path: Path, doc: dict[str, Any]) -> None:
    """Write `doc` readable by its owner only: created 0600, never widened by the umask or an old file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            path.unlink()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(doc, f, indent=2)
            f.write("\n")
        os.chmod(path, 0o600)
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc.strerror or exc}") from None


def _show(args: argparse.Namespace) -> int:
    from runtime_bindings.primitives import ss58_encode

    from workers.keys import crypto_name

    keypair = load_key(args)
    console = out()
    console.print(f"address     {ss58_encode(keypair.public_key, args.ss58_format)}")
    console.print(f"public key  0x{keypair.public_key.hex()}")
    console.print(f"type        {crypto_name(keypair)}")
    return 0


def _balance(args: argparse.Namespace) -> int:
    address = address_or_own(args, args.address)
    url = chain_url(args)
    with Node(url) as node, chain_errors(url):
        info = node.chain.system.account(address)
    data = info.data
    console = out()
    console.print(f"account   {address}")
    console.print(f"free      {node.fmt(data.free)}")
    console.print(f"reserved  {node.fmt(data.reserved)}")
    frozen = getattr(data, "frozen", None)
    if frozen is None:
        frozen = max(getattr(data, "misc_frozen", 0) or 0, getattr(data, "fee_frozen", 0) or 0)
    console.print(f"frozen    {node.fmt(frozen)}")
    return 0


def _transfer(args: argparse.Namespace) -> int:
    keypair = load_key(args)
    dest = check_address(args.dest)
    url = chain_url(args)
    with Node(url) as node:
        amount = node.planck(args.amount)
        if amount == 0:
            raise CliError("bad amount: must be more than zero")
        with chain_errors(url, who=keypair.ss58_address):
            balances = node.chain.balances
            if args.allow_death:
                receipt = balances.transfer_allow_death(keypair, dest, amount)
            else:
                receipt = balances.transfer_keep_alive(keypair, dest, amount)
        fee = f", fee {node.fmt(receipt.fee)}" if receipt.fee is not None else ""
        out().print(f"sent {node.fmt(amount)} to {dest} in block #{receipt.block_number}{fee}")
    return 0
