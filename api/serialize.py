"""Database rows to response documents: amounts as two-decimal strings, times in RFC 3339
UTC, ids as strings."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from shared.intake.repository import Record
from shared.money import format_cents


def timestamp(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _id(value: Any) -> str | None:
    return None if value is None else str(value)


def wallet(row: Record | dict[str, Any]) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "account_id": str(row["account_id"]),
        "currency": row["currency"],
        "balance": format_cents(row["balance"]),
        "updated_at": timestamp(row["updated_at"]),
    }


def account(row: Record) -> dict[str, Any]:
    """An account row, joined with its wallet's columns (`wallet_id` for the wallet's id)."""
    return {
        "id": str(row["id"]),
        "name": row["name"],
        "created_at": timestamp(row["created_at"]),
        "wallet": wallet({**row, "id": row["wallet_id"], "account_id": row["id"]}),
    }


def operation(row: Record) -> dict[str, Any]:
    error = None
    if row["error_code"] is not None:
        error = {"code": row["error_code"], "message": row["error_message"] or ""}
    return {
        "id": str(row["id"]),
        "type": row["type"],
        "status": row["status"],
        "amount": format_cents(row["amount"]),
        "currency": row["currency"],
        "wallet_id": _id(row["wallet_id"]),
        "from_wallet_id": _id(row["from_wallet_id"]),
        "to_wallet_id": _id(row["to_wallet_id"]),
        "reference": row["reference"],
        "batch_id": _id(row["batch_id"]),
        "transaction_id": _id(row["transaction_id"]),
        "error": error,
        "created_at": timestamp(row["created_at"]),
        "completed_at": timestamp(row["completed_at"]),
    }


def posting(row: Record) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "transaction_id": str(row["transaction_id"]),
        "operation_id": str(row["operation_id"]),
        "type": row["type"],
        "amount": format_cents(row["amount"]),
        "balance_after": format_cents(row["balance_after"]),
        "created_at": timestamp(row["created_at"]),
    }


def batch(row: Record) -> dict[str, Any]:
    completed = row["pending"] == 0
    return {
        "id": str(row["id"]),
        "status": "completed" if completed else "pending",
        "total": row["total"],
        "pending": row["pending"],
        "succeeded": row["succeeded"],
        "failed": row["failed"],
        "created_at": timestamp(row["created_at"]),
        "completed_at": timestamp(row["last_completed_at"]) if completed else None,
    }


def number_cursor(prefix: str, position: int) -> str:
    return f"{prefix}{position}"


def decode_number_cursor(cursor: str | None) -> int | None:
    """A cursor the route's pattern already checked: a letter, then a position."""
    return None if cursor is None else int(cursor[1:])


def account_cursor(account_id: uuid.UUID) -> str:
    return f"a{account_id.hex}"


def decode_account_cursor(cursor: str | None) -> uuid.UUID | None:
    return None if cursor is None else uuid.UUID(hex=cursor[1:])


def page(
    rows: list[Record],
    limit: int,
    render: Callable[[Record], Any],
    cursor_of: Callable[[Record], str],
) -> dict[str, Any]:
    """Rows were fetched with limit + 1: the extra row only tells that a next page exists."""
    has_more = len(rows) > limit
    rows = rows[:limit]
    return {
        "items": [render(row) for row in rows],
        "next_cursor": cursor_of(rows[-1]) if has_more and rows else None,
    }
