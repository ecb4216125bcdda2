"""Waking the webhook senders after a commit that gives them work (an account created, with
its event; a redelivery asked for; an endpoint enabled again): the doorbell of
`shared.doorbell.webhooks_doorbell_key`, rung as the drains' are (`api.doorbell`): `SET
NX`, and a task for the webhooks queue only if it was silent. Best effort: the sweeper
wakes the senders periodically too, so a lost wake-up costs latency, never a delivery."""

from __future__ import annotations

from api.doorbell import Doorbell
from shared.doorbell import webhooks_doorbell_key
from shared.queue import WEBHOOKS_TASK, webhooks_queue
from shared.settings import Settings


def wake_senders(doorbell: Doorbell, settings: Settings) -> None:
    doorbell.ring_key(
        webhooks_doorbell_key(settings), WEBHOOKS_TASK, queue=webhooks_queue(settings)
    )
