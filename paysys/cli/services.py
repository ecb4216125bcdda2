"""The long-running services, each started alone: `paysys api`, `worker`, `webhooks` and
`sweeper` (`paysys run` starts them all, see `paysys.cli.run`)."""

from __future__ import annotations

import logging
import os
import signal
import sys
from types import FrameType

import click

from paysys import logs
from paysys.cli.servers import listen, use_servers
from shared.settings import get_settings


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


READY_FD = click.option(
    "--ready-fd",
    type=int,
    default=None,
    hidden=True,
    help="Write this worker's name on this file descriptor once it is ready (paysys run).",
)


def _ready_args(ready_fd: int | None) -> list[str]:
    return [] if ready_fd is None else ["--ready-fd", str(ready_fd)]


def _fds(ready_fd: int | None) -> tuple[int, ...]:
    return () if ready_fd is None else (ready_fd,)


def _quiet_celery(name: str, ready_fd: int | None) -> None:
    """Before a Celery worker starts in this process: no warning about running as root
    (paysys's Celery takes JSON only, never pickle, which is what makes root dangerous:
    Celery itself refuses root with pickle), and the readiness said on `ready_fd`."""
    import warnings

    from celery.exceptions import SecurityWarning

    warnings.filterwarnings("ignore", category=SecurityWarning)
    if ready_fd is not None:
        from paysys.readiness import tell_when_ready

        tell_when_ready(ready_fd, name)


@click.command()
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
    sock = listen(host, port)
    use_servers(shared=True)
    settings = get_settings()
    settings.require_database_url()
    settings.require_redis_url()
    config = uvicorn.Config(
        "api.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers or settings.api_workers,
        log_level=None,  # uvicorn's loggers' levels are paysys's (`paysys.logs`)
        access_log=False,  # the API logs each request itself, with its request id
        log_config=None,  # uvicorn's loggers go through paysys's handler (paysys.logs)
        timeout_graceful_shutdown=10,
        # X-Forwarded-For only from proxies the operator named: uvicorn's default would
        # believe any local process, which could then pose as any client address.
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=settings.trusted_proxies or None,
    )
    from shared.webhooks.secrets import warn_if_unsealed

    warn_if_unsealed(settings, logging.getLogger("paysys.api"))
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


@click.command()
@click.option("--concurrency", "-c", type=int, default=None, help="Pool processes (default 1).")
@click.option(
    "--no-restart",
    is_flag=True,
    hidden=True,
    help="Run Celery in this process, without restarting it if it dies.",
)
@READY_FD
def worker(concurrency: int | None, no_restart: bool, ready_fd: int | None) -> None:
    """Run a Celery worker that applies operations (restarted if it ever dies)."""
    logs.configure("worker")
    if not no_restart:
        use_servers(shared=True)
    settings = get_settings()
    concurrency = concurrency or settings.worker_concurrency
    if not no_restart:
        from paysys.process_metrics import serve_metrics
        from paysys.supervisor import keep_alive

        if settings.worker_metrics_port:
            serve_metrics(settings.worker_metrics_port, settings.metrics_dir)
        args = ["worker", "--concurrency", str(concurrency), "--no-restart"]
        sys.exit(keep_alive(args + _ready_args(ready_fd), "celery worker", _fds(ready_fd)))
    from worker.app import app

    _quiet_celery("worker", ready_fd)
    app.worker_main(
        [
            "--quiet",  # no banner: what it says is in the configuration
            "worker",
            f"--loglevel={settings.log_level.upper()}",
            f"--concurrency={concurrency}",
            # The drains' queue alone: the webhooks' is `paysys webhooks`'s.
            f"--queues={settings.celery_queue}",
            "--pool=prefork",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ]
    )


@click.command()
@click.option(
    "--concurrency",
    "-c",
    type=int,
    default=None,
    help="Deliveries sent at once (default PAYSYS_WEBHOOK_CONCURRENCY, 8).",
)
@click.option(
    "--no-restart",
    is_flag=True,
    hidden=True,
    help="Run Celery in this process, without restarting it if it dies.",
)
@READY_FD
def webhooks(concurrency: int | None, no_restart: bool, ready_fd: int | None) -> None:
    """Run the Celery worker that delivers webhooks (restarted if it ever dies)."""
    logs.configure("webhooks")
    # Each attempt is in the delivery log: httpx's line per request (with the address
    # connected to, not the name) would only repeat it.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if concurrency is not None:
        os.environ["PAYSYS_WEBHOOK_CONCURRENCY"] = str(concurrency)  # for the Celery child
        get_settings.cache_clear()
    if not no_restart:
        use_servers(shared=True)
        from paysys.process_metrics import serve_metrics
        from paysys.supervisor import keep_alive
        from shared.webhooks.secrets import warn_if_unsealed

        settings = get_settings()
        warn_if_unsealed(settings, logging.getLogger("paysys.webhooks"))
        if settings.worker_metrics_port:
            serve_metrics(settings.worker_metrics_port, settings.metrics_dir)
        args = ["webhooks", "--no-restart", *_ready_args(ready_fd)]
        sys.exit(keep_alive(args, "webhooks worker", _fds(ready_fd)))
    settings = get_settings()
    from shared.queue import webhooks_queue
    from worker.app import app

    _quiet_celery("webhooks", ready_fd)
    # Threads: the work is waiting on receivers. Sends run on the loop's own
    # `webhook_concurrency` threads (shared/webhooks/runner.py); Celery's two only run the
    # loop and take the tasks that poke it.
    app.worker_main(
        [
            "--quiet",
            "worker",
            f"--loglevel={settings.log_level.upper()}",
            "--pool=threads",
            "--concurrency=2",
            f"--queues={webhooks_queue(settings)}",
            "--hostname=webhooks@%h",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ]
    )


@click.command()
def sweeper() -> None:
    """Re-dispatch operations left pending; expire old idempotency keys."""
    logs.configure("sweeper")
    use_servers(shared=True)
    from worker import sweeper as sweeper_module

    sweeper_module.run()
