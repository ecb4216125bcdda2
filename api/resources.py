"""What the API process holds open: the database pool, Redis, the Celery sender, the
doorbell, the completion hub, the key cache and the backlog gate. Created in the app's
lifespan, reached by routes through `request.app.state.resources`."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import redis.asyncio as aioredis

from api.backlog import BacklogGate, Every
from api.doorbell import Doorbell
from api.hub import CompletionHub
from api.keys import AuthFailures, KeyCache
from api.ratelimit import RateLimiter
from shared.asyncdb import Pool
from shared.intake.lanes import WalletLanes
from shared.settings import Settings


class BoundedPool(asyncpg.Pool):
    """A pool whose `acquire()` waits at most `acquire_timeout` seconds for a connection.

    When every connection is busy (a table locked by a migration, a flood of slow reads),
    a request is answered 503 with Retry-After after that long (asyncpg raises
    TimeoutError, which the API renders as `service_unavailable`), never left to hang.
    """

    acquire_timeout: float | None = None

    def acquire(self, *, timeout: float | None = None) -> Any:
        return super().acquire(timeout=self.acquire_timeout if timeout is None else timeout)


async def create_pool(settings: Settings) -> Pool:
    # min_size=0: the API starts (and answers 503) while PostgreSQL is down.
    pool = BoundedPool(
        settings.asyncpg_dsn,
        connection_class=asyncpg.Connection,
        record_class=asyncpg.Record,
        loop=None,
        max_queries=50_000,
        min_size=0,
        max_size=settings.db_pool_size,
        timeout=settings.db_connect_timeout,
        command_timeout=settings.db_statement_timeout,
        max_inactive_connection_lifetime=60,
        # Connections go back to the pool as they came out: no statement here changes
        # session state (SET LOCAL only, inside transactions), so skip asyncpg's reset
        # query, a round trip on every release.
        reset=_keep_as_is,
        server_settings={
            "application_name": "paysys-api",
            "lock_timeout": f"{int(settings.idempotency_lock_timeout * 1000)}ms",
            "statement_timeout": f"{int(settings.db_statement_timeout * 1000)}ms",
            "idle_in_transaction_session_timeout": "30s",
        },
    )
    pool.acquire_timeout = settings.db_pool_timeout
    await pool
    return pool


async def _keep_as_is(_: asyncpg.Connection) -> None:
    return None


@dataclass
class Resources:
    settings: Settings
    pool: Pool
    redis: aioredis.Redis
    doorbell: Doorbell
    hub: CompletionHub
    limiter: RateLimiter | None
    keys: KeyCache
    auth_failures: AuthFailures
    lanes: WalletLanes
    backlog: BacklogGate
    gauges: Every
    background: list[asyncio.Task[None]] = field(default_factory=list)
