"""What the console's tests look at: a tenant with a little history made through the public
API (two accounts, a top-up, a transfer and its partial reversal, a hold and its capture, a
withdrawal that failed, a batch, a webhook endpoint whose first delivery failed), another
tenant with a wallet of its own, and a console client that signs in as a browser does."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg2

from tests.helpers import Api, new_key
from tests.webhook_receiver import Plan, Receiver, register, wait_attempts


class Console:
    """The console through HTTP, with a cookie jar; redirects are not followed."""

    def __init__(self, base_url: str):
        self.base_url = base_url
        self.http = httpx.Client(base_url=base_url, follow_redirects=False, timeout=30)

    def close(self) -> None:
        self.http.close()

    def form_token(self, path: str = "/console/sign-in") -> str:
        page = self.http.get(path)
        found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert found, page.text
        return found[1]

    def sign_in(self, api_key: str, next_url: str = "") -> httpx.Response:
        token = self.form_token()
        return self.http.post(
            "/console/sign-in",
            data={"api_key": api_key, "csrf_token": token, "next": next_url},
            headers={"Origin": self.base_url},
        )

    def sign_out(self) -> httpx.Response:
        token = self.form_token("/console/accounts")
        return self.http.post(
            "/console/sign-out", data={"csrf_token": token}, headers={"Origin": self.base_url}
        )

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.http.get(path, **kw)


@dataclass
class Story:
    api: Api
    alice: str  # wallet ids
    bob: str
    alice_account: str
    topup: str  # operation ids
    transfer: str
    reversal: str
    hold: str
    capture: str
    failed_withdrawal: str
    batch: str
    endpoint: str
    other_api: Api
    carol: str  # the other tenant's wallet
    carol_topup: str


def make_story(api: Api, other_api: Api, receiver: Receiver, db: Any) -> Story:
    endpoint = register(api, receiver.url("/console-hooks", Plan(fail_first=1)))["id"]
    alice_account = api.create_account("Alice Liddell")
    alice = alice_account["wallet"]["id"]
    bob = api.create_wallet("Bob Marley")
    topup = api.applied(api.replenish(alice, "100.00", reference="top-up 42"))["id"]
    transfer = api.applied(api.transfer(alice, bob, "25.00", reference="rent"))["id"]
    reversal = api.applied(api.reverse(transfer, amount="5.00", reference="refund"))["id"]
    hold = api.active_hold(alice, "10.00", bob, reference="order 1234")
    capture = api.applied(api.capture(hold, amount="6.00"))["id"]
    failed = api.applied(api.withdraw(alice, "1000.00"))
    assert failed["status"] == "failed"
    batch = api.post(
        "/v1/replenishment-batches",
        {"items": [{"wallet_id": bob, "amount": "1.00"}, {"wallet_id": bob, "amount": "2.00"}]},
        key=new_key(),
    ).json()
    while batch["status"] != "completed":
        batch = api.get(f"/v1/replenishment-batches/{batch['id']}", params={"wait": 5}).json()
    # The endpoint's first attempt failed, and some were delivered since.
    wait_attempts(db, endpoint, lambda rows: len(rows) >= 3 and any(r[4] for r in rows))
    carol = other_api.create_wallet("Carol Other")
    carol_topup = other_api.applied(other_api.replenish(carol, "7.00"))["id"]
    return Story(
        api=api,
        alice=alice,
        bob=bob,
        alice_account=alice_account["id"],
        topup=topup,
        transfer=transfer,
        reversal=reversal,
        hold=hold,
        capture=capture,
        failed_withdrawal=failed["id"],
        batch=batch["id"],
        endpoint=endpoint,
        other_api=other_api,
        carol=carol,
        carol_topup=carol_topup,
    )


@contextmanager
def story_of(stack: Any, database_url: str) -> Iterator[Story]:
    """A story of two new tenants, for a module's tests."""
    from tests.conftest import make_api

    api, other_api = make_api(stack, f"acme-{os.urandom(3).hex()}"), make_api(stack)
    receiver = Receiver()
    conn = psycopg2.connect(database_url)
    conn.autocommit = True
    story = None
    try:
        story = make_story(api, other_api, receiver, conn)
        yield story
    finally:
        if story is not None:  # no retries left behind, to a receiver that is gone
            api.http.delete(f"/v1/webhook-endpoints/{story.endpoint}")
        receiver.close()
        conn.close()
        api.close()
        other_api.close()
