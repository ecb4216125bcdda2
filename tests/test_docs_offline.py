"""/docs and /redoc render in a real browser that can reach nothing but paysys: every
request to another host is refused, and the test asserts that none was even tried.

Chromium is Debian's (`.ci/run` installs it), driven by Playwright through
`executable_path`: no browser is downloaded."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, Page, Route, sync_playwright

from tests.conftest import Stack

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
REDOCLY_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM)
        yield browser
        browser.close()


class CutOff:
    """A page whose requests go to paysys only; anything else is aborted and noted."""

    def __init__(self, browser: Browser, base_url: str):
        self.local = urlsplit(base_url).netloc
        self.elsewhere: list[str] = []
        self.errors: list[str] = []
        self.context = browser.new_context(service_workers="block")
        self.context.route("**/*", self._route)
        self.page: Page = self.context.new_page()
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        # A request the page's policy refused (or anything else gone wrong) is a console
        # error: the page must need nothing it does not have.
        self.page.on(
            "console",
            lambda message: self.errors.append(message.text) if message.type == "error" else None,
        )

    def _route(self, route: Route) -> None:
        url = urlsplit(route.request.url)
        if url.scheme in ("http", "https") and url.netloc != self.local:
            self.elsewhere.append(route.request.url)
            route.abort("internetdisconnected")
        else:
            route.continue_()

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def offline(browser: Browser, stack: Stack) -> Iterator[CutOff]:
    cut = CutOff(browser, stack.base_url)
    yield cut
    cut.close()


def test_swagger_ui_shows_every_operation_offline(
    offline: CutOff, stack: Stack, tmp_path: Path
) -> None:
    page = offline.page
    page.goto(f"{stack.base_url}/docs")
    page.get_by_text("createTransfer", exact=True).wait_for(timeout=20_000)
    page.screenshot(path=tmp_path / "docs.png", full_page=True)
    for tag in ("accounts", "wallets", "operations", "holds", "events", "webhooks"):
        assert page.locator(f"#operations-tag-{tag}").is_visible(), tag
    assert page.locator(".opblock").count() >= 30
    assert page.locator(".opblock-post").first.is_visible()
    assert offline.elsewhere == []
    assert offline.errors == []


def test_redoc_renders_offline(offline: CutOff, stack: Stack, tmp_path: Path) -> None:
    page = offline.page
    page.goto(f"{stack.base_url}/redoc")
    page.locator("h1").filter(has_text="paysys").wait_for(timeout=20_000)
    operation = page.locator("h2").filter(has_text="Move money between two wallets")
    operation.wait_for(timeout=20_000)
    page.screenshot(path=tmp_path / "redoc.png")
    assert offline.elsewhere == []
    # ReDoc's sidebar always shows Redocly's logo from its CDN: the page's policy refuses
    # it before any request is made (and the image hides itself). Nothing else may fail.
    refused_logo = [e for e in offline.errors if REDOCLY_LOGO in e and "Security Policy" in e]
    assert len(refused_logo) <= 1
    assert [e for e in offline.errors if e not in refused_logo] == []


def test_the_docs_pages_name_no_other_host(stack: Stack) -> None:
    """What the pages load, asked of paysys directly: every asset is paysys's, and the
    browser is told to load nothing from anywhere else."""
    for page in ("/docs", "/redoc"):
        answer = httpx.get(stack.base_url + page)
        assert "http://" not in answer.text and "https://" not in answer.text, page
        policy = answer.headers["content-security-policy"]
        assert "default-src 'self'" in policy and "img-src 'self' data:" in policy
        for asset in ("swagger-ui/swagger-ui-bundle.js", "redoc/redoc.standalone.js"):
            assert httpx.get(f"{stack.base_url}/docs/static/{asset}").status_code == 200
