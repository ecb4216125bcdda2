"""`paysys run`: everything on one machine, under one command."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import click

from paysys import logs
from paysys.cli.servers import listen, use_servers
from shared.settings import get_settings


@click.command()
@click.option("--host", default=None, help="API interface (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="API port (default 8000).")
@click.option("--concurrency", "-c", type=int, default=None, help="Worker pool processes.")
def run(host: str | None, port: int | None, concurrency: int | None) -> None:
    """Everything on one machine: migrations, API, worker, webhooks and sweeper. Ctrl-C
    stops all."""
    logs.configure("run")
    settings = get_settings()
    host = host or settings.api_host
    port = port or settings.api_port
    # A port in use is said at once, before the slow start-up and its noise.
    embedded = use_servers(owner=True, before_start=lambda: listen(host, port).close())
    from paysys.supervisor import supervise
    from shared.migrate import upgrade

    settings = get_settings()
    upgrade(settings.sqlalchemy_url)
    metrics_dir = settings.metrics_dir or tempfile.mkdtemp(prefix="paysys-metrics-")
    os.environ["PAYSYS_METRICS_DIR"] = metrics_dir  # the API's /metrics adds up every child
    api_args = ["api", "--host", host, "--port", str(port)]
    worker_args = ["worker", "--concurrency", str(concurrency or settings.worker_concurrency)]
    base = f"http://{host}:{port}"
    click.echo(f"paysys: API on {base}, docs at {base}/docs; Ctrl-C stops everything")
    if embedded is not None:
        _print_dev_key(embedded.root / "dev-api-key")
    try:
        code = supervise(
            {
                "api": api_args,
                "worker": worker_args,
                "webhooks": ["webhooks"],
                "sweeper": ["sweeper"],
            },
            grace_seconds=settings.stop_grace_seconds,
        )
    finally:
        if not settings.metrics_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    sys.exit(code)


def _print_dev_key(path: Path) -> None:
    """On the first start in a folder, a key for a tenant "dev" (kept in .paysys/)."""
    if path.exists():
        click.echo(f"development API key: in {path}")
        return
    from paysys.embedded.folder import write_private
    from shared import apikeys
    from shared.db import transaction

    with transaction() as cur:
        created = apikeys.create_key(cur, "dev")
    write_private(path, created.key + "\n")
    click.echo(f"development API key (tenant dev; also in {path}):\n{created.key}")
