"""Identifiers.

Rows are keyed by UUIDv7 (RFC 9562): a millisecond timestamp followed by random bits.
Unlike UUIDv4, they arrive roughly in order, so the B-tree indexes of the ledger's
append-only tables stay compact.
"""

from __future__ import annotations

import os
import random
import time
import uuid

_VERSION_7 = 0x7 << 76
_VARIANT_RFC = 0x2 << 62

# Ids are not secrets (every read is checked against its tenant), so their random bits come
# from a fast generator seeded from the OS, reseeded in a forked child, rather than a
# system call per id.
_random = random.Random(os.urandom(32))
os.register_at_fork(after_in_child=lambda: _random.seed(os.urandom(32)))


def uuid7() -> uuid.UUID:
    millis = time.time_ns() // 1_000_000
    rand = _random.getrandbits(80)  # 74 of them used
    rand_a = (rand >> 64) & 0xFFF  # 12 bits
    rand_b = rand & 0x3FFF_FFFF_FFFF_FFFF  # 62 bits
    value = (millis & 0xFFFF_FFFF_FFFF) << 80 | _VERSION_7 | rand_a << 64 | _VARIANT_RFC | rand_b
    return uuid.UUID(int=value)
