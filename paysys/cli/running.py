"""Where the `paysys run` of this folder serves its API: `.paysys/run.json`, written by
`paysys run` once everything is ready and removed when it stops, so that the client
commands (`paysys accounts`, `transfer`, `status`, ...) find its URL and development key
without being told.

    {"pid": 4242, "url": "http://127.0.0.1:8000", "key_file": "/…/.paysys/dev-api-key",
     "started_at": "…", "services": ["api", "worker", "webhooks", "sweeper"],
     "worker_concurrency": 1}

`key_file` is null when `paysys run` uses servers of its own (DATABASE_URL and REDIS_URL
set): the development key exists only in the embedded database. The record is believed
only while its process lives (a run killed with -9 leaves it behind).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from paysys.embedded.folder import ROOT, Folder, write_private

RECORD = "run.json"


@dataclass(frozen=True)
class RunRecord:
    pid: int
    url: str
    key_file: Path | None
    started_at: str
    services: tuple[str, ...]
    worker_concurrency: int | None
    path: Path

    def api_key(self) -> str | None:
        """The development key, if the run has one and its file can be read."""
        if self.key_file is None:
            return None
        try:
            return self.key_file.read_text().strip() or None
        except OSError:
            return None


def publish(
    url: str,
    key_file: Path | None,
    services: list[str],
    worker_concurrency: int | None,
    root: Path = ROOT,
) -> None:
    """Say where this `paysys run` serves (called once it is ready)."""
    folder = Folder(root)
    folder.prepare()
    record = {
        "pid": os.getpid(),
        "url": url,
        "key_file": None if key_file is None else str(key_file.resolve()),
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "services": services,
        "worker_concurrency": worker_concurrency,
    }
    write_private(folder.root / RECORD, json.dumps(record) + "\n")


def withdraw(root: Path = ROOT) -> None:
    """Remove the record, if it is this process's (another run may have written its own
    since: runs with servers of their own may share a folder)."""
    found = _read(root.resolve() / RECORD)
    if found is not None and found.pid == os.getpid():
        found.path.unlink(missing_ok=True)


def find(root: Path = ROOT) -> RunRecord | None:
    """The `paysys run` serving from this folder, if one is running."""
    found = _read(root.resolve() / RECORD)
    if found is None or not _alive(found.pid):
        return None
    return found


def _read(path: Path) -> RunRecord | None:
    try:
        data = json.loads(path.read_text())
        return RunRecord(
            pid=int(data["pid"]),
            url=str(data["url"]),
            key_file=None if data.get("key_file") is None else Path(data["key_file"]),
            started_at=str(data.get("started_at", "")),
            services=tuple(data.get("services") or ()),
            worker_concurrency=data.get("worker_concurrency"),
            path=path,
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process, alive
    return True
