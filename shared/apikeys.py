"""API keys: `sk_` followed by 43 URL-safe characters (256 random bits).

A key is shown once, when it is created; the database keeps only its SHA-256. A slow
password hash would add nothing for a 256-bit random secret, and a plain digest lets the
API find the key by an indexed lookup of its hash: what the timing of that lookup could
reveal is about digests, which says nothing usable about any key.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from dataclasses import dataclass

from shared.asyncdb import Connection, Record
from shared.db import Cursor
from shared.ids import uuid7

KEY_PREFIX = "sk_"
_KEY_RE = re.compile(r"sk_[A-Za-z0-9_-]{43}")
DISPLAY_PREFIX_LENGTH = 10


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def well_formed(key: str) -> bool:
    return _KEY_RE.fullmatch(key) is not None


def hash_key(key: str) -> bytes:
    return hashlib.sha256(key.encode("ascii")).digest()


@dataclass(frozen=True, slots=True)
class CreatedKey:
    tenant_id: uuid.UUID
    tenant_name: str
    key_id: uuid.UUID
    key: str


def create_key(cur: Cursor, tenant_name: str) -> CreatedKey:
    """Create the tenant named `tenant_name` unless it exists, and a new key for it."""
    cur.execute(
        "INSERT INTO tenant (id, name) VALUES (%s, %s) ON CONFLICT (name) DO NOTHING",
        (uuid7(), tenant_name),
    )
    cur.execute("SELECT id FROM tenant WHERE name = %s", (tenant_name,))
    row = cur.fetchone()
    assert row is not None
    tenant_id = row[0]
    key = generate_key()
    key_id = uuid7()
    cur.execute(
        "INSERT INTO api_key (id, tenant_id, prefix, key_hash) VALUES (%s, %s, %s, %s)",
        (key_id, tenant_id, key[:DISPLAY_PREFIX_LENGTH], hash_key(key)),
    )
    return CreatedKey(tenant_id, tenant_name, key_id, key)


@dataclass(frozen=True, slots=True)
class KeyInfo:
    id: uuid.UUID
    tenant_name: str
    prefix: str
    created_at: object
    revoked_at: object | None


LIST_KEYS = """
SELECT k.id, t.name, k.prefix, k.created_at, k.revoked_at
FROM api_key k JOIN tenant t ON t.id = k.tenant_id
WHERE %(tenant)s::text IS NULL OR t.name = %(tenant)s
ORDER BY t.name, k.created_at
"""


def list_keys(cur: Cursor, tenant_name: str | None = None) -> list[KeyInfo]:
    """Every key (never its secret: only its first characters)."""
    cur.execute(LIST_KEYS, {"tenant": tenant_name})
    return [KeyInfo(*row) for row in cur.fetchall()]


ACTIVE_KEYS_MATCHING = """
SELECT id, key_hash FROM api_key
WHERE (id::text = %(ref)s OR prefix = %(ref)s) AND revoked_at IS NULL
FOR UPDATE
"""
REVOKE_KEY = "UPDATE api_key SET revoked_at = now() WHERE id = %(id)s"


def revoke_key(cur: Cursor, ref: str) -> list[tuple[uuid.UUID, bytes]]:
    """Revoke the one active key with this id (or display prefix). Returns the active keys
    that matched, (id, hash); none is revoked unless exactly one did. The caller tells the
    API processes once this commits (see `announce_revocation`)."""
    cur.execute(ACTIVE_KEYS_MATCHING, {"ref": ref})
    matches = [(row[0], bytes(row[1])) for row in cur.fetchall()]
    if len(matches) == 1:
        cur.execute(REVOKE_KEY, {"id": matches[0][0]})
    return matches


TENANT_FOR_KEY = """
SELECT id, tenant_id, key_hash FROM api_key WHERE key_hash = $1 AND revoked_at IS NULL
"""


async def tenant_for_key_hash(conn: Connection, key_hash: bytes) -> Record | None:
    """The API's lookup of a key (asyncpg): its id and tenant, if it is active."""
    return await conn.fetchrow(TENANT_FOR_KEY, key_hash)


def announce_revocation(key_hash: bytes) -> bool:
    """Tell every API process to forget a revoked key now (they cache keys for seconds)."""
    import redis

    from shared.doorbell import revocations_channel
    from shared.settings import get_settings

    settings = get_settings()
    try:
        client = redis.Redis.from_url(settings.require_redis_url(), socket_timeout=2)
        client.publish(revocations_channel(settings), key_hash.hex())
        client.close()
        return True
    except redis.RedisError:
        return False
