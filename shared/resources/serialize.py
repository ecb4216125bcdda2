"""Database rows to the response models of `shared.resources.schemas`, the ones `/openapi.json`
documents: every response shape is defined once, there. Rows come from trusted queries,
so the models are constructed without validation and rendered by pydantic's serializer
(`api.responses.Model`): amounts as two-decimal strings, times in RFC 3339 UTC."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel

from shared.asyncdb import Record
from shared.money import format_cents
from shared.resources import schemas

Row = Record | Mapping[str, Any]
Item = TypeVar("Item", bound=BaseModel)


def wallet(row: Row) -> schemas.Wallet:
    return schemas.Wallet.model_construct(
        id=row["id"],
        account_id=row["account_id"],
        currency=row["currency"],
        balance=format_cents(row["balance"]),
        held=format_cents(row["held"]),
        available=format_cents(row["balance"] - row["held"]),
        updated_at=row["updated_at"],
    )


def account(row: Row) -> schemas.Account:
    """An account row, joined with its wallet's columns (`wallet_id` for the wallet's id)."""
    return schemas.Account.model_construct(
        id=row["id"],
        name=row["name"],
        created_at=row["created_at"],
        wallet=wallet({**row, "id": row["wallet_id"], "account_id": row["id"]}),
    )


def operation(row: Row) -> schemas.Operation:
    error = None
    if row["error_code"] is not None:
        error = schemas.OperationError.model_construct(
            code=row["error_code"], message=row["error_message"] or ""
        )
    return schemas.Operation.model_construct(
        id=row["id"],
        type=row["type"],
        status=row["status"],
        amount=format_cents(row["amount"]),
        currency=row["currency"],
        wallet_id=row["wallet_id"],
        from_wallet_id=row["from_wallet_id"],
        to_wallet_id=row["to_wallet_id"],
        reference=row["reference"],
        batch_id=row["batch_id"],
        transaction_id=row["transaction_id"],
        hold_id=row["hold_id"],
        reverses_operation_id=row["reverses_operation_id"],
        reversed_amount=format_cents(row["reversed_amount"]),
        error=error,
        created_at=row["created_at"],
        completed_at=row["completed_at"],
    )


def posting(row: Row) -> schemas.Posting:
    return schemas.Posting.model_construct(
        id=row["id"],
        transaction_id=row["transaction_id"],
        operation_id=row["operation_id"],
        type=row["type"],
        amount=format_cents(row["amount"]),
        balance_after=format_cents(row["balance_after"]),
        created_at=row["created_at"],
    )


def batch(row: Row) -> schemas.Batch:
    completed = row["pending"] == 0
    return schemas.Batch.model_construct(
        id=row["id"],
        status="completed" if completed else "pending",
        total=row["total"],
        pending=row["pending"],
        succeeded=row["succeeded"],
        failed=row["failed"],
        created_at=row["created_at"],
        completed_at=row["last_completed_at"] if completed else None,
    )


def hold(row: Row) -> schemas.Hold:
    """A hold: its hold operation's outcome until it succeeded, then the hold's own."""
    status = {"pending": "pending", "failed": "failed"}.get(
        row["operation_status"], row["hold_status"]
    )
    captured = row["captured_amount"]
    return schemas.Hold.model_construct(
        id=row["id"],
        status=status,
        from_wallet_id=row["from_wallet_id"],
        to_wallet_id=row["to_wallet_id"],
        amount=format_cents(row["amount"]),
        captured_amount=None if captured is None else format_cents(captured),
        currency=row["currency"],
        reference=row["reference"],
        expires_at=row["expires_at"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


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
    model: type[BaseModel],
    rows: list[Record],
    limit: int,
    render: Callable[[Record], Item],
    cursor_of: Callable[[Record], str],
) -> BaseModel:
    """A page model: rows were fetched with limit + 1, and the extra row only tells that a
    next page exists."""
    has_more = len(rows) > limit
    rows = rows[:limit]
    return model.model_construct(
        items=[render(row) for row in rows],
        next_cursor=cursor_of(rows[-1]) if has_more and rows else None,
    )
