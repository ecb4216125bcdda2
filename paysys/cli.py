"""The `paysys` command line."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import click

from paysys import logs
from shared.settings import get_settings

if TYPE_CHECKING:
    from paysys.embedded import Embedded


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def _servers(
    *,
    owner: bool = False,
    shared: bool = False,
    migrate: bool = True,
    before_start: Callable[[], None] | None = None,
) -> Embedded | None:
    """Point this process, and the processes it starts, at PostgreSQL and Redis.

    With DATABASE_URL and REDIS_URL set, those. With both unset, the embedded servers
    under ./.paysys/: those of the `paysys run` running in this folder, or (for `paysys
    run` itself, `owner`, or when none runs) ones started now and stopped with the
    command. `shared`: a long-running service (api, worker, sweeper), which must share
    its servers with the others, so only `paysys run`'s will do. `before_start`: checks
    to make once the folder is known to be free, before anything slow starts. Returns the
    embedded servers this command started, if any.
    """
    from paysys.embedded import AlreadyRunning, Embedded
    from shared.settings import Settings

    settings = Settings()
    if settings.database_url and settings.redis_url:
        if before_start is not None:
            before_start()
        return None
    if settings.database_url or settings.redis_url:
        raise click.UsageError(
            "set both DATABASE_URL and REDIS_URL, or neither to use embedded servers "
            "under ./.paysys/"
        )
    embedded = Embedded()
    if owner:
        try:
            embedded.lock()
        except AlreadyRunning as exc:
            raise click.ClickException(str(exc)) from None
    else:
        running = embedded.running()
        if running is not None:
            click.echo(
                f"using the embedded PostgreSQL and Redis of the paysys run in "
                f"{running.folder} (pid {running.pid})",
                err=True,
            )
            _point_at(running.database_url, running.redis_url)
            return None
        if shared:
            raise click.UsageError(
                "with DATABASE_URL and REDIS_URL unset, run the services with `paysys run` "
                "(which starts embedded servers they can share), or set both variables"
            )
    if before_start is not None:
        try:
            before_start()
        except BaseException:
            embedded.stop()  # lets go of the folder's lock
            raise
    click.echo("starting embedded PostgreSQL and Redis under ./.paysys/ ...", err=True)
    try:
        addresses = embedded.start(publish=owner)
    except RuntimeError as exc:  # it has stopped what it had started
        raise click.ClickException(str(exc)) from None
    click.get_current_context().call_on_close(embedded.stop)
    _point_at(addresses.database_url, addresses.redis_url)
    if not owner and migrate:
        from shared.migrate import upgrade

        upgrade(get_settings().sqlalchemy_url)
    return embedded


def _listen(host: str, port: int) -> socket.socket:
    """A socket listening on the API's address, or a clear exit if it cannot be had (bound
    here, before anything starts, and not by uvicorn after the app's start-up: a start-up
    that then fails leaves the app to stop, which it may not)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        # At once: two sockets with SO_REUSEADDR may bind one port until one listens.
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise click.ClickException(
            f"cannot listen on {host}:{port} ({exc.strerror or exc}); use another port "
            "with --port or PAYSYS_API_PORT"
        ) from None
    return sock


def _point_at(database_url: str, redis_url: str) -> None:
    os.environ["DATABASE_URL"] = database_url  # read by this process and every child
    os.environ["REDIS_URL"] = redis_url
    get_settings.cache_clear()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """paysys: wallets, top-ups and transfers over a double-entry ledger."""


@main.command()
def migrate() -> None:
    """Apply the database migrations (upgrade to head)."""
    logs.configure("migrate")
    from shared.migrate import upgrade

    _servers(migrate=False)
    upgrade(get_settings().sqlalchemy_url)
    click.echo("database is at the latest schema")


@main.command()
@click.option("--host", default=None, help="Interface to listen on (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default 8000).")
@click.option("--workers", type=int, default=None, help="API processes (default 1).")
def api(host: str | None, port: int | None, workers: int | None) -> None:
    """Serve the HTTP API."""
    import uvicorn
    from uvicorn.config import STARTUP_FAILURE

    logs.configure("api")
    # Uvicorn handles SIGTERM gracefully, then re-raises it with the previous handler in
    # place: make that previous handler a clean exit, so a graceful stop exits 0.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    settings = get_settings()
    host = host or settings.api_host
    port = port or settings.api_port
    sock = _listen(host, port)
    _servers(shared=True)
    settings = get_settings()
    settings.require_database_url()
    settings.require_redis_url()
    config = uvicorn.Config(
        "api.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers or settings.api_workers,
        log_level=settings.log_level.lower(),
        access_log=False,  # the API logs each request itself, with its request id
        log_config=None,  # uvicorn's loggers go through paysys's (JSON) handler
        timeout_graceful_shutdown=10,
        # X-Forwarded-For only from proxies the operator named: uvicorn's default would
        # believe any local process, which could then pose as any client address.
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=settings.trusted_proxies or None,
    )
    logging.getLogger("paysys.api").info("listening on http://%s:%s", host, port)
    if config.workers > 1:
        from uvicorn.supervisors import Multiprocess

        sock.set_inheritable(True)
        Multiprocess(config, sockets=[sock]).run()
        return
    config.load_app()
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    if not server.started:
        sys.exit(STARTUP_FAILURE)


@main.command()
@click.option("--concurrency", "-c", type=int, default=None, help="Pool processes (default 1).")
@click.option(
    "--no-restart",
    is_flag=True,
    hidden=True,
    help="Run Celery in this process, without restarting it if it dies.",
)
def worker(concurrency: int | None, no_restart: bool) -> None:
    """Run a Celery worker that applies operations (restarted if it ever dies)."""
    logs.configure("worker")
    if not no_restart:
        _servers(shared=True)
    settings = get_settings()
    concurrency = concurrency or settings.worker_concurrency
    if not no_restart:
        from paysys.supervisor import keep_alive, serve_metrics

        if settings.worker_metrics_port:
            serve_metrics(settings.worker_metrics_port, settings.metrics_dir)
        sys.exit(
            keep_alive(
                ["worker", "--concurrency", str(concurrency), "--no-restart"], "celery worker"
            )
        )
    from worker.app import app

    app.worker_main(
        [
            "worker",
            f"--loglevel={settings.log_level.upper()}",
            f"--concurrency={concurrency}",
            "--pool=prefork",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ]
    )


@main.command()
def sweeper() -> None:
    """Re-dispatch operations left pending; expire old idempotency keys."""
    logs.configure("sweeper")
    _servers(shared=True)
    from worker import sweeper as sweeper_module

    sweeper_module.run()


@main.command()
@click.option("--host", default=None, help="API interface (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="API port (default 8000).")
@click.option("--concurrency", "-c", type=int, default=None, help="Worker pool processes.")
def run(host: str | None, port: int | None, concurrency: int | None) -> None:
    """Everything on one machine: migrations, API, worker and sweeper. Ctrl-C stops all."""
    logs.configure("run")
    settings = get_settings()
    host = host or settings.api_host
    port = port or settings.api_port
    # A port in use is said at once, before the slow start-up and its noise.
    embedded = _servers(owner=True, before_start=lambda: _listen(host, port).close())
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
            {"api": api_args, "worker": worker_args, "sweeper": ["sweeper"]},
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
    from paysys.embedded import write_private
    from shared import apikeys
    from shared.db import transaction

    with transaction() as cur:
        created = apikeys.create_key(cur, "dev")
    write_private(path, created.key + "\n")
    click.echo(f"development API key (tenant dev; also in {path}):\n{created.key}")


@main.command("replenish-batch")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--chunk-size",
    type=click.IntRange(1, 10_000),
    default=10_000,
    help="Items per batch (at most 10,000).",
)
@click.option(
    "--run-id",
    metavar="TEXT",
    default=None,
    help="Mixed into every batch's Idempotency-Key. Without it, running the command again "
    "on the same rows replays what was accepted and replenishes nothing twice; with a new "
    "one, the same file is imported again on purpose (every row is replenished again).",
)
def replenish_batch(file: Path, chunk_size: int, run_id: str | None) -> None:
    """Top up wallets from FILE.csv (wallet_id,amount[,reference]) through the API.

    Checks every row first (its format, then its wallet, through the API) and reports
    every bad row by line; if any is bad, nothing is submitted. Safe to run again after a
    crash or Ctrl-C: each batch's Idempotency-Key comes from its own rows and position, so
    batches already accepted are replayed, not replenished twice (for the 24 h keys are
    kept), even if a later row was corrected meanwhile. Needs PAYSYS_URL and
    PAYSYS_API_KEY.

    Exit status: 0 every item succeeded, 1 some failed, 2 bad rows (nothing submitted),
    3 paysys could not be reached or refused a request, 130 interrupted.
    """
    from rich.console import Console

    from paysys import csv_import
    from paysys.client import Paysys

    settings = get_settings()
    if not settings.api_key:
        raise click.UsageError("PAYSYS_API_KEY is not set (and PAYSYS_URL, if not the default)")
    with Paysys(settings.url, settings.api_key) as client:
        sys.exit(csv_import.run(file, client, Console(), chunk_size, run_id))


@main.group("api-keys")
def api_keys() -> None:
    """Manage API keys."""


@api_keys.command("create")
@click.argument("name")
def api_keys_create(name: str) -> None:
    """Create tenant NAME (or use it if it exists) and a new API key for it.

    The key is printed alone on the last line; it is stored hashed and shown only once.
    """
    from shared import apikeys
    from shared.db import transaction

    _servers()
    if not 1 <= len(name) <= 200:
        raise click.BadParameter("NAME must be 1-200 characters", param_hint="NAME")
    with transaction() as cur:
        created = apikeys.create_key(cur, name)
    click.echo(f"tenant {created.tenant_name} ({created.tenant_id}), key id {created.key_id}")
    click.echo("The key is shown once; store it now:")
    click.echo(created.key)


@api_keys.command("list")
@click.argument("name", required=False)
def api_keys_list(name: str | None) -> None:
    """List API keys (of tenant NAME, or all): ids and prefixes, never the secrets."""
    from shared import apikeys
    from shared.db import transaction

    _servers()
    with transaction() as cur:
        keys = apikeys.list_keys(cur, name)
    click.echo(f"{'key id':36}  {'prefix':10}  {'tenant':20}  {'created':25}  revoked")
    for key in keys:
        click.echo(
            f"{key.id!s:36}  {key.prefix:10}  {key.tenant_name[:20]:20}  "
            f"{key.created_at!s:25}  {key.revoked_at or '-'}"
        )


@api_keys.command("revoke")
@click.argument("key_id")
def api_keys_revoke(key_id: str) -> None:
    """Revoke the key KEY_ID (its id or its prefix, as `list` shows them), at once."""
    from shared import apikeys
    from shared.db import transaction

    _servers()
    with transaction() as cur:
        matches = apikeys.revoke_key(cur, key_id)
    if len(matches) != 1:
        raise click.ClickException(
            f"no active key {key_id!r}" if not matches else f"{key_id!r} matches several keys"
        )
    from api.resources import KeyCache

    revoked, digest = matches[0]
    if not apikeys.announce_revocation(digest):
        click.echo(
            f"Redis is unreachable: API processes may accept the key for up to "
            f"{KeyCache.TTL:.0f} more seconds",
            err=True,
        )
    click.echo(f"revoked {revoked}")


@main.command()
def audit() -> None:
    """Check every ledger invariant; exit 1 if any is broken."""
    from shared import audit as audit_module
    from shared.db import transaction

    _servers()
    with transaction() as cur:
        findings = audit_module.run(cur)
    click.echo(audit_module.report(findings))
    sys.exit(1 if findings else 0)
