"""`paysys status`: which paysys the client commands talk to and how it is doing: the
`paysys run` of this folder (if one runs), the URL and where it came from, the key and
whether paysys takes it, readiness (`/readyz`), and the backlog of operations waiting for
a worker (`/metrics`).

Exit status: 0 when the API answers and is ready, 1 otherwise.
"""

from __future__ import annotations

import re
import sys
from typing import Any

import click

from paysys.cli import connect, output

# Pending operations older than this, with nothing applying them: a worker is missing.
STUCK_SECONDS = 10.0
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")


@click.command()
@output.json_option
def status(as_json: bool) -> None:
    """Is a `paysys run` going here, which URL and key the commands use, is paysys ready,
    and how much work waits for the workers."""
    import httpx

    target = connect.resolve()
    report: dict[str, Any] = {
        "run": _run(target),
        "url": target.url,
        "url_from": target.url_from,
        "key_from": target.key_from,
        "key": None,
        "ready": False,
        "checks": None,
        "error": None,
        "backlog": None,
        "applied": None,
    }
    try:
        _probe(target, report)
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        report["error"] = _unreachable(target.url, exc)
    if as_json:
        output.print_json(report)
    else:
        _show(report)
    sys.exit(0 if report["ready"] else 1)


def _run(target: connect.Target) -> dict[str, Any] | None:
    run = target.run
    if run is None:
        return None
    return {
        "pid": run.pid,
        "folder": str(run.path.parent.parent),
        "url": run.url,
        "key_file": None if run.key_file is None else str(run.key_file),
        "started_at": run.started_at,
        "services": list(run.services),
        "worker_concurrency": run.worker_concurrency,
    }


def _probe(target: connect.Target, report: dict[str, Any]) -> None:
    import httpx

    with httpx.Client(base_url=target.url, timeout=5) as http:
        ready = http.get("/readyz")
        try:
            body = ready.json()
        except ValueError:
            body = {}
        report["ready"] = ready.status_code == 200
        report["checks"] = body.get("checks") if isinstance(body, dict) else None
        if ready.status_code not in (200, 503) or report["checks"] is None:
            report["ready"] = False
            report["error"] = f"{target.url}/readyz answered {ready.status_code}: not paysys?"
            return
        metrics = http.get("/metrics")
        if metrics.status_code == 200:
            report["backlog"], report["applied"] = _metrics(metrics.text)
    if target.api_key is not None:
        report["key"] = _key_check(target)


def _key_check(target: connect.Target) -> str:
    from paysys.client import ApiError, Paysys

    assert target.api_key is not None
    try:
        with Paysys(target.url, target.api_key, retries=0) as paysys:
            paysys.list_accounts(limit=1)
    except ApiError as exc:
        return f"refused ({connect.problem_line(exc)})"
    return "accepted"


def _metrics(text: str) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    pending: float | None = None
    oldest: float | None = None
    applied: dict[str, Any] = {"succeeded": 0, "failed": 0, "internal_errors": 0}
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match is None:
            continue
        name, labels, value = match.group(1), match.group(2) or "", float(match.group(3))
        if name == "paysys_operations_pending":
            pending = value
        elif name == "paysys_oldest_pending_seconds":
            oldest = value
        elif name == "paysys_operations_completed_total":
            for outcome in ("succeeded", "failed"):
                if f'status="{outcome}"' in labels:
                    applied[outcome] += int(value)
        elif name == "paysys_internal_errors_total":
            applied["internal_errors"] += int(value)
    backlog = None
    if pending is not None and oldest is not None:
        backlog = {"pending": int(pending), "oldest_seconds": oldest}
    return backlog, applied


def _unreachable(url: str, exc: Exception) -> str:
    import httpx

    if isinstance(exc, httpx.TimeoutException):
        return f"paysys at {url} did not answer in time"
    if isinstance(exc, httpx.ConnectError):
        return f"cannot reach paysys at {url}"
    return f"cannot reach paysys at {url}: {exc}"


def _show(report: dict[str, Any]) -> None:
    run = report["run"]
    rows: list[tuple[str, str | None]] = []
    if run is None:
        rows.append(("paysys run", "not running in this folder"))
    else:
        rows.append(("paysys run", f"running in {run['folder']} (pid {run['pid']})"))
        rows.append(("since", run["started_at"]))
    rows.append(("URL", f"{report['url']}  (from {report['url_from']})"))
    if report["key_from"] is None:
        rows.append(("key", "none: set PAYSYS_API_KEY (`paysys api-keys create NAME`)"))
    else:
        rows.append(("key", f"from {report['key_from']}: {report['key'] or 'not checked'}"))
    if report["checks"] is not None:
        checks = ", ".join(f"{name} {state}" for name, state in report["checks"].items())
        rows.append(("API", f"{'ready' if report['ready'] else 'NOT READY'} ({checks})"))
    else:
        rows.append(("API", report["error"] or "unknown"))
    backlog = report["backlog"]
    if backlog is not None:
        waiting = (
            f"{backlog['pending']} operations pending, the oldest for "
            f"{backlog['oldest_seconds']:.1f} s"
            if backlog["pending"]
            else "no operation pending"
        )
        rows.append(("backlog", waiting))
    applied = report["applied"]
    if applied is not None:
        rows.append(
            (
                "applied",
                f"{applied['succeeded']} succeeded, {applied['failed']} failed "
                f"({applied['internal_errors']} internal errors), counted since start",
            )
        )
    rows.append(("workers", _workers(run, backlog)))
    output.fields(rows)


def _workers(run: dict[str, Any] | None, backlog: dict[str, Any] | None) -> str:
    if backlog is not None and backlog["pending"] and backlog["oldest_seconds"] > STUCK_SECONDS:
        return (
            f"operations have waited {backlog['oldest_seconds']:.0f} s: is a worker running? "
            "(`paysys worker`)"
        )
    if run is not None:
        pool = run["worker_concurrency"]
        services = ", ".join(run["services"])
        return f"{services} under the paysys run (worker pool: {pool}); it stops all if one dies"
    return "not started by a paysys run here: ask your process manager"
