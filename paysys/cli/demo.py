"""`paysys demo`: sample accounts, money and a few operations of every kind (and so their
events), for the console and the docs to have something to show.

Every request has an Idempotency-Key made from `--tag` and the step, so running it again
(within the day paysys keeps keys) replays what was done and creates nothing more; a new
tag makes another set.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import click

from paysys.cli import connect, output
from paysys.cli.connect import OperationFailed

if TYPE_CHECKING:
    from paysys.client import Account, Batch, Operation, Paysys

PEOPLE = ("Alice", "Bob", "Carol", "Dave")


@dataclass(frozen=True)
class Step:
    name: str
    expected: str  # the operation's status when all goes as planned
    operation: Operation


class Demo:
    def __init__(self, paysys: Paysys, tag: str):
        self.paysys = paysys
        self.tag = tag
        self.steps: list[Step] = []
        self.accounts: dict[str, Account] = {}

    def key(self, step: str) -> str:
        return f"paysys-demo-{self.tag}-{step}"

    def wallet(self, name: str) -> str:
        return self.accounts[name].wallet.id

    def step(
        self,
        name: str,
        send: Callable[..., Operation],
        *args: Any,
        expected: str = "succeeded",
        **kwargs: Any,
    ) -> Operation:
        """`send(*args, **kwargs)` with this step's Idempotency-Key, once final."""
        operation = send(*args, idempotency_key=self.key(name), **kwargs).wait(timeout=60)
        self.steps.append(Step(name, expected, operation))
        return operation

    def run(self) -> Batch:
        from paysys.client import BatchItem

        p, w = self.paysys, self.wallet
        for name in PEOPLE:
            self.accounts[name] = p.create_account(name, idempotency_key=self.key(name.lower()))
        self.step("salary", p.replenish, w("Alice"), "500.00", reference="salary")
        self.step("top-up", p.replenish, w("Bob"), "200.00", reference="card top-up")
        self.step("gift", p.replenish, w("Carol"), "75.00", reference="gift card")
        self.step("rent", p.transfer, w("Alice"), w("Bob"), "120.00", reference="rent")
        self.step("dinner", p.transfer, w("Bob"), w("Carol"), "35.50", reference="dinner")
        self.step("beans", p.transfer, w("Carol"), w("Alice"), "12.25", reference="coffee beans")
        self.step("payout", p.withdraw, w("Bob"), "50.00", reference="payout to bank")
        # An order: held at checkout, 60.00 of 80.00 captured on delivery, 15.00 refunded.
        order = self.step(
            "order", p.hold, w("Alice"), "80.00", to_wallet_id=w("Carol"), reference="order 1001"
        )
        delivered = self.step("delivered", p.capture, order.id, "60.00", reference="delivered")
        self.step("refund", p.reverse, delivered.id, "15.00", reference="item returned")
        # An order cancelled before delivery, and a deposit still held.
        cancelled = self.step(
            "cancelled", p.hold, w("Bob"), "25.00", to_wallet_id=w("Dave"), reference="order 1002"
        )
        self.step("void", p.void, cancelled.id)
        self.step("deposit", p.hold, w("Carol"), "5.00", to_wallet_id=w("Bob"), reference="deposit")
        # More than Dave has: it fails with insufficient_funds, and moves nothing.
        self.step(
            "overdraft",
            p.transfer,
            w("Dave"),
            w("Alice"),
            "10.00",
            reference="more than Dave has",
            expected="failed",
        )
        items = [
            BatchItem(w("Dave"), "40.00", "cashback"),
            BatchItem(w("Carol"), "10.00", "cashback"),
            BatchItem(w("Alice"), "5.00", "cashback"),
        ]
        batch = p.create_batch(items, idempotency_key=self.key("cashback")).wait(timeout=120)
        for name, account in self.accounts.items():
            self.accounts[name] = p.get_account(account.id)
        return batch


@click.command()
@click.option(
    "--tag",
    default="demo",
    show_default=True,
    help="Names this set of sample data: run again with the same tag, nothing more is "
    "created (for a day); with a new one, another set.",
)
@output.json_option
def demo(tag: str, as_json: bool) -> None:
    """Create sample data: four accounts, top-ups, transfers, a payout, holds captured,
    voided and still held, a refund, a transfer that fails and a batch. Prints what it
    made."""
    with connect.client() as paysys:
        made = Demo(paysys, tag)
        batch = made.run()
        url = paysys.url
    if as_json:
        output.print_json(
            {
                "accounts": list(made.accounts.values()),
                "operations": [step.operation for step in made.steps],
                "batch": batch,
            }
        )
    else:
        _show(made, batch, url)
    wrong = [s for s in made.steps if s.operation.status != s.expected]
    if wrong or batch.failed:
        what = ", ".join(f"{s.name} {s.operation.status}" for s in wrong) or "the batch"
        raise OperationFailed(f"the demo did not go as planned: {what}")


def _show(made: Demo, batch: Batch, url: str) -> None:
    names = {account.wallet.id: name for name, account in made.accounts.items()}
    balances = ("balance", "held", "available")
    output.table(
        ("name", "account", "wallet", *balances),
        [
            [name, a.id, a.wallet.id, *(str(getattr(a.wallet, b)) for b in balances)]
            for name, a in made.accounts.items()
        ],
        right=balances,
    )
    click.echo()
    rows = []
    for step in made.steps:
        operation = step.operation
        source, destination = output.direction(operation)
        rows.append(
            [
                operation.id,
                operation.type,
                operation.status,
                str(operation.amount),
                names.get(source or "", source or ""),
                names.get(destination or "", destination or ""),
                operation.reference or "",
            ]
        )
    output.table(
        ("operation", "type", "status", "amount", "from", "to", "reference"),
        rows,
        right=("amount",),
    )
    click.echo(f"\nbatch {batch.id}: {batch.status}, {batch.succeeded} of {batch.total} succeeded")
    alice = made.accounts["Alice"].wallet.id
    click.echo(f"\nNext: paysys wallets show {alice}; paysys events; {url}/console")
