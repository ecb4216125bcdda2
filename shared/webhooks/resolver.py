"""DNS lookups of webhook hosts, bounded so that a slow name never holds up the others.

`socket.getaddrinfo` cannot be cancelled: a lookup the caller gave up on (after
`RESOLVE_TIMEOUT` seconds) keeps its thread until the system's resolver returns, which may
be long after. So the lookups of a process run in a pool of `WORKERS` threads of their
own, never queue for one, and a name has at most `PER_HOST` lookups running at once,
those given up on included: a tenant whose DNS hangs holds that many threads, never the
pool. A lookup that cannot start (no thread free, or its name at its limit) or that does
not answer in time, or that the resolver says to try again (`EAI_AGAIN`), raises
`LookupUnanswered`: nothing is known of the name, so registration answers 503 (retry)
and a delivery is put off, neither held against the receiver. A name the resolver says
does not exist resolves to no address.

A forked child (a worker's pool process) gets a resolver of its own: the parent's
threads, and its count of them, do not survive the fork.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Lookup = Callable[[str, int], list[IpAddress]]

RESOLVE_TIMEOUT = 5.0
WORKERS = 32
PER_HOST = 2


class LookupUnanswered(Exception):
    """The name's lookup was not made, or did not answer, in time: nothing is known of
    it (a cause on paysys's side, or the name's DNS; not the receiver's failure)."""

    def __init__(self, host: str, why: str):
        super().__init__(f"the DNS lookup of {host} {why}")
        self.host = host


def getaddrinfo(host: str, port: int) -> list[IpAddress]:
    """Every address `host` resolves to, each once, in the resolver's order; none if the
    name does not exist or has no address; `LookupUnanswered` if the resolver says to
    try again."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        if exc.errno == socket.EAI_AGAIN:
            raise LookupUnanswered(host, "failed for now (try again)") from None
        return []
    except (OSError, UnicodeError):
        return []
    found: list[IpAddress] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        address = ipaddress.ip_address(sockaddr[0])
        if address not in found:
            found.append(address)
    return found


class Resolver:
    """Lookups on threads of its own, bounded as the module says."""

    def __init__(
        self, lookup: Lookup | None = None, workers: int = WORKERS, per_host: int = PER_HOST
    ):
        self._lookup = lookup
        self._workers = workers
        self._per_host = per_host
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="paysys-resolve")
        self._lock = threading.Lock()
        self._running: Counter[str] = Counter()

    def running(self, host: str | None = None) -> int:
        """Lookups running (of `host`, or all), those given up on included."""
        with self._lock:
            return self._running[host] if host is not None else self._running.total()

    def _start(self, host: str, port: int) -> Future[list[IpAddress]]:
        with self._lock:
            if self._running.total() >= self._workers:
                raise LookupUnanswered(host, "could not start: every lookup thread is busy")
            if self._running[host] >= self._per_host:
                raise LookupUnanswered(
                    host, f"could not start: {self._per_host} lookups of it still running"
                )
            self._running[host] += 1
        try:
            future = self._pool.submit(self._lookup or getaddrinfo, host, port)
        except BaseException:
            self._done(host)
            raise
        # Counted until it ends, whoever still waits for it (or cancelled unstarted).
        future.add_done_callback(lambda _: self._done(host))
        return future

    def _done(self, host: str) -> None:
        with self._lock:
            self._running[host] -= 1
            if self._running[host] <= 0:
                del self._running[host]

    def resolve(self, host: str, port: int, within: float) -> list[IpAddress]:
        """The addresses of `host` (blocks for up to `within` seconds)."""
        future = self._start(host, port)
        try:
            return future.result(timeout=within)
        except TimeoutError:
            raise LookupUnanswered(host, f"did not answer within {within:g} seconds") from None

    async def resolve_async(self, host: str, port: int, within: float) -> list[IpAddress]:
        """The same, awaited: the event loop is never blocked."""
        future = self._start(host, port)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), within)
        except TimeoutError:
            raise LookupUnanswered(host, f"did not answer within {within:g} seconds") from None


_resolver = Resolver()


def resolver() -> Resolver:
    """The process's resolver."""
    return _resolver


def use(new: Resolver) -> Resolver:
    """Make `new` the process's resolver (tests inject slow ones); the one it replaces."""
    global _resolver
    old, _resolver = _resolver, new
    return old


def _after_fork() -> None:
    use(Resolver())


os.register_at_fork(after_in_child=_after_fork)
