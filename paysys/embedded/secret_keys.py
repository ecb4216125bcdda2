"""The folder's key for webhook signing secrets (`.paysys/webhook-secret-keys`), made on
first use: with embedded servers, paysys seals the endpoints' signing secrets as it does
in production (`PAYSYS_WEBHOOK_SECRET_KEYS`), unless that is set. Kept with the data it
unseals (the embedded database survives restarts), readable by its owner only."""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet

KEY_FILE = "webhook-secret-keys"


def folder_secret_keys(root: Path) -> str:
    """The key kept in `root`, made now if there is none. Two commands starting at once
    agree on one: the file is created whole, and only if absent (a link, not a rename)."""
    path = root / KEY_FILE
    try:
        kept = path.read_text().strip()
    except FileNotFoundError:
        kept = ""
    if kept:
        return kept
    tmp = root / f".{KEY_FILE}.{os.getpid()}.tmp"
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(Fernet.generate_key().decode() + "\n")
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another command made it first: theirs it is
    finally:
        tmp.unlink(missing_ok=True)
    return path.read_text().strip()
