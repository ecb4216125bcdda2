"""`paysys audit`: every ledger invariant, checked over the whole database.

Each check is a query that returns the rows that break it (none when it holds), so the
report can say exactly what is wrong. The schema already refuses most of these at write
time; the audit proves it after the fact, whatever happened in between.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.db import Cursor
from shared.operations import KINDS

SAMPLE = 20


def _legs(side: str) -> str:
    """Whether posting `p` (of wallet `w`) is, for its operation `o`, the leg each kind
    puts on `side` (see `Kind.audit_debit` and `audit_credit`)."""
    cases = []
    for kind in KINDS.values():
        wallet = getattr(kind, side)
        test = "w.kind = 'funding'" if wallet == "'funding'" else f"p.wallet_id = {wallet}"
        cases.append(f"(o.type = '{kind.name}' AND {test})")
    return "(" + " OR ".join(cases) + ")"


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    description: str
    sql: str


CHECKS = [
    Check(
        "transactions_balance",
        "each ledger transaction has at least two postings summing to zero",
        """
        SELECT t.id, count(p.id) AS postings, COALESCE(sum(p.amount), 0) AS total
        FROM transaction t LEFT JOIN posting p ON p.transaction_id = t.id
        GROUP BY t.id HAVING count(p.id) < 2 OR COALESCE(sum(p.amount), 0) <> 0
        """,
    ),
    Check(
        "balances_are_sums_of_postings",
        "each wallet's balance equals the sum of its postings, and entry_count their count",
        """
        SELECT w.id, w.balance, w.entry_count, COALESCE(s.total, 0) AS postings_sum,
               COALESCE(s.n, 0) AS postings
        FROM wallet w
        LEFT JOIN (SELECT wallet_id, sum(amount) AS total, count(*) AS n
                   FROM posting GROUP BY wallet_id) s ON s.wallet_id = w.id
        WHERE w.balance <> COALESCE(s.total, 0) OR w.entry_count <> COALESCE(s.n, 0)
        """,
    ),
    Check(
        "running_balances",
        "postings of a wallet are numbered 1, 2, 3 ... and each balance_after is the "
        "previous one plus the amount",
        """
        SELECT id, wallet_id, entry_no, amount, balance_after FROM (
            SELECT p.*,
                   row_number() OVER w AS n,
                   sum(amount) OVER (w ROWS UNBOUNDED PRECEDING) AS running
            FROM posting p
            WINDOW w AS (PARTITION BY wallet_id ORDER BY entry_no)
        ) x
        WHERE entry_no <> n OR balance_after <> running
        """,
    ),
    Check(
        "no_negative_balance",
        "no user wallet is below zero, now or after any posting",
        """
        SELECT w.id, w.balance, min(p.balance_after) AS lowest
        FROM wallet w LEFT JOIN posting p ON p.wallet_id = w.id
        WHERE w.kind = 'user'
        GROUP BY w.id HAVING w.balance < 0 OR min(p.balance_after) < 0
        """,
    ),
    Check(
        "conservation",
        "the balances of all wallets, funding wallets included, sum to zero",
        "SELECT sum(balance) AS total FROM wallet HAVING sum(balance) <> 0",
    ),
    Check(
        "succeeded_once",
        "a succeeded operation has exactly one ledger transaction; any other has none",
        """
        SELECT o.id, o.status, count(t.id) AS transactions
        FROM operation o LEFT JOIN transaction t ON t.operation_id = o.id
        GROUP BY o.id
        HAVING count(t.id) <> CASE WHEN o.status = 'succeeded' THEN 1 ELSE 0 END
        """,
    ),
    Check(
        "postings_match_operations",
        "a transaction moves exactly its operation's amount between its operation's wallets",
        f"""
        SELECT o.id, o.type, o.amount, t.id AS transaction_id
        FROM operation o JOIN transaction t ON t.operation_id = o.id
        WHERE t.type <> o.type
           OR NOT EXISTS (
                SELECT 1 FROM posting p JOIN wallet w ON w.id = p.wallet_id
                WHERE p.transaction_id = t.id AND p.amount = o.amount
                  AND {_legs("audit_credit")})
           OR NOT EXISTS (
                SELECT 1 FROM posting p JOIN wallet w ON w.id = p.wallet_id
                WHERE p.transaction_id = t.id AND p.amount = -o.amount
                  AND {_legs("audit_debit")})
           OR (SELECT count(*) FROM posting p WHERE p.transaction_id = t.id) <> 2
        """,
    ),
    Check(
        "completed_in_order",
        "no operation is final while an earlier one in its wallet's queue is still pending",
        """
        SELECT f.id, f.queue_wallet_id, f.position, p.position AS earlier_pending
        FROM operation f JOIN operation p
          ON p.queue_wallet_id = f.queue_wallet_id AND p.position < f.position
        WHERE f.status <> 'pending' AND p.status = 'pending'
        """,
    ),
    Check(
        "final_is_complete",
        "a final operation has its completion time and, if failed, its error",
        """
        SELECT id, status FROM operation
        WHERE (status = 'pending') <> (completed_at IS NULL)
           OR (status = 'failed') <> (error_code IS NOT NULL)
        """,
    ),
    Check(
        "one_operation_per_key",
        "each retained idempotency key names the one operation it created",
        """
        SELECT k.tenant_id, k.key, k.resource_id
        FROM idempotency_key k
        LEFT JOIN operation o ON o.id = k.resource_id
        WHERE k.resource_type = 'operation'
          AND (o.id IS NULL OR o.tenant_id <> k.tenant_id
               OR o.idempotency_key IS DISTINCT FROM k.key)
        """,
    ),
    Check(
        "applied_in_order",
        "each wallet's own operations (its replenishments and transfers out) were applied "
        "in acceptance order",
        """
        SELECT wallet_id, entry_no, position, previous_position FROM (
            SELECT p.wallet_id, p.entry_no, o.position,
                   lag(o.position) OVER (PARTITION BY p.wallet_id ORDER BY p.entry_no)
                       AS previous_position
            FROM posting p
            JOIN transaction t ON t.id = p.transaction_id
            JOIN operation o ON o.id = t.operation_id AND o.queue_wallet_id = p.wallet_id
        ) x
        WHERE position < previous_position
        """,
    ),
]


@dataclass(frozen=True, slots=True)
class Finding:
    check: Check
    rows: list[tuple[object, ...]]
    columns: list[str]


def run(cur: Cursor) -> list[Finding]:
    """Run every check in one snapshot, so a running system is audited consistently."""
    cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
    cur.execute("SET LOCAL statement_timeout = 0")  # a big ledger takes as long as it takes
    findings = []
    for check in CHECKS:
        cur.execute(check.sql + f" LIMIT {SAMPLE}")
        rows = cur.fetchall()
        if rows:
            columns = [c.name for c in cur.description or ()]
            findings.append(Finding(check, rows, columns))
    return findings


def report(findings: list[Finding]) -> str:
    if not findings:
        return f"audit: all {len(CHECKS)} ledger invariants hold"
    lines = [f"audit: {len(findings)} of {len(CHECKS)} invariants are broken"]
    for finding in findings:
        more = " (first rows)" if len(finding.rows) == SAMPLE else ""
        lines.append(f"\nBROKEN {finding.check.name}: {finding.check.description}{more}")
        for row in finding.rows:
            lines.append(
                "  " + ", ".join(f"{c}={v}" for c, v in zip(finding.columns, row, strict=True))
            )
    return "\n".join(lines)
