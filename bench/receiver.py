"""A webhook receiver for the benchmark: answers every delivery `204` at once and counts
them (distinct event ids too), so that the benchmark can run with events on and say how
many deliveries arrived.

    python -m bench.receiver --port 9000     # GET /stats -> {"deliveries": n, "events": m}
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
import urllib.request
from types import TracebackType

from aiohttp import web

from devtools.processes import free_port, spawn, terminate


def app() -> web.Application:
    seen: set[str] = set()
    counts = {"deliveries": 0}

    async def deliver(request: web.Request) -> web.Response:
        await request.read()
        counts["deliveries"] += 1
        seen.add(request.headers.get("Paysys-Event-Id", ""))
        return web.Response(status=204)

    async def stats(_: web.Request) -> web.Response:
        return web.json_response({"deliveries": counts["deliveries"], "events": len(seen)})

    application = web.Application()
    application.router.add_post("/{tail:.*}", deliver)
    application.router.add_get("/stats", stats)
    return application


class Receiver:
    """This receiver in a process of its own, for as long as the `with` block runs."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/hooks"
        self.proc = spawn([sys.executable, "-m", "bench.receiver", "--port", str(self.port)])

    def __enter__(self) -> Receiver:
        deadline = time.monotonic() + 15
        while True:
            try:
                self.stats()
                return self
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def stats(self) -> dict[str, int]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/stats", timeout=5) as answer:
            return dict(json.loads(answer.read()))

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        terminate(self.proc, signal.SIGTERM, 10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    web.run_app(app(), host="127.0.0.1", port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
