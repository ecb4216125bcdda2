"""The console's page cursors: each is the key of the last row shown, in the order of the
index its page reads (see `reads`), so that the next page starts where this one ended
without counting or skipping rows. A cursor that is not one of ours is a 404, as a
malformed id is."""

from __future__ import annotations

import base64
import uuid

from shared.errors import NotFound


def _refuse() -> NotFound:
    return NotFound("Not a cursor of this page")


def _digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def parse_number(text: str | None) -> int | None:
    if text is None or text == "":
        return None
    if not _digits(text) or len(text) > 18:
        raise _refuse()
    return int(text)


def parse_uuid(text: str | None) -> uuid.UUID | None:
    if text is None or text == "":
        return None
    try:
        return uuid.UUID(text)
    except ValueError:
        raise _refuse() from None


def name(sort_name: str, account_id: uuid.UUID) -> str:
    encoded = base64.urlsafe_b64encode(sort_name.encode()).decode().rstrip("=")
    return f"{encoded}.{account_id.hex}"


def parse_name(text: str | None) -> tuple[str, uuid.UUID] | None:
    if text is None or text == "":
        return None
    encoded, _, account_id = text.rpartition(".")
    try:
        sort_name = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
        return sort_name, uuid.UUID(hex=account_id)
    except ValueError:  # binascii.Error and UnicodeDecodeError among them
        raise _refuse() from None


def feed(xid: int, seq: int) -> str:
    return f"{xid}_{seq}"


def parse_feed(text: str | None) -> tuple[int, int] | None:
    if text is None or text == "":
        return None
    xid, _, seq = text.partition("_")
    if not (_digits(xid) and _digits(seq)) or len(xid) > 20 or len(seq) > 18:
        raise _refuse()
    if int(xid) >= 1 << 64:
        raise _refuse()
    return int(xid), int(seq)
