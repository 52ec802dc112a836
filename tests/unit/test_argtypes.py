"""The shared argument types: what they accept, and the one-line reasons for what they refuse."""
from __future__ import annotations

import argparse

import pytest

from paratrain.argtypes import non_negative, non_negative_float, positive


def test_accepted() -> None:
    assert (positive("3"), non_negative("0"), non_negative_float("0.5")) == (3, 0, 0.5)


@pytest.mark.parametrize("parse, value, reason", [
    (positive, "0", "0 is not a positive integer"), (positive, "x", "not an integer: 'x'"),
    (non_negative, "-1", "-1 is negative"), (non_negative, "1.5", "not an integer: '1.5'"),
    (non_negative_float, "-0.1", "-0.1 is not zero or more"), (non_negative_float, "nan", "nan is not zero or more"),
    (non_negative_float, "abc", "not a number: 'abc'"),
])
def test_refused_with_a_reason(parse, value, reason) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=f"^{reason}$".replace("(", r"\(").replace(")", r"\)")):
        parse(value)
