"""Commands on the database itself: `paysys migrate`, `api-keys` and `audit`. Each uses
the configured servers, or the embedded ones for as long as it runs."""

from __future__ import annotations

import sys

import click

from paysys import logs
from paysys.cli.servers import use_servers
from shared.settings import get_settings


@click.command()
def migrate() -> None:
    """Apply the database migrations (upgrade to head)."""
    logs.configure("migrate")
    from shared.migrate import upgrade

    use_servers(migrate=False)
    upgrade(get_settings().sqlalchemy_url)
    click.echo("database is at the latest schema")


@click.group("api-keys")
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

    use_servers()
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

    use_servers()
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

    use_servers()
    with transaction() as cur:
        matches = apikeys.revoke_key(cur, key_id)
    if len(matches) != 1:
        raise click.ClickException(
            f"no active key {key_id!r}" if not matches else f"{key_id!r} matches several keys"
        )
    from api.keys import KeyCache

    revoked, digest = matches[0]
    if not apikeys.announce_revocation(digest):
        click.echo(
            f"Redis is unreachable: API processes may accept the key for up to "
            f"{KeyCache.TTL:.0f} more seconds",
            err=True,
        )
    click.echo(f"revoked {revoked}")


@click.command()
def audit() -> None:
    """Check every ledger invariant; exit 1 if any is broken."""
    from shared import audit as audit_module
    from shared.db import transaction

    use_servers()
    with transaction() as cur:
        findings = audit_module.run(cur)
    click.echo(audit_module.report(findings))
    sys.exit(1 if findings else 0)
