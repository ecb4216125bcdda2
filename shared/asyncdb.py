"""Asynchronous database access for the API (asyncpg).

The transaction rule, for the whole of paysys: the scope that opens a transaction (a
request, a task, a command) commits it; services and repositories only execute
statements on the connection or cursor they are given. Most of the API's writes are one
statement each, which PostgreSQL commits by itself. Where a service must hold a
transaction open over several statements (the grouped intake of a busy wallet, a batch,
the probe of an idempotency key) it says why, where it opens it.

The synchronous side (worker, sweeper, command line) is `shared.db`.
"""

from __future__ import annotations

import asyncpg

Record = asyncpg.Record
Connection = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy
Pool = asyncpg.Pool
