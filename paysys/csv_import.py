"""`paysys replenish-batch FILE.csv`: bulk top-ups from a CSV of `wallet_id,amount[,reference]`.

The file is streamed, never held whole, and read three times:

1. every row is checked locally;
2. the well-formed rows are checked by the API without being accepted
   (`POST /v1/replenishment-batch-validations`), which catches wallets the tenant does not
   have. Both passes run whatever the other finds, so one run reports every bad row (with
   its line number and the reason), and then nothing is submitted;
3. the chunks are submitted as replenishment batches. Each chunk's Idempotency-Key is
   derived from that chunk's own rows and its position (and `--run-id`, if given), so
   running the command again after a crash or Ctrl-C replays the chunks already accepted
   instead of replenishing twice, even if a later row was corrected in between. A new
   `--run-id` imports the same file again on purpose.

Then it waits for every batch to complete, with progress bars, says which chunks were
replays of earlier runs, prints a summary, and exits non-zero if any item failed.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
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


def _data_rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    for line, fields in _rows(path):
        if fields and not (line == 1 and _is_header(fields)):
            yield line, fields


def scan(path: Path) -> Scan:
    """Pass 1: check every row locally."""
    errors: list[tuple[int, str]] = []
    rows = 0
    try:
        for line, fields in _data_rows(path):
            rows += 1
            try:
                parse_row(line, fields)
            except ValueError as exc:
                errors.append((line, str(exc)))
    except UnicodeDecodeError as exc:
        errors.append((0, f"the file is not UTF-8: {exc}"))
    except csv.Error as exc:
        errors.append((0, f"the file is not valid CSV: {exc}"))
    return Scan(rows, errors)


def _well_formed(path: Path) -> Iterator[Row]:
    """The rows that pass the local checks (call `scan` first: this one stops at a file
    that is not UTF-8 or not CSV)."""
    for line, fields in _data_rows(path):
        try:
            yield parse_row(line, fields)
        except ValueError:
            continue


def _chunked(rows: Iterator[Row], size: int) -> Iterator[list[Row]]:
    chunk: list[Row] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def chunks(path: Path, size: int = CHUNK) -> Iterator[list[Row]]:
    """The rows in chunks of `size`; ValueError if a row is malformed."""
    return _chunked((parse_row(line, fields) for line, fields in _data_rows(path)), size)


def chunk_key(rows: list[Row], index: int, run_id: str | None = None) -> str:
    """The chunk's Idempotency-Key: its position and its own rows (as submitted), and the
    run id. Not the whole file's: correcting a later row after a partial run must not
    change the keys of the chunks already accepted, or they would be applied again."""
    content = {
        "run_id": run_id,
        "index": index,
        "items": [[r.item.wallet_id, str(r.item.amount), r.item.reference] for r in rows],
    }
    digest = hashlib.sha256(json.dumps(content, separators=(",", ":")).encode())
    return f"csv-{index}-{digest.hexdigest()}"


def check_wallets(path: Path, client: Paysys, chunk_size: int) -> list[tuple[int, str]]:
    """Pass 2: what the API finds wrong with the well-formed rows (wallets the tenant does
    not have, above all), by line."""
    bad: list[tuple[int, str]] = []
    for chunk in _chunked(_well_formed(path), chunk_size):
        try:
            client.validate_batch([row.item for row in chunk])
        except ApiError as exc:
            if exc.status != 422:
                raise
            for error in exc.errors or [{"msg": exc.detail}]:
                loc = error.get("loc", [])
                index = loc[2] if len(loc) > 2 and isinstance(loc[2], int) else None
                line = chunk[index].line if index is not None and index < len(chunk) else 0
                bad.append((line, str(error.get("msg", exc.detail))))
    return bad


def _reason(exc: httpx.TransportError) -> str:
    """Why a request got no answer, in a few words ("connection refused")."""
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    text = re.sub(r"^\[Errno -?\d+\]\s*", "", str(exc)) or type(exc).__name__
    return text[:1].lower() + text[1:]


class FileChanged(Exception):
    """A row that passed the checks no longer does: the file was edited meanwhile."""


def _say(console: Console, text: str, style: str | None = None) -> None:
    # Rows and server messages are data: a "[x]" in them is not console markup. One line
    # each, however long, so that the output can be searched by line.
    console.print(text, style=style, markup=False, highlight=False, soft_wrap=True)


def run(
    path: Path,
    client: Paysys,
    console: Console,
    chunk_size: int = CHUNK,
    run_id: str | None = None,
) -> int:
    """The whole import; returns the process exit code: 0 when every item succeeded, 1
    when some failed, 2 for bad rows (nothing submitted), 3 when paysys could not be
    reached or refused a request, 130 when interrupted."""
    accepted: list[Batch] = []
    try:
        return _run(path, client, console, chunk_size, run_id, accepted)
    except httpx.TransportError as exc:
        _say(console, f"cannot reach paysys at {client.url}: {_reason(exc)}", "red")
        code = 3
    except ApiError as exc:
        _say(console, f"paysys at {client.url} refused a request: {exc}", "red")
        code = 3
    except FileChanged as exc:
        _say(console, f"{path} changed during the import: {exc}", "red")
        code = 3
    except KeyboardInterrupt:
        _say(console, "interrupted", "red")
        code = 130
    if accepted:
        _say(
            console,
            f"{len(accepted)} batch(es) were accepted and will be applied. Run the same "
            "command again to finish the import: what was accepted is replayed, not "
            "replenished twice.",
        )
    return code


def _checked_chunks(path: Path, chunk_size: int) -> Iterator[list[Row]]:
    try:
        yield from chunks(path, chunk_size)
    except (ValueError, csv.Error) as exc:  # UnicodeDecodeError is a ValueError
        raise FileChanged(str(exc)) from None


def _run(
    path: Path,
    client: Paysys,
    console: Console,
    chunk_size: int,
    run_id: str | None,
    batches: list[Batch],
) -> int:
    started = time.monotonic()
    found = scan(path)
    unreadable = any(line == 0 for line, _ in found.errors)
    bad = found.errors + ([] if unreadable else check_wallets(path, client, chunk_size))
    if bad:
        for line, reason in sorted(bad, key=lambda error: error[0]):
            _say(console, f"{path}:{line}: {reason}" if line else f"{path}: {reason}")
        rows = len({line for line, _ in bad})
        _say(console, f"{rows} bad row(s); nothing was submitted", "red")
        return 2
    if found.rows == 0:
        _say(console, "no rows to submit", "red")
        return 2

    columns = (
        TextColumn("{task.description:<10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:
        submitting = progress.add_task("submitted", total=found.rows)
        applying = progress.add_task("applied", total=found.rows)
        for index, chunk in enumerate(_checked_chunks(path, chunk_size)):
            batch = client.create_batch(
                [row.item for row in chunk], idempotency_key=chunk_key(chunk, index, run_id)
            )
            batches.append(batch)
            progress.advance(submitting, len(chunk))
        replayed = [b for b in batches if b.replayed]
        while True:
            batches[:] = [
                b if b.status == "completed" else client.get_batch(b.id, wait=1) for b in batches
            ]
            done = sum(b.succeeded + b.failed for b in batches)
            progress.update(applying, completed=done)
            if all(b.status == "completed" for b in batches):
                break

    if replayed:
        _say(
            console,
            f"{len(replayed)} of {len(batches)} chunk(s) had already been accepted by an "
            "earlier run (replayed, nothing of them applied twice): batch(es) "
            + ", ".join(b.id for b in replayed)
            + ". To import the same rows again on purpose, give a new --run-id.",
        )
    elapsed = time.monotonic() - started
    succeeded = sum(b.succeeded for b in batches)
    failed = sum(b.failed for b in batches)
    _say(
        console,
        f"items {found.rows}  succeeded {succeeded}  failed {failed}  "
        f"elapsed {elapsed:.1f}s  {found.rows / elapsed:.0f} items/s",
    )
    return 1 if failed else 0
