"""The webhook gauges of /metrics (`shared.webhooks.gauges`), on a scratch database with no
sender running: an event waits for an endpoint from its creation, before fan-out has
made its delivery (while `paysys webhooks` is down) as much as after."""

from __future__ import annotations

import asyncio
import re

import asyncpg
import psycopg2.extensions
import pytest

from shared.webhooks.gauges import webhook_gauges
from tests.webhook_scratch import execute, fan_out_all, new_endpoint, new_event, new_tenant, scratch

Conn = psycopg2.extensions.connection

db = pytest.fixture(scratch)


def oldest(url: str) -> dict[str, float]:
    """paysys_webhook_oldest_undelivered_seconds, by endpoint id."""

    async def read() -> bytes:
        conn = await asyncpg.connect(url)
        try:
            return await webhook_gauges(conn)
        finally:
            await conn.close()

    text = asyncio.run(read()).decode()
    pattern = r'paysys_webhook_oldest_undelivered_seconds\{endpoint_id="([^"]+)"\} (\S+)'
    return {endpoint: float(age) for endpoint, age in re.findall(pattern, text)}


def test_events_not_fanned_out_yet_are_undelivered(db: tuple[str, Conn]) -> None:
    url, conn = db
    tenant = new_tenant(conn)
    hour_ago = "now() - interval '1 hour'"
    everything = new_endpoint(conn, tenant, created=hour_ago)
    accounts = new_endpoint(conn, tenant, ("account.created",), created=hour_ago)
    holds = new_endpoint(conn, tenant, ("hold.expired",), created=hour_ago)
    disabled = new_endpoint(conn, tenant, created=hour_ago)
    execute(
        conn,
        "UPDATE webhook_endpoint SET disabled_at = now(), disabled_reason = 'failing' "
        "WHERE id = %s",
        disabled,
    )
    assert oldest(url) == {}
    # Events of ten and five minutes ago, and nothing has fanned them out.
    new_event(conn, tenant, "operation.succeeded", created="now() - interval '10 minutes'")
    for _ in range(3):
        new_event(conn, tenant, "account.created", created="now() - interval '5 minutes'")
    ages = oldest(url)
    assert set(ages) == {str(everything), str(accounts)}  # none of the holds' type
    assert 600 <= ages[str(everything)] < 660
    assert 300 <= ages[str(accounts)] < 360
    # Fanned out, they are deliveries waiting: the same ages.
    fan_out_all(
        url, until=lambda: execute(conn, "SELECT count(*) FROM webhook_delivery")[0][0] == 7
    )
    after = oldest(url)
    assert set(after) == set(ages)
    assert 600 <= after[str(everything)] < 660
    assert 300 <= after[str(accounts)] < 360
    # Delivered: nothing waits.
    execute(
        conn,
        "UPDATE webhook_delivery SET next_attempt_at = NULL, delivered_at = now(), attempts = 1",
    )
    assert oldest(url) == {}
    assert str(holds) not in after
