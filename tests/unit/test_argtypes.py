"""The shared argument types: their ranges are the runtime's own widths, every refusal is one line, and every
numeric option of the real `paratrain` parser uses them (or is bounded by choices).

The property tests throw strings at every type (random text, numbers at and past each bound, 2^64, 2^128,
1e400, nan, inf, -0, '', huge digit strings, other scripts' digits): each either parses to a value in range
or raises argparse.ArgumentTypeError with a one-line message; nothing else escapes.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import math
from collections.abc import Callable, Iterator
from decimal import Decimal, localcontext
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paratrain import argtypes
from paratrain.cli import build_parser

U32, U64, U128 = 2**32 - 1, 2**64 - 1, 2**128 - 1

# every integer type and its range: pinned here, so that a changed width fails a test
INTEGERS: dict[str, tuple[int, int]] = {
    "task_id": (0, U64), "block_count": (1, U32), "block_number": (0, U32), "count": (1, U32),
    "count_or_zero": (0, U32), "megabytes": (0, U64), "seed": (0, 2**63 - 1), "port": (1, 65535),
    "port_or_off": (0, 65535), "port_or_any": (0, 65535), "ss58_format": (0, 16383), "positive": (1, U64), "non_negative": (0, U64),
}
REALS = ("seconds", "timeout", "tolerance", "metric_value", "model_value", "model_rate")
EXTREMES = ["", " ", "-", "+", "-0", "+0", "0", "00", "-1", "1", "nan", "NaN", "inf", "-inf", "Infinity", "1e400",
            "-1e400", "1e-400", "1e308", "1e309", "0x10", "1_000", " 5", "5 ", "1.5", "1.", ".5", "١٢٣", "１２", "5\n",
            "\u00b2", "9" * 5000, "0" * 5000 + "1", "1" + "0" * 5000, "-" + "9" * 5000, "1e" + "9" * 50,
            str(2**32), str(2**32 - 1), str(2**63), str(2**64), str(2**64 - 1), str(2**128), str(2**128 - 1),
            str(2**128 + 1), str(-(2**63)), "1e" + "-9" * 3]
NUMBERS = st.one_of(st.integers(min_value=-(2**130), max_value=2**130).map(str),
                    st.floats(allow_nan=True, allow_infinity=True).map(repr),
                    st.decimals(allow_nan=False, allow_infinity=False).map(str))
ANY_TEXT = st.one_of(st.text(max_size=60), st.text(alphabet="0123456789.-+eE_ PARA", max_size=60), NUMBERS,
                     st.sampled_from(EXTREMES))


def boundaries(low: int, high: int) -> list[str]:
    return [str(v) for v in (low - 1, low, low + 1, high - 1, high, high + 1, -high, high * 10)]


@contextlib.contextmanager
def one_line_refusal() -> Iterator[None]:
    """The only failure allowed: ArgumentTypeError with a non-empty single line that is not a novel."""
    try:
        yield
    except argparse.ArgumentTypeError as exc:
        message = str(exc)
        assert message and "\n" not in message and "\r" not in message and len(message) < 200, message
        assert not any(ch in message for ch in "\u2028\u2029\x85\x0b\x0c"), message


# Integers ----------------------------------------------------------------------------------------
def check_integer(name: str, text: str) -> None:
    low, high = INTEGERS[name]
    with one_line_refusal():
        value = getattr(argtypes, name)(text)
        assert type(value) is int and low <= value <= high
        assert text.isascii() and value == int(text.lstrip("0") or "0")  # what it says, in ASCII digits


@pytest.mark.parametrize("name", INTEGERS)
def test_integer_bounds_are_exact(name: str) -> None:
    parse, (low, high) = getattr(argtypes, name), INTEGERS[name]
    assert (parse(str(low)), parse(str(high))) == (low, high)
    for outside in (low - 1, high + 1):
        with pytest.raises(argparse.ArgumentTypeError, match=f"out of range .*{low} to {high}"):
            parse(str(outside))
    for value in boundaries(low, high) + EXTREMES:
        check_integer(name, value)


@settings(max_examples=300, deadline=None)
@given(name=st.sampled_from(sorted(INTEGERS)), text=ANY_TEXT)
def test_integers_parse_in_range_or_refuse_in_one_line(name: str, text: str) -> None:
    check_integer(name, text)


def test_other_scripts_digits_and_python_literals_are_refused() -> None:
    for text in ("١٢٣", "１２", "1_000", " 5", "0x10", "5\n"):
        with pytest.raises(argparse.ArgumentTypeError, match="^not an integer"):
            argtypes.count(text)


def test_a_huge_value_is_quoted_short() -> None:
    with pytest.raises(argparse.ArgumentTypeError) as refused:
        argtypes.task_id("9" * 100_000)
    assert len(str(refused.value)) < 120 and "…" in str(refused.value)


# Reals -------------------------------------------------------------------------------------------
def check_real(name: str, text: str) -> None:
    with one_line_refusal():
        value = getattr(argtypes, name)(text)
        assert type(value) is float and math.isfinite(value) and text.isascii()
        assert math.copysign(1, value) == 1 or value < 0  # never -0.0
        if name in ("seconds", "tolerance"):
            assert value >= 0
        elif name == "timeout":
            assert value > 0
        else:
            assert abs(round(value * 1_000_000)) < 2**63  # fits eval_target (i64 millionths)


@settings(max_examples=300, deadline=None)
@given(name=st.sampled_from(REALS), text=ANY_TEXT)
def test_reals_parse_finite_or_refuse_in_one_line(name: str, text: str) -> None:
    check_real(name, text)


@pytest.mark.parametrize("name", REALS)
def test_reals_extremes(name: str) -> None:
    for text in EXTREMES + ["9.3e12", "-9.3e12", "9.2e12", "1e-9", "0.0", "-0.0"]:
        check_real(name, text)


@pytest.mark.parametrize("parse, text, reason", [
    (argtypes.seconds, "-0.1", "is negative"), (argtypes.seconds, "1e400", "is too large"),
    (argtypes.seconds, "nan", "^not a number"), (argtypes.timeout, "0", "not a positive number of seconds"),
    (argtypes.timeout, "-0", "not a positive number"), (argtypes.timeout, "inf", "^not a number"),
    (argtypes.metric_value, "1e13", "out of range for a metric value"),
    (argtypes.tolerance, "-0.01", "is negative"), (argtypes.tolerance, "nan", "^not a number"),
])
def test_reals_refused_with_a_reason(parse: Callable[[str], float], text: str, reason: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=reason):
        parse(text)


def test_reals_accepted() -> None:
    assert (argtypes.seconds("0"), argtypes.seconds("-0"), argtypes.timeout("0.5"), argtypes.metric_value("-2.5")) \
        == (0.0, 0.0, 0.5, -2.5)
    assert math.copysign(1, argtypes.seconds("-0")) == 1


# Amounts -----------------------------------------------------------------------------------------
def exact_planck(text: str) -> Decimal:
    """The reference: the amount's exact value in planck (the number part, symbol dropped)."""
    number = text.strip().rstrip("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz").strip().replace("_", "")
    with localcontext() as ctx:
        ctx.prec, ctx.Emax, ctx.Emin = 400, 10**6, -(10**6)
        return Decimal(number) * Decimal(10) ** 12


def check_amount(text: str) -> None:
    with one_line_refusal():
        value = argtypes.amount(text)
        assert 0 <= value.planck <= U128 and exact_planck(text) == value.planck


@settings(max_examples=400, deadline=None)
@given(text=st.one_of(ANY_TEXT, st.decimals(min_value=0, max_value=Decimal(10) ** 30, places=14).map(str),
                      st.integers(min_value=0, max_value=2**129).map(lambda n: f"{n // 10**12}.{n % 10**12:012d}")))
def test_amounts_are_exact_planck_or_refused_in_one_line(text: str) -> None:
    check_amount(text)


def test_amount_extremes() -> None:
    biggest = f"{U128 // 10**12}.{U128 % 10**12:012d}"
    assert argtypes.amount(biggest).planck == U128
    assert argtypes.amount("2.5 PARA") == argtypes.Amount(2_500_000_000_000, "PARA")
    assert argtypes.amount("1e-12").planck == 1 and argtypes.amount("1_000.5").planck == 1_000_500_000_000_000
    for text in EXTREMES + [biggest, biggest + "1", "1e27", "1e400", "1e999999999", "0e999999999", "1e-13",
                            "0.0000000000001", "1.0000000000000", str(2**128), "-0"]:
        check_amount(text)


@pytest.mark.parametrize("text, reason", [
    ("1e400", "more than a balance can hold"), (str(2**128), "more than a balance can hold"),
    ("340282366920938463463374607.431768211456", "more than a balance can hold"),
    ("0.0000000000001", "more than 12 decimals"), ("-1", "is negative"), ("nan", "^not an amount"),
    ("inf", "^not an amount"), ("", "^not an amount"), ("١", "^not an amount"),
])
def test_amounts_refused_with_a_reason(text: str, reason: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=reason):
        argtypes.amount(text)


# The widths are the runtime's ---------------------------------------------------------------------
def test_widths_match_the_runtime_metadata() -> None:
    from devnet.metadata import encode_metadata
    from devnet.runtime.runtime import Runtime
    from runtime_bindings.metadata import MetadataIndex, decode_metadata

    md = MetadataIndex(decode_metadata(encode_metadata(Runtime())))

    def primitive(type_id: int) -> str:
        definition = md.types[type_id]["def"]
        return primitive(definition["compact"]["type"]) if "compact" in definition else definition["primitive"]

    def arg(pallet: str, call: str, name: str) -> str:
        return primitive(md.call_arg_type(pallet, call, name))

    spec = md.types[md.call_arg_type("TaskBounties", "create_task", "spec")]["def"]["composite"]["fields"]
    requirements = md.types[next(f["type"] for f in spec if f["name"] == "requirements")]["def"]["composite"]
    widths = {f["name"]: primitive(f["type"]) for f in requirements["fields"]}
    widths["eval_target"] = primitive(next(f["type"] for f in spec if f["name"] == "eval_target"))
    assert arg("TaskBounties", "cancel_task", "task_id") == "u64" and INTEGERS["task_id"] == (0, U64)
    assert arg("TaskBounties", "create_task", "deadline") == "u32" and INTEGERS["block_number"][1] == U32
    assert arg("TaskBounties", "create_task", "validators_required") == "u32" and INTEGERS["count"][1] == U32
    assert widths == {"min_cpus": "u32", "min_gpus": "u32", "min_memory_mb": "u64", "eval_target": "i64"}
    assert INTEGERS["count_or_zero"][1] == U32 and INTEGERS["megabytes"][1] == U64
    assert arg("Balances", "transfer_keep_alive", "value") == "u128" == arg("TaskBounties", "create_task", "bounty")
    assert argtypes.U128_MAX == U128


def test_decimals_match_the_runtime() -> None:
    from devnet.node import TOKEN_DECIMALS

    assert argtypes.BALANCE_DECIMALS == TOKEN_DECIMALS == 12


# The real parser ----------------------------------------------------------------------------------
# Options typed int/float without a range: none (a new one fails the test below).
UNRANGED: set[tuple[str, str]] = set()
BAD_INTEGERS = ["1e400", "nan", "", "١٢", "9" * 5000, str(2**128)]


def numeric_options() -> Iterator[tuple[list[str], argparse.ArgumentParser, argparse.Action, list[str]]]:
    """(command path, its parser, the action, the positionals before it) for every numeric argument."""
    known = {getattr(argtypes, name) for name in (*INTEGERS, *REALS, "amount")}

    def walk(parser: argparse.ArgumentParser, path: list[str]) -> Iterator[Any]:
        positionals: list[str] = []
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    yield from walk(sub, [*path, name])
            elif action.type in known or action.type in (int, float):
                yield path, parser, action, list(positionals)
            if not action.option_strings and not isinstance(action, argparse._SubParsersAction):
                positionals.append("x")

    yield from walk(build_parser(), [])


def bad_values(action: argparse.Action) -> list[str]:
    names = {getattr(argtypes, name): name for name in (*INTEGERS, *REALS, "amount")}
    name = names.get(action.type)
    if name in INTEGERS:
        return boundaries(*INTEGERS[name])[::5] + BAD_INTEGERS  # low - 1, high + 1
    if name == "amount":
        return ["1e400", "-1", "nan", "1.0000000000001", str(2**128), ""]
    if name in REALS:
        return ["1e400", "nan", "inf", {"metric_value": "1e13", "model_value": "1001"}.get(name, "-1"), ""]
    return ["1e400x", "nan?", ""] if action.choices is None else ["1e400", "-1"]


def parse_failure(argv: list[str]) -> tuple[int, str]:
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), pytest.raises(SystemExit) as exited:
        build_parser().parse_args(argv)
    return int(exited.value.code or 0), stderr.getvalue()


def test_every_numeric_option_is_ranged() -> None:
    found = {(path[0], action.option_strings[0] if action.option_strings else action.dest)
             for path, _, action, _ in numeric_options()}
    unranged = {(path[0], action.option_strings[0]) for path, _, action, _ in numeric_options()
                if action.type in (int, float) and action.choices is None}
    assert unranged == UNRANGED
    assert {("task", "task_id"), ("task", "--bounty"), ("account", "amount"), ("worker", "--deadline-margin"),
            ("validator", "--from-block"), ("orchestrator", "--metrics-port"), ("task", "--timeout")} <= found


@pytest.mark.parametrize("path, action, before", [
    pytest.param(path, action, before, id=" ".join(path) + " " + (action.option_strings or [action.dest])[0])
    for path, _, action, before in numeric_options()])
def test_out_of_range_values_exit_2_with_one_line(path: list[str], action: argparse.Action,
                                                  before: list[str]) -> None:
    for value in bad_values(action):
        argv = [*path, *before, value] if not action.option_strings else [*path, f"{action.option_strings[0]}={value}"]
        code, stderr = parse_failure(argv)
        lines = stderr.strip().splitlines()
        errors = [line for line in lines if ": error: " in line]
        assert code == 2 and "Traceback" not in stderr, (argv, stderr)
        assert errors == [lines[-1]] and lines[0].startswith("usage: "), (argv, stderr)
        assert f"argument {action.option_strings[0] if action.option_strings else action.dest}" in lines[-1] \
            or (action.option_strings and "/".join(action.option_strings) in lines[-1]), (argv, stderr)
