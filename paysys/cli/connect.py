"""Which paysys the client commands talk to, with which key, and how their failures are
said: one line on stderr, never a traceback.

The URL is `PAYSYS_URL` when set, else that of the `paysys run` running in this folder
(`.paysys/run.json`), else the default `http://127.0.0.1:8000`. The key is
`PAYSYS_API_KEY` when set, else that `paysys run`'s development key (when the URL is its
own).

Exit statuses, shared by every client command (and `paysys replenish-batch`): 0 done; 1 an
operation failed; 2 a usage error (a bad option, no key); 3 paysys refused the request
(its problem's code and detail are said) or could not be reached; 4 an operation still
pending when the wait ran out; 130 interrupted.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

import click

from paysys.cli import running
from shared.settings import get_settings

if TYPE_CHECKING:
    from paysys.client import ApiError, Paysys

FAILED = 1
USAGE = 2
REFUSED = 3
STILL_PENDING = 4
INTERRUPTED = 130

# A command line fails fast when nothing listens, and still rides out a short overload
# (the client waits at least the server's Retry-After).
RETRIES = 3
MAX_RETRY_WAIT = 30.0


class Failure(click.ClickException):
    """paysys refused the request or could not be reached: a one-line `error: ...` on
    stderr; the subclasses exit with the other statuses."""

    exit_code = REFUSED

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"error: {self.message}", err=True)


class OperationFailed(Failure):
    exit_code = FAILED


class Unusable(Failure):
    """Nothing can be asked: no key, say."""

    exit_code = USAGE


class StillPending(Failure):
    exit_code = STILL_PENDING


class Interrupted(Failure):
    exit_code = INTERRUPTED


@dataclass(frozen=True)
class Target:
    url: str
    url_from: str
    api_key: str | None
    key_from: str | None
    run: running.RunRecord | None


def resolve() -> Target:
    """The URL and key the client commands use, and where each comes from."""
    settings = get_settings()
    run = running.find()
    if "url" in settings.model_fields_set:
        url, url_from = settings.url, "PAYSYS_URL"
    elif run is not None:
        url, url_from = run.url, f"the paysys run in this folder (pid {run.pid})"
    else:
        url, url_from = settings.url, "the default (PAYSYS_URL unset, no paysys run here)"
    key: str | None = None
    key_from: str | None = None
    if settings.api_key:
        key, key_from = settings.api_key, "PAYSYS_API_KEY"
    elif run is not None and _same(run.url, url):
        key = run.api_key()
        key_from = str(run.key_file) if key is not None else None
    return Target(url.rstrip("/"), url_from, key, key_from, run)


def _same(a: str, b: str) -> bool:
    return a.rstrip("/") == b.rstrip("/")


@contextmanager
def client() -> Iterator[Paysys]:
    """A client of the resolved paysys; every failure inside the block becomes one line
    on stderr and an exit status."""
    target = resolve()
    if target.api_key is None:
        raise Unusable(
            "no API key: set PAYSYS_API_KEY (`paysys api-keys create NAME` makes one), or "
            "start `paysys run` in this folder to use its development key"
        )
    from paysys.client import Paysys

    with said(target.url):
        paysys = Paysys(target.url, target.api_key, retries=RETRIES, max_retry_wait=MAX_RETRY_WAIT)
        with paysys:
            yield paysys


@contextmanager
def said(url: str) -> Iterator[None]:
    """Errors of paysys, or of reaching it, as one line each."""
    import httpx

    from paysys.client import ApiError

    try:
        yield
    except ApiError as exc:
        raise Failure(problem_line(exc)) from None
    except httpx.TimeoutException:
        raise Failure(f"paysys at {url} did not answer in time") from None
    except httpx.ConnectError:
        raise Failure(f"cannot reach paysys at {url} (is `paysys run` going?)") from None
    except (httpx.TransportError, httpx.InvalidURL) as exc:
        raise Failure(f"cannot reach paysys at {url}: {exc}") from None
    except TimeoutError as exc:  # a wait for an operation or a batch ran out
        raise StillPending(str(exc)) from None
    except (ValueError, KeyError, TypeError) as exc:
        # An answer that is not paysys's: another server on that address, say.
        raise Failure(f"{url} did not answer as paysys does ({exc!r})") from None


def problem_line(exc: ApiError) -> str:
    """`code: detail`, with the first invalid fields of a validation problem."""
    if exc.code == "unknown":  # not a problem+json answer (a proxy's page, say)
        return f"HTTP {exc.status}: {' '.join(exc.detail.split())[:200]}"
    fields = [_field(error) for error in exc.errors[:3]]
    if fields:  # what is wrong, rather than "see errors"
        return f"{exc.code}: " + "; ".join(fields)
    return f"{exc.code}: {exc.detail}" if exc.detail else exc.code


def _field(error: dict[str, Any]) -> str:
    loc = [str(part) for part in error.get("loc") or [] if part not in ("body", "query", "path")]
    msg = str(error.get("msg", ""))
    return f"{'.'.join(loc)}: {msg}" if loc else msg
