"""Prometheus metrics of every paysys process.

Processes of one host share a directory (`PAYSYS_METRICS_DIR`, which `paysys run` sets
up): prometheus_client then keeps each process's values in a file there, and whoever
serves /metrics adds them all up, Celery's pool children included. Without the directory,
each process counts for itself. prometheus_client chooses between the two when it is
imported, from `PROMETHEUS_MULTIPROC_DIR`: each `paysys` command sets that variable at its
start, before this module is imported (see `paysys.process_metrics`).

What the database knows (the pending backlog and its age, the age of each webhook
endpoint's oldest undelivered event) is not counted here: the API reads it when /metrics
is scraped (see `api.routes.health`).
"""

from __future__ import annotations

from pathlib import Path

from prometheus_client import REGISTRY as _DEFAULT_REGISTRY
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

from shared.settings import get_settings

_dir = get_settings().metrics_dir
if _dir:
    Path(_dir).mkdir(parents=True, exist_ok=True)  # the collector reads it, maybe empty

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

operations_accepted = Counter("paysys_operations_accepted", "Operations accepted (202)", ["type"])
operations_completed = Counter(
    "paysys_operations_completed", "Operations applied, by outcome", ["type", "status"]
)
accept_to_final = Histogram(
    "paysys_accept_to_final_seconds",
    "From acceptance to final, per operation",
    buckets=LATENCY_BUCKETS,
)
drain_seconds = Histogram(
    "paysys_drain_seconds",
    "Time to apply one drain (one database transaction)",
    buckets=LATENCY_BUCKETS,
)
drain_operations = Histogram(
    "paysys_drain_operations",
    "Operations applied per drain",
    buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000),
)
internal_errors = Counter(
    "paysys_internal_errors",
    "Operations failed with internal_error: the database or the code refused to apply them",
)
sweeper_redispatches = Counter(
    "paysys_sweeper_redispatches", "Wake-ups re-sent for operations left pending"
)
webhook_attempts = Counter(
    "paysys_webhook_attempts", "Webhook delivery attempts, by outcome", ["outcome"]
)
webhook_given_up = Counter(
    "paysys_webhook_deliveries_given_up",
    "Webhook deliveries given up: every attempt failed for the retry window",
)
webhook_deferred = Counter(
    "paysys_webhook_internal_errors",
    "Webhook attempts put off for a cause inside paysys, not the receiver's (cause: error, "
    "a bug or a signing secret it cannot unseal; dns, a lookup that did not answer in time "
    "or no lookup thread free): retried later, neither counted nor held against the endpoint",
    ["cause"],
)
http_requests = Counter(
    "paysys_http_requests", "HTTP requests answered", ["method", "route", "status"]
)
http_seconds = Histogram(
    "paysys_http_request_seconds",
    "HTTP request duration",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
)


def render() -> bytes:
    """The exposition text of this process, or of every process sharing the directory."""
    if _dir:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=_dir)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(_DEFAULT_REGISTRY)
