"""Tenant isolation and authentication (API.md, "Conventions" and "Idempotency").

Anything of another tenant answers 404 exactly as if it did not exist, a tenant's
attempts on another's wallets move nothing and create nothing, Idempotency-Keys are
scoped to the tenant, and every /v1 route needs a valid `Authorization: Bearer` key.
"""

from __future__ import annotations

import base64
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import psycopg2.extensions
import pytest

from shared.apikeys import hash_key
from tests.conftest import Stack, query
from tests.helpers import Api, assert_problem, new_key

Conn = psycopg2.extensions.connection


def tenant_of(db: Conn, api: Api) -> str:
    rows = query(db, "SELECT tenant_id FROM api_key WHERE key_hash = %s", hash_key(api.api_key))
    assert len(rows) == 1
    return str(rows[0][0])


def count(db: Conn, sql: str, *args: Any) -> int:
    return int(query(db, sql, *args)[0][0])


def account_ids(api: Api) -> list[str]:
    """Every account the tenant sees, walking all pages."""
    ids: list[str] = []
    cursor: str | None = None
    while True:
        params = {"limit": "200", **({"cursor": cursor} if cursor else {})}
        response = api.get("/v1/accounts", params=params)
        assert response.status_code == 200, response.text
        ids += [item["id"] for item in response.json()["items"]]
        cursor = response.json()["next_cursor"]
        if cursor is None:
            return ids


# --- two tenants, A with history ------------------------------------------------------


@dataclass
class World:
    a: Api
    b: Api
    a_tenant: str
    b_tenant: str
    a_account: str
    a_wallet: str  # funded 100.00, sent 5.00 to a_wallet2
    a_wallet2: str
    a_replenishment: str
    a_transfer: str
    b_account: str
    b_wallet: str  # funded 50.00

    def ids(self) -> dict[str, str]:
        return {
            "a_account": self.a_account,
            "a_wallet": self.a_wallet,
            "a_wallet2": self.a_wallet2,
            "a_replenishment": self.a_replenishment,
            "a_transfer": self.a_transfer,
            "b_wallet": self.b_wallet,
        }


@pytest.fixture
def world(api: Api, other_api: Api, db: Conn) -> World:
    a_account = api.create_account("Alice")
    a_wallet = a_account["wallet"]["id"]
    a_wallet2 = api.create_wallet("Alice savings")
    replenishment = api.replenish(a_wallet, "100.00", reference="A top-up")
    assert replenishment.status_code == 202, replenishment.text
    transfer = api.transfer(a_wallet, a_wallet2, "5.00", reference="A transfer")
    assert transfer.status_code == 202, transfer.text
    assert api.wait(replenishment.json()["id"])["status"] == "succeeded"
    assert api.wait(transfer.json()["id"])["status"] == "succeeded"
    b_account = other_api.create_account("Bob")
    b_wallet = b_account["wallet"]["id"]
    b_top_up = other_api.replenish(b_wallet, "50.00")
    assert other_api.wait(b_top_up.json()["id"])["status"] == "succeeded"
    return World(
        a=api,
        b=other_api,
        a_tenant=tenant_of(db, api),
        b_tenant=tenant_of(db, other_api),
        a_account=a_account["id"],
        a_wallet=a_wallet,
        a_wallet2=a_wallet2,
        a_replenishment=replenishment.json()["id"],
        a_transfer=transfer.json()["id"],
        b_account=b_account["id"],
        b_wallet=b_wallet,
    )


def state(world: World, db: Conn) -> dict[str, Any]:
    """What B's attempts must leave unchanged, through the API and in the database."""
    a_wallets = [world.a_wallet, world.a_wallet2]
    return {
        "a_wallets": [world.a.wallet(w) for w in a_wallets],
        "a_postings": [world.a.postings(w) for w in a_wallets],
        "a_operations": [world.a.operation(op) for op in (world.a_replenishment, world.a_transfer)],
        "a_accounts": account_ids(world.a),
        "b_wallet": world.b.wallet(world.b_wallet),
        "b_postings": world.b.postings(world.b_wallet),
        "b_accounts": account_ids(world.b),
        "db_operations_of_a": count(
            db, "SELECT count(*) FROM operation WHERE tenant_id = %s", world.a_tenant
        ),
        "db_operations_of_b": count(
            db, "SELECT count(*) FROM operation WHERE tenant_id = %s", world.b_tenant
        ),
        "db_operations_naming_a_wallets": count(
            db,
            "SELECT count(*) FROM operation WHERE wallet_id = ANY(%s::uuid[]) "
            "OR from_wallet_id = ANY(%s::uuid[]) OR to_wallet_id = ANY(%s::uuid[])",
            a_wallets,
            a_wallets,
            a_wallets,
        ),
        "db_keys_of_b": count(
            db, "SELECT count(*) FROM idempotency_key WHERE tenant_id = %s", world.b_tenant
        ),
        "db_postings": query(
            db,
            "SELECT wallet_id::text, count(*), sum(amount) FROM posting "
            "WHERE wallet_id = ANY(%s::uuid[]) GROUP BY wallet_id ORDER BY 1",
            [*a_wallets, world.b_wallet],
        ),
    }


# --- B probing A's resources -------------------------------------------------------------


@dataclass(frozen=True)
class Probe:
    """A request B makes naming A's resources; `{a_wallet}` etc. are filled in."""

    name: str
    method: str
    path: str
    body: dict[str, str] | None = None
    params: dict[str, str] | None = None

    def send(self, world: World, ids: dict[str, str]) -> httpx.Response:
        path = self.path.format(**ids)
        if self.method == "GET":
            return world.b.get(path, params=self.params)
        body = {k: v.format(**ids) for k, v in (self.body or {}).items()}
        return world.b.post(path, body, key=new_key())


PROBES = [
    Probe("get-account", "GET", "/v1/accounts/{a_account}"),
    Probe("get-wallet", "GET", "/v1/wallets/{a_wallet}"),
    Probe("get-second-wallet", "GET", "/v1/wallets/{a_wallet2}"),
    Probe("get-postings", "GET", "/v1/wallets/{a_wallet}/postings"),
    Probe("get-postings-paged", "GET", "/v1/wallets/{a_wallet}/postings", params={"limit": "1"}),
    Probe("get-replenishment", "GET", "/v1/operations/{a_replenishment}"),
    Probe("get-transfer", "GET", "/v1/operations/{a_transfer}"),
    Probe(
        "get-replenishment-wait", "GET", "/v1/operations/{a_replenishment}", params={"wait": "1"}
    ),
    Probe("get-transfer-wait", "GET", "/v1/operations/{a_transfer}", params={"wait": "1"}),
    Probe(
        "replenish-a-wallet",
        "POST",
        "/v1/wallets/{a_wallet}/replenishments",
        {"amount": "1.00"},
    ),
    Probe(
        "transfer-from-a-to-b",
        "POST",
        "/v1/transfers",
        {"from_wallet_id": "{a_wallet}", "to_wallet_id": "{b_wallet}", "amount": "1.00"},
    ),
    Probe(
        "transfer-from-b-to-a",
        "POST",
        "/v1/transfers",
        {"from_wallet_id": "{b_wallet}", "to_wallet_id": "{a_wallet}", "amount": "1.00"},
    ),
    Probe(
        "transfer-between-a-wallets",
        "POST",
        "/v1/transfers",
        {"from_wallet_id": "{a_wallet}", "to_wallet_id": "{a_wallet2}", "amount": "1.00"},
    ),
]


def _masked(body: dict[str, Any], ids: dict[str, str]) -> dict[str, Any]:
    detail = str(body["detail"])
    for value in ids.values():
        detail = detail.replace(value, "<id>")
    return {**body, "detail": detail}


def _assert_as_if_missing(probe: Probe, world: World) -> None:
    """404 not_found, and the same answer as for ids that exist nowhere."""
    response = probe.send(world, world.ids())
    body = assert_problem(response, 404, "not_found")
    assert "Idempotent-Replayed" not in response.headers
    for balance in ("95.00", "5.00", "100.00"):  # nothing of A's state leaks
        assert balance not in response.text
    nowhere = {k: (v if k == "b_wallet" else str(uuid.uuid4())) for k, v in world.ids().items()}
    twin = probe.send(world, nowhere)
    twin_body = assert_problem(twin, 404, "not_found")
    assert _masked(body, world.ids()) == _masked(twin_body, nowhere)


@pytest.mark.parametrize("probe", [pytest.param(p, id=p.name) for p in PROBES])
def test_other_tenant_gets_not_found(world: World, db: Conn, probe: Probe) -> None:
    before = state(world, db)
    _assert_as_if_missing(probe, world)
    assert state(world, db) == before


def test_all_probes_together_change_nothing(world: World, db: Conn) -> None:
    before = state(world, db)
    assert before["a_wallets"][0]["balance"] == "95.00"
    assert before["a_wallets"][1]["balance"] == "5.00"
    assert before["b_wallet"]["balance"] == "50.00"
    assert before["db_operations_of_b"] == 1
    for probe in PROBES:
        _assert_as_if_missing(probe, world)
    after = state(world, db)
    assert after == before
    assert after["db_operations_of_b"] == 1  # only B's own top-up
    assert after["db_keys_of_b"] == 1


def test_account_lists_are_per_tenant(world: World) -> None:
    extra = [world.a.create_account(f"Alice {i}")["id"] for i in range(3)]
    a_ids = account_ids(world.a)
    b_ids = account_ids(world.b)
    assert set(a_ids) == {world.a_account, *extra, _account_of(world.a, world.a_wallet2)}
    assert b_ids == [world.b_account]
    assert not set(a_ids) & set(b_ids)


def _account_of(api: Api, wallet_id: str) -> str:
    return str(api.wallet(wallet_id)["account_id"])


def test_a_cursor_does_not_open_another_tenants_list(world: World) -> None:
    for i in range(3):
        world.a.create_account(f"Alice {i}")
    page = world.a.get("/v1/accounts", params={"limit": "1"})
    assert page.status_code == 200
    cursor = page.json()["next_cursor"]
    assert cursor is not None
    a_ids = set(account_ids(world.a))
    response = world.b.get("/v1/accounts", params={"limit": "200", "cursor": cursor})
    assert response.status_code == 200, response.text
    seen = {item["id"] for item in response.json()["items"]}
    assert not seen & a_ids
    assert seen <= {world.b_account}


def test_system_funding_wallets_are_invisible(world: World, db: Conn) -> None:
    """Replenishments are balanced against system wallets that no tenant can see or use."""
    funding = [str(r[0]) for r in query(db, "SELECT id FROM wallet WHERE tenant_id IS NULL")]
    assert funding, "replenishments are balanced against system wallets"
    before = state(world, db)
    for wallet_id in funding[:4]:
        assert_problem(world.a.get(f"/v1/wallets/{wallet_id}"), 404, "not_found")
        assert_problem(world.a.get(f"/v1/wallets/{wallet_id}/postings"), 404, "not_found")
        response = world.a.transfer(wallet_id, world.a_wallet, "1.00")
        assert_problem(response, 404, "not_found")
        response = world.a.transfer(world.a_wallet, wallet_id, "1.00")
        assert_problem(response, 404, "not_found")
        assert_problem(world.a.replenish(wallet_id, "1.00"), 404, "not_found")
    account_id = query(db, "SELECT account_id FROM wallet WHERE id = %s", funding[0])[0][0]
    assert_problem(world.a.get(f"/v1/accounts/{account_id}"), 404, "not_found")
    assert state(world, db) == before


# --- Idempotency-Keys are scoped to the tenant ----------------------------------------


def test_same_key_in_two_tenants_makes_two_replenishments(
    api: Api, other_api: Api, db: Conn
) -> None:
    a_wallet = api.create_wallet("A")
    b_wallet = other_api.create_wallet("B")
    key = new_key()
    a_response = api.replenish(a_wallet, "7.00", key=key)
    b_response = other_api.replenish(b_wallet, "7.00", key=key)
    for response in (a_response, b_response):
        assert response.status_code == 202, response.text
        assert "Idempotent-Replayed" not in response.headers
    a_op, b_op = a_response.json(), b_response.json()
    assert a_op["id"] != b_op["id"]
    assert (a_op["wallet_id"], b_op["wallet_id"]) == (a_wallet, b_wallet)
    assert api.wait(a_op["id"])["status"] == "succeeded"
    assert other_api.wait(b_op["id"])["status"] == "succeeded"
    assert api.balance(a_wallet) == Decimal("7.00")
    assert other_api.balance(b_wallet) == Decimal("7.00")
    rows = query(db, "SELECT tenant_id::text FROM operation WHERE idempotency_key = %s", key)
    assert sorted(r[0] for r in rows) == sorted([tenant_of(db, api), tenant_of(db, other_api)])

    # Each tenant's replay gives its own operation.
    a_again = api.replenish(a_wallet, "7.00", key=key)
    b_again = other_api.replenish(b_wallet, "7.00", key=key)
    assert a_again.headers.get("Idempotent-Replayed") == "true"
    assert b_again.headers.get("Idempotent-Replayed") == "true"
    assert (a_again.json()["id"], b_again.json()["id"]) == (a_op["id"], b_op["id"])


def test_same_key_in_two_tenants_makes_two_transfers(api: Api, other_api: Api) -> None:
    a_from, a_to = api.funded_wallet("10.00"), api.create_wallet()
    b_from, b_to = other_api.funded_wallet("10.00"), other_api.create_wallet()
    key = new_key()
    a_response = api.transfer(a_from, a_to, "4.00", key=key)
    b_response = other_api.transfer(b_from, b_to, "4.00", key=key)
    for response in (a_response, b_response):
        assert response.status_code == 202, response.text
        assert "Idempotent-Replayed" not in response.headers
    assert a_response.json()["id"] != b_response.json()["id"]
    assert api.wait(a_response.json()["id"])["status"] == "succeeded"
    assert other_api.wait(b_response.json()["id"])["status"] == "succeeded"
    assert (api.balance(a_from), api.balance(a_to)) == (Decimal("6.00"), Decimal("4.00"))
    assert (other_api.balance(b_from), other_api.balance(b_to)) == (
        Decimal("6.00"),
        Decimal("4.00"),
    )


def test_same_key_in_two_tenants_makes_two_accounts(api: Api, other_api: Api) -> None:
    key = new_key()
    a_response = api.post("/v1/accounts", {"name": "Same"}, key=key)
    b_response = other_api.post("/v1/accounts", {"name": "Same"}, key=key)
    for response in (a_response, b_response):
        assert response.status_code == 201, response.text
        assert "Idempotent-Replayed" not in response.headers
    assert a_response.json()["id"] != b_response.json()["id"]
    assert account_ids(api) == [a_response.json()["id"]]
    assert account_ids(other_api) == [b_response.json()["id"]]


def test_another_tenants_key_replays_nothing(world: World, db: Conn) -> None:
    """B sends A's key with A's exact request: not a replay of A's operation, but 404."""
    key = new_key()
    a_response = world.a.replenish(world.a_wallet, "2.00", key=key)
    assert a_response.status_code == 202, a_response.text
    assert world.a.wait(a_response.json()["id"])["status"] == "succeeded"
    before = state(world, db)
    b_response = world.b.replenish(world.a_wallet, "2.00", key=key)
    assert_problem(b_response, 404, "not_found")
    assert "Idempotent-Replayed" not in b_response.headers
    assert a_response.json()["id"] not in b_response.text
    # and B can still use that key for its own request
    b_own = world.b.replenish(world.b_wallet, "2.00", key=key)
    assert b_own.status_code == 202, b_own.text
    assert "Idempotent-Replayed" not in b_own.headers
    assert world.b.wait(b_own.json()["id"])["status"] == "succeeded"
    after = state(world, db)
    assert after["a_wallets"] == before["a_wallets"]
    assert after["a_postings"] == before["a_postings"]
    assert after["db_operations_naming_a_wallets"] == before["db_operations_naming_a_wallets"]
    assert after["db_operations_of_b"] == before["db_operations_of_b"] + 1
    assert Decimal(after["b_wallet"]["balance"]) == Decimal("52.00")


# --- authentication ---------------------------------------------------------------------


def _unknown_well_formed_key() -> str:
    return "sk_" + secrets.token_urlsafe(32)  # 43 URL-safe characters, like a real key


# (id, Authorization value made from the tenant's valid key; None: no header)
Authorization = Callable[[str], str | bytes | None]
BAD_AUTHORIZATIONS: list[tuple[str, Authorization]] = [
    ("missing", lambda key: None),
    ("basic-xyz", lambda key: "Basic xyz"),
    ("basic-with-valid-key", lambda key: "Basic " + base64.b64encode(f"{key}:".encode()).decode()),
    ("bearer-alone", lambda key: "Bearer"),
    ("bearer-sk-unknown", lambda key: "Bearer sk_unknown"),
    ("bearer-unknown-well-formed", lambda key: f"Bearer {_unknown_well_formed_key()}"),
    ("valid-key-without-scheme", lambda key: key),
    ("token-scheme", lambda key: f"Token {key}"),
    ("valid-key-plus-a-char", lambda key: f"Bearer {key}A"),
    ("valid-key-minus-a-char", lambda key: f"Bearer {key[:-1]}"),
    ("valid-key-changed-case", lambda key: f"Bearer {key[:3]}{key[3:].swapcase()}"),
    ("two-keys", lambda key: f"Bearer {key}, Bearer {key}"),
    ("bearer-non-ascii", lambda key: "Bearer sk_\u00e9".encode()),
    ("bearer-10kB", lambda key: "Bearer sk_" + "a" * 10_240),
    ("bearer-sql", lambda key: "Bearer ' OR '1'='1"),
]


def _routes(world: World) -> list[tuple[str, str, dict[str, Any] | None]]:
    return [
        ("GET", "/v1/accounts", None),
        ("POST", "/v1/accounts", {"name": "Mallory"}),
        ("GET", f"/v1/accounts/{world.a_account}", None),
        ("GET", f"/v1/wallets/{world.a_wallet}", None),
        ("GET", f"/v1/wallets/{world.a_wallet}/postings", None),
        ("POST", f"/v1/wallets/{world.a_wallet}/replenishments", {"amount": "1.00"}),
        (
            "POST",
            "/v1/transfers",
            {"from_wallet_id": world.a_wallet, "to_wallet_id": world.b_wallet, "amount": "1.00"},
        ),
        ("GET", f"/v1/operations/{world.a_transfer}", None),
        ("GET", f"/v1/operations/{world.a_transfer}?wait=1", None),
        ("GET", "/v1/accounts/not-a-uuid", None),
        ("GET", "/v1/no-such-route", None),
        ("GET", "/v1", None),
    ]


def _request(
    base_url: str,
    method: str,
    path: str,
    authorization: str | bytes | None,
    body: dict[str, Any] | None,
) -> httpx.Response:
    headers: list[tuple[bytes, bytes]] = [(b"Idempotency-Key", new_key().encode())]
    if authorization is not None:
        value = authorization if isinstance(authorization, bytes) else authorization.encode()
        headers.append((b"Authorization", value))
    with httpx.Client(base_url=base_url, timeout=30) as client:
        return client.request(method, path, json=body, headers=headers)


@pytest.mark.parametrize(
    "authorization", [pytest.param(make, id=name) for name, make in BAD_AUTHORIZATIONS]
)
def test_bad_authorization_is_unauthorized(
    world: World, db: Conn, authorization: Authorization
) -> None:
    before = state(world, db)
    accounts_before = count(db, "SELECT count(*) FROM account")
    operations_before = count(db, "SELECT count(*) FROM operation")
    for method, path, body in _routes(world):
        response = _request(world.a.base_url, method, path, authorization(world.a.api_key), body)
        problem = assert_problem(response, 401, "unauthorized")
        assert response.headers.get("WWW-Authenticate", "").lower().startswith("bearer"), (
            method,
            path,
        )
        assert "errors" not in problem
        # nothing of A's leaks into a refusal
        for value in (world.a_wallet, world.a_transfer, world.a_account):
            if value not in path:
                assert value not in response.text
        assert "95.00" not in response.text
    assert count(db, "SELECT count(*) FROM account") == accounts_before
    assert count(db, "SELECT count(*) FROM operation") == operations_before
    assert state(world, db) == before


@pytest.mark.parametrize(
    "scheme",
    [
        pytest.param("Bearer", id="canonical"),
        pytest.param("bearer", id="lower-case"),
        pytest.param("BEARER", id="upper-case"),
        pytest.param("bEaReR", id="mixed-case"),
    ],
)
def test_bearer_scheme_is_case_insensitive(world: World, scheme: str) -> None:
    response = _request(
        world.a.base_url, "GET", "/v1/accounts", f"{scheme} {world.a.api_key}", None
    )
    assert response.status_code == 200, response.text
    assert world.a_account in {item["id"] for item in response.json()["items"]}
    response = _request(
        world.a.base_url,
        "GET",
        f"/v1/wallets/{world.a_wallet}",
        f"{scheme} {world.a.api_key}",
        None,
    )
    assert response.status_code == 200, response.text
    assert response.json()["balance"] == "95.00"


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
@pytest.mark.parametrize(
    "authorization",
    [
        pytest.param(None, id="no-header"),
        pytest.param("Basic xyz", id="garbage-header"),
        pytest.param("Bearer sk_unknown", id="unknown-key"),
    ],
)
def test_health_needs_no_key(stack: Stack, path: str, authorization: str | None) -> None:
    response = _request(stack.base_url, "GET", path, authorization, None)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "ok"
