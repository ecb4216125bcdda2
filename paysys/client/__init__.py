"""A Python client for the paysys HTTP API. It needs httpx alone: nothing of the server
(`tests/test_client_imports.py` keeps it so).

    from paysys.client import Paysys

    with Paysys("http://127.0.0.1:8000", api_key) as paysys:
        alice = paysys.create_account("Alice")
        paysys.replenish(alice.wallet.id, "25.00").wait()
        bob = paysys.create_account("Bob")
        transfer = paysys.transfer(alice.wallet.id, bob.wallet.id, "5.00").wait()
        print(transfer.status, paysys.get_wallet(alice.wallet.id).balance)
        # Reserve, then take: a hold's id is its operation's.
        hold = paysys.hold(alice.wallet.id, "8.00", to_wallet_id=bob.wallet.id).wait()
        capture = paysys.capture(hold.id, "6.00").wait()
        paysys.reverse(capture.id, "2.00").wait()
        # Every event, in order, as it happens (or webhooks: see `verify_webhook`).
        for event in paysys.iter_events(types=["operation.succeeded"]):
            print(event.type, event.data["id"])

Money-moving calls get an Idempotency-Key of their own unless one is given, and are
retried with that same key on network errors, 503 (a dependency down, or `overloaded`),
409 (the same key still in flight) and 429, so a retry never moves money twice. A retry
waits at least the server's Retry-After; all the retries of one call wait at most
`max_retry_wait` seconds in total, after which the last answer is raised. An operation or
batch whose request was a replay of an earlier one with the same key (the server said
`Idempotent-Replayed: true`) has `replayed` set. Amounts are `Decimal`s (or strings, or
ints); floats are refused.

A webhook receiver checks each delivery with `verify_webhook(body, signature_header,
secret)`, which returns the event or raises `WebhookSignatureError`.

The client is `client.Paysys` (its calls on events and webhook endpoints in `events`),
its retrying transport `http`, the answers it parses `models` and `event_models`, and the
signature check `webhooks`.
"""

from paysys.client.client import Paysys
from paysys.client.event_models import (
    Event,
    EventPage,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEndpointCreated,
)
from paysys.client.http import ApiError
from paysys.client.models import (
    Account,
    Batch,
    BatchItem,
    Hold,
    Operation,
    Page,
    Posting,
    Wallet,
)
from paysys.client.webhooks import WebhookSignatureError, verify_webhook

__all__ = [
    "Account",
    "ApiError",
    "Batch",
    "BatchItem",
    "Event",
    "EventPage",
    "Hold",
    "Operation",
    "Page",
    "Paysys",
    "Posting",
    "Wallet",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
    "WebhookEndpointCreated",
    "WebhookSignatureError",
    "verify_webhook",
]
