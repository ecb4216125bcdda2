"""The `paysys` command line: the group `main` (the console script) and its commands,
one module per kind: the services (`services`, `run`), the database's own commands
(`admin`), and the client's, through the API: `replenish_batch`, the everyday reads and
accounts (`everyday`), the commands that move money (`money`), `status` and `demo` (which
paysys they talk to, and how they fail: `connect`; what they print: `output`)."""

from __future__ import annotations

import click

from paysys.cli import everyday, money
from paysys.cli.admin import api_keys, audit, migrate
from paysys.cli.demo import demo
from paysys.cli.replenish_batch import replenish_batch
from paysys.cli.run import run
from paysys.cli.services import api, sweeper, webhooks, worker
from paysys.cli.status import status
from paysys.process_metrics import share_metrics
from shared.settings import get_settings


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """paysys: wallets, top-ups and transfers over a double-entry ledger."""
    # Before any command imports prometheus_client, which reads it once at import.
    share_metrics(get_settings().metrics_dir)


for command in (migrate, api, worker, webhooks, sweeper, run, replenish_batch, api_keys, audit):
    main.add_command(command)
for command in (*everyday.COMMANDS, *money.COMMANDS, status, demo):
    main.add_command(command)
