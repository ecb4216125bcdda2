"""Which PostgreSQL and Redis a command uses, and the API's listening socket: what a
command settles before it starts anything slow."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable

import click

from paysys.embedded.secret_keys import folder_secret_keys
from paysys.embedded.servers import AlreadyRunning, Embedded
from shared.settings import Settings, get_settings


def use_servers(
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
    embedded servers this command started, if any. With embedded servers, unless
    PAYSYS_WEBHOOK_SECRET_KEYS is set, the folder's key seals webhook signing secrets.
    """
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
            _seal_with_the_folders_key(embedded)
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
    _seal_with_the_folders_key(embedded)
    if not owner and migrate:
        from shared.migrate import upgrade

        upgrade(get_settings().sqlalchemy_url)
    return embedded


def _point_at(database_url: str, redis_url: str) -> None:
    os.environ["DATABASE_URL"] = database_url  # read by this process and every child
    os.environ["REDIS_URL"] = redis_url
    get_settings.cache_clear()


def _seal_with_the_folders_key(embedded: Embedded) -> None:
    """With embedded servers and no PAYSYS_WEBHOOK_SECRET_KEYS, the folder's own key
    (`paysys.embedded.secret_keys`), for this process and every child: development seals
    signing secrets as production does, and every command of the folder unseals them."""
    if not Settings().webhook_secret_keys.strip():
        os.environ["PAYSYS_WEBHOOK_SECRET_KEYS"] = folder_secret_keys(embedded.root)
        get_settings.cache_clear()


def listen(host: str, port: int) -> socket.socket:
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
