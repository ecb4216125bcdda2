"""The client commands that read, and create accounts: `paysys accounts list|create|show`,
`wallets show`, `operations show`, `holds show` and `events` (which can tail the feed).
They talk to paysys through its API (see `connect` for which paysys, and the exit
statuses); the commands that move money are in `money`."""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING

import click

from paysys.cli import connect, output
from paysys.cli.money import finish, report

if TYPE_CHECKING:
    from paysys.client import Account, Event

EVENT_TYPES = (
    "account.created",
    "operation.succeeded",
    "operation.failed",
    "batch.completed",
    "hold.expired",
)


@click.group()
def accounts() -> None:
    """Accounts, each with its USD wallet."""


@accounts.command("list")
@click.option("--limit", type=click.IntRange(1, 200), default=50, show_default=True)
@click.option("--cursor", default=None, help="The next page's cursor, from the previous page.")
@click.option("--all", "every", is_flag=True, help="Every account, page after page.")
@output.json_option
def accounts_list(limit: int, cursor: str | None, every: bool, as_json: bool) -> None:
    """The accounts, newest first, a page at a time."""
    from paysys.client import Page

    with connect.client() as paysys:
        if every:
            page: Page[Account] = Page(list(paysys.iter_accounts()), None)
        else:
            page = paysys.list_accounts(limit=limit, cursor=cursor)
    if as_json:
        output.print_json({"items": list(page), "next_cursor": page.next_cursor})
        return
    output.table(output.ACCOUNT_COLUMNS, output.account_rows(page), right=("balance", "available"))
    if page.next_cursor:
        output.note(f"more: paysys accounts list --cursor {page.next_cursor}")


@accounts.command("create")
@click.argument("name")
@click.option(
    "--idempotency-key",
    metavar="KEY",
    default=None,
    help="Running the command again with the same KEY gives the same account.",
)
@output.json_option
def accounts_create(name: str, idempotency_key: str | None, as_json: bool) -> None:
    """Create an account named NAME, with its USD wallet (the wallet's id is what money
    moves between)."""
    with connect.client() as paysys:
        account = paysys.create_account(name, idempotency_key=idempotency_key)
    if as_json:
        output.print_json(account)
    else:
        output.show_account(account)


@accounts.command("show")
@click.argument("account_id")
@output.json_option
def accounts_show(account_id: str, as_json: bool) -> None:
    """An account and its wallet's balances."""
    with connect.client() as paysys:
        account = paysys.get_account(account_id)
    if as_json:
        output.print_json(account)
    else:
        output.show_account(account)


@click.group()
def wallets() -> None:
    """Wallets and their statements."""


@wallets.command("show")
@click.argument("wallet_id")
@click.option(
    "--limit",
    type=click.IntRange(1, 200),
    default=20,
    show_default=True,
    help="Postings of the statement.",
)
@click.option("--cursor", default=None, help="The statement's next page, from the previous one.")
@output.json_option
def wallets_show(wallet_id: str, limit: int, cursor: str | None, as_json: bool) -> None:
    """A wallet's balances and its statement: postings newest first, each with the
    balance after it."""
    with connect.client() as paysys:
        wallet = paysys.get_wallet(wallet_id)
        postings = paysys.list_postings(wallet_id, limit=limit, cursor=cursor)
    if as_json:
        output.print_json(
            {
                "wallet": wallet,
                "postings": {"items": list(postings), "next_cursor": postings.next_cursor},
            }
        )
        return
    output.show_wallet(wallet)
    click.echo()
    if postings:
        output.table(
            output.POSTING_COLUMNS,
            output.posting_rows(postings),
            right=("amount", "balance after"),
        )
    else:
        click.echo("no postings")
    if postings.next_cursor:
        output.note(f"more: paysys wallets show {wallet_id} --cursor {postings.next_cursor}")


@click.group()
def operations() -> None:
    """Operations (replenishments, transfers, withdrawals, holds, captures, voids,
    reversals)."""


@operations.command("show")
@click.argument("operation_id")
@click.option(
    "--wait", is_flag=True, help="Wait until it is final; exit 1 if it failed, 4 if still pending."
)
@click.option(
    "--timeout",
    type=click.FloatRange(0, 3600),
    default=60.0,
    show_default=True,
    metavar="SECONDS",
    help="How long --wait waits.",
)
@output.json_option
def operations_show(operation_id: str, wait: bool, timeout: float, as_json: bool) -> None:
    """An operation: its status, and its error if it failed."""
    with connect.client() as paysys:
        operation = paysys.get_operation(operation_id)
        if wait and not operation.final:
            operation = finish(paysys, operation, timeout)
    if wait:
        report(operation, as_json, waited=True, timeout=timeout)
    elif as_json:
        output.print_json(operation)
    else:
        output.show_operation(operation)


@click.group()
def holds() -> None:
    """Holds: money reserved, to capture or void."""


@holds.command("show")
@click.argument("hold_id")
@output.json_option
def holds_show(hold_id: str, as_json: bool) -> None:
    """A hold: its status, amount, captured amount and expiry."""
    with connect.client() as paysys:
        found = paysys.get_hold(hold_id)
    if as_json:
        output.print_json(found)
    else:
        output.show_hold(found)


@click.command()
@click.option("--follow", "-f", is_flag=True, help="Keep printing new events as they happen.")
@click.option(
    "--type",
    "types",
    multiple=True,
    type=click.Choice(EVENT_TYPES),
    help="Only events of this type (repeatable).",
)
@click.option("--cursor", default=None, help="Start after this cursor (default: the beginning).")
@click.option(
    "--limit",
    type=click.IntRange(1, 200),
    default=50,
    show_default=True,
    help="Events of the page (without --follow).",
)
@output.json_option
def events(
    follow: bool, types: tuple[str, ...], cursor: str | None, limit: int, as_json: bool
) -> None:
    """The event feed, oldest first: one page, or with --follow every event as it comes
    (long polls; Ctrl-C ends it, with exit status 0). With --json, the page's JSON, or
    with --follow one event's JSON per line."""
    wanted = list(types) or None
    try:
        with connect.client() as paysys:
            if not follow:
                page = paysys.list_events(cursor, wanted, limit=limit)
                if as_json:
                    output.print_json({"items": list(page), "next_cursor": page.next_cursor})
                    return
                for event in page:
                    click.echo(output.event_line(event))
                output.note(f"next: paysys events --cursor {page.next_cursor}")
                return
            for event in paysys.iter_events(cursor, wanted, wait=25):
                click.echo(_line(event, as_json))
    except KeyboardInterrupt:
        return  # Ctrl-C is how a tail ends
    except BrokenPipeError:  # `| head`: the reader has what it wanted
        # Nothing more reaches the closed pipe, not even the flush at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise SystemExit(0) from None


def _line(event: Event, as_json: bool) -> str:
    return json.dumps(output.api_json(event)) if as_json else output.event_line(event)


COMMANDS = (accounts, wallets, operations, holds, events)
