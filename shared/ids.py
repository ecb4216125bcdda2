"""Identifiers.

Rows are keyed by UUIDv7 (RFC 9562): a millisecond timestamp followed by random bits.
They are as unguessable as the random part (74 bits) and, unlike UUIDv4, they arrive
roughly in order, so the B-tree indexes of the ledger's append-only tables stay compact.
"""

from __future__ import annotations

import os
import time
import uuid

_VERSION_7 = 0x7 << 76
_VARIANT_RFC = 0x2 << 62


def uuid7() -> uuid.UUID:
    millis = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")  # 80 bits, 74 of them used
    rand_a = (rand >> 64) & 0xFFF  # 12 bits
    rand_b = rand & 0x3FFF_FFFF_FFFF_FFFF  # 62 bits
    value = (millis & 0xFFFF_FFFF_FFFF) << 80 | _VERSION_7 | rand_a << 64 | _VARIANT_RFC | rand_b
    return uuid.UUID(int=value)
