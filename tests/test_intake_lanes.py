"""Intakes queued on one busy wallet go together, in one transaction (WalletLanes).

Most of these drive `WalletLanes` directly against the test database, with works that
write to a scratch table, so that each one's transaction can be seen; the last one goes
through the API with a hot wallet and answers of every kind mixed."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Iterator
from decimal import Decimal
from typing import Any, cast

import asyncpg
import httpx
import psycopg2.extensions
import pytest

from shared.asyncdb import Connection
from shared.errors import NotFound
from shared.intake.idempotency import Accepted
from shared.intake.lanes import WalletLanes
from shared.settings import get_settings
from tests.conftest import query
from tests.helpers import Api, new_key

WALLET = uuid.UUID(int=7)
TENANT = uuid.UUID(int=1)
FOLLOWERS = 30


@pytest.fixture
def probe(db: psycopg2.extensions.connection) -> Iterator[None]:
    with db, db.cursor() as cur:
        cur.execute(
            "CREATE SCHEMA lane_test;"
            " CREATE TABLE lane_test.probe (id serial PRIMARY KEY, n int NOT NULL,"
            " txid bigint NOT NULL DEFAULT txid_current())"
        )
    yield
    with db, db.cursor() as cur:
        cur.execute("DROP SCHEMA lane_test CASCADE")


Work = Callable[[Connection], Awaitable[Accepted]]


def record(n: int, before: str = "") -> Work:
    async def work(conn: Connection) -> Accepted:
        if before:
            await conn.execute(before)
        await conn.execute("INSERT INTO lane_test.probe (n) VALUES ($1)", n)
        return Accepted(cast(Any, {"n": n}), 202, replayed=False)

    return work


def run_lane(
    works: list[Work], tenants: list[uuid.UUID] | None = None
) -> list[Accepted | BaseException]:
    """The first work alone (it holds the wallet for a moment), the rest queued behind it,
    in order; each for its tenant (all the same one by default) and the same wallet."""
    tenants = tenants or [TENANT] * len(works)

    async def main() -> list[Accepted | BaseException]:
        pool = await asyncpg.create_pool(get_settings().asyncpg_dsn, min_size=1, max_size=4)
        try:
            lanes = WalletLanes(pool)
            first = asyncio.create_task(lanes.run(tenants[0], WALLET, works[0]))
            await asyncio.sleep(0.05)  # the first one is in its pg_sleep now
            rest = [
                asyncio.create_task(lanes.run(tenant, WALLET, work))
                for tenant, work in zip(tenants[1:], works[1:], strict=True)
            ]
            return list(await asyncio.gather(first, *rest, return_exceptions=True))
        finally:
            await pool.close()

    return asyncio.run(main())


def probe_rows(db: psycopg2.extensions.connection) -> list[tuple[Any, ...]]:
    return query(db, "SELECT n, txid FROM lane_test.probe ORDER BY id")


@pytest.mark.usefixtures("probe")
def test_intakes_queued_on_a_busy_wallet_share_one_transaction_in_arrival_order(
    db: psycopg2.extensions.connection,
) -> None:
    works = [record(0, "SELECT pg_sleep(0.3)")] + [record(n) for n in range(1, FOLLOWERS + 1)]
    answers = run_lane(works)

    assert [cast(Accepted, a).resource["n"] for a in answers] == list(range(FOLLOWERS + 1))
    rows = probe_rows(db)
    assert [n for n, _ in rows] == list(range(FOLLOWERS + 1))  # once each, in arrival order
    followers = {txid for n, txid in rows if n > 0}
    assert len(followers) == 1, "the queued intakes were not grouped"
    assert rows[0][1] not in followers


@pytest.mark.usefixtures("probe")
def test_a_refusal_in_a_group_is_that_request_s_answer_only(
    db: psycopg2.extensions.connection,
) -> None:
    async def refused(_: Connection) -> Accepted:
        raise NotFound("no such wallet")

    works = [record(0, "SELECT pg_sleep(0.3)"), record(1), refused, record(3)]
    answers = run_lane(works)

    assert isinstance(answers[2], NotFound)
    assert [cast(Accepted, answers[i]).resource["n"] for i in (0, 1, 3)] == [0, 1, 3]
    rows = probe_rows(db)
    assert [n for n, _ in rows] == [0, 1, 3]
    assert rows[1][1] == rows[2][1]  # 1 and 3 were committed together


@pytest.mark.usefixtures("probe")
def test_a_failed_group_is_rolled_back_and_run_one_by_one(
    db: psycopg2.extensions.connection,
) -> None:
    works = [record(0, "SELECT pg_sleep(0.3)"), record(1), record(2, "SELECT 1/0"), record(3)]
    answers = run_lane(works)

    assert isinstance(answers[2], asyncpg.DivisionByZeroError)
    rows = probe_rows(db)
    assert [n for n, _ in rows] == [0, 1, 3]  # nothing twice, nothing of the failed one
    assert rows[1][1] != rows[2][1]  # each in its own transaction after the rollback


@pytest.mark.usefixtures("probe")
def test_an_error_handled_inside_a_group_does_not_pass_for_a_commit(
    db: psycopg2.extensions.connection,
) -> None:
    """A work may handle a statement error itself (the intake does, for lock timeouts).
    The group's transaction is then aborted, and its COMMIT would roll back silently:
    the group must notice, and run its works one by one."""

    async def swallows(conn: Connection) -> Accepted:
        try:
            await conn.execute("SELECT 1/0")
        except asyncpg.DivisionByZeroError:
            pass
        return Accepted(cast(Any, {"n": None}), 202, replayed=False)

    works = [record(0, "SELECT pg_sleep(0.3)"), record(1), record(2), swallows]
    answers = run_lane(works)

    assert all(isinstance(a, Accepted) for a in answers), answers
    assert [n for n, _ in probe_rows(db)] == [0, 1, 2]


@pytest.mark.usefixtures("probe")
def test_another_tenant_naming_the_wallet_never_joins_or_waits_for_its_group(
    db: psycopg2.extensions.connection,
) -> None:
    stranger = uuid.UUID(int=2)
    works = [record(0, "SELECT pg_sleep(0.5)"), record(1), record(2), record(3)]
    answers = run_lane(works, [TENANT, TENANT, stranger, TENANT])

    assert all(isinstance(a, Accepted) for a in answers), answers
    rows = dict(probe_rows(db))
    assert rows[1] == rows[3]  # the tenant's own followers went together ...
    assert rows[2] not in (rows[0], rows[1])  # ... the stranger's request alone,
    order = [n for n, _ in probe_rows(db)]
    assert order.index(2) < order.index(0)  # without waiting for the busy wallet


@pytest.mark.usefixtures("probe")
def test_a_group_whose_commit_happened_after_all_answers_first_requests_as_new(
    db: psycopg2.extensions.connection,
) -> None:
    """A group's COMMIT can fail on the client's side after the server committed (a
    connection lost at that moment). Run one by one, its requests then find their keys
    taken: they must still be answered as accepted now, not as replays, so that their
    worker is woken."""
    with db, db.cursor() as cur:
        cur.execute("CREATE TABLE lane_test.once (n int PRIMARY KEY)")

    def once(n: int) -> Work:
        async def work(conn: Connection) -> Accepted:
            inserted = await conn.fetchval(
                "INSERT INTO lane_test.once VALUES ($1) ON CONFLICT DO NOTHING RETURNING n", n
            )
            return Accepted(cast(Any, {"n": n}), 202, replayed=inserted is None)

        return work

    async def commits_then_fails(conn: Connection) -> Accepted:
        await conn.execute("COMMIT")  # what the group wrote so far is committed ...
        raise ConnectionResetError("connection lost")  # ... and the group cannot tell

    works = [once(0), once(1), once(2), commits_then_fails]
    works[0] = record(0, "SELECT pg_sleep(0.3)")
    answers = run_lane(works)

    assert isinstance(answers[3], ConnectionResetError)
    assert [cast(Accepted, answers[i]).replayed for i in (1, 2)] == [False, False]
    assert query(db, "SELECT n FROM lane_test.once ORDER BY n") == [(1,), (2,)]


def test_a_hot_wallet_s_mixed_requests_each_get_their_own_answer(
    api: Api, db: psycopg2.extensions.connection
) -> None:
    """Transfers out of one wallet, many at once, with refusals and replays among them:
    each request gets the answer it would get alone, and the money adds up."""
    source = api.funded_wallet("1000.00")
    destinations = [api.create_wallet() for _ in range(4)]
    missing = str(uuid.uuid4())
    reused = new_key()
    replayed = new_key()
    plan: list[tuple[str, str, str, int]] = []  # key, destination, amount, expected status
    for i in range(60):
        plan.append((new_key(), destinations[i % 4], "1.00", 202))
    for _ in range(5):
        plan.append((new_key(), missing, "1.00", 404))
    plan.append((reused, destinations[0], "2.00", 202))
    plan.append((replayed, destinations[1], "3.00", 202))
    plan.append((replayed, destinations[1], "3.00", 202))

    async def fire() -> list[httpx.Response]:
        async with httpx.AsyncClient(
            base_url=api.base_url,
            headers={"Authorization": f"Bearer {api.api_key}"},
            timeout=60,
            limits=httpx.Limits(max_connections=40),
        ) as client:

            async def post(key: str, destination: str, amount: str) -> httpx.Response:
                return await client.post(
                    "/v1/transfers",
                    json={"from_wallet_id": source, "to_wallet_id": destination, "amount": amount},
                    headers={"Idempotency-Key": key},
                )

            first = await asyncio.gather(*(post(k, d, a) for k, d, a, _ in plan))
            # The same key with another request, while the wallet is busy again.
            again = await asyncio.gather(
                post(reused, destinations[0], "9.00"),
                *(post(new_key(), destinations[2], "1.00") for _ in range(20)),
            )
            return list(first) + list(again)

    responses = asyncio.run(fire())
    expected = [status for *_, status in plan] + [422] + [202] * 20
    assert [r.status_code for r in responses] == expected, [
        r.text for r, s in zip(responses, expected, strict=True) if r.status_code != s
    ]
    last_of_plan = len(plan) - 1
    assert responses[last_of_plan].json()["id"] == responses[last_of_plan - 1].json()["id"]
    operations = {r.json()["id"] for r in responses if r.status_code == 202}
    assert len(operations) == 60 + 1 + 1 + 20
    for operation in operations:
        assert api.wait(operation)["status"] == "succeeded"
    moved = Decimal("60.00") + Decimal("2.00") + Decimal("3.00") + Decimal("20.00")
    assert Decimal(api.wallet(source)["balance"]) == Decimal("1000.00") - moved
    received = sum((Decimal(api.wallet(d)["balance"]) for d in destinations), Decimal(0))
    assert received == moved
    # The source's queue: its funding, then these transfers; no position twice or skipped.
    queue = query(
        db,
        "SELECT position, type FROM operation WHERE queue_wallet_id = %s ORDER BY position",
        source,
    )
    assert [p for p, _ in queue] == list(range(1, len(queue) + 1))
    assert sum(t == "transfer" for _, t in queue) == len(operations)
