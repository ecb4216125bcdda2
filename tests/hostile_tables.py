"""The hostile table: bad values of every field, bad bodies and bad keys, as refused
money-moving requests (`Case`), and the edge cases that must be accepted."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from urllib.parse import quote

import pytest

from tests.hostile import DEST, SOURCE, UNKNOWN_WALLET, Case, number_body

FORTY_DIGITS = "1234567890" * 4

# (id, JSON text of the amount): every one is refused with 422 validation_error.
BAD_AMOUNTS: list[tuple[str, str]] = [
    ("zero-number", "0"),
    ("zero-string", '"0.00"'),
    ("zero-string-short", '"0"'),
    ("negative-number", "-1"),
    ("negative-string", '"-1.00"'),
    ("negative-zero-string", '"-0.00"'),
    ("negative-cent-number", "-0.01"),
    ("three-decimals-string", '"0.001"'),
    ("three-decimals-number", "0.001"),
    ("three-decimals-trailing-zero", '"1.000"'),
    ("three-decimals-large", '"10.505"'),
    ("exponent-number-1e3", "1e3"),
    ("exponent-number-upper-1E3", "1E3"),
    ("exponent-number-1.5e2", "1.5e2"),
    ("exponent-string-1e3", '"1e3"'),
    ("nan-raw", "NaN"),
    ("infinity-raw", "Infinity"),
    ("minus-infinity-raw", "-Infinity"),
    ("nan-string", '"NaN"'),
    ("infinity-string", '"Infinity"'),
    ("over-max-string", '"1000000000.01"'),
    ("over-max-number", "1000000000.01"),
    ("over-max-integer", "1000000001"),
    ("true", "true"),
    ("false", "false"),
    ("empty-string", '""'),
    ("blank-string", '" "'),
    ("leading-space", '" 1"'),
    ("trailing-space", '"1 "'),
    ("40-digit-number", FORTY_DIGITS),
    ("40-digit-string", f'"{FORTY_DIGITS}"'),
    ("40-digit-fraction-number", f"0.{FORTY_DIGITS}"),
    ("denormal-5e-324", "5e-324"),
    ("null", "null"),
    ("empty-list", "[]"),
    ("list-of-amount", '["10.00"]'),
    ("empty-object", "{}"),
    ("object-of-amount", '{"value": "10.00"}'),
    ("plus-sign", '"+1.00"'),
    ("leading-dot", '".50"'),
    ("trailing-dot", '"1."'),
    ("thousands-separator", '"1,000.00"'),
    ("decimal-comma", '"10,50"'),
    ("hexadecimal", '"0x10"'),
    ("underscore-digits", '"1_000"'),
    ("fullwidth-digits", '"\uff11\uff10"'),
    ("arabic-indic-digits", '"\u0661\u0660"'),
    ("currency-symbol", '"$10.00"'),
    ("with-currency-code", '"10.00 USD"'),
    ("sql-fragment", '"1; DROP TABLE operation"'),
    ("10kB-string", '"' + "9" * 10_240 + '"'),
]

BAD_CURRENCIES: list[tuple[str, str, str]] = [
    ("eur", '"EUR"', "unsupported_currency"),
    ("empty", '""', "unsupported_currency"),
    ("two-letters", '"US"', "unsupported_currency"),
    ("long", '"USDOLLARS"', "unsupported_currency"),
    # Look-alikes: Unicode case mapping upper-cases LATIN SMALL LETTER LONG S to "S".
    ("long-s", '"u\u017fd"', "unsupported_currency"),
    ("long-s-json-escape", r'"u\u017fd"', "unsupported_currency"),
    ("fullwidth", '"\uff35\uff33\uff24"', "unsupported_currency"),
    ("number", "840", "validation_error"),
    ("true", "true", "validation_error"),
    ("list", '["USD"]', "validation_error"),
    ("object", '{"code": "USD"}', "validation_error"),
]

BAD_REFERENCES: list[tuple[str, str]] = [
    ("256-chars", '"' + "r" * 256 + '"'),
    ("10k-chars", '"' + "r" * 10_000 + '"'),
    ("256-non-ascii-chars", '"' + "\u00e9" * 256 + '"'),
    ("number", "42"),
    ("true", "true"),
    ("list", '["ref"]'),
    ("object", '{"ref": "x"}'),
]

# Text a PostgreSQL `text` column cannot hold, or that is not Unicode at all. The API
# must refuse it as malformed input, not fail on it.
BAD_TEXT: list[tuple[str, str]] = [
    ("nul-character", '"a\\u0000b"'),
    ("lone-surrogate", '"\\ud800"'),
]

NESTED_10000 = "[" * 10_000 + "]" * 10_000

BAD_IDS: list[tuple[str, str]] = [
    ("word", "not-a-uuid"),
    ("integer", "123"),
    ("sql-fragment", "1' OR '1'='1"),
    ("sql-drop", "'; DROP TABLE wallet; --"),
    ("10kB", "x" * 10_240),
    ("uuid-bad-hex", "0191a1c2-0000-7000-8000-00000000000g"),
    ("uuid-too-long", "0191a1c2-0000-7000-8000-0000000000001"),
    ("uuid-truncated", "0191a1c2-0000-7000-8000-00000000000"),
    ("percent-nul", "%00"),
    ("null-word", "null"),
    ("non-ascii", "\u00e9t\u00e9"),
]


def body_shape_cases(valid: str) -> list[Case]:
    """Bodies that are not the expected JSON object at all. `valid` is a correct body."""
    return [
        Case("malformed-trailing-comma", valid[:-1] + ",}"),
        Case("malformed-truncated", valid[: len(valid) // 2]),
        Case("malformed-single-quotes", valid.replace('"', "'")),
        Case("malformed-trailing-garbage", valid + " x"),
        Case("malformed-two-documents", valid + valid),
        Case("empty-body", ""),
        Case("body-null", "null"),
        Case("body-list", "[]"),
        Case("body-list-of-request", f"[{valid}]"),
        Case("body-string", '"25.00"'),
        Case("body-number", "25"),
        Case("nested-10000-levels", NESTED_10000),
        Case("nested-10000-levels-in-field", valid[:-1] + f', "deep": {NESTED_10000}}}'),
        Case("unclosed-10000-objects", "{" * 10_000),
        Case("invalid-utf8", valid.encode()[:-1] + b', "reference": "\xff\xfe"}'),
        Case("text-plain-content-type", valid, content_type=b"text/plain"),
        Case("duplicate-member", valid[:-1] + ', "amount": "999.00"}'),
        Case("lone-surrogate-member-name", valid[:-1] + ', "\\ud800": 1}'),
    ]


def key_cases(valid: str) -> list[Case]:
    return [
        Case("key-missing", valid, 400, "idempotency_key_required", key=None),
        Case("key-empty", valid, 400, "idempotency_key_required", key=b""),
        Case("key-256-chars", valid, key=b"k" * 256),
        Case("key-non-ascii-utf8", valid, key="cl\u00e9-\u20ac".encode()),
        Case("key-non-ascii-latin1", valid, key=b"cl\xe9"),
        Case("key-control-tab", valid, key=b"key\twith-tab"),
    ]


def field_cases(make: Callable[[str, str], str]) -> list[Case]:
    """Amount, currency, reference and text cases, `make(field, literal)` giving the body."""
    cases = [Case(f"amount-{name}", make("amount", literal)) for name, literal in BAD_AMOUNTS]
    cases += [
        Case(f"currency-{name}", make("currency", literal), code=code)
        for name, literal, code in BAD_CURRENCIES
    ]
    cases += [
        Case(f"reference-{name}", make("reference", literal)) for name, literal in BAD_REFERENCES
    ]
    cases += [Case(f"reference-{name}", make("reference", literal)) for name, literal in BAD_TEXT]
    return cases


def _replenishment(field: str, literal: str) -> str:
    if field == "amount":
        return number_body("amount", literal)
    return number_body(field, literal, amount="25.00")


def _transfer(field: str, literal: str) -> str:
    wallets = {"from_wallet_id": SOURCE, "to_wallet_id": DEST}
    if field == "amount":
        return number_body("amount", literal, **wallets)
    return number_body(field, literal, **wallets, amount="25.00")


REPLENISHMENT_PATH = f"/v1/wallets/{SOURCE}/replenishments"
VALID_REPLENISHMENT = '{"amount": "25.00"}'

REPLENISHMENT_CASES: list[Case] = [
    *field_cases(_replenishment),
    Case("amount-missing", "{}"),
    Case("amount-missing-currency-only", '{"currency": "USD"}'),
    Case("amount-misspelled-key", '{"Amount": "25.00"}'),
    Case("unknown-field", '{"amount": "25.00", "memo": "x"}'),
    Case("unknown-field-status", '{"amount": "25.00", "status": "succeeded"}'),
    Case("unknown-field-wallet-id", f'{{"amount": "25.00", "wallet_id": "{DEST}"}}'),
    Case("unknown-field-from-wallet-id", f'{{"amount": "25.00", "from_wallet_id": "{DEST}"}}'),
    *body_shape_cases(VALID_REPLENISHMENT),
    *key_cases(VALID_REPLENISHMENT),
    *[
        Case(
            f"path-id-{name}", VALID_REPLENISHMENT, path=f"/v1/wallets/{quote(bad)}/replenishments"
        )
        for name, bad in BAD_IDS
    ],
    Case(
        "path-id-unknown-wallet",
        VALID_REPLENISHMENT,
        404,
        "not_found",
        path=f"/v1/wallets/{UNKNOWN_WALLET}/replenishments",
    ),
    Case(
        "path-id-nil-uuid",
        VALID_REPLENISHMENT,
        404,
        "not_found",
        path=f"/v1/wallets/{uuid.UUID(int=0)}/replenishments",
    ),
]

TRANSFER_PATH = "/v1/transfers"
VALID_TRANSFER = f'{{"from_wallet_id": "{SOURCE}", "to_wallet_id": "{DEST}", "amount": "25.00"}}'


def _wallets(source: str, dest: str) -> str:
    return f'{{"from_wallet_id": {source}, "to_wallet_id": {dest}, "amount": "25.00"}}'


TRANSFER_CASES: list[Case] = [
    *field_cases(_transfer),
    Case("amount-missing", f'{{"from_wallet_id": "{SOURCE}", "to_wallet_id": "{DEST}"}}'),
    Case("from-missing", f'{{"to_wallet_id": "{DEST}", "amount": "25.00"}}'),
    Case("to-missing", f'{{"from_wallet_id": "{SOURCE}", "amount": "25.00"}}'),
    Case("from-not-uuid", _wallets('"not-a-uuid"', f'"{DEST}"')),
    Case("from-empty", _wallets('""', f'"{DEST}"')),
    Case("from-integer", _wallets("123", f'"{DEST}"')),
    Case("from-null", _wallets("null", f'"{DEST}"')),
    Case("from-list", _wallets(f'["{SOURCE}"]', f'"{DEST}"')),
    Case("from-sql-fragment", _wallets("\"1' OR '1'='1\"", f'"{DEST}"')),
    Case("to-10kB", _wallets(f'"{SOURCE}"', '"' + "x" * 10_240 + '"')),
    Case("to-object", _wallets(f'"{SOURCE}"', f'{{"id": "{DEST}"}}')),
    Case("same-wallet", _wallets(f'"{SOURCE}"', f'"{SOURCE}"'), code="same_wallet"),
    Case("unknown-from", _wallets(f'"{UNKNOWN_WALLET}"', f'"{DEST}"'), 404, "not_found"),
    Case("unknown-to", _wallets(f'"{SOURCE}"', f'"{UNKNOWN_WALLET}"'), 404, "not_found"),
    Case("nil-uuid-to", _wallets(f'"{SOURCE}"', f'"{uuid.UUID(int=0)}"'), 404, "not_found"),
    Case(
        "unknown-both",
        _wallets(f'"{UNKNOWN_WALLET}"', '"0191a1c2-0000-7000-8000-000000000002"'),
        404,
        "not_found",
    ),
    Case("unknown-field", VALID_TRANSFER[:-1] + ', "memo": "x"}'),
    Case("unknown-field-status", VALID_TRANSFER[:-1] + ', "status": "succeeded"}'),
    Case("unknown-field-wallet-id", VALID_TRANSFER[:-1] + f', "wallet_id": "{DEST}"}}'),
    *body_shape_cases(VALID_TRANSFER),
    *key_cases(VALID_TRANSFER),
]

# Idempotency-Keys with a control character that no HTTP client library would send: they
# go out raw (`raw_replenishment`).
CONTROL_KEYS = {
    "soh": b"ab\x01cd",
    "escape": b"ab\x1bcd",
    "delete": b"ab\x7fcd",
    "nul": b"ab\x00cd",
}


# --- accepted edge cases ----------------------------------------------------------------

GOOD_AMOUNTS = [
    pytest.param('"0.01"', "0.01", id="one-cent-string"),
    pytest.param('"1000000000.00"', "1000000000.00", id="max-string"),
    pytest.param('"1000000000"', "1000000000.00", id="max-string-no-fraction"),
    pytest.param("1000000000", "1000000000.00", id="max-integer-number"),
    pytest.param("10", "10.00", id="integer-number"),
    pytest.param("10.5", "10.50", id="one-decimal-number"),
    pytest.param("10.55", "10.55", id="two-decimal-number"),
    pytest.param("0.01", "0.01", id="one-cent-number"),
    pytest.param('"10.5"', "10.50", id="one-decimal-string"),
    pytest.param('"7"', "7.00", id="integer-string"),
]

GOOD_OPTIONALS = [
    pytest.param({}, None, id="currency-and-reference-omitted"),
    pytest.param({"currency": "USD"}, None, id="currency-usd"),
    pytest.param({"reference": None}, None, id="reference-null"),
    pytest.param({"reference": "r" * 255}, "r" * 255, id="reference-255-chars"),
    pytest.param({"reference": "\u00e9" * 255}, "\u00e9" * 255, id="reference-255-non-ascii"),
    pytest.param(
        {"reference": "Caf\u00e9 \u2615 \U0001f680"},
        "Caf\u00e9 \u2615 \U0001f680",
        id="reference-emoji",
    ),
    pytest.param(
        {"reference": "'; DROP TABLE operation; --"},
        "'; DROP TABLE operation; --",
        id="reference-sql",
    ),
]
