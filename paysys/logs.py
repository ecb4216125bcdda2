"""Logging for every paysys process: readable lines on a terminal, one JSON object per line
anywhere else (a file, a pipe, a container's log). `PAYSYS_LOG_FORMAT` (`auto`, the
default; `json`; `text`) chooses otherwise.

Fields given as `extra` (request_id, tenant_id, operation_id, ...) become fields of the
line (`key=value` in text), so one request can be followed from the API to the worker that
applied its operation: both log its `request_id` and `operation_id`.

Libraries' chatter that a user can do nothing about is kept out: alembic's plugin set-up,
uvicorn's start-up and shutdown steps, Celery's broker connection, httpx's line per request
(their failures are still logged, as warnings and errors are for every library). Python
warnings become log lines.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson

from shared.settings import get_settings

# Attributes every LogRecord has; anything else on a record came in through `extra`.
# (uvicorn adds `color_message`: the message again, with terminal colour codes.)
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "color_message",
}

# Loggers whose informational lines say nothing a user can act on; their warnings and
# errors still show.
QUIET = (
    "alembic.runtime.plugins",  # "setup plugin alembic.autogenerate.schemas", ...
    "uvicorn.error",  # "Waiting for application startup.": paysys logs where it listens
    "celery.worker.consumer.connection",  # "Connected to redis://...": the worker's "ready."
    "httpx",  # "HTTP Request: GET ...", each request a client or a probe makes
)
# Alembic's preamble before the migrations it runs (which are logged).
_ALEMBIC_PREAMBLE = ("Context impl ", "Will assume ")


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {
        key: value
        for key, value in record.__dict__.items()
        if key not in _STANDARD and not key.startswith("_")
    }


class JsonFormatter(logging.Formatter):
    def __init__(self, process: str):
        super().__init__()
        self.process = process

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "process": self.process,
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update(_extras(record))
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


class TextFormatter(logging.Formatter):
    """`12:04:05.120 INFO    api       paysys.access: GET /v1/accounts 200 request_id=...`:
    the local time, then what the JSON line says, extras as key=value (None ones left out)."""

    def __init__(self, process: str):
        super().__init__()
        self.process = process

    def format(self, record: logging.LogRecord) -> str:
        moment = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        head = f"{moment}.{int(record.msecs):03d} {record.levelname:<7} {self.process:<9}"
        line = f"{head} {record.name}: {record.getMessage()}"
        extras = " ".join(f"{k}={v}" for k, v in _extras(record).items() if v is not None)
        if extras:
            line = f"{line}  {extras}"
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        return line


def _not_alembic_preamble(record: logging.LogRecord) -> bool:
    return not (
        record.name == "alembic.runtime.migration"
        and record.getMessage().startswith(_ALEMBIC_PREAMBLE)
    )


def formatter(process: str, stream: TextIO) -> logging.Formatter:
    """Text for a person at a terminal, JSON for whatever reads the lines, unless told."""
    chosen = get_settings().log_format
    if chosen == "auto":
        chosen = "text" if stream.isatty() else "json"
    return TextFormatter(process) if chosen == "text" else JsonFormatter(process)


def configure(process: str) -> None:
    settings = get_settings()
    stream = sys.stderr
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter(process, stream))
    handler.addFilter(_not_alembic_preamble)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    if root.level >= logging.INFO:  # at DEBUG, everything
        for name in QUIET:
            logging.getLogger(name).setLevel(logging.WARNING)
    logging.captureWarnings(True)
