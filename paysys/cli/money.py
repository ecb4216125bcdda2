"""The commands that move money: `paysys replenish`, `withdraw`, `transfer`, `hold`,
`capture`, `void` and `reverse`, through the API with the Python client.

Each sends an Idempotency-Key (`--idempotency-key KEY` to choose it, so that running the
same command again after a lost answer is a replay, not a second operation), then waits
for the operation to be final (`--no-wait` returns at once, pending) and prints it.
Amounts are decimal strings, sent as written: paysys checks them (two fraction digits at
most, above zero).

Exit status: 0 succeeded (or accepted, with `--no-wait`); 1 the operation failed (its
error is said on stderr); 3 paysys refused the request or could not be reached; 4 still
pending when `--timeout` ran out; 130 interrupted while waiting (the operation was
accepted and goes on).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from paysys.cli import connect, output
from paysys.cli.connect import Interrupted, OperationFailed, StillPending

if TYPE_CHECKING:
    from paysys.client import Operation, Paysys

F = TypeVar("F", bound=Callable[..., Any])

EXIT_STATUS = (
    "Exit status: 0 succeeded (or accepted, with --no-wait); 1 the operation failed; "
    "3 paysys refused the request or could not be reached; 4 still pending after --timeout."
)


def operation_options(command: F) -> F:
    """The options every money-moving command takes."""
    for option in reversed(
        [
            click.option(
                "--idempotency-key",
                metavar="KEY",
                default=None,
                help="The request's Idempotency-Key (default: a new one). The same KEY again "
                "replays the first request's operation instead of making a second.",
            ),
            click.option(
                "--wait/--no-wait",
                default=True,
                show_default=True,
                help="Wait for the operation to be final, or return it pending at once.",
            ),
            click.option(
                "--timeout",
                type=click.FloatRange(0, 3600),
                default=60.0,
                show_default=True,
                metavar="SECONDS",
                help="How long to wait for the operation to be final.",
            ),
            output.json_option,
        ]
    ):
        command = option(command)
    return command


def reference_option(command: F) -> F:
    return click.option("--reference", metavar="TEXT", default=None, help="Your reference.")(
        command
    )


def submit(send: Callable[[Paysys], Operation], wait: bool, timeout: float, as_json: bool) -> None:
    """Send the request, wait for its operation if asked, print it and exit by its fate."""
    with connect.client() as paysys:
        operation = send(paysys)
        if wait and not operation.final:
            operation = finish(paysys, operation, timeout)
    report(operation, as_json, waited=wait, timeout=timeout)


def finish(paysys: Paysys, operation: Operation, timeout: float) -> Operation:
    """The operation once final, or as it is when `timeout` runs out."""
    follow = f"`paysys operations show {operation.id} --wait` follows it"
    try:
        return paysys.wait_operation(operation.id, timeout=timeout)
    except TimeoutError:
        return paysys.get_operation(operation.id)
    except KeyboardInterrupt:
        raise Interrupted(
            f"interrupted; operation {operation.id} was accepted and goes on ({follow})"
        ) from None
    except Exception:
        output.note(f"operation {operation.id} was accepted; {follow}")
        raise


def report(operation: Operation, as_json: bool, *, waited: bool, timeout: float) -> None:
    if as_json:
        output.print_json(operation)
    else:
        output.show_operation(operation)
    if operation.status == "failed":
        raise OperationFailed(
            f"{operation.type} {operation.id} failed: {output.error_text(operation)}"
        )
    if waited and not operation.final:
        raise StillPending(
            f"{operation.type} {operation.id} still pending after {timeout:g} s; "
            f"`paysys operations show {operation.id} --wait` waits again"
        )


@click.command(epilog=EXIT_STATUS)
@click.argument("wallet_id")
@click.argument("amount")
@reference_option
@operation_options
def replenish(
    wallet_id: str,
    amount: str,
    reference: str | None,
    idempotency_key: str | None,
    wait: bool,
    timeout: float,
    as_json: bool,
) -> None:
    """Top up WALLET_ID with AMOUNT (money coming into paysys)."""
    submit(
        lambda p: p.replenish(
            wallet_id, amount, reference=reference, idempotency_key=idempotency_key
        ),
        wait,
        timeout,
        as_json,
    )


@click.command(epilog=EXIT_STATUS)
@click.argument("wallet_id")
@click.argument("amount")
@reference_option
@operation_options
def withdraw(
    wallet_id: str,
    amount: str,
    reference: str | None,
    idempotency_key: str | None,
    wait: bool,
    timeout: float,
    as_json: bool,
) -> None:
    """Pay AMOUNT out of WALLET_ID (money leaving paysys); fails with insufficient_funds
    unless its available balance covers it."""
    submit(
        lambda p: p.withdraw(
            wallet_id, amount, reference=reference, idempotency_key=idempotency_key
        ),
        wait,
        timeout,
        as_json,
    )


@click.command(epilog=EXIT_STATUS)
@click.argument("from_wallet_id")
@click.argument("to_wallet_id")
@click.argument("amount")
@reference_option
@operation_options
def transfer(
    from_wallet_id: str,
    to_wallet_id: str,
    amount: str,
    reference: str | None,
    idempotency_key: str | None,
    wait: bool,
    timeout: float,
    as_json: bool,
) -> None:
    """Move AMOUNT from FROM_WALLET_ID to TO_WALLET_ID; fails with insufficient_funds
    unless the source's available balance covers it."""
    submit(
        lambda p: p.transfer(
            from_wallet_id,
            to_wallet_id,
            amount,
            reference=reference,
            idempotency_key=idempotency_key,
        ),
        wait,
        timeout,
        as_json,
    )


@click.command(epilog=EXIT_STATUS)
@click.argument("from_wallet_id")
@click.argument("amount")
@click.option(
    "--to",
    "to_wallet_id",
    metavar="WALLET_ID",
    default=None,
    help="Where a capture moves the money (default: out of paysys).",
)
@click.option(
    "--expires-in",
    type=click.IntRange(1, 2_592_000),
    default=None,
    metavar="SECONDS",
    help="Released by itself after this long (paysys's default: a week).",
)
@reference_option
@operation_options
def hold(
    from_wallet_id: str,
    amount: str,
    to_wallet_id: str | None,
    expires_in: int | None,
    reference: str | None,
    idempotency_key: str | None,
    wait: bool,
    timeout: float,
    as_json: bool,
) -> None:
    """Reserve AMOUNT on FROM_WALLET_ID, to capture or void later. The hold's id is its
    operation's."""
    submit(
        lambda p: p.hold(
            from_wallet_id,
            amount,
            to_wallet_id=to_wallet_id,
            expires_in=expires_in,
            reference=reference,
            idempotency_key=idempotency_key,
        ),
        wait,
        timeout,
        as_json,
    )


@click.command(epilog=EXIT_STATUS)
@click.argument("hold_id")
@click.argument("amount", required=False)
@reference_option
@operation_options
def capture(
    hold_id: str,
    amount: str | None,
    reference: str | None,
    idempotency_key: str | None,
    wait: bool,
    timeout: float,
    as_json: bool,
) -> None:
    """Move the held money (all of it, or AMOUNT of it) to the hold's destination, and
    release the hold."""
    submit(
        lambda p: p.capture(hold_id, amount, reference=reference, idempotency_key=idempotency_key),
        wait,
        timeout,
        as_json,
    )


@click.command(epilog=EXIT_STATUS)
@click.argument("hold_id")
@operation_options
def void(
    hold_id: str, idempotency_key: str | None, wait: bool, timeout: float, as_json: bool
) -> None:
    """Release HOLD_ID without moving any money."""
    submit(lambda p: p.void(hold_id, idempotency_key=idempotency_key), wait, timeout, as_json)


@click.command(epilog=EXIT_STATUS)
@click.argument("operation_id")
@click.argument("amount", required=False)
@reference_option
@operation_options
def reverse(
    operation_id: str,
    amount: str | None,
    reference: str | None,
    idempotency_key: str | None,
    wait: bool,
    timeout: float,
    as_json: bool,
) -> None:
    """Give back a succeeded transfer, replenishment, withdrawal or capture: what is left
    of it, or AMOUNT (partial reversals add up to its amount at most)."""
    submit(
        lambda p: p.reverse(
            operation_id, amount, reference=reference, idempotency_key=idempotency_key
        ),
        wait,
        timeout,
        as_json,
    )


COMMANDS = (replenish, withdraw, transfer, hold, capture, void, reverse)
