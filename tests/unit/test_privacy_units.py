"""Chain units of DP values: epsilon and delta round up (a claim never shrinks), norms and rates to nearest,
the decoded value is what the chain holds, and bad input is a ValueError."""
from __future__ import annotations

import hashlib
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime_bindings.privacy import (
    DELTA_UNIT,
    EPSILON_UNIT,
    NORM_UNIT,
    PERBILL,
    U64_MAX,
    delta_from_chain,
    delta_to_chain,
    epsilon_from_chain,
    epsilon_to_chain,
    noise_key_hash,
    norm_from_chain,
    norm_to_chain,
    rate_from_chain,
    rate_to_chain,
)


def test_units_are_the_contracts() -> None:
    assert (EPSILON_UNIT, DELTA_UNIT, NORM_UNIT, PERBILL) == (10**6, 10**15, 10**6, 10**9)


@pytest.mark.parametrize(("value", "chain"), [
    (3.0, 3_000_000), (1.1, 1_100_000), (0.1, 100_000), (2.9971234, 2_997_124), (1e-7, 1), (0, 0), (8, 8_000_000),
    (2.0000001, 2_000_001), (2.000000000001, 2_000_001)])
def test_epsilon_rounds_up(value: float, chain: int) -> None:
    assert epsilon_to_chain(value) == chain


@pytest.mark.parametrize(("value", "chain"), [
    (1e-5, 10_000_000_000), (1e-15, 1), (1.5e-16, 1), (1e-3, 10**12), (1.0, DELTA_UNIT), (0.0, 0),
    (math.nextafter(1e-5, 1), 10_000_000_001)])
def test_delta_rounds_up(value: float, chain: int) -> None:
    assert delta_to_chain(value) == chain


@pytest.mark.parametrize(("value", "chain"), [
    (1.0, 1_000_000), (1.1, 1_100_000), (0.4000004, 400_000), (0.4000006, 400_001), (0.0000005, 0),
    (0.0000015, 2), (1.2345674999, 1_234_567)])
def test_norm_rounds_to_nearest(value: float, chain: int) -> None:
    assert norm_to_chain(value) == chain


@pytest.mark.parametrize(("value", "chain"), [
    (64 / 1437, 44_537_230), (1.0, PERBILL), (0.01, 10_000_000), (0.0, 0), (1e-10, 0), (6e-10, 1)])
def test_rate_rounds_to_nearest(value: float, chain: int) -> None:
    assert rate_to_chain(value) == chain


@given(st.floats(min_value=0, max_value=1e6, allow_nan=False))
@settings(max_examples=300, deadline=None)
def test_decoded_epsilon_is_never_below_the_float(value: float) -> None:
    chain = epsilon_to_chain(value)
    assert epsilon_from_chain(chain) >= value
    assert chain == 0 or epsilon_from_chain(chain - 1) < value


@given(st.floats(min_value=0, max_value=1, allow_nan=False))
@settings(max_examples=300, deadline=None)
def test_decoded_delta_is_never_below_the_float(value: float) -> None:
    chain = delta_to_chain(value)
    assert delta_from_chain(chain) >= value
    assert chain == 0 or delta_from_chain(chain - 1) < value


@given(st.integers(min_value=0, max_value=10**12))
@settings(max_examples=200, deadline=None)
def test_chain_values_round_trip(value: int) -> None:
    """What the worker decodes and trains with encodes back to the very chain value."""
    assert epsilon_to_chain(epsilon_from_chain(value)) == value
    assert norm_to_chain(norm_from_chain(value)) == value
    assert delta_to_chain(delta_from_chain(value % (DELTA_UNIT + 1))) == value % (DELTA_UNIT + 1)
    assert rate_to_chain(rate_from_chain(value % (PERBILL + 1))) == value % (PERBILL + 1)


def test_bounds_are_the_chain_types() -> None:
    assert epsilon_to_chain(U64_MAX // EPSILON_UNIT) == (U64_MAX // EPSILON_UNIT) * EPSILON_UNIT
    assert rate_from_chain(PERBILL) == 1.0 and delta_from_chain(DELTA_UNIT) == 1.0
    assert epsilon_from_chain(U64_MAX) == U64_MAX / EPSILON_UNIT


BAD_FLOATS = [-1e-9, -1.0, math.nan, math.inf, -math.inf, "1.0", None, True, b"\x01", 1j]
TO_CHAIN = [epsilon_to_chain, delta_to_chain, norm_to_chain, rate_to_chain]


@pytest.mark.parametrize("convert", TO_CHAIN, ids=lambda f: f.__name__)
@pytest.mark.parametrize("value", BAD_FLOATS, ids=repr)
def test_bad_float_input_raises_value_error(convert: object, value: object) -> None:
    with pytest.raises(ValueError):
        convert(value)  # type: ignore[operator]


@pytest.mark.parametrize(("convert", "value"), [
    (epsilon_to_chain, 2e13), (norm_to_chain, 1e14), (delta_to_chain, 1.0000001), (rate_to_chain, 1.000000001),
    (delta_to_chain, 2), (rate_to_chain, 2)], ids=repr)
def test_above_the_chain_range_raises_value_error(convert: object, value: float) -> None:
    with pytest.raises(ValueError):
        convert(value)  # type: ignore[operator]


@pytest.mark.parametrize(("convert", "value"), [
    (epsilon_from_chain, -1), (epsilon_from_chain, U64_MAX + 1), (norm_from_chain, -1), (delta_from_chain,
    DELTA_UNIT + 1), (rate_from_chain, PERBILL + 1), (rate_from_chain, 1.0), (epsilon_from_chain, True),
    (norm_from_chain, "5")], ids=repr)
def test_bad_chain_input_raises_value_error(convert: object, value: object) -> None:
    with pytest.raises(ValueError):
        convert(value)  # type: ignore[operator]


def test_noise_key_hash_is_the_domain_separated_blake2() -> None:
    key = bytes(range(32))
    assert noise_key_hash(key) == hashlib.blake2b(b"paratrain/dp-key/v1" + key, digest_size=32).digest()
    for bad in (b"\x00" * 31, b"\x00" * 33, "00" * 32):
        with pytest.raises(ValueError):
            noise_key_hash(bad)  # type: ignore[arg-type]
