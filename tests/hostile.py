"""Hostile input, and what a refusal must leave behind (API.md, "Conventions",
"Idempotency"): the tools of the test_validation_* files.

Every bad request must be answered with the documented 4xx problem+json (never a 5xx),
and a refused money-moving request must leave no trace: no operation, no idempotency
record, no posting, no balance change. A refusal does not use up its Idempotency-Key.

Hostile requests go out on a fresh connection each (`send`), so that one answer that
breaks the connection (a 500 makes uvicorn drop it) cannot spill over into the next case.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import psycopg2.extensions
import pytest

from shared.apikeys import hash_key
from tests.conftest import query
from tests.helpers import Api, assert_problem, new_key

Conn = psycopg2.extensions.connection

SOURCE = "$SOURCE"  # placeholders in paths and bodies: the tenant's two wallets
DEST = "$DEST"
UNKNOWN_WALLET = "0191a1c2-0000-7000-8000-000000000001"  # well formed, nobody's


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


def raw_replenishment(api: Api, target: Target, key: bytes) -> bytes:
    """A replenishment of the target's source wallet, byte for byte, with any bytes for its
    Idempotency-Key: for `raw_http`."""
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


# --- refused requests -------------------------------------------------------------------


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


def number_body(field: str, literal: str, **others: str) -> str:
    """A JSON object whose `field` is the literal JSON text given (NaN, 1e3, 40 digits)."""
    members = [f'"{name}": "{value}"' for name, value in others.items()]
    members.append(f'"{field}": {literal}')
    return "{" + ", ".join(members) + "}"


def case_params(cases: list[Case]) -> list[Any]:
    return [pytest.param(case, id=case.name) for case in cases]


def assert_refused(response: httpx.Response, case: Case) -> None:
    assert response.status_code < 500, (case.name, response.status_code, response.text[:500])
    body = assert_problem(response, case.status, case.code)
    if case.code == "validation_error":
        assert isinstance(body.get("errors"), list) and body["errors"], body
        assert all({"loc", "msg"} <= set(error) for error in body["errors"]), body
    assert "Idempotent-Replayed" not in response.headers
    assert "Location" not in response.headers


def assert_post_refused(api: Api, db: Conn, case: Case, default_path: str) -> None:
    """The case, sent to a new pair of wallets, is refused and leaves nothing behind."""
    target = make_target(api, db)
    path, body, key = case.request(target, default_path)
    response = send(api, "POST", path, body=body, key=key, content_type=case.content_type)
    assert_refused(response, case)
    assert operations_of(db, target.tenant_id) == 0
    assert idempotency_records_of(db, target.tenant_id) == 0
