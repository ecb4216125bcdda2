"""Hostile input at every endpoint that takes input (API.md, "Conventions", "Idempotency").

Every bad request must be answered with the documented 4xx problem+json (never a 5xx),
and a refused money-moving request must leave no trace: no operation, no idempotency
record, no posting, no balance change. A refusal does not use up its Idempotency-Key.

Hostile requests go out on a fresh connection each (`send`), so that one answer that
breaks the connection (a 500 makes uvicorn drop it) cannot spill over into the next case.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import psycopg2.extensions
import pytest

from shared.apikeys import hash_key
from tests.conftest import query
from tests.helpers import Api, assert_problem, new_key

Conn = psycopg2.extensions.connection

SOURCE = "$SOURCE"  # placeholders in paths and bodies: the tenant's two wallets
DEST = "$DEST"


# --- sending raw requests ---------------------------------------------------------------


def send(
    api: Api,
    method: str,
    path: str,
    *,
    body: bytes | None = None,
    key: bytes | None = None,
    content_type: bytes = b"application/json",
    params: dict[str, str] | None = None,
) -> httpx.Response:
    """One request on its own connection, with the body sent byte for byte."""
    headers: list[tuple[bytes, bytes]] = [(b"Authorization", f"Bearer {api.api_key}".encode())]
    if body is not None:
        headers.append((b"Content-Type", content_type))
    if key is not None:
        headers.append((b"Idempotency-Key", key))
    with httpx.Client(base_url=api.base_url, timeout=30) as client:
        return client.request(method, path, content=body, headers=headers, params=params)


def raw_http(base_url: str, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send bytes that no HTTP client library would send; parse the status and headers."""
    url = urlsplit(base_url)
    assert url.hostname is not None and url.port is not None
    data = b""
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        sock.sendall(request)
        while chunk := sock.recv(65536):
            data += chunk
    head, _, content = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, content


# --- the tenant under attack ------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    tenant_id: str
    source: str
    dest: str

    def fill(self, text: str) -> str:
        return text.replace(SOURCE, self.source).replace(DEST, self.dest)

    def fill_bytes(self, data: bytes) -> bytes:
        return data.replace(SOURCE.encode(), self.source.encode()).replace(
            DEST.encode(), self.dest.encode()
        )


def tenant_of(db: Conn, api: Api) -> str:
    rows = query(db, "SELECT tenant_id FROM api_key WHERE key_hash = %s", hash_key(api.api_key))
    assert len(rows) == 1
    return str(rows[0][0])


def make_target(api: Api, db: Conn, funded: str | None = None) -> Target:
    source = api.funded_wallet(funded, "Source") if funded else api.create_wallet("Source")
    return Target(tenant_of(db, api), source, api.create_wallet("Destination"))


def count(db: Conn, sql: str, *args: Any) -> int:
    return int(query(db, sql, *args)[0][0])


def operations_of(db: Conn, tenant_id: str) -> int:
    return count(db, "SELECT count(*) FROM operation WHERE tenant_id = %s", tenant_id)


def idempotency_records_of(db: Conn, tenant_id: str) -> int:
    return count(db, "SELECT count(*) FROM idempotency_key WHERE tenant_id = %s", tenant_id)


def accounts_of(db: Conn, tenant_id: str) -> int:
    return count(db, "SELECT count(*) FROM account WHERE tenant_id = %s", tenant_id)


def ledger_state(api: Api, db: Conn, target: Target) -> dict[str, Any]:
    """Everything a refused request must leave as it was, through the API and the database."""
    wallets = [target.source, target.dest]
    return {
        "api_balances": [api.balance(w) for w in wallets],
        "api_postings": [api.postings(w) for w in wallets],
        "operations_of_tenant": operations_of(db, target.tenant_id),
        "operations_naming_wallets": count(
            db,
            "SELECT count(*) FROM operation "
            "WHERE wallet_id = ANY(%s::uuid[]) OR from_wallet_id = ANY(%s::uuid[]) "
            "OR to_wallet_id = ANY(%s::uuid[])",
            wallets,
            wallets,
            wallets,
        ),
        "idempotency_records": idempotency_records_of(db, target.tenant_id),
        "db_postings": query(
            db,
            "SELECT wallet_id::text, count(*), coalesce(sum(amount), 0) FROM posting "
            "WHERE wallet_id = ANY(%s::uuid[]) GROUP BY wallet_id ORDER BY 1",
            wallets,
        ),
        "db_wallets": query(
            db,
            "SELECT id::text, balance, entry_count FROM wallet WHERE id = ANY(%s::uuid[]) "
            "ORDER BY 1",
            wallets,
        ),
    }


# --- the hostile table ------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One refused money-moving request. `body` is raw JSON text (or bytes, sent as is);
    `$SOURCE`/`$DEST` in it and in `path` stand for the tenant's wallets."""

    name: str
    body: str | bytes
    status: int = 422
    code: str = "validation_error"
    path: str | None = None  # None: the endpoint's own path
    key: bytes | None = b"<fresh>"  # b"<fresh>": a new valid key; None: no header
    content_type: bytes = b"application/json"

    def request(self, target: Target, default_path: str) -> tuple[str, bytes, bytes | None]:
        body = self.body.encode() if isinstance(self.body, str) else self.body
        key = new_key().encode() if self.key == b"<fresh>" else self.key
        path = target.fill(self.path or default_path)
        return path, target.fill_bytes(body), key


def _number_body(field: str, literal: str, **others: str) -> str:
    """A JSON object whose `field` is the literal JSON text given (NaN, 1e3, 40 digits)."""
    members = [f'"{name}": "{value}"' for name, value in others.items()]
    members.append(f'"{field}": {literal}')
    return "{" + ", ".join(members) + "}"


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
        return _number_body("amount", literal)
    return _number_body(field, literal, amount="25.00")


def _transfer(field: str, literal: str) -> str:
    wallets = {"from_wallet_id": SOURCE, "to_wallet_id": DEST}
    if field == "amount":
        return _number_body("amount", literal, **wallets)
    return _number_body(field, literal, **wallets, amount="25.00")


REPLENISHMENT_PATH = f"/v1/wallets/{SOURCE}/replenishments"
VALID_REPLENISHMENT = '{"amount": "25.00"}'
UNKNOWN_WALLET = "0191a1c2-0000-7000-8000-000000000001"  # well formed, nobody's

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


def _params(cases: list[Case]) -> list[Any]:
    return [pytest.param(case, id=case.name) for case in cases]


def _assert_refused(response: httpx.Response, case: Case) -> None:
    assert response.status_code < 500, (case.name, response.status_code, response.text[:500])
    body = assert_problem(response, case.status, case.code)
    if case.code == "validation_error":
        assert isinstance(body.get("errors"), list) and body["errors"], body
        assert all({"loc", "msg"} <= set(error) for error in body["errors"]), body
    assert "Idempotent-Replayed" not in response.headers
    assert "Location" not in response.headers


@pytest.mark.parametrize("case", _params(REPLENISHMENT_CASES))
def test_bad_replenishment_is_refused(api: Api, db: Conn, case: Case) -> None:
    target = make_target(api, db)
    path, body, key = case.request(target, REPLENISHMENT_PATH)
    response = send(api, "POST", path, body=body, key=key, content_type=case.content_type)
    _assert_refused(response, case)
    assert operations_of(db, target.tenant_id) == 0
    assert idempotency_records_of(db, target.tenant_id) == 0


@pytest.mark.parametrize("case", _params(TRANSFER_CASES))
def test_bad_transfer_is_refused(api: Api, db: Conn, case: Case) -> None:
    target = make_target(api, db)
    path, body, key = case.request(target, TRANSFER_PATH)
    response = send(api, "POST", path, body=body, key=key, content_type=case.content_type)
    _assert_refused(response, case)
    assert operations_of(db, target.tenant_id) == 0
    assert idempotency_records_of(db, target.tenant_id) == 0


def _http_request_with_key(api: Api, target: Target, key: bytes) -> bytes:
    host = urlsplit(api.base_url).netloc.encode()
    body = b'{"amount": "25.00"}'
    return b"".join(
        [
            b"POST /v1/wallets/" + target.source.encode() + b"/replenishments HTTP/1.1\r\n",
            b"Host: " + host + b"\r\n",
            b"Authorization: Bearer " + api.api_key.encode() + b"\r\n",
            b"Idempotency-Key: " + key + b"\r\n",
            b"Content-Type: application/json\r\n",
            b"Content-Length: " + str(len(body)).encode() + b"\r\n",
            b"Connection: close\r\n\r\n",
            body,
        ]
    )


CONTROL_KEYS = {
    "soh": b"ab\x01cd",
    "escape": b"ab\x1bcd",
    "delete": b"ab\x7fcd",
    "nul": b"ab\x00cd",
}


@pytest.mark.parametrize("key", [pytest.param(v, id=k) for k, v in CONTROL_KEYS.items()])
def test_idempotency_key_with_control_character_is_refused(api: Api, db: Conn, key: bytes) -> None:
    """A control character no HTTP client library would put in a header, sent raw. Such a
    header is not valid HTTP (RFC 9110: only HTAB is allowed among control characters), so
    it may be refused by the HTTP layer before the application; it must be refused."""
    target = make_target(api, db)
    status, _, content = raw_http(api.base_url, _http_request_with_key(api, target, key))
    assert 400 <= status < 500, (status, content[:300])
    assert operations_of(db, target.tenant_id) == 0
    assert idempotency_records_of(db, target.tenant_id) == 0


def test_hostile_table_moves_no_money(api: Api, db: Conn) -> None:
    """The whole hostile table against one funded wallet: nothing may move."""
    target = make_target(api, db, funded="100.00")
    before = ledger_state(api, db, target)
    assert before["api_balances"] == [Decimal("100.00"), Decimal("0.00")]
    assert before["operations_of_tenant"] == 1

    wrong = []
    for default_path, cases in (
        (REPLENISHMENT_PATH, REPLENISHMENT_CASES),
        (TRANSFER_PATH, TRANSFER_CASES),
    ):
        for case in cases:
            path, body, key = case.request(target, default_path)
            response = send(api, "POST", path, body=body, key=key, content_type=case.content_type)
            if not (
                400 <= response.status_code < 500
                and response.headers.get("content-type", "").startswith("application/problem+json")
            ):
                wrong.append((default_path, case.name, response.status_code, response.text[:200]))
    for raw_key in CONTROL_KEYS.values():
        raw_http(api.base_url, _http_request_with_key(api, target, raw_key))

    after = ledger_state(api, db, target)
    assert after == before
    assert not wrong, f"{len(wrong)} hostile requests were not answered with a 4xx problem: {wrong}"


# --- a refusal does not use up the Idempotency-Key -------------------------------------


@dataclass(frozen=True)
class Refusal:
    name: str
    path: str
    body: str
    status: int
    code: str


CORRECT_REPLENISHMENT = '{"amount": "12.34", "reference": "corrected"}'
CORRECT_TRANSFER = (
    f'{{"from_wallet_id": "{SOURCE}", "to_wallet_id": "{DEST}", "amount": "12.34", '
    '"reference": "corrected"}'
)

REFUSALS = [
    Refusal(
        "replenishment-zero-amount", REPLENISHMENT_PATH, '{"amount": "0"}', 422, "validation_error"
    ),
    Refusal(
        "replenishment-three-decimals",
        REPLENISHMENT_PATH,
        '{"amount": "12.345", "reference": "corrected"}',
        422,
        "validation_error",
    ),
    Refusal(
        "replenishment-eur",
        REPLENISHMENT_PATH,
        '{"amount": "12.34", "currency": "EUR", "reference": "corrected"}',
        422,
        "unsupported_currency",
    ),
    Refusal(
        "replenishment-unknown-wallet",
        f"/v1/wallets/{UNKNOWN_WALLET}/replenishments",
        CORRECT_REPLENISHMENT,
        404,
        "not_found",
    ),
    Refusal(
        "replenishment-malformed-json", REPLENISHMENT_PATH, '{"amount": ', 422, "validation_error"
    ),
    Refusal(
        "replenishment-unknown-field",
        REPLENISHMENT_PATH,
        '{"amount": "12.34", "reference": "corrected", "memo": "x"}',
        422,
        "validation_error",
    ),
    Refusal(
        "transfer-same-wallet",
        TRANSFER_PATH,
        f'{{"from_wallet_id": "{SOURCE}", "to_wallet_id": "{SOURCE}", "amount": "12.34"}}',
        422,
        "same_wallet",
    ),
    Refusal(
        "transfer-unknown-destination",
        TRANSFER_PATH,
        f'{{"from_wallet_id": "{SOURCE}", "to_wallet_id": "{UNKNOWN_WALLET}", "amount": "12.34"}}',
        404,
        "not_found",
    ),
    Refusal(
        "transfer-negative-amount",
        TRANSFER_PATH,
        CORRECT_TRANSFER.replace('"12.34"', '"-12.34"'),
        422,
        "validation_error",
    ),
    Refusal(
        "transfer-eur",
        TRANSFER_PATH,
        CORRECT_TRANSFER[:-1] + ', "currency": "EUR"}',
        422,
        "unsupported_currency",
    ),
]


@pytest.mark.parametrize("refusal", [pytest.param(r, id=r.name) for r in REFUSALS])
def test_refused_request_does_not_use_up_its_key(api: Api, db: Conn, refusal: Refusal) -> None:
    target = make_target(api, db, funded="50.00")
    key = new_key().encode()
    refused = send(
        api, "POST", target.fill(refusal.path), body=target.fill(refusal.body).encode(), key=key
    )
    assert_problem(refused, refusal.status, refusal.code)
    assert operations_of(db, target.tenant_id) == 1  # the funding only

    is_transfer = refusal.path == TRANSFER_PATH
    path = TRANSFER_PATH if is_transfer else target.fill(REPLENISHMENT_PATH)
    body = target.fill(CORRECT_TRANSFER if is_transfer else CORRECT_REPLENISHMENT).encode()
    created = send(api, "POST", path, body=body, key=key)
    assert created.status_code == 202, created.text
    assert "Idempotent-Replayed" not in created.headers
    operation = created.json()
    assert operation["amount"] == "12.34" and operation["reference"] == "corrected"
    assert created.headers["Location"] == f"/v1/operations/{operation['id']}"
    assert api.wait(operation["id"])["status"] == "succeeded"

    # The key is now taken by the corrected request: the same request replays it.
    replayed = send(api, "POST", path, body=body, key=key)
    assert replayed.status_code == 202, replayed.text
    assert replayed.headers.get("Idempotent-Replayed") == "true"
    assert replayed.json()["id"] == operation["id"]
    assert operations_of(db, target.tenant_id) == 2
    if is_transfer:
        assert api.balance(target.source) == Decimal("37.66")
        assert api.balance(target.dest) == Decimal("12.34")
    else:
        assert api.balance(target.source) == Decimal("62.34")


@pytest.mark.parametrize(
    ("refused_body", "code"),
    [
        pytest.param('{"name": ""}', "validation_error", id="empty-name"),
        pytest.param('{"name": "Alice", "currency": "EUR"}', "unsupported_currency", id="eur"),
        pytest.param('{"name": "Alice", "extra": 1}', "validation_error", id="unknown-field"),
    ],
)
def test_refused_account_creation_does_not_use_up_its_key(
    api: Api, db: Conn, refused_body: str, code: str
) -> None:
    tenant_id = tenant_of(db, api)
    key = new_key().encode()
    assert_problem(
        send(api, "POST", "/v1/accounts", body=refused_body.encode(), key=key), 422, code
    )
    assert accounts_of(db, tenant_id) == 0

    created = send(api, "POST", "/v1/accounts", body=b'{"name": "Alice"}', key=key)
    assert created.status_code == 201, created.text
    assert "Idempotent-Replayed" not in created.headers
    replayed = send(api, "POST", "/v1/accounts", body=b'{"name": "Alice"}', key=key)
    assert replayed.status_code == 201, replayed.text
    assert replayed.headers.get("Idempotent-Replayed") == "true"
    assert replayed.json()["id"] == created.json()["id"]
    assert accounts_of(db, tenant_id) == 1


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


@pytest.mark.parametrize(("literal", "expected"), GOOD_AMOUNTS)
def test_good_replenishment_amount_is_accepted(
    api: Api, db: Conn, literal: str, expected: str
) -> None:
    target = make_target(api, db)
    body = _number_body("amount", literal).encode()
    response = send(
        api,
        "POST",
        f"/v1/wallets/{target.source}/replenishments",
        body=body,
        key=new_key().encode(),
    )
    assert response.status_code == 202, response.text
    operation = response.json()
    assert operation["amount"] == expected
    assert operation["currency"] == "USD"
    assert operation["wallet_id"] == target.source
    assert operation["reference"] is None
    assert api.wait(operation["id"])["status"] == "succeeded"
    assert api.wallet(target.source)["balance"] == expected


@pytest.mark.parametrize(("literal", "expected"), GOOD_AMOUNTS)
def test_good_transfer_amount_is_accepted(api: Api, db: Conn, literal: str, expected: str) -> None:
    target = make_target(api, db, funded="1000000000.00")
    body = _number_body("amount", literal, from_wallet_id=target.source, to_wallet_id=target.dest)
    response = send(api, "POST", TRANSFER_PATH, body=body.encode(), key=new_key().encode())
    assert response.status_code == 202, response.text
    operation = response.json()
    assert operation["amount"] == expected
    assert operation["currency"] == "USD"
    assert (operation["from_wallet_id"], operation["to_wallet_id"]) == (target.source, target.dest)
    assert api.wait(operation["id"])["status"] == "succeeded"
    assert api.wallet(target.dest)["balance"] == expected
    assert api.balance(target.source) == Decimal("1000000000.00") - Decimal(expected)


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


@pytest.mark.parametrize(("extra", "reference"), GOOD_OPTIONALS)
def test_optional_fields_are_accepted_on_replenishment(
    api: Api, db: Conn, extra: dict[str, Any], reference: str | None
) -> None:
    target = make_target(api, db)
    response = api.post(
        f"/v1/wallets/{target.source}/replenishments", {"amount": "3.00", **extra}, key=new_key()
    )
    assert response.status_code == 202, response.text
    operation = response.json()
    assert operation["currency"] == "USD"
    assert operation["reference"] == reference
    assert api.operation(operation["id"])["reference"] == reference
    assert api.wait(operation["id"])["status"] == "succeeded"


@pytest.mark.parametrize(("extra", "reference"), GOOD_OPTIONALS)
def test_optional_fields_are_accepted_on_transfer(
    api: Api, db: Conn, extra: dict[str, Any], reference: str | None
) -> None:
    target = make_target(api, db, funded="5.00")
    response = api.transfer(target.source, target.dest, "3.00", **extra)
    assert response.status_code == 202, response.text
    operation = response.json()
    assert operation["currency"] == "USD"
    assert operation["reference"] == reference
    assert api.wait(operation["id"])["status"] == "succeeded"
    assert api.balance(target.dest) == Decimal("3.00")


def test_longest_idempotency_key_is_accepted(api: Api, db: Conn) -> None:
    target = make_target(api, db)
    printable = "".join(chr(c) for c in range(0x20, 0x7F))  # every printable ASCII character
    key = ("k" + printable * 3)[:254] + "k"  # no space at either end: HTTP would strip it
    assert len(key) == 255
    response = send(
        api,
        "POST",
        f"/v1/wallets/{target.source}/replenishments",
        body=b'{"amount": "1.00"}',
        key=key.encode(),
    )
    assert response.status_code == 202, response.text
    replayed = send(
        api,
        "POST",
        f"/v1/wallets/{target.source}/replenishments",
        body=b'{"amount": "1.00"}',
        key=key.encode(),
    )
    assert replayed.headers.get("Idempotent-Replayed") == "true"
    assert replayed.json()["id"] == response.json()["id"]


# --- accounts ---------------------------------------------------------------------------

BAD_ACCOUNTS: list[Case] = [
    Case("name-missing", "{}"),
    Case("name-empty", '{"name": ""}'),
    Case("name-blank", '{"name": "   "}'),
    Case("name-whitespace-controls", '{"name": "\\t\\n"}'),
    Case("name-201-chars", '{"name": "' + "n" * 201 + '"}'),
    Case("name-10k-chars", '{"name": "' + "n" * 10_000 + '"}'),
    Case("name-number", '{"name": 123}'),
    Case("name-true", '{"name": true}'),
    Case("name-null", '{"name": null}'),
    Case("name-list", '{"name": ["Alice"]}'),
    Case("name-object", '{"name": {"first": "Alice"}}'),
    *[Case(f"name-{name}", f'{{"name": {literal}}}') for name, literal in BAD_TEXT],
    Case("currency-eur", '{"name": "Alice", "currency": "EUR"}', code="unsupported_currency"),
    Case("currency-number", '{"name": "Alice", "currency": 840}'),
    Case("currency-list", '{"name": "Alice", "currency": ["USD"]}'),
    Case("unknown-field", '{"name": "Alice", "balance": "1000.00"}'),
    Case("unknown-field-wallet", '{"name": "Alice", "wallet": {"balance": "1000.00"}}'),
    *body_shape_cases('{"name": "Alice"}'),
    # Optional here, but an empty one is a client's mistake, refused as on money-moving
    # requests rather than taken as absent (a retry would then create a second account).
    Case("key-empty", '{"name": "Alice"}', 400, "idempotency_key_required", key=b""),
    Case("key-256-chars", '{"name": "Alice"}', key=b"k" * 256),
    Case("key-non-ascii", '{"name": "Alice"}', key="cl\u00e9".encode()),
    Case("key-control-tab", '{"name": "Alice"}', key=b"a\tb"),
]


@pytest.mark.parametrize("case", _params(BAD_ACCOUNTS))
def test_bad_account_is_refused(api: Api, db: Conn, case: Case) -> None:
    tenant_id = tenant_of(db, api)
    body = case.body.encode() if isinstance(case.body, str) else case.body
    key = None if case.key == b"<fresh>" else case.key
    response = send(api, "POST", "/v1/accounts", body=body, key=key, content_type=case.content_type)
    _assert_refused(response, case)
    assert accounts_of(db, tenant_id) == 0
    assert idempotency_records_of(db, tenant_id) == 0
    listing = api.get("/v1/accounts")
    assert listing.status_code == 200 and listing.json()["items"] == []


@pytest.mark.parametrize(
    ("body", "name"),
    [
        pytest.param({"name": "A"}, "A", id="one-char-name-currency-omitted"),
        pytest.param({"name": "n" * 200, "currency": "USD"}, "n" * 200, id="200-char-name"),
        pytest.param({"name": "Zo\u00eb \U0001f680"}, "Zo\u00eb \U0001f680", id="unicode-name"),
        pytest.param({"name": "  padded  "}, "  padded  ", id="padded-name"),
    ],
)
def test_good_account_is_accepted(api: Api, body: dict[str, Any], name: str) -> None:
    response = api.post("/v1/accounts", body)
    assert response.status_code == 201, response.text
    account = response.json()
    assert account["name"] == name
    assert account["wallet"]["currency"] == "USD"
    assert account["wallet"]["balance"] == "0.00"
    fetched = api.get(f"/v1/accounts/{account['id']}")
    assert fetched.status_code == 200 and fetched.json()["name"] == name


# --- path ids ---------------------------------------------------------------------------

ID_ROUTES = [
    pytest.param("/v1/accounts/{}", id="account"),
    pytest.param("/v1/wallets/{}", id="wallet"),
    pytest.param("/v1/wallets/{}/postings", id="postings"),
    pytest.param("/v1/operations/{}", id="operation"),
]


@pytest.mark.parametrize("route", ID_ROUTES)
@pytest.mark.parametrize("bad_id", [pytest.param(bad, id=name) for name, bad in BAD_IDS])
def test_malformed_path_id_is_refused(api: Api, route: str, bad_id: str) -> None:
    api.create_wallet()  # the tenant has something an injection could reveal
    response = send(api, "GET", route.format(quote(bad_id)))
    body = assert_problem(response, 422, "validation_error")
    assert body["errors"], body


@pytest.mark.parametrize("route", ID_ROUTES)
@pytest.mark.parametrize(
    "unknown_id",
    [
        pytest.param(UNKNOWN_WALLET, id="random"),
        pytest.param(str(uuid.UUID(int=0)), id="nil"),
        pytest.param(str(uuid.uuid4()).upper(), id="upper-case"),
    ],
)
def test_unknown_path_id_is_not_found(api: Api, route: str, unknown_id: str) -> None:
    response = send(api, "GET", route.format(unknown_id))
    assert_problem(response, 404, "not_found")


# --- list parameters --------------------------------------------------------------------

BAD_PAGE_PARAMS = [
    pytest.param("limit=0", id="limit-0"),
    pytest.param("limit=201", id="limit-201"),
    pytest.param("limit=-1", id="limit-negative"),
    pytest.param("limit=abc", id="limit-abc"),
    pytest.param("limit=", id="limit-empty"),
    pytest.param("limit=1.5", id="limit-fraction"),
    pytest.param("limit=1e2", id="limit-exponent"),
    pytest.param("limit=99999999999999999999999", id="limit-huge"),
    pytest.param("limit=10&limit=500", id="limit-repeated-out-of-range"),
    pytest.param("cursor=!!!", id="cursor-punctuation"),
    pytest.param("cursor=abc", id="cursor-garbage-base64"),
    pytest.param("cursor=", id="cursor-empty"),
    pytest.param("cursor=" + "a" * 65, id="cursor-too-long"),
    pytest.param("cursor=" + "A" * 10_240, id="cursor-10kB"),
    pytest.param("cursor=cDE6MA", id="cursor-position-zero"),
    pytest.param("cursor=cDE6LTE", id="cursor-position-negative"),
    pytest.param("cursor=cDE6OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5", id="cursor-position-over-bigint"),
    pytest.param("cursor=cDE6eA", id="cursor-position-not-a-number"),
    pytest.param("cursor=%00", id="cursor-nul"),
    pytest.param("cursor=%27%20OR%201%3D1%20--", id="cursor-sql"),
]

LIST_ROUTES = [
    pytest.param("/v1/accounts", id="accounts"),
    pytest.param(f"/v1/wallets/{SOURCE}/postings", id="postings"),
]


@pytest.mark.parametrize("route", LIST_ROUTES)
@pytest.mark.parametrize("params", BAD_PAGE_PARAMS)
def test_bad_page_parameter_is_refused(api: Api, db: Conn, route: str, params: str) -> None:
    target = make_target(api, db)
    response = send(api, "GET", target.fill(route) + "?" + params)
    body = assert_problem(response, 422, "validation_error")
    assert body["errors"], body


@pytest.mark.parametrize("route", LIST_ROUTES)
def test_page_limits_at_the_bounds_and_cursors_work(api: Api, db: Conn, route: str) -> None:
    target = make_target(api, db, funded="10.00")
    for amount in ("1.00", "2.00"):
        assert api.wait(api.replenish(target.source, amount).json()["id"])["status"] == "succeeded"
    # accounts: 2 (source, destination); postings of the source: 3
    expected = 2 if route == "/v1/accounts" else 3
    full = send(api, "GET", target.fill(route), params={"limit": "200"})
    assert full.status_code == 200, full.text
    assert len(full.json()["items"]) == expected and full.json()["next_cursor"] is None
    seen: list[str] = []
    cursor: str | None = None
    while True:
        params = {"limit": "1", **({"cursor": cursor} if cursor else {})}
        page = send(api, "GET", target.fill(route), params=params)
        assert page.status_code == 200, page.text
        assert len(page.json()["items"]) <= 1
        seen += [item["id"] for item in page.json()["items"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert seen == [item["id"] for item in full.json()["items"]]


@pytest.fixture
def settled_operation(api: Api) -> str:
    wallet = api.create_wallet()
    response = api.replenish(wallet, "1.00")
    assert response.status_code == 202, response.text
    operation_id = str(response.json()["id"])
    assert api.wait(operation_id)["status"] == "succeeded"
    return operation_id


@pytest.mark.parametrize(
    "wait",
    [
        pytest.param("-1", id="negative"),
        pytest.param("-0.001", id="slightly-negative"),
        pytest.param("31", id="31"),
        pytest.param("30.001", id="just-over-30"),
        pytest.param("abc", id="abc"),
        pytest.param("nan", id="nan"),
        pytest.param("NaN", id="NaN"),
        pytest.param("inf", id="inf"),
        pytest.param("-inf", id="minus-inf"),
        pytest.param("1e400", id="overflowing-exponent"),
        pytest.param("", id="empty"),
        pytest.param("true", id="true"),
        pytest.param("1,5", id="decimal-comma"),
    ],
)
def test_bad_wait_is_refused(api: Api, settled_operation: str, wait: str) -> None:
    response = send(api, "GET", f"/v1/operations/{settled_operation}?wait={quote(wait)}")
    body = assert_problem(response, 422, "validation_error")
    assert body["errors"], body


@pytest.mark.parametrize("wait", ["0", "0.5", "30", "30.0"])
def test_good_wait_is_accepted(api: Api, settled_operation: str, wait: str) -> None:
    response = send(api, "GET", f"/v1/operations/{settled_operation}", params={"wait": wait})
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "succeeded"
    assert response.elapsed.total_seconds() < 5  # final already: no waiting


def test_wait_on_unknown_operation_is_not_found(api: Api) -> None:
    response = send(api, "GET", f"/v1/operations/{uuid.uuid4()}", params={"wait": "1"})
    assert_problem(response, 404, "not_found")
