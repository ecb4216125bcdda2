"""Where a paysys process keeps its Prometheus metrics, and how a worker of its own serves
them.

With `PAYSYS_METRICS_DIR` set, every process of the host keeps its values in files there
and the API's /metrics adds them all up (see `shared.metrics`). prometheus_client takes
that directory from `PROMETHEUS_MULTIPROC_DIR` alone, which it reads when it is imported
(to choose multiprocess mode) and again whenever it makes a value, in Celery's pool
children too: so each `paysys` command sets it at its very start, before anything
imports prometheus_client, and the processes it starts inherit it.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path


def share_metrics(directory: str | None) -> None:
    """Keep this process's metrics (and its children's) in `directory`, if one is given."""
    if directory:
        if "prometheus_client" in sys.modules:
            # Its values would stay in this process, and /metrics would miss them.
            raise RuntimeError("prometheus_client was imported before its directory was set")
        Path(directory).mkdir(parents=True, exist_ok=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory


def serve_metrics(port: int, directory: str | None) -> None:
    """Serve the metrics of this worker's processes (Celery's pool children included) on
    `port`, for a Prometheus that scrapes workers directly (one container each)."""
    if directory is None:
        directory = tempfile.mkdtemp(prefix="paysys-worker-metrics-")
        # The Celery child is a `paysys worker` of its own: it sets itself up from this.
        os.environ["PAYSYS_METRICS_DIR"] = directory
    from prometheus_client import CollectorRegistry, multiprocess, start_http_server

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    start_http_server(port, registry=registry)
