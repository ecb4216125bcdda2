"""Receiving webhooks: `verify_webhook` checks a delivery's `Paysys-Signature` header.

    from paysys.client import WebhookSignatureError, verify_webhook

    def receive(body: bytes, headers) -> None:   # in your web framework's handler
        try:
            event = verify_webhook(body, headers["Paysys-Signature"], SECRET)
        except WebhookSignatureError:
            return 400
        if already_seen(event["id"]):             # delivery is at least once
            return 200
        handle(event)

The header is `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>." + body>`, keyed with the
endpoint's whole secret (`whsec_...`) as UTF-8. A valid delivery has a `v1` equal to the
HMAC this side computes (compared in constant time; several `v1` values may be given, for
secret rotation, any one may match) and a `t` within `tolerance` seconds of now, so a
delivery replayed later is refused. Pass the body exactly as received: parsing and
re-encoding the JSON changes the bytes, and the signature with them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

DEFAULT_TOLERANCE = 300
# Unix seconds have 10 digits until the year 2286; a longer `t` is no timestamp of paysys's
# (and a huge one would cost int() its time, or exceed its limit on digits).
MAX_TIMESTAMP_DIGITS = 12


class WebhookSignatureError(ValueError):
    """The delivery is not proven to come from paysys: a malformed or missing signature,
    one that does not match, or a timestamp too far from now."""


def _parse(header: str) -> tuple[int, list[str]]:
    timestamps: list[str] = []
    signatures: list[str] = []
    for item in header.split(","):
        name, equals, value = item.strip().partition("=")
        if not equals:
            raise WebhookSignatureError("malformed Paysys-Signature header")
        if name == "t":
            timestamps.append(value)
        elif name == "v1":
            signatures.append(value)
        # Other schemes (a future v2) are not this version's to check.
    if (
        len(timestamps) != 1
        or not timestamps[0].isascii()
        or not timestamps[0].isdigit()
        or len(timestamps[0]) > MAX_TIMESTAMP_DIGITS
    ):
        raise WebhookSignatureError("Paysys-Signature has no valid timestamp (t=)")
    if not signatures:
        raise WebhookSignatureError("Paysys-Signature has no v1 signature")
    return int(timestamps[0]), signatures


def verify_webhook(
    body: bytes | str,
    signature_header: str,
    secret: str,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> dict[str, Any]:
    """The delivered event (decoded JSON) if `signature_header` proves that paysys sent
    `body` within `tolerance` seconds of `now` (default: the current time); raises
    `WebhookSignatureError` otherwise. A `str` body is taken as its UTF-8 bytes."""
    if isinstance(body, str):
        body = body.encode()
    if not isinstance(signature_header, str) or not signature_header:
        raise WebhookSignatureError("no Paysys-Signature header")
    timestamp, signatures = _parse(signature_header)
    expected = hmac.new(
        secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256
    ).hexdigest()
    # Every candidate is compared (in constant time each), whichever matches.
    matches = [hmac.compare_digest(expected.encode(), s.encode()) for s in signatures]
    if not any(matches):
        raise WebhookSignatureError("the signature does not match this body and secret")
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise WebhookSignatureError(
            f"the signature's timestamp is {current - timestamp:+.0f} seconds from now, "
            f"beyond the tolerance of {tolerance:g}"
        )
    try:
        event = json.loads(body)
    except ValueError:
        raise WebhookSignatureError("the signed body is not JSON") from None
    if not isinstance(event, dict):
        raise WebhookSignatureError("the signed body is not a JSON object")
    return event
