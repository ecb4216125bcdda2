"""Hostile and edge-case reads: ids in paths, page parameters and long-poll waits."""

from __future__ import annotations

import uuid
from urllib.parse import quote

import pytest

from tests.helpers import Api, assert_problem
from tests.hostile import SOURCE, UNKNOWN_WALLET, Conn, make_target, send
from tests.hostile_tables import BAD_IDS

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
