"""What the service writes down: never an API key, never a request body."""

from __future__ import annotations

import httpx

from tests.conftest import Stack
from tests.helpers import Api, new_key


def test_logs_carry_no_secrets_and_no_bodies(stack: Stack, api: Api) -> None:
    marker = f"secret-reference-{new_key()}"
    wallet = api.create_wallet(f"name {marker}")
    api.wait(api.replenish(wallet, "1.00", reference=marker).json()["id"])
    # Refusals and failures are the likeliest to be logged.
    api.replenish(wallet, "not money", reference=marker)
    api.transfer(wallet, api.create_wallet(), "999.00", reference=marker)
    bogus = "sk_" + "A" * 43
    httpx.get(f"{stack.base_url}/v1/accounts", headers={"Authorization": f"Bearer {bogus}"})
    for service in stack.services:
        log = service.log()
        assert api.api_key not in log, f"{service.name} logged an API key"
        assert bogus not in log, f"{service.name} logged a presented key"
        assert marker not in log, f"{service.name} logged a request body"
