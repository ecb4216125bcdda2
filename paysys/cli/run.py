"""`paysys run`: everything on one machine, under one command."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import click

from paysys import logs
from paysys.cli import running
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
    from paysys.readiness import Readiness
    from paysys.supervisor import supervise
    from shared.migrate import upgrade

    settings = get_settings()
    upgrade(settings.sqlalchemy_url)
    metrics_dir = settings.metrics_dir or tempfile.mkdtemp(prefix="paysys-metrics-")
    os.environ["PAYSYS_METRICS_DIR"] = metrics_dir  # the API's /metrics adds up every child
    base = f"http://{_reachable(host)}:{port}"
    key_file = embedded.root / "dev-api-key" if embedded is not None else None
    dev_key = _dev_key(key_file) if key_file is not None else None
    workers = concurrency or settings.worker_concurrency

    def _ready(seconds: float) -> None:
        _banner(base, dev_key, seconds)
        # For the client commands run in this folder (`paysys status`, `accounts`, ...).
        running.publish(base, key_file, ["api", "worker", "webhooks", "sweeper"], workers)

    # Where things are is said once they are there: the API ready, the workers consuming.
    ready = Readiness(base, ["worker", "webhooks"], _ready)
    fd = ["--ready-fd", str(ready.fd)]
    try:
        code = supervise(
            {
                "api": ["api", "--host", host, "--port", str(port)],
                "worker": [
                    *("worker", "--concurrency", str(workers)),
                    *fd,
                ],
                "webhooks": ["webhooks", *fd],
                "sweeper": ["sweeper"],
            },
            grace_seconds=settings.stop_grace_seconds,
            pass_fds=(ready.fd,),
            every_round=ready.check,
        )
    finally:
        running.withdraw()
        if not settings.metrics_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    sys.exit(code)


def _reachable(host: str) -> str:
    """The API's address as a URL's host, for this machine to connect to."""
    if host in ("", "0.0.0.0"):  # noqa: S104 (naming it, not binding it)
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def _dev_key(path: Path) -> str:
    """What to say of the development key: on the first start in a folder, a key for a
    tenant "dev" is made (and kept in .paysys/, readable by its owner only) and shown;
    afterwards, where it is."""
    if path.exists():
        return f"in {path} (KEY=$(cat {path}))"
    from paysys.embedded.folder import write_private
    from shared import apikeys
    from shared.db import transaction

    with transaction() as cur:
        created = apikeys.create_key(cur, "dev")
    write_private(path, created.key + "\n")
    return f"{created.key}  (tenant dev; also in {path})"


def _banner(base: str, dev_key: str | None, seconds: float) -> None:
    lines = [
        "",
        f"paysys is up: API on {base} (ready in {seconds:.1f} s)",
        f"  docs       {base}/docs (or {base}/redoc)",
        f"  console    {base}/console",
    ]
    if dev_key is not None:
        lines.append(f"  dev key    {dev_key}")
    lines += ["Ctrl-C stops everything.", ""]
    click.echo("\n".join(lines))
