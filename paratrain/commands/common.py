"""What the people's commands share: connecting, keys, token amounts, and turning errors into one line."""
from __future__ import annotations

import argparse
import contextlib
import getpass
import os
import re
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any, Self

from rich.console import Console
from rich.markup import escape

from paratrain.argtypes import BALANCE_DECIMALS, Amount, add_key_arguments
from paratrain.cli import CliError
from paratrain_api.endpoints import CHAIN_ENV, DEFAULT_CHAIN_URL

DEFAULT_ORCHESTRATOR = "127.0.0.1:50051"
ORCH_ENV = "PARATRAIN_ORCHESTRATOR"


def out() -> Console:
    """stdout (resolved at call time, so redirected/captured output works)."""
    return Console(highlight=False, soft_wrap=True)


def err() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


# Arguments ----------------------------------------------------------------------------------------
def add_chain_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--chain", metavar="URL", default=None,
                        help=f"node WebSocket URL (default ${CHAIN_ENV} or {DEFAULT_CHAIN_URL})")


def add_key_argument(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    add_key_arguments(parser, "the signing key" if required else "the account's key (optional)")


def add_orchestrator_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--orchestrator", metavar="HOST:PORT", default=None,
                        help=f"orchestrator gRPC address (default ${ORCH_ENV} or {DEFAULT_ORCHESTRATOR})")


def add_store_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", default=None, metavar="URL",
                        help="artifact store: a directory or fsspec URL (default $PARATRAIN_ARTIFACTS "
                             "or ~/.cache/paratrain/artifacts)")


def chain_url(args: argparse.Namespace) -> str:
    return getattr(args, "chain", None) or os.environ.get(CHAIN_ENV) or DEFAULT_CHAIN_URL


def orchestrator_target(args: argparse.Namespace) -> str:
    target = getattr(args, "orchestrator", None) or os.environ.get(ORCH_ENV) or DEFAULT_ORCHESTRATOR
    if not re.fullmatch(r"[\w.\-\[\]:]+:\d+", target):
        raise CliError(f"bad --orchestrator {target!r}: expected HOST:PORT")
    return target


# Keys ---------------------------------------------------------------------------------------------
def key_given(args: argparse.Namespace) -> bool:
    """Whether the options or the environment name a key (for commands where one is optional)."""
    from workers.keys import KEY_ENV

    return bool(getattr(args, "key", None) or getattr(args, "key_file", None) or os.environ.get(KEY_ENV))


def load_key(args: argparse.Namespace) -> Any:
    """The signing keypair from --key-file, --key or $PARATRAIN_KEY; a secret in argv is warned about, and an
    encrypted keystore asks for its password when there is a terminal to ask on."""
    from workers.keys import COMMAND_LINE_WARNING, KeyLoadError, key_source, load_key_source

    try:
        source = key_source(getattr(args, "key", None), getattr(args, "key_file", None))
        if source.secret_in_argv:
            err().print(f"[yellow]warning:[/yellow] {escape(COMMAND_LINE_WARNING)}")
        return load_key_source(source, ask_password=_ask_password if sys.stdin.isatty() else None)
    except KeyLoadError as exc:
        raise CliError(f"bad key: {exc}") from None


def _ask_password(path: Path) -> str:
    return getpass.getpass(f"password for {path}: ")


def check_address(address: str, ss58_format: int | None = None) -> str:
    from runtime_bindings.primitives import ss58_decode, ss58_encode

    try:
        public = ss58_decode(address)
    except Exception:  # noqa: BLE001 - scalecodec raises ValueError and others
        raise CliError(f"not a valid address: {address!r}") from None
    return ss58_encode(public, ss58_format) if ss58_format is not None else address


def address_or_own(args: argparse.Namespace, address: str | None, noun: str = "address") -> str:
    """The address given, checked, or else the caller's own from its key: the commands that read an account
    (balance, stake show) default to the caller's."""
    if address:
        return check_address(address)
    if not key_given(args):
        raise CliError(f"give an {noun}, --key-file or --key")
    return str(load_key(args).ss58_address)


def plural(count: int, noun: str) -> str:
    """`count` and `noun`, with an s unless the count is one: "1 block", "3 blocks"."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


# The chain ----------------------------------------------------------------------------------------
class Node:
    """A Chain plus what the commands need from it: the token's symbol and decimals."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        from runtime_bindings import Chain

        self.url = url
        if not re.match(r"^wss?://", url):
            raise CliError(f"bad --chain {url!r}: expected a ws:// or wss:// URL")
        with chain_errors(url):
            self.chain = Chain.connect(url, timeout=timeout)
            answer = self.chain.rpc("system_properties")
        props = answer if isinstance(answer, dict) else {}
        self.decimals = _first(props.get("tokenDecimals"), 12)
        self.symbol = str(_first(props.get("tokenSymbol"), "UNIT"))
        self.ss58_format = _first(props.get("ss58Format"), 42)

    def close(self) -> None:
        self.chain.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # Amounts ------------------------------------------------------------------------------------
    def planck(self, amount: Amount, what: str = "amount") -> int:
        """An amount parsed by argtypes.amount, checked against this chain's token (its symbol, if one was
        written, and its decimals, which the parser assumed)."""
        if amount.symbol is not None and amount.symbol.upper() != self.symbol.upper():
            raise CliError(f"bad {what}: this chain's token is {self.symbol}, not {amount.symbol}")
        if self.decimals != BALANCE_DECIMALS:
            raise CliError(f"the chain at {self.url} reports {self.decimals} token decimals; paratrain's amounts "
                           f"have {BALANCE_DECIMALS}")
        return amount.planck

    def fmt(self, planck: int) -> str:
        return format_amount(planck, self.decimals, self.symbol)


def format_amount(planck: int, decimals: int, symbol: str) -> str:
    value = Decimal(int(planck)) / (Decimal(10) ** decimals)
    text = f"{value:,.{decimals}f}".rstrip("0").rstrip(".") if decimals else f"{value:,}"
    return f"{text} {symbol}"


def _first(value: Any, default: Any) -> Any:
    if isinstance(value, list):
        return value[0] if value else default
    return default if value is None else value


def short(address: str | None, full: bool = False) -> str:
    if not address:
        return "-"
    return address if full or len(address) <= 16 else f"{address[:6]}…{address[-4:]}"


# Errors -------------------------------------------------------------------------------------------
def _reason(exc: BaseException) -> str:
    text = str(exc)
    low = text.lower()
    if "refused" in low:
        return "connection refused"
    if "timed out" in low or "timeout" in low:
        return "timed out"
    if "name or service not known" in low or "nodename nor servname" in low or "getaddrinfo" in low:
        return "unknown host"
    return re.sub(r"^cannot (re)?connect to \S+: ", "", text)


@contextlib.contextmanager
def chain_errors(url: str, *, who: str | None = None) -> Iterator[None]:
    """Turn the bindings' typed exceptions into one-line CliErrors."""
    from runtime_bindings import (
        BindingsError,
        ConnectionLost,
        DispatchError,
        InvalidTransaction,
        ModuleError,
        RpcError,
        SubmitTimeout,
        TokenError,
    )

    try:
        yield
    except CliError:
        raise
    except ConnectionLost as exc:
        raise CliError(f"cannot reach the node at {url}: {_reason(exc)}") from None
    except InvalidTransaction as exc:
        if exc.kind == "Payment":
            raise CliError("insufficient balance: " + (who or "the signer")
                           + " cannot pay the transaction fee") from None
        if exc.kind in ("Stale", "Future"):
            raise CliError(f"the node refused the transaction ({exc.kind.lower()} nonce): try again") from None
        raise CliError(f"the node refused the transaction: invalid ({exc.kind})") from None
    except ModuleError as exc:
        if exc.name in ("InsufficientBalance", "Expendability", "LiquidityRestrictions"):
            detail = "the reserve would leave less than the existential deposit" \
                if exc.name == "Expendability" else "not enough free funds"
            raise CliError(f"insufficient balance: {detail} ({exc.pallet}.{exc.name})") from None
        docs = f": {exc.docs}" if exc.docs else ""
        raise CliError(f"the chain refused it: {exc.pallet}.{exc.name}{docs}") from None
    except TokenError as exc:
        if exc.detail in ("FundsUnavailable", "BelowMinimum", "NotExpendable"):
            raise CliError(f"insufficient balance ({exc.error_name})") from None
        raise CliError(f"the chain refused it: {exc.error_name}") from None
    except DispatchError as exc:
        raise CliError(f"the chain refused it: {exc.error_name}") from None
    except SubmitTimeout as exc:
        raise CliError(f"{exc} (it may still be included later)") from None
    except RpcError as exc:
        raise CliError(f"the node at {url} refused the request: {exc.message or exc}") from None
    except BindingsError as exc:
        raise CliError(f"chain error: {exc}") from None
    except (ConnectionError, OSError) as exc:
        raise CliError(f"cannot reach the node at {url}: {_reason(exc)}") from None


@contextlib.contextmanager
def orchestrator_errors(target: str) -> Iterator[None]:
    from orchestrator import errors

    try:
        yield
    except CliError:
        raise
    except errors.Unavailable as exc:
        raise CliError(f"cannot reach the orchestrator at {target}: {_reason(exc) or 'unavailable'}") from None
    except errors.NotFound as exc:
        raise CliError(f"the orchestrator at {target}: {exc}") from None
    except errors.ApiError as exc:
        raise CliError(f"the orchestrator at {target} refused the request: {exc}") from None
