"""Against the real stack: an operation the database refuses to apply ends `internal_error`
within seconds, counted and logged, while every other operation (of its own wallet and of
other tenants) is applied as usual."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from decimal import Decimal

import httpx
import psycopg2.extensions
import pytest

from tests.conftest import Stack
from tests.helpers import Api

PLANT = """
CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM operation o
               WHERE o.id = NEW.operation_id AND o.reference = %(marker)s) THEN
        RAISE EXCEPTION 'refused by the test';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER refuse_poison BEFORE INSERT ON transaction
    FOR EACH ROW EXECUTE FUNCTION refuse_poison();
"""
REMOVE = """
DROP TRIGGER IF EXISTS refuse_poison ON transaction;
DROP FUNCTION IF EXISTS refuse_poison();
"""


@pytest.fixture
def marker(db: psycopg2.extensions.connection) -> Iterator[str]:
    """A reference that the database refuses to apply, for as long as the test runs."""
    text = f"poison-{uuid.uuid4()}"
    with db.cursor() as cur:
        cur.execute(PLANT, {"marker": text})
    try:
        yield text
    finally:
        with db.cursor() as cur:
            cur.execute(REMOVE)


def internal_errors(stack: Stack) -> float:
    text = httpx.get(f"{stack.base_url}/metrics", timeout=10).text
    return sum(
        float(line.rpartition(" ")[2])
        for line in text.splitlines()
        if line.startswith("paysys_internal_errors_total")
    )


def test_a_poison_operation_fails_alone_and_stalls_nobody(
    stack: Stack, api: Api, other_api: Api, marker: str
) -> None:
    source = api.funded_wallet("100.00")
    destination = api.create_wallet()
    others = [other_api.funded_wallet("50.00", f"O{i}") for i in range(4)]
    before = internal_errors(stack)

    # With the worker stopped, everything queues up, to be drained together.
    stack.worker.stop()
    try:
        poison = api.transfer(source, destination, "10.00", reference=marker).json()["id"]
        behind = [api.transfer(source, destination, "1.00").json()["id"] for _ in range(5)]
        refill = api.replenish(source, "2.00").json()["id"]
        theirs = [
            other_api.transfer(others[i], others[(i + 1) % 4], "5.00").json()["id"]
            for i in range(4)
        ]
        theirs += [other_api.replenish(wallet, "1.00").json()["id"] for wallet in others]
    finally:
        stack.worker.start()
        stack.worker.wait_for_log("ready.", timeout=60)
    started = time.monotonic()

    for operation_id in theirs:
        assert other_api.wait(operation_id, timeout=20)["status"] == "succeeded"
    for operation_id in [*behind, refill]:
        assert api.wait(operation_id, timeout=20)["status"] == "succeeded"
    others_done = time.monotonic() - started
    failed = api.wait(poison, timeout=20)
    assert failed["status"] == "failed"
    assert failed["transaction_id"] is None
    assert failed["error"]["code"] == "internal_error"
    assert "refused by the test" not in failed["error"]["message"]  # the cause stays inside
    print(f"\nother operations final {others_done:.2f} s after the worker was ready")
    assert others_done < 15

    # Nothing of the poison moved: 100 - 5 x 1.00 + 2.00.
    assert api.balance(source) == Decimal("97.00")
    assert api.balance(destination) == Decimal("5.00")
    assert [other_api.balance(w) for w in others] == [Decimal("51.00")] * 4
    assert internal_errors(stack) == before + 1
    log = stack.worker.log_since_start()
    [line] = [row for row in log.splitlines() if "could not be applied" in row]
    assert poison in line and "refused by the test" in line


def test_a_credit_over_the_balance_limit_fails_with_its_own_code(api: Api) -> None:
    wallet = api.create_wallet()
    items = [{"wallet_id": wallet, "amount": "1000000000.00"}] * 1000
    response = api.post("/v1/replenishment-batches", {"items": items}, key=str(uuid.uuid4()))
    assert response.status_code == 202, response.text
    batch_id = response.json()["id"]
    deadline = time.monotonic() + 60
    while True:
        batch = api.get(f"/v1/replenishment-batches/{batch_id}", params={"wait": 10}).json()
        if batch["status"] == "completed" or time.monotonic() > deadline:
            break
    assert (batch["succeeded"], batch["failed"]) == (999, 1)
    last = api.pages(f"/v1/replenishment-batches/{batch_id}/operations")[-1]
    assert last["error"]["code"] == "balance_limit_exceeded"
    assert api.balance(wallet) == Decimal("999000000000.00")
