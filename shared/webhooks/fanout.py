"""Fan-out: each live endpoint's share of its tenant's events becomes deliveries.

The rule it keeps: an endpoint gets one delivery for every event of a type it subscribed
to that is created after it was registered (its `created_at` not before the endpoint's:
the cursor starts at the horizon of the registration, which a transaction still running
then may hold back to before events already committed), and none is ever skipped. Its cursor
(`fanout_xid`, `fanout_seq`) walks the tenant's feed in `(xid, seq)` order over final
events only (keys below the snapshot's xmin: every transaction that could still write a
key below it has ended). The deliveries and the cursor's move are written in one
transaction, under the endpoint's row lock, taken with SKIP LOCKED so that fan-outs
running at once share the endpoints instead of waiting on one another.

When a page comes back short, every final event past the cursor has been read, so the
cursor jumps to the horizon itself, `(xmin, 0)`: nothing below it can appear any more.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.db import Cursor, transaction
from shared.webhooks import fanout_repository as repo

# Endpoints per round and events per endpoint per round: a round is one short transaction.
ENDPOINTS_PER_ROUND = 50
EVENTS_PER_PAGE = 500


@dataclass(frozen=True, slots=True)
class FanOut:
    endpoints: int = 0  # endpoints whose cursor moved
    deliveries: int = 0  # deliveries created
    more: bool = False  # a page or the round was full: go again at once
    waiting: bool = False  # events exist past a cursor but are not final yet


def fan_out_round(
    endpoints: int = ENDPOINTS_PER_ROUND, page: int = EVENTS_PER_PAGE, look_waiting: bool = True
) -> FanOut:
    """One round in a transaction of its own (the endpoints stay locked until it commits:
    their deliveries and cursors are written together or not at all)."""
    with transaction() as cur:
        result = fan_out(cur, endpoints, page)
    if look_waiting and not result.more:
        with transaction() as cur:
            waiting = repo.any_waiting(cur)
        return FanOut(result.endpoints, result.deliveries, result.more, waiting)
    return result


def fan_out(cur: Cursor, endpoints: int, page: int) -> FanOut:
    """Up to `endpoints` endpoints that are behind, one page of events each, on `cur`."""
    created = 0
    more = False
    rows = repo.behind_endpoints(cur, endpoints)
    for endpoint_id, tenant_id, types, since, cursor_xid, cursor_seq in rows:
        read, made, last_xid, last_seq, horizon = repo.fan_out_page(
            cur, endpoint_id, tenant_id, list(types), since, (cursor_xid, cursor_seq), page
        )
        created += made
        if read < page:
            repo.move_cursor(cur, endpoint_id, (horizon, 0))
        else:
            assert last_xid is not None and last_seq is not None
            repo.move_cursor(cur, endpoint_id, (last_xid, last_seq))
            more = True
    return FanOut(len(rows), created, more or len(rows) == endpoints)
