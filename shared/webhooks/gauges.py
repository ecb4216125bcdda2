"""The webhook gauges of /metrics, read from PostgreSQL when it is scraped: how long each
live endpoint's oldest undelivered event has waited, and how many endpoints are disabled.

Cheap whatever the backlog: one probe per live endpoint of
`ix_webhook_delivery_undelivered` (its undelivered deliveries by event time), and a count
over the endpoints. Counters of attempts live in `shared.metrics`.
"""

from __future__ import annotations

from shared.asyncdb import Connection

OLDEST_UNDELIVERED = """
SELECT e.id, EXTRACT(EPOCH FROM now() - o.oldest)::float8
FROM webhook_endpoint e
CROSS JOIN LATERAL (SELECT d.event_created_at AS oldest FROM webhook_delivery d
                    WHERE d.endpoint_id = e.id AND d.next_attempt_at IS NOT NULL
                    ORDER BY d.event_created_at LIMIT 1) o
WHERE e.deleted_at IS NULL AND e.disabled_at IS NULL
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
        "delivered to a webhook endpoint (retries included)",
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
