"""The shared numeric-option check (cli/options.Number): finite, within bounds, no `_`, -0 as 0."""

from __future__ import annotations

import math

import pytest
import typer
from hypothesis import given
from hypothesis import strategies as st

from distill_es.cli.options import Number

SECONDS = Number(0.0, 86400.0)


@given(st.floats(min_value=0.0, max_value=86400.0))
def test_every_number_in_bounds_reads_back_as_itself(value: float) -> None:
    assert SECONDS(repr(value)) == value and math.copysign(1.0, SECONDS(repr(value))) == 1.0


@given(st.floats(allow_nan=True, allow_infinity=True).filter(lambda v: not 0.0 <= v <= 86400.0))
def test_every_number_out_of_bounds_is_a_usage_error(value: float) -> None:
    with pytest.raises(typer.BadParameter):
        SECONDS(repr(value))


@pytest.mark.parametrize("text", ["1_0", "1_000.5", "", " ", "ten", "0x10", "1e309", "-1e309", "NaN"])
def test_malformed_text_is_a_usage_error(text: str) -> None:
    with pytest.raises(typer.BadParameter):
        SECONDS(text)


def test_minus_zero_is_zero_and_integers_stay_whole() -> None:
    assert repr(SECONDS("-0")) == "0.0" and repr(SECONDS("-0.0")) == "0.0"
    polls = Number(0, 10, integer=True)
    assert polls("7") == 7 and isinstance(polls("7"), int)
    for bad in ("7.0", "-1", "11", "1_0"):
        with pytest.raises(typer.BadParameter):
            polls(bad)
