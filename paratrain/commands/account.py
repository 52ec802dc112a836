"""`paratrain account new|show|balance|transfer`."""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from paratrain.cli import CliError
from paratrain.commands.common import (
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


def default_keystore_dir() -> Path:
    return Path(os.environ.get(KEYSTORE_ENV) or Path.home() / ".config" / "paratrain" / "keys")


def register(commands: argparse._SubParsersAction) -> None:
    account = commands.add_parser("account", help="create keys, show balances, transfer tokens")
    sub = account.add_subparsers(dest="account_command", required=True)

    new = sub.add_parser("new", help="generate an sr25519 key (mnemonic) and write it to a keystore file (0600)")
    new.add_argument("--out", type=Path, metavar="FILE",
                     help=f"keystore file to write (default ${KEYSTORE_ENV} or ~/.config/paratrain/keys, "
                          "named by the address)")
    new.add_argument("--type", choices=("sr25519", "ed25519"), default="sr25519", help="key type (default sr25519)")
    new.add_argument("--words", type=int, choices=(12, 15, 18, 21, 24), default=12, help="mnemonic length")
    new.add_argument("--show-secret", action="store_true", help="also print the mnemonic (keep it private)")
    new.add_argument("--force", action="store_true", help="overwrite an existing file")
    new.add_argument("--ss58-format", type=int, default=42, metavar="N", help="address format (default 42)")

    show = sub.add_parser("show", help="the address and public key of a key")
    add_key_argument(show)
    show.add_argument("--ss58-format", type=int, default=42, metavar="N", help="address format (default 42)")

    balance = sub.add_parser("balance", help="free and reserved balance of an account")
    balance.add_argument("address", nargs="?", help="SS58 address (default: the --key's account)")
    add_key_argument(balance, required=False)
    add_chain_argument(balance)

    transfer = sub.add_parser("transfer", help="send tokens (transfer_keep_alive unless --allow-death)")
    transfer.add_argument("dest", help="recipient SS58 address")
    transfer.add_argument("amount", help="amount in the chain's token, e.g. 10 or 0.25")
    add_key_argument(transfer)
    add_chain_argument(transfer)
    transfer.add_argument("--allow-death", action="store_true",
                          help="allow the sender's balance to fall below the existential deposit")


def run(args: argparse.Namespace) -> int:
    return {"new": _new, "show": _show, "balance": _balance, "transfer": _transfer}[args.account_command](args)


def _new(args: argparse.Namespace) -> int:
    from substrateinterface import Keypair, KeypairType

    crypto = KeypairType.SR25519 if args.type == "sr25519" else KeypairType.ED25519
    mnemonic = Keypair.generate_mnemonic(args.words)
    keypair = Keypair.create_from_mnemonic(mnemonic, ss58_format=args.ss58_format, crypto_type=crypto)
    path: Path = args.out or default_keystore_dir() / f"{keypair.ss58_address}.json"
    path = path.expanduser()
    if path.exists() and not args.force:
        raise CliError(f"{path} exists: pass --force to overwrite it")
    password = os.environ.get("PARATRAIN_KEY_PASSWORD")
    if password:  # Polkadot.js-compatible encrypted keystore
        doc = keypair.export_to_encrypted_json(password, name=keypair.ss58_address)
    else:
        doc = {"address": keypair.ss58_address, "type": args.type, "publicKey": "0x" + keypair.public_key.hex(),
               "secretPhrase": mnemonic}
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
    console = out()
    console.print(f"address     {keypair.ss58_address}")
    console.print(f"public key  0x{keypair.public_key.hex()}")
    console.print(f"keystore    {path}" + ("  (encrypted with $PARATRAIN_KEY_PASSWORD)" if password else "  (0600)"))
    if args.show_secret:
        console.print(f"mnemonic    {mnemonic}")
    else:
        err().print("the mnemonic is in the keystore file only; pass --show-secret to print it")
    return 0


def _show(args: argparse.Namespace) -> int:
    from scalecodec.utils.ss58 import ss58_encode

    keypair = load_key(args)
    console = out()
    console.print(f"address     {ss58_encode(keypair.public_key, args.ss58_format)}")
    console.print(f"public key  0x{keypair.public_key.hex()}")
    console.print(f"type        {'sr25519' if keypair.crypto_type == 1 else 'ed25519' if keypair.crypto_type == 0 else 'ecdsa'}")
    return 0


def _balance(args: argparse.Namespace) -> int:
    if args.address:
        address = check_address(args.address)
    else:
        if not (args.key or os.environ.get("PARATRAIN_KEY")):
            raise CliError("give an address or --key")
        address = load_key(args).ss58_address
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
        amount = node.parse_amount(args.amount)
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
