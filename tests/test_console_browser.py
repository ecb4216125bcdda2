"""The console in a real browser (Debian's Chromium, driven by Playwright): an operator signs
in, finds a wallet, reads its statement, follows an operation to its postings, a capture to
its hold, a reversal to its original, looks at the events, a webhook endpoint's deliveries
and the system page, meets another tenant's wallet as "not found", and signs out, with the
keyboard where a person would use it, and without one error in the browser's console.

Screenshots go to the test's temporary directory; with `PAYSYS_CONSOLE_SCREENSHOTS=DIR`
(for instance `docs/console`), the ones the documentation shows are written there too.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.console_story import Story, story_of

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DOCUMENTED = {"wallet", "operation", "webhook"}

pytestmark = pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"),
    reason="needs Debian's chromium (apt-get install chromium); CI installs it",
)


@pytest.fixture(scope="module")
def story(stack: Any, database_url: str) -> Iterator[Story]:
    with story_of(stack, database_url) as made:
        yield made


class Browser:
    """One page of Chromium, recording what goes wrong in it."""

    def __init__(self, page: Any, shots: Path):
        self.page = page
        self.shots = shots
        self.problems: list[str] = []
        self.expected_404: set[str] = set()
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        page.on("requestfailed", self._failed)
        page.on("response", self._response)

    def _console(self, message: Any) -> None:
        if message.type not in ("error", "warning"):
            return
        url = (message.location or {}).get("url", "")
        if "status of 404" in message.text and url in self.expected_404:
            return
        self.problems.append(f"console {message.type}: {message.text} ({url})")

    def _failed(self, request: Any) -> None:
        # A request cancelled by the next navigation (a favicon still loading) is aborted:
        # nothing failed.
        if request.failure != "net::ERR_ABORTED":
            self.problems.append(f"failed: {request.url} {request.failure}")

    def _response(self, response: Any) -> None:
        if response.status >= 400 and response.url not in self.expected_404:
            self.problems.append(f"HTTP {response.status}: {response.url}")

    def shot(self, name: str) -> None:
        path = self.shots / f"{name}.png"
        self.page.screenshot(path=str(path))
        target = os.environ.get("PAYSYS_CONSOLE_SCREENSHOTS")
        if target and name in DOCUMENTED:
            Path(target).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, Path(target) / path.name)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        context = chromium.new_context(viewport={"width": 1280, "height": 800})
        context.set_default_timeout(15_000)
        try:
            yield Browser(context.new_page(), tmp_path)
        finally:
            context.close()
            chromium.close()


def test_an_operator_finds_their_way(browser: Browser, story: Story) -> None:
    from playwright.sync_api import expect

    page, base = browser.page, story.api.base_url

    # Signing in: the first page asked for leads to the form, and back after it.
    page.goto(f"{base}/console/accounts")
    expect(page).to_have_url(re.compile(r"/console/sign-in\?next="))
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    browser.shot("sign-in")
    page.get_by_label("API key").fill(story.api.api_key)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Accounts")).to_be_visible()

    # The keyboard: a skip link first, "/" to the search box.
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.locator("main").click()
    page.keyboard.press("/")
    expect(page.get_by_label("Find an account by name, or anything by its id")).to_be_focused()

    # Find a wallet by the start of its name, and open it.
    search = page.get_by_label("Name or id", exact=True)
    search.fill("alice")
    search.press("Enter")
    browser.shot("accounts")
    page.get_by_role("link", name="Alice Liddell").click()
    expect(page.get_by_role("heading", name="Alice Liddell wallet")).to_be_visible()
    figures = page.locator("dl.figures")
    expect(figures).to_contain_text("74.00")
    statement = page.get_by_role("table", name=re.compile("Postings, newest first"))
    expect(statement.get_by_role("row")).to_have_count(5)  # a header and four postings
    expect(statement.get_by_role("row").nth(1)).to_contain_text("74.00")
    browser.shot("wallet")

    # An operation from the statement, to its postings.
    transfer_row = statement.get_by_role("row").filter(has_text="transfer")
    transfer_row.get_by_role("link").click()
    expect(page.get_by_role("heading", name=re.compile("^Transfer"))).to_be_visible()
    postings = page.get_by_role("table", name=re.compile("postings"))
    expect(postings).to_contain_text("-25.00")
    expect(postings).to_contain_text("+25.00")
    expect(postings).to_contain_text("Bob Marley")
    browser.shot("operation")

    # Its reversal, and back to the original.
    page.get_by_role("table", name="Reversals of this operation").get_by_role("link").first.click()
    expect(page.get_by_role("heading", name=re.compile("^Reversal"))).to_be_visible()
    page.locator("dd").get_by_role("link", name=story.transfer).click()
    expect(page).to_have_url(f"{base}/console/operations/{story.transfer}")

    # A capture, to its hold.
    page.goto(f"{base}/console/operations/{story.capture}")
    page.locator("dd").get_by_role("link", name=story.hold).first.click()
    expect(page.get_by_role("heading", name=re.compile("^Hold"))).to_be_visible()
    expect(page.locator("ol.timeline")).to_contain_text("Hold captured")
    browser.shot("hold")

    # The events, of one type.
    page.get_by_role("link", name="Events").click()
    page.get_by_label("Type").select_option("operation.failed")
    page.get_by_role("button", name="Show").click()
    events = page.get_by_role("table", name=re.compile("events, newest first"))
    expect(events.get_by_role("row")).to_have_count(2)
    expect(events).to_contain_text("Withdrawal")
    browser.shot("events")

    # A webhook endpoint, its failed delivery first.
    page.get_by_role("link", name="Webhooks").click()
    page.get_by_role("link", name="console-hooks").click()
    attempts = page.get_by_role("table", name=re.compile("latest attempts"))
    expect(attempts.get_by_role("row").nth(1)).to_contain_text("failed")
    browser.shot("webhook")

    # The system page: the backlog, the last minutes, the workers.
    page.get_by_role("link", name="System").click()
    expect(page.get_by_role("heading", name="Workers")).to_be_visible()
    expect(page.locator("ul.workers")).to_contain_text("celery@")
    browser.shot("system")

    # Another tenant's wallet is not found, exactly as one that does not exist.
    other = f"{base}/console/wallets/{story.carol}"
    browser.expected_404.add(other)
    assert page.goto(other).status == 404
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()
    expect(page.locator("main")).not_to_contain_text("Carol")
    browser.shot("not-found")

    # Signing out: the pages are closed again.
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("status")).to_have_text("You are signed out.")
    page.goto(f"{base}/console/accounts")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()

    assert browser.problems == []
