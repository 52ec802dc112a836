"""The federated commands' argument types and parser: fractions are exact Perbills, alpha and the holdout
share are bounded reals, the rule string is the spec module's, and every bad value of every `fl` and
`client` option is a one-line usage error with exit status 2, before anything connects or is stored."""
from __future__ import annotations

import argparse
import contextlib
import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paratrain import argtypes
from paratrain.cli import build_parser, main


# Perbill fractions --------------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "parts"), [
    ("1", 1_000_000_000), ("1.0", 1_000_000_000), ("0.7", 700_000_000), (".5", 500_000_000),
    ("70%", 700_000_000), ("100%", 1_000_000_000), ("0.5%", 5_000_000), ("0.000000001", 1),
    ("0.0000001%", 1), ("00.25", 250_000_000), ("0.100000000000", 100_000_000),
])
def test_fractions_are_exact_perbills(text: str, parts: int):
    assert argtypes.fraction(text) == parts
    assert argtypes.share(text) == parts


@pytest.mark.parametrize(("text", "reason"), [
    ("0", "out of range"), ("0%", "out of range"), ("1.000000001", "out of range"), ("101%", "out of range"),
    ("0.0000000001", "finer than a billionth"), ("0.00000001%", "finer than a billionth"),
    ("-0.5", "not a fraction"), ("1e-1", "not a fraction"), ("nan", "not a fraction"), ("", "not a fraction"),
    (".", "not a fraction"), ("%", "not a fraction"), ("0.5 ", "not a fraction"), ("９", "not a fraction"),
    ("9" * 5000, "out of range"),
])
def test_a_client_fraction_is_above_zero_and_at_most_one(text: str, reason: str):
    with pytest.raises(argparse.ArgumentTypeError, match=reason) as refused:
        argtypes.fraction(text)
    assert "\n" not in str(refused.value) and len(str(refused.value)) < 160


def test_a_share_may_be_zero():
    assert argtypes.share("0") == 0 == argtypes.share("0%")
    with pytest.raises(argparse.ArgumentTypeError, match="0 to 1"):
        argtypes.share("1.5")


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=30) | st.decimals(allow_nan=True, allow_infinity=True).map(str))
def test_any_text_is_a_perbill_in_range_or_a_one_line_refusal(text: str):
    try:
        parts = argtypes.share(text)
    except argparse.ArgumentTypeError as exc:
        assert "\n" not in str(exc)
    else:
        assert 0 <= parts <= argtypes.PERBILL


# Reals ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text", ["0", "-1", "nan", "inf", "1e400", "", "x"])
def test_alpha_is_positive_and_finite(text: str):
    with pytest.raises(argparse.ArgumentTypeError):
        argtypes.concentration(text)


def test_alpha_accepts_small_and_large():
    assert argtypes.concentration("0.05") == 0.05 and argtypes.concentration("100") == 100.0


@pytest.mark.parametrize("text", ["0", "1", "-0.2", "1.5", "nan", ""])
def test_a_holdout_share_leaves_both_sides_non_empty(text: str):
    with pytest.raises(argparse.ArgumentTypeError):
        argtypes.probability(text)
    assert argtypes.probability("0.2") == 0.2


# The parser ----------------------------------------------------------------------------------------------
def parse(argv: list[str]) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def usage_error(argv: list[str]) -> str:
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), pytest.raises(SystemExit) as exited:
        build_parser().parse_args(argv)
    text = stderr.getvalue()
    assert exited.value.code == 2 and "Traceback" not in text, text
    lines = text.strip().splitlines()
    assert lines[0].startswith("usage: ") and ": error: " in lines[-1]
    assert [line for line in lines if ": error: " in line] == [lines[-1]]
    return lines[-1]


def test_fl_create_defaults_are_the_designs():
    args = parse(["fl", "create", "--bounty", "100"])
    assert (args.recipe, args.rounds, args.min_clients, args.max_clients) == ("digits_mlp", 5, 3, 16)
    assert args.fraction == argtypes.PERBILL and args.client_share == 700_000_000
    assert args.bounty == argtypes.Amount(100 * 10**12, None) and args.client_stake.planck == 10**12
    assert (args.join_blocks, args.deadline_blocks, args.validators, args.tolerance) == (30, 2000, 1, 0)


def test_fl_create_takes_every_option():
    args = parse(["fl", "create", "--bounty", "2.5", "--rounds", "3", "--min-clients", "4", "--fraction", "50%",
                  "--max-clients", "9", "--client-share", "0.6", "--client-stake", "2", "--join-blocks", "5",
                  "--deadline-blocks", "900", "--validators", "2", "--tolerance", "1000", "--hp", "lr=0.1",
                  "--holdout", "h.ptts", "--seed", "7"])
    assert (args.rounds, args.min_clients, args.fraction, args.max_clients) == (3, 4, 500_000_000, 9)
    assert (args.client_share, args.client_stake.planck, args.join_blocks) == (600_000_000, 2 * 10**12, 5)
    assert (args.deadline_blocks, args.validators, args.tolerance, args.seed) == (900, 2, 1000, 7)
    assert args.hyperparameters == ["lr=0.1"] and str(args.holdout) == "h.ptts"


@pytest.mark.parametrize(("argv", "names"), [
    (["fl", "create", "--bounty", "1", "--fraction", "0"], "--fraction"),
    (["fl", "create", "--bounty", "1", "--fraction", "1.5"], "--fraction"),
    (["fl", "create", "--bounty", "1", "--client-share", "2"], "--client-share"),
    (["fl", "create", "--bounty", "1", "--rounds", "0"], "--rounds"),
    (["fl", "create", "--bounty", "1", "--rounds", str(2**32)], "--rounds"),
    (["fl", "create", "--bounty", "1", "--join-blocks", "0"], "--join-blocks"),
    (["fl", "create", "--bounty", "-1"], "--bounty"),
    (["fl", "create", "--bounty", "1", "--tolerance", "-1"], "--tolerance"),
    (["fl", "create", "--bounty", "1", "--round-timeout-s", "0"], "--round-timeout-s"),
    (["fl", "create"], "--bounty"),
    (["fl", "join", str(2**64), "--data", "x"], "task_id"),
    (["fl", "join", "1"], "--data"),
    (["fl", "join", "1", "--data", "x", "--stake", "1e400"], "--stake"),
    (["fl", "status", "-1"], "task_id"),
    (["fl", "status", "1", "--interval", "0"], "--interval"),
    (["fl", "partition", "--out", "d", "--alpha", "0"], "--alpha"),
    (["fl", "partition", "--out", "d", "--clients", "0"], "--clients"),
    (["fl", "partition", "--out", "d", "--holdout-fraction", "1"], "--holdout-fraction"),
    (["fl", "partition"], "--out"),
    (["fl", "reveal", "1", "--salt", "a", "--holdout-hash", "b", "--size", "-3", "--uri", "u"], "--size"),
    (["fl", "withdraw", "x"], "task_id"),
    (["client", "--data", "x"], "--task"),
    (["client", "--task", "1", "--task", "nope", "--data", "x"], "--task"),
    (["client", "--task", "1", "--data", "x", "--stake", "-2"], "--stake"),
])
def test_bad_values_are_one_line_usage_errors(argv: list[str], names: str):
    assert names in usage_error(argv)


def test_client_serves_several_tasks():
    args = parse(["client", "--task", "1", "--task", "4", "--data", "shard.ptts", "--stake", "3"])
    assert args.tasks == [1, 4] and args.stake.planck == 3 * 10**12 and args.attack is None


def test_a_usage_error_from_main_is_one_line(capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit) as exited:
        main(["fl", "create", "--bounty", "1", "--fraction", "0.0000000001"])
    assert exited.value.code == 2
    assert "finer than a billionth" in capsys.readouterr().err.strip().splitlines()[-1]


# The rule ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "canonical"), [
    ("fedavg", "fedavg"), ("fedmedian", "fedmedian"), ("fedtrimmedavg:0.35", "fedtrimmedavg:0.35"),
    ("krum:4", "krum:4"), ("multikrum:4:9", "multikrum:4:9"),
])
def test_the_rule_is_the_spec_documents(text: str, canonical: str):
    assert parse(["fl", "create", "--bounty", "1", "--rule", text]).rule == canonical


@pytest.mark.parametrize("text", ["median", "fedtrimmedavg:0.5", "krum:x", "multikrum:4", "fedavg:1", "", "krum:-1"])
def test_a_bad_rule_is_a_usage_error(text: str):
    line = usage_error(["fl", "create", "--bounty", "1", f"--rule={text}"])
    assert "--rule" in line and "bad rule" in line
