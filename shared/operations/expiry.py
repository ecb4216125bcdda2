"""Expiry: a hold left alone is released after `expires_at`. Never requested through the
API: the sweeper enqueues one per expired hold (`repository.ENQUEUE_EXPIRIES`), in the
queue of the hold's source wallet, so that a capture or void accepted before the expiry
is applied before it.

Applied, it releases the hold if it is still held (`expired`); a hold that was captured
or voided meanwhile is left as it is. Either way it succeeds, and writes no ledger
transaction.
"""

from __future__ import annotations

from uuid import UUID

from pydantic import BaseModel

from shared.operations.kind import INTERNAL_ERROR, Kind, Ledger, PendingOperation


class Expiry(Kind):
    name = "expiry"
    request = BaseModel  # not requested: enqueued by the sweeper
    failures = (INTERNAL_ERROR,)
    posts = False
    internal = True

    def wallets(self, operation: PendingOperation) -> list[UUID]:
        assert operation.from_wallet_id is not None
        return [operation.from_wallet_id]

    def apply(self, operation: PendingOperation, ledger: Ledger) -> None:
        assert operation.hold_id is not None
        hold = ledger.hold(operation.hold_id)
        if hold.status == "held":
            ledger.release(hold.from_wallet_id, hold.amount)
            ledger.end_hold(hold, "expired")
        ledger.succeed(operation)


EXPIRY = Expiry()
