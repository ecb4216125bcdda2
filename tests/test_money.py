from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.jsonbody import loads
from shared.money import (
    AMOUNT_PATTERN,
    MAX_AMOUNT_CENTS,
    AmountError,
    JsonNumber,
    format_cents,
    parse_amount,
)


@pytest.mark.parametrize(
    ("value", "cents"),
    [
        ("0.01", 1),
        ("10", 1000),
        ("10.5", 1050),
        ("10.50", 1050),
        ("1000000000.00", MAX_AMOUNT_CENTS),
        (7, 700),
        (JsonNumber("0.7"), 70),
        (JsonNumber("12.34"), 1234),
    ],
)
def test_parse_accepts(value: object, cents: int) -> None:
    assert parse_amount(value) == cents


@pytest.mark.parametrize(
    "value",
    [
        "0",
        "0.00",
        "-1",
        "0.001",
        "1e3",
        "NaN",
        "Infinity",
        "1000000000.01",
        "",
        " 1",
        "1 ",
        "1.",
        ".5",
        "+1",
        "1,00",
        "0x10",
        "١٢",
        True,
        False,
        None,
        1.5,
        [],
        {},
        0,
        -1,
        10**40,
        JsonNumber("1e3"),
        JsonNumber("5e-324"),
        JsonNumber("10.005"),
        JsonNumber("-0.0"),
    ],
)
def test_parse_refuses(value: object) -> None:
    with pytest.raises(AmountError):
        parse_amount(value)


@given(st.integers(min_value=1, max_value=MAX_AMOUNT_CENTS))
def test_format_then_parse_round_trips(cents: int) -> None:
    text = format_cents(cents)
    assert parse_amount(text) == cents
    assert Decimal(text) * 100 == cents


@given(st.integers(min_value=-(10**15), max_value=10**15))
def test_format_has_exactly_two_fraction_digits(cents: int) -> None:
    text = format_cents(cents)
    units, _, frac = text.lstrip("-").partition(".")
    assert len(frac) == 2 and units.isdigit()
    assert Decimal(text) == Decimal(cents) / 100


@given(st.integers(min_value=1, max_value=MAX_AMOUNT_CENTS))
def test_schema_pattern_admits_every_valid_amount(cents: int) -> None:
    import re

    assert re.fullmatch(AMOUNT_PATTERN, format_cents(cents))


def test_json_numbers_keep_their_text() -> None:
    body = loads(b'{"a": 10.50, "b": 1e3, "c": 7}')
    assert isinstance(body["a"], JsonNumber) and body["a"].literal == "10.50"
    assert body["b"].literal == "1e3"
    assert body["c"] == 7 and isinstance(body["c"], int)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"a": NaN}',
        b'{"a": Infinity}',
        b'{"a": -Infinity}',
        b"[" * 10_000 + b"]" * 10_000,
        b'{"a": ' + b"1" * 5000 + b"}",
        b"\xff\xfe\x00",
        b"{",
    ],
)
def test_json_reader_refuses_as_decode_errors(raw: bytes) -> None:
    import json

    with pytest.raises(json.JSONDecodeError):
        loads(raw)
