"""Deliveries: claimed before they are sent, their outcomes recorded after.

The rules it keeps:

* Nothing is sent unclaimed. A claim (`settle`) counts the attempt and sets the lease
  (`next_attempt_at` = now + twice the request's timeout + `LEASE_MARGIN_SECONDS`: it may
  wait behind one attempt, then make its own) and commits before any HTTP: a sender
  killed mid-request leaves the delivery to be claimed again when its lease ends. At
  least once, never lost.
* After attempt n failed, the next comes `base x 2^(n-1)` seconds later, ±20 % (jitter
  spreads the retries of a receiver that came back), at most
  `webhook_retry_max_interval_seconds` apart; a delivery whose next attempt would come
  more than `webhook_retry_hours` after its event was created is given up.
* Endpoint health: a 2xx clears `failing_since`; a failure sets it if it was clear. An
  endpoint whose every delivery has failed for over `webhook_disable_after_hours` is
  disabled, saying why; its deliveries then wait, unsent, and go on (within their retry
  window) once it is enabled again. A deleted endpoint's are retired, never sent.
* Fairness: claims go round-robin over the endpoints with due deliveries, and one
  endpoint has at most half the sending threads' worth claimed (`endpoint_cap`), a
  quarter for one that is failing (`failing_cap`): a slow receiver, healthy or not, with
  however long a backlog, never holds every thread.
* Outcomes of one batch are recorded in one short transaction (with the next claims),
  endpoints in id order (two senders recording at once never deadlock on them).
* Only the receiver's failures count against it. An attempt that could not be made for a
  cause inside paysys (a bug, a signing secret it cannot unseal: a Fernet key dropped too
  soon; a DNS lookup that did not answer in time, or no lookup thread free) is deferred:
  not logged nor counted as an attempt, the endpoint's health untouched, never given up
  for it; tried again `deferral_delay` later, and counted in
  `paysys_webhook_internal_errors_total`.
"""

from __future__ import annotations

import logging
import random
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shared import metrics
from shared.db import Cursor, transaction
from shared.settings import Settings
from shared.webhooks import claim_repository as claims
from shared.webhooks import repository as repo

log = logging.getLogger("paysys.webhooks")

# A lease outlives the request's own timeout by this much: time to resolve the host, sign,
# and record the outcome. A sender slower than that only risks a second delivery.
LEASE_MARGIN_SECONDS = 10.0
JITTER = 0.2
MAX_ERROR_CHARS = 500


@dataclass(frozen=True, slots=True)
class Claimed:
    """A delivery claimed for one attempt, with what sending it needs."""

    endpoint_id: uuid.UUID
    event_id: uuid.UUID
    tenant_id: uuid.UUID
    attempt: int
    url: str
    secret: str = field(repr=False)  # as stored (sealed, or in the clear): never shown
    failing: bool  # the endpoint was failing when claimed
    event_type: str
    event_created_at: datetime
    data: str  # the event's data, JSON text as stored


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one attempt came to: a status code (None: no answer) and what went wrong; or,
    `deferred` (its cause: "error" or "dns"), that it could not be made for a cause inside
    paysys (see the module's rules)."""

    status_code: int | None
    error: str | None
    deferred: str | None = None

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code <= 299


def capacity(settings: Settings) -> int:
    """Deliveries a process holds claimed at once: one sending and one queued behind it per
    thread, so that no thread waits for the loop's next claim."""
    return 2 * settings.webhook_concurrency


def lease_seconds(settings: Settings) -> float:
    """A claimed delivery may wait behind one attempt, then make its own."""
    return 2 * settings.webhook_timeout_seconds + LEASE_MARGIN_SECONDS


def deferral_delay(settings: Settings, rng: random.Random | None = None) -> float:
    """Seconds until a deferred delivery is tried again: a minute (at most the longest
    retry interval), ±20 %."""
    nominal = min(60.0, settings.webhook_retry_max_interval_seconds)
    return nominal * (rng or random).uniform(1 - JITTER, 1 + JITTER)


def retry_delay(attempt: int, settings: Settings, rng: random.Random | None = None) -> float:
    """Seconds from the end of failed attempt `attempt` (1, 2, ...) to the next one."""
    cap = settings.webhook_retry_max_interval_seconds
    nominal = settings.webhook_retry_base_seconds * 2.0 ** min(attempt - 1, 62)
    jitter = (rng or random).uniform(1 - JITTER, 1 + JITTER)
    return min(cap, min(nominal, cap) * jitter)


def settle(
    outcomes: list[tuple[Claimed, Outcome]],
    released: list[Claimed],
    settings: Settings,
    limit: int,
    busy: dict[uuid.UUID, int],
) -> list[Claimed]:
    """Record finished attempts, give back claimed deliveries that were not sent
    (`released`), and claim up to `limit` due deliveries, in one short transaction (the
    one round of the loop that writes: fewer commits per delivery), committed before any of
    the claimed is sent. `busy`: this process's claimed deliveries per endpoint, counted
    against each endpoint's cap."""
    deferred = [(c, o) for c, o in outcomes if o.deferred]
    outcomes = [(c, o) for c, o in outcomes if not o.deferred]
    with transaction() as cur:
        if released:
            claims.release(cur, [(c.endpoint_id, c.event_id, c.attempt) for c in released])
        if deferred:
            claims.release(
                cur,
                [(c.endpoint_id, c.event_id, c.attempt) for c, _ in deferred],
                deferral_delay(settings),
            )
        given_up, disabled = _record(cur, outcomes, settings) if outcomes else (0, [])
        rows = _claim(cur, settings, limit, busy) if limit > 0 else []
    for _, outcome in deferred:
        metrics.webhook_deferred.labels(cause=outcome.deferred).inc()
    if deferred:
        log.error(
            "%d webhook attempts put off for a cause inside paysys (retried later; the "
            "endpoints' health untouched), the last: %s",
            len(deferred),
            deferred[-1][1].error,
        )
    delivered = sum(1 for _, outcome in outcomes if outcome.delivered)
    metrics.webhook_attempts.labels(outcome="delivered").inc(delivered)
    metrics.webhook_attempts.labels(outcome="failed").inc(len(outcomes) - delivered)
    metrics.webhook_given_up.inc(given_up)
    for endpoint_id, tenant_id, reason in disabled:
        log.warning(
            "webhook endpoint %s (tenant %s) disabled: %s",
            endpoint_id,
            tenant_id,
            reason,
            extra={"endpoint_id": str(endpoint_id), "tenant_id": str(tenant_id)},
        )
    if rows and rows[0][10]:
        log.info("retired %d deliveries of deleted endpoints", rows[0][10])
    return [Claimed(*row[:10]) for row in rows]


def endpoint_cap(settings: Settings) -> int:
    """Deliveries of one endpoint a process holds claimed at once (half the senders, at
    least one): a receiver that answers slowly, however long its backlog, holds that many
    threads, the others go on."""
    return max(1, settings.webhook_concurrency // 2)


def failing_cap(settings: Settings) -> int:
    """The same for an endpoint that is failing (a quarter of the senders, at least one):
    a receiver that hangs holds that many."""
    return max(1, settings.webhook_concurrency // 4)


def _claim(
    cur: Cursor, settings: Settings, limit: int, busy: dict[uuid.UUID, int]
) -> list[tuple[Any, ...]]:
    return claims.claim(
        cur,
        limit=limit,
        lease_seconds=lease_seconds(settings),
        cap=endpoint_cap(settings),
        failing_cap=failing_cap(settings),
        busy=busy,
    )


def _record(
    cur: Cursor, outcomes: list[tuple[Claimed, Outcome]], settings: Settings
) -> tuple[int, list[tuple[uuid.UUID, uuid.UUID, str]]]:
    """Log each attempt and move its delivery on; then each endpoint's health, in id
    order. How many deliveries were given up, and the endpoints disabled."""
    after = settings.webhook_disable_after_hours * 3600.0
    disabled: list[tuple[uuid.UUID, uuid.UUID, str]] = []
    given_up = repo.record(
        cur,
        [
            {
                "endpoint_id": claimed.endpoint_id,
                "event_id": claimed.event_id,
                "tenant_id": claimed.tenant_id,
                "attempt": claimed.attempt,
                "status_code": outcome.status_code,
                "error": (outcome.error or "")[:MAX_ERROR_CHARS] or None,
                "delivered": outcome.delivered,
                "delay": retry_delay(claimed.attempt, settings),
            }
            for claimed, outcome in outcomes
        ],
        settings.webhook_retry_hours * 3600.0,
    )
    for endpoint_id, last_error in _failing_only(outcomes):
        reason = (
            f"every delivery failed for over {settings.webhook_disable_after_hours:g} "
            f"hours; last error: {last_error}"
        )[:MAX_ERROR_CHARS]
        tenant_id = repo.mark_failing(cur, endpoint_id, after, reason)
        if tenant_id is not None:
            disabled.append((endpoint_id, tenant_id, reason))
    return given_up, disabled


def _failing_only(outcomes: list[tuple[Claimed, Outcome]]) -> list[tuple[uuid.UUID, str | None]]:
    """The endpoints none of whose attempts succeeded, in id order, with their last error
    (those with a 2xx were made healthy by `repo.record`)."""
    healthy = {claimed.endpoint_id for claimed, outcome in outcomes if outcome.delivered}
    last_error: dict[uuid.UUID, str | None] = {}
    for claimed, outcome in outcomes:
        if claimed.endpoint_id not in healthy:
            last_error[claimed.endpoint_id] = outcome.error
    return sorted(last_error.items())
