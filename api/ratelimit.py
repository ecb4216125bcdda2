"""Per-API-key rate limiting, shared by every API process through Redis.

`PAYSYS_RATE_LIMIT` is in the `limits` notation ("200/second", "1000/minute;20000/hour");
each limit is a GCRA bucket (a token bucket without the refill job): a key may send its
rate on average, and up to `PAYSYS_RATE_LIMIT_BURST` requests at once (default: one
second's worth of the first limit, at least 1). One Redis round trip per request: a Lua
script checks and updates every bucket atomically.

If Redis cannot be reached, reads go through unlimited (fail open) and writes get a 503:
a payment API should neither refuse balance checks nor accept unmetered writes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import limits
import redis.asyncio as aioredis

# KEYS: one bucket per limit. ARGV: per limit, the emission interval T and the burst
# tolerance (both in microseconds). Returns {allowed, retry_after_us, remaining, reset_us}
# for the tightest limit.
GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local allowed = 1
local retry_after, remaining, reset = 0, math.huge, 0
local tats = {}
for i, key in ipairs(KEYS) do
    local interval = tonumber(ARGV[2 * i - 1])
    local burst = tonumber(ARGV[2 * i])
    local tat = tonumber(redis.call('GET', key) or now)
    if tat < now then tat = now end
    local new_tat = tat + interval
    local allow_at = new_tat - burst * interval
    if now < allow_at then
        allowed = 0
        retry_after = math.max(retry_after, allow_at - now)
        remaining = 0
        reset = math.max(reset, tat - now)
    else
        tats[i] = new_tat
        remaining = math.min(remaining, math.floor((now - allow_at) / interval))
        reset = math.max(reset, new_tat - now)
    end
end
if allowed == 1 then
    for i, key in ipairs(KEYS) do
        redis.call('SET', key, tats[i], 'PX', math.ceil((tats[i] - now) / 1000) + 1)
    end
end
return {allowed, retry_after, remaining, reset}
"""


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int
    retry_after_seconds: int

    def headers(self) -> dict[str, str]:
        headers = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_seconds),
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.retry_after_seconds)
        return headers


@dataclass(frozen=True, slots=True)
class Bucket:
    name: str
    interval_us: int
    burst: int


class RateLimiter:
    def __init__(self, redis: aioredis.Redis, prefix: str, spec: str, burst: int | None):
        items = limits.parse_many(spec)
        first = items[0]
        self.burst = burst or max(1, math.ceil(first.amount / first.get_expiry()))
        self.buckets = [
            Bucket(
                name=f"{item.amount}/{item.get_expiry()}s",
                interval_us=max(1, item.get_expiry() * 1_000_000 // item.amount),
                burst=self.burst if index == 0 else item.amount,
            )
            for index, item in enumerate(items)
        ]
        self._prefix = prefix
        self._script = redis.register_script(GCRA)

    async def check(self, api_key_id: str) -> Verdict:
        keys = [f"{self._prefix}:rate:{api_key_id}:{b.name}" for b in self.buckets]
        args: list[int] = []
        for bucket in self.buckets:
            args += [bucket.interval_us, bucket.burst]
        allowed, retry_after_us, remaining, reset_us = await self._script(keys=keys, args=args)
        return Verdict(
            allowed=bool(allowed),
            limit=self.burst,
            remaining=int(remaining),
            reset_seconds=math.ceil(int(reset_us) / 1_000_000),
            retry_after_seconds=max(1, math.ceil(int(retry_after_us) / 1_000_000)),
        )
