"""What the API answers, as the client parses it: one frozen dataclass per response shape.

Each model's fields that come from the API bear the API's names, and `parse` reads
exactly those (every one required), converting by the field's type: `Decimal` for
amounts, `datetime` for times, a nested model for a nested object. The fields the client
adds itself (`client`, `replayed`) are marked `LOCAL` and never read from the answer.
`tests/test_client_schema.py` holds these fields against the API's OpenAPI schema, so a
field the API adds or renames fails the suite until the client follows.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol, Self, TypeVar

T = TypeVar("T")
# Marks a field the client fills in itself, not one the API sends.
LOCAL = {"local": True}


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _maybe_time(value: str | None) -> datetime | None:
    return None if value is None else _time(value)


def _maybe_decimal(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


def amount_text(value: Decimal | str | int) -> str:
    """An amount as the API takes it; floats are refused (they cannot hold cents exactly)."""
    if isinstance(value, float | bool):
        raise TypeError("amounts are Decimal, str or int, never float")
    return str(value)


_CONVERTERS: dict[object, Callable[[Any], Any]] = {
    Decimal: Decimal,
    Decimal | None: _maybe_decimal,
    datetime: _time,
    datetime | None: _maybe_time,
}


class Model:
    """A response shape: `parse` builds it from the API's JSON object."""

    @classmethod
    def api_fields(cls) -> tuple[str, ...]:
        """The names of the fields read from the API's answer."""
        return tuple(name for name, _ in _readers(cls))

    @classmethod
    def parse(cls, data: dict[str, Any]) -> Self:
        return cls._from(data)

    @classmethod
    def _from(cls, data: dict[str, Any], **local: Any) -> Self:
        return cls(**{name: read(data[name]) for name, read in _readers(cls)}, **local)


_Readers = tuple[tuple[str, Callable[[Any], Any]], ...]
_READERS: dict[type[Model], _Readers] = {}


def _readers(cls: type[Model]) -> _Readers:
    """Each field read from the API's answer, with its conversion (worked out once)."""
    if cls not in _READERS:
        _READERS[cls] = _fields_read(cls)
    return _READERS[cls]


def _fields_read(cls: type[Model]) -> _Readers:
    hints = typing.get_type_hints(cls)
    readers: list[tuple[str, Callable[[Any], Any]]] = []
    for item in dataclasses.fields(cls):  # type: ignore[arg-type]
        if item.metadata.get("local"):
            continue
        kind = hints[item.name]
        if isinstance(kind, type) and issubclass(kind, Model):
            readers.append((item.name, kind.parse))
        else:
            readers.append((item.name, _CONVERTERS.get(kind, _same)))
    return tuple(readers)


def _same(value: T) -> T:
    return value


class _Waits(Protocol):
    """What an operation or a batch needs of the client to wait for itself."""

    def wait_operation(self, operation_id: str, *, timeout: float = 60) -> Operation: ...

    def wait_batch(self, batch_id: str, *, timeout: float = 600) -> Batch: ...


@dataclass(frozen=True)
class Wallet(Model):
    id: str
    account_id: str
    currency: str
    balance: Decimal
    # The sum of the wallet's active holds; `available` (balance - held) is what transfers,
    # withdrawals and new holds out of it are checked against.
    held: Decimal
    available: Decimal
    updated_at: datetime


@dataclass(frozen=True)
class Account(Model):
    id: str
    name: str
    created_at: datetime
    wallet: Wallet


@dataclass(frozen=True)
class Posting(Model):
    id: str
    transaction_id: str
    operation_id: str
    type: str
    amount: Decimal
    balance_after: Decimal
    created_at: datetime


@dataclass(frozen=True)
class Operation(Model):
    id: str
    type: str
    status: str
    amount: Decimal
    currency: str
    wallet_id: str | None
    from_wallet_id: str | None
    to_wallet_id: str | None
    reference: str | None
    batch_id: str | None
    transaction_id: str | None
    hold_id: str | None
    reverses_operation_id: str | None
    reversed_amount: Decimal
    error: dict[str, str] | None
    created_at: datetime
    completed_at: datetime | None
    client: _Waits | None = field(default=None, repr=False, compare=False, metadata=LOCAL)
    # This answer was a replay: the operation was created by an earlier request.
    replayed: bool = field(default=False, compare=False, metadata=LOCAL)

    @property
    def final(self) -> bool:
        return self.status != "pending"

    def wait(self, timeout: float = 60) -> Operation:
        """The operation once it is final (long polls; raises TimeoutError)."""
        assert self.client is not None
        return self.client.wait_operation(self.id, timeout=timeout)

    @classmethod
    def parse(
        cls, data: dict[str, Any], client: _Waits | None = None, *, replayed: bool = False
    ) -> Operation:
        return cls._from(data, client=client, replayed=replayed)


@dataclass(frozen=True)
class Hold(Model):
    """Money reserved on `from_wallet_id`. Its id is its hold operation's: `status` is
    `pending` until that operation is applied, then `held` (or `failed`), and ends
    `captured`, `voided` or `expired`."""

    id: str
    status: str
    from_wallet_id: str
    to_wallet_id: str | None
    amount: Decimal
    captured_amount: Decimal | None
    currency: str
    reference: str | None
    expires_at: datetime
    created_at: datetime
    updated_at: datetime

    @property
    def active(self) -> bool:
        """Whether it still reserves its amount (a capture or void may still apply)."""
        return self.status == "held"


@dataclass(frozen=True)
class Batch(Model):
    id: str
    status: str
    total: int
    pending: int
    succeeded: int
    failed: int
    created_at: datetime
    completed_at: datetime | None
    client: _Waits | None = field(default=None, repr=False, compare=False, metadata=LOCAL)
    # This answer was a replay: the batch was accepted by an earlier request.
    replayed: bool = field(default=False, compare=False, metadata=LOCAL)

    def wait(self, timeout: float = 600) -> Batch:
        """The batch once no item is pending (long polls; raises TimeoutError)."""
        assert self.client is not None
        return self.client.wait_batch(self.id, timeout=timeout)

    @classmethod
    def parse(
        cls, data: dict[str, Any], client: _Waits | None = None, *, replayed: bool = False
    ) -> Batch:
        return cls._from(data, client=client, replayed=replayed)


@dataclass(frozen=True)
class BatchItem:
    """One item of a replenishment batch, as sent (a request shape, not an answer)."""

    wallet_id: str
    amount: Decimal | str | int
    reference: str | None = None

    def as_json(self) -> dict[str, Any]:
        item: dict[str, Any] = {"wallet_id": self.wallet_id, "amount": amount_text(self.amount)}
        if self.reference is not None:
            item["reference"] = self.reference
        return item


class Page(list[T]):
    """A page of results; `next_cursor` fetches the next one (None on the last)."""

    def __init__(self, items: list[T], next_cursor: str | None = None):
        super().__init__(items)
        self.next_cursor = next_cursor


MODELS: tuple[type[Model], ...] = (Wallet, Account, Posting, Operation, Hold, Batch)
