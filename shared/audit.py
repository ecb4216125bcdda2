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
    """Whether posting `p` (of wallet `w`) is, for its operation `o`, the leg its kind puts
    on `side` (see `Kind.audit_debit` and `audit_credit`)."""
    cases = [
        f"(o.type = '{kind.name}' AND ({getattr(kind, side)}))"
        for kind in KINDS.values()
        if kind.posts
    ]
    return "(" + " OR ".join(cases) + ")"


def _posting_kinds() -> str:
    return ", ".join(f"'{kind.name}'" for kind in KINDS.values() if kind.posts)


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
        "a succeeded operation that moves money has exactly one ledger transaction; any "
        "other has none",
        f"""
        SELECT o.id, o.status, count(t.id) AS transactions
        FROM operation o LEFT JOIN transaction t ON t.operation_id = o.id
        GROUP BY o.id
        HAVING count(t.id) <> CASE WHEN o.status = 'succeeded'
                                    AND o.type IN ({_posting_kinds()}) THEN 1 ELSE 0 END
        """,
    ),
    Check(
        "held_is_active_holds",
        "a wallet's held amount is the sum of its active holds, and within its balance",
        """
        SELECT w.id, w.balance, w.held, COALESCE(h.total, 0) AS active_holds
        FROM wallet w
        LEFT JOIN (SELECT from_wallet_id, sum(amount) AS total FROM hold
                   WHERE status = 'held' GROUP BY from_wallet_id) h
          ON h.from_wallet_id = w.id
        WHERE w.held <> COALESCE(h.total, 0) OR w.held < 0
           OR (w.kind = 'user' AND w.balance - w.held < 0)
        """,
    ),
    Check(
        "holds_match_operations",
        "each hold is its succeeded hold operation's, captured at most once and never "
        "beyond its amount, by its one succeeded capture",
        """
        SELECT h.id, h.status, h.amount, h.captured_amount, o.status AS operation_status
        FROM hold h JOIN operation o ON o.id = h.id
        WHERE o.type <> 'hold' OR o.status <> 'succeeded' OR o.amount <> h.amount
           OR o.from_wallet_id <> h.from_wallet_id
           OR o.to_wallet_id IS DISTINCT FROM h.to_wallet_id
           OR h.captured_amount > h.amount
           OR (h.status = 'captured') <> EXISTS (
                SELECT 1 FROM operation c WHERE c.hold_id = h.id AND c.type = 'capture'
                  AND c.status = 'succeeded' AND c.amount = h.captured_amount)
           OR (SELECT count(*) FROM operation c WHERE c.hold_id = h.id
                 AND c.type IN ('capture', 'void') AND c.status = 'succeeded') > 1
        """,
    ),
    Check(
        "reversals_within_amount",
        "an operation's reversed amount is the sum of its succeeded reversals, at most its amount",
        """
        SELECT o.id, o.amount, o.reversed_amount, COALESCE(r.total, 0) AS reversals
        FROM operation o
        LEFT JOIN (SELECT reverses_operation_id, sum(amount) AS total FROM operation
                   WHERE type = 'reversal' AND status = 'succeeded'
                   GROUP BY reverses_operation_id) r
          ON r.reverses_operation_id = o.id
        WHERE o.reversed_amount <> COALESCE(r.total, 0) OR o.reversed_amount > o.amount
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
    Check(
        "every_change_has_its_event",
        "every final operation, account, expired hold and completed batch since events began "
        "has exactly one event of its outcome",
        """
        WITH since AS (SELECT started_at FROM event_log_start),
        changes AS (
            SELECT o.id, o.tenant_id, 'operation.' || o.status AS type FROM operation o, since
            WHERE o.status <> 'pending' AND o.type <> 'expiry'
              AND o.completed_at >= since.started_at
            UNION ALL
            SELECT a.id, a.tenant_id, 'account.created' FROM account a, since
            WHERE a.kind = 'user' AND a.created_at >= since.started_at
            UNION ALL
            SELECT h.id, h.tenant_id, 'hold.expired' FROM hold h, since
            WHERE h.status = 'expired' AND h.updated_at >= since.started_at
            UNION ALL
            SELECT b.id, b.tenant_id, 'batch.completed'
            FROM replenishment_batch b JOIN operation o ON o.batch_id = b.id, since
            GROUP BY b.id, b.tenant_id, since.started_at
            HAVING count(*) FILTER (WHERE o.status = 'pending') = 0
               AND max(o.completed_at) >= since.started_at
        ), events AS (
            SELECT (data->>'id')::uuid AS id, tenant_id, type FROM event
        )
        SELECT c.type, c.id, count(e.id) AS events
        FROM changes c
        LEFT JOIN events e ON e.id = c.id AND e.tenant_id = c.tenant_id AND e.type = c.type
        GROUP BY c.type, c.id
        HAVING count(e.id) <> 1
        """,
    ),
    Check(
        "every_event_has_its_change",
        "every event records a change that happened: its operation is final with that "
        "outcome, its account exists, its hold expired, its batch has nothing pending",
        """
        SELECT e.id, e.type FROM event e
        WHERE NOT CASE e.type
            WHEN 'account.created' THEN EXISTS (
                SELECT 1 FROM account a
                WHERE a.id = (e.data->>'id')::uuid AND a.tenant_id = e.tenant_id)
            WHEN 'hold.expired' THEN EXISTS (
                SELECT 1 FROM hold h WHERE h.id = (e.data->>'id')::uuid
                  AND h.tenant_id = e.tenant_id AND h.status = 'expired')
            WHEN 'batch.completed' THEN EXISTS (
                SELECT 1 FROM replenishment_batch b
                WHERE b.id = (e.data->>'id')::uuid AND b.tenant_id = e.tenant_id
                  AND NOT EXISTS (SELECT 1 FROM operation o
                                  WHERE o.batch_id = b.id AND o.status = 'pending'))
            ELSE EXISTS (
                SELECT 1 FROM operation o
                WHERE o.id = (e.data->>'id')::uuid AND o.tenant_id = e.tenant_id
                  AND 'operation.' || o.status = e.type)
        END
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
