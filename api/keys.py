"""What the API knows of API keys between lookups, and of the addresses that fail them."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

import limits
import limits.storage
import limits.strategies


class KeyCache:
    """What this process knows of API keys, so that most requests skip the lookup.

    * A key found valid is trusted without a lookup for `TTL` seconds. A revoked key is
      dropped at once when `paysys api-keys revoke` says so on Redis; if that message is
      lost (Redis down), an entry still lives `TTL` seconds at most.
    * A key found unknown (or revoked) is refused without a lookup for `REFUSED_TTL`
      seconds: a client repeating a bad key costs no database work.
    * A key found valid within `KNOWN_TTL` seconds is still looked up for a client address
      over its failure limit (see `AuthFailures`), so that its owner is not refused along
      with whoever floods that address; an unknown key from there is not.
    """

    TTL = 5.0
    REFUSED_TTL = 60.0
    KNOWN_TTL = 3600.0
    MAX_ENTRIES = 10_000
    MAX_REFUSED = 100_000

    def __init__(self) -> None:
        self._entries: dict[bytes, tuple[float, Any]] = {}
        self._known: dict[bytes, float] = {}
        self._refused: dict[bytes, float] = {}
        # Keys dropped as revoked: a lookup that started before the revocation committed
        # must not put the key back.
        self._revoked: dict[bytes, float] = {}
        # One lookup per key at a time: concurrent requests with the same key share it.
        self._lookups: dict[bytes, asyncio.Future[Any]] = {}

    def get(self, digest: bytes) -> Any | None:
        entry = self._entries.get(digest)
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def refused(self, digest: bytes) -> bool:
        until = self._refused.get(digest)
        return until is not None and until > time.monotonic()

    def known(self, digest: bytes) -> bool:
        until = self._known.get(digest)
        return until is not None and until > time.monotonic()

    def put(self, digest: bytes, row: Any) -> None:
        now = time.monotonic()
        if self._revoked.get(digest, 0.0) > now:
            return
        if len(self._entries) >= self.MAX_ENTRIES:
            self._entries.clear()
        if len(self._known) >= self.MAX_ENTRIES:
            self._known.clear()
        self._entries[digest] = (now + self.TTL, row)
        self._known[digest] = now + self.KNOWN_TTL
        self._refused.pop(digest, None)

    def put_refused(self, digest: bytes) -> None:
        if len(self._refused) >= self.MAX_REFUSED:
            # The oldest first (insertion order); a flood of distinct keys is also held
            # back by the per-address failure limit.
            for stale in list(self._refused)[: self.MAX_REFUSED // 10]:
                del self._refused[stale]
        self._refused[digest] = time.monotonic() + self.REFUSED_TTL

    def drop(self, digest: bytes) -> None:
        self._entries.pop(digest, None)
        self._known.pop(digest, None)
        now = time.monotonic()
        self._revoked = {d: t for d, t in self._revoked.items() if t > now}
        self._revoked[digest] = now + 60 * self.TTL
        self.put_refused(digest)

    async def lookup(self, digest: bytes, fetch: Callable[[], Awaitable[Any]]) -> Any | None:
        """The key's row from `fetch` (None if unknown), remembered either way."""
        pending = self._lookups.get(digest)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._lookups[digest] = future
        try:
            row = await fetch()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: nobody else may be waiting for it
            raise
        finally:
            del self._lookups[digest]
        if row is None:
            self.put_refused(digest)
        else:
            self.put(digest, row)
        future.set_result(row)
        return row


class AuthFailures:
    """Failed authentications per client address (`PAYSYS_AUTH_FAILURE_LIMIT`), counted in
    this process: past the limit, requests from that address without a valid key are
    refused with 429 before any lookup. Counted in memory rather than in Redis: the point
    is that a flood of bad keys costs nothing, not even a round trip."""

    def __init__(self, spec: str):
        self._limits = limits.parse_many(spec) if spec else []
        self._limiter = limits.strategies.FixedWindowRateLimiter(limits.storage.MemoryStorage())

    def over(self, address: str) -> int | None:
        """None if `address` may still fail; else the seconds until it may again."""
        for item in self._limits:
            if not self._limiter.test(item, address):
                reset = self._limiter.get_window_stats(item, address).reset_time
                return max(1, math.ceil(reset - time.time()))
        return None

    def failed(self, address: str) -> None:
        for item in self._limits:
            self._limiter.hit(item, address)
