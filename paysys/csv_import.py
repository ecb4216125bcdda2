"""`paysys replenish-batch FILE.csv`: bulk top-ups from a CSV of `wallet_id,amount[,reference]`.

The file is streamed, never held whole, and read three times:

1. every row is checked locally (and the file's SHA-256 taken); any bad row is reported
   with its line number and the reason, and nothing is submitted;
2. each chunk is checked by the API without being accepted
   (`POST /v1/replenishment-batch-validations`), which catches wallets the tenant does not
   have, again before anything is submitted;
3. the chunks are submitted as replenishment batches. Each chunk's Idempotency-Key is
   derived from the file's digest and the chunk's position, so running the command again
   after a crash or Ctrl-C replays what was already accepted instead of replenishing twice.

Then it waits for every batch to complete, with progress bars, prints a summary, and exits
non-zero if any item failed.
"""

from __future__ import annotations

import csv
import hashlib
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from paysys.client import ApiError, Batch, BatchItem, Paysys
from shared.money import AmountError, format_cents, parse_amount

CHUNK = 10_000
MAX_REFERENCE = 255


@dataclass(frozen=True)
class Row:
    line: int
    item: BatchItem


@dataclass
class Scan:
    rows: int
    digest: str
    errors: list[tuple[int, str]]


def _rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        for fields in reader:
            yield reader.line_num, fields


def _is_header(fields: list[str]) -> bool:
    return bool(fields) and fields[0].strip().lower() in {"wallet_id", "wallet", "wallet id"}


def parse_row(line: int, fields: list[str]) -> Row:
    """A CSV row as a batch item, or ValueError saying what is wrong with it."""
    if len(fields) not in (2, 3):
        raise ValueError(f"expected wallet_id,amount[,reference], got {len(fields)} fields")
    try:
        wallet_id = str(uuid.UUID(fields[0].strip()))
    except ValueError:
        raise ValueError(f"wallet_id {fields[0]!r} is not a UUID") from None
    try:
        cents = parse_amount(fields[1].strip())
    except AmountError as exc:
        raise ValueError(f"{exc} (got {fields[1]!r})") from None
    reference = fields[2] if len(fields) == 3 and fields[2] != "" else None
    if reference is not None:
        if len(reference) > MAX_REFERENCE:
            raise ValueError(f"reference is longer than {MAX_REFERENCE} characters")
        if "\x00" in reference:
            raise ValueError("reference contains a NUL character")
    return Row(line, BatchItem(wallet_id, format_cents(cents), reference))


def scan(path: Path) -> Scan:
    """Pass 1: check every row and take the file's digest."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    errors: list[tuple[int, str]] = []
    rows = 0
    try:
        for line, fields in _rows(path):
            if not fields or (line == 1 and _is_header(fields)):
                continue
            rows += 1
            try:
                parse_row(line, fields)
            except ValueError as exc:
                errors.append((line, str(exc)))
    except UnicodeDecodeError as exc:
        errors.append((0, f"the file is not UTF-8: {exc}"))
    except csv.Error as exc:
        errors.append((0, f"the file is not valid CSV: {exc}"))
    return Scan(rows, digest.hexdigest(), errors)


def chunks(path: Path, size: int = CHUNK) -> Iterator[list[Row]]:
    chunk: list[Row] = []
    for line, fields in _rows(path):
        if not fields or (line == 1 and _is_header(fields)):
            continue
        chunk.append(parse_row(line, fields))
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def chunk_key(digest: str, index: int) -> str:
    return f"csv-{digest[:48]}-{index}"


def run(path: Path, client: Paysys, console: Console, chunk_size: int = CHUNK) -> int:
    """The whole import; returns the process exit code."""
    started = time.monotonic()
    found = scan(path)
    if found.errors:
        for line, reason in found.errors:
            console.print(f"{path}:{line}: {reason}" if line else f"{path}: {reason}")
        console.print(f"[red]{len(found.errors)} bad row(s); nothing was submitted[/red]")
        return 2
    if found.rows == 0:
        console.print("[red]no rows to submit[/red]")
        return 2

    bad: list[tuple[int, str]] = []
    for chunk in chunks(path, chunk_size):
        try:
            client.validate_batch([row.item for row in chunk])
        except ApiError as exc:
            if exc.status != 422:
                raise
            for error in exc.errors:
                loc = error.get("loc", [])
                index = loc[2] if len(loc) > 2 and isinstance(loc[2], int) else None
                line = chunk[index].line if index is not None and index < len(chunk) else 0
                bad.append((line, error.get("msg", exc.detail)))
    if bad:
        for line, reason in bad:
            console.print(f"{path}:{line}: {reason}")
        console.print(f"[red]{len(bad)} bad row(s); nothing was submitted[/red]")
        return 2

    batches: list[Batch] = []
    columns = (
        TextColumn("{task.description:<10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:
        submitting = progress.add_task("submitted", total=found.rows)
        applying = progress.add_task("applied", total=found.rows)
        for index, chunk in enumerate(chunks(path, chunk_size)):
            batch = client.create_batch(
                [row.item for row in chunk], idempotency_key=chunk_key(found.digest, index)
            )
            batches.append(batch)
            progress.advance(submitting, len(chunk))
        while True:
            batches = [
                b if b.status == "completed" else client.get_batch(b.id, wait=1) for b in batches
            ]
            done = sum(b.succeeded + b.failed for b in batches)
            progress.update(applying, completed=done)
            if all(b.status == "completed" for b in batches):
                break

    elapsed = time.monotonic() - started
    succeeded = sum(b.succeeded for b in batches)
    failed = sum(b.failed for b in batches)
    console.print(
        f"items {found.rows}  succeeded {succeeded}  failed {failed}  "
        f"elapsed {elapsed:.1f}s  {found.rows / elapsed:.0f} items/s"
    )
    return 1 if failed else 0
