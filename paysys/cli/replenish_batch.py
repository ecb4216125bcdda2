"""`paysys replenish-batch FILE.csv`: the command; the import itself is
`paysys.csv_import`, through the API with the Python client."""

from __future__ import annotations

import sys
from pathlib import Path

import click


@click.command("replenish-batch")
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
    kept), even if a later row was corrected meanwhile. Uses PAYSYS_URL and
    PAYSYS_API_KEY, or the URL and development key of the `paysys run` of this folder.

    Exit status: 0 every item succeeded, 1 some failed, 2 bad rows (nothing submitted),
    3 paysys could not be reached or refused a request, 130 interrupted.
    """
    from rich.console import Console

    from paysys import csv_import
    from paysys.cli import connect
    from paysys.client import Paysys

    target = connect.resolve()
    if target.api_key is None:
        raise click.UsageError("PAYSYS_API_KEY is not set (and PAYSYS_URL, if not the default)")
    with Paysys(target.url, target.api_key) as client:
        sys.exit(csv_import.run(file, client, Console(), chunk_size, run_id))
