"""Wake-ups, coalesced.

Every accepted operation must wake a worker, but one Celery task per operation would cap
the system at Celery's task rate. So wake-ups are coalesced through one Redis key, the
doorbell:

* after its transaction commits, the API sets the doorbell with SET NX, and sends a drain
  task only if the doorbell was not already set;
* a drain task clears the doorbell *before* it reads the database, then applies
  everything it can claim until nothing is left.

An operation committed before the doorbell was cleared is seen by the drain that cleared
it; one committed after finds the doorbell clear and sends a new task. The doorbell
expires, so a lost task stops suppressing wake-ups after `DOORBELL_TTL` seconds; the
sweeper covers the rest.

Completions travel the other way on a pub/sub channel, to wake `?wait=` long polls.
"""

from __future__ import annotations

from shared.settings import Settings

DOORBELL_TTL = 10


def doorbell_key(settings: Settings) -> str:
    return f"{settings.redis_prefix}:doorbell"


def completions_channel(settings: Settings) -> str:
    return f"{settings.redis_prefix}:completed"
