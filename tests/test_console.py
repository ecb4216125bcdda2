"""The console over HTTP, against the real stack: sign-in and its session (cookie flags,
CSRF, revocation, sign-out), tenant isolation on every page, the pages' content, and what
is served with them. The browser's view is `test_console_browser.py`."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from api.app import create_app
from shared import apikeys
from tests.console_story import Console, Story, story_of
from tests.stack import REDIS_URL

PAGES = ["accounts", "events", "webhooks", "system"]


@pytest.fixture(scope="module")
def story(stack: Any, database_url: str) -> Iterator[Story]:
    with story_of(stack, database_url) as made:
        yield made


@pytest.fixture
def console(story: Story) -> Iterator[Console]:
    client = Console(story.api.base_url)
    assert client.sign_in(story.api.api_key).status_code == 303
    yield client
    client.close()


@pytest.fixture
def anonymous(stack: Any) -> Iterator[Console]:
    client = Console(stack.base_url)
    yield client
    client.close()


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_pages_need_a_session(anonymous: Console, story: Story) -> None:
    for path in [*(f"/console/{p}" for p in PAGES), f"/console/wallets/{story.alice}"]:
        response = anonymous.get(path)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/console/sign-in?next=%2Fconsole%2F")
    for home in ("/console", "/console/"):
        assert anonymous.get(home).headers["location"] == "/console/accounts"


def test_sign_in_keeps_only_an_opaque_http_only_cookie(anonymous: Console, story: Story) -> None:
    response = anonymous.sign_in(story.api.api_key, next_url=f"/console/wallets/{story.alice}")
    assert response.status_code == 303
    assert response.headers["location"] == f"/console/wallets/{story.alice}"
    [cookie] = [c for c in response.headers.get_list("set-cookie") if "paysys_console=" in c]
    flags = {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "path", "samesite", "max-age"} <= flags
    assert "samesite=lax" in cookie.lower() and "path=/console" in cookie.lower()
    assert "secure" not in flags  # plain http here; https sets it (test_secure_cookie_...)
    token = cookie.split(";")[0].split("=", 1)[1]
    assert story.api.api_key not in cookie and len(token) == 43
    # Redis holds the session under a digest of the token, and no key in it.
    client = redis.Redis.from_url(REDIS_URL)
    from shared.settings import get_settings

    stored = [
        client.get(name)
        for name in client.scan_iter(f"{get_settings().redis_prefix}:console:session:*")
    ]
    client.close()
    assert stored and all(token.encode() not in (v or b"") for v in stored)
    assert all(story.api.api_key.encode() not in (v or b"") for v in stored)
    assert anonymous.get(f"/console/wallets/{story.alice}").status_code == 200


def test_secure_cookie_over_https() -> None:
    from starlette.requests import Request
    from starlette.responses import Response

    from api.console import sessions

    scope = {"type": "http", "scheme": "https", "server": ("x", 443), "path": "/", "headers": []}
    response = Response()
    sessions.set_session_cookie(response, Request(scope), "t" * 43)
    assert "secure" in response.headers["set-cookie"].lower()


def test_a_wrong_key_is_refused(anonymous: Console, story: Story) -> None:
    for key in ("sk_" + "x" * 43, "not a key", ""):
        response = anonymous.sign_in(key)
        assert response.status_code == 401
        assert "That API key is not valid" in response.text
        assert "paysys_console=" not in response.headers.get("set-cookie", "")
    assert anonymous.get("/console/accounts").status_code == 303


def test_sign_in_needs_its_csrf_token(anonymous: Console, story: Story) -> None:
    token = anonymous.form_token()
    form = {"api_key": story.api.api_key, "csrf_token": token}
    origin = {"Origin": anonymous.base_url}
    assert (
        anonymous.http.post(
            "/console/sign-in", data={**form, "csrf_token": "x" * 43}, headers=origin
        ).status_code
        == 403
    )
    evil = {"Origin": "https://evil.example"}
    assert anonymous.http.post("/console/sign-in", data=form, headers=evil).status_code == 403
    anonymous.http.cookies.clear()  # no double-submit cookie
    assert anonymous.http.post("/console/sign-in", data=form, headers=origin).status_code == 403
    assert anonymous.get("/console/accounts").status_code == 303


def test_next_never_leaves_the_console(anonymous: Console, story: Story) -> None:
    for target in ("https://evil.example/", "//evil.example/x", "/v1/accounts", "/console//x"):
        anonymous.http.cookies.clear()
        response = anonymous.sign_in(story.api.api_key, next_url=target)
        assert response.headers["location"] == "/console/accounts", target


def test_sign_out_needs_its_token_and_ends_the_session(console: Console) -> None:
    cookie = console.http.cookies.get("paysys_console")
    refused = console.http.post("/console/sign-out", data={"csrf_token": "x" * 43})
    assert refused.status_code == 403
    assert console.get("/console/accounts").status_code == 200
    response = console.sign_out()
    assert response.status_code == 303
    assert response.headers["location"] == "/console/sign-in?signed_out=1"
    assert console.get("/console/accounts").status_code == 303
    # The old cookie, replayed, is worth nothing: the session is gone from the server.
    console.http.cookies.set("paysys_console", cookie or "", path="/console")
    assert console.get("/console/accounts").status_code == 303


def test_a_revoked_key_ends_its_sessions(stack: Any, anonymous: Console) -> None:
    from shared.db import transaction
    from tests.conftest import make_api

    api = make_api(stack)
    assert anonymous.sign_in(api.api_key).status_code == 303
    assert anonymous.get("/console/accounts").status_code == 200
    with transaction() as cur:
        [(_, digest)] = apikeys.revoke_key(cur, api.api_key[: apikeys.DISPLAY_PREFIX_LENGTH])
    apikeys.announce_revocation(digest)
    response = anonymous.get("/console/accounts")
    assert response.status_code == 303 and "ended=1" in response.headers["location"]
    assert anonymous.sign_in(api.api_key).status_code == 401
    api.close()


def test_another_tenants_things_are_not_found(console: Console, story: Story) -> None:
    other = story.other_api
    endpoint = other.post(
        "/v1/webhook-endpoints", {"url": "http://127.0.0.1:9/o", "event_types": ["*"]}
    ).json()["id"]
    event = other.get("/v1/events", params={"wait": 10}).json()["items"][0]["id"]
    nobody = "0191a1c2-0000-7000-8000-000000000001"
    for path in (
        f"/console/wallets/{story.carol}",
        f"/console/operations/{story.carol_topup}",
        f"/console/holds/{story.carol_topup}",
        f"/console/events/{event}",
        f"/console/webhooks/{endpoint}",
        f"/console/wallets/{nobody}",
        "/console/wallets/not-an-id",
        "/console/batches/" + nobody,
        "/console/no-such-page",
    ):
        response = console.http.get(path, follow_redirects=True)
        assert response.status_code == 404, path
        assert "Not found" in response.text and story.carol not in response.text
    for query in (story.carol, story.carol_topup, event, endpoint):
        found = console.get("/console/accounts", params={"q": query})
        assert found.status_code == 200 and "has the id" in found.text
    listing = console.get("/console/accounts").text
    assert "Carol" not in listing and "Alice Liddell" in listing


def test_search_by_name_and_by_any_id(console: Console, story: Story) -> None:
    page = console.get("/console/accounts", params={"q": "ALI"}).text
    assert "Alice Liddell" in page and "Bob Marley" not in page
    assert "Alice Liddell" not in console.get("/console/accounts", params={"q": "iddell"}).text
    for query, target in (
        (story.alice_account, f"/console/wallets/{story.alice}"),
        (story.alice, f"/console/wallets/{story.alice}"),
        (story.transfer, f"/console/operations/{story.transfer}"),
        (story.batch, f"/console/batches/{story.batch}"),
        (story.endpoint, f"/console/webhooks/{story.endpoint}"),
    ):
        response = console.get("/console/accounts", params={"q": query})
        assert response.status_code == 303 and response.headers["location"] == target


def test_wallet_page_has_balances_statement_and_queue(console: Console, story: Story) -> None:
    page = text_of(console.get(f"/console/wallets/{story.alice}").text)
    # 100 - 25 + 5 - 6 = 74; nothing held any more (the capture released the hold).
    assert "Balance 74.00 USD" in page and "Held 0.00 USD" in page
    # The statement, newest first, with the balance after each posting.
    assert re.search(
        r"capture .*-6\.00 74\.00 .*reversal .*\+5\.00 80\.00 .*transfer .*-25\.00 "
        r"75\.00 .*replenishment .*\+100\.00 100\.00",
        page,
    ), page
    assert "insufficient_funds" in page  # the failed withdrawal, in the wallet's queue


def test_operation_page_links_postings_and_relations(console: Console, story: Story) -> None:
    transfer = console.get(f"/console/operations/{story.transfer}").text
    assert f"/console/wallets/{story.alice}" in transfer
    assert f"/console/operations/{story.reversal}" in transfer  # its reversal
    assert "-25.00" in transfer and "+25.00" in transfer  # its postings
    reversal = console.get(f"/console/operations/{story.reversal}").text
    assert f"/console/operations/{story.transfer}" in reversal  # its original
    capture = console.get(f"/console/operations/{story.capture}").text
    assert f"/console/operations/{story.hold}" in capture and "captured" in capture
    hold = text_of(console.get(f"/console/operations/{story.hold}").text)
    assert "Accepted" in hold and "Applied" in hold and "Hold captured" in hold
    topup = text_of(console.get(f"/console/operations/{story.topup}").text)
    assert "funding side" in topup and "+100.00 100.00" in topup


def test_batch_events_webhooks_and_system_pages(console: Console, story: Story) -> None:
    batch = text_of(console.get(f"/console/batches/{story.batch}").text)
    assert "Items 2" in batch and "Succeeded 2" in batch
    events = console.get("/console/events", params={"type": "operation.failed"}).text
    assert f"/console/operations/{story.failed_withdrawal}" in events
    assert f"/console/operations/{story.transfer}" not in events
    endpoint = console.get(f"/console/webhooks/{story.endpoint}").text
    rows = re.findall(r'<tr class="(failed)?">', endpoint.split('id="attempts"')[1])
    assert rows[0] == "failed" and "" in rows  # the failed attempt first, then delivered
    system = text_of(console.get("/console/system").text)
    assert "Oldest pending operation" in system and "Succeeded" in system
    assert "celery@" in system and "webhooks@" in system  # the workers answered the ping


def test_pages_forbid_framing_caching_and_foreign_code(console: Console, story: Story) -> None:
    for path in ("/console/sign-in", "/console/accounts", f"/console/wallets/{story.alice}"):
        headers = console.get(path).headers
        assert headers["cache-control"] == "no-store"
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert headers["x-frame-options"] == "DENY"
    page = console.get("/console/accounts").text
    assets = re.findall(r'(?:href|src)="([^"#]+)"', page)
    assert all(a.startswith("/console/") for a in assets), assets


def test_static_files_are_served_versioned(anonymous: Console) -> None:
    page = anonymous.get("/console/sign-in").text
    [css] = re.findall(r'href="(/console/static/console\.css\?v=\w+)"', page)
    response = anonymous.get(css)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/css")
    assert "immutable" in response.headers["cache-control"]
    assert anonymous.get("/console/static/../../pyproject.toml").status_code == 404


def test_the_console_is_outside_the_api_schema() -> None:
    paths = create_app().openapi()["paths"]
    assert not [p for p in paths if p.startswith("/console")]


def test_every_template_and_static_file_is_package_data() -> None:
    """An installed (not editable) paysys has the console's files: pyproject's package
    data names every one of them."""
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    config = tomllib.loads((root / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["api.console"]
    package = root / "api" / "console"
    files = [
        p.relative_to(package).as_posix()
        for folder in ("templates", "static")
        for p in (package / folder).rglob("*")
        if p.is_file()
    ]
    shipped = {
        p.relative_to(package).as_posix()
        for pattern in patterns
        for p in package.glob(pattern)  # as setuptools globs them: "*" stays in its folder
        if p.is_file()
    }
    assert files and set(files) <= shipped, set(files) - shipped


def test_failed_sign_ins_count_against_the_address(stack: Any, story: Story, tmp_path: Any) -> None:
    """The API's limit on failed authentications per address holds for the console's
    sign-in too, and is one count with the API's: guessing keys through the form gains
    nothing over guessing them with Bearer."""
    import httpx

    from tests.test_protection import own_api

    with own_api(stack, tmp_path, auth_failure_limit="3/minute") as base_url:
        client = Console(base_url)
        for _ in range(2):
            assert client.sign_in("sk_" + "x" * 43).status_code == 401
        bad_bearer = {"Authorization": "Bearer sk_" + "y" * 43}
        assert httpx.get(f"{base_url}/v1/accounts", headers=bad_bearer).status_code == 401
        refused = client.sign_in(story.api.api_key)  # a good key, never seen valid here
        assert refused.status_code == 429 and "Retry-After" in refused.headers
        assert "Too many failed sign-ins" in refused.text
        client.close()
