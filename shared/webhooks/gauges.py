"""The webhook gauges of /metrics, read from PostgreSQL when it is scraped: how long each
live endpoint's oldest undelivered event has waited, and how many endpoints are disabled.

An event waits for an endpoint from its creation: as a delivery not yet made (retries
included), or, before that, as an event fan-out has not yet turned into a delivery (past
the endpoint's cursor) — all of them while `paysys webhooks` is down, when the gauge
matters most. Both are looked at, the oldest counts.

Cheap whatever the backlog: per live endpoint, one probe of
`ix_webhook_delivery_undelivered` (its undelivered deliveries by event time), and a walk
of `ix_event_tenant_id_xid_seq` from its cursor to the first event it subscribed to,
`FEED_WINDOW` events at most (past those, fan-out's lag shows on the endpoints that take
more common types); and a count over the endpoints. Counters of attempts live in
`shared.metrics`.
"""

from __future__ import annotations

from shared.asyncdb import Connection

FEED_WINDOW = 1000

OLDEST_UNDELIVERED = f"""
SELECT e.id, EXTRACT(EPOCH FROM now() - LEAST(o.oldest, f.oldest))::float8
FROM webhook_endpoint e
LEFT JOIN LATERAL (SELECT d.event_created_at AS oldest FROM webhook_delivery d
                   WHERE d.endpoint_id = e.id AND d.next_attempt_at IS NOT NULL
                   ORDER BY d.event_created_at LIMIT 1) o ON true
LEFT JOIN LATERAL (SELECT v.created_at AS oldest
                   FROM (SELECT type, created_at, xid, seq FROM event
                         WHERE tenant_id = e.tenant_id
                           AND (xid, seq) > (e.fanout_xid, e.fanout_seq)
                         ORDER BY xid, seq LIMIT {FEED_WINDOW}) v
                   WHERE (v.type = ANY (e.event_types) OR '*' = ANY (e.event_types))
                     AND v.created_at >= e.created_at
                   ORDER BY v.xid, v.seq LIMIT 1) f ON true
WHERE e.deleted_at IS NULL AND e.disabled_at IS NULL
  AND (o.oldest IS NOT NULL OR f.oldest IS NOT NULL)
ORDER BY e.id
"""

ENDPOINTS_DISABLED = """
SELECT count(*) FROM webhook_endpoint WHERE disabled_at IS NOT NULL AND deleted_at IS NULL
"""


async def webhook_gauges(conn: Connection) -> bytes:
    """The gauges' exposition lines."""
    oldest = await conn.fetch(OLDEST_UNDELIVERED)
    disabled = await conn.fetchval(ENDPOINTS_DISABLED)
    lines = [
        "# HELP paysys_webhook_oldest_undelivered_seconds Age of the oldest event not yet "
        "delivered to a webhook endpoint (retries included, and events not yet fanned out)",
        "# TYPE paysys_webhook_oldest_undelivered_seconds gauge",
        *(
            f'paysys_webhook_oldest_undelivered_seconds{{endpoint_id="{endpoint_id}"}} '
            f"{max(0.0, seconds):.3f}"
            for endpoint_id, seconds in oldest
        ),
        "# HELP paysys_webhook_endpoints_disabled Webhook endpoints disabled after failing "
        "for too long",
        "# TYPE paysys_webhook_endpoints_disabled gauge",
        f"paysys_webhook_endpoints_disabled {int(disabled)}",
    ]
    return ("\n".join(lines) + "\n").encode()
