"""What the client commands print: the API's JSON with `--json` (for scripts), else tables
for people (rich, plain when the output is not a terminal, never cut short).

`api_json` turns what the Python client parsed back into the API's JSON: every field the
API sent, by its name, amounts as strings with their two fraction digits, times in RFC
3339 UTC.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from rich.table import Table

    from paysys.client import Account, Event, Hold, Operation, Posting, Wallet

F = TypeVar("F", bound=Callable[..., Any])


def json_option(command: F) -> F:
    """`--json`: the API's JSON on stdout instead of tables."""
    return click.option(
        "--json", "as_json", is_flag=True, help="Print the API's JSON instead of tables."
    )(command)


def api_json(value: Any) -> Any:
    from paysys.client.models import Model

    if isinstance(value, Model):
        return {name: api_json(getattr(value, name)) for name in value.api_fields()}
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        text = value.astimezone(UTC).isoformat()
        return text.removesuffix("+00:00") + "Z"
    if isinstance(value, list | tuple):
        return [api_json(item) for item in value]
    if isinstance(value, dict):
        return {key: api_json(item) for key, item in value.items()}
    return value


def print_json(value: Any, *, compact: bool = False) -> None:
    click.echo(json.dumps(api_json(value), indent=None if compact else 2))


def render(table: Table) -> None:
    """On a terminal, as rich draws it; elsewhere plain, as wide as it needs (no cell
    folded or cut), without trailing blanks."""
    from rich.console import Console

    terminal = Console(highlight=False)
    if terminal.is_terminal:
        terminal.print(table)
        return
    text = io.StringIO()
    Console(file=text, highlight=False, width=10_000, no_color=True).print(table)
    click.echo("\n".join(line.rstrip() for line in text.getvalue().splitlines()))


def when(value: datetime | None) -> str:
    return "" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def money(amount: Decimal | None, currency: str = "USD") -> str:
    return "" if amount is None else f"{amount} {currency}"


def fields(rows: Iterable[tuple[str, str | None]]) -> None:
    """Name and value, one per line; rows without a value are left out."""
    from rich.table import Table

    grid = Table(box=None, show_header=False, pad_edge=False, padding=(0, 2, 0, 0))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    for name, value in rows:
        if value:
            grid.add_row(name, value)
    render(grid)


def table(
    columns: Sequence[str], rows: Iterable[Sequence[str]], *, right: Sequence[str] = ()
) -> None:
    """A table with a header line; `right`: the columns aligned right (amounts)."""
    from rich.table import Table

    grid = Table(box=None, pad_edge=False, padding=(0, 2, 0, 0), header_style="bold")
    for name in columns:
        grid.add_column(name, justify="right" if name in right else "left", no_wrap=True)
    for row in rows:
        grid.add_row(*row)
    render(grid)


def note(text: str) -> None:
    """A line for people beside the output (on stderr, so that stdout stays the data)."""
    click.echo(text, err=True)


# --- one resource each --------------------------------------------------------------------


def show_account(account: Account) -> None:
    fields(
        [
            ("account", account.id),
            ("name", account.name),
            ("created", when(account.created_at)),
            *_wallet_rows(account.wallet),
        ]
    )


def show_wallet(wallet: Wallet) -> None:
    fields(
        [
            *_wallet_rows(wallet),
            ("account", wallet.account_id),
            ("updated", when(wallet.updated_at)),
        ]
    )


def _wallet_rows(wallet: Wallet) -> list[tuple[str, str | None]]:
    return [
        ("wallet", wallet.id),
        ("balance", money(wallet.balance, wallet.currency)),
        ("held", money(wallet.held, wallet.currency)),
        ("available", money(wallet.available, wallet.currency)),
    ]


def show_operation(operation: Operation) -> None:
    fields(
        [
            ("operation", operation.id),
            ("type", operation.type),
            ("status", operation.status),
            ("amount", money(operation.amount, operation.currency)),
            ("wallet", operation.wallet_id),
            ("from", operation.from_wallet_id),
            ("to", operation.to_wallet_id),
            ("hold", operation.hold_id),
            ("reverses", operation.reverses_operation_id),
            ("reversed", money(operation.reversed_amount) if operation.reversed_amount else None),
            ("reference", operation.reference),
            ("batch", operation.batch_id),
            ("transaction", operation.transaction_id),
            ("error", error_text(operation)),
            ("created", when(operation.created_at)),
            ("completed", when(operation.completed_at)),
            (
                "replayed",
                "yes (an earlier request had the same key)" if operation.replayed else None,
            ),
        ]
    )


def show_hold(hold: Hold) -> None:
    fields(
        [
            ("hold", hold.id),
            ("status", hold.status),
            ("amount", money(hold.amount, hold.currency)),
            ("captured", money(hold.captured_amount, hold.currency)),
            ("from", hold.from_wallet_id),
            ("to", hold.to_wallet_id),
            ("reference", hold.reference),
            ("expires", when(hold.expires_at)),
        ]
    )


def direction(operation: Operation) -> tuple[str | None, str | None]:
    """The wallets the money leaves and reaches (None: outside paysys)."""
    source, destination = operation.from_wallet_id, operation.to_wallet_id
    if operation.type == "withdrawal":
        source = operation.wallet_id
    elif operation.type == "replenishment":
        destination = operation.wallet_id
    return source, destination


def error_text(operation: Operation) -> str | None:
    if operation.error is None:
        return None
    return f"{operation.error.get('code')}: {operation.error.get('message', '')}".rstrip(": ")


def account_rows(accounts: Iterable[Account]) -> list[list[str]]:
    return [
        [
            a.id,
            a.name,
            a.wallet.id,
            str(a.wallet.balance),
            str(a.wallet.available),
            when(a.created_at),
        ]
        for a in accounts
    ]


ACCOUNT_COLUMNS = ("account", "name", "wallet", "balance", "available", "created (UTC)")


def posting_rows(postings: Iterable[Posting]) -> list[list[str]]:
    return [
        [when(p.created_at), p.type, _signed(p.amount), str(p.balance_after), p.operation_id]
        for p in postings
    ]


POSTING_COLUMNS = ("when (UTC)", "type", "amount", "balance after", "operation")


def _signed(amount: Decimal) -> str:
    return f"+{amount}" if amount > 0 else str(amount)


def event_line(event: Event) -> str:
    """One event on one line: when, type, and what it is about."""
    return f"{when(event.created_at)}  {event.type:<19}  {_about(event.type, event.data)}"


def _about(kind: str, data: dict[str, Any]) -> str:
    if kind == "account.created":
        return f"account {data.get('id')} {data.get('name')!r} wallet {_get(data, 'wallet', 'id')}"
    if kind.startswith("operation."):
        text = f"{data.get('type')} {data.get('id')} {data.get('amount')} {data.get('currency')}"
        error = data.get("error")
        if isinstance(error, dict):
            text += f" ({error.get('code')})"
        return text
    if kind == "batch.completed":
        return (
            f"batch {data.get('id')} {data.get('succeeded')}/{data.get('total')} succeeded, "
            f"{data.get('failed')} failed"
        )
    if kind == "hold.expired":
        return f"hold {data.get('id')} {data.get('amount')} {data.get('currency')}"
    return str(data.get("id", ""))


def _get(data: dict[str, Any], *path: str) -> Any:
    value: Any = data
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value
