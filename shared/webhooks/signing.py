"""The signature of a webhook delivery (docs/API.md, "Events and webhooks"):

    Paysys-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>." + body>

keyed with the whole secret string (`whsec_...`) as UTF-8 bytes. The timestamp is signed
with the body, so a receiver that refuses old timestamps refuses replays of old
deliveries. Receivers check it with `paysys.client.verify_webhook`, which computes the
same thing on its own (the client imports nothing of the server).
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "Paysys-Signature"
EVENT_ID_HEADER = "Paysys-Event-Id"


def signature(body: bytes, secret: str, timestamp: int) -> str:
    """The hex HMAC-SHA256 of `<timestamp>.<body>`, keyed with the secret."""
    message = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(body: bytes, secret: str, timestamp: int) -> str:
    """The `Paysys-Signature` header's value for `body` sent at `timestamp`."""
    return f"t={timestamp},v1={signature(body, secret, timestamp)}"
