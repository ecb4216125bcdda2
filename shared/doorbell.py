"""Wake-ups, coalesced.

Every accepted operation must wake a worker, but one Celery task per operation (or even
per drain) would cost more than applying the operations. So wake-ups go through a few
Redis keys, the doorbells (`drain_slots` of them, so that as many drains can run at once):

* after its transaction commits, the API rings a doorbell picked at random: SET NX, and
  a drain task for that doorbell is sent only if it was not already rung;
* the drain applies everything it can claim, until nothing is left; then it clears its
  doorbell and looks once more. If it finds work, it goes on; if not, it ends.

An operation committed while its doorbell is rung is seen by that doorbell's drain, at the
latest in the look it takes after clearing the doorbell (which comes after the commit). An
operation committed after the doorbell was cleared rings it again and gets its own task. A
drain that runs out of time with work left hands over to a new task for its doorbell,
which stays rung. A doorbell expires after `DOORBELL_TTL` seconds, so a task lost with a
crashed worker stops suppressing wake-ups; the sweeper covers the rest.

Completions travel the other way on a pub/sub channel, to wake `?wait=` long polls, and
revoked API keys on another, to drop them from the API's cache.
"""

from __future__ import annotations

from shared.settings import Settings

DOORBELL_TTL = 10


def doorbell_key(settings: Settings, slot: int) -> str:
    return f"{settings.redis_prefix}:doorbell:{slot}"


def completions_channel(settings: Settings) -> str:
    return f"{settings.redis_prefix}:completed"


def revocations_channel(settings: Settings) -> str:
    return f"{settings.redis_prefix}:revoked"


def webhooks_doorbell_key(settings: Settings) -> str:
    """Rung when there may be events to fan out or deliveries due (see shared/webhooks)."""
    return f"{settings.redis_prefix}:doorbell:webhooks"


def events_key(tenant_id: object) -> str:
    """The hub key announced on the completions channel when a tenant has new events."""
    return f"e:{tenant_id}"
