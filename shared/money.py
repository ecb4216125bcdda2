"""Money: integer cents inside, decimal strings at the edges, never float.

An amount on the wire is a decimal string ("10.50") or a JSON number ("10.5" as written
in the document, which the API's JSON reader hands over as its literal text, see
`JsonNumber`). Either way the text must be plain digits with at most two fraction
digits; the parsed value must be greater than zero and at most `MAX_AMOUNT_CENTS`.
"""

from __future__ import annotations

import re
from decimal import Decimal

CURRENCY = "USD"
SUPPORTED_CURRENCIES = frozenset({CURRENCY})
MAX_AMOUNT_CENTS = 100_000_000_000  # 1,000,000,000.00
MAX_AMOUNT_TEXT = "1000000000.00"

# Digits only: no sign, no exponent, no spaces, no "NaN"/"Infinity". At most 2 fraction
# digits. The length bound keeps hostile 10 kB strings from reaching int().
_AMOUNT_RE = re.compile(r"(?P<units>[0-9]{1,20})(?:\.(?P<frac>[0-9]{1,2}))?")
# The same rule, for the OpenAPI schema, tightened so that a schema-valid string is also
# within bounds: 0.01 .. 999999999.99, or 1000000000 with an optional zero fraction.
AMOUNT_PATTERN = (
    r"^(?:(?:0|[1-9][0-9]{0,8})\.(?:0[1-9]|[1-9][0-9]?)"
    r"|[1-9][0-9]{0,8}(?:\.[0-9]{1,2})?"
    r"|1000000000(?:\.00?)?)$"
)


class AmountError(ValueError):
    """An amount that the API refuses; the message is shown to the client."""


class JsonNumber(Decimal):
    """A JSON number as written in the request body, kept as its literal text.

    The API's JSON reader produces these instead of floats, so a number like
    `10.005` or `1e3` can be refused for what it is rather than after a lossy
    conversion.
    """

    literal: str

    def __new__(cls, literal: str) -> JsonNumber:
        self = super().__new__(cls, literal)
        self.literal = literal
        return self


def parse_amount(value: object) -> int:
    """Return the amount in cents, or raise AmountError saying what is wrong."""
    if isinstance(value, bool):
        raise AmountError('amount must be a decimal string such as "10.50", not a boolean')
    if isinstance(value, JsonNumber):
        text = value.literal
    elif isinstance(value, int):
        text = str(value)
    elif isinstance(value, str):
        text = value
    else:
        raise AmountError('amount must be a decimal string such as "10.50"')
    if text.startswith("-"):
        raise AmountError("amount must be greater than zero")
    match = _AMOUNT_RE.fullmatch(text)
    if match is None:
        if "e" in text.lower() and any(c.isdigit() for c in text):
            raise AmountError('amount must not use an exponent; write it as "1000.00"')
        if re.fullmatch(r"[0-9]+\.[0-9]{3,}", text):
            raise AmountError("amount has more than 2 fraction digits")
        raise AmountError("amount must be a decimal string with at most 2 fraction digits")
    cents = int(match["units"]) * 100 + int((match["frac"] or "0").ljust(2, "0"))
    if cents <= 0:
        raise AmountError("amount must be greater than zero")
    if cents > MAX_AMOUNT_CENTS:
        raise AmountError(f"amount must be at most {MAX_AMOUNT_TEXT}")
    return cents


def format_cents(cents: int) -> str:
    """Cents as a decimal string with exactly two fraction digits ("-5.00", "0.07")."""
    sign = "-" if cents < 0 else ""
    units, frac = divmod(abs(cents), 100)
    return f"{sign}{units}.{frac:02d}"


def normalize_currency(code: str) -> str:
    """A currency code as compared with `SUPPORTED_CURRENCIES`: ASCII letters in any case
    ("usd" is "USD"), anything else exactly as given.

    Unicode case mapping would turn look-alikes into a supported code (with a long s,
    U+017F, "usd" upper-cases to "USD"), so it is not used.
    """
    return code.upper() if code.isascii() else code
