"""Argument types shared by every paratrain command, and the key options every signing command takes.

Each type is an argparse `type=`: it returns the value or raises argparse.ArgumentTypeError with a one-line
reason, which argparse prints under the usage line with exit status 2. The widths are the runtime's own
(TaskId u64, BlockNumber u32, Balance u128 with 12 decimals; tests/unit/test_argtypes.py checks them against
the metadata), so a value the chain could not hold is refused before anything connects or is stored, rather
than failing in the SCALE encoder with a traceback. Only ASCII digits make numbers: int() and float() also take
other scripts' digits, '1_000' and surrounding blanks, none of which a command line needs, and 'nan'/'inf',
which no argument here can use.
"""
from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable
from typing import NamedTuple

U32_MAX = 2**32 - 1
U64_MAX = 2**64 - 1
I64_MAX = 2**63 - 1
U128_MAX = 2**128 - 1
BALANCE_DECIMALS = 12  # pallet_balances' Balance: u128 planck, 10^12 planck to the token
SS58_FORMAT_MAX = 16383  # the largest network id an SS58 address can carry

_INTEGER = re.compile(r"-?[0-9]+")
_FLOAT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_DIGITS = r"[0-9](?:_?[0-9])*"
_AMOUNT = re.compile(rf"(?P<whole>{_DIGITS})?(?:\.(?P<frac>{_DIGITS})?)?(?:[eE](?P<exp>[+-]?[0-9]+))?"
                     rf"(?:\s*(?P<symbol>[A-Za-z]{{1,16}}))?")
_SHOWN = 40  # characters of a refused value echoed back: a pasted megabyte must not become the message


def shown(value: str) -> str:
    """The value as a message quotes it: repr (so a newline cannot split the line), cut short."""
    text = repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 2] + "…'"


# Integers ----------------------------------------------------------------------------------------
def integer(what: str, low: int, high: int) -> Callable[[str], int]:
    """An argparse type for integers in [low, high]; `what` names the quantity in the refusal."""

    def parse(value: str) -> int:
        if not _INTEGER.fullmatch(value):
            raise argparse.ArgumentTypeError(f"not an integer: {shown(value)}")
        digits = value.lstrip("-").lstrip("0")
        # no int() of a huge digit string: it is slow, and refused past 4300 digits anyway
        number = int(digits or "0") * (-1 if value.startswith("-") else 1) if len(digits) <= 40 else None
        if number is None or not low <= number <= high:
            raise argparse.ArgumentTypeError(f"{shown(value)} is out of range for {what} ({low} to {high})")
        return number

    parse.__name__ = what.replace(" ", "_")
    return parse


task_id = integer("a task id", 0, U64_MAX)  # TaskBounties' TaskId
block_count = integer("a number of blocks", 1, U32_MAX)  # deadlines and margins are BlockNumber (u32) offsets
block_number = integer("a block number", 0, U32_MAX)
count = integer("a count", 1, U32_MAX)  # quorums, CPUs, checkpoint intervals: u32 on chain
count_or_zero = integer("a count", 0, U32_MAX)
megabytes = integer("a size in MiB", 0, U64_MAX)  # Requirements.min_memory_mb is u64
memory_mb = integer("a memory size in MiB", 1, U64_MAX)  # Capabilities.memory_mb: u64; the worker API refuses 0
seed = integer("a seed", 0, I64_MAX)  # a TaskSpec seed is in [0, 2^63)
port = integer("a port", 1, 65535)
port_or_off = integer("a port (0: off)", 0, 65535)
port_or_any = integer("a port (0: any free port)", 0, 65535)
ss58_format = integer("an SS58 address format", 0, SS58_FORMAT_MAX)
# for options with no chain type of their own: the widest integer the runtime stores
positive = integer("a positive integer", 1, U64_MAX)
non_negative = integer("an integer of zero or more", 0, U64_MAX)


def hash32(value: str) -> str:
    """A 32-byte content hash (a model's, a data set's, a recipe's code): 64 hex digits, 0x optional; returned
    as lowercase 0x-hex, the form the bindings take."""
    text = value.strip().lower().removeprefix("0x")
    if not re.fullmatch(r"[0-9a-f]{64}", text):
        raise argparse.ArgumentTypeError(f"not a 32-byte hash: {shown(value)} (expected 64 hex digits)")
    return "0x" + text


# Reals -------------------------------------------------------------------------------------------
def _real(value: str) -> float:
    if not _FLOAT.fullmatch(value):
        raise argparse.ArgumentTypeError(f"not a number: {shown(value)}")
    number = float(value)
    if not math.isfinite(number):
        raise argparse.ArgumentTypeError(f"{shown(value)} is too large")
    return number + 0.0  # -0.0 becomes 0.0


def seconds(value: str) -> float:
    """A duration of zero or more seconds (a wait that may be skipped)."""
    number = _real(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"{shown(value)} is negative: a duration is zero or more seconds")
    return number


def timeout(value: str) -> float:
    """A positive number of seconds: a limit of zero would stop before anything happened."""
    number = _real(value)
    if number <= 0:
        raise argparse.ArgumentTypeError(f"{shown(value)} is not a positive number of seconds")
    return number


def tolerance(value: str) -> float:
    """An absolute tolerance on a metric: zero or more, and finite (nan would accept everything)."""
    number = _real(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"{shown(value)} is negative: a tolerance is zero or more")
    return number


def metric_value(value: str) -> float:
    """An evaluation target: the chain stores it in millionths as an i64."""
    number = _real(value)
    if abs(number) * 1_000_000 >= 2.0**63:  # no round(): a product that overflows to inf would raise
        raise argparse.ArgumentTypeError(f"{shown(value)} is out of range for a metric value "
                                         f"(at most {I64_MAX / 1_000_000:.0f} either way)")
    return number


MODEL_VALUE_MAX = 1000.0   # CollaborativeModels' MaxValue: 10^12 in its fixed point of 10^9 a unit


def model_value(value: str) -> float:
    """A collaborative model's parameter (an intercept): at most MaxValue either way."""
    number = _real(value)
    if abs(number) > MODEL_VALUE_MAX:
        raise argparse.ArgumentTypeError(f"{shown(value)} is beyond +-{MODEL_VALUE_MAX:g} (CollaborativeModels' "
                                         "MaxValue)")
    return number


def model_rate(value: str) -> float:
    """A collaborative model's learning rate or smoothing: above 0 and at most MaxValue."""
    number = model_value(value)
    if number <= 0:
        raise argparse.ArgumentTypeError(f"{shown(value)} is not above 0")
    return number


# Token amounts -----------------------------------------------------------------------------------
class Amount(NamedTuple):
    """A token amount in planck; `symbol` is the token named after the number, if any, for the command to
    check against the chain's (the parser cannot know it)."""

    planck: int
    symbol: str | None


def amount(value: str) -> Amount:
    """'10', '0.5', '1_000', '2.5e3', '2.5 PARA': a Balance, refused unless it is exact in planck and fits a
    u128. Computed in integers: a float would round, and Decimal traps on exponents such as 1e999999999."""
    text = value.strip()
    if text.startswith("-"):
        raise argparse.ArgumentTypeError(f"{shown(value)} is negative: an amount is zero or more")
    match = _AMOUNT.fullmatch(text)
    if not match or not (match["whole"] or match["frac"]):
        raise argparse.ArgumentTypeError(f"not an amount: {shown(value)} (expected tokens, e.g. 10 or 0.5)")
    frac = (match["frac"] or "").replace("_", "")
    digits = ((match["whole"] or "").replace("_", "") + frac).lstrip("0")
    significant = digits.rstrip("0")
    if not significant:
        return Amount(0, match["symbol"])
    exp = match["exp"] or "0"
    # an exponent past a few digits is out of range whatever the digits are: no 10**huge is ever computed
    power = (int(exp) if len(exp.lstrip("+-")) <= 6 else (-1 if exp.startswith("-") else 1) * 10**7) \
        + len(digits) - len(significant) - len(frac) + BALANCE_DECIMALS
    if power < 0:
        raise argparse.ArgumentTypeError(f"{shown(value)} has more than {BALANCE_DECIMALS} decimals")
    if len(significant) + power > len(str(U128_MAX)) or int(significant) * 10**power > U128_MAX:
        raise argparse.ArgumentTypeError(f"{shown(value)} is more than a balance can hold ({U128_MAX} planck)")
    return Amount(int(significant) * 10**power, match["symbol"])


# Keys --------------------------------------------------------------------------------------------
def add_key_arguments(parser: argparse.ArgumentParser, whose: str) -> None:
    """--key-file and --key (one of them, or $PARATRAIN_KEY; workers.keys.key_source picks): one definition,
    so that every command reads secrets the same way and says the same about a secret in argv."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--key-file", metavar="PATH",
                       help=f"{whose}: a keystore JSON file (Polkadot.js format; password from "
                            "$PARATRAIN_KEY_PASSWORD or a prompt) or a file holding a secret URI "
                            "(default $PARATRAIN_KEY)")
    group.add_argument("--key", metavar="KEY",
                       help="a keystore JSON file; or, for development only, a secret URI such as //Alice, a "
                            "mnemonic or 0x seed (other local users can read it in ps: a warning says so)")


# Fractions ---------------------------------------------------------------------------------------
PERBILL = 1_000_000_000  # sp_arithmetic's Perbill: parts per billion, a u32
_DECIMAL = re.compile(r"(?P<whole>[0-9]+)?(?:\.(?P<frac>[0-9]*))?(?P<percent>%)?")


def perbill(what: str, *, allow_zero: bool) -> Callable[[str], int]:
    """An argparse type for a fraction of one ('0.7', '70%', '1') as the chain's Perbill, exact: a fraction
    finer than a billionth is refused rather than rounded (the chain would hold another value)."""

    def parse(value: str) -> int:
        match = _DECIMAL.fullmatch(value)
        if not match or not (match["whole"] or match["frac"]):
            raise argparse.ArgumentTypeError(f"not a fraction: {shown(value)} (expected e.g. 0.7 or 70%)")
        whole = (match["whole"] or "").lstrip("0")
        frac = (match["frac"] or "").rstrip("0")
        scale = 7 if match["percent"] else 9  # decimals a Perbill can hold
        if len(frac) > scale:
            raise argparse.ArgumentTypeError(f"{shown(value)} is finer than a billionth: {what} is a Perbill")
        units = int(whole or "0") if len(whole) <= 12 else PERBILL + 1  # no int() of a huge digit string
        parts = units * 10**scale + int(frac.ljust(scale, "0") or "0")
        low = 0 if allow_zero else 1
        if not low <= parts <= PERBILL:
            bound = "0 to 1" if allow_zero else "above 0, at most 1"
            raise argparse.ArgumentTypeError(f"{shown(value)} is out of range for {what} ({bound})")
        return parts

    parse.__name__ = what.replace(" ", "_")
    return parse


fraction = perbill("a fraction of the clients", allow_zero=False)  # FlTaskSpec.fraction_per_round
share = perbill("a share of the reward", allow_zero=True)           # FlTaskSpec.client_share
audit_rate = perbill("an audit rate", allow_zero=False)              # SecAggSpec.audit_rate


def concentration(value: str) -> float:
    """A Dirichlet concentration alpha: positive and finite (0 would give every class to one client)."""
    number = _real(value)
    if number <= 0:
        raise argparse.ArgumentTypeError(f"{shown(value)} is not positive: alpha is a positive number")
    return number


def probability(value: str) -> float:
    """A fraction strictly between 0 and 1 (a holdout share: neither side may be empty)."""
    number = _real(value)
    if not 0 < number < 1:
        raise argparse.ArgumentTypeError(f"{shown(value)} is not between 0 and 1 (both excluded)")
    return number


def positive_real(value: str) -> float:
    """A finite number above 0 (a norm bound, a quantization range)."""
    number = _real(value)
    if number <= 0:
        raise argparse.ArgumentTypeError(f"{shown(value)} is not a number above 0")
    return number
